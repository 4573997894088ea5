//! Sending notifications: email by SMTP (lettre over rustls) and webhooks signed with
//! HMAC-SHA256, plus the background job that queues new alerts and sends what is due,
//! retrying failures with exponential backoff. What was sent is recorded before the next
//! tick, so a restart neither loses nor repeats a notification.

use crate::clock::Clock;
use crate::config::{Settings, SmtpTls};
use crate::service::alerts::Now;
use crate::service::notifications as queue;
use crate::store::events::{self, NewEvent};
use crate::store::{notifications, Store};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

pub const SIGNATURE_HEADER: &str = "X-Satellite-Webhook-Signature";
const BATCH: u32 = 100;
const MAX_BACKOFF: i64 = 3600;
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// `t=<unix>,v1=<hex hmac_sha256(secret, t + "." + body)>`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delay before attempt `attempts + 1`: the base doubled per failure, at most an hour.
pub fn backoff(base: u64, attempts: i64) -> i64 {
    let base = base.max(1) as i64;
    base.saturating_mul(1i64 << attempts.clamp(0, 20))
        .min(MAX_BACKOFF)
}

/// Sends over the configured SMTP server; the error says why in words.
pub fn send_email(
    settings: &Settings,
    to: &[String],
    subject: &str,
    body: &str,
) -> Result<(), String> {
    use lettre::message::{header::ContentType, Mailbox};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{Message, SmtpTransport, Transport};

    let host = settings
        .smtp_host
        .as_deref()
        .ok_or("SMTP is not configured (set smtp_host)")?;
    let from = settings
        .smtp_from
        .clone()
        .unwrap_or_else(|| format!("satellite@{host}"));
    let from: Mailbox = from
        .parse()
        .map_err(|e| format!("smtp_from is not an address: {e}"))?;
    let mut message = Message::builder()
        .from(from)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for addr in to {
        message = message.to(addr
            .parse()
            .map_err(|e| format!("'{addr}' is not an address: {e}"))?);
    }
    let message = message
        .body(body.to_string())
        .map_err(|e| format!("cannot build the message: {e}"))?;
    let tls = match settings.smtp_tls {
        SmtpTls::None => Tls::None,
        mode => {
            let mut params = TlsParameters::builder(host.to_string());
            if let Some(path) = &settings.smtp_ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read smtp_ca_file {}: {e}", path.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| format!("smtp_ca_file is not a PEM certificate: {e}"))?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| format!("TLS setup failed: {e}"))?;
            if mode == SmtpTls::Tls {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        }
    };
    let port = u16::try_from(settings.smtp_port).map_err(|_| "smtp_port is not a port")?;
    let mut transport = SmtpTransport::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .timeout(Some(SEND_TIMEOUT));
    if let (Some(user), Some(pass)) = (&settings.smtp_username, &settings.smtp_password) {
        transport = transport.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    transport
        .build()
        .send(&message)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// POSTs a signed webhook; a non-2xx answer is a failure.
pub async fn send_webhook(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    body: String,
    now: i64,
) -> Result<(), String> {
    let res = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature(secret, now, &body))
        .body(body)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if res.status().is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {}", res.status()))
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

fn email_text(payload: &serde_json::Value) -> (String, String) {
    let field = |k: &str| payload[k].as_str().unwrap_or("").to_string();
    let subject = format!(
        "[satellite] {} {}: {}",
        field("severity"),
        field("kind").replace('_', " "),
        field("account")
    );
    let body = format!(
        "{}\n\nAccount: {}\nKind: {}\nSeverity: {}\nRaised at: {}\nAlert id: {}\n",
        field("message"),
        field("account"),
        field("kind"),
        field("severity"),
        field("raised_at"),
        field("id")
    );
    (subject, body)
}

/// Sends one payload to a target of `account_settings`.
async fn deliver(
    settings: &Settings,
    http: &reqwest::Client,
    target: &str,
    account_settings: &notifications::Settings,
    payload: &str,
    now: i64,
) -> Result<(), String> {
    match target {
        "email" => {
            if account_settings.emails.is_empty() {
                return Err("no email addresses set".into());
            }
            let value: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
            let (subject, body) = email_text(&value);
            let (settings, to) = (settings.clone(), account_settings.emails.clone());
            tokio::task::spawn_blocking(move || send_email(&settings, &to, &subject, &body))
                .await
                .map_err(|e| format!("sending stopped: {e}"))?
        }
        _ => match (
            &account_settings.webhook_url,
            &account_settings.webhook_secret,
        ) {
            (Some(url), Some(secret)) => {
                send_webhook(http, url, secret, payload.to_string(), now).await
            }
            _ => Err("no webhook set".into()),
        },
    }
}

/// The answer of the test button: each target's outcome in words.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestResult {
    pub email: String,
    pub webhook: String,
}

/// Sends a `test` notification to each target of the account now.
pub async fn send_test(
    settings: &Settings,
    account: &str,
    account_settings: &notifications::Settings,
    now: i64,
) -> TestResult {
    let payload = serde_json::json!({
        "id": "test",
        "kind": "test",
        "severity": "minor",
        "account": account,
        "message": "A test notification from satellite: this target works.",
        "raised_at": crate::clock::rfc3339(now),
    })
    .to_string();
    let http = http_client();
    let word = |r: Result<(), String>| match r {
        Ok(()) => "sent".to_string(),
        Err(e) => format!("failed: {e}"),
    };
    TestResult {
        email: word(deliver(settings, &http, "email", account_settings, &payload, now).await),
        webhook: word(deliver(settings, &http, "webhook", account_settings, &payload, now).await),
    }
}

/// One tick: queue new alerts, then send what is due. Answers how many were sent.
pub async fn tick(
    store: &Store,
    clock: &Clock,
    settings: &Settings,
    http: &reqwest::Client,
) -> usize {
    let at = Now {
        now: clock.unix(),
        today: clock.now().date_naive(),
        overdue_days: settings.sync_overdue_days,
    };
    if let Err(e) = store
        .write(move |tx| Ok(queue::queue_new_alerts(tx, at)?))
        .await
    {
        tracing::error!(error = %e, "queueing alert notifications failed");
        return 0;
    }
    let now = at.now;
    let due = match store
        .read(move |c| {
            let due = notifications::due(c, now, BATCH)?;
            if due.is_empty() {
                return Ok(vec![]);
            }
            let names: std::collections::HashMap<i64, String> =
                crate::store::accounts::all_names(c)?.into_iter().collect();
            let mut out = vec![];
            for d in due {
                let s = notifications::settings(c, d.account_id)?;
                let account = names.get(&d.account_id).cloned().unwrap_or_default();
                out.push((d, s, account));
            }
            Ok(out)
        })
        .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "reading due notifications failed");
            return 0;
        }
    };
    let mut sent = 0;
    for (d, account_settings, account) in due {
        let result = deliver(
            settings,
            http,
            &d.target,
            &account_settings,
            &d.payload,
            clock.unix(),
        )
        .await;
        let now = clock.unix();
        let retry = settings.notify_retry_seconds;
        let max = i64::from(settings.notify_max_attempts);
        let ok = result.is_ok();
        let (alert_id, target, attempts) = (d.alert_id.clone(), d.target.clone(), d.attempts + 1);
        let written = store
            .write(move |tx| {
                let (action, error) = match &result {
                    Ok(()) => {
                        notifications::mark_sent(tx, d.id, now)?;
                        ("notification.sent", None)
                    }
                    Err(e) => {
                        let next = (d.attempts + 1 < max).then(|| now + backoff(retry, d.attempts));
                        notifications::mark_failed(tx, d.id, e, next)?;
                        if next.is_some() {
                            // Retries are routine; only the outcome is an event.
                            return Ok(());
                        }
                        ("notification.failed", Some(e.clone()))
                    }
                };
                events::record(
                    tx,
                    now,
                    NewEvent {
                        actor: "system",
                        action,
                        account: Some((d.account_id, &account)),
                        target: &d.alert_id,
                        detail: serde_json::json!({"target": d.target, "error": error}),
                    },
                )?;
                Ok(())
            })
            .await;
        match written {
            Ok(()) if ok => sent += 1,
            Ok(()) => tracing::warn!(
                alert = %alert_id,
                target = %target,
                attempts,
                "notification failed; will retry unless attempts are used up"
            ),
            Err(e) => tracing::error!(error = %e, "recording a notification failed"),
        }
    }
    if sent > 0 {
        tracing::info!(sent, "notifications sent");
    }
    sent
}

/// Runs `tick` every `notify_interval_seconds`, forever (not at all when it is 0).
pub async fn run(store: Store, clock: Clock, settings: Settings) {
    if settings.notify_interval_seconds == 0 {
        return;
    }
    let http = http_client();
    let mut every = tokio::time::interval(Duration::from_secs(settings.notify_interval_seconds));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        tick(&store, &clock, &settings, &http).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_time_dot_body() {
        // Computed independently: python3 hmac.new(b"key", b"1.{}", sha256).
        let s = signature("key", 1, "{}");
        assert_eq!(
            s,
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
        assert_ne!(signature("key", 2, "{}"), s, "the time is signed");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(30, 0), 30);
        assert_eq!(backoff(30, 1), 60);
        assert_eq!(backoff(30, 3), 240);
        assert_eq!(backoff(30, 60), MAX_BACKOFF);
    }
}
