-- Accounts, virtual accounts, people, machine clients, sessions and the event log.
-- Times are unix seconds (UTC).

CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

CREATE TABLE virtual_accounts (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    synced         INTEGER NOT NULL DEFAULT 0,
    -- counters kept in the same transaction as the rows they count
    license_count  INTEGER NOT NULL DEFAULT 0,
    instance_count INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE users (
    id                   INTEGER PRIMARY KEY,
    username             TEXT NOT NULL UNIQUE,
    password_hash        TEXT NOT NULL,
    role                 TEXT NOT NULL
        CHECK (role IN ('system-admin', 'operator', 'account-admin', 'viewer')),
    account_id           INTEGER REFERENCES accounts(id) ON DELETE RESTRICT,
    must_change_password INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE api_clients (
    id          INTEGER PRIMARY KEY,
    client_id   TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL
        CHECK (role IN ('system-admin', 'operator', 'account-admin', 'viewer')),
    account_id  INTEGER REFERENCES accounts(id) ON DELETE RESTRICT,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    client_id  INTEGER NOT NULL REFERENCES api_clients(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
);
CREATE INDEX api_tokens_client ON api_tokens(client_id);

-- account_id has no foreign key on purpose: events outlive what they describe.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    account_id INTEGER,
    account    TEXT,
    target     TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_account ON events(account_id, id);
CREATE INDEX events_action ON events(action, id);
