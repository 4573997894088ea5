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
/// (`too_large` answered); returns the file and its size. On every error the partial
/// file is removed (it is a temporary file until the last chunk is in).
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
    let tmp = tempfile::Builder::new()
        .prefix(".upload-")
        .suffix(".tar.gz")
        .tempfile_in(dir)
        .map_err(AppError::internal)?;
    let mut file = std::io::BufWriter::new(tmp);
    let mut total = 0u64;
    while let Some(chunk) = poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await {
        let chunk = chunk.map_err(|e| AppError::bad_request(format!("{read_failed}: {e}")))?;
        total += chunk.len() as u64;
        if total > BUNDLE_LIMIT {
            return Err(too_large());
        }
        file.write_all(&chunk).map_err(AppError::internal)?;
    }
    let tmp = file
        .into_inner()
        .map_err(|e| AppError::internal(e.error().to_string()))?;
    let (_, path) = tmp.keep().map_err(AppError::internal)?;
    Ok((path, total))
}

/// Reads a body into memory, at most `limit` bytes (413 `payload_too_large` above it,
/// told by `Content-Length` before a byte is read when the peer sends one). For
/// unauthenticated peers, whose bodies must cost no disk.
pub async fn body_in_memory(
    req: &actix_web::HttpRequest,
    mut payload: web::Payload,
    limit: u64,
) -> Result<std::sync::Arc<[u8]>, AppError> {
    let too_large = || {
        AppError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The bundle is larger than {limit} bytes (exchange_body_max_bytes)."),
        )
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    while let Some(chunk) = poll_fn(|cx| Pin::new(&mut payload).poll_next(cx)).await {
        let chunk =
            chunk.map_err(|e| AppError::bad_request(format!("reading the body failed: {e}")))?;
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    if body.is_empty() {
        return Err(AppError::bad_request(
            "The request has no bundle in its body.",
        ));
    }
    Ok(body.into())
}

pub async fn save_body(mut payload: web::Payload, dir: &Path) -> Result<PathBuf, AppError> {
    let too_large = || {
        AppError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The bundle is larger than 4 GiB.",
        )
    };
    // Only authenticated admins get here: their uploads may go to disk.
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
