//! Every problem of a new license at once, for forms: `LicenseSpec::validate` stops at the
//! first; here each faulty field is set aside (replaced by a value known to pass) and the
//! rest checked again, so a person sees all their mistakes in one round.

use super::license::{LicenseSpec, RawLicense};
use super::DomainError;

/// (field, message) for each field that breaks a rule, in form order; empty when valid.
pub fn problems(raw: RawLicense<'_>) -> Vec<(&'static str, String)> {
    let mut found: Vec<(&'static str, String)> = Vec::new();
    let (mut tag, mut name, mut kind) = (raw.tag, raw.name, raw.license_type);
    let (mut quantity, mut start, mut end, mut rank) = (raw.quantity, raw.start, raw.end, raw.rank);
    let mut substitutes = raw.substitutes;
    let none: &[String] = &[];
    // One round per field at most: each round sets one more field aside.
    for _ in 0..9 {
        let attempt = RawLicense {
            tag,
            name,
            license_type: kind,
            quantity,
            start,
            end,
            export_controlled: raw.export_controlled,
            substitutes,
            rank,
        };
        let Err(DomainError::Invalid { field, message, .. }) = LicenseSpec::validate(attempt)
        else {
            break;
        };
        if found.iter().any(|(f, _)| *f == field) {
            break;
        }
        found.push((field, message));
        match field {
            "tag" => tag = "placeholder-tag",
            "name" => name = "placeholder",
            "type" => kind = if end.is_some() { "term" } else { "perpetual" },
            "quantity" => quantity = 0,
            "start" => start = "2000-01-01",
            "end" => end = (kind != "perpetual").then_some("2999-12-31"),
            "rank" => rank = None,
            "substitutes" => substitutes = none,
            _ => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_problems_come_back_at_once() {
        let subs = vec!["x".to_string()];
        let p = problems(RawLicense {
            tag: "",
            name: "",
            license_type: "perpetual",
            quantity: -1,
            start: "yesterday",
            end: None,
            export_controlled: false,
            substitutes: &subs,
            rank: Some(-5),
        });
        let fields: Vec<&str> = p.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, vec!["tag", "name", "quantity", "start", "rank"]);
        let ok = problems(RawLicense {
            tag: "ess",
            name: "Essentials",
            license_type: "perpetual",
            quantity: 5,
            start: "2020-01-01",
            end: None,
            export_controlled: false,
            substitutes: &[],
            rank: None,
        });
        assert!(ok.is_empty());
    }
}
