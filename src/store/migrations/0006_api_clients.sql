-- API clients: when each last exchanged its credentials for a token (listed to admins so
-- unused clients can be found and revoked).
ALTER TABLE api_clients ADD COLUMN last_used_at INTEGER;

-- Names are unique ignoring case (CONTRACT section 3). Clients that clash today keep
-- their name with their id added, so the index can be built.
UPDATE api_clients SET name = name || ' (' || id || ')'
 WHERE id NOT IN (SELECT min(id) FROM api_clients GROUP BY name COLLATE NOCASE);
CREATE UNIQUE INDEX api_clients_name_nocase ON api_clients(name COLLATE NOCASE);
