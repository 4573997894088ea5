//! Registration tokens: how long they live, how often they may be used.

use super::string_enum::string_enum;
use super::timers::DAY;
use super::DomainError;

string_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum TokenState {
        Active => "active",
        Expired => "expired",
        Revoked => "revoked",
        Exhausted => "exhausted",
    }
}

/// Revoked wins over expired, expired over exhausted: the most deliberate reason first.
pub fn state(
    revoked_at: Option<i64>,
    expires_at: i64,
    max_uses: Option<i64>,
    uses: i64,
    now: i64,
) -> TokenState {
    if revoked_at.is_some() {
        TokenState::Revoked
    } else if now >= expires_at {
        TokenState::Expired
    } else if max_uses.is_some_and(|m| uses >= m) {
        TokenState::Exhausted
    } else {
        TokenState::Active
    }
}

/// Checks a new token's lifetime (1-365 days) and use limit (at least 1); returns the
/// expiry time.
pub fn check_new(
    expires_in_days: i64,
    max_uses: Option<i64>,
    now: i64,
) -> Result<i64, DomainError> {
    if !(1..=365).contains(&expires_in_days) {
        return Err(DomainError::invalid(
            "invalid_expiry",
            "expires_in_days",
            "Choose between 1 and 365 days.",
        ));
    }
    if max_uses.is_some_and(|m| !(1..=i32::MAX as i64).contains(&m)) {
        return Err(DomainError::invalid(
            "invalid_max_uses",
            "max_uses",
            "Enter how many products may use it, 1 or more, or leave it empty for no limit.",
        ));
    }
    Ok(now + expires_in_days * DAY)
}

/// A satellite registration token as an upstream issues it: `sat_` and 43 URL-safe base64
/// characters (32 random bytes). Checked before a registration request is written, so a
/// pasted product token or a clipped copy is caught at the form, not at the upstream.
pub fn satellite_token(raw: &str) -> Result<String, DomainError> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(DomainError::invalid(
            "invalid_token",
            "token",
            "Paste the satellite registration token from the upstream's Satellites page.",
        ));
    }
    let ok = t.strip_prefix("sat_").is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if ok {
        Ok(t.to_string())
    } else {
        Err(DomainError::invalid(
            "invalid_token",
            "token",
            "This is not a satellite registration token: those start with sat_ followed by 43 \
             letters, digits, '-' or '_'. Create one on the upstream's Satellites page and copy \
             it whole.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_states() {
        assert_eq!(state(None, 100, None, 0, 50), TokenState::Active);
        assert_eq!(state(None, 100, Some(2), 2, 50), TokenState::Exhausted);
        assert_eq!(state(None, 100, Some(2), 2, 100), TokenState::Expired);
        assert_eq!(state(Some(1), 100, Some(2), 2, 100), TokenState::Revoked);
        assert!(check_new(0, None, 0).is_err());
        assert!(check_new(366, None, 0).is_err());
        assert!(check_new(30, Some(0), 0).is_err());
        assert_eq!(check_new(1, Some(5), 10).unwrap(), 10 + DAY);
    }
}
