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
