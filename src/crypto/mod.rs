//! Keys on disk, signatures, TLS material, password hashes and random secrets.

pub mod agent_sig;
pub mod batch_verify;
pub mod cert_expiry;
pub mod idcert;
pub mod keys;
pub mod password;
pub mod recent_signatures;
pub mod rotation;
pub mod secrets;
pub mod tls;

pub use keys::AuthorityKey;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("key file {path} is not valid: {message}")]
    BadKey { path: String, message: String },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("password hashing failed: {0}")]
    Password(String),
}

impl CryptoError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CryptoError {
        let what = what.into();
        move |source| CryptoError::Io { what, source }
    }
}

/// Writes a secret file readable by its owner only.
pub fn write_private(path: &std::path::Path, contents: &[u8]) -> Result<(), CryptoError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(CryptoError::io(format!("cannot create {}", path.display())))?;
    file.write_all(contents)
        .and_then(|_| file.sync_all())
        .map_err(CryptoError::io(format!("cannot write {}", path.display())))
}
