//! One bench run: start (or reach) the server and the floor process, seed, drive each
//! phase while reading the serving process's CPU time, time the bundle round trip, report.

use super::report::{self, Floor, Row};
use super::{bundles, floor, load, procstat, seed, Sample};
use crate::store::Store;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Parser)]
#[command(
    name = "satellite-bench",
    about = "Seeds a satellite, drives agent and admin traffic at it, and reports each figure \
             beside floors measured in the same run"
)]
pub struct Args {
    /// Product instances to seed (through the registration code path, with real keys).
    #[arg(long, default_value_t = 10_000)]
    pub instances: u64,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// The durable floor and the agent phases take turns in this many slices each, so
    /// the machine's drift during a run touches them alike.
    #[arg(long, default_value_t = 4)]
    pub rounds: u32,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Distinct seeded instances that report and renew (keys are derived up front).
    #[arg(long, default_value_t = 20_000)]
    pub reporters: usize,
    /// Phases to run, in this order: registrations, reports, renewals, pages, bundles.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "registrations,reports,renewals,pages,bundles"
    )]
    pub phases: Vec<String>,
    /// Write the results as JSON here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep the data here instead of a temporary dir; a later run tops it up, not reseeds.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Drive an already running server at this URL instead of starting one; its data dir
    /// must be given with --data-dir (seeding and the bundle steps work on it directly).
    #[arg(long, requires = "data_dir")]
    pub url: Option<String>,
    /// The running server's data dir (with --url).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The running server's process id (with --url), to read its CPU time and memory.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Internal: serve the floors from this dir (the bench starts itself this way).
    #[arg(long, hide = true)]
    pub serve_floor: Option<PathBuf>,
    /// Internal: rows in the floor's table, and the client's public key in hex.
    #[arg(long, hide = true, default_value_t = 1)]
    pub floor_rows: i64,
    #[arg(long, hide = true, default_value = "")]
    pub floor_key: String,
}

/// A child process that is killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sibling(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.with_file_name(name);
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "no {name} binary beside {}; build it first",
            exe.display()
        ))
    }
}

/// Starts `cmd` and reads the `url=` line it prints first.
fn spawn_with_url(mut cmd: Command, what: &str) -> Result<(Process, String), String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let process = Process(child);
    let url = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("url=")
                .map(|u| u.trim_end_matches('/').to_string())
        })
        .ok_or_else(|| format!("{what} printed no url"))?;
    Ok((process, url))
}

fn dir_size_mib(db: &Path) -> f64 {
    let size = |p: PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    (size(db.to_path_buf()) + size(wal)) as f64 / (1 << 20) as f64
}

/// Runs the bench; true when every request and step succeeded.
pub fn run(args: Args) -> Result<bool, String> {
    if let Some(dir) = &args.serve_floor {
        let key = hex::decode(&args.floor_key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
            .ok_or("--floor-key must be a hex ed25519 public key")?;
        floor::serve(dir, args.floor_rows, key)?;
        return Ok(true);
    }
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let bundle_dir = root.join("bundles");
    let satellite = sibling("satellite")?;
    let (server, url, data, pid) = match &args.url {
        Some(url) => {
            let data = args.data_dir.clone().ok_or("--url needs --data-dir")?;
            (
                None,
                url.trim_end_matches('/').to_string(),
                data,
                args.server_pid,
            )
        }
        None => {
            let data = root.join("data");
            let mut cmd = Command::new(&satellite);
            cmd.args(["serve", "--listen", "127.0.0.1:0"])
                .arg("--data-dir")
                .arg(&data)
                .arg("--bundle-dir")
                .arg(&bundle_dir)
                .env("SATELLITE_LOG", "warn")
                .env("SATELLITE_INBOX_SCAN_SECONDS", "0")
                // The bench is one address registering at full speed: rate limits off.
                .env("SATELLITE_RATE_REGISTER_PER_MINUTE", "0")
                .env("SATELLITE_RATE_CREDENTIAL_PER_MINUTE", "0")
                .env("SATELLITE_RATE_LOGIN_PER_MINUTE", "0");
            let (process, url) = spawn_with_url(cmd, "the server")?;
            let pid = process.0.id();
            (Some(process), url, data, Some(pid))
        }
    };
    let result = measure(&args, &root, &data, &bundle_dir, &satellite, &url, pid);
    drop(server);
    result
}

struct Seeded {
    token: String,
    reporters: Arc<Vec<(String, ed25519_dalek::SigningKey)>>,
    user: (String, String),
    seconds: f64,
}

fn seed_instances(args: &Args, data: &Path, now: i64) -> Result<Seeded, String> {
    let store = Store::open(&data.join("satellite.db")).map_err(|e| e.to_string())?;
    let token = seed::prepare(&store, now).map_err(|e| e.to_string())?;
    let bar = indicatif::ProgressBar::new(args.instances);
    bar.set_message("seeding");
    let started = Instant::now();
    // A data dir from an earlier run (--dir) is topped up, not seeded again.
    let mut ids = seed::existing(&store).map_err(|e| e.to_string())?;
    ids.truncate(args.instances as usize);
    let have = ids.len() as u64;
    bar.set_position(have);
    ids.extend(
        seed::register(&store, &token, have, args.instances, 5_000, now, &|n| {
            bar.set_position(have + n)
        })
        .map_err(|e| e.to_string())?,
    );
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let user = seed::page_user(&store, now).map_err(|e| e.to_string())?;
    drop(store);
    seed::settle(&data.join("satellite.db")).map_err(|e| e.to_string())?;
    Ok(Seeded {
        token,
        reporters: Arc::new(load::pick(&ids, 0, args.reporters)),
        user,
        seconds,
    })
}

/// Runs `phase` and records the CPU time `pid` used for it: from an idle server to an
/// idle server, so the work the phase leaves behind counts too (rates and latencies
/// cover the load alone).
async fn with_cpu<F: std::future::Future<Output = Sample>>(pid: Option<u32>, phase: F) -> Sample {
    if let Some(p) = pid {
        procstat::settle(p).await;
    }
    let before = pid.map(procstat::cpu_time);
    let mut sample = phase.await;
    if let Some(p) = pid {
        procstat::settle(p).await;
    }
    sample.server_cpu = pid
        .zip(before)
        .map(|(p, b)| procstat::cpu_time(p).saturating_sub(b));
    sample
}

fn measure(
    args: &Args,
    root: &Path,
    data: &Path,
    bundle_dir: &Path,
    satellite: &Path,
    url: &str,
    pid: Option<u32>,
) -> Result<bool, String> {
    let now = chrono::Utc::now().timestamp();
    let seeded = seed_instances(args, data, now)?;
    let floor_key = seed::key_for(u64::MAX);
    let mut floor_cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    floor_cmd
        .arg("--serve-floor")
        .arg(root.join("floor"))
        .arg("--floor-rows")
        .arg(args.instances.max(1).to_string())
        .arg("--floor-key")
        .arg(hex::encode(floor_key.verifying_key().as_bytes()));
    let (floor_process, floor_url) = spawn_with_url(floor_cmd, "the floor server")?;
    let floor_pid = Some(floor_process.0.id());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let d = Duration::from_secs(args.seconds);
    let c = args.concurrency;
    let wants = |p: &str| args.phases.iter().any(|x| x == p);
    let mut peak_rss = pid.map_or(0.0, procstat::rss_mib);
    let mut rows: Vec<Row> = vec![];
    rt.block_on(async {
        let floor = |path: &'static str, name: &'static str| {
            let key = floor_key.clone();
            with_cpu(floor_pid, load::floor(&floor_url, path, name, key, c, d))
        };
        let floors = vec![
            floor("/floor/fixed", "floor: fixed signed reply").await,
            floor("/floor/signed", "floor: verify + sign").await,
            floor("/floor/durable", "floor: + durable upsert").await,
        ];
        // The agent phases take turns with the durable floor they are compared with.
        let rounds = args.rounds.max(1);
        let slice = d / rounds;
        let named = |name: &str| Sample {
            name: name.to_string(),
            ..Default::default()
        };
        let mut reference = named("floor: durable, interleaved");
        let mut agent: Vec<Sample> = vec![];
        for round in 0..rounds {
            let key = floor_key.clone();
            let s = load::floor(&floor_url, "/floor/durable", "", key, c, slice);
            reference.absorb(with_cpu(floor_pid, s).await);
            let mut slices = vec![];
            if wants("registrations") {
                let run = format!("{now}-{round}");
                let token = seeded.token.clone();
                let s = load::registrations(url, token, run, c, slice);
                slices.push(with_cpu(pid, s).await);
            }
            if wants("reports") {
                let s = load::usage_reports(url, seeded.reporters.clone(), c, slice);
                slices.push(with_cpu(pid, s).await);
            }
            if wants("renewals") {
                let s = load::renewals(url, seeded.reporters.clone(), c, slice);
                slices.push(with_cpu(pid, s).await);
            }
            peak_rss = peak_rss.max(pid.map_or(0.0, procstat::rss_mib));
            if agent.is_empty() {
                agent = slices.iter().map(|s| named(&s.name)).collect();
            }
            for (total, s) in agent.iter_mut().zip(slices) {
                total.absorb(s);
            }
        }
        let mut pages = None;
        if wants("pages") {
            let (user, password) = &seeded.user;
            let cookie = load::login(url, user, password).await.unwrap_or_default();
            let va = format!("/accounts/{}/virtual-accounts/{}", seed::ACCOUNT, seed::VA);
            let paths = vec!["/".into(), va];
            let s = load::pages(url, cookie, paths, 8, d, "dashboard + VA pages");
            let s = with_cpu(pid, s).await;
            peak_rss = peak_rss.max(pid.map_or(0.0, procstat::rss_mib));
            pages = Some(s);
        }
        // Each floor is compared with the one below it; the interleaved durable floor
        // with the same one as the first, and the agent phases with it.
        let signed = Floor::of(&floors[1]);
        let mut previous: Option<Floor> = None;
        for s in floors {
            let below = previous.replace(Floor::of(&s));
            rows.push(Row {
                sample: s,
                floor: below,
            });
        }
        let durable = Floor::of(&reference);
        rows.push(Row {
            sample: reference,
            floor: Some(signed),
        });
        for s in agent {
            rows.push(Row {
                sample: s,
                floor: Some(durable.clone()),
            });
        }
        rows.extend(pages.map(|sample| Row {
            sample,
            floor: None,
        }));
    });
    drop(floor_process);
    let steps = if wants("bundles") {
        bundles::round_trip(satellite, (data, bundle_dir), root, now)?
    } else {
        vec![]
    };
    let instances = Store::open(&data.join("satellite.db"))
        .and_then(|s| {
            s.read_blocking(|c| {
                Ok(c.query_row("SELECT count(*) FROM instances", [], |r| r.get::<_, i64>(0))?)
            })
        })
        .map_err(|e| e.to_string())?;
    let facts = vec![
        ("instances seeded", args.instances.to_string()),
        ("instances at the end", instances.to_string()),
        ("seed seconds", format!("{:.1}", seeded.seconds)),
        ("concurrency", c.to_string()),
        (
            "server private RSS MiB (peak seen)",
            format!("{peak_rss:.1}"),
        ),
        (
            "database MiB (with WAL)",
            format!("{:.1}", dir_size_mib(&data.join("satellite.db"))),
        ),
        (
            "cores",
            std::thread::available_parallelism()
                .map_or(0, |n| n.get())
                .to_string(),
        ),
    ];
    print!("{}", report::table(&rows, &steps, &facts));
    if let Some(path) = &args.json {
        let v = report::json(&rows, &steps, &facts);
        let text = serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| e.to_string())?;
    }
    let errors: u64 = rows.iter().map(|r| r.sample.errors).sum();
    let empty = rows.iter().any(|r| r.sample.latencies_us.is_empty());
    Ok(errors == 0 && !empty)
}
