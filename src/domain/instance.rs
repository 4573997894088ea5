//! Product instances: identity (UDI), product, status, and how usage reports apply.

use super::string_enum::string_enum;
use super::timers::CLOCK_WINDOW;
use super::DomainError;

pub const FIELD_MAX: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Udi {
    pub pid: String,
    pub sn: String,
    pub uuid: Option<String>,
}

fn udi_part(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= FIELD_MAX
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && c != ':' && c != ',')
}

/// A UDI's identity is (pid, sn): printable ASCII without spaces, ':' or ',' (they
/// separate the parts in reservation codes), at most 128 bytes each.
pub fn check_udi(pid: &str, sn: &str, uuid: Option<&str>) -> Result<Udi, DomainError> {
    let uuid_ok = uuid.is_none_or(|u| {
        !u.is_empty() && u.len() <= FIELD_MAX && u.chars().all(|c| c.is_ascii_graphic())
    });
    if udi_part(pid) && udi_part(sn) && uuid_ok {
        Ok(Udi {
            pid: pid.to_string(),
            sn: sn.to_string(),
            uuid: uuid.map(str::to_string),
        })
    } else {
        Err(DomainError::invalid(
            "invalid_udi",
            "udi",
            "udi.pid and udi.sn are 1-128 printable ASCII characters without spaces, ':' or ','.",
        ))
    }
}

pub fn check_product(name: &str, version: &str) -> Result<(), DomainError> {
    let ok = |s: &str, allow_empty: bool| {
        (allow_empty || !s.trim().is_empty())
            && s.len() <= FIELD_MAX
            && s.chars().all(|c| !c.is_control())
    };
    if ok(name, false) && ok(version, true) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "invalid_product",
            "product",
            "product.name is 1-128 printable characters; product.version at most 128.",
        ))
    }
}

string_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum InstanceStatus {
        /// Registered, no usage report yet.
        Registered => "registered",
        Authorized => "authorized",
        OutOfCompliance => "out_of_compliance",
        NotAuthorized => "not_authorized",
        /// No accepted report for 90 days: holds no licenses until it reports again.
        AuthorizationExpired => "authorization_expired",
        /// Its UDI holds a live reservation and its last report was authorized.
        Reserved => "reserved",
    }
    unknown(s) -> DomainError {
        DomainError::invalid(
            "invalid_status",
            "status",
            "status is registered, authorized, out_of_compliance, not_authorized, authorization_expired or reserved.",
        )
    }
}

impl InstanceStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn from_entitlement(s: super::compliance::EntitlementStatus) -> Self {
        use super::compliance::EntitlementStatus as E;
        match s {
            E::Authorized | E::Reserved => InstanceStatus::Authorized,
            E::OutOfCompliance => InstanceStatus::OutOfCompliance,
            E::NotAuthorized | E::ExportRestricted => InstanceStatus::NotAuthorized,
        }
    }
}

/// What to do with a usage report, given the instance's last applied one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportDisposition {
    Apply,
    /// Same report_id as the last applied one: counted once already.
    Retransmission,
    /// Not measured strictly after the last applied report: newer counts stand.
    Stale,
}

/// Times are microseconds since the epoch: agents send milliseconds or finer, and a
/// replay measured earlier in the same second must not roll usage back.
pub fn dispose_report(
    last_report_id: Option<&str>,
    last_measured_at_us: Option<i64>,
    report_id: &str,
    measured_at_us: i64,
) -> ReportDisposition {
    if last_report_id == Some(report_id) {
        ReportDisposition::Retransmission
    } else if last_measured_at_us.is_some_and(|last| measured_at_us <= last) {
        ReportDisposition::Stale
    } else {
        ReportDisposition::Apply
    }
}

pub fn check_measured_at(measured_at: i64, now: i64) -> Result<(), DomainError> {
    if measured_at > now + CLOCK_WINDOW {
        Err(DomainError::invalid(
            "measured_in_future",
            "measured_at",
            "measured_at is more than 300 s in the future; check the product's clock.",
        ))
    } else {
        Ok(())
    }
}

/// Refusals of a signed agent request (CONTRACT section 4), shared by the signature check
/// in the web layer and by the write that confirms it in the store.
pub fn not_registered() -> DomainError {
    DomainError::Unauthorized {
        code: "instance_not_registered",
        message: "This instance is not registered (unknown, removed or deregistered).".into(),
    }
}

pub fn bad_signature() -> DomainError {
    DomainError::Unauthorized {
        code: "bad_signature",
        message: "X-Satellite-Signature is missing or not valid.".into(),
    }
}

/// An instance speaks for itself until its registration (id certificate) expires.
pub fn check_registration_current(cert_expires_at: i64, now: i64) -> Result<(), DomainError> {
    if cert_expires_at <= now {
        return Err(DomainError::Unauthorized {
            code: "instance_not_registered",
            message: "This instance's registration has expired; register again.".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udis_are_checked() {
        assert!(check_udi("C9300-24T", "FOC1234X0AB", None).is_ok());
        assert!(check_udi(
            "C9300",
            "FOC1",
            Some("0b9c1f1e-0000-4000-8000-000000000001")
        )
        .is_ok());
        for (pid, sn) in [
            ("", "x"),
            ("a b", "x"),
            ("a:b", "x"),
            ("x", "a,b"),
            ("x", "\u{e9}"),
        ] {
            assert!(check_udi(pid, sn, None).is_err(), "{pid:?} {sn:?}");
        }
        assert!(check_udi("x", "y", Some("")).is_err());
    }

    #[test]
    fn reports_apply_once_and_in_order() {
        use ReportDisposition::*;
        assert_eq!(dispose_report(None, None, "r1", 10), Apply);
        assert_eq!(
            dispose_report(Some("r1"), Some(10), "r1", 10),
            Retransmission
        );
        assert_eq!(dispose_report(Some("r1"), Some(10), "r2", 9), Stale);
        assert_eq!(dispose_report(Some("r1"), Some(10), "r2", 10), Stale);
        assert_eq!(dispose_report(Some("r1"), Some(10), "r2", 11), Apply);
        // Same second, earlier millisecond: a replay, refused.
        assert_eq!(
            dispose_report(Some("r6"), Some(1_000_500_000), "r5", 1_000_200_000),
            Stale
        );
        assert!(check_measured_at(1300, 1000).is_ok());
        assert!(check_measured_at(1301, 1000).is_err());
    }
}
