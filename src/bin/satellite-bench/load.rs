//! HTTPS traffic as agents and admins send it: registrations, signed usage reports (an
//! instance's first, then later ones that repeat or change its count) and renewals from
//! the estate, the same client work against the floors, and admin page loads.

use super::estate::{Estate, Queue};
use super::seed::{key_for, TAG};
use super::Sample;
use ed25519_dalek::SigningKey;
use satellite::crypto::agent_sig;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One keep-alive HTTPS client shared by all tasks (the bench targets its own server,
/// whose certificate is self-signed).
pub fn client(connections: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .pool_max_idle_per_host(connections)
        .http1_only()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A POST; returns the body when it was answered `expect`.
async fn post(
    http: &reqwest::Client,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    expect: u16,
) -> Option<Vec<u8>> {
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let r = req.send().await.ok()?;
    let ok = r.status().as_u16() == expect;
    let body = r.bytes().await.ok()?;
    ok.then(|| body.to_vec())
}

/// A signed POST as an agent sends it; returns whether it was answered 200.
async fn signed_post(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    id: &str,
    key: &SigningKey,
    body: Vec<u8>,
) -> bool {
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = agent_sig::sign_request(key, "POST", path, &ts, &body);
    let headers = vec![
        (agent_sig::INSTANCE_HEADER, id.to_string()),
        (agent_sig::TIMESTAMP_HEADER, ts),
        (agent_sig::SIGNATURE_HEADER, sig),
    ];
    post(http, format!("{url}{path}"), headers, body, 200)
        .await
        .is_some()
}

/// Runs `concurrency` tasks for `duration`, each calling `one` in a loop until the time is
/// up or `one` has no more work (`None`).
async fn drive<F, Fut>(name: &str, concurrency: usize, duration: Duration, one: F) -> Sample
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<bool>> + Send,
{
    let one = Arc::new(one);
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let one = one.clone();
            tokio::spawn(async move {
                let mut rng =
                    0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                let (mut lat, mut errors) = (Vec::new(), 0u64);
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    match one(xorshift(&mut rng)).await {
                        Some(true) => {
                            lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32)
                        }
                        Some(false) => errors += 1,
                        None => break,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut sample = Sample::named(name);
    for t in tasks {
        if let Ok((lat, errors)) = t.await {
            sample.latencies_us.extend(lat);
            sample.errors += errors;
        }
    }
    sample.elapsed = started.elapsed();
    sample
}

/// A usage report as an agent sends it, for the bench's one tag.
fn report_body(count: u8) -> Vec<u8> {
    serde_json::json!({
        "report_id": uuid::Uuid::new_v4().to_string(),
        "measured_at": satellite::clock::rfc3339_millis(chrono::Utc::now().timestamp_millis()),
        "entitlements": [{ "tag": TAG, "count": count }],
    })
    .to_string()
    .into_bytes()
}

/// Later usage reports from instances drawn from the estate, each repeating the count the
/// instance last reported or (`change`) moving it.
pub async fn reports(
    name: &str,
    url: &str,
    estate: Arc<Estate>,
    change: bool,
    (concurrency, duration): (usize, Duration),
) -> Sample {
    let http = client(concurrency);
    let url = url.to_string();
    drive(name, concurrency, duration, move |r| {
        let (http, url, estate) = (http.clone(), url.clone(), estate.clone());
        async move {
            let d = estate.draw(r)?;
            let body = report_body(estate.next_count(d.slot, change));
            Some(signed_post(&http, &url, "/agent/v1/usage", d.id, &d.key, body).await)
        }
    })
    .await
}

/// The first usage report of instances just registered, each once, in queue order.
pub async fn first_reports(
    url: &str,
    fresh: Arc<Queue<(u64, String)>>,
    (concurrency, duration): (usize, Duration),
) -> Sample {
    let http = client(concurrency);
    let url = url.to_string();
    drive("first reports", concurrency, duration, move |_| {
        let (http, url, fresh) = (http.clone(), url.clone(), fresh.clone());
        async move {
            let (index, id) = fresh.take()?;
            let body = report_body(super::estate::FIRST_COUNT);
            let key = key_for(index);
            Some(signed_post(&http, &url, "/agent/v1/usage", &id, &key, body).await)
        }
    })
    .await
}

/// Id certificate renewals (`/agent/v1/renew`) from instances drawn from the estate.
pub async fn renewals(
    url: &str,
    estate: Arc<Estate>,
    (concurrency, duration): (usize, Duration),
) -> Sample {
    let http = client(concurrency);
    let url = url.to_string();
    drive("renewals", concurrency, duration, move |r| {
        let (http, url, estate) = (http.clone(), url.clone(), estate.clone());
        async move {
            let d = estate.draw(r)?;
            let body = b"{}".to_vec();
            Some(signed_post(&http, &url, "/agent/v1/renew", d.id, &d.key, body).await)
        }
    })
    .await
}

/// Which key indices register next: a given list (the estate's missing instances, opened
/// round by round) or an open-ended count from a base.
pub enum Tickets {
    Listed(Queue<u64>),
    From(u64, AtomicU64),
}

impl Tickets {
    fn take(&self) -> Option<u64> {
        match self {
            Tickets::Listed(q) => q.take(),
            Tickets::From(base, n) => Some(base + n.fetch_add(1, Ordering::Relaxed)),
        }
    }
}

/// Registrations as agents send them: each ticket is a key index, its instance's UDI
/// `pid`/`SN<index>` (or `<run>-<index>` for instances past the estate), with the key
/// derived from the index. Registered instances go to `registered` (key index, id) when
/// given, for their first reports.
pub struct Registrar {
    pub token: String,
    pub pid: &'static str,
    pub run: Option<String>,
    pub tickets: Tickets,
    pub registered: Option<Arc<Queue<(u64, String)>>>,
}

impl Registrar {
    fn serial(&self, index: u64) -> String {
        match &self.run {
            Some(run) => format!("{run}-{index}"),
            None => format!("SN{index:09}"),
        }
    }
}

/// Registrations at `url` + `path` (the product's `/agent/v1/register` or the floor's),
/// answered 201.
pub async fn registrations(
    name: &str,
    url: &str,
    path: &str,
    registrar: Arc<Registrar>,
    (concurrency, duration): (usize, Duration),
) -> Sample {
    let http = client(concurrency);
    let url = format!("{url}{path}");
    drive(name, concurrency, duration, move |_| {
        let (http, url, reg) = (http.clone(), url.clone(), registrar.clone());
        async move {
            let index = reg.tickets.take()?;
            let key = key_for(index);
            let body = serde_json::json!({
                "token": reg.token,
                "udi": { "pid": reg.pid, "sn": reg.serial(index) },
                "public_key": satellite::crypto::keys::public_key_b64(&key.verifying_key()),
                "product": { "name": "bench", "version": "1" },
            });
            let Some(answer) = post(&http, url, vec![], body.to_string().into_bytes(), 201).await
            else {
                return Some(false);
            };
            if let Some(q) = &reg.registered {
                let id = serde_json::from_slice::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|v| v["instance_id"].as_str().map(str::to_string));
                match id {
                    Some(id) => q.push((index, id)),
                    None => return Some(false),
                }
            }
            Some(true)
        }
    })
    .await
}

/// The floors: the same client work as a later report (with `derive_over`, an instance
/// drawn from that many and its key derived, as the uniform agent phases do; a report body
/// signed) against `path`, signed with the one key the floor knows.
pub async fn floor(
    url: &str,
    path: &'static str,
    name: &str,
    key: SigningKey,
    derive_over: Option<u64>,
    (concurrency, duration): (usize, Duration),
) -> Sample {
    let http = client(concurrency);
    let url = url.to_string();
    let key = Arc::new(key);
    drive(name, concurrency, duration, move |r| {
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        async move {
            // Derived and dropped: the agent phases pay for it, so the floor's load does too.
            if let Some(n) = derive_over {
                std::hint::black_box(key_for(r % n.max(1)));
            }
            let body = report_body((r % 3 + 1) as u8);
            Some(signed_post(&http, &url, path, "floor", &key, body).await)
        }
    })
    .await
}

/// Logs in through the login form (CSRF cookie and field) and returns the session cookie.
pub async fn login(url: &str, username: &str, password: &str) -> Option<String> {
    let http = client(1);
    let page = http.get(format!("{url}/login")).send().await.ok()?;
    let csrf_cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("satellite_login_csrf="))?
        .split(';')
        .next()?
        .to_string();
    let html = page.text().await.ok()?;
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker)? + marker.len();
    let csrf = &html[start..start + html[start..].find('"')?];
    let res = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .ok()?
        .post(format!("{url}/login"))
        .header("cookie", csrf_cookie)
        .form(&[
            ("username", username),
            ("password", password),
            ("csrf", csrf),
            ("next", "/"),
        ])
        .send()
        .await
        .ok()?;
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("satellite_session_"))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
}

pub async fn pages(
    url: &str,
    cookie: String,
    paths: Vec<String>,
    concurrency: usize,
    duration: Duration,
    name: &str,
) -> Sample {
    let http = client(concurrency);
    let url = url.to_string();
    let paths = Arc::new(paths);
    drive(name, concurrency, duration, move |r| {
        let (http, url, cookie, paths) = (http.clone(), url.clone(), cookie.clone(), paths.clone());
        async move {
            let path = &paths[(r % paths.len() as u64) as usize];
            Some(
                match http
                    .get(format!("{url}{path}"))
                    .header("cookie", cookie)
                    .send()
                    .await
                {
                    Ok(res) => {
                        let ok = res.status().is_success();
                        let _ = res.bytes().await;
                        ok
                    }
                    Err(_) => false,
                },
            )
        }
    })
    .await
}
