package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func testKeyFile(t testing.TB, kind KeyKind, meta []byte) *KeyFile {
	kf := &KeyFile{Kind: kind, Sign: testSigningKey(t, "key file "+kind.String()), Meta: meta}
	if kind == KindDevice {
		kf.Box = testBoxIdentity(t, "key file device")
	}
	return kf
}

func requireSameKeyFile(t testing.TB, got, want *KeyFile) {
	t.Helper()
	require.Equal(t, want.Kind, got.Kind)
	require.True(t, got.Sign.Equal(want.Sign), "signing key")
	require.Equal(t, want.Box == nil, got.Box == nil, "age identity present")
	if want.Box != nil {
		require.Equal(t, want.Box.Marshal(), got.Box.Marshal(), "age identity")
	}
	require.Equal(t, want.Meta, got.Meta)
}

func TestKeyFileRoundTrip(t *testing.T) {
	tests := []struct {
		kind KeyKind
		meta []byte
	}{
		{KindDevice, []byte(`{"device":"D-1"}`)},
		{KindDevice, nil},
		{KindRoot, nil},
		{KindRelay, []byte("relay")},
		{KindRoot, bytes.Repeat([]byte{0xff}, maxMetaSize)},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/meta %d", tt.kind, len(tt.meta)), func(t *testing.T) {
			kf := testKeyFile(t, tt.kind, tt.meta)
			file, err := EncryptKeyFile(kf, []byte(testPassphrase), testWorkFactor)
			require.NoError(t, err)
			got, err := DecryptKeyFile(file, []byte(testPassphrase), tt.kind)
			require.NoError(t, err)
			requireSameKeyFile(t, got, kf)
		})
	}
}

func TestKeyFileMarshalLayout(t *testing.T) {
	kf := testKeyFile(t, KindDevice, []byte("m"))
	got, err := kf.marshalPlain()
	require.NoError(t, err)
	want := keyFilePlain(1, 1, kf.Sign.MarshalSeed(), kf.Box.Marshal(), []byte("m"))
	if !bytes.Equal(got, want) {
		t.Errorf("got plaintext %x, want %x", got, want)
	}
}

func TestDecryptKeyFileErrors(t *testing.T) {
	root := testKeyFile(t, KindRoot, nil)
	file, err := EncryptKeyFile(root, []byte(testPassphrase), testWorkFactor)
	require.NoError(t, err)
	tests := []struct {
		name string
		pass string
		want KeyKind
		err  error
	}{
		{"wrong passphrase", "Correct horse battery staple", KindRoot, ErrWrongPassphrase},
		{"empty passphrase", "", KindRoot, ErrWrongPassphrase},
		{"as device", testPassphrase, KindDevice, ErrKeyFileKind},
		{"as relay", testPassphrase, KindRelay, ErrKeyFileKind},
		{"as kind 0", testPassphrase, 0, ErrKeyFileKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kf, err := DecryptKeyFile(file, []byte(tt.pass), tt.want)
			if kf != nil || !errors.Is(err, tt.err) {
				t.Errorf("got (%v, %v), want (nil, %v)", kf, err, tt.err)
			}
		})
	}
}

func TestDecryptKeyFileWorkFactorTooLarge(t *testing.T) {
	file, err := EncryptKeyFile(testKeyFile(t, KindRoot, nil), []byte(testPassphrase), testWorkFactor)
	require.NoError(t, err)
	// The stanza line is "-> scrypt SALT 10"; raise the cost to 2^23 (8 GiB
	// of memory). age checks it before running scrypt.
	lines := strings.SplitN(string(file), "\n", 3)
	require.True(t, strings.HasPrefix(lines[1], "-> scrypt ") && strings.HasSuffix(lines[1], " 10"), "stanza %q", lines[1])
	lines[1] = strings.TrimSuffix(lines[1], "10") + "23"
	kf, err := DecryptKeyFile([]byte(strings.Join(lines, "\n")), []byte(testPassphrase), KindRoot)
	if kf != nil || err == nil || errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("got (%v, %v), want (nil, a work factor error)", kf, err)
	}
}

func TestEncryptKeyFileErrors(t *testing.T) {
	good := testKeyFile(t, KindRelay, nil)
	tests := []struct {
		name string
		kf   *KeyFile
		pass string
		wf   int
	}{
		{"empty passphrase", good, "", testWorkFactor},
		{"negative work factor", good, testPassphrase, -1},
		{"work factor above the reader's limit", good, testPassphrase, maxWorkFactor + 1},
		{"work factor age panics on", good, testPassphrase, 31},
		{"kind 0", &KeyFile{Kind: 0, Sign: good.Sign}, testPassphrase, testWorkFactor},
		{"kind 4", &KeyFile{Kind: 4, Sign: good.Sign}, testPassphrase, testWorkFactor},
		{"no signing key", &KeyFile{Kind: KindRelay}, testPassphrase, testWorkFactor},
		{"device without age identity", &KeyFile{Kind: KindDevice, Sign: good.Sign}, testPassphrase, testWorkFactor},
		{"root with age identity", &KeyFile{Kind: KindRoot, Sign: good.Sign, Box: testBoxIdentity(t, "b")}, testPassphrase, testWorkFactor},
		{"meta too large", &KeyFile{Kind: KindRoot, Sign: good.Sign, Meta: make([]byte, maxMetaSize+1)}, testPassphrase, testWorkFactor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out []byte
			var err error
			require.NotPanics(t, func() { out, err = EncryptKeyFile(tt.kf, []byte(tt.pass), tt.wf) })
			if err == nil || out != nil {
				t.Errorf("got (%d bytes, %v), want an error", len(out), err)
			}
		})
	}
}

func TestEncryptKeyFileRecordsWorkFactor(t *testing.T) {
	for _, wf := range []int{1, testWorkFactor} {
		file, err := EncryptKeyFile(testKeyFile(t, KindRoot, nil), []byte(testPassphrase), wf)
		require.NoError(t, err)
		line := strings.SplitN(string(file), "\n", 3)[1]
		if want := fmt.Sprintf(" %d", wf); !strings.HasPrefix(line, "-> scrypt ") || !strings.HasSuffix(line, want) {
			t.Errorf("got stanza %q, want an scrypt stanza ending in %q", line, want)
		}
	}
}

// TestParseKeyFilePlainTruncated cuts a plaintext at every offset.
func TestParseKeyFilePlainTruncated(t *testing.T) {
	plain, err := testKeyFile(t, KindDevice, []byte("meta")).marshalPlain()
	require.NoError(t, err)
	for i := 0; i < len(plain); i++ {
		kf, err := parseKeyFilePlain(plain[:i])
		if kf != nil || !errors.Is(err, ErrKeyFileFormat) {
			t.Fatalf("cut at %d: got (%v, %v), want (nil, %v)", i, kf, err, ErrKeyFileFormat)
		}
	}
}

func TestParseKeyFilePlainErrors(t *testing.T) {
	seed := testSeed("seed")
	box := testBoxIdentity(t, "box").Marshal()
	tests := []struct {
		name  string
		plain []byte
		want  error
	}{
		{"version 0", keyFilePlain(0, 2, seed, "", nil), ErrKeyFileVersion},
		{"version 2", keyFilePlain(2, 2, seed, "", nil), ErrKeyFileVersion},
		{"version only", []byte("fristed-keys\x02"), ErrKeyFileVersion},
		{"magic only", []byte("fristed-keys"), ErrKeyFileFormat},
		{"bad magic", append([]byte("fristed-keyz"), keyFilePlain(1, 2, seed, "", nil)[12:]...), ErrKeyFileFormat},
		{"kind 0", keyFilePlain(1, 0, seed, "", nil), ErrKeyFileFormat},
		{"kind 4", keyFilePlain(1, 4, seed, "", nil), ErrKeyFileFormat},
		{"device without box", keyFilePlain(1, 1, seed, "", nil), ErrKeyFileFormat},
		{"relay with box", keyFilePlain(1, 3, seed, box, nil), ErrKeyFileFormat},
		{"box not an identity", keyFilePlain(1, 1, seed, "AGE-SECRET-KEY-PQ-1", nil), ErrKeyFileFormat},
		{"box lower case", keyFilePlain(1, 1, seed, strings.ToLower(box), nil), ErrKeyFileFormat},
		{"trailing byte", append(keyFilePlain(1, 2, seed, "", nil), 0), ErrKeyFileFormat},
		{"meta length beyond", keyFilePlain(1, 2, seed, "", []byte("meta"))[:len(keyFilePlain(1, 2, seed, "", []byte("meta")))-1], ErrKeyFileFormat},
		{"meta too large", keyFilePlain(1, 2, seed, "", make([]byte, maxMetaSize+1)), ErrKeyFileFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kf, err := parseKeyFilePlain(tt.plain)
			if kf != nil || !errors.Is(err, tt.want) {
				t.Errorf("got (%v, %v), want (nil, %v)", kf, err, tt.want)
			}
		})
	}
}

func TestChangePassphrase(t *testing.T) {
	kf := testKeyFile(t, KindDevice, []byte("meta"))
	file, err := EncryptKeyFile(kf, []byte("old"), testWorkFactor)
	require.NoError(t, err)
	changed, err := ChangePassphrase(file, []byte("old"), []byte("new"), KindDevice, testWorkFactor)
	require.NoError(t, err)
	if _, err := DecryptKeyFile(changed, []byte("old"), KindDevice); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("old passphrase: got %v, want %v", err, ErrWrongPassphrase)
	}
	got, err := DecryptKeyFile(changed, []byte("new"), KindDevice)
	require.NoError(t, err)
	requireSameKeyFile(t, got, kf)
	if out, err := ChangePassphrase(file, []byte("wrong"), []byte("new"), KindDevice, testWorkFactor); !errors.Is(err, ErrWrongPassphrase) || out != nil {
		t.Errorf("wrong old passphrase: got (%d bytes, %v), want (nil, %v)", len(out), err, ErrWrongPassphrase)
	}
	if out, err := ChangePassphrase(file, []byte("old"), []byte("new"), KindRoot, testWorkFactor); !errors.Is(err, ErrKeyFileKind) || out != nil {
		t.Errorf("wrong kind: got (%d bytes, %v), want (nil, %v)", len(out), err, ErrKeyFileKind)
	}
}

func TestNewDeviceKeys(t *testing.T) {
	kf, err := NewDeviceKeys()
	require.NoError(t, err)
	if kf.Kind != KindDevice || kf.Sign == nil || kf.Box == nil {
		t.Fatalf("got %+v, want a device key file with both keys", kf)
	}
	other, err := NewDeviceKeys()
	require.NoError(t, err)
	if kf.Sign.Equal(other.Sign) || kf.Box.Marshal() == other.Box.Marshal() {
		t.Errorf("got the same keys twice")
	}
}

func TestKeyKindString(t *testing.T) {
	for k, want := range map[KeyKind]string{KindDevice: "device", KindRoot: "root", KindRelay: "relay", 9: "kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// A key file encrypted to something other than a passphrase is refused as
// a wrong passphrase: there is no passphrase that opens it.
func TestDecryptKeyFileNotScrypt(t *testing.T) {
	plain, err := testKeyFile(t, KindRoot, nil).marshalPlain()
	require.NoError(t, err)
	file, err := ageEncrypt(plain, testX25519Identity(t, "x").Recipient())
	require.NoError(t, err)
	if kf, err := DecryptKeyFile(file, []byte(testPassphrase), KindRoot); kf != nil || !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("got (%v, %v), want (nil, %v)", kf, err, ErrWrongPassphrase)
	}
}

// TestKeyFileWorkFactor reads back the scrypt cost a key file was written
// at, and refuses a file that is not an age scrypt file.
func TestKeyFileWorkFactor(t *testing.T) {
	kf, err := NewDeviceKeys()
	require.NoError(t, err)
	for _, wf := range []int{1, 10, 12} {
		enc, err := EncryptKeyFile(kf, []byte("pass"), wf)
		require.NoError(t, err)
		got, err := KeyFileWorkFactor(enc)
		if err != nil || got != wf {
			t.Fatalf("work factor %d: got (%d, %v)", wf, got, err)
		}
	}
	for _, bad := range []string{"", "age-encryption.org/v1\n-> X25519 abc\n--- x\n", "age-encryption.org/v1\n-> scrypt c2FsdA 99\n--- x\n",
		"age-encryption.org/v1\n-> scrypt c2FsdA 010\n--- x\n", "age-encryption.org/v1\n---\n-> scrypt c2FsdA 10\n"} {
		if _, err := KeyFileWorkFactor([]byte(bad)); !errors.Is(err, ErrKeyFileFormat) {
			t.Fatalf("KeyFileWorkFactor(%q): got %v, want ErrKeyFileFormat", bad, err)
		}
	}
}
