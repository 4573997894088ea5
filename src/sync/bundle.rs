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
                key_rotation: key.rotation().cloned(),
            },
            to: header.to.map(|authority_id| Party {
                authority_id,
                public_key: None,
                key_rotation: None,
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

/// Where a bundle's bytes are. A body from an unauthenticated peer stays in memory until
/// it verifies, so an anonymous sender never costs the server disk.
#[derive(Clone, Debug)]
pub enum BundleSource {
    File(PathBuf),
    Memory(std::sync::Arc<[u8]>),
}

impl BundleSource {
    fn open(&self) -> Result<Box<dyn Read + '_>, SyncError> {
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
    /// Each record of a data file, in order.
    fn record(&mut self, file: &str, record: serde_json::Value) -> Result<(), SyncError>;
    /// Whether records are parsed and handed on (a verifying pass only counts lines).
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

fn corrupt(e: std::io::Error) -> SyncError {
    SyncError::Rejected(format!("the bundle is truncated or not a gzip'd tar ({e})"))
}

/// Tar padding after the end-of-archive blocks that is still accepted (tar writers pad to
/// a 10 KiB record); more is not a bundle, and a reader must not inflate it for ever.
const PADDING_MAX: u64 = 1 << 20;

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

/// Inflated bytes a reader may take before the signature verified: the three leading
/// members and their headers fit well within it. Without it a small gzip body from an
/// anonymous peer (say, a tar "long name" header claiming gigabytes of zeros, which the
/// tar reader collects in memory) could cost gigabytes of memory and CPU.
const UNVERIFIED_MAX: u64 = MANIFEST_MAX + (1 << 20);

/// Stops a read once its budget is spent; the budget is lifted once the signature has
/// verified (a pinned sender's bundle may be as large as its data).
struct Budget<R> {
    inner: R,
    left: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.left.get();
        if left == 0 {
            return Err(std::io::Error::other(
                "too much data before the signature verified",
            ));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left.set(left - n as u64);
        Ok(n)
    }
}

/// Checks everything after the last member: only zero padding inside the tar, the gzip
/// stream read to its end (so its CRC and length are checked), nothing after it.
fn check_end<R: BufRead>(mut gz: flate2::bufread::GzDecoder<R>) -> Result<(), SyncError> {
    let mut buf = [0u8; 8192];
    let mut padding = 0u64;
    loop {
        let n = gz.read(&mut buf).map_err(corrupt)?;
        if n == 0 {
            break;
        }
        padding += n as u64;
        if padding > PADDING_MAX || buf[..n].iter().any(|b| *b != 0) {
            return Err(SyncError::Rejected(
                "the bundle has data after its last member".into(),
            ));
        }
    }
    let mut rest = gz.into_inner();
    let trailing = rest.fill_buf().map_err(corrupt)?;
    if !trailing.is_empty() {
        return Err(SyncError::Rejected(
            "the bundle has data after the end of its gzip stream".into(),
        ));
    }
    Ok(())
}

/// Verifies a bundle whole without applying anything: the gzip stream to its end, the
/// signature against the key `trust` names, every member's hash, size and record count,
/// no member unlisted, no links or special files. Nothing may be decided about a bundle
/// (seen before, in order) until this passed.
pub fn verify(
    src: &BundleSource,
    trust: impl FnMut(&Manifest, &VerifyingKey) -> Result<VerifyingKey, SyncError>,
) -> Result<Verified, SyncError> {
    struct Check<F>(F);
    impl<F> BundleSink for Check<F>
    where
        F: FnMut(&Manifest, &VerifyingKey) -> Result<VerifyingKey, SyncError>,
    {
        fn trust(
            &mut self,
            m: &Manifest,
            signer: &VerifyingKey,
        ) -> Result<VerifyingKey, SyncError> {
            (self.0)(m, signer)
        }
        fn record(&mut self, _: &str, _: serde_json::Value) -> Result<(), SyncError> {
            Ok(())
        }
        fn wants_records(&self) -> bool {
            false
        }
    }
    scan(src, &mut Check(trust), &mut |_| {})
}

/// Reads, verifies and hands on every record; returns the manifest.
pub fn read(
    src: &BundleSource,
    sink: &mut dyn BundleSink,
    mut progress: impl FnMut(u64),
) -> Result<Manifest, SyncError> {
    scan(src, sink, &mut progress).map(|v| v.manifest)
}

fn member_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, SyncError> {
    if !entry.header().entry_type().is_file() {
        return Err(SyncError::Rejected(
            "the bundle holds a link or special file; only plain files are allowed".into(),
        ));
    }
    Ok(entry
        .path()
        .map_err(corrupt)?
        .to_string_lossy()
        .into_owned())
}

fn scan(
    src: &BundleSource,
    sink: &mut dyn BundleSink,
    progress: &mut dyn FnMut(u64),
) -> Result<Verified, SyncError> {
    let gz = flate2::bufread::GzDecoder::new(BufReader::new(src.open()?));
    let budget = std::rc::Rc::new(std::cell::Cell::new(UNVERIFIED_MAX));
    let mut archive = tar::Archive::new(Budget {
        inner: gz,
        left: budget.clone(),
    });
    let mut entries = archive.entries().map_err(corrupt)?;
    let mut next = |expect: &str, max: u64| -> Result<Vec<u8>, SyncError> {
        let mut entry = entries
            .next()
            .ok_or_else(|| SyncError::Rejected(format!("the bundle has no {expect}")))?
            .map_err(corrupt)?;
        let name = member_name(&entry)?;
        if name != expect {
            return Err(SyncError::Rejected(format!(
                "expected {expect} as the next member, found {name}"
            )));
        }
        if entry.size() > max {
            return Err(SyncError::Rejected(format!("{expect} is too large")));
        }
        let mut buf = Vec::with_capacity(entry.size() as usize);
        (&mut entry)
            .take(max)
            .read_to_end(&mut buf)
            .map_err(corrupt)?;
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
    // A registration request is signed by the key it introduces, so its signature proves
    // nothing about the sender yet: it holds one small record and gets no more room.
    // Any other kind verified against a pinned key and may be as large as its data.
    budget.set(if manifest.kind == "registration-request" {
        UNVERIFIED_MAX
    } else {
        u64::MAX
    });
    let parse = sink.wants_records();
    let listed: std::collections::HashMap<&str, &FileEntry> = manifest
        .files
        .iter()
        .map(|f| (f.name.as_str(), f))
        .collect();
    if listed.len() != manifest.files.len() || listed.keys().any(|n| !n.starts_with("data/")) {
        return Err(SyncError::Rejected(
            "the manifest lists a file twice, or one outside data/".into(),
        ));
    }
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut done = 0u64;
    for entry in entries {
        let entry = entry.map_err(corrupt)?;
        let name = member_name(&entry)?;
        let expected = *listed
            .get(name.as_str())
            .ok_or_else(|| SyncError::Rejected(format!("{name} is not listed in the manifest")))?;
        if !seen.insert(expected.name.as_str()) {
            return Err(SyncError::Rejected(format!("{name} appears twice")));
        }
        if entry.size() != expected.bytes {
            return Err(SyncError::Rejected(format!(
                "{name} does not match the manifest (size): tampered or truncated"
            )));
        }
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
            records += 1;
            if parse {
                let value: serde_json::Value = serde_json::from_slice(&line).map_err(|e| {
                    SyncError::Rejected(format!("{name} line {records}: not JSON ({e})"))
                })?;
                sink.record(&file_key, value)?;
            }
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
        .find(|f| !seen.contains(f.name.as_str()))
    {
        return Err(SyncError::Rejected(format!(
            "{} is missing: the bundle is truncated",
            missing.name
        )));
    }
    check_end(archive.into_inner().inner)?;
    progress(done);
    Ok(Verified {
        manifest,
        manifest_bytes,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        w.finish(
            Header {
                kind: "sync-request",
                in_reply_to: None,
                sequence: 1,
                to: None,
                account: "Acme".into(),
                created_at: 0,
            },
            &key(),
            &out,
        )
        .unwrap();
        std::fs::read(out).unwrap()
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
