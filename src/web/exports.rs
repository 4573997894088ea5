//! Report and event-log bodies shared by the admin API and the pages: the same rows, the
//! same CSV writer, streamed from a reader connection of their own. Neither a page nor an
//! API handler; both call these.

use crate::domain::Principal;
use crate::service::access;
use crate::service::events as service_events;
use crate::service::reports::{self, Scope};
use crate::store::events::EventFilter;
use crate::web::download::{self, CsvOut};
use crate::web::{AppError, State};
use actix_web::HttpResponse;
use std::io::Write;

/// A body's format: `json` (the default) or `csv`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    pub fn parse(raw: Option<&str>) -> Result<Format, AppError> {
        match raw.unwrap_or("json") {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            other => Err(AppError::unprocessable(
                "invalid_format",
                format!("format is json or csv, not '{other}'."),
            )),
        }
    }
}

/// Writes the instances report to `out`; an I/O error (the client went away) stops the
/// walk at once.
fn write_instances(
    c: &rusqlite::Connection,
    out: &mut download::ChunkWriter,
    scope: &Scope,
    status: Option<&str>,
    format: Format,
) -> std::io::Result<()> {
    let mut failure: Option<std::io::Error> = None;
    let walked = match format {
        Format::Csv => {
            let mut csv = CsvOut::new(&mut *out, &reports::INSTANCE_COLUMNS)?;
            let walked = reports::for_each_instance(c, scope, status, |row| {
                csv.row(&row.cells()).map_err(|e| failure = Some(e)).is_ok()
            });
            csv.finish()?;
            walked
        }
        Format::Json => {
            out.write_all(b"{\"items\":[")?;
            let mut first = true;
            let walked = reports::for_each_instance(c, scope, status, |row| {
                let sep: &[u8] = if first { b"" } else { b"," };
                first = false;
                out.write_all(sep)
                    .and_then(|()| {
                        serde_json::to_writer(&mut *out, &row).map_err(std::io::Error::other)
                    })
                    .map_err(|e| failure = Some(e))
                    .is_ok()
            });
            out.write_all(b"]}")?;
            walked
        }
    };
    if let Some(e) = failure {
        return Err(e);
    }
    walked.map_err(std::io::Error::other)
}

/// Streams the instances report in either format from a reader connection of its own.
pub fn instances_body(
    state: &State,
    scope: Scope,
    status: Option<String>,
    format: Format,
) -> download::Chunks {
    let store = state.store.clone();
    download::stream_blocking(move |out| {
        store
            .read_blocking(|c| Ok(write_instances(c, out, &scope, status.as_deref(), format)))
            .map_err(std::io::Error::other)?
    })
}

/// The event log as CSV, streamed from a reader connection of its own.
pub fn events_csv(state: &State, who: Principal, filter: EventFilter) -> HttpResponse {
    let store = state.store.clone();
    let body = download::stream_blocking(move |out| {
        store
            .read_blocking(|c| {
                let mut failure: Option<std::io::Error> = None;
                let walked = (|| -> std::io::Result<()> {
                    let mut csv = CsvOut::new(&mut *out, &service_events::CSV_COLUMNS)?;
                    let walked = service_events::for_each(c, access::visible(&who), &filter, |e| {
                        csv.row(&service_events::cells(&e))
                            .map_err(|err| failure = Some(err))
                            .is_ok()
                    });
                    csv.finish()?;
                    walked.map_err(std::io::Error::other)
                })();
                Ok(match failure {
                    Some(e) => Err(e),
                    None => walked,
                })
            })
            .map_err(std::io::Error::other)?
    });
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(download::attachment("events.csv"))
        .streaming(body)
}
