//! The server's own SQLite counters, read from its `/metrics` (Prometheus text) before and
//! after each phase: every `satellite_sqlite_*` series the server exposes, whatever it
//! names them. A server without them gets "-" in the table, not an error.

use std::collections::BTreeMap;

pub const PREFIX: &str = "satellite_sqlite_";

/// Where to read the server's metrics: its URL and the bearer token it was given.
pub struct Scraper {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Scraper {
    pub fn new(url: &str, token: String) -> Scraper {
        Scraper {
            http: super::load::client(1),
            url: format!("{}/metrics", url.trim_end_matches('/')),
            token,
        }
    }

    /// The `satellite_sqlite_*` series now; `None` when /metrics cannot be read or holds none.
    pub async fn sqlite(&self) -> Option<BTreeMap<String, f64>> {
        let res = self
            .http
            .get(&self.url)
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        if !res.status().is_success() {
            return None;
        }
        let series = parse(&res.text().await.ok()?);
        (!series.is_empty()).then_some(series)
    }
}

/// The `satellite_sqlite_*` series of a Prometheus text page, by name with labels.
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with(PREFIX))
        .filter_map(|l| {
            // `name{labels} value [timestamp]`: labels may hold spaces only inside quotes,
            // and the bench's series keys are what comes before the value.
            let split = match l.rfind('}') {
                Some(close) => close + 1,
                None => l.find(' ')?,
            };
            let (series, rest) = l.split_at(split);
            let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
            Some((series.trim().to_string(), value))
        })
        .collect()
}

/// How much each series grew from `before` to `after` (a series new in `after` counts
/// from zero).
pub fn growth(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_the_sqlite_series_and_their_growth() {
        let page = "# HELP satellite_sqlite_cache_hits_total Page cache hits.\n\
                    # TYPE satellite_sqlite_cache_hits_total counter\n\
                    satellite_sqlite_cache_hits_total{connection=\"writer\"} 120\n\
                    satellite_sqlite_wal_frames_total 7 1700000000\n\
                    satellite_usage_reports_total 99\n";
        let before = parse(page);
        assert_eq!(before.len(), 2);
        assert_eq!(
            before.get("satellite_sqlite_cache_hits_total{connection=\"writer\"}"),
            Some(&120.0)
        );
        let after = parse(&page.replace(" 120", " 150").replace(" 7 ", " 9 "));
        let g = growth(&before, &after);
        assert_eq!(g.get("satellite_sqlite_wal_frames_total"), Some(&2.0));
        assert_eq!(
            g.get("satellite_sqlite_cache_hits_total{connection=\"writer\"}"),
            Some(&30.0)
        );
        assert!(parse("satellite_http_requests_total 5\n").is_empty());
    }
}
