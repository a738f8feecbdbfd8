package vault_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"filippo.io/age"

	"github.com/fristed/fristed/client/vault"
)

func Example() {
	home, err := os.MkdirTemp("", "fristed-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(home)
	dir := filepath.Join(home, "vault")

	// The device's own age key pair; the product uses its hybrid
	// identity, unlocked from the passphrase-protected identity file.
	identity, err := age.GenerateHybridIdentity()
	if err != nil {
		log.Fatal(err)
	}
	recipient := identity.Recipient()

	v, err := vault.Create(vault.OSFS{}, dir, recipient, identity, []byte("empty replica"))
	if err != nil {
		log.Fatal(err)
	}
	// Each acknowledged edit is one frame, durable once Append returns.
	for _, edit := range []string{"edit 1", "edit 2"} {
		if err := v.Append([]byte(edit)); err != nil {
			log.Fatal(err)
		}
	}
	v.Close()

	v, state, frames, err := vault.Open(vault.OSFS{}, dir, recipient, identity, vault.Options{
		Warn: func(msg string) { fmt.Fprintln(os.Stderr, msg) },
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("state %q, %d frames\n", state, len(frames))
	for _, f := range frames {
		fmt.Printf("replay %q\n", f)
	}

	// Fold the journal into a new snapshot.
	if err := v.Compact([]byte("replica with edits 1 and 2")); err != nil {
		log.Fatal(err)
	}
	v.Close()

	v, state, frames, err = vault.Open(vault.OSFS{}, dir, recipient, identity, vault.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	fmt.Printf("state %q, %d frames\n", state, len(frames))
	// Output:
	// state "empty replica", 2 frames
	// replay "edit 1"
	// replay "edit 2"
	// state "replica with edits 1 and 2", 0 frames
}
