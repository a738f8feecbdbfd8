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

const batchColumns = `tenant, stream, seq, id, author, epoch, delta_ids, raw, received_at`

func scanBatch(row pgx.Row) (store.Batch, error) {
	var b store.Batch
	var seq, epoch int64
	var deltas []byte
	var received time.Time
	err := row.Scan(fixed(b.Tenant[:]), fixed(b.Stream[:]), &seq, fixed(b.ID[:]), fixed(b.Author[:]), &epoch, &deltas, &b.Raw, &received)
	if err != nil {
		return b, err
	}
	b.Seq, b.Epoch, b.ReceivedAt = syncproto.Seq(seq), syncproto.Epoch(epoch), fromTS(received)
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

// errDup ends an append transaction that found, once it held the stream's
// lock, that a concurrent append of the same batch had committed.
var errDup = errors.New("batch stored meanwhile")

// AppendBatch implements store.Store.
func (s *Store) AppendBatch(ctx context.Context, b store.Batch, expectHead syncproto.ChainPos, now time.Time) (store.Batch, bool, error) {
	var stored store.Batch
	var dup bool
	byID := func(tx pgx.Tx) (bool, error) {
		got, err := scanBatch(tx.QueryRow(ctx, `SELECT `+batchColumns+` FROM batches WHERE tenant = $1 AND id = $2`, b.Tenant[:], b.ID[:]))
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		stored = got
		return true, nil
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// A retry needs no lock.
		if found, err := byID(tx); err != nil || found {
			dup = found
			return err
		}

		// The tenant row FOR SHARE: other streams' appends go on, an
		// appended statement waits for this transaction to end.
		var head *int64
		err := tx.QueryRow(ctx, `SELECT head_pos FROM tenants WHERE id = $1 FOR SHARE`, b.Tenant[:]).Scan(&head)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("tenant %v: %w", b.Tenant, store.ErrNotFound)
		} else if err != nil {
			return err
		}
		if head == nil || *head != i64(uint64(expectHead)) {
			return store.ErrChainMoved
		}

		// The stream row, locked by the UPDATE: one append at a time.
		if _, err := tx.Exec(ctx, `INSERT INTO streams (tenant, stream) VALUES ($1, $2) ON CONFLICT DO NOTHING`, b.Tenant[:], b.Stream[:]); err != nil {
			return err
		}
		var seq int64
		if err := tx.QueryRow(ctx, `UPDATE streams SET head = head + 1 WHERE tenant = $1 AND stream = $2 RETURNING head`,
			b.Tenant[:], b.Stream[:]).Scan(&seq); err != nil {
			return err
		}
		// The same batch may have committed while this waited for the lock.
		if found, err := byID(tx); err != nil {
			return err
		} else if found {
			return errDup
		}

		if len(b.DeltaIDs) > 0 {
			ids := make([][]byte, len(b.DeltaIDs))
			for i := range b.DeltaIDs {
				ids[i] = b.DeltaIDs[i][:]
			}
			tag, err := tx.Exec(ctx, `INSERT INTO deltas (tenant, stream, delta_id, seq)
				SELECT $1, $2, d, $3 FROM unnest($4::bytea[]) AS d
				ON CONFLICT DO NOTHING`, b.Tenant[:], b.Stream[:], seq, ids)
			if err != nil {
				return err
			}
			if tag.RowsAffected() != int64(len(ids)) {
				return fmt.Errorf("delta id already in stream or twice in batch: %w", store.ErrConflict)
			}
		}
		b.Seq, b.ReceivedAt = syncproto.Seq(seq), ts(now)
		_, err = tx.Exec(ctx, `INSERT INTO batches (`+batchColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			b.Tenant[:], b.Stream[:], seq, b.ID[:], b.Author[:], int64(b.Epoch), joinDeltaIDs(b.DeltaIDs), nonNil(b.Raw), b.ReceivedAt)
		if pgCode(err) == codeUniqueViolation {
			// The same batch id committed in another stream meanwhile.
			return errRetry
		} else if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, payload(b.Tenant, b.Stream)); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
		stored = b
		return nil
	})
	if errors.Is(err, errDup) {
		return stored, true, nil
	}
	if err != nil {
		return store.Batch{}, false, fmt.Errorf("append batch to %v: %w", b.Stream, err)
	}
	if !dup {
		s.lis.notify(b.Tenant, b.Stream)
	}
	return stored, dup, nil
}

// Batches implements store.Store.
func (s *Store) Batches(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID, after syncproto.Seq, limit int) ([]store.Batch, error) {
	var out []store.Batch
	err := s.read(ctx, func(tx pgx.Tx) error {
		var pruned int64
		err := tx.QueryRow(ctx, `SELECT pruned FROM streams WHERE tenant = $1 AND stream = $2`, tenant[:], stream[:]).Scan(&pruned)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		} else if err != nil {
			return err
		}
		if i64(uint64(after)) < pruned {
			return fmt.Errorf("after %d, pruned to %d: %w", after, pruned, store.ErrPruned)
		}
		rows, err := tx.Query(ctx, `SELECT `+batchColumns+` FROM batches
			WHERE tenant = $1 AND stream = $2 AND seq > $3 ORDER BY seq LIMIT $4`,
			tenant[:], stream[:], i64(uint64(after)), limitArg(limit))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Batch, error) { return scanBatch(row) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read batches of %v: %w", stream, err)
	}
	return out, nil
}

// StreamHead implements store.Store.
func (s *Store) StreamHead(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID) (head, pruned syncproto.Seq, err error) {
	var h, p int64
	err = s.pool.QueryRow(ctx, `SELECT head, pruned FROM streams WHERE tenant = $1 AND stream = $2`, tenant[:], stream[:]).Scan(&h, &p)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	} else if err != nil {
		return 0, 0, fmt.Errorf("stream head of %v: %w", stream, err)
	}
	return syncproto.Seq(h), syncproto.Seq(p), nil
}

const snapshotColumns = `tenant, stream, seq, id, raw`

func scanSnapshot(row pgx.Row) (store.Snapshot, error) {
	var sn store.Snapshot
	var seq int64
	err := row.Scan(fixed(sn.Tenant[:]), fixed(sn.Stream[:]), &seq, fixed(sn.ID[:]), &sn.Raw)
	sn.Seq = syncproto.Seq(seq)
	return sn, err
}

// PutSnapshot implements store.Store.
func (s *Store) PutSnapshot(ctx context.Context, sn store.Snapshot) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO snapshots (`+snapshotColumns+`) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (tenant, stream, id) DO NOTHING`,
		sn.Tenant[:], sn.Stream[:], i64(uint64(sn.Seq)), sn.ID[:], nonNil(sn.Raw))
	if err = unknownTenant(err, sn.Tenant); err != nil {
		return fmt.Errorf("put snapshot of %v: %w", sn.Stream, err)
	}
	return nil
}

// LatestSnapshot implements store.Store.
func (s *Store) LatestSnapshot(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID) (store.Snapshot, error) {
	sn, err := scanSnapshot(s.pool.QueryRow(ctx, `SELECT `+snapshotColumns+` FROM snapshots
		WHERE tenant = $1 AND stream = $2 ORDER BY seq DESC, added DESC LIMIT 1`, tenant[:], stream[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return sn, fmt.Errorf("latest snapshot of %v: %w", stream, store.ErrNotFound)
	} else if err != nil {
		return sn, fmt.Errorf("latest snapshot of %v: %w", stream, err)
	}
	return sn, nil
}

// GetSnapshot implements store.Store.
func (s *Store) GetSnapshot(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID, id syncproto.Hash) (store.Snapshot, error) {
	sn, err := scanSnapshot(s.pool.QueryRow(ctx, `SELECT `+snapshotColumns+` FROM snapshots
		WHERE tenant = $1 AND stream = $2 AND id = $3`, tenant[:], stream[:], id[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return sn, fmt.Errorf("snapshot %v of %v: %w", id, stream, store.ErrNotFound)
	} else if err != nil {
		return sn, fmt.Errorf("snapshot %v of %v: %w", id, stream, err)
	}
	return sn, nil
}

// Prune implements store.Store.
func (s *Store) Prune(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID, upTo syncproto.Seq) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var head, pruned int64
		err := tx.QueryRow(ctx, `SELECT head, pruned FROM streams WHERE tenant = $1 AND stream = $2 FOR UPDATE`,
			tenant[:], stream[:]).Scan(&head, &pruned)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		to := i64(uint64(upTo))
		if to <= pruned {
			return nil
		}
		if to > head {
			return fmt.Errorf("prune to %d past head %d: %w", upTo, head, store.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM batches WHERE tenant = $1 AND stream = $2 AND seq <= $3`, tenant[:], stream[:], to); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM snapshots WHERE tenant = $1 AND stream = $2 AND seq < $3`, tenant[:], stream[:], to); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE streams SET pruned = $3 WHERE tenant = $1 AND stream = $2`, tenant[:], stream[:], to)
		return err
	})
	if err != nil {
		return fmt.Errorf("prune %v: %w", stream, err)
	}
	return nil
}

// PurgeStream implements store.Store.
func (s *Store) PurgeStream(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// Lock the stream first, as an append does, so none runs meanwhile.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM streams WHERE tenant = $1 AND stream = $2 FOR UPDATE`, tenant[:], stream[:]); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM batches WHERE tenant = $1 AND stream = $2`,
			`DELETE FROM deltas WHERE tenant = $1 AND stream = $2`,
			`DELETE FROM snapshots WHERE tenant = $1 AND stream = $2`,
			`DELETE FROM secrets WHERE tenant = $1 AND stream = $2`,
			`UPDATE streams SET pruned = head WHERE tenant = $1 AND stream = $2`,
		} {
			if _, err := tx.Exec(ctx, q, tenant[:], stream[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("purge %v: %w", stream, err)
	}
	return nil
}
