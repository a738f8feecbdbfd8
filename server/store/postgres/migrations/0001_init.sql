-- The relay's tables. Every value is an opaque id, a count, a time, or
-- sealed bytes the relay cannot read. Tables are created in the first schema
-- of the connection's search_path.

CREATE TABLE invites (
	token_hash bytea PRIMARY KEY,
	expires_at timestamptz NOT NULL,
	used_at    timestamptz,
	tenant     bytea
);

-- head_pos and head_hash are NULL while the admin chain is empty. Appending
-- a statement locks the row FOR UPDATE; appending a batch locks it FOR
-- SHARE, so no statement lands between a batch's head check and its commit.
CREATE TABLE tenants (
	id         bytea PRIMARY KEY,
	created_at timestamptz NOT NULL,
	head_pos   bigint,
	head_hash  bytea
);

CREATE TABLE statements (
	tenant bytea NOT NULL REFERENCES tenants (id),
	pos    bigint NOT NULL,
	hash   bytea NOT NULL,
	raw    bytea NOT NULL,
	PRIMARY KEY (tenant, pos)
);

-- head is the last sequence number handed out (its row lock serialises
-- appends to the stream); batches up to pruned are gone.
CREATE TABLE streams (
	tenant bytea NOT NULL REFERENCES tenants (id),
	stream bytea NOT NULL,
	head   bigint NOT NULL DEFAULT 0,
	pruned bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant, stream)
);

-- delta_ids is the batch's delta ids, 16 bytes each, in order.
CREATE TABLE batches (
	tenant      bytea NOT NULL,
	stream      bytea NOT NULL,
	seq         bigint NOT NULL,
	id          bytea NOT NULL,
	author      bytea NOT NULL,
	epoch       bigint NOT NULL,
	delta_ids   bytea NOT NULL,
	raw         bytea NOT NULL,
	received_at timestamptz NOT NULL,
	PRIMARY KEY (tenant, stream, seq),
	UNIQUE (tenant, id),
	FOREIGN KEY (tenant, stream) REFERENCES streams (tenant, stream)
);

-- Every delta id a stream has seen, kept when its batch is pruned so an id
-- is never accepted twice; gone only with the stream's purge.
CREATE TABLE deltas (
	tenant   bytea NOT NULL,
	stream   bytea NOT NULL,
	delta_id bytea NOT NULL,
	seq      bigint NOT NULL,
	PRIMARY KEY (tenant, stream, delta_id)
);

CREATE TABLE snapshots (
	tenant bytea NOT NULL REFERENCES tenants (id),
	stream bytea NOT NULL,
	id     bytea NOT NULL,
	seq    bigint NOT NULL,
	raw    bytea NOT NULL,
	added  bigint GENERATED ALWAYS AS IDENTITY,
	PRIMARY KEY (tenant, stream, id)
);
CREATE INDEX snapshots_by_seq ON snapshots (tenant, stream, seq);

-- stream is NULL for secrets that belong to no stream.
CREATE TABLE secrets (
	tenant  bytea NOT NULL REFERENCES tenants (id),
	kind    text NOT NULL,
	name    text NOT NULL,
	stream  bytea,
	kek_gen bigint NOT NULL,
	sealed  bytea NOT NULL,
	PRIMARY KEY (tenant, kind, name)
);
CREATE INDEX secrets_by_stream ON secrets (tenant, stream) WHERE stream IS NOT NULL;
CREATE INDEX secrets_by_gen ON secrets (kek_gen);

-- released_at is NULL until released; inner_layer is kept for retries
-- until forgotten.
CREATE TABLE envelopes (
	tenant      bytea NOT NULL REFERENCES tenants (id),
	alarm       bytea NOT NULL,
	secret_hash bytea NOT NULL,
	outer_layer bytea NOT NULL,
	sealed_at   timestamptz,
	released_at timestamptz,
	nonce_hash  bytea,
	inner_layer bytea,
	release_pos bigint NOT NULL DEFAULT 0,
	generation  bigint NOT NULL,
	PRIMARY KEY (tenant, alarm)
);
CREATE INDEX envelopes_kept_inner ON envelopes (released_at) WHERE inner_layer IS NOT NULL;

CREATE TABLE challenges (
	nonce      bytea PRIMARY KEY,
	expires_at timestamptz NOT NULL
);
CREATE INDEX challenges_by_expiry ON challenges (expires_at);

CREATE TABLE token_versions (
	tenant  bytea NOT NULL REFERENCES tenants (id),
	device  bytea NOT NULL,
	version bigint NOT NULL,
	PRIMARY KEY (tenant, device)
);

CREATE TABLE last_seen (
	tenant bytea NOT NULL REFERENCES tenants (id),
	device bytea NOT NULL,
	day    timestamptz NOT NULL,
	PRIMARY KEY (tenant, device)
);

CREATE TABLE enrolments (
	tenant     bytea NOT NULL REFERENCES tenants (id),
	req        bytea NOT NULL,
	raw        bytea NOT NULL,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (tenant, req)
);
