//! Sync outcomes as sentences a person reads ("Imported the sync response for account
//! Acme: 5 licenses and 1 virtual account."), for flash messages, instead of JSON.

use crate::domain::sync::BundleResult;
use crate::sync::import::Outcome;
use serde_json::Value;

/// "5 licenses", "1 virtual account".
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn joined(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The records of a bundle's summary, in words; files it does not know are left out.
pub fn records(summary: &Value) -> String {
    const NOUNS: [(&str, &str, &str); 7] = [
        ("licenses", "license", "licenses"),
        ("virtual_accounts", "virtual account", "virtual accounts"),
        ("instances", "instance", "instances"),
        ("usage", "usage record", "usage records"),
        ("reserved", "reservation hold", "reservation holds"),
        ("export_keys", "export key", "export keys"),
        ("acks", "acknowledgement", "acknowledgements"),
    ];
    let parts: Vec<String> = NOUNS
        .iter()
        .filter_map(|(key, one, many)| {
            summary[*key]
                .as_u64()
                .filter(|n| *n > 0)
                .map(|n| count(n, one, many))
        })
        .collect();
    if parts.is_empty() {
        "no records".into()
    } else {
        joined(&parts)
    }
}

pub fn kind_label(kind: &str) -> String {
    kind.replace('-', " ")
}

/// One import's outcome: "Imported the sync response for account Acme: 5 licenses and 1
/// virtual account." or "... was imported before; nothing changed."
pub fn imported(o: &Outcome) -> String {
    let kind = kind_label(o.kind.as_str());
    if o.result == BundleResult::Duplicate {
        return format!(
            "This {kind} for account {} was imported before; nothing changed.",
            o.account
        );
    }
    format!(
        "Imported the {kind} for account {}: {}.",
        o.account,
        records(&o.summary)
    )
}

/// A connected round trip's outcome.
pub fn synced(account: &str, o: &Outcome) -> String {
    if o.result == BundleResult::Duplicate {
        return format!("Synced account {account} with the upstream; nothing had changed.");
    }
    format!(
        "Synced account {account} with the upstream: its {} brought {}.",
        kind_label(o.kind.as_str()),
        records(&o.summary)
    )
}

/// A reason shown on a page as a sentence of its own: its first letter a capital. The
/// sync layer words its reasons as clauses ("the upstream refused the token: ...") and
/// the API keeps them so; only the page's banner capitalizes.
pub fn sentence(reason: &str) -> String {
    let mut chars = reason.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries_read_as_sentences() {
        assert_eq!(
            records(&json!({ "licenses": 5, "virtual_accounts": 1, "acks": 0 })),
            "5 licenses and 1 virtual account"
        );
        assert_eq!(
            records(&json!({ "instances": 14, "usage": 20, "export_keys": 1 })),
            "14 instances, 20 usage records and 1 export key"
        );
        assert_eq!(records(&json!({})), "no records");
    }

    #[test]
    fn a_reason_shown_alone_starts_with_a_capital() {
        assert_eq!(
            sentence("the upstream refused the token: it was revoked"),
            "The upstream refused the token: it was revoked"
        );
        assert_eq!(sentence("Cannot reach x"), "Cannot reach x");
        assert_eq!(sentence("ébauche"), "Ébauche");
        assert_eq!(sentence(""), "");
    }
}
