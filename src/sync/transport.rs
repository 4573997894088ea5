//! Connected mode: the same bundles over HTTPS (`POST /sync/v1/exchange`), through a
//! proxy when configured, with the upstream's certificate verified end to end.

use super::context::SyncContext;
use super::import::{self, Outcome};
use super::outbound::{self, Written};
use super::SyncError;
use crate::domain::sync::{LinkMode, LinkState};
use crate::store::satellite_admin;
use crate::store::sync_state::{self, Link};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Delays between attempts when the network fails (the request file is resent as is, so
/// the upstream sees the same bundle id and never applies it twice).
pub const BACKOFF: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(6),
    Duration::from_secs(18),
];

fn client(
    ctx: &SyncContext,
    link_ca: Option<&str>,
) -> Result<reqwest::blocking::Client, SyncError> {
    let mut b = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .connect_timeout(Duration::from_secs(15));
    if let Some(pem) = link_ca {
        let cert = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| {
            SyncError::Invalid(crate::domain::DomainError::invalid(
                "invalid_ca_cert",
                "ca_cert_pem",
                format!("ca_cert_pem is not a PEM certificate: {e}"),
            ))
        })?;
        b = b.add_root_certificate(cert);
    }
    if let Some(proxy) = &ctx.proxy {
        let p = reqwest::Proxy::all(proxy)
            .map_err(|e| SyncError::Io(format!("upstream_proxy {proxy}: {e}")))?;
        b = b.proxy(p);
    }
    b.build()
        .map_err(|e| SyncError::Io(format!("cannot build HTTPS client: {e}")))
}

/// Whether `url` is an `https://` URL with a host: the only kind an upstream may have,
/// since registration tokens and bundles travel in its requests.
pub fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
        && url.len() > 8
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// What went wrong reaching `url`, in words a person uses ("cannot reach https://...:
/// connection refused") rather than the HTTP client's text.
pub fn in_words(url: &str, e: &reqwest::Error) -> String {
    let mut why = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            why = Some(match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                std::io::ErrorKind::ConnectionReset => "the connection was reset".to_string(),
                std::io::ErrorKind::TimedOut => "no answer in time".to_string(),
                _ => io.to_string(),
            });
            break;
        }
        let text = s.to_string();
        if text.contains("dns error") || text.contains("failed to lookup") {
            why = Some("the host name does not resolve".to_string());
            break;
        }
        source = s.source();
    }
    let why = why.unwrap_or_else(|| {
        if e.is_timeout() {
            "no answer in time".to_string()
        } else if e.is_connect() {
            "the connection failed".to_string()
        } else {
            "the request failed".to_string()
        }
    });
    format!("cannot reach {url}: {why}")
}

/// Sends one request bundle; answers the upstream's response bundle, held in memory
/// (bounded by the response's own size limit) until it verifies.
fn post(ctx: &SyncContext, link: &Link, request: &Path) -> Result<Arc<[u8]>, SyncError> {
    let url = link.url.as_deref().ok_or_else(|| {
        SyncError::Io("this account has no upstream URL (disconnected mode)".into())
    })?;
    if !is_https(url) {
        return Err(SyncError::Refused(format!(
            "the upstream URL {url} is not https://; register again with its https:// address"
        )));
    }
    let body = std::fs::read(request).map_err(SyncError::io("reading the request bundle"))?;
    let res = client(ctx, link.ca_cert_pem.as_deref())?
        .post(format!("{}/sync/v1/exchange", url.trim_end_matches('/')))
        .header("content-type", "application/gzip")
        .body(body)
        .send()
        .map_err(|e| {
            // A certificate that does not verify will not verify on a retry either.
            let chain = format!("{e:?}");
            if chain.contains("certificate") || chain.contains("Certificate") {
                SyncError::Untrusted(format!(
                    "The upstream's TLS certificate is not trusted: check the CA certificate given at registration ({e})."
                ))
            } else {
                SyncError::Network(in_words(url, &e))
            }
        })?;
    let status = res.status();
    let bytes = res.bytes().map_err(|e| SyncError::Network(e.to_string()))?;
    if status.is_server_error() {
        return Err(SyncError::Network(format!("upstream answered {status}")));
    }
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        return Err(refused(status, &message));
    }
    Ok(Arc::from(&bytes[..]))
}

/// A 4xx from the upstream in words: what it refused and why, never the client's text.
/// Too many requests is worth another try; anything else the sender must change.
fn refused(status: reqwest::StatusCode, message: &str) -> SyncError {
    let why = message.trim().trim_end_matches('.');
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return SyncError::Network("the upstream asked to wait (too many requests)".into());
    }
    if why.contains("registration token") {
        SyncError::Refused(format!("the upstream refused the token: {why}"))
    } else {
        SyncError::Refused(format!("the upstream refused the request: {why}"))
    }
}

/// Sends a request with retries and imports the answer.
fn exchange(ctx: &SyncContext, link: &Link, request: &Written) -> Result<Outcome, SyncError> {
    let mut attempt = 0;
    let answer = loop {
        match post(ctx, link, &request.path) {
            Ok(path) => break path,
            Err(SyncError::Network(e)) if attempt < BACKOFF.len() => {
                tracing::warn!(error = %e, attempt, "upstream unreachable; retrying");
                std::thread::sleep(BACKOFF[attempt]);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    import::import_fetched(ctx, answer)
}

/// Connected registration: request, exchange, apply the response; the link is registered.
pub fn connect(
    ctx: &SyncContext,
    account: &str,
    token: &str,
    url: &str,
    ca_cert_pem: Option<&str>,
) -> Result<Outcome, SyncError> {
    if !is_https(url) {
        return Err(SyncError::Invalid(crate::domain::DomainError::invalid(
            "invalid_url",
            "url",
            "url must be the upstream's https:// address.",
        )));
    }
    let since = ctx.store.read_blocking(satellite_admin::last_history_id)?;
    // A registered link registering again keeps working until the new one succeeds.
    let before = ctx
        .store
        .read_blocking(|c| sync_state::link_by_account(c, account))?
        .filter(|l| l.state == LinkState::Registered);
    let request = outbound::registration_request(
        ctx,
        account,
        LinkMode::Connected,
        token,
        Some(url),
        ca_cert_pem,
    )?;
    let link = ctx
        .store
        .read_blocking(|c| sync_state::link_by_account(c, account))?
        .ok_or_else(|| SyncError::Io("the registration was not recorded".into()))?;
    // One attempt: someone is waiting at the form, and a typo in the URL will not heal.
    let result = post(ctx, &link, &request.path).and_then(|a| import::import_fetched(ctx, a));
    let result = mark_if_failed(ctx, link.account_id, since, result);
    if let (Err(_), Some(before)) = (&result, before) {
        ctx.store
            .write_blocking(|tx| sync_state::restore_link(tx, &before))?;
    }
    result
}

/// A connected attempt that failed sent nothing the upstream kept: its request is listed
/// as failed, with the reason in words, not as written.
fn mark_if_failed(
    ctx: &SyncContext,
    account_id: i64,
    since: i64,
    result: Result<Outcome, SyncError>,
) -> Result<Outcome, SyncError> {
    if let Err(e) = &result {
        let why = match e {
            SyncError::Network(m)
            | SyncError::Refused(m)
            | SyncError::Untrusted(m)
            | SyncError::Rejected(m)
            | SyncError::Io(m) => m.clone(),
            other => other.to_string(),
        };
        if let Err(e) = ctx
            .store
            .write_blocking(|tx| satellite_admin::mark_failed_since(tx, account_id, since, &why))
        {
            tracing::warn!(error = %e, "cannot mark a failed attempt in the sync history");
        }
    }
    result
}

/// One connected sync of an account: export, exchange, apply.
pub fn sync_now(ctx: &SyncContext, account: &str) -> Result<Outcome, SyncError> {
    let link = ctx
        .store
        .read_blocking(|c| sync_state::link_by_account(c, account))?
        .filter(|l| l.state == LinkState::Registered && l.mode == LinkMode::Connected)
        .ok_or_else(|| {
            SyncError::Invalid(crate::domain::DomainError::conflict(
                "not_connected",
                format!(
                    "Account '{account}' is not registered with an upstream in connected mode."
                ),
            ))
        })?;
    let since = ctx.store.read_blocking(satellite_admin::last_history_id)?;
    let request = outbound::sync_request(ctx, account, &|_| {})?;
    let result = exchange(ctx, &link, &request);
    mark_if_failed(ctx, link.account_id, since, result)
}
