//! API clients (CONTRACT section 7): system admins list, create (the secret is shown
//! once) and revoke them; a revoked client's bearer tokens stop working at once.

use super::access::SystemAdmin;
use super::Result;
use crate::domain::Role;
use crate::store::api_clients::{self, ApiClient};
use crate::store::events::{self, NewEvent};
use crate::store::StoreError;
use rusqlite::Connection;
use serde_json::json;

/// A new client as asked for, parsed at the edge.
pub struct NewApiClient {
    pub name: String,
    pub role: Role,
    pub account: Option<String>,
}

impl NewApiClient {
    /// From the raw fields of a form or JSON body: the role must be one of the four, and
    /// an empty account means none.
    pub fn parse(name: String, role: &str, account: Option<String>) -> Result<Self> {
        Ok(NewApiClient {
            name,
            role: role.parse::<Role>()?,
            account: account.filter(|a| !a.trim().is_empty()),
        })
    }
}

/// A created client with its secret, which is never shown again.
pub struct CreatedApiClient {
    pub client: ApiClient,
    pub client_secret: String,
}

pub fn list(conn: &Connection, _cap: &SystemAdmin) -> Result<Vec<ApiClient>> {
    Ok(api_clients::list(conn)?)
}

pub fn create(
    tx: &Connection,
    cap: &SystemAdmin,
    now: i64,
    new: NewApiClient,
) -> Result<CreatedApiClient> {
    let made = api_clients::create(
        tx,
        &cap.actor,
        now,
        &new.name,
        new.role,
        new.account.as_deref(),
    )?;
    let client = api_clients::find(tx, made.id)?
        .ok_or_else(|| StoreError::not_found(format!("API client {}", made.id)))?;
    Ok(CreatedApiClient {
        client,
        client_secret: made.client_secret,
    })
}

pub fn revoke(tx: &Connection, cap: &SystemAdmin, now: i64, id: i64) -> Result<ApiClient> {
    let client = api_clients::find(tx, id)?
        .ok_or_else(|| StoreError::not_found(format!("API client {id}")))?;
    api_clients::delete(tx, id)?;
    let account_id = match &client.account {
        Some(name) => crate::store::accounts::id_by_name(tx, name)?,
        None => None,
    };
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "api_client.revoked",
            account: account_id.zip(client.account.as_deref()),
            target: &client.name,
            detail: json!({ "client_id": client.client_id, "role": client.role.as_str() }),
        },
    )?;
    Ok(client)
}

/// An id that is not a whole number names no client: not found, like an unknown one.
pub fn parse_id(raw: &str) -> Result<i64> {
    raw.parse()
        .map_err(|_| StoreError::not_found(format!("API client {raw}")).into())
}
