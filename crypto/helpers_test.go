package crypto

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/chacha20poly1305"
)

// Deterministic keys for tests and vectors: every secret is derived from a
// name, so a vector file names its keys and the test can rebuild them.

func testSeed(name string) []byte {
	h := sha256.Sum256([]byte("fristed test seed: " + name))
	return h[:]
}

func testKey(t testing.TB, name string) *Key {
	k, err := KeyFromBytes(testSeed(name))
	require.NoError(t, err)
	return k
}

func testSigningKey(t testing.TB, name string) *SigningKey {
	k, err := NewSigningKeyFromSeed(testSeed(name))
	require.NoError(t, err)
	return k
}

// testBoxIdentity derives a hybrid age identity: its secret encoding is the
// 32-byte ML-KEM-768 + X25519 seed in Bech32.
func testBoxIdentity(t testing.TB, name string) *BoxIdentity {
	id, err := ParseBoxIdentity(bech32Encode("AGE-SECRET-KEY-PQ-", testSeed(name)))
	require.NoError(t, err)
	return id
}

// testX25519Identity derives a classic age identity, the kind the stock
// age-keygen makes for a police contact.
func testX25519Identity(t testing.TB, name string) *age.X25519Identity {
	id, err := age.ParseX25519Identity(bech32Encode("AGE-SECRET-KEY-", testSeed(name)))
	require.NoError(t, err)
	return id
}

// parsePoliceIdentity parses either kind of age identity.
func parsePoliceIdentity(s string) (age.Identity, error) {
	if id, err := age.ParseX25519Identity(s); err == nil {
		return id, nil
	}
	if id, err := age.ParseHybridIdentity(s); err == nil {
		return id, nil
	}
	return nil, errors.New("not an age identity")
}

func flipBit(b []byte, i int, bit byte) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= bit
	return c
}

// sentinels is every error this package exports for callers to branch on.
var sentinels = []error{
	ErrSealVersion, ErrSealTruncated, ErrSealAuth, ErrSealPadding, ErrSealTooLarge,
	ErrBadSignature, ErrUnknownLabel,
	ErrKeyCommitment, ErrNoIdentityMatch,
	ErrWrongPassphrase, ErrKeyFileVersion, ErrKeyFileFormat, ErrKeyFileKind,
	ErrEnrolmentMismatch,
	ErrCardTooLarge, ErrEnvelopeMalformed, ErrInnerMismatch,
}

// isUnclassified reports whether err is an error that is none of the
// sentinels: a parse failure or an age header or payload failure.
func isUnclassified(err error) bool {
	if err == nil {
		return false
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return false
		}
	}
	return true
}

// A minimal Bech32 (BIP 173) codec: age keeps its own internal, and tests
// need to build recipients and identities from raw bytes, including ones
// (low-order points) that no key generator would produce.

const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

func bech32Polymod(values []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := 0; i < 5; i++ {
			if (top>>i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}

func bech32HRPExpand(hrp string) []byte {
	var out []byte
	for _, c := range []byte(hrp) {
		out = append(out, c>>5)
	}
	out = append(out, 0)
	for _, c := range []byte(hrp) {
		out = append(out, c&31)
	}
	return out
}

// bech32Encode encodes data under hrp; an upper-case hrp gives an
// upper-case string, as age's identities are.
func bech32Encode(hrp string, data []byte) string {
	var values []byte
	acc, nbits := 0, 0
	for _, b := range data {
		acc = acc<<8 | int(b)
		nbits += 8
		for nbits >= 5 {
			nbits -= 5
			values = append(values, byte(acc>>nbits)&31)
		}
	}
	if nbits > 0 {
		values = append(values, byte(acc<<(5-nbits))&31)
	}
	lower := strings.ToLower(hrp)
	poly := bech32Polymod(append(append(bech32HRPExpand(lower), values...), 0, 0, 0, 0, 0, 0)) ^ 1
	var sb strings.Builder
	sb.WriteString(lower + "1")
	for _, v := range values {
		sb.WriteByte(bech32Charset[v])
	}
	for i := 0; i < 6; i++ {
		sb.WriteByte(bech32Charset[(poly>>(5*(5-i)))&31])
	}
	if hrp != lower {
		return strings.ToUpper(sb.String())
	}
	return sb.String()
}

// bech32Decode decodes a well-formed lower-case Bech32 string made by
// bech32Encode or age; it does not validate the checksum.
func bech32Decode(t testing.TB, s string) (hrp string, data []byte) {
	pos := strings.LastIndexByte(s, '1')
	require.Positive(t, pos, "bech32 separator in %q", s)
	hrp = s[:pos]
	acc, nbits := 0, 0
	chars := s[pos+1 : len(s)-6]
	for i := 0; i < len(chars); i++ {
		v := strings.IndexByte(bech32Charset, chars[i])
		require.GreaterOrEqual(t, v, 0, "bech32 character %q", chars[i])
		acc = acc<<5 | v
		nbits += 5
		if nbits >= 8 {
			nbits -= 8
			data = append(data, byte(acc>>nbits))
		}
	}
	return hrp, data
}

// Curve25519 arithmetic with math/big, independent of the implementations
// under test, to derive the points of small order.

var (
	fieldP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	// edwardsD is -121665/121666 mod p.
	edwardsD = func() *big.Int {
		d := new(big.Int).ModInverse(big.NewInt(121666), fieldP)
		d.Mul(d, big.NewInt(-121665))
		return d.Mod(d, fieldP)
	}()
)

// littleEndian32 encodes x (0 <= x < 2^256) in 32 little-endian bytes.
func littleEndian32(x *big.Int) [32]byte {
	var out [32]byte
	b := x.Bytes()
	for i := range b {
		out[i] = b[len(b)-1-i]
	}
	return out
}

// smallOrderEdwardsY returns the y coordinates of the eight Ed25519 points
// of order dividing 8: y = 1 (identity), y = -1 (order 2), y = 0 (order 4,
// x = ±sqrt(-1)), and the two values of y of the order-8 points, which
// double to y = 0: there y² = -x², so d·y⁴ + 2·y² - 1 = 0 and
// y² = (-1 ± sqrt(1+d)) / d, of which one root is a square.
func smallOrderEdwardsY(t testing.TB) []*big.Int {
	p := fieldP
	one := big.NewInt(1)
	ys := []*big.Int{big.NewInt(1), new(big.Int).Sub(p, one), big.NewInt(0)}
	s := new(big.Int).ModSqrt(new(big.Int).Mod(new(big.Int).Add(one, edwardsD), p), p)
	require.NotNil(t, s, "sqrt(1+d)")
	dInv := new(big.Int).ModInverse(edwardsD, p)
	found := 0
	for _, r := range []*big.Int{s, new(big.Int).Sub(p, s)} {
		y2 := new(big.Int).Sub(r, one)
		y2.Mul(y2, dInv).Mod(y2, p)
		y := new(big.Int).ModSqrt(y2, p)
		if y == nil {
			continue
		}
		ys = append(ys, y, new(big.Int).Sub(p, y))
		found++
	}
	require.Equal(t, 1, found, "roots y² of the order-8 points that are squares")
	return ys
}

// lowOrderX25519Points returns the canonical u coordinates of the
// Curve25519 points of small order, mapped from the Edwards ones by
// u = (1+y)/(1-y) (the identity, y = 1, has no u), plus the non-canonical
// encodings p-1, p and p+1 that X25519 implementations must also reject.
func lowOrderX25519Points(t testing.TB) [][32]byte {
	p := fieldP
	one := big.NewInt(1)
	var out [][32]byte
	for _, y := range smallOrderEdwardsY(t) {
		if y.Cmp(one) == 0 {
			continue
		}
		num := new(big.Int).Add(one, y)
		den := new(big.Int).Mod(new(big.Int).Sub(one, y), p)
		u := num.Mul(num, new(big.Int).ModInverse(den, p))
		out = append(out, littleEndian32(u.Mod(u, p)))
	}
	for _, d := range []int64{-1, 0, 1} {
		out = append(out, littleEndian32(new(big.Int).Add(p, big.NewInt(d))))
	}
	return out
}

// ageX25519File writes an age v1 file with one X25519 stanza by hand, so a
// test can choose the ephemeral share and the shared secret: with a
// low-order share and the all-zero secret it builds the file that an
// implementation without the low-order check would accept.
func ageX25519File(t testing.TB, share, shared, recipientPub, fileKey, plaintext []byte) []byte {
	b64 := base64.RawStdEncoding.EncodeToString
	wrapKey, err := hkdf.Key(sha256.New, shared, append(append([]byte(nil), share...), recipientPub...), "age-encryption.org/v1/X25519", 32)
	require.NoError(t, err)
	aead, err := chacha20poly1305.New(wrapKey)
	require.NoError(t, err)
	body := aead.Seal(nil, make([]byte, chacha20poly1305.NonceSize), fileKey, nil)

	var hdr bytes.Buffer
	fmt.Fprintf(&hdr, "age-encryption.org/v1\n-> X25519 %s\n%s\n---", b64(share), b64(body))
	macKey, err := hkdf.Key(sha256.New, fileKey, nil, "header", 32)
	require.NoError(t, err)
	mac := hmac.New(sha256.New, macKey)
	mac.Write(hdr.Bytes())
	fmt.Fprintf(&hdr, " %s\n", b64(mac.Sum(nil)))

	nonce := testSeed("age payload nonce")[:16]
	streamKey, err := hkdf.Key(sha256.New, fileKey, nonce, "payload", 32)
	require.NoError(t, err)
	stream, err := chacha20poly1305.New(streamKey)
	require.NoError(t, err)
	require.LessOrEqual(t, len(plaintext), 64<<10, "one chunk only")
	chunkNonce := make([]byte, chacha20poly1305.NonceSize)
	chunkNonce[len(chunkNonce)-1] = 1 // counter 0, last chunk
	out := append(hdr.Bytes(), nonce...)
	return stream.Seal(out, chunkNonce, plaintext, nil)
}

// replaceHybridShare returns an age file whose mlkem768x25519 stanza has
// its X25519 share (the last 32 bytes of the encapsulation) replaced.
func replaceHybridShare(t testing.TB, file []byte, share [32]byte) []byte {
	const prefix = "-> mlkem768x25519 "
	lines := bytes.SplitN(file, []byte("\n"), 3)
	require.Len(t, lines, 3)
	require.True(t, bytes.HasPrefix(lines[1], []byte(prefix)), "second line %q", lines[1])
	enc, err := base64.RawStdEncoding.Strict().DecodeString(string(lines[1][len(prefix):]))
	require.NoError(t, err)
	copy(enc[len(enc)-32:], share[:])
	line := prefix + base64.RawStdEncoding.EncodeToString(enc)
	return bytes.Join([][]byte{lines[0], []byte(line), lines[2]}, []byte("\n"))
}

// headerEnd returns the length of an age file's header (through the MAC
// line).
func headerEnd(t testing.TB, file []byte) int {
	i := bytes.Index(file, []byte("\n--- "))
	require.Positive(t, i)
	j := bytes.IndexByte(file[i+1:], '\n')
	require.Positive(t, j)
	return i + 1 + j + 1
}
