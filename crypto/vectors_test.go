package crypto

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/stretchr/testify/require"
)

// Known-answer vectors, one case per file in testdata, in the style of the
// C2SP CCTV age vectors:
//
//	kind: sealed box
//	expect: success
//	payload: <sha256 of the plaintext released to the caller, hex>
//	encoding: hex
//	key: ...
//	comment: ...
//
//	<the input: hex or base64 lines, or text>
//
// expect names the exact outcome from a closed set (outcomes below);
// payload is present exactly for the successes of kinds that release
// plaintext. Unknown header keys or values fail the test. The corpus is
// embedded, so a missing testdata directory fails to compile and an empty
// one fails TestVectors.
//
// TestWriteVectors holds the generator: FRISTED_WRITE_VECTORS=1 go test
// ./crypto -run TestWriteVectors rewrites the files. Without the variable it
// checks that the committed corpus is what the generator makes (the whole
// file for deterministic kinds, the header for age-based ones, whose bytes
// depend on how age and the Go toolchain consume randomness).

//go:embed testdata/*
var testdata embed.FS

// outcomes is the closed set of expect values, each with the errors it
// accepts.
var outcomes = map[string]func(error) bool{
	"success":                   func(err error) bool { return err == nil },
	"auth failure":              is(ErrSealAuth),
	"truncated":                 is(ErrSealTruncated),
	"malformed padding":         is(ErrSealPadding),
	"unknown version":           func(err error) bool { return is(ErrSealVersion)(err) || is(ErrKeyFileVersion)(err) },
	"bad signature":             is(ErrBadSignature),
	"unknown label":             is(ErrUnknownLabel),
	"key commitment mismatch":   is(ErrKeyCommitment),
	"no identity match":         is(ErrNoIdentityMatch),
	"wrong passphrase":          is(ErrWrongPassphrase),
	"wrong kind":                is(ErrKeyFileKind),
	"malformed key file":        is(ErrKeyFileFormat),
	"enrolment mismatch":        is(ErrEnrolmentMismatch),
	"malformed envelope":        is(ErrEnvelopeMalformed),
	"inner commitment mismatch": is(ErrInnerMismatch),
	// A failure with no sentinel: a string that does not parse, or an age
	// header or payload that does not decrypt.
	"malformed": isUnclassified,
}

func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

// headerKeys is the closed set of header keys, in the order files list them.
var headerKeys = []string{
	"kind", "expect", "payload", "encoding",
	"key", "ad", "public key", "seed", "label", "message",
	"identity", "police identity", "context", "commitment",
	"passphrase", "want kind", "recipient", "short code", "root", "check code",
	"comment",
}

type kindSpec struct {
	encoding string   // of the payload: hex, base64 or text
	keys     []string // header keys the kind uses; the runner says which are required
	// releases says whether a success gives plaintext to the caller, whose
	// hash the payload header then carries.
	releases bool
	// deterministic says whether the generator reproduces the file byte for
	// byte.
	deterministic bool
	// run decodes the vector's input and returns what the API released and
	// its error. It makes any further success checks itself.
	run func(t *testing.T, v *vector) ([]byte, error)
}

var kinds = map[string]kindSpec{
	"sealed box":      {encoding: "hex", keys: []string{"key", "ad"}, releases: true, deterministic: true, run: runSealedBox},
	"padme":           {encoding: "text", deterministic: true, run: runPadme},
	"signature":       {encoding: "hex", keys: []string{"public key", "seed", "label", "message"}, deterministic: true, run: runSignature},
	"public key":      {encoding: "text", deterministic: true, run: runPublicKey},
	"key wrap":        {encoding: "base64", keys: []string{"identity", "context", "commitment"}, releases: true, run: runKeyWrap},
	"sealed to":       {encoding: "base64", keys: []string{"identity"}, releases: true, run: runSealedTo},
	"key file":        {encoding: "base64", keys: []string{"passphrase", "want kind"}, releases: true, run: runKeyFile},
	"enrolment code":  {encoding: "text", keys: []string{"public key", "recipient", "short code"}, deterministic: true, run: runEnrolment},
	"org fingerprint": {encoding: "text", keys: []string{"root", "check code"}, deterministic: true, run: runFingerprint},
	"envelope":        {encoding: "base64", keys: []string{"identity", "police identity", "commitment"}, releases: true, run: runEnvelope},
	"envelope inner":  {encoding: "base64", keys: []string{"police identity", "commitment"}, releases: true, run: runEnvelopeInner},
}

type vector struct {
	name     string
	kind     string
	expect   string
	payload  *[32]byte
	h        map[string]string // the other header values
	comments []string
	input    []byte
}

func (v *vector) header(t testing.TB, key string) string {
	s, ok := v.h[key]
	if !ok {
		t.Fatalf("vector %s: missing header %q", v.name, key)
	}
	return s
}

func (v *vector) hexHeader(t testing.TB, key string) []byte {
	b, err := hex.DecodeString(v.header(t, key))
	require.NoError(t, err, "vector %s: header %q", v.name, key)
	return b
}

func (v *vector) hash32Header(t testing.TB, key string) [32]byte {
	b := v.hexHeader(t, key)
	require.Len(t, b, 32, "vector %s: header %q", v.name, key)
	return [32]byte(b)
}

func parseVector(t testing.TB, name string, data []byte) *vector {
	v := &vector{name: name, h: map[string]string{}}
	rest := data
	for {
		line, r, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			t.Fatalf("vector %s: no blank line before the input", name)
		}
		rest = r
		if len(line) == 0 {
			break
		}
		key, value, ok := strings.Cut(string(line), ":")
		if !ok {
			t.Fatalf("vector %s: header line %q is not key: value", name, line)
		}
		value = strings.TrimPrefix(value, " ")
		switch key {
		case "kind":
			if _, ok := kinds[value]; !ok {
				t.Fatalf("vector %s: unknown kind %q", name, value)
			}
			v.kind = value
		case "expect":
			if _, ok := outcomes[value]; !ok {
				t.Fatalf("vector %s: unknown expect value %q", name, value)
			}
			v.expect = value
		case "payload":
			b, err := hex.DecodeString(value)
			if err != nil || len(b) != 32 {
				t.Fatalf("vector %s: payload %q is not a SHA-256 hash", name, value)
			}
			v.payload = (*[32]byte)(b)
		case "comment":
			v.comments = append(v.comments, value)
		default:
			if !slices.Contains(headerKeys, key) {
				t.Fatalf("vector %s: unknown header key %q", name, key)
			}
			if _, dup := v.h[key]; dup {
				t.Fatalf("vector %s: header key %q repeated", name, key)
			}
			v.h[key] = value
		}
	}
	if v.kind == "" || v.expect == "" {
		t.Fatalf("vector %s: kind and expect are required", name)
	}
	spec := kinds[v.kind]
	for key := range v.h {
		if key != "encoding" && !slices.Contains(spec.keys, key) {
			t.Fatalf("vector %s: header key %q is not used by kind %q", name, key, v.kind)
		}
	}
	if got := v.h["encoding"]; got != spec.encoding {
		t.Fatalf("vector %s: got encoding %q, want %q for kind %q", name, got, spec.encoding, v.kind)
	}
	delete(v.h, "encoding")
	if wantPayload := v.expect == "success" && spec.releases; (v.payload != nil) != wantPayload {
		t.Fatalf("vector %s: got payload present %v, want %v (expect %s, kind %s)", name, v.payload != nil, wantPayload, v.expect, v.kind)
	}
	var err error
	switch spec.encoding {
	case "hex":
		v.input, err = hex.DecodeString(strings.Join(strings.Fields(string(rest)), ""))
	case "base64":
		v.input, err = base64.StdEncoding.Strict().DecodeString(strings.Join(strings.Fields(string(rest)), ""))
	case "text":
		text, ok := bytes.CutSuffix(rest, []byte("\n"))
		if !ok {
			err = errors.New("text input must end in a newline")
		}
		v.input = text
	}
	if err != nil {
		t.Fatalf("vector %s: input: %v", name, err)
	}
	return v
}

// marshal writes v in the file format; parseVector(marshal(v)) == v.
func (v *vector) marshal() []byte {
	var b bytes.Buffer
	spec := kinds[v.kind]
	fmt.Fprintf(&b, "kind: %s\nexpect: %s\n", v.kind, v.expect)
	if v.payload != nil {
		fmt.Fprintf(&b, "payload: %x\n", v.payload[:])
	}
	fmt.Fprintf(&b, "encoding: %s\n", spec.encoding)
	for _, key := range headerKeys {
		if value, ok := v.h[key]; ok {
			fmt.Fprintf(&b, "%s: %s\n", key, value)
		}
	}
	for _, c := range v.comments {
		fmt.Fprintf(&b, "comment: %s\n", c)
	}
	b.WriteString("\n")
	switch spec.encoding {
	case "hex":
		writeLines(&b, hex.EncodeToString(v.input), 64)
	case "base64":
		writeLines(&b, base64.StdEncoding.EncodeToString(v.input), 64)
	case "text":
		b.Write(v.input)
		b.WriteString("\n")
	}
	return b.Bytes()
}

func writeLines(b *bytes.Buffer, s string, width int) {
	for len(s) > width {
		b.WriteString(s[:width] + "\n")
		s = s[width:]
	}
	if s != "" {
		b.WriteString(s + "\n")
	}
}

// loadVectors reads every vector in the embedded corpus. Directories (such
// as the fuzzer's testdata/fuzz) are not vectors.
func loadVectors(t testing.TB) []*vector {
	entries, err := fs.ReadDir(testdata, "testdata")
	require.NoError(t, err)
	var vs []*vector
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := fs.ReadFile(testdata, "testdata/"+e.Name())
		require.NoError(t, err)
		vs = append(vs, parseVector(t, e.Name(), data))
	}
	if len(vs) == 0 {
		t.Fatal("no test vectors in testdata")
	}
	return vs
}

func vectorsOfKind(t testing.TB, kind string) []*vector {
	var out []*vector
	for _, v := range loadVectors(t) {
		if v.kind == kind {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %q vectors in testdata", kind)
	}
	return out
}

func TestVectors(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range loadVectors(t) {
		seen[v.kind] = true
		t.Run(v.name, func(t *testing.T) {
			for _, c := range v.comments {
				t.Log(c)
			}
			released, err := kinds[v.kind].run(t, v)
			if v.expect == "success" {
				if err != nil {
					t.Fatalf("got error %v, want success", err)
				}
				if v.payload != nil {
					if got := sha256.Sum256(released); got != *v.payload {
						t.Errorf("got payload hash %x, want %x", got, *v.payload)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("got success, want %s", v.expect)
			}
			if released != nil {
				t.Errorf("got %d bytes of plaintext with error %v, want none", len(released), err)
			}
			if !outcomes[v.expect](err) {
				t.Errorf("got error %q, want %s", err, v.expect)
			}
		})
	}
	for kind := range kinds {
		if !seen[kind] {
			t.Errorf("no %q vectors in testdata", kind)
		}
	}
}

// TestVectorsEnvelopeFixedSize checks that every outer layer that opens in
// the corpus has one size, whatever the card and the police key.
func TestVectorsEnvelopeFixedSize(t *testing.T) {
	sizes := map[int][]string{}
	for _, v := range vectorsOfKind(t, "envelope") {
		if v.expect == "success" {
			sizes[len(v.input)] = append(sizes[len(v.input)], v.name)
		}
	}
	if len(sizes) != 1 {
		t.Errorf("got outer layers of %d sizes (%v), want one", len(sizes), sizes)
	}
}

func runSealedBox(t *testing.T, v *vector) ([]byte, error) {
	k, err := KeyFromBytes(v.hexHeader(t, "key"))
	require.NoError(t, err)
	ad := v.hexHeader(t, "ad")
	out, err := Open(k, ad, v.input)
	if err == nil {
		// Sealing is deterministic given the nonce.
		again, err := sealWithNonce(k, v.input[1:25], ad, out)
		require.NoError(t, err)
		if !bytes.Equal(again, v.input) {
			t.Errorf("re-sealing the plaintext under the same nonce gives other bytes")
		}
	}
	return out, err
}

// runPadme checks a table of lines "length Padme(length) SealedSize(length)".
func runPadme(t *testing.T, v *vector) ([]byte, error) {
	lines := strings.Split(string(v.input), "\n")
	for _, line := range lines {
		f := strings.Fields(line)
		require.Len(t, f, 3, "padme table line %q", line)
		var n [3]uint64
		for i := range f {
			var err error
			n[i], err = strconv.ParseUint(f[i], 10, 64)
			require.NoError(t, err)
		}
		if got := Padme(n[0]); got != n[1] {
			return nil, fmt.Errorf("got Padme(%d) = %d, want %d", n[0], got, n[1])
		}
		if got := SealedSize(int(n[0])); uint64(got) != n[2] {
			return nil, fmt.Errorf("got SealedSize(%d) = %d, want %d", n[0], got, n[2])
		}
	}
	return nil, nil
}

// decodePublicKeyUnchecked decodes an "fpub1" string without
// ParsePublicKey's checks, so a signature vector reaches Verify's own.
func decodePublicKeyUnchecked(t testing.TB, s string) PublicKey {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, publicKeyPrefix))
	require.NoError(t, err)
	require.Len(t, b, PublicKeySize)
	return PublicKey(b)
}

func runSignature(t *testing.T, v *vector) ([]byte, error) {
	pub := decodePublicKeyUnchecked(t, v.header(t, "public key"))
	label := Label(v.header(t, "label"))
	msg := v.hexHeader(t, "message")
	err := pub.Verify(label, msg, v.input)
	if seed, ok := v.h["seed"]; ok {
		// Ed25519 is deterministic: the signer reproduces the signature.
		b, decErr := hex.DecodeString(seed)
		require.NoError(t, decErr)
		k, keyErr := NewSigningKeyFromSeed(b)
		require.NoError(t, keyErr)
		if got := k.Public(); got != pub {
			t.Errorf("got public key %s from the seed, want %s", got, pub)
		}
		sig, signErr := k.Sign(label, msg)
		require.NoError(t, signErr)
		if !bytes.Equal(sig, v.input) {
			t.Errorf("got signature %x, want %x", sig, v.input)
		}
	}
	return nil, err
}

func runPublicKey(t *testing.T, v *vector) ([]byte, error) {
	p, err := ParsePublicKey(string(v.input))
	if err == nil && p.String() != string(v.input) {
		t.Errorf("got %s re-encoded, want %s", p, v.input)
	}
	return nil, err
}

func runKeyWrap(t *testing.T, v *vector) ([]byte, error) {
	id, err := ParseBoxIdentity(v.header(t, "identity"))
	require.NoError(t, err)
	k, err := UnwrapKey(v.input, v.hexHeader(t, "context"), v.hash32Header(t, "commitment"), id.Identity())
	if err != nil {
		if k != nil {
			t.Errorf("got a key with error %v, want none", err)
		}
		return nil, err
	}
	return k.Bytes(), nil
}

func runSealedTo(t *testing.T, v *vector) ([]byte, error) {
	id, err := ParseBoxIdentity(v.header(t, "identity"))
	require.NoError(t, err)
	msg, err := OpenWith(v.input, id)
	if err != nil && msg != nil {
		t.Errorf("got a message with error %v, want none", err)
	}
	return msg, err
}

func parseKind(t testing.TB, s string) KeyKind {
	for _, k := range []KeyKind{KindDevice, KindRoot, KindRelay} {
		if k.String() == s {
			return k
		}
	}
	t.Fatalf("unknown key kind %q", s)
	return 0
}

func runKeyFile(t *testing.T, v *vector) ([]byte, error) {
	kf, err := DecryptKeyFile(v.input, []byte(v.header(t, "passphrase")), parseKind(t, v.header(t, "want kind")))
	if err != nil {
		if kf != nil {
			t.Errorf("got a key file with error %v, want none", err)
		}
		return nil, err
	}
	plain, err := kf.marshalPlain()
	require.NoError(t, err)
	return plain, nil
}

func runEnrolment(t *testing.T, v *vector) ([]byte, error) {
	pub, err := ParsePublicKey(v.header(t, "public key"))
	require.NoError(t, err)
	recipient := v.header(t, "recipient")
	code := string(v.input)
	err = CheckEnrolment(code, pub, recipient)
	if err == nil {
		reqID, _, perr := ParseEnrolmentCode(code)
		require.NoError(t, perr)
		c := EnrolmentCommitment(reqID, pub, recipient)
		if got, want := ShortCode(c), v.header(t, "short code"); got != want {
			t.Errorf("got short code %q, want %q", got, want)
		}
		if got, want := EnrolmentCode(reqID, c), canonicalCode(code); got != want {
			t.Errorf("got code %s, want %s", got, want)
		}
	}
	return nil, err
}

// canonicalCode is how EnrolmentCode prints a code typed as s.
func canonicalCode(s string) string {
	c := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(s)))
	return "E" + groupCode(strings.TrimPrefix(c, "E"), 5)
}

func runFingerprint(t *testing.T, v *vector) ([]byte, error) {
	f, err := ParseFingerprint(string(v.input))
	if err == nil {
		root, perr := ParsePublicKey(v.header(t, "root"))
		require.NoError(t, perr)
		if want := OrgFingerprint(root); !f.Equal(want) {
			t.Errorf("got fingerprint %s, want %s", f, want)
		}
		if got := f.String(); got != strings.TrimSpace(string(v.input)) {
			t.Errorf("got %s re-encoded, want %s", got, v.input)
		}
		if got, want := f.CheckCode(), v.header(t, "check code"); got != want {
			t.Errorf("got check code %s, want %s", got, want)
		}
	}
	return nil, err
}

func runEnvelope(t *testing.T, v *vector) ([]byte, error) {
	release, err := ParseBoxIdentity(v.header(t, "identity"))
	require.NoError(t, err)
	inner, err := OpenOuter(v.input, release)
	if err != nil {
		if inner != nil {
			t.Errorf("got an inner layer with error %v, want none", err)
		}
		return nil, err
	}
	return openInnerVector(t, v, inner)
}

func runEnvelopeInner(t *testing.T, v *vector) ([]byte, error) {
	return openInnerVector(t, v, v.input)
}

func openInnerVector(t *testing.T, v *vector, inner []byte) ([]byte, error) {
	police, err := parsePoliceIdentity(v.header(t, "police identity"))
	require.NoError(t, err)
	if err := CheckInner(inner, v.hash32Header(t, "commitment")); err != nil {
		return nil, err
	}
	card, err := OpenInner(inner, police)
	if err != nil && card != nil {
		t.Errorf("got a card with error %v, want none", err)
		return nil, err
	}
	return card, err
}

func TestVectorFormatRejects(t *testing.T) {
	// parseVector must fail the test for these; run each in a throwaway
	// testing.T substitute that records the failure.
	good := "kind: public key\nexpect: malformed\nencoding: text\n\nfpub1\n"
	tests := []struct{ name, file string }{
		{"unknown key", "kind: public key\nexpect: malformed\nencoding: text\ncolour: red\n\nfpub1\n"},
		{"unknown expect", "kind: public key\nexpect: fine\nencoding: text\n\nfpub1\n"},
		{"unknown kind", "kind: teapot\nexpect: malformed\nencoding: text\n\nfpub1\n"},
		{"key of another kind", "kind: public key\nexpect: malformed\nencoding: text\nkey: 00\n\nfpub1\n"},
		{"payload on failure", "kind: public key\nexpect: malformed\npayload: " + strings.Repeat("00", 32) + "\nencoding: text\n\nfpub1\n"},
		{"wrong encoding", "kind: public key\nexpect: malformed\nencoding: hex\n\n00\n"},
		{"no input", "kind: public key\nexpect: malformed\nencoding: text\n"},
		{"missing payload", "kind: sealed box\nexpect: success\nencoding: hex\nkey: 00\nad: \n\n00\n"},
	}
	parse := func(name, file string) (r *recorder) {
		r = &recorder{}
		defer func() {
			if p := recover(); p != nil && p != r {
				panic(p)
			}
		}()
		parseVector(r, name, []byte(file))
		return r
	}
	if r := parse("good", good); r.failed {
		t.Fatalf("got a well-formed vector rejected: %s", r.msg)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := parse(tt.name, tt.file); !r.failed {
				t.Errorf("got the vector accepted, want it rejected")
			}
		})
	}
}

// recorder is a testing.TB that records a fatal failure and stops the
// function under test, as testing.T.Fatal would.
type recorder struct {
	testing.TB
	failed bool
	msg    string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
	panic(r)
}
func (r *recorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }
func (r *recorder) Errorf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
}
func (r *recorder) FailNow() { r.Fatalf("FailNow") }

// TestWriteVectors is the generator. See the comment at the top.
func TestWriteVectors(t *testing.T) {
	generated := generateVectors(t)
	if os.Getenv("FRISTED_WRITE_VECTORS") == "1" {
		entries, err := os.ReadDir("testdata")
		require.NoError(t, err)
		for _, e := range entries {
			if !e.IsDir() {
				require.NoError(t, os.Remove(filepath.Join("testdata", e.Name())))
			}
		}
		for _, v := range generated {
			require.NoError(t, os.WriteFile(filepath.Join("testdata", v.name), v.marshal(), 0o644))
		}
		t.Logf("wrote %d vectors", len(generated))
		return
	}
	committed := map[string]*vector{}
	for _, v := range loadVectors(t) {
		committed[v.name] = v
	}
	for _, g := range generated {
		c, ok := committed[g.name]
		if !ok {
			t.Errorf("vector %s: generated but not in testdata (run with FRISTED_WRITE_VECTORS=1)", g.name)
			continue
		}
		delete(committed, g.name)
		// Round-trip through the file format, as the corpus was.
		g = parseVector(t, g.name, g.marshal())
		if kinds[g.kind].deterministic {
			if !bytes.Equal(g.marshal(), c.marshal()) {
				t.Errorf("vector %s: got committed file different from the generator's", g.name)
			}
			continue
		}
		gi, ci := g.input, c.input
		g.input, c.input = nil, nil
		if !bytes.Equal(g.marshal(), c.marshal()) {
			t.Errorf("vector %s: got committed header different from the generator's:\n%s\nwant:\n%s", g.name, c.marshal(), g.marshal())
		}
		g.input, c.input = gi, ci
	}
	for name := range committed {
		t.Errorf("vector %s: in testdata but not generated", name)
	}
}

// Read all of an age file, for the generator and fuzz seeds.
func ageDecryptAll(t testing.TB, file []byte, id age.Identity) []byte {
	r, err := age.Decrypt(bytes.NewReader(file), id)
	require.NoError(t, err)
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return b
}
