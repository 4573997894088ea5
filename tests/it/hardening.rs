//! Hardening (issue 12, the web half): each test replays an attack against the real
//! binary and shows that it held: slow clients, floods of guesses, lockout of the owner,
//! off-site redirects, usage replays, body-before-credentials, weak passwords, stale
//! sessions, oversized forms, an anonymous TLS certificate and HEAD.

use crate::support::agent::{rfc3339, RawAgent};
use crate::support::{async_client, csrf_of, Licensed, Server, ServerOptions, Session, VA};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn addr_of(url: &str) -> String {
    url.trim_start_matches("https://")
        .trim_start_matches("http://")
        .to_string()
}

/// A trickling client: sends `head`, then one byte of `drip` every 200 ms, until the
/// server closes the connection or `give_up` passes. Returns how long the server let it
/// live (None when it outlived `give_up`).
async fn trickle(addr: String, head: Vec<u8>, drip: u8, give_up: Duration) -> Option<Duration> {
    let started = Instant::now();
    let Ok(mut stream) = tokio::net::TcpStream::connect(&addr).await else {
        return Some(Duration::ZERO);
    };
    if stream.write_all(&head).await.is_err() {
        return Some(started.elapsed());
    }
    let mut buf = [0u8; 1024];
    while started.elapsed() < give_up {
        if stream.write_all(&[drip]).await.is_err() {
            return Some(started.elapsed());
        }
        // Whatever the server answers (408), it then closes: EOF or reset ends the loop.
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    None
}

/// Floods a plain-HTTP server (cap 64, 2 s timeouts) with 280 slow connections from
/// 127.0.0.1 and sends one normal request from `normal_from`; returns how long the normal
/// request waited and the server.
async fn flood(per_address: &str, normal_from: Ipv4Addr) -> (Duration, Server) {
    // Plain HTTP so the attack can be typed byte by byte; the limits are the same as
    // behind TLS. A low cap so that the attack is far larger than the server's budget.
    let server = Server::start_with(ServerOptions {
        env: env(&[
            ("SATELLITE_INSECURE_HTTP", "true"),
            ("SATELLITE_MAX_CONNECTIONS", "64"),
            ("SATELLITE_HEADER_TIMEOUT_SECONDS", "2"),
            ("SATELLITE_BODY_TIMEOUT_SECONDS", "2"),
            ("SATELLITE_KEEP_ALIVE_SECONDS", "2"),
            ("SATELLITE_MAX_CONNECTIONS_PER_ADDRESS", per_address),
        ]),
        ..Default::default()
    });
    let addr = addr_of(&server.url);
    let give_up = Duration::from_secs(25);
    let mut attackers = Vec::new();
    // Slowloris: headers that never end.
    for _ in 0..120 {
        let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec();
        attackers.push(tokio::spawn(trickle(addr.clone(), head, b'a', give_up)));
    }
    // Slow body: complete headers, a body that never arrives in time.
    for _ in 0..120 {
        let head = b"POST /agent/v1/usage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n{".to_vec();
        attackers.push(tokio::spawn(trickle(addr.clone(), head, b' ', give_up)));
    }
    // Idle keep-alive: one complete request, then silence; closed after the keep-alive.
    for _ in 0..40 {
        let addr = addr.clone();
        attackers.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut stream = tokio::net::TcpStream::connect(&addr).await.ok()?;
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .ok()?;
            let mut buf = [0u8; 4096];
            loop {
                match tokio::time::timeout(give_up, stream.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
                    Ok(Ok(_)) => {}
                    Err(_) => return None,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A normal client, from an address of its own, is served while the attack runs.
    let started = Instant::now();
    let res = reqwest::Client::builder()
        .local_address(IpAddr::V4(normal_from))
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("a normal client is served under attack");
    assert_eq!(res.status(), StatusCode::OK);
    let waited = started.elapsed();

    let mut lived = Vec::new();
    for a in attackers {
        lived.push(a.await.unwrap());
    }
    let held = lived.iter().filter(|l| l.is_none()).count();
    assert_eq!(held, 0, "every trickling connection is cut; {held} held on");
    let longest = lived.iter().flatten().max().copied().unwrap_or_default();
    eprintln!("normal client waited {waited:?}; longest trickler lived {longest:?}");
    assert!(
        longest < Duration::from_secs(20),
        "cut after the timeouts: {longest:?}"
    );
    // And the server is still healthy afterwards.
    let res = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    (waited, server)
}

#[tokio::test]
async fn slow_clients_are_cut_and_a_normal_client_is_still_served() {
    // No per-address cap: every slow connection is cut by its own timeout (header, body,
    // keep-alive), and the normal client, at the same address, waits its turn.
    let (waited, _server) = flood("0", Ipv4Addr::new(127, 0, 0, 1)).await;
    assert!(waited < Duration::from_secs(20), "waited {waited:?}");
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    // With a per-address cap of 16 the flood holds 16 of the 64 slots: a client elsewhere
    // is served at once (about 8 s behind the flood without the cap).
    let (waited, server) = flood("16", Ipv4Addr::new(127, 0, 0, 2)).await;
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert!(server.log().contains("connections per address capped"));
}

#[tokio::test]
async fn silent_tls_connections_are_cut_and_https_is_still_served() {
    // Connections that open TCP and never start the TLS handshake.
    let server = Server::start_with(ServerOptions {
        env: env(&[
            ("SATELLITE_MAX_CONNECTIONS", "32"),
            ("SATELLITE_HEADER_TIMEOUT_SECONDS", "2"),
        ]),
        ..Default::default()
    });
    let addr = addr_of(&server.url);
    let mut silent = Vec::new();
    for _ in 0..100 {
        let addr = addr.clone();
        silent.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut stream = tokio::net::TcpStream::connect(&addr).await.ok()?;
            let mut buf = [0u8; 64];
            match tokio::time::timeout(Duration::from_secs(25), stream.read(&mut buf)).await {
                Ok(_) => Some(started.elapsed()),
                Err(_) => None,
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = async_client(false)
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("HTTPS is served while silent connections wait");
    assert_eq!(res.status(), StatusCode::OK);
    for s in silent {
        let lived = s.await.unwrap();
        assert!(
            lived.is_some_and(|l| l < Duration::from_secs(20)),
            "a silent connection is cut: {lived:?}"
        );
    }
}

/// The response's Retry-After, in seconds.
fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn unauthenticated_entry_points_are_rate_limited_with_retry_after() {
    let server = Server::start_with(ServerOptions {
        env: env(&[
            ("SATELLITE_RATE_REGISTER_PER_MINUTE", "5"),
            ("SATELLITE_RATE_OAUTH_PER_MINUTE", "5"),
            ("SATELLITE_RATE_LOGIN_PER_MINUTE", "5"),
            ("SATELLITE_RATE_EXCHANGE_PER_MINUTE", "3"),
        ]),
        ..ServerOptions::upstream()
    });
    let http = async_client(false);
    // Token guessing on register: 5 answered (401), then 429, signed like every agent answer.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let body = json!({
            "token": format!("guess-{i}"), "udi": {"pid": "P", "sn": format!("S{i}")},
            "public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
            "product": {"name": "p", "version": "1"},
        });
        let res = http
            .post(format!("{}/agent/v1/register", server.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        statuses.push(res.status());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(retry_after(&res) >= 1);
            assert!(res.headers().contains_key("x-satellite-response-signature"));
            let v: Value = res.json().await.unwrap();
            assert_eq!(v["error"]["code"], "rate_limited");
        }
    }
    assert!(statuses[..5]
        .iter()
        .all(|s| s.is_client_error() && *s != StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);

    // Secret guessing on /oauth/token.
    let mut last = None;
    for _ in 0..6 {
        let res = http
            .post(format!("{}/oauth/token", server.url))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", "guess"),
            ])
            .send()
            .await
            .unwrap();
        last = Some(res);
    }
    let res = last.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&res) >= 1);

    // Anonymous posts to the exchange.
    let mut last = None;
    for _ in 0..4 {
        let res = http
            .post(format!("{}/sync/v1/exchange", server.url))
            .header("content-type", "application/gzip")
            .body(vec![0u8; 16])
            .send()
            .await
            .unwrap();
        last = Some(res);
    }
    let res = last.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&res) >= 1);

    // The login form.
    let mut last = None;
    for _ in 0..6 {
        let res = http
            .post(format!("{}/login", server.url))
            .form(&[("username", "x"), ("password", "y"), ("csrf", "z")])
            .send()
            .await
            .unwrap();
        last = Some(res);
    }
    let res = last.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&res) >= 1);

    // Repeated trips leave a warning an operator can alert on.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        server.log().contains("rate limit tripped"),
        "{}",
        server.log()
    );
}

/// A browser session whose connections come from `from` (a loopback address of its own).
fn session_from(base: &str, from: Ipv4Addr) -> Session {
    Session {
        base: base.to_string(),
        http: reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .local_address(IpAddr::V4(from))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    }
}

#[tokio::test]
async fn login_backoff_slows_the_attacker_not_the_owner() {
    let server = Server::start();
    let password = "owner's long passphrase";
    let out = server.cli_with_stdin(
        &[
            "user",
            "add",
            "--username",
            "owner",
            "--role",
            "system-admin",
            "--password-stdin",
        ],
        Some(password),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let attacker = session_from(&server.url, Ipv4Addr::new(127, 0, 0, 1));
    for _ in 0..5 {
        let res = attacker.login("owner", "wrong guess, again").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // The attacker's address now waits, even with the right password...
    let res = attacker.login("owner", password).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((1..=900).contains(&retry_after(&res)));
    // ...while the owner, elsewhere, logs in at once.
    let owner = session_from(&server.url, Ipv4Addr::new(127, 0, 0, 2));
    let res = owner.login("owner", password).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "the owner is not locked out"
    );

    // Failures and the backoff are in the event log.
    let api = server.admin_api().await;
    let (s, events) = api.get("/api/v1/events?limit=100").await;
    assert_eq!(s, StatusCode::OK);
    let actions: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "user.login_failed")
            .count(),
        5
    );
    assert!(actions.contains(&"user.login_backoff"), "{actions:?}");
    // And so is the owner's login, with where it came from.
    let login = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "user.logged_in" && e["target"] == "owner")
        .unwrap_or_else(|| panic!("{events}"));
    assert!(login.to_string().contains("127.0.0.2"), "{login}");
}

#[tokio::test]
async fn login_next_never_leaves_the_site() {
    let server = Server::start();
    let username = "nextadmin".to_string();
    let password = "a long enough passphrase";
    let out = server.cli_with_stdin(
        &[
            "user",
            "add",
            "--username",
            &username,
            "--role",
            "system-admin",
            "--password-stdin",
        ],
        Some(password),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let cases = [
        ("/\t/evil.example/", "/"),
        ("/\n/evil.example/", "/"),
        ("/\r\nSet-Cookie: x=y", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("/%2F%2Fevil.example/", "/"),
        ("/%5Cevil.example/", "/"),
        ("/%09/evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/events", "/events"),
    ];
    for (next, expected) in cases {
        let session = Session::new(&server.url);
        let (_, page) = session.page("/login").await;
        let res = session
            .http
            .post(format!("{}/login", server.url))
            .form(&[
                ("username", username.as_str()),
                ("password", password),
                ("csrf", csrf_of(&page).as_str()),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "next={next:?}");
        assert_eq!(res.headers()["location"], expected, "next={next:?}");
    }
    // The login page itself never fails on a hostile `next` either.
    for q in ["%0d%0a", "%09%2f%2fevil", "%C3%28", "//evil"] {
        let (s, _) = Session::new(&server.url)
            .page(&format!("/login?next={q}"))
            .await;
        assert_eq!(s, StatusCode::OK, "next={q}");
    }
}

#[tokio::test]
async fn a_replayed_older_report_in_the_same_second_does_not_roll_usage_back() {
    let l = Licensed::start().await;
    l.perpetual("ess", 10).await;
    let token = l.simple_token().await;
    let (_, agent) = RawAgent::register(&l.server.url, &token, "P", "S").await;
    let agent = agent.unwrap();
    let second = RawAgent::now() - 5;
    let at = |ms: u32| {
        format!(
            "{}.{ms:03}Z",
            rfc3339(second)
                .trim_end_matches('Z')
                .trim_end_matches("+00:00")
        )
    };
    let a = agent.report("r-six", &at(500), &[("ess", 6)]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(l.pools().await["ess"]["in_use"], 6);
    // A captured report measured earlier in the same second, replayed afterwards.
    let a = agent.report("r-five", &at(200), &[("ess", 5)]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.body["entitlements"][0]["count"], 6,
        "answered with current counts"
    );
    assert_eq!(
        l.pools().await["ess"]["in_use"],
        6,
        "the newer count stands"
    );
    // Same instant as the last applied: not strictly newer, changes nothing.
    let a = agent.report("r-same", &at(500), &[("ess", 1)]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(l.pools().await["ess"]["in_use"], 6);
    // Strictly newer by a millisecond: applied.
    let a = agent.report("r-seven", &at(501), &[("ess", 7)]).await;
    assert_eq!(a.body["entitlements"][0]["count"], 7);
    assert_eq!(l.pools().await["ess"]["in_use"], 7);
    l.assert_counters_exact();

    // The reference agent sends milliseconds.
    let sent = crate::support::agent::Agent::new();
    let out = sent.register(&l.server, &token, "P2", "S2");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = sent.report(&[("ess", 1)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[tokio::test]
async fn credentials_are_checked_before_bodies() {
    // One test address stands for a thousand agents: no per-address connection cap here.
    let l = Licensed::start_with(env(&[("SATELLITE_MAX_CONNECTIONS_PER_ADDRESS", "0")])).await;
    let base = l.server.url.clone();
    // Many unauthenticated agent POSTs with bad bodies at once: every one is a 401.
    let http = async_client(false);
    let mut calls = Vec::new();
    for i in 0..1000 {
        let http = http.clone();
        let url = format!("{base}/agent/v1/usage");
        calls.push(tokio::spawn(async move {
            let mut req = http
                .post(url)
                .header("content-type", "application/json")
                .body(match i % 3 {
                    0 => b"{not json".to_vec(),
                    1 => b"[1,2,3]".to_vec(),
                    _ => vec![0xff, 0xfe, 0x00],
                });
            req = match i % 4 {
                0 => req,
                1 => req.header("X-Satellite-Instance", "inst-unknown"),
                _ => req
                    .header("X-Satellite-Instance", "inst-unknown")
                    .header("X-Satellite-Timestamp", RawAgent::now().to_string())
                    .header("X-Satellite-Signature", "AAAA"),
            };
            req.send().await.unwrap().status()
        }));
    }
    let mut statuses = std::collections::BTreeMap::new();
    for c in calls {
        *statuses.entry(c.await.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(
        statuses.keys().collect::<Vec<_>>(),
        [&StatusCode::UNAUTHORIZED],
        "{statuses:?}"
    );
    // Admin API writes with a garbage bearer and a bad body: 401, never 400.
    for (method, path) in [
        ("POST", "/api/v1/accounts".to_string()),
        ("POST", format!("{VA}/tokens")),
        ("PUT", "/api/v1/accounts/Acme/sync/schedule".to_string()),
        ("POST", "/api/v1/accounts/Acme/virtual-accounts".to_string()),
    ] {
        for auth in [Some("Bearer garbage"), None] {
            let mut req = http
                .request(method.parse().unwrap(), format!("{base}{path}"))
                .header("content-type", "application/json")
                .body("{\"name\": ");
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let res = req.send().await.unwrap();
            assert_eq!(
                res.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}"
            );
            let v: Value = res.json().await.unwrap();
            assert_eq!(v["error"]["code"], "unauthorized");
        }
    }
    // With a real token, the same bad body is the 400 it deserves.
    let res = l
        .api
        .post_raw(
            "/api/v1/accounts",
            "application/json",
            b"{\"name\": ".to_vec(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn weak_passwords_are_refused_next_to_the_field() {
    let server = Server::start();
    let session = server.session("system-admin", None).await;
    for weak in ["aaaaaaaaaaaa", "abcabcabcabc", "123456789012"] {
        let (s, html) = {
            let (_, page) = session.page("/account/password").await;
            let (s, html, _) = session
                .post_form(
                    "/account/password",
                    &[
                        ("csrf", &csrf_of(&page)),
                        ("current", "correct horse battery staple"),
                        ("new_password", weak),
                        ("confirm", weak),
                    ],
                )
                .await;
            (s, html)
        };
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{weak}");
        assert!(html.contains("too easy to guess"), "{weak}: message shown");
    }
    let out = server.cli_with_stdin(
        &[
            "user",
            "add",
            "--username",
            "weakling",
            "--role",
            "system-admin",
            "--password-stdin",
        ],
        Some("aaaaaaaaaaaa"),
    );
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("too easy to guess"), "{}", out.stderr);
    let out = server.cli_with_stdin(
        &[
            "user",
            "add",
            "--username",
            "samename-2024",
            "--role",
            "system-admin",
            "--password-stdin",
        ],
        Some("samename-2024"),
    );
    assert_ne!(out.code, 0, "the username is not a password");
}

#[tokio::test]
async fn idle_sessions_end_before_their_lifetime() {
    let server = Server::start();
    let out = server.cli_with_stdin(
        &[
            "user",
            "add",
            "--username",
            "idler",
            "--role",
            "system-admin",
            "--password-stdin",
        ],
        Some("an idle person's passphrase"),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // No pooled connections: the server restarts between requests.
    let session = Session {
        base: server.url.clone(),
        http: reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
    };
    let res = session.login("idler", "an idle person's passphrase").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(session.get("/").await.status(), StatusCode::OK);
    // 29 minutes later the session is still alive, and that use resets the idle clock.
    let offset = |m: i64| ServerOptions {
        env: env(&[("SATELLITE_CLOCK_OFFSET_SECONDS", &(m * 60).to_string())]),
        ..Default::default()
    };
    let server = server.restart(offset(29));
    assert_eq!(session.get("/").await.status(), StatusCode::OK);
    let server = server.restart(offset(55));
    assert_eq!(
        session.get("/").await.status(),
        StatusCode::OK,
        "26 min idle"
    );
    // 32 minutes idle: gone, although 12 hours have not passed.
    let _server = server.restart(offset(87));
    let res = session.get("/").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login"));
}

#[tokio::test]
async fn oversized_forms_get_413() {
    let server = Server::start();
    let http = async_client(false);
    let big = "x".repeat(64 * 1024);
    let res = http
        .post(format!("{}/oauth/token", server.url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", big.as_str()),
            ("client_secret", "s"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "payload_too_large");
    let res = http
        .post(format!("{}/login", server.url))
        .form(&[("username", big.as_str()), ("password", "p"), ("csrf", "c")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

fn openssl_text(cert: &std::path::Path) -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-enddate",
            "-ext",
            "subjectAltName",
            "-in",
        ])
        .arg(cert)
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_tls_certificate_names_the_server_and_ends() {
    let server = Server::start();
    let authority: Value = async_client(false)
        .get(format!("{}/agent/v1/authority", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = authority["authority_id"].as_str().unwrap();
    let cert = server.data_dir.join("tls/cert.pem");
    let text = openssl_text(&cert);
    assert!(!text.contains("rcgen"), "{text}");
    assert!(
        text.contains("localhost") && text.contains("127.0.0.1"),
        "{text}"
    );
    assert!(text.contains(id), "names the authority: {text}");
    let pem = std::fs::read_to_string(&cert).unwrap();
    let end = satellite::crypto::cert_expiry::not_after_pem(&pem).unwrap();
    let days = (end - chrono::Utc::now().timestamp()) / 86_400;
    assert!((728..=731).contains(&days), "two years: {days} days");
    assert!(!server.log().contains("TLS certificate ends soon"));

    // A certificate with 10 days left is warned about at start.
    let short = Server::start_with(ServerOptions {
        env: env(&[("SATELLITE_TLS_CERT_DAYS", "10")]),
        ..Default::default()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        short.log().contains("TLS certificate ends soon"),
        "{}",
        short.log()
    );
}

#[tokio::test]
async fn head_on_pages_answers_what_get_would() {
    let server = Server::start();
    let http = async_client(false);
    for path in ["/login", "/", "/accounts"] {
        let get = http
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        let head = http
            .head(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), get.status(), "{path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert_eq!(
            head.headers().get("location"),
            get.headers().get("location"),
            "{path}"
        );
        assert!(head.bytes().await.unwrap().is_empty(), "{path}: no body");
    }
}

#[tokio::test]
async fn a_person_sees_the_password_rule_and_the_backoff_in_the_browser() {
    let server = Server::start();
    let Some(browser) = crate::support::webdriver::Browser::start().await else {
        return;
    };
    let url = &server.url;
    let initial = server.admin_password.as_deref().unwrap();
    browser.goto(&format!("{url}/login")).await;
    browser.fill("#username", "admin").await;
    browser.fill("#password", initial).await;
    browser.click("#login").await;
    browser.fill("#current", initial).await;
    browser.fill("#new_password", "aaaaaaaaaaaa").await;
    browser.fill("#confirm", "aaaaaaaaaaaa").await;
    browser.click("#change-password").await;
    assert!(browser
        .text("#new_password-error")
        .await
        .contains("too easy to guess"));
    browser.screenshot("hardening-01-weak-password").await;
    browser.fill("#current", initial).await;
    browser
        .fill("#new_password", "a passphrase of my own")
        .await;
    browser.fill("#confirm", "a passphrase of my own").await;
    browser.click("#change-password").await;
    assert_eq!(browser.text(".flash").await, "Password changed.");

    // Someone at this address guesses: after five failures, the page says to wait.
    for _ in 0..6 {
        browser.goto(&format!("{url}/login")).await;
        browser.fill("#username", "admin").await;
        browser.fill("#password", "not the passphrase").await;
        browser.click("#login").await;
    }
    assert!(browser
        .text("#login-error")
        .await
        .contains("Too many failed attempts"));
    browser.screenshot("hardening-02-login-backoff").await;
    browser.quit().await;
}
