package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

const secretColumns = `tenant, stream, kind, name, kek_gen, sealed`

func scanSecret(row interface{ Scan(...any) error }) (store.Secret, error) {
	var sec store.Secret
	var gen int64
	err := row.Scan(fixed(sec.Tenant[:]), fixed(sec.Stream[:]), &sec.Kind, &sec.Name, &gen, &sec.Sealed)
	sec.KEKGen = uint32(gen)
	return sec, err
}

// PutSecret implements store.Store.
func (s *Store) PutSecret(ctx context.Context, sec store.Secret) error {
	err := s.writeDeleting(ctx, func(tx *sql.Tx) (bool, error) {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM secrets WHERE tenant = ? AND kind = ? AND name = ?`,
			sec.Tenant[:], sec.Kind, sec.Name).Scan(&n); err != nil {
			return false, err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO secrets (`+secretColumns+`) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant, kind, name) DO UPDATE SET
				stream = excluded.stream, kek_gen = excluded.kek_gen, sealed = excluded.sealed`,
			sec.Tenant[:], nullID(sec.Stream[:]), sec.Kind, sec.Name, int64(sec.KEKGen), sec.Sealed)
		// Replacing a secret overwrites its old sealed bytes.
		return n > 0, unknownTenant(err, sec.Tenant)
	})
	if err != nil {
		return fmt.Errorf("put %s secret: %w", sec.Kind, err)
	}
	return nil
}

// GetSecret implements store.Store.
func (s *Store) GetSecret(ctx context.Context, tenant syncproto.TenantID, kind, name string) (store.Secret, error) {
	sec, err := scanSecret(s.r.QueryRowContext(ctx, `SELECT `+secretColumns+` FROM secrets
		WHERE tenant = ? AND kind = ? AND name = ?`, tenant[:], kind, name))
	if errors.Is(err, sql.ErrNoRows) {
		return sec, fmt.Errorf("get %s secret: %w", kind, store.ErrNotFound)
	} else if err != nil {
		return sec, fmt.Errorf("get %s secret: %w", kind, err)
	}
	return sec, nil
}

// ListSecrets implements store.Store. The prefix is compared as bytes, not
// as a LIKE pattern, so names may hold any character.
func (s *Store) ListSecrets(ctx context.Context, tenant syncproto.TenantID, kind, namePrefix string) ([]store.Secret, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+secretColumns+` FROM secrets
		WHERE tenant = ? AND kind = ? AND substr(CAST(name AS BLOB), 1, ?) = CAST(? AS BLOB)
		ORDER BY name`,
		tenant[:], kind, len(namePrefix), namePrefix)
	if err != nil {
		return nil, fmt.Errorf("list %s secrets: %w", kind, err)
	}
	defer rows.Close()
	var out []store.Secret
	for rows.Next() {
		sec, err := scanSecret(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s secrets: %w", kind, err)
		}
		out = append(out, sec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s secrets: %w", kind, err)
	}
	return out, nil
}

// DeleteSecret implements store.Store.
func (s *Store) DeleteSecret(ctx context.Context, tenant syncproto.TenantID, kind, name string) error {
	err := s.writeDeleting(ctx, func(tx *sql.Tx) (bool, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM secrets WHERE tenant = ? AND kind = ? AND name = ?`, tenant[:], kind, name)
		if err != nil {
			return false, err
		}
		n, err := res.RowsAffected()
		return n > 0, err
	})
	if err != nil {
		return fmt.Errorf("delete %s secret: %w", kind, err)
	}
	return nil
}

// PutSecrets implements store.Store.
func (s *Store) PutSecrets(ctx context.Context, secs []store.Secret) error {
	if len(secs) == 0 {
		return nil
	}
	err := s.writeDeleting(ctx, func(tx *sql.Tx) (bool, error) {
		replaced := false
		for _, sec := range secs {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM secrets WHERE tenant = ? AND kind = ? AND name = ?`,
				sec.Tenant[:], sec.Kind, sec.Name).Scan(&n); err != nil {
				return false, err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO secrets (`+secretColumns+`) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (tenant, kind, name) DO UPDATE SET
					stream = excluded.stream, kek_gen = excluded.kek_gen, sealed = excluded.sealed`,
				sec.Tenant[:], nullID(sec.Stream[:]), sec.Kind, sec.Name, int64(sec.KEKGen), sec.Sealed); err != nil {
				return false, unknownTenant(err, sec.Tenant)
			}
			// Replacing a secret overwrites its old sealed bytes.
			replaced = replaced || n > 0
		}
		return replaced, nil
	})
	if err != nil {
		return fmt.Errorf("put %d secrets: %w", len(secs), err)
	}
	return nil
}

// DeleteSecrets implements store.Store.
func (s *Store) DeleteSecrets(ctx context.Context, tenant syncproto.TenantID, kind string, names []string) (int, error) {
	var total int
	err := s.writeDeleting(ctx, func(tx *sql.Tx) (bool, error) {
		total = 0
		for _, name := range names {
			res, err := tx.ExecContext(ctx, `DELETE FROM secrets WHERE tenant = ? AND kind = ? AND name = ?`, tenant[:], kind, name)
			if err != nil {
				return false, err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return false, err
			}
			total += int(n)
		}
		return total > 0, nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete %s secrets: %w", kind, err)
	}
	return total, nil
}

// RewrapSecrets implements store.Store.
func (s *Store) RewrapSecrets(ctx context.Context, toGen uint32, fn func(store.Secret) ([]byte, error)) (int, error) {
	var n int
	err := s.writeDeleting(ctx, func(tx *sql.Tx) (bool, error) {
		n = 0
		rows, err := tx.QueryContext(ctx, `SELECT `+secretColumns+` FROM secrets WHERE kek_gen != ?`, int64(toGen))
		if err != nil {
			return false, err
		}
		var old []store.Secret
		for rows.Next() {
			sec, err := scanSecret(rows)
			if err != nil {
				rows.Close()
				return false, err
			}
			old = append(old, sec)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return false, err
		}
		for _, sec := range old {
			sealed, err := fn(sec)
			if err != nil {
				return false, fmt.Errorf("rewrap a %s secret of %v: %w", sec.Kind, sec.Tenant, err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE secrets SET kek_gen = ?, sealed = ? WHERE tenant = ? AND kind = ? AND name = ?`,
				int64(toGen), sealed, sec.Tenant[:], sec.Kind, sec.Name); err != nil {
				return false, err
			}
		}
		n = len(old)
		return n > 0, nil
	})
	if err != nil {
		return 0, fmt.Errorf("rewrap secrets to generation %d: %w", toGen, err)
	}
	return n, nil
}

const envelopeColumns = `tenant, alarm, secret_hash, outer_layer, sealed_ms, released_ms, nonce_hash, inner_layer, release_pos, generation`

func scanEnvelope(row interface{ Scan(...any) error }) (store.Envelope, error) {
	var e store.Envelope
	var sealed, released sql.NullInt64
	var pos, gen int64
	err := row.Scan(fixed(e.Tenant[:]), fixed(e.Alarm[:]), fixed(e.SecretHash[:]), &e.Outer, &sealed, &released,
		fixed(e.NonceHash[:]), &e.Inner, &pos, &gen)
	e.SealedAt, e.ReleasedAt = fromNullMS(sealed), fromNullMS(released)
	e.ReleasePos, e.Generation = syncproto.ChainPos(pos), uint32(gen)
	return e, err
}

// PutEnvelope implements store.Store.
func (s *Store) PutEnvelope(ctx context.Context, e store.Envelope) error {
	err := s.writeDeleting(ctx, func(tx *sql.Tx) (bool, error) {
		var gen int64
		err := tx.QueryRowContext(ctx, `INSERT INTO envelopes (tenant, alarm, secret_hash, outer_layer, sealed_ms, generation)
			VALUES (?, ?, ?, ?, ?, 1)
			ON CONFLICT (tenant, alarm) DO UPDATE SET
				secret_hash = excluded.secret_hash, outer_layer = excluded.outer_layer,
				sealed_ms = excluded.sealed_ms, generation = generation + 1,
				released_ms = NULL, nonce_hash = NULL, inner_layer = NULL, release_pos = 0
			RETURNING generation`,
			e.Tenant[:], e.Alarm[:], e.SecretHash[:], nonNil(e.Outer), nullMS(e.SealedAt)).Scan(&gen)
		// A re-seal overwrites the old outer and inner layers.
		return gen > 1, unknownTenant(err, e.Tenant)
	})
	if err != nil {
		return fmt.Errorf("put envelope %v: %w", e.Alarm, err)
	}
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// GetEnvelope implements store.Store.
func (s *Store) GetEnvelope(ctx context.Context, tenant syncproto.TenantID, alarm syncproto.AlarmID) (store.Envelope, error) {
	e, err := getEnvelope(ctx, s.r, tenant, alarm)
	if err != nil {
		return e, fmt.Errorf("get envelope %v: %w", alarm, err)
	}
	return e, nil
}

func getEnvelope(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, tenant syncproto.TenantID, alarm syncproto.AlarmID) (store.Envelope, error) {
	e, err := scanEnvelope(q.QueryRowContext(ctx, `SELECT `+envelopeColumns+` FROM envelopes WHERE tenant = ? AND alarm = ?`, tenant[:], alarm[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return e, store.ErrNotFound
	}
	return e, err
}

// Release implements store.Store.
func (s *Store) Release(ctx context.Context, tenant syncproto.TenantID, alarm syncproto.AlarmID, nonceHash syncproto.Hash, inner []byte, now time.Time) (store.Envelope, bool, error) {
	var e store.Envelope
	var retry bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE envelopes SET released_ms = ?, nonce_hash = ?, inner_layer = ?
			WHERE tenant = ? AND alarm = ? AND released_ms IS NULL`,
			ms(now), nonceHash[:], nonNil(inner), tenant[:], alarm[:])
		if err != nil {
			return err
		}
		won, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if e, err = getEnvelope(ctx, tx, tenant, alarm); err != nil {
			return err
		}
		switch {
		case won == 1:
		case e.NonceHash == nonceHash:
			retry = true
		default:
			return store.ErrAlreadyReleased
		}
		return nil
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE envelopes SET release_pos = ? WHERE tenant = ? AND alarm = ?`, i64(uint64(pos)), tenant[:], alarm[:])
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set release position of %v: %w", alarm, err)
	}
	return nil
}

// ForgetInner implements store.Store.
func (s *Store) ForgetInner(ctx context.Context, before time.Time) error {
	err := s.writeDeleting(ctx, func(tx *sql.Tx) (bool, error) {
		res, err := tx.ExecContext(ctx, `UPDATE envelopes SET inner_layer = NULL WHERE inner_layer IS NOT NULL AND released_ms < ?`, ms(before))
		if err != nil {
			return false, err
		}
		n, err := res.RowsAffected()
		return n > 0, err
	})
	if err != nil {
		return fmt.Errorf("forget inner layers: %w", err)
	}
	return nil
}
