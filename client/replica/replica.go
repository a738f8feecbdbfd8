package replica

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"

	"github.com/mattn/go-sqlite3"

	"github.com/fristed/fristed/syncproto"
)

// applicationID marks a SQLite database as a Fristed replica ("FRST").
const applicationID = 0x46525354

// migrations build the replica's tables, in order; user_version counts the
// ones applied. Append only: never edit or reorder a migration that has
// shipped. Table names carry no prefix; the client keeps its own tables
// (named local_*) in the same database.
var migrations = []string{
	// 1: the case model and its merge state.
	`
	-- Every delta applied, with a hash of what it does, so that applying it
	-- again is a no-op and a reused id with other content is caught.
	CREATE TABLE deltas (
		stream BLOB NOT NULL,
		id     BLOB NOT NULL,
		hash   BLOB NOT NULL,
		PRIMARY KEY (stream, id)
	) WITHOUT ROWID;

	-- Register writes (OpSet). version is clock|device (see version.go);
	-- bases the versions the write supersedes. A write is a head while no
	-- known write names it as a base; only heads keep their value.
	CREATE TABLE writes (
		stream  BLOB NOT NULL,
		kind    TEXT NOT NULL,
		record  BLOB NOT NULL,
		field   TEXT NOT NULL,
		version BLOB NOT NULL,
		delta   BLOB NOT NULL,
		bases   BLOB NOT NULL,
		head    INTEGER NOT NULL,
		value   BLOB,
		UNIQUE (stream, kind, record, field, version, delta)
	);

	-- Every version named as a base by a known write, whether or not the
	-- write it names has arrived: a write that arrives already superseded
	-- is stored without its value.
	CREATE TABLE superseded (
		stream  BLOB NOT NULL,
		kind    TEXT NOT NULL,
		record  BLOB NOT NULL,
		field   TEXT NOT NULL,
		version BLOB NOT NULL,
		PRIMARY KEY (stream, kind, record, field, version)
	) WITHOUT ROWID;

	-- Set elements (OpAdd): entries with their immutable body, and the
	-- empty marker that brings a record into being.
	CREATE TABLE elements (
		stream BLOB NOT NULL,
		kind   TEXT NOT NULL,
		id     BLOB NOT NULL,
		body   BLOB NOT NULL,
		UNIQUE (stream, kind, id)
	);

	-- Removals (OpRemove). Kept for good: a removal wins over any add or
	-- set of the same element or record, whenever that arrives.
	CREATE TABLE tombstones (
		stream BLOB NOT NULL,
		kind   TEXT NOT NULL,
		id     BLOB NOT NULL,
		PRIMARY KEY (stream, kind, id)
	) WITHOUT ROWID;
	`,
}

// Replica is one device's case data: a SQLite database held in memory,
// loaded from and saved to bytes (the vault keeps those bytes encrypted).
// Its methods are safe for concurrent use.
type Replica struct {
	mu    sync.Mutex
	db    *sql.DB
	st    *statements
	newID func() syncproto.DeltaID // record and entry ids; replaced in tests
}

// New returns an empty replica.
func New() (*Replica, error) {
	r, err := open()
	if err != nil {
		return nil, fmt.Errorf("new replica: %w", err)
	}
	if err := r.migrate(); err != nil {
		r.db.Close()
		return nil, fmt.Errorf("new replica: %w", err)
	}
	return r, nil
}

// Load returns the replica serialised in b (by Serialize) and brings its
// schema up to date. b is not retained.
func Load(b []byte) (*Replica, error) {
	if len(b) == 0 {
		return nil, errors.New("load replica: no data")
	}
	r, err := open()
	if err != nil {
		return nil, fmt.Errorf("load replica: %w", err)
	}
	if err := r.restore(b); err != nil {
		r.db.Close()
		return nil, fmt.Errorf("load replica: %w", err)
	}
	if err := r.migrate(); err != nil {
		r.db.Close()
		return nil, fmt.Errorf("load replica: %w", err)
	}
	return r, nil
}

// connector hands database/sql exactly one in-memory connection. The
// database lives and dies with that connection, so a second connect would
// mean the first was lost with the data on it: that fails loudly instead
// of carrying on with an empty database.
type connector struct {
	drv       *sqlite3.SQLiteDriver
	mu        sync.Mutex
	connected bool
}

func (c *connector) Connect(context.Context) (driver.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.connected {
		return nil, errors.New("replica database connection lost")
	}
	conn, err := c.drv.Open(":memory:")
	if err != nil {
		return nil, err
	}
	c.connected = true
	return conn, nil
}

func (c *connector) Driver() driver.Driver { return c.drv }

func open() (*Replica, error) {
	drv := &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		// secure_delete zeroes freed space, so a superseded value, a removed
		// entry or a purged case does not linger in the serialised bytes.
		_, err := c.Exec(`PRAGMA temp_store = MEMORY; PRAGMA secure_delete = ON;`, nil)
		return err
	}}
	db := sql.OpenDB(&connector{drv: drv})
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	return &Replica{db: db, newID: syncproto.NewDeltaID}, nil
}

// restore replaces the (empty) database with the serialised one. SQLite
// cannot grow a database it deserialised without the resizeable flag, which
// the driver does not set, so b is deserialised into a scratch connection
// and copied page by page into ours with the backup API.
func (r *Replica) restore(b []byte) error {
	scratch, err := (&sqlite3.SQLiteDriver{}).Open(":memory:")
	if err != nil {
		return err
	}
	src := scratch.(*sqlite3.SQLiteConn)
	defer src.Close()
	if err := src.Deserialize(b, "main"); err != nil {
		return err
	}
	return r.raw(func(dst *sqlite3.SQLiteConn) error {
		bk, err := dst.Backup("main", src, "main")
		if err != nil {
			return err
		}
		if _, err := bk.Step(-1); err != nil {
			bk.Finish()
			return err
		}
		return bk.Finish()
	})
}

func (r *Replica) raw(f func(*sqlite3.SQLiteConn) error) error {
	conn, err := r.db.Conn(context.Background())
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error { return f(dc.(*sqlite3.SQLiteConn)) })
}

func (r *Replica) migrate() error {
	var have, app int
	if err := r.db.QueryRow(`PRAGMA user_version`).Scan(&have); err != nil {
		return err
	}
	if err := r.db.QueryRow(`PRAGMA application_id`).Scan(&app); err != nil {
		return err
	}
	switch {
	case have == 0 && app == 0:
		var n int
		if err := r.db.QueryRow(`SELECT COUNT(*) FROM sqlite_schema`).Scan(&n); err != nil {
			return fmt.Errorf("not a replica: %w", err)
		}
		if n != 0 {
			return errors.New("not a replica")
		}
	case app != applicationID:
		return errors.New("not a replica")
	case have > len(migrations):
		return fmt.Errorf("%w: version %d, this build knows %d", ErrSchemaTooNew, have, len(migrations))
	}
	for v := have; v < len(migrations); v++ {
		tx, err := r.db.Begin()
		if err != nil {
			return err
		}
		// PRAGMA takes no parameters; v is a small integer we produce.
		_, err = tx.Exec(migrations[v] + fmt.Sprintf(`; PRAGMA user_version = %d; PRAGMA application_id = %d;`, v+1, applicationID))
		if err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	st, err := prepare(r.db)
	if err != nil {
		return err
	}
	r.st = st
	return nil
}

// SchemaVersion returns the number of migrations applied (user_version).
func (r *Replica) SchemaVersion() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var v int
	err := r.db.QueryRow(`PRAGMA user_version`).Scan(&v)
	return v, err
}

// Serialize returns the whole database, the client's own tables included,
// as bytes for Load.
func (r *Replica) Serialize() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []byte
	err := r.raw(func(c *sqlite3.SQLiteConn) error {
		var err error
		out, err = c.Serialize("main")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("serialize replica: %w", err)
	}
	return out, nil
}

// DB returns the database, for the client's own bookkeeping tables (which
// it creates with CREATE TABLE IF NOT EXISTS, named local_*). There is a
// single connection: a caller must not hold a transaction or an open Rows
// while calling a Replica method, or both wait for each other.
func (r *Replica) DB() *sql.DB { return r.db }

// Close releases the database. The replica is unusable afterwards.
func (r *Replica) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st != nil {
		r.st.close()
		r.st = nil
	}
	return r.db.Close()
}

// Streams lists the streams the replica holds data for, in id order.
func (r *Replica) Streams() ([]syncproto.StreamID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rows, err := r.db.Query(`SELECT DISTINCT stream FROM deltas ORDER BY stream`)
	if err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	defer rows.Close()
	var out []syncproto.StreamID
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("list streams: %w", err)
		}
		var id syncproto.StreamID
		copy(id[:], b)
		out = append(out, id)
	}
	return out, rows.Err()
}

// PurgeStream forgets everything about a stream: its data, merge state and
// applied deltas. Freed space is zeroed (secure_delete), so the purged case
// is gone from the next Serialize.
func (r *Replica) PurgeStream(stream syncproto.StreamID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.db.Begin()
	if err != nil {
		return fmt.Errorf("purge stream %s: %w", stream, err)
	}
	defer tx.Rollback()
	for _, table := range []string{"deltas", "writes", "superseded", "elements", "tombstones"} {
		if _, err := tx.Exec(`DELETE FROM `+table+` WHERE stream = ?`, stream[:]); err != nil {
			return fmt.Errorf("purge stream %s: %w", stream, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("purge stream %s: %w", stream, err)
	}
	return nil
}
