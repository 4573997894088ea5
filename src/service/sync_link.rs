//! Satellite side: changing a registered account's link to its upstream. A system admin
//! switches it between connected and disconnected mode, or deregisters it (the link goes;
//! the licenses and VAs that came by sync stay, read-only, as last synced). Registering
//! again goes through the ordinary registration with a new token.

use super::access::{ReadAccount, SystemAdmin};
use super::Result;
use crate::domain::sync::LinkState;
use crate::domain::DomainError;
use crate::store::events::{self, NewEvent};
use crate::store::satellite_admin;
use crate::store::sync_state::{self, Link};
use crate::store::StoreError;
use crate::sync::transport;
use rusqlite::Connection;
use serde_json::json;
use std::str::FromStr;

pub use crate::domain::sync::LinkMode as Mode;

/// A mode switch as typed: the URL and CA matter only when switching to connected, and
/// an empty one keeps what the link has.
#[derive(Debug, Clone)]
pub struct ModeChange {
    pub mode: Mode,
    pub url: Option<String>,
    pub ca_cert_pem: Option<String>,
}

impl ModeChange {
    pub fn parse(mode: &str, url: &str, ca_cert_pem: &str) -> Result<Self> {
        let mode = Mode::from_str(mode.trim())?;
        let url = Some(url.trim().to_string()).filter(|u| !u.is_empty());
        if let Some(u) = &url {
            if !transport::is_https(u) {
                return Err(DomainError::invalid(
                    "invalid_url",
                    "url",
                    "Enter the upstream's https:// address, like https://upstream.example:8443.",
                )
                .into());
            }
        }
        Ok(Self {
            mode,
            url,
            ca_cert_pem: Some(ca_cert_pem.trim().to_string()).filter(|p| !p.is_empty()),
        })
    }
}

fn registered_link(conn: &Connection, cap: &ReadAccount) -> Result<Link> {
    sync_state::link(conn, cap.account.id)?
        .filter(|l| l.state == LinkState::Registered)
        .ok_or_else(|| {
            DomainError::conflict(
                "not_registered",
                format!(
                    "Account '{}' is not registered with an upstream.",
                    cap.account.name
                ),
            )
            .into()
        })
}

pub fn switch_mode(
    tx: &Connection,
    admin: &SystemAdmin,
    cap: &ReadAccount,
    now: i64,
    change: ModeChange,
) -> Result<Link> {
    let link = registered_link(tx, cap)?;
    if change.mode == Mode::Connected && change.url.is_none() && link.url.is_none() {
        return Err(DomainError::invalid(
            "invalid_url",
            "url",
            "Enter the upstream's https:// address, like https://upstream.example:8443.",
        )
        .into());
    }
    satellite_admin::set_mode(
        tx,
        cap.account.id,
        change.mode.as_str(),
        change.url.as_deref(),
        change.ca_cert_pem.as_deref(),
    )?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &admin.actor,
            action: "sync.mode_changed",
            account: Some((cap.account.id, &cap.account.name)),
            target: &cap.account.name,
            detail: json!({ "from": link.mode.as_str(), "to": change.mode.as_str() }),
        },
    )?;
    sync_state::link(tx, cap.account.id)?
        .ok_or_else(|| StoreError::not_found("upstream registration").into())
}

/// Removes the link whatever its state (a pending registration too).
pub fn deregister(
    tx: &Connection,
    admin: &SystemAdmin,
    cap: &ReadAccount,
    now: i64,
) -> Result<Link> {
    let link = sync_state::link(tx, cap.account.id)?.ok_or_else(|| {
        DomainError::conflict(
            "not_registered",
            format!(
                "Account '{}' is not registered with an upstream.",
                cap.account.name
            ),
        )
    })?;
    satellite_admin::remove_link(tx, cap.account.id)?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &admin.actor,
            action: "sync.deregistered",
            account: Some((cap.account.id, &cap.account.name)),
            target: &cap.account.name,
            detail: json!({
                "mode": link.mode.as_str(),
                "upstream_authority_id": link.upstream_authority_id,
            }),
        },
    )?;
    Ok(link)
}
