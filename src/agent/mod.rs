//! The reference product agent's library part: its state directory, its signed HTTPS
//! client, and the operations `satellite-agent` offers (CONTRACT.md section 4).

pub mod client;
pub mod export;
pub mod lifecycle;
pub mod ops;
pub mod reserve;
pub mod run;
pub mod state;

/// Everything that can go wrong for the agent; the binary prints it and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    State(String),
    #[error("cannot reach {url}: {message}")]
    Network { url: String, message: String },
    #[error("server refused ({status}): {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the server's answer is not signed by the pinned authority key; refusing it")]
    BadResponseSignature,
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Usage(String),
}

impl AgentError {
    /// The server's error code, when the server refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            AgentError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}
