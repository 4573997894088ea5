//! Test support: start the real `satellite` binary on port 0 in a temp dir, and talk
//! to it over HTTPS as the admin API, a browser session and the CLI do.

#![allow(dead_code)]

pub mod agent;
pub mod fixtures;
pub mod proxy;
pub mod sync;
pub mod webdriver;

use reqwest::StatusCode;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const SATELLITE: &str = env!("CARGO_BIN_EXE_satellite");
pub const AGENT: &str = env!("CARGO_BIN_EXE_satellite-agent");

/// A running server process; killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    pub admin_password: Option<String>,
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub role: &'static str,
}

pub struct ServerOptions {
    pub role: &'static str,
    pub env: Vec<(String, String)>,
    /// HOST:PORT; a random free port when None.
    pub listen: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            role: "satellite",
            env: vec![],
            listen: None,
        }
    }
}

impl ServerOptions {
    pub fn upstream() -> Self {
        Self {
            role: "upstream",
            ..Default::default()
        }
    }

    /// The server's clock shifted by `days`.
    pub fn days_later(mut self, days: i64) -> Self {
        self.env.push((
            "SATELLITE_CLOCK_OFFSET_SECONDS".into(),
            (days * 86_400).to_string(),
        ));
        self
    }
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(ServerOptions::default())
    }

    pub fn start_with(options: ServerOptions) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        Self::start_in(dir, data_dir, options)
    }

    /// Starts on an existing data dir (for restart tests).
    pub fn start_in(dir: tempfile::TempDir, data_dir: PathBuf, options: ServerOptions) -> Server {
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut cmd = Command::new(SATELLITE);
        let listen = options
            .listen
            .clone()
            .unwrap_or_else(|| "127.0.0.1:0".into());
        cmd.args(["serve", "--listen", &listen, "--role", options.role])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--bundle-dir")
            .arg(dir.path().join("bundles"))
            .env("SATELLITE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, v) in &options.env {
            cmd.env(k, v);
        }
        let first_start = !data_dir.join("satellite.db").exists();
        let mut child = cmd.spawn().expect("spawn satellite");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        // `url=` comes first; on a first start `admin_password=` follows at once.
        let url = lines.next().and_then(|l| l.ok()).and_then(|l| {
            l.strip_prefix("url=")
                .map(|u| u.trim_end_matches('/').to_string())
        });
        let admin_password = if first_start && url.is_some() {
            lines
                .next()
                .and_then(|l| l.ok())
                .and_then(|l| l.strip_prefix("admin_password=").map(str::to_string))
        } else {
            None
        };
        let url = url.unwrap_or_else(|| {
            let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
            panic!("server printed no url; log:\n{log}")
        });
        // Drain the rest of stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let server = Server {
            child,
            url,
            admin_password,
            dir,
            data_dir,
            role: options.role,
        };
        server.wait_ready();
        server
    }

    /// The listener is bound before `url=` is printed; this only guards against a server
    /// that died right after. Plain TCP so it also works inside async tests.
    fn wait_ready(&self) {
        let addr = self
            .url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .to_string();
        for _ in 0..100 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server never accepted connections:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Sends a signal (`TERM`, `INT`, ...) to the server process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `limit` for the server to exit by itself; its exit status, if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + limit;
        while std::time::Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Stops the server, keeping its temp dir for a restart.
    pub fn stop(mut self) -> (tempfile::TempDir, PathBuf) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        (dir, self.data_dir.clone())
    }

    /// Stops and starts again on the same data dir and port, with new options.
    pub fn restart(self, mut options: ServerOptions) -> Server {
        let addr = self
            .url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .to_string();
        options.listen = Some(addr);
        let (dir, data_dir) = self.stop();
        Server::start_in(dir, data_dir, options)
    }

    pub fn bundle_dir(&self) -> PathBuf {
        self.dir.path().join("bundles")
    }

    /// Runs `satellite ARGS --data-dir DIR` and returns (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        self.cli_with_stdin(args, None)
    }

    pub fn cli_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> CliOutput {
        run_cli(SATELLITE, args, Some(&self.data_dir), stdin)
    }

    /// Creates an API client with the CLI and exchanges its credentials for a token.
    pub async fn api(&self, role: &str, account: Option<&str>) -> Api {
        let name = format!("client-{}", uuid_like());
        let mut args = vec!["api-client", "add", "--name", &name, "--role", role];
        if let Some(a) = account {
            args.extend(["--account", a]);
        }
        let out = self.cli(&args);
        assert_eq!(out.code, 0, "api-client add failed: {}", out.stderr);
        let id = out.value("client_id");
        let secret = out.value("client_secret");
        Api::login(&self.url, &id, &secret).await
    }

    /// A system-admin API client.
    pub async fn admin_api(&self) -> Api {
        self.api("system-admin", None).await
    }

    /// A browser-like session logged in as a fresh user with the given role.
    pub async fn session(&self, role: &str, account: Option<&str>) -> Session {
        let username = format!("u{}", uuid_like());
        let password = "correct horse battery staple";
        let mut args = vec![
            "user",
            "add",
            "--username",
            &username,
            "--role",
            role,
            "--password-stdin",
        ];
        if let Some(a) = account {
            args.extend(["--account", a]);
        }
        let out = self.cli_with_stdin(&args, Some(password));
        assert_eq!(out.code, 0, "user add failed: {}", out.stderr);
        let session = Session::new(&self.url);
        let res = session.login(&username, password).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "login as {username}");
        session
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// The value of a `key=value` line of stdout.
    pub fn value(&self, key: &str) -> String {
        let prefix = format!("{key}=");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {key}= in output: {}", self.stdout))
            .to_string()
    }
}

pub fn run_cli(
    bin: &str,
    args: &[&str],
    data_dir: Option<&Path>,
    stdin: Option<&str>,
) -> CliOutput {
    run_cli_env(bin, args, data_dir, stdin, &[])
}

/// Like `run_cli`, with extra environment for the child only (tests run in parallel, so
/// the test process's own environment is never changed).
pub fn run_cli_env(
    bin: &str,
    args: &[&str],
    data_dir: Option<&Path>,
    stdin: Option<&str>,
    env: &[(String, String)],
) -> CliOutput {
    use std::io::Write;
    let mut cmd = Command::new(bin);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(d) = data_dir {
        cmd.arg("--data-dir").arg(d);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn cli");
    if let Some(mut pipe) = child.stdin.take() {
        if let Some(text) = stdin {
            let _ = writeln!(pipe, "{text}");
        }
    }
    let out = child.wait_with_output().expect("cli output");
    CliOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A blocking client that accepts the server's self-signed certificate.
/// Idle connections are dropped well before the server's keep-alive (5 s) closes them, so
/// a request never goes out on a connection the server is closing at that moment.
const CLIENT_IDLE: Duration = Duration::from_secs(2);

pub fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .pool_idle_timeout(CLIENT_IDLE)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

pub fn async_client(cookies: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .cookie_store(cookies)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(CLIENT_IDLE)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// An admin API client holding a bearer token.
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    pub async fn login(base: &str, client_id: &str, secret: &str) -> Api {
        let http = async_client(false);
        let res = http
            .post(format!("{base}/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
            ])
            .send()
            .await
            .expect("token request");
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.expect("token json");
        assert_eq!(body["token_type"], "bearer");
        assert!(body["expires_in"].as_i64().unwrap() > 0);
        Api {
            base: base.to_string(),
            token: body["access_token"].as_str().unwrap().to_string(),
            http,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let res = req.bearer_auth(&self.token).send().await.expect("request");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.put(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn create_account(&self, name: &str) {
        let (s, b) = self
            .post("/api/v1/accounts", serde_json::json!({ "name": name }))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }

    pub async fn create_va(&self, account: &str, va: &str) {
        let (s, b) = self
            .post(
                &format!("/api/v1/accounts/{account}/virtual-accounts"),
                serde_json::json!({ "name": va }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
}

/// A browser-like session: cookie jar, CSRF tokens scraped from forms.
pub struct Session {
    pub base: String,
    pub http: reqwest::Client,
}

/// The value of the first hidden `csrf` input in a page.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("page has a csrf field") + marker.len();
    let end = html[start..].find('"').expect("csrf end") + start;
    html[start..end].to_string()
}

impl Session {
    pub fn new(base: &str) -> Session {
        Session {
            base: base.to_string(),
            http: async_client(true),
        }
    }

    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        let page = self.get("/login").await.text().await.expect("login page");
        let csrf = csrf_of(&page);
        self.http
            .post(format!("{}/login", self.base))
            .form(&[
                ("username", username),
                ("password", password),
                ("csrf", csrf.as_str()),
                ("next", "/"),
            ])
            .send()
            .await
            .expect("login")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("get")
    }

    /// GET a page and return (status, html).
    pub async fn page(&self, path: &str) -> (StatusCode, String) {
        let res = self.get(path).await;
        let status = res.status();
        (status, res.text().await.unwrap_or_default())
    }

    /// Submits a form found on `page_path`: fetches the page for its CSRF token first.
    pub async fn submit(
        &self,
        page_path: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, String, Option<String>) {
        let (_, html) = self.page(page_path).await;
        let csrf = csrf_of(&html);
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &csrf));
        self.post_form(action, &form).await
    }

    pub async fn post_form(
        &self,
        action: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String, Option<String>) {
        let res = self
            .http
            .post(format!("{}{action}", self.base))
            .form(form)
            .send()
            .await
            .expect("post");
        let status = res.status();
        let location = res
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap_or("").to_string());
        (status, res.text().await.unwrap_or_default(), location)
    }
}

/// An account `Acme` with a virtual account `Lab`, licenses and a token, on an upstream
/// (where licenses are created by the admin API).
pub struct Licensed {
    pub server: Server,
    pub api: Api,
}

pub const VA: &str = "/api/v1/accounts/Acme/virtual-accounts/Lab";

impl Licensed {
    pub async fn start() -> Licensed {
        Self::start_with(vec![]).await
    }

    pub async fn start_with(env: Vec<(String, String)>) -> Licensed {
        let server = Server::start_with(ServerOptions {
            env,
            ..ServerOptions::upstream()
        });
        let api = server.admin_api().await;
        api.create_account("Acme").await;
        api.create_va("Acme", "Lab").await;
        Licensed { server, api }
    }

    pub async fn license(&self, body: Value) {
        let (s, b) = self.api.post(&format!("{VA}/licenses"), body).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }

    pub async fn perpetual(&self, tag: &str, quantity: i64) {
        self.license(serde_json::json!({
            "tag": tag, "name": tag, "type": "perpetual", "quantity": quantity, "start": "2020-01-01"
        }))
        .await;
    }

    pub async fn token(&self, body: Value) -> String {
        let (s, b) = self.api.post(&format!("{VA}/tokens"), body).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        b["token"].as_str().unwrap().to_string()
    }

    pub async fn simple_token(&self) -> String {
        self.token(serde_json::json!({ "expires_in_days": 30, "export_controlled": false }))
            .await
    }

    /// The VA's licenses keyed by tag.
    pub async fn pools(&self) -> std::collections::BTreeMap<String, Value> {
        let (s, b) = self.api.get(&format!("{VA}/licenses")).await;
        assert_eq!(s, StatusCode::OK);
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["tag"].as_str().unwrap().to_string(), l.clone()))
            .collect()
    }

    /// `satellite check` says every counter equals a recount.
    pub fn assert_counters_exact(&self) {
        let out = self.server.cli(&["check"]);
        assert_eq!(out.code, 0, "counters differ: {}", out.stderr);
        assert_eq!(out.value("counters"), "ok");
    }
}

/// A CSV document parsed back as a client would: (header, rows).
pub fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}
