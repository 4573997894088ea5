//! Two real servers, an upstream and a satellite, and tools to carry and doctor bundles.

use super::agent::Agent;
use super::{Api, Licensed, Server, VA};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};

pub struct Pair {
    pub upstream: Licensed,
    pub satellite: Server,
    pub sat_api: Api,
}

impl Pair {
    /// An upstream with account Acme / VA Lab holding `ess` x5 and `adv` x2 (covers ess),
    /// and a satellite with an account Acme not yet registered.
    pub async fn start() -> Pair {
        Self::start_with(vec![], vec![]).await
    }

    /// As `start`, with extra environment for the upstream and the satellite.
    pub async fn start_with(up_env: Vec<(String, String)>, sat_env: Vec<(String, String)>) -> Pair {
        let upstream = Licensed::start_with(up_env).await;
        upstream.perpetual("ess", 5).await;
        upstream
            .license(
                json!({ "tag": "adv", "name": "adv", "type": "perpetual", "quantity": 2,
                             "start": "2020-01-01", "substitutes": ["ess"] }),
            )
            .await;
        let satellite = Server::start_with(super::ServerOptions {
            env: sat_env,
            ..Default::default()
        });
        let sat_api = satellite.admin_api().await;
        sat_api.create_account("Acme").await;
        Pair {
            upstream,
            satellite,
            sat_api,
        }
    }

    pub async fn satellite_token(&self) -> String {
        let (s, b) = self
            .upstream
            .api
            .post(
                "/api/v1/accounts/Acme/satellite-tokens",
                json!({ "expires_in_days": 30 }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        b["token"].as_str().unwrap().to_string()
    }

    /// Registers the satellite's Acme connected to the upstream (its URL, its CA); returns
    /// the link's state as the satellite answers it.
    pub async fn register_connected(&self) -> Value {
        let token = self.satellite_token().await;
        let ca =
            std::fs::read_to_string(self.upstream.server.data_dir.join("tls/cert.pem")).unwrap();
        let (s, state) = self
            .sat_api
            .post(
                "/api/v1/accounts/Acme/upstream",
                json!({ "mode": "connected", "token": token, "url": self.upstream.server.url,
                        "ca_cert_pem": ca }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{state}");
        state
    }

    /// A connected sync now, from the satellite's admin API; it must apply.
    pub async fn sync_now(&self) {
        let (s, b) = self
            .sat_api
            .post("/api/v1/accounts/Acme/sync/now", json!({}))
            .await;
        assert_eq!(
            (s, b["result"].as_str()),
            (StatusCode::OK, Some("applied")),
            "{b}"
        );
    }

    /// Registers the satellite's Acme by files: request out, CLI import on the upstream,
    /// response back, CLI import on the satellite.
    pub async fn register_disconnected(&self) {
        let token = self.satellite_token().await;
        let res = self
            .sat_api
            .http
            .post(format!(
                "{}/api/v1/accounts/Acme/upstream",
                self.satellite.url
            ))
            .bearer_auth(&self.sat_api.token)
            .json(&json!({ "mode": "disconnected", "token": token }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "application/gzip");
        let request = self.satellite.dir.path().join("carry-registration.tar.gz");
        std::fs::write(&request, res.bytes().await.unwrap()).unwrap();
        let response = self.upstream_import(&request);
        let out = self
            .satellite
            .cli(&["bundle", "import", response.to_str().unwrap()]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(out.value("result"), "applied");
        let (_, state) = self.sat_api.get("/api/v1/accounts/Acme/upstream").await;
        assert_eq!(state["state"], "registered", "{state}");
    }

    /// Imports a request on the upstream with the CLI; returns the response bundle's path.
    pub fn upstream_import(&self, request: &Path) -> PathBuf {
        let out = self
            .upstream
            .server
            .cli(&["bundle", "import", request.to_str().unwrap()]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        PathBuf::from(out.value("bundle"))
    }

    /// One disconnected round: export on the satellite, carry, import, carry back, import.
    pub async fn sync_disconnected(&self) {
        let out = self
            .satellite
            .cli(&["bundle", "export", "--account", "Acme"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let response = self.upstream_import(Path::new(&out.value("bundle")));
        let out = self
            .satellite
            .cli(&["bundle", "import", response.to_str().unwrap()]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }

    /// Licenses as each side lists them: (tag, quantity, in_use, status).
    pub async fn pools(api: &Api) -> Vec<(String, i64, i64, String)> {
        let (s, b) = api.get(&format!("{VA}/licenses")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["tag"].as_str().unwrap().to_string(),
                    l["quantity"].as_i64().unwrap(),
                    l["in_use"].as_i64().unwrap(),
                    l["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    pub async fn assert_same_licenses_and_usage(&self) {
        let up = Self::pools(&self.upstream.api).await;
        let sat = Self::pools(&self.sat_api).await;
        assert!(!up.is_empty());
        assert_eq!(up, sat, "upstream and satellite agree");
    }
}

/// Agents registered on `server` (VA Lab, product `pid`, hosts `{pid}0`, `{pid}1`, ...)
/// with a fresh token, each having reported `ess` = its entry of `usage`.
pub async fn agents_on(server: &Server, api: &Api, pid: &str, usage: &[i64]) -> Vec<Agent> {
    let (s, b) = api
        .post(
            &format!("{VA}/tokens"),
            json!({ "expires_in_days": 30, "export_controlled": false }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let token = b["token"].as_str().unwrap().to_string();
    let mut agents = vec![];
    for (i, n) in usage.iter().enumerate() {
        let a = Agent::new();
        let out = a.register(server, &token, pid, &format!("{pid}{i}"));
        assert_eq!(out.code, 0, "{}", out.stderr);
        let out = a.report(&[("ess", *n)]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        agents.push(a);
    }
    agents
}

/// The members of a bundle, in order.
pub fn members(path: &Path) -> Vec<(String, Vec<u8>)> {
    let f = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut buf = vec![];
            e.read_to_end(&mut buf).unwrap();
            (name, buf)
        })
        .collect()
}

/// Writes members back as a valid gzip'd tar (for doctored bundles).
pub fn pack(path: &Path, members: &[(String, Vec<u8>)]) {
    let f = std::fs::File::create(path).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        f,
        flate2::Compression::fast(),
    ));
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append(&h, data.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

/// Replaces the manifest and re-signs it with `key`.
pub fn resign(
    members: &mut [(String, Vec<u8>)],
    key: &satellite::crypto::AuthorityKey,
    edit: impl FnOnce(&mut Value),
) {
    let mut manifest: Value = serde_json::from_slice(&members[0].1).unwrap();
    edit(&mut manifest);
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    members[1].1 = key.sign(&bytes).to_vec();
    members[0].1 = bytes;
}
