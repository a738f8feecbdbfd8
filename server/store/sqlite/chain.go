package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// PutInvite implements store.Store.
func (s *Store) PutInvite(ctx context.Context, tokenHash syncproto.Hash, expires time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO invites (token_hash, expires_ms) VALUES (?, ?)`, tokenHash[:], ms(expires))
		if isConstraint(err, sqlite3.ErrConstraintPrimaryKey) {
			return store.ErrConflict
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("put invite: %w", err)
	}
	return nil
}

// ConsumeInvite implements store.Store.
func (s *Store) ConsumeInvite(ctx context.Context, tokenHash syncproto.Hash, tenant syncproto.TenantID, now time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE invites SET used_ms = ?, tenant = ?
			WHERE token_hash = ? AND used_ms IS NULL AND expires_ms > ?`,
			ms(now), tenant[:], tokenHash[:], ms(now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("invite unknown, used or expired: %w", store.ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO tenants (id, created_ms) VALUES (?, ?)`, tenant[:], ms(now))
		if isConstraint(err, sqlite3.ErrConstraintPrimaryKey) {
			return fmt.Errorf("tenant %v exists: %w", tenant, store.ErrConflict)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("consume invite: %w", err)
	}
	return nil
}

// Tenants implements store.Store.
func (s *Store) Tenants(ctx context.Context) ([]syncproto.TenantID, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM tenants ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	var out []syncproto.TenantID
	for rows.Next() {
		var id syncproto.TenantID
		if err := rows.Scan(fixed(id[:])); err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// AppendStatement implements store.Store.
func (s *Store) AppendStatement(ctx context.Context, tenant syncproto.TenantID, st store.Statement) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var head sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT head_pos FROM tenants WHERE id = ?`, tenant[:]).Scan(&head)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("tenant %v: %w", tenant, store.ErrNotFound)
		} else if err != nil {
			return err
		}
		var want uint64
		if head.Valid {
			want = uint64(head.Int64) + 1
		}
		if uint64(st.Pos) != want {
			return fmt.Errorf("position %d, next is %d: %w", st.Pos, want, store.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO statements (tenant, pos, hash, raw) VALUES (?, ?, ?, ?)`,
			tenant[:], i64(uint64(st.Pos)), st.Hash[:], st.Raw); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE tenants SET head_pos = ?, head_hash = ? WHERE id = ?`,
			i64(uint64(st.Pos)), st.Hash[:], tenant[:])
		return err
	})
	if err != nil {
		return fmt.Errorf("append statement to %v: %w", tenant, err)
	}
	return nil
}

// Statements implements store.Store.
func (s *Store) Statements(ctx context.Context, tenant syncproto.TenantID, from syncproto.ChainPos, limit int) ([]store.Statement, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT pos, hash, raw FROM statements
		WHERE tenant = ? AND pos >= ? ORDER BY pos LIMIT ?`,
		tenant[:], i64(uint64(from)), limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("read statements of %v: %w", tenant, err)
	}
	defer rows.Close()
	var out []store.Statement
	for rows.Next() {
		var st store.Statement
		var pos int64
		if err := rows.Scan(&pos, fixed(st.Hash[:]), &st.Raw); err != nil {
			return nil, fmt.Errorf("read statements of %v: %w", tenant, err)
		}
		st.Pos = syncproto.ChainPos(pos)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read statements of %v: %w", tenant, err)
	}
	return out, nil
}

// ChainHead implements store.Store.
func (s *Store) ChainHead(ctx context.Context, tenant syncproto.TenantID) (syncproto.Head, error) {
	var head syncproto.Head
	var pos sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT head_pos, head_hash FROM tenants WHERE id = ?`, tenant[:]).Scan(&pos, fixed(head.Hash[:]))
	if errors.Is(err, sql.ErrNoRows) || err == nil && !pos.Valid {
		return head, fmt.Errorf("chain head of %v: %w", tenant, store.ErrNotFound)
	} else if err != nil {
		return head, fmt.Errorf("chain head of %v: %w", tenant, err)
	}
	head.Pos = syncproto.ChainPos(pos.Int64)
	return head, nil
}
