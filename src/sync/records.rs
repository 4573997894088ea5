//! The records of `data/*.jsonl`, one JSON object per line.

use super::SyncError;
use crate::crypto::idcert::UdiJson;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `data/registration.jsonl`: the token in a request; the upstream's account in a response.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Registration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_expires_at: Option<String>,
}

/// `data/virtual_accounts.jsonl`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VirtualAccount {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// `data/licenses.jsonl`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct License {
    pub virtual_account: String,
    pub tag: String,
    pub name: String,
    #[serde(rename = "type")]
    pub license_type: String,
    pub quantity: i64,
    pub start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(default)]
    pub export_controlled: bool,
    #[serde(default)]
    pub substitutes: Vec<String>,
    /// Substitution rank; left out when it is the default (100), as older peers wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Product {
    pub name: String,
    pub version: String,
}

/// `data/instances.jsonl`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub virtual_account: String,
    pub udi: UdiJson,
    pub product: Product,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default)]
    pub export_controlled: bool,
    pub registered_at: String,
    pub last_contact: String,
    pub status: String,
}

/// `data/usage.jsonl`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Usage {
    pub instance_id: String,
    pub tag: String,
    pub count: i64,
}

/// `data/export_keys.jsonl`: a granted export key of an instance listed before it (only
/// granted keys travel: they are what the pool counts).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportKey {
    pub instance_id: String,
    pub tag: String,
    pub state: String,
}

/// One tag of a reservation record: what the code grants and what the pool holds back.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReservedLicense {
    pub tag: String,
    pub count: i64,
    pub held: i64,
}

/// `data/reservations.jsonl`: a live reservation made on the satellite (sync requests).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reservation {
    pub id: String,
    pub virtual_account: String,
    pub udi: UdiJson,
    pub universal: bool,
    pub state: String,
    pub licenses: Vec<ReservedLicense>,
}

/// `data/reserved.jsonl` (sync responses): what reservations made elsewhere (on the
/// upstream and other satellites) hold per VA and tag.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reserved {
    pub virtual_account: String,
    pub tag: String,
    pub held: i64,
}

/// `data/demand_elsewhere.jsonl` (sync responses): the demand recorded elsewhere (on the
/// upstream and other satellites of the account) per VA and tag; `export_count` is the part
/// of `count` export-controlled pools may serve.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DemandElsewhere {
    pub virtual_account: String,
    pub tag: String,
    pub count: i64,
    #[serde(default)]
    pub export_count: i64,
}

/// `data/acks.jsonl`: the sync-request sequence a response acknowledges.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ack {
    pub sequence: i64,
}

/// One line of a data file as read. It is parsed straight into the type its file asks
/// for, with no `serde_json::Value` in between: an upstream reads a million of them per
/// sync request.
#[derive(Clone, Copy, Debug)]
pub struct Line<'a> {
    /// 1-based, for messages.
    pub number: u64,
    pub bytes: &'a [u8],
}

/// A record of `data/{file}.jsonl` as `T`: a line that is not JSON and a record of the
/// wrong shape are refused in words that say which.
pub fn parse<T: DeserializeOwned>(file: &str, line: Line<'_>) -> Result<T, SyncError> {
    serde_json::from_slice(line.bytes).map_err(|e| {
        SyncError::Rejected(if e.is_data() {
            format!("data/{file}.jsonl: invalid record ({e})")
        } else {
            format!("data/{file}.jsonl line {}: not JSON ({e})", line.number)
        })
    })
}

pub fn parse_time(field: &str, s: &str) -> Result<i64, SyncError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|_| SyncError::Rejected(format!("{field} is not an RFC 3339 timestamp")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(bytes: &[u8]) -> String {
        let line = Line { number: 7, bytes };
        match parse::<Ack>("acks", line) {
            Err(SyncError::Rejected(m)) => m,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_line_parses_straight_into_its_record() {
        let line = Line {
            number: 1,
            bytes: b"{\"sequence\":42}\n",
        };
        assert_eq!(parse::<Ack>("acks", line).unwrap().sequence, 42);
    }

    #[test]
    fn broken_json_and_a_wrong_shape_are_told_apart() {
        assert!(refusal(b"{\"sequence\":").starts_with("data/acks.jsonl line 7: not JSON"));
        assert!(refusal(b"not json").starts_with("data/acks.jsonl line 7: not JSON"));
        let shape = refusal(b"{\"sequence\":\"x\"}");
        assert!(
            shape.starts_with("data/acks.jsonl: invalid record"),
            "{shape}"
        );
        // Ambiguous records are refused, not read as their last key says.
        let twice = refusal(b"{\"sequence\":1,\"sequence\":2}");
        assert!(twice.contains("duplicate field"), "{twice}");
    }
}
