-- Export keys (CONTRACT section 4): an instance's request for one export-controlled tag,
-- pending, granted, denied, returned or cancelled. A granted key is one unit of its
-- VA's license of that tag; pools read granted keys next to usage_totals (see
-- store::export_keys::add_key_demand). instance_id has no foreign key on purpose: a
-- key's history outlives its instance, whose removal returns or cancels its live keys.
CREATE TABLE export_keys (
    id           TEXT PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    va_id        INTEGER NOT NULL REFERENCES virtual_accounts(id) ON DELETE CASCADE,
    instance_id  TEXT NOT NULL,
    pid          TEXT NOT NULL,
    sn           TEXT NOT NULL,
    uuid         TEXT,
    tag          TEXT NOT NULL,
    state        TEXT NOT NULL
        CHECK (state IN ('pending', 'granted', 'denied', 'returned', 'cancelled')),
    requested_at INTEGER NOT NULL,
    decided_at   INTEGER,
    reason       TEXT
);
-- At most one live (pending or granted) key per instance and tag.
CREATE UNIQUE INDEX export_keys_live ON export_keys(instance_id, tag)
    WHERE state IN ('pending', 'granted');
CREATE INDEX export_keys_instance ON export_keys(instance_id, tag, requested_at);
CREATE INDEX export_keys_granted ON export_keys(va_id) WHERE state = 'granted';
CREATE INDEX export_keys_account ON export_keys(account_id, id);
CREATE INDEX export_keys_pending ON export_keys(account_id) WHERE state = 'pending';

-- Upstream side: the granted export keys a satellite's instances hold, as it last
-- reported them (replaced with its instances by every sync-request).
CREATE TABLE satellite_export_keys (
    satellite_id INTEGER NOT NULL,
    instance_id  TEXT NOT NULL,
    tag          TEXT NOT NULL,
    va_id        INTEGER NOT NULL,
    PRIMARY KEY (satellite_id, instance_id, tag),
    FOREIGN KEY (satellite_id, instance_id)
        REFERENCES satellite_instances(satellite_id, id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX satellite_export_keys_va ON satellite_export_keys(va_id);
