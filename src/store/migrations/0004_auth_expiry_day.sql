-- Every accepted usage report moves an instance's authorization expiry, and an index on
-- the exact time rewrote a random index page per report. The timer only needs to find
-- instances by the day their authorization lapses; that changes at most once a day per
-- instance, so reports within a day leave the index alone.
ALTER TABLE instances ADD COLUMN auth_expiry_day INTEGER;
UPDATE instances SET auth_expiry_day = auth_expires_at / 86400 WHERE auth_expires_at IS NOT NULL;
DROP INDEX instances_auth_expiry;
CREATE INDEX instances_auth_expiry_day ON instances(auth_expiry_day) WHERE auth_expiry_day IS NOT NULL;
