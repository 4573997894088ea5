//! The ledger in sync (docs/ledger.md): a satellite's sync request carries, in
//! `data/ledger.jsonl`, its signed ledger heads from the one its last acknowledged request
//! carried (all of them before the first acknowledgement), after signing the current
//! head; the upstream keeps every head each satellite authority sent and refuses, whole,
//! a request whose heads do not extend the newest it saw. Kept apart from import.rs and
//! outbound.rs, which call in here once each.

use super::bundle::BundleWriter;
use super::context::SyncContext;
use super::SyncError;
use crate::domain::ledger::{judge_peer_head, PeerHead};
use crate::service::ledger::{self as ledger_service, HeadJson};
use crate::store::ledger;
use crate::store::sync_state::{Link, Satellite};
use ed25519_dalek::VerifyingKey;
use rusqlite::Connection;

/// The data file's name (`data/ledger.jsonl`).
pub const FILE: &str = "ledger";

fn service(e: crate::service::ServiceError) -> SyncError {
    SyncError::Store(e.into())
}

/// Satellite, building request `sequence` for `link`: signs the head (a sync is a signing
/// occasion) and writes the heads the upstream has not acknowledged yet as the first
/// data member. Nothing when the ledger is off.
pub fn add_heads(
    ctx: &SyncContext,
    writer: &mut BundleWriter,
    link: &Link,
    sequence: i64,
) -> Result<(), SyncError> {
    if !ctx.store.ledger_enabled() {
        return Ok(());
    }
    let now = ctx.clock.unix();
    let heads = ctx.store.write_blocking(|tx| {
        let Some(newest) = ledger_service::sign_head(tx, &ctx.authority, now).map_err(service)?
        else {
            return Ok(vec![]);
        };
        let from = ledger::sent_head(tx, link.account_id, link.last_acked_sequence)?.unwrap_or(0);
        ledger::record_sent(tx, link.account_id, sequence, newest.head.seq)?;
        Ok::<_, SyncError>(ledger::heads_from(tx, from)?)
    })?;
    let mut file = writer.file(FILE)?;
    for h in &heads {
        file.write(&HeadJson::from(h))?;
    }
    writer.close(file)
}

fn reject(msg: String) -> SyncError {
    SyncError::Rejected(msg)
}

/// Upstream, for each record of `data/ledger.jsonl` in a sync request from `sat`: the head
/// must be the satellite's, signed by its key (`key` verified the bundle; `sat` holds the
/// one pinned before, for heads signed before a rotation) and extend what was seen.
pub fn receive(
    tx: &Connection,
    sat: &Satellite,
    key: &VerifyingKey,
    line: super::records::Line<'_>,
    now: i64,
) -> Result<(), SyncError> {
    let json: HeadJson =
        serde_json::from_slice(line.bytes).map_err(|e| reject(format!("ledger head: {e}")))?;
    let head = json
        .parse()
        .map_err(|e| reject(format!("ledger head at entry {}: {e}", json.seq)))?;
    if head.head.authority_id != sat.authority_id {
        return Err(reject(format!(
            "ledger head at entry {}: signed by authority {}, not the sender {}",
            head.head.seq, head.head.authority_id, sat.authority_id
        )));
    }
    let same = ledger::peer_head_at(tx, &sat.authority_id, head.head.seq)?;
    let last = ledger::peer_last(tx, &sat.authority_id)?;
    let verdict = judge_peer_head(same.as_ref(), last, &head.head)
        .map_err(|why| reject(format!("satellite {}: {why}", sat.authority_id)))?;
    if verdict == PeerHead::Seen {
        // Its signature was checked when it first came (perhaps under a key since rotated).
        return Ok(());
    }
    let pinned = <[u8; 32]>::try_from(sat.public_key.as_slice())
        .ok()
        .and_then(|b| VerifyingKey::from_bytes(&b).ok());
    let signed = ledger_service::signature_ok(&head, key)
        || pinned.is_some_and(|k| ledger_service::signature_ok(&head, &k));
    if !signed {
        return Err(reject(format!(
            "ledger head at entry {}: the signature does not verify with the satellite's key",
            head.head.seq
        )));
    }
    Ok(ledger::insert_peer_head(tx, &head, now)?)
}

/// Upstream, once a sync request from `sat` is read: a satellite that sent heads before
/// must send its current one every time (`carried` heads came in this bundle); and the
/// upstream signs its own head, as every sync is a signing occasion.
pub fn on_request(
    ctx: &SyncContext,
    tx: &Connection,
    sat: &Satellite,
    carried: u64,
) -> Result<(), SyncError> {
    if carried == 0 && ledger::peer_last(tx, &sat.authority_id)?.is_some() {
        return Err(reject(format!(
            "satellite {} sent ledger heads before and this request carries none",
            sat.authority_id
        )));
    }
    if ctx.store.ledger_enabled() {
        ledger_service::sign_head(tx, &ctx.authority, ctx.clock.unix()).map_err(service)?;
    }
    Ok(())
}
