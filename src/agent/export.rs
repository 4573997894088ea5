//! `satellite-agent export request|return|cancel --license TAG` (seed 004's `license smart
//! export request|return|cancel local`): asks the server for export keys and keeps the
//! answer in `export_keys.json` in the state dir, so `status` shows them offline.

use super::client::Client;
use super::ops::Lines;
use super::state::{AgentState, Registration, StateDir};
use super::AgentError;
use crate::domain::export_key::ExportKeyState;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

const FILE: &str = "export_keys.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportAction {
    Request,
    Return,
    Cancel,
}

impl ExportAction {
    fn path(self) -> &'static str {
        match self {
            ExportAction::Request => "/agent/v1/export/request",
            ExportAction::Return => "/agent/v1/export/return",
            ExportAction::Cancel => "/agent/v1/export/cancel",
        }
    }
}

/// One key as the server last answered it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeldKey {
    #[serde(with = "state_word")]
    pub status: ExportKeyState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The key's state as its one word in `export_keys.json` (the server's word for it).
mod state_word {
    use crate::domain::export_key::ExportKeyState;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &ExportKeyState, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<ExportKeyState, D::Error> {
        let word = String::deserialize(de)?;
        word.parse().map_err(serde::de::Error::custom)
    }
}

/// The keys by tag, of the instance and virtual account they were asked for: the server
/// releases them when a re-registration moves the instance, and a registration that
/// yields another instance id leaves them behind.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Keys {
    #[serde(default)]
    pub instance_id: String,
    #[serde(default)]
    pub virtual_account: String,
    pub keys: BTreeMap<String, HeldKey>,
}

impl Keys {
    fn belong_to(&self, reg: &Registration) -> bool {
        self.instance_id == reg.instance_id && self.virtual_account == reg.virtual_account
    }
}

pub fn load(dir: &StateDir) -> Result<Keys, AgentError> {
    let path = dir.file(FILE);
    if !path.exists() {
        return Ok(Keys::default());
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| AgentError::State(format!("cannot read {FILE}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| AgentError::State(format!("{FILE} is not valid: {e}")))
}

fn save(dir: &StateDir, keys: &Keys) -> Result<(), AgentError> {
    let text = serde_json::to_string_pretty(keys).map_err(|e| AgentError::State(e.to_string()))?;
    let tmp = dir.file("export_keys.json.new");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, dir.file(FILE)))
        .map_err(|e| AgentError::State(format!("cannot save {FILE}: {e}")))
}

/// Drops the kept keys (the server released them with the registration).
pub fn forget(dir: &StateDir) -> Result<(), AgentError> {
    match std::fs::remove_file(dir.file(FILE)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AgentError::State(format!("cannot remove {FILE}: {e}"))),
    }
}

/// Keeps what the server answered about keys (an answer lists keys by tag).
fn keep(
    dir: &StateDir,
    reg: &Registration,
    answered: &[serde_json::Value],
) -> Result<Lines, AgentError> {
    let mut kept = load(dir)?;
    if !kept.belong_to(reg) {
        kept = Keys {
            instance_id: reg.instance_id.clone(),
            virtual_account: reg.virtual_account.clone(),
            ..Keys::default()
        };
    }
    let mut lines: Lines = vec![];
    for k in answered {
        let (Some(tag), Some(status)) = (k["tag"].as_str(), k["status"].as_str()) else {
            return Err(AgentError::Protocol(
                "a key in the answer has no tag or status".into(),
            ));
        };
        let state: ExportKeyState = status.parse().map_err(|_| {
            AgentError::Protocol(format!(
                "a key in the answer has an unknown status {status}"
            ))
        })?;
        let reason = k["reason"].as_str().map(str::to_string);
        let mut line = format!("{tag} status={status}");
        if let Some(r) = &reason {
            line.push_str(&format!(" reason={r}"));
        }
        lines.push(("license", line));
        kept.keys.insert(
            tag.to_string(),
            HeldKey {
                status: state,
                reason,
            },
        );
    }
    save(dir, &kept)?;
    Ok(lines)
}

/// While a request waits for an admin, an online step (a usage report) also asks the
/// server for this instance's keys, so the offline `status` learns the decision.
pub fn refresh_pending(dir: &StateDir, now: i64) -> Result<(), AgentError> {
    let (key, state) = dir.open(now)?;
    let Some(reg) = state.registration.as_ref() else {
        return Ok(());
    };
    let kept = load(dir)?;
    if kept.instance_id != reg.instance_id
        || !kept
            .keys
            .values()
            .any(|k| k.status == ExportKeyState::Pending)
    {
        return Ok(());
    }
    let authority = crate::crypto::agent_sig::decode_public_key(&reg.authority_public_key)
        .ok_or_else(|| {
            AgentError::State("the pinned authority key in the state is damaged".into())
        })?;
    let client = Client::new(&reg.url, reg.ca_cert_pem.as_deref(), reg.insecure)?;
    let answer = client.signed_get("/agent/v1/export", &reg.instance_id, &key, now, &authority)?;
    let answered = answer.body["keys"]
        .as_array()
        .ok_or_else(|| AgentError::Protocol("the answer lists no keys".into()))?;
    keep(dir, reg, answered).map(|_| ())
}

/// Sends the request, keeps the answer, prints one `license=TAG status=…` line per key.
pub fn run(
    dir: &StateDir,
    now: i64,
    action: ExportAction,
    tags: &[String],
) -> Result<Lines, AgentError> {
    let (key, state) = dir.open(now)?;
    let reg = state.registration.as_ref().ok_or_else(|| {
        AgentError::Usage("this agent is not registered; run `register` first".into())
    })?;
    let authority = crate::crypto::agent_sig::decode_public_key(&reg.authority_public_key)
        .ok_or_else(|| {
            AgentError::State("the pinned authority key in the state is damaged".into())
        })?;
    let client = Client::new(&reg.url, reg.ca_cert_pem.as_deref(), reg.insecure)?;
    let answer = client.signed_post(
        action.path(),
        &json!({ "tags": tags }),
        &reg.instance_id,
        &key,
        now,
        &authority,
    )?;
    let answered = answer.body["keys"]
        .as_array()
        .ok_or_else(|| AgentError::Protocol("the answer lists no keys".into()))?;
    keep(dir, reg, answered)
}

/// Adds kept keys to `status`, one `license=` line per tag: a pending key makes its tag
/// `export_key_pending` (replacing the last report's status for it); a granted key of a
/// tag never reported adds `status=authorized count=1` (its one unit); a granted key of a
/// reported tag leaves that line as the server answered it.
pub fn amend_status(
    dir: &StateDir,
    state: &AgentState,
    mut lines: Lines,
) -> Result<Lines, AgentError> {
    let kept = load(dir)?;
    if !state
        .registration
        .as_ref()
        .is_some_and(|r| kept.belong_to(r))
    {
        return Ok(lines);
    }
    for (tag, k) in &kept.keys {
        let prefix = format!("{tag} status=");
        let existing = lines
            .iter_mut()
            .find(|(key, v)| *key == "license" && v.starts_with(&prefix));
        match (k.status, existing) {
            (ExportKeyState::Pending, Some(line)) => {
                let count = line.1.rsplit_once(" count=").map_or("1", |(_, c)| c);
                line.1 = format!("{tag} status=export_key_pending count={count}");
            }
            (ExportKeyState::Pending, None) => {
                lines.push((
                    "license",
                    format!("{tag} status=export_key_pending count=1"),
                ));
            }
            (ExportKeyState::Granted, None) => {
                lines.push(("license", format!("{tag} status=authorized count=1")));
            }
            _ => {}
        }
    }
    Ok(lines)
}
