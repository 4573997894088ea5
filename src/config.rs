//! Settings, layered: defaults < TOML file < `SATELLITE_*` environment < command-line flags.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ServerRole {
    Satellite,
    Upstream,
}

impl ServerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerRole::Satellite => "satellite",
            ServerRole::Upstream => "upstream",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name} is not valid: {message}")]
    Env { name: String, message: String },
}

/// The settings in force.
#[derive(Clone, Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: String,
    pub role: ServerRole,
    pub bundle_dir: PathBuf,
    pub insecure_http: bool,
    /// `tracing` filter, e.g. `info` or `satellite=debug`.
    pub log: String,
    /// Shifts the server's clock; only for exercising timers in tests and drills.
    pub clock_offset_seconds: i64,
    /// HTTP(S) proxy for connected sync, e.g. `http://proxy.example:3128`.
    pub upstream_proxy: Option<String>,
    /// Days without a sync before the `sync_overdue` alert.
    pub sync_overdue_days: i64,
    /// How often the inbox/ folder is scanned for bundles, in seconds (0 turns it off).
    pub inbox_scan_seconds: u64,
    /// Open connections served at once (all workers together); more wait in the backlog.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (slowloris guard).
    pub header_timeout_seconds: u64,
    /// Seconds an idle keep-alive connection stays open.
    pub keep_alive_seconds: u64,
    /// Seconds a client has to send a request's whole body (slow-body guard).
    pub body_timeout_seconds: u64,
    /// Largest JSON body (admin API, agent protocol, page forms).
    pub body_limit_bytes: usize,
    /// Largest body of the unauthenticated forms: `/login` and `/oauth/token`.
    pub form_limit_bytes: usize,
    /// Login attempts per minute per address.
    pub rate_login_per_minute: u32,
    /// `/agent/v1/register` calls per minute per address.
    pub rate_register_per_minute: u32,
    /// `/oauth/token` calls per minute per address.
    pub rate_oauth_per_minute: u32,
    /// `/sync/v1/exchange` calls per minute per address.
    pub rate_exchange_per_minute: u32,
    /// Attempts per minute per credential (a registration token, an API client id).
    pub rate_credential_per_minute: u32,
    /// Failed logins per (address, username) before backoff starts.
    pub login_free_failures: u32,
    /// Longest wait the login backoff imposes.
    pub login_backoff_max_seconds: u64,
    /// A session unused this long ends (on top of its absolute lifetime).
    pub session_idle_minutes: i64,
    /// Validity of the self-signed certificate made at first start.
    pub tls_cert_days: i64,
    /// Open connections one address may hold; more are closed at once (0 = no cap).
    pub max_connections_per_address: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            listen: "127.0.0.1:8443".into(),
            role: ServerRole::Satellite,
            bundle_dir: PathBuf::from("./sync-bundles"),
            insecure_http: false,
            log: "info".into(),
            clock_offset_seconds: 0,
            upstream_proxy: None,
            sync_overdue_days: 30,
            inbox_scan_seconds: 5,
            max_connections: 1024,
            header_timeout_seconds: 5,
            keep_alive_seconds: 5,
            body_timeout_seconds: 30,
            body_limit_bytes: 256 * 1024,
            form_limit_bytes: 16 * 1024,
            rate_login_per_minute: 30,
            rate_register_per_minute: 300,
            rate_oauth_per_minute: 60,
            rate_exchange_per_minute: 30,
            rate_credential_per_minute: 300,
            login_free_failures: 5,
            login_backoff_max_seconds: 900,
            session_idle_minutes: 30,
            tls_cert_days: 730,
            max_connections_per_address: 256,
        }
    }
}

/// One layer of settings: every field optional, a higher layer wins field by field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsLayer {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub role: Option<ServerRole>,
    pub bundle_dir: Option<PathBuf>,
    pub insecure_http: Option<bool>,
    pub log: Option<String>,
    pub clock_offset_seconds: Option<i64>,
    pub upstream_proxy: Option<String>,
    pub sync_overdue_days: Option<i64>,
    pub inbox_scan_seconds: Option<u64>,
    pub max_connections: Option<usize>,
    pub header_timeout_seconds: Option<u64>,
    pub keep_alive_seconds: Option<u64>,
    pub body_timeout_seconds: Option<u64>,
    pub body_limit_bytes: Option<usize>,
    pub form_limit_bytes: Option<usize>,
    pub rate_login_per_minute: Option<u32>,
    pub rate_register_per_minute: Option<u32>,
    pub rate_oauth_per_minute: Option<u32>,
    pub rate_exchange_per_minute: Option<u32>,
    pub rate_credential_per_minute: Option<u32>,
    pub login_free_failures: Option<u32>,
    pub login_backoff_max_seconds: Option<u64>,
    pub session_idle_minutes: Option<i64>,
    pub tls_cert_days: Option<i64>,
    pub max_connections_per_address: Option<usize>,
}

impl SettingsLayer {
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Reads `SATELLITE_*` variables through `var` so tests can pass their own environment.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        fn parse<T: std::str::FromStr>(name: &str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                name: name.into(),
                message: e.to_string(),
            })
        }
        let role = match var("SATELLITE_ROLE") {
            None => None,
            Some(v) => Some(match v.as_str() {
                "satellite" => ServerRole::Satellite,
                "upstream" => ServerRole::Upstream,
                _ => {
                    return Err(ConfigError::Env {
                        name: "SATELLITE_ROLE".into(),
                        message: "expected satellite or upstream".into(),
                    })
                }
            }),
        };
        Ok(Self {
            data_dir: var("SATELLITE_DATA_DIR").map(PathBuf::from),
            listen: var("SATELLITE_LISTEN"),
            role,
            bundle_dir: var("SATELLITE_BUNDLE_DIR").map(PathBuf::from),
            insecure_http: var("SATELLITE_INSECURE_HTTP")
                .map(|v| parse("SATELLITE_INSECURE_HTTP", v))
                .transpose()?,
            log: var("SATELLITE_LOG"),
            clock_offset_seconds: var("SATELLITE_CLOCK_OFFSET_SECONDS")
                .map(|v| parse("SATELLITE_CLOCK_OFFSET_SECONDS", v))
                .transpose()?,
            upstream_proxy: var("SATELLITE_UPSTREAM_PROXY"),
            sync_overdue_days: var("SATELLITE_SYNC_OVERDUE_DAYS")
                .map(|v| parse("SATELLITE_SYNC_OVERDUE_DAYS", v))
                .transpose()?,
            inbox_scan_seconds: var("SATELLITE_INBOX_SCAN_SECONDS")
                .map(|v| parse("SATELLITE_INBOX_SCAN_SECONDS", v))
                .transpose()?,
            max_connections: var("SATELLITE_MAX_CONNECTIONS")
                .map(|v| parse("SATELLITE_MAX_CONNECTIONS", v))
                .transpose()?,
            header_timeout_seconds: var("SATELLITE_HEADER_TIMEOUT_SECONDS")
                .map(|v| parse("SATELLITE_HEADER_TIMEOUT_SECONDS", v))
                .transpose()?,
            keep_alive_seconds: var("SATELLITE_KEEP_ALIVE_SECONDS")
                .map(|v| parse("SATELLITE_KEEP_ALIVE_SECONDS", v))
                .transpose()?,
            body_timeout_seconds: var("SATELLITE_BODY_TIMEOUT_SECONDS")
                .map(|v| parse("SATELLITE_BODY_TIMEOUT_SECONDS", v))
                .transpose()?,
            body_limit_bytes: var("SATELLITE_BODY_LIMIT_BYTES")
                .map(|v| parse("SATELLITE_BODY_LIMIT_BYTES", v))
                .transpose()?,
            form_limit_bytes: var("SATELLITE_FORM_LIMIT_BYTES")
                .map(|v| parse("SATELLITE_FORM_LIMIT_BYTES", v))
                .transpose()?,
            rate_login_per_minute: var("SATELLITE_RATE_LOGIN_PER_MINUTE")
                .map(|v| parse("SATELLITE_RATE_LOGIN_PER_MINUTE", v))
                .transpose()?,
            rate_register_per_minute: var("SATELLITE_RATE_REGISTER_PER_MINUTE")
                .map(|v| parse("SATELLITE_RATE_REGISTER_PER_MINUTE", v))
                .transpose()?,
            rate_oauth_per_minute: var("SATELLITE_RATE_OAUTH_PER_MINUTE")
                .map(|v| parse("SATELLITE_RATE_OAUTH_PER_MINUTE", v))
                .transpose()?,
            rate_exchange_per_minute: var("SATELLITE_RATE_EXCHANGE_PER_MINUTE")
                .map(|v| parse("SATELLITE_RATE_EXCHANGE_PER_MINUTE", v))
                .transpose()?,
            rate_credential_per_minute: var("SATELLITE_RATE_CREDENTIAL_PER_MINUTE")
                .map(|v| parse("SATELLITE_RATE_CREDENTIAL_PER_MINUTE", v))
                .transpose()?,
            login_free_failures: var("SATELLITE_LOGIN_FREE_FAILURES")
                .map(|v| parse("SATELLITE_LOGIN_FREE_FAILURES", v))
                .transpose()?,
            login_backoff_max_seconds: var("SATELLITE_LOGIN_BACKOFF_MAX_SECONDS")
                .map(|v| parse("SATELLITE_LOGIN_BACKOFF_MAX_SECONDS", v))
                .transpose()?,
            session_idle_minutes: var("SATELLITE_SESSION_IDLE_MINUTES")
                .map(|v| parse("SATELLITE_SESSION_IDLE_MINUTES", v))
                .transpose()?,
            tls_cert_days: var("SATELLITE_TLS_CERT_DAYS")
                .map(|v| parse("SATELLITE_TLS_CERT_DAYS", v))
                .transpose()?,
            max_connections_per_address: var("SATELLITE_MAX_CONNECTIONS_PER_ADDRESS")
                .map(|v| parse("SATELLITE_MAX_CONNECTIONS_PER_ADDRESS", v))
                .transpose()?,
        })
    }

    fn apply(self, s: &mut Settings) {
        if let Some(v) = self.data_dir {
            s.data_dir = v;
        }
        if let Some(v) = self.listen {
            s.listen = v;
        }
        if let Some(v) = self.role {
            s.role = v;
        }
        if let Some(v) = self.bundle_dir {
            s.bundle_dir = v;
        }
        if let Some(v) = self.insecure_http {
            s.insecure_http = v;
        }
        if let Some(v) = self.log {
            s.log = v;
        }
        if let Some(v) = self.clock_offset_seconds {
            s.clock_offset_seconds = v;
        }
        if let Some(v) = self.upstream_proxy {
            s.upstream_proxy = Some(v);
        }
        if let Some(v) = self.sync_overdue_days {
            s.sync_overdue_days = v;
        }
        if let Some(v) = self.inbox_scan_seconds {
            s.inbox_scan_seconds = v;
        }
        if let Some(v) = self.max_connections {
            s.max_connections = v;
        }
        if let Some(v) = self.header_timeout_seconds {
            s.header_timeout_seconds = v;
        }
        if let Some(v) = self.keep_alive_seconds {
            s.keep_alive_seconds = v;
        }
        if let Some(v) = self.body_timeout_seconds {
            s.body_timeout_seconds = v;
        }
        if let Some(v) = self.body_limit_bytes {
            s.body_limit_bytes = v;
        }
        if let Some(v) = self.form_limit_bytes {
            s.form_limit_bytes = v;
        }
        if let Some(v) = self.rate_login_per_minute {
            s.rate_login_per_minute = v;
        }
        if let Some(v) = self.rate_register_per_minute {
            s.rate_register_per_minute = v;
        }
        if let Some(v) = self.rate_oauth_per_minute {
            s.rate_oauth_per_minute = v;
        }
        if let Some(v) = self.rate_exchange_per_minute {
            s.rate_exchange_per_minute = v;
        }
        if let Some(v) = self.rate_credential_per_minute {
            s.rate_credential_per_minute = v;
        }
        if let Some(v) = self.login_free_failures {
            s.login_free_failures = v;
        }
        if let Some(v) = self.login_backoff_max_seconds {
            s.login_backoff_max_seconds = v;
        }
        if let Some(v) = self.session_idle_minutes {
            s.session_idle_minutes = v;
        }
        if let Some(v) = self.tls_cert_days {
            s.tls_cert_days = v;
        }
        if let Some(v) = self.max_connections_per_address {
            s.max_connections_per_address = v;
        }
    }
}

impl Settings {
    /// Resolves the layers in order; each later layer overrides the earlier ones.
    pub fn resolve(file: SettingsLayer, env: SettingsLayer, flags: SettingsLayer) -> Settings {
        let mut s = Settings::default();
        file.apply(&mut s);
        env.apply(&mut s);
        flags.apply(&mut s);
        s
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("satellite.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_win_field_by_field() {
        let file: SettingsLayer = toml::from_str(
            "listen = \"0.0.0.0:9000\"\ndata_dir = \"/srv/sat\"\nrole = \"upstream\"",
        )
        .unwrap();
        let env = SettingsLayer::from_env(|k| {
            (k == "SATELLITE_LISTEN").then(|| "127.0.0.1:7000".to_string())
        })
        .unwrap();
        let flags = SettingsLayer {
            role: Some(ServerRole::Satellite),
            ..Default::default()
        };
        let s = Settings::resolve(file, env, flags);
        assert_eq!(s.listen, "127.0.0.1:7000");
        assert_eq!(s.data_dir, PathBuf::from("/srv/sat"));
        assert_eq!(s.role, ServerRole::Satellite);
        assert_eq!(s.bundle_dir, PathBuf::from("./sync-bundles"));
    }

    #[test]
    fn limits_are_settings_like_any_other() {
        let file: SettingsLayer =
            toml::from_str("body_limit_bytes = 1024\nrate_login_per_minute = 3").unwrap();
        let env = SettingsLayer::from_env(|k| {
            (k == "SATELLITE_RATE_LOGIN_PER_MINUTE").then(|| "7".to_string())
        })
        .unwrap();
        let s = Settings::resolve(file, env, SettingsLayer::default());
        assert_eq!(s.body_limit_bytes, 1024);
        assert_eq!(s.rate_login_per_minute, 7, "environment beats the file");
        assert_eq!(s.session_idle_minutes, 30);
        assert_eq!(s.tls_cert_days, 730);
        let bad = SettingsLayer::from_env(|k| {
            (k == "SATELLITE_MAX_CONNECTIONS").then(|| "many".to_string())
        });
        assert!(bad.is_err());
    }

    #[test]
    fn unknown_keys_and_bad_env_are_refused() {
        assert!(toml::from_str::<SettingsLayer>("lisen = \"x\"").is_err());
        let err = SettingsLayer::from_env(|k| (k == "SATELLITE_ROLE").then(|| "cloud".into()));
        assert!(err.is_err());
    }
}
