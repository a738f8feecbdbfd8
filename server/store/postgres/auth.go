package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// PutChallenge implements store.Store.
func (s *Store) PutChallenge(ctx context.Context, nonce syncproto.Hash, expires time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO challenges (nonce, expires_at) VALUES ($1, $2)`, nonce[:], ts(expires))
	if pgCode(err) == codeUniqueViolation {
		err = store.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("put challenge: %w", err)
	}
	return nil
}

// ConsumeChallenge implements store.Store. The DELETE is the consumption:
// of concurrent callers in any process only one gets the row. It also
// clears out challenges that expired unused.
func (s *Store) ConsumeChallenge(ctx context.Context, nonce syncproto.Hash, now time.Time) error {
	var expires time.Time
	err := s.pool.QueryRow(ctx, `DELETE FROM challenges WHERE nonce = $1 RETURNING expires_at`, nonce[:]).Scan(&expires)
	found := err == nil
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	if err == nil {
		_, err = s.pool.Exec(ctx, `DELETE FROM challenges WHERE expires_at <= $1`, ts(now))
	}
	switch {
	case err != nil:
		return fmt.Errorf("consume challenge: %w", err)
	case !found:
		return fmt.Errorf("consume challenge: %w", store.ErrNotFound)
	case !ts(now).Before(expires):
		return fmt.Errorf("consume challenge: expired: %w", store.ErrNotFound)
	}
	return nil
}

// TokenVersion implements store.Store.
func (s *Store) TokenVersion(ctx context.Context, tenant syncproto.TenantID, device syncproto.DeviceID) (uint64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT version FROM token_versions WHERE tenant = $1 AND device = $2`, tenant[:], device[:]).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("token version of %v: %w", device, err)
	}
	return uint64(v), nil
}

// BumpTokenVersion implements store.Store.
func (s *Store) BumpTokenVersion(ctx context.Context, tenant syncproto.TenantID, device syncproto.DeviceID) (uint64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `INSERT INTO token_versions (tenant, device, version) VALUES ($1, $2, 1)
		ON CONFLICT (tenant, device) DO UPDATE SET version = token_versions.version + 1
		RETURNING version`, tenant[:], device[:]).Scan(&v)
	if err = unknownTenant(err, tenant); err != nil {
		return 0, fmt.Errorf("bump token version of %v: %w", device, err)
	}
	return uint64(v), nil
}

// TouchDevice implements store.Store.
func (s *Store) TouchDevice(ctx context.Context, tenant syncproto.TenantID, device syncproto.DeviceID, day time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO last_seen (tenant, device, day) VALUES ($1, $2, $3)
		ON CONFLICT (tenant, device) DO UPDATE SET day = GREATEST(last_seen.day, EXCLUDED.day)`,
		tenant[:], device[:], ts(day))
	if err = unknownTenant(err, tenant); err != nil {
		return fmt.Errorf("touch device %v: %w", device, err)
	}
	return nil
}

// LastSeen implements store.Store.
func (s *Store) LastSeen(ctx context.Context, tenant syncproto.TenantID) (map[syncproto.DeviceID]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT device, day FROM last_seen WHERE tenant = $1`, tenant[:])
	if err != nil {
		return nil, fmt.Errorf("last seen in %v: %w", tenant, err)
	}
	defer rows.Close()
	out := map[syncproto.DeviceID]time.Time{}
	for rows.Next() {
		var dev syncproto.DeviceID
		var day time.Time
		if err := rows.Scan(fixed(dev[:]), &day); err != nil {
			return nil, fmt.Errorf("last seen in %v: %w", tenant, err)
		}
		out[dev] = fromTS(day)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("last seen in %v: %w", tenant, err)
	}
	return out, nil
}

// PutEnrolment implements store.Store.
func (s *Store) PutEnrolment(ctx context.Context, tenant syncproto.TenantID, req syncproto.RequestID, raw []byte, expires time.Time) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO enrolments (tenant, req, raw, expires_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant, req) DO NOTHING`, tenant[:], req[:], nonNil(raw), ts(expires))
		if err != nil || tag.RowsAffected() == 1 {
			return unknownTenant(err, tenant)
		}
		var have []byte
		if err := tx.QueryRow(ctx, `SELECT raw FROM enrolments WHERE tenant = $1 AND req = $2`, tenant[:], req[:]).Scan(&have); err != nil {
			return err
		}
		if !bytes.Equal(have, raw) {
			return store.ErrConflict
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put enrolment %v: %w", req, err)
	}
	return nil
}

// GetEnrolment implements store.Store.
func (s *Store) GetEnrolment(ctx context.Context, tenant syncproto.TenantID, req syncproto.RequestID, now time.Time) ([]byte, error) {
	var raw []byte
	err := s.pool.QueryRow(ctx, `SELECT raw FROM enrolments WHERE tenant = $1 AND req = $2 AND expires_at > $3`,
		tenant[:], req[:], ts(now)).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get enrolment %v: %w", req, store.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("get enrolment %v: %w", req, err)
	}
	return raw, nil
}

// DeleteEnrolment implements store.Store.
func (s *Store) DeleteEnrolment(ctx context.Context, tenant syncproto.TenantID, req syncproto.RequestID) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM enrolments WHERE tenant = $1 AND req = $2`, tenant[:], req[:]); err != nil {
		return fmt.Errorf("delete enrolment %v: %w", req, err)
	}
	return nil
}
