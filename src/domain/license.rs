//! Licenses: what a pool of entitlements is, and which are well-formed.

use super::string_enum::string_enum;
use super::DomainError;
use chrono::NaiveDate;

pub const TAG_MAX_BYTES: usize = 256;
pub const QUANTITY_MAX: i64 = i32::MAX as i64;
/// Substitution rank when none is given (CONTRACT section 3): lowest is drawn first.
pub const DEFAULT_RANK: i64 = 100;
pub const RANK_MAX: i64 = 1_000_000;

string_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum LicenseType {
        Perpetual => "perpetual",
        Term => "term",
        Subscription => "subscription",
    }
    unknown(s) -> DomainError {
        DomainError::invalid(
            "invalid_license",
            "type",
            "type is one of perpetual, term, subscription.",
        )
    }
}

impl LicenseType {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        s.parse()
    }
}

/// A tag: any non-empty printable string up to 256 bytes (by convention
/// `regid.YYYY-MM.com.vendor.NAME,VERSION_uuid`).
pub fn tag(field: &'static str, raw: &str) -> Result<String, DomainError> {
    let ok = !raw.is_empty()
        && raw.len() <= TAG_MAX_BYTES
        && raw.chars().all(|c| !c.is_control())
        && !raw.trim().is_empty();
    if ok {
        Ok(raw.to_string())
    } else {
        Err(DomainError::invalid(
            "invalid_tag",
            field,
            "A tag is a non-empty printable string of at most 256 bytes.",
        ))
    }
}

pub fn parse_date(field: &'static str, raw: &str) -> Result<NaiveDate, DomainError> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
        DomainError::invalid(
            "invalid_date",
            field,
            format!("{field} must be a date YYYY-MM-DD."),
        )
    })
}

/// A license as created (upstream) or received by sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LicenseSpec {
    pub tag: String,
    pub name: String,
    pub license_type: LicenseType,
    pub quantity: i64,
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
    pub export_controlled: bool,
    pub substitutes: Vec<String>,
    /// Order among licenses covering the same tag: lowest first, ties by tag.
    pub rank: i64,
}

/// A license as it arrives, before checks.
pub struct RawLicense<'a> {
    pub tag: &'a str,
    pub name: &'a str,
    pub license_type: &'a str,
    pub quantity: i64,
    pub start: &'a str,
    pub end: Option<&'a str>,
    pub export_controlled: bool,
    pub substitutes: &'a [String],
    pub rank: Option<i64>,
}

impl LicenseSpec {
    pub fn validate(raw: RawLicense<'_>) -> Result<Self, DomainError> {
        let tag = tag("tag", raw.tag)?;
        let name = raw.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(DomainError::invalid(
                "invalid_license",
                "name",
                "name is 1-200 characters.",
            ));
        }
        let license_type = LicenseType::parse(raw.license_type)?;
        if !(0..=QUANTITY_MAX).contains(&raw.quantity) {
            return Err(DomainError::invalid(
                "invalid_quantity",
                "quantity",
                "quantity is an integer from 0 to 2147483647.",
            ));
        }
        let start = parse_date("start", raw.start)?;
        let end = raw.end.map(|e| parse_date("end", e)).transpose()?;
        match (license_type, end) {
            (LicenseType::Perpetual, Some(_)) => {
                return Err(DomainError::invalid(
                    "invalid_license",
                    "end",
                    "A perpetual license has no end date.",
                ))
            }
            (LicenseType::Term | LicenseType::Subscription, None) => {
                return Err(DomainError::invalid(
                    "invalid_license",
                    "end",
                    "Term and subscription licenses need an end date.",
                ))
            }
            (_, Some(e)) if e < start => {
                return Err(DomainError::invalid(
                    "invalid_license",
                    "end",
                    "end is before start.",
                ))
            }
            _ => {}
        }
        let rank = raw.rank.unwrap_or(DEFAULT_RANK);
        if !(0..=RANK_MAX).contains(&rank) {
            return Err(DomainError::invalid(
                "invalid_license",
                "rank",
                "The rank is a whole number from 0 to 1000000 (lowest is used first).",
            ));
        }
        let mut substitutes = Vec::with_capacity(raw.substitutes.len());
        for s in raw.substitutes {
            let s = self::tag("substitutes", s)?;
            if s == tag {
                return Err(DomainError::invalid(
                    "invalid_license",
                    "substitutes",
                    "A license cannot substitute for itself.",
                ));
            }
            if !substitutes.contains(&s) {
                substitutes.push(s);
            }
        }
        Ok(LicenseSpec {
            tag,
            name: name.to_string(),
            license_type,
            quantity: raw.quantity,
            start,
            end,
            export_controlled: raw.export_controlled,
            substitutes,
            rank,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(t: &'a str, end: Option<&'a str>, subs: &'a [String]) -> RawLicense<'a> {
        RawLicense {
            tag: "regid.2026-01.com.acme.router,1.0_x",
            name: "Router",
            license_type: t,
            quantity: 10,
            start: "2026-01-01",
            end,
            export_controlled: false,
            substitutes: subs,
            rank: None,
        }
    }

    #[test]
    fn licenses_are_checked() {
        assert!(LicenseSpec::validate(raw("perpetual", None, &[])).is_ok());
        assert!(LicenseSpec::validate(raw("perpetual", Some("2027-01-01"), &[])).is_err());
        assert!(LicenseSpec::validate(raw("term", None, &[])).is_err());
        assert!(LicenseSpec::validate(raw("term", Some("2025-01-01"), &[])).is_err());
        assert!(LicenseSpec::validate(raw("term", Some("2027-01-01"), &[])).is_ok());
        assert!(LicenseSpec::validate(raw("lease", None, &[])).is_err());
        let own = vec!["regid.2026-01.com.acme.router,1.0_x".to_string()];
        assert!(LicenseSpec::validate(raw("perpetual", None, &own)).is_err());
        assert!(tag("tag", "").is_err());
        assert!(tag("tag", &"x".repeat(257)).is_err());
        assert!(tag("tag", "tab\there").is_err());
        let ok = LicenseSpec::validate(raw("perpetual", None, &[])).unwrap();
        assert_eq!(ok.rank, DEFAULT_RANK, "rank defaults to 100");
        let ranked = RawLicense {
            rank: Some(-1),
            ..raw("perpetual", None, &[])
        };
        assert!(LicenseSpec::validate(ranked).is_err());
    }
}
