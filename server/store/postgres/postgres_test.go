package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/server/store/postgres"
	"github.com/fristed/fristed/server/store/storetest"
	"github.com/fristed/fristed/syncproto"
)

const urlEnv = "FRISTED_TEST_POSTGRES_URL"

var farFuture = time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)

func testURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv(urlEnv)
	if u == "" {
		t.Skip(urlEnv + " not set: PostgreSQL store tests skipped (scripts/test.sh starts a server)")
	}
	return u
}

// newSchema creates an empty, uniquely named schema, dropped when the test
// ends, and returns a connection string whose search_path selects it.
func newSchema(t *testing.T) string {
	t.Helper()
	base := testURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	require.NoError(t, err, "connect to %s", urlEnv)
	defer conn.Close(ctx)
	b := make([]byte, 8)
	_, err = rand.Read(b)
	require.NoError(t, err)
	schema := "fristed_test_" + hex.EncodeToString(b)
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err, "create schema")
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: connect: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(t, base, schema)
}

func withSearchPath(t *testing.T, base, schema string) string {
	t.Helper()
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		require.NoError(t, err, "parse %s", urlEnv)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return base + " search_path=" + schema
}

func open(t *testing.T, connString string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), connString)
	require.NoError(t, err, "open store")
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: got error %v, want none", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	testURL(t)
	storetest.RunStoreTests(t, func(t *testing.T) store.Store {
		return open(t, newSchema(t))
	})
}

// TestShared runs two stores on one schema, as two relay processes would.
func TestShared(t *testing.T) {
	testURL(t)
	storetest.RunSharedStoreTests(t, func(t *testing.T) (store.Store, store.Store) {
		cs := newSchema(t)
		return open(t, cs), open(t, cs)
	}, storetest.SharedOptions{})
}

// TestMigrateTwice opens a schema that is already up to date.
func TestMigrateTwice(t *testing.T) {
	cs := newSchema(t)
	ctx := context.Background()
	a := open(t, cs)
	tok := syncproto.Hash{1}
	require.NoError(t, a.PutInvite(ctx, tok, farFuture))
	require.NoError(t, a.Close())
	b := open(t, cs)
	if err := b.PutInvite(ctx, tok, farFuture); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("put invite after reopen: got error %v, want %v", err, store.ErrConflict)
	}
}

// TestOpenBadURL checks that a malformed URL is refused without echoing it:
// it may hold a password.
func TestOpenBadURL(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://user:hunter2@[::1/x")
	if err == nil {
		t.Fatalf("open a malformed URL: got no error, want one")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("open a malformed URL: got error %q, want one without the password", err)
	}
}
