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

const batchColumns = `tenant, stream, seq, id, author, epoch, delta_ids, raw, received_ms`

// scanBatch scans the batchColumns.
func scanBatch(row interface{ Scan(...any) error }) (store.Batch, error) {
	var b store.Batch
	var seq, epoch, received int64
	var deltas []byte
	err := row.Scan(fixed(b.Tenant[:]), fixed(b.Stream[:]), &seq, fixed(b.ID[:]), fixed(b.Author[:]), &epoch, &deltas, &b.Raw, &received)
	if err != nil {
		return b, err
	}
	b.Seq, b.Epoch, b.ReceivedAt = syncproto.Seq(seq), syncproto.Epoch(epoch), fromMS(received)
	if b.DeltaIDs, err = splitDeltaIDs(deltas); err != nil {
		return b, err
	}
	return b, nil
}

func joinDeltaIDs(ids []syncproto.DeltaID) []byte {
	out := make([]byte, 0, len(ids)*len(syncproto.DeltaID{}))
	for _, id := range ids {
		out = append(out, id[:]...)
	}
	return out
}

func splitDeltaIDs(b []byte) ([]syncproto.DeltaID, error) {
	var id syncproto.DeltaID
	if len(b)%len(id) != 0 {
		return nil, fmt.Errorf("scan delta ids: %d bytes is not a multiple of %d", len(b), len(id))
	}
	var out []syncproto.DeltaID
	for ; len(b) > 0; b = b[len(id):] {
		copy(id[:], b)
		out = append(out, id)
	}
	return out, nil
}

// AppendBatch implements store.Store.
func (s *Store) AppendBatch(ctx context.Context, b store.Batch, expectHead syncproto.ChainPos, now time.Time) (store.Batch, bool, error) {
	var stored store.Batch
	var dup bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		got, err := scanBatch(tx.QueryRowContext(ctx, `SELECT `+batchColumns+` FROM batches WHERE tenant = ? AND id = ?`, b.Tenant[:], b.ID[:]))
		if err == nil {
			stored, dup = got, true
			return nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}

		var head sql.NullInt64
		err = tx.QueryRowContext(ctx, `SELECT head_pos FROM tenants WHERE id = ?`, b.Tenant[:]).Scan(&head)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("tenant %v: %w", b.Tenant, store.ErrNotFound)
		} else if err != nil {
			return err
		}
		if !head.Valid || head.Int64 != i64(uint64(expectHead)) {
			return store.ErrChainMoved
		}

		if _, err := tx.ExecContext(ctx, `INSERT INTO streams (tenant, stream) VALUES (?, ?) ON CONFLICT DO NOTHING`, b.Tenant[:], b.Stream[:]); err != nil {
			return err
		}
		var seq int64
		if err := tx.QueryRowContext(ctx, `UPDATE streams SET head = head + 1 WHERE tenant = ? AND stream = ? RETURNING head`,
			b.Tenant[:], b.Stream[:]).Scan(&seq); err != nil {
			return err
		}
		if len(b.DeltaIDs) > 0 {
			ins, err := tx.PrepareContext(ctx, `INSERT INTO deltas (tenant, stream, delta_id, seq) VALUES (?, ?, ?, ?)`)
			if err != nil {
				return err
			}
			defer ins.Close()
			for _, id := range b.DeltaIDs {
				_, err := ins.ExecContext(ctx, b.Tenant[:], b.Stream[:], id[:], seq)
				if isConstraint(err, sqlite3.ErrConstraintPrimaryKey) {
					return fmt.Errorf("delta %v already in stream: %w", id, store.ErrConflict)
				} else if err != nil {
					return err
				}
			}
		}
		b.Seq, b.ReceivedAt = syncproto.Seq(seq), fromMS(ms(now))
		if _, err := tx.ExecContext(ctx, `INSERT INTO batches (`+batchColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			b.Tenant[:], b.Stream[:], seq, b.ID[:], b.Author[:], int64(b.Epoch), joinDeltaIDs(b.DeltaIDs), b.Raw, ms(now)); err != nil {
			return err
		}
		stored = b
		return nil
	})
	if err != nil {
		return store.Batch{}, false, fmt.Errorf("append batch to %v: %w", b.Stream, err)
	}
	if !dup {
		s.subs.notify(b.Tenant, b.Stream)
	}
	return stored, dup, nil
}

// Batches implements store.Store.
func (s *Store) Batches(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID, after syncproto.Seq, limit int) ([]store.Batch, error) {
	var out []store.Batch
	err := s.read(ctx, func(tx *sql.Tx) error {
		var pruned int64
		err := tx.QueryRowContext(ctx, `SELECT pruned FROM streams WHERE tenant = ? AND stream = ?`, tenant[:], stream[:]).Scan(&pruned)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		} else if err != nil {
			return err
		}
		if i64(uint64(after)) < pruned {
			return fmt.Errorf("after %d, pruned to %d: %w", after, pruned, store.ErrPruned)
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+batchColumns+` FROM batches
			WHERE tenant = ? AND stream = ? AND seq > ? ORDER BY seq LIMIT ?`,
			tenant[:], stream[:], i64(uint64(after)), limitArg(limit))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			b, err := scanBatch(rows)
			if err != nil {
				return err
			}
			out = append(out, b)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read batches of %v: %w", stream, err)
	}
	return out, nil
}

// StreamHead implements store.Store.
func (s *Store) StreamHead(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID) (head, pruned syncproto.Seq, err error) {
	var h, p int64
	err = s.r.QueryRowContext(ctx, `SELECT head, pruned FROM streams WHERE tenant = ? AND stream = ?`, tenant[:], stream[:]).Scan(&h, &p)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	} else if err != nil {
		return 0, 0, fmt.Errorf("stream head of %v: %w", stream, err)
	}
	return syncproto.Seq(h), syncproto.Seq(p), nil
}

const snapshotColumns = `tenant, stream, seq, id, raw`

func scanSnapshot(row interface{ Scan(...any) error }) (store.Snapshot, error) {
	var sn store.Snapshot
	var seq int64
	err := row.Scan(fixed(sn.Tenant[:]), fixed(sn.Stream[:]), &seq, fixed(sn.ID[:]), &sn.Raw)
	sn.Seq = syncproto.Seq(seq)
	return sn, err
}

// PutSnapshot implements store.Store.
func (s *Store) PutSnapshot(ctx context.Context, sn store.Snapshot) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO snapshots (`+snapshotColumns+`) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (tenant, stream, id) DO NOTHING`,
			sn.Tenant[:], sn.Stream[:], i64(uint64(sn.Seq)), sn.ID[:], sn.Raw)
		return unknownTenant(err, sn.Tenant)
	})
	if err != nil {
		return fmt.Errorf("put snapshot of %v: %w", sn.Stream, err)
	}
	return nil
}

// LatestSnapshot implements store.Store.
func (s *Store) LatestSnapshot(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID) (store.Snapshot, error) {
	sn, err := scanSnapshot(s.r.QueryRowContext(ctx, `SELECT `+snapshotColumns+` FROM snapshots
		WHERE tenant = ? AND stream = ? ORDER BY seq DESC, rowid DESC LIMIT 1`, tenant[:], stream[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return sn, fmt.Errorf("latest snapshot of %v: %w", stream, store.ErrNotFound)
	} else if err != nil {
		return sn, fmt.Errorf("latest snapshot of %v: %w", stream, err)
	}
	return sn, nil
}

// GetSnapshot implements store.Store.
func (s *Store) GetSnapshot(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID, id syncproto.Hash) (store.Snapshot, error) {
	sn, err := scanSnapshot(s.r.QueryRowContext(ctx, `SELECT `+snapshotColumns+` FROM snapshots
		WHERE tenant = ? AND stream = ? AND id = ?`, tenant[:], stream[:], id[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return sn, fmt.Errorf("snapshot %v of %v: %w", id, stream, store.ErrNotFound)
	} else if err != nil {
		return sn, fmt.Errorf("snapshot %v of %v: %w", id, stream, err)
	}
	return sn, nil
}

// Prune implements store.Store.
func (s *Store) Prune(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID, upTo syncproto.Seq) error {
	err := s.writeDeleting(ctx, func(tx *sql.Tx) (bool, error) {
		var head, pruned int64
		err := tx.QueryRowContext(ctx, `SELECT head, pruned FROM streams WHERE tenant = ? AND stream = ?`, tenant[:], stream[:]).Scan(&head, &pruned)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return false, err
		}
		to := i64(uint64(upTo))
		if to <= pruned {
			return false, nil
		}
		if to > head {
			return false, fmt.Errorf("prune to %d past head %d: %w", upTo, head, store.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM batches WHERE tenant = ? AND stream = ? AND seq <= ?`, tenant[:], stream[:], to); err != nil {
			return false, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM snapshots WHERE tenant = ? AND stream = ? AND seq < ?`, tenant[:], stream[:], to); err != nil {
			return false, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE streams SET pruned = ? WHERE tenant = ? AND stream = ?`, to, tenant[:], stream[:]); err != nil {
			return false, err
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("prune %v: %w", stream, err)
	}
	return nil
}

// PurgeStream implements store.Store.
func (s *Store) PurgeStream(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID) error {
	err := s.writeDeleting(ctx, func(tx *sql.Tx) (bool, error) {
		for _, q := range []string{
			`DELETE FROM batches WHERE tenant = ? AND stream = ?`,
			`DELETE FROM deltas WHERE tenant = ? AND stream = ?`,
			`DELETE FROM snapshots WHERE tenant = ? AND stream = ?`,
			`DELETE FROM secrets WHERE tenant = ? AND stream = ?`,
			`UPDATE streams SET pruned = head WHERE tenant = ? AND stream = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, tenant[:], stream[:]); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("purge %v: %w", stream, err)
	}
	return nil
}
