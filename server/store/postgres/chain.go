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

// PutInvite implements store.Store.
func (s *Store) PutInvite(ctx context.Context, tokenHash syncproto.Hash, expires time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO invites (token_hash, expires_at) VALUES ($1, $2)`, tokenHash[:], ts(expires))
	if pgCode(err) == codeUniqueViolation {
		err = store.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("put invite: %w", err)
	}
	return nil
}

// ConsumeInvite implements store.Store.
func (s *Store) ConsumeInvite(ctx context.Context, tokenHash syncproto.Hash, tenant syncproto.TenantID, now time.Time) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE invites SET used_at = $1, tenant = $2
			WHERE token_hash = $3 AND used_at IS NULL AND expires_at > $1`,
			ts(now), tenant[:], tokenHash[:])
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("invite unknown, used or expired: %w", store.ErrNotFound)
		}
		_, err = tx.Exec(ctx, `INSERT INTO tenants (id, created_at) VALUES ($1, $2)`, tenant[:], ts(now))
		if pgCode(err) == codeUniqueViolation {
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
	rows, err := s.pool.Query(ctx, `SELECT id FROM tenants ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (syncproto.TenantID, error) {
		var id syncproto.TenantID
		err := row.Scan(fixed(id[:]))
		return id, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// AppendStatement implements store.Store.
func (s *Store) AppendStatement(ctx context.Context, tenant syncproto.TenantID, st store.Statement) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var head *int64
		err := tx.QueryRow(ctx, `SELECT head_pos FROM tenants WHERE id = $1 FOR UPDATE`, tenant[:]).Scan(&head)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("tenant %v: %w", tenant, store.ErrNotFound)
		} else if err != nil {
			return err
		}
		var want uint64
		if head != nil {
			want = uint64(*head) + 1
		}
		if uint64(st.Pos) != want {
			return fmt.Errorf("position %d, next is %d: %w", st.Pos, want, store.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO statements (tenant, pos, hash, raw) VALUES ($1, $2, $3, $4)`,
			tenant[:], i64(uint64(st.Pos)), st.Hash[:], nonNil(st.Raw)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE tenants SET head_pos = $1, head_hash = $2 WHERE id = $3`,
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
	rows, err := s.pool.Query(ctx, `SELECT pos, hash, raw FROM statements
		WHERE tenant = $1 AND pos >= $2 ORDER BY pos LIMIT $3`,
		tenant[:], i64(uint64(from)), limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("read statements of %v: %w", tenant, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Statement, error) {
		var st store.Statement
		var pos int64
		err := row.Scan(&pos, fixed(st.Hash[:]), &st.Raw)
		st.Pos = syncproto.ChainPos(pos)
		return st, err
	})
	if err != nil {
		return nil, fmt.Errorf("read statements of %v: %w", tenant, err)
	}
	return out, nil
}

// ChainHead implements store.Store.
func (s *Store) ChainHead(ctx context.Context, tenant syncproto.TenantID) (syncproto.Head, error) {
	var head syncproto.Head
	var pos *int64
	err := s.pool.QueryRow(ctx, `SELECT head_pos, head_hash FROM tenants WHERE id = $1`, tenant[:]).Scan(&pos, fixed(head.Hash[:]))
	if errors.Is(err, pgx.ErrNoRows) || err == nil && pos == nil {
		return head, fmt.Errorf("chain head of %v: %w", tenant, store.ErrNotFound)
	} else if err != nil {
		return head, fmt.Errorf("chain head of %v: %w", tenant, err)
	}
	head.Pos = syncproto.ChainPos(*pos)
	return head, nil
}
