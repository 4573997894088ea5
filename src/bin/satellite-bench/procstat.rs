//! What a process has used, from /proc: CPU time and resident memory.

use super::sample::Cpu;
use std::collections::BTreeMap;
use std::time::Duration;

/// Linux reports /proc times in USER_HZ, which the kernel ABI fixes at 100 per second.
const TICKS_PER_SECOND: u64 = 100;

/// The command name and user and system CPU time of one `stat` line (of a process or of
/// one of its threads).
fn parse_stat(line: &str) -> Option<(&str, Cpu)> {
    // The command name is in parentheses and may hold spaces.
    let name = &line[line.find('(')? + 1..line.rfind(')')?];
    let rest = &line[line.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |i: usize| -> Option<Duration> {
        let t = f.get(i)?.parse::<u64>().ok()?;
        Some(Duration::from_millis(t * 1000 / TICKS_PER_SECOND))
    };
    Some((
        name,
        Cpu {
            user: ticks(11)?,
            system: ticks(12)?,
        },
    ))
}

/// User and system CPU time `pid` has used so far (zero if it cannot be read).
pub fn cpu_split(pid: u32) -> Cpu {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat(&s).map(|(_, cpu)| cpu))
        .unwrap_or_default()
}

/// CPU time (user + system) `pid`'s live threads have used so far, added up by thread
/// name (the runtime's workers share one), so a phase's cost can be split by stage.
pub fn cpu_by_thread(pid: u32) -> BTreeMap<String, Duration> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let Ok(line) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if let Some((name, cpu)) = parse_stat(&line) {
            *by_name.entry(name.to_string()).or_default() += cpu.total();
        }
    }
    by_name
}

/// How much each thread name's CPU time grew from `before` to `after` (a name first seen
/// in `after` counts from zero; a thread that ended in between is left out).
pub fn thread_growth(
    before: &BTreeMap<String, Duration>,
    after: BTreeMap<String, Duration>,
) -> BTreeMap<String, Duration> {
    after
        .into_iter()
        .map(|(name, t)| {
            let was = before.get(&name).copied().unwrap_or_default();
            (name, t.saturating_sub(was))
        })
        .collect()
}

/// User plus system CPU time `pid` has used so far (zero if it cannot be read).
pub fn cpu_time(pid: u32) -> Duration {
    cpu_split(pid).total()
}

/// Waits until `pid` is idle (at most one clock tick of CPU in a quarter second), or 30 s:
/// the work a phase leaves behind (the checkpointer copying its WAL back) belongs to it,
/// not to the next phase.
pub async fn settle(pid: u32) {
    const WINDOW: Duration = Duration::from_millis(250);
    let tick = Duration::from_millis(1000 / TICKS_PER_SECOND);
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < give_up {
        let before = cpu_time(pid);
        tokio::time::sleep(WINDOW).await;
        if cpu_time(pid).saturating_sub(before) <= tick {
            return;
        }
    }
}

/// The whole machine's CPU time so far, in clock ticks, from the `cpu` line of
/// /proc/stat: how much of it was idle (waiting on I/O included) of how much in all.
pub fn machine_ticks() -> MachineTicks {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| parse_machine(s.lines().next()?))
        .unwrap_or_default()
}

/// Ticks of the whole machine (see `machine_ticks`).
#[derive(Default, Clone, Copy, PartialEq, Debug)]
pub struct MachineTicks {
    pub idle: u64,
    pub total: u64,
}

impl MachineTicks {
    pub fn since(self, before: MachineTicks) -> MachineTicks {
        MachineTicks {
            idle: self.idle.saturating_sub(before.idle),
            total: self.total.saturating_sub(before.total),
        }
    }

    pub fn add(self, other: MachineTicks) -> MachineTicks {
        MachineTicks {
            idle: self.idle + other.idle,
            total: self.total + other.total,
        }
    }
}

/// `cpu  user nice system idle iowait irq softirq steal ...`: idle and iowait are idle.
fn parse_machine(line: &str) -> Option<MachineTicks> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let ticks: Vec<u64> = fields.map(|f| f.parse().ok()).collect::<Option<_>>()?;
    Some(MachineTicks {
        idle: ticks.get(3)? + ticks.get(4)?,
        // guest time is already counted in user time.
        total: ticks.iter().take(8).sum(),
    })
}

/// Private (anonymous) resident memory: the memory-mapped database's file-backed pages
/// are the OS page cache, shared and reclaimable, and are not counted.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0.0, |kib| kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(60) {}
        assert!(cpu_time(me) > Duration::ZERO);
        assert!(cpu_split(me).user > Duration::ZERO);
        assert!(rss_mib(me) > 0.0);
        let threads = cpu_by_thread(me);
        assert!(threads.values().any(|t| *t > Duration::ZERO));
    }

    #[test]
    fn the_machine_line_counts_idle_and_iowait_as_idle() {
        let line = "cpu  100 5 30 800 20 1 4 2 7 0";
        let ticks = parse_machine(line).expect("parsed");
        assert_eq!(
            ticks,
            MachineTicks {
                idle: 820,
                total: 962
            }
        );
        let later = MachineTicks {
            idle: 900,
            total: 1162,
        };
        assert_eq!(
            later.since(ticks),
            MachineTicks {
                idle: 80,
                total: 200
            }
        );
        assert_eq!(parse_machine("cpu0 1 2 3 4 5"), None);
        assert!(machine_ticks().total > 0);
    }

    #[test]
    fn a_stat_line_gives_its_thread_name_and_times() {
        // Field 14 (utime) is 250 ticks, field 15 (stime) 50: 2.5 s and 0.5 s.
        let line = "42 (sqlite writer) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0";
        let (name, cpu) = parse_stat(line).expect("parsed");
        assert_eq!(name, "sqlite writer");
        assert_eq!(cpu.user, Duration::from_millis(2500));
        assert_eq!(cpu.system, Duration::from_millis(500));
        let before = BTreeMap::from([("w".to_string(), Duration::from_secs(2))]);
        let after = BTreeMap::from([
            ("w".to_string(), Duration::from_secs(5)),
            ("new".to_string(), Duration::from_secs(1)),
        ]);
        let grown = thread_growth(&before, after);
        assert_eq!(grown["w"], Duration::from_secs(3));
        assert_eq!(grown["new"], Duration::from_secs(1));
    }
}
