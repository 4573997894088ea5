//! HTTPS traffic as agents and admins send it: registrations, signed usage reports and
//! renewals from seeded instances, and admin page loads.

use super::seed::{key_for, TAG};
use super::Sample;
use crate::crypto::agent_sig;
use ed25519_dalek::SigningKey;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys of instances registered over HTTP are derived from this index on, clear of seeds.
const REGISTERED_KEYS: u64 = 1 << 40;

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

/// Instances the load phase signs for: up to `max` spread evenly over all seeded ones,
/// keys derived once up front so the client spends its time on requests.
pub fn pick(ids: &[String], first_index: u64, max: usize) -> Vec<(String, SigningKey)> {
    let step = (ids.len() / max.max(1)).max(1);
    ids.iter()
        .enumerate()
        .step_by(step)
        .take(max)
        .map(|(i, id)| (id.clone(), key_for(first_index + i as u64)))
        .collect()
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A POST; returns whether it was answered `expect`.
async fn post(
    http: &reqwest::Client,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    expect: u16,
) -> bool {
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        req = req.header(name, value);
    }
    match req.send().await {
        Ok(r) => {
            let ok = r.status().as_u16() == expect;
            let _ = r.bytes().await;
            ok
        }
        Err(_) => false,
    }
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
    post(http, format!("{url}{path}"), headers, body, 200).await
}

/// Runs `concurrency` tasks for `duration`, each calling `one` in a loop.
async fn drive<F, Fut>(name: &str, concurrency: usize, duration: Duration, one: F) -> Sample
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
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
                    if one(xorshift(&mut rng)).await {
                        lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    } else {
                        errors += 1;
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut sample = Sample {
        name: name.to_string(),
        ..Default::default()
    };
    for t in tasks {
        if let Ok((lat, errors)) = t.await {
            sample.latencies_us.extend(lat);
            sample.errors += errors;
        }
    }
    sample.elapsed = started.elapsed();
    sample
}

/// Signed requests to `path` from seeded instances taken in turn, bodies from `body`.
async fn from_seeded(
    name: &str,
    url: &str,
    path: &'static str,
    instances: Arc<Vec<(String, SigningKey)>>,
    (concurrency, duration): (usize, Duration),
    body: fn(u64) -> Vec<u8>,
) -> Sample {
    let http = client(concurrency);
    let url = url.to_string();
    drive(name, concurrency, duration, move |r| {
        let (http, url, instances) = (http.clone(), url.clone(), instances.clone());
        async move {
            let (id, key) = &instances[(r % instances.len() as u64) as usize];
            signed_post(&http, &url, path, id, key, body(r)).await
        }
    })
    .await
}

/// A usage report as an agent sends it; the count changes from one report to the next
/// three times in four.
fn report_body(r: u64) -> Vec<u8> {
    serde_json::json!({
        "report_id": uuid::Uuid::new_v4().to_string(),
        "measured_at": crate::clock::rfc3339_millis(chrono::Utc::now().timestamp_millis()),
        "entitlements": [{ "tag": TAG, "count": r % 4 }],
    })
    .to_string()
    .into_bytes()
}

pub async fn usage_reports(
    url: &str,
    instances: Arc<Vec<(String, SigningKey)>>,
    concurrency: usize,
    duration: Duration,
) -> Sample {
    let path = "/agent/v1/usage";
    let load = (concurrency, duration);
    from_seeded("usage reports", url, path, instances, load, report_body).await
}

/// New product instances registering with `token`, each with a key of its own; serial
/// numbers carry `run` so repeated runs on one data dir register new UDIs.
pub async fn registrations(
    url: &str,
    token: String,
    run: String,
    concurrency: usize,
    duration: Duration,
) -> Sample {
    let http = client(concurrency);
    let url = format!("{url}/agent/v1/register");
    let next = Arc::new(AtomicU64::new(0));
    drive("registrations", concurrency, duration, move |_| {
        let (http, url, token, run) = (http.clone(), url.clone(), token.clone(), run.clone());
        let n = next.fetch_add(1, Ordering::Relaxed);
        async move {
            let key = key_for(REGISTERED_KEYS + n);
            let body = serde_json::json!({
                "token": token,
                "udi": { "pid": "BENCHREG", "sn": format!("{run}-{n}") },
                "public_key": crate::crypto::keys::public_key_b64(&key.verifying_key()),
                "product": { "name": "bench", "version": "1" },
            });
            post(&http, url, vec![], body.to_string().into_bytes(), 201).await
        }
    })
    .await
}

/// Id certificate renewals (`/agent/v1/renew`) from seeded instances.
pub async fn renewals(
    url: &str,
    instances: Arc<Vec<(String, SigningKey)>>,
    concurrency: usize,
    duration: Duration,
) -> Sample {
    let load = (concurrency, duration);
    let empty = |_| b"{}".to_vec();
    from_seeded("renewals", url, "/agent/v1/renew", instances, load, empty).await
}

/// The floors: the same client work against a fixed reply (`/floor/fixed`) or one that
/// verifies the request signature and signs its reply (`/floor/signed`).
pub async fn floor(
    url: &str,
    path: &'static str,
    name: &str,
    key: SigningKey,
    concurrency: usize,
    duration: Duration,
) -> Sample {
    let signer = Arc::new(vec![("floor".to_string(), key)]);
    from_seeded(
        name,
        url,
        path,
        signer,
        (concurrency, duration),
        report_body,
    )
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
            }
        }
    })
    .await
}
