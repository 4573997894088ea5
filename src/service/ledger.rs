//! The ledger's use cases (docs/ledger.md): signing the chain head with the authority key
//! (daily by the timer, and on every sync request), the head as JSON (show-head and the
//! sync record), and `ledger verify`, which replays the chain against the database and
//! checks every signed head with the public key alone. These are system operations (the
//! server's own timer and sync, and the CLI on the data dir), so they take no capability.

use super::Result;
use crate::crypto::AuthorityKey;
use crate::domain::ledger::{self, Hash, Head, StateDigest, ZERO};
use crate::store::events::{self, NewEvent};
use crate::store::ledger::{self as store, SignedHead, COUNTED};
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;

/// A head is signed by the timer once the newest is this old and the chain moved since.
pub const SIGN_EVERY_SECONDS: i64 = 24 * 3600;

/// Signs the chain's newest entry unless the newest signed head already names it; answers
/// the newest signed head either way (none while the chain is empty or the ledger off).
pub fn sign_head(tx: &Connection, key: &AuthorityKey, now: i64) -> Result<Option<SignedHead>> {
    let Some((entry, hash)) = store::last_entry(tx)? else {
        return Ok(None);
    };
    let latest = store::latest_head(tx)?;
    if let Some(h) = &latest {
        if h.head.seq == entry.seq {
            return Ok(latest);
        }
    }
    let (prev_head_seq, prev_head_hash) = latest
        .as_ref()
        .map(|h| (h.head.seq, h.head.entry_hash))
        .unwrap_or((0, ZERO));
    let head = Head {
        authority_id: key.authority_id().to_string(),
        seq: entry.seq,
        entry_hash: hash,
        prev_head_seq,
        prev_head_hash,
        signed_at: now,
    };
    let signed = SignedHead {
        signature: key.sign(head.message().as_bytes()),
        head,
    };
    store::insert_head(tx, &signed)?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: "system",
            action: "ledger.head_signed",
            account: None,
            target: &signed.head.seq.to_string(),
            detail: json!({ "entry_hash": hex::encode(signed.head.entry_hash) }),
        },
    )?;
    Ok(Some(signed))
}

/// The timer's part: signs when no head exists yet or the newest is a day old.
pub fn sign_if_due(tx: &Connection, key: &AuthorityKey, now: i64) -> Result<Option<SignedHead>> {
    match store::latest_head(tx)? {
        Some(h) if h.head.signed_at > now - SIGN_EVERY_SECONDS => Ok(None),
        _ => sign_head(tx, key, now),
    }
}

/// A signed head as JSON: `show-head` prints it and `data/ledger.jsonl` carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadJson {
    pub authority_id: String,
    pub seq: i64,
    /// Lowercase hex.
    pub entry_hash: String,
    pub prev_head_seq: i64,
    pub prev_head_hash: String,
    /// Unix seconds, as the signed message has them.
    pub signed_at: i64,
    /// Standard base64 of the raw 64-byte ed25519 signature of the message.
    pub signature: String,
}

impl From<&SignedHead> for HeadJson {
    fn from(h: &SignedHead) -> Self {
        HeadJson {
            authority_id: h.head.authority_id.clone(),
            seq: h.head.seq,
            entry_hash: hex::encode(h.head.entry_hash),
            prev_head_seq: h.head.prev_head_seq,
            prev_head_hash: hex::encode(h.head.prev_head_hash),
            signed_at: h.head.signed_at,
            signature: base64::engine::general_purpose::STANDARD.encode(h.signature),
        }
    }
}

fn hash_hex(what: &str, s: &str) -> std::result::Result<Hash, String> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{what} is not 64 hex digits"))
}

impl HeadJson {
    /// The head back from JSON; a malformed field is named.
    pub fn parse(&self) -> std::result::Result<SignedHead, String> {
        let signature: [u8; 64] = base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("signature is not a base64 ed25519 signature")?;
        Ok(SignedHead {
            head: Head {
                authority_id: self.authority_id.clone(),
                seq: self.seq,
                entry_hash: hash_hex("entry_hash", &self.entry_hash)?,
                prev_head_seq: self.prev_head_seq,
                prev_head_hash: hash_hex("prev_head_hash", &self.prev_head_hash)?,
                signed_at: self.signed_at,
            },
            signature,
        })
    }
}

/// Whether `key` signed this head.
pub fn signature_ok(h: &SignedHead, key: &VerifyingKey) -> bool {
    key.verify(
        h.head.message().as_bytes(),
        &Signature::from_bytes(&h.signature),
    )
    .is_ok()
}

/// The newest signed head with the entry it names, for `ledger show-head`.
pub fn show_head(conn: &Connection) -> Result<Option<serde_json::Value>> {
    let Some(h) = store::latest_head(conn)? else {
        return Ok(None);
    };
    let entry = store::entry_at(conn, h.head.seq)?;
    let mut v = serde_json::to_value(HeadJson::from(&h)).unwrap_or_default();
    v["message"] = json!(h.head.message());
    if let Some((e, _)) = entry {
        v["entry"] = json!({
            "seq": e.seq,
            "prev_hash": hex::encode(e.prev_hash),
            "batch_digest": hex::encode(e.batch_digest),
            "changes": e.changes,
            "state_digest": hex::encode(e.state_digest),
            "committed_at": e.committed_at,
        });
        v["entry_line"] = json!(e.line());
    }
    Ok(Some(v))
}

/// One thing `ledger verify` found wrong, at the entry it makes bad.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub seq: i64,
    pub what: String,
}

/// What `ledger verify` checked when everything held.
#[derive(Clone, Debug, Default)]
pub struct Checked {
    pub entries: i64,
    pub heads: usize,
    pub rows: u64,
    pub last_seq: i64,
}

/// Replays the chain, checks every signed head against `keys` (the current public key,
/// and earlier ones after a rotation: any may have signed) and the chain, and recounts
/// the counted rows' digests; answers the findings sorted by entry (first bad first).
/// `progress` hears the number of entries replayed so far.
pub fn verify(
    conn: &Connection,
    keys: &[VerifyingKey],
    progress: &dyn Fn(u64),
) -> Result<std::result::Result<Checked, Vec<Finding>>> {
    let heads = store::heads_from(conn, 0)?;
    let mut at_head: HashMap<i64, Hash> = heads.iter().map(|h| (h.head.seq, ZERO)).collect();
    let mut found = vec![];
    let mut expect = 1i64;
    let mut prev = ZERO;
    let mut last: Option<ledger::Entry> = None;
    store::for_each_entry(conn, |e, stored| {
        if e.seq != expect {
            found.push(Finding {
                seq: expect,
                what: format!(
                    "entry {expect} is missing: entry {} follows entry {}",
                    e.seq,
                    expect - 1
                ),
            });
        } else if e.prev_hash != prev {
            found.push(Finding {
                seq: e.seq,
                what: format!(
                    "entry {}: prev_hash {} is not entry {}'s hash {}",
                    e.seq,
                    hex::encode(e.prev_hash),
                    e.seq - 1,
                    hex::encode(prev)
                ),
            });
        }
        if e.hash() != stored {
            found.push(Finding {
                seq: e.seq,
                what: format!(
                    "entry {}: its contents hash to {}, it is stored as {}",
                    e.seq,
                    hex::encode(e.hash()),
                    hex::encode(stored)
                ),
            });
        }
        if let Some(h) = at_head.get_mut(&e.seq) {
            *h = stored;
        }
        prev = stored;
        expect = e.seq + 1;
        if e.seq.rem_euclid(4096) == 0 {
            progress(e.seq as u64);
        }
        last = Some(e);
        found.len() < 100
    })?;
    let entries = expect - 1;
    progress(entries.max(0) as u64);
    let mut prev_head = (0i64, ZERO);
    for h in &heads {
        let seq = h.head.seq;
        if !keys.iter().any(|k| signature_ok(h, k)) {
            found.push(Finding {
                seq,
                what: format!(
                    "signed head at entry {seq}: the signature does not verify with the public key"
                ),
            });
        }
        if (h.head.prev_head_seq, h.head.prev_head_hash) != prev_head {
            found.push(Finding {
                seq,
                what: format!(
                    "signed head at entry {seq}: it follows a head at entry {}, the head before it is at entry {}",
                    h.head.prev_head_seq, prev_head.0
                ),
            });
        }
        match at_head.get(&seq) {
            Some(hash) if *hash == h.head.entry_hash => {}
            Some(hash) if *hash != ZERO => found.push(Finding {
                seq,
                what: format!(
                    "entry {seq}: its hash {} is not the hash {} the authority signed",
                    hex::encode(hash),
                    hex::encode(h.head.entry_hash)
                ),
            }),
            _ => found.push(Finding {
                seq,
                what: format!("entry {seq} is missing, yet the authority signed it"),
            }),
        }
        prev_head = (seq, h.head.entry_hash);
    }
    // The database against the chain: each table's rows against its folded digest, and
    // those digests against the newest entry's state digest.
    let states: HashMap<String, (StateDigest, i64)> = store::table_states(conn)?
        .into_iter()
        .map(|(t, d, s)| (t, (d, s)))
        .collect();
    let mut rows = 0u64;
    let mut sum = StateDigest::default();
    for c in COUNTED {
        let mut d = StateDigest::default();
        store::rows(conn, c, |row| {
            d.add(&ledger::row_hash(c.table, row));
            rows += 1;
        })?;
        let (folded, seq) = states.get(c.table).copied().unwrap_or_default();
        sum.add(&folded.0);
        if d != folded {
            found.push(Finding {
                seq,
                what: format!(
                    "entry {seq}: table {} no longer matches it (the rows hash to {}, the chain folded {} at entry {seq}, the last entry that changed the table): a row was changed outside the server",
                    c.table,
                    hex::encode(d.0),
                    hex::encode(folded.0)
                ),
            });
        }
    }
    if let Some(e) = &last {
        if sum.0 != e.state_digest {
            found.push(Finding {
                seq: e.seq,
                what: format!(
                    "entry {}: its state digest {} is not the sum {} of the tables' digests",
                    e.seq,
                    hex::encode(e.state_digest),
                    hex::encode(sum.0)
                ),
            });
        }
    }
    if found.is_empty() {
        return Ok(Ok(Checked {
            entries,
            heads: heads.len(),
            rows,
            last_seq: last.map(|e| e.seq).unwrap_or(0),
        }));
    }
    found.sort_by_key(|f| f.seq);
    Ok(Err(found))
}
