//! `satellite_sqlite_*` on `/metrics`: the group-commit writer's page cache hits and
//! misses, pages written and commits (see `store::stats`), so a benchmark or an operator
//! can tell cache misses per request and pages written per commit from two scrapes.

use crate::store::stats::StatsSnapshot;
use prometheus::{IntCounter, IntGauge, Registry};

pub struct SqliteMetrics {
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    pages_written: IntCounter,
    commits: IntCounter,
    cache_used: IntGauge,
}

impl SqliteMetrics {
    pub fn register(registry: &Registry) -> Result<SqliteMetrics, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let cache_used = IntGauge::new(
            "satellite_sqlite_cache_used_bytes",
            "Heap memory the writer connection's page cache uses.",
        )?;
        registry.register(Box::new(cache_used.clone()))?;
        Ok(SqliteMetrics {
            cache_hits: counter(
                "satellite_sqlite_cache_hits_total",
                "Pages the writer connection found in its page cache.",
            )?,
            cache_misses: counter(
                "satellite_sqlite_cache_misses_total",
                "Pages the writer connection had to read (from the WAL, the file or the map).",
            )?,
            pages_written: counter(
                "satellite_sqlite_pages_written_total",
                "Pages the writer connection wrote to the WAL.",
            )?,
            commits: counter(
                "satellite_sqlite_commits_total",
                "Transactions the group-commit writer ended (one per batch).",
            )?,
            cache_used,
        })
    }

    /// Brings the counters up to the writer's totals (they only grow).
    pub fn update(&self, s: StatsSnapshot) {
        let to = |c: &IntCounter, total: u64| c.inc_by(total.saturating_sub(c.get()));
        to(&self.cache_hits, s.cache_hits);
        to(&self.cache_misses, s.cache_misses);
        to(&self.pages_written, s.pages_written);
        to(&self.commits, s.commits);
        self.cache_used
            .set(i64::try_from(s.cache_used_bytes).unwrap_or(i64::MAX));
    }
}
