//! `satellite-bench`: seeds a server with product instances through the registration code
//! path (real keys), drives signed HTTPS traffic at it, and reports each figure beside
//! floors measured in the same run on the same machine.

pub mod bundles;
pub mod floor;
pub mod load;
pub mod procstat;
pub mod report;
pub mod run;
pub mod seed;

use std::time::Duration;

/// Latencies of one phase, in microseconds, and its error count.
#[derive(Default, Clone)]
pub struct Sample {
    pub name: String,
    pub latencies_us: Vec<u32>,
    pub errors: u64,
    pub elapsed: Duration,
    /// CPU time the serving process used during the phase, when it could be read.
    pub server_cpu: Option<Duration>,
}

impl Sample {
    /// Adds another slice of the same phase.
    pub fn absorb(&mut self, slice: Sample) {
        self.latencies_us.extend(slice.latencies_us);
        self.errors += slice.errors;
        self.elapsed += slice.elapsed;
        self.server_cpu = match (self.server_cpu, slice.server_cpu) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }

    pub fn throughput(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Serving-process CPU per answered request, in microseconds.
    pub fn cpu_us_per_request(&self) -> Option<f64> {
        let n = self.latencies_us.len();
        self.server_cpu
            .filter(|_| n > 0)
            .map(|c| c.as_secs_f64() * 1e6 / n as f64)
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

    fn slice(latencies: &[u32], errors: u64, ms: u64, cpu_ms: Option<u64>) -> Sample {
        Sample {
            name: "reports".into(),
            latencies_us: latencies.to_vec(),
            errors,
            elapsed: Duration::from_millis(ms),
            server_cpu: cpu_ms.map(Duration::from_millis),
        }
    }

    #[test]
    fn slices_of_a_phase_add_up_to_one_sample() {
        let mut total = Sample::default();
        total.absorb(slice(&[1000, 3000], 1, 500, Some(40)));
        total.absorb(slice(&[2000, 4000], 0, 1500, Some(60)));
        assert_eq!(total.latencies_us.len(), 4);
        assert_eq!(total.errors, 1);
        assert_eq!(total.elapsed, Duration::from_secs(2));
        // 4 answered in 2 s, 100 ms of server CPU: 2 per second, 25 ms each.
        assert!((total.throughput() - 2.0).abs() < 1e-9);
        assert_eq!(total.cpu_us_per_request(), Some(25_000.0));
        assert_eq!(total.percentile_ms(1.0), 4.0);
        // A slice whose CPU could not be read leaves the others' in place.
        total.absorb(slice(&[], 0, 0, None));
        assert_eq!(total.server_cpu, Some(Duration::from_millis(100)));
    }
}
