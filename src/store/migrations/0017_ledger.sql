-- Tamper-evident ledger (docs/ledger.md): one fixed-size entry per committed write batch
-- that changed counted rows, chained by hash; per counted table, the multiset digest of
-- its rows as the chain last folded it; the heads this authority signed; what each sync
-- request carried; and, on the upstream, the heads each satellite sent.
CREATE TABLE ledger_entries (
    seq          INTEGER PRIMARY KEY,
    prev_hash    BLOB NOT NULL,
    batch_digest BLOB NOT NULL,
    changes      INTEGER NOT NULL,
    state_digest BLOB NOT NULL,
    committed_at INTEGER NOT NULL,
    entry_hash   BLOB NOT NULL
);

CREATE TABLE ledger_state (
    tbl     TEXT PRIMARY KEY,
    digest  BLOB NOT NULL,
    -- The entry that last changed this table's digest.
    seq     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE ledger_heads (
    seq            INTEGER PRIMARY KEY,
    entry_hash     BLOB NOT NULL,
    prev_head_seq  INTEGER NOT NULL,
    prev_head_hash BLOB NOT NULL,
    authority_id   TEXT NOT NULL,
    signed_at      INTEGER NOT NULL,
    signature      BLOB NOT NULL
);

-- Satellite side: the newest signed head each sync request carried, by account and
-- request sequence; the next request starts its heads at the one last acknowledged.
CREATE TABLE ledger_sync_sent (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    sequence   INTEGER NOT NULL,
    head_seq   INTEGER NOT NULL,
    PRIMARY KEY (account_id, sequence)
) WITHOUT ROWID;

-- Upstream side: every head a satellite authority sent; its chain must extend the last.
CREATE TABLE ledger_peer_heads (
    authority_id   TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    entry_hash     BLOB NOT NULL,
    prev_head_seq  INTEGER NOT NULL,
    prev_head_hash BLOB NOT NULL,
    signed_at      INTEGER NOT NULL,
    signature      BLOB NOT NULL,
    received_at    INTEGER NOT NULL,
    PRIMARY KEY (authority_id, seq)
) WITHOUT ROWID;
