//! Sending notifications: email by SMTP (lettre over rustls) and webhooks signed with
//! HMAC-SHA256, and the test button's send. The background job that queues new alerts
//! and retries what failed is `notify/queue.rs`.

use crate::config::{Settings, SmtpTls};
use crate::store::notifications;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

mod queue;

pub use queue::{backoff, run, tick};

pub const SIGNATURE_HEADER: &str = "X-Satellite-Webhook-Signature";
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
pub(crate) async fn deliver(
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
}
