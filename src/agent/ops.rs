//! What `satellite-agent` does. Each operation returns the lines to print, in order.

use super::client::Client;
use super::lifecycle::licensing_state;
use super::state::{AgentState, Authorization, Entitlement, Registration, StateDir};
use super::AgentError;
use crate::clock::rfc3339;
use crate::crypto::agent_sig;
use crate::crypto::idcert::{self, SignedCertificate};
use crate::domain::timers::days_left;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::{json, Value};

pub type Lines = Vec<(&'static str, String)>;

pub struct RegisterArgs<'a> {
    pub url: &'a str,
    pub token: &'a str,
    pub pid: &'a str,
    pub sn: &'a str,
    pub ca_cert_pem: Option<String>,
    pub insecure: bool,
    pub product_name: &'a str,
    pub product_version: &'a str,
    pub hostname: Option<String>,
    /// Move the registration here from another virtual account of the same account.
    pub reregister: bool,
    /// HTTP CONNECT proxy, kept in the state for every later command.
    pub proxy: Option<String>,
}

fn parse_time(v: &Value) -> Option<i64> {
    v.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp())
}

fn registered(state: &AgentState) -> Result<&Registration, AgentError> {
    state.registration.as_ref().ok_or_else(|| {
        AgentError::Usage("this agent is not registered; run `register` first".into())
    })
}

fn pinned(reg: &Registration) -> Result<VerifyingKey, AgentError> {
    agent_sig::decode_public_key(&reg.authority_public_key)
        .ok_or_else(|| AgentError::State("the pinned authority key in the state is damaged".into()))
}

/// Checks a register/renew answer and returns the registration it describes.
fn accept_certificate(
    body: &Value,
    authority: &VerifyingKey,
    key: &SigningKey,
) -> Result<(SignedCertificate, idcert::CertificatePayload), AgentError> {
    let cert: SignedCertificate = serde_json::from_value(body["id_certificate"].clone())
        .map_err(|_| AgentError::Protocol("the answer has no id certificate".into()))?;
    let payload = idcert::verify(authority, &cert).ok_or_else(|| {
        AgentError::Protocol("the id certificate is not signed by the authority".into())
    })?;
    let own_key = agent_sig::decode_public_key(&payload.public_key);
    if own_key != Some(key.verifying_key()) {
        return Err(AgentError::Protocol(
            "the id certificate names another key".into(),
        ));
    }
    Ok((cert, payload))
}

pub fn register(dir: &StateDir, now: i64, args: RegisterArgs<'_>) -> Result<Lines, AgentError> {
    let (_, mut state) = dir.open(now)?;
    let client = Client::with_proxy(
        args.url,
        args.ca_cert_pem.as_deref(),
        args.insecure,
        args.proxy.as_deref(),
    )?;
    let (authority_id, authority) = client.authority()?;
    if let Some(previous) = &state.registration {
        if previous.authority_public_key != crate::crypto::keys::public_key_b64(&authority)
            && previous.url == args.url
        {
            return Err(AgentError::Protocol(
                "the authority's key changed since this agent registered; refusing to trust it"
                    .into(),
            ));
        }
    }
    // A new key for every registration: re-registering rotates it.
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let mut body = json!({
        "token": args.token,
        "udi": { "pid": args.pid, "sn": args.sn },
        "public_key": crate::crypto::keys::public_key_b64(&key.verifying_key()),
        "product": { "name": args.product_name, "version": args.product_version },
        "hostname": args.hostname,
    });
    if args.reregister {
        body["reregister"] = json!(true);
    }
    let answer = client.post("/agent/v1/register", &body, &authority)?;
    let (cert, payload) = accept_certificate(&answer.body, &authority, &key)?;
    dir.replace_key(&key)?;
    let reg = Registration {
        url: args.url.trim_end_matches('/').to_string(),
        ca_cert_pem: args.ca_cert_pem,
        insecure: args.insecure,
        authority_id,
        authority_public_key: crate::crypto::keys::public_key_b64(&authority),
        instance_id: payload.instance_id.clone(),
        virtual_account: payload.virtual_account.clone(),
        pid: args.pid.to_string(),
        sn: args.sn.to_string(),
        id_certificate: cert,
        cert_renew_after: parse_time(&answer.body["renew_after"]).unwrap_or(now),
        cert_expires_at: parse_time(&answer.body["expires_at"]).unwrap_or(now),
        proxy: args.proxy,
    };
    let lines = vec![
        ("instance_id", reg.instance_id.clone()),
        ("virtual_account", reg.virtual_account.clone()),
        ("authority_id", reg.authority_id.clone()),
        ("expires_at", rfc3339(reg.cert_expires_at)),
    ];
    state.registration = Some(reg);
    state.authorization = None;
    dir.save(&state)?;
    Ok(lines)
}

/// Parses `TAG=COUNT` (the tag may itself contain '=': the last one separates).
pub fn parse_license(arg: &str) -> Result<(String, i64), AgentError> {
    let (tag, count) = arg
        .rsplit_once('=')
        .ok_or_else(|| AgentError::Usage(format!("--license {arg}: expected TAG=COUNT")))?;
    let count: i64 = count
        .parse()
        .map_err(|_| AgentError::Usage(format!("--license {arg}: COUNT is not a whole number")))?;
    Ok((tag.to_string(), count))
}

pub fn client_for(reg: &Registration) -> Result<Client, AgentError> {
    Client::with_proxy(
        &reg.url,
        reg.ca_cert_pem.as_deref(),
        reg.insecure,
        reg.proxy.as_deref(),
    )
}

/// Reports `licenses` as measured at `measured_ms` (unix milliseconds, one clock
/// reading: the server applies only reports strictly newer than the last).
pub fn report(
    dir: &StateDir,
    now: i64,
    measured_ms: i64,
    licenses: &[(String, i64)],
) -> Result<Lines, AgentError> {
    let (key, mut state) = dir.open(now)?;
    let reg = registered(&state)?.clone();
    let authority = pinned(&reg)?;
    let body = json!({
        "report_id": uuid::Uuid::new_v4().to_string(),
        // Milliseconds: the server orders reports at full precision.
        "measured_at": crate::clock::rfc3339_millis(measured_ms),
        "entitlements": licenses.iter().map(|(t, c)| json!({ "tag": t, "count": c })).collect::<Vec<_>>(),
    });
    let answer = client_for(&reg)?.signed_post(
        "/agent/v1/usage",
        &body,
        &reg.instance_id,
        &key,
        now,
        &authority,
    )?;
    let b = &answer.body;
    let entitlements: Vec<Entitlement> = b["entitlements"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| Entitlement {
                    tag: e["tag"].as_str().unwrap_or_default().to_string(),
                    count: e["count"].as_i64().unwrap_or(0),
                    status: e["status"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let auth = Authorization {
        status: b["status"].as_str().unwrap_or("unknown").to_string(),
        renew_after: parse_time(&b["authorization"]["renew_after"]),
        expires_at: parse_time(&b["authorization"]["expires_at"]),
        entitlements,
    };
    let mut lines: Lines = vec![("status", auth.status.clone())];
    if let Some(e) = auth.expires_at {
        lines.push(("authorization_expires_at", rfc3339(e)));
    }
    for e in &auth.entitlements {
        lines.push(("entitlement", format!("{} {} {}", e.tag, e.count, e.status)));
    }
    state.authorization = Some(auth);
    dir.save(&state)?;
    // The report went through; a failed look at pending export keys only warns.
    if let Err(e) = super::export::refresh_pending(dir, now) {
        eprintln!("warning: could not refresh export keys: {e}");
    }
    Ok(lines)
}

pub fn renew(dir: &StateDir, now: i64) -> Result<Lines, AgentError> {
    renew_with_hostname(dir, now, None)
}

/// Renews the id certificate, telling the server the product's hostname when it changed.
pub fn renew_with_hostname(
    dir: &StateDir,
    now: i64,
    hostname: Option<&str>,
) -> Result<Lines, AgentError> {
    let (key, mut state) = dir.open(now)?;
    let mut reg = registered(&state)?.clone();
    let authority = pinned(&reg)?;
    let body = match hostname {
        Some(h) => json!({ "hostname": h }),
        None => json!({}),
    };
    let answer = client_for(&reg)?.signed_post(
        "/agent/v1/renew",
        &body,
        &reg.instance_id,
        &key,
        now,
        &authority,
    )?;
    // After a key rotation the answer is signed by the new key the pinned one vouched
    // for: from now on that key is pinned.
    let (cert, _) = accept_certificate(&answer.body, &answer.authority, &key)?;
    if answer.authority != authority {
        reg.authority_public_key = crate::crypto::keys::public_key_b64(&answer.authority);
    }
    reg.id_certificate = cert;
    reg.cert_renew_after = parse_time(&answer.body["renew_after"]).unwrap_or(now);
    reg.cert_expires_at = parse_time(&answer.body["expires_at"]).unwrap_or(now);
    let lines = vec![
        ("instance_id", reg.instance_id.clone()),
        ("renew_after", rfc3339(reg.cert_renew_after)),
        ("expires_at", rfc3339(reg.cert_expires_at)),
    ];
    state.registration = Some(reg);
    dir.save(&state)?;
    Ok(lines)
}

/// Deregisters at the server, which releases the licenses at once. Only when the server
/// cannot be reached (or no longer knows this instance) is the local state cleared
/// anyway, with a warning: the server still counts the instance until an admin removes it.
pub fn deregister(dir: &StateDir, now: i64) -> Result<Lines, AgentError> {
    let (key, mut state) = dir.open(now)?;
    let reg = registered(&state)?.clone();
    let authority = pinned(&reg)?;
    let answer = client_for(&reg)?.signed_post(
        "/agent/v1/deregister",
        &json!({}),
        &reg.instance_id,
        &key,
        now,
        &authority,
    );
    let status = match answer {
        Ok(_) => "deregistered",
        Err(AgentError::Network { url, message }) => {
            eprintln!(
                "warning: cannot reach {url} ({message}); the local registration is cleared, \
                 but the server still holds instance {} and its licenses: an admin must remove \
                 it (Instances > Remove, or DELETE .../instances/{}).",
                reg.instance_id, reg.instance_id
            );
            "deregistered_locally"
        }
        Err(e) if e.code() == Some("instance_not_registered") => "not_registered_at_server",
        Err(e) => return Err(e),
    };
    state.registration = None;
    state.authorization = None;
    dir.save(&state)?;
    super::export::forget(dir)?;
    Ok(vec![
        ("instance_id", reg.instance_id),
        ("status", status.into()),
    ])
}

/// Works offline from the state dir: the licensing state (`agent::lifecycle`) with the
/// days left in it, and one line per license of the last authorization.
pub fn status(dir: &StateDir, now: i64) -> Result<Lines, AgentError> {
    let (_, state) = dir.open(now)?;
    let (label, deadline) = licensing_state(&state, now);
    let Some(reg) = &state.registration else {
        return Ok(vec![
            ("state", label.as_str().into()),
            ("days_left", days_left(deadline, now).to_string()),
        ]);
    };
    // The stored certificate must still verify against the pinned key (proof offline).
    let authority = pinned(reg)?;
    if idcert::verify(&authority, &reg.id_certificate).is_none() {
        return Err(AgentError::State(
            "the stored id certificate does not verify".into(),
        ));
    }
    let mut lines: Lines = vec![
        ("state", label.as_str().into()),
        ("days_left", days_left(deadline, now).to_string()),
        ("instance_id", reg.instance_id.clone()),
        ("virtual_account", reg.virtual_account.clone()),
        ("registration_expires_at", rfc3339(reg.cert_expires_at)),
    ];
    if let Some(a) = &state.authorization {
        lines.push(("last_status", a.status.clone()));
        if let Some(e) = a.expires_at {
            lines.push(("authorization_expires_at", rfc3339(e)));
        }
        // One line per license: the status the server last gave it.
        for e in &a.entitlements {
            lines.push((
                "license",
                format!("{} status={} count={}", e.tag, e.status, e.count),
            ));
        }
    }
    super::export::amend_status(dir, &state, lines)
}
