-- 0021_usage_in_instance (issue 17): an instance's usage is kept in its own row, as a JSON
-- object from interned tag id to count ('{"3":5}'; NULL when it holds none), instead of
-- in a table of its own. A report that changes counts then reads and dirties one page (the
-- instance's) instead of two, and no usage row needs a lookup of its own.
--
-- `instance_usage` stays as a read-only view of the same rows (instance_id, tag_id, count),
-- so the ledger's canonical rows, and every digest folded before, read as they did
-- (store::ledger captures changes to the column; store::usage_column writes it).
ALTER TABLE instances ADD COLUMN usage TEXT;

UPDATE instances SET usage = (
    SELECT json_group_object(CAST(u.tag_id AS TEXT), u.count)
    FROM instance_usage u WHERE u.instance_id = instances.id)
WHERE id IN (SELECT instance_id FROM instance_usage);

DROP TABLE instance_usage;

CREATE VIEW instance_usage (instance_id, tag_id, count) AS
SELECT i.id, CAST(j.key AS INTEGER), j.value FROM instances i, json_each(i.usage) j;
