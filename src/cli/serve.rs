//! `satellite serve`: prepare the data dir on first start, then serve HTTPS.

use super::{CliError, Output};
use crate::clock::Clock;
use crate::config::{ServerRole, Settings};
use crate::crypto::{password, secrets, tls, AuthorityKey};
use crate::domain::Role;
use crate::service::access;
use crate::service::users as service_users;
use crate::store::{users, Store};
use crate::web::{self, throttle, AppState};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// HOST:PORT to listen on (port 0 picks a free one). Env: SATELLITE_LISTEN
    #[arg(long)]
    pub listen: Option<String>,
    /// satellite (on-prem, default) or upstream (the account-owning authority).
    #[arg(long, value_enum)]
    pub role: Option<ServerRole>,
    /// Where sync bundles are exchanged by hand. Env: SATELLITE_BUNDLE_DIR
    #[arg(long)]
    pub bundle_dir: Option<PathBuf>,
    /// Serve plain HTTP (only behind a TLS-terminating proxy or for local experiments).
    #[arg(long)]
    pub insecure_http: bool,
    /// HOST:PORT of a plain-HTTP listener serving only /metrics, without auth.
    /// Env: SATELLITE_METRICS_LISTEN
    #[arg(long)]
    pub metrics_listen: Option<String>,
    /// Log lines on stderr as `text` or `json` (one object per line). Env: SATELLITE_LOG_FORMAT
    #[arg(long, value_enum)]
    pub log_format: Option<crate::config::LogFormat>,
}

/// Text for people, or JSON lines for collectors: each one object with `timestamp`,
/// `level`, `fields.message`'s text lifted to `message`, and the request span's
/// `request_id` lifted to the top.
pub fn init_logging(filter: &str, format: crate::config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = match format {
        crate::config::LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .try_init(),
        crate::config::LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false)
            .try_init(),
    };
}

/// Creates the `admin` user on first start; returns its one-time password.
fn ensure_initial_admin(store: &Store, now: i64) -> Result<Option<String>, CliError> {
    if store.read_blocking(users::count)? > 0 {
        return Ok(None);
    }
    let generated = secrets::random_password();
    let hash = password::hash(&generated)?;
    store.write_blocking(|tx| {
        let new = service_users::NewUser {
            username: "admin",
            password_hash: &hash,
            role: Role::SystemAdmin,
            account: None,
            must_change_password: true,
        };
        let cap = access::local_operator("system");
        service_users::create(tx, &cap, now, new).map_err(crate::store::StoreError::from)
    })?;
    Ok(Some(generated))
}

fn public_url(addr: SocketAddr, tls: bool) -> String {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}:{}/", addr.port())
}

/// Waits for SIGTERM or SIGINT, then stops accepting and lets requests in flight finish.
async fn stop_on_signal(servers: Vec<actix_web::dev::ServerHandle>) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("stop requested: no new connections; finishing requests in flight");
    for server in servers {
        server.stop(true).await;
    }
}

pub fn run(settings: Settings, out: &Output) -> Result<(), CliError> {
    init_logging(&settings.log, settings.log_format);
    let data_dir = &settings.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|e| {
        CliError(format!(
            "cannot create data dir {}: {e}; pass --data-dir or set SATELLITE_DATA_DIR",
            data_dir.display()
        ))
    })?;
    for sub in ["outbox", "inbox", "archive", "rejected"] {
        let dir = settings.bundle_dir.join(sub);
        std::fs::create_dir_all(&dir)
            .map_err(|e| CliError(format!("cannot create {}: {e}", dir.display())))?;
    }
    // Held while serving, so `restore` refuses this data dir until the server stops.
    let _data_dir_lock = crate::backup::DataDirLock::acquire(data_dir).map_err(|e| match e {
        crate::backup::BackupError::InUse(dir) => CliError(format!(
            "another server already uses {dir}; pass another --data-dir"
        )),
        other => CliError::from_display(other),
    })?;
    let backup_schedule = settings
        .backup_cron
        .as_deref()
        .map(crate::domain::schedule::parse)
        .transpose()
        .map_err(|e| CliError(format!("backup_cron: {e}")))?;
    let clock = Clock::with_offset(settings.clock_offset_seconds);
    let store = Store::open_with(&settings.db_path(), settings.ledger_enabled)?;
    let authority = Arc::new(AuthorityKey::load_or_create(data_dir)?);
    let tls_config = if settings.insecure_http {
        None
    } else {
        let identity = tls::Identity {
            authority_id: authority.authority_id(),
            valid_days: settings.tls_cert_days,
            now: clock.unix(),
        };
        tls::ensure_certificate(data_dir, &identity)?;
        tls::warn_if_expiring(data_dir, clock.unix());
        Some(tls::server_config(data_dir)?)
    };
    let admin_password = ensure_initial_admin(&store, clock.unix())?;
    let role = settings.role.as_str();
    let bundle_dir = std::fs::canonicalize(&settings.bundle_dir)
        .unwrap_or_else(|_| settings.bundle_dir.clone())
        .display()
        .to_string();
    // Recorded so that CLI commands on this data dir act as this server does.
    store.write_blocking(|tx| {
        crate::store::sync_state::set_meta(tx, "role", role)?;
        crate::store::sync_state::set_meta(tx, "bundle_dir", &bundle_dir)
    })?;
    let listener = TcpListener::bind(&settings.listen).map_err(|e| {
        CliError(format!(
            "cannot listen on {}: {e}; pass --listen HOST:PORT",
            settings.listen
        ))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError(format!("cannot read listening address: {e}")))?;
    let url = public_url(addr, tls_config.is_some());
    let mut lines = vec![("url", url.clone())];
    if let Some(pw) = &admin_password {
        lines.push(("admin_password", pw.clone()));
    }
    out.emit(&lines);
    let banner = match &admin_password {
        Some(_) => format!(
            "satellite ({} role) is up. Log in at {url} as 'admin' with the admin_password \
             above (shown once; you will choose a new one).",
            settings.role.as_str()
        ),
        None => format!("satellite ({} role) is up at {url}", settings.role.as_str()),
    };
    // In JSON every stderr line is a log object, so the banner is one too.
    match settings.log_format {
        crate::config::LogFormat::Text => eprintln!("{banner}"),
        crate::config::LogFormat::Json => tracing::info!("{banner}"),
    }
    tracing::info!(authority_id = authority.authority_id(), role = settings.role.as_str(), %url, "starting");
    crate::web::auth::init_cookie_names(authority.authority_id());
    let sync = crate::sync::SyncContext::new(store.clone(), authority.clone(), &settings, clock);
    let metrics = Arc::new(
        crate::web::metrics::Metrics::new()
            .map_err(|e| CliError(format!("cannot set up metrics: {e}")))?,
    );
    let observed = metrics.clone();
    store.observe_batches(Box::new(move |jobs| observed.observe_batch(jobs)));
    // The id scheme is made once by a migration: known here, kept for the server's life.
    let id_scheme = store
        .read_blocking(crate::store::instance_ids::scheme)
        .map_err(|e| CliError(format!("cannot read the instance id scheme: {e}")))?;
    let state = AppState {
        agent_keys: crate::web::agent::keys::KeyCache::new(id_scheme),
        store,
        settings: settings.clone(),
        authority,
        clock,
        login_throttle: throttle::LoginThrottle::from_settings(&settings),
        rates: throttle::RateLimits::from_settings(&settings),
        sync: sync.clone(),
        signatures: Default::default(),
        alert_badge: Default::default(),
        metrics: metrics.clone(),
        pending_imports: crate::web::pending_imports::PendingImports::new(
            settings.pending_previews_max,
            std::time::Duration::from_secs(settings.pending_preview_ttl_seconds),
        ),
        shown_once: Default::default(),
    };
    let metrics_listener = settings
        .metrics_listen
        .as_deref()
        .map(|addr| {
            TcpListener::bind(addr).map_err(|e| {
                CliError(format!(
                    "cannot listen on {addr} for metrics: {e}; pass --metrics-listen HOST:PORT"
                ))
            })
        })
        .transpose()?;
    actix_web::rt::System::new().block_on(async move {
        actix_web::rt::spawn(crate::jobs::run_timers(state.store.clone(), state.clock));
        if state.store.ledger_enabled() {
            actix_web::rt::spawn(crate::jobs::run_ledger_signing(
                state.store.clone(),
                state.authority.clone(),
                state.clock,
            ));
        }
        actix_web::rt::spawn(crate::notify::run(
            state.store.clone(),
            state.clock,
            settings.clone(),
        ));
        if let Some(schedule) = backup_schedule {
            actix_web::rt::spawn(crate::backup::run_scheduled(
                state.store.clone(),
                state.clock,
                settings.data_dir.clone(),
                settings.backup_dir(),
                schedule,
                settings.backup_keep,
            ));
        }
        if settings.role == ServerRole::Satellite {
            actix_web::rt::spawn(crate::sync::scheduler::run_schedules(sync.clone()));
        }
        if !settings.insecure_http {
            // Once a day: the warning keeps showing in the log until the certificate is renewed.
            let (dir, clock) = (settings.data_dir.clone(), state.clock);
            actix_web::rt::spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(86_400));
                every.tick().await;
                loop {
                    every.tick().await;
                    tls::warn_if_expiring(&dir, clock.unix());
                }
            });
        }
        if settings.inbox_scan_seconds > 0 {
            let every = std::time::Duration::from_secs(settings.inbox_scan_seconds);
            actix_web::rt::spawn(crate::sync::scheduler::watch_inbox(sync, every));
        }
        let state = actix_web::web::Data::new(state);
        actix_web::rt::spawn(crate::web::agent::keys::preload(state.clone()));
        let mut handles = vec![];
        if let Some(l) = metrics_listener {
            let metrics = web::serve_metrics(state.clone(), l)
                .map_err(|e| CliError(format!("cannot start metrics listener: {e}")))?;
            handles.push(metrics.handle());
            actix_web::rt::spawn(metrics);
        }
        let server = web::serve(state, listener, tls_config)
            .map_err(|e| CliError(format!("cannot start server: {e}")))?;
        handles.push(server.handle());
        actix_web::rt::spawn(stop_on_signal(handles));
        server
            .await
            .map_err(|e| CliError(format!("server stopped: {e}")))?;
        // The app state (and with it the database writer) is dropped with the server:
        // queued writes are committed before the writer thread ends.
        tracing::info!("stopped");
        Ok(())
    })
}
