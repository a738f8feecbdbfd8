// Package client is a Fristed device: an unlocked identity, its encrypted
// offline replica and the sync engine, with one method per user action. The
// command-line tool (client/cmd/fristed), the local web UI and the mobile
// facade are thin layers over it.
//
// # Lifecycle
//
// A device directory (FRISTED_HOME) holds two files that matter:
// identity.age (the device's keys and configuration, age-encrypted with a
// scrypt passphrase) and the vault (replica.age and journal, see
// client/vault). Open unlocks both with the passphrase; every edit is
// appended to the journal and fsynced before the call returns; Close folds
// the journal into a new snapshot. Nothing is written in plaintext.
//
// # Sync
//
// Edits wait in an outbox inside the replica and are sealed at push time
// under the newest epoch key the device holds; pulled batches are verified
// against the admin chain, opened and merged. Admin actions (coordinators)
// are statements appended to the chain on the relay; they need the relay.
//
// Sync also carries out what the chain decides about data this device
// holds: a case purged after its retention period is deleted with its keys
// (purge.go), and a stream that holds edits a compromised-since revocation
// voided is rebuilt from verified history without them (rebuild.go).
//
// Long histories are cut short by snapshots (snapshot.go): a worker device
// (a coordinator device for a stream no worker reads) posts a sealed,
// signed image of a stream's state and merge metadata, a coordinator
// device countersigns it after rebuilding the same state from the history,
// the relay then prunes after its keep window, and a device new to the
// stream starts from the newest usable countersigned snapshot
// (snapbase.go: after a compromised-since revocation, one countersigned
// before the point or after the revocation).
package client
