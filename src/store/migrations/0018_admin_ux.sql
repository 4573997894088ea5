-- Admin experience (issue 15): satellite tokens can be revoked before use, and a
-- satellite the upstream's admin deregistered is remembered so its bundles are refused
-- with that reason (rather than as an unknown sender).
ALTER TABLE satellite_tokens ADD COLUMN revoked_at INTEGER;

CREATE TABLE revoked_satellites (
    authority_id  TEXT NOT NULL,
    local_account TEXT NOT NULL,
    account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    revoked_at    INTEGER NOT NULL,
    PRIMARY KEY (authority_id, local_account)
) WITHOUT ROWID;
