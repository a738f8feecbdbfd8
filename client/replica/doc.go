// Package replica is the case model and its deterministic merge: one
// device's copy of the streams it can read, in a SQLite database held in
// memory.
//
// # Storage
//
// A Replica is one in-memory SQLite connection (temp_store=MEMORY,
// secure_delete=ON). It is created empty with New, saved as bytes with
// Serialize and restored with Load; the client keeps those bytes encrypted
// in its vault, so the case data never touches the disk in the clear. The
// schema is built by ordered migrations counted in user_version; Load runs
// any that a replica written by an older build lacks and refuses one
// written by a newer build (ErrSchemaTooNew). The client keeps its own
// bookkeeping tables (local_*) in the same database, through DB.
//
// Superseded values, removed entries and records, and purged streams are
// deleted, and secure_delete zeroes the space they held, so they are not
// in the next Serialize: an old secret address does not linger.
//
// # Case model
//
// The kinds and fields are in Schema (and SCHEMA.md, generated from it).
// A kind is of one of two classes. A record kind (ClassRecord) has
// fields that are registers and can be set again; a record is added with
// NewRecordOps, changed with SetOps and removed with RemoveOps. The
// resident's own record (kind "resident") is a singleton with the zero
// record id. An entry kind (ClassEntry: log entries, evaluations, audit
// events) is immutable: it is added with all its fields, as a canonical
// JSON body, and can only be removed. The ops builders validate a local
// edit against the schema; Apply does not, so a field a newer build wrote
// is kept and merged like any other.
//
// # Merge
//
// Every edit is a delta: an author device, a hybrid logical clock reading
// and ops. Apply merges a delta; it is idempotent (the delta id is
// remembered with a hash of its content) and commutative: replicas that
// applied the same set of deltas, in any order and with any duplicates,
// hold the same state, and Dump gives the same bytes on each.
//
// A register write's version is (clock, author device), ordered by clock
// (wall time, then logical counter) and then by the device id's bytes. An
// OpSet's Value is
//
//	[u8 n][n × base: wall u64 | logical u32 | device 16 bytes, big-endian][value bytes]
//
// where the bases are the versions of the register's heads the writer saw
// (SetOps fills them in). A write supersedes every write whose version is
// among its bases; the heads of a register are the writes no known write
// supersedes. Supersession follows what the writer saw, not the clocks: a
// write made after seeing another replaces it even if the writer's clock
// is behind. Because the set of known writes only grows, a write that is
// superseded stays superseded, whatever arrives later, which is what makes
// the merge independent of delivery order. The replica keeps every write's
// version and bases, and every version named as a base (also when the
// write it names has not arrived yet), but only the heads' values.
//
// The rules, docs-ready:
//
//	| Op | Target | Kept | Rule | Shown |
//	|---|---|---|---|---|
//	| OpSet | one register: (stream, kind, record, field) | every write's version, delta and bases; the values of heads only | a write supersedes the writes whose versions are its bases; heads are the writes nothing known supersedes | the greatest head by (clock, device id, delta id): last writer wins |
//	| OpSet, 2+ heads | the same register | all heads' values | concurrent writes: none saw the other | the greatest head, and a conflict listing every head's value, newest first; a later SetOps takes all heads as bases and so resolves it |
//	| OpAdd | an element: (stream, kind, id) | the body (for a record: an empty marker) | grow-only set; a second add of the same id keeps the greater body (only a faulty author sends two) | the element, unless removed |
//	| OpRemove | an element, or a whole record (same kind and id) | a tombstone, forever | the removal wins whatever the order: adds and sets of that id that arrive later are dropped, and the record's writes and element are deleted | nothing |
//	| any | a delta id applied before | the delta's hash | same content: nothing happens; other content: ErrDeltaConflict, nothing changes | - |
//
// A delta that breaks the encoding (a set value shorter than its bases, a
// register set twice in one delta, an op type out of range) is refused
// whole with ErrMalformed, on every replica alike.
//
// # Views
//
// Resident reads a case for display: the resident's fields (with
// planned_move_out filled in as arrived + 6 months when unset), records by
// kind, the log by time, and the conflicts. Sealed fields, and fields this
// build does not know, are shown as Masked unless the caller asks for a
// reveal, which the client audits. Records reads one kind unmasked for the
// client's own use. Dump is the canonical text of everything, for tests
// and diagnosis.
package replica
