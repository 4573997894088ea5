//! Entry points shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*`, nightly) and the
//! stable replay of their corpora and the property tests (`cargo test --lib fuzzing`).
//! Each one takes arbitrary bytes and must return a typed answer, never panic, and stay
//! bounded in time and memory whatever it is given.

use crate::domain::DomainError;
use crate::sync::bundle::{self, BundleSink, BundleSource, Manifest};
use crate::sync::records::{self, parse, Line};
use crate::sync::SyncError;
use ed25519_dalek::VerifyingKey;

/// Hands every record to the typed parser its file name asks for, as an import would.
struct TypedRecords;

impl BundleSink for TypedRecords {
    /// Trusts the key the bundle carries, so fuzzed input reaches the records.
    fn trust(&mut self, _: &Manifest, signer: &VerifyingKey) -> Result<VerifyingKey, SyncError> {
        Ok(*signer)
    }

    fn record(&mut self, file: &str, line: Line<'_>) -> Result<(), SyncError> {
        record(file, line)
    }
}

fn record(file: &str, line: Line<'_>) -> Result<(), SyncError> {
    match file {
        "registration" => {
            let r: records::Registration = parse(file, line)?;
            if let Some(t) = r.registration_expires_at {
                records::parse_time("registration_expires_at", &t)?;
            }
        }
        "acks" => {
            parse::<records::Ack>(file, line)?;
        }
        "virtual_accounts" => {
            parse::<records::VirtualAccount>(file, line)?;
        }
        "licenses" => {
            parse::<records::License>(file, line)?;
        }
        "instances" => {
            let i: records::Instance = parse(file, line)?;
            records::parse_time("registered_at", &i.registered_at)?;
            records::parse_time("last_contact", &i.last_contact)?;
        }
        "usage" => {
            parse::<records::Usage>(file, line)?;
        }
        other => {
            return Err(SyncError::Rejected(format!(
                "unexpected data file data/{other}.jsonl"
            )))
        }
    }
    Ok(())
}

/// The bundle reader, both passes: verify (counting records) then read (parsing them).
pub fn bundle(data: &[u8]) -> Result<Manifest, SyncError> {
    let src = BundleSource::Memory(data.into());
    bundle::verify(&src, |_, signer| Ok(*signer))?;
    bundle::read(&src, &mut TypedRecords, |_| {})
}

/// `manifest.json` on its own.
pub fn manifest(data: &[u8]) -> Result<Manifest, SyncError> {
    serde_json::from_slice(data)
        .map_err(|e| SyncError::Rejected(format!("manifest.json is not a valid manifest: {e}")))
}

/// One `data/*.jsonl` file: the first line names the file kind, the rest are records.
pub fn records(data: &[u8]) -> Result<u64, SyncError> {
    let mut lines = data.split(|b| *b == b'\n');
    let kind = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let mut n = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        n += 1;
        record(
            kind.trim(),
            Line {
                number: n,
                bytes: line,
            },
        )?;
    }
    Ok(n)
}

/// A sync schedule, and its next runs when it parses.
pub fn cron(data: &[u8]) -> Result<usize, DomainError> {
    let text = std::str::from_utf8(data)
        .map_err(|_| DomainError::invalid("invalid_cron", "cron", "not UTF-8"))?;
    let schedule = crate::domain::schedule::parse(text)?;
    let after = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    Ok(crate::domain::schedule::next_runs(&schedule, after, 3).len())
}

/// The fuzz targets' bodies: the answer is dropped, only a panic or a hang is a finding.
pub fn fuzz_bundle(data: &[u8]) {
    let _ = bundle(data);
}

pub fn fuzz_manifest(data: &[u8]) {
    let _ = manifest(data);
}

pub fn fuzz_records(data: &[u8]) {
    let _ = records(data);
}

pub fn fuzz_cron(data: &[u8]) {
    let _ = cron(data);
}

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` call them.
pub const TARGETS: [(&str, Target); 4] = [
    ("bundle_reader", fuzz_bundle),
    ("manifest", fuzz_manifest),
    ("records", fuzz_records),
    ("cron", fuzz_cron),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::AuthorityKey;
    use crate::sync::bundle::{BundleWriter, Header};
    use proptest::prelude::*;
    use std::io::Read;

    fn key() -> AuthorityKey {
        AuthorityKey::from_signing_key(ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]))
    }

    /// A valid sync request with instances and usage.
    fn valid_bundle() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let mut w = BundleWriter::new().unwrap();
        let mut f = w.file("instances").unwrap();
        f.write(&serde_json::json!({
            "id": "i1", "virtual_account": "Lab",
            "udi": {"pid": "P", "sn": "S"}, "product": {"name": "n", "version": "1"},
            "registered_at": "2026-01-01T00:00:00Z", "last_contact": "2026-01-02T00:00:00Z",
            "status": "registered"
        }))
        .unwrap();
        w.close(f).unwrap();
        let mut f = w.file("usage").unwrap();
        f.write(&serde_json::json!({"instance_id": "i1", "tag": "ess", "count": 2}))
            .unwrap();
        w.close(f).unwrap();
        let out = dir.path().join("b.tar.gz");
        w.finish(
            Header {
                kind: crate::domain::sync::BundleKind::SyncRequest,
                in_reply_to: None,
                sequence: 3,
                to: Some("up".into()),
                account: "Acme".into(),
                created_at: 1_700_000_000,
            },
            &key(),
            &out,
        )
        .unwrap();
        std::fs::read(out).unwrap()
    }

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = vec![];
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    /// Regenerates the seed corpora: `cargo test --lib write_seed_corpus -- --ignored`.
    #[test]
    #[ignore]
    fn write_seed_corpus() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let put = |target: &str, name: &str, data: &[u8]| {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), data).unwrap();
        };
        let b = valid_bundle();
        put("bundle_reader", "valid.tar.gz", &b);
        put("bundle_reader", "cut-trailer.tar.gz", &b[..b.len() - 10]);
        put("bundle_reader", "tar-only.tar", &gunzip(&b));
        put("bundle_reader", "empty", b"");
        let tar = gunzip(&b);
        let mut archive = tar::Archive::new(&tar[..]);
        let mut first = archive.entries().unwrap().next().unwrap().unwrap();
        let mut m = vec![];
        first.read_to_end(&mut m).unwrap();
        put("manifest", "valid.json", &m);
        put("manifest", "half.json", &m[..m.len() / 2]);
        put("manifest", "empty-object.json", b"{}");
        put(
            "records",
            "usage.jsonl",
            b"usage\n{\"instance_id\":\"i1\",\"tag\":\"ess\",\"count\":2}\n",
        );
        put(
            "records",
            "instances.jsonl",
            br#"instances
{"id":"i1","virtual_account":"Lab","udi":{"pid":"P","sn":"S"},"product":{"name":"n","version":"1"},"registered_at":"2026-01-01T00:00:00Z","last_contact":"nope","status":"registered"}
"#,
        );
        put(
            "records",
            "licenses.jsonl",
            br#"licenses
{"virtual_account":"Lab","tag":"ess","name":"ess","type":"perpetual","quantity":5,"start":"2020-01-01","substitutes":["adv"]}
"#,
        );
        put(
            "records",
            "registration.jsonl",
            b"registration\n{\"token\":\"t\",\"registration_expires_at\":\"2027-01-01T00:00:00Z\"}\n",
        );
        put("cron", "daily.txt", b"0 0 2 * * *");
        put("cron", "every-two-seconds.txt", b"*/2 * * * * *");
        put("cron", "five-fields.txt", b"0 2 * * *");
        put("cron", "never.txt", b"0 0 0 31 2 *");
        put("cron", "big-step.txt", b"*/4294967296 * * * * *");
    }

    #[test]
    fn the_valid_bundle_reads_whole() {
        let m = bundle(&valid_bundle()).unwrap();
        assert_eq!(m.records(), 2);
    }

    /// Every committed corpus file through every entry point its target names: the
    /// stable replay of what the fuzzers found and were seeded with.
    #[test]
    fn replay_every_fuzz_corpus_file() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let mut replayed = 0;
        for (name, target) in TARGETS {
            let dir = root.join(name);
            let entries =
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            for entry in entries {
                let path = entry.unwrap().path();
                target(&std::fs::read(&path).unwrap());
                replayed += 1;
            }
        }
        assert!(replayed >= TARGETS.len(), "every target has a corpus");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_are_a_typed_error(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            prop_assert!(matches!(bundle(&data), Err(SyncError::Rejected(_))));
            let _ = manifest(&data);
            let _ = records(&data);
            let _ = cron(&data);
        }

        #[test]
        fn a_mutated_bundle_is_rejected_never_a_panic(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let original = valid_bundle();
            let mut b = original.clone();
            for (at, x) in &flips {
                // Past the 10-byte gzip header, whose mtime and OS bytes nothing checks.
                let i = 10 + at.index(b.len() - 10);
                b[i] ^= x | 1;
            }
            if truncate {
                b.truncate(cut.index(b.len()));
            }
            match bundle(&b) {
                Err(SyncError::Rejected(_)) => {}
                // Deflate ignores the padding bits after its last block, so a flip there
                // leaves the very same content: accepted only when that is so.
                Ok(_) => prop_assert_eq!(gunzip(&b), gunzip(&original)),
                Err(other) => prop_assert!(false, "not a rejection: {other}"),
            }
        }

        /// Mutations inside the tar (re-gzipped, so they reach the tar reader, the
        /// manifest, the signature and the records rather than stopping at the CRC).
        #[test]
        fn a_mutated_tar_is_rejected_never_a_panic(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let mut t = gunzip(&valid_bundle());
            for (at, x) in &flips {
                let i = at.index(t.len());
                t[i] ^= x | 1;
            }
            match bundle(&gzip(&t)) {
                // A flip in padding or an unused header field changes nothing signed.
                Ok(m) => prop_assert_eq!(m.records(), 2),
                Err(e) => prop_assert!(matches!(e, SyncError::Rejected(_)), "{}", e),
            }
        }

        #[test]
        fn manifests_from_json_values_are_typed(
            v in proptest::collection::btree_map("[a-z_]{1,12}", "[ -~]{0,20}", 0..12)
        ) {
            let data = serde_json::to_vec(&v).unwrap();
            prop_assert!(manifest(&data).is_err());
        }

        #[test]
        fn records_lines_are_typed(
            kind in prop::sample::select(vec!["usage", "instances", "licenses", "acks", "registration", "virtual_accounts", "other"]),
            lines in proptest::collection::vec("[ -~]{0,80}", 0..6),
        ) {
            let data = format!("{kind}\n{}", lines.join("\n"));
            let _ = records(data.as_bytes());
        }

        #[test]
        fn cron_text_is_typed(
            fields in proptest::collection::vec("[0-9*/,LW#?A-Za-z-]{1,6}", 0..8),
        ) {
            let _ = cron(fields.join(" ").as_bytes());
        }
    }
}
