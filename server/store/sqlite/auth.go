package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// PutChallenge implements store.Store.
func (s *Store) PutChallenge(ctx context.Context, nonce syncproto.Hash, expires time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO challenges (nonce, expires_ms) VALUES (?, ?)`, nonce[:], ms(expires))
		if isConstraint(err, sqlite3.ErrConstraintPrimaryKey) {
			return store.ErrConflict
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("put challenge: %w", err)
	}
	return nil
}

// ConsumeChallenge implements store.Store. It also clears out challenges
// that expired unused.
func (s *Store) ConsumeChallenge(ctx context.Context, nonce syncproto.Hash, now time.Time) error {
	var expires int64
	var found bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `DELETE FROM challenges WHERE nonce = ? RETURNING expires_ms`, nonce[:]).Scan(&expires)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		found = err == nil
		_, err = tx.ExecContext(ctx, `DELETE FROM challenges WHERE expires_ms <= ?`, ms(now))
		return err
	})
	switch {
	case err != nil:
		return fmt.Errorf("consume challenge: %w", err)
	case !found:
		return fmt.Errorf("consume challenge: %w", store.ErrNotFound)
	case expires <= ms(now):
		return fmt.Errorf("consume challenge: expired: %w", store.ErrNotFound)
	}
	return nil
}

// TokenVersion implements store.Store.
func (s *Store) TokenVersion(ctx context.Context, tenant syncproto.TenantID, device syncproto.DeviceID) (uint64, error) {
	var v int64
	err := s.r.QueryRowContext(ctx, `SELECT version FROM token_versions WHERE tenant = ? AND device = ?`, tenant[:], device[:]).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("token version of %v: %w", device, err)
	}
	return uint64(v), nil
}

// BumpTokenVersion implements store.Store.
func (s *Store) BumpTokenVersion(ctx context.Context, tenant syncproto.TenantID, device syncproto.DeviceID) (uint64, error) {
	var v int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO token_versions (tenant, device, version) VALUES (?, ?, 1)
			ON CONFLICT (tenant, device) DO UPDATE SET version = version + 1
			RETURNING version`, tenant[:], device[:]).Scan(&v)
		return unknownTenant(err, tenant)
	})
	if err != nil {
		return 0, fmt.Errorf("bump token version of %v: %w", device, err)
	}
	return uint64(v), nil
}

// TouchDevice implements store.Store.
func (s *Store) TouchDevice(ctx context.Context, tenant syncproto.TenantID, device syncproto.DeviceID, day time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO last_seen (tenant, device, day_ms) VALUES (?, ?, ?)
			ON CONFLICT (tenant, device) DO UPDATE SET day_ms = max(day_ms, excluded.day_ms)`,
			tenant[:], device[:], ms(day))
		return unknownTenant(err, tenant)
	})
	if err != nil {
		return fmt.Errorf("touch device %v: %w", device, err)
	}
	return nil
}

// LastSeen implements store.Store.
func (s *Store) LastSeen(ctx context.Context, tenant syncproto.TenantID) (map[syncproto.DeviceID]time.Time, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT device, day_ms FROM last_seen WHERE tenant = ?`, tenant[:])
	if err != nil {
		return nil, fmt.Errorf("last seen in %v: %w", tenant, err)
	}
	defer rows.Close()
	out := map[syncproto.DeviceID]time.Time{}
	for rows.Next() {
		var dev syncproto.DeviceID
		var day int64
		if err := rows.Scan(fixed(dev[:]), &day); err != nil {
			return nil, fmt.Errorf("last seen in %v: %w", tenant, err)
		}
		out[dev] = fromMS(day)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("last seen in %v: %w", tenant, err)
	}
	return out, nil
}

// PutEnrolment implements store.Store.
func (s *Store) PutEnrolment(ctx context.Context, tenant syncproto.TenantID, req syncproto.RequestID, raw []byte, expires time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var have []byte
		err := tx.QueryRowContext(ctx, `SELECT raw FROM enrolments WHERE tenant = ? AND req = ?`, tenant[:], req[:]).Scan(&have)
		switch {
		case err == nil && bytes.Equal(have, raw):
			return nil
		case err == nil:
			return store.ErrConflict
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO enrolments (tenant, req, raw, expires_ms) VALUES (?, ?, ?, ?)`,
			tenant[:], req[:], nonNil(raw), ms(expires))
		return unknownTenant(err, tenant)
	})
	if err != nil {
		return fmt.Errorf("put enrolment %v: %w", req, err)
	}
	return nil
}

// GetEnrolment implements store.Store.
func (s *Store) GetEnrolment(ctx context.Context, tenant syncproto.TenantID, req syncproto.RequestID, now time.Time) ([]byte, error) {
	var raw []byte
	err := s.r.QueryRowContext(ctx, `SELECT raw FROM enrolments WHERE tenant = ? AND req = ? AND expires_ms > ?`,
		tenant[:], req[:], ms(now)).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get enrolment %v: %w", req, store.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("get enrolment %v: %w", req, err)
	}
	return raw, nil
}

// DeleteEnrolment implements store.Store.
func (s *Store) DeleteEnrolment(ctx context.Context, tenant syncproto.TenantID, req syncproto.RequestID) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM enrolments WHERE tenant = ? AND req = ?`, tenant[:], req[:])
		return err
	})
	if err != nil {
		return fmt.Errorf("delete enrolment %v: %w", req, err)
	}
	return nil
}
