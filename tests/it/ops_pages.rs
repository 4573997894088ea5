//! Operations pages (issue #16): report pages and their CSV downloads under the session,
//! scoped by role exactly like the API.

use crate::support::agent::Agent;
use crate::support::{Licensed, Session};
use reqwest::StatusCode;

/// GETs a page CSV download with the session's cookie and parses it back.
async fn page_csv(s: &Session, path: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let res = s.get(path).await;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let text = res.text().await.unwrap();
    crate::support::parse_csv(&text)
}

#[tokio::test]
async fn report_pages_preview_and_download_csv_scoped_by_role() {
    let l = Licensed::start().await;
    l.perpetual("ess", 3).await;
    l.perpetual("=adv", 1).await;
    let token = l.simple_token().await;
    let a = Agent::new();
    assert_eq!(a.register(&l.server, &token, "C9300", "FOC-P1").code, 0);
    assert_eq!(a.report(&[("ess", 2)]).code, 0);
    l.api.create_account("Other").await;
    l.api.create_va("Other", "Edge").await;

    let admin = l.server.session("system-admin", None).await;
    let (s, html) = admin.page("/reports").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("href=\"/reports\""), "nav link");
    assert!(html.contains("id=\"report-table\""));
    assert!(html.contains("Showing 2 of 2 rows."), "{html}");
    assert!(html.contains("href=\"/reports/licenses.csv\""));

    // The page CSV is the API's CSV for the same scope, byte for byte in meaning.
    let (header, rows) = page_csv(&admin, "/reports/licenses.csv?account=Acme").await;
    assert_eq!(header[0], "account");
    assert_eq!(header.len(), 12);
    assert_eq!(rows.len(), 2);
    let ess = rows.iter().find(|r| r[2] == "ess").unwrap();
    assert_eq!((ess[6].as_str(), ess[8].as_str()), ("2", "1"));
    assert!(rows.iter().any(|r| r[2] == "'=adv"), "formula neutralised");

    let (header, rows) = page_csv(&admin, "/reports/instances.csv?status=authorized").await;
    assert_eq!(header[2], "id");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][4], "FOC-P1");
    let (_, rows) = page_csv(&admin, "/reports/instances.csv?status=registered").await;
    assert!(rows.is_empty());

    let (header, rows) = page_csv(&admin, "/reports/usage-history.csv?account=Acme&tag=ess").await;
    assert_eq!(
        header,
        [
            "date",
            "account",
            "virtual_account",
            "tag",
            "purchased",
            "in_use",
            "reserved",
            "available"
        ]
    );
    assert_eq!(rows.len(), 1, "today, live");
    assert_eq!(rows[0][5], "2");

    // A viewer of another account sees none of Acme, on the page and in the CSV.
    let other = l.server.session("viewer", Some("Other")).await;
    let (_, rows) = page_csv(&other, "/reports/licenses.csv").await;
    assert!(rows.is_empty(), "{rows:?}");
    let (_, rows) = page_csv(&other, "/reports/instances.csv").await;
    assert!(rows.is_empty());
    let (s, html) = other.page("/reports?report=licenses&account=Acme").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(html.contains("id=\"err-account\""), "{html}");
    assert_eq!(
        other
            .get("/reports/licenses.csv?account=Acme")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // A viewer of Acme sees Acme's rows.
    let viewer = l.server.session("viewer", Some("Acme")).await;
    let (_, rows) = page_csv(&viewer, "/reports/licenses.csv").await;
    assert_eq!(rows.len(), 2);

    // Bad filters: the error next to the field, never a 500.
    let (s, html) = admin
        .page("/reports?report=usage-history&from=2026-13-01")
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"err-from\""), "{html}");
    let (s, html) = admin.page("/reports?report=instances&status=bogus").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"err-status\""), "{html}");
    assert_eq!(
        admin
            .get("/reports/usage-history.csv?to=nope")
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (s, _) = admin.page("/reports?report=nope").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Writes `days` past days of usage history for Acme/Lab's `tag`, in use rising to
/// `quantity - 1`, straight into a stopped server's database (what the daily job would
/// have written over those days).
pub fn seed_history(data_dir: &std::path::Path, tag: &str, quantity: i64, days: i64) {
    let db = rusqlite::Connection::open(data_dir.join("satellite.db")).unwrap();
    let va_id: i64 = db
        .query_row(
            "SELECT v.id FROM virtual_accounts v JOIN accounts a ON a.id = v.account_id
             WHERE a.name = 'Acme' AND v.name = 'Lab'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let today = chrono::Utc::now().date_naive();
    for back in 1..=days {
        let day = today - chrono::Duration::days(back);
        let in_use = (quantity - 1) * (days - back) / days;
        db.execute(
            "INSERT OR REPLACE INTO usage_history (va_id, tag, day, purchased, in_use, reserved, available)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
            rusqlite::params![va_id, tag, day.to_string(), quantity, in_use, quantity - in_use],
        )
        .unwrap();
    }
}

#[tokio::test]
async fn va_page_draws_usage_charts_and_the_dashboard_a_status_chart() {
    let l = Licensed::start().await;
    l.perpetual("ess", 10).await;
    l.license(
        serde_json::json!({ "tag": "x<y>", "name": "<b>Adv</b> & co", "type": "perpetual",
        "quantity": 2, "start": "2020-01-01" }),
    )
    .await;
    let token = l.simple_token().await;
    let a = Agent::new();
    assert_eq!(a.register(&l.server, &token, "C9300", "FOC-C1").code, 0);
    assert_eq!(a.report(&[("ess", 7)]).code, 0);
    let b = Agent::new();
    assert_eq!(b.register(&l.server, &token, "C9300", "FOC-C2").code, 0);
    let (dir, data_dir) = l.server.stop();
    seed_history(&data_dir, "ess", 10, 20);
    let server =
        crate::support::Server::start_in(dir, data_dir, crate::support::ServerOptions::upstream());
    let admin = server.session("system-admin", None).await;

    let (s, html) = admin.page("/accounts/Acme/virtual-accounts/Lab").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("id=\"usage-charts\""), "{html}");
    assert!(html.contains("id=\"usage-chart-0\""));
    assert!(html.contains("role=\"img\""));
    // 20 seeded days and today, live.
    let today = chrono::Utc::now().date_naive();
    assert!(
        html.contains(&format!(
            "ess: 7 in use of 10 purchased on {today}; peak in use 8 over 21 day(s) shown."
        )),
        "{html}"
    );
    assert!(html.contains("<polyline"));
    // A license name is data: escaped in the SVG and in the table.
    assert!(!html.contains("<b>Adv</b>"));
    assert!(html.contains("&lt;b&gt;Adv&lt;/b&gt; &amp; co"));

    let (s, html) = admin.page("/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("id=\"status-chart\""));
    assert!(
        html.contains("authorized: 1; registered: 1. Bar lengths use a logarithmic scale.")
            || html.contains("registered: 1; authorized: 1. Bar lengths use a logarithmic scale."),
        "{html}"
    );
    assert!(html.contains("fill=\"#12b76a\"") && html.contains("fill=\"#f79009\""));
}

fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

#[tokio::test]
async fn events_filter_by_date_range_and_export_csv_on_api_and_page() {
    let server = crate::support::Server::start();
    let api = server.admin_api().await;
    api.create_account("Acme").await;
    api.create_account("Other").await;
    let today = chrono::Utc::now().date_naive();
    let (yesterday, tomorrow) = (today.pred_opt().unwrap(), today.succ_opt().unwrap());

    let (s, all) = api.get("/api/v1/events?limit=100").await;
    assert_eq!(s, StatusCode::OK);
    let total = all["items"].as_array().unwrap().len();
    assert!(total >= 2);
    let (s, b) = api
        .get(&format!("/api/v1/events?from={today}&to={today}&limit=100"))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["items"].as_array().unwrap().len(),
        total,
        "inclusive of today"
    );
    let (_, b) = api.get(&format!("/api/v1/events?from={tomorrow}")).await;
    assert!(b["items"].as_array().unwrap().is_empty());
    let (_, b) = api.get(&format!("/api/v1/events?to={yesterday}")).await;
    assert!(b["items"].as_array().unwrap().is_empty());
    for bad in [
        "from=2026-02-30",
        "to=today",
        "from=2026-11-02&to=2026-11-01",
    ] {
        let (s, b) = api.get(&format!("/api/v1/events?{bad}")).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {b}");
        assert!(
            b["error"]["code"] == "invalid_date" || b["error"]["code"] == "invalid_range",
            "{b}"
        );
    }

    // CSV on the API: every matching event, newest first.
    let res = api
        .http
        .get(format!(
            "{}/api/v1/events?format=csv&from={today}&to={today}",
            api.base
        ))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let (header, rows) = parse_csv(&res.text().await.unwrap());
    assert_eq!(
        header,
        ["id", "at", "actor", "action", "account", "target", "detail"]
    );
    assert_eq!(rows.len(), total);
    // Formula cells go through the shared writer (unit-tested in web::download).
    assert!(rows
        .iter()
        .any(|r| r[5] == "Acme" && r[3] == "account.created"));
    assert!(rows.iter().all(|r| r[1].starts_with(&today.to_string())));

    // The page: the same filters, a CSV link, errors next to the field.
    let admin = server.session("system-admin", None).await;
    let (s, html) = admin
        .page(&format!("/events?from={today}&to={today}"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("id=\"events-csv\""));
    assert!(html.contains("account.created"), "{html}");
    let (s, html) = admin.page(&format!("/events?from={tomorrow}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("No events match."));
    let (s, html) = admin.page("/events?from=31/12/2026").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"err-from\""), "{html}");
    let res = admin
        .get(&format!("/events.csv?action=account.created&to={today}"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let (_, rows) = parse_csv(&res.text().await.unwrap());
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r[3] == "account.created"));
    assert_eq!(
        admin.get("/events.csv?to=nope").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Scoped: a viewer of Other exports Other's events only.
    let viewer = server.session("viewer", Some("Other")).await;
    let (_, rows) = parse_csv(&viewer.get("/events.csv").await.text().await.unwrap());
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r[4] == "Other"), "{rows:?}");
}

/// Adds user `name` with the CLI and logs a fresh browser-like session in as them.
async fn user_session(
    server: &crate::support::Server,
    name: &str,
    role: &str,
    account: Option<&str>,
) -> Session {
    let mut args = vec![
        "user",
        "add",
        "--username",
        name,
        "--role",
        role,
        "--password-stdin",
    ];
    if let Some(a) = account {
        args.extend(["--account", a]);
    }
    let out = server.cli_with_stdin(&args, Some(PASSWORD));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let s = Session::new(&server.url);
    assert_eq!(
        s.login(name, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    s
}

const PASSWORD: &str = "correct horse battery staple";

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn users_page_changes_roles_resets_passwords_and_disables_users() {
    let server = crate::support::Server::start();
    let api = server.admin_api().await;
    api.create_account("Acme").await;
    let admin = user_session(&server, "root2", "system-admin", None).await;
    let bob = user_session(&server, "bob", "viewer", Some("Acme")).await;
    assert_eq!(bob.get("/").await.status(), StatusCode::OK);

    // Disabling ends bob's session at once and refuses his login.
    let (s, _, to) = admin.submit("/users", "/users/bob/disable", &[]).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(to.as_deref(), Some("/users"));
    let res = bob.get("/").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(location(&res).starts_with("/login"), "{}", location(&res));
    let again = Session::new(&server.url);
    assert_ne!(
        again.login("bob", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let (_, html) = admin.page("/users").await;
    assert!(html.contains("pill-revoked\">disabled"), "{html}");
    let (s, _, _) = admin.submit("/users", "/users/bob/enable", &[]).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let bob = Session::new(&server.url);
    assert_eq!(
        bob.login("bob", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );

    // A reset shows a new password once, ends sessions and forces a change at login.
    let (s, _, to) = admin
        .submit("/users", "/users/bob/reset-password", &[])
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, html) = admin.page(&to.expect("post/redirect/get")).await;
    let marker = "id=\"reset-password\">";
    let start = html.find(marker).expect("password shown") + marker.len();
    let new_password = html[start..start + html[start..].find('<').unwrap()].to_string();
    assert_eq!(new_password.len(), 20);
    assert!(location(&bob.get("/").await).starts_with("/login"));
    let old = Session::new(&server.url);
    assert_ne!(
        old.login("bob", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let bob = Session::new(&server.url);
    let res = bob.login("bob", &new_password).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/account/password");
    assert_eq!(location(&bob.get("/").await), "/account/password");

    // Role and account: the creation rules hold; a refused change changes nothing.
    let (s, html, _) = admin
        .submit(
            "/users",
            "/users/bob/update",
            &[("role", "operator"), ("account", "Acme")],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("is not scoped to an account"), "{html}");
    let (s, _, _) = admin
        .submit(
            "/users",
            "/users/bob/update",
            &[("role", "operator"), ("account", "")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, html) = admin.page("/users").await;
    let row = &html[html.find("id=\"user-bob\"").unwrap()..];
    assert!(row[..row.find("</td><td>").unwrap()].contains("bob"));
    assert!(
        row.contains("<span class=\"badge\">operator</span>"),
        "{row}"
    );

    // Nobody manages themselves here; non-admins not at all.
    let (s, _, _) = admin.submit("/users", "/users/root2/disable", &[]).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let viewer = user_session(&server, "vera", "viewer", Some("Acme")).await;
    let (_, html) = viewer.page("/").await;
    let csrf = crate::support::csrf_of(&html);
    let (s, _, _) = viewer
        .post_form("/users/bob/disable", &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Each change is an event.
    let (_, events) = api.get("/api/v1/events?limit=100").await;
    let actions: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == "bob")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "user.disabled",
        "user.enabled",
        "user.password_reset",
        "user.updated",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
}
