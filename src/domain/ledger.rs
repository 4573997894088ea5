//! The tamper-evident ledger's pure rules (format in docs/ledger.md): row hashes, the
//! additive multiset digest of counted state, the text lines an entry hash and a signed
//! head cover, and the rule by which an upstream accepts a satellite's heads. All hash
//! inputs are ASCII lines so anyone can recompute them with `printf | sha256sum`.

use super::string_enum::string_enum;
use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// The `prev_hash` of entry 1 and the `prev_head_hash` of the first head.
pub const ZERO: Hash = [0; 32];

pub fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

/// A counted row's hash: SHA-256 of `<table>\n<canonical row>`, where the canonical row
/// is SQLite's `quote()` of each counted column joined by `,` (see store::ledger).
pub fn row_hash(table: &str, canonical: &str) -> Hash {
    let mut h = Sha256::new();
    h.update(table.as_bytes());
    h.update(b"\n");
    h.update(canonical.as_bytes());
    h.finalize().into()
}

/// Sum of row hashes read as 256-bit big-endian integers, modulo 2^256: a row changed is
/// its old hash subtracted and its new one added, so the digest follows each change in
/// O(1) and equals the sum over the rows present, whatever order they came in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateDigest(pub Hash);

impl StateDigest {
    pub fn add(&mut self, h: &Hash) {
        let mut carry = 0u16;
        for i in (0..32).rev() {
            let s = self.0[i] as u16 + h[i] as u16 + carry;
            self.0[i] = s as u8;
            carry = s >> 8;
        }
    }

    pub fn sub(&mut self, h: &Hash) {
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let mut d = self.0[i] as i16 - h[i] as i16 - borrow;
            borrow = 0;
            if d < 0 {
                d += 256;
                borrow = 1;
            }
            self.0[i] = d as u8;
        }
    }

    pub fn from_slice(b: &[u8]) -> Option<Self> {
        b.try_into().ok().map(StateDigest)
    }
}

string_enum! {
    /// Whether a change record adds a row image to the state or takes one away.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Op {
        Add => "+",
        Remove => "-",
    }
}

/// One change record of a batch's canonical bytes: `<table> <+|-> <row hash hex>\n`.
pub fn change_line(table: &str, op: Op, row: &Hash) -> String {
    format!("{table} {} {}\n", op.as_str(), hex::encode(row))
}

/// Feeds `change_line` into a batch's hash without building the line: a bulk batch
/// holds hundreds of thousands of them, and the String and hex allocations were a
/// measurable share of sealing it.
pub fn hash_change_line(batch: &mut Sha256, table: &str, op: Op, row: &Hash) {
    let mut hex = [0u8; 64];
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in row.iter().enumerate() {
        hex[2 * i] = DIGITS[(b >> 4) as usize];
        hex[2 * i + 1] = DIGITS[(b & 0xf) as usize];
    }
    batch.update(table.as_bytes());
    batch.update(b" ");
    batch.update(op.as_str().as_bytes());
    batch.update(b" ");
    batch.update(hex);
    batch.update(b"\n");
}

/// A chain entry: fixed size whatever the batch held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub seq: i64,
    pub prev_hash: Hash,
    /// SHA-256 of the batch's change lines, in commit order.
    pub batch_digest: Hash,
    pub changes: i64,
    /// The multiset digest of every counted row after the batch.
    pub state_digest: Hash,
    pub committed_at: i64,
}

impl Entry {
    /// The exact bytes the entry hash covers.
    pub fn line(&self) -> String {
        format!(
            "satellite-ledger-entry/1 {} {} {} {} {} {}\n",
            self.seq,
            hex::encode(self.prev_hash),
            hex::encode(self.batch_digest),
            self.changes,
            hex::encode(self.state_digest),
            self.committed_at
        )
    }

    pub fn hash(&self) -> Hash {
        sha256(self.line().as_bytes())
    }
}

/// A signed chain head: the authority's word that its chain reached `entry_hash` at `seq`,
/// linked to the head it signed before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub authority_id: String,
    pub seq: i64,
    pub entry_hash: Hash,
    pub prev_head_seq: i64,
    pub prev_head_hash: Hash,
    pub signed_at: i64,
}

impl Head {
    /// The exact bytes the ed25519 signature covers.
    pub fn message(&self) -> String {
        format!(
            "satellite-ledger-head/1 {} {} {} {} {} {}\n",
            self.authority_id,
            self.seq,
            hex::encode(self.entry_hash),
            self.prev_head_seq,
            hex::encode(self.prev_head_hash),
            self.signed_at
        )
    }
}

/// What an upstream does with one head a satellite sent, given the head it already holds
/// at the same seq (if any) and the newest head it holds from that satellite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerHead {
    /// Seen before, identical: nothing to store.
    Seen,
    /// Extends the newest head seen (or is the first ever seen): stored.
    Extends,
}

pub fn judge_peer_head(
    same_seq: Option<&Hash>,
    last: Option<(i64, Hash)>,
    head: &Head,
) -> Result<PeerHead, String> {
    if let Some(known) = same_seq {
        return if *known == head.entry_hash {
            Ok(PeerHead::Seen)
        } else {
            Err(format!(
                "its ledger was rewritten: at entry {} this upstream saw hash {}, the bundle says {}",
                head.seq,
                hex::encode(known),
                hex::encode(head.entry_hash)
            ))
        };
    }
    match last {
        None => Ok(PeerHead::Extends),
        Some((seq, _)) if head.seq < seq => Err(format!(
            "its ledger went back: a head at entry {} this upstream never saw, after it saw entry {seq}",
            head.seq
        )),
        Some((seq, hash)) if head.prev_head_seq == seq && head.prev_head_hash == hash => {
            Ok(PeerHead::Extends)
        }
        Some((seq, _)) => Err(format!(
            "its ledger does not extend the last head this upstream saw (entry {seq}): the head at entry {} follows entry {}",
            head.seq, head.prev_head_seq
        )),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn hashing_a_change_line_in_place_is_hashing_the_line() {
        let row = row_hash("t", "1,'a'");
        for op in [Op::Add, Op::Remove] {
            let mut a = Sha256::new();
            hash_change_line(&mut a, "satellite_usage", op, &row);
            let mut b = Sha256::new();
            b.update(change_line("satellite_usage", op, &row));
            assert_eq!(a.finalize(), b.finalize());
        }
    }

    use super::*;

    #[test]
    fn the_digest_is_order_free_and_undoes_itself() {
        let (a, b) = (sha256(b"a"), sha256(b"b"));
        let mut x = StateDigest::default();
        x.add(&a);
        x.add(&b);
        let mut y = StateDigest::default();
        y.add(&b);
        y.add(&a);
        assert_eq!(x, y);
        x.sub(&a);
        x.sub(&b);
        assert_eq!(x, StateDigest::default());
        // Wraps modulo 2^256 both ways.
        let mut z = StateDigest::default();
        z.sub(&a);
        z.add(&a);
        assert_eq!(z, StateDigest::default());
    }

    fn head(seq: i64, hash: u8, prev_seq: i64, prev: u8) -> Head {
        Head {
            authority_id: "sat".into(),
            seq,
            entry_hash: [hash; 32],
            prev_head_seq: prev_seq,
            prev_head_hash: [prev; 32],
            signed_at: 0,
        }
    }

    #[test]
    fn an_upstream_takes_only_heads_that_extend_the_last() {
        let last = Some((5, [5u8; 32]));
        assert_eq!(
            judge_peer_head(None, None, &head(1, 1, 0, 0)),
            Ok(PeerHead::Extends)
        );
        assert_eq!(
            judge_peer_head(Some(&[5; 32]), last, &head(5, 5, 3, 3)),
            Ok(PeerHead::Seen)
        );
        assert!(judge_peer_head(Some(&[5; 32]), last, &head(5, 6, 3, 3)).is_err());
        assert_eq!(
            judge_peer_head(None, last, &head(9, 9, 5, 5)),
            Ok(PeerHead::Extends)
        );
        assert!(judge_peer_head(None, last, &head(9, 9, 4, 5)).is_err());
        assert!(judge_peer_head(None, last, &head(2, 2, 0, 0)).is_err());
    }
}
