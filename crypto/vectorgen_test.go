package crypto

import (
	"bytes"
	stdcrypto "crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"testing/cryptotest"

	"filippo.io/age"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

// The generator for testdata. Every key and nonce is derived from a name
// (testSeed); what age draws from crypto/rand comes from a fixed seed, so
// the corpus is reproducible with the same Go toolchain and age version.

type vectorGen struct {
	t  *testing.T
	vs []*vector
}

func generateVectors(t *testing.T) []*vector {
	cryptotest.SetGlobalRandom(t, 1)
	g := &vectorGen{t: t}
	g.sealedBoxes()
	g.padmeTable()
	g.signatures()
	g.publicKeys()
	g.keyWraps()
	g.keyFiles()
	g.enrolmentCodes()
	g.fingerprints()
	g.envelopes()
	g.sealedTos()
	names := map[string]bool{}
	for _, v := range g.vs {
		require.False(t, names[v.name], "vector name %s repeated", v.name)
		names[v.name] = true
	}
	return g.vs
}

func (g *vectorGen) add(name, kind, expect string, h map[string]string, released, input []byte, comments ...string) {
	if h == nil {
		h = map[string]string{}
	}
	v := &vector{name: name, kind: kind, expect: expect, h: h, input: input, comments: comments}
	if expect == "success" && kinds[kind].releases {
		sum := sha256.Sum256(released)
		v.payload = &sum
	}
	g.vs = append(g.vs, v)
}

// sealBody encrypts a hand-made body, for boxes that Seal would never make.
func sealBody(t testing.TB, k *Key, nonce, ad, body []byte) []byte {
	aead, err := chacha20poly1305.NewX(k.b[:])
	require.NoError(t, err)
	out := append([]byte{sealVersion}, nonce...)
	return aead.Seal(out, nonce, body, sealAD(ad))
}

func lengthPrefixed(n uint32, rest []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, n), rest...)
}

func (g *vectorGen) sealedBoxes() {
	t := g.t
	k := testKey(t, "sealed box key")
	other := testKey(t, "another key")
	ad := []byte("tenant T / stream S / epoch 3 / delta D")
	nonce := testSeed("sealed box nonce")[:chacha20poly1305.NonceSizeX]
	hdr := func(k *Key, ad []byte) map[string]string {
		return map[string]string{"key": hex.EncodeToString(k.b[:]), "ad": hex.EncodeToString(ad)}
	}
	seal := func(pt, ad []byte) []byte {
		b, err := sealWithNonce(k, nonce, ad, pt)
		require.NoError(t, err)
		return b
	}
	short := []byte("resident moved to a safe address")
	box := seal(short, ad)

	for _, c := range []struct {
		name    string
		pt, ad  []byte
		comment string
	}{
		{"box-empty", []byte{}, ad, "an empty plaintext pads to the 4-byte length alone"},
		{"box-short", short, ad, ""},
		{"box-no-ad", short, nil, ""},
		{"box-exact-padme", bytes.Repeat([]byte{'p'}, 60), ad, "4+60 = 64 is a Padme length: no padding"},
		{"box-one-past-padme", bytes.Repeat([]byte{'p'}, 61), ad, "4+61 = 65 pads to 72"},
		{"box-1-kib", bytes.Repeat([]byte("0123456789abcdef"), 64), ad, "a 1 KiB delta: 1028 pads to 1088"},
	} {
		g.add(c.name, "sealed box", "success", hdr(k, c.ad), c.pt, seal(c.pt, c.ad), c.comment)
	}

	failures := []struct {
		name, expect string
		h            map[string]string
		input        []byte
		comment      string
	}{
		{"box-wrong-key", "auth failure", hdr(other, ad), box, ""},
		{"box-wrong-ad", "auth failure", hdr(k, []byte("tenant T / stream S / epoch 2 / delta D")), box, "the box belongs to another epoch"},
		{"box-missing-ad", "auth failure", hdr(k, nil), box, ""},
		{"box-flip-version", "unknown version", hdr(k, ad), flipBit(box, 0, 0x01), "version byte 0x00"},
		{"box-version-2", "unknown version", hdr(k, ad), append([]byte{0x02}, box[1:]...), "a newer format is refused before any decryption"},
		{"box-flip-nonce", "auth failure", hdr(k, ad), flipBit(box, 13, 0x10), ""},
		{"box-flip-body", "auth failure", hdr(k, ad), flipBit(box, 30, 0x01), ""},
		{"box-flip-tag", "auth failure", hdr(k, ad), flipBit(box, len(box)-1, 0x80), ""},
		{"box-empty-input", "truncated", hdr(k, ad), []byte{}, ""},
		{"box-version-only", "truncated", hdr(k, ad), box[:1], ""},
		{"box-truncated-header", "truncated", hdr(k, ad), box[:sealOverhead+3], "one byte short of the smallest box"},
		{"box-truncated-tag", "auth failure", hdr(k, ad), box[:len(box)-1], ""},
		{"box-extended", "auth failure", hdr(k, ad), append(append([]byte(nil), box...), 0), ""},
		{"box-body-too-short", "truncated", hdr(k, ad), sealBody(t, k, nonce, ad, []byte{0, 0, 0}),
			"an authentic 3-byte body has no room for its length"},
		{"box-nonzero-padding", "malformed padding", hdr(k, ad), sealBody(t, k, nonce, ad, append(lengthPrefixed(5, []byte("hello")), 0x01)),
			"Padme(9) = 10: one byte of padding, not zero"},
		{"box-unpadded", "malformed padding", hdr(k, ad), sealBody(t, k, nonce, ad, lengthPrefixed(5, []byte("hello"))),
			"a 9-byte body, but Padme(9) = 10"},
		{"box-overpadded", "malformed padding", hdr(k, ad), sealBody(t, k, nonce, ad, lengthPrefixed(5, []byte("hello\x00\x00\x00\x00\x00\x00\x00"))),
			"a 16-byte body for 5 bytes of plaintext"},
		{"box-length-exceeds-body", "malformed padding", hdr(k, ad), sealBody(t, k, nonce, ad, lengthPrefixed(100, []byte("hell"))), ""},
		{"box-length-max", "malformed padding", hdr(k, ad), sealBody(t, k, nonce, ad, lengthPrefixed(0xffffffff, []byte("hell"))),
			"a length that overflows 32 bits when the prefix is added"},
	}
	for _, c := range failures {
		var comments []string
		if c.comment != "" {
			comments = append(comments, c.comment)
		}
		g.add(c.name, "sealed box", c.expect, c.h, nil, c.input, comments...)
	}
}

// padmeTable writes the reference algorithm's values (padmeReference, not
// the implementation under test) for lengths around every boundary.
func (g *vectorGen) padmeTable() {
	lengths := []uint64{0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 15, 16, 17, 31, 32, 33, 63, 64, 65,
		100, 127, 128, 129, 255, 256, 257, 1000, 1020, 1024, 1025, 1028, 4096, 4100,
		65536, 65537, 1 << 20, 1<<20 + 1, 16 << 20}
	var lines []string
	for _, n := range lengths {
		// A sealed box is 1 + 24 + Padme(4+n) + 16 bytes.
		lines = append(lines, fmt.Sprintf("%d %d %d", n, padmeReference(n), 41+padmeReference(4+n)))
	}
	g.add("padme-table", "padme", "success", nil, nil, []byte(strings.Join(lines, "\n")),
		"columns: length, Padme(length), SealedSize(length) = 41 + Padme(4 + length)")
}

// forgeSmallOrder finds a message for which (R = identity, s = 0) verifies
// under pub with crypto/ed25519 alone: [s]B - [k]A = R holds whenever
// [k]A is the identity, for 1 message in 4 (order 4) or 8 (order 8).
func forgeSmallOrder(t testing.TB, pub PublicKey, label Label) (msg, sig []byte) {
	sig = make([]byte, SignatureSize)
	sig[0] = 0x01 // R = identity, s = 0
	for i := 0; i < 1000; i++ {
		msg = fmt.Appendf(nil, "statement nobody signed #%d", i)
		if ed25519.VerifyWithOptions(ed25519.PublicKey(pub[:]), msg, sig, &ed25519.Options{Context: string(label)}) == nil {
			return msg, sig
		}
	}
	t.Fatalf("no forgery found under %x", pub[:])
	return nil, nil
}

// ed25519Order is the order L of the Ed25519 base point.
var ed25519Order, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

func (g *vectorGen) signatures() {
	t := g.t
	signer := testSigningKey(t, "signer")
	pub := signer.Public().String()
	seed := hex.EncodeToString(testSeed("signer"))
	hdr := func(pub string, label Label, msg []byte) map[string]string {
		return map[string]string{"public key": pub, "label": string(label), "message": hex.EncodeToString(msg)}
	}
	withSeed := func(h map[string]string) map[string]string { h["seed"] = seed; return h }
	batchMsg := sha256.Sum256([]byte("hashes of 100 sealed deltas"))
	msg := batchMsg[:]
	sig := signer.MustSign(LabelBatch, msg)

	for _, c := range []struct {
		name  string
		label Label
		msg   []byte
	}{
		{"sig-batch", LabelBatch, msg},
		{"sig-statement", LabelStatement, []byte("statement: device enrolled")},
		{"sig-card", LabelCard, []byte("ALARM CARD")},
		{"sig-auth-empty-message", LabelAuth, []byte{}},
	} {
		g.add(c.name, "signature", "success", withSeed(hdr(pub, c.label, c.msg)), nil, signer.MustSign(c.label, c.msg))
	}

	ctxSig := func(context string) []byte {
		s, err := signer.priv.Sign(nil, msg, &ed25519.Options{Context: context})
		require.NoError(t, err)
		return s
	}
	digest := sha512.Sum512(msg)
	phSig, err := signer.priv.Sign(nil, digest[:], &ed25519.Options{Hash: stdcrypto.SHA512, Context: string(LabelBatch)})
	require.NoError(t, err)
	pureSig := ed25519.Sign(signer.priv, msg)

	// s + L: the same scalar, not reduced.
	s := new(big.Int).SetBytes(reverse(sig[32:]))
	s.Add(s, ed25519Order)
	sPlusL := littleEndian32(s)
	malleable := append(append([]byte(nil), sig[:32]...), sPlusL[:]...)

	zeroMsg, zeroSig := forgeSmallOrder(t, PublicKey{}, LabelStatement)
	order8 := smallOrderKeys[2]
	o8Msg, o8Sig := forgeSmallOrder(t, order8, LabelStatement)

	for _, c := range []struct {
		name, expect string
		h            map[string]string
		sig          []byte
		comment      string
	}{
		{"sig-wrong-label", "bad signature", hdr(pub, LabelStatement, msg), sig, "made under fristed/v1/batch, presented as a statement"},
		{"sig-unknown-label", "unknown label", hdr(pub, "fristed/v1/unknown", msg), ctxSig("fristed/v1/unknown"), "a valid Ed25519ctx signature under a label outside the set"},
		{"sig-empty-label", "unknown label", hdr(pub, "", msg), pureSig, "an empty label would be pure Ed25519"},
		{"sig-pure-ed25519", "bad signature", hdr(pub, LabelBatch, msg), pureSig, "pure Ed25519 (no context) over the same message"},
		{"sig-ed25519ph", "bad signature", hdr(pub, LabelBatch, msg), phSig, "Ed25519ph with the same context"},
		{"sig-flip-r", "bad signature", hdr(pub, LabelBatch, msg), flipBit(sig, 5, 0x04), ""},
		{"sig-flip-s", "bad signature", hdr(pub, LabelBatch, msg), flipBit(sig, 40, 0x01), ""},
		{"sig-flip-message", "bad signature", hdr(pub, LabelBatch, flipBit(msg, 0, 0x01)), sig, ""},
		{"sig-truncated", "bad signature", hdr(pub, LabelBatch, msg), sig[:SignatureSize-1], ""},
		{"sig-extended", "bad signature", hdr(pub, LabelBatch, msg), append(append([]byte(nil), sig...), 0), ""},
		{"sig-noncanonical-s", "bad signature", hdr(pub, LabelBatch, msg), malleable, "s + L: the same signature with an unreduced scalar"},
		{"sig-other-key", "bad signature", hdr(testSigningKey(t, "other signer").Public().String(), LabelBatch, msg), sig, ""},
		{"sig-zero-key-forgery", "bad signature", hdr(PublicKey{}.String(), LabelStatement, zeroMsg), zeroSig,
			"R = identity, s = 0 under the all-zero key: crypto/ed25519 alone accepts it"},
		{"sig-order-8-key-forgery", "bad signature", hdr(order8.String(), LabelStatement, o8Msg), o8Sig,
			"R = identity, s = 0 under a key of order 8: crypto/ed25519 alone accepts it"},
	} {
		var comments []string
		if c.comment != "" {
			comments = append(comments, c.comment)
		}
		g.add(c.name, "signature", c.expect, c.h, nil, c.sig, comments...)
	}
}

func reverse(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[len(b)-1-i] = b[i]
	}
	return out
}

func (g *vectorGen) publicKeys() {
	t := g.t
	// A key whose base64url encoding uses both '-' and '_', the characters
	// standard base64 spells differently.
	var url PublicKey
	for i := 0; ; i++ {
		url = testSigningKey(t, fmt.Sprintf("public key %d", i)).Public()
		if s := url.String(); strings.ContainsRune(s, '-') && strings.ContainsRune(s, '_') {
			break
		}
	}
	s := url.String()
	body := s[len(publicKeyPrefix):]
	// The last of 43 characters carries 2 unused bits.
	last := strings.IndexByte(base64URLAlphabet, body[len(body)-1])
	require.Zero(t, last&3)
	noncanonical := s[:len(s)-1] + string(base64URLAlphabet[last|1])
	enc := func(b []byte) string { return publicKeyPrefix + base64.RawURLEncoding.EncodeToString(b) }
	withSign := smallOrderKeys[0]
	withSign[31] |= 0x80

	g.add("pub-key", "public key", "success", nil, nil, []byte(testSigningKey(t, "signer").Public().String()))
	g.add("pub-url-alphabet", "public key", "success", nil, nil, []byte(s))
	for _, c := range []struct{ name, s, comment string }{
		{"pub-std-alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(s), "standard base64, not base64url"},
		{"pub-padded", s + "=", ""},
		{"pub-noncanonical-base64", noncanonical, "unused low bits of the last character set"},
		{"pub-wrong-prefix", "fpub2" + body, ""},
		{"pub-no-prefix", body, ""},
		{"pub-upper-prefix", "FPUB1" + body, ""},
		{"pub-leading-space", " " + s, ""},
		{"pub-embedded-newline", s[:20] + "\n" + s[20:], "base64 decoders skip newlines; the parser must not"},
		{"pub-short", enc(url[:31]), ""},
		{"pub-long", enc(append(url[:], 0)), ""},
		{"pub-empty", "", ""},
		{"pub-zero-key", PublicKey{}.String(), "order 4: anyone can sign as it"},
		{"pub-identity", smallOrderKeys[0].String(), "order 1"},
		{"pub-identity-sign-bit", withSign.String(), "the identity with the sign bit set"},
		{"pub-order-2", smallOrderKeys[4].String(), ""},
		{"pub-order-8", smallOrderKeys[3].String(), ""},
		{"pub-noncanonical-identity", smallOrderKeys[6].String(), "y = p + 1"},
	} {
		var comments []string
		if c.comment != "" {
			comments = append(comments, c.comment)
		}
		g.add(c.name, "public key", "malformed", nil, nil, []byte(c.s), comments...)
	}
}

const base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func (g *vectorGen) keyWraps() {
	t := g.t
	device := testBoxIdentity(t, "device")
	otherDevice := testBoxIdentity(t, "other device")
	key := testKey(t, "epoch key")
	ctx := []byte("tenant T / stream S / epoch 3")
	commitment := key.Commitment(ctx)
	hdr := func(id *BoxIdentity, ctx []byte) map[string]string {
		return map[string]string{"identity": id.Marshal(), "context": hex.EncodeToString(ctx), "commitment": hex.EncodeToString(commitment[:])}
	}
	wrap := func(k *Key, rs ...*BoxIdentity) []byte {
		var recipients []age.Recipient
		for _, r := range rs {
			recipients = append(recipients, r.Recipient().Recipient())
		}
		b, err := WrapKey(k, recipients...)
		require.NoError(t, err)
		return b
	}
	raw := func(b []byte) []byte {
		out, err := ageEncrypt(b, device.Recipient().Recipient())
		require.NoError(t, err)
		return out
	}
	wrapped := wrap(key, device)
	five := wrap(key, testBoxIdentity(t, "device 1"), testBoxIdentity(t, "device 2"), device, testBoxIdentity(t, "device 4"), testBoxIdentity(t, "device 5"))

	g.add("wrap-one-device", "key wrap", "success", hdr(device, ctx), key.b[:], wrapped)
	g.add("wrap-five-devices", "key wrap", "success", hdr(device, ctx), key.b[:], five, "the device's stanza is the third of five")
	for _, c := range []struct {
		name, expect string
		h            map[string]string
		input        []byte
		comment      string
	}{
		{"wrap-commitment-mismatch", "key commitment mismatch", hdr(device, ctx), wrap(testKey(t, "planted key"), device),
			"anyone can wrap a key to the device's public key; only the coordinator's commitment makes it genuine"},
		{"wrap-wrong-context", "key commitment mismatch", hdr(device, []byte("tenant T / stream S / epoch 4")), wrapped,
			"the right key presented for another epoch"},
		{"wrap-wrong-identity", "no identity match", hdr(otherDevice, ctx), wrapped, ""},
		{"wrap-short-key", "malformed", hdr(device, ctx), raw(key.b[:31]), "31 bytes"},
		{"wrap-long-key", "malformed", hdr(device, ctx), raw(append(key.Bytes(), 0)), "33 bytes"},
		{"wrap-empty", "malformed", hdr(device, ctx), raw(nil), ""},
		{"wrap-truncated", "malformed", hdr(device, ctx), wrapped[:len(wrapped)-1], ""},
		{"wrap-header-only", "malformed", hdr(device, ctx), wrapped[:headerEnd(t, wrapped)], ""},
		{"wrap-flip-payload", "malformed", hdr(device, ctx), flipBit(wrapped, len(wrapped)-20, 0x01), ""},
		{"wrap-flip-header-mac", "malformed", hdr(device, ctx), flipBit(wrapped, headerEnd(t, wrapped)-3, 0x01), ""},
		{"wrap-flip-stanza", "no identity match", hdr(device, ctx), flipBit(wrapped, 100, 0x01),
			"ML-KEM rejects implicitly: a changed ciphertext decapsulates to another key, so the stanza is not ours"},
		{"wrap-zero-x25519-share", "malformed", hdr(device, ctx), replaceHybridShare(t, wrapped, [32]byte{}),
			"the X25519 share is the zero point: decapsulation must fail, not use an all-zero secret"},
	} {
		var comments []string
		if c.comment != "" {
			comments = append(comments, c.comment)
		}
		g.add(c.name, "key wrap", c.expect, c.h, nil, c.input, comments...)
	}
}

// sealedTos: SealTo's files, audit entries for the coordinator laptops.
// The padded body is laid out by hand here, independently of padBody.
func (g *vectorGen) sealedTos() {
	t := g.t
	coord := testBoxIdentity(t, "coordinator")
	hdr := map[string]string{"identity": coord.Marshal()}
	body := func(msg []byte, padTo int) []byte {
		b := make([]byte, padTo)
		binary.BigEndian.PutUint32(b, uint32(len(msg)))
		copy(b[4:], msg)
		return b
	}
	raw := func(b []byte) []byte {
		out, err := ageEncrypt(b, coord.Recipient().Recipient())
		require.NoError(t, err)
		return out
	}
	msg := []byte("revealed the sealed fields of s_aaaaaaaaaaaaaaaaaaaaaaaaaa")
	one, err := SealTo(msg, coord.Recipient())
	require.NoError(t, err)
	three, err := SealTo(msg, testBoxIdentity(t, "coordinator 1").Recipient(), testBoxIdentity(t, "coordinator 2").Recipient(), coord.Recipient())
	require.NoError(t, err)
	empty, err := SealTo(nil, coord.Recipient())
	require.NoError(t, err)
	g.add("sealed-to-one", "sealed to", "success", hdr, msg, one)
	g.add("sealed-to-three", "sealed to", "success", hdr, msg, three, "the identity's stanza is the third of three")
	g.add("sealed-to-empty", "sealed to", "success", hdr, nil, empty)
	// 4 + 58 = 62 bytes pad to 64 (Padme).
	require.Len(t, msg, 58)
	g.add("sealed-to-hand-padded", "sealed to", "success", hdr, msg, raw(body(msg, 64)), "the padded body laid out by hand")
	for _, c := range []struct {
		name, expect string
		input        []byte
		comment      string
	}{
		{"sealed-to-wrong-identity", "no identity match", three[:0:0], ""},
		{"sealed-to-short-padding", "malformed padding", raw(body(msg, 62)), "no padding where Padme wants 2 bytes"},
		{"sealed-to-long-padding", "malformed padding", raw(body(msg, 68)), "more padding than Padme gives"},
		{"sealed-to-nonzero-padding", "malformed padding", raw(append(body(msg, 63), 1)), "a padding byte that is not zero"},
		{"sealed-to-length-past-end", "malformed padding", raw([]byte{0, 0, 1, 0, 'x'}), "a length beyond the body"},
		{"sealed-to-no-length", "malformed padding", raw([]byte{0, 0}), "shorter than the length prefix"},
		{"sealed-to-flip-payload", "malformed", flipBit(one, len(one)-20, 0x01), ""},
		{"sealed-to-truncated", "malformed", one[:len(one)-1], ""},
	} {
		in := c.input
		h := hdr
		if c.name == "sealed-to-wrong-identity" {
			in = one
			h = map[string]string{"identity": testBoxIdentity(t, "worker").Marshal()}
		}
		var comments []string
		if c.comment != "" {
			comments = append(comments, c.comment)
		}
		g.add(c.name, "sealed to", c.expect, h, nil, in, comments...)
	}
}

// keyFilePlain lays out a key file's plaintext by hand, independently of
// marshalPlain.
func keyFilePlain(version, kind byte, seed []byte, box string, meta []byte) []byte {
	b := append([]byte("fristed-keys"), version, kind)
	b = append(b, seed...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(box)))
	b = append(b, box...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(meta)))
	return append(b, meta...)
}

const (
	testPassphrase = "correct horse battery staple"
	testWorkFactor = 10
)

func scryptEncrypt(t testing.TB, plain []byte, passphrase string) []byte {
	r, err := age.NewScryptRecipient(passphrase)
	require.NoError(t, err)
	r.SetWorkFactor(testWorkFactor)
	out, err := ageEncrypt(plain, r)
	require.NoError(t, err)
	return out
}

func (g *vectorGen) keyFiles() {
	t := g.t
	box := testBoxIdentity(t, "device")
	deviceSeed := testSeed("device signing key")
	rootSeed := testSeed("org root")
	relaySeed := testSeed("relay signing key")
	meta := []byte(`{"device":"D-1","org":"fristed-org1..."}`)
	hdr := func(pass string, want KeyKind) map[string]string {
		return map[string]string{"passphrase": pass, "want kind": want.String()}
	}
	encrypt := func(kind KeyKind, seed []byte, box *BoxIdentity, meta []byte) ([]byte, []byte) {
		sk, err := NewSigningKeyFromSeed(seed)
		require.NoError(t, err)
		kf := &KeyFile{Kind: kind, Sign: sk, Box: box, Meta: meta}
		file, err := EncryptKeyFile(kf, []byte(testPassphrase), testWorkFactor)
		require.NoError(t, err)
		plain, err := kf.marshalPlain()
		require.NoError(t, err)
		return file, plain
	}
	device, devicePlain := encrypt(KindDevice, deviceSeed, box, meta)
	deviceBare, deviceBarePlain := encrypt(KindDevice, deviceSeed, box, nil)
	root, rootPlain := encrypt(KindRoot, rootSeed, nil, nil)
	relay, relayPlain := encrypt(KindRelay, relaySeed, nil, []byte("relay"))
	require.Equal(t, keyFilePlain(1, 1, deviceSeed, box.Marshal(), meta), devicePlain)

	g.add("keyfile-device", "key file", "success", hdr(testPassphrase, KindDevice), devicePlain, device)
	g.add("keyfile-device-no-meta", "key file", "success", hdr(testPassphrase, KindDevice), deviceBarePlain, deviceBare)
	g.add("keyfile-root", "key file", "success", hdr(testPassphrase, KindRoot), rootPlain, root, "the recovery file")
	g.add("keyfile-relay", "key file", "success", hdr(testPassphrase, KindRelay), relayPlain, relay)

	x25519, err := ageEncrypt(devicePlain, testX25519Identity(t, "not a passphrase").Recipient())
	require.NoError(t, err)
	scrypt := func(p []byte) []byte { return scryptEncrypt(t, p, testPassphrase) }
	for _, c := range []struct {
		name, expect string
		h            map[string]string
		input        []byte
		comment      string
	}{
		{"keyfile-wrong-passphrase", "wrong passphrase", hdr("correct horse battery stapler", KindDevice), device, ""},
		{"keyfile-root-as-device", "wrong kind", hdr(testPassphrase, KindDevice), root, ""},
		{"keyfile-relay-as-root", "wrong kind", hdr(testPassphrase, KindRoot), relay, ""},
		{"keyfile-device-as-relay", "wrong kind", hdr(testPassphrase, KindRelay), device, ""},
		{"keyfile-unknown-version", "unknown version", hdr(testPassphrase, KindRoot), scrypt(keyFilePlain(2, 2, rootSeed, "", nil)), "version 2"},
		{"keyfile-bad-magic", "malformed key file", hdr(testPassphrase, KindRoot), scrypt(append([]byte("Fristed-keys"), rootPlain[12:]...)), ""},
		{"keyfile-unknown-kind", "malformed key file", hdr(testPassphrase, KindRoot), scrypt(keyFilePlain(1, 4, rootSeed, "", nil)), "kind 4"},
		{"keyfile-kind-zero", "malformed key file", hdr(testPassphrase, KindRoot), scrypt(keyFilePlain(1, 0, rootSeed, "", nil)), ""},
		{"keyfile-device-without-box", "malformed key file", hdr(testPassphrase, KindDevice), scrypt(keyFilePlain(1, 1, deviceSeed, "", nil)), ""},
		{"keyfile-root-with-box", "malformed key file", hdr(testPassphrase, KindRoot), scrypt(keyFilePlain(1, 2, rootSeed, box.Marshal(), nil)), ""},
		{"keyfile-bad-box", "malformed key file", hdr(testPassphrase, KindDevice), scrypt(keyFilePlain(1, 1, deviceSeed, strings.ToLower(box.Marshal()), nil)),
			"the age identity in lower case: not the canonical encoding"},
		{"keyfile-meta-too-long", "malformed key file", hdr(testPassphrase, KindRoot), scrypt(append(append([]byte(nil), rootPlain...), 0)), "one byte after the meta"},
		{"keyfile-meta-too-short", "malformed key file", hdr(testPassphrase, KindRelay), scrypt(relayPlain[:len(relayPlain)-1]), ""},
		{"keyfile-short", "malformed key file", hdr(testPassphrase, KindRoot), scrypt(rootPlain[:20]), ""},
		{"keyfile-empty-plaintext", "malformed key file", hdr(testPassphrase, KindRoot), scrypt(nil), ""},
		{"keyfile-x25519", "wrong passphrase", hdr(testPassphrase, KindDevice), x25519, "an age file to an X25519 recipient, not a passphrase"},
		{"keyfile-truncated", "malformed", hdr(testPassphrase, KindDevice), device[:len(device)-1], ""},
		{"keyfile-not-age", "malformed", hdr(testPassphrase, KindDevice), devicePlain, "an unencrypted key file"},
	} {
		var comments []string
		if c.comment != "" {
			comments = append(comments, c.comment)
		}
		g.add(c.name, "key file", c.expect, c.h, nil, c.input, comments...)
	}
}

func (g *vectorGen) enrolmentCodes() {
	t := g.t
	sign := testSigningKey(t, "device signing key").Public()
	recipient := testBoxIdentity(t, "device").Recipient().String()
	// A request id whose code has an 'I', to spell it with U+0131.
	var reqID []byte
	var code string
	for i := 0; ; i++ {
		reqID = testSeed(fmt.Sprintf("request id %d", i))[:requestIDSize]
		code = EnrolmentCode(reqID, EnrolmentCommitment(reqID, sign, recipient))
		if strings.Contains(code[1:], "I") {
			break
		}
	}
	c := EnrolmentCommitment(reqID, sign, recipient)
	hdr := func(sign PublicKey, recipient string) map[string]string {
		return map[string]string{"public key": sign.String(), "recipient": recipient}
	}
	ok := hdr(sign, recipient)
	ok["short code"] = ShortCode(c)
	typed := strings.ToLower(strings.ReplaceAll(code, "-", " "))
	g.add("enrol-code", "enrolment code", "success", ok, nil, []byte(code))
	okTyped := hdr(sign, recipient)
	okTyped["short code"] = ShortCode(c)
	g.add("enrol-code-typed", "enrolment code", "success", okTyped, nil, []byte(typed), "lower case, spaces for dashes")

	flat := strings.ReplaceAll(code, "-", "")
	lastVal := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", flat[len(flat)-1])
	require.Zero(t, lastVal&1, "the unused bit of the last character")
	noncanonical := flat[:len(flat)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[lastVal|1])
	otherReq := testSeed("another request")[:requestIDSize]
	for _, cs := range []struct {
		name, expect string
		h            map[string]string
		code         string
		comment      string
	}{
		{"enrol-substituted-recipient", "enrolment mismatch", hdr(sign, testBoxIdentity(t, "relay's key").Recipient().String()), code,
			"the relay returned another age recipient"},
		{"enrol-substituted-signing-key", "enrolment mismatch", hdr(testSigningKey(t, "relay's key").Public(), recipient), code, ""},
		{"enrol-other-request", "enrolment mismatch", hdr(sign, recipient), EnrolmentCode(otherReq, c), "the commitment of one request under another's id"},
		{"enrol-truncated", "malformed", hdr(sign, recipient), code[:len(code)-1], ""},
		{"enrol-extra-group", "malformed", hdr(sign, recipient), code + "-AAAAA", ""},
		{"enrol-noncanonical", "malformed", hdr(sign, recipient), noncanonical, "the unused low bit of the last character set"},
		{"enrol-wrong-prefix", "malformed", hdr(sign, recipient), "F" + code[1:], ""},
		{"enrol-no-prefix", "malformed", hdr(sign, recipient), code[1:], ""},
		{"enrol-digit-one", "malformed", hdr(sign, recipient), code[:3] + "1" + code[4:], "1 is not in the base32 alphabet"},
		{"enrol-dotless-i", "malformed", hdr(sign, recipient), "E" + strings.Replace(code[1:], "I", "\u0131", 1),
			"U+0131 upper-cases to I in strings.ToUpper"},
		{"enrol-empty", "malformed", hdr(sign, recipient), "", ""},
		{"enrol-embedded-newline", "malformed", hdr(sign, recipient), code[:10] + "\n" + code[10:], "base32 decoders skip newlines; the parser must not"},
	} {
		var comments []string
		if cs.comment != "" {
			comments = append(comments, cs.comment)
		}
		g.add(cs.name, "enrolment code", cs.expect, cs.h, nil, []byte(cs.code), comments...)
	}
}

func (g *vectorGen) fingerprints() {
	t := g.t
	root := testSigningKey(t, "org root").Public()
	f := OrgFingerprint(root)
	s := f.String()
	ok := map[string]string{"root": root.String(), "check code": f.CheckCode()}
	g.add("fpr-org", "org fingerprint", "success", ok, nil, []byte(s))
	okSpace := map[string]string{"root": root.String(), "check code": f.CheckCode()}
	g.add("fpr-org-whitespace", "org fingerprint", "success", okSpace, nil, []byte(" "+s+"\t"), "surrounding white space is ignored")

	body := s[len(fingerprintPrefix):]
	alphabet := "abcdefghijklmnopqrstuvwxyz234567"
	last := strings.IndexByte(alphabet, body[len(body)-1])
	require.Zero(t, last&15, "the 4 unused bits of the last character")
	for _, c := range []struct{ name, s, comment string }{
		{"fpr-upper-case", strings.ToUpper(s), ""},
		{"fpr-upper-body", fingerprintPrefix + strings.ToUpper(body), ""},
		{"fpr-noncanonical", s[:len(s)-1] + string(alphabet[last|1]), "an unused low bit of the last character set"},
		{"fpr-wrong-prefix", "fristed-org2" + body, ""},
		{"fpr-truncated", s[:len(s)-1], ""},
		{"fpr-padded", s + "====", ""},
		{"fpr-embedded-newline", s[:30] + "\n" + s[30:], ""},
		{"fpr-short", fingerprintPrefix + strings.ToLower(idEncodingUpper.EncodeToString(f[:31])), "31 bytes"},
	} {
		var comments []string
		if c.comment != "" {
			comments = append(comments, c.comment)
		}
		g.add(c.name, "org fingerprint", "malformed", nil, nil, []byte(c.s), comments...)
	}
}

func (g *vectorGen) envelopes() {
	t := g.t
	release := testBoxIdentity(t, "release")
	otherRelease := testBoxIdentity(t, "other release")
	policeX := testX25519Identity(t, "police")
	policeH := testBoxIdentity(t, "police hybrid")
	short := []byte("FRISTED ALARM CARD\nalarm: A-7Q2\nresident: R-14 (pseudonym)\nsealed at: 2025-03-01T12:00:00Z")
	full := bytes.Repeat([]byte("0123456789abcde "), CardSize/16)
	seal := func(card []byte, police age.Recipient) (inner, outer []byte) {
		inner, outer, err := SealEnvelope(card, police, release.Recipient())
		require.NoError(t, err)
		return inner, outer
	}
	hdr := func(release *BoxIdentity, police string, inner []byte) map[string]string {
		c := InnerCommitment(inner)
		return map[string]string{"identity": release.Marshal(), "police identity": police, "commitment": hex.EncodeToString(c[:])}
	}
	encrypt := func(plain []byte, r age.Recipient) []byte {
		out, err := ageEncrypt(plain, r)
		require.NoError(t, err)
		return out
	}

	innerX, outerX := seal(short, policeX.Recipient())
	innerH, _ := seal(short, policeH.Recipient().Recipient())
	for _, c := range []struct {
		name   string
		card   []byte
		police age.Recipient
		id     string
	}{
		{"envelope-x25519-short", short, policeX.Recipient(), policeX.String()},
		{"envelope-x25519-full", full, policeX.Recipient(), policeX.String()},
		{"envelope-x25519-empty", nil, policeX.Recipient(), policeX.String()},
		{"envelope-hybrid-short", short, policeH.Recipient().Recipient(), policeH.Marshal()},
		{"envelope-hybrid-full", full, policeH.Recipient().Recipient(), policeH.Marshal()},
	} {
		inner, outer := seal(c.card, c.police)
		g.add(c.name, "envelope", "success", hdr(release, c.id, inner), c.card, outer)
	}

	plain, err := outerPlain(innerX)
	require.NoError(t, err)
	nonzero := append([]byte(nil), plain...)
	nonzero[len(nonzero)-1] = 1
	tooLong := append([]byte(nil), plain...)
	binary.BigEndian.PutUint32(tooLong, OuterPlainSize-3)
	unpaddedInner := encrypt(short, policeX.Recipient())
	unpadded, err := SealOuter(unpaddedInner, release.Recipient())
	require.NoError(t, err)
	hx := hdr(release, policeX.String(), innerX)
	for _, c := range []struct {
		name, expect string
		h            map[string]string
		input        []byte
		comment      string
	}{
		{"envelope-wrong-release-identity", "no identity match", hdr(otherRelease, policeX.String(), innerX), outerX, ""},
		{"envelope-wrong-police-identity", "no identity match", hdr(release, policeH.Marshal(), innerX), outerX, "an X25519 inner layer opened with a hybrid identity"},
		{"envelope-commitment-mismatch", "inner commitment mismatch", hdr(release, policeX.String(), innerH), outerX,
			"the statement commits to another inner layer"},
		{"envelope-truncated", "malformed", hx, outerX[:len(outerX)-1], ""},
		{"envelope-header-only", "malformed", hx, outerX[:headerEnd(t, outerX)], ""},
		{"envelope-flip-payload", "malformed", hx, flipBit(outerX, len(outerX)-100, 0x01), ""},
		{"envelope-zero-length", "malformed envelope", hx, encrypt(make([]byte, OuterPlainSize), release.Recipient().Recipient()), "length 0"},
		{"envelope-nonzero-padding", "malformed envelope", hx, encrypt(nonzero, release.Recipient().Recipient()), ""},
		{"envelope-length-too-large", "malformed envelope", hx, encrypt(tooLong, release.Recipient().Recipient()), ""},
		{"envelope-short-plaintext", "malformed envelope", hx, encrypt(plain[:OuterPlainSize-1], release.Recipient().Recipient()), ""},
		{"envelope-long-plaintext", "malformed envelope", hx, encrypt(append(append([]byte(nil), plain...), 0), release.Recipient().Recipient()), ""},
		{"envelope-inner-unpadded", "malformed envelope", hdr(release, policeX.String(), unpaddedInner), unpadded,
			"an inner layer whose card is not padded to CardSize"},
	} {
		var comments []string
		if c.comment != "" {
			comments = append(comments, c.comment)
		}
		g.add(c.name, "envelope", c.expect, c.h, nil, c.input, comments...)
	}

	innerHdr := func(police string, inner []byte) map[string]string {
		c := InnerCommitment(inner)
		return map[string]string{"police identity": police, "commitment": hex.EncodeToString(c[:])}
	}
	g.add("inner-x25519", "envelope inner", "success", innerHdr(policeX.String(), innerX), short, innerX,
		"what the police receive: the stock age tool opens it")
	g.add("inner-hybrid", "envelope inner", "success", innerHdr(policeH.Marshal(), innerH), short, innerH)

	// A stanza whose ephemeral share is a low-order point, with everything
	// else computed from the all-zero secret X25519 would give for it.
	_, policePub := bech32Decode(t, policeX.Recipient().String())
	padded, err := PadCard(short)
	require.NoError(t, err)
	lowOrder := lowOrderX25519Points(t)[0]
	lowOrderInner := ageX25519File(t, lowOrder[:], make([]byte, curve25519.PointSize), policePub, testSeed("file key")[:16], padded)
	tooLongCard := encrypt(append(padded, '\n'), policeX.Recipient())
	for _, c := range []struct {
		name, expect string
		h            map[string]string
		input        []byte
		comment      string
	}{
		{"inner-commitment-mismatch", "inner commitment mismatch", innerHdr(policeX.String(), innerH), innerX, ""},
		{"inner-wrong-identity", "no identity match", innerHdr(testX25519Identity(t, "other police").String(), innerX), innerX, ""},
		{"inner-card-too-long", "malformed envelope", innerHdr(policeX.String(), tooLongCard), tooLongCard, "CardSize + 1 bytes"},
		{"inner-truncated", "malformed", innerHdr(policeX.String(), innerX[:len(innerX)-1]), innerX[:len(innerX)-1], ""},
		{"inner-low-order-share", "malformed", innerHdr(policeX.String(), lowOrderInner), lowOrderInner,
			"X25519 stanza with a low-order share, MAC and payload made with the all-zero shared secret"},
	} {
		var comments []string
		if c.comment != "" {
			comments = append(comments, c.comment)
		}
		g.add(c.name, "envelope inner", c.expect, c.h, nil, c.input, comments...)
	}
}
