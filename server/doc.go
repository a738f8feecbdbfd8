// Package server is Fristed's relay, fristed-relay: a minimal-knowledge
// sync server. It passes sealed batches between a tenant's devices, keeps
// each tenant's admin chain, and enforces the access control that chain
// states, which it verifies itself. It never holds plaintext: batches,
// snapshots, enrolments and wrapped keys are opaque signed or encrypted
// bytes to it. It learns tenant ids, random device, worker and stream ids,
// public keys, padded ciphertext sizes, times, and which device talks to
// which stream; it stores no client address and logs none.
//
// This comment is the contract clients are written against.
//
// # Conventions
//
// Protocol messages (statements, batches, receipts, snapshots, enrolments,
// auth proofs, wrapped keys) travel as their canonical syncproto bytes:
// as the request body with Content-Type application/octet-stream, or
// base64 (standard alphabet, padded) inside JSON. Every other body is
// JSON. Ids are in their printed form (t_..., d_..., s_..., r_...),
// hashes as h_..., numbers (positions, sequence numbers, epochs) as JSON
// numbers.
//
// Every error answer is
//
//	{"code": "<syncproto.Code>", "message": "one line"}
//
// with the HTTP status code.Status() gives. A client's mistake never gets
// a 5xx: 500 internal is a relay bug, 503 unavailable a store that did not
// answer (both worth a retry). A body whose first byte is not the format
// version (0x01) is answered 400 unknown_version; any other undecodable
// message 400 bad_request. An unknown path or method is 404 not_found.
// The revocation answer (403 device_revoked) adds
//
//	"revocation": b64 the DeviceRevoked statement naming the device,
//	"chain":      [b64 every statement from genesis]
//
// which the device verifies against its pinned org fingerprint before it
// wipes; the relay then appends, once per revoked device, a "device
// refused" fact it signs itself.
//
// Limits: JSON bodies 64 KiB, statements 64 KiB, auth proofs 4 KiB,
// enrolments 80 KiB, wrapped keys 1 MiB (a batch of them 8 MiB and at
// most MaxKeyBatch (256) keys), batches 8 MiB and at most
// MaxDeltasPerBatch (500) deltas, snapshots 64 MiB; over a limit is 413
// too_large. Public routes are rate limited per client address, the
// others per device, and a request with no valid token counts against its
// address: 429 rate_limited.
//
// # Public routes
//
//	GET  /healthz
//	     200 {"status": "ok"}
//	GET  /v1/relay
//	     200 {"relay_key": "fpub1...", "version": 1}
//	GET  /v1/orgs/{org fingerprint}
//	     200 {"tenant": "t_..."}; 404 not_found. How a new device that
//	     knows only the relay and the org fingerprint finds its tenant.
//	POST /v1/tenants
//	     {"invite": TOKEN, "genesis": b64, "statements": [b64...]}
//	     201 {"tenant": "t_..."}. The genesis is a root-signed "tenant
//	     created" naming this relay's key; "statements" (optional, at most
//	     64) follow it in order, e.g. the first coordinator's delegation.
//	     All are verified before the invite is consumed (atomically, once).
//	     401 unauthorized for an unknown, used or expired invite; 409
//	     conflict if the tenant or org exists; 422 invalid_statement /
//	     bad_signature if the chain does not verify.
//	GET  /v1/t/{tenant}/enrol-info
//	     200 {"statements": [b64...], "head": {"pos": N, "hash": "h_..."}}:
//	     the genesis and every root-signed statement (coordinator
//	     delegations and revocations) in chain order, what a new device
//	     needs to seal its name to the coordinators, and the head a root
//	     statement extends.
//	     404 not_found for an unknown tenant.
//	POST /v1/t/{tenant}/enrolments          body: Enrolment bytes
//	     201 {"request": "r_..."}. The self-signature is verified (422
//	     bad_signature); kept for 7 days; the same request again is a
//	     no-op, another request under the same id 409 conflict.
//	POST /v1/t/{tenant}/auth/challenge      {"device": "d_..."}
//	     200 {"nonce": b64 32 bytes}, single use, valid 2 minutes. The
//	     answer is the same for unknown tenants and devices.
//	POST /v1/t/{tenant}/auth/token          body: AuthProof bytes
//	     200 {"token": JWT, "expires_in": seconds (900)}. The proof must
//	     name this tenant, this relay's key and an unused nonce, be signed
//	     by the device's key from the chain, and SignedMS be within 5
//	     minutes of the relay's clock; else 401 unauthorized. A revoked
//	     device gets 403 device_revoked (after its signature is checked).
//	     Records the device's last-seen day.
//	POST /v1/t/{tenant}/chain/root          body: Statement bytes
//	     201 {"pos": N, "hash": "h_..."}. A root-signed statement posted
//	     without a login (org recover: the root signature is the
//	     credential); anything else 401 unauthorized. Errors as for
//	     POST /chain.
//	POST /v1/t/{tenant}/chain/root-read?from=N&limit=M   body: AuthProof
//	     200 {"statements": [b64...], "head": pos}, as GET /chain, for the
//	     holder of the org root key, who has no device yet: org recover
//	     verifies the whole chain before the root signs on its head. The
//	     proof names this tenant, the zero device id
//	     (d_aaaaaaaaaaaaaaaaaaaaaaaaaa, also sent to /auth/challenge) and
//	     this relay's key, is signed by the root key from the genesis over
//	     an unused nonce, and SignedMS is within 5 minutes of the relay's
//	     clock; one nonce reads one page. Anything else 401 unauthorized.
//
// # Authenticated routes
//
// Send "Authorization: Bearer <token>". A header over 4 KiB is refused
// with 413 too_large before it is parsed. The token is an EdDSA JWT signed
// with the relay's token key (not its protocol key); issuer
// "fristed-relay/<relay key>", audience the tenant id, subject the device
// id, issued-at, expiry, and "ver", the device's token version. Anything
// else (another algorithm, another key, expired, no expiry, another
// tenant, a stale version) is 401 unauthorized: log in again. Every
// request re-reads the token version and the chain, so a revocation takes
// effect on the revoked device's next request: 403 device_revoked with the
// proof. "Coordinators" below means coordinator devices; a worker device
// gets 403 forbidden there.
//
//	GET  /v1/t/{tenant}/chain?from=N&limit=M          (limit <= 1000)
//	     200 {"statements": [b64...], "head": pos}
//	POST /v1/t/{tenant}/chain                 body: Statement bytes
//	     201 {"pos": N, "hash": "h_..."}. A device-signed statement must
//	     be signed by the logged-in device (403 forbidden); a root-signed
//	     one may be posted by any coordinator; relay facts never (403).
//	     409 chain_conflict if it does not extend the head (fetch the
//	     chain and sign again); 422 bad_signature; 422 invalid_statement
//	     if the signer lacks the authority or it contradicts the chain.
//	     A "device revoked" bumps the device's token version and destroys
//	     the wrapped keys waiting for that device; a "snapshot
//	     countersigned" prunes the stream as the snapshot retention rule
//	     below allows (422 invalid_statement if it is dated more than 10
//	     minutes before the relay's clock); "stream purged" deletes the
//	     stream's batches, snapshots and wrapped keys for good (SQLite
//	     secure_delete and a WAL checkpoint, then a KEK rotation). The
//	     chain takes a purge only of a closed resident stream, signed at
//	     or after its signed closing time plus the retention period; the
//	     relay also answers 422 invalid_statement to one dated more than
//	     10 minutes after its own clock.
//	GET  /v1/t/{tenant}/enrolments/{request}          (coordinators)
//	     200 the enrolment bytes; 404 not_found (or expired)
//	DELETE /v1/t/{tenant}/enrolments/{request}        (coordinators)
//	     204
//	POST /v1/t/{tenant}/streams/{stream}/batches      body: Batch bytes
//	     200 {"seq": N, "receipt": b64 Receipt}. Tenant and stream must
//	     match the URL (400), the author must be the logged-in device
//	     (403 forbidden), the signature verify with the author's key (422
//	     bad_signature), the batch's chain head be a head of this chain
//	     (400), and State.CheckBatch(author, stream, epoch, head pos)
//	     pass: 403 not_assigned, 409 epoch_superseded (re-seal under the
//	     newest epoch), 409 unknown_epoch, 403 device_revoked. The
//	     superseded-epoch exception applies: a device removed from the
//	     stream may still deliver batches written under a chain head
//	     older than the epoch that removed it. An audit stream is
//	     append-only for every active device of the tenant, in or out of
//	     its epoch (each entry is sealed to the epoch's audit recipient,
//	     which an "audit recipient" statement names and only holders of
//	     the epoch key - the coordinators - can open, or before that
//	     statement to the epoch's devices), under the current epoch only: no exception
//	     there. A delta id already in the
//	     stream is 409 conflict. Sending an accepted batch again returns
//	     its first seq and the same receipt bytes, even if the chain has
//	     moved on since.
//	GET  /v1/t/{tenant}/streams/{stream}/batches?after=N&limit=M[&wait=S]
//	     200 {"batches": [{"seq": N, "raw": b64, "receipt": b64}], "head": N}
//	     Batches with seq > after, in order, at most limit (default 100,
//	     at most 1000) and about 16 MiB. The device must be in the
//	     stream's current epoch (403 not_assigned: so only coordinators
//	     read the audit stream). 410 pruned if after is
//	     below the pruned point: start from the snapshot. With wait=S
//	     (capped at 60) and nothing new, it waits up to S seconds and
//	     answers as soon as a batch lands (through any relay process
//	     sharing the database), re-checking access when it wakes; an
//	     empty list means nothing arrived.
//	GET  /v1/t/{tenant}/streams/{stream}/head
//	     200 {"head": N, "pruned": N}
//	     for a stream the device can read, and for the tenant's audit
//	     stream for every active device (each appends to it and compares
//	     its own receipts with the head); else 403 not_assigned.
//	POST /v1/t/{tenant}/heads
//	     {"streams": {"s_...": seq}, "chain": pos, "wait": seconds}
//	     200 {"streams": {"s_...": {"head": N, "pruned": N}}, "chain": pos}
//	     for every stream the device can read. With wait > 0 (capped at
//	     60) it answers as soon as anything differs from what was sent (a
//	     readable stream missing from the request counts as 0; a stream
//	     sent that the device can no longer read is a difference); chain
//	     changes made through another relay process are noticed within 5
//	     seconds.
//	PUT  /v1/t/{tenant}/streams/{stream}/snapshot     body: Snapshot bytes
//	     201 {"hash": "h_..."}. Author must be the logged-in device (403
//	     forbidden), able to read the stream (403 not_assigned); signature
//	     (422 bad_signature); epoch known (409 unknown_epoch); 0 < seq <=
//	     the stream's head (400). The stream is then pruned as the
//	     retention rule allows (the upload may be the countersigned
//	     snapshot it waited for).
//	GET  /v1/t/{tenant}/streams/{stream}/snapshot[?hash=h_...]
//	     200 the latest snapshot's bytes (with hash: that snapshot's, e.g.
//	     the one a countersignature names), header X-Fristed-Seq: its seq;
//	     404 not_found if none; 400 for a malformed hash. Snapshots below
//	     the pruned point are gone; the countersigned one a stream was
//	     pruned to stays, and so does every later one.
//	PUT  /v1/t/{tenant}/keys                  body: WrappedKey bytes (coordinators)
//	     One key; coordinators send several with POST /keys/batch.
//	     201 {}. The stream must exist (404), the epoch too (409
//	     unknown_epoch), the target device be one of that epoch's devices
//	     or of the current one (403 not_assigned) and not revoked (403
//	     forbidden). An epoch only void statements started (a re-key by a
//	     coordinator device after its compromised-since point) counts as
//	     existing, for a device of the current epoch only: honest devices
//	     may have sealed batches under it. Replaces an earlier copy for
//	     the same stream, epoch and device.
//	POST /v1/t/{tenant}/keys/batch            (coordinators)
//	     body {"keys": [b64 WrappedKey...]}, 1 to MaxKeyBatch (256) keys,
//	     body at most 8 MiB. 201 {"stored": n}. Each key is checked as
//	     PUT /keys checks one, with the same codes; the batch is stored in
//	     one transaction, all or nothing: the first refused key refuses
//	     it, the message naming its index ("key 3: the device is
//	     revoked"), and nothing is stored. Also 400 for an empty batch,
//	     malformed JSON or base64, or two keys for the same stream, epoch
//	     and device; 413 too_large for more than MaxKeyBatch keys.
//	GET  /v1/t/{tenant}/keys
//	     200 {"keys": [b64 WrappedKey...]}: every copy addressed to the
//	     calling device not yet acknowledged.
//	DELETE /v1/t/{tenant}/keys/{stream}/{epoch}
//	     204. The calling device holds the key: its copy is destroyed
//	     (and the KEK rotated, see below). Idempotent. Kept for older
//	     clients; a sync acknowledges with POST /keys/ack.
//	POST /v1/t/{tenant}/keys/ack
//	     body {"keys": [{"stream": "s_...", "epoch": n}...]}, 1 to
//	     MaxKeyBatch entries. 204. The calling device holds these keys:
//	     its copies are destroyed in one transaction and the KEK rotated
//	     once for all of them, before the answer. Copies already gone are
//	     no error (idempotent). 400 for an empty list, a malformed entry
//	     or the same stream and epoch twice (naming the entry's index),
//	     413 too_large for more than MaxKeyBatch: nothing is destroyed.
//	GET  /v1/t/{tenant}/devices/last-seen             (coordinators)
//	     200 {"d_...": "YYYY-MM-DD"} (UTC days, set at each login)
//
// # Snapshot retention
//
// The relay prunes a stream (deletes the batches up to a snapshot and the
// snapshots before it, and answers 410 pruned below it) only to the newest countersigned snapshot whose countersignature
// has stood for the keep window (serve --snapshot-keep, default 720h = 30
// days; 0 prunes at once), counted from the countersignature's signed
// time, which the relay refuses if it is more than 10 minutes behind its
// own clock; countersignatures the chain voids (a compromised-since
// revocation) do not count, nor any signed between a device's
// compromised-since point and its revocation (it may vouch for that
// device's void edits; the relay cannot see a snapshot's authors). It checks at each countersignature and each
// snapshot upload of the stream. So after a newer countersignature, the
// previous countersigned snapshot and every batch after it stay for at
// least the window: if a coordinator laptop is stolen and revoked as
// compromised within the window after the compromise point, each stream still has a snapshot
// countersigned before the compromise and the history after it, from
// which every device rebuilds (client/snapbase.go), however many
// countersignatures the thief signed meanwhile. The cost is keeping up to
// one snapshot interval plus the window of history per stream.
//
// # Sealed alarm envelopes
//
// An envelope has two layers: the inner one, the signed card age-encrypted
// to the police contact (the relay cannot read it), and the outer one,
// the inner layer padded to a fixed size and encrypted to a one-time
// hybrid release identity that the relay makes and keeps sealed under the
// KEK (secret kind "release", name "<alarm>/<generation>"). Every outer
// layer has the same size. The alarm id (a_...) and the release
// credential's secret stay the same across re-seals.
//
//	POST /v1/t/{tenant}/envelopes/{alarm}/release-key  (coordinators)
//	     200 {"recipient": "age1pq1...", "generation": N}: a fresh release
//	     recipient for the alarm's next generation (the chain's latest
//	     "envelope sealed" generation + 1, or 1). Every earlier release
//	     identity of the alarm is destroyed first (and the KEK rotated), so
//	     an outer layer sealed to one of them can never be opened again,
//	     and the envelope cannot be released until the new generation is
//	     uploaded. Asking again replaces the key of the same generation.
//	PUT  /v1/t/{tenant}/envelopes/{alarm}                (coordinators)
//	     {"generation": N, "outer": b64, "secret_hash": "h_..."}
//	     201 {"generation": N}. secret_hash is syncproto.Hash of the
//	     SHA-256 of the release credential's 32-byte secret. The chain must
//	     hold a coordinator-signed "envelope sealed" statement for the
//	     alarm whose generation is N (404 not_found if there is none for
//	     the alarm, 409 conflict for another generation, or if that
//	     generation was released); the outer layer must be the fixed size
//	     (400 bad_request), sealed to generation N's release key (409
//	     conflict if that key does not exist: ask for one), and hold an
//	     inner layer whose commitment (crypto.InnerCommitment) is the
//	     statement's (422 invalid_statement otherwise). Replaces an earlier
//	     generation's outer layer and clears its release; the same upload
//	     again is a no-op.
//	POST /v1/t/{tenant}/envelopes/{alarm}/release        (no login)
//	     {"secret": b64 32 bytes, "nonce": b64 16 to 32 random bytes}
//	     200 {"inner": b64 the inner layer (an age file),
//	          "sealed_statement": b64 the "envelope sealed" statement,
//	          "proof": [b64 every statement from genesis up to and
//	                    including the relay-signed "envelope released"
//	                    fact of this request],
//	          "sealed_at": RFC 3339, "released_at": RFC 3339,
//	          "retry": false}
//	     The secret is the credential. An unknown tenant, an unknown alarm
//	     and a wrong secret get the same 404 not_found with the same
//	     message. The first release wins, across every relay process: the
//	     relay strips the outer layer, destroys the release identity (KEK
//	     rotation), appends a relay-signed "envelope released" fact to the
//	     chain and answers. The same request again (same nonce) within 10
//	     minutes gets the same inner layer with "retry": true and finishes
//	     whatever the first attempt left undone (it is not a new release);
//	     any other request gets 409 already_released "already released at
//	     <RFC 3339 time>" and nothing else. 409 conflict while a re-seal is
//	     half done (a new key asked for, its outer layer not uploaded):
//	     use the emergency card. 400 bad_request for a malformed body. The
//	     route has its own strict per-address budget (a burst of 30, then
//	     one request per 6 seconds): 429 rate_limited.
//	     The released fact names the generation released and Request, the
//	     syncproto.ReleaseRequestHash of the winning request's nonce. The
//	     client checks the proof against the org fingerprint, that it ends
//	     with the released fact for its own nonce (so an answer recorded
//	     for an earlier request - a superseded generation - is refused),
//	     that the generation's sealed statement commits to the inner layer,
//	     and prints the release code (syncproto.ReleaseCode of the released
//	     fact), which coordinators see beside the release, before it hands
//	     the inner layer over. An alarm centre without the fristed binary can
//	     make the same call with curl and open the result with age:
//
//	        NONCE=$(head -c 16 /dev/urandom | base64)
//	        curl --fail-with-body -sS -X POST \
//	          -H 'Content-Type: application/json' \
//	          -d '{"secret": "<base64 secret>", "nonce": "'"$NONCE"'"}' \
//	          https://relay.example/v1/t/t_.../envelopes/a_.../release > answer.json
//	        jq -r .inner answer.json | base64 -d | age -d -i police-key.txt
//
//	     If the answer is lost, repeat the same curl with the same $NONCE.
//	     This plain form skips every check above (a replayed, superseded
//	     or forged card is not caught) and shows no release code; the card
//	     inside still carries its sealed-at date and signer.
//
// # Keys and files
//
// The data directory (--data DIR, 0700) holds relay.key, the relay's
// Ed25519 signing key (its public half is what tenants register at
// genesis; it signs receipts and relay facts only); token.key, the
// Ed25519 key that signs access tokens; kek/, the key-encryption keys;
// tls-cert.pem and tls-key.pem when the relay makes its own certificate;
// and relay.db with the SQLite store. Key files are 0600.
//
// # Deletion and the KEK directory
//
// Wrapped case keys (and, with envelopes, release identities) are stored
// sealed under a key-encryption key (Keystore): one file per generation
// in DIR/kek. Destroying a secret deletes its row (SQLite runs with
// secure_delete and checkpoints its WAL after deletes), then rotates: a
// new generation, every remaining secret rewrapped to it in one
// transaction, the old KEK files overwritten and removed. Keep DIR/kek
// out of the database's backups and off snapshotted storage: a backup
// restored later holds destroyed secrets only under keys that no longer
// exist. It holds secrets not yet delivered under those keys too, so
// after restoring a backup coordinators re-upload wrapped keys (they hold
// every epoch key) and envelopes are re-sealed.
//
// # TLS and pinning
//
// Without --tls-cert/--tls-key the relay serves HTTPS (TLS 1.3) with a
// self-signed ECDSA P-256 certificate it makes in DIR on first start and
// keeps, and prints "tls pin: sha256/<base64 of SHA-256 over the
// certificate's SubjectPublicKeyInfo>". Clients pin that at first
// contact (or are given it); a CA is not needed. --insecure-loopback
// serves plain HTTP and refuses any address that is not loopback.
//
// # Several relay processes
//
// With --store postgres several relay processes may serve one database
// behind a load balancer. They must share the data directory (or at
// least relay.key, token.key and kek/, e.g. on a shared volume with
// working flock): tenants registered the relay's key, a token from one
// process is checked by another, and secrets sealed by one are opened by
// another (a process reloads the KEK directory when it meets a generation
// it does not know; rotations take an exclusive lock on it). Each process
// keeps every tenant's chain in memory and catches up with the database's
// head on each request; batch appends are conditional on the chain head
// their access check used, so a statement appended through another
// process is never raced past. Long-polls are woken across processes by
// LISTEN/NOTIFY.
//
// # Logs and metrics
//
// Logs are JSON lines (log/slog, UTC) on stderr: method, route template,
// status and duration of each request; never a client address, a token,
// a key, a body or an id from the path. The rate limiters key their
// buckets by an HMAC, under a random key held only in memory, of the
// client address. --metrics-listen ADDR (loopback only) serves /metrics
// in the Prometheus text format: requests by route template, method and
// status class, request durations by route, refusals by wire code,
// accepted and replayed batches, deltas and bytes, statements, tokens,
// KEK rotations and waiting long-polls; no tenant, device or stream
// label.
package server
