-- One count per account (CONTRACT section 6). Satellite side: the demand recorded
-- elsewhere (on the upstream and on other satellites of the account), per VA and tag, as
-- the last sync response carried it; added to the satellite's own demand before
-- substitution. Replaced whole by each response.
CREATE TABLE demand_elsewhere (
    va_id         INTEGER NOT NULL REFERENCES virtual_accounts(id) ON DELETE CASCADE,
    tag           TEXT NOT NULL,
    demand        INTEGER NOT NULL,
    demand_export INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (va_id, tag)
) WITHOUT ROWID;

-- Upstream side: a satellite's instances are listed with the direct ones, paged by keyset
-- on the same sort columns (id, last contact, pid, status) per VA, then merged.
DROP INDEX satellite_instances_va;
CREATE INDEX satellite_instances_va_id ON satellite_instances(va_id, id);
CREATE INDEX satellite_instances_va_last_contact ON satellite_instances(va_id, last_contact, id);
CREATE INDEX satellite_instances_va_pid ON satellite_instances(va_id, pid, id);
CREATE INDEX satellite_instances_va_status ON satellite_instances(va_id, status, id);
