//! Backups for system admins: a fresh backup downloaded from the browser, and the list of
//! scheduled ones (CONTRACT section 1). The file holds the authority's private key, so
//! only system admins reach it, and it is streamed from a temporary file that is removed
//! once sent.

use super::accounts::CsrfForm;
use crate::clock;
use crate::service::access;
use crate::web::auth::SessionUser;
use crate::web::render::{self, Layout};
use crate::web::{download, AppError, PageError, State};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

pub struct BackupView {
    pub name: String,
    pub size: String,
    pub taken: String,
}

#[derive(Template)]
#[template(path = "backups.html")]
struct BackupsPage {
    layout: Layout,
    backups: Vec<BackupView>,
    schedule: Option<String>,
    keep: usize,
    dir: String,
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn scheduled_backups(dir: &std::path::Path) -> Vec<BackupView> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut out: Vec<BackupView> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = e.metadata().ok()?;
            let taken = meta
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs() as i64;
            (name.starts_with("satellite-") && name.ends_with(".tar.gz")).then(|| BackupView {
                name,
                size: human_size(meta.len()),
                taken: clock::human(taken),
            })
        })
        .collect();
    out.sort_by(|a, b| b.name.cmp(&a.name));
    out
}

async fn page(
    req: HttpRequest,
    state: State,
    user: SessionUser,
) -> Result<HttpResponse, PageError> {
    access::system_admin(&user.principal).map_err(AppError::from)?;
    let dir = state.settings.backup_dir();
    let list_dir = dir.clone();
    let backups = web::block(move || scheduled_backups(&list_dir)).await?;
    let page = BackupsPage {
        layout: Layout::new(&req, &user, "backups", "Backups"),
        backups,
        schedule: state.settings.backup_cron.clone(),
        keep: state.settings.backup_keep,
        dir: dir.display().to_string(),
    };
    Ok(render::page(&req, &page)?)
}

async fn download(
    state: State,
    user: SessionUser,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let cap = access::system_admin(&user.principal).map_err(AppError::from)?;
    user.check_csrf(&form.csrf)?;
    let (store, data_dir, now) = (
        state.store.clone(),
        state.settings.data_dir.clone(),
        state.clock.unix(),
    );
    let staging = web::block(move || {
        let dir = tempfile::tempdir_in(&data_dir)?;
        let file = dir.path().join("backup.tar.gz");
        crate::backup::create(&store, &data_dir, &file, now).map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>((dir, file))
    })
    .await?
    .map_err(AppError::internal)?;
    tracing::info!(actor = %cap.actor, "backup downloaded");
    let body = download::stream_blocking(move |out| {
        let (dir, path) = staging;
        let mut f = std::fs::File::open(&path)?;
        std::io::copy(&mut f, out)?;
        // The temporary copy goes as soon as it is sent (or the client went away).
        drop(dir);
        Ok(())
    });
    let name = crate::backup::scheduled_name(now);
    Ok(HttpResponse::Ok()
        .content_type("application/gzip")
        .insert_header(download::attachment(&name))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/backups", web::get().to(page))
        .route("/backups/download", web::post().to(download));
}
