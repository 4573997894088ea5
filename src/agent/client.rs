//! HTTPS to the authority: TLS trust as configured, requests signed with the instance key,
//! and every answer's signature checked against the pinned authority key.

use super::AgentError;
use crate::crypto::agent_sig::{
    self, INSTANCE_HEADER, RESPONSE_SIGNATURE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::Value;
use std::time::Duration;

pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
}

/// What came back, with its signature already checked.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// The key the answer verified with: the pinned one, or the new key the pinned one
    /// handed over to in the answer's `authority_key_rotation` (see `crypto::rotation`).
    pub authority: VerifyingKey,
}

/// The new authority key an answer announces, when the pinned key vouches for it in the
/// answer's rotation statement and the overlap lasts past `now`.
fn handed_over(bytes: &[u8], pinned: &VerifyingKey, now: i64) -> Option<VerifyingKey> {
    let body: Value = serde_json::from_slice(bytes).ok()?;
    let new = agent_sig::decode_public_key(body["authority_public_key"].as_str()?)?;
    let vouch: crate::crypto::rotation::Vouch =
        serde_json::from_value(body["authority_key_rotation"].clone()).ok()?;
    vouch.hands_over(pinned, &new, now).then_some(new)
}

impl Client {
    pub fn new(url: &str, ca_cert_pem: Option<&str>, insecure: bool) -> Result<Self, AgentError> {
        Self::with_proxy(url, ca_cert_pem, insecure, None)
    }

    /// A client whose every request goes through the HTTP CONNECT proxy `proxy`
    /// (`http://[user:pass@]host:port`; the credentials travel as Proxy-Authorization).
    pub fn with_proxy(
        url: &str,
        ca_cert_pem: Option<&str>,
        insecure: bool,
        proxy: Option<&str>,
    ) -> Result<Self, AgentError> {
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            // Shorter than a server's keep-alive: `run` never sends on a connection the
            // server is closing.
            .pool_idle_timeout(Duration::from_secs(2))
            .danger_accept_invalid_certs(insecure);
        if let Some(p) = proxy {
            let proxy = reqwest::Proxy::all(p)
                .map_err(|e| AgentError::Usage(format!("--proxy {p} is not a proxy URL: {e}")))?;
            builder = builder.proxy(proxy);
        }
        if let Some(pem) = ca_cert_pem {
            let cert = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| {
                AgentError::Usage(format!("--ca-cert is not a PEM certificate: {e}"))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| AgentError::State(format!("cannot build HTTPS client: {e}")))?;
        Ok(Self {
            http,
            base: url.trim_end_matches('/').to_string(),
        })
    }

    /// Checks the answer's signature against `authority`, or (with `now`, for signed
    /// requests) against a new key that `authority` handed over to.
    fn finish(
        &self,
        res: reqwest::blocking::Response,
        authority: &VerifyingKey,
        now: Option<i64>,
    ) -> Result<Answer, AgentError> {
        let status = res.status().as_u16();
        let signature = res
            .headers()
            .get(RESPONSE_SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = res.bytes().map_err(|e| self.network(e))?;
        let verifies = |key: &VerifyingKey| {
            signature
                .as_deref()
                .is_some_and(|s| agent_sig::verify_b64(key, &bytes, s))
        };
        let authority = if verifies(authority) {
            *authority
        } else {
            match now.and_then(|now| handed_over(&bytes, authority, now)) {
                Some(new) if verifies(&new) => new,
                _ => return Err(AgentError::BadResponseSignature),
            }
        };
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status >= 400 {
            return Err(AgentError::Refused {
                status,
                code: body["error"]["code"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_string(),
                message: body["error"]["message"].as_str().unwrap_or("").to_string(),
            });
        }
        Ok(Answer {
            status,
            body,
            authority,
        })
    }

    fn network(&self, e: reqwest::Error) -> AgentError {
        AgentError::Network {
            url: self.base.clone(),
            message: e.to_string(),
        }
    }

    /// `GET /agent/v1/authority`, checked against the key it announces (trust on first
    /// use, over a TLS connection verified as configured).
    pub fn authority(&self) -> Result<(String, VerifyingKey), AgentError> {
        let res = self
            .http
            .get(format!("{}/agent/v1/authority", self.base))
            .send()
            .map_err(|e| self.network(e))?;
        let signature = res
            .headers()
            .get(RESPONSE_SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = res.bytes().map_err(|e| self.network(e))?;
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|_| AgentError::Protocol("the authority answer is not JSON".into()))?;
        let key = body["public_key"]
            .as_str()
            .and_then(agent_sig::decode_public_key)
            .ok_or_else(|| {
                AgentError::Protocol("the authority announced no valid public key".into())
            })?;
        if !signature.is_some_and(|s| agent_sig::verify_b64(&key, &bytes, &s)) {
            return Err(AgentError::BadResponseSignature);
        }
        let id = body["authority_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok((id, key))
    }

    /// An unsigned JSON POST (registration), answer checked against `authority`.
    pub fn post(
        &self,
        path: &str,
        body: &Value,
        authority: &VerifyingKey,
    ) -> Result<Answer, AgentError> {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .map_err(|e| self.network(e))?;
        self.finish(res, authority, None)
    }

    /// A GET signed by the instance key (the signed body is empty).
    pub fn signed_get(
        &self,
        path: &str,
        instance_id: &str,
        key: &SigningKey,
        now: i64,
        authority: &VerifyingKey,
    ) -> Result<Answer, AgentError> {
        let timestamp = now.to_string();
        let signature = agent_sig::sign_request(key, "GET", path, &timestamp, b"");
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header(INSTANCE_HEADER, instance_id)
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signature)
            .send()
            .map_err(|e| self.network(e))?;
        self.finish(res, authority, Some(now))
    }

    /// A JSON POST signed by the instance key.
    pub fn signed_post(
        &self,
        path: &str,
        body: &Value,
        instance_id: &str,
        key: &SigningKey,
        now: i64,
        authority: &VerifyingKey,
    ) -> Result<Answer, AgentError> {
        let bytes = serde_json::to_vec(body).map_err(|e| AgentError::Protocol(e.to_string()))?;
        let timestamp = now.to_string();
        let signature = agent_sig::sign_request(key, "POST", path, &timestamp, &bytes);
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header(INSTANCE_HEADER, instance_id)
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signature)
            .body(bytes)
            .send()
            .map_err(|e| self.network(e))?;
        self.finish(res, authority, Some(now))
    }
}
