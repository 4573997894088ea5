//! Product agents for tests: the real `satellite-agent` binary, and a raw protocol client
//! for requests the real agent would never send (tampered, stale, wrongly signed).

use super::{async_client, run_cli_env, CliOutput, Server, AGENT};
use base64::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey};
use reqwest::StatusCode;
use satellite::crypto::agent_sig;
use serde_json::{json, Value};
use std::path::PathBuf;

/// A `satellite-agent` with its own state dir.
pub struct Agent {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Agent {
    pub fn new() -> Agent {
        Agent {
            dir: tempfile::tempdir().expect("agent dir"),
            env: vec![],
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Runs the agent with `--state-dir` and, if set, a clock offset like the server's.
    pub fn run(&self, args: &[&str]) -> CliOutput {
        let state = self.state_dir();
        let mut full = vec!["--state-dir", state.to_str().unwrap()];
        full.extend_from_slice(args);
        run_cli_env(AGENT, &full, None, None, &self.env)
    }

    pub fn register(&self, server: &Server, token: &str, pid: &str, sn: &str) -> CliOutput {
        let ca = server.data_dir.join("tls/cert.pem");
        self.run(&[
            "register",
            "--url",
            &server.url,
            "--token",
            token,
            "--pid",
            pid,
            "--sn",
            sn,
            "--ca-cert",
            ca.to_str().unwrap(),
        ])
    }

    pub fn report(&self, licenses: &[(&str, i64)]) -> CliOutput {
        let args: Vec<String> = licenses.iter().map(|(t, c)| format!("{t}={c}")).collect();
        let mut full = vec!["report"];
        for a in &args {
            full.extend(["--license", a.as_str()]);
        }
        self.run(&full)
    }

    /// The agent's key, as saved in its state dir.
    pub fn key(&self) -> SigningKey {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let pem = std::fs::read_to_string(self.state_dir().join("agent.key")).unwrap();
        SigningKey::from_pkcs8_pem(&pem).unwrap()
    }
}

/// A protocol client speaking JSON directly, checking every response signature.
pub struct RawAgent {
    pub base: String,
    pub key: SigningKey,
    pub instance_id: String,
    pub authority: VerifyingKey,
    http: reqwest::Client,
}

pub struct RawAnswer {
    pub status: StatusCode,
    pub body: Value,
}

impl RawAgent {
    pub async fn authority(base: &str) -> VerifyingKey {
        let res = async_client(false)
            .get(format!("{base}/agent/v1/authority"))
            .send()
            .await
            .unwrap();
        let v: Value = res.json().await.unwrap();
        agent_sig::decode_public_key(v["public_key"].as_str().unwrap()).unwrap()
    }

    /// POSTs an unsigned JSON body and checks the response signature.
    pub async fn post_unsigned(base: &str, path: &str, body: &[u8]) -> RawAnswer {
        let authority = Self::authority(base).await;
        let res = async_client(false)
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        check_signed(res, &authority).await
    }

    /// Registers a fresh key for (pid, sn) with `token`.
    pub async fn register(
        base: &str,
        token: &str,
        pid: &str,
        sn: &str,
    ) -> (RawAnswer, Option<RawAgent>) {
        Self::register_with(base, token, pid, sn, json!({})).await
    }

    /// Like `register`, with `extra` fields merged into the body (`reregister`, `hostname`).
    pub async fn register_with(
        base: &str,
        token: &str,
        pid: &str,
        sn: &str,
        extra: Value,
    ) -> (RawAnswer, Option<RawAgent>) {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let mut body = json!({
            "token": token,
            "udi": { "pid": pid, "sn": sn },
            "public_key": base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes()),
            "product": { "name": "raw", "version": "1" },
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let answer =
            Self::post_unsigned(base, "/agent/v1/register", body.to_string().as_bytes()).await;
        let agent = (answer.status == StatusCode::CREATED).then(|| RawAgent {
            base: base.to_string(),
            key: key.clone(),
            instance_id: answer.body["instance_id"].as_str().unwrap().to_string(),
            authority: agent_sig::decode_public_key(
                answer.body["authority_public_key"].as_str().unwrap(),
            )
            .unwrap(),
            http: async_client(false),
        });
        (answer, agent)
    }

    /// The same agent on a new connection pool (its server restarted on the same port).
    pub fn reconnected(&self) -> RawAgent {
        RawAgent {
            base: self.base.clone(),
            key: self.key.clone(),
            instance_id: self.instance_id.clone(),
            authority: self.authority,
            http: async_client(false),
        }
    }

    /// Another key signing for this agent's instance (a forger's, or a replaced one).
    pub fn signing_with(&self, key: SigningKey) -> RawAgent {
        RawAgent {
            key,
            ..self.reconnected()
        }
    }

    pub fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    /// A signed POST with full control: what is signed, what is sent, the headers.
    pub async fn send(
        &self,
        path: &str,
        signed_body: &[u8],
        sent_body: &[u8],
        timestamp: &str,
        key: &SigningKey,
        instance: Option<&str>,
    ) -> RawAnswer {
        let signature = agent_sig::sign_request(key, "POST", path, timestamp, signed_body);
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("X-Satellite-Timestamp", timestamp)
            .header("X-Satellite-Signature", signature)
            .body(sent_body.to_vec());
        if let Some(id) = instance {
            req = req.header("X-Satellite-Instance", id);
        }
        check_signed(req.send().await.unwrap(), &self.authority).await
    }

    /// A correctly signed POST of `body` now.
    pub async fn post(&self, path: &str, body: &Value) -> RawAnswer {
        let bytes = body.to_string().into_bytes();
        let ts = Self::now().to_string();
        self.send(
            path,
            &bytes,
            &bytes,
            &ts,
            &self.key,
            Some(&self.instance_id),
        )
        .await
    }

    pub async fn report(
        &self,
        report_id: &str,
        measured_at: &str,
        entitlements: &[(&str, i64)],
    ) -> RawAnswer {
        let ents: Vec<Value> = entitlements
            .iter()
            .map(|(t, c)| json!({ "tag": t, "count": c }))
            .collect();
        self.post(
            "/agent/v1/usage",
            &json!({ "report_id": report_id, "measured_at": measured_at, "entitlements": ents }),
        )
        .await
    }
}

async fn check_signed(res: reqwest::Response, authority: &VerifyingKey) -> RawAnswer {
    let status = res.status();
    let signature = res
        .headers()
        .get("x-satellite-response-signature")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("response {status} is not signed"));
    let bytes = res.bytes().await.unwrap();
    assert!(
        agent_sig::verify_b64(authority, &bytes, &signature),
        "response signature verifies"
    );
    RawAnswer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

pub fn rfc3339(unix: i64) -> String {
    satellite::clock::rfc3339(unix)
}
