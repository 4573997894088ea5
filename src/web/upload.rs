//! Streams a request body to a file (bundles can be far larger than JSON bodies), so
//! memory stays flat however large the bundle.

use super::AppError;
use actix_web::web;
use futures_core::Stream;
use std::future::poll_fn;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// Largest bundle accepted over HTTP.
pub const BUNDLE_LIMIT: u64 = 4 << 30;

/// Writes a stream of chunks to a new hidden file in `dir`, stopping at `BUNDLE_LIMIT`
/// (the partial file is removed and `too_large` answered); returns the file and its size.
pub async fn stream_to_file<S, E>(
    stream: &mut S,
    dir: &Path,
    read_failed: &str,
    too_large: fn() -> AppError,
) -> Result<(PathBuf, u64), AppError>
where
    S: Stream<Item = Result<web::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    std::fs::create_dir_all(dir).map_err(AppError::internal)?;
    let path = dir.join(format!(".upload-{}.tar.gz", uuid::Uuid::new_v4()));
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(&path).map_err(AppError::internal)?);
    let mut total = 0u64;
    while let Some(chunk) = poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await {
        let chunk = chunk.map_err(|e| AppError::bad_request(format!("{read_failed}: {e}")))?;
        total += chunk.len() as u64;
        if total > BUNDLE_LIMIT {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(too_large());
        }
        file.write_all(&chunk).map_err(AppError::internal)?;
    }
    file.flush().map_err(AppError::internal)?;
    Ok((path, total))
}

pub async fn save_body(mut payload: web::Payload, dir: &Path) -> Result<PathBuf, AppError> {
    let too_large = || {
        AppError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The bundle is larger than 4 GiB.",
        )
    };
    let (path, total) =
        stream_to_file(&mut payload, dir, "reading the upload failed", too_large).await?;
    if total == 0 {
        let _ = std::fs::remove_file(&path);
        return Err(AppError::bad_request(
            "The request has no bundle in its body.",
        ));
    }
    Ok(path)
}
