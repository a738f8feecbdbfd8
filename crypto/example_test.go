package crypto_test

import (
	"bytes"
	"errors"
	"fmt"
	"log"

	fcrypto "github.com/fristed/fristed/crypto"
)

func ExampleSeal() {
	key, err := fcrypto.KeyFromBytes(bytes.Repeat([]byte{7}, fcrypto.KeySize))
	if err != nil {
		log.Fatal(err)
	}
	// The associated data names where the message belongs, so it cannot be
	// moved to another stream, epoch or delta.
	ad := []byte("tenant/stream/epoch 3/delta 9")
	plaintext := []byte("moved to a safe address")
	sealed, err := fcrypto.Seal(key, ad, plaintext)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(sealed), fcrypto.SealedSize(len(plaintext)))

	opened, err := fcrypto.Open(key, ad, sealed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", opened)

	_, err = fcrypto.Open(key, []byte("tenant/stream/epoch 3/delta 10"), sealed)
	fmt.Println(errors.Is(err, fcrypto.ErrSealAuth))
	// Output:
	// 69 69
	// moved to a safe address
	// true
}

func ExamplePadme() {
	for _, n := range []uint64{9, 100, 1028, 65537} {
		fmt.Println(n, fcrypto.Padme(n))
	}
	// Output:
	// 9 10
	// 100 104
	// 1028 1088
	// 65537 67584
}

func ExampleSigningKey_Sign() {
	key, err := fcrypto.NewSigningKeyFromSeed(bytes.Repeat([]byte{1}, fcrypto.SeedSize))
	if err != nil {
		log.Fatal(err)
	}
	msg := []byte("hash of a batch")
	sig, err := key.Sign(fcrypto.LabelBatch, msg)
	if err != nil {
		log.Fatal(err)
	}
	pub := key.Public()
	fmt.Println(pub)
	fmt.Println(pub.Verify(fcrypto.LabelBatch, msg, sig))
	// The same bytes presented in another role do not verify.
	fmt.Println(pub.Verify(fcrypto.LabelStatement, msg, sig))
	// Output:
	// fpub1iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w
	// <nil>
	// signature does not verify
}

func ExampleFingerprint_CheckCode() {
	root, err := fcrypto.NewSigningKeyFromSeed(bytes.Repeat([]byte{2}, fcrypto.SeedSize))
	if err != nil {
		log.Fatal(err)
	}
	f := fcrypto.OrgFingerprint(root.Public())
	fmt.Println(f)
	fmt.Println(f.CheckCode())

	parsed, err := fcrypto.ParseFingerprint(f.String())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(parsed.Equal(f))
	// Output:
	// fristed-org1r4qoiawmpegtkfqzik3u3d35zrjrjm54hpzcihjisbdoyt23vwgq
	// 5OAU-35KZ-VDTJ-ZGTC
	// true
}

func ExampleEnrolmentCode() {
	device, err := fcrypto.NewSigningKeyFromSeed(bytes.Repeat([]byte{3}, fcrypto.SeedSize))
	if err != nil {
		log.Fatal(err)
	}
	requestID := bytes.Repeat([]byte{0x42}, 16)
	recipient := "age1pq1..." // the device's age recipient, as posted to the relay
	c := fcrypto.EnrolmentCommitment(requestID, device.Public(), recipient)
	code := fcrypto.EnrolmentCode(requestID, c)
	fmt.Println(code)
	fmt.Println(fcrypto.ShortCode(c))

	// The coordinator types the code and checks the keys the relay returns.
	fmt.Println(fcrypto.CheckEnrolment(code, device.Public(), recipient))
	other, err := fcrypto.NewSigningKeyFromSeed(bytes.Repeat([]byte{4}, fcrypto.SeedSize))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(errors.Is(fcrypto.CheckEnrolment(code, other.Public(), recipient), fcrypto.ErrEnrolmentMismatch))
	// Output:
	// EIJBEE-QSCIJ-BEEQS-CIJBE-EQSCI-LX55Z-3ZCRG-HH2GP-54ETU
	// 355 761
	// <nil>
	// true
}

func ExampleWrapKey() {
	device, err := fcrypto.GenerateBoxIdentity()
	if err != nil {
		log.Fatal(err)
	}
	epochKey, err := fcrypto.NewKey()
	if err != nil {
		log.Fatal(err)
	}
	// The coordinator signs the commitment in an "epoch started" statement
	// and wraps the key to the stream's devices.
	context := []byte("tenant/stream/epoch 3")
	commitment := epochKey.Commitment(context)
	wrapped, err := fcrypto.WrapKey(epochKey, device.Recipient().Recipient())
	if err != nil {
		log.Fatal(err)
	}
	key, err := fcrypto.UnwrapKey(wrapped, context, commitment, device.Identity())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(key.Equal(epochKey))

	// Anyone can wrap a key to the device; it is refused without the
	// coordinator's commitment.
	planted, err := fcrypto.NewKey()
	if err != nil {
		log.Fatal(err)
	}
	forged, err := fcrypto.WrapKey(planted, device.Recipient().Recipient())
	if err != nil {
		log.Fatal(err)
	}
	_, err = fcrypto.UnwrapKey(forged, context, commitment, device.Identity())
	fmt.Println(err)
	// Output:
	// true
	// wrapped key does not match its signed commitment
}

func ExampleSealEnvelope() {
	police, err := fcrypto.GenerateBoxIdentity() // or a stock age-keygen X25519 key
	if err != nil {
		log.Fatal(err)
	}
	release, err := fcrypto.GenerateBoxIdentity() // held by the relay, one per alarm
	if err != nil {
		log.Fatal(err)
	}
	card := []byte("ALARM CARD\nresident: R-14")
	inner, outer, err := fcrypto.SealEnvelope(card, police.Recipient().Recipient(), release.Recipient())
	if err != nil {
		log.Fatal(err)
	}
	commitment := fcrypto.InnerCommitment(inner) // in the signed "envelope sealed" statement

	// On release the relay strips the outer layer; the police check the
	// inner layer against the statement and open it.
	released, err := fcrypto.OpenOuter(outer, release)
	if err != nil {
		log.Fatal(err)
	}
	if err := fcrypto.CheckInner(released, commitment); err != nil {
		log.Fatal(err)
	}
	opened, err := fcrypto.OpenInner(released, police.Identity())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", opened)
	// Output:
	// ALARM CARD
	// resident: R-14
}

func ExampleEncryptKeyFile() {
	keys, err := fcrypto.NewDeviceKeys()
	if err != nil {
		log.Fatal(err)
	}
	// A low work factor for the example; 0 means DefaultWorkFactor.
	file, err := fcrypto.EncryptKeyFile(keys, []byte("passphrase"), 10)
	if err != nil {
		log.Fatal(err)
	}
	opened, err := fcrypto.DecryptKeyFile(file, []byte("passphrase"), fcrypto.KindDevice)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(opened.Kind, opened.Sign.Equal(keys.Sign))
	_, err = fcrypto.DecryptKeyFile(file, []byte("wrong"), fcrypto.KindDevice)
	fmt.Println(errors.Is(err, fcrypto.ErrWrongPassphrase))
	_, err = fcrypto.DecryptKeyFile(file, []byte("passphrase"), fcrypto.KindRoot)
	fmt.Println(errors.Is(err, fcrypto.ErrKeyFileKind))
	// Output:
	// device true
	// true
	// true
}
