// Package postgres implements store.Store on PostgreSQL, for operators who
// run several relay processes behind a load balancer on one database.
//
// # Exactly once across processes
//
// Every guarantee holds between processes, not just goroutines, because it
// rests on the database: a batch append locks its tenant's row FOR SHARE
// (an appended statement needs it FOR UPDATE, so the chain head cannot move
// between the check and the commit) and then its stream's row, which hands
// out sequence numbers one at a time; a release is one conditional UPDATE
// (the first to commit wins, the others find it released); invites and
// challenges are consumed by conditional UPDATE and DELETE.
//
// # Notifications
//
// An append runs NOTIFY in its transaction, with the tenant and stream in
// hex as payload, so PostgreSQL delivers it on commit to every process
// LISTENing; each Store keeps one dedicated connection for that, opened on
// the first Subscribe and re-opened if it breaks. Appends by this process
// are also delivered directly, so a subscriber may hear of them twice.
//
// # Deletion
//
// PostgreSQL keeps deleted tuples until VACUUM and does not zero them, and
// its WAL and backups keep them longer. A secret is sealed under a
// key-encryption key kept outside the database, so destroying that key, not
// this store, is what makes the deletion of a secret final.
//
// # Schema
//
// Tables live in the first schema of the connection's search_path (set it
// in the URL, e.g. ?search_path=fristed). Open applies the embedded
// migrations, under an advisory lock so that processes starting together
// apply each once.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

var _ store.Store = (*Store)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key held while migrating.
const migrationLock = 0x66726973746564 // "fristed"

// Store is a store.Store on PostgreSQL. Use Open.
type Store struct {
	pool *pgxpool.Pool
	lis  *listener

	closeOnce sync.Once
}

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string) and brings the schema up to date.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, errors.New("open postgres store: malformed connection string")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	s := &Store{pool: pool}
	s.lis = newListener(cfg.ConnConfig.Copy())
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	return s, nil
}

// Close stops listening and closes every connection.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.lis.close()
		s.pool.Close()
	})
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(files)
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return fmt.Errorf("lock for migration: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("create schema_version: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&current); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		latest := 0
		for _, f := range files {
			v, err := migrationVersion(f)
			if err != nil {
				return err
			}
			latest = max(latest, v)
			if v <= current {
				continue
			}
			body, err := migrations.ReadFile(f)
			if err != nil {
				return fmt.Errorf("read migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return fmt.Errorf("apply migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, v); err != nil {
				return fmt.Errorf("record migration %d: %w", v, err)
			}
		}
		if current > latest {
			return fmt.Errorf("database schema version %d is newer than this relay's %d", current, latest)
		}
		return nil
	})
}

// migrationVersion parses the number before the first underscore of a
// migration's file name.
func migrationVersion(name string) (int, error) {
	base := path.Base(name)
	num, _, ok := strings.Cut(base, "_")
	v, err := strconv.Atoi(num)
	if !ok || err != nil || v <= 0 {
		return 0, fmt.Errorf("migration %q: name must start with a positive number and '_'", base)
	}
	return v, nil
}

// txAttempts bounds retries of a transaction that failed on a deadlock or
// serialization failure, which PostgreSQL resolves by aborting one side.
const txAttempts = 5

// tx runs fn in a READ COMMITTED transaction, retrying it as a whole when
// PostgreSQL aborted it to break a deadlock.
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.txOpts(ctx, pgx.TxOptions{}, fn)
}

// read runs fn in a read-only REPEATABLE READ transaction: one snapshot.
func (s *Store) read(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.txOpts(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

func (s *Store) txOpts(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = pgx.BeginTxFunc(ctx, s.pool, opts, fn)
		if attempt == txAttempts || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt*attempt) * 5 * time.Millisecond):
		}
	}
}

func retryable(err error) bool {
	return pgCode(err) == "40001" || pgCode(err) == "40P01" || errors.Is(err, errRetry)
}

// errRetry asks tx to run the transaction again: it lost a race that the
// next attempt will see the outcome of.
var errRetry = errors.New("lost a race; retry")

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

// unknownTenant maps a foreign key failure to ErrNotFound: every foreign
// key leads to the tenants table.
func unknownTenant(err error, tenant syncproto.TenantID) error {
	if pgCode(err) == codeForeignKeyViolation {
		return fmt.Errorf("tenant %v: %w", tenant, store.ErrNotFound)
	}
	return err
}

// Subscribe implements store.Store: fn hears of appends by every process
// on the database. It returns once this Store is listening.
func (s *Store) Subscribe(ctx context.Context, fn func(syncproto.TenantID, syncproto.StreamID)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if err := s.lis.subscribe(ctx, fn); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	return nil
}

// ts is how a time is stored: UTC, at millisecond precision.
func ts(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

// nullTS stores the zero time as NULL.
func nullTS(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	v := ts(t)
	return &v
}

func fromTS(t time.Time) time.Time { return t.UTC() }

func fromNullTS(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// i64 converts a position, sequence number or version for PostgreSQL's
// signed bigint, saturating: none comes near 2^63 in practice, and a
// comparison against the saturated value still gives the right answer.
func i64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// limitArg turns a limit <= 0 into NULL, PostgreSQL's "no limit".
func limitArg(limit int) *int64 {
	if limit <= 0 {
		return nil
	}
	v := int64(limit)
	return &v
}

// fixed scans a bytea of exactly len(dst) bytes into dst; NULL leaves dst
// zero.
type fixed []byte

func (dst fixed) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		clear(dst)
		return nil
	case []byte:
		if len(v) != len(dst) {
			return fmt.Errorf("scan id: got %d bytes, want %d", len(v), len(dst))
		}
		copy(dst, v)
		return nil
	default:
		return fmt.Errorf("scan id: got %T, want bytes", src)
	}
}

// nullID stores a zero id as NULL.
func nullID(id []byte) []byte {
	for _, b := range id {
		if b != 0 {
			return id
		}
	}
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
