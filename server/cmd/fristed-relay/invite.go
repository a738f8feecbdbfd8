package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/fristed/fristed/server"
)

type inviteFlags struct {
	fs    *flag.FlagSet
	store storeFlags
	valid time.Duration
}

func newInviteFlags() *inviteFlags {
	f := &inviteFlags{fs: flagSet("invite")}
	f.store.register(f.fs)
	f.fs.DurationVar(&f.valid, "valid", 7*24*time.Hour, "how long the invite can be used (`DURATION`)")
	return f
}

func (f *inviteFlags) help(w io.Writer) {
	printHelp(w, f.fs, "--data DIR [--valid DURATION] [--store sqlite|postgres] [--postgres-url URL]", `
Prints a one-time tenant invite token, alone on the last line of stdout.
An organisation's coordinator gives it to "fristed org init --invite" to
register the organisation on this relay. Only the token's hash is stored.
Works while "fristed-relay serve" runs on the same data directory (and,
with PostgreSQL, from any host that reaches the database).`)
}

func runInvite(args []string, stdout, _ io.Writer) error {
	f := newInviteFlags()
	if err := parse(f.fs, args); err != nil {
		return err
	}
	if err := f.store.check(); err != nil {
		return fmt.Errorf("invite: %w", err)
	}
	if f.valid <= 0 {
		return errors.New("invite: --valid must be positive")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := f.store.open(ctx)
	if err != nil {
		return fmt.Errorf("invite: open store: %w", err)
	}
	defer st.Close()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("invite: %w", err)
	}
	token := "fri_" + base64.RawURLEncoding.EncodeToString(b)
	expires := time.Now().Add(f.valid).UTC().Truncate(time.Second)
	if err := st.PutInvite(ctx, server.InviteHash(token), expires); err != nil {
		return fmt.Errorf("invite: store invite: %w", err)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("invite: %w", err)
	}
	fmt.Fprintf(stdout, "one-time tenant invite, valid until %s:\n%s\n", expires.Format(time.RFC3339), token)
	return nil
}
