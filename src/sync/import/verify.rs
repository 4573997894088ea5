//! The first pass of an import: the whole bundle verified against the key this server
//! trusts for its sender (CONTRACT.md section 6, "verification first and whole"). Decides
//! nothing else: no "seen before", no order, nothing written.

use super::reject;
use crate::config::ServerRole;
use crate::crypto::keys::public_key_b64;
use crate::domain::sync::{BundleKind, LinkState};
use crate::store::sync_state;
use crate::sync::bundle::{self, BundleSink, BundleSource, Manifest, Verified};
use crate::sync::context::SyncContext;
use crate::sync::records::Line;
use crate::sync::SyncError;
use ed25519_dalek::VerifyingKey;
use rusqlite::Connection;
use std::path::Path;

/// How the key that verified a bundle was chosen.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Trust {
    /// Pinned earlier for this sender: a verified bundle comes from a known peer.
    Pinned,
    /// Introduced by the bundle itself (registration): proves nothing about the sender
    /// until the token or pending request checks out.
    Introduced,
}

/// The key pinned for a sender, or the key it handed over to: after a key rotation the
/// manifest carries a statement signed by the pinned key vouching for the signer's new
/// key, good until its overlap ends (see `crypto::rotation`). The import then pins it.
pub(super) fn rotated(
    ctx: &SyncContext,
    pinned: &[u8],
    m: &Manifest,
    signer: &VerifyingKey,
) -> Result<VerifyingKey, SyncError> {
    let pinned = pinned_key(pinned)?;
    let handed_over = pinned != *signer
        && m.from.public_key.as_deref() == Some(public_key_b64(signer).as_str())
        && m.from
            .key_rotation
            .as_ref()
            .is_some_and(|v| v.hands_over(&pinned, signer, ctx.clock.unix()));
    Ok(if handed_over { *signer } else { pinned })
}

/// The key this server trusts for the sender a manifest names, and how it was chosen.
/// Decides nothing about the bundle beyond that: no "seen before", no order.
fn sender_key(
    ctx: &SyncContext,
    c: &Connection,
    m: &Manifest,
    signer: &VerifyingKey,
) -> Result<(VerifyingKey, Trust), SyncError> {
    let announced = m.from.public_key.as_deref();
    let introduced = || {
        // For a registration the bundle introduces its own key; both copies must agree.
        if announced == Some(public_key_b64(signer).as_str()) {
            Ok((*signer, Trust::Introduced))
        } else {
            Err(reject(
                "signer.pub.pem and the manifest's public key differ",
            ))
        }
    };
    match (ctx.role, m.bundle_kind()) {
        (ServerRole::Satellite, Some(BundleKind::RegistrationResponse)) => {
            let link = sync_state::link_by_account(c, &m.account)?.ok_or_else(|| {
                reject(format!(
                    "foreign account: there is no account '{}' here",
                    m.account
                ))
            })?;
            if link.state == LinkState::Pending
                && link.pending_request_id.as_deref() == m.in_reply_to.as_deref()
            {
                // Trust on first use: the response to our pending request pins its key.
                return introduced();
            }
            match (&link.upstream_authority_id, &link.upstream_public_key) {
                // A copy of the response that registered us verifies against the key it
                // pinned (and is then a duplicate); nothing else does.
                (Some(id), Some(key)) if *id == m.from.authority_id => {
                    Ok((rotated(ctx, key, m, signer)?, Trust::Pinned))
                }
                _ => Err(reject(
                    "it does not answer this account's pending registration request",
                )),
            }
        }
        (ServerRole::Satellite, Some(BundleKind::SyncResponse)) => {
            let link = sync_state::link_by_account(c, &m.account)?
                .filter(|l| l.state == LinkState::Registered)
                .ok_or_else(|| {
                    reject(format!(
                        "foreign account: '{}' is not registered with an upstream here",
                        m.account
                    ))
                })?;
            if link.upstream_authority_id.as_deref() != Some(m.from.authority_id.as_str()) {
                return Err(reject(format!(
                    "foreign authority {}: not this account's upstream",
                    m.from.authority_id
                )));
            }
            let pinned = link.upstream_public_key.as_deref().unwrap_or_default();
            let key = rotated(ctx, pinned, m, signer)?;
            Ok((key, Trust::Pinned))
        }
        (ServerRole::Upstream, Some(BundleKind::RegistrationRequest)) => {
            // A satellite registered before is held to the key it pinned then.
            match sync_state::satellite(c, &m.from.authority_id, &m.account)? {
                Some(sat) => Ok((rotated(ctx, &sat.public_key, m, signer)?, Trust::Pinned)),
                None => introduced(),
            }
        }
        (ServerRole::Upstream, Some(BundleKind::SyncRequest)) => {
            let Some(sat) = sync_state::satellite(c, &m.from.authority_id, &m.account)? else {
                let why = crate::store::satellite_admin::unregistered_reason(
                    c,
                    &m.from.authority_id,
                    &m.account,
                )?;
                return Err(reject(why));
            };
            Ok((rotated(ctx, &sat.public_key, m, signer)?, Trust::Pinned))
        }
        (role, _) => Err(wrong_kind(role, m)),
    }
}

/// The first pass: the whole bundle checked against its sender's trusted key.
pub(super) fn verify_sender(
    ctx: &SyncContext,
    src: &BundleSource,
) -> (Result<Verified, SyncError>, Option<Trust>) {
    let mut trust = None;
    let verified = bundle::verify(src, |m, signer| {
        let (key, how) = ctx
            .store
            .read_blocking(|c| Ok(sender_key(ctx, c, m, signer)))??;
        trust = Some(how);
        Ok(key)
    });
    (verified, trust)
}

/// Verifies a bundle without applying it: the signature against the pinned key when this
/// server knows the sender, else against the key the bundle carries.
pub fn verify_file(ctx: &SyncContext, path: &Path) -> Result<(Manifest, bool), SyncError> {
    struct Verifier<'a> {
        ctx: &'a SyncContext,
        pinned: bool,
    }
    impl BundleSink for Verifier<'_> {
        fn trust(
            &mut self,
            m: &Manifest,
            signer: &VerifyingKey,
        ) -> Result<VerifyingKey, SyncError> {
            let pinned: Option<Vec<u8>> = self.ctx.store.read_blocking(|c| {
                Ok(match self.ctx.role {
                    ServerRole::Satellite => sync_state::link_by_account(c, &m.account)?
                        .filter(|l| {
                            l.upstream_authority_id.as_deref() == Some(m.from.authority_id.as_str())
                        })
                        .and_then(|l| l.upstream_public_key),
                    ServerRole::Upstream => {
                        sync_state::satellite(c, &m.from.authority_id, &m.account)?
                            .map(|s| s.public_key)
                    }
                })
            })?;
            match pinned {
                Some(bytes) => {
                    self.pinned = true;
                    rotated(self.ctx, &bytes, m, signer)
                }
                None => Ok(*signer),
            }
        }
        fn record(&mut self, _: &str, _: Line<'_>) -> Result<(), SyncError> {
            Ok(())
        }
        fn wants_records(&self) -> bool {
            false
        }
    }
    let mut v = Verifier { ctx, pinned: false };
    let manifest = bundle::read(&BundleSource::File(path.to_owned()), &mut v, |_| {})?;
    Ok((manifest, v.pinned))
}

/// The key bytes pinned for a peer, as a key.
pub(super) fn pinned_key(bytes: &[u8]) -> Result<VerifyingKey, SyncError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| reject("the pinned key is damaged"))?;
    VerifyingKey::from_bytes(&arr).map_err(|_| reject("the pinned key is damaged"))
}

/// A kind this role does not import (or no kind at all).
pub(super) fn wrong_kind(role: ServerRole, m: &Manifest) -> SyncError {
    reject(format!(
        "wrong kind: a {} does not import {} bundles",
        role.as_str(),
        m.kind
    ))
}
