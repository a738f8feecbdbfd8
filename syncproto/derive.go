package syncproto

import fcrypto "github.com/fristed/fristed/crypto"

// DeviceIDFromKey derives a device's id from its signing key, so a new
// device knows its id before it is approved without being told by anyone.
func DeviceIDFromKey(pub fcrypto.PublicKey) DeviceID {
	h := fcrypto.LabeledHash("fristed/v1/device-id", pub[:])
	var id DeviceID
	copy(id[:], h[:16])
	return id
}

// ReleaseRequestHash is the hash of a release request's client nonce that
// the relay keeps and signs into the "envelope released" fact. The label
// keeps it apart from every other hash.
func ReleaseRequestHash(nonce []byte) Hash {
	return Hash(fcrypto.LabeledHash("fristed/v1/release-nonce", nonce))
}

// ReleaseCode is the short form of an "envelope released" statement's hash:
// what the releasing police client prints and what coordinators see beside
// the release, so both sides can compare by phone that they speak of the
// same recorded release (a relay that shows the police a chain of its own
// signs a release the organisation never sees).
func ReleaseCode(statement Hash) string {
	h := fcrypto.LabeledHash("fristed/v1/release-code", statement[:])
	return fcrypto.GroupedCode(h[:5])
}
