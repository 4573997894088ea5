//! The Sync pages' two-step import: an uploaded bundle is previewed (nothing applied,
//! nothing on disk), shown at `/sync/previews/{id}`, and then applied or discarded. The
//! bytes wait in memory (`web::pending_imports`), bound to the uploading session; Apply
//! imports exactly the previewed bytes (their sha256 is checked) as an upload did before.

use super::upload::bundle_form_in_memory;
use super::va_view::label;
use crate::service::bundle_preview::{preview_bundle, run_sync};
use crate::sync::preview_report::{Preview, PreviewResult, VaChanges};
use crate::web::auth::SessionUser;
use crate::web::calls::sync::bundle_response;
use crate::web::pending_imports::sha256_hex;
use crate::web::render::{self, path_segment, Layout};
use crate::web::upload::save_body_bytes;
use crate::web::{AppError, PageError, State};
use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

/// Reads an upload form into memory, previews it and shows the preview (post/redirect/
/// get). A bundle the import would reject answers the rejection, as the import did.
pub async fn start(
    state: &State,
    user: &SessionUser,
    form: Multipart,
    back: String,
) -> Result<HttpResponse, AppError> {
    let cap = run_sync(&user.principal)?;
    let bytes = bundle_form_in_memory(user, form, state.settings.preview_body_max_bytes).await?;
    let ctx = state.sync.clone();
    let held = bytes.clone();
    let preview = web::block(move || preview_bundle(&cap, &ctx, held)).await??;
    let id = state
        .pending_imports
        .put(&user.token_hash, bytes, preview, &back);
    Ok(render::redirect(&format!("/sync/previews/{id}")))
}

/// One VA's changes as the page shows them.
struct VaView {
    name: String,
    created: bool,
    licenses: Vec<(&'static str, String, String, String)>,
    instances: Vec<(&'static str, String, String)>,
    usage: Vec<(String, i64, i64, String)>,
    pools: Vec<(String, i64, i64, &'static str, bool)>,
}

fn dates(start: &str, end: &Option<String>) -> String {
    format!("{start} – {}", end.as_deref().unwrap_or("no end"))
}

fn va_view(va: &VaChanges) -> VaView {
    let mut licenses = vec![];
    for l in &va.licenses_added {
        licenses.push((
            "added",
            l.tag.clone(),
            l.quantity.to_string(),
            dates(&l.start, &l.end),
        ));
    }
    for l in &va.licenses_changed {
        let (old, new) = (
            dates(&l.start.old, &l.end.old),
            dates(&l.start.new, &l.end.new),
        );
        licenses.push((
            "changed",
            l.tag.clone(),
            format!("{} → {}", l.quantity.old, l.quantity.new),
            if old == new {
                new
            } else {
                format!("{old} → {new}")
            },
        ));
    }
    for l in &va.licenses_removed {
        licenses.push((
            "removed",
            l.tag.clone(),
            l.quantity.to_string(),
            dates(&l.start, &l.end),
        ));
    }
    let mut instances = vec![];
    for id in &va.instances_new {
        instances.push(("new", id.clone(), String::new()));
    }
    for m in &va.instances_moved {
        instances.push((
            "moved",
            m.id.clone(),
            format!("from {}", m.from_virtual_account),
        ));
    }
    for id in &va.instances_gone {
        instances.push(("gone", id.clone(), String::new()));
    }
    VaView {
        name: va.name.clone(),
        created: va.created,
        licenses,
        instances,
        usage: va
            .usage
            .iter()
            .map(|u| (u.tag.clone(), u.before, u.after, format!("{:+}", u.delta)))
            .collect(),
        pools: va
            .compliance
            .iter()
            .map(|p| {
                (
                    p.tag.clone(),
                    p.in_use,
                    p.available,
                    p.status,
                    p.turns_short,
                )
            })
            .collect(),
    }
}

#[derive(Template)]
#[template(path = "sync/preview.html")]
struct PreviewPage {
    layout: Layout,
    id: String,
    sha256: String,
    kind: String,
    bundle_id: String,
    sequence: i64,
    account: String,
    changes_account: String,
    duplicate: bool,
    vas: Vec<VaView>,
    unchanged: Vec<String>,
    turns_short: Vec<String>,
    back: String,
}

fn page(
    req: &HttpRequest,
    user: &SessionUser,
    id: &str,
    sha256: &str,
    p: &Preview,
    back: &str,
) -> PreviewPage {
    let (changed, unchanged): (Vec<&VaChanges>, Vec<&VaChanges>) = p
        .virtual_accounts
        .iter()
        .partition(|v| v.changes_anything());
    PreviewPage {
        layout: Layout::new(req, user, "sync", &format!("Preview · {}", label(&p.kind))),
        id: id.to_string(),
        sha256: sha256.to_string(),
        kind: label(&p.kind),
        bundle_id: p.bundle_id.clone(),
        sequence: p.sequence,
        account: p.account.clone(),
        changes_account: p.changes_account.clone().unwrap_or_default(),
        duplicate: p.result == PreviewResult::Duplicate,
        vas: changed.into_iter().map(va_view).collect(),
        unchanged: unchanged.into_iter().map(|v| v.name.clone()).collect(),
        turns_short: p.turns_short.clone(),
        back: back.to_string(),
    }
}

fn gone() -> AppError {
    AppError::not_found(
        "This preview is no longer held (applied, discarded, or older than its time limit). Upload the bundle again.",
    )
}

async fn show(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    run_sync(&user.principal).map_err(AppError::from)?;
    let pending = state
        .pending_imports
        .get(&id, &user.token_hash)
        .ok_or_else(gone)?;
    let view = page(
        &req,
        &user,
        &pending.id,
        &pending.sha256,
        &pending.preview,
        &pending.back,
    );
    Ok(render::page(&req, &view)?)
}

#[derive(Deserialize)]
struct ApplyForm {
    csrf: String,
    /// The sha256 the preview page showed: what is applied is what was previewed.
    sha256: String,
}

async fn apply(
    state: State,
    user: SessionUser,
    id: web::Path<String>,
    form: web::Form<ApplyForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    run_sync(&user.principal).map_err(AppError::from)?;
    let pending = state
        .pending_imports
        .take(&id, &user.token_hash)
        .ok_or_else(gone)?;
    if sha256_hex(&pending.bytes) != pending.sha256 || form.sha256 != pending.sha256 {
        return Err(AppError::new(
            actix_web::http::StatusCode::CONFLICT,
            "preview_mismatch",
            "The bundle to apply is not the one previewed. Upload it again.",
        )
        .into());
    }
    // From here on exactly as an upload was imported before: saved to inbox/ under a
    // hidden name, imported, archived (or moved to rejected/ with its reason).
    let path = save_body_bytes(&pending.bytes, &state.sync.dir("inbox")).await?;
    let ctx = state.sync.clone();
    let outcome = web::block(move || crate::sync::import::import_upload(&ctx, &path)).await?;
    let o = outcome.map_err(AppError::from)?;
    match o.answer {
        Some(w) => Ok(bundle_response(&w.path)?),
        None => Ok(render::redirect_with_flash(
            &pending.back,
            &crate::web::calls::sentences::imported(&o),
        )),
    }
}

#[derive(Deserialize)]
struct DiscardForm {
    csrf: String,
}

async fn discard(
    state: State,
    user: SessionUser,
    id: web::Path<String>,
    form: web::Form<DiscardForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let back = state
        .pending_imports
        .take(&id, &user.token_hash)
        .map_or_else(|| "/sync".to_string(), |p| p.back);
    Ok(render::redirect_with_flash(
        &back,
        "Discarded: nothing was imported.",
    ))
}

/// Where an account's Sync page is, to come back to after Apply or Discard.
pub fn account_back(name: &str) -> String {
    format!("/accounts/{}/sync", path_segment(name))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/sync/previews/{id}", web::get().to(show))
        .route("/sync/previews/{id}/apply", web::post().to(apply))
        .route("/sync/previews/{id}/discard", web::post().to(discard));
}
