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
    let measured = chrono::DateTime::parse_from_rfc3339(&b.measured_at)
        .map_err(|_| AppError::bad_request("measured_at must be an RFC 3339 timestamp."))?;
    instance::check_measured_at(measured.timestamp(), now)?;
    // Full precision (microseconds): reports in the same second are still ordered.
    let measured_at_us = measured.timestamp_micros();
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
        measured_at_us,
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
    // Every refusal of a report (unknown instance, signer, stale report) comes before
    // its first write: no savepoint needed (store::batch).
    let outcome = state
        .store
        .write_unguarded(move |tx| {
            instances::apply_report(tx, now, today, instance.signer(), &report)
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn outcome(bytes: &[u8]) -> Result<Report, AppError> {
        validate(parse_json(bytes)?, 1_700_000_000)
    }

    proptest! {
        /// Arbitrary bytes as a usage body: a typed 4xx, never a panic.
        #[test]
        fn arbitrary_bytes_are_a_typed_error(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Err(e) = outcome(&bytes) {
                prop_assert!(e.status.is_client_error(), "{}", e.status);
            }
        }

        /// Well-formed JSON with arbitrary field values: accepted, or a typed 4xx.
        #[test]
        fn arbitrary_fields_are_typed(
            report_id in ".{0,200}",
            measured_at in prop_oneof![Just("2023-11-14T22:13:20.500Z".to_string()), ".{0,40}"],
            tags in proptest::collection::vec((".{0,40}", any::<i64>()), 0..8),
        ) {
            let body = serde_json::json!({
                "report_id": report_id,
                "measured_at": measured_at,
                "entitlements": tags.iter().map(|(t, c)| serde_json::json!({"tag": t, "count": c})).collect::<Vec<_>>(),
            });
            match outcome(body.to_string().as_bytes()) {
                Ok(r) => {
                    prop_assert!(r.entitlements.iter().all(|(_, c)| (0..=license::QUANTITY_MAX).contains(c)));
                }
                Err(e) => prop_assert!(e.status.is_client_error()),
            }
        }
    }

    #[test]
    fn measured_at_keeps_milliseconds() {
        let body =
            br#"{"report_id":"r","measured_at":"2023-11-14T22:13:20.500Z","entitlements":[]}"#;
        assert_eq!(outcome(body).unwrap().measured_at_us, 1_700_000_000_500_000);
    }
}
