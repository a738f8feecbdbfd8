package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPragmas checks the settings the package documentation promises, on
// both the writer and the readers.
func TestPragmas(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "relay.db"))
	require.NoError(t, err)
	defer s.Close()
	for _, tc := range []struct {
		name   string
		db     *sql.DB
		pragma string
		want   string
	}{
		{"writer", s.w, "journal_mode", "wal"},
		{"writer", s.w, "secure_delete", "1"},
		{"writer", s.w, "foreign_keys", "1"},
		{"writer", s.w, "synchronous", "2"},
		{"writer", s.w, "temp_store", "2"},
		{"writer", s.w, "busy_timeout", "10000"},
		{"reader", s.r, "journal_mode", "wal"},
		{"reader", s.r, "query_only", "1"},
		{"reader", s.r, "secure_delete", "1"},
		{"reader", s.r, "temp_store", "2"},
	} {
		var got string
		require.NoError(t, tc.db.QueryRowContext(context.Background(), "PRAGMA "+tc.pragma).Scan(&got))
		if got != tc.want {
			t.Errorf("%s: pragma %s: got %q, want %q", tc.name, tc.pragma, got, tc.want)
		}
	}
	var version int
	require.NoError(t, s.r.QueryRow(`SELECT max(version) FROM schema_version`).Scan(&version))
	if version != 1 {
		t.Errorf("schema version: got %d, want 1", version)
	}
}
