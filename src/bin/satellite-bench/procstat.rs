//! What a process has used, from /proc: CPU time and resident memory.

use super::sample::Cpu;
use std::time::Duration;

/// Linux reports /proc times in USER_HZ, which the kernel ABI fixes at 100 per second.
const TICKS_PER_SECOND: u64 = 100;

/// User and system CPU time `pid` has used so far (zero if it cannot be read).
pub fn cpu_split(pid: u32) -> Cpu {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
            Some((
                f.get(11)?.parse::<u64>().ok()?,
                f.get(12)?.parse::<u64>().ok()?,
            ))
        })
        .unwrap_or((0, 0));
    let d = |t: u64| Duration::from_millis(t * 1000 / TICKS_PER_SECOND);
    Cpu {
        user: d(ticks.0),
        system: d(ticks.1),
    }
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
    }
}
