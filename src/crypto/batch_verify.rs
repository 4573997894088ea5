//! Ed25519 batch verification with the single check's strict rules, for request
//! signatures that arrive together: ed25519-dalek's `verify_batch` (one multiscalar
//! multiplication over a random linear combination of the n equations, about half the
//! work of n single checks once n passes a handful).
//!
//! Each item is first held to what `VerifyingKey::verify_strict` demands and the batch
//! equation does not (canonical `s`, key and `R` not of small order). A batch that passes
//! means every item passes alone, except with negligible probability over the random
//! weights, or for a signature its own key's holder crafted with a torsion component,
//! which forges nothing. A batch that fails says only that some item is bad: callers
//! check each alone to find which.

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signature, VerifyingKey};

/// One signature to check: the key, the signed bytes and the 64 signature bytes.
pub struct Item {
    pub key: VerifyingKey,
    pub message: Vec<u8>,
    pub signature: [u8; 64],
}

impl Item {
    /// This item alone, exactly as the server checked single signatures before batching.
    pub fn verify_alone(&self) -> bool {
        self.key
            .verify_strict(&self.message, &Signature::from_bytes(&self.signature))
            .is_ok()
    }
}

/// True when every item's signature is valid (see the module docs).
pub fn verify_all(items: &[Item]) -> bool {
    match items {
        [] => true,
        [one] => one.verify_alone(),
        _ => equation_holds(items).unwrap_or(false),
    }
}

/// ed25519-dalek's batch equation, after each item passed the strict rules it does not
/// apply itself; None when an item breaks one of them.
fn equation_holds(items: &[Item]) -> Option<bool> {
    let mut signatures = Vec::with_capacity(items.len());
    for item in items {
        if item.key.is_weak() {
            return None;
        }
        let (r_bytes, s_bytes) = item.signature.split_at(32);
        let r = CompressedEdwardsY::from_slice(r_bytes).ok()?.decompress()?;
        if r.is_small_order() {
            return None;
        }
        // verify_batch only checks the top bits of `s`; verify_strict wants it canonical.
        let _: Scalar = Option::from(Scalar::from_canonical_bytes(s_bytes.try_into().ok()?))?;
        signatures.push(Signature::from_bytes(&item.signature));
    }
    let messages: Vec<&[u8]> = items.iter().map(|i| i.message.as_slice()).collect();
    let keys: Vec<VerifyingKey> = items.iter().map(|i| i.key).collect();
    Some(ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn item(seed: u8, message: &[u8]) -> Item {
        let key = SigningKey::from_bytes(&[seed; 32]);
        Item {
            key: key.verifying_key(),
            message: message.to_vec(),
            signature: key.sign(message).to_bytes(),
        }
    }

    #[test]
    fn a_batch_of_good_signatures_passes() {
        let items: Vec<Item> = (1..=9).map(|i| item(i, &[i; 40])).collect();
        assert!(verify_all(&items));
        assert!(verify_all(&items[..2]));
        assert!(verify_all(&[]));
    }

    #[test]
    fn one_bad_signature_fails_the_batch_and_is_found_alone() {
        let mut items: Vec<Item> = (1..=8).map(|i| item(i, b"usage report")).collect();
        items[5].message.push(b'!');
        assert!(!verify_all(&items));
        let bad: Vec<usize> = (0..items.len())
            .filter(|i| !items[*i].verify_alone())
            .collect();
        assert_eq!(bad, vec![5]);
        // A signature made by another key, and garbage bytes.
        let mut swapped = (1..=3).map(|i| item(i, b"m")).collect::<Vec<_>>();
        swapped[0].key = swapped[1].key;
        assert!(!verify_all(&swapped));
        let mut garbage = (1..=3).map(|i| item(i, b"m")).collect::<Vec<_>>();
        garbage[2].signature = [0xff; 64];
        assert!(!verify_all(&garbage));
    }

    #[test]
    fn a_non_canonical_s_is_refused_as_verify_strict_refuses_it() {
        let mut items: Vec<Item> = (1..=3).map(|i| item(i, b"m")).collect();
        // s + l: the same point equation, a different encoding.
        let s = Scalar::from_canonical_bytes(items[1].signature[32..].try_into().unwrap()).unwrap();
        // The group order l, little-endian.
        let mut l_bytes = [0u8; 32];
        l_bytes[..16].copy_from_slice(&[
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14,
        ]);
        l_bytes[31] = 0x10;
        let mut sum = [0u8; 32];
        let mut carry = 0u16;
        for (i, out) in sum.iter_mut().enumerate() {
            let v = u16::from(s.to_bytes()[i]) + u16::from(l_bytes[i]) + carry;
            *out = v as u8;
            carry = v >> 8;
        }
        items[1].signature[32..].copy_from_slice(&sum);
        assert!(!items[1].verify_alone());
        assert!(!verify_all(&items));
    }
}
