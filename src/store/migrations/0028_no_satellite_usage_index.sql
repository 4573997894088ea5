-- 0028_no_satellite_usage_index (issue 17): an upstream reads a satellite's usage rows by
-- their primary key (satellite, instance, tag) and nothing else, but for the pool demand
-- recomputed after a satellite is revoked, which reads them all once. The (va_id, tag)
-- index served only that, cost 57 MB per million rows, and was the largest of the five
-- indexes a first import builds (a third of their bytes).
DROP INDEX satellite_usage_va;
