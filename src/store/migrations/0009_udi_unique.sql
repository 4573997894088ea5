-- 0009_udi_unique: a UDI (pid, sn) is one instance across the whole server (CONTRACT
-- section 4). Earlier versions allowed one per virtual account, so a product registered
-- with a token of another VA became a second instance that kept holding licenses. Merge
-- such duplicates: keep the newest registration, release the others' usage (counters in
-- this same transaction), note the merge in the kept instance's history and the event log.

CREATE INDEX instances_udi_merge ON instances(pid, sn);

CREATE TEMP TABLE udi_losers AS
SELECT i.id, i.va_id, i.status, i.export_controlled, i.pid, i.sn,
       (SELECT k.id FROM instances k WHERE k.pid = i.pid AND k.sn = i.sn
        ORDER BY k.registered_at DESC, k.id DESC LIMIT 1) AS keeper
FROM instances i
JOIN (SELECT pid, sn FROM instances GROUP BY pid, sn HAVING count(*) > 1) d
  ON d.pid = i.pid AND d.sn = i.sn;
DELETE FROM udi_losers WHERE id = keeper;

-- Release the losers' usage from their pools.
UPDATE usage_totals SET
    demand = demand - (SELECT sum(u.count) FROM instance_usage u JOIN udi_losers l ON l.id = u.instance_id
                       WHERE l.va_id = usage_totals.va_id AND u.tag = usage_totals.tag),
    demand_export = demand_export - (SELECT coalesce(sum(CASE WHEN l.export_controlled THEN u.count ELSE 0 END), 0)
                       FROM instance_usage u JOIN udi_losers l ON l.id = u.instance_id
                       WHERE l.va_id = usage_totals.va_id AND u.tag = usage_totals.tag)
WHERE EXISTS (SELECT 1 FROM instance_usage u JOIN udi_losers l ON l.id = u.instance_id
              WHERE l.va_id = usage_totals.va_id AND u.tag = usage_totals.tag);

UPDATE va_status_counts SET
    n = n - (SELECT count(*) FROM udi_losers l
             WHERE l.va_id = va_status_counts.va_id AND l.status = va_status_counts.status)
WHERE EXISTS (SELECT 1 FROM udi_losers l
              WHERE l.va_id = va_status_counts.va_id AND l.status = va_status_counts.status);

UPDATE virtual_accounts SET
    instance_count = instance_count - (SELECT count(*) FROM udi_losers l WHERE l.va_id = virtual_accounts.id)
WHERE id IN (SELECT va_id FROM udi_losers);

INSERT INTO instance_history (instance_id, at, status, note)
SELECT l.keeper, CAST(strftime('%s', 'now') AS INTEGER), k.status,
       'merged duplicate registration ' || l.id || ' of virtual account ' || v.name || ' (its usage released)'
FROM udi_losers l JOIN instances k ON k.id = l.keeper JOIN virtual_accounts v ON v.id = l.va_id;

INSERT INTO events (at, actor, action, account_id, account, target, detail)
SELECT CAST(strftime('%s', 'now') AS INTEGER), 'system', 'instance.merged', a.id, a.name, l.id,
       json_object('kept', l.keeper, 'virtual_account', v.name, 'pid', l.pid, 'sn', l.sn)
FROM udi_losers l JOIN virtual_accounts v ON v.id = l.va_id JOIN accounts a ON a.id = v.account_id;

DELETE FROM instance_usage WHERE instance_id IN (SELECT id FROM udi_losers);
DELETE FROM instance_history WHERE instance_id IN (SELECT id FROM udi_losers);
DELETE FROM instances WHERE id IN (SELECT id FROM udi_losers);
DROP TABLE udi_losers;

-- The old UNIQUE (va_id, pid, sn) stays (SQLite cannot drop a table constraint without
-- rebuilding the table); this index is what makes the identity server-wide.
DROP INDEX instances_udi_merge;
CREATE UNIQUE INDEX instances_udi ON instances(pid, sn);
