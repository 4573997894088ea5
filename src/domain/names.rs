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
    if is_trivial(raw) {
        return Err(DomainError::invalid(
            "weak_password",
            field,
            "Password is too easy to guess: use more different characters, not a repeated \
             pattern or a run like abcdef... or 123456...",
        ));
    }
    Ok(())
}

/// The password rule for a named user: the general rule, and not the username itself.
pub fn password_for(field: &'static str, raw: &str, username: &str) -> Result<(), DomainError> {
    password(field, raw)?;
    if raw.trim().to_lowercase() == username.trim().to_lowercase() {
        return Err(DomainError::invalid(
            "weak_password",
            field,
            "Password must not be the username.",
        ));
    }
    Ok(())
}

/// Fewer than 5 different characters, one short unit repeated (`abcabcabcabc`), or one
/// steady run (`abcdefghijkl`, `987654321098`): what a guesser tries first.
fn is_trivial(raw: &str) -> bool {
    let chars: Vec<char> = raw.chars().collect();
    let distinct: std::collections::HashSet<char> = chars.iter().copied().collect();
    if distinct.len() < 5 {
        return true;
    }
    let len = chars.len();
    let periodic = (1..=len / 2).any(|p| (p..len).all(|i| chars[i] == chars[i - p]));
    if periodic {
        return true;
    }
    // A run: every step between neighbours the same +1 or -1 (digits may wrap 9 -> 0).
    let step = |a: char, b: char| -> i64 {
        let d = i64::from(u32::from(b)) - i64::from(u32::from(a));
        if a.is_ascii_digit() && b.is_ascii_digit() && d.abs() == 9 {
            -d.signum()
        } else {
            d
        }
    };
    let steps: Vec<i64> = chars.windows(2).map(|w| step(w[0], w[1])).collect();
    steps.iter().all(|&d| d == 1) || steps.iter().all(|&d| d == -1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trivial_passwords_are_refused() {
        for weak in [
            "aaaaaaaaaaaa",
            "abababababab",
            "abcabcabcabc",
            "abcdeabcdeab",
            "abcdefghijkl",
            "123456789012",
            "987654321098",
            "short",
        ] {
            assert!(password("p", weak).is_err(), "{weak}");
        }
        for fine in [
            "correct horse battery staple",
            "Tr0ub4dor&3xyz",
            "k3y-Ring-walk",
        ] {
            assert!(password("p", fine).is_ok(), "{fine}");
        }
        assert!(password_for("p", "operator-1234", "Operator-1234").is_err());
        assert!(password_for("p", "correct horse battery", "alice").is_ok());
    }

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
