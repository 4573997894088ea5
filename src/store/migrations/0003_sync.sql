-- Sync with the upstream: the satellite's link per account, the upstream's registered
-- satellites and their reported instances, registration tokens for satellites, history.

-- Satellite side: one link per local account.
CREATE TABLE upstream_links (
    account_id              INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    mode                    TEXT NOT NULL CHECK (mode IN ('connected', 'disconnected')),
    state                   TEXT NOT NULL CHECK (state IN ('pending', 'registered')),
    url                     TEXT,
    ca_cert_pem             TEXT,
    pending_request_id      TEXT,
    upstream_authority_id   TEXT,
    upstream_public_key     BLOB,
    upstream_account        TEXT,
    registration_expires_at INTEGER,
    last_sequence           INTEGER NOT NULL DEFAULT 0,   -- our last sync-request sequence
    last_acked_sequence     INTEGER NOT NULL DEFAULT 0,
    last_response_sequence  INTEGER NOT NULL DEFAULT 0,   -- the upstream's last applied sequence
    last_sync               INTEGER,
    cron                    TEXT NOT NULL DEFAULT '0 0 2 * * *',
    created_at              INTEGER NOT NULL
);

-- Upstream side: tokens a satellite registers one of its accounts with.
CREATE TABLE satellite_tokens (
    id          TEXT PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);

-- Upstream side: a satellite's account registered with one of ours; its key is pinned.
CREATE TABLE satellites (
    id                INTEGER PRIMARY KEY,
    account_id        INTEGER NOT NULL REFERENCES accounts(id) ON DELETE RESTRICT,
    authority_id      TEXT NOT NULL,
    public_key        BLOB NOT NULL,
    local_account     TEXT NOT NULL,
    registered_at     INTEGER NOT NULL,
    last_sync         INTEGER,
    last_sequence     INTEGER NOT NULL DEFAULT 0,  -- its last applied sync-request
    response_sequence INTEGER NOT NULL DEFAULT 0,  -- our last response to it
    instance_count    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (authority_id, local_account)
);

-- Upstream side: instances and usage as a satellite last reported them.
CREATE TABLE satellite_instances (
    satellite_id      INTEGER NOT NULL REFERENCES satellites(id) ON DELETE CASCADE,
    id                TEXT NOT NULL,
    va_id             INTEGER NOT NULL REFERENCES virtual_accounts(id) ON DELETE RESTRICT,
    pid               TEXT NOT NULL,
    sn                TEXT NOT NULL,
    product_name      TEXT NOT NULL,
    product_version   TEXT NOT NULL,
    hostname          TEXT,
    export_controlled INTEGER NOT NULL DEFAULT 0,
    registered_at     INTEGER NOT NULL,
    last_contact      INTEGER NOT NULL,
    status            TEXT NOT NULL,
    PRIMARY KEY (satellite_id, id)
) WITHOUT ROWID;
CREATE INDEX satellite_instances_va ON satellite_instances(va_id);

CREATE TABLE satellite_usage (
    satellite_id INTEGER NOT NULL,
    instance_id  TEXT NOT NULL,
    va_id        INTEGER NOT NULL,
    tag          TEXT NOT NULL,
    count        INTEGER NOT NULL,
    export       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (satellite_id, instance_id, tag),
    FOREIGN KEY (satellite_id, instance_id) REFERENCES satellite_instances(satellite_id, id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX satellite_usage_va ON satellite_usage(va_id, tag);

-- Both sides: every bundle in or out, applied or rejected.
CREATE TABLE sync_history (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    account_id  INTEGER,
    account     TEXT,
    bundle_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    direction   TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    sequence    INTEGER NOT NULL DEFAULT 0,
    records     INTEGER NOT NULL DEFAULT 0,
    result      TEXT NOT NULL,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sync_history_bundle ON sync_history(bundle_id);
CREATE INDEX sync_history_account ON sync_history(account_id, id);

-- Small facts about this installation (the role it last served as, for the CLI).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
