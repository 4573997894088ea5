//! `satellite-bench`: load generator and benchmark (see docs/benchmarks.md).

use clap::Parser;
use satellite::bench::{floor, load, report, seed};
use satellite::store::Store;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "satellite-bench",
    about = "Seeds a satellite and measures it against floors"
)]
struct Args {
    /// Product instances to seed (through the registration code path, with real keys).
    #[arg(long, default_value_t = 10_000)]
    instances: u64,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Distinct instances that send reports (their keys are derived up front).
    #[arg(long, default_value_t = 20_000)]
    reporters: usize,
    /// Write the results as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the server's data dir here instead of a temporary one.
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn server_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.with_file_name("satellite");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "no satellite binary beside {}; build it first",
            exe.display()
        ))
    }
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn run(args: Args) -> Result<bool, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let data = root.join("data");
    let mut child = Command::new(server_binary()?)
        .args(["serve", "--role", "upstream", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--bundle-dir")
        .arg(root.join("bundles"))
        .env("SATELLITE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let url = std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?)
        .lines()
        .next()
        .and_then(|l| l.ok())
        .and_then(|l| {
            l.strip_prefix("url=")
                .map(|u| u.trim_end_matches('/').to_string())
        })
        .ok_or("the server printed no url")?;
    let pid = child.id();
    let result = measure(&args, &data, &url, pid);
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn measure(args: &Args, data: &Path, url: &str, pid: u32) -> Result<bool, String> {
    let store = Store::open(&data.join("satellite.db")).map_err(|e| e.to_string())?;
    let now = chrono::Utc::now().timestamp();
    let token = seed::prepare(&store, now).map_err(|e| e.to_string())?;
    let bar = indicatif::ProgressBar::new(args.instances);
    bar.set_message("seeding");
    let started = Instant::now();
    let ids = seed::register(&store, &token, 0, args.instances, 5_000, now, &|n| {
        bar.set_position(n)
    })
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    let seed_secs = started.elapsed().as_secs_f64();
    let (user, password) = seed::page_user(&store, now).map_err(|e| e.to_string())?;
    drop(store);
    let reporters = Arc::new(load::pick(&ids, 0, args.reporters));
    let floor_key = seed::key_for(u64::MAX);
    let floor_url = floor::start(data, floor_key.verifying_key())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let d = Duration::from_secs(args.seconds);
    let c = args.concurrency;
    let rows = rt.block_on(async {
        let fixed = load::floor(
            &floor_url,
            "/floor/fixed",
            "floor: fixed signed reply",
            floor_key.clone(),
            c,
            d,
        )
        .await;
        let signed = load::floor(
            &floor_url,
            "/floor/signed",
            "floor: verify + sign",
            floor_key.clone(),
            c,
            d,
        )
        .await;
        let reports = load::usage_reports(url, reporters.clone(), c, d).await;
        let cookie = load::login(url, &user, &password).await.unwrap_or_default();
        let va = format!("/accounts/{}/virtual-accounts/{}", seed::ACCOUNT, seed::VA);
        let pages = load::pages(
            url,
            cookie,
            vec!["/".into(), va],
            8,
            d,
            "dashboard + VA pages",
        )
        .await;
        let floor_signed = (signed.name.clone(), signed.throughput());
        let floor_fixed = (fixed.name.clone(), fixed.throughput());
        vec![
            report::Row {
                sample: fixed,
                floor: None,
            },
            report::Row {
                sample: signed,
                floor: Some(floor_fixed),
            },
            report::Row {
                sample: reports,
                floor: Some(floor_signed),
            },
            report::Row {
                sample: pages,
                floor: None,
            },
        ]
    });
    let db = data.join("satellite.db");
    let facts = vec![
        ("instances", args.instances.to_string()),
        ("seed seconds", format!("{seed_secs:.1}")),
        ("concurrency", c.to_string()),
        (
            "server RSS MiB",
            format!("{:.1}", rss_kib(pid) as f64 / 1024.0),
        ),
        (
            "database MiB",
            format!(
                "{:.1}",
                (file_size(&db) + file_size(&data.join("satellite.db-wal"))) as f64
                    / (1 << 20) as f64
            ),
        ),
        (
            "cores",
            std::thread::available_parallelism()
                .map_or(0, |n| n.get())
                .to_string(),
        ),
    ];
    print!("{}", report::table(&rows, &facts));
    if let Some(path) = &args.json {
        let v = report::json(&rows, &facts);
        std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap_or_default())
            .map_err(|e| e.to_string())?;
    }
    let errors: u64 = rows.iter().map(|r| r.sample.errors).sum();
    let empty = rows.iter().any(|r| r.sample.latencies_us.is_empty());
    Ok(errors == 0 && !empty)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: some requests failed (see the errors column)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
