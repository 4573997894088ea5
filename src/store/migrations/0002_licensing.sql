-- Licensing core: license pools, registration tokens, product instances and their usage.
-- Counters (usage_totals, va_status_counts, virtual_accounts.*_count, licenses.reserved)
-- are updated in the same transaction as the rows they summarize.

CREATE TABLE licenses (
    id                INTEGER PRIMARY KEY,
    va_id             INTEGER NOT NULL REFERENCES virtual_accounts(id) ON DELETE RESTRICT,
    tag               TEXT NOT NULL,
    name              TEXT NOT NULL,
    license_type      TEXT NOT NULL CHECK (license_type IN ('perpetual', 'term', 'subscription')),
    quantity          INTEGER NOT NULL CHECK (quantity >= 0),
    reserved          INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    start_date        TEXT NOT NULL,
    end_date          TEXT,
    export_controlled INTEGER NOT NULL DEFAULT 0,
    substitutes       TEXT NOT NULL DEFAULT '[]',
    created_at        INTEGER NOT NULL,
    UNIQUE (va_id, tag)
);

-- Demand per pool: what instances holding an authorization report, split by whether the
-- instance registered with an export-controlled token (only those may use such licenses).
CREATE TABLE usage_totals (
    va_id          INTEGER NOT NULL,
    tag            TEXT NOT NULL,
    demand         INTEGER NOT NULL DEFAULT 0,
    demand_export  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (va_id, tag)
) WITHOUT ROWID;

CREATE TABLE tokens (
    id                TEXT PRIMARY KEY,
    va_id             INTEGER NOT NULL REFERENCES virtual_accounts(id) ON DELETE CASCADE,
    secret_hash       TEXT NOT NULL UNIQUE,
    description       TEXT NOT NULL DEFAULT '',
    created_by        TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    max_uses          INTEGER,
    uses              INTEGER NOT NULL DEFAULT 0,
    export_controlled INTEGER NOT NULL DEFAULT 0,
    revoked_at        INTEGER
);
CREATE INDEX tokens_va ON tokens(va_id, created_at);

CREATE TABLE instances (
    id                TEXT PRIMARY KEY,
    va_id             INTEGER NOT NULL REFERENCES virtual_accounts(id) ON DELETE RESTRICT,
    pid               TEXT NOT NULL,
    sn                TEXT NOT NULL,
    uuid              TEXT,
    public_key        BLOB NOT NULL,
    product_name      TEXT NOT NULL,
    product_version   TEXT NOT NULL,
    hostname          TEXT,
    export_controlled INTEGER NOT NULL DEFAULT 0,
    token_id          TEXT,
    registered_at     INTEGER NOT NULL,
    last_contact      INTEGER NOT NULL,
    cert_renew_after  INTEGER NOT NULL,
    cert_expires_at   INTEGER NOT NULL,
    auth_renew_after  INTEGER,
    auth_expires_at   INTEGER,
    status            TEXT NOT NULL,
    last_report_id    TEXT,
    last_measured_at  INTEGER,
    UNIQUE (va_id, pid, sn)
);
CREATE INDEX instances_va ON instances(va_id, id);
CREATE INDEX instances_auth_expiry ON instances(auth_expires_at) WHERE auth_expires_at IS NOT NULL;
CREATE INDEX instances_cert_expiry ON instances(cert_expires_at);

CREATE TABLE instance_usage (
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    tag         TEXT NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (instance_id, tag)
) WITHOUT ROWID;

CREATE TABLE instance_history (
    id          INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    status      TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX instance_history_instance ON instance_history(instance_id, id);

CREATE TABLE va_status_counts (
    va_id  INTEGER NOT NULL,
    status TEXT NOT NULL,
    n      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (va_id, status)
) WITHOUT ROWID;
