//! The words of sync (CONTRACT.md section 6) as enums: the state of an account's link to
//! its upstream and the four kinds of bundle. Each has its one string mapping here; the
//! strings appear only at the edges (SQL columns, manifests, JSON, templates).

use super::DomainError;

/// Where an account stands with its upstream (satellite side).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// No registration was ever started (no link row).
    Unregistered,
    /// A registration request went out; its response has not been imported yet.
    Pending,
    /// The upstream answered: its key is pinned and sync runs.
    Registered,
}

impl LinkState {
    pub const ALL: [LinkState; 3] = [
        LinkState::Unregistered,
        LinkState::Pending,
        LinkState::Registered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Unregistered => "unregistered",
            LinkState::Pending => "pending",
            LinkState::Registered => "registered",
        }
    }
}

impl std::str::FromStr for LinkState {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                DomainError::invalid(
                    "invalid_state",
                    "state",
                    "state is unregistered, pending or registered.",
                )
            })
    }
}

/// How an account's link moves bundles: over HTTPS on a schedule, or by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkMode {
    Connected,
    Disconnected,
}

impl LinkMode {
    pub const ALL: [LinkMode; 2] = [LinkMode::Connected, LinkMode::Disconnected];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkMode::Connected => "connected",
            LinkMode::Disconnected => "disconnected",
        }
    }
}

impl std::str::FromStr for LinkMode {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                DomainError::invalid("invalid_mode", "mode", "Choose connected or disconnected.")
            })
    }
}

/// The kind a bundle's manifest names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BundleKind {
    RegistrationRequest,
    RegistrationResponse,
    SyncRequest,
    SyncResponse,
}

impl BundleKind {
    pub const ALL: [BundleKind; 4] = [
        BundleKind::RegistrationRequest,
        BundleKind::RegistrationResponse,
        BundleKind::SyncRequest,
        BundleKind::SyncResponse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BundleKind::RegistrationRequest => "registration-request",
            BundleKind::RegistrationResponse => "registration-response",
            BundleKind::SyncRequest => "sync-request",
            BundleKind::SyncResponse => "sync-response",
        }
    }

    /// A request (satellite to upstream) as opposed to a response.
    pub fn is_request(self) -> bool {
        matches!(
            self,
            BundleKind::RegistrationRequest | BundleKind::SyncRequest
        )
    }

    /// The kind that answers this request (a response answers nothing).
    pub fn answer(self) -> Option<BundleKind> {
        match self {
            BundleKind::RegistrationRequest => Some(BundleKind::RegistrationResponse),
            BundleKind::SyncRequest => Some(BundleKind::SyncResponse),
            _ => None,
        }
    }
}

impl std::fmt::Display for BundleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BundleKind {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                DomainError::invalid(
                    "invalid_kind",
                    "kind",
                    "kind is registration-request, registration-response, sync-request or sync-response.",
                )
            })
    }
}

/// Which way a bundle went, as the sync history lists it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Imported here.
    #[default]
    In,
    /// Written here for the other side.
    Out,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::In, Direction::Out];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

impl std::str::FromStr for Direction {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                DomainError::invalid("invalid_direction", "direction", "direction is in or out.")
            })
    }
}

/// What became of a bundle, as the sync history lists it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BundleResult {
    /// Written to the outbox (out).
    #[default]
    Written,
    /// A connected attempt whose written request did not complete (out).
    Failed,
    /// Verified and applied (in).
    Applied,
    /// Imported before; nothing changed (in).
    Duplicate,
    /// Refused, with the reason in the detail (in).
    Rejected,
}

impl BundleResult {
    pub const ALL: [BundleResult; 5] = [
        BundleResult::Written,
        BundleResult::Failed,
        BundleResult::Applied,
        BundleResult::Duplicate,
        BundleResult::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BundleResult::Written => "written",
            BundleResult::Failed => "failed",
            BundleResult::Applied => "applied",
            BundleResult::Duplicate => "duplicate",
            BundleResult::Rejected => "rejected",
        }
    }
}

impl std::fmt::Display for BundleResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BundleResult {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                DomainError::invalid(
                    "invalid_result",
                    "result",
                    "result is written, failed, applied, duplicate or rejected.",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_and_kind_reads_back_from_its_one_string() {
        for s in LinkState::ALL {
            assert_eq!(s.as_str().parse::<LinkState>().ok(), Some(s));
        }
        for m in LinkMode::ALL {
            assert_eq!(m.as_str().parse::<LinkMode>().ok(), Some(m));
        }
        for k in BundleKind::ALL {
            assert_eq!(k.as_str().parse::<BundleKind>().ok(), Some(k));
        }
        for d in Direction::ALL {
            assert_eq!(d.as_str().parse::<Direction>().ok(), Some(d));
        }
        for r in BundleResult::ALL {
            assert_eq!(r.as_str().parse::<BundleResult>().ok(), Some(r));
        }
        assert!("sync".parse::<BundleKind>().is_err());
        assert_eq!(
            BundleKind::SyncRequest.answer(),
            Some(BundleKind::SyncResponse)
        );
    }
}
