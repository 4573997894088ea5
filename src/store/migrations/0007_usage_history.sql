-- Daily usage history (CONTRACT section 7): one row per day and license pool, and one per
-- day, VA and instance status. The timer job rewrites today's rows as it runs, so today's
-- figures are always current and earlier days are what they were at the day's end.
-- Keyed so a range of days for one VA (or one pool) is one index walk.
CREATE TABLE usage_history (
    va_id     INTEGER NOT NULL,
    tag       TEXT NOT NULL,
    day       TEXT NOT NULL,
    purchased INTEGER NOT NULL,
    in_use    INTEGER NOT NULL,
    reserved  INTEGER NOT NULL,
    available INTEGER NOT NULL,
    PRIMARY KEY (va_id, tag, day)
) WITHOUT ROWID;
CREATE INDEX usage_history_day ON usage_history(day);

CREATE TABLE instance_status_history (
    va_id  INTEGER NOT NULL,
    day    TEXT NOT NULL,
    status TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (va_id, day, status)
) WITHOUT ROWID;
CREATE INDEX instance_status_history_day ON instance_status_history(day);
