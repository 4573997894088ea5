//! The bundle file (CONTRACT.md section 6): a gzip'd POSIX tar of `manifest.json`,
//! `manifest.sig`, `signer.pub.pem` and `data/*.jsonl`, in that order.
//!
//! Writing streams: data files are spooled to temporary files while hashing, then packed
//! behind the manifest that names their hashes. Reading streams too: the manifest and its
//! signature are checked before any record is handed on, and each file's hash, size and
//! record count are checked when it ends, so a caller that applies records inside a
//! transaction rolls everything back on any mismatch.
//!
//! write.rs packs a bundle, read.rs verifies and reads one; this file holds the format's
//! types and where a bundle's bytes are.

mod deflate;
mod read;
mod write;

pub use read::{read, verify};
pub use write::{BundleWriter, RecordFile};

use super::SyncError;
use crate::domain::sync::BundleKind;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "satellite-bundle/1";
const MANIFEST_MAX: u64 = 1 << 20;
const LINE_MAX: usize = 1 << 20;

/// Inflated bytes a reader may take before the signature verified: the three leading
/// members and their headers fit well within it. Without it a small gzip body from an
/// anonymous peer (say, a tar "long name" header claiming gigabytes of zeros, which the
/// tar reader collects in memory) could cost gigabytes of memory and CPU.
const UNVERIFIED_MAX: u64 = MANIFEST_MAX + (1 << 20);

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Party {
    pub authority_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// After a key rotation: the previous key's statement vouching for `public_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_rotation: Option<crate::crypto::rotation::Vouch>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
    pub records: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: String,
    pub kind: String,
    pub bundle_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    pub sequence: i64,
    pub from: Party,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Party>,
    pub account: String,
    pub created_at: String,
    pub files: Vec<FileEntry>,
}

impl Manifest {
    pub fn records(&self) -> u64 {
        self.files.iter().map(|f| f.records).sum()
    }

    /// The records the manifest counts in data file `file` (0 when it lists none).
    pub fn records_in(&self, file: &str) -> u64 {
        let member = data_member(file);
        (self.files.iter())
            .find(|f| f.name == member)
            .map_or(0, |f| f.records)
    }

    /// The kind it names, if it is one of the four (anything else is rejected as the
    /// wrong kind once the bundle verified, so the field stays text on the wire).
    pub fn bundle_kind(&self) -> Option<BundleKind> {
        self.kind.parse().ok()
    }
}

/// The archive member that holds data file `file`: `data/<file>.jsonl`.
pub fn data_member(file: &str) -> String {
    format!("data/{file}.jsonl")
}

/// What a new bundle says about itself; files are added by the writer.
pub struct Header {
    pub kind: BundleKind,
    pub in_reply_to: Option<String>,
    pub sequence: i64,
    pub to: Option<String>,
    pub account: String,
    pub created_at: i64,
}

/// Where a bundle's bytes are. A body from an unauthenticated peer stays in memory until
/// it verifies, so an anonymous sender never costs the server disk.
#[derive(Clone, Debug)]
pub enum BundleSource {
    File(PathBuf),
    Memory(std::sync::Arc<[u8]>),
}

impl BundleSource {
    fn open(&self) -> Result<Box<dyn Read + Send + '_>, SyncError> {
        Ok(match self {
            BundleSource::File(path) => Box::new(
                File::open(path)
                    .map_err(|e| SyncError::Io(format!("cannot open {}: {e}", path.display())))?,
            ),
            BundleSource::Memory(bytes) => Box::new(&bytes[..]),
        })
    }

    pub fn path(&self) -> Option<&Path> {
        match self {
            BundleSource::File(p) => Some(p),
            BundleSource::Memory(_) => None,
        }
    }

    /// The manifest only (to route and to describe a bundle), verifying nothing.
    pub fn peek(&self) -> Option<Manifest> {
        let reader = self.open().ok()?;
        let mut archive =
            tar::Archive::new(flate2::read::GzDecoder::new(reader).take(UNVERIFIED_MAX));
        let mut entry = archive.entries().ok()?.next()?.ok()?;
        let mut buf = Vec::new();
        (&mut entry).take(MANIFEST_MAX).read_to_end(&mut buf).ok()?;
        serde_json::from_slice(&buf).ok()
    }
}

/// What reading a bundle hands to whoever applies it.
pub trait BundleSink {
    /// Decides which key must have signed this manifest (the pinned one, or for a
    /// registration the one it introduces); an error rejects the bundle.
    fn trust(
        &mut self,
        manifest: &Manifest,
        signer: &VerifyingKey,
    ) -> Result<VerifyingKey, SyncError>;
    /// Each record of a data file, in order, as its line (parsed by the sink, which
    /// knows the record's type: `records::parse`).
    fn record(
        &mut self,
        file: &str,
        record: crate::sync::records::Line<'_>,
    ) -> Result<(), SyncError>;
    /// Whether records are handed on (a verifying pass only counts lines).
    fn wants_records(&self) -> bool {
        true
    }
}

/// A bundle that verified whole: its manifest, the exact bytes that were signed and the
/// key that signed them.
#[derive(Clone, Debug)]
pub struct Verified {
    pub manifest: Manifest,
    pub manifest_bytes: Vec<u8>,
    pub key: VerifyingKey,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::AuthorityKey;
    use sha2::Digest;

    fn key() -> AuthorityKey {
        AuthorityKey::from_signing_key(ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]))
    }

    /// A small valid bundle's bytes.
    pub(crate) fn sample() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let mut w = BundleWriter::new().unwrap();
        let mut f = w.file("usage").unwrap();
        f.write(&serde_json::json!({"instance_id": "i1", "tag": "ess", "count": 1}))
            .unwrap();
        w.close(f).unwrap();
        let out = dir.path().join("b.tar.gz");
        w.finish(sync_request(), &key(), &out).unwrap();
        std::fs::read(out).unwrap()
    }

    /// The header of a first sync request from account Acme.
    fn sync_request() -> Header {
        Header {
            kind: BundleKind::SyncRequest,
            in_reply_to: None,
            sequence: 1,
            to: None,
            account: "Acme".into(),
            created_at: 0,
        }
    }

    #[test]
    fn separately_compressed_files_read_back_as_one_plain_tar_gz() {
        // Files of several spool chunks, an empty one and one ending off a tar block:
        // a plain gzip and tar reader gets back exactly the bytes the writer was given.
        let mut w = BundleWriter::new().unwrap();
        let mut expected = vec![];
        for (name, n) in [("instances", 20_000), ("export_keys", 0), ("usage", 7)] {
            let mut f = w.file(name).unwrap();
            let mut text = String::new();
            for i in 0..n {
                let record =
                    serde_json::json!({"instance_id": format!("i{i}"), "pad": "x".repeat(i % 97)});
                f.write(&record).unwrap();
                text.push_str(&format!("{record}\n"));
            }
            w.close(f).unwrap();
            expected.push((data_member(name), text.into_bytes()));
        }
        assert!(expected[0].1.len() > 3 * super::write::CHUNK);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b.tar.gz");
        let manifest = w.finish(sync_request(), &key(), &out).unwrap();
        let mut gz = flate2::read::GzDecoder::new(File::open(&out).unwrap());
        let mut tarball = vec![];
        gz.read_to_end(&mut tarball).unwrap();
        let mut members = vec![];
        for entry in tar::Archive::new(tarball.as_slice()).entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = vec![];
            entry.read_to_end(&mut bytes).unwrap();
            members.push((name, bytes));
        }
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names[..3],
            ["manifest.json", "manifest.sig", "signer.pub.pem"]
        );
        assert_eq!(members[3..], expected[..]);
        for (entry, (_, bytes)) in manifest.files.iter().zip(&expected) {
            assert_eq!(entry.sha256, hex::encode(sha2::Sha256::digest(bytes)));
            assert_eq!(entry.bytes, bytes.len() as u64);
        }
        check(std::fs::read(out).unwrap()).unwrap();
    }

    fn check(bytes: Vec<u8>) -> Result<Verified, SyncError> {
        let k = key().verifying_key();
        verify(&BundleSource::Memory(bytes.into()), |_, _| Ok(k))
    }

    #[test]
    fn a_whole_bundle_verifies() {
        check(sample()).unwrap();
    }

    #[test]
    fn a_cut_gzip_trailer_is_refused() {
        let b = sample();
        for cut in [1, 4, 8, 10] {
            let err = check(b[..b.len() - cut].to_vec()).unwrap_err();
            assert!(matches!(err, SyncError::Rejected(_)), "cut {cut}: {err}");
        }
    }

    #[test]
    fn a_huge_header_before_the_signature_is_refused_early() {
        // A GNU long-name header claiming 64 MiB of name: the tar reader would gather it
        // all in memory; the budget stops it at a couple of MiB.
        let mut tar = vec![];
        let mut h = tar::Header::new_gnu();
        h.set_path("././@LongLink").unwrap();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(64 << 20);
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.resize(tar.len() + (64 << 20), b'a');
        let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let err = check(gz.finish().unwrap()).unwrap_err();
        assert!(err.to_string().contains("before the signature"), "{err}");
    }

    #[test]
    fn a_wrong_crc_and_trailing_bytes_are_refused() {
        let mut b = sample();
        let n = b.len();
        b[n - 6] ^= 0xff;
        assert!(matches!(check(b).unwrap_err(), SyncError::Rejected(_)));
        let mut b = sample();
        b.extend_from_slice(b"junk");
        assert!(matches!(check(b).unwrap_err(), SyncError::Rejected(_)));
    }
}
