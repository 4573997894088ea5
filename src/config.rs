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
    /// Bearer token that `GET /metrics` on the main listener needs (none: always 401).
    pub metrics_token: Option<String>,
    /// A second, plain-HTTP listener serving only `/metrics`, without auth (keep it on a
    /// private interface).
    pub metrics_listen: Option<String>,
    /// When to take a backup on its own (5- or 6-field cron, UTC); none: never.
    pub backup_cron: Option<String>,
    /// Where scheduled backups go (default: `backups/` in the data dir).
    pub backup_dir: Option<PathBuf>,
    /// How many scheduled backups to keep; older ones are removed.
    pub backup_keep: usize,
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
            metrics_token: None,
            metrics_listen: None,
            backup_cron: None,
            backup_dir: None,
            backup_keep: 7,
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
    pub metrics_token: Option<String>,
    pub metrics_listen: Option<String>,
    pub backup_cron: Option<String>,
    pub backup_dir: Option<PathBuf>,
    pub backup_keep: Option<usize>,
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
            metrics_token: var("SATELLITE_METRICS_TOKEN"),
            metrics_listen: var("SATELLITE_METRICS_LISTEN"),
            backup_cron: var("SATELLITE_BACKUP_CRON"),
            backup_dir: var("SATELLITE_BACKUP_DIR").map(PathBuf::from),
            backup_keep: var("SATELLITE_BACKUP_KEEP")
                .map(|v| parse("SATELLITE_BACKUP_KEEP", v))
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
        if let Some(v) = self.metrics_token {
            s.metrics_token = Some(v);
        }
        if let Some(v) = self.metrics_listen {
            s.metrics_listen = Some(v);
        }
        if let Some(v) = self.backup_cron {
            s.backup_cron = Some(v);
        }
        if let Some(v) = self.backup_dir {
            s.backup_dir = Some(v);
        }
        if let Some(v) = self.backup_keep {
            s.backup_keep = v;
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
    fn unknown_keys_and_bad_env_are_refused() {
        assert!(toml::from_str::<SettingsLayer>("lisen = \"x\"").is_err());
        let err = SettingsLayer::from_env(|k| (k == "SATELLITE_ROLE").then(|| "cloud".into()));
        assert!(err.is_err());
    }
}
