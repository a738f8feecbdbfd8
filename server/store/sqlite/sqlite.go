// Package sqlite implements store.Store on one SQLite database file: the
// relay's default storage, embedded and needing no set-up.
//
// # Concurrency
//
// Every write goes through a single connection and begins with BEGIN
// IMMEDIATE, so writes are serialised within the process and, through
// SQLite's write lock and busy timeout, with other processes on the same
// file (fristed-relay invite while the relay runs). Reads use a separate
// pool of read-only connections; in WAL mode they never block the writer.
// Subscribe only sees appends made by this process.
//
// # Deletion
//
// The database runs with secure_delete on, so SQLite overwrites deleted
// content and freed pages with zeros, and after every delete of sealed
// bytes (secrets, batches, snapshots, an envelope's outer or inner layer)
// the store checkpoints the WAL and truncates it, so the old page images do
// not linger there either. Secrets are sealed under a key-encryption key
// kept outside the database; destroying that key is what makes a deletion
// final in backups.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

var _ store.Store = (*Store)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

// busyTimeout is how long a write waits for another process's write lock.
const busyTimeout = 10 * time.Second

// readers is the size of the read pool.
const readers = 4

// Store is a store.Store on an SQLite file. Use Open.
type Store struct {
	w *sql.DB // one connection, every write
	r *sql.DB // read-only connections

	subs hub

	// checkpointDue is set when a checkpoint after a delete could not
	// truncate the WAL (a reader was busy); the next write tries again.
	checkpointDue atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the database at path and brings its
// schema up to date.
func Open(path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	base := (&url.URL{Scheme: "file", Path: abs}).String()
	common := url.Values{
		"_busy_timeout":  {strconv.Itoa(int(busyTimeout / time.Millisecond))},
		"_foreign_keys":  {"on"},
		"_secure_delete": {"on"},
	}
	wq := url.Values{
		"_journal_mode": {"WAL"},
		// A batch is acknowledged with a signed receipt: it must survive
		// power loss, so every commit syncs the WAL.
		"_synchronous": {"FULL"},
		"_txlock":      {"immediate"},
	}
	rq := url.Values{"_query_only": {"on"}}
	for k, v := range common {
		wq[k], rq[k] = v, v
	}

	s := &Store{}
	s.w = sql.OpenDB(connector{dsn: base + "?" + wq.Encode()})
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	if err := s.migrate(context.Background()); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	s.r = sql.OpenDB(connector{dsn: base + "?" + rq.Encode()})
	s.r.SetMaxOpenConns(readers)
	s.r.SetMaxIdleConns(readers)
	if err := s.r.PingContext(context.Background()); err != nil {
		s.r.Close()
		s.w.Close()
		return nil, fmt.Errorf("open sqlite store %s: readers: %w", abs, err)
	}
	return s, nil
}

// connector opens connections without registering a driver name globally.
type connector struct{ dsn string }

var sqliteDriver = &sqlite3.SQLiteDriver{
	ConnectHook: func(c *sqlite3.SQLiteConn) error {
		// Sorts and temporary indexes stay in memory, never in temp files.
		_, err := c.Exec("PRAGMA temp_store = MEMORY", nil)
		return err
	},
}

func (c connector) Connect(context.Context) (driver.Conn, error) { return sqliteDriver.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return sqliteDriver }

// Close closes the database, truncating the WAL first.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), busyTimeout)
		defer cancel()
		rerr := s.r.Close()
		cerr := s.checkpoint(ctx)
		werr := s.w.Close()
		s.closeErr = errors.Join(rerr, cerr, werr)
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("close sqlite store: %w", s.closeErr)
		}
	})
	return s.closeErr
}

// migrate applies the embedded migrations not yet applied, in one
// transaction, recording each in schema_version.
func (s *Store) migrate(ctx context.Context) error {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(files)
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			version    INTEGER PRIMARY KEY,
			applied_ms INTEGER NOT NULL
		)`); err != nil {
			return fmt.Errorf("create schema_version: %w", err)
		}
		var current int
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&current); err != nil {
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
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("apply migration %d: %w", v, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_ms) VALUES (?, ?)`, v, time.Now().UnixMilli()); err != nil {
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
	base := filepath.Base(name)
	num, _, ok := strings.Cut(base, "_")
	v, err := strconv.Atoi(num)
	if !ok || err != nil || v <= 0 {
		return 0, fmt.Errorf("migration %q: name must start with a positive number and '_'", base)
	}
	return v, nil
}

// write runs fn in an IMMEDIATE transaction on the writer connection.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if s.checkpointDue.Load() {
		// Best effort: the flag stays set until a checkpoint succeeds.
		_ = s.checkpoint(context.WithoutCancel(ctx))
	}
	return nil
}

// writeDeleting is write for a transaction that deletes or overwrites
// sealed bytes: after the commit it checkpoints the WAL, so the deleted
// bytes are gone from the files when it returns. fn reports whether it
// deleted anything.
func (s *Store) writeDeleting(ctx context.Context, fn func(tx *sql.Tx) (bool, error)) error {
	var deleted bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		deleted, err = fn(tx)
		return err
	})
	if err != nil || !deleted {
		return err
	}
	// The delete is committed: finish the checkpoint even if ctx ends.
	return s.checkpoint(context.WithoutCancel(ctx))
}

// checkpoint copies the WAL into the database and truncates it. If a
// reader holds an old snapshot past the busy timeout, the WAL cannot be
// truncated yet; it is retried after the next write.
func (s *Store) checkpoint(ctx context.Context) error {
	var busy, logFrames, checkpointed int
	if err := s.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &checkpointed); err != nil {
		s.checkpointDue.Store(true)
		return fmt.Errorf("checkpoint wal: %w", err)
	}
	s.checkpointDue.Store(busy != 0)
	return nil
}

// read runs fn in a read transaction: one consistent snapshot.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// Subscribe implements store.Store. It sees appends by this process only.
func (s *Store) Subscribe(ctx context.Context, fn func(syncproto.TenantID, syncproto.StreamID)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	s.subs.add(ctx, fn)
	return nil
}

func isConstraint(err error, code sqlite3.ErrNoExtended) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == code
}

// unknownTenant maps a foreign key failure to ErrNotFound: every foreign
// key leads to the tenants table.
func unknownTenant(err error, tenant syncproto.TenantID) error {
	if isConstraint(err, sqlite3.ErrConstraintForeignKey) {
		return fmt.Errorf("tenant %v: %w", tenant, store.ErrNotFound)
	}
	return err
}

// ms is how a time is stored: milliseconds since the Unix epoch.
func ms(t time.Time) int64 { return t.UnixMilli() }

// nullMS stores the zero time as NULL.
func nullMS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}

// i64 converts a position, sequence number or version for SQLite's signed
// integers, saturating: none comes near 2^63 in practice, and a comparison
// against the saturated value still gives the right answer.
func i64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// limitArg turns a limit <= 0 into SQLite's "no limit".
func limitArg(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}

// fixed scans a BLOB of exactly len(dst) bytes into dst; NULL leaves dst
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
func nullID(id []byte) any {
	for _, b := range id {
		if b != 0 {
			return id
		}
	}
	return nil
}
