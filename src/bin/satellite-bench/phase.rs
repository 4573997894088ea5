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
/// leaves behind counts too (rates and latencies cover the load alone); how much of the
/// machine's CPU stayed idle while the load ran; and how the server's SQLite counters
/// grew.
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
    let machine_before = procstat::machine_ticks();
    let mut sample = phase.await;
    sample.machine = Some(procstat::machine_ticks().since(machine_before));
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
/// The durable floor's slices taken in the rounds of first reports over HTTPS, which run
/// apart from the other agent phases: each phase is compared with the floor measured in
/// its own rounds, so the machine's drift between rounds does not enter the ratio.
pub const DURABLE_FIRST: &str = "floor: durable, beside first reports";
pub const REGISTRATION: &str = "floor: registration, interleaved";
/// A renewal's floor signs twice (the id certificate and the reply), as section 4 asks.
pub const RENEWAL: &str = "floor: renewal, interleaved";

/// Each floor compared with the one below it; the interleaved floors with the verify +
/// sign floor; registrations with the registration floor, renewals with the renewal
/// floor, first reports over HTTPS with the durable floor of their rounds and every
/// other agent phase with the durable floor, each measured in the same rounds.
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
    let durable_first = phases.take(DURABLE_FIRST);
    let registration = phases.take(REGISTRATION);
    let renewal = phases.take(RENEWAL);
    let durable_floor = durable.as_ref().map(Floor::of);
    let first_reports_floor = durable_first.as_ref().map(Floor::of);
    let registration_floor = registration.as_ref().map(Floor::of);
    let renewal_floor = renewal.as_ref().map(Floor::of);
    for s in [durable, durable_first, registration, renewal]
        .into_iter()
        .flatten()
    {
        rows.push(Row {
            sample: s,
            floor: signed.clone(),
        });
    }
    for s in phases.0 {
        let floor = match s.name.as_str() {
            "registrations" => registration_floor.clone(),
            "renewals" => renewal_floor.clone(),
            "first reports" => first_reports_floor.clone().or(durable_floor.clone()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> Sample {
        Sample::named(name)
    }

    fn floor_of<'a>(rows: &'a [Row], phase: &str) -> Option<&'a str> {
        let row = rows.iter().find(|r| r.sample.name == phase)?;
        row.floor.as_ref().map(|f| f.name.as_str())
    }

    #[test]
    fn each_agent_phase_is_compared_with_the_floor_of_its_own_rounds() {
        let floors = vec![named("fixed"), named("verify + sign"), named("+ durable")];
        let mut phases = Phases::default();
        for name in [
            DURABLE_FIRST,
            "first reports",
            DURABLE,
            REGISTRATION,
            "registrations",
            "reports, same counts",
            RENEWAL,
            "renewals",
        ] {
            phases.add(named(name));
        }
        let all = rows(floors, phases, Some(named("pages")));
        assert_eq!(floor_of(&all, "first reports"), Some(DURABLE_FIRST));
        assert_eq!(floor_of(&all, "reports, same counts"), Some(DURABLE));
        assert_eq!(floor_of(&all, "registrations"), Some(REGISTRATION));
        assert_eq!(floor_of(&all, "renewals"), Some(RENEWAL));
        assert_eq!(floor_of(&all, DURABLE_FIRST), Some("verify + sign"));
        assert_eq!(floor_of(&all, "+ durable"), Some("verify + sign"));
        assert_eq!(floor_of(&all, "pages"), None);

        // First reports taken in the main rounds (an estate seeded in the database) are
        // compared with the durable floor of those rounds.
        let mut phases = Phases::default();
        for name in [DURABLE, "first reports"] {
            phases.add(named(name));
        }
        let seeded = rows(vec![], phases, None);
        assert_eq!(floor_of(&seeded, "first reports"), Some(DURABLE));
    }
}
