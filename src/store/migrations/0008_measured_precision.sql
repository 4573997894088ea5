-- Usage reports are ordered by `measured_at` at full precision (CONTRACT section 4): the
-- last applied one is kept in microseconds, so a replay measured earlier in the same
-- second is recognised as older. Existing values were whole seconds.
ALTER TABLE instances RENAME COLUMN last_measured_at TO last_measured_at_us;
UPDATE instances SET last_measured_at_us = last_measured_at_us * 1000000
 WHERE last_measured_at_us IS NOT NULL;
