-- 0022_first_report_in_row (issue 17): an instance's first usage report writes its own row
-- and fewer random pages besides. Before, it also added a line to the history B-tree and
-- an entry in the middle of the expiry-day index, each on a page of its own.
--
-- 1. The first history line after registration is kept in the instance row
--    (`first_line_*`, NULL while there is none). Later lines go to `instance_history` as
--    before, so an instance with lines in the table always has its first line in the row.
--    Existing instances move their oldest line from the table into the row.
ALTER TABLE instances ADD COLUMN first_line_at INTEGER;
ALTER TABLE instances ADD COLUMN first_line_status INTEGER;
ALTER TABLE instances ADD COLUMN first_line_note TEXT;

UPDATE instances
SET (first_line_at, first_line_status, first_line_note) =
    (SELECT h.at, h.status, h.note FROM instance_history h
     WHERE h.instance_id = instances.id ORDER BY h.seq LIMIT 1)
WHERE id IN (SELECT instance_id FROM instance_history);

DELETE FROM instance_history
WHERE seq = (SELECT min(h.seq) FROM instance_history h
             WHERE h.instance_id = instance_history.instance_id);

-- 2. The expiry index holds a time, not a day: `auth_expiry_mark` is the expiry the
--    authorization had when its expiry day last changed, so it always falls on the day the
--    authorization now lapses on, and the timer finds the same instances by it. New marks
--    are the latest expiries there are: the index grows at its right edge, where a day
--    number put every entry of the day in rowid order, each on a random page.
DROP INDEX instances_auth_expiry_day;
ALTER TABLE instances RENAME COLUMN auth_expiry_day TO auth_expiry_mark;
UPDATE instances SET auth_expiry_mark = auth_expires_at WHERE auth_expiry_mark IS NOT NULL;
CREATE INDEX instances_auth_expiry_mark ON instances(auth_expiry_mark)
    WHERE auth_expiry_mark IS NOT NULL;
