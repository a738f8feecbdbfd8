// Package crypto holds Fristed's keys and the few cryptographic operations
// built on them. It takes and returns plain bytes and knows nothing of the
// wire formats in syncproto, so both the relay and the client can use it
// without an import cycle. Import it as fcrypto: it shadows the standard
// library's crypto package.
//
// Nothing here is a new primitive. Signatures are Ed25519ctx (RFC 8032) with
// the context set to a role label; public-key encryption is age, with the
// hybrid ML-KEM-768 + X25519 recipients for device keys; symmetric sealing is
// XChaCha20-Poly1305; hashes are SHA-256 with a label prefix.
//
// # Keys
//
//   - The org root key (Ed25519) signs only coordinator delegations and
//     coordinator revocations. It exists only in a recovery file encrypted
//     with an age scrypt passphrase, kept offline.
//   - Each device has an Ed25519 signing key and an age hybrid identity, held
//     in an identity file encrypted the same way.
//   - The relay has an Ed25519 signing key for the facts it attests.
//   - Each stream (resident case) has one random 32-byte key per epoch. A
//     coordinator signs a commitment to it; it reaches devices wrapped to
//     their age recipients, and a device accepts it only if it matches the
//     commitment.
//
// # Labels
//
// Every signature is made under a Label, which Ed25519ctx binds into the
// signature: a signature made for one role never verifies in another.
//
// # Secrets
//
// Private and symmetric keys have no String method, are compared in
// constant time, and never appear in an error.
package crypto
