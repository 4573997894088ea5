//! The server's TLS identity: a self-signed certificate made on first start (an admin may
//! replace `tls/cert.pem` and `tls/key.pem` with one from their own CA), served by rustls.

use super::{write_private, CryptoError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// What the certificate made at first start says about this server.
pub struct Identity<'a> {
    pub authority_id: &'a str,
    /// Days it is valid from now.
    pub valid_days: i64,
    pub now: i64,
}

/// The machine's host name, when it has a usable one.
fn hostname() -> Option<String> {
    let host = std::fs::read_to_string("/etc/hostname").ok()?;
    let host = host.trim();
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then(|| host.to_string())
}

fn ymd(unix: i64) -> Result<(i32, u8, u8), CryptoError> {
    use chrono::Datelike;
    let day = chrono::DateTime::from_timestamp(unix, 0)
        .ok_or_else(|| CryptoError::Tls(format!("no date for {unix}")))?;
    let month = u8::try_from(day.month()).map_err(|e| CryptoError::Tls(e.to_string()))?;
    let dom = u8::try_from(day.day()).map_err(|e| CryptoError::Tls(e.to_string()))?;
    Ok((day.year(), month, dom))
}

/// Creates `tls/cert.pem` and `tls/key.pem` under `data_dir` unless both exist. The
/// certificate names the server (common name: the host name; alternative names: the host
/// name, `localhost`, 127.0.0.1, ::1 and the authority id) and is valid for
/// `valid_days` from yesterday (a little slack for clocks behind ours).
pub fn ensure_certificate(data_dir: &Path, id: &Identity<'_>) -> Result<(), CryptoError> {
    let dir = data_dir.join("tls");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir)
        .map_err(CryptoError::io(format!("cannot create {}", dir.display())))?;
    let host = hostname();
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
        id.authority_id.to_string(),
    ];
    if let Some(h) = &host {
        if !names.contains(h) {
            names.insert(0, h.clone());
        }
    }
    let tls_err = |e: rcgen::Error| CryptoError::Tls(e.to_string());
    let mut params = rcgen::CertificateParams::new(names).map_err(tls_err)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        host.as_deref().unwrap_or("localhost"),
    );
    dn.push(rcgen::DnType::OrganizationName, "satellite");
    dn.push(
        rcgen::DnType::OrganizationalUnitName,
        format!("authority {}", id.authority_id),
    );
    params.distinguished_name = dn;
    let (y, m, d) = ymd(id.now - 86_400)?;
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = ymd(id.now + id.valid_days.max(1) * 86_400)?;
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let key_pair = rcgen::KeyPair::generate().map_err(tls_err)?;
    let cert = params.self_signed(&key_pair).map_err(tls_err)?;
    let _ = std::fs::remove_file(&key_path);
    write_private(&key_path, key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem()).map_err(CryptoError::io(format!(
        "cannot write {}",
        cert_path.display()
    )))
}

/// When the certificate in `tls/cert.pem` ends (unix seconds), if it can be read.
pub fn certificate_expires_at(data_dir: &Path) -> Option<i64> {
    let pem = std::fs::read_to_string(data_dir.join("tls/cert.pem")).ok()?;
    super::cert_expiry::not_after_pem(&pem)
}

/// Days before the end at which the server starts warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// Logs a warning when the certificate ends within `EXPIRY_WARNING_DAYS`; says whether it did.
pub fn warn_if_expiring(data_dir: &Path, now: i64) -> bool {
    let Some(end) = certificate_expires_at(data_dir) else {
        return false;
    };
    let days_left = (end - now).div_euclid(86_400);
    if days_left <= EXPIRY_WARNING_DAYS {
        tracing::warn!(
            days_left,
            expires_at = %crate::clock::rfc3339(end),
            "TLS certificate ends soon: renew it (docs/operations.md, \"TLS certificate\")"
        );
        true
    } else {
        false
    }
}

/// A rustls server config (TLS 1.2 and 1.3, ring provider) from the files under `data_dir`.
pub fn server_config(data_dir: &Path) -> Result<rustls::ServerConfig, CryptoError> {
    let cert_path = data_dir.join("tls/cert.pem");
    let key_path = data_dir.join("tls/key.pem");
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| CryptoError::Tls(format!("{}: {e}", cert_path.display())))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| CryptoError::Tls(format!("{}: {e}", key_path.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| CryptoError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| CryptoError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
