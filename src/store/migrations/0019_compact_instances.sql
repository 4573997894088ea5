-- 0019_compact_instances (issue 17): fewer bytes per instance. Instances get an INTEGER
-- key inside (AUTOINCREMENT: a removed instance's number is never handed out again) and
-- keep an opaque text id outside: 'inst_' + this server's prefix + the key as 10 digits
-- (store::instance_ids). Existing rows keep their old id in `legacy_id`. Usage and history
-- reference the integer; the redundant UNIQUE (va_id, pid, sn) goes (instances_udi is
-- server-wide); secondary indexes carry the rowid implicitly; the history's first
-- 'registered' line is read from `registered_at` from now on.
--
-- The children are created referencing instances_c; dropping the old tables first (children
-- before parent) and renaming instances_c last lets SQLite rewrite those references, so no
-- cascade ever reaches a copied row.

-- The prefix: 6 lowercase base32 characters, the first a letter after 'f' so no id of the
-- old format ('inst_' + hex time) ever reads as ours. `first_own`: keys below it are
-- migrated rows, reachable by their legacy id only.
CREATE TABLE instance_id_prefix (
    prefix    TEXT NOT NULL,
    first_own INTEGER NOT NULL
);
INSERT INTO instance_id_prefix (prefix, first_own)
SELECT substr('ghijklmnopqrstuvwxyz', abs(random() % 20) + 1, 1)
    || substr('abcdefghijklmnopqrstuvwxyz234567', abs(random() % 32) + 1, 1)
    || substr('abcdefghijklmnopqrstuvwxyz234567', abs(random() % 32) + 1, 1)
    || substr('abcdefghijklmnopqrstuvwxyz234567', abs(random() % 32) + 1, 1)
    || substr('abcdefghijklmnopqrstuvwxyz234567', abs(random() % 32) + 1, 1)
    || substr('abcdefghijklmnopqrstuvwxyz234567', abs(random() % 32) + 1, 1),
       (SELECT count(*) FROM instances) + 1;

CREATE TABLE instances_c (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
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
    -- No renew_after columns: timers sets them with the expiries, a fixed time before.
    cert_expires_at   INTEGER NOT NULL,
    auth_expires_at   INTEGER,
    -- store::status_codes: the text's alphabetical order.
    status            INTEGER NOT NULL,
    last_report_id    BLOB,
    last_measured_at_us INTEGER,
    auth_expiry_day   INTEGER,
    legacy_id         TEXT
);
CREATE UNIQUE INDEX instances_legacy ON instances_c(legacy_id) WHERE legacy_id IS NOT NULL;

-- Old ids in their text order: keys keep the order the list pages by. A report id that is
-- a canonical (lowercase) UUID is kept as its 16 bytes (store::instance_reports).
INSERT INTO instances_c (id, va_id, pid, sn, uuid, public_key, product_name, product_version,
    hostname, export_controlled, token_id, registered_at, last_contact,
    cert_expires_at, auth_expires_at, status, last_report_id,
    last_measured_at_us, auth_expiry_day, legacy_id)
SELECT row_number() OVER (ORDER BY id), va_id, pid, sn, uuid, public_key, product_name,
    product_version, hostname, export_controlled, token_id, registered_at, last_contact,
    cert_expires_at, auth_expires_at,
    CASE status WHEN 'authorization_expired' THEN 0 WHEN 'authorized' THEN 1 WHEN 'not_authorized' THEN 2 WHEN 'out_of_compliance' THEN 3 WHEN 'registered' THEN 4 WHEN 'reserved' THEN 5 END,
    CASE WHEN last_report_id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'
              AND length(last_report_id) = 36
         THEN unhex(replace(last_report_id, '-', ''))
         ELSE last_report_id END,
    last_measured_at_us, auth_expiry_day, id
FROM instances;

-- Tags interned: a usage row is (key, tag number, count), a few bytes; the handful of
-- tags an estate reports are hot rows of a small table.
CREATE TABLE tags (
    id  INTEGER PRIMARY KEY,
    tag TEXT NOT NULL UNIQUE
);
INSERT INTO tags (tag) SELECT DISTINCT tag FROM instance_usage ORDER BY tag;

CREATE TABLE instance_usage_c (
    instance_id INTEGER NOT NULL REFERENCES instances_c(id) ON DELETE CASCADE,
    tag_id      INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (instance_id, tag_id)
) WITHOUT ROWID;
INSERT INTO instance_usage_c (instance_id, tag_id, count)
SELECT c.id, t.id, u.count FROM instance_usage u
JOIN instances_c c ON c.legacy_id = u.instance_id JOIN tags t ON t.tag = u.tag;

-- Keyed by (instance, its line number): one B-tree, no second index by instance.
CREATE TABLE instance_history_c (
    instance_id INTEGER NOT NULL REFERENCES instances_c(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status      INTEGER NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;
-- The registration's own line is now read from the instance row (registered_at).
INSERT INTO instance_history_c (instance_id, seq, at, status, note)
SELECT c.id, row_number() OVER (PARTITION BY c.id ORDER BY h.id), h.at,
       CASE h.status WHEN 'authorization_expired' THEN 0 WHEN 'authorized' THEN 1 WHEN 'not_authorized' THEN 2 WHEN 'out_of_compliance' THEN 3 WHEN 'registered' THEN 4 WHEN 'reserved' THEN 5 END, h.note
FROM instance_history h JOIN instances_c c ON c.legacy_id = h.instance_id
WHERE NOT (h.status = 'registered' AND h.note = 'registered' AND h.at = c.registered_at);

DROP TABLE instance_usage;
DROP TABLE instance_history;
DROP TABLE instances;
ALTER TABLE instances_c RENAME TO instances;
ALTER TABLE instance_usage_c RENAME TO instance_usage;
ALTER TABLE instance_history_c RENAME TO instance_history;

CREATE INDEX instances_va ON instances(va_id);
CREATE UNIQUE INDEX instances_udi ON instances(pid, sn);
CREATE INDEX instances_cert_expiry ON instances(cert_expires_at);
CREATE INDEX instances_auth_expiry_day ON instances(auth_expiry_day) WHERE auth_expiry_day IS NOT NULL;
-- The rowid (the integer id) ends every index entry: (va_id, x) pages as (va_id, x, id).
CREATE INDEX instances_va_last_contact ON instances(va_id, last_contact);
CREATE INDEX instances_va_pid ON instances(va_id, pid);
CREATE INDEX instances_va_status ON instances(va_id, status);
