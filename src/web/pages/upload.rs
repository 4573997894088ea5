//! A form upload of one bundle (multipart): the CSRF field and the file, streamed to disk.

use crate::web::auth::SessionUser;
use crate::web::AppError;
use actix_multipart::Multipart;
use futures_core::Stream;
use std::future::poll_fn;
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// Reads the form; the file lands in `dir` under a hidden name. CSRF is checked before
/// the file is kept.
pub async fn bundle_form(
    user: &SessionUser,
    mut form: Multipart,
    dir: &Path,
) -> Result<PathBuf, AppError> {
    let mut csrf = String::new();
    let mut saved: Option<PathBuf> = None;
    while let Some(field) = poll_fn(|cx| Pin::new(&mut form).poll_next(cx)).await {
        let mut field = field
            .map_err(|e| AppError::bad_request(format!("the upload is not a valid form: {e}")))?;
        let name = field.name().unwrap_or_default().to_string();
        if name == "bundle" {
            let too_large = || AppError::bad_request("The bundle is larger than 4 GiB.");
            let (path, _) = crate::web::upload::stream_to_file(
                &mut field,
                dir,
                "the upload broke off",
                too_large,
            )
            .await?;
            saved = Some(path);
        } else {
            let mut value = Vec::new();
            while let Some(chunk) = poll_fn(|cx| Pin::new(&mut field).poll_next(cx)).await {
                let chunk = chunk.map_err(|e| AppError::bad_request(e.to_string()))?;
                if value.len() + chunk.len() > 4096 {
                    return Err(AppError::bad_request("form field too large"));
                }
                value.extend_from_slice(&chunk);
            }
            if name == "csrf" {
                csrf = String::from_utf8_lossy(&value).into_owned();
            }
        }
    }
    if let Err(e) = user.check_csrf(&csrf) {
        if let Some(p) = saved {
            let _ = std::fs::remove_file(p);
        }
        return Err(e);
    }
    match saved {
        Some(p) if std::fs::metadata(&p).map(|m| m.len() > 0).unwrap_or(false) => Ok(p),
        Some(p) => {
            let _ = std::fs::remove_file(p);
            Err(AppError::bad_request("Choose a bundle file to upload."))
        }
        None => Err(AppError::bad_request("Choose a bundle file to upload.")),
    }
}

/// As `bundle_form`, the file held in memory (at most `limit` bytes) and never written to
/// disk: for an upload that is only previewed until an admin applies it.
pub async fn bundle_form_in_memory(
    user: &SessionUser,
    mut form: Multipart,
    limit: u64,
) -> Result<std::sync::Arc<[u8]>, AppError> {
    let mut csrf = String::new();
    let mut bundle: Option<std::sync::Arc<[u8]>> = None;
    while let Some(field) = poll_fn(|cx| Pin::new(&mut form).poll_next(cx)).await {
        let mut field = field
            .map_err(|e| AppError::bad_request(format!("the upload is not a valid form: {e}")))?;
        let name = field.name().unwrap_or_default().to_string();
        if name == "bundle" {
            let read = crate::web::upload::body_in_memory_under(
                &mut field,
                None,
                limit,
                "preview_body_max_bytes",
            )
            .await;
            match read {
                Ok(bytes) => bundle = Some(bytes),
                // An empty file field: said below, after the CSRF check.
                Err(e) if e.message.contains("has no bundle") => {}
                Err(e) => return Err(e),
            }
        } else {
            let mut value = Vec::new();
            while let Some(chunk) = poll_fn(|cx| Pin::new(&mut field).poll_next(cx)).await {
                let chunk = chunk.map_err(|e| AppError::bad_request(e.to_string()))?;
                if value.len() + chunk.len() > 4096 {
                    return Err(AppError::bad_request("form field too large"));
                }
                value.extend_from_slice(&chunk);
            }
            if name == "csrf" {
                csrf = String::from_utf8_lossy(&value).into_owned();
            }
        }
    }
    user.check_csrf(&csrf)?;
    bundle.ok_or_else(|| AppError::bad_request("Choose a bundle file to upload."))
}
