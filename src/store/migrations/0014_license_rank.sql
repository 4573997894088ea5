-- Substitution rank on the covering license (CONTRACT section 3): lowest is drawn first,
-- ties by tag. Existing licenses get the default, so their draw order (tag order) stays.
ALTER TABLE licenses ADD COLUMN rank INTEGER NOT NULL DEFAULT 100;
