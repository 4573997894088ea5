//! Every error of a form at once: the page forms parse each field on its own, with the
//! same domain rules the service applies, and collect one error per field (as
//! `domain::license_form` does for licenses), so a person sees all their mistakes in one
//! round. The service still checks everything again; these only run first.

use crate::domain::{names, token, DomainError, Role};
use crate::web::render::FormErrors;

/// Collects field errors while a form is parsed.
#[derive(Default)]
pub struct Checks {
    errors: FormErrors,
}

impl Checks {
    /// The value of a passing check; a failing one is noted against its field.
    pub fn keep<T>(&mut self, checked: Result<T, DomainError>) -> Option<T> {
        match checked {
            Ok(v) => Some(v),
            Err(DomainError::Invalid { field, message, .. }) => {
                self.errors.push(field, message);
                None
            }
            Err(other) => {
                self.errors.push("form", other.to_string());
                None
            }
        }
    }

    /// Notes an error against `field` (a rule checked here, not in the domain).
    pub fn note(&mut self, field: &'static str, message: &str) {
        self.errors.push(field, message);
    }

    /// A whole number typed into `field`, or the field's hint in words.
    pub fn number(&mut self, field: &'static str, raw: &str, hint: &str) -> Option<i64> {
        match raw.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.errors.push(field, hint);
                None
            }
        }
    }

    /// `Ok(())` when every field passed, else every error found.
    pub fn finish(self) -> Result<(), FormErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

const DAYS_HINT: &str = "Choose between 1 and 365 days.";
const USES_HINT: &str = "Enter a whole number of uses, like 5, or leave it empty for no limit.";

/// A new token as typed: (expires_in_days, max_uses) when every field passes.
pub fn token(
    description: &str,
    expires_in_days: &str,
    max_uses: &str,
) -> Result<(i64, Option<i64>), FormErrors> {
    let mut c = Checks::default();
    c.keep(names::description(description));
    let days = c.number("expires_in_days", expires_in_days, DAYS_HINT);
    if let Some(d) = days {
        c.keep(token::check_new(d, None, 0));
    }
    let max = if max_uses.trim().is_empty() {
        Some(None)
    } else {
        let m = c.number("max_uses", max_uses, USES_HINT);
        if let Some(m) = m {
            c.keep(token::check_new(1, Some(m), 0));
        }
        m.map(Some)
    };
    c.finish()?;
    match (days, max) {
        (Some(d), Some(m)) => Ok((d, m)),
        _ => Err(FormErrors::single("expires_in_days", DAYS_HINT)),
    }
}

/// Who a new user or API client is: `name` checked by `name_rule`, a role, and an account
/// exactly when the role is scoped to one.
pub fn principal(
    name_rule: Result<String, DomainError>,
    role: &str,
    account: &str,
) -> Result<Role, FormErrors> {
    let mut c = Checks::default();
    c.keep(name_rule);
    let role = c.keep(role.parse::<Role>());
    if let Some(r) = role {
        c.keep(r.check_scope(!account.trim().is_empty()));
    }
    c.finish()?;
    role.ok_or_else(|| FormErrors::single("role", "Choose a role."))
}

/// A license transfer as typed: the quantity when every field passes.
pub fn transfer(tag: &str, quantity: &str, to: &str) -> Result<i64, FormErrors> {
    let mut c = Checks::default();
    if tag.trim().is_empty() {
        c.note("tag", "Choose the license to move.");
    }
    let q = c.number(
        "quantity",
        quantity,
        "Enter a whole number of licenses, like 2.",
    );
    if q.is_some_and(|q| q < 1) {
        c.note("quantity", "Move at least 1 license.");
    }
    if to.trim().is_empty() {
        c.note(
            "to_virtual_account",
            "Choose the virtual account to move them to.",
        );
    }
    c.finish()?;
    q.ok_or_else(|| FormErrors::single("quantity", "Enter a whole number of licenses."))
}

/// A connected registration as typed: the upstream's https:// address and a satellite
/// token of the right shape, both checked before anything is written.
pub fn connected(url: &str, token: &str) -> Result<(), FormErrors> {
    let mut c = Checks::default();
    if !crate::sync::transport::is_https(url.trim()) {
        c.note(
            "url",
            "url must be the upstream's https:// address (plain http:// would send the registration token in cleartext).",
        );
    }
    c.keep(token::satellite_token(token));
    c.finish()
}

/// A name (when one is given; an edit may leave it as it is) and a description.
pub fn named(name: Option<&str>, description: &str) -> Result<(), FormErrors> {
    let mut c = Checks::default();
    if let Some(n) = name {
        c.keep(names::name("name", n));
    }
    c.keep(names::description(description));
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let long = "x".repeat(600);
        let e = token(&long, "0", "-2").unwrap_err();
        assert!(e.get("description").is_some());
        assert!(e.get("expires_in_days").is_some());
        assert!(e.get("max_uses").is_some());
        assert_eq!(token("", "30", "").ok(), Some((30, None)));
        assert_eq!(token("a", "7", "3").ok(), Some((7, Some(3))));

        let e = principal(names::username(""), "viewer", "").unwrap_err();
        assert!(e.get("username").is_some());
        assert!(e.get("account").is_some(), "viewer needs an account");
        let e = principal(names::name("name", ""), "nobody", "").unwrap_err();
        assert!(e.get("name").is_some() && e.get("role").is_some());
        assert_eq!(
            principal(names::username("ann"), "operator", "").ok(),
            Some(Role::Operator)
        );
        let e = named(Some(" "), &"\u{7}".repeat(3)).unwrap_err();
        assert!(e.get("name").is_some() && e.get("description").is_some());
        assert!(named(None, "fine").is_ok());
        let e = transfer("", "0", "").unwrap_err();
        assert!(e.get("tag").is_some() && e.get("quantity").is_some());
        assert!(e.get("to_virtual_account").is_some());
        assert_eq!(transfer("ess", "2", "Edge").ok(), Some(2));
        let e = connected("http://x", "nope").unwrap_err();
        assert!(e.get("url").is_some() && e.get("token").is_some());
    }
}
