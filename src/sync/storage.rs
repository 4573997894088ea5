//! Bounded bundle storage. rejected/ keeps at most `rejected_max_files` bundles and
//! `rejected_max_bytes` bytes: the oldest bundles are dropped first, while their small
//! `.reason` files stay (up to `REASONS_PER_FILE` times the file cap) so an admin can still
//! read what happened. Bodies from unauthenticated peers never get here at all.

use std::path::Path;
use std::time::SystemTime;

/// The limits on what sync keeps and accepts, from the settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest body `POST /sync/v1/exchange` reads (held in memory until it verifies).
    pub exchange_body_max_bytes: u64,
    /// Most rejected bundles kept in rejected/.
    pub rejected_max_files: u64,
    /// Most bytes of rejected bundles kept in rejected/.
    pub rejected_max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            exchange_body_max_bytes: 32 << 20,
            rejected_max_files: 100,
            rejected_max_bytes: 256 << 20,
        }
    }
}

/// `.reason` files kept per allowed bundle file (reasons outlive their bundles).
const REASONS_PER_FILE: u64 = 10;

const REASON: &str = ".reason";

/// A file-name-safe rendering of text from a bundle (ids, kinds).
pub fn safe_name(s: &str) -> String {
    s.chars()
        .take(80)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

/// Marks a file as kept now (the caps drop by this time).
pub fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Writes `<name>.reason` in `dir`, then trims `dir` to the caps.
pub fn keep_rejected(dir: &Path, name: &str, reason: &str, limits: &Limits) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("{name}{REASON}")), reason)?;
    trim(dir, limits)
}

struct Kept {
    at: SystemTime,
    bytes: u64,
    path: std::path::PathBuf,
}

/// Drops the oldest bundles until both caps hold; notes in each one's reason file that
/// the bundle is gone. Old reason files beyond their own cap go too.
pub fn trim(dir: &Path, limits: &Limits) -> std::io::Result<()> {
    let mut bundles = vec![];
    let mut reasons = vec![];
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        let kept = Kept {
            at: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            bytes: meta.len(),
            path: entry.path(),
        };
        if entry.file_name().to_string_lossy().ends_with(REASON) {
            reasons.push(kept);
        } else {
            bundles.push(kept);
        }
    }
    let oldest_first = |a: &Kept, b: &Kept| a.at.cmp(&b.at).then_with(|| a.path.cmp(&b.path));
    bundles.sort_by(oldest_first);
    let mut count = bundles.len() as u64;
    let mut bytes: u64 = bundles.iter().map(|b| b.bytes).sum();
    for old in &bundles {
        if count <= limits.rejected_max_files && bytes <= limits.rejected_max_bytes {
            break;
        }
        std::fs::remove_file(&old.path)?;
        count -= 1;
        bytes = bytes.saturating_sub(old.bytes);
        let mut reason = old.path.clone().into_os_string();
        reason.push(REASON);
        if let Ok(mut f) = std::fs::File::options().append(true).open(&reason) {
            use std::io::Write;
            let _ = writeln!(
                f,
                "(the bundle itself was dropped to keep rejected/ within {} files and {} bytes)",
                limits.rejected_max_files, limits.rejected_max_bytes
            );
        }
    }
    reasons.sort_by(oldest_first);
    let max_reasons = limits.rejected_max_files.max(1) * REASONS_PER_FILE;
    let extra = (reasons.len() as u64).saturating_sub(max_reasons) as usize;
    for old in reasons.iter().take(extra) {
        std::fs::remove_file(&old.path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_bundles_go_first_and_their_reasons_stay() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            exchange_body_max_bytes: 0,
            rejected_max_files: 2,
            rejected_max_bytes: 25,
        };
        for (i, size) in [10usize, 10, 10].iter().enumerate() {
            let name = format!("b{i}.tar.gz");
            std::fs::write(dir.path().join(&name), vec![1u8; *size]).unwrap();
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64);
            std::fs::File::options()
                .append(true)
                .open(dir.path().join(&name))
                .unwrap()
                .set_modified(t)
                .unwrap();
            keep_rejected(dir.path(), &name, "bad\n", &limits).unwrap();
        }
        assert!(!dir.path().join("b0.tar.gz").exists());
        assert!(dir.path().join("b1.tar.gz").exists());
        assert!(dir.path().join("b2.tar.gz").exists());
        let why = std::fs::read_to_string(dir.path().join("b0.tar.gz.reason")).unwrap();
        assert!(why.starts_with("bad\n") && why.contains("dropped"), "{why}");
    }

    #[test]
    fn names_from_bundles_are_made_safe() {
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_name("a b/c"), "a_b_c");
    }
}
