//! The words of sync (CONTRACT.md section 6) as enums: the state of an account's link to
//! its upstream and the four kinds of bundle. Each has its one string mapping here; the
//! strings appear only at the edges (SQL columns, manifests, JSON, templates).

use super::string_enum::string_enum;
use super::DomainError;

string_enum! {
    /// Where an account stands with its upstream (satellite side).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum LinkState {
        /// No registration was ever started (no link row).
        Unregistered => "unregistered",
        /// A registration request went out; its response has not been imported yet.
        Pending => "pending",
        /// The upstream answered: its key is pinned and sync runs.
        Registered => "registered",
    }
    unknown(s) -> DomainError {
        DomainError::invalid(
            "invalid_state",
            "state",
            "state is unregistered, pending or registered.",
        )
    }
}

string_enum! {
    /// How an account's link moves bundles: over HTTPS on a schedule, or by hand.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum LinkMode {
        Connected => "connected",
        Disconnected => "disconnected",
    }
    unknown(s) -> DomainError {
        DomainError::invalid("invalid_mode", "mode", "Choose connected or disconnected.")
    }
}

string_enum! {
    /// The kind a bundle's manifest names.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum BundleKind {
        RegistrationRequest => "registration-request",
        RegistrationResponse => "registration-response",
        SyncRequest => "sync-request",
        SyncResponse => "sync-response",
    }
    unknown(s) -> DomainError {
        DomainError::invalid(
            "invalid_kind",
            "kind",
            "kind is registration-request, registration-response, sync-request or sync-response.",
        )
    }
}

impl BundleKind {
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

string_enum! {
    /// Which way a bundle went, as the sync history lists it.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub enum Direction {
        /// Imported here.
        #[default]
        In => "in",
        /// Written here for the other side.
        Out => "out",
    }
    unknown(s) -> DomainError {
        DomainError::invalid("invalid_direction", "direction", "direction is in or out.")
    }
}

string_enum! {
    /// What became of a bundle, as the sync history lists it.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub enum BundleResult {
        /// Written to the outbox (out).
        #[default]
        Written => "written",
        /// A connected attempt whose written request did not complete (out).
        Failed => "failed",
        /// Verified and applied (in).
        Applied => "applied",
        /// Imported before; nothing changed (in).
        Duplicate => "duplicate",
        /// Refused, with the reason in the detail (in).
        Rejected => "rejected",
    }
    unknown(s) -> DomainError {
        DomainError::invalid(
            "invalid_result",
            "result",
            "result is written, failed, applied, duplicate or rejected.",
        )
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
