//! The `satellite` command line: first start, restart, users, API clients, backup.

use crate::support::{http_client, run_cli, Server, ServerOptions, SATELLITE};
use serde_json::json;

#[test]
fn first_start_creates_everything_and_restart_reuses_it() {
    let server = Server::start();
    let password = server
        .admin_password
        .clone()
        .expect("first start prints a password");
    assert_eq!(password.len(), 20);
    assert!(server.url.starts_with("https://127.0.0.1:"));
    let d = &server.data_dir;
    for f in [
        "satellite.db",
        "keys/authority.pem",
        "keys/authority.pub.pem",
        "tls/cert.pem",
        "tls/key.pem",
    ] {
        assert!(d.join(f).exists(), "{f} exists");
    }
    use std::os::unix::fs::PermissionsExt;
    for f in ["keys/authority.pem", "tls/key.pem"] {
        let mode = std::fs::metadata(d.join(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{f} is private");
    }
    for sub in ["outbox", "inbox", "archive", "rejected"] {
        assert!(server.bundle_dir().join(sub).is_dir());
    }
    let key_before = std::fs::read(d.join("keys/authority.pem")).unwrap();
    let cert_before = std::fs::read(d.join("tls/cert.pem")).unwrap();
    let (dir, data_dir) = server.stop();
    let again = Server::start_in(dir, data_dir, ServerOptions::default());
    assert!(again.admin_password.is_none(), "no new password on restart");
    assert_eq!(
        std::fs::read(again.data_dir.join("keys/authority.pem")).unwrap(),
        key_before
    );
    assert_eq!(
        std::fs::read(again.data_dir.join("tls/cert.pem")).unwrap(),
        cert_before
    );
    let client = http_client();
    let r = client.get(format!("{}/healthz", again.url)).send().unwrap();
    assert_eq!(r.status(), 200);
    let r = client.get(format!("{}/readyz", again.url)).send().unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn insecure_http_only_when_asked() {
    let server = Server::start_with(ServerOptions {
        env: vec![("SATELLITE_INSECURE_HTTP".into(), "true".into())],
        ..Default::default()
    });
    assert!(server.url.starts_with("http://"));
    assert!(!server.data_dir.join("tls/cert.pem").exists());
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    let out = run_cli(SATELLITE, &["frobnicate"], None, None);
    assert_eq!(out.code, 2);
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(
        SATELLITE,
        &["user", "add", "--username", "x", "--role", "viewer"],
        Some(&dir.path().join("nothing-here")),
        None,
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no database"), "{}", out.stderr);
}

#[tokio::test]
async fn user_and_api_client_commands() {
    let server = Server::start();
    let out = server.cli(&["user", "add", "--username", "ops", "--role", "operator"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.value("password").len(), 20);
    // Refusals: unknown role, scoped role without account, weak password, duplicate.
    let out = server.cli(&["user", "add", "--username", "x", "--role", "root"]);
    assert_eq!(out.code, 1);
    let out = server.cli(&["user", "add", "--username", "x", "--role", "viewer"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("needs an account"), "{}", out.stderr);
    let out = server.cli_with_stdin(
        &[
            "user",
            "add",
            "--username",
            "y",
            "--role",
            "operator",
            "--password-stdin",
        ],
        Some("short"),
    );
    assert_eq!(out.code, 1);
    let out = server.cli(&["user", "add", "--username", "ops", "--role", "operator"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("already exists"));

    let out = server.cli(&[
        "api-client",
        "add",
        "--name",
        "ci",
        "--role",
        "system-admin",
        "--json",
    ]);
    assert_eq!(out.code, 0);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(v["client_id"].as_str().unwrap().starts_with("sc_"));
    let out = server.cli(&["api-client", "add", "--name", "ci2", "--role", "operator"]);
    let first_two: Vec<&str> = out.stdout.lines().take(2).collect();
    assert!(first_two[0].starts_with("client_id=") && first_two[1].starts_with("client_secret="));

    let api = server.admin_api().await;
    let (_, events) = api.get("/api/v1/events?actor=cli").await;
    let actions: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"user.created") && actions.contains(&"api_client.created"));
}

#[tokio::test]
async fn backup_while_the_server_runs_and_restore_once_it_stopped() {
    let server = Server::start();
    let api = server.admin_api().await;
    api.create_account("Kept").await;
    let backup = server.dir.path().join("backup.tar.gz");
    let out = server.cli(&["backup", backup.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.value("backup"), backup.to_str().unwrap());
    let out = server.cli(&["backup", backup.to_str().unwrap()]);
    assert_eq!(out.code, 1, "refuses to overwrite");
    api.create_account("Lost").await;
    let bogus = server.dir.path().join("bogus.db");
    std::fs::write(&bogus, b"not a database").unwrap();
    assert_eq!(server.cli(&["restore", bogus.to_str().unwrap()]).code, 1);
    // A running server's data is never replaced under it.
    let out = server.cli(&["restore", backup.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stderr.contains("stop it first"), "{}", out.stderr);

    let (dir, data_dir) = server.stop();
    let out = crate::support::run_cli(
        crate::support::SATELLITE,
        &["restore", backup.to_str().unwrap()],
        Some(&data_dir),
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let server = Server::start_in(dir, data_dir, Default::default());
    let api = server.admin_api().await;
    let (status, list) = api.get("/api/v1/accounts").await;
    assert_eq!(status, 200);
    assert_eq!(
        list["items"],
        json!([{ "name": "Kept", "description": "" }])
    );
}
