//! What a name, a username, a description and a password may look like.

use super::DomainError;

pub const NAME_MAX: usize = 64;
pub const DESCRIPTION_MAX: usize = 500;
pub const PASSWORD_MIN: usize = 12;
pub const PASSWORD_MAX: usize = 256;

/// Names of accounts and virtual accounts: 1-64 characters of letters, digits, space,
/// `.`, `_` and `-`, starting with a letter or digit. Surrounding spaces are trimmed.
/// Kept strict because names appear in URLs, file names of bundles and upstream records.
pub fn name(field: &'static str, raw: &str) -> Result<String, DomainError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(DomainError::invalid(
            "invalid_name",
            field,
            "Name is required.",
        ));
    }
    if s.chars().count() > NAME_MAX {
        return Err(DomainError::invalid(
            "invalid_name",
            field,
            format!("Name is at most {NAME_MAX} characters."),
        ));
    }
    let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let all_ok = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'));
    if !first_ok || !all_ok {
        return Err(DomainError::invalid(
            "invalid_name",
            field,
            "Use letters, digits, spaces, '.', '_' or '-', starting with a letter or digit.",
        ));
    }
    Ok(s.to_string())
}

pub fn description(raw: &str) -> Result<String, DomainError> {
    let s = raw.trim();
    if s.chars().count() > DESCRIPTION_MAX {
        return Err(DomainError::invalid(
            "invalid_description",
            "description",
            format!("Description is at most {DESCRIPTION_MAX} characters."),
        ));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(DomainError::invalid(
            "invalid_description",
            "description",
            "Description may not contain control characters.",
        ));
    }
    Ok(s.to_string())
}

/// Usernames: 1-64 of lowercase letters, digits, `.`, `_`, `-` and `@`.
pub fn username(raw: &str) -> Result<String, DomainError> {
    let s = raw.trim();
    let ok = !s.is_empty()
        && s.len() <= NAME_MAX
        && s.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '@')
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(DomainError::invalid(
            "invalid_username",
            "username",
            "Username is 1-64 of lowercase letters, digits, '.', '_', '-' or '@'.",
        ))
    }
}

pub fn password(field: &'static str, raw: &str) -> Result<(), DomainError> {
    let n = raw.chars().count();
    if n < PASSWORD_MIN {
        return Err(DomainError::invalid(
            "weak_password",
            field,
            format!("Password needs at least {PASSWORD_MIN} characters."),
        ));
    }
    if n > PASSWORD_MAX {
        return Err(DomainError::invalid(
            "invalid_password",
            field,
            format!("Password is at most {PASSWORD_MAX} characters."),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(name("name", "  Acme Corp ").unwrap(), "Acme Corp");
        assert_eq!(name("name", "lab-1.eu_west").unwrap(), "lab-1.eu_west");
        for bad in [
            "",
            "   ",
            "-lead",
            "a/b",
            "a<b>",
            "ünïcode",
            &"x".repeat(65),
        ] {
            assert!(name("name", bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn usernames_and_passwords() {
        assert!(username("ops.admin@lab").is_ok());
        assert!(username("Admin").is_err());
        assert!(password("password", "short").is_err());
        assert!(password("password", "long enough pass").is_ok());
    }

    #[test]
    fn descriptions_refuse_control_characters() {
        assert!(description("line one\nline two").is_ok());
        assert!(description("bell\u{7}").is_err());
        assert!(description(&"d".repeat(501)).is_err());
    }
}
