//! Measuring one phase (the CPU it cost the server and the load generator, the server's
//! SQLite counters), adding up a phase's slices over the rounds, and pairing each phase
//! with the floor it is compared with.

use super::metrics::{self, Scraper};
use super::procstat;
use super::report::{Floor, Row};
use super::sample::Sample;

/// What a phase is measured on: the serving process (its CPU) and, for the product, its
/// /metrics (SQLite counters).
pub struct Probe<'a> {
    pub pid: Option<u32>,
    pub scraper: Option<&'a Scraper>,
}

/// Runs `phase` and records the CPU time the server and this process (the load
/// generator) used for it, from an idle server to an idle server, so the work the phase
/// leaves behind counts too (rates and latencies cover the load alone); and how the
/// server's SQLite counters grew.
pub async fn measured<F: std::future::Future<Output = Sample>>(
    probe: &Probe<'_>,
    phase: F,
) -> Sample {
    if let Some(p) = probe.pid {
        procstat::settle(p).await;
    }
    let me = std::process::id();
    let sqlite_before = match probe.scraper {
        Some(s) => s.sqlite().await,
        None => None,
    };
    let before = probe.pid.map(procstat::cpu_split);
    let threads_before = probe.pid.map(procstat::cpu_by_thread);
    let me_before = procstat::cpu_split(me);
    let mut sample = phase.await;
    if let Some(p) = probe.pid {
        procstat::settle(p).await;
    }
    sample.client_cpu = Some(procstat::cpu_split(me).since(me_before).total());
    sample.server_threads = probe
        .pid
        .zip(threads_before)
        .map(|(p, b)| procstat::thread_growth(&b, procstat::cpu_by_thread(p)));
    sample.server_cpu = probe
        .pid
        .zip(before)
        .map(|(p, b)| procstat::cpu_split(p).since(b));
    if let (Some(s), Some(b)) = (probe.scraper, sqlite_before) {
        sample.sqlite = s.sqlite().await.map(|a| metrics::growth(&b, &a));
    }
    sample
}

/// Samples by phase name, in the order first seen.
#[derive(Default)]
pub struct Phases(pub Vec<Sample>);

impl Phases {
    pub fn add(&mut self, s: Sample) {
        match self.0.iter_mut().find(|t| t.name == s.name) {
            Some(total) => total.absorb(s),
            None => self.0.push(s),
        }
    }

    pub fn take(&mut self, name: &str) -> Option<Sample> {
        let i = self.0.iter().position(|s| s.name == name)?;
        Some(self.0.remove(i))
    }
}

pub const DURABLE: &str = "floor: durable, interleaved";
pub const REGISTRATION: &str = "floor: registration, interleaved";
/// A renewal's floor signs twice (the id certificate and the reply), as section 4 asks.
pub const RENEWAL: &str = "floor: renewal, interleaved";

/// Each floor compared with the one below it; the interleaved floors with the verify +
/// sign floor; registrations with the registration floor, renewals with the renewal
/// floor and every other agent phase with the durable floor, all measured in the same
/// rounds.
pub fn rows(floors: Vec<Sample>, mut phases: Phases, pages: Option<Sample>) -> Vec<Row> {
    let mut rows = vec![];
    let signed = floors.get(1).map(Floor::of);
    let mut previous: Option<Floor> = None;
    for s in floors {
        let below = previous.replace(Floor::of(&s));
        rows.push(Row {
            sample: s,
            floor: below,
        });
    }
    let durable = phases.take(DURABLE);
    let registration = phases.take(REGISTRATION);
    let renewal = phases.take(RENEWAL);
    let durable_floor = durable.as_ref().map(Floor::of);
    let registration_floor = registration.as_ref().map(Floor::of);
    let renewal_floor = renewal.as_ref().map(Floor::of);
    for s in [durable, registration, renewal].into_iter().flatten() {
        rows.push(Row {
            sample: s,
            floor: signed.clone(),
        });
    }
    for s in phases.0 {
        let floor = match s.name.as_str() {
            "registrations" => registration_floor.clone(),
            "renewals" => renewal_floor.clone(),
            _ => durable_floor.clone(),
        };
        rows.push(Row { sample: s, floor });
    }
    rows.extend(pages.map(|sample| Row {
        sample,
        floor: None,
    }));
    rows
}
