package syncproto

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/stretchr/testify/require"
)

// Known-answer vectors, one case per file in testdata, in the style of the
// C2SP CCTV age vectors:
//
//	format: batch
//	expect: success
//	payload: <sha256 of the plaintext released to the caller, hex>
//	signer: fpub1...
//	epoch key: <hex>
//	comment: ...
//
//	<one message per line, hex>
//
// format says how the messages are read (formats below); expect names the
// exact outcome from a closed set (outcomes below), and the error must match
// that outcome's sentinel and no other's; payload is present exactly for
// the successes of formats that release plaintext. Unknown header keys or
// values fail the test. A success also re-encodes every message it decoded
// and requires the same bytes.
//
// The vectors pin version 1 of the wire format: a vector changes only with
// a version bump. TestWriteVectors holds the generator;
// FRISTED_WRITE_VECTORS=1 go test ./syncproto -run TestWriteVectors writes
// the files, and without the variable it checks that the committed corpus
// is what the generator makes (whole files, except for the age ciphertexts
// of the age-based formats, whose bytes depend on how age consumes
// randomness: for those, the header).

//go:embed testdata
var testdata embed.FS

// outcomes is the closed set of expect values and the sentinel each names.
// "success" is the absence of an error.
var outcomes = map[string][]error{
	"success":                 nil,
	"unknown version":         {ErrVersion, fcrypto.ErrSealVersion},
	"wrong type":              {ErrType},
	"truncated":               {ErrTruncated, fcrypto.ErrSealTruncated},
	"trailing bytes":          {ErrTrailing},
	"malformed":               {ErrMalformed},
	"too large":               {ErrTooLarge},
	"duplicate delta":         {ErrDuplicateDelta},
	"bad signature":           {fcrypto.ErrBadSignature},
	"batch hash mismatch":     {ErrBatchHash},
	"batch mismatch":          {ErrBatchMismatch},
	"auth failure":            {fcrypto.ErrSealAuth},
	"chain broken":            {ErrChainBroken},
	"fork":                    {ErrFork},
	"rollback":                {ErrRollback},
	"unauthorized":            {ErrUnauthorized},
	"revoked signer":          {ErrRevokedSigner},
	"unknown signer":          {ErrUnknownSigner},
	"invalid":                 {ErrInvalid},
	"last coordinator":        {ErrLastCoord},
	"fingerprint mismatch":    {ErrFingerprint},
	"epoch superseded":        {ErrEpochSuperseded},
	"not assigned":            {ErrNotAssigned},
	"unknown epoch":           {ErrUnknownEpoch},
	"device revoked":          {ErrDeviceRevoked},
	"key commitment mismatch": {fcrypto.ErrKeyCommitment},
	"no identity match":       {fcrypto.ErrNoIdentityMatch},
	"enrolment mismatch":      {fcrypto.ErrEnrolmentMismatch},
}

// outcomeOf names the outcome err matches. It fails the test if err matches
// none, or more than one: every failure must be exactly one of the set.
func outcomeOf(tb testing.TB, err error) string {
	tb.Helper()
	if err == nil {
		return "success"
	}
	var got []string
	for name, targets := range outcomes {
		for _, target := range targets {
			if errors.Is(err, target) {
				got = append(got, name)
				break
			}
		}
	}
	sort.Strings(got)
	if len(got) != 1 {
		tb.Fatalf("error %q matches outcomes %q, want exactly one", err, got)
	}
	return got[0]
}

// headerKeys is the closed set of header keys, in the order files list them.
var headerKeys = []string{
	"format", "expect", "payload",
	"org", "head", "at", "void",
	"signer", "relay", "epoch key", "tenant", "stream", "epoch", "delta id",
	"identity", "commitment", "code",
	"comment",
}

type formatSpec struct {
	keys     []string // header keys the format uses (all required)
	optional []string // header keys it may use
	// releases says whether a success gives plaintext to the caller; its
	// hash is then the payload header.
	releases bool
	// ageBased formats hold age ciphertext, which the generator cannot
	// reproduce byte for byte across age and toolchain versions.
	ageBased bool
	// lines is the number of messages, or 0 for one or more.
	lines int
	// run reads the vector and returns what it released and its error. On
	// success it checks that what it decoded re-encodes to the same bytes.
	run func(t *testing.T, v *vector) ([]byte, error)
}

var formats = map[string]formatSpec{
	"delta":            {lines: 1, run: runDelta},
	"sealed delta":     {lines: 1, keys: []string{"epoch key", "tenant", "stream", "epoch", "delta id"}, releases: true, run: runSealedDelta},
	"batch":            {lines: 1, keys: []string{"signer", "epoch key"}, releases: true, run: runBatch},
	"receipt":          {lines: 1, keys: []string{"relay"}, run: runReceipt},
	"statement":        {lines: 1, keys: []string{"signer"}, run: runStatement},
	"chain":            {keys: []string{"org"}, optional: []string{"head", "at", "void"}, run: runChain},
	"batch acceptance": {keys: []string{"org"}, run: runAcceptance},
	"enrolment":        {lines: 1, keys: []string{"code"}, ageBased: true, run: runEnrolment},
	"enrolment name":   {lines: 1, releases: true, run: runEnrolName},
	"wrapped key":      {lines: 1, keys: []string{"identity", "commitment"}, releases: true, ageBased: true, run: runWrappedKey},
	"snapshot":         {lines: 1, keys: []string{"signer", "epoch key"}, releases: true, run: runSnapshot},
	"auth proof":       {lines: 1, keys: []string{"signer"}, run: runAuthProof},
	"snapshot content": {lines: 1, run: runSnapshotContent},
}

type vector struct {
	name     string
	format   string
	expect   string
	payload  *[32]byte
	h        map[string]string // the other header values
	comments []string
	msgs     [][]byte
}

func (v *vector) header(tb testing.TB, key string) string {
	tb.Helper()
	s, ok := v.h[key]
	if !ok {
		tb.Fatalf("vector %s: missing header %q", v.name, key)
	}
	return s
}

func (v *vector) publicKey(tb testing.TB, key string) fcrypto.PublicKey {
	tb.Helper()
	p, err := fcrypto.ParsePublicKey(v.header(tb, key))
	require.NoError(tb, err, "vector %s: header %q", v.name, key)
	return p
}

func (v *vector) epochKey(tb testing.TB) *fcrypto.Key {
	tb.Helper()
	b, err := hex.DecodeString(v.header(tb, "epoch key"))
	require.NoError(tb, err, "vector %s: epoch key", v.name)
	k, err := fcrypto.KeyFromBytes(b)
	require.NoError(tb, err, "vector %s: epoch key", v.name)
	return k
}

// parseVector reads one file, failing on anything outside the format.
func parseVector(tb testing.TB, name string, file []byte) *vector {
	tb.Helper()
	v := &vector{name: name, h: map[string]string{}}
	rest := file
	for {
		line, r, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			tb.Fatalf("vector %s: no blank line before the messages", name)
		}
		rest = r
		if len(line) == 0 {
			break
		}
		key, value, ok := strings.Cut(string(line), ": ")
		if !ok || !slices.Contains(headerKeys, key) {
			tb.Fatalf("vector %s: unknown header line %q", name, line)
		}
		if _, dup := v.h[key]; dup && key != "comment" {
			tb.Fatalf("vector %s: header %q twice", name, key)
		}
		switch key {
		case "format":
			if _, ok := formats[value]; !ok {
				tb.Fatalf("vector %s: unknown format %q", name, value)
			}
			v.format = value
		case "expect":
			if _, ok := outcomes[value]; !ok {
				tb.Fatalf("vector %s: unknown expect value %q", name, value)
			}
			v.expect = value
		case "payload":
			b, err := hex.DecodeString(value)
			if err != nil || len(b) != 32 {
				tb.Fatalf("vector %s: payload is not a sha256 in hex: %q", name, value)
			}
			v.payload = (*[32]byte)(b)
		case "comment":
			v.comments = append(v.comments, value)
		}
		v.h[key] = value
	}
	if v.format == "" || v.expect == "" {
		tb.Fatalf("vector %s: format and expect are required", name)
	}
	spec := formats[v.format]
	for key := range v.h {
		switch key {
		case "format", "expect", "payload", "comment":
			continue
		}
		if !slices.Contains(spec.keys, key) && !slices.Contains(spec.optional, key) {
			tb.Fatalf("vector %s: header %q is not used by format %q", name, key, v.format)
		}
	}
	for _, key := range spec.keys {
		v.header(tb, key)
	}
	if want := spec.releases && v.expect == "success"; want != (v.payload != nil) {
		tb.Fatalf("vector %s: payload header present %v, want %v", name, v.payload != nil, want)
	}
	if len(rest) == 0 || rest[len(rest)-1] != '\n' {
		tb.Fatalf("vector %s: messages must end with a newline", name)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(rest), "\n"), "\n") {
		b, err := hex.DecodeString(line)
		if err != nil {
			tb.Fatalf("vector %s: message is not hex: %v", name, err)
		}
		v.msgs = append(v.msgs, b)
	}
	if spec.lines != 0 && len(v.msgs) != spec.lines {
		tb.Fatalf("vector %s: %d messages, want %d", name, len(v.msgs), spec.lines)
	}
	return v
}

// loadVectors reads every committed vector; it fails if there are none.
func loadVectors(tb testing.TB) []*vector {
	tb.Helper()
	entries, err := fs.ReadDir(testdata, "testdata")
	require.NoError(tb, err)
	var vs []*vector
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := fs.ReadFile(testdata, "testdata/"+e.Name())
		require.NoError(tb, err)
		vs = append(vs, parseVector(tb, e.Name(), b))
	}
	if len(vs) == 0 {
		tb.Fatal("no vectors in testdata")
	}
	return vs
}

func TestVectors(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range loadVectors(t) {
		seen[v.format] = true
		t.Run(v.name, func(t *testing.T) {
			for _, c := range v.comments {
				t.Log(c)
			}
			released, err := formats[v.format].run(t, v)
			if got := outcomeOf(t, err); got != v.expect {
				t.Fatalf("got %s (%v), want %s", got, err, v.expect)
			}
			if v.payload != nil {
				if got := sha256.Sum256(released); got != *v.payload {
					t.Errorf("got payload %x, want %x", got, *v.payload)
				}
			} else if released != nil {
				t.Errorf("released %d bytes on %s, want nothing", len(released), v.expect)
			}
		})
	}
	for f := range formats {
		if !seen[f] {
			t.Errorf("no vector of format %q", f)
		}
	}
}

// TestVectorOutcomesCovered keeps the closed set honest: every outcome is
// the expectation of some vector.
func TestVectorOutcomesCovered(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range loadVectors(t) {
		seen[v.expect] = true
	}
	for name := range outcomes {
		if !seen[name] {
			t.Errorf("outcome %q has no vector", name)
		}
	}
}

func runDelta(t *testing.T, v *vector) ([]byte, error) {
	d, err := UnmarshalDelta(v.msgs[0])
	if err != nil {
		requireNil(t, d)
		return nil, err
	}
	raw, err := d.Marshal()
	require.NoError(t, err)
	require.Equal(t, v.msgs[0], raw, "re-encoded delta")
	return nil, nil
}

// openSealedDelta opens a sealed delta as OpenBatch does: the AD binds it
// to tenant, stream, epoch and id, and the delta inside must name them.
func openSealedDelta(key *fcrypto.Key, tenant TenantID, s StreamID, e Epoch, id DeltaID, sealed []byte) ([]byte, error) {
	plain, err := fcrypto.Open(key, DeltaAD(tenant, s, e, id), sealed)
	if err != nil {
		return nil, err
	}
	d, err := UnmarshalDelta(plain)
	if err != nil {
		return nil, err
	}
	if d.Tenant != tenant || d.Stream != s || d.Epoch != e || d.ID != id {
		return nil, ErrBatchMismatch
	}
	return plain, nil
}

func runSealedDelta(t *testing.T, v *vector) ([]byte, error) {
	tenant, err := ParseTenantID(v.header(t, "tenant"))
	require.NoError(t, err)
	s, err := ParseStreamID(v.header(t, "stream"))
	require.NoError(t, err)
	e, err := strconv.ParseUint(v.header(t, "epoch"), 10, 32)
	require.NoError(t, err)
	id, err := ParseDeltaID(v.header(t, "delta id"))
	require.NoError(t, err)
	plain, err := openSealedDelta(v.epochKey(t), tenant, s, Epoch(e), id, v.msgs[0])
	if err != nil {
		return nil, err
	}
	d, err := UnmarshalDelta(plain)
	require.NoError(t, err)
	raw, err := d.Marshal()
	require.NoError(t, err)
	require.Equal(t, plain, raw, "re-encoded delta")
	return plain, nil
}

// runBatch releases the opened deltas' encodings, concatenated in order.
func runBatch(t *testing.T, v *vector) ([]byte, error) {
	b, err := UnmarshalBatch(v.msgs[0])
	if err != nil {
		requireNil(t, b)
		return nil, err
	}
	ds, err := OpenBatch(b, v.epochKey(t), v.publicKey(t, "signer"))
	if err != nil {
		requireNil(t, ds)
		return nil, err
	}
	require.Equal(t, v.msgs[0], mustMarshalBatch(t, b), "re-encoded batch")
	var out []byte
	for _, d := range ds {
		raw, err := d.Marshal()
		require.NoError(t, err)
		out = append(out, raw...)
	}
	return out, nil
}

func runReceipt(t *testing.T, v *vector) ([]byte, error) {
	r, err := UnmarshalReceipt(v.msgs[0])
	if err != nil {
		requireNil(t, r)
		return nil, err
	}
	if err := r.Verify(v.publicKey(t, "relay")); err != nil {
		return nil, err
	}
	require.Equal(t, v.msgs[0], r.Marshal(), "re-encoded receipt")
	return nil, nil
}

func runStatement(t *testing.T, v *vector) ([]byte, error) {
	s, err := UnmarshalStatement(v.msgs[0])
	if err != nil {
		requireNil(t, s)
		return nil, err
	}
	if err := s.VerifySig(v.publicKey(t, "signer")); err != nil {
		return nil, err
	}
	require.Equal(t, v.msgs[0], mustMarshal(t, s), "re-encoded statement")
	return nil, nil
}

func parseHead(tb testing.TB, s string) Head {
	tb.Helper()
	pos, hash, ok := strings.Cut(s, " ")
	require.True(tb, ok, "head %q: want \"POS HASH\"", s)
	p, err := strconv.ParseUint(pos, 10, 64)
	require.NoError(tb, err)
	h, err := ParseHash(hash)
	require.NoError(tb, err)
	return Head{Pos: ChainPos(p), Hash: h}
}

func formatHead(h Head) string { return strconv.FormatUint(uint64(h.Pos), 10) + " " + h.Hash.String() }

func parsePositions(tb testing.TB, s string) []ChainPos {
	tb.Helper()
	var out []ChainPos
	for _, f := range strings.Fields(s) {
		p, err := strconv.ParseUint(f, 10, 64)
		require.NoError(tb, err)
		out = append(out, ChainPos(p))
	}
	return out
}

func voidPositions(c *Chain) []ChainPos {
	var out []ChainPos
	for i := 0; i < c.Len(); i++ {
		if c.IsVoid(ChainPos(i)) {
			out = append(out, ChainPos(i))
		}
	}
	return out
}

// runChain appends the messages in order, then checks a remembered head.
// "at" names the message that fails; "void" the positions a success voids.
func runChain(t *testing.T, v *vector) ([]byte, error) {
	org, err := fcrypto.ParseFingerprint(v.header(t, "org"))
	require.NoError(t, err)
	c := NewChain(org)
	at, hasAt := v.h["at"]
	for i, m := range v.msgs {
		before, _ := c.Head()
		s, err := c.Append(m)
		if err != nil {
			requireNil(t, s)
			after, _ := c.Head()
			require.Equal(t, before, after, "a refused statement changed the head")
			require.True(t, hasAt, "statement %d refused, but the vector names no \"at\"", i)
			require.Equal(t, at, strconv.Itoa(i), "refused statement")
			return nil, err
		}
	}
	require.False(t, hasAt, "every statement accepted, but the vector names \"at: %s\"", at)
	if h, ok := v.h["head"]; ok {
		if err := c.CheckHead(parseHead(t, h)); err != nil {
			return nil, err
		}
	}
	require.Equal(t, parsePositions(t, v.h["void"]), voidPositions(c), "void positions")
	requireReverifies(t, c)
	return nil, nil
}

// requireReverifies rebuilds c from its marshalled statements and requires
// the same head, void set and state.
func requireReverifies(tb testing.TB, c *Chain) {
	tb.Helper()
	c2 := NewChain(c.Org())
	for i := 0; i < c.Len(); i++ {
		raw, err := c.Statement(ChainPos(i)).Marshal()
		require.NoError(tb, err)
		_, err = c2.Append(raw)
		require.NoError(tb, err, "statement %d does not re-verify", i)
	}
	h1, ok1 := c.Head()
	h2, ok2 := c2.Head()
	require.Equal(tb, ok1, ok2)
	require.Equal(tb, h1, h2, "head after re-verifying")
	require.Equal(tb, voidPositions(c), voidPositions(c2), "void positions after re-verifying")
	require.Equal(tb, c.State(), c2.State(), "state after re-verifying")
}

// runAcceptance verifies the chain (all but the last message), then decides
// on the batch (the last) as the relay does: access from the chain, the
// head it was written under, the author's signature.
func runAcceptance(t *testing.T, v *vector) ([]byte, error) {
	org, err := fcrypto.ParseFingerprint(v.header(t, "org"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(v.msgs), 2)
	c := NewChain(org)
	for i, m := range v.msgs[:len(v.msgs)-1] {
		_, err := c.Append(m)
		require.NoError(t, err, "chain statement %d", i)
	}
	b, err := UnmarshalBatch(v.msgs[len(v.msgs)-1])
	require.NoError(t, err)
	return nil, acceptBatch(c, b)
}

func acceptBatch(c *Chain, b *Batch) error {
	st := c.State()
	if b.Tenant != st.Tenant {
		return ErrNotAssigned // another tenant's stream: not this device's
	}
	if err := st.CheckBatch(b.Author, b.Stream, b.Epoch, b.ChainHead.Pos); err != nil {
		return err
	}
	if err := c.CheckHead(b.ChainHead); err != nil {
		return err
	}
	return b.Verify(st.Devices[b.Author].SignPub)
}

// runEnrolment checks a request against the code the coordinator typed, as
// device approve does: same request id, keys matching the commitment, and
// the self-signature.
func runEnrolment(t *testing.T, v *vector) ([]byte, error) {
	r, err := UnmarshalEnrolment(v.msgs[0])
	if err != nil {
		requireNil(t, r)
		return nil, err
	}
	code := v.header(t, "code")
	rid, _, err := fcrypto.ParseEnrolmentCode(code)
	require.NoError(t, err)
	if !bytes.Equal(rid, r.Request[:]) {
		return nil, fcrypto.ErrEnrolmentMismatch
	}
	if err := fcrypto.CheckEnrolment(code, r.SignPub, r.Box); err != nil {
		return nil, err
	}
	if err := r.Verify(); err != nil {
		return nil, err
	}
	require.Equal(t, v.msgs[0], r.Marshal(), "re-encoded enrolment")
	require.Equal(t, code, r.Code(), "code")
	return nil, nil
}

// runEnrolName releases the device name an enrolment sealed.
func runEnrolName(t *testing.T, v *vector) ([]byte, error) {
	name, err := UnmarshalEnrolName(v.msgs[0])
	if err != nil {
		require.Empty(t, name, "returned a name with an error")
		return nil, err
	}
	re, err := MarshalEnrolName(name)
	require.NoError(t, err)
	require.Equal(t, v.msgs[0], re, "re-encoded enrolment name")
	return []byte(name), nil
}

// runWrappedKey releases the epoch key's bytes.
func runWrappedKey(t *testing.T, v *vector) ([]byte, error) {
	w, err := UnmarshalWrappedKey(v.msgs[0])
	if err != nil {
		requireNil(t, w)
		return nil, err
	}
	id, err := fcrypto.ParseBoxIdentity(v.header(t, "identity"))
	require.NoError(t, err)
	c, err := hex.DecodeString(v.header(t, "commitment"))
	require.NoError(t, err)
	require.Len(t, c, 32)
	k, err := fcrypto.UnwrapKey(w.Wrapped, EpochKeyContext(w.Tenant, w.Stream, w.Epoch), [32]byte(c), id.Identity())
	if err != nil {
		requireNil(t, k)
		return nil, err
	}
	require.Equal(t, v.msgs[0], w.Marshal(), "re-encoded wrapped key")
	return k.Bytes(), nil
}

// runSnapshot releases the snapshot's opened content.
func runSnapshot(t *testing.T, v *vector) ([]byte, error) {
	s, err := UnmarshalSnapshot(v.msgs[0])
	if err != nil {
		requireNil(t, s)
		return nil, err
	}
	if err := s.Verify(v.publicKey(t, "signer")); err != nil {
		return nil, err
	}
	plain, err := OpenSnapshotContent(v.epochKey(t), s.Tenant, s.Stream, s.Epoch, s.Seq, s.Content)
	if err != nil {
		return nil, err
	}
	require.Equal(t, v.msgs[0], s.Marshal(), "re-encoded snapshot")
	return plain, nil
}

// runSnapshotContent decodes a snapshot's opened content; a success must
// re-encode to the same bytes.
func runSnapshotContent(t *testing.T, v *vector) ([]byte, error) {
	c, err := UnmarshalSnapshotContent(v.msgs[0])
	if err != nil {
		requireNil(t, c)
		return nil, err
	}
	re, err := c.Marshal()
	require.NoError(t, err)
	require.Equal(t, v.msgs[0], re, "re-encoded snapshot content")
	return nil, nil
}

func runAuthProof(t *testing.T, v *vector) ([]byte, error) {
	a, err := UnmarshalAuthProof(v.msgs[0])
	if err != nil {
		requireNil(t, a)
		return nil, err
	}
	if err := a.Verify(v.publicKey(t, "signer")); err != nil {
		return nil, err
	}
	require.Equal(t, v.msgs[0], a.Marshal(), "re-encoded auth proof")
	return nil, nil
}

// requireNil fails unless x is a nil pointer or slice: a decoder that fails
// returns nothing.
func requireNil[T any](tb testing.TB, x T) {
	tb.Helper()
	require.Nil(tb, x, "returned a value with an error")
}
