package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/fristed/fristed/server"
	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/server/store/postgres"
	"github.com/fristed/fristed/server/store/sqlite"
)

// postgresURLEnv may hold the PostgreSQL URL instead of --postgres-url,
// which keeps a password out of the process list.
const postgresURLEnv = "FRISTED_RELAY_POSTGRES_URL"

// storeFlags are the flags every command that opens the store shares.
type storeFlags struct {
	data        string
	kind        string
	postgresURL string
}

func (s *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.data, "data", "", "data `DIR`: the relay's keys, the KEK directory and (SQLite) the database")
	fs.StringVar(&s.kind, "store", "sqlite", "`STORE`: sqlite (DIR/relay.db) or postgres")
	fs.StringVar(&s.postgresURL, "postgres-url", "", "PostgreSQL `URL` for --store postgres (or set "+postgresURLEnv+")")
}

func (s *storeFlags) check() error {
	if s.data == "" {
		return errors.New("--data is required")
	}
	switch s.kind {
	case "sqlite":
		if s.postgresURL != "" {
			return errors.New("--postgres-url needs --store postgres")
		}
	case "postgres":
		if s.postgresURL == "" {
			s.postgresURL = os.Getenv(postgresURLEnv)
		}
		if s.postgresURL == "" {
			return errors.New("--store postgres needs --postgres-url (or " + postgresURLEnv + ")")
		}
	default:
		return fmt.Errorf("--store %q: want sqlite or postgres", s.kind)
	}
	return nil
}

// open creates the data directory (0700) if needed and opens the store.
func (s *storeFlags) open(ctx context.Context) (store.Store, error) {
	if err := os.MkdirAll(s.data, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if s.kind == "postgres" {
		return postgres.Open(ctx, s.postgresURL)
	}
	// Create the database file private before SQLite does; its WAL and
	// shared-memory files take the same mode.
	path := server.DBPath(s.data)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	f.Close()
	return sqlite.Open(path)
}

// flagSet returns a FlagSet that reports errors to its caller only.
func flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses args, turning -h into errHelp and refusing positional
// arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return errHelp
	} else if err != nil {
		return fmt.Errorf("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// printHelp writes a command's help text and its flags.
func printHelp(w io.Writer, fs *flag.FlagSet, usage, text string) {
	fmt.Fprintf(w, "Usage: fristed-relay %s %s\n\n%s\n\nFlags:\n", fs.Name(), usage, strings.TrimSpace(text))
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}
