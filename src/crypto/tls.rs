//! The server's TLS identity: a self-signed certificate made on first start (an admin may
//! replace `tls/cert.pem` and `tls/key.pem` with one from their own CA), served by rustls.

use super::{write_private, CryptoError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// Creates `tls/cert.pem` and `tls/key.pem` under `data_dir` unless both exist.
pub fn ensure_certificate(data_dir: &Path) -> Result<(), CryptoError> {
    let dir = data_dir.join("tls");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir)
        .map_err(CryptoError::io(format!("cannot create {}", dir.display())))?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() && !names.iter().any(|n| n == host) {
            names.push(host.to_string());
        }
    }
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|e| CryptoError::Tls(e.to_string()))?;
    let _ = std::fs::remove_file(&key_path);
    write_private(&key_path, certified.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, certified.cert.pem()).map_err(CryptoError::io(format!(
        "cannot write {}",
        cert_path.display()
    )))
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
