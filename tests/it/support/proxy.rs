//! A small HTTP CONNECT proxy for tests: optional Basic credentials (407 without them),
//! then a byte tunnel to the target. It counts the tunnels it opened, so a test can tell
//! that an agent really went through it. Runs on its own thread; stops when dropped.

use base64::Engine;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Proxy {
    pub port: u16,
    tunnels: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Proxy {
    /// Starts a proxy on 127.0.0.1 that wants `user:pass` when given.
    pub fn start(credentials: Option<&str>) -> Proxy {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let port = std_listener.local_addr().expect("addr").port();
        let (tunnels, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let expected = credentials.map(|c| base64::engine::general_purpose::STANDARD.encode(c));
        let (t, r) = (tunnels.clone(), refused.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        accepted = listener.accept() => {
                            let Ok((conn, _)) = accepted else { continue };
                            let (t, r, expected) = (t.clone(), r.clone(), expected.clone());
                            tokio::spawn(async move {
                                let _ = tunnel(conn, expected, t, r).await;
                            });
                        }
                    }
                }
            });
        });
        Proxy {
            port,
            tunnels,
            refused,
            stop: Some(stop_tx),
        }
    }

    /// `http://[user:pass@]127.0.0.1:PORT`
    pub fn url(&self, credentials: Option<&str>) -> String {
        match credentials {
            Some(c) => format!("http://{c}@127.0.0.1:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    pub fn tunnels(&self) -> usize {
        self.tunnels.load(Ordering::SeqCst)
    }

    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn tunnel(
    mut conn: TcpStream,
    expected: Option<String>,
    tunnels: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        if conn.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut lines = text.lines();
    let request = lines.next().unwrap_or_default().to_string();
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    // `Proxy-Authorization: Basic <base64>`: the scheme is case-insensitive, the
    // credentials are not.
    let credentials = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("proxy-authorization"))
        .and_then(|(_, v)| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, c)| c.trim().to_string());
    if method != "CONNECT" {
        conn.write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    let authorized = expected.is_none() || credentials == expected;
    if !authorized {
        refused.fetch_add(1, Ordering::SeqCst);
        conn.write_all(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm=\"test\"\r\ncontent-length: 0\r\n\r\n",
        )
        .await?;
        return Ok(());
    }
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    tunnels.fetch_add(1, Ordering::SeqCst);
    conn.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut conn, &mut upstream).await?;
    Ok(())
}
