package crypto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"filippo.io/age"
)

// KeyKind says what a key file holds.
type KeyKind byte

const (
	KindDevice KeyKind = 1 // device identity: signing key and age identity
	KindRoot   KeyKind = 2 // org root key (the recovery file): signing key only
	KindRelay  KeyKind = 3 // relay signing key
)

func (k KeyKind) String() string {
	switch k {
	case KindDevice:
		return "device"
	case KindRoot:
		return "root"
	case KindRelay:
		return "relay"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// KeyFile is the content of an identity or recovery file. Meta is opaque to
// this package (the client keeps ids and pins there); it is encrypted with
// the keys.
type KeyFile struct {
	Kind KeyKind
	Sign *SigningKey
	Box  *BoxIdentity // device files only
	Meta []byte
}

// Key file plaintext layout (version 1), inside an age scrypt file:
//
//	magic "fristed-keys" | version 0x01 | kind (1) | ed25519 seed (32)
//	| box identity length (2, big-endian) | box identity string
//	| meta length (4, big-endian) | meta
const (
	keyFileMagic   = "fristed-keys"
	keyFileVersion = 0x01
	maxMetaSize    = 1 << 20
	// DefaultWorkFactor is age's scrypt cost (log2 N) for new key files.
	DefaultWorkFactor = 18
	// maxWorkFactor bounds the scrypt cost accepted from a file.
	maxWorkFactor = 22
)

// Errors from key files.
var (
	ErrWrongPassphrase = errors.New("wrong passphrase (or not a Fristed key file)")
	ErrKeyFileVersion  = errors.New("key file has an unknown version (newer version?)")
	ErrKeyFileFormat   = errors.New("malformed key file")
	ErrKeyFileKind     = errors.New("key file holds another kind of key")
)

// marshalPlain returns the key file's plaintext. Callers must encrypt it;
// EncryptKeyFile does.
func (kf *KeyFile) marshalPlain() ([]byte, error) {
	if kf.Kind < KindDevice || kf.Kind > KindRelay {
		return nil, fmt.Errorf("key file: unknown kind %s", kf.Kind)
	}
	if kf.Sign == nil {
		return nil, errors.New("key file: no signing key")
	}
	var box string
	switch {
	case kf.Kind == KindDevice && kf.Box == nil:
		return nil, errors.New("key file: device without age identity")
	case kf.Kind != KindDevice && kf.Box != nil:
		return nil, errors.New("key file: age identity only in device files")
	case kf.Box != nil:
		box = kf.Box.Marshal()
	}
	if len(kf.Meta) > maxMetaSize {
		return nil, errors.New("key file: meta too large")
	}
	var b bytes.Buffer
	b.WriteString(keyFileMagic)
	b.WriteByte(keyFileVersion)
	b.WriteByte(byte(kf.Kind))
	b.Write(kf.Sign.priv.Seed())
	binary.Write(&b, binary.BigEndian, uint16(len(box)))
	b.WriteString(box)
	binary.Write(&b, binary.BigEndian, uint32(len(kf.Meta)))
	b.Write(kf.Meta)
	return b.Bytes(), nil
}

func parseKeyFilePlain(p []byte) (*KeyFile, error) {
	if !bytes.HasPrefix(p, []byte(keyFileMagic)) {
		return nil, ErrKeyFileFormat
	}
	p = p[len(keyFileMagic):]
	if len(p) < 1 {
		return nil, ErrKeyFileFormat
	}
	if p[0] != keyFileVersion {
		return nil, ErrKeyFileVersion
	}
	if len(p) < 2+SeedSize+2 {
		return nil, ErrKeyFileFormat
	}
	kf := &KeyFile{Kind: KeyKind(p[1])}
	if kf.Kind < KindDevice || kf.Kind > KindRelay {
		return nil, ErrKeyFileFormat
	}
	sk, err := NewSigningKeyFromSeed(p[2 : 2+SeedSize])
	if err != nil {
		return nil, ErrKeyFileFormat
	}
	kf.Sign = sk
	p = p[2+SeedSize:]
	n := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	if len(p) < n+4 {
		return nil, ErrKeyFileFormat
	}
	if n > 0 {
		if kf.Kind != KindDevice {
			return nil, ErrKeyFileFormat
		}
		if kf.Box, err = ParseBoxIdentity(string(p[:n])); err != nil {
			return nil, ErrKeyFileFormat
		}
	} else if kf.Kind == KindDevice {
		return nil, ErrKeyFileFormat
	}
	p = p[n:]
	m := binary.BigEndian.Uint32(p)
	p = p[4:]
	if m > maxMetaSize || uint64(len(p)) != uint64(m) {
		return nil, ErrKeyFileFormat
	}
	if m > 0 {
		kf.Meta = append([]byte(nil), p...)
	}
	return kf, nil
}

// EncryptKeyFile encrypts kf to an age scrypt recipient for passphrase.
// workFactor is scrypt's log2 N, at most 22 (the most DecryptKeyFile
// accepts); 0 means DefaultWorkFactor. Tests pass a low one; age records it
// in the file, so reading needs no flag.
func EncryptKeyFile(kf *KeyFile, passphrase []byte, workFactor int) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("key file: empty passphrase")
	}
	if workFactor < 0 || workFactor > maxWorkFactor {
		// age panics below 1 and above 30, and a file above maxWorkFactor
		// could never be opened again.
		return nil, fmt.Errorf("key file: work factor %d out of range 1..%d", workFactor, maxWorkFactor)
	}
	plain, err := kf.marshalPlain()
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	r, err := age.NewScryptRecipient(string(passphrase))
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if workFactor == 0 {
		workFactor = DefaultWorkFactor
	}
	r.SetWorkFactor(workFactor)
	var out bytes.Buffer
	w, err := age.Encrypt(&out, r)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	return out.Bytes(), nil
}

// DecryptKeyFile opens a key file with passphrase and checks its kind: a
// file of another kind gives ErrKeyFileKind.
func DecryptKeyFile(data, passphrase []byte, want KeyKind) (*KeyFile, error) {
	id, err := age.NewScryptIdentity(string(passphrase))
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	id.SetMaxWorkFactor(maxWorkFactor)
	r, err := age.Decrypt(bytes.NewReader(data), id)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, ErrWrongPassphrase
		}
		return nil, fmt.Errorf("open key file: %v", err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxMetaSize+4096))
	if err != nil {
		return nil, fmt.Errorf("open key file: %v", err)
	}
	defer clear(plain)
	kf, err := parseKeyFilePlain(plain)
	if err != nil {
		return nil, err
	}
	if kf.Kind != want {
		return nil, fmt.Errorf("%w: %s, want %s", ErrKeyFileKind, kf.Kind, want)
	}
	return kf, nil
}

// KeyFileWorkFactor returns the scrypt cost (log2 N) a key file was
// encrypted with, from its age header, so the file can be rewritten at the
// same cost.
func KeyFileWorkFactor(data []byte) (int, error) {
	for _, line := range strings.Split(string(data[:min(len(data), 4096)]), "\n") {
		if line == "---" || strings.HasPrefix(line, "--- ") {
			break
		}
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "->" && f[1] == "scrypt" {
			n, err := strconv.Atoi(f[3])
			if err != nil || n < 1 || n > maxWorkFactor || strconv.Itoa(n) != f[3] {
				break
			}
			return n, nil
		}
	}
	return 0, ErrKeyFileFormat
}

// ChangePassphrase re-encrypts a key file under a new passphrase.
func ChangePassphrase(data, oldPass, newPass []byte, want KeyKind, workFactor int) ([]byte, error) {
	kf, err := DecryptKeyFile(data, oldPass, want)
	if err != nil {
		return nil, err
	}
	return EncryptKeyFile(kf, newPass, workFactor)
}

// NewDeviceKeys makes a device's key pair set.
func NewDeviceKeys() (*KeyFile, error) {
	sk, err := GenerateSigningKey()
	if err != nil {
		return nil, err
	}
	box, err := GenerateBoxIdentity()
	if err != nil {
		return nil, err
	}
	return &KeyFile{Kind: KindDevice, Sign: sk, Box: box}, nil
}
