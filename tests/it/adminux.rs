//! Admin experience (issue 15): per-server cookie names, substitution rank, the account-wide
//! instance list, case-insensitive names, sync page guidance.

use crate::support::{async_client, Server, ServerOptions, Session};
use reqwest::StatusCode;

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
