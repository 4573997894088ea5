//! `/metrics` in the Prometheus text format (CONTRACT section 7). Request counters and
//! latencies are recorded by a middleware as responses leave; state that lives in the
//! database (last sync per account, pool shortfalls, file sizes) is read at scrape time,
//! so nothing on the hot path writes a gauge.

use super::{AppError, State};
use crate::service::accounts as service_accounts;
use crate::store::{licenses, sync_state, Store};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use sha2::{Digest, Sha256};
use std::time::Instant;

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    registrations: IntCounter,
    usage_reports: IntCounter,
    agent_key_reads: IntCounter,
    /// `satellite_agent_reply_signatures_total`, its `new` and `kept` series.
    replies_signed: [IntCounter; 2],
    sync_last_success: GaugeVec,
    pool_shortfall: IntGaugeVec,
    database_bytes: IntGauge,
    wal_bytes: IntGauge,
    rate_limited: IntCounterVec,
    tls_expiry: IntGauge,
    batch_size: prometheus::Histogram,
    sync_results: IntGaugeVec,
    sqlite: super::sqlite_metrics::SqliteMetrics,
}

/// Latency buckets from 1 ms to 10 s: agent calls answer in milliseconds, bundle imports
/// in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "satellite_http_requests_total",
                "HTTP requests answered, by route and status.",
            ),
            &["route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "satellite_http_request_duration_seconds",
                "Time from request to response, by route.",
            )
            .buckets(BUCKETS.to_vec()),
            &["route"],
        )?;
        let registrations = IntCounter::new(
            "satellite_registrations_total",
            "Product registrations accepted (first registrations, re-registrations and moves).",
        )?;
        let usage_reports = IntCounter::new(
            "satellite_usage_reports_total",
            "Usage reports answered with 200.",
        )?;
        let sync_last_success = GaugeVec::new(
            Opts::new(
                "satellite_sync_last_success_timestamp_seconds",
                "Unix time of each linked account's last successful sync.",
            ),
            &["account"],
        )?;
        let pool_shortfall = IntGaugeVec::new(
            Opts::new(
                "satellite_pool_shortfall",
                "Units of a license's own tag's demand that nothing covers.",
            ),
            &["account", "virtual_account", "tag"],
        )?;
        let database_bytes = IntGauge::new(
            "satellite_database_bytes",
            "Size of the SQLite database file.",
        )?;
        let wal_bytes = IntGauge::new(
            "satellite_database_wal_bytes",
            "Size of the SQLite write-ahead log.",
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "satellite_rate_limited_total",
                "Requests refused with 429 by a rate limit or the login backoff, by route: \
                 a steady rise is someone guessing tokens, secrets or passwords.",
            ),
            &["route"],
        )?;
        let tls_expiry = IntGauge::new(
            "satellite_tls_certificate_expiry_timestamp_seconds",
            "When the serving TLS certificate ends (unix time); alert well before it.",
        )?;
        let batch_size = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "satellite_group_commit_batch_size",
                "Write jobs committed together in one transaction by the group-commit writer.",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )?;
        let sync_results = IntGaugeVec::new(
            Opts::new(
                "satellite_sync_results",
                "Bundles in the sync history, by direction (in, out) and result.",
            ),
            &["direction", "result"],
        )?;
        registry.register(Box::new(batch_size.clone()))?;
        registry.register(Box::new(sync_results.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(tls_expiry.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(registrations.clone()))?;
        registry.register(Box::new(usage_reports.clone()))?;
        let agent_key_reads = IntCounter::new(
            "satellite_agent_key_reads_total",
            "Signed agent requests that read their instance's key from the database: not \
             held in memory (after a start until the keys are loaded; unknown or removed \
             instances), or re-read after a check failed against the key held.",
        )?;
        registry.register(Box::new(agent_key_reads.clone()))?;
        let reply_signatures = IntCounterVec::new(
            Opts::new(
                "satellite_agent_reply_signatures_total",
                "Signed agent replies: `new` when the body was signed, `kept` when the same \
                 body was signed a moment before and its signature is the one kept.",
            ),
            &["signature"],
        )?;
        registry.register(Box::new(reply_signatures.clone()))?;
        registry.register(Box::new(sync_last_success.clone()))?;
        registry.register(Box::new(pool_shortfall.clone()))?;
        registry.register(Box::new(database_bytes.clone()))?;
        registry.register(Box::new(wal_bytes.clone()))?;
        let sqlite = super::sqlite_metrics::SqliteMetrics::register(&registry)?;
        Ok(Metrics {
            sqlite,
            registry,
            http_requests,
            http_duration,
            registrations,
            usage_reports,
            agent_key_reads,
            replies_signed: [
                reply_signatures.with_label_values(&["new"]),
                reply_signatures.with_label_values(&["kept"]),
            ],
            sync_last_success,
            pool_shortfall,
            database_bytes,
            wal_bytes,
            rate_limited,
            tls_expiry,
            batch_size,
            sync_results,
        })
    }

    /// A signed request's instance key was read from the database (see web/agent/keys.rs).
    pub fn agent_key_read(&self) {
        self.agent_key_reads.inc();
    }

    /// An agent reply was signed: `kept` when its signature was kept from the same body.
    pub fn reply_signed(&self, kept: bool) {
        self.replies_signed[usize::from(kept)].inc();
    }

    /// One group-commit batch of `jobs` write jobs (called by the writer thread).
    pub fn observe_batch(&self, jobs: usize) {
        self.batch_size.observe(jobs as f64);
    }

    /// Counts one answered request. `route` is the matched pattern (never the raw path, so
    /// ids and names do not become label values).
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        self.http_requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[route])
            .observe(seconds);
        match (route, status) {
            ("/agent/v1/register", 201) => self.registrations.inc(),
            ("/agent/v1/usage", 200) => self.usage_reports.inc(),
            (_, 429) => self.rate_limited.with_label_values(&[route]).inc(),
            _ => {}
        }
    }

    /// Reads what lives in the database and renders every metric.
    fn render(&self, snapshot: &Snapshot) -> Result<String, prometheus::Error> {
        self.sync_last_success.reset();
        for (account, at) in &snapshot.last_syncs {
            self.sync_last_success
                .with_label_values(&[account])
                .set(*at as f64);
        }
        self.pool_shortfall.reset();
        for (account, va, tag, short) in &snapshot.shortfalls {
            self.pool_shortfall
                .with_label_values(&[account, va, tag])
                .set(*short);
        }
        self.sync_results.reset();
        for (direction, result, n) in &snapshot.sync_results {
            self.sync_results
                .with_label_values(&[direction, result])
                .set(*n);
        }
        self.database_bytes.set(snapshot.database_bytes);
        if let Some(at) = snapshot.tls_expires_at {
            self.tls_expiry.set(at);
        }
        self.wal_bytes.set(snapshot.wal_bytes);
        self.sqlite.update(snapshot.sqlite);
        let mut out = vec![];
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// What a scrape reads from the database.
struct Snapshot {
    last_syncs: Vec<(String, i64)>,
    shortfalls: Vec<(String, String, String, i64)>,
    database_bytes: i64,
    wal_bytes: i64,
    tls_expires_at: Option<i64>,
    sync_results: Vec<(String, String, i64)>,
    sqlite: crate::store::stats::StatsSnapshot,
}

fn file_size(path: &std::path::Path) -> i64 {
    std::fs::metadata(path).map_or(0, |m| m.len() as i64)
}

async fn snapshot(
    store: &Store,
    data_dir: std::path::PathBuf,
    today: NaiveDate,
) -> Result<Snapshot, AppError> {
    let db = store.path().to_owned();
    let (last_syncs, shortfalls, tls_expires_at, sync_results) = store
        .read(move |conn| {
            // Read here, off the executor: it is a file.
            let tls_expires_at = crate::crypto::tls::certificate_expires_at(&data_dir);
            let last_syncs = sync_state::links(conn)?
                .into_iter()
                .filter_map(|l| l.last_sync.map(|at| (l.account, at)))
                .collect();
            // Scrapes see every account, as a system admin does.
            let everything = crate::service::access::Visible::EVERYTHING;
            let mut shortfalls = vec![];
            for (account, va) in service_accounts::vas_with_licenses(conn, everything)? {
                let (_, evaluation) = licenses::evaluate(conn, va.id, today)?;
                for (tag, short) in evaluation.shortfall {
                    shortfalls.push((account.clone(), va.name.clone(), tag, short));
                }
            }
            let sync_results = sync_state::result_counts(conn)?;
            Ok((last_syncs, shortfalls, tls_expires_at, sync_results))
        })
        .await?;
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    Ok(Snapshot {
        last_syncs,
        shortfalls,
        database_bytes: file_size(&db),
        wal_bytes: file_size(std::path::Path::new(&wal)),
        tls_expires_at,
        sync_results,
        sqlite: store.sqlite_stats(),
    })
}

async fn scrape(state: &State) -> Result<HttpResponse, AppError> {
    let today = state.clock.now().date_naive();
    let snap = snapshot(&state.store, state.settings.data_dir.clone(), today).await?;
    let text = state.metrics.render(&snap).map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

/// Digests compared instead of the secrets themselves, so the comparison's timing says
/// nothing about how much of a guess was right.
fn bearer_matches(req: &HttpRequest, token: &str) -> bool {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|g| Sha256::digest(g.as_bytes()) == Sha256::digest(token.as_bytes()))
}

/// `/metrics` on the main listener: only with the `metrics_token` bearer.
async fn metrics_with_token(req: HttpRequest, state: State) -> Result<HttpResponse, AppError> {
    match &state.settings.metrics_token {
        Some(token) if bearer_matches(&req, token) => scrape(&state).await,
        _ => Err(AppError::unauthorized(
            "unauthorized",
            "GET /metrics needs Authorization: Bearer <metrics_token>.",
        )),
    }
}

/// `/metrics` on the `--metrics-listen` listener, which serves nothing else.
pub async fn metrics_open(state: State) -> Result<HttpResponse, AppError> {
    scrape(&state).await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics_with_token));
}

/// A route pattern as a label value: `{a}` written `:a`, since braces inside label values
/// trip up more than one text-format parser.
fn route_label(pattern: &str) -> String {
    pattern.replace('{', ":").replace('}', "")
}

/// Records every answered request, by matched route and status.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<State>().map(|s| s.metrics.clone());
    let route = req
        .match_pattern()
        .map_or_else(|| "unmatched".to_string(), |p| route_label(&p));
    let res = next.call(req).await?;
    if let Some(m) = metrics {
        m.observe(
            &route,
            res.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    Ok(res)
}
