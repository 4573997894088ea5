//! Export keys for agents (CONTRACT section 4): `POST /agent/v1/export/request|return|cancel`
//! with `{"tags": [...]}` and `GET /agent/v1/export`, all signed like every later call.

use super::body::RawBody;
use super::register::parse_json;
use super::verify::signed_instance;
use crate::domain::export_key::AgentAction;
use crate::service::export_keys::{self, AgentKey, Tags};
use crate::web::{AppError, State};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagsBody {
    tags: Vec<String>,
}

#[derive(Serialize)]
struct KeyAnswer<'a> {
    tag: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

#[derive(Serialize)]
struct KeysAnswer<'a> {
    keys: Vec<KeyAnswer<'a>>,
}

fn answer(keys: &[AgentKey]) -> HttpResponse {
    HttpResponse::Ok().json(KeysAnswer {
        keys: keys
            .iter()
            .map(|k| KeyAnswer {
                tag: &k.tag,
                status: k.state.as_str(),
                reason: k.reason.as_deref(),
            })
            .collect(),
    })
}

/// What a POST does with its tags.
#[derive(Clone, Copy)]
enum Change {
    Request,
    Agent(AgentAction),
}

async fn change(
    state: State,
    req: HttpRequest,
    body: &[u8],
    what: Change,
) -> Result<HttpResponse, AppError> {
    let instance = signed_instance(&state, &req, body).await?;
    let b: TagsBody = parse_json(body)?;
    let tags = Tags::parse(b.tags)?;
    let now = state.clock.unix();
    let today = state.clock.now().date_naive();
    let keys = state
        .store
        .write(move |tx| {
            Ok(match what {
                Change::Request => export_keys::request(tx, instance.signer(), now, today, &tags)?,
                Change::Agent(action) => {
                    export_keys::agent_change(tx, instance.signer(), now, action, &tags)?
                }
            })
        })
        .await?;
    Ok(answer(&keys))
}

pub async fn request(
    state: State,
    req: HttpRequest,
    RawBody(body): RawBody,
) -> Result<HttpResponse, AppError> {
    change(state, req, &body, Change::Request).await
}

pub async fn give_back(
    state: State,
    req: HttpRequest,
    RawBody(body): RawBody,
) -> Result<HttpResponse, AppError> {
    change(state, req, &body, Change::Agent(AgentAction::Return)).await
}

pub async fn cancel(
    state: State,
    req: HttpRequest,
    RawBody(body): RawBody,
) -> Result<HttpResponse, AppError> {
    change(state, req, &body, Change::Agent(AgentAction::Cancel)).await
}

pub async fn list(
    state: State,
    req: HttpRequest,
    RawBody(body): RawBody,
) -> Result<HttpResponse, AppError> {
    let instance = signed_instance(&state, &req, &body).await?;
    let now = state.clock.unix();
    let keys = state
        .store
        .read(move |c| Ok(export_keys::of_instance(c, instance.signer(), now)?))
        .await?;
    Ok(answer(&keys))
}
