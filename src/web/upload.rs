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

/// The `Content-Length` a request declares, if any.
pub fn declared_length(req: &actix_web::HttpRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads a body into memory, at most `limit` bytes (413 `payload_too_large` above it,
/// told by the declared length before a byte is read when the peer sends one, else as
/// the chunks come). For unauthenticated peers, whose bodies must cost no disk.
pub async fn body_in_memory<S, E>(
    stream: &mut S,
    declared: Option<u64>,
    limit: u64,
) -> Result<std::sync::Arc<[u8]>, AppError>
where
    S: Stream<Item = Result<web::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    body_in_memory_under(stream, declared, limit, "exchange_body_max_bytes").await
}

/// As `body_in_memory`, the 413 naming `setting` as the limit that was crossed.
pub async fn body_in_memory_under<S, E>(
    stream: &mut S,
    declared: Option<u64>,
    limit: u64,
    setting: &str,
) -> Result<std::sync::Arc<[u8]>, AppError>
where
    S: Stream<Item = Result<web::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let too_large = || {
        AppError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The bundle is larger than {limit} bytes ({setting})."),
        )
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    while let Some(chunk) = poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await {
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

/// Writes bytes held in memory (an upload applied after its preview) to a new hidden
/// file in `dir`, as `save_body` would have streamed them.
pub async fn save_body_bytes(bytes: &[u8], dir: &Path) -> Result<PathBuf, AppError> {
    let mut chunks = Chunked(Some(web::Bytes::copy_from_slice(bytes)));
    let too_large = || AppError::bad_request("The bundle is larger than 4 GiB.");
    let (path, _) = stream_to_file(&mut chunks, dir, "saving the upload failed", too_large).await?;
    Ok(path)
}

/// One chunk, as a stream.
struct Chunked(Option<web::Bytes>);

impl Stream for Chunked {
    type Item = Result<web::Bytes, std::io::Error>;
    fn poll_next(
        mut self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.take().map(Ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    /// Chunks from a list, as a body stream.
    struct Chunks(Vec<web::Bytes>);

    impl Stream for Chunks {
        type Item = Result<web::Bytes, std::io::Error>;
        fn poll_next(
            mut self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready((!self.0.is_empty()).then(|| Ok(self.0.remove(0))))
        }
    }

    /// A body without a declared length is cut off at the limit as it streams in.
    #[actix_web::test]
    async fn a_body_without_a_length_stops_at_the_limit() {
        let chunk = web::Bytes::from(vec![7u8; 400]);
        let mut over = Chunks(vec![chunk.clone(); 3]);
        let err = body_in_memory(&mut over, None, 1000).await.unwrap_err();
        assert_eq!(
            err.status_code(),
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            over.0.len(),
            0,
            "read up to the chunk that crossed the limit"
        );
        let mut under = Chunks(vec![chunk.clone(); 2]);
        assert_eq!(
            body_in_memory(&mut under, None, 1000).await.unwrap().len(),
            800
        );
        let mut declared = Chunks(vec![chunk; 2]);
        assert!(body_in_memory(&mut declared, Some(5000), 1000)
            .await
            .is_err());
        assert_eq!(declared.0.len(), 2, "refused before a byte was read");
    }
}
