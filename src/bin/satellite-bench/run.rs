//! One bench run: start (or reach) the server and the floor process, build the estate
//! (seeded straight into the database, or registered over HTTPS and given its first
//! reports), drive each phase in rounds that take turns with the floors while reading
//! where the CPU went and the server's SQLite counters, time the bundle round trip, report.

use super::estate::{Estate, Queue};
use super::load::{Registrar, Tickets};
use super::metrics::Scraper;
use super::phase::{measured, rows, Phases, Probe, DURABLE, DURABLE_FIRST, REGISTRATION, RENEWAL};
use super::report;
use super::sample::Sample;
use super::{bundles, floor, load, procstat, seed};
use satellite::store::Store;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Above this many instances the estate registers over HTTPS unless `--seed-in-db`.
pub const HTTPS_ABOVE: u64 = 100_000;
/// Key indices of instances registered past the estate, clear of the estate's own.
const EXTRA_KEYS: u64 = 1 << 40;
/// Key indices of the floor's registrations.
const FLOOR_KEYS: u64 = 2 << 40;
/// A phase bounded by count, not time, still stops after this long.
const UNBOUNDED: Duration = Duration::from_secs(24 * 3600);

#[derive(clap::Parser)]
#[command(
    name = "satellite-bench",
    about = "Builds an estate of product instances on a satellite, drives agent and admin \
             traffic at it, and reports each figure beside floors measured in the same run"
)]
pub struct Args {
    /// Product instances in the estate.
    #[arg(long, default_value_t = 10_000)]
    pub instances: u64,
    /// Seconds per phase bounded by time (each split over the rounds).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// The durable floor and the agent phases take turns in this many slices each, so
    /// the machine's drift during a run touches them alike.
    #[arg(long, default_value_t = 4)]
    pub rounds: u32,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Reports and renewals from N instances spread over the estate (keys derived up
    /// front) instead of from every instance drawn uniformly (the default).
    #[arg(long, value_name = "N")]
    pub hot: Option<usize>,
    /// Register the estate over HTTPS (`POST /agent/v1/register`, then a first report each)
    /// instead of writing it into the database; the default above 100,000 instances.
    #[arg(long, conflicts_with = "seed_in_db")]
    pub register_over_https: bool,
    /// Write the estate straight into the database at any size.
    #[arg(long)]
    pub seed_in_db: bool,
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
    /// Whether the server folds changes into the ledger (`--ledger false` measures
    /// without it; sets `ledger_enabled` on the server it starts and on the seeding).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub ledger: bool,
    /// The running server's `metrics_token` (with --url), to read its SQLite counters.
    #[arg(long)]
    pub metrics_token: Option<String>,
    /// Internal: serve the floors from this dir (the bench starts itself this way).
    #[arg(long, hide = true)]
    pub serve_floor: Option<PathBuf>,
    /// Internal: rows in the floor's tables, the client's public key in hex, and the
    /// registration token the floor accepts.
    #[arg(long, hide = true, default_value_t = 1)]
    pub floor_rows: i64,
    #[arg(long, hide = true, default_value = "")]
    pub floor_key: String,
    #[arg(long, hide = true, default_value = "")]
    pub floor_token: String,
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
        floor::serve(dir, args.floor_rows, key, &args.floor_token)?;
        return Ok(true);
    }
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let bundle_dir = root.join("bundles");
    let satellite = sibling("satellite")?;
    let metrics_token = args
        .metrics_token
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
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
                .env("SATELLITE_METRICS_TOKEN", &metrics_token)
                // The bench is one address registering at full speed: rate limits off.
                .env("SATELLITE_RATE_REGISTER_PER_MINUTE", "0")
                .env("SATELLITE_RATE_CREDENTIAL_PER_MINUTE", "0")
                .env("SATELLITE_RATE_LOGIN_PER_MINUTE", "0")
                .env("SATELLITE_LEDGER_ENABLED", args.ledger.to_string());
            let (process, url) = spawn_with_url(cmd, "the server")?;
            let pid = process.0.id();
            (Some(process), url, data, Some(pid))
        }
    };
    let scraper = Scraper::new(&url, metrics_token);
    let places = Places {
        root: &root,
        data: &data,
        bundle_dir: &bundle_dir,
        satellite: &satellite,
        url: &url,
    };
    let result = measure(&args, &places, pid, &scraper);
    drop(server);
    result
}

struct Places<'a> {
    root: &'a Path,
    data: &'a Path,
    bundle_dir: &'a Path,
    satellite: &'a Path,
    url: &'a str,
}

/// The estate as the run found or seeded it, before any phase.
struct Prepared {
    token: String,
    /// Indices the estate still lacks (registered over HTTPS).
    missing: Vec<u64>,
    user: (String, String),
    seconds: f64,
}

fn prepare(args: &Args, db: &Path, https: bool, now: i64) -> Result<Prepared, String> {
    let store = Store::open_with(db, args.ledger).map_err(|e| e.to_string())?;
    let token = seed::prepare(&store, now).map_err(|e| e.to_string())?;
    // A data dir from an earlier run (--dir) is topped up, not seeded again.
    let present = seed::existing(&store).map_err(|e| e.to_string())?;
    let mut missing = seed::missing(&present, args.instances);
    let started = Instant::now();
    if !https && !missing.is_empty() {
        let bar = indicatif::ProgressBar::new(missing.len() as u64);
        bar.set_message("seeding");
        seed::register(&store, &token, &missing, 5_000, now, &|n| {
            bar.set_position(n)
        })
        .map_err(|e| e.to_string())?;
        bar.finish_and_clear();
        missing.clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    let user = seed::page_user(&store, now).map_err(|e| e.to_string())?;
    drop(store);
    seed::settle(db).map_err(|e| e.to_string())?;
    Ok(Prepared {
        token,
        missing,
        user,
        seconds,
    })
}

fn estate_of(args: &Args, db: &Path) -> Result<Arc<Estate>, String> {
    let store = Store::open(db).map_err(|e| e.to_string())?;
    let mut ids = seed::existing(&store).map_err(|e| e.to_string())?;
    ids.retain(|(i, _)| *i < args.instances);
    Ok(Arc::new(match args.hot {
        Some(n) => Estate::hot(&ids, n),
        None => Estate::uniform(ids),
    }))
}

/// What a round of the main loop runs, each with its floor where it has one of its own.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    DurableFloor,
    /// The floor's registrations, the product's, then the first reports of the instances
    /// just registered (an estate seeded in the database).
    Registrations,
    SameCounts,
    ChangedCounts,
    /// The renewal floor and the product's renewals.
    Renewals,
}

/// A floor slice and the phase (or phases) compared with it, the floor first in even
/// rounds and last in odd ones (A B B A), so a drift of the machine's speed over a pair of
/// rounds touches a phase and its floor alike.
async fn beside(
    phases: &mut Phases,
    round: u32,
    floor: impl std::future::Future<Output = Sample>,
    phase: impl std::future::Future<Output = Vec<Sample>>,
) {
    if round.is_multiple_of(2) {
        phases.add(floor.await);
        phase.await.into_iter().for_each(|s| phases.add(s));
    } else {
        phase.await.into_iter().for_each(|s| phases.add(s));
        phases.add(floor.await);
    }
}

/// The floor's side of a run.
struct FloorSide<'a> {
    url: &'a str,
    key: ed25519_dalek::SigningKey,
    probe: Probe<'a>,
    registrar: Arc<Registrar>,
    /// Instances whose keys the floor's load derives (and drops) per request, as the
    /// uniform agent phases derive theirs; `None` with `--hot`.
    derive_over: Option<u64>,
}

impl FloorSide<'_> {
    async fn signed(&self, path: &'static str, name: &str, load: (usize, Duration)) -> Sample {
        let key = self.key.clone();
        let s = load::floor(self.url, path, name, key, self.derive_over, load);
        measured(&self.probe, s).await
    }

    async fn registrations(&self, load: (usize, Duration)) -> Sample {
        let (url, reg) = (self.url, self.registrar.clone());
        let s = load::registrations(REGISTRATION, url, "/floor/register", reg, load);
        measured(&self.probe, s).await
    }
}

fn measure(args: &Args, at: &Places, pid: Option<u32>, scraper: &Scraper) -> Result<bool, String> {
    let now = chrono::Utc::now().timestamp();
    let db = at.data.join("satellite.db");
    let https = args.register_over_https || (!args.seed_in_db && args.instances > HTTPS_ABOVE);
    let prepared = prepare(args, &db, https, now)?;
    let floor_key = seed::key_for(u64::MAX);
    let floor_token = uuid::Uuid::new_v4().simple().to_string();
    let mut floor_cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    floor_cmd
        .arg("--serve-floor")
        .arg(at.root.join("floor"))
        .arg("--floor-rows")
        .arg(args.instances.max(1).to_string())
        .arg("--floor-key")
        .arg(hex::encode(floor_key.verifying_key().as_bytes()))
        .arg("--floor-token")
        .arg(&floor_token);
    let (floor_process, floor_url) = spawn_with_url(floor_cmd, "the floor server")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let d = Duration::from_secs(args.seconds);
    let c = args.concurrency;
    let wants = |p: &str| args.phases.iter().any(|x| x == p);
    let rounds = args.rounds.max(1);
    let slice = (c, d / rounds);
    let unbounded = (c, UNBOUNDED);
    let product = Probe {
        pid,
        scraper: Some(scraper),
    };
    let floor = FloorSide {
        url: &floor_url,
        key: floor_key,
        probe: Probe {
            pid: Some(floor_process.0.id()),
            scraper: None,
        },
        registrar: Arc::new(Registrar {
            token: floor_token,
            pid: "FLOOR",
            run: Some(format!("floor{now}")),
            tickets: Tickets::From(FLOOR_KEYS, AtomicU64::new(0)),
            registered: None,
        }),
        derive_over: args.hot.is_none().then_some(args.instances.max(1)),
    };
    let mut peak_rss = pid.map_or(0.0, procstat::rss_mib);
    let mut phases = Phases::default();
    let mut floors = vec![];
    let mut pages = None;
    let registered_over_https = prepared.missing.len();
    rt.block_on(async {
        let fresh = Arc::new(Queue::new(vec![]));
        if !prepared.missing.is_empty() {
            // The estate registers over HTTPS in rounds, then reports for the first time.
            let listed = Queue::new(prepared.missing.clone());
            let registrar = Arc::new(Registrar {
                token: prepared.token.clone(),
                pid: seed::PID,
                run: None,
                tickets: Tickets::Listed(listed),
                registered: Some(fresh.clone()),
            });
            for round in 0..rounds {
                if let Tickets::Listed(q) = &registrar.tickets {
                    q.open_up_to(round as usize + 1, rounds as usize);
                }
                let s = load::registrations(
                    "registrations",
                    at.url,
                    "/agent/v1/register",
                    registrar.clone(),
                    unbounded,
                );
                let phase = async { vec![measured(&product, s).await] };
                beside(&mut phases, round, floor.registrations(slice), phase).await;
            }
            peak_rss = peak_rss.max(pid.map_or(0.0, procstat::rss_mib));
            if wants("reports") {
                fresh.shuffle(now as u64 | 1);
                for round in 0..rounds {
                    fresh.open_up_to(round as usize + 1, rounds as usize);
                    let s = load::first_reports(at.url, fresh.clone(), unbounded);
                    let phase = async { vec![measured(&product, s).await] };
                    let durable = floor.signed("/floor/durable", DURABLE_FIRST, slice);
                    beside(&mut phases, round, durable, phase).await;
                }
            }
        }
        let estate = match estate_of(args, &db) {
            Ok(e) => e,
            Err(e) => return Err(e),
        };
        floors.push(
            floor
                .signed("/floor/fixed", "floor: fixed signed reply", (c, d))
                .await,
        );
        floors.push(
            floor
                .signed("/floor/signed", "floor: verify + sign", (c, d))
                .await,
        );
        floors.push(
            floor
                .signed("/floor/durable", "floor: + durable upsert", (c, d))
                .await,
        );
        // Past the estate, new instances register (and report first) in the rounds.
        let extra = Arc::new(Registrar {
            token: prepared.token.clone(),
            pid: "BENCHREG",
            run: Some(now.to_string()),
            tickets: Tickets::From(EXTRA_KEYS, AtomicU64::new(0)),
            registered: Some(fresh.clone()),
        });
        fresh.open_all();
        let mut units = vec![Unit::DurableFloor];
        if !https && wants("registrations") {
            units.push(Unit::Registrations);
        }
        if wants("reports") {
            units.extend([Unit::SameCounts, Unit::ChangedCounts]);
        }
        if wants("renewals") {
            units.push(Unit::Renewals);
        }
        for round in 0..rounds {
            // Every other round runs its units in the reverse order (ABBA): a drift of the
            // machine's speed over a pair of rounds then touches each phase and its floor
            // alike.
            let order: Vec<Unit> = if round % 2 == 1 {
                units.iter().rev().copied().collect()
            } else {
                units.clone()
            };
            for unit in order {
                match unit {
                    Unit::DurableFloor => {
                        phases.add(floor.signed("/floor/durable", DURABLE, slice).await);
                    }
                    Unit::Registrations => {
                        // First reports stay right after the registrations whose
                        // instances they report for.
                        let phase = async {
                            let s = load::registrations(
                                "registrations",
                                at.url,
                                "/agent/v1/register",
                                extra.clone(),
                                slice,
                            );
                            let mut done = vec![measured(&product, s).await];
                            if wants("reports") {
                                let s = load::first_reports(at.url, fresh.clone(), slice);
                                done.push(measured(&product, s).await);
                            }
                            done
                        };
                        beside(&mut phases, round, floor.registrations(slice), phase).await;
                    }
                    Unit::SameCounts | Unit::ChangedCounts => {
                        let change = unit == Unit::ChangedCounts;
                        let name = if change {
                            "reports, changed counts"
                        } else {
                            "reports, same counts"
                        };
                        let s = load::reports(name, at.url, estate.clone(), change, slice);
                        phases.add(measured(&product, s).await);
                    }
                    Unit::Renewals => {
                        let s = load::renewals(at.url, estate.clone(), slice);
                        let phase = async { vec![measured(&product, s).await] };
                        let renew = floor.signed("/floor/renew", RENEWAL, slice);
                        beside(&mut phases, round, renew, phase).await;
                    }
                }
            }
            peak_rss = peak_rss.max(pid.map_or(0.0, procstat::rss_mib));
        }
        if wants("pages") {
            let (user, password) = &prepared.user;
            let cookie = load::login(at.url, user, password)
                .await
                .unwrap_or_default();
            let va = format!("/accounts/{}/virtual-accounts/{}", seed::ACCOUNT, seed::VA);
            let paths = vec!["/".into(), va];
            let s = load::pages(at.url, cookie, paths, 8, d, "dashboard + VA pages");
            pages = Some(measured(&product, s).await);
            peak_rss = peak_rss.max(pid.map_or(0.0, procstat::rss_mib));
        }
        Ok(())
    })?;
    drop(floor_process);
    let rows = rows(floors, phases, pages);
    let steps = if wants("bundles") {
        bundles::round_trip(at.satellite, (at.data, at.bundle_dir), at.root, now)?
    } else {
        vec![]
    };
    let instances = Store::open(&db)
        .and_then(|s| {
            s.read_blocking(|c| {
                Ok(c.query_row("SELECT count(*) FROM instances", [], |r| r.get::<_, i64>(0))?)
            })
        })
        .map_err(|e| e.to_string())?;
    let estate = if https {
        format!(
            "{} ({registered_over_https} registered over HTTPS this run)",
            args.instances
        )
    } else {
        format!("{} (seeded in the database)", args.instances)
    };
    let facts = vec![
        ("instances in the estate", estate),
        ("ledger", if args.ledger { "on" } else { "off" }.to_string()),
        ("instances at the end", instances.to_string()),
        (
            "reporters",
            match args.hot {
                Some(n) => format!("hot set of {n} spread over the estate (--hot)"),
                None => "every instance, drawn uniformly".into(),
            },
        ),
        ("seed seconds", format!("{:.1}", prepared.seconds)),
        ("concurrency", c.to_string()),
        (
            "server private RSS MiB (peak seen)",
            format!("{peak_rss:.1}"),
        ),
        (
            "database MiB (with WAL)",
            format!("{:.1}", dir_size_mib(&db)),
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
