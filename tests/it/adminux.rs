//! Admin experience (issue 15): per-server cookie names, substitution rank, the account-wide
//! instance list, case-insensitive names, sync page guidance.

use crate::support::agent::Agent;
use crate::support::sync::Pair;
use crate::support::{async_client, Server, ServerOptions, Session, VA};
use reqwest::StatusCode;
use serde_json::json;

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
