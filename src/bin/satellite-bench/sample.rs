//! What one phase measured: latencies, errors, time, and where the CPU went (the serving
//! process's user and system time, the load generator's own), plus the server's SQLite
//! counters over the phase when it exposes them.

use super::procstat::MachineTicks;
use std::collections::BTreeMap;
use std::time::Duration;

/// Latencies of one phase, in microseconds, and its error count.
#[derive(Default, Clone)]
pub struct Sample {
    pub name: String,
    pub latencies_us: Vec<u32>,
    pub errors: u64,
    pub elapsed: Duration,
    /// User and system CPU time the serving process used during the phase, when read.
    pub server_cpu: Option<Cpu>,
    /// The serving process's CPU time during the phase by thread name, when read.
    pub server_threads: Option<BTreeMap<String, Duration>>,
    /// CPU time the load generator (this process) used during the phase.
    pub client_cpu: Option<Duration>,
    /// The whole machine's idle and total CPU ticks while the load ran (not while the
    /// server settled after it): what neither the server nor the load generator used.
    pub machine: Option<MachineTicks>,
    /// Growth of each `satellite_sqlite_*` series of the server's /metrics over the phase;
    /// `None` when the server exposes none (or is the floor, which has no metrics).
    pub sqlite: Option<BTreeMap<String, f64>>,
}

/// User and system CPU time.
#[derive(Default, Clone, Copy, PartialEq, Debug)]
pub struct Cpu {
    pub user: Duration,
    pub system: Duration,
}

impl Cpu {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    pub fn since(&self, before: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(before.user),
            system: self.system.saturating_sub(before.system),
        }
    }

    fn add(self, other: Cpu) -> Cpu {
        Cpu {
            user: self.user + other.user,
            system: self.system + other.system,
        }
    }
}

fn add_opt<T: Copy>(a: Option<T>, b: Option<T>, add: fn(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(add(a, b)),
        (a, b) => a.or(b),
    }
}

/// Adds `more`'s named values into `mine`, series by series (a series either lacks
/// counts from zero).
fn add_series<V: Default + std::ops::AddAssign>(
    mine: &mut Option<BTreeMap<String, V>>,
    more: Option<BTreeMap<String, V>>,
) {
    if let Some(more) = more {
        let mine = mine.get_or_insert_with(BTreeMap::new);
        for (k, v) in more {
            *mine.entry(k).or_default() += v;
        }
    }
}

impl Sample {
    pub fn named(name: &str) -> Sample {
        Sample {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// Adds another slice of the same phase.
    pub fn absorb(&mut self, slice: Sample) {
        self.latencies_us.extend(slice.latencies_us);
        self.errors += slice.errors;
        self.elapsed += slice.elapsed;
        self.server_cpu = add_opt(self.server_cpu, slice.server_cpu, Cpu::add);
        self.client_cpu = add_opt(self.client_cpu, slice.client_cpu, |a, b| a + b);
        self.machine = add_opt(self.machine, slice.machine, MachineTicks::add);
        add_series(&mut self.server_threads, slice.server_threads);
        add_series(&mut self.sqlite, slice.sqlite);
    }

    pub fn throughput(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn per_request(&self, d: Option<Duration>) -> Option<f64> {
        let n = self.latencies_us.len();
        d.filter(|_| n > 0)
            .map(|c| c.as_secs_f64() * 1e6 / n as f64)
    }

    /// Serving-process CPU (user + system) per answered request, in microseconds.
    pub fn cpu_us_per_request(&self) -> Option<f64> {
        self.per_request(self.server_cpu.map(|c| c.total()))
    }

    pub fn user_us_per_request(&self) -> Option<f64> {
        self.per_request(self.server_cpu.map(|c| c.user))
    }

    pub fn system_us_per_request(&self) -> Option<f64> {
        self.per_request(self.server_cpu.map(|c| c.system))
    }

    /// Serving-process CPU per answered request by thread name, in microseconds.
    pub fn thread_us_per_request(&self) -> Option<BTreeMap<String, f64>> {
        let threads = self.server_threads.as_ref()?;
        Some(
            threads
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), self.per_request(Some(*v))?)))
                .collect(),
        )
    }

    /// Load-generator CPU per answered request, in microseconds.
    pub fn client_us_per_request(&self) -> Option<f64> {
        self.per_request(self.client_cpu)
    }

    /// Share of the machine's CPU left idle while the load ran, in percent.
    pub fn machine_idle_percent(&self) -> Option<f64> {
        self.machine
            .filter(|m| m.total > 0)
            .map(|m| 100.0 * m.idle as f64 / m.total as f64)
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i.min(v.len() - 1)] as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn slice(latencies: &[u32], errors: u64, elapsed: u64, cpu: Option<(u64, u64)>) -> Sample {
        Sample {
            name: "reports".into(),
            latencies_us: latencies.to_vec(),
            errors,
            elapsed: ms(elapsed),
            server_cpu: cpu.map(|(u, s)| Cpu {
                user: ms(u),
                system: ms(s),
            }),
            server_threads: cpu.map(|(u, s)| {
                BTreeMap::from([("worker".to_string(), ms(u)), ("writer".to_string(), ms(s))])
            }),
            client_cpu: cpu.map(|(u, _)| ms(u)),
            machine: cpu.map(|(u, s)| MachineTicks {
                idle: s,
                total: u + s,
            }),
            sqlite: cpu.map(|(u, _)| BTreeMap::from([("pages".to_string(), u as f64)])),
        }
    }

    #[test]
    fn slices_of_a_phase_add_up_to_one_sample() {
        let mut total = Sample::default();
        total.absorb(slice(&[1000, 3000], 1, 500, Some((30, 10))));
        total.absorb(slice(&[2000, 4000], 0, 1500, Some((40, 20))));
        assert_eq!(total.latencies_us.len(), 4);
        assert_eq!(total.errors, 1);
        assert_eq!(total.elapsed, Duration::from_secs(2));
        // 4 answered in 2 s, 100 ms of server CPU (70 user, 30 system): 25 ms each.
        assert!((total.throughput() - 2.0).abs() < 1e-9);
        assert_eq!(total.cpu_us_per_request(), Some(25_000.0));
        assert_eq!(total.user_us_per_request(), Some(17_500.0));
        assert_eq!(total.system_us_per_request(), Some(7_500.0));
        assert_eq!(total.client_us_per_request(), Some(17_500.0));
        let threads = total.thread_us_per_request().expect("threads read");
        assert_eq!(threads["worker"], 17_500.0);
        assert_eq!(threads["writer"], 7_500.0);
        assert_eq!(
            total.sqlite.as_ref().and_then(|m| m.get("pages")),
            Some(&70.0)
        );
        assert_eq!(total.percentile_ms(1.0), 4.0);
        // Idle 10 + 20 of 40 + 60 ticks.
        assert_eq!(total.machine_idle_percent(), Some(30.0));
        // A slice whose CPU could not be read leaves the others' in place.
        total.absorb(slice(&[], 0, 0, None));
        assert_eq!(total.server_cpu.map(|c| c.total()), Some(ms(100)));
        assert!(total.sqlite.is_some());
    }
}
