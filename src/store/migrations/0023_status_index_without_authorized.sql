-- 0023_status_index_without_authorized (issue 17): the status index leaves out
-- `authorized` (code 1, store::status_codes), the status most of an estate is in. An
-- instance's first report moves it from `registered` to `authorized`: with every status
-- indexed that moved its entry, a delete and an insert each on a random page when an
-- estate comes online in any order; now it is the delete alone.
--
-- What reads the index: the instance list's status filter and status sort, and the
-- lapsed-authorization alert. Those naming a status other than `authorized` repeat the
-- index's condition (`status <> 1`) so SQLite may use it; `authorized` is found by walking
-- the VA's instances in id order, where it is the common case (store::instance_list).
DROP INDEX instances_va_status;
CREATE INDEX instances_va_status ON instances(va_id, status) WHERE status <> 1;
