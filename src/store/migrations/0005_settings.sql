-- Account and virtual-account settings (CONTRACT section 5): whether an account may
-- reserve licenses and hold export-controlled ones, and whether a VA's export key
-- requests wait for an admin.
ALTER TABLE accounts ADD COLUMN reservation_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE accounts ADD COLUMN export_allowed INTEGER NOT NULL DEFAULT 1;
ALTER TABLE virtual_accounts ADD COLUMN export_approval INTEGER NOT NULL DEFAULT 0;
