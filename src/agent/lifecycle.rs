//! The agent's licensing state as `status` prints it and `run` acts on it, decided offline
//! from the state dir (CONTRACT section 4): evaluation for 90 days from the first run,
//! then the registration and the last authorization, a lapsed registration outranking a
//! lapsed authorization.

use super::state::AgentState;
use crate::domain::timers::EVALUATION;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LicensingState {
    Evaluation,
    EvaluationExpired,
    /// Registered, no authorization yet (no report accepted).
    Registered,
    Authorized,
    AuthorizationExpired,
    RegistrationExpired,
}

impl LicensingState {
    pub fn as_str(self) -> &'static str {
        match self {
            LicensingState::Evaluation => "evaluation",
            LicensingState::EvaluationExpired => "evaluation-expired",
            LicensingState::Registered => "registered",
            LicensingState::Authorized => "authorized",
            LicensingState::AuthorizationExpired => "authorization-expired",
            LicensingState::RegistrationExpired => "registration-expired",
        }
    }
}

/// The state at `now` and the deadline that ends it (or ended it).
pub fn licensing_state(state: &AgentState, now: i64) -> (LicensingState, i64) {
    let Some(reg) = &state.registration else {
        let end = state.first_start + EVALUATION;
        return if now < end {
            (LicensingState::Evaluation, end)
        } else {
            (LicensingState::EvaluationExpired, end)
        };
    };
    if reg.cert_expires_at <= now {
        return (LicensingState::RegistrationExpired, reg.cert_expires_at);
    }
    match state.authorization.as_ref().and_then(|a| a.expires_at) {
        Some(exp) if exp > now => (LicensingState::Authorized, exp),
        Some(exp) => (LicensingState::AuthorizationExpired, exp),
        None => (LicensingState::Registered, reg.cert_expires_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::state::{Authorization, Registration};
    use crate::crypto::idcert::SignedCertificate;
    use crate::domain::timers::DAY;

    fn registered(cert_expires_at: i64, auth_expires_at: Option<i64>) -> AgentState {
        AgentState {
            first_start: 0,
            registration: Some(Registration {
                url: String::new(),
                ca_cert_pem: None,
                insecure: false,
                authority_id: String::new(),
                authority_public_key: String::new(),
                instance_id: "i".into(),
                virtual_account: "v".into(),
                pid: "p".into(),
                sn: "s".into(),
                id_certificate: SignedCertificate {
                    payload: String::new(),
                    signature: String::new(),
                },
                cert_renew_after: 0,
                cert_expires_at,
                proxy: None,
            }),
            authorization: auth_expires_at.map(|e| Authorization {
                expires_at: Some(e),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn states_follow_the_clocks_and_registration_outranks_authorization() {
        use LicensingState::*;
        let fresh = AgentState::default();
        assert_eq!(licensing_state(&fresh, 89 * DAY).0, Evaluation);
        assert_eq!(licensing_state(&fresh, 90 * DAY).0, EvaluationExpired);
        let year = 365 * DAY;
        assert_eq!(licensing_state(&registered(year, None), 0).0, Registered);
        let s = registered(year, Some(90 * DAY));
        assert_eq!(licensing_state(&s, 10 * DAY), (Authorized, 90 * DAY));
        assert_eq!(licensing_state(&s, 100 * DAY).0, AuthorizationExpired);
        assert_eq!(licensing_state(&s, year).0, RegistrationExpired);
        assert_eq!(RegistrationExpired.as_str(), "registration-expired");
    }
}
