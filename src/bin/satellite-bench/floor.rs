//! The floor server: the same actix + rustls stack as the product, answering
//! - `/floor/fixed`: a fixed signed JSON body;
//! - `/floor/signed`: after verifying the request's signature, a freshly signed body;
//! - `/floor/durable`: as `signed`, plus one upsert into an N-row SQLite table through the
//!   product's group-commit writer, answered after the commit;
//! - `/floor/register`: a registration done the naive way section 4 asks for: parse the
//!   body, check the token, verify the public key is a point, sign an id certificate, one
//!   durable insert into an N-row table unique by UDI (same writer), a signed 201;
//! - `/floor/renew`: an id certificate's renewal done the naive way: as `durable` (the
//!   upsert stands for the new expiry), then a freshly signed id certificate inside the
//!   signed reply. Section 4 asks a renewal for two signatures (the certificate's and the
//!   reply's), so its floor signs twice where the report's floor signs once.
//!
//! It runs as a process of its own (`satellite-bench --serve-floor`), so its CPU time is
//! measured the way the product's is. Figures are reported as ratios to these floors.

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use ed25519_dalek::VerifyingKey;
use rusqlite::Connection;
use satellite::crypto::agent_sig;
use satellite::crypto::AuthorityKey;
use satellite::store::batch::{Batcher, Rollback};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

pub const BODY: &[u8] = br#"{"status":"authorized","entitlements":[{"tag":"regid.2026-01.com.bench.ess,1.0","count":1,"status":"authorized"}],"authorization":{"renew_after":"2026-12-23T00:00:00Z","expires_at":"2027-02-21T00:00:00Z"}}"#;

struct FloorState {
    authority: AuthorityKey,
    client_key: VerifyingKey,
    fixed_signature: String,
    writer: Batcher,
    rows: i64,
    /// SHA-256 of the one registration token the floor accepts.
    token_digest: [u8; 32],
    /// The next registration's id.
    next_id: AtomicI64,
}

fn signed_reply(
    state: &FloorState,
    status: StatusCode,
    body: impl Into<web::Bytes>,
) -> HttpResponse {
    let body: web::Bytes = body.into();
    HttpResponse::build(status)
        .content_type("application/json")
        .insert_header((
            agent_sig::RESPONSE_SIGNATURE_HEADER,
            state.authority.sign_b64(&body),
        ))
        .body(body)
}

const REFUSAL: &[u8] = b"{\"error\":{\"code\":\"bad_signature\",\"message\":\"\"}}";

fn verified(state: &FloorState, req: &HttpRequest, body: &[u8]) -> bool {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let message = agent_sig::request_message(
        "POST",
        req.uri().path(),
        header(agent_sig::TIMESTAMP_HEADER),
        body,
    );
    agent_sig::verify_b64(
        &state.client_key,
        &message,
        header(agent_sig::SIGNATURE_HEADER),
    )
}

async fn fixed(state: web::Data<FloorState>, _body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            agent_sig::RESPONSE_SIGNATURE_HEADER,
            state.fixed_signature.clone(),
        ))
        .body(BODY)
}

async fn signed(state: web::Data<FloorState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if verified(&state, &req, &body) {
        signed_reply(&state, StatusCode::OK, BODY)
    } else {
        signed_reply(&state, StatusCode::UNAUTHORIZED, REFUSAL)
    }
}

/// Verifies the request, then upserts one row chosen by the body through the writer;
/// false when the commit failed. None when the signature does not verify.
async fn verified_upsert(state: &FloorState, req: &HttpRequest, body: &[u8]) -> Option<bool> {
    if !verified(state, req, body) {
        return None;
    }
    // The row comes from the signed body's bytes, so rows are hit evenly.
    let digest = body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let row = (digest % state.rows as u64) as i64;
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The naive group commit: each upsert in a savepoint of its own.
    let submitted = state.writer.submit(
        Rollback::Job,
        move |c| {
            c.prepare_cached(
                "INSERT INTO floor (id, n) VALUES (?1, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1",
            )?
            .execute([row])?;
            Ok(())
        },
        move |r| {
            let _ = tx.send(r.is_ok());
        },
    );
    Some(matches!((submitted, rx.await), (Ok(()), Ok(true))))
}

const INTERNAL: &[u8] = b"{\"error\":{\"code\":\"internal\",\"message\":\"\"}}";

async fn durable(state: web::Data<FloorState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    match verified_upsert(&state, &req, &body).await {
        None => signed_reply(&state, StatusCode::UNAUTHORIZED, REFUSAL),
        Some(true) => signed_reply(&state, StatusCode::OK, BODY),
        Some(false) => signed_reply(&state, StatusCode::INTERNAL_SERVER_ERROR, INTERNAL),
    }
}

/// The id certificate's payload and the reply around it, as a registration's.
fn certificate_reply(state: &FloorState, id: i64, pid: &str, sn: &str, key_b64: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let payload = serde_json::json!({
        "instance_id": id.to_string(),
        "udi": { "pid": pid, "sn": sn },
        "public_key": key_b64,
        "virtual_account": "floor",
        "issued_at": now,
        "renew_after": now + 180 * 86_400,
        "expires_at": now + 365 * 86_400,
        "export_controlled": false,
    })
    .to_string();
    let certificate = state.authority.sign_b64(payload.as_bytes());
    serde_json::json!({
        "instance_id": id.to_string(),
        "virtual_account": "floor",
        "id_certificate": {
            "payload": base64::engine::general_purpose::STANDARD.encode(&payload),
            "signature": certificate,
        },
        "renew_after": now + 180 * 86_400,
        "expires_at": now + 365 * 86_400,
        "authority_public_key": state.authority.public_key_b64(),
    })
    .to_string()
}

async fn renew(state: web::Data<FloorState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    match verified_upsert(&state, &req, &body).await {
        None => signed_reply(&state, StatusCode::UNAUTHORIZED, REFUSAL),
        Some(false) => signed_reply(&state, StatusCode::INTERNAL_SERVER_ERROR, INTERNAL),
        Some(true) => {
            let key = base64::engine::general_purpose::STANDARD.encode(state.client_key.as_bytes());
            let reply = certificate_reply(&state, 1, "FLOOR", "RENEW", &key);
            signed_reply(&state, StatusCode::OK, reply)
        }
    }
}

#[derive(serde::Deserialize)]
struct Udi {
    pid: String,
    sn: String,
}

#[derive(serde::Deserialize)]
struct Registration {
    token: String,
    udi: Udi,
    public_key: String,
    #[allow(dead_code)] // parsed as the product parses it; not kept
    product: serde_json::Value,
}

fn refuse(state: &FloorState, status: StatusCode, code: &str) -> HttpResponse {
    let body = format!("{{\"error\":{{\"code\":\"{code}\",\"message\":\"\"}}}}");
    signed_reply(state, status, body)
}

async fn register(state: web::Data<FloorState>, body: web::Bytes) -> HttpResponse {
    let Ok(reg) = serde_json::from_slice::<Registration>(&body) else {
        return refuse(&state, StatusCode::BAD_REQUEST, "bad_request");
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(&reg.public_key)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .filter(|b| VerifyingKey::from_bytes(b).is_ok());
    let Some(key) = key else {
        return refuse(
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_public_key",
        );
    };
    if Sha256::digest(reg.token.as_bytes()).as_slice() != state.token_digest {
        return refuse(&state, StatusCode::UNAUTHORIZED, "token_invalid");
    }
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let (pid, sn) = (reg.udi.pid.clone(), reg.udi.sn.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let submitted = state.writer.submit(
        Rollback::Job,
        move |c| {
            c.prepare_cached(
                "INSERT INTO registration (id, pid, sn, public_key) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (pid, sn) DO UPDATE SET public_key = excluded.public_key",
            )?
            .execute(rusqlite::params![id, pid, sn, key])?;
            Ok(())
        },
        move |r| {
            let _ = tx.send(r.is_ok());
        },
    );
    if !matches!((submitted, rx.await), (Ok(()), Ok(true))) {
        return refuse(&state, StatusCode::INTERNAL_SERVER_ERROR, "internal");
    }
    let reply = certificate_reply(&state, id, &reg.udi.pid, &reg.udi.sn, &reg.public_key);
    signed_reply(&state, StatusCode::CREATED, reply)
}

/// Opens (or fills) the floor's table of `rows` rows, in WAL mode with durable commits,
/// as the product's database is.
fn open_table(path: &Path, rows: i64) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS floor (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS registration (id INTEGER PRIMARY KEY, pid TEXT NOT NULL,
             sn TEXT NOT NULL, public_key BLOB NOT NULL, UNIQUE (pid, sn))",
    )?;
    let have: i64 = conn.query_row("SELECT count(*) FROM floor", [], |r| r.get(0))?;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare("INSERT INTO floor (id, n) VALUES (?1, 0)")?;
        for id in have..rows {
            insert.execute([id])?;
        }
        // Registrations land in a table as large as the product's estate.
        let registered: i64 =
            tx.query_row("SELECT count(*) FROM registration", [], |r| r.get(0))?;
        let mut register = tx.prepare(
            "INSERT INTO registration (id, pid, sn, public_key) VALUES (?1, 'SEED', ?2, ?3)",
        )?;
        for id in registered..rows {
            let key = Sha256::digest(id.to_le_bytes());
            register.execute(rusqlite::params![id, format!("SN{id:09}"), key.as_slice()])?;
        }
    }
    tx.commit()?;
    Ok(conn)
}

/// Serves the floors until killed; prints `url=<url>` once listening.
pub fn serve(dir: &Path, rows: i64, client_key: VerifyingKey, token: &str) -> Result<(), String> {
    let identity = satellite::crypto::tls::Identity {
        authority_id: "bench-floor",
        valid_days: 730,
        now: chrono::Utc::now().timestamp(),
    };
    satellite::crypto::tls::ensure_certificate(dir, &identity).map_err(|e| e.to_string())?;
    let tls = satellite::crypto::tls::server_config(dir).map_err(|e| e.to_string())?;
    let authority = AuthorityKey::load_or_create(dir).map_err(|e| e.to_string())?;
    let conn = open_table(&dir.join("floor.db"), rows.max(1)).map_err(|e| e.to_string())?;
    let next_id: i64 = conn
        .query_row(
            "SELECT coalesce(max(id), 0) + 1 FROM registration",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    let state = web::Data::new(FloorState {
        fixed_signature: authority.sign_b64(BODY),
        authority,
        client_key,
        writer: Batcher::writer(conn).map_err(|e| e.to_string())?,
        rows: rows.max(1),
        token_digest: Sha256::digest(token.as_bytes()).into(),
        next_id: AtomicI64::new(next_id),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/floor/fixed", web::post().to(fixed))
                .route("/floor/signed", web::post().to(signed))
                .route("/floor/durable", web::post().to(durable))
                .route("/floor/register", web::post().to(register))
                .route("/floor/renew", web::post().to(renew))
        })
        .workers(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .listen_rustls_0_23(listener, tls)
        .map_err(|e| e.to_string())?
        .run();
        println!("url=https://127.0.0.1:{port}");
        server.await.map_err(|e| e.to_string())
    })
}
