-- Reservations (CONTRACT section 5): licenses held back from a pool for a product that
-- never reaches the server. `reservation_licenses.held` is what the pool holds back (the
-- larger of old and new count while an update is in transit); licenses.reserved is the
-- sum of `held` over live reservations plus what sync reports from elsewhere,
-- kept in the same transaction.
CREATE TABLE reservations (
    id                  TEXT PRIMARY KEY,
    account_id          INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    va_id               INTEGER NOT NULL REFERENCES virtual_accounts(id) ON DELETE CASCADE,
    request_code        TEXT NOT NULL,
    pid                 TEXT NOT NULL,
    sn                  TEXT NOT NULL,
    key_hash            TEXT NOT NULL,
    nonce               TEXT NOT NULL,
    universal           INTEGER NOT NULL,
    state               TEXT NOT NULL CHECK (state IN
                          ('pending', 'confirmed', 'updating', 'returned', 'cancelled', 'removed')),
    version             INTEGER NOT NULL DEFAULT 1,
    authorization_code  TEXT NOT NULL,
    code_hash           TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    confirmed_at        INTEGER,
    -- When it last became pending or updating: drives the reservation_pending alert.
    waiting_since       INTEGER NOT NULL,
    ended_at            INTEGER,
    reason              TEXT,
    -- sha256 of the return code that returned it: a code entered twice is recognised.
    return_fingerprint  TEXT UNIQUE
);
CREATE INDEX reservations_account ON reservations(account_id, id);
CREATE INDEX reservations_key ON reservations(key_hash);
CREATE UNIQUE INDEX reservations_live_request ON reservations(request_code)
    WHERE state IN ('pending', 'confirmed', 'updating');
CREATE UNIQUE INDEX reservations_live_udi ON reservations(pid, sn)
    WHERE state IN ('pending', 'confirmed', 'updating');
CREATE INDEX reservations_waiting ON reservations(waiting_since)
    WHERE state IN ('pending', 'updating');

CREATE TABLE reservation_licenses (
    reservation_id TEXT NOT NULL REFERENCES reservations(id) ON DELETE CASCADE,
    tag            TEXT NOT NULL,
    count          INTEGER NOT NULL CHECK (count >= 0),
    held           INTEGER NOT NULL CHECK (held >= 0),
    PRIMARY KEY (reservation_id, tag)
) WITHOUT ROWID;

-- Satellite side: what reservations made elsewhere (on the upstream and other satellites)
-- hold per VA and tag, as the upstream's last sync response said (replaced whole).
CREATE TABLE upstream_reservations (
    va_id        INTEGER NOT NULL REFERENCES virtual_accounts(id) ON DELETE CASCADE,
    tag          TEXT NOT NULL,
    held         INTEGER NOT NULL CHECK (held >= 0),
    PRIMARY KEY (va_id, tag)
) WITHOUT ROWID;

-- Upstream side: what a satellite's live reservations hold, per VA and tag, as its last
-- sync request said (a snapshot, replaced whole each time).
CREATE TABLE satellite_reservations (
    satellite_id INTEGER NOT NULL REFERENCES satellites(id) ON DELETE CASCADE,
    va_id        INTEGER NOT NULL REFERENCES virtual_accounts(id) ON DELETE CASCADE,
    tag          TEXT NOT NULL,
    held         INTEGER NOT NULL CHECK (held >= 0),
    PRIMARY KEY (satellite_id, va_id, tag)
) WITHOUT ROWID;
