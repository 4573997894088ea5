//! Rule violations, each with a stable snake_case code that travels to API clients.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Input that is well-formed but breaks a rule; `field` names the form field at fault.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        field: &'static str,
        message: String,
    },
    /// A credential (registration token) that is unknown, expired or revoked.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// The caller's role or account does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The change conflicts with what exists (duplicate name, resource still in use).
    /// `field` names the form field at fault, when there is one (a duplicate name).
    #[error("{message}")]
    Conflict {
        code: &'static str,
        field: Option<&'static str>,
        message: String,
    },
    /// Not allowed by a setting or a missing acknowledgement: 403 with a specific code
    /// (`reservation_disabled`, `export_not_allowed`, `export_not_acknowledged`).
    #[error("{message}")]
    Denied { code: &'static str, message: String },
}

impl DomainError {
    pub fn invalid(code: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        DomainError::Invalid {
            code,
            field,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        DomainError::Conflict {
            code,
            field: None,
            message: message.into(),
        }
    }

    /// A duplicate: 409, shown next to `field` on forms.
    pub fn duplicate(field: &'static str, message: impl Into<String>) -> Self {
        DomainError::Conflict {
            code: "duplicate_name",
            field: Some(field),
            message: message.into(),
        }
    }
}
