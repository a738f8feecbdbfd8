// Package vault is the durable, encrypted home of one device's replica: an
// age-encrypted snapshot plus an append-only journal of sealed frames, one
// per acknowledged edit. The replica's bytes and the frames are opaque here;
// the caller decides what they mean.
//
// The package keeps two promises (DESIGN-NOTES property 6): a laptop stolen
// while the app is closed reveals nothing without the device identity (which
// lives in a passphrase-encrypted file elsewhere), and an edit whose Append
// returned nil survives a crash or power loss.
//
// # Files
//
// A vault is a directory (mode 0700) holding two files (mode 0600):
//
//	replica.age   age file to the device's own recipient; its plaintext is
//	              "fristed-replica" | 0x01 | journal id (16) | vault key (32) |
//	              state length (8, big-endian) | state
//	journal       "fristed-journal" | 0x01 | journal id (16) | frame*
//	frame         length (4, big-endian) | fcrypto.Seal(vault key,
//	              ad = journal id | seq (8, big-endian), payload)
//
// Frames are numbered from 1. The journal id and the vault key are fresh at
// every compaction, so a frame is bound to one journal and one position in
// it: frames cannot be reordered, and a journal left over from before a
// compaction cannot be mistaken for the current one. The snapshot carries
// the only copy of the vault key, so the journal is unreadable without the
// device identity.
//
// # Durability
//
// Both files are replaced the same way: write a temporary file
// (replica.age.tmp, journal.tmp), fsync it, rename it over the old one, fsync
// the directory. Temporary files hold ciphertext only. Append writes one
// frame and fsyncs the journal before it returns; if either step fails the
// journal is truncated back, so the frame is not committed and the vault
// stays usable.
//
// Compact writes the new snapshot first and the new journal second. A crash
// between the two leaves a journal whose id differs from the snapshot's; its
// frames are already folded into the snapshot, so Open ignores them and
// writes a fresh journal.
//
// Open accepts only one kind of damage, the kind a crash during Append
// leaves: a last frame that is incomplete, has a length no frame can have,
// or fails authentication (a torn tail). It is dropped, reported through
// Options.Warn, and the journal is truncated to the last good frame. A
// crash can spoil only the last write, because each frame is synced before
// the next is written; so a bad frame after which any frame of the journal
// still authenticates was committed, and is a *CorruptError naming the file
// and the byte offset. A committed edit is never dropped silently.
//
// # Limits
//
// Damage to the last committed frame looks exactly like a torn write, and
// that frame is dropped with a warning. Such damage comes from failing
// hardware or from someone with write access to the disk, who could delete
// the files anyway; neither is a crash, which is what the journal is built
// to survive. The length prefix is not authenticated on its own; a damaged
// one is found like any other damage, by the frames that authenticate after
// it. The search for them checks each later offset for a plausible frame (a
// Padme-sized length and the seal version byte) before trying to open it,
// so it costs little, and it runs only when a frame fails.
//
// One Vault at a time may use a directory: the package takes no lock, so
// two processes appending to one journal would overwrite each other's
// frames. The caller serialises access to the device directory.
package vault
