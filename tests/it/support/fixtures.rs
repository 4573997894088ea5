//! One setup for the reservation and export-key tests: an upstream with account `Acme`
//! and VA `Lab` holding the licenses a test names (`Licensed::with_licenses`), real
//! `satellite-agent`s registered in `Lab` (`registered_agent`), and reservations made by
//! the admin API for a fresh agent's request code (`reserve`).

use super::agent::Agent;
use super::{Api, Licensed, VA};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The admin API's reservations of account `Acme`.
pub const RES: &str = "/api/v1/accounts/Acme/reservations";

/// A license a fixture starts with: perpetual, from 2020-01-01.
pub struct Lic {
    pub tag: &'static str,
    pub name: &'static str,
    pub quantity: i64,
    pub export_controlled: bool,
}

impl Lic {
    /// A plain perpetual license named after its tag.
    pub fn plain(tag: &'static str, quantity: i64) -> Lic {
        Lic {
            tag,
            name: tag,
            quantity,
            export_controlled: false,
        }
    }

    pub fn named(mut self, name: &'static str) -> Lic {
        self.name = name;
        self
    }

    pub fn export_controlled(mut self) -> Lic {
        self.export_controlled = true;
        self
    }
}

impl Licensed {
    /// An upstream with `Acme`/`Lab` and these licenses in `Lab`.
    pub async fn with_licenses(licenses: &[Lic]) -> Licensed {
        let l = Licensed::start().await;
        for lic in licenses {
            let mut body = json!({ "tag": lic.tag, "name": lic.name, "type": "perpetual",
                                   "quantity": lic.quantity, "start": "2020-01-01" });
            if lic.export_controlled {
                body["export_controlled"] = json!(true);
            }
            l.license(body).await;
        }
        l
    }

    /// Turns on `export_approval` for `Lab`: export key requests wait for an admin.
    pub async fn require_export_approval(&self) {
        let (s, b) = self
            .api
            .patch(
                &format!("{VA}/settings"),
                json!({ "export_approval": true }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }

    /// A real agent registered in `Lab` with a fresh token.
    pub async fn registered_agent(&self, pid: &str, sn: &str) -> Agent {
        let token = self.simple_token().await;
        let agent = Agent::new();
        let out = agent.register(&self.server, &token, pid, sn);
        assert_eq!(out.code, 0, "{}", out.stderr);
        agent
    }
}

/// The request code `agent` prints for `pid`/`sn`: alone on one line, naming the UDI.
pub fn request_code(agent: &Agent, pid: &str, sn: &str, universal: bool) -> String {
    let mut args = vec!["reserve", "request", "--pid", pid, "--sn", sn];
    if universal {
        args.push("--universal");
    }
    let out = agent.run(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let code = out.stdout.trim().to_string();
    assert!(code.starts_with(&format!("CB-Z{pid}:{sn}-")), "{code}");
    assert_eq!(out.stdout.lines().count(), 1, "the code alone on one line");
    code
}

/// A reservation the admin API created (201) for a fresh agent's request code.
pub struct Reserved {
    pub agent: Agent,
    pub request_code: String,
    pub id: String,
    /// The created reservation as the API answered it.
    pub body: Value,
}

impl Reserved {
    pub fn authorization_code(&self) -> &str {
        self.body["authorization_code"].as_str().unwrap()
    }
}

/// A fresh real agent asks for a request code for `pid`/`sn`, and `api` reserves
/// `licenses` (`[{tag, count}]`) in `Lab` for it.
pub async fn reserve(api: &Api, pid: &str, sn: &str, licenses: Value) -> Reserved {
    let agent = Agent::new();
    let request_code = request_code(&agent, pid, sn, false);
    let (s, body) = api
        .post(
            RES,
            json!({"request_code": request_code, "virtual_account": "Lab", "licenses": licenses}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    Reserved {
        agent,
        request_code,
        id,
        body,
    }
}
