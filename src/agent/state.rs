//! The agent's state directory: its ed25519 key (PKCS#8 PEM, 0600) and a JSON file with
//! the pinned authority key, the id certificate and the last authorization. Writes go to
//! a temporary file first and are renamed into place, so a crash never leaves half a file.

use super::AgentError;
use crate::crypto::idcert::SignedCertificate;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entitlement {
    pub tag: String,
    pub count: i64,
    pub status: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Authorization {
    pub status: String,
    pub renew_after: Option<i64>,
    pub expires_at: Option<i64>,
    pub entitlements: Vec<Entitlement>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Registration {
    pub url: String,
    pub ca_cert_pem: Option<String>,
    pub insecure: bool,
    pub authority_id: String,
    pub authority_public_key: String,
    pub instance_id: String,
    pub virtual_account: String,
    pub pid: String,
    pub sn: String,
    pub id_certificate: SignedCertificate,
    pub cert_renew_after: i64,
    pub cert_expires_at: i64,
    /// The HTTP CONNECT proxy given at registration, used for every later call.
    #[serde(default)]
    pub proxy: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AgentState {
    /// When this agent first ran: the 90-day evaluation period starts here.
    pub first_start: i64,
    pub registration: Option<Registration>,
    pub authorization: Option<Authorization>,
}

pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    /// Another file kept in the state dir (export keys keep their own).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("agent.key")
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Loads the key and state, creating both on first use.
    pub fn open(&self, now: i64) -> Result<(SigningKey, AgentState), AgentError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| AgentError::State(format!("cannot create {}: {e}", self.dir.display())))?;
        let key = if self.key_path().exists() {
            let pem = std::fs::read_to_string(self.key_path())
                .map_err(|e| AgentError::State(format!("cannot read agent key: {e}")))?;
            SigningKey::from_pkcs8_pem(&pem)
                .map_err(|e| AgentError::State(format!("agent key is not valid: {e}")))?
        } else {
            let key = SigningKey::generate(&mut rand_core::OsRng);
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| AgentError::State(e.to_string()))?;
            crate::crypto::write_private(&self.key_path(), pem.as_bytes())
                .map_err(|e| AgentError::State(e.to_string()))?;
            key
        };
        let state = if self.state_path().exists() {
            let text = std::fs::read_to_string(self.state_path())
                .map_err(|e| AgentError::State(format!("cannot read agent state: {e}")))?;
            serde_json::from_str(&text)
                .map_err(|e| AgentError::State(format!("agent state is not valid: {e}")))?
        } else {
            let state = AgentState {
                first_start: now,
                ..Default::default()
            };
            self.save(&state)?;
            state
        };
        Ok((key, state))
    }

    /// Replaces the key (a new key is made at each registration).
    pub fn replace_key(&self, key: &SigningKey) -> Result<(), AgentError> {
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| AgentError::State(e.to_string()))?;
        let tmp = self.dir.join("agent.key.new");
        let _ = std::fs::remove_file(&tmp);
        crate::crypto::write_private(&tmp, pem.as_bytes())
            .map_err(|e| AgentError::State(e.to_string()))?;
        std::fs::rename(&tmp, self.key_path())
            .map_err(|e| AgentError::State(format!("cannot replace agent key: {e}")))
    }

    pub fn save(&self, state: &AgentState) -> Result<(), AgentError> {
        let text =
            serde_json::to_string_pretty(state).map_err(|e| AgentError::State(e.to_string()))?;
        let tmp = self.dir.join("state.json.new");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, self.state_path()))
            .map_err(|e| AgentError::State(format!("cannot save agent state: {e}")))
    }
}
