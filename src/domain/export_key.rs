//! Export keys (CONTRACT section 4): an instance registered without an export-controlled
//! token asks for one export-controlled tag afterwards. The rules as pure functions: what
//! a request gets, which transitions each state allows, and how a granted key counts.

use super::compliance::Demand;
use super::string_enum::string_enum;
use super::DomainError;

string_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum ExportKeyState {
        /// Waits for an admin (the VA's `export_approval` is on).
        Pending => "pending",
        /// Holds one unit of the export-controlled license until returned or released.
        Granted => "granted",
        Denied => "denied",
        /// Given back by the agent, or released when its instance was removed or deregistered.
        Returned => "returned",
        /// A pending request dropped by the agent (or by its instance's removal).
        Cancelled => "cancelled",
    }
    unknown(s) -> DomainError {
                DomainError::invalid(
                    "invalid_state",
                    "state",
                    "state is one of pending, granted, denied, returned, cancelled.",
                )
    }
}

impl ExportKeyState {
    /// Pending and granted keys are live: at most one per instance and tag.
    pub fn is_live(self) -> bool {
        matches!(self, ExportKeyState::Pending | ExportKeyState::Granted)
    }
}

/// What deciding a request for one tag needs to know.
#[derive(Clone, Copy, Debug)]
pub struct Grounds {
    /// The VA's license of that tag, if any: whether it is export-controlled, and how many
    /// units are available.
    pub license: Option<(bool, i64)>,
    /// The account's `export_allowed` setting.
    pub export_allowed: bool,
    /// The VA's `export_approval` setting.
    pub approval_required: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Grant,
    Pend,
    Deny(String),
}

/// Why a key cannot be granted now, if it cannot.
fn refusal(tag: &str, g: &Grounds) -> Option<String> {
    match g.license {
        _ if !g.export_allowed => {
            Some("This account does not allow export-controlled licenses.".into())
        }
        None | Some((false, _)) => Some(format!(
            "The virtual account has no export-controlled license of {tag}."
        )),
        Some((true, available)) if available < 1 => {
            Some(format!("No export-controlled count of {tag} is available."))
        }
        Some(_) => None,
    }
}

/// A new request: denied with the reason when it could not be granted, else pending when
/// an admin must approve, else granted.
pub fn decide_request(tag: &str, g: &Grounds) -> Decision {
    match refusal(tag, g) {
        Some(reason) => Decision::Deny(reason),
        None if g.approval_required => Decision::Pend,
        None => Decision::Grant,
    }
}

fn wrong_state(what: &str, state: ExportKeyState) -> DomainError {
    DomainError::conflict(
        "export_key_state",
        format!(
            "Only a {what} export key can be changed this way; this one is {}.",
            state.as_str()
        ),
    )
}

/// An admin approves a pending request: the grounds are checked again, since licenses and
/// settings may have changed while it waited.
pub fn check_approval(tag: &str, state: ExportKeyState, g: &Grounds) -> Result<(), DomainError> {
    if state != ExportKeyState::Pending {
        return Err(wrong_state(ExportKeyState::Pending.as_str(), state));
    }
    match refusal(tag, g) {
        None => Ok(()),
        Some(reason) if !g.export_allowed => Err(DomainError::Forbidden(reason)),
        Some(reason) => Err(DomainError::conflict("insufficient_licenses", reason)),
    }
}

pub fn check_denial(state: ExportKeyState) -> Result<(), DomainError> {
    match state {
        ExportKeyState::Pending => Ok(()),
        other => Err(wrong_state(ExportKeyState::Pending.as_str(), other)),
    }
}

/// What an agent's `return` or `cancel` does to its latest key of a tag: `Some(new)` to
/// change it, `None` when it is already there (a retransmission), else a conflict.
pub fn agent_transition(
    action: AgentAction,
    state: ExportKeyState,
) -> Result<Option<ExportKeyState>, DomainError> {
    match (action, state) {
        (AgentAction::Return, ExportKeyState::Granted) => Ok(Some(ExportKeyState::Returned)),
        (AgentAction::Return, ExportKeyState::Returned) => Ok(None),
        (AgentAction::Return, other) => Err(wrong_state(ExportKeyState::Granted.as_str(), other)),
        (AgentAction::Cancel, ExportKeyState::Pending) => Ok(Some(ExportKeyState::Cancelled)),
        (AgentAction::Cancel, ExportKeyState::Cancelled) => Ok(None),
        (AgentAction::Cancel, other) => Err(wrong_state(ExportKeyState::Pending.as_str(), other)),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentAction {
    Return,
    Cancel,
}

/// What a live key becomes when its instance goes away (removal, deregistration).
pub fn released(state: ExportKeyState) -> Option<ExportKeyState> {
    match state {
        ExportKeyState::Granted => Some(ExportKeyState::Returned),
        ExportKeyState::Pending => Some(ExportKeyState::Cancelled),
        _ => None,
    }
}

/// An admin's reason for a denial, as the agent will see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenyReason(String);

impl DenyReason {
    pub const MAX_CHARS: usize = 500;

    /// Blank or left out means the default reason.
    pub fn parse(raw: Option<&str>) -> Result<Self, DomainError> {
        let r = raw.map(str::trim).filter(|r| !r.is_empty());
        match r {
            None => Ok(Self("Denied by an admin.".into())),
            Some(r) if r.chars().count() > Self::MAX_CHARS || r.chars().any(char::is_control) => {
                Err(DomainError::invalid(
                    "invalid_reason",
                    "reason",
                    format!(
                        "A reason is at most {} printable characters.",
                        Self::MAX_CHARS
                    ),
                ))
            }
            Some(r) => Ok(Self(r.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The reason a released key records, from the instance event that released it.
pub fn release_reason(instance_action: &str) -> &str {
    match instance_action {
        "instance.removed" => "Released: the instance was removed.",
        "instance.deregistered" => "Released: the instance deregistered.",
        "instance.transferred" => "Released: the instance moved to another virtual account.",
        other => other,
    }
}

/// What a granted key adds to its tag's demand, given its holder's reported count of that
/// tag (already counted as ordinary demand) and whether the holder registered with an
/// export-controlled token. The key is one unit and covers a report up to 1, so the
/// holder's demand for the tag becomes max(count, 1), all of it export-eligible.
pub fn key_demand(count: i64, holder_export_controlled: bool) -> Demand {
    let with_key = count.max(1);
    Demand {
        total: with_key - count,
        export_ok: if holder_export_controlled {
            with_key - count
        } else {
            with_key
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grounds(license: Option<(bool, i64)>, allowed: bool, approval: bool) -> Grounds {
        Grounds {
            license,
            export_allowed: allowed,
            approval_required: approval,
        }
    }

    #[test]
    fn states_map_to_one_string_each() {
        for s in ExportKeyState::ALL {
            assert_eq!(s.as_str().parse::<ExportKeyState>().unwrap(), s);
        }
        assert!("granted ".parse::<ExportKeyState>().is_err());
    }

    #[test]
    fn requests_are_granted_pending_or_denied_with_a_reason() {
        assert_eq!(
            decide_request("t", &grounds(Some((true, 1)), true, false)),
            Decision::Grant
        );
        assert_eq!(
            decide_request("t", &grounds(Some((true, 1)), true, true)),
            Decision::Pend
        );
        for g in [
            grounds(Some((true, 0)), true, false),
            grounds(Some((false, 5)), true, false),
            grounds(None, true, true),
            grounds(Some((true, 5)), false, false),
        ] {
            assert!(
                matches!(decide_request("t", &g), Decision::Deny(_)),
                "{g:?}"
            );
        }
        assert!(check_approval(
            "t",
            ExportKeyState::Pending,
            &grounds(Some((true, 0)), true, true)
        )
        .is_err());
        assert!(check_approval(
            "t",
            ExportKeyState::Granted,
            &grounds(Some((true, 1)), true, true)
        )
        .is_err());
        assert!(check_approval(
            "t",
            ExportKeyState::Pending,
            &grounds(Some((true, 1)), true, true)
        )
        .is_ok());
    }

    #[test]
    fn agent_transitions_are_idempotent_and_refuse_the_wrong_state() {
        use AgentAction::*;
        use ExportKeyState::*;
        assert_eq!(agent_transition(Return, Granted), Ok(Some(Returned)));
        assert_eq!(agent_transition(Return, Returned), Ok(None));
        assert!(agent_transition(Return, Pending).is_err());
        assert_eq!(agent_transition(Cancel, Pending), Ok(Some(Cancelled)));
        assert_eq!(agent_transition(Cancel, Cancelled), Ok(None));
        assert!(agent_transition(Cancel, Granted).is_err());
        assert_eq!(released(Granted), Some(Returned));
        assert_eq!(released(Pending), Some(Cancelled));
        assert_eq!(released(Denied), None);
    }

    #[test]
    fn deny_reasons_default_and_are_bounded() {
        assert_eq!(
            DenyReason::parse(None).unwrap().as_str(),
            "Denied by an admin."
        );
        assert_eq!(
            DenyReason::parse(Some("  ")).unwrap().as_str(),
            "Denied by an admin."
        );
        assert_eq!(
            DenyReason::parse(Some(" Lab only. ")).unwrap().as_str(),
            "Lab only."
        );
        assert!(DenyReason::parse(Some(&"x".repeat(501))).is_err());
        assert!(DenyReason::parse(Some("a\u{7}b")).is_err());
    }

    #[test]
    fn a_key_is_one_unit_covering_a_report_up_to_one() {
        // Nothing reported: the key alone is one export-eligible unit.
        assert_eq!(
            key_demand(0, false),
            Demand {
                total: 1,
                export_ok: 1
            }
        );
        // A report of 1 is covered by the key: no extra unit, all export-eligible.
        assert_eq!(
            key_demand(1, false),
            Demand {
                total: 0,
                export_ok: 1
            }
        );
        // More is ordinary demand, judged as for an export-controlled token.
        assert_eq!(
            key_demand(3, false),
            Demand {
                total: 0,
                export_ok: 3
            }
        );
        // An export-controlled holder's report is export-eligible already.
        assert_eq!(
            key_demand(0, true),
            Demand {
                total: 1,
                export_ok: 1
            }
        );
        assert_eq!(
            key_demand(2, true),
            Demand {
                total: 0,
                export_ok: 0
            }
        );
    }
}
