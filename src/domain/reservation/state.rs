//! The reservation state machine (which transition leads where, 409 `invalid_state`
//! otherwise) and what an update holds per tag while its new code is in transit.

use crate::domain::string_enum::string_enum;
use crate::domain::DomainError;
use std::collections::BTreeMap;

string_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum ReservationState {
        Pending => "pending",
        Confirmed => "confirmed",
        Updating => "updating",
        Returned => "returned",
        Cancelled => "cancelled",
        Removed => "removed",
    }
    unknown(s) -> DomainError {
        DomainError::invalid(
            "invalid_state",
            "state",
            "state is pending, confirmed, updating, returned, cancelled or removed.",
        )
    }
}

/// What can happen to a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Confirm,
    Update,
    Cancel,
    Remove,
    Return,
}

impl Transition {
    fn verb(self) -> &'static str {
        match self {
            Transition::Confirm => "confirm",
            Transition::Update => "update",
            Transition::Cancel => "cancel",
            Transition::Remove => "remove",
            Transition::Return => "return",
        }
    }
}

impl ReservationState {
    /// Live reservations hold licenses; the others are history.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            ReservationState::Pending | ReservationState::Confirmed | ReservationState::Updating
        )
    }

    /// The state `t` leads to from here, or 409 `invalid_state`.
    pub fn apply(self, t: Transition) -> Result<ReservationState, DomainError> {
        use ReservationState as S;
        use Transition as T;
        let next = match (self, t) {
            (S::Pending | S::Updating, T::Confirm) => Some(S::Confirmed),
            (S::Confirmed | S::Updating, T::Update) => Some(S::Updating),
            (S::Pending, T::Cancel) => Some(S::Cancelled),
            (S::Pending | S::Confirmed | S::Updating, T::Remove) => Some(S::Removed),
            (S::Pending | S::Confirmed | S::Updating, T::Return) => Some(S::Returned),
            _ => None,
        };
        next.ok_or_else(|| {
            DomainError::conflict(
                "invalid_state",
                format!(
                    "A {} reservation cannot be {}ed.",
                    self.as_str(),
                    t.verb().trim_end_matches('e')
                ),
            )
        })
    }
}

/// While an update is in transit, each tag holds the larger of its old and new count;
/// once confirmed, the new counts alone.
pub fn in_transit(
    old: &BTreeMap<String, i64>,
    new: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    let mut held = old.clone();
    for (tag, n) in new {
        let e = held.entry(tag.clone()).or_insert(0);
        *e = (*e).max(*n);
    }
    held.retain(|_, n| *n > 0);
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_machine_allows_only_its_transitions() {
        use ReservationState as S;
        use Transition as T;
        assert_eq!(S::Pending.apply(T::Confirm).unwrap(), S::Confirmed);
        assert_eq!(S::Confirmed.apply(T::Update).unwrap(), S::Updating);
        assert_eq!(S::Updating.apply(T::Update).unwrap(), S::Updating);
        assert_eq!(S::Updating.apply(T::Confirm).unwrap(), S::Confirmed);
        assert_eq!(S::Pending.apply(T::Cancel).unwrap(), S::Cancelled);
        assert!(S::Confirmed.apply(T::Cancel).is_err());
        assert!(S::Pending.apply(T::Update).is_err());
        assert!(S::Returned.apply(T::Confirm).is_err());
        assert!(S::Removed.apply(T::Remove).is_err());
        for s in S::ALL {
            assert_eq!(s.as_str().parse::<S>().unwrap(), s);
            assert_eq!(s.apply(T::Remove).is_ok(), s.is_live());
        }
        let err = S::Confirmed.apply(T::Cancel).unwrap_err();
        assert!(matches!(
            err,
            DomainError::Conflict {
                code: "invalid_state",
                ..
            }
        ));
    }

    #[test]
    fn an_update_holds_the_larger_count_per_tag() {
        let m = |v: &[(&str, i64)]| -> BTreeMap<String, i64> {
            v.iter().map(|(t, n)| (t.to_string(), *n)).collect()
        };
        let held = in_transit(
            &m(&[("a", 5), ("b", 2)]),
            &m(&[("a", 3), ("c", 4), ("b", 0)]),
        );
        assert_eq!(held, m(&[("a", 5), ("b", 2), ("c", 4)]));
    }
}
