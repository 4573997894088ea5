//! Export keys, both sides: an instance requests, returns or cancels keys (its confirmed
//! signature is its capability); an account's editors approve or deny pending requests,
//! and anyone who sees the account lists them. Every step records an event in the
//! transaction that makes it.

use super::access::{EditAccount, ReadAccount};
use super::Result;
use crate::domain::export_key::{self, AgentAction, Decision, DenyReason, ExportKeyState, Grounds};
use crate::domain::{license, DomainError};
use crate::store::export_keys::{self, ExportKey, NewKey};
use crate::store::instances::{self, Instance, Signer};
use crate::store::page::Page;
use crate::store::{licenses, settings};
use chrono::NaiveDate;
use rusqlite::Connection;

/// At most this many tags per agent request.
pub const MAX_TAGS: usize = 100;

/// The tags of an agent's request, validated and without repeats (first one kept).
#[derive(Clone, Debug)]
pub struct Tags(Vec<String>);

impl Tags {
    pub fn parse(raw: Vec<String>) -> std::result::Result<Self, DomainError> {
        if raw.is_empty() || raw.len() > MAX_TAGS {
            return Err(DomainError::invalid(
                "invalid_tags",
                "tags",
                format!("tags lists 1 to {MAX_TAGS} license tags."),
            ));
        }
        let mut out: Vec<String> = Vec::with_capacity(raw.len());
        for t in raw {
            let t = license::tag("tags", &t)?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
        Ok(Self(out))
    }
}

/// One key as the agent sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentKey {
    pub tag: String,
    pub state: ExportKeyState,
    pub reason: Option<String>,
}

impl From<&ExportKey> for AgentKey {
    fn from(k: &ExportKey) -> Self {
        Self {
            tag: k.tag.clone(),
            state: k.state,
            reason: k.reason.clone(),
        }
    }
}

fn grounds(tx: &Connection, va_id: i64, tag: &str, today: NaiveDate) -> Result<Grounds> {
    let account_id = export_keys::account_of_va(tx, va_id)?;
    let (ls, evaluation) = licenses::evaluate(tx, va_id, today)?;
    let license = ls.iter().find(|l| l.spec.tag == tag).map(|l| {
        let available = evaluation.pools.get(tag).map_or(0, |p| p.available);
        (l.spec.export_controlled, available)
    });
    Ok(Grounds {
        license,
        export_allowed: settings::account(tx, account_id)?.export_allowed,
        approval_required: settings::va(tx, va_id)?.export_approval,
    })
}

fn actor(inst: &Instance) -> String {
    format!("instance:{}", inst.id)
}

fn latest(tx: &Connection, inst: &Instance, tag: &str) -> Result<Option<ExportKey>> {
    Ok(export_keys::latest(tx, &inst.id, tag)?.filter(|k| k.va_id == inst.va_id))
}

/// `POST /agent/v1/export/request`: a live key is answered as it is; otherwise a new
/// request is granted, left pending for an admin, or denied with the reason.
pub fn request(
    tx: &Connection,
    signer: Signer<'_>,
    now: i64,
    today: NaiveDate,
    tags: &Tags,
) -> Result<Vec<AgentKey>> {
    let inst = instances::signed(tx, now, signer)?;
    let account_id = export_keys::account_of_va(tx, inst.va_id)?;
    let mut out = Vec::with_capacity(tags.0.len());
    for tag in &tags.0 {
        if let Some(live) = latest(tx, &inst, tag)?.filter(|k| k.state.is_live()) {
            out.push(AgentKey::from(&live));
            continue;
        }
        let (state, reason, action) =
            match export_key::decide_request(tag, &grounds(tx, inst.va_id, tag, today)?) {
                Decision::Grant => (ExportKeyState::Granted, None, "export_key.granted"),
                Decision::Pend => (ExportKeyState::Pending, None, "export_key.requested"),
                Decision::Deny(r) => (ExportKeyState::Denied, Some(r), "export_key.denied"),
            };
        let id = export_keys::insert(
            tx,
            now,
            &NewKey {
                account_id,
                va_id: inst.va_id,
                instance_id: &inst.id,
                udi: &inst.udi,
                tag,
                state,
                reason: reason.as_deref(),
            },
        )?;
        let key = export_keys::find(tx, account_id, &id)?
            .ok_or_else(|| crate::store::StoreError::not_found(format!("export key {id}")))?;
        export_keys::record_event(
            tx,
            now,
            &actor(&inst),
            action,
            &key,
            state,
            reason.as_deref(),
        )?;
        out.push(AgentKey::from(&key));
    }
    Ok(out)
}

/// `POST /agent/v1/export/return|cancel`: each tag's newest key must be granted (return)
/// or pending (cancel), or already returned/cancelled (a retransmission, answered as it
/// is). A tag never requested, or a key in another state, refuses the whole request.
pub fn agent_change(
    tx: &Connection,
    signer: Signer<'_>,
    now: i64,
    action: AgentAction,
    tags: &Tags,
) -> Result<Vec<AgentKey>> {
    let inst = instances::signed(tx, now, signer)?;
    let mut out = Vec::with_capacity(tags.0.len());
    for tag in &tags.0 {
        let key = latest(tx, &inst, tag)?.ok_or_else(|| {
            DomainError::conflict(
                "no_export_key",
                format!("This instance has no export key for {tag}."),
            )
        })?;
        match export_key::agent_transition(action, key.state)? {
            Some(to) => {
                export_keys::set_state(tx, &key.id, to, now, None)?;
                let event = format!("export_key.{}", to.as_str());
                export_keys::record_event(tx, now, &actor(&inst), &event, &key, to, None)?;
                out.push(AgentKey {
                    state: to,
                    ..AgentKey::from(&key)
                });
            }
            None => out.push(AgentKey::from(&key)),
        }
    }
    Ok(out)
}

/// `GET /agent/v1/export`: the instance's newest key per tag.
pub fn of_instance(conn: &Connection, signer: Signer<'_>, now: i64) -> Result<Vec<AgentKey>> {
    let inst = instances::signed(conn, now, signer)?;
    Ok(export_keys::of_instance(conn, &inst.id)?
        .iter()
        .filter(|k| k.va_id == inst.va_id)
        .map(AgentKey::from)
        .collect())
}

/// An instance's newest key per tag, for its page.
pub fn for_instance(
    conn: &Connection,
    cap: &ReadAccount,
    instance_id: &str,
) -> Result<Vec<ExportKey>> {
    Ok(export_keys::of_instance(conn, instance_id)?
        .into_iter()
        .filter(|k| k.account_id == cap.account.id)
        .collect())
}

pub fn list(
    conn: &Connection,
    cap: &ReadAccount,
    state: Option<ExportKeyState>,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<ExportKey>> {
    Ok(export_keys::list(
        conn,
        cap.account.id,
        state,
        after,
        limit,
    )?)
}

/// For the page: pending requests first.
pub fn overview(conn: &Connection, cap: &ReadAccount, limit: u32) -> Result<Vec<ExportKey>> {
    Ok(export_keys::pending_first(conn, cap.account.id, limit)?)
}

fn find(conn: &Connection, account_id: i64, id: &str) -> Result<ExportKey> {
    Ok(export_keys::find(conn, account_id, id)?
        .ok_or_else(|| crate::store::StoreError::not_found(format!("export key '{id}'")))?)
}

/// An admin grants a pending request, if it could be granted now.
pub fn approve(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    today: NaiveDate,
    id: &str,
) -> Result<ExportKey> {
    let key = find(tx, cap.account.id, id)?;
    export_key::check_approval(
        &key.tag,
        key.state,
        &grounds(tx, key.va_id, &key.tag, today)?,
    )?;
    export_keys::set_state(tx, &key.id, ExportKeyState::Granted, now, None)?;
    export_keys::record_event(
        tx,
        now,
        &cap.actor,
        "export_key.granted",
        &key,
        ExportKeyState::Granted,
        None,
    )?;
    find(tx, cap.account.id, id)
}

/// An admin denies a pending request, with the reason the agent will see.
pub fn deny(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    id: &str,
    reason: &DenyReason,
) -> Result<ExportKey> {
    let key = find(tx, cap.account.id, id)?;
    export_key::check_denial(key.state)?;
    let reason = Some(reason.as_str());
    export_keys::set_state(tx, &key.id, ExportKeyState::Denied, now, reason)?;
    export_keys::record_event(
        tx,
        now,
        &cap.actor,
        "export_key.denied",
        &key,
        ExportKeyState::Denied,
        reason,
    )?;
    find(tx, cap.account.id, id)
}
