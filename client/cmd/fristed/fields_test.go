package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseFieldsSources: values from stdin and from files, the size cap
// on both, and sealed fields refused inline for the kind they are sealed
// in only (a child's name is sealed, a contact's is not).
func TestParseFieldsSources(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("x", maxFieldBytes+1)
	if err := os.WriteFile(filepath.Join(dir, "big"), []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "addr"), []byte("Fjellveien 17B\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind  string
		args  []string
		stdin string
		want  string // the value of the first field, or
		err   string // a part of the error
	}{
		{kind: "resident", args: []string{"secret_address=@" + filepath.Join(dir, "addr")}, want: "Fjellveien 17B"},
		{kind: "resident", args: []string{"secret_address=@-"}, stdin: "Fjellveien 17B\n", want: "Fjellveien 17B"},
		{kind: "resident", args: []string{"language=Dari"}, want: "Dari"},
		{kind: "resident", args: []string{"secret_address=Fjellveien"}, err: "secret_address is sealed"},
		{kind: "resident", args: []string{"aliases="}, want: ""}, // clearing reveals nothing
		{kind: "resident", args: []string{"aliases=@"}, err: "aliases=@: name a file after @, or give @- to read stdin"},
		{kind: "resident", args: []string{"secret_address=@-"}, stdin: big, err: "read secret_address from stdin: longer than 1048576 bytes"},
		{kind: "resident", args: []string{"secret_address=@" + filepath.Join(dir, "big")}, err: "longer than 1048576 bytes"},
		{kind: "child", args: []string{"name=Ali"}, err: "name is sealed"},
		{kind: "child", args: []string{"name=@-"}, stdin: "Ali\n", want: "Ali"},
		{kind: "contact", args: []string{"name=Kari"}, want: "Kari"},
		{kind: "nosuchkind", args: []string{"name=Kari"}, want: "Kari"}, // refused later by the library
	} {
		e := &env{stdin: strings.NewReader(tc.stdin), stderr: &bytes.Buffer{}}
		got, err := e.parseFields(tc.kind, tc.args)
		k, _, _ := strings.Cut(tc.args[0], "=")
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s %q: got error %v, want one containing %q", tc.kind, tc.args, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%s %q: got error %v, want %q", tc.kind, tc.args, err, tc.want)
		case tc.err == "" && got[k] != tc.want:
			t.Errorf("%s %q: got %q, want %q", tc.kind, tc.args, got[k], tc.want)
		}
	}
}
