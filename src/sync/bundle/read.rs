//! Reading a bundle, verification first and whole: the manifest and its signature are
//! checked before any record is handed on, each file's hash, size and record count when
//! it ends, and the gzip stream to its very end.

use super::{
    BundleSink, BundleSource, FileEntry, Manifest, Verified, FORMAT, LINE_MAX, MANIFEST_MAX,
    UNVERIFIED_MAX,
};
use crate::domain::sync::BundleKind;
use crate::sync::SyncError;
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read};

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

/// Checks everything after the last member: only zero padding inside the tar, then the
/// gzip stream's own end (read to it, so its CRC and length are checked, with nothing
/// after it: `Inflated` reports that as the stream's last read).
fn check_end(mut gz: impl Read) -> Result<(), SyncError> {
    let mut buf = [0u8; 8192];
    let mut padding = 0u64;
    loop {
        let n = gz
            .read(&mut buf)
            .map_err(|e| match e.to_string() == TRAILING {
                true => SyncError::Rejected(format!("the bundle has {TRAILING}")),
                false => corrupt(e),
            })?;
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
    Ok(())
}

/// Bytes inflated ahead of the reader, at most this many chunks of this size: the
/// reader's own budget then bounds what an unverified sender costs, give or take these.
const INFLATED_AHEAD: usize = 4;
const INFLATED_CHUNK: usize = 128 * 1024;

/// The inflating thread's last read when bytes follow the gzip stream.
const TRAILING: &str = "data after the end of its gzip stream";

/// The bundle's tar stream, inflated on a thread of its own while the caller reads
/// (hashing, parsing and writing what the previous chunks held): gunzip is a tenth of
/// an import and the machine has a second core. The thread stops when the reader is
/// dropped. An error, including data after the end of the gzip stream, is the last read.
struct Inflated {
    chunks: std::sync::mpsc::Receiver<Inflating>,
    chunk: Vec<u8>,
    at: usize,
    /// The stream's end as the thread said it: whole, or the error, returned again on
    /// every later read.
    ended: Option<Result<(), String>>,
}

/// What the inflating thread sends: a chunk, then the end (whole, or why not).
enum Inflating {
    Chunk(Vec<u8>),
    End(Result<(), String>),
}

impl Inflated {
    fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        compressed: Box<dyn Read + Send + 'scope>,
    ) -> Result<Inflated, SyncError> {
        let (tx, chunks) = std::sync::mpsc::sync_channel(INFLATED_AHEAD);
        std::thread::Builder::new()
            .name("bundle-inflate".into())
            .spawn_scoped(scope, move || {
                let end = inflate(compressed, |chunk| tx.send(Inflating::Chunk(chunk)).is_ok());
                if let Some(end) = end {
                    let _ = tx.send(Inflating::End(end));
                }
            })
            .map_err(|e| SyncError::Io(format!("cannot start a thread to read the bundle: {e}")))?;
        Ok(Inflated {
            chunks,
            chunk: Vec::new(),
            at: 0,
            ended: None,
        })
    }
}

/// Inflates `compressed` to its end, handing each chunk to `send` (false: the reader is
/// gone, stop). Returns how the stream ended, or None when the reader left first.
fn inflate(
    compressed: Box<dyn Read + Send + '_>,
    mut send: impl FnMut(Vec<u8>) -> bool,
) -> Option<Result<(), String>> {
    let mut gz = flate2::bufread::GzDecoder::new(BufReader::new(compressed));
    loop {
        let mut chunk = vec![0u8; INFLATED_CHUNK];
        match gz.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                chunk.truncate(n);
                if !send(chunk) {
                    return None;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Some(Err(e.to_string())),
        }
    }
    let mut rest = gz.into_inner();
    Some(match rest.fill_buf() {
        Ok([]) => Ok(()),
        Ok(_) => Err(TRAILING.to_string()),
        Err(e) => Err(e.to_string()),
    })
}

impl Read for Inflated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            if let Some(end) = &self.ended {
                return match end {
                    Ok(()) => Ok(0),
                    Err(e) => Err(std::io::Error::other(e.clone())),
                };
            }
            self.ended = match self.chunks.recv() {
                Ok(Inflating::Chunk(chunk)) => {
                    (self.chunk, self.at) = (chunk, 0);
                    None
                }
                Ok(Inflating::End(end)) => Some(end),
                // Gone without saying how the stream ended: never read as a whole one.
                Err(_) => Some(Err("the bundle reader stopped".into())),
            };
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
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
        fn record(&mut self, _: &str, _: crate::sync::records::Line<'_>) -> Result<(), SyncError> {
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
    let compressed = src.open()?;
    std::thread::scope(|scope| {
        let tar_stream = Inflated::start(scope, compressed)?;
        scan_tar(tar_stream, sink, progress)
    })
}

fn scan_tar(
    gz: Inflated,
    sink: &mut dyn BundleSink,
    progress: &mut dyn FnMut(u64),
) -> Result<Verified, SyncError> {
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
    budget.set(
        if manifest.bundle_kind() == Some(BundleKind::RegistrationRequest) {
            UNVERIFIED_MAX
        } else {
            u64::MAX
        },
    );
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
                let line = crate::sync::records::Line {
                    number: records,
                    bytes: &line,
                };
                sink.record(&file_key, line)?;
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
