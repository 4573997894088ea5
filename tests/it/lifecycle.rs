//! Product lifecycle (issue #14): a UDI is one instance server-wide (re-register, move,
//! refuse), renewals record the hostname, duplicates of older versions are merged, and the
//! reference agent's `run` loop drives the 30-day / 90-day / 6-month / 1-year timers.

use crate::support::agent::{rfc3339, Agent, RawAgent};
use crate::support::proxy::Proxy;
use crate::support::{Licensed, Server, ServerOptions, AGENT, VA};
use reqwest::StatusCode;
use serde_json::{json, Value};

const LAB2: &str = "/api/v1/accounts/Acme/virtual-accounts/Lab2";

async fn token_in(l: &Licensed, va_path: &str) -> String {
    let (s, b) = l
        .api
        .post(
            &format!("{va_path}/tokens"),
            json!({ "expires_in_days": 30, "export_controlled": false }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["token"].as_str().unwrap().to_string()
}

async fn uses_of(l: &Licensed, va_path: &str) -> i64 {
    let (_, tokens) = l.api.get(&format!("{va_path}/tokens")).await;
    tokens["items"][0]["uses"].as_i64().unwrap()
}

async fn instances_of(l: &Licensed, va_path: &str) -> Vec<Value> {
    let (s, list) = l.api.get(&format!("{va_path}/instances")).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    list["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_udi_is_one_instance_and_moves_only_when_asked() {
    let l = Licensed::start().await;
    l.api.create_va("Acme", "Lab2").await;
    l.api.create_account("Other").await;
    l.api.create_va("Other", "Ops").await;
    l.perpetual("t", 5).await;
    let lab = l.simple_token().await;
    let lab2 = token_in(&l, LAB2).await;
    let ops = token_in(&l, "/api/v1/accounts/Other/virtual-accounts/Ops").await;

    let (a, first) = RawAgent::register_with(
        &l.server.url,
        &lab,
        "C9300",
        "FOC1",
        json!({"hostname": "sw1"}),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let first = first.unwrap();
    let r = first
        .report("r1", &rfc3339(RawAgent::now()), &[("t", 3)])
        .await;
    assert_eq!(r.body["status"], "authorized");
    assert_eq!(l.pools().await["t"]["in_use"], 3);

    // Another VA of the same account: refused, naming the VA, unless asked to move.
    let (a, _) = RawAgent::register(&l.server.url, &lab2, "C9300", "FOC1").await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.body["error"]["code"], "already_registered");
    let message = a.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("Lab"), "{message}");
    // Another account: refused either way.
    for extra in [json!({}), json!({"reregister": true})] {
        let (a, _) = RawAgent::register_with(&l.server.url, &ops, "C9300", "FOC1", extra).await;
        assert_eq!(a.status, StatusCode::CONFLICT);
        assert_eq!(a.body["error"]["code"], "registered_elsewhere");
    }
    // Refusals spent no token use and changed nothing.
    assert_eq!(uses_of(&l, LAB2).await, 0);
    assert_eq!(l.pools().await["t"]["in_use"], 3);

    // The move: same id, now in Lab2, its licenses leave Lab's pool at once.
    let (a, moved) = RawAgent::register_with(
        &l.server.url,
        &lab2,
        "C9300",
        "FOC1",
        json!({"reregister": true}),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.body["instance_id"], first.instance_id.as_str());
    assert_eq!(a.body["virtual_account"], "Lab2");
    assert_eq!(uses_of(&l, LAB2).await, 1);
    assert_eq!(l.pools().await["t"]["in_use"], 0);
    assert!(instances_of(&l, VA).await.is_empty());
    let there = instances_of(&l, LAB2).await;
    assert_eq!(there.len(), 1);
    assert_eq!(there[0]["id"], first.instance_id.as_str());
    assert_eq!(there[0]["status"], "registered");
    assert_eq!(there[0]["licenses"], json!([]));
    // The old key is dead; the new one reports in the new VA.
    let r = first
        .report("r2", &rfc3339(RawAgent::now()), &[("t", 1)])
        .await;
    assert_eq!(r.body["error"]["code"], "bad_signature");
    // Strictly newer than the last applied report (CONTRACT section 4), which may have
    // been measured in this same second.
    let r = moved
        .unwrap()
        .report("r2", &rfc3339(RawAgent::now() + 1), &[("t", 1)])
        .await;
    assert_eq!(
        r.body["status"], "not_authorized",
        "Lab2 has no such license"
    );

    let (_, events) = l.api.get("/api/v1/events?action=instance.moved").await;
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{events}");
    assert_eq!(items[0]["detail"]["from"], "Lab");
    // The history page of the instance records the move.
    let s = l.server.session("system-admin", None).await;
    let (_, html) = s
        .page(&format!(
            "/accounts/Acme/virtual-accounts/Lab2/instances/{}",
            first.instance_id
        ))
        .await;
    assert!(html.contains("moved from Lab to Lab2"), "{html}");
    l.assert_counters_exact();
}

#[tokio::test]
async fn renew_records_a_changed_hostname() {
    let l = Licensed::start().await;
    let token = l.simple_token().await;
    let (_, agent) = RawAgent::register(&l.server.url, &token, "P", "S").await;
    let agent = agent.unwrap();
    assert_eq!(instances_of(&l, VA).await[0]["hostname"], Value::Null);
    // `{}` and no body at all are both fine and change nothing.
    let a = agent.post("/agent/v1/renew", &json!({})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let ts = RawAgent::now().to_string();
    let a = agent
        .send(
            "/agent/v1/renew",
            b"",
            b"",
            &ts,
            &agent.key,
            Some(&agent.instance_id),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(instances_of(&l, VA).await[0]["hostname"], Value::Null);
    let a = agent
        .post("/agent/v1/renew", &json!({"hostname": "edge-2.example"}))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(instances_of(&l, VA).await[0]["hostname"], "edge-2.example");
    let a = agent.post("/agent/v1/renew", &json!({"hostname": 5})).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = agent
        .post("/agent/v1/renew", &json!({"hostname": "a\u{7}b"}))
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.body["error"]["code"], "invalid_hostname");
    assert_eq!(instances_of(&l, VA).await[0]["hostname"], "edge-2.example");
    let (_, events) = l
        .api
        .get("/api/v1/events?action=instance.hostname_changed")
        .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1);
}

/// A database as the version before the UDI-identity migration made it, with one UDI
/// registered in two VAs (each holding usage), is merged on the first start: the newest
/// registration stays, the other's usage is released, and history and events say so.
#[tokio::test]
async fn duplicate_udis_of_an_older_version_are_merged() {
    use satellite::store::migrations::{version_before, MIGRATIONS, UDI_UNIQUE};
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    {
        let mut c = rusqlite::Connection::open(data_dir.join("satellite.db")).unwrap();
        c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")
            .unwrap();
        let before = version_before(UDI_UNIQUE).expect("the UDI migration is in the list");
        MIGRATIONS.to_version(&mut c, before).unwrap();
        c.execute_batch(
            "INSERT INTO accounts (id, name, created_at) VALUES (1, 'Acme', 0);
             INSERT INTO virtual_accounts (id, account_id, name, created_at, instance_count)
               VALUES (1, 1, 'Lab', 0, 2), (2, 1, 'Lab2', 0, 1);
             INSERT INTO instances (id, va_id, pid, sn, public_key, product_name, product_version,
                 registered_at, last_contact, cert_renew_after, cert_expires_at, status)
               VALUES ('inst_old', 1, 'P', 'S', x'00', 'p', '1', 100, 100, 4102444800, 4102444800, 'authorized'),
                      ('inst_new', 2, 'P', 'S', x'00', 'p', '1', 200, 200, 4102444800, 4102444800, 'authorized'),
                      ('inst_other', 1, 'P', 'S2', x'00', 'p', '1', 100, 100, 4102444800, 4102444800, 'authorized');
             INSERT INTO instance_usage (instance_id, tag, count)
               VALUES ('inst_old', 't', 3), ('inst_new', 't', 2), ('inst_other', 't', 1);
             INSERT INTO usage_totals (va_id, tag, demand, demand_export) VALUES (1, 't', 4, 0), (2, 't', 2, 0);
             INSERT INTO va_status_counts (va_id, status, n) VALUES (1, 'authorized', 2), (2, 'authorized', 1);",
        )
        .unwrap();
    }
    let server = Server::start_in(dir, data_dir, ServerOptions::default());
    let api = server.admin_api().await;
    let list = |va: &'static str| {
        let api = &api;
        async move {
            let (_, b) = api
                .get(&format!(
                    "/api/v1/accounts/Acme/virtual-accounts/{va}/instances"
                ))
                .await;
            b["items"].as_array().unwrap().clone()
        }
    };
    let lab = list("Lab").await;
    assert_eq!(lab.len(), 1);
    assert_eq!(lab[0]["id"], "inst_other");
    let lab2 = list("Lab2").await;
    assert_eq!(lab2.len(), 1);
    assert_eq!(lab2[0]["id"], "inst_new", "the newest registration stays");
    let (_, events) = api.get("/api/v1/events?action=instance.merged").await;
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{events}");
    assert_eq!(items[0]["target"], "inst_old");
    let out = server.cli(&["check"]);
    assert_eq!(out.code, 0, "counters after the merge: {}", out.stderr);
    let db = rusqlite::Connection::open(server.data_dir.join("satellite.db")).unwrap();
    let demand: i64 = db
        .query_row(
            "SELECT demand FROM usage_totals WHERE va_id = 1 AND tag = 't'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(demand, 1, "the merged instance's usage left Lab's pool");
    let note: String = db
        .query_row(
            // Its first line is kept in its row (migration 0022), later ones in the table.
            "SELECT group_concat(note) FROM (
               SELECT first_line_note AS note FROM instances WHERE legacy_id = 'inst_new'
               UNION ALL
               SELECT note FROM instance_history
               WHERE instance_id = (SELECT id FROM instances WHERE legacy_id = 'inst_new'))",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(note.contains("inst_old"), "{note}");
    // The UDI is now unique server-wide, in the schema itself.
    let dup = db.execute(
        "INSERT INTO instances (legacy_id, va_id, pid, sn, public_key, product_name, product_version,
             registered_at, last_contact, cert_expires_at, status)
         VALUES ('x', 1, 'P', 'S', x'00', 'p', '1', 1, 1, 1, 4)",
        [],
    );
    assert!(dup.unwrap_err().to_string().contains("UNIQUE"));
}

const DAY: i64 = 86_400;

/// A `satellite-agent run` child process, its stderr in a log file.
struct Running {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Running {
    fn start(agent: &Agent, usage_file: &std::path::Path) -> Running {
        let log = agent
            .dir
            .path()
            .join(format!("run-{}.log", crate::support::uuid_like()));
        let state = agent.state_dir();
        let child = std::process::Command::new(AGENT)
            .arg("--state-dir")
            .arg(&state)
            .args(["run", "--interval", "1", "--usage-file"])
            .arg(usage_file)
            .envs(agent.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn agent run");
        Running { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Waits (up to 30 s) until `needle` has appeared more than `before` times.
    async fn wait_for(&self, needle: &str, before: usize) {
        for _ in 0..300 {
            if self.count(needle) > before {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("agent never logged {needle:?}:\n{}", self.log());
    }

    /// Sends SIGTERM and returns the exit code.
    fn terminate(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        (status.code().unwrap_or(-1), self.log())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn days(agent: &mut Agent, n: i64) {
    agent.env = vec![(
        "SATELLITE_CLOCK_OFFSET_SECONDS".into(),
        (n * DAY).to_string(),
    )];
}

async fn in_use(l: &Licensed, tag: &str) -> i64 {
    l.pools().await[tag]["in_use"].as_i64().unwrap()
}

async fn wait_in_use(l: &Licensed, tag: &str, want: i64) {
    for _ in 0..300 {
        if in_use(l, tag).await == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("in_use of {tag} never became {want}");
}

async fn later(l: Licensed, days: i64) -> Licensed {
    let server = l.server.restart(ServerOptions::upstream().days_later(days));
    Licensed {
        api: server.admin_api().await,
        server,
    }
}

/// The product's side of the timers, end to end: `run` reports through an authenticating
/// proxy, rides out a server restart, renews authorization by reporting at 30 days, finds
/// it lapsed (and the server alerting) after 90 silent days, renews its registration after
/// 6 months, and a year unrenewed ends the registration on both sides.
#[tokio::test]
async fn run_drives_reports_and_renewals_across_months() {
    let l = Licensed::start().await;
    l.perpetual("t", 5).await;
    let token = l.simple_token().await;
    let proxy = Proxy::start(Some("user:s3cret"));
    let mut a = Agent::new();
    let ca = l.server.data_dir.join("tls/cert.pem");
    let register = |proxy_url: String| {
        a.run(&[
            "register",
            "--url",
            &l.server.url,
            "--token",
            &token,
            "--pid",
            "C9300",
            "--sn",
            "FOC9",
            "--hostname",
            "edge-1",
            "--ca-cert",
            ca.to_str().unwrap(),
            "--proxy",
            &proxy_url,
        ])
    };
    let out = register(proxy.url(Some("user:wrong")));
    assert_eq!(out.code, 1, "wrong proxy credentials: {}", out.stderr);
    assert!(proxy.refused() >= 1);
    let out = register(proxy.url(Some("user:s3cret")));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let instance_id = out.value("instance_id");
    assert!(proxy.tunnels() >= 1);
    assert_eq!(instances_of(&l, VA).await[0]["hostname"], "edge-1");
    let out = a.run(&["renew", "--hostname", "edge-1b"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(instances_of(&l, VA).await[0]["hostname"], "edge-1b");

    // Reports every interval, through the proxy kept in the state; a changed file at once.
    let usage = a.dir.path().join("usage.txt");
    std::fs::write(&usage, "# counts\nt=2\n").unwrap();
    let run = Running::start(&a, &usage);
    wait_in_use(&l, "t", 2).await;
    let through = proxy.tunnels();
    std::fs::write(&usage, "t=3\n").unwrap();
    wait_in_use(&l, "t", 3).await;
    run.wait_for("usage file changed", 0).await;
    assert!(proxy.tunnels() > through, "later calls use the proxy too");

    // The server goes away for a while: the agent backs off, then carries on.
    let addr = l.server.url.trim_start_matches("https://").to_string();
    let (dir, data_dir) = l.server.stop();
    run.wait_for("retry 2 in", 0).await;
    let reported = run.count("reported 1 license(s)");
    let server = Server::start_in(
        dir,
        data_dir,
        ServerOptions {
            listen: Some(addr),
            ..ServerOptions::upstream()
        },
    );
    run.wait_for("reported 1 license(s)", reported).await;
    let (code, log) = run.terminate();
    assert_eq!(code, 0, "SIGTERM exits 0:\n{log}");
    assert!(log.contains("stopping"), "{log}");
    for line in log.lines() {
        assert!(
            line.starts_with("satellite-agent: "),
            "one line per action: {line}"
        );
    }
    let l = Licensed {
        api: server.admin_api().await,
        server,
    };

    // Day 31: the authorization is due for renewal; the first report renews it.
    let l = later(l, 31).await;
    days(&mut a, 31);
    let status = a.run(&["status"]);
    assert_eq!(status.value("state"), "authorized");
    assert_eq!(status.value("days_left"), "59");
    assert_eq!(status.value("license"), "t status=authorized count=3");
    let run = Running::start(&a, &usage);
    run.wait_for("reported 1 license(s)", 0).await;
    assert_eq!(run.terminate().0, 0);
    assert_eq!(a.run(&["status"]).value("days_left"), "90");

    // Day 181: no report since day 31, so the authorization lapsed at day 121; the server
    // released the licenses and raises an alert; the agent says so offline.
    let l = later(l, 181).await;
    days(&mut a, 181);
    let listed = &instances_of(&l, VA).await[0];
    assert_eq!(listed["status"], "authorization_expired");
    assert_eq!(in_use(&l, "t").await, 0);
    let (_, alerts) = l.api.get("/api/v1/alerts").await;
    let lapsed: Vec<&Value> = alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "authorization_lapsed")
        .collect();
    assert_eq!(lapsed.len(), 1, "{alerts}");
    assert!(lapsed[0]["subject"]
        .as_str()
        .unwrap()
        .contains(&instance_id));
    let status = a.run(&["status"]);
    assert_eq!(status.value("state"), "authorization-expired");
    assert_eq!(status.value("days_left"), "0");
    // Six months since registration: `run` renews the registration, then reports.
    let before = a.run(&["status"]).value("registration_expires_at");
    let run = Running::start(&a, &usage);
    run.wait_for("reported 1 license(s)", 0).await;
    let (code, log) = run.terminate();
    assert_eq!(code, 0);
    assert!(log.contains("renewed registration"), "{log}");
    let status = a.run(&["status"]);
    assert_eq!(status.value("state"), "authorized");
    assert_ne!(status.value("registration_expires_at"), before);
    assert_eq!(in_use(&l, "t").await, 3);
    // Its history, newest first. The line after "registered" (here the renewal's new
    // hostname) is kept in the instance row, the later ones in the history table
    // (migration 0022): the page reads them as one list.
    assert_eq!(
        history_on_page(&l, &instance_id).await,
        [
            ("authorized", "usage report"),
            ("authorization expired", "no usage report for 90 days"),
            ("authorized", "usage report"),
            ("registered", "hostname changed to edge-1b"),
            ("registered", "registered"),
        ]
        .map(|(s, n)| (s.to_string(), n.to_string()))
    );
    let (_, alerts) = l.api.get("/api/v1/alerts").await;
    assert!(
        !alerts.to_string().contains("authorization_lapsed"),
        "the alert clears with its cause: {alerts}"
    );

    // A year (and a day) after that renewal, unrenewed: registration-expired, which
    // outranks the lapsed authorization; the server treats the instance as deregistered.
    days(&mut a, 181 + 366);
    let status = a.run(&["status"]);
    assert_eq!(status.value("state"), "registration-expired");
    let l = later(l, 181 + 366).await;
    assert!(instances_of(&l, VA).await.is_empty());
    assert_eq!(in_use(&l, "t").await, 0);
    let (_, events) = l
        .api
        .get("/api/v1/events?action=instance.registration_expired")
        .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1);
    let out = a.report(&[("t", 1)]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("instance_not_registered"),
        "{}",
        out.stderr
    );
    l.assert_counters_exact();
}

#[test]
fn an_unregistered_agent_counts_down_its_evaluation() {
    let mut a = Agent::new();
    let status = a.run(&["status"]);
    assert_eq!(status.value("state"), "evaluation");
    assert_eq!(status.value("days_left"), "90");
    days(&mut a, 60);
    assert_eq!(a.run(&["status"]).value("days_left"), "30");
    days(&mut a, 91);
    let status = a.run(&["status"]);
    assert_eq!(status.value("state"), "evaluation-expired");
    assert_eq!(status.value("days_left"), "0");
}

#[tokio::test]
async fn deregister_offline_clears_the_state_and_says_an_admin_must_remove_it() {
    let l = Licensed::start().await;
    let token = l.simple_token().await;
    let a = Agent::new();
    let out = a.register(&l.server, &token, "P", "S");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.value("instance_id");
    let addr = l.server.url.trim_start_matches("https://").to_string();
    let (dir, data_dir) = l.server.stop();
    let out = a.run(&["deregister"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.value("status"), "deregistered_locally");
    assert!(
        out.stderr.contains("an admin must remove"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&id));
    assert_eq!(a.run(&["status"]).value("state"), "evaluation");
    // The server never heard of it: the instance is still there for the admin to remove.
    let server = Server::start_in(
        dir,
        data_dir,
        ServerOptions {
            listen: Some(addr),
            ..ServerOptions::upstream()
        },
    );
    let l = Licensed {
        api: server.admin_api().await,
        server,
    };
    assert_eq!(instances_of(&l, VA).await[0]["id"], id.as_str());
}

/// The instance list searches product names and statuses, filters by status, and flags
/// what needs attention as the timers run.
#[tokio::test]
async fn instance_list_searches_filters_and_flags() {
    let l = Licensed::start().await;
    l.perpetual("t", 5).await;
    let token = l
        .token(json!({ "expires_in_days": 30, "export_controlled": false }))
        .await;
    let webex = json!({"product": {"name": "Webex Meetings", "version": "4"}});
    let (_, a) = RawAgent::register_with(&l.server.url, &token, "P", "A", webex).await;
    let (_, b) = RawAgent::register(&l.server.url, &token, "P", "B").await;
    let (_, c) = RawAgent::register(&l.server.url, &token, "P", "C").await;
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let now = rfc3339(RawAgent::now());
    assert_eq!(
        a.report("1", &now, &[("t", 1)]).await.body["status"],
        "authorized"
    );
    assert_eq!(
        b.report("1", &now, &[("t", 10)]).await.body["status"],
        "out_of_compliance"
    );
    let s = l.server.session("system-admin", None).await;
    let list = "/accounts/Acme/virtual-accounts/Lab/instances";
    let shows = |html: &str, wanted: &[&RawAgent]| {
        for x in [&a, &b, &c] {
            assert_eq!(
                html.contains(&x.instance_id),
                wanted.iter().any(|w| w.instance_id == x.instance_id),
                "{}: {html}",
                x.instance_id
            );
        }
    };
    let (_, html) = s.page(&format!("{list}?search=webex")).await;
    shows(&html, &[&a]);
    let (_, html) = s.page(&format!("{list}?search=out+of+compliance")).await;
    shows(&html, &[&b]);
    let (_, html) = s.page(&format!("{list}?status=registered")).await;
    shows(&html, &[&c]);
    assert!(
        html.contains(r#"<option value="registered" selected>"#),
        "{html}"
    );
    let (status, _) = s.page(&format!("{list}?status=bogus")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, html) = s.page(list).await;
    shows(&html, &[&a, &b, &c]);
    assert_eq!(
        html.matches(r#"class="pill pill-out_of_compliance""#)
            .count(),
        2
    );

    // Day 65: A's and B's authorizations lapse within 30 days.
    let l = later(l, 65).await;
    let s = l.server.session("system-admin", None).await;
    let (_, html) = s.page(list).await;
    assert_eq!(html.matches("authorization lapsing").count(), 2, "{html}");
    // Day 340: lapsed, and every registration ends within 30 days.
    let l = later(l, 340).await;
    let s = l.server.session("system-admin", None).await;
    let (_, html) = s.page(list).await;
    assert_eq!(html.matches("authorization lapsed").count(), 2, "{html}");
    assert_eq!(html.matches("registration expiring").count(), 3, "{html}");
}

/// A person looks at the instance list: filtered to what is out of compliance, with the
/// alerts column saying why (screenshot in target/screenshots/).
#[tokio::test]
async fn browser_shows_the_instance_list_with_filters_and_alerts() {
    let l = Licensed::start().await;
    let Some(browser) = crate::support::webdriver::Browser::start().await else {
        return;
    };
    l.perpetual("t", 5).await;
    let token = l.simple_token().await;
    let now = rfc3339(RawAgent::now());
    for (sn, count) in [("FOC1", 2), ("FOC2", 9)] {
        let (_, x) = RawAgent::register_with(
            &l.server.url,
            &token,
            "C9300",
            sn,
            json!({"hostname": format!("{sn}.example"), "product": {"name": "Catalyst", "version": "17.9"}}),
        )
        .await;
        x.unwrap().report("1", &now, &[("t", count)]).await;
    }
    RawAgent::register(&l.server.url, &token, "C9300", "FOC3").await;
    let url = &l.server.url;
    browser.first_admin_login(&l.server, &l.server.url).await;
    let list = format!("{url}/accounts/Acme/virtual-accounts/Lab/instances");
    browser.goto(&list).await;
    browser.screenshot("lifecycle-01-instances").await;
    let table = browser.text("#instances").await;
    assert!(table.contains("FOC1") && table.contains("FOC2") && table.contains("FOC3"));
    browser.fill("#instance-search", "catalyst").await;
    browser.click("#search").await;
    let table = browser.text("#instances").await;
    assert!(table.contains("FOC1") && !table.contains("FOC3"), "{table}");
    browser
        .goto(&format!("{list}?status=out_of_compliance"))
        .await;
    browser.screenshot("lifecycle-02-out-of-compliance").await;
    let table = browser.text("#instances").await;
    assert!(table.contains("FOC2") && !table.contains("FOC1"), "{table}");
    assert!(table.contains("out of compliance"), "{table}");
    browser.quit().await;
}

/// The reference agent moves its product only when told to, and keeps working from the
/// old registration when the move is refused.
#[tokio::test]
async fn the_reference_agent_reregisters_into_another_va_when_told() {
    let l = Licensed::start().await;
    l.api.create_va("Acme", "Lab2").await;
    l.perpetual("t", 5).await;
    let lab = l.simple_token().await;
    let lab2 = token_in(&l, LAB2).await;
    let a = Agent::new();
    let first = a.register(&l.server, &lab, "P", "S");
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(a.report(&[("t", 2)]).value("status"), "authorized");
    let ca = l.server.data_dir.join("tls/cert.pem");
    let again = |extra: &[&str]| {
        let mut args = vec![
            "register",
            "--url",
            &l.server.url,
            "--token",
            &lab2,
            "--pid",
            "P",
            "--sn",
            "S",
            "--ca-cert",
            ca.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        a.run(&args)
    };
    let refused = again(&[]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("already_registered"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("Lab"), "{}", refused.stderr);
    // Still registered as before: its key and certificate were kept.
    assert_eq!(a.report(&[("t", 2)]).value("status"), "authorized");
    let moved = again(&["--reregister"]);
    assert_eq!(moved.code, 0, "{}", moved.stderr);
    assert_eq!(moved.value("instance_id"), first.value("instance_id"));
    assert_eq!(moved.value("virtual_account"), "Lab2");
    assert_eq!(in_use(&l, "t").await, 0);
    assert_eq!(a.run(&["status"]).value("virtual_account"), "Lab2");
    assert_eq!(instances_of(&l, LAB2).await.len(), 1);
    l.assert_counters_exact();
}

/// An instance's first report writes nothing in the history table: its line is kept in
/// the instance row (migration 0022), without its note (a usage report's, the usual first
/// line). Later lines go to the table, and the page reads them all in order, notes too.
#[tokio::test]
async fn a_first_report_keeps_its_history_line_in_the_instance_row() {
    let l = Licensed::start().await;
    l.perpetual("t", 5).await;
    let token = l.simple_token().await;
    let (answer, agent) = RawAgent::register(&l.server.url, &token, "P", "LINE1").await;
    let agent = agent.unwrap_or_else(|| panic!("{}", answer.body));
    let db = || rusqlite::Connection::open(l.server.data_dir.join("satellite.db")).unwrap();
    let row = || -> (Option<i64>, Option<String>) {
        db().query_row(
            "SELECT first_line_status, first_line_note FROM instances WHERE sn = 'LINE1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let lines = || -> i64 {
        db().query_row("SELECT count(*) FROM instance_history", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(row(), (None, None), "no line yet");

    let now = RawAgent::now();
    let r = agent.report("line-1", &rfc3339(now - 2), &[("t", 2)]).await;
    assert_eq!(r.body["status"], "authorized", "{}", r.body);
    assert_eq!(row(), (Some(1), None), "authorized, by a usage report");
    assert_eq!(lines(), 0, "the first line is in the row");

    let r = agent.report("line-2", &rfc3339(now - 1), &[("t", 9)]).await;
    assert_eq!(r.body["status"], "out_of_compliance", "{}", r.body);
    assert_eq!(lines(), 1, "later lines go to the table");
    assert_eq!(row().0, Some(1), "the row's line stays");

    let lines = history_on_page(&l, &agent.instance_id).await;
    let statuses: Vec<&str> = lines.iter().map(|(status, _)| status.as_str()).collect();
    assert_eq!(statuses, ["out of compliance", "authorized", "registered"]);
    assert_eq!(
        lines[1].1, "usage report",
        "the row's line reads with its note"
    );
    l.assert_counters_exact();
}

/// The history table of an instance of Lab as its page shows it, newest first: (status,
/// note) per line.
async fn history_on_page(l: &Licensed, instance_id: &str) -> Vec<(String, String)> {
    let s = l.server.session("system-admin", None).await;
    let (_, html) = s
        .page(&format!(
            "/accounts/Acme/virtual-accounts/Lab/instances/{instance_id}"
        ))
        .await;
    let table = html.split("<table id=\"history\">").nth(1).unwrap();
    let table = table.split("</table>").next().unwrap();
    table
        .split("<tr><td class=\"muted nowrap\">")
        .skip(1)
        .map(|row| {
            let cells: Vec<&str> = row
                .split("<td>")
                .skip(1)
                .map(|c| c.split("</td>").next().unwrap())
                .collect();
            (cells[0].to_string(), cells[1].to_string())
        })
        .collect()
}
