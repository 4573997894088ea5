//! Settings, layered: defaults < TOML file < `SATELLITE_*` environment < command-line flags.
//! Each setting is declared once below (name, type, default, what it is for); the struct,
//! its layer of optional values, the TOML keys and the `SATELLITE_X_Y` variables all come
//! from that one declaration.

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

/// A setting's value as read from an environment variable.
trait EnvValue: Sized {
    fn from_env(text: String) -> Result<Self, String>;
}

macro_rules! env_from_str {
    ($($t:ty),*) => {$(
        impl EnvValue for $t {
            fn from_env(text: String) -> Result<Self, String> {
                text.parse().map_err(|e| format!("{e}"))
            }
        }
    )*};
}
env_from_str!(String, PathBuf, bool, i64, u64, u32, usize);

impl EnvValue for ServerRole {
    fn from_env(text: String) -> Result<Self, String> {
        match text.as_str() {
            "satellite" => Ok(ServerRole::Satellite),
            "upstream" => Ok(ServerRole::Upstream),
            _ => Err("expected satellite or upstream".into()),
        }
    }
}

/// How `serve` writes its log lines to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl EnvValue for LogFormat {
    fn from_env(text: String) -> Result<Self, String> {
        match text.as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json".into()),
        }
    }
}

/// How the SMTP connection is secured: STARTTLS on a plain port, TLS from the first byte,
/// or not at all (a relay on localhost).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    Starttls,
    Tls,
    None,
}

impl EnvValue for SmtpTls {
    fn from_env(text: String) -> Result<Self, String> {
        match text.as_str() {
            "starttls" => Ok(SmtpTls::Starttls),
            "tls" => Ok(SmtpTls::Tls),
            "none" => Ok(SmtpTls::None),
            _ => Err("expected starttls, tls or none".into()),
        }
    }
}

fn env_value<T: EnvValue>(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<T>, ConfigError> {
    let key = format!("SATELLITE_{}", name.to_uppercase());
    var(&key)
        .map(|v| T::from_env(v).map_err(|message| ConfigError::Env { name: key, message }))
        .transpose()
}

macro_rules! settings {
    (
        with_default { $( $(#[doc = $doc:literal])* $name:ident : $ty:ty = $default:expr, )* }
        optional { $( $(#[doc = $odoc:literal])* $oname:ident : $oty:ty, )* }
    ) => {
        /// The settings in force.
        #[derive(Clone, Debug)]
        pub struct Settings {
            $( $(#[doc = $doc])* pub $name: $ty, )*
            $( $(#[doc = $odoc])* pub $oname: Option<$oty>, )*
        }

        impl Default for Settings {
            fn default() -> Self {
                Self {
                    $( $name: $default, )*
                    $( $oname: None, )*
                }
            }
        }

        /// One layer of settings: every field optional, a higher layer wins field by field.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct SettingsLayer {
            $( pub $name: Option<$ty>, )*
            $( pub $oname: Option<$oty>, )*
        }

        impl SettingsLayer {
            /// Reads `SATELLITE_*` variables through `var` so tests can pass their own
            /// environment.
            pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
                Ok(Self {
                    $( $name: env_value(&var, stringify!($name))?, )*
                    $( $oname: env_value(&var, stringify!($oname))?, )*
                })
            }

            fn apply(self, s: &mut Settings) {
                $( if let Some(v) = self.$name { s.$name = v; } )*
                $( if let Some(v) = self.$oname { s.$oname = Some(v); } )*
            }
        }
    };
}

settings! {
    with_default {
        data_dir: PathBuf = PathBuf::from("./data"),
        listen: String = "127.0.0.1:8443".into(),
        role: ServerRole = ServerRole::Satellite,
        bundle_dir: PathBuf = PathBuf::from("./sync-bundles"),
        insecure_http: bool = false,
        /// `tracing` filter, e.g. `info` or `satellite=debug`.
        log: String = "info".into(),
        /// Shifts the server's clock; only for exercising timers in tests and drills.
        clock_offset_seconds: i64 = 0,
        /// Days without a sync before the `sync_overdue` alert.
        sync_overdue_days: i64 = 30,
        /// How often the inbox/ folder is scanned for bundles, in seconds (0 turns it off).
        inbox_scan_seconds: u64 = 5,
        /// Open connections served at once (all workers together); more wait in the backlog.
        max_connections: usize = 1024,
        /// Seconds a client has to send a request's headers (slowloris guard).
        header_timeout_seconds: u64 = 5,
        /// Seconds an idle keep-alive connection stays open.
        keep_alive_seconds: u64 = 5,
        /// Seconds a client has to send a request's whole body (slow-body guard).
        body_timeout_seconds: u64 = 30,
        /// Largest JSON body (admin API, agent protocol, page forms).
        body_limit_bytes: usize = 256 * 1024,
        /// Largest body of the unauthenticated forms: `/login` and `/oauth/token`.
        form_limit_bytes: usize = 16 * 1024,
        /// Login attempts per minute per address.
        rate_login_per_minute: u32 = 30,
        /// `/agent/v1/register` calls per minute per address.
        rate_register_per_minute: u32 = 300,
        /// `/oauth/token` calls per minute per address.
        rate_oauth_per_minute: u32 = 60,
        /// `/sync/v1/exchange` calls per minute per address.
        rate_exchange_per_minute: u32 = 30,
        /// Attempts per minute per credential (a registration token, an API client id).
        rate_credential_per_minute: u32 = 300,
        /// Failed logins per (address, username) before backoff starts.
        login_free_failures: u32 = 5,
        /// Longest wait the login backoff imposes.
        login_backoff_max_seconds: u64 = 900,
        /// A session unused this long ends (on top of its absolute lifetime).
        session_idle_minutes: i64 = 30,
        /// Validity of the self-signed certificate made at first start.
        tls_cert_days: i64 = 730,
        /// Open connections one address may hold; more are closed at once (0 = no cap).
        max_connections_per_address: usize = 256,
        /// How many scheduled backups to keep; older ones are removed.
        backup_keep: usize = 7,
        /// Largest body `POST /sync/v1/exchange` reads (413 above it); held in memory
        /// until the bundle verifies, so an unauthenticated peer costs no disk.
        exchange_body_max_bytes: u64 = crate::sync::storage::Limits::default().exchange_body_max_bytes,
        /// Most rejected bundles kept in rejected/ (oldest dropped first; reasons kept).
        rejected_max_files: u64 = crate::sync::storage::Limits::default().rejected_max_files,
        /// Most bytes of rejected bundles kept in rejected/.
        rejected_max_bytes: u64 = crate::sync::storage::Limits::default().rejected_max_bytes,
        /// Largest bundle an import preview reads (API or page); held in memory only.
        preview_body_max_bytes: u64 = 64 << 20,
        /// Previews the Sync page holds for Apply or Discard at once (oldest dropped).
        pending_previews_max: usize = 4,
        /// How long a previewed upload waits for Apply or Discard, in seconds.
        pending_preview_ttl_seconds: u64 = 600,
        /// `text` or `json` (one object per line) log lines on stderr.
        log_format: LogFormat = LogFormat::Text,
        /// How often new alerts are looked for and due notifications sent, in seconds
        /// (0 turns notifications off). Alerts are sent within 60 s when this is under 60.
        notify_interval_seconds: u64 = 15,
        /// First retry delay of a failed notification; doubles per failure (up to an hour).
        notify_retry_seconds: u64 = 30,
        /// Attempts per notification before it is given up (recorded as failed).
        notify_max_attempts: u32 = 10,
        /// SMTP server port.
        smtp_port: u32 = 587,
        /// `starttls`, `tls` or `none`.
        smtp_tls: SmtpTls = SmtpTls::Starttls,
        /// Fold counted changes into the tamper-evident ledger (docs/ledger.md). Off only to
        /// measure its cost: changes made while it is off make `ledger verify` fail.
        ledger_enabled: bool = true,
    }
    optional {
        /// HTTP(S) proxy for connected sync, e.g. `http://proxy.example:3128`.
        upstream_proxy: String,
        /// Bearer token that `GET /metrics` on the main listener needs (none: always 401).
        metrics_token: String,
        /// A second, plain-HTTP listener serving only `/metrics`, without auth (keep it on
        /// a private interface).
        metrics_listen: String,
        /// When to take a backup on its own (5- or 6-field cron, UTC); none: never.
        backup_cron: String,
        /// Where scheduled backups go (default: `backups/` in the data dir).
        backup_dir: PathBuf,
        /// SMTP server for alert email (none: email notifications fail, webhooks still go).
        smtp_host: String,
        /// The From address of alert email (default `satellite@<smtp_host>`).
        smtp_from: String,
        smtp_username: String,
        smtp_password: String,
        /// Extra CA certificate (PEM) to trust for the SMTP server's TLS.
        smtp_ca_file: PathBuf,
    }
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

    pub fn backup_dir(&self) -> PathBuf {
        self.backup_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("backups"))
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
    fn optional_settings_come_from_every_layer() {
        let file: SettingsLayer = toml::from_str("backup_cron = \"0 3 * * *\"").unwrap();
        let env = SettingsLayer::from_env(|k| {
            (k == "SATELLITE_METRICS_TOKEN").then(|| "t0ken".to_string())
        })
        .unwrap();
        let s = Settings::resolve(file, env, SettingsLayer::default());
        assert_eq!(s.backup_cron.as_deref(), Some("0 3 * * *"));
        assert_eq!(s.metrics_token.as_deref(), Some("t0ken"));
        assert_eq!(s.upstream_proxy, None);
        assert_eq!(s.backup_dir(), PathBuf::from("./data/backups"));
    }

    #[test]
    fn unknown_keys_and_bad_env_are_refused() {
        assert!(toml::from_str::<SettingsLayer>("lisen = \"x\"").is_err());
        let err = SettingsLayer::from_env(|k| (k == "SATELLITE_ROLE").then(|| "cloud".into()));
        assert!(err.is_err());
    }
}
