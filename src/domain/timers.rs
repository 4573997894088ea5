//! The clocks of licensing, in seconds. Modeled on Smart Licensing: registration is valid a
//! year and renewed after six months; authorization is renewed every 30 days by usage
//! reports and lapses 90 days after the last accepted one.

pub const DAY: i64 = 86_400;
pub const CERT_VALID: i64 = 365 * DAY;
pub const CERT_RENEW_AFTER: i64 = 180 * DAY;
pub const AUTH_RENEW_AFTER: i64 = 30 * DAY;
pub const AUTH_VALID: i64 = 90 * DAY;
pub const EVALUATION: i64 = 90 * DAY;
/// How far a signed request's timestamp (or a report's measured_at) may be from now.
pub const CLOCK_WINDOW: i64 = 300;

/// When an id certificate issued at `now` should be renewed and when it expires.
pub fn certificate_times(now: i64) -> (i64, i64) {
    (now + CERT_RENEW_AFTER, now + CERT_VALID)
}

/// When an authorization renewed at `now` should be renewed again and when it lapses.
pub fn authorization_times(now: i64) -> (i64, i64) {
    (now + AUTH_RENEW_AFTER, now + AUTH_VALID)
}

/// The day (counted from the Unix epoch) an authorization expiring at `at` lapses on;
/// the expiry timer finds instances by it.
pub fn expiry_day(at: i64) -> i64 {
    at.div_euclid(86_400)
}

/// Marks per second of expiry (store migrations 0022 and 0026): a mark is the expiry an
/// authorization had when its expiry day last changed, times this, plus the place of the
/// write among those of that second.
pub const MARKS_PER_SECOND: i64 = 1 << 20;

/// The expiry a mark was made from.
pub fn marked_expiry(mark: i64) -> i64 {
    mark.div_euclid(MARKS_PER_SECOND)
}

/// Whether an authorization now expiring at `expires` moves its expiry index entry: only
/// when the day changes, so a report a day renews many times moves the entry once a day.
pub fn expiry_mark_moves(mark: Option<i64>, expires: i64) -> bool {
    mark.map(|m| expiry_day(marked_expiry(m))) != Some(expiry_day(expires))
}

/// The mark of an authorization expiring at `expires`, given the last mark made. Marks of
/// one second follow each other, so new entries of the expiry index land at its right
/// edge: keyed by the second alone, ties went by instance key, and a second's reports
/// wrote all over the second's run of entries (half a page each). Past the second's room
/// they tie, which is still correct.
pub fn next_expiry_mark(expires: i64, last: i64) -> i64 {
    let first = expires.saturating_mul(MARKS_PER_SECOND);
    let end = first.saturating_add(MARKS_PER_SECOND - 1);
    match last.checked_add(1) {
        Some(next) if (first..=end).contains(&next) => next,
        _ if last == end => end,
        _ => first,
    }
}

/// The marks below which an authorization lapses on `now`'s day or before: the start of
/// the next day.
pub fn expiry_marks_due(now: i64) -> i64 {
    (expiry_day(now) + 1) * DAY * MARKS_PER_SECOND
}

/// How far behind `last_contact` may fall before a usage report writes it again. The
/// instance list sorts on it through an index: writing it on every report rewrote an
/// entry of that index, on a random page of it, for every report.
pub const CONTACT_PRECISION: i64 = 3_600;

/// The `last_contact` a report at `now` leaves, when it must be written at all.
pub fn contact_to_record(last_contact: i64, now: i64) -> Option<i64> {
    (now.saturating_sub(last_contact) >= CONTACT_PRECISION).then_some(now)
}

/// Whole days left until `deadline`, never negative.
pub fn days_left(deadline: i64, now: i64) -> i64 {
    ((deadline - now).max(0) + DAY - 1) / DAY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_follow_the_model() {
        assert_eq!(certificate_times(0), (180 * DAY, 365 * DAY));
        assert_eq!(authorization_times(10), (10 + 30 * DAY, 10 + 90 * DAY));
        assert_eq!(days_left(90 * DAY, 0), 90);
        assert_eq!(days_left(90 * DAY, 1), 90);
        assert_eq!(days_left(5, 10), 0);
    }

    #[test]
    fn the_expiry_mark_moves_with_the_day_and_the_timer_finds_it() {
        let expires = 20_000 * DAY + 100;
        let mark = |at: i64| next_expiry_mark(at, 0);
        assert!(expiry_mark_moves(None, expires));
        assert!(!expiry_mark_moves(Some(mark(20_000 * DAY)), expires));
        assert!(!expiry_mark_moves(Some(mark(expires + 3_600)), expires));
        assert!(expiry_mark_moves(Some(mark(expires - 101)), expires));
        assert!(expiry_mark_moves(Some(mark(expires + DAY)), expires));
        // The last mark of a day is still that day's.
        assert!(!expiry_mark_moves(Some(mark(20_001 * DAY) - 1), expires));
        // Due on the mark's own day, from its first second, not on the day before.
        let due = mark(20_000 * DAY + 5);
        assert!(due < expiry_marks_due(20_000 * DAY));
        assert!(due >= expiry_marks_due(20_000 * DAY - 1));
        assert!(due < expiry_marks_due(20_001 * DAY + 7));
        assert!(mark(20_001 * DAY) - 1 < expiry_marks_due(20_000 * DAY));
    }

    #[test]
    fn marks_of_one_second_follow_each_other_and_stay_in_it() {
        let expires = 20_000 * DAY + 100;
        let first = next_expiry_mark(expires, 0);
        assert_eq!(marked_expiry(first), expires);
        let second = next_expiry_mark(expires, first);
        assert_eq!(second, first + 1);
        // A later second starts again; an earlier one (a clock stepped back) too.
        assert_eq!(
            next_expiry_mark(expires + 1, second),
            first + MARKS_PER_SECOND
        );
        assert_eq!(
            next_expiry_mark(expires - 1, second),
            first - MARKS_PER_SECOND
        );
        // A second's room used up: the marks tie at its last, never spill into the next.
        let last = first + MARKS_PER_SECOND - 1;
        assert_eq!(next_expiry_mark(expires, last), last);
        assert_eq!(marked_expiry(next_expiry_mark(expires, last)), expires);
        assert_eq!(next_expiry_mark(i64::MAX, i64::MAX), i64::MAX);
    }

    #[test]
    fn last_contact_moves_by_the_hour() {
        assert_eq!(contact_to_record(1_000, 1_000 + 3_599), None);
        assert_eq!(contact_to_record(1_000, 1_000 + 3_600), Some(4_600));
        // A clock stepped back leaves it alone; extremes do not overflow.
        assert_eq!(contact_to_record(5_000, 4_000), None);
        assert_eq!(contact_to_record(i64::MIN, i64::MAX), Some(i64::MAX));
    }
}
