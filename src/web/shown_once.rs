//! Secrets a page shows exactly once (a new token, an API client secret, a generated
//! password) across a post/redirect/get: the POST keeps the secret here, in memory only,
//! under a random id bound to the session, and answers 303 to a GET page carrying just the
//! id. That GET takes the secret out, so a refresh finds nothing and says so instead of
//! submitting the form again. Never in a cookie or a URL; bounded in number and age.

use crate::crypto::secrets;
use actix_web::http::header;
use actix_web::HttpResponse;
use serde::Deserialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which page a secret belongs to: an id made for one page shows nothing on another.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SecretKind {
    VaToken,
    SatelliteToken,
    ApiClient,
    NewUser,
    PasswordReset,
    /// Not a secret: the outcome of a notifications test, shown once the same way.
    NotificationTest,
}

/// What the GET page shows: a name for what was made, the secret, one more detail.
#[derive(Clone, Debug)]
pub struct Secret {
    pub label: String,
    pub value: String,
    pub detail: String,
}

/// The `?shown=` query of a page that may show a kept secret.
#[derive(Deserialize, Default)]
pub struct ShownQuery {
    pub shown: Option<String>,
}

/// What a GET page does with its `?shown=` id.
pub enum Reveal {
    /// No id: a plain visit.
    Nothing,
    /// The secret, now removed from memory.
    Now(Secret),
    /// An id that was shown already (a refresh), expired, or is another session's.
    AlreadyShown,
}

struct Kept {
    id: String,
    session: String,
    kind: SecretKind,
    secret: Secret,
    created: Instant,
}

pub struct ShownOnce {
    items: Mutex<Vec<Kept>>,
    max: usize,
    ttl: Duration,
}

impl Default for ShownOnce {
    /// A few minutes is enough to follow one redirect; 256 covers many admins at once.
    fn default() -> Self {
        Self::new(256, Duration::from_secs(300))
    }
}

impl ShownOnce {
    pub fn new(max: usize, ttl: Duration) -> Self {
        Self {
            items: Mutex::new(vec![]),
            max: max.max(1),
            ttl,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Vec<Kept>) -> T) -> T {
        // A poisoned lock only means another request panicked mid-update; the plain
        // values inside are still whole.
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let ttl = self.ttl;
        items.retain(|k| k.created.elapsed() < ttl);
        f(&mut items)
    }

    /// Keeps a secret for one showing; answers the id to redirect with.
    pub fn put(&self, session: &str, kind: SecretKind, secret: Secret) -> String {
        let id = secrets::random_secret(16);
        let kept = Kept {
            id: id.clone(),
            session: session.to_string(),
            kind,
            secret,
            created: Instant::now(),
        };
        let max = self.max;
        self.with(|items| {
            while items.len() >= max {
                items.remove(0);
            }
            items.push(kept);
        });
        id
    }

    /// The secret under `id` for this session and page, removed.
    pub fn take(&self, id: &str, session: &str, kind: SecretKind) -> Option<Secret> {
        self.with(|items| {
            let at = items
                .iter()
                .position(|k| k.id == id && k.session == session && k.kind == kind)?;
            Some(items.remove(at).secret)
        })
    }

    pub fn reveal(&self, query: &ShownQuery, session: &str, kind: SecretKind) -> Reveal {
        match query.shown.as_deref() {
            None | Some("") => Reveal::Nothing,
            Some(id) => self
                .take(id, session, kind)
                .map_or(Reveal::AlreadyShown, Reveal::Now),
        }
    }
}

/// `path` with `?shown=id` (or `&shown=` when it has a query already).
pub fn shown_url(path: &str, id: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}shown={id}")
}

/// A page showing a secret is not kept by the browser or a proxy.
pub fn no_store(mut res: HttpResponse) -> HttpResponse {
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(v: &str) -> Secret {
        Secret {
            label: "l".into(),
            value: v.into(),
            detail: String::new(),
        }
    }

    #[test]
    fn a_secret_shows_once_to_its_session_and_page() {
        let kept = ShownOnce::new(2, Duration::from_secs(60));
        let a = kept.put("s1", SecretKind::VaToken, secret("one"));
        assert!(kept.take(&a, "s2", SecretKind::VaToken).is_none());
        assert!(kept.take(&a, "s1", SecretKind::ApiClient).is_none());
        let q = ShownQuery {
            shown: Some(a.clone()),
        };
        assert!(matches!(
            kept.reveal(&q, "s1", SecretKind::VaToken),
            Reveal::Now(s) if s.value == "one"
        ));
        assert!(matches!(
            kept.reveal(&q, "s1", SecretKind::VaToken),
            Reveal::AlreadyShown
        ));
        assert!(matches!(
            kept.reveal(&ShownQuery::default(), "s1", SecretKind::VaToken),
            Reveal::Nothing
        ));
        let b = kept.put("s1", SecretKind::VaToken, secret("b"));
        let _c = kept.put("s1", SecretKind::VaToken, secret("c"));
        let _d = kept.put("s1", SecretKind::VaToken, secret("d"));
        assert!(kept.take(&b, "s1", SecretKind::VaToken).is_none(), "capped");
        let gone = ShownOnce::new(2, Duration::ZERO);
        let e = gone.put("s1", SecretKind::NewUser, secret("e"));
        assert!(
            gone.take(&e, "s1", SecretKind::NewUser).is_none(),
            "expired"
        );
        assert_eq!(shown_url("/x", "i"), "/x?shown=i");
        assert_eq!(shown_url("/x?a=1", "i"), "/x?a=1&shown=i");
    }
}
