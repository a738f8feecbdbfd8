-- The relay's tables. Every value is an opaque id, a count, a time in
-- milliseconds since the Unix epoch, or sealed bytes the relay cannot read.

CREATE TABLE invites (
	token_hash BLOB PRIMARY KEY,
	expires_ms INTEGER NOT NULL,
	used_ms    INTEGER,
	tenant     BLOB
);

-- head_pos and head_hash are NULL while the admin chain is empty.
CREATE TABLE tenants (
	id         BLOB PRIMARY KEY,
	created_ms INTEGER NOT NULL,
	head_pos   INTEGER,
	head_hash  BLOB
);

CREATE TABLE statements (
	tenant BLOB NOT NULL REFERENCES tenants (id),
	pos    INTEGER NOT NULL,
	hash   BLOB NOT NULL,
	raw    BLOB NOT NULL,
	PRIMARY KEY (tenant, pos)
);

-- head is the last sequence number handed out; batches up to pruned are gone.
CREATE TABLE streams (
	tenant BLOB NOT NULL REFERENCES tenants (id),
	stream BLOB NOT NULL,
	head   INTEGER NOT NULL DEFAULT 0,
	pruned INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant, stream)
) WITHOUT ROWID;

-- delta_ids is the batch's delta ids, 16 bytes each, in order.
CREATE TABLE batches (
	tenant      BLOB NOT NULL,
	stream      BLOB NOT NULL,
	seq         INTEGER NOT NULL,
	id          BLOB NOT NULL,
	author      BLOB NOT NULL,
	epoch       INTEGER NOT NULL,
	delta_ids   BLOB NOT NULL,
	raw         BLOB NOT NULL,
	received_ms INTEGER NOT NULL,
	FOREIGN KEY (tenant, stream) REFERENCES streams (tenant, stream)
);
CREATE UNIQUE INDEX batches_by_seq ON batches (tenant, stream, seq);
CREATE UNIQUE INDEX batches_by_id ON batches (tenant, id);

-- Every delta id a stream has seen, kept when its batch is pruned so an id
-- is never accepted twice; gone only with the stream's purge.
CREATE TABLE deltas (
	tenant   BLOB NOT NULL,
	stream   BLOB NOT NULL,
	delta_id BLOB NOT NULL,
	seq      INTEGER NOT NULL,
	PRIMARY KEY (tenant, stream, delta_id)
) WITHOUT ROWID;

CREATE TABLE snapshots (
	tenant BLOB NOT NULL REFERENCES tenants (id),
	stream BLOB NOT NULL,
	id     BLOB NOT NULL,
	seq    INTEGER NOT NULL,
	raw    BLOB NOT NULL
);
CREATE UNIQUE INDEX snapshots_by_id ON snapshots (tenant, stream, id);
CREATE INDEX snapshots_by_seq ON snapshots (tenant, stream, seq);

-- stream is NULL for secrets that belong to no stream.
CREATE TABLE secrets (
	tenant  BLOB NOT NULL REFERENCES tenants (id),
	kind    TEXT NOT NULL,
	name    TEXT NOT NULL,
	stream  BLOB,
	kek_gen INTEGER NOT NULL,
	sealed  BLOB NOT NULL,
	PRIMARY KEY (tenant, kind, name)
);
CREATE INDEX secrets_by_stream ON secrets (tenant, stream) WHERE stream IS NOT NULL;
CREATE INDEX secrets_by_gen ON secrets (kek_gen);

-- released_ms is NULL until released; inner_layer is kept for retries
-- until forgotten.
CREATE TABLE envelopes (
	tenant      BLOB NOT NULL REFERENCES tenants (id),
	alarm       BLOB NOT NULL,
	secret_hash BLOB NOT NULL,
	outer_layer BLOB NOT NULL,
	sealed_ms   INTEGER,
	released_ms INTEGER,
	nonce_hash  BLOB,
	inner_layer BLOB,
	release_pos INTEGER NOT NULL DEFAULT 0,
	generation  INTEGER NOT NULL,
	PRIMARY KEY (tenant, alarm)
);
CREATE INDEX envelopes_kept_inner ON envelopes (released_ms) WHERE inner_layer IS NOT NULL;

CREATE TABLE challenges (
	nonce      BLOB PRIMARY KEY,
	expires_ms INTEGER NOT NULL
);
CREATE INDEX challenges_by_expiry ON challenges (expires_ms);

CREATE TABLE token_versions (
	tenant  BLOB NOT NULL REFERENCES tenants (id),
	device  BLOB NOT NULL,
	version INTEGER NOT NULL,
	PRIMARY KEY (tenant, device)
) WITHOUT ROWID;

CREATE TABLE last_seen (
	tenant BLOB NOT NULL REFERENCES tenants (id),
	device BLOB NOT NULL,
	day_ms INTEGER NOT NULL,
	PRIMARY KEY (tenant, device)
) WITHOUT ROWID;

CREATE TABLE enrolments (
	tenant     BLOB NOT NULL REFERENCES tenants (id),
	req        BLOB NOT NULL,
	raw        BLOB NOT NULL,
	expires_ms INTEGER NOT NULL,
	PRIMARY KEY (tenant, req)
);
