//! Alerts with ids and acknowledgement, and notifications (CONTRACT sections 3 and 7):
//! a real SMTP receiver and a real webhook receiver started here, the signature checked as
//! a receiver would, delivery once within 60 s, retries after failures, no resend after a
//! restart, the test button, and the secret never answered.

use crate::support::agent::Agent;
use crate::support::{Licensed, ServerOptions};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A minimal SMTP server (RFC 5321 without extensions but STARTTLS: what lettre needs);
/// each message's DATA is captured. With a certificate it offers STARTTLS and refuses
/// mail before it (as a server that requires TLS does).
struct SmtpReceiver {
    port: u16,
    messages: Arc<Mutex<Vec<String>>>,
}

/// One SMTP conversation; answers true when the client asked for STARTTLS (and was told
/// to go ahead), so the caller can wrap the connection and talk again.
async fn smtp_talk<S>(
    r: &mut BufReader<S>,
    offer_tls: bool,
    store: &Arc<Mutex<Vec<String>>>,
) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return false;
        }
        let verb = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if verb.starts_with("EHLO") {
            if offer_tls {
                b"250-test-smtp\r\n250-8BITMIME\r\n250 STARTTLS\r\n"
            } else {
                b"250-test-smtp\r\n250 8BITMIME\r\n"
            }
        } else if verb == "STARTTLS" && offer_tls {
            r.write_all(b"220 go ahead\r\n").await.unwrap();
            return true;
        } else if offer_tls && (verb.starts_with("MAIL") || verb.starts_with("RCPT")) {
            b"530 must issue STARTTLS first\r\n"
        } else if verb.starts_with("HELO")
            || verb.starts_with("MAIL FROM")
            || verb.starts_with("RCPT TO")
            || verb.starts_with("RSET")
            || verb.starts_with("NOOP")
        {
            b"250 OK\r\n"
        } else if verb == "DATA" {
            r.write_all(b"354 go ahead\r\n").await.unwrap();
            let mut data = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return false;
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(&line);
            }
            store.lock().unwrap().push(data);
            b"250 queued\r\n"
        } else if verb == "QUIT" {
            let _ = r.write_all(b"221 bye\r\n").await;
            return false;
        } else {
            b"502 not implemented\r\n"
        };
        r.write_all(reply).await.unwrap();
    }
}

impl SmtpReceiver {
    async fn start() -> SmtpReceiver {
        Self::start_with_tls(None).await
    }

    /// `tls`: a certificate and key (DER) to offer STARTTLS with.
    async fn start_with_tls(tls: Option<(Vec<u8>, Vec<u8>)>) -> SmtpReceiver {
        let acceptor = tls.map(|(cert, key)| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![cert.into()],
                    rustls_pki_types::PrivateKeyDer::Pkcs8(key.into()),
                )
                .unwrap();
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages = Arc::new(Mutex::new(vec![]));
        let store = messages.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (store, acceptor) = (store.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let mut r = BufReader::new(socket);
                    r.write_all(b"220 test-smtp ESMTP\r\n").await.unwrap();
                    let upgrade = smtp_talk(&mut r, acceptor.is_some(), &store).await;
                    if let (true, Some(acceptor)) = (upgrade, acceptor) {
                        let Ok(tls) = acceptor.accept(r.into_inner()).await else {
                            return;
                        };
                        smtp_talk(&mut BufReader::new(tls), false, &store).await;
                    }
                });
            }
        });
        SmtpReceiver { port, messages }
    }

    fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

/// A webhook receiver that verifies each request as the contract tells receivers to:
/// recompute the HMAC over `t + "." + body`, refuse a `t` older than 300 s. It answers 500
/// to the first `fail_next` requests (to exercise retries).
struct WebhookReceiver {
    url: String,
    secret: String,
    /// Verified bodies, in order of arrival (failed ones too: the retry count shows).
    accepted: Arc<Mutex<Vec<Value>>>,
    attempts: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    fail_next: Arc<AtomicUsize>,
}

fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1 = hex::decode(x).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if now - t > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

impl WebhookReceiver {
    async fn start(secret: &str) -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let r = WebhookReceiver {
            url,
            secret: secret.to_string(),
            accepted: Default::default(),
            attempts: Default::default(),
            refused: Default::default(),
            fail_next: Default::default(),
        };
        let (secret, accepted, attempts, refused, fail_next) = (
            r.secret.clone(),
            r.accepted.clone(),
            r.attempts.clone(),
            r.refused.clone(),
            r.fail_next.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![];
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break (String::new(), vec![]);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().ok())?
                            })
                            .unwrap_or(0);
                        let mut body = buf[end + 4..].to_vec();
                        while body.len() < len {
                            let n = socket.read(&mut chunk).await.unwrap_or(0);
                            if n == 0 {
                                break;
                            }
                            body.extend_from_slice(&chunk[..n]);
                        }
                        break (head, body);
                    }
                };
                attempts.fetch_add(1, Ordering::SeqCst);
                let signature = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("x-satellite-webhook-signature")
                            .then(|| v.trim().to_string())
                    })
                    .unwrap_or_default();
                let now = chrono::Utc::now().timestamp();
                let status = if !verify(&secret, &signature, &body, now) {
                    refused.fetch_add(1, Ordering::SeqCst);
                    "401 Unauthorized"
                } else if fail_next
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    "500 Internal Server Error"
                } else {
                    accepted
                        .lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    "200 OK"
                };
                let _ = socket
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        r
    }

    fn accepted(&self) -> Vec<Value> {
        self.accepted.lock().unwrap().clone()
    }
}

fn notify_env(smtp: &SmtpReceiver) -> Vec<(String, String)> {
    [
        ("SATELLITE_NOTIFY_INTERVAL_SECONDS", "1".to_string()),
        ("SATELLITE_NOTIFY_RETRY_SECONDS", "1".to_string()),
        ("SATELLITE_SMTP_HOST", "127.0.0.1".to_string()),
        ("SATELLITE_SMTP_PORT", smtp.port.to_string()),
        ("SATELLITE_SMTP_TLS", "none".to_string()),
        ("SATELLITE_SMTP_FROM", "satellite@example.test".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

async fn alerts(api: &crate::support::Api, query: &str) -> Vec<Value> {
    let (s, b) = api.get(&format!("/api/v1/alerts{query}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"].as_array().unwrap().clone()
}

fn of_kind(items: &[Value], kind: &str) -> Option<Value> {
    items.iter().find(|a| a["kind"] == kind).cloned()
}

#[tokio::test]
async fn alerts_have_stable_ids_and_are_acknowledged() {
    let l = Licensed::start_with(vec![(
        "SATELLITE_NOTIFY_INTERVAL_SECONDS".into(),
        "1".into(),
    )])
    .await;
    l.perpetual("ess", 1).await;
    let token = l.simple_token().await;
    let agent = Agent::new();
    assert_eq!(agent.register(&l.server, &token, "C9300", "FOC-A1").code, 0);
    agent.report(&[("ess", 2)]);

    let first = of_kind(&alerts(&l.api, "").await, "license_short").expect("license_short");
    assert_eq!(first["severity"], "major");
    assert_eq!(first["account"], "Acme");
    assert_eq!(first["virtual_account"], "Lab");
    assert!(first.get("acknowledged_at").is_none(), "{first}");
    let id = first["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    agent.report(&[("ess", 3)]);
    let again = of_kind(&alerts(&l.api, "").await, "license_short").unwrap();
    assert_eq!(again["id"], first["id"], "same cause, same id");
    assert_eq!(again["raised_at"], first["raised_at"], "raised_at holds");
    assert_ne!(again["message"], first["message"]);

    // Date filters take days of raised_at.
    let today = &first["raised_at"].as_str().unwrap()[..10];
    assert!(of_kind(
        &alerts(&l.api, &format!("?from={today}&to={today}")).await,
        "license_short"
    )
    .is_some());
    assert!(alerts(&l.api, "?from=2999-01-01").await.is_empty());
    assert!(alerts(&l.api, "?to=2000-01-01").await.is_empty());
    let (s, b) = l.api.get("/api/v1/alerts?from=yesterday").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "invalid_date");

    // A viewer may see it but not acknowledge it; an unknown id is 404.
    let viewer = l.server.api("viewer", Some("Acme")).await;
    assert!(of_kind(&alerts(&viewer, "").await, "license_short").is_some());
    let (s, _) = viewer
        .post(&format!("/api/v1/alerts/{id}/acknowledge"), json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, html) = l
        .server
        .session("viewer", Some("Acme"))
        .await
        .page("/alerts")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("license short"), "{html}");
    assert!(!html.contains("ack-button"), "no button for a viewer");
    let (s, b) = l
        .api
        .post("/api/v1/alerts/0000000000000000/acknowledge", json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

    let (s, acked) = l
        .api
        .post(&format!("/api/v1/alerts/{id}/acknowledge"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{acked}");
    assert!(acked["acknowledged_at"].is_string(), "{acked}");
    assert!(
        acked["acknowledged_by"]
            .as_str()
            .unwrap()
            .starts_with("client:"),
        "{acked}"
    );
    let listed = of_kind(&alerts(&l.api, "").await, "license_short").unwrap();
    assert_eq!(
        listed["acknowledged_at"], acked["acknowledged_at"],
        "stays listed, marked"
    );
    let (_, again) = l
        .api
        .post(&format!("/api/v1/alerts/{id}/acknowledge"), json!({}))
        .await;
    assert_eq!(
        again["acknowledged_at"], acked["acknowledged_at"],
        "the first one holds"
    );
    let (_, events) = l.api.get("/api/v1/events?limit=50").await;
    let acks: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "alert.acknowledged")
        .collect();
    assert_eq!(acks.len(), 1, "{events}");
    assert_eq!(acks[0]["target"], id.as_str());

    // The cause clears: the alert and its record go; when it comes back it is new.
    agent.report(&[("ess", 1)]);
    assert!(of_kind(&alerts(&l.api, "").await, "license_short").is_none());
    // The notification job (every second here) forgets cleared alerts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    agent.report(&[("ess", 2)]);
    let back = of_kind(&alerts(&l.api, "").await, "license_short").unwrap();
    assert_eq!(back["id"], first["id"]);
    assert!(back.get("acknowledged_at").is_none(), "a new raise: {back}");
    assert_ne!(back["raised_at"], first["raised_at"]);
}

#[tokio::test]
async fn notifications_go_once_by_email_and_signed_webhook_with_retries() {
    let smtp = SmtpReceiver::start().await;
    let hook = WebhookReceiver::start("hook-s3cret-value").await;
    let l = Licensed::start_with(notify_env(&smtp)).await;
    l.perpetual("ess", 1).await;
    let base = "/api/v1/accounts/Acme/notifications";

    let (s, empty) = l.api.get(base).await;
    assert_eq!(s, StatusCode::OK, "{empty}");
    assert_eq!(empty["emails"], json!([]));
    for bad in [
        json!({"emails": ["not-an-address"], "kinds": []}),
        json!({"emails": [], "webhook_url": "ftp://x/", "webhook_secret": "s", "kinds": []}),
        json!({"emails": [], "webhook_url": "http://127.0.0.1:1/", "kinds": []}),
        json!({"emails": [], "kinds": ["licenses_short"]}),
    ] {
        let (s, b) = l.api.put(base, bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad} → {b}");
    }
    let (s, b) = l.api.get(base).await;
    assert_eq!(
        (s, b["emails"].clone()),
        (StatusCode::OK, json!([])),
        "refused PUTs change nothing"
    );

    let (s, saved) = l
        .api
        .put(
            base,
            json!({"emails": ["ops@example.test", "oncall@example.test"],
                   "webhook_url": hook.url, "webhook_secret": hook.secret,
                   "kinds": ["license_short", "authorization_lapsed"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{saved}");
    let (_, shown) = l.api.get(base).await;
    for body in [&saved, &shown] {
        assert!(
            !body.to_string().contains(&hook.secret),
            "secret answered: {body}"
        );
        assert!(body.get("webhook_secret").is_none());
        assert_eq!(body["webhook_secret_set"], true);
        assert_eq!(body["webhook_url"], hook.url.as_str());
    }
    // Scoped like the rest: a viewer reads but may not change or test; another account's
    // admin does not see it at all.
    let viewer = l.server.api("viewer", Some("Acme")).await;
    let (s, seen) = viewer.get(base).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!seen.to_string().contains(&hook.secret));
    let (s, _) = viewer.put(base, json!({"emails": [], "kinds": []})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = viewer.post(&format!("{base}/test"), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    l.api.create_account("Other").await;
    let other = l.server.api("account-admin", Some("Other")).await;
    let (s, b) = other.get(base).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert_eq!(b["error"]["code"], "not_found");

    // Saving again without the secret keeps it (the form does this).
    let (s, _) = l
        .api
        .put(
            base,
            json!({"emails": ["ops@example.test", "oncall@example.test"],
                   "webhook_url": hook.url, "kinds": ["license_short", "authorization_lapsed"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // The test button reaches both.
    let (s, tested) = l.api.post(&format!("{base}/test"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{tested}");
    assert_eq!(tested, json!({"email": "sent", "webhook": "sent"}));
    assert_eq!(smtp.messages().len(), 1);
    assert!(smtp.messages()[0].contains("oncall@example.test"));
    assert_eq!(hook.accepted()[0]["kind"], "test");

    // An alert is raised; the receiver fails twice, then accepts.
    hook.fail_next.store(2, Ordering::SeqCst);
    let token = l.simple_token().await;
    let agent = Agent::new();
    assert_eq!(agent.register(&l.server, &token, "C9300", "FOC-N1").code, 0);
    let raised = Instant::now();
    agent.report(&[("ess", 2)]);
    let alert = of_kind(&alerts(&l.api, "").await, "license_short").unwrap();
    while (smtp.messages().len() < 2 || hook.accepted().len() < 2)
        && raised.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        raised.elapsed() < Duration::from_secs(60),
        "not delivered within 60 s"
    );
    let mail = &smtp.messages()[1];
    assert!(mail.contains("license short"), "{mail}");
    assert!(mail.contains("ops@example.test"), "{mail}");
    let sent = &hook.accepted()[1];
    assert_eq!(sent["id"], alert["id"]);
    assert_eq!(sent["kind"], "license_short");
    assert_eq!(sent["severity"], "major");
    assert_eq!(sent["account"], "Acme");
    assert_eq!(sent["raised_at"], alert["raised_at"]);
    assert!(
        sent["message"].as_str().unwrap().contains("2 in use of 1"),
        "{sent}"
    );
    assert_eq!(
        hook.attempts.load(Ordering::SeqCst),
        4,
        "test + 2 failures + 1 success"
    );
    assert_eq!(
        hook.refused.load(Ordering::SeqCst),
        0,
        "every signature verified"
    );

    // Sent once: nothing more on later ticks, nor after a restart.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.messages().len(), 2);
    assert_eq!(hook.accepted().len(), 2);
    let Licensed { server, api: _ } = l;
    let server = server.restart(ServerOptions {
        env: notify_env(&smtp),
        ..ServerOptions::upstream()
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(smtp.messages().len(), 2, "no resend after a restart");
    assert_eq!(hook.accepted().len(), 2);
    let api = server.admin_api().await;
    let (_, events) = api.get("/api/v1/events?limit=100").await;
    let actions: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "notification.sent")
            .count(),
        2,
        "{actions:?}"
    );
    assert!(
        actions.contains(&"notifications.changed") && actions.contains(&"notifications.tested")
    );
    assert!(
        !events.to_string().contains(&hook.secret),
        "no secret in events"
    );

    // A target that fails is reported in words by the test button.
    let (_, _) = api
        .put(base, json!({"emails": [], "webhook_url": "http://127.0.0.1:9/none", "webhook_secret": "x", "kinds": []}))
        .await;
    let (s, tested) = api.post(&format!("{base}/test"), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        tested["email"].as_str().unwrap().starts_with("failed: "),
        "{tested}"
    );
    assert!(
        tested["webhook"].as_str().unwrap().starts_with("failed: "),
        "{tested}"
    );
}

#[tokio::test]
async fn browser_sets_notifications_tests_them_and_acknowledges_an_alert() {
    let smtp = SmtpReceiver::start().await;
    let hook = WebhookReceiver::start("page-hook-secret").await;
    let l = Licensed::start_with(notify_env(&smtp)).await;
    let Some(browser) = crate::support::webdriver::Browser::start().await else {
        return;
    };
    l.perpetual("ess", 1).await;
    let url = l.server.url.clone();
    browser.first_admin_login(&l.server, &l.server.url).await;

    browser.goto(&format!("{url}/accounts/Acme")).await;
    browser.click("#notifications-link").await;
    browser.fill("#emails", "bad address").await;
    browser.click("#save-notifications").await;
    assert!(browser.source().await.contains("is not an email address"));
    browser.fill("#emails", "ops@example.test").await;
    browser.fill("#webhook-url", &hook.url).await;
    browser.fill("#webhook-secret", &hook.secret).await;
    browser.click("input[value=license_short]").await;
    browser.click("#save-notifications").await;
    assert_eq!(browser.text(".flash").await, "Notification settings saved.");
    assert!(
        !browser.source().await.contains(&hook.secret),
        "secret shown"
    );
    browser.click("#send-test").await;
    assert_eq!(browser.text("#test-email").await, "sent");
    assert_eq!(browser.text("#test-webhook").await, "sent");
    browser.screenshot("notify-01-settings").await;
    let (_, saved) = l.api.get("/api/v1/accounts/Acme/notifications").await;
    assert_eq!(saved["kinds"], json!(["license_short"]));
    assert_eq!(saved["emails"], json!(["ops@example.test"]));

    let token = l.simple_token().await;
    let agent = Agent::new();
    assert_eq!(agent.register(&l.server, &token, "C9300", "FOC-B1").code, 0);
    agent.report(&[("ess", 2)]);
    browser.goto(&format!("{url}/alerts")).await;
    let table = browser.text("#alerts").await;
    assert!(
        table.contains("license short") && table.contains("major"),
        "{table}"
    );
    browser.click(".ack-button").await;
    assert!(browser
        .text(".flash")
        .await
        .starts_with("Alert acknowledged"));
    assert!(browser
        .text("#alerts")
        .await
        .contains("acknowledged by user:admin"));
    browser.screenshot("notify-02-alert-acknowledged").await;
    browser.click("#alerts tbody a").await;
    assert!(
        browser
            .current_url()
            .await
            .ends_with("/accounts/Acme/virtual-accounts/Lab"),
        "the alert links to its VA"
    );
    browser.quit().await;
}

/// `serve --log-format json` (here by its setting): every stderr line is one JSON object
/// with timestamp, level and message, request lines carry request_id, and none of the
/// secrets a full flow used appears anywhere in the log.
#[tokio::test]
async fn json_logs_carry_request_ids_and_no_secrets() {
    let l = Licensed::start_with(vec![
        ("SATELLITE_LOG_FORMAT".into(), "json".into()),
        ("SATELLITE_LOG".into(), "debug".into()),
    ])
    .await;
    l.perpetual("ess", 1).await;
    let mut secrets = vec![l.api.token.clone()];
    let initial = l.server.admin_password.clone().unwrap();
    secrets.push(initial.clone());

    // Logins: the initial admin password, and a user with a chosen password (a wrong
    // attempt too: refused logins are logged, their passwords are not).
    let s = crate::support::Session::new(&l.server.url);
    let res = s.login("admin", &initial).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let s = crate::support::Session::new(&l.server.url);
    s.login("admin", "wrong-password-guess-42").await;
    secrets.push("wrong-password-guess-42".into());
    l.server.session("account-admin", Some("Acme")).await;
    secrets.push("correct horse battery staple".into());

    // A registration token, a real agent registering and reporting.
    let token = l.simple_token().await;
    secrets.push(token.clone());
    let agent = Agent::new();
    assert_eq!(agent.register(&l.server, &token, "C9300", "FOC-L1").code, 0);
    assert_eq!(agent.report(&[("ess", 2)]).code, 0);

    // Notification settings with a webhook secret.
    let (s, b) = l
        .api
        .put(
            "/api/v1/accounts/Acme/notifications",
            json!({"emails": ["ops@example.test"], "webhook_url": "http://127.0.0.1:9/hook",
                   "webhook_secret": "log-test-webhook-secret", "kinds": []}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    secrets.push("log-test-webhook-secret".into());

    // An API client: its secret, and the bearer token it gets.
    let (s, client) = l
        .api
        .post(
            "/api/v1/api-clients",
            json!({"name": "log-probe", "role": "viewer", "account": "Acme"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{client}");
    let secret = client["client_secret"].as_str().unwrap().to_string();
    let probe = crate::support::Api::login(
        &l.server.url,
        client["client_id"].as_str().unwrap(),
        &secret,
    )
    .await;
    let (s, _) = probe.get("/api/v1/alerts").await;
    assert_eq!(s, StatusCode::OK);
    secrets.push(secret);
    secrets.push(probe.token.clone());

    let log = l.server.log();
    let mut requests = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        for key in ["timestamp", "level", "message"] {
            assert!(v.get(key).is_some(), "no {key}: {line}");
        }
        if v["message"] == "served" {
            requests += 1;
            assert!(
                v["request_id"].as_str().is_some_and(|id| !id.is_empty()),
                "{line}"
            );
        }
    }
    assert!(requests >= 10, "request lines were logged: {requests}");
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the log holds a secret: {secret}"
        );
    }
}

/// The default `smtp_tls=starttls`: mail goes over TLS, trusting the receiver's
/// self-signed certificate through `smtp_ca_file`; without that CA, sending fails and says
/// so.
#[tokio::test]
async fn email_goes_over_starttls_with_an_extra_ca() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let smtp = SmtpReceiver::start_with_tls(Some((
        cert.cert.der().to_vec(),
        cert.key_pair.serialize_der(),
    )))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("smtp-ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let mut env: Vec<(String, String)> = notify_env(&smtp)
        .into_iter()
        .filter(|(k, _)| k != "SATELLITE_SMTP_TLS" && k != "SATELLITE_SMTP_HOST")
        .collect();
    env.push(("SATELLITE_SMTP_HOST".into(), "localhost".into()));
    let l = Licensed::start_with(env.clone()).await;
    let base = "/api/v1/accounts/Acme/notifications";
    let (s, _) = l
        .api
        .put(base, json!({"emails": ["ops@example.test"], "kinds": []}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, tested) = l.api.post(&format!("{base}/test"), json!({})).await;
    assert!(
        tested["email"]
            .as_str()
            .unwrap()
            .contains("invalid peer certificate"),
        "an unknown certificate is refused: {tested}"
    );
    assert!(smtp.messages().is_empty());

    env.push((
        "SATELLITE_SMTP_CA_FILE".into(),
        ca.to_string_lossy().to_string(),
    ));
    let Licensed { server, api: _ } = l;
    let server = server.restart(ServerOptions {
        env,
        ..ServerOptions::upstream()
    });
    let api = server.admin_api().await;
    let (_, tested) = api.post(&format!("{base}/test"), json!({})).await;
    assert_eq!(tested["email"], "sent", "{tested}");
    assert_eq!(tested["webhook"], "failed: no webhook set");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("test notification"), "{}", messages[0]);
}
