//! A small W3C WebDriver client for headless Chromium through chromedriver: enough to
//! log in, fill forms, click, read text and save screenshots.

use base64::Engine;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

fn find_binary(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Where screenshots go, for people to look at: target/screenshots/.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

impl Browser {
    /// Logs in at `base` as the server's initial `admin` (one-time password) and replaces
    /// that password with "browser chosen passphrase", as a new admin's first visit does.
    pub async fn first_admin_login(&self, server: &super::Server, base: &str) {
        let initial = server
            .admin_password
            .as_deref()
            .expect("a first start printed the admin password");
        self.goto(&format!("{base}/login")).await;
        self.fill("#username", "admin").await;
        self.fill("#password", initial).await;
        self.click("#login").await;
        self.fill("#current", initial).await;
        self.fill("#new_password", "browser chosen passphrase")
            .await;
        self.fill("#confirm", "browser chosen passphrase").await;
        self.click("#change-password").await;
    }

    /// Starts chromedriver and a headless Chromium session. Returns None when they are
    /// not installed, unless CI=true, where a missing browser is a failure.
    pub async fn start() -> Option<Browser> {
        let driver_bin = find_binary(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
        let chrome_bin = find_binary(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
        let (Some(driver_bin), Some(chrome_bin)) = (driver_bin, chrome_bin) else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("chromium and chromium-driver must be installed in CI");
            }
            eprintln!("skipping browser test: chromium or chromedriver not installed");
            return None;
        };
        let port = free_port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if v["value"]["ready"] == true {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            // Leave confirm() dialogs for the test to accept; never dismiss them silently.
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": chrome_bin,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let res: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session json");
        let session = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {res}"))
            .to_string();
        let browser = Browser {
            driver,
            base,
            session,
            http,
            _profile: profile,
        };
        // Element lookups retry for a while: after a click the next page may still load.
        browser
            .call(
                reqwest::Method::POST,
                "/timeouts",
                Some(json!({ "implicit": 10_000 })),
            )
            .await;
        Some(browser)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await
            .expect("webdriver call")
            .json()
            .await
            .expect("webdriver json");
        if let Some(err) = v["value"].get("error") {
            panic!("webdriver {path}: {err} {}", v["value"]["message"]);
        }
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The browser's own reload of the current page (F5).
    pub async fn refresh(&self) {
        self.call(reqwest::Method::POST, "/refresh", Some(json!({})))
            .await;
        self.settle().await;
    }

    pub async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn set_size(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        if found.as_array().is_none_or(|a| a.is_empty()) {
            // Leave evidence for people: what the page showed when the element was missing.
            let path = self.screenshot("failure-missing-element").await;
            panic!(
                "no element {css} on {}; screenshot {}",
                self.current_url().await,
                path.display()
            );
        }
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        v[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    pub async fn exists(&self, css: &str) -> bool {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        v.as_array().is_some_and(|a| !a.is_empty())
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Runs a script; None when the browser refuses (e.g. a dialog is open).
    pub async fn script(&self, script: &str) -> Option<Value> {
        let url = format!("{}/session/{}/execute/sync", self.base, self.session);
        let v: Value = self
            .http
            .post(url)
            .json(&json!({ "script": script, "args": [] }))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        if v["value"].get("error").is_some() {
            return None;
        }
        Some(v["value"].clone())
    }

    /// Waits until the current page has loaded completely (clicks during a load can be lost).
    async fn settle(&self) {
        for _ in 0..100 {
            match self.script("return document.readyState").await {
                Some(v) if v == "complete" => return,
                None => return,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Clicks, then waits for the page the click leads to: the current document is marked,
    /// and the wait ends when a new document has replaced it and finished loading (or after
    /// 5 s, for clicks that stay on the page, or at once when a dialog opened).
    pub async fn click(&self, css: &str) {
        self.settle().await;
        let _ = self
            .script("window.__before_click = true; return true")
            .await;
        self.click_only(css).await;
        for _ in 0..100 {
            match self.script("return window.__before_click === true").await {
                Some(v) if v == false => break,
                None => return,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        self.settle().await;
    }

    /// Clicks something that downloads a file (the page stays as it is).
    pub async fn click_download(&self, css: &str) {
        self.settle().await;
        self.click_only(css).await;
    }

    async fn click_only(&self, css: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Accepts a `confirm()` dialog if one is open.
    pub async fn accept_alert(&self) {
        let url = format!("{}/session/{}/alert/accept", self.base, self.session);
        let _ = self.http.post(url).json(&json!({})).send().await;
    }

    /// Sets a file input's path (for uploads).
    pub async fn upload(&self, css: &str, path: &std::path::Path) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": path.display().to_string() })),
        )
        .await;
    }

    /// Lets downloads land in `dir` without asking.
    pub async fn allow_downloads(&self, dir: &std::path::Path) {
        let url = format!("{}/session/{}/goog/cdp/execute", self.base, self.session);
        let body = json!({ "cmd": "Browser.setDownloadBehavior",
                           "params": { "behavior": "allow", "downloadPath": dir.display().to_string() } });
        let res = self.http.post(url).json(&body).send().await.expect("cdp");
        assert!(res.status().is_success(), "downloads enabled");
    }

    /// Waits for a finished download whose name contains `part` and that is not in `seen`.
    pub async fn downloaded(&self, dir: &std::path::Path, part: &str) -> PathBuf {
        for _ in 0..100 {
            let found = std::fs::read_dir(dir).ok().and_then(|entries| {
                entries.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
                    let name = p
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .to_string();
                    name.contains(part) && name.ends_with(".tar.gz")
                })
            });
            if let Some(p) = found {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no download containing {part} in {}", dir.display());
    }

    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves a PNG under target/screenshots/NAME.png and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("png base64");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    pub async fn quit(mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
