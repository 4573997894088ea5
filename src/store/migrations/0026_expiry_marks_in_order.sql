-- 0026_expiry_marks_in_order (issue 17): an expiry mark counts 2^20 marks a second
-- (domain::timers::MARKS_PER_SECOND), and a report's new mark follows the last one made in
-- the same second. Marks were whole seconds: the thousands of reports of a second tied,
-- and the index put them in instance-key order within the second's run of entries, so
-- each report rewrote a page somewhere in that run (half a page per first report). Now
-- they land at the index's right edge. Existing marks keep their second.
--
-- The index is built again rather than moved entry by entry: one sorted pass.
DROP INDEX instances_auth_expiry_mark;
UPDATE instances SET auth_expiry_mark = auth_expiry_mark * 1048576
WHERE auth_expiry_mark IS NOT NULL;
CREATE INDEX instances_auth_expiry_mark ON instances(auth_expiry_mark)
    WHERE auth_expiry_mark IS NOT NULL;
