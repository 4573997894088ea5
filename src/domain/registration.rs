//! Registration identity (CONTRACT section 4): a UDI (pid, sn) is one instance across the
//! whole server. Where a registration lands depends on where that UDI already is.

use super::DomainError;

/// Where an existing instance with the registering UDI lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder<'a> {
    pub va_id: i64,
    pub va_name: &'a str,
    pub account_id: i64,
}

/// What a registration does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The UDI is unknown: a new instance.
    New,
    /// Already in the token's VA: same id, new key.
    Reregister,
    /// In another VA of the same account and the product asked for it: same id, new key,
    /// now in the token's VA; its licenses leave the old pool.
    Move,
}

/// Decides a registration of a UDI with a token of `(token_va, token_account)`.
pub fn place(
    holder: Option<Holder<'_>>,
    token_va: i64,
    token_account: i64,
    reregister: bool,
) -> Result<Placement, DomainError> {
    let Some(h) = holder else {
        return Ok(Placement::New);
    };
    if h.account_id != token_account {
        // One tenant's token never takes another tenant's product, and which account holds
        // it is not this tenant's business.
        return Err(DomainError::conflict(
            "registered_elsewhere",
            "This product is registered with another account; an admin of that account must remove it first.",
        ));
    }
    if h.va_id == token_va {
        Ok(Placement::Reregister)
    } else if reregister {
        Ok(Placement::Move)
    } else {
        Err(DomainError::conflict(
            "already_registered",
            format!(
                "This product is already registered in virtual account '{}'; register with \"reregister\": true to move it.",
                h.va_name
            ),
        ))
    }
}

/// A hostname as products send it: at most 255 printable characters.
pub fn check_hostname(hostname: Option<&str>) -> Result<(), DomainError> {
    if hostname.is_some_and(|h| h.len() > 255 || h.chars().any(char::is_control)) {
        return Err(DomainError::invalid(
            "invalid_hostname",
            "hostname",
            "hostname is at most 255 printable characters.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<Placement, DomainError>) -> &'static str {
        match r {
            Err(DomainError::Conflict { code, .. }) => code,
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    #[test]
    fn a_udi_lands_by_where_it_already_is() {
        let lab = Holder {
            va_id: 1,
            va_name: "Lab",
            account_id: 10,
        };
        assert_eq!(place(None, 1, 10, false), Ok(Placement::New));
        assert_eq!(place(Some(lab), 1, 10, false), Ok(Placement::Reregister));
        assert_eq!(place(Some(lab), 1, 10, true), Ok(Placement::Reregister));
        assert_eq!(code(place(Some(lab), 2, 10, false)), "already_registered");
        assert_eq!(place(Some(lab), 2, 10, true), Ok(Placement::Move));
        assert_eq!(code(place(Some(lab), 3, 11, false)), "registered_elsewhere");
        assert_eq!(code(place(Some(lab), 3, 11, true)), "registered_elsewhere");
        let Err(e) = place(Some(lab), 2, 10, false) else {
            panic!()
        };
        assert!(e.to_string().contains("'Lab'"), "{e}");
    }

    #[test]
    fn hostnames_are_printable_and_bounded() {
        assert!(check_hostname(None).is_ok());
        assert!(check_hostname(Some("edge-1.example.com")).is_ok());
        assert!(check_hostname(Some("a\nb")).is_err());
        assert!(check_hostname(Some(&"x".repeat(256))).is_err());
    }
}
