//! `POST /agent/v1/usage`: a signed usage report, answered with the authorization.

use super::body::RawBody;
use super::register::parse_json;
use super::verify::signed_instance;
use crate::clock::rfc3339;
use crate::domain::{instance, license};
use crate::store::instances::{self, Report};
use crate::web::{AppError, State};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

const MAX_ENTITLEMENTS: usize = 1000;

#[derive(Deserialize)]
struct Entitlement {
    tag: String,
    count: serde_json::Number,
}

#[derive(Deserialize)]
struct UsageBody {
    report_id: String,
    measured_at: String,
    entitlements: Vec<Entitlement>,
}

#[derive(Serialize)]
struct EntitlementAnswer<'a> {
    tag: &'a str,
    count: i64,
    status: &'static str,
}

#[derive(Serialize)]
struct Authorization {
    renew_after: Option<String>,
    expires_at: Option<String>,
}

#[derive(Serialize)]
struct UsageAnswer<'a> {
    status: &'static str,
    entitlements: Vec<EntitlementAnswer<'a>>,
    authorization: Authorization,
}

fn validate(b: UsageBody, now: i64) -> Result<Report, AppError> {
    if b.report_id.is_empty() || b.report_id.len() > 128 {
        return Err(AppError::unprocessable(
            "invalid_report_id",
            "report_id is 1-128 characters.",
        ));
    }
    let measured_at = chrono::DateTime::parse_from_rfc3339(&b.measured_at)
        .map_err(|_| AppError::bad_request("measured_at must be an RFC 3339 timestamp."))?
        .timestamp();
    instance::check_measured_at(measured_at, now)?;
    if b.entitlements.len() > MAX_ENTITLEMENTS {
        return Err(AppError::unprocessable(
            "too_many_entitlements",
            format!("A report carries at most {MAX_ENTITLEMENTS} entitlements."),
        ));
    }
    let mut seen = HashSet::new();
    let mut entitlements = Vec::with_capacity(b.entitlements.len());
    for e in b.entitlements {
        let tag = license::tag("tag", &e.tag)?;
        let count = e
            .count
            .as_i64()
            .filter(|c| (0..=license::QUANTITY_MAX).contains(c))
            .ok_or_else(|| {
                AppError::unprocessable(
                    "invalid_count",
                    "count is an integer from 0 to 2147483647.",
                )
            })?;
        if !seen.insert(tag.clone()) {
            return Err(AppError::unprocessable(
                "duplicate_tag",
                format!("Tag {tag} appears twice in the report."),
            ));
        }
        entitlements.push((tag, count));
    }
    Ok(Report {
        report_id: b.report_id,
        measured_at,
        entitlements,
    })
}

pub async fn report(
    state: State,
    req: HttpRequest,
    RawBody(body): RawBody,
) -> Result<HttpResponse, AppError> {
    let instance = signed_instance(&state, &req, &body).await?;
    let now = state.clock.unix();
    let report = validate(parse_json(&body)?, now)?;
    let today = state.clock.now().date_naive();
    let outcome = state
        .store
        .write(move |tx| instances::apply_report(tx, now, today, instance.signer(), &report))
        .await?;
    let entitlements = outcome
        .entitlements
        .iter()
        .map(|(tag, count, status)| EntitlementAnswer {
            tag,
            count: *count,
            status: status.as_str(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(UsageAnswer {
        status: outcome.status.as_str(),
        entitlements,
        authorization: Authorization {
            renew_after: outcome.auth_renew_after.map(rfc3339),
            expires_at: outcome.auth_expires_at.map(rfc3339),
        },
    }))
}
