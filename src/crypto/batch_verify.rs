//! Ed25519 batch verification with the single check's strict rules, for request
//! signatures that arrive together: one multiscalar multiplication over a random linear
//! combination of the n equations, about half the work of n single checks once n passes
//! a handful.
//!
//! The equation is the one ed25519-dalek's `verify_batch` solves (cofactorless: the sum
//! itself must be the identity), written here on curve25519-dalek so that each `R` is
//! decompressed once, for both the strict rules and the equation (dalek's would decompress
//! it again, one square root per signature, about 4 us), and the random weights come from
//! the operating system instead of a transcript hash.
//!
//! Each item is first held to what `VerifyingKey::verify_strict` demands and the batch
//! equation does not (canonical `s` and `R` encoding, key and `R` not of small order). A
//! batch that passes means every item passes alone, except with negligible probability
//! over the random weights, or for a signature its own key's holder crafted with a
//! torsion component, which forges nothing. A batch that fails says only that some item
//! is bad: callers check each alone to find which.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::{Signature, VerifyingKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha512};
use std::borrow::Borrow;

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

/// True when every item's signature is valid (see the module docs). Items or references
/// to them.
pub fn verify_all<I: Borrow<Item>>(items: &[I]) -> bool {
    match items {
        [] => true,
        [one] => one.borrow().verify_alone(),
        _ => equation_holds(items).unwrap_or(false),
    }
}

/// Weights of 128 bits: a bad item slips through a batch with probability 2^-128.
const WEIGHT_BYTES: usize = 16;

/// Whether a compressed point's y (the low 255 bits, little-endian) is below
/// p = 2^255 - 19; decompression alone also accepts y in p..2^255.
fn canonical_y(bytes: &[u8]) -> bool {
    let [first, middle @ .., last] = bytes else {
        return false;
    };
    let at_least_p = *first >= 0xed && middle.iter().all(|b| *b == 0xff) && last & 0x7f == 0x7f;
    !at_least_p
}

/// sum(z_i R_i) + sum(z_i k_i A_i) - (sum z_i s_i) B == identity, with k_i =
/// SHA-512(R_i || A_i || M_i) and random z_i; None when an item breaks a strict rule or
/// the system's random source fails.
fn equation_holds<I: Borrow<Item>>(items: &[I]) -> Option<bool> {
    let mut weights = vec![0u8; WEIGHT_BYTES * items.len()];
    OsRng.try_fill_bytes(&mut weights).ok()?;
    let mut scalars = Vec::with_capacity(2 * items.len() + 1);
    let mut points = Vec::with_capacity(2 * items.len() + 1);
    let mut basepoint_coefficient = Scalar::ZERO;
    for (item, weight) in items.iter().zip(weights.chunks_exact(WEIGHT_BYTES)) {
        let item = item.borrow();
        if item.key.is_weak() {
            return None;
        }
        let (r_bytes, s_bytes) = item.signature.split_at(32);
        // verify_strict compares R's bytes with a canonical encoding: y must be below p.
        if !canonical_y(r_bytes) {
            return None;
        }
        let r = CompressedEdwardsY::from_slice(r_bytes).ok()?.decompress()?;
        if r.is_small_order() {
            return None;
        }
        // verify_strict wants `s` canonical (below the group order).
        let s: Scalar = Option::from(Scalar::from_canonical_bytes(s_bytes.try_into().ok()?))?;
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(r_bytes)
                .chain_update(item.key.as_bytes())
                .chain_update(&item.message),
        );
        let mut z = [0u8; 32];
        z[..WEIGHT_BYTES].copy_from_slice(weight);
        let z = Scalar::from_bytes_mod_order(z);
        basepoint_coefficient += z * s;
        scalars.push(z);
        points.push(r);
        scalars.push(z * k);
        points.push(EdwardsPoint::from(item.key));
    }
    scalars.push(-basepoint_coefficient);
    points.push(ED25519_BASEPOINT_POINT);
    Some(EdwardsPoint::vartime_multiscalar_mul(&scalars, &points).is_identity())
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
        assert!(verify_all::<Item>(&[]));
    }

    #[test]
    fn only_canonical_y_encodings_pass() {
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(!canonical_y(&p), "p itself");
        p[31] = 0xff;
        assert!(!canonical_y(&p), "p with the sign bit");
        p[0] = 0xec;
        assert!(canonical_y(&p), "p - 1");
        assert!(canonical_y(&[0u8; 32]));
    }

    #[test]
    fn batches_of_every_size_agree_with_single_checks() {
        for n in 2..=24u8 {
            let mut items: Vec<Item> = (1..=n).map(|i| item(i, &[i; 57])).collect();
            assert!(verify_all(&items), "{n} good signatures");
            items[usize::from(n) / 2].signature[10] ^= 0x40;
            assert!(!verify_all(&items), "{n} with one bad");
        }
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
