-- Users can be disabled (issue #16): a disabled user cannot log in and has no sessions.
-- NULL means enabled; otherwise the unix second it was disabled.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
