//! Operations (CONTRACT section 7): `/metrics` scraped as Prometheus would, behind its
//! bearer on the main listener and open on `--metrics-listen`.

use crate::support::agent::{rfc3339, Agent, RawAgent};
use crate::support::{async_client, Licensed, ServerOptions};
use reqwest::StatusCode;
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Parses a scrape with a Prometheus text parser and returns its samples.
fn parse(text: &str) -> Vec<prometheus_parse::Sample> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines)
        .expect("valid Prometheus text")
        .samples
}

fn value(s: &prometheus_parse::Sample) -> f64 {
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => f64::NAN,
    }
}

fn find<'a>(
    samples: &'a [prometheus_parse::Sample],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a prometheus_parse::Sample> {
    samples.iter().find(|s| {
        s.metric == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(k).is_some_and(|got| got == *v))
    })
}

#[tokio::test]
async fn metrics_need_the_bearer_and_count_what_happened() {
    let port = free_port();
    let l = Licensed::start_with(vec![
        ("SATELLITE_METRICS_TOKEN".into(), "scrape-secret-123".into()),
        (
            "SATELLITE_METRICS_LISTEN".into(),
            format!("127.0.0.1:{port}"),
        ),
        ("SATELLITE_RATE_OAUTH_PER_MINUTE".into(), "3".into()),
    ])
    .await;
    l.perpetual("ess", 1).await;
    let token = l.simple_token().await;
    let agent = Agent::new();
    let out = agent.register(&l.server, &token, "C9300", "FOC-M1");
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Three of a pool of one: short by two.
    let out = agent.report(&[("ess", 3)]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let client = async_client(false);
    // Someone guessing client secrets runs into the rate limit.
    let mut limited = 0;
    for _ in 0..5 {
        let res = client
            .post(format!("{}/oauth/token", l.server.url))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "x"),
                ("client_secret", "y"),
            ])
            .send()
            .await
            .unwrap();
        limited += u32::from(res.status() == StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(limited >= 2, "{limited}");
    let url = format!("{}/metrics", l.server.url);
    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let wrong = client.get(&url).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let res = client
        .get(&url)
        .bearer_auth("scrape-secret-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text().await.unwrap();
    let samples = parse(&text);

    let registrations = find(&samples, "satellite_registrations_total", &[]).unwrap();
    assert_eq!(value(registrations), 1.0);
    let reports = find(&samples, "satellite_usage_reports_total", &[]).unwrap();
    assert_eq!(value(reports), 1.0);
    let requests = find(
        &samples,
        "satellite_http_requests_total",
        &[("route", "/agent/v1/register"), ("status", "201")],
    )
    .unwrap();
    assert_eq!(value(requests), 1.0);
    // Routes are patterns, never raw paths full of names.
    assert!(
        find(
            &samples,
            "satellite_http_requests_total",
            &[("route", "/api/v1/accounts/:a/virtual-accounts/:va/licenses")],
        )
        .is_some(),
        "{:?}",
        samples
            .iter()
            .filter_map(|s| s.labels.get("route"))
            .collect::<Vec<_>>()
    );
    assert!(!samples
        .iter()
        .any(|s| s.labels.get("route").is_some_and(|r| r.contains("Acme"))));
    let latency = samples
        .iter()
        .find(|s| {
            s.metric == "satellite_http_request_duration_seconds"
                && s.labels.get("route") == Some("/agent/v1/usage")
        })
        .unwrap();
    match &latency.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert!(buckets.iter().any(|b| b.count >= 1.0))
        }
        other => panic!("latency is not a histogram: {other:?}"),
    }
    let short = find(
        &samples,
        "satellite_pool_shortfall",
        &[
            ("account", "Acme"),
            ("virtual_account", "Lab"),
            ("tag", "ess"),
        ],
    )
    .unwrap();
    assert_eq!(value(short), 2.0);
    // Every write went through the group-commit writer: its batch sizes are a histogram.
    let batches = samples
        .iter()
        .find(|s| s.metric == "satellite_group_commit_batch_size")
        .unwrap();
    match &batches.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert!(buckets.iter().any(|b| b.count >= 1.0), "{buckets:?}")
        }
        other => panic!("batch sizes are not a histogram: {other:?}"),
    }
    // SQLite's counters for that writer: it committed, wrote pages and read some.
    let sqlite = |name: &str| value(find(&samples, name, &[]).unwrap());
    assert!(sqlite("satellite_sqlite_commits_total") >= 1.0);
    assert!(sqlite("satellite_sqlite_pages_written_total") >= 1.0);
    assert!(
        sqlite("satellite_sqlite_cache_hits_total") + sqlite("satellite_sqlite_cache_misses_total")
            >= 1.0
    );
    assert!(sqlite("satellite_sqlite_cache_used_bytes") > 0.0);
    let guessed = find(
        &samples,
        "satellite_rate_limited_total",
        &[("route", "/oauth/token")],
    )
    .unwrap();
    assert_eq!(value(guessed), f64::from(limited));
    let db = find(&samples, "satellite_database_bytes", &[]).unwrap();
    assert!(value(db) > 0.0);
    // The certificate's end, for an alert rule well before it.
    let tls = find(
        &samples,
        "satellite_tls_certificate_expiry_timestamp_seconds",
        &[],
    )
    .unwrap();
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(value(tls) > now + 700.0 * 86_400.0, "{}", value(tls));

    // The private listener answers without a bearer, and serves nothing else.
    let plain = reqwest::Client::new();
    let open = plain
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), StatusCode::OK);
    let samples = parse(&open.text().await.unwrap());
    assert!(find(&samples, "satellite_registrations_total", &[]).is_some());
    let other = plain
        .get(format!("http://127.0.0.1:{port}/api/v1/accounts"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}

/// Sends the head and part of a request's body over plain HTTP, returning the open
/// connection: a request in flight.
fn start_request(addr: &str, body: &str, sent: usize) -> std::net::TcpStream {
    use std::io::Write;
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "POST /agent/v1/register HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..sent]
    )
    .unwrap();
    conn.flush().unwrap();
    conn
}

fn stop_test(signal: &str) {
    use std::io::{Read, Write};
    let mut server = crate::support::Server::start_with(crate::support::ServerOptions {
        env: vec![("SATELLITE_INSECURE_HTTP".into(), "true".into())],
        ..Default::default()
    });
    assert!(server.url.starts_with("http://"), "{}", server.url);
    let addr = server.url.trim_start_matches("http://").to_string();
    // A malformed body, so the answer is known: 400 once all of it has arrived.
    let body = r#"{"token": "st_x", "udi": 7}"#;
    let mut in_flight = start_request(&addr, body, 10);
    std::thread::sleep(Duration::from_millis(200));

    server.signal(signal);
    std::thread::sleep(Duration::from_millis(500));
    // Stopped accepting: a new connection is refused (or closed without an answer).
    let refused = match std::net::TcpStream::connect(&addr) {
        Err(_) => true,
        Ok(mut c) => {
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = write!(c, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            let mut buf = [0u8; 64];
            !matches!(c.read(&mut buf), Ok(n) if n > 0)
        }
    };
    assert!(refused, "a new connection was served after the stop signal");
    assert!(
        server.wait_exit(Duration::from_millis(10)).is_none(),
        "exited with a request in flight"
    );

    // The request in flight is finished and answered.
    in_flight.write_all(&body.as_bytes()[10..]).unwrap();
    in_flight.flush().unwrap();
    in_flight
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let mut buf = [0u8; 4096];
    while !answer.contains("\r\n\r\n") {
        let n = in_flight.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the answer: {answer:?}");
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    drop(in_flight);

    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("server exits within 30 s");
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
    assert!(server.log().contains("stopped"), "{}", server.log());
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_exits_0() {
    stop_test("TERM");
}

#[test]
fn sigint_stops_the_same_way() {
    stop_test("INT");
}

#[tokio::test]
async fn api_clients_are_listed_created_once_and_revoked_at_once() {
    let server = crate::support::Server::start();
    let admin = server.admin_api().await;
    admin.create_account("Acme").await;

    let (s, made) = admin
        .post(
            "/api/v1/api-clients",
            serde_json::json!({ "name": "ci-robot", "role": "account-admin", "account": "Acme" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    for field in [
        "id",
        "client_id",
        "client_secret",
        "name",
        "role",
        "account",
    ] {
        assert!(!made[field].is_null(), "{field} missing: {made}");
    }
    assert_eq!(made["role"], "account-admin");
    assert_eq!(made["account"], "Acme");
    let (client_id, secret) = (
        made["client_id"].as_str().unwrap().to_string(),
        made["client_secret"].as_str().unwrap().to_string(),
    );

    let listed = |items: &serde_json::Value| {
        items["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["client_id"] == client_id.as_str())
            .cloned()
    };
    let (s, list) = admin.get("/api/v1/api-clients").await;
    assert_eq!(s, StatusCode::OK);
    let entry = listed(&list).unwrap();
    assert!(
        entry.get("client_secret").is_none(),
        "secret listed: {entry}"
    );
    assert!(!list.to_string().contains(&secret));
    assert!(entry["created_at"].is_string());
    assert!(entry["last_used_at"].is_null());

    // The new client works, scoped to its account, and its use is recorded.
    let robot = crate::support::Api::login(&server.url, &client_id, &secret).await;
    let (s, accounts) = robot.get("/api/v1/accounts").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(accounts["items"].as_array().unwrap().len(), 1);
    let (_, list) = admin.get("/api/v1/api-clients").await;
    assert!(listed(&list).unwrap()["last_used_at"].is_string());
    // Only system admins manage clients.
    let (s, body) = robot.get("/api/v1/api-clients").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");

    // Bad input: a clear error, nothing created.
    let (s, body) = admin
        .post(
            "/api/v1/api-clients",
            serde_json::json!({ "name": "x", "role": "root" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_role");
    let (s, body) = admin
        .post(
            "/api/v1/api-clients",
            serde_json::json!({ "name": "y", "role": "viewer" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "account_required");
    let (s, body) = admin
        .post(
            "/api/v1/api-clients",
            serde_json::json!({ "name": "CI-ROBOT", "role": "operator" }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    let (_, list) = admin.get("/api/v1/api-clients").await;
    assert!(!list.to_string().contains("\"x\""));

    // Revoked: its live token stops working at once.
    let id = made["id"].as_i64().unwrap();
    let (s, body) = admin.delete(&format!("/api/v1/api-clients/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, _) = robot.get("/api/v1/accounts").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = admin.delete(&format!("/api/v1/api-clients/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, events) = admin.get("/api/v1/events?limit=50").await;
    assert!(
        events.to_string().contains("api_client.revoked"),
        "{events}"
    );
}

#[tokio::test]
async fn api_clients_page_shows_the_secret_once_and_revokes() {
    let server = crate::support::Server::start();
    let session = server.session("system-admin", None).await;
    let (s, html) = session.page("/api-clients").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("No API clients yet"), "{html}");
    assert!(
        html.contains("<option value=\"viewer\" selected>"),
        "viewer is the default role"
    );

    let (s, html, to) = session
        .submit(
            "/api-clients",
            "/api-clients",
            &[
                ("name", "nightly-report"),
                ("role", "operator"),
                ("account", ""),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
    let to = to.expect("post/redirect/get");
    assert!(
        !to.contains("nightly"),
        "nothing of the client in the URL: {to}"
    );
    let (_, html) = session.page(&to).await;
    assert!(html.contains("id=\"created-client-secret\""));
    assert!(html.contains("data-copy=\"created-client-secret\""));
    let (_, again) = session.page(&to).await;
    assert!(again.contains("nightly-report"));
    assert!(
        !again.contains("created-client-secret"),
        "the secret shows only once"
    );
    assert!(again.contains("id=\"client-shown-already\""), "{again}");

    // A wrong field is shown next to it, and what was typed is kept.
    let (s, html, _) = session
        .submit(
            "/api-clients",
            "/api-clients",
            &[("name", "scoped"), ("role", "viewer"), ("account", "")],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("field-error"), "{html}");
    assert!(html.contains("value=\"scoped\""));

    let marker = "action=\"/api-clients/";
    let start = again.find(marker).unwrap() + marker.len();
    let id = &again[start..start + again[start..].find('/').unwrap()];
    let (s, _, location) = session
        .submit("/api-clients", &format!("/api-clients/{id}/revoke"), &[])
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/api-clients"));
    let (_, after) = session.page("/api-clients").await;
    assert!(after.contains("revoked"), "{after}");
    assert!(!after.contains("<td>nightly-report</td>"));

    // Other roles do not reach the page.
    let viewer = server.session("operator", None).await;
    let (s, _) = viewer.page("/api-clients").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_with_the_same_data_and_keys() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let l = Licensed::start().await;
    l.perpetual("ess", 100).await;
    let token = l.simple_token().await;
    let agent = Arc::new(Agent::new());
    assert_eq!(agent.register(&l.server, &token, "C9300", "FOC-B1").code, 0);
    assert_eq!(agent.report(&[("ess", 1)]).code, 0);
    let (_, authority) = l.api.get("/agent/v1/authority").await;

    // Reports keep coming while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (agent, stop) = (agent.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                let out = agent.report(&[("ess", 2 + sent % 5)]);
                assert_eq!(out.code, 0, "{}", out.stderr);
                sent += 1;
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let file = l.server.dir.path().join("full.tar.gz");
    let out = l.server.cli(&["backup", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    stop.store(true, Ordering::Relaxed);
    assert!(load.join().unwrap() > 0);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the backup holds a private key");

    // A running server's data dir is refused, and left as it was.
    let out = l.server.cli(&["restore", file.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("running server"), "{}", out.stderr);

    // Into a new data dir: same authority, same data, counters exact.
    let new_dir = tempfile::tempdir().unwrap();
    let new_data = new_dir.path().join("restored");
    let out = crate::support::run_cli(
        crate::support::SATELLITE,
        &["restore", file.to_str().unwrap()],
        Some(&new_data),
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read(new_data.join("keys/authority.pem")).unwrap(),
        std::fs::read(l.server.data_dir.join("keys/authority.pem")).unwrap()
    );
    let check =
        crate::support::run_cli(crate::support::SATELLITE, &["check"], Some(&new_data), None);
    assert_eq!(check.code, 0, "{}", check.stderr);

    // A garbage file is refused and changes nothing.
    let junk = new_dir.path().join("junk.tar.gz");
    std::fs::write(&junk, b"not a backup at all").unwrap();
    let out = crate::support::run_cli(
        crate::support::SATELLITE,
        &["restore", junk.to_str().unwrap()],
        Some(&new_data),
        None,
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("not a satellite backup"),
        "{}",
        out.stderr
    );

    // The restored server takes the old one's place; the agent that pinned its key and
    // certificate goes on reporting.
    let addr = l.server.url.trim_start_matches("https://").to_string();
    let (old_dir, _) = l.server.stop();
    let restored = crate::support::Server::start_in(
        new_dir,
        new_data,
        crate::support::ServerOptions {
            listen: Some(addr),
            ..crate::support::ServerOptions::upstream()
        },
    );
    let api = restored.admin_api().await;
    let (_, same) = api.get("/agent/v1/authority").await;
    assert_eq!(same, authority);
    let (s, pools) = api
        .get("/api/v1/accounts/Acme/virtual-accounts/Lab/licenses")
        .await;
    assert_eq!(s, StatusCode::OK);
    let in_use = pools["items"][0]["in_use"].as_i64().unwrap();
    assert!((1..=6).contains(&in_use), "{pools}");
    let out = agent.report(&[("ess", 7)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.value("status"), "authorized");
    let (_, pools) = api
        .get("/api/v1/accounts/Acme/virtual-accounts/Lab/licenses")
        .await;
    assert_eq!(pools["items"][0]["in_use"], 7);
    drop(old_dir);
}

#[tokio::test]
async fn system_admins_download_a_backup_from_the_browser() {
    let server = crate::support::Server::start();
    let session = server.session("system-admin", None).await;
    let (s, html) = session.page("/backups").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("No schedule is set"), "{html}");
    let csrf = crate::support::csrf_of(&html);
    let res = session
        .http
        .post(format!("{}/backups/download", server.url))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/gzip");
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"satellite-"));
    let bytes = res.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("download.tar.gz");
    std::fs::write(&file, &bytes).unwrap();
    let out = crate::support::run_cli(
        crate::support::SATELLITE,
        &["restore", file.to_str().unwrap()],
        Some(&dir.path().join("data")),
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Without the CSRF token nothing is produced; other roles never reach it.
    let res = session
        .http
        .post(format!("{}/backups/download", server.url))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    let operator = server.session("operator", None).await;
    let (s, _) = operator.page("/backups").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[test]
fn scheduled_backups_are_taken_and_pruned() {
    let server = crate::support::Server::start_with(crate::support::ServerOptions {
        env: vec![
            ("SATELLITE_BACKUP_CRON".into(), "* * * * * *".into()),
            ("SATELLITE_BACKUP_KEEP".into(), "2".into()),
        ],
        ..Default::default()
    });
    let dir = server.data_dir.join("backups");
    let count = || {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".tar.gz"))
                    .count()
            })
            .unwrap_or(0)
    };
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < until && !server.log().contains("removed=1") {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        server.log().contains("scheduled backup taken"),
        "{}",
        server.log()
    );
    assert!(count() <= 2, "kept {} backups", count());
    assert!(server.log().contains("removed=1"), "{}", server.log());
}

async fn key_reads(url: &str) -> f64 {
    metric(url, "satellite_agent_key_reads_total", &[]).await
}

/// One sample of a scrape; 0 when the series has not been written yet.
async fn metric(url: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = async_client(false)
        .get(format!("{url}/metrics"))
        .bearer_auth("scrape-secret-123")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    find(&parse(&text), name, labels).map_or(0.0, value)
}

/// Instance keys are kept in memory and loaded again when the server starts: after a
/// restart, signed requests read no key from the database. What is kept stays a hint: a
/// key replaced by a re-registration is refused at once.
#[tokio::test]
async fn instance_keys_are_loaded_at_start_and_stay_hints() {
    let env = vec![("SATELLITE_METRICS_TOKEN".into(), "scrape-secret-123".into())];
    let l = Licensed::start_with(env.clone()).await;
    l.perpetual("ess", 5).await;
    let token = l
        .token(
            serde_json::json!({ "expires_in_days": 30, "max_uses": 5, "export_controlled": false }),
        )
        .await;
    let (_, first) = RawAgent::register(&l.server.url, &token, "P", "S1").await;
    let (_, second) = RawAgent::register(&l.server.url, &token, "P", "S2").await;
    let server = l.server.restart(ServerOptions {
        env,
        ..ServerOptions::upstream()
    });
    let (first, second) = (first.unwrap().reconnected(), second.unwrap().reconnected());
    // The keys load right after the start, and the log says when.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !server.log().contains("instance keys loaded") {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at = || rfc3339(RawAgent::now());
    assert_eq!(
        first.report("a1", &at(), &[("ess", 1)]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        second.report("b1", &at(), &[("ess", 1)]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        key_reads(&server.url).await,
        0.0,
        "both keys were loaded at start"
    );

    // S2 registers again with a new key: the new one works, the old one is refused.
    let (again, renewed) = RawAgent::register(&server.url, &token, "P", "S2").await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    let renewed = renewed.unwrap();
    assert_eq!(
        renewed.report("b2", &at(), &[("ess", 2)]).await.status,
        StatusCode::OK
    );
    let refused = second.report("b3", &at(), &[("ess", 3)]).await;
    assert_eq!(refused.body["error"]["code"], "bad_signature");
    assert_eq!(
        key_reads(&server.url).await,
        1.0,
        "the refused key was checked against the database"
    );
    // Refusals against the key held do not evict it: each costs one read, and the
    // instance's own requests still read nothing.
    let forged = renewed.signing_with(first.key.clone());
    let refused = forged.report("b4", &at(), &[("ess", 1)]).await;
    assert_eq!(refused.body["error"]["code"], "bad_signature");
    assert_eq!(key_reads(&server.url).await, 2.0);
    let answer = renewed
        .post("/agent/v1/renew", &serde_json::json!({}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    for (agent, id) in [(&first, "a2"), (&renewed, "b5")] {
        let answer = agent.report(id, &at(), &[("ess", 1)]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    assert_eq!(
        key_reads(&server.url).await,
        2.0,
        "renewed and reported from memory"
    );

    // Removed: its next request reads the database and is not registered, whatever its
    // body says.
    let api = server.admin_api().await;
    let (status, body) = api
        .delete(&format!(
            "{}/instances/{}",
            crate::support::VA,
            first.instance_id
        ))
        .await;
    assert!(status.is_success(), "{status} {body}");
    let gone = first
        .post("/agent/v1/usage", &serde_json::json!({ "nonsense": true }))
        .await;
    assert_eq!(
        gone.body["error"]["code"], "instance_not_registered",
        "{}",
        gone.body
    );
}

/// Instances reporting the same counts get the same reply body: it is signed once and the
/// signature kept is sent again, and every reply still verifies under the authority key
/// (RawAgent checks each). A reply with other counts gets its own signature.
#[tokio::test]
async fn repeated_replies_reuse_their_signature_and_still_verify() {
    let env = vec![("SATELLITE_METRICS_TOKEN".into(), "scrape-secret-123".into())];
    let l = Licensed::start_with(env).await;
    l.perpetual("ess", 50).await;
    let token = l
        .token(
            serde_json::json!({ "expires_in_days": 30, "max_uses": 10, "export_controlled": false }),
        )
        .await;
    let mut agents = vec![];
    for n in 0..6 {
        let (answer, agent) =
            RawAgent::register(&l.server.url, &token, "P", &format!("R{n}")).await;
        agents.push(agent.unwrap_or_else(|| panic!("{}", answer.body)));
    }
    let signed = |kind: &'static str| {
        let url = l.server.url.clone();
        async move {
            metric(
                &url,
                "satellite_agent_reply_signatures_total",
                &[("signature", kind)],
            )
            .await
        }
    };
    let (new_before, kept_before) = (signed("new").await, signed("kept").await);
    // Reports within one second carry the same renewal times, so the same body; retry
    // the round when it straddles a second.
    let mut bodies = vec![];
    for _ in 0..5 {
        let at = rfc3339(RawAgent::now());
        bodies.clear();
        for (n, agent) in agents.iter().enumerate() {
            let answer = agent
                .report(&format!("same-{n}-{at}"), &at, &[("ess", 2)])
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            bodies.push(answer.body);
        }
        if bodies.iter().all(|b| *b == bodies[0]) {
            break;
        }
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
    assert!(
        signed("kept").await - kept_before >= 5.0,
        "five of six identical replies reused the first one's signature"
    );
    let new_after = signed("new").await;
    // Measured later than the last report, so it is applied.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let other = agents[0]
        .report("other", &rfc3339(RawAgent::now()), &[("ess", 3)])
        .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    assert_eq!(other.body["entitlements"][0]["count"], 3);
    assert!(
        signed("new").await > new_after,
        "another body is signed anew"
    );
    assert!(new_after > new_before);

    // Agent answers are never documents: the short policy for APIs, the other security
    // headers as on every response.
    let res = async_client(false)
        .get(format!("{}/agent/v1/authority", l.server.url))
        .send()
        .await
        .unwrap();
    let h = res.headers();
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.contains_key("strict-transport-security"));
}
