//! Limits as policy, in one place: how big a request body may be on each route, how long
//! a client has to send it, and the connection-level budget (cap, header and keep-alive
//! timeouts) handed to the HTTP server. Every number comes from the settings
//! (`config::Settings`); `docs/security.md` says why each one is what it is.

use super::{api, AppError, PageError, State};
use crate::config::Settings;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::Extensions;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, ResponseError};
use futures_core::Stream;
use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// The most any extractor buffers, whatever the settings say: a ceiling above every route
/// limit, so the route limit decides (streamed bundle uploads are not buffered at all).
pub const EXTRACTOR_CEILING: usize = 64 * 1024 * 1024;

/// Connections per worker so that all workers together serve at most `total`.
pub fn per_worker(total: usize, workers: usize) -> usize {
    total.div_ceil(workers.max(1)).max(1)
}

/// What the connection layer is given, from the settings.
pub struct ConnectionBudget {
    pub max_connections_per_worker: usize,
    pub header_timeout: Duration,
    pub keep_alive: Duration,
    /// How long a closing connection may take to shut down cleanly.
    pub disconnect_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    /// TLS handshakes in progress per worker: handshakes cost CPU, and a peer that opens
    /// connections and stalls them must not starve the others of it.
    pub max_handshakes_per_worker: usize,
}

impl ConnectionBudget {
    pub fn from_settings(s: &Settings, workers: usize) -> Self {
        let header = Duration::from_secs(s.header_timeout_seconds.max(1));
        Self {
            max_connections_per_worker: per_worker(s.max_connections, workers),
            header_timeout: header,
            keep_alive: Duration::from_secs(s.keep_alive_seconds),
            disconnect_timeout: Duration::from_secs(1),
            // A TLS handshake is part of "sending the request head": same budget.
            tls_handshake_timeout: header,
            max_handshakes_per_worker: per_worker(s.max_connections, workers).min(256),
        }
    }
}

/// Open connections per client address, for `max_connections_per_address`: one host must
/// not take the whole connection budget. Entries exist only while connections are open,
/// so the table is never larger than the connection cap.
#[derive(Clone)]
pub struct PerAddress {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    refused: Arc<std::sync::atomic::AtomicU64>,
    cap: usize,
}

/// One open connection of an address; dropped with the connection.
struct Held {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl PerAddress {
    pub fn new(cap: usize) -> Self {
        Self {
            open: Arc::default(),
            refused: Arc::default(),
            cap,
        }
    }

    /// Counts a new connection of `ip`; says whether it is over the cap.
    fn enter(&self, ip: IpAddr) -> (Held, bool) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        *n += 1;
        let over = self.cap > 0 && *n > self.cap;
        let held = Held {
            open: self.open.clone(),
            ip,
        };
        (held, over)
    }

    /// For `HttpServer::on_connect`, once the connection is accepted (and, with TLS, its
    /// handshake done): counts it for its address and closes it at once when the address
    /// already holds `cap` connections.
    pub fn on_connect(&self, conn: &dyn Any, ext: &mut Extensions) {
        use actix_web::rt::net::TcpStream;
        type Tls = actix_tls::accept::rustls_0_23::TlsStream<TcpStream>;
        let tcp = conn
            .downcast_ref::<TcpStream>()
            .or_else(|| conn.downcast_ref::<Tls>().map(|t| t.get_ref().0));
        let Some(tcp) = tcp else { return };
        let Ok(peer) = tcp.peer_addr() else { return };
        let (held, over) = self.enter(peer.ip());
        if over {
            let refused = self
                .refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            if refused == 1 || refused.is_multiple_of(1000) {
                tracing::warn!(address = %peer.ip(), refused, cap = self.cap, "connections per address capped");
            }
            // The HTTP layer then reads end-of-stream and drops the connection.
            let _ = socket2::SockRef::from(tcp).shutdown(std::net::Shutdown::Both);
        }
        ext.insert(held);
    }
}

/// A body of one of these types is a sync bundle (gzip, or a multipart form carrying one):
/// its size is the bundle routes' business, only its pace is watched here.
fn is_bundle_upload(req: &ServiceRequest) -> bool {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    [
        "application/gzip",
        "application/octet-stream",
        "multipart/form-data",
    ]
    .iter()
    .any(|t| ct.starts_with(t))
}

/// The body limit of a route, or `None` when the route streams its body itself.
pub fn body_limit(path: &str, bundle_upload: bool, s: &Settings) -> Option<usize> {
    if path == "/login" || path == "/oauth/token" {
        // Unauthenticated forms: a few short fields.
        Some(s.form_limit_bytes)
    } else if path.starts_with("/agent/") {
        // The agent's body is signed and read whole, whatever its declared type.
        Some(s.body_limit_bytes)
    } else if bundle_upload {
        None
    } else {
        Some(s.body_limit_bytes)
    }
}

/// How a body's pace is judged: a whole-body deadline for bodies read into memory, an
/// idle deadline (no byte for that long) for streamed uploads, which may be large.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pace {
    Whole,
    Idle,
}

/// The request body with the route's size limit and read deadline applied while it
/// streams, so no extractor can wait on a trickling client or buffer past the limit.
struct Guarded {
    inner: Payload,
    limit: Option<usize>,
    seen: usize,
    timeout: Duration,
    pace: Pace,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Stream for Guarded {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.seen = this.seen.saturating_add(chunk.len());
                if this.limit.is_some_and(|max| this.seen > max) {
                    return Poll::Ready(Some(Err(PayloadError::Overflow)));
                }
                if this.pace == Pace::Idle {
                    let next = tokio::time::Instant::now() + this.timeout;
                    this.deadline.as_mut().reset(next);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(timed_out()))),
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

fn timed_out() -> PayloadError {
    PayloadError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "request body not received in time",
    ))
}

/// Whether a payload error is the read deadline passing.
pub fn is_timeout(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
}

/// The contract's answer to a body that could not be read: too large (413), too slow
/// (408), or broken (400).
pub fn payload_error(e: &PayloadError) -> AppError {
    match e {
        PayloadError::Overflow => too_large(None),
        e if is_timeout(e) => request_timeout(),
        other => AppError::bad_request(format!("Request body could not be read: {other}")),
    }
}

pub fn too_large(limit: Option<usize>) -> AppError {
    let message = match limit {
        Some(n) => format!("Request body is larger than {n} bytes."),
        None => "Request body is larger than this route accepts.".to_string(),
    };
    AppError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
}

/// Maps a form extractor's error: size and pace as for any body, the rest a 400.
pub fn form_error(e: actix_web::error::UrlencodedError) -> AppError {
    use actix_web::error::UrlencodedError as U;
    match e {
        U::Overflow { .. } => too_large(None),
        U::Payload(p) => payload_error(&p),
        other => AppError::bad_request(other.to_string()),
    }
}

pub fn request_timeout() -> AppError {
    AppError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "The request body did not arrive in time.",
    )
}

/// Answers an error in the shape the path speaks: JSON for machines, a page for people.
pub fn refuse(req: ServiceRequest, err: AppError) -> ServiceResponse<BoxBody> {
    let res = if api::is_machine_path(req.path()) {
        err.error_response()
    } else {
        PageError::App(err).error_response()
    };
    req.into_response(res)
}

/// Middleware: applies the route's body limit (at once from `Content-Length`, else while
/// the body streams) and the body read deadline.
pub async fn guard_bodies(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(state) = req.app_data::<State>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let settings = &state.settings;
    let bundle = is_bundle_upload(&req);
    let limit = body_limit(req.path(), bundle, settings);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let (Some(max), Some(len)) = (limit, declared) {
        if len > max as u64 {
            return Ok(refuse(req, too_large(Some(max))));
        }
    }
    if declared == Some(0) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let timeout = Duration::from_secs(settings.body_timeout_seconds.max(1));
    let (http_req, payload) = req.into_parts();
    let guarded = Guarded {
        inner: payload,
        limit,
        seen: 0,
        timeout,
        pace: if bundle { Pace::Idle } else { Pace::Whole },
        deadline: Box::pin(tokio::time::sleep(timeout)),
    };
    let req = ServiceRequest::from_parts(
        http_req,
        Payload::Stream {
            payload: Box::pin(guarded),
        },
    );
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_shared_between_workers() {
        assert_eq!(per_worker(1024, 2), 512);
        assert_eq!(per_worker(5, 2), 3);
        assert_eq!(per_worker(0, 2), 1);
        assert_eq!(per_worker(10, 0), 10);
    }

    #[test]
    fn per_address_count_follows_open_connections() {
        let table = PerAddress::new(2);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let (a, over_a) = table.enter(ip);
        let (b, over_b) = table.enter(ip);
        let (c, over_c) = table.enter(ip);
        assert_eq!((over_a, over_b, over_c), (false, false, true));
        assert!(
            !table.enter([10, 0, 0, 2].into()).1,
            "other addresses unaffected"
        );
        drop((a, b, c));
        assert!(
            table.open.lock().unwrap().get(&ip).is_none(),
            "closed ones leave"
        );
        assert!(!table.enter(ip).1);
    }

    #[test]
    fn unauthenticated_forms_get_the_small_limit() {
        let s = Settings::default();
        assert_eq!(body_limit("/login", false, &s), Some(s.form_limit_bytes));
        assert_eq!(
            body_limit("/oauth/token", true, &s),
            Some(s.form_limit_bytes)
        );
        assert_eq!(
            body_limit("/agent/v1/usage", true, &s),
            Some(s.body_limit_bytes)
        );
        assert_eq!(body_limit("/api/v1/bundles/import", true, &s), None);
        assert_eq!(
            body_limit("/api/v1/accounts", false, &s),
            Some(s.body_limit_bytes)
        );
    }
}
