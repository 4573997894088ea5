-- Alerts are computed live; this remembers, per stable alert id, when it was first seen
-- (its raised_at), who acknowledged it, and whether it was handed to notifications. A row
-- is removed when its alert clears.
CREATE TABLE alert_state (
    id              TEXT PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    raised_at       INTEGER NOT NULL,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    notified        INTEGER NOT NULL DEFAULT 0
);

-- Where an account's alerts go. The webhook secret is write-only: never listed.
CREATE TABLE notification_settings (
    account_id     INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    emails         TEXT NOT NULL DEFAULT '[]',
    webhook_url    TEXT,
    webhook_secret TEXT,
    kinds          TEXT NOT NULL DEFAULT '[]'
);

-- One row per alert and target: what is still to send (with its retry time) and what was
-- sent, so a restart neither loses nor repeats a notification.
CREATE TABLE notification_deliveries (
    id            INTEGER PRIMARY KEY,
    alert_id      TEXT NOT NULL,
    account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    target        TEXT NOT NULL,
    payload       TEXT NOT NULL,
    state         TEXT NOT NULL DEFAULT 'pending',
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL,
    last_error    TEXT,
    sent_at       INTEGER,
    UNIQUE (alert_id, target)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries(state, next_at);
