//! `satellite-agent reserve ...`: license reservation for a product that never reaches
//! the server (CONTRACT section 5). Works offline and without a registration: the key
//! comes from the state dir (made on first run). The reservation lives in its own files
//! beside the agent's state: `reservation.json` and `reservation.key`, a copy of the key
//! the request was made with, so a later registration (which rotates `agent.key`) cannot
//! strand a reservation that only that key can return.

use super::ops::Lines;
use super::state::StateDir;
use super::AgentError;
use crate::domain::reservation::{self as rules, ParsedAuthorization};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the agent remembers of its reservation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reservation {
    pub request_code: String,
    pub pid: String,
    pub sn: String,
    pub key_hash: String,
    pub nonce: String,
    /// What the product asked for; the admin decides specific or universal.
    pub universal_requested: bool,
    /// The installed authorization code document, once installed.
    #[serde(default)]
    pub authorization: Option<String>,
}

pub struct Paths {
    state: PathBuf,
    key: PathBuf,
}

fn paths(state_dir: &Path) -> Paths {
    Paths {
        state: state_dir.join("reservation.json"),
        key: state_dir.join("reservation.key"),
    }
}

fn err(e: impl std::fmt::Display) -> AgentError {
    AgentError::State(e.to_string())
}

pub fn load(state_dir: &Path) -> Result<Option<Reservation>, AgentError> {
    let p = paths(state_dir);
    if !p.state.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p.state)
        .map_err(|e| err(format!("cannot read reservation: {e}")))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| err(format!("reservation state is not valid: {e}")))
}

fn save(state_dir: &Path, r: &Reservation) -> Result<(), AgentError> {
    let p = paths(state_dir);
    let tmp = state_dir.join("reservation.json.new");
    let text = serde_json::to_string_pretty(r).map_err(err)?;
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &p.state))
        .map_err(|e| err(format!("cannot save reservation: {e}")))
}

fn clear(state_dir: &Path) -> Result<(), AgentError> {
    let p = paths(state_dir);
    for f in [&p.state, &p.key] {
        if f.exists() {
            std::fs::remove_file(f)
                .map_err(|e| err(format!("cannot remove {}: {e}", f.display())))?;
        }
    }
    Ok(())
}

fn reservation_key(state_dir: &Path) -> Result<SigningKey, AgentError> {
    let pem = std::fs::read_to_string(paths(state_dir).key)
        .map_err(|e| err(format!("cannot read the reservation key: {e}")))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| err(format!("reservation key is not valid: {e}")))
}

/// `reserve request`: prints a request code for this product's UDI and key.
pub fn request(
    dir: &StateDir,
    state_dir: &Path,
    now: i64,
    universal: bool,
    pid: Option<&str>,
    sn: Option<&str>,
) -> Result<String, AgentError> {
    let (key, state) = dir.open(now)?;
    if let Some(r) = load(state_dir)? {
        if r.authorization.is_some() {
            return Err(AgentError::Usage(
                "this product already holds a reservation; `reserve return` it first".into(),
            ));
        }
    }
    let (pid, sn) = match (&state.registration, pid, sn) {
        (Some(reg), _, _) => (reg.pid.clone(), reg.sn.clone()),
        (None, Some(p), Some(s)) => (p.to_string(), s.to_string()),
        _ => {
            return Err(AgentError::Usage(
                "this agent is not registered: give the UDI with --pid P --sn S".into(),
            ))
        }
    };
    crate::domain::instance::check_udi(&pid, &sn, None)
        .map_err(|e| AgentError::Usage(e.to_string()))?;
    let mut nonce = [0u8; rules::NONCE_LEN];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let pk = key.verifying_key().to_bytes();
    let code = rules::make_request_code(&pid, &sn, &pk, nonce);
    // Replace any earlier pending request: only the newest code is answered.
    clear(state_dir)?;
    let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(err)?;
    crate::crypto::write_private(&paths(state_dir).key, pem.as_bytes()).map_err(err)?;
    save(
        state_dir,
        &Reservation {
            request_code: code.clone(),
            pid,
            sn,
            key_hash: rules::key_hash_hex(&rules::key_hash(&pk)),
            nonce: rules::nonce_hex(&nonce),
            universal_requested: universal,
            authorization: None,
        },
    )?;
    Ok(code)
}

fn read_code(file: &Path) -> Result<ParsedAuthorization, AgentError> {
    let doc = std::fs::read_to_string(file)
        .map_err(|e| AgentError::Usage(format!("cannot read {}: {e}", file.display())))?;
    rules::parse_authorization(&doc)
        .map_err(|e| AgentError::Protocol(format!("not an authorization code: {e}")))
}

/// Refuses a code that does not answer this product's request.
fn check_ours(r: &Reservation, code: &ParsedAuthorization) -> Result<(), AgentError> {
    let a = &code.authorization;
    if a.pid != r.pid || a.sn != r.sn {
        return Err(AgentError::Protocol(format!(
            "this authorization code is for P:{},S:{}, not this product (P:{},S:{}); refusing it",
            a.pid, a.sn, r.pid, r.sn
        )));
    }
    if rules::key_hash_hex(&a.key_hash) != r.key_hash || rules::nonce_hex(&a.nonce) != r.nonce {
        return Err(AgentError::Protocol(
            "this authorization code answers another request code; refusing it".into(),
        ));
    }
    Ok(())
}

/// `reserve install FILE [--authority-key PEM]`: verifies, installs, prints the
/// confirmation code.
pub fn install(
    dir: &StateDir,
    state_dir: &Path,
    now: i64,
    file: &Path,
    authority_pem: Option<&Path>,
) -> Result<String, AgentError> {
    let (_, state) = dir.open(now)?;
    let authority: VerifyingKey = match (authority_pem, &state.registration) {
        (Some(p), _) => {
            let pem = std::fs::read_to_string(p)
                .map_err(|e| AgentError::Usage(format!("cannot read {}: {e}", p.display())))?;
            VerifyingKey::from_public_key_pem(&pem).map_err(|e| {
                AgentError::Usage(format!("{} is not an SPKI ed25519 public key: {e}", p.display()))
            })?
        }
        (None, Some(reg)) => crate::crypto::agent_sig::decode_public_key(&reg.authority_public_key)
            .ok_or_else(|| err("the pinned authority key in the state is damaged"))?,
        (None, None) => {
            return Err(AgentError::Usage(
                "no authority key to check the code with: this agent never registered; give --authority-key PEM"
                    .into(),
            ))
        }
    };
    let mut r = load(state_dir)?.ok_or_else(|| {
        AgentError::Usage("no reservation was requested here; run `reserve request` first".into())
    })?;
    let code = read_code(file)?;
    if !code.verify(&authority) {
        return Err(AgentError::Protocol(
            "the authorization code is not signed by the authority key (tampered, or from another server); refusing it"
                .into(),
        ));
    }
    check_ours(&r, &code)?;
    if let Some(installed) = r.authorization.as_deref().map(rules::parse_authorization) {
        let installed = installed.map_err(|e| err(e.to_string()))?;
        if installed.authorization.version > code.authorization.version {
            return Err(AgentError::Protocol(
                "this authorization code is older than the one installed; refusing it".into(),
            ));
        }
    }
    let confirmation = rules::confirmation_code(&code.code_bytes, &code.authorization.key_hash);
    r.authorization = Some(
        std::fs::read_to_string(file)
            .map_err(err)?
            .trim()
            .to_string(),
    );
    save(state_dir, &r)?;
    Ok(confirmation)
}

/// `reserve return`: a return code for the installed reservation, which is dropped.
pub fn return_installed(state_dir: &Path) -> Result<String, AgentError> {
    let r = load(state_dir)?
        .filter(|r| r.authorization.is_some())
        .ok_or_else(|| AgentError::Usage("no reservation is installed here".into()))?;
    let code = rules::parse_authorization(r.authorization.as_deref().unwrap_or_default())
        .map_err(|e| err(e.to_string()))?;
    let key = reservation_key(state_dir)?;
    let rc = rules::make_return_code(&key, &code.authorization.piid, &code.code_bytes);
    clear(state_dir)?;
    Ok(rc)
}

/// `reserve return-authorization FILE`: a return code for a code never installed.
pub fn return_authorization(state_dir: &Path, file: &Path) -> Result<String, AgentError> {
    let r = load(state_dir)?.ok_or_else(|| {
        AgentError::Usage("no reservation was requested here; nothing to return".into())
    })?;
    let code = read_code(file)?;
    check_ours(&r, &code)?;
    let key = reservation_key(state_dir)?;
    let rc = rules::make_return_code(&key, &code.authorization.piid, &code.code_bytes);
    clear(state_dir)?;
    Ok(rc)
}

/// `reserve cancel`: drops a pending request (one not installed).
pub fn cancel(state_dir: &Path) -> Result<Lines, AgentError> {
    match load(state_dir)? {
        Some(r) if r.authorization.is_none() => {
            clear(state_dir)?;
            Ok(vec![("reservation", "cancelled".into())])
        }
        Some(_) => Err(AgentError::Usage(
            "the reservation is installed; use `reserve return`".into(),
        )),
        None => Err(AgentError::Usage("no reservation request to cancel".into())),
    }
}

/// Adds the reservation to `status`: its state outranks the others, and each reserved
/// license gets a `license=TAG status=reserved count=N` line.
pub fn amend_status(state_dir: &Path, mut lines: Lines) -> Result<Lines, AgentError> {
    let Some(r) = load(state_dir)? else {
        return Ok(lines);
    };
    let label = match &r.authorization {
        None => "reservation-pending",
        Some(_) => "reserved",
    };
    match lines.iter_mut().find(|(k, _)| *k == "state") {
        Some(l) => l.1 = label.into(),
        None => lines.insert(0, ("state", label.into())),
    }
    lines.push(("request_code", r.request_code.clone()));
    if let Some(doc) = &r.authorization {
        let code = rules::parse_authorization(doc).map_err(|e| err(e.to_string()))?;
        let a = &code.authorization;
        lines.push((
            "reservation",
            if a.universal { "universal" } else { "specific" }.into(),
        ));
        lines.push(("reservation_id", a.piid.clone()));
        for e in &a.entitlements {
            lines.push((
                "license",
                format!("{} status=reserved count={}", e.tag, e.count),
            ));
        }
    }
    Ok(lines)
}
