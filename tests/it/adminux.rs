//! Admin experience (issue 15): per-server cookie names, substitution rank, the account-wide
//! instance list, case-insensitive names, sync page guidance.

use crate::support::agent::{rfc3339, Agent, RawAgent};
use crate::support::sync::Pair;
use crate::support::webdriver::Browser;
use crate::support::{async_client, Api, Licensed, Server, ServerOptions, Session, VA};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// One browser (one cookie jar) signed in to an upstream and a satellite on one host:
/// each server's cookie has its own name, so neither session overwrites the other.
#[tokio::test]
async fn one_cookie_jar_keeps_sessions_on_two_servers_of_one_host() {
    let upstream = Server::start_with(ServerOptions::upstream());
    let satellite = Server::start();
    let jar = async_client(true);
    let up = Session {
        base: upstream.url.clone(),
        http: jar.clone(),
    };
    let sat = Session {
        base: satellite.url.clone(),
        http: jar,
    };
    let mut names = Vec::new();
    for (session, server) in [(&up, &upstream), (&sat, &satellite)] {
        let res = session
            .login("admin", server.admin_password.as_deref().unwrap())
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let name = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with("satellite_session_") && !c.contains("Max-Age=0"))
            .and_then(|c| c.split('=').next().map(str::to_string))
            .expect("a named session cookie");
        names.push(name);
    }
    assert_ne!(names[0], names[1], "each server names its own cookie");
    // Both sessions are still valid: a signed-in page, not the login redirect.
    for session in [&up, &sat] {
        let (status, html) = session.page("/account/password").await;
        assert_eq!(status, StatusCode::OK, "{}", session.base);
        assert!(html.contains("new_password"), "{}", session.base);
        let res = session.get("/").await;
        assert_eq!(res.headers()["location"], "/account/password");
    }
}

/// HCS dual parenting end to end: Enterprise demand beyond its own pool goes to the
/// lower-ranked Foundation before Standard (tag order alone would pick Standard first);
/// rank is listed, checked, and travels to a satellite by sync.
#[tokio::test]
async fn substitution_follows_rank_on_both_sides() {
    let pair = Pair::start().await;
    let l = &pair.upstream;
    l.perpetual("ent", 2).await;
    l.license(
        json!({ "tag": "hcs-a-standard", "name": "HCS Standard", "type": "perpetual",
        "quantity": 5, "start": "2020-01-01", "substitutes": ["ent"], "rank": 20 }),
    )
    .await;
    l.license(
        json!({ "tag": "hcs-z-foundation", "name": "HCS Foundation", "type": "perpetual",
        "quantity": 3, "start": "2020-01-01", "substitutes": ["ent"], "rank": 10 }),
    )
    .await;
    let (s, b) = l
        .api
        .post(
            &format!("{VA}/licenses"),
            json!({ "tag": "bad", "name": "bad", "type": "perpetual", "quantity": 1,
                    "start": "2020-01-01", "rank": -1 }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "invalid_license");

    let token = l.simple_token().await;
    let a = Agent::new();
    assert_eq!(a.register(&l.server, &token, "HCS", "SN1").code, 0);
    let out = a.report(&[("ent", 7)]);
    assert_eq!(out.value("status"), "authorized", "{}", out.stdout);
    let pools = l.pools().await;
    assert_eq!(pools["ess"]["rank"], 100, "the default");
    assert_eq!(pools["hcs-z-foundation"]["rank"], 10);
    assert_eq!(pools["ent"]["in_use"], 2);
    assert_eq!(pools["hcs-z-foundation"]["in_use"], 3, "rank 10 first");
    assert_eq!(pools["hcs-a-standard"]["in_use"], 2, "then rank 20");
    assert_eq!(pools["hcs-a-standard"]["available"], 3);
    l.assert_counters_exact();

    // The satellite receives the ranks with the licenses.
    pair.register_disconnected().await;
    pair.sync_disconnected().await;
    let (s, b) = pair.sat_api.get(&format!("{VA}/licenses")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ranks: Vec<(String, i64)> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["tag"].as_str().unwrap().into(),
                l["rank"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(
        ranks.contains(&("hcs-z-foundation".into(), 10)),
        "{ranks:?}"
    );
    assert!(ranks.contains(&("hcs-a-standard".into(), 20)), "{ranks:?}");
    assert!(ranks.contains(&("adv".into(), 100)), "{ranks:?}");
}

/// Every page of the account-wide list, walked forward then back, in each sort order.
async fn walk(api: &Api, query: &str) -> (Vec<Value>, i64) {
    let base = format!("/api/v1/accounts/Acme/instances?limit=3&{query}");
    let mut items: Vec<Value> = Vec::new();
    let mut pages = 0;
    let mut after: Option<String> = None;
    let mut last_prev: Option<String> = None;
    loop {
        let url = match &after {
            Some(a) => format!("{base}&after={a}"),
            None => base.clone(),
        };
        let (s, b) = api.get(&url).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["prev_before"].is_null(), after.is_none(), "{url}: {b}");
        items.extend(b["items"].as_array().unwrap().iter().cloned());
        pages += 1;
        last_prev = b["prev_before"].as_str().map(str::to_string).or(last_prev);
        match b["next_after"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert!(pages > 2, "more than two pages for {query}");
    // Back from the last page to the first: the same items, in the same order.
    let mut back: Vec<Value> = Vec::new();
    let mut before = last_prev;
    while let Some(c) = before {
        let (s, b) = api.get(&format!("{base}&before={c}")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let mut page = b["items"].as_array().unwrap().clone();
        page.extend(back);
        back = page;
        before = b["prev_before"].as_str().map(str::to_string);
    }
    let tail = items.len() - back.len();
    assert!(tail > 0 && tail <= 3, "back walk stops at the first page");
    assert_eq!(back, items[..items.len() - tail].to_vec(), "{query}");
    let total = api.get(&base).await.1["total"].as_i64().unwrap();
    (items, total)
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn one_instance_list_across_the_vas_of_an_account() {
    let l = Licensed::start().await;
    l.perpetual("ess", 100).await;
    l.api.create_va("Acme", "Edge").await;
    let lab = l.simple_token().await;
    let (s, b) = l
        .api
        .post(
            "/api/v1/accounts/Acme/virtual-accounts/Edge/tokens",
            json!({ "expires_in_days": 30, "export_controlled": false }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let edge = b["token"].as_str().unwrap().to_string();
    // 13 instances over two VAs, PIDs with ties, some reporting (authorized), some not.
    let mut agents = Vec::new();
    for n in 0..13 {
        let token = if n % 2 == 0 { &lab } else { &edge };
        let pid = ["C9300", "ISR4451", "ASR1001"][n % 3];
        let (a, agent) =
            RawAgent::register(&l.server.url, token, pid, &format!("FOC{n:03}X")).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        agents.push(agent.unwrap());
    }
    for (n, a) in agents.iter().enumerate().filter(|(n, _)| n % 4 == 0) {
        let r = a
            .report(&format!("r{n}"), &rfc3339(RawAgent::now()), &[("ess", 1)])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // One more draws past the pool: a status the status index holds, so a status sort
    // merges the index's run with the two walked ones.
    let over = agents[1]
        .report("r-over", &rfc3339(RawAgent::now()), &[("ess", 500)])
        .await;
    assert_eq!(over.status, StatusCode::OK, "{}", over.body);
    assert_ne!(over.body["status"], "authorized", "{}", over.body);

    let (all, total) = walk(&l.api, "").await;
    assert_eq!(total, 13);
    let mut by_id = ids(&all);
    assert_eq!(by_id.len(), 13);
    by_id.dedup();
    assert_eq!(by_id.len(), 13, "no instance twice");
    assert!(by_id.windows(2).all(|w| w[0] < w[1]), "by id by default");
    let vas: std::collections::BTreeSet<&str> = all
        .iter()
        .map(|i| i["virtual_account"].as_str().unwrap())
        .collect();
    assert_eq!(vas.into_iter().collect::<Vec<_>>(), ["Edge", "Lab"]);

    let (by_pid, _) = walk(&l.api, "sort=pid").await;
    let keys: Vec<(String, String)> = by_pid
        .iter()
        .map(|i| {
            (
                i["udi"]["pid"].as_str().unwrap().into(),
                i["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "by pid, ties by id");
    assert_eq!(keys.len(), 13);

    let (by_status, _) = walk(&l.api, "sort=status").await;
    let keys: Vec<(String, String)> = by_status
        .iter()
        .map(|i| {
            (
                i["status"].as_str().unwrap().into(),
                i["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "by status, ties by id");
    assert_eq!(keys[0].0, "authorized");
    assert_eq!(keys.iter().filter(|k| k.0 == "authorized").count(), 4);
    assert_eq!(keys.iter().filter(|k| k.0 == "registered").count(), 8);
    assert_eq!(keys.len(), 13, "the indexed status too: {keys:?}");
    // `registered`, which the status index leaves out (migration 0024), is found by
    // walking each VA, paged both ways.
    let (registered, total) = walk(&l.api, "status=registered").await;
    assert_eq!((registered.len(), total), (8, 8));
    assert!(registered.iter().all(|i| i["status"] == "registered"));

    let (by_contact, _) = walk(&l.api, "sort=last_contact").await;
    let keys: Vec<(String, String)> = by_contact
        .iter()
        .map(|i| {
            (
                i["last_contact"].as_str().unwrap().into(),
                i["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(keys, sorted, "newest contact first");
    assert_eq!(keys.len(), 13);

    // Filters: status, VA, a substring from the middle of a serial number.
    let (s, b) = l
        .api
        .get("/api/v1/accounts/Acme/instances?status=authorized")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["items"].as_array().unwrap().len(), 4);
    assert_eq!(b["total"], 4);
    let (_, b) = l
        .api
        .get("/api/v1/accounts/Acme/instances?virtual_account=Edge&sort=pid")
        .await;
    assert_eq!(b["items"].as_array().unwrap().len(), 6);
    assert_eq!(b["total"], 6);
    let (_, b) = l.api.get("/api/v1/accounts/Acme/instances?q=C011").await;
    let found = ids(b["items"].as_array().unwrap());
    assert_eq!(found.len(), 1, "{b}");
    assert_eq!(b["items"][0]["udi"]["sn"], "FOC011X");
    let (_, b) = l.api.get("/api/v1/accounts/Acme/instances?q=isr").await;
    assert_eq!(
        b["items"].as_array().unwrap().len(),
        4,
        "case-insensitive substring"
    );

    // Bad input is a 400 that names it; another account's list is a 404.
    for bad in [
        "sort=name",
        "status=happy",
        "after=garbage",
        "after=x&before=y",
    ] {
        let (s, b) = l
            .api
            .get(&format!("/api/v1/accounts/Acme/instances?{bad}"))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
        assert_eq!(b["error"]["code"], "bad_request");
    }
    let (_, first) = l.api.get("/api/v1/accounts/Acme/instances?limit=2").await;
    let cursor = first["next_after"].as_str().unwrap();
    let (s, _) = l
        .api
        .get(&format!(
            "/api/v1/accounts/Acme/instances?sort=pid&after={cursor}"
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a cursor of another sort");
    let (s, _) = l.api.get("/api/v1/accounts/Nope/instances").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = l
        .api
        .get("/api/v1/accounts/Acme/instances?virtual_account=Nope")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Across accounts, for a system admin.
    let (s, b) = l.api.get("/api/v1/instances?limit=500").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["items"].as_array().unwrap().len(), 13);
    assert_eq!(b["items"][0]["account"], "Acme");

    // The page: totals, sort, filters, and previous/next pages that keep them.
    let session = l.server.session("system-admin", None).await;
    let (s, html) = session
        .page("/accounts/Acme/instances?sort=pid&limit=5")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("13 instances"), "{html}");
    assert!(html.contains("id=\"next-page\""));
    assert!(
        !html.contains("id=\"prev-page\""),
        "no previous page on the first"
    );
    let next = href(&html, "next-page");
    assert!(next.contains("sort=pid"), "{next}");
    let (s, html) = session.page(&next).await;
    assert_eq!(s, StatusCode::OK, "{next}: {html}");
    assert!(html.contains("id=\"prev-page\""), "{next}");
    let (_, html) = session
        .page("/accounts/Acme/instances?status=authorized&q=FOC")
        .await;
    assert!(
        html.contains("4 instances with status authorized"),
        "{html}"
    );
    assert_eq!(html.matches("pill-authorized").count(), 4);
    let (s, html) = session.page("/instances?sort=last_contact").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Product instances of every account"));
    let (s, _) = session.page("/accounts/Acme/instances?sort=bogus").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// The `href` of the link with this id, entities decoded.
fn href(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let end = html.find(&marker).expect("link");
    let start = html[..end].rfind("href=\"").expect("href") + 6;
    let stop = html[start..].find('"').unwrap() + start;
    html[start..stop]
        .replace("&amp;", "&")
        .replace("&#38;", "&")
}

/// Names that differ only in case are duplicates: accounts, VAs (within an account) and
/// users, at creation and at rename; 409 `duplicate_name` next to the name field.
#[tokio::test]
async fn names_differing_only_in_case_are_duplicates() {
    let server = Server::start();
    let api = server.admin_api().await;
    api.create_account("Acme").await;
    api.create_account("Globex").await;
    let (s, b) = api
        .post("/api/v1/accounts", json!({ "name": "ACME" }))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "duplicate_name");
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ignoring case"));
    let (s, b) = api
        .patch("/api/v1/accounts/Globex", json!({ "name": "acme" }))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "duplicate_name");
    // A change of case of its own name is no clash.
    let (s, b) = api
        .patch("/api/v1/accounts/Globex", json!({ "name": "GLOBEX" }))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    api.create_va("Acme", "Lab").await;
    let (s, b) = api
        .post(
            "/api/v1/accounts/Acme/virtual-accounts",
            json!({ "name": "LAB" }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "duplicate_name");
    api.create_va("GLOBEX", "lab").await;

    // Usernames are lowercase by rule, so only older rows could clash; migration 0015
    // renames those (unit test `names_differing_in_case_are_renamed_then_refused`).

    // On the page, the error sits next to the name field and keeps what was typed.
    let session = server.session("system-admin", None).await;
    let (s, html, _) = session
        .submit(
            "/accounts",
            "/accounts",
            &[("name", "aCmE"), ("description", "")],
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(html.contains("ignoring case"), "{html}");
    assert!(html.contains("value=\"aCmE\""), "{html}");
}

/// The Sync page tells a new admin what to do first and next, checks a token's shape
/// before writing anything, says why a connected attempt failed in words and keeps what
/// was typed, and shows no cron form for a disconnected link.
#[tokio::test]
async fn sync_pages_guide_and_keep_what_was_typed() {
    let pair = Pair::start().await;
    let fresh = Server::start();
    let session = fresh.session("system-admin", None).await;
    let (s, html) = session.page("/sync").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Nothing to sync yet"), "{html}");
    assert!(html.contains("id=\"server-role\">Satellite<"), "role label");
    assert!(html.contains("href=\"#content\""), "skip link");

    let session = pair.satellite.session("system-admin", None).await;
    let (_, html) = session.page("/sync").await;
    assert!(html.contains("id=\"sync-next\""), "{html}");
    let page = "/accounts/Acme/sync";
    let (_, html) = session.page(page).await;
    assert!(html.contains("id=\"first-steps\""));
    assert!(
        !html.contains("id=\"schedule\""),
        "no cron form before registration"
    );

    // A token of the wrong shape: refused at its own form's field, nothing written.
    let (s, html, _) = session
        .submit(
            page,
            "/accounts/Acme/sync/register",
            &[
                ("mode", "disconnected"),
                ("token", "st_not-a-satellite-token"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"disconnected-token-error\""), "{html}");
    assert!(!html.contains("id=\"connected-token-error\""));
    assert!(html.contains("value=\"st_not-a-satellite-token\""));
    let (_, state) = pair.sat_api.get("/api/v1/accounts/Acme/upstream").await;
    assert_eq!(state["state"], "unregistered", "{state}");
    assert!(
        std::fs::read_dir(pair.satellite.bundle_dir().join("outbox"))
            .map(|d| d.count() == 0)
            .unwrap_or(true)
    );

    // An unreachable upstream: said in words, next to the connected form, typed values kept.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("https://127.0.0.1:{refused}");
    let token = pair.satellite_token().await;
    let (s, html, _) = session
        .submit(
            page,
            "/accounts/Acme/sync/register",
            &[("mode", "connected"), ("url", &url), ("token", &token)],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{html}");
    assert!(
        html.contains(&format!("Cannot reach {url}: connection refused")),
        "{html}"
    );
    assert!(html.contains("id=\"connected-problem\""));
    assert!(html.contains(&format!("value=\"{url}\"")));
    assert!(html.contains(&format!("value=\"{token}\"")));
    let (_, html) = session.page(page).await;
    assert!(
        !html.contains("id=\"pending-next\""),
        "a failed connected attempt is not a request waiting to be carried"
    );

    // Registered disconnected: the steps by hand, no cron form.
    pair.register_disconnected().await;
    let (_, html) = session.page(page).await;
    assert!(html.contains("id=\"disconnected-steps\""), "{html}");
    assert!(!html.contains("id=\"schedule\""));
    assert!(html.contains("id=\"sync-history\""));

    // The upstream looks different: its own role label and accent.
    let up = pair.upstream.server.session("system-admin", None).await;
    let (_, html) = up.page("/").await;
    assert!(html.contains("class=\"role-upstream\""));
    assert!(html.contains("id=\"server-role\">Upstream<"));
}

/// Licenses change and go on the upstream; removal and shrinking below what is in use or
/// reserved are refused with the reason; a satellite refuses both.
#[tokio::test]
async fn licenses_are_edited_and_removed_on_the_upstream() {
    let l = Licensed::start().await;
    l.perpetual("ess", 5).await;
    l.perpetual("spare", 2).await;
    let token = l.simple_token().await;
    let (a, agent) = RawAgent::register(&l.server.url, &token, "C9300", "FOC1").await;
    assert_eq!(a.status, StatusCode::CREATED);
    let r = agent
        .unwrap()
        .report("r1", &rfc3339(RawAgent::now()), &[("ess", 3)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let (s, b) = l
        .api
        .patch(
            &format!("{VA}/licenses/ess"),
            json!({ "quantity": 8, "rank": 5, "name": "Essentials" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (
            b["quantity"].as_i64(),
            b["rank"].as_i64(),
            b["in_use"].as_i64()
        ),
        (Some(8), Some(5), Some(3))
    );
    let (s, b) = l
        .api
        .patch(&format!("{VA}/licenses/ess"), json!({ "quantity": 2 }))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "insufficient_licenses");
    let (s, b) = l.api.delete(&format!("{VA}/licenses/ess")).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "license_in_use");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("3 are in use"),
        "{b}"
    );
    let (s, b) = l
        .api
        .patch(&format!("{VA}/licenses/ess"), json!({ "colour": "blue" }))
        .await;
    assert!(s.is_client_error(), "{b}");

    // Unused: removed, counted and recorded.
    let (s, _) = l.api.delete(&format!("{VA}/licenses/spare")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(!l.pools().await.contains_key("spare"));
    let (s, _) = l.api.delete(&format!("{VA}/licenses/spare")).await;
    assert!(s.is_client_error());
    let (_, events) = l.api.get("/api/v1/events?limit=50").await;
    let actions: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"license.removed"), "{actions:?}");
    assert!(actions.contains(&"license.updated"), "{actions:?}");
    l.assert_counters_exact();

    // The page: the refusal in words on the VA page.
    let session = l.server.session("system-admin", None).await;
    let page = "/accounts/Acme/virtual-accounts/Lab";
    let (_, html) = session.page(page).await;
    assert!(html.contains("/licenses/ess/remove"), "a Remove button");
    let (s, html, _) = session
        .submit(
            page,
            "/accounts/Acme/virtual-accounts/Lab/licenses/ess/remove",
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(
        html.contains("cannot be removed while 3 are in use"),
        "{html}"
    );
    let (s, _, location) = session
        .submit(
            page,
            "/accounts/Acme/virtual-accounts/Lab/licenses/ess/edit",
            &[("name", "Essentials"), ("quantity", "9"), ("rank", "7")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some(page));
    assert_eq!(l.pools().await["ess"]["quantity"], 9);

    // A satellite does not own licenses.
    let sat = Server::start();
    let api = sat.admin_api().await;
    api.create_account("Acme").await;
    api.create_va("Acme", "Lab").await;
    let (s, b) = api.delete(&format!("{VA}/licenses/ess")).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("upstream_only"))
    );
}

/// Logs in as the initial admin in the browser and replaces the generated password.
async fn browser_login(browser: &Browser, server: &Server) {
    browser.first_admin_login(server, &server.url).await;
}

/// Chromium walks what issue 15 built: the upstream's look, the order of substitution,
/// full and over, license change/removal, the account-wide instance list with paging and
/// on a phone, and the satellite's Sync page guidance and errors.
#[tokio::test]
async fn browser_walks_the_admin_experience() {
    let pair = Pair::start().await;
    let l = &pair.upstream;
    l.license(
        json!({ "tag": "hcs-foundation", "name": "HCS Foundation", "type": "perpetual",
        "quantity": 3, "start": "2020-01-01", "substitutes": ["ent"], "rank": 10 }),
    )
    .await;
    l.license(
        json!({ "tag": "hcs-standard", "name": "HCS Standard", "type": "perpetual",
        "quantity": 5, "start": "2020-01-01", "substitutes": ["ent"], "rank": 20 }),
    )
    .await;
    l.perpetual("ent", 2).await;
    let token = l.simple_token().await;
    // ess 5 + adv 2 cover 8 of ess: one over. ent 6: own 2, Foundation 3, Standard 1.
    for (n, usage) in [("ess", 4), ("ess", 4), ("ent", 6)].iter().enumerate() {
        let (a, agent) =
            RawAgent::register(&l.server.url, &token, "C9300", &format!("FOC{n}")).await;
        assert_eq!(a.status, StatusCode::CREATED);
        let r = agent
            .unwrap()
            .report(
                &format!("r{n}"),
                &rfc3339(RawAgent::now()),
                &[(usage.0, usage.1)],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    for n in 3..9 {
        let (a, _) = RawAgent::register(&l.server.url, &token, "ISR4451", &format!("FDO{n}")).await;
        assert_eq!(a.status, StatusCode::CREATED);
    }
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser.set_size(1280, 1000).await;
    browser_login(&browser, &l.server).await;
    let up = &l.server.url;
    browser
        .goto(&format!("{up}/accounts/Acme/virtual-accounts/Lab"))
        .await;
    assert_eq!(
        browser.text("#server-role").await.to_lowercase(),
        "upstream"
    );
    let order = browser.text("#substitution-order").await;
    assert!(
        order.contains("HCS Foundation (rank 10), then HCS Standard (rank 20)"),
        "{order}"
    );
    let licenses = browser.text("#licenses").await;
    assert!(licenses.contains("over by 1"), "{licenses}");
    assert!(licenses.contains("full"), "{licenses}");
    browser.screenshot("adminux-01-upstream-va").await;

    // A token with its copy button.
    browser.click("#create-token").await;
    assert!(browser.exists("#copy-token").await);
    browser.screenshot("adminux-02-token-copy").await;

    // The account-wide list, newest contact first, paged.
    browser
        .goto(&format!(
            "{up}/accounts/Acme/instances?sort=last_contact&limit=4"
        ))
        .await;
    assert!(browser
        .text("#instance-total")
        .await
        .starts_with("9 instances"));
    browser.screenshot("adminux-03-instances").await;
    browser.click("#next-page").await;
    assert!(browser.exists("#prev-page").await);
    browser.fill("#instance-q", "fdo").await;
    browser.click("#search").await;
    assert_eq!(browser.text("#instances").await.matches("FDO").count(), 6);
    browser.screenshot("adminux-04-search").await;
    // On a phone the status column stays.
    browser.set_size(390, 844).await;
    browser.goto(&format!("{up}/accounts/Acme/instances")).await;
    browser.screenshot("adminux-05-phone").await;
    browser
        .goto(&format!("{up}/accounts/Acme/virtual-accounts/Lab"))
        .await;
    browser.screenshot("adminux-05b-phone-va").await;
    browser.set_size(1280, 1000).await;

    // The satellite: an account not yet registered, a token of the wrong shape.
    browser_login(&browser, &pair.satellite).await;
    let sat = &pair.satellite.url;
    browser.goto(&format!("{sat}/sync")).await;
    assert_eq!(
        browser.text("#server-role").await.to_lowercase(),
        "satellite"
    );
    browser.screenshot("adminux-06-sync").await;
    browser.goto(&format!("{sat}/accounts/Acme/sync")).await;
    browser.fill("#disconnected-token", "st_wrong").await;
    browser.click("#register-disconnected-submit").await;
    assert!(browser
        .text("#disconnected-token-error")
        .await
        .contains("not a satellite registration token"));
    browser.screenshot("adminux-07-token-shape").await;
    browser.quit().await;
}
