//! Upstream side: the satellite tokens an account issued (with their state) and the
//! satellites registered with it; an account's editors revoke an unused token or
//! deregister a satellite, after which that satellite's bundles are refused by name.

use super::access::{EditAccount, ReadAccount};
use super::Result;
use crate::domain::string_enum::string_enum;
use crate::domain::DomainError;
use crate::store::events::{self, NewEvent};
use crate::store::page::Page;
use crate::store::satellite_admin::{self, TokenRow};
use crate::store::sync_state::{self, Satellite};
use rusqlite::Connection;
use serde_json::json;

string_enum! {
    /// Where a satellite token stands; `unused` is the only state that can still register.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum TokenState {
        Unused => "unused",
        Used => "used",
        Expired => "expired",
        Revoked => "revoked",
    }
    unknown(s) -> DomainError {
        DomainError::invalid(
            "invalid_state",
            "state",
            "A token's state is unused, used, expired or revoked.",
        )
    }
}

impl TokenState {
    /// Used wins over expired (a used token expiring later changes nothing), revoked over
    /// expired (the admin's act is the more telling fact).
    pub fn of(t: &TokenRow, now: i64) -> Self {
        if t.used_at.is_some() {
            TokenState::Used
        } else if t.revoked_at.is_some() {
            TokenState::Revoked
        } else if now >= t.expires_at {
            TokenState::Expired
        } else {
            TokenState::Unused
        }
    }
}

#[derive(Debug, Clone)]
pub struct SatelliteToken {
    pub row: TokenRow,
    pub state: TokenState,
}

fn with_state(row: TokenRow, now: i64) -> SatelliteToken {
    SatelliteToken {
        state: TokenState::of(&row, now),
        row,
    }
}

/// The account's satellite tokens, newest first.
pub fn tokens(
    conn: &Connection,
    cap: &ReadAccount,
    now: i64,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<SatelliteToken>> {
    let page = satellite_admin::tokens(conn, Some(cap.account.id), after, limit)?;
    Ok(Page {
        items: page.items.into_iter().map(|t| with_state(t, now)).collect(),
        next_after: page.next_after,
    })
}

/// Tokens of every account the caller sees (`account_filter` from its principal), for the
/// upstream's Satellites page.
pub fn visible_tokens(
    conn: &Connection,
    account_filter: Option<i64>,
    now: i64,
    limit: u32,
) -> Result<Vec<SatelliteToken>> {
    Ok(satellite_admin::tokens(conn, account_filter, None, limit)?
        .items
        .into_iter()
        .map(|t| with_state(t, now))
        .collect())
}

/// Revokes a token that has not registered a satellite; revoking one again is a no-op.
pub fn revoke_token(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    id: &str,
) -> Result<SatelliteToken> {
    let t = with_state(satellite_admin::token(tx, cap.account.id, id)?, now);
    match t.state {
        TokenState::Revoked => return Ok(t),
        TokenState::Used => {
            return Err(DomainError::conflict(
                "token_used",
                "This token has registered a satellite already; revoke that satellite instead.",
            )
            .into())
        }
        TokenState::Unused | TokenState::Expired => {}
    }
    satellite_admin::revoke_token(tx, id, now)?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "satellite_token.revoked",
            account: Some((cap.account.id, &cap.account.name)),
            target: id,
            detail: json!({ "description": t.row.description }),
        },
    )?;
    Ok(with_state(
        satellite_admin::token(tx, cap.account.id, id)?,
        now,
    ))
}

pub fn satellites(conn: &Connection, cap: &ReadAccount) -> Result<Vec<Satellite>> {
    Ok(sync_state::satellites(conn, Some(cap.account.id))?)
}

/// Deregisters a satellite: what it reported stops counting, and its later bundles are
/// refused with that reason until it registers again with a new token.
pub fn revoke_satellite(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    id: i64,
) -> Result<Satellite> {
    let sat = satellite_admin::satellite(tx, cap.account.id, id)?;
    satellite_admin::revoke_satellite(tx, &sat, now)?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "satellite.revoked",
            account: Some((cap.account.id, &cap.account.name)),
            target: &sat.authority_id,
            detail: json!({
                "satellite_account": sat.local_account,
                "instances": sat.instance_count,
            }),
        },
    )?;
    Ok(sat)
}

/// Parses a satellite id from a path: a positive whole number.
pub fn parse_satellite_id(s: &str) -> Result<i64> {
    s.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| crate::store::StoreError::not_found(format!("satellite '{s}'")).into())
}
