-- 0025_report_room (issue 17): a registered instance's row is written at about the size its
-- first usage report leaves it. The report adds its id, times, usage fingerprint, usage
-- and first history line, some 50 bytes; rows registered in a run fill their pages, so
-- the first report of each would overflow its page and split it (a quarter of a page more
-- written per first report when an estate comes online in any order). Registration fills
-- `report_room` with zero bytes (56, store::instances::REPORT_ROOM) and every report
-- empties it, so the row keeps its size and its page. A fill factor, row by row: SQLite
-- has none of its own.
ALTER TABLE instances ADD COLUMN report_room BLOB;
