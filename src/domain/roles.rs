//! Who may do what. Account-scoped roles see exactly one account; checks return
//! `false` rather than erroring so callers choose between 403 and 404.

use super::string_enum::string_enum;
use super::DomainError;

string_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum Role {
        SystemAdmin => "system-admin",
        Operator => "operator",
        AccountAdmin => "account-admin",
        Viewer => "viewer",
    }
    unknown(s) -> DomainError {
                DomainError::invalid(
                    "invalid_role",
                    "role",
                    "Role is one of system-admin, operator, account-admin, viewer.",
                )
    }
}

impl Role {
    /// Account-admins and viewers belong to exactly one account; the others to none.
    pub fn is_account_scoped(self) -> bool {
        matches!(self, Role::AccountAdmin | Role::Viewer)
    }

    /// Checks that an account is given exactly when the role needs one.
    pub fn check_scope(self, has_account: bool) -> Result<(), DomainError> {
        match (self.is_account_scoped(), has_account) {
            (true, false) => Err(DomainError::invalid(
                "account_required",
                "account",
                format!("Role {self} needs an account."),
            )),
            (false, true) => Err(DomainError::invalid(
                "account_not_allowed",
                "account",
                format!("Role {self} is not scoped to an account."),
            )),
            _ => Ok(()),
        }
    }
}

/// The authenticated caller: a person (session) or a machine client (bearer token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// `user:NAME` or `client:NAME`, as written to the event log.
    pub actor: String,
    pub role: Role,
    pub account_id: Option<i64>,
}

impl Principal {
    pub fn can_see_account(&self, account_id: i64) -> bool {
        match self.role {
            Role::SystemAdmin | Role::Operator => true,
            Role::AccountAdmin | Role::Viewer => self.account_id == Some(account_id),
        }
    }

    /// Create and delete accounts, manage people and machine clients.
    pub fn is_system_admin(&self) -> bool {
        self.role == Role::SystemAdmin
    }

    /// Change an account's virtual accounts, tokens, licenses and instances.
    pub fn can_edit_account(&self, account_id: i64) -> bool {
        match self.role {
            Role::SystemAdmin => true,
            Role::AccountAdmin => self.account_id == Some(account_id),
            Role::Operator | Role::Viewer => false,
        }
    }

    /// Sync and bundles.
    pub fn can_sync(&self) -> bool {
        matches!(self.role, Role::SystemAdmin | Role::Operator)
    }

    /// Restricts listings to the caller's account, if scoped.
    pub fn account_filter(&self) -> Option<i64> {
        if self.role.is_account_scoped() {
            Some(self.account_id.unwrap_or(-1))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: Role, account_id: Option<i64>) -> Principal {
        Principal {
            actor: "user:t".into(),
            role,
            account_id,
        }
    }

    #[test]
    fn scoped_roles_see_only_their_account() {
        let admin_a = p(Role::AccountAdmin, Some(1));
        assert!(admin_a.can_see_account(1) && admin_a.can_edit_account(1));
        assert!(!admin_a.can_see_account(2) && !admin_a.can_edit_account(2));
        let viewer = p(Role::Viewer, Some(1));
        assert!(viewer.can_see_account(1) && !viewer.can_edit_account(1));
        let op = p(Role::Operator, None);
        assert!(op.can_see_account(7) && !op.can_edit_account(7) && op.can_sync());
        assert_eq!(viewer.account_filter(), Some(1));
        assert_eq!(op.account_filter(), None);
    }

    #[test]
    fn roles_parse_and_check_scope() {
        assert_eq!("account-admin".parse::<Role>().unwrap(), Role::AccountAdmin);
        assert!("root".parse::<Role>().is_err());
        assert!(Role::Viewer.check_scope(false).is_err());
        assert!(Role::SystemAdmin.check_scope(true).is_err());
        assert!(Role::Operator.check_scope(false).is_ok());
    }
}
