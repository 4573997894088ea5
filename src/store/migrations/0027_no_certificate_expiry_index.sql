-- 0027_no_certificate_expiry_index (issue 17): the registration timer finds ended
-- registrations by walking the instances table a step of keys at a time on a reader
-- (store::instance_expiry::registrations_ended), once a minute. The index on the id
-- certificate's expiry served only that timer, and cost every renewal two writes on
-- random pages of it: its old entry's delete, and its new entry among the thousands of
-- the same second, which tie and go in instance-key order.
DROP INDEX instances_cert_expiry;
