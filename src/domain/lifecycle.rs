//! What an admin should notice about one product instance's lifecycle (the instance list's
//! alerts column): an authorization about to lapse or lapsed, a registration about to
//! end, a product out of compliance. Pure: `now` is passed in.

use super::instance::InstanceStatus;
use super::string_enum::string_enum;
use super::timers::DAY;

/// How early a lapsing authorization or an ending registration is flagged.
pub const WARN_WINDOW: i64 = 30 * DAY;

string_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum InstanceFlag {
        /// No accepted report for 60 days: the authorization lapses within 30.
        AuthorizationLapsing => "authorization_lapsing",
        /// No accepted report for 90 days: licenses released.
        AuthorizationLapsed => "authorization_lapsed",
        /// The id certificate ends within 30 days and was not renewed.
        RegistrationExpiring => "registration_expiring",
        /// The last report asked for more than the pool holds, or for unknown tags.
        OutOfCompliance => "out_of_compliance",
    }
}

impl InstanceFlag {
    pub fn label(self) -> &'static str {
        match self {
            InstanceFlag::AuthorizationLapsing => "authorization lapsing",
            InstanceFlag::AuthorizationLapsed => "authorization lapsed",
            InstanceFlag::RegistrationExpiring => "registration expiring",
            InstanceFlag::OutOfCompliance => "out of compliance",
        }
    }
}

/// The flags of an instance with this status and these deadlines, at `now`.
pub fn flags(
    status: InstanceStatus,
    auth_expires_at: Option<i64>,
    cert_expires_at: i64,
    now: i64,
) -> Vec<InstanceFlag> {
    let mut out = vec![];
    if status == InstanceStatus::AuthorizationExpired {
        out.push(InstanceFlag::AuthorizationLapsed);
    } else if auth_expires_at.is_some_and(|at| at - now <= WARN_WINDOW) {
        out.push(InstanceFlag::AuthorizationLapsing);
    }
    if cert_expires_at - now <= WARN_WINDOW {
        out.push(InstanceFlag::RegistrationExpiring);
    }
    if matches!(
        status,
        InstanceStatus::OutOfCompliance | InstanceStatus::NotAuthorized
    ) {
        out.push(InstanceFlag::OutOfCompliance);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceFlag::*;

    #[test]
    fn flags_follow_the_timers_and_the_status() {
        let year = 365 * DAY;
        assert!(flags(InstanceStatus::Authorized, Some(90 * DAY), year, 0).is_empty());
        assert_eq!(
            flags(InstanceStatus::Authorized, Some(90 * DAY), year, 61 * DAY),
            vec![AuthorizationLapsing]
        );
        assert_eq!(
            flags(InstanceStatus::AuthorizationExpired, None, year, 100 * DAY),
            vec![AuthorizationLapsed]
        );
        assert_eq!(
            flags(
                InstanceStatus::OutOfCompliance,
                Some(400 * DAY),
                year,
                340 * DAY
            ),
            vec![RegistrationExpiring, OutOfCompliance]
        );
        assert_eq!(
            flags(InstanceStatus::Registered, None, year, 0),
            Vec::<InstanceFlag>::new()
        );
    }
}
