//! The bundle file (CONTRACT.md section 6): a gzip'd POSIX tar of `manifest.json`,
//! `manifest.sig`, `signer.pub.pem` and `data/*.jsonl`, in that order.
//!
//! Writing streams: data files are spooled to temporary files while hashing, then packed
//! behind the manifest that names their hashes. Reading streams too: the manifest and its
//! signature are checked before any record is handed on, and each file's hash, size and
//! record count are checked when it ends, so a caller that applies records inside a
//! transaction rolls everything back on any mismatch.

use super::SyncError;
use crate::crypto::AuthorityKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "satellite-bundle/1";
const MANIFEST_MAX: u64 = 1 << 20;
const LINE_MAX: usize = 1 << 20;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Party {
    pub authority_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
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
}

/// What a new bundle says about itself; files are added by the writer.
pub struct Header {
    pub kind: &'static str,
    pub in_reply_to: Option<String>,
    pub sequence: i64,
    pub to: Option<String>,
    pub account: String,
    pub created_at: i64,
}

/// One `data/NAME.jsonl` being written.
pub struct RecordFile {
    name: String,
    path: PathBuf,
    out: BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
    records: u64,
}

impl RecordFile {
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<(), SyncError> {
        let mut line = serde_json::to_vec(record).map_err(|e| SyncError::Io(e.to_string()))?;
        line.push(b'\n');
        self.hasher.update(&line);
        self.bytes += line.len() as u64;
        self.records += 1;
        self.out
            .write_all(&line)
            .map_err(SyncError::io("writing bundle data"))
    }
}

pub struct BundleWriter {
    spool: tempfile::TempDir,
    files: Vec<(FileEntry, PathBuf)>,
}

impl BundleWriter {
    pub fn new() -> Result<Self, SyncError> {
        Ok(Self {
            spool: tempfile::tempdir().map_err(SyncError::io("creating a spool dir"))?,
            files: vec![],
        })
    }

    pub fn file(&self, name: &str) -> Result<RecordFile, SyncError> {
        let path = self.spool.path().join(name);
        let out = File::create(&path).map_err(SyncError::io("creating a spool file"))?;
        Ok(RecordFile {
            name: format!("data/{name}.jsonl"),
            path,
            out: BufWriter::new(out),
            hasher: Sha256::new(),
            bytes: 0,
            records: 0,
        })
    }

    pub fn close(&mut self, mut file: RecordFile) -> Result<(), SyncError> {
        file.out
            .flush()
            .map_err(SyncError::io("writing bundle data"))?;
        self.files.push((
            FileEntry {
                name: file.name,
                sha256: hex::encode(file.hasher.finalize()),
                bytes: file.bytes,
                records: file.records,
            },
            file.path,
        ));
        Ok(())
    }

    /// Signs the manifest and packs everything into `out` (written beside it, then
    /// renamed, so a reader never sees half a bundle).
    pub fn finish(
        self,
        header: Header,
        key: &AuthorityKey,
        out: &Path,
    ) -> Result<Manifest, SyncError> {
        let manifest = Manifest {
            format: FORMAT.into(),
            kind: header.kind.into(),
            bundle_id: uuid::Uuid::new_v4().to_string(),
            in_reply_to: header.in_reply_to,
            sequence: header.sequence,
            from: Party {
                authority_id: key.authority_id().to_string(),
                public_key: Some(key.public_key_b64()),
            },
            to: header.to.map(|authority_id| Party {
                authority_id,
                public_key: None,
            }),
            account: header.account,
            created_at: crate::clock::rfc3339(header.created_at),
            files: self.files.iter().map(|(f, _)| f.clone()).collect(),
        };
        let manifest_bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|e| SyncError::Io(e.to_string()))?;
        let signature = key.sign(&manifest_bytes);
        let signer_pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| SyncError::Io(e.to_string()))?;
        let dir = out.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(SyncError::io("creating the bundle dir"))?;
        let tmp =
            tempfile::NamedTempFile::new_in(dir).map_err(SyncError::io("creating the bundle"))?;
        let gz = flate2::write::GzEncoder::new(
            BufWriter::new(tmp.reopen().map_err(SyncError::io("opening the bundle"))?),
            flate2::Compression::fast(),
        );
        let mut tar = tar::Builder::new(gz);
        let mtime = header.created_at.max(0) as u64;
        let mut append = |name: &str, size: u64, data: &mut dyn Read| -> Result<(), SyncError> {
            let mut h = tar::Header::new_ustar();
            h.set_path(name)
                .map_err(SyncError::io("naming a bundle member"))?;
            h.set_size(size);
            h.set_mode(0o644);
            h.set_mtime(mtime);
            h.set_cksum();
            tar.append(&h, data)
                .map_err(SyncError::io("writing the bundle"))
        };
        append(
            "manifest.json",
            manifest_bytes.len() as u64,
            &mut manifest_bytes.as_slice(),
        )?;
        append("manifest.sig", 64, &mut signature.as_slice())?;
        append(
            "signer.pub.pem",
            signer_pem.len() as u64,
            &mut signer_pem.as_bytes(),
        )?;
        for (entry, path) in &self.files {
            let mut f = File::open(path).map_err(SyncError::io("reading spooled data"))?;
            append(&entry.name, entry.bytes, &mut f)?;
        }
        let gz = tar
            .into_inner()
            .map_err(SyncError::io("finishing the bundle"))?;
        let mut buf = gz.finish().map_err(SyncError::io("finishing the bundle"))?;
        buf.flush().map_err(SyncError::io("finishing the bundle"))?;
        drop(buf);
        tmp.persist(out)
            .map_err(|e| SyncError::Io(format!("saving {}: {e}", out.display())))?;
        Ok(manifest)
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
    fn record(&mut self, file: &str, record: serde_json::Value) -> Result<(), SyncError>;
}

fn corrupt(e: std::io::Error) -> SyncError {
    SyncError::Rejected(format!("the bundle is truncated or not a gzip'd tar ({e})"))
}

struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Reads, verifies and hands on every record; returns the manifest.
pub fn read(
    path: &Path,
    sink: &mut dyn BundleSink,
    mut progress: impl FnMut(u64),
) -> Result<Manifest, SyncError> {
    let file = File::open(path)
        .map_err(|e| SyncError::Io(format!("cannot open {}: {e}", path.display())))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    let mut entries = archive.entries().map_err(corrupt)?;
    let mut next = |expect: &str, max: u64| -> Result<Vec<u8>, SyncError> {
        let mut entry = entries
            .next()
            .ok_or_else(|| SyncError::Rejected(format!("the bundle has no {expect}")))?
            .map_err(corrupt)?;
        let name = entry
            .path()
            .map_err(corrupt)?
            .to_string_lossy()
            .into_owned();
        if name != expect {
            return Err(SyncError::Rejected(format!(
                "expected {expect} as the next member, found {name}"
            )));
        }
        if entry.size() > max {
            return Err(SyncError::Rejected(format!("{expect} is too large")));
        }
        let mut buf = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut buf).map_err(corrupt)?;
        Ok(buf)
    };
    let manifest_bytes = next("manifest.json", MANIFEST_MAX)?;
    let signature = next("manifest.sig", 64)?;
    let signer_pem = next("signer.pub.pem", 4096)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| SyncError::Rejected(format!("manifest.json is not a valid manifest: {e}")))?;
    if manifest.format != FORMAT {
        return Err(SyncError::Rejected(format!(
            "unknown bundle format {:?}",
            manifest.format
        )));
    }
    let signer = std::str::from_utf8(&signer_pem)
        .ok()
        .and_then(|pem| VerifyingKey::from_public_key_pem(pem).ok())
        .ok_or_else(|| SyncError::Rejected("signer.pub.pem is not an ed25519 public key".into()))?;
    let signature: [u8; 64] = signature
        .try_into()
        .map_err(|_| SyncError::Rejected("manifest.sig is not a 64-byte signature".into()))?;
    let key = sink.trust(&manifest, &signer)?;
    if key
        .verify_strict(
            &manifest_bytes,
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .is_err()
    {
        return Err(SyncError::Rejected(
            "the manifest signature does not verify with the trusted key (tampered, or signed by another key)".into(),
        ));
    }
    let mut seen: Vec<&str> = vec![];
    let mut done = 0u64;
    for entry in entries {
        let entry = entry.map_err(corrupt)?;
        let name = entry
            .path()
            .map_err(corrupt)?
            .to_string_lossy()
            .into_owned();
        let expected = manifest
            .files
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| SyncError::Rejected(format!("{name} is not listed in the manifest")))?;
        if seen.contains(&expected.name.as_str()) {
            return Err(SyncError::Rejected(format!("{name} appears twice")));
        }
        seen.push(&expected.name);
        let file_key = name
            .trim_start_matches("data/")
            .trim_end_matches(".jsonl")
            .to_string();
        let mut reader = BufReader::new(Hashing {
            inner: entry,
            hasher: Sha256::new(),
            bytes: 0,
        });
        let mut records = 0u64;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut reader)
                .take(LINE_MAX as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(corrupt)?;
            if n == 0 {
                break;
            }
            if n > LINE_MAX {
                return Err(SyncError::Rejected(format!("{name} has a line over 1 MiB")));
            }
            let value: serde_json::Value = serde_json::from_slice(&line).map_err(|e| {
                SyncError::Rejected(format!("{name} line {}: not JSON ({e})", records + 1))
            })?;
            records += 1;
            sink.record(&file_key, value)?;
            done += 1;
            if done.is_multiple_of(4096) {
                progress(done);
            }
        }
        let hashing = reader.into_inner();
        let sha = hex::encode(hashing.hasher.finalize());
        if sha != expected.sha256 || hashing.bytes != expected.bytes || records != expected.records
        {
            return Err(SyncError::Rejected(format!(
                "{name} does not match the manifest (sha256, size or record count): tampered or truncated"
            )));
        }
    }
    if let Some(missing) = manifest
        .files
        .iter()
        .find(|f| !seen.contains(&f.name.as_str()))
    {
        return Err(SyncError::Rejected(format!(
            "{} is missing: the bundle is truncated",
            missing.name
        )));
    }
    progress(done);
    Ok(manifest)
}
