//! The floor servers: the same actix + rustls stack as the product, answering a fixed
//! signed JSON body, or verifying the request's signature and signing the reply. They
//! show what this machine can do at all, so figures are reported as ratios to them.

use crate::crypto::agent_sig;
use crate::crypto::AuthorityKey;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use ed25519_dalek::VerifyingKey;
use std::path::Path;
use std::sync::Arc;

struct FloorState {
    authority: AuthorityKey,
    client_key: VerifyingKey,
    fixed_body: &'static [u8],
    fixed_signature: String,
}

async fn fixed(state: web::Data<FloorState>, _body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            agent_sig::RESPONSE_SIGNATURE_HEADER,
            state.fixed_signature.clone(),
        ))
        .body(state.fixed_body)
}

async fn signed(state: web::Data<FloorState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
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
        &body,
    );
    let ok = agent_sig::verify_b64(
        &state.client_key,
        &message,
        header(agent_sig::SIGNATURE_HEADER),
    );
    let reply: &[u8] = if ok {
        state.fixed_body
    } else {
        b"{\"error\":{\"code\":\"bad_signature\",\"message\":\"\"}}"
    };
    HttpResponse::build(if ok {
        actix_web::http::StatusCode::OK
    } else {
        actix_web::http::StatusCode::UNAUTHORIZED
    })
    .content_type("application/json")
    .insert_header((
        agent_sig::RESPONSE_SIGNATURE_HEADER,
        state.authority.sign_b64(reply),
    ))
    .body(reply)
}

/// Starts the floor server on a thread of its own; returns its URL.
pub fn start(data_dir: &Path, client_key: VerifyingKey) -> Result<String, String> {
    const BODY: &[u8] = br#"{"status":"authorized","entitlements":[{"tag":"regid.2026-01.com.bench.ess,1.0","count":1,"status":"authorized"}],"authorization":{"renew_after":"2026-12-23T00:00:00Z","expires_at":"2027-02-21T00:00:00Z"}}"#;
    let floor_dir = data_dir.join("floor");
    crate::crypto::tls::ensure_certificate(&floor_dir).map_err(|e| e.to_string())?;
    let tls = crate::crypto::tls::server_config(&floor_dir).map_err(|e| e.to_string())?;
    let authority = AuthorityKey::load_or_create(&floor_dir).map_err(|e| e.to_string())?;
    let state = web::Data::new(FloorState {
        fixed_signature: authority.sign_b64(BODY),
        authority,
        client_key,
        fixed_body: BODY,
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().map_err(|e| e.to_string())?.port()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let state = Arc::new(state);
    std::thread::spawn(move || {
        let sys = actix_web::rt::System::new();
        let failed = tx.clone();
        let result = sys.block_on(async move {
            let state = state.clone();
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::clone(&state))
                    .route("/floor/fixed", web::post().to(fixed))
                    .route("/floor/signed", web::post().to(signed))
            })
            .workers(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .listen_rustls_0_23(listener, tls)
            .map_err(|e| e.to_string())?
            .run();
            let _ = tx.send(Ok(()));
            server.await.map_err(|e| e.to_string())
        });
        if let Err(e) = result {
            let _ = failed.send(Err(e));
        }
    });
    rx.recv().map_err(|e| e.to_string())??;
    Ok(url)
}
