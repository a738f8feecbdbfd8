package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

const secretColumns = `tenant, stream, kind, name, kek_gen, sealed`

func scanSecret(row pgx.Row) (store.Secret, error) {
	var sec store.Secret
	var gen int64
	err := row.Scan(fixed(sec.Tenant[:]), fixed(sec.Stream[:]), &sec.Kind, &sec.Name, &gen, &sec.Sealed)
	sec.KEKGen = uint32(gen)
	return sec, err
}

// PutSecret implements store.Store.
func (s *Store) PutSecret(ctx context.Context, sec store.Secret) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO secrets (`+secretColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (tenant, kind, name) DO UPDATE SET
			stream = EXCLUDED.stream, kek_gen = EXCLUDED.kek_gen, sealed = EXCLUDED.sealed`,
		sec.Tenant[:], nullID(sec.Stream[:]), sec.Kind, sec.Name, int64(sec.KEKGen), nonNil(sec.Sealed))
	if err = unknownTenant(err, sec.Tenant); err != nil {
		return fmt.Errorf("put %s secret: %w", sec.Kind, err)
	}
	return nil
}

// GetSecret implements store.Store.
func (s *Store) GetSecret(ctx context.Context, tenant syncproto.TenantID, kind, name string) (store.Secret, error) {
	sec, err := scanSecret(s.pool.QueryRow(ctx, `SELECT `+secretColumns+` FROM secrets
		WHERE tenant = $1 AND kind = $2 AND name = $3`, tenant[:], kind, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return sec, fmt.Errorf("get %s secret: %w", kind, store.ErrNotFound)
	} else if err != nil {
		return sec, fmt.Errorf("get %s secret: %w", kind, err)
	}
	return sec, nil
}

// ListSecrets implements store.Store. The prefix is compared as a string,
// not as a LIKE pattern, and names sort by their bytes.
func (s *Store) ListSecrets(ctx context.Context, tenant syncproto.TenantID, kind, namePrefix string) ([]store.Secret, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+secretColumns+` FROM secrets
		WHERE tenant = $1 AND kind = $2 AND starts_with(name, $3)
		ORDER BY name COLLATE "C"`, tenant[:], kind, namePrefix)
	if err != nil {
		return nil, fmt.Errorf("list %s secrets: %w", kind, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Secret, error) { return scanSecret(row) })
	if err != nil {
		return nil, fmt.Errorf("list %s secrets: %w", kind, err)
	}
	return out, nil
}

// DeleteSecret implements store.Store.
func (s *Store) DeleteSecret(ctx context.Context, tenant syncproto.TenantID, kind, name string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM secrets WHERE tenant = $1 AND kind = $2 AND name = $3`, tenant[:], kind, name); err != nil {
		return fmt.Errorf("delete %s secret: %w", kind, err)
	}
	return nil
}

// PutSecrets implements store.Store.
func (s *Store) PutSecrets(ctx context.Context, secs []store.Secret) error {
	if len(secs) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		for _, sec := range secs {
			if _, err := tx.Exec(ctx, `INSERT INTO secrets (`+secretColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (tenant, kind, name) DO UPDATE SET
					stream = EXCLUDED.stream, kek_gen = EXCLUDED.kek_gen, sealed = EXCLUDED.sealed`,
				sec.Tenant[:], nullID(sec.Stream[:]), sec.Kind, sec.Name, int64(sec.KEKGen), nonNil(sec.Sealed)); err != nil {
				return unknownTenant(err, sec.Tenant)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put %d secrets: %w", len(secs), err)
	}
	return nil
}

// DeleteSecrets implements store.Store.
func (s *Store) DeleteSecrets(ctx context.Context, tenant syncproto.TenantID, kind string, names []string) (int, error) {
	var total int
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM secrets WHERE tenant = $1 AND kind = $2 AND name = ANY($3)`, tenant[:], kind, names)
		if err != nil {
			return err
		}
		total = int(tag.RowsAffected())
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete %s secrets: %w", kind, err)
	}
	return total, nil
}

// RewrapSecrets implements store.Store. The secrets stay locked until the
// transaction ends, so a concurrent Put or Delete waits for the rotation.
func (s *Store) RewrapSecrets(ctx context.Context, toGen uint32, fn func(store.Secret) ([]byte, error)) (int, error) {
	var n int
	err := s.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+secretColumns+` FROM secrets WHERE kek_gen <> $1 FOR UPDATE`, int64(toGen))
		if err != nil {
			return err
		}
		old, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Secret, error) { return scanSecret(row) })
		if err != nil {
			return err
		}
		for _, sec := range old {
			sealed, err := fn(sec)
			if err != nil {
				return fmt.Errorf("rewrap a %s secret of %v: %w", sec.Kind, sec.Tenant, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE secrets SET kek_gen = $1, sealed = $2 WHERE tenant = $3 AND kind = $4 AND name = $5`,
				int64(toGen), nonNil(sealed), sec.Tenant[:], sec.Kind, sec.Name); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("rewrap secrets to generation %d: %w", toGen, err)
	}
	return n, nil
}

const envelopeColumns = `tenant, alarm, secret_hash, outer_layer, sealed_at, released_at, nonce_hash, inner_layer, release_pos, generation`

func scanEnvelope(row pgx.Row) (store.Envelope, error) {
	var e store.Envelope
	var sealed, released *time.Time
	var pos, gen int64
	err := row.Scan(fixed(e.Tenant[:]), fixed(e.Alarm[:]), fixed(e.SecretHash[:]), &e.Outer, &sealed, &released,
		fixed(e.NonceHash[:]), &e.Inner, &pos, &gen)
	e.SealedAt, e.ReleasedAt = fromNullTS(sealed), fromNullTS(released)
	e.ReleasePos, e.Generation = syncproto.ChainPos(pos), uint32(gen)
	return e, err
}

// PutEnvelope implements store.Store.
func (s *Store) PutEnvelope(ctx context.Context, e store.Envelope) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO envelopes (tenant, alarm, secret_hash, outer_layer, sealed_at, generation)
		VALUES ($1, $2, $3, $4, $5, 1)
		ON CONFLICT (tenant, alarm) DO UPDATE SET
			secret_hash = EXCLUDED.secret_hash, outer_layer = EXCLUDED.outer_layer,
			sealed_at = EXCLUDED.sealed_at, generation = envelopes.generation + 1,
			released_at = NULL, nonce_hash = NULL, inner_layer = NULL, release_pos = 0`,
		e.Tenant[:], e.Alarm[:], e.SecretHash[:], nonNil(e.Outer), nullTS(e.SealedAt))
	if err = unknownTenant(err, e.Tenant); err != nil {
		return fmt.Errorf("put envelope %v: %w", e.Alarm, err)
	}
	return nil
}

// GetEnvelope implements store.Store.
func (s *Store) GetEnvelope(ctx context.Context, tenant syncproto.TenantID, alarm syncproto.AlarmID) (store.Envelope, error) {
	e, err := scanEnvelope(s.pool.QueryRow(ctx, `SELECT `+envelopeColumns+` FROM envelopes WHERE tenant = $1 AND alarm = $2`, tenant[:], alarm[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("get envelope %v: %w", alarm, store.ErrNotFound)
	} else if err != nil {
		return e, fmt.Errorf("get envelope %v: %w", alarm, err)
	}
	return e, nil
}

// Release implements store.Store. The release is one conditional UPDATE:
// of concurrent callers in any process, the first to commit wins, and the
// others, which waited on its row lock, then find the envelope released.
func (s *Store) Release(ctx context.Context, tenant syncproto.TenantID, alarm syncproto.AlarmID, nonceHash syncproto.Hash, inner []byte, now time.Time) (store.Envelope, bool, error) {
	var e store.Envelope
	var retry bool
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		e, err = scanEnvelope(tx.QueryRow(ctx, `UPDATE envelopes SET released_at = $1, nonce_hash = $2, inner_layer = $3
			WHERE tenant = $4 AND alarm = $5 AND released_at IS NULL
			RETURNING `+envelopeColumns,
			ts(now), nonceHash[:], nonNil(inner), tenant[:], alarm[:]))
		if err == nil {
			return nil
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		e, err = scanEnvelope(tx.QueryRow(ctx, `SELECT `+envelopeColumns+` FROM envelopes WHERE tenant = $1 AND alarm = $2`, tenant[:], alarm[:]))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return err
		case e.NonceHash == nonceHash:
			retry = true
			return nil
		default:
			return store.ErrAlreadyReleased
		}
	})
	if errors.Is(err, store.ErrAlreadyReleased) {
		return e, false, fmt.Errorf("release envelope %v: released at %v: %w", alarm, e.ReleasedAt.Format(time.RFC3339), err)
	} else if err != nil {
		return store.Envelope{}, false, fmt.Errorf("release envelope %v: %w", alarm, err)
	}
	return e, retry, nil
}

// SetReleasePos implements store.Store.
func (s *Store) SetReleasePos(ctx context.Context, tenant syncproto.TenantID, alarm syncproto.AlarmID, pos syncproto.ChainPos) error {
	tag, err := s.pool.Exec(ctx, `UPDATE envelopes SET release_pos = $1 WHERE tenant = $2 AND alarm = $3`, i64(uint64(pos)), tenant[:], alarm[:])
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("set release position of %v: %w", alarm, err)
	}
	return nil
}

// ForgetInner implements store.Store.
func (s *Store) ForgetInner(ctx context.Context, before time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE envelopes SET inner_layer = NULL WHERE inner_layer IS NOT NULL AND released_at < $1`, ts(before)); err != nil {
		return fmt.Errorf("forget inner layers: %w", err)
	}
	return nil
}
