-- 0020_usage_fingerprint (issue 17): a fingerprint of the usage an instance last stored
-- (store::instance_reports::usage_fingerprint), kept in its row. Most reports repeat the
-- counts of the one before; when the fingerprint matches, the report leaves the usage
-- table alone instead of reading its rows (a second page, cold at a million instances).
-- NULL means unknown: the next report compares row by row and stores it. Every other
-- write of an instance's usage sets it back to NULL. Adding a column is instant in SQLite.
ALTER TABLE instances ADD COLUMN usage_fp INTEGER;
