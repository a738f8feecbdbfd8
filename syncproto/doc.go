// Package syncproto defines Fristed's wire and statement formats, their
// canonical encoding, and the admin-chain verifier. It does no I/O: only it
// turns protocol values into bytes and back.
//
// # Encoding
//
// Every message starts with a version byte (Version, 0x01) and a type byte
// (MsgType). Fields follow in a fixed order: identifiers as 16 raw bytes,
// hashes as 32, public keys as 32, signatures as 64, integers as fixed-width
// big-endian, strings with a 2-byte big-endian length, blobs with a 4-byte
// one, booleans as 0x00 or 0x01. Sets (the devices of an epoch) are sorted
// and free of duplicates. Decoders accept exactly the bytes the encoder
// produces: any other version, a short read, trailing bytes, an unsorted
// set or an out-of-range enum is an error, so every value has one encoding
// and a hash or signature over it means one thing.
//
// # Delta
//
//	01 01 | tenant | stream | epoch u32 | author | delta id | hlc wall ms u64 | hlc logical u32
//	| op count u32 | ops: type u8, kind str, record id, field str, value blob
//
// A delta is sealed (crypto.Seal, XChaCha20-Poly1305 with Padme padding)
// under its stream's epoch key, with DeltaAD (tenant, stream, epoch, delta
// id) as associated data.
//
// # Batch
//
//	01 02 | tenant | stream | epoch u32 | author | counter u64 | prev batch hash
//	| chain head pos u64 | chain head hash | created ms u64 | n u32
//	| n x (delta id, sha256 of sealed delta) | signature | n x sealed delta blob
//
// The signature (LabelBatch) covers everything before it, and with it the
// hash of every sealed delta: one signature per batch. The batch hash (its
// identity and idempotency key) is SHA-256 of the signed part.
//
// # Receipt
//
//	01 03 | tenant | stream | seq u64 | batch hash | receipt ms u64 | relay signature (LabelReceipt)
//
// # Statement
//
//	01 04 | tenant | pos u64 | prev statement hash | signer kind u8 | signer device
//	| time ms u64 | statement type u8 | body | signature (LabelStatement)
//
// The statement hash is SHA-256 of the whole encoding, signature included;
// the next statement's prev names it. Bodies carry ids, hashes, numbers and
// public keys only. Chain verifies a chain against a pinned org fingerprint
// (the hash of the root key in the genesis statement) and derives State,
// from which the relay takes its access control and clients their view.
//
// # Other messages
//
// Snapshot (01 05), enrolment request (01 06), auth proof (01 07) and
// wrapped key (01 08) follow the same rules; see their types. A snapshot's
// sealed content is a SnapshotContent (01 09): one stream's replica state
// and merge metadata in a canonical order, so two replicas in the same
// state give the same bytes (see its type for the layout).
//
// The enrolment name (01 09) is what an enrolment request's Sealed part
// age-encrypts to the coordinators: the header, then the device name laid
// out as a sealed box's body (length u32 | name | zero padding) to exactly
// 256 bytes in all, so the age file's length does not depend on the name.
//
// # Errors
//
// Code is the closed, append-only set of error codes that travel on the
// wire; CodeOf maps this package's sentinels to them.
package syncproto
