-- Names that differ only in case are duplicates (CONTRACT section 3): accounts, virtual
-- accounts (within their account) and users. Rows that clash today keep their name with
-- '-' and their id added (the oldest keeps it as is), so the indexes can be built; '-'
-- keeps the result a valid name.
UPDATE accounts SET name = name || '-' || id
 WHERE id NOT IN (SELECT min(id) FROM accounts GROUP BY name COLLATE NOCASE);
CREATE UNIQUE INDEX accounts_name_nocase ON accounts(name COLLATE NOCASE);

UPDATE virtual_accounts SET name = name || '-' || id
 WHERE id NOT IN (SELECT min(id) FROM virtual_accounts GROUP BY account_id, name COLLATE NOCASE);
CREATE UNIQUE INDEX virtual_accounts_name_nocase
    ON virtual_accounts(account_id, name COLLATE NOCASE);

UPDATE users SET username = username || '-' || id
 WHERE id NOT IN (SELECT min(id) FROM users GROUP BY username COLLATE NOCASE);
CREATE UNIQUE INDEX users_username_nocase ON users(username COLLATE NOCASE);

-- The account-wide instance list (GET /api/v1/accounts/{a}/instances) pages each VA by
-- keyset on one of these, then merges: no sort of a whole account, at any size.
CREATE INDEX instances_va_last_contact ON instances(va_id, last_contact, id);
CREATE INDEX instances_va_pid ON instances(va_id, pid, id);
CREATE INDEX instances_va_status ON instances(va_id, status, id);
