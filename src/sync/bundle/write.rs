//! Writing a bundle: each data file is serialized here and handed in chunks to a spool
//! thread, which hashes it and deflates it into a temporary file while the database is
//! still being read; packing puts the signed manifest that names the hashes first and
//! copies the compressed files behind it (deflate.rs).

use super::deflate::{self, Segment};
use super::{FileEntry, Header, Manifest, Party, FORMAT};
use crate::crypto::AuthorityKey;
use crate::sync::SyncError;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

/// Serialized bytes handed to the spool thread at a time, and chunks it may queue.
pub(super) const CHUNK: usize = 256 << 10;
const QUEUED: usize = 4;
const BLOCK: u64 = 512;

/// One data file as its spool thread left it.
struct Spooled {
    sha256: [u8; 32],
    /// Of the file's bytes and its tar padding, as one deflate segment.
    crc: crc32fast::Hasher,
}

/// One `data/NAME.jsonl` being written.
pub struct RecordFile {
    name: String,
    path: PathBuf,
    chunk: Vec<u8>,
    bytes: u64,
    records: u64,
    spool: Option<SpoolThread>,
}

/// Where chunks go, and the thread that spools them.
type SpoolThread = (SyncSender<Vec<u8>>, JoinHandle<Result<Spooled, SyncError>>);

impl RecordFile {
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<(), SyncError> {
        let before = self.chunk.len();
        if let Err(e) = serde_json::to_writer(&mut self.chunk, record) {
            // Not half a record in the file.
            self.chunk.truncate(before);
            return Err(SyncError::Io(e.to_string()));
        }
        self.chunk.push(b'\n');
        self.bytes += (self.chunk.len() - before) as u64;
        self.records += 1;
        if self.chunk.len() >= CHUNK {
            self.hand_on()?;
        }
        Ok(())
    }

    /// Sends the chunk to the spool thread; a thread that stopped says why.
    fn hand_on(&mut self) -> Result<(), SyncError> {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK + 4096));
        let sent = match &self.spool {
            Some((to, _)) => to.send(chunk).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self
                .join()
                .err()
                .unwrap_or_else(|| SyncError::Io("the spool stopped".into())))
        }
    }

    /// Ends the spool thread and takes what it made.
    fn join(&mut self) -> Result<Spooled, SyncError> {
        let (to, thread) = self
            .spool
            .take()
            .ok_or_else(|| SyncError::Io("the spool stopped".into()))?;
        drop(to);
        thread
            .join()
            .map_err(|_| SyncError::Io("the spool thread panicked".into()))?
    }
}

/// A file dropped unclosed (its export failed) stops its spool thread before the spool
/// dir goes.
impl Drop for RecordFile {
    fn drop(&mut self) {
        if self.spool.is_some() {
            let _ = self.join();
        }
    }
}

/// The spool thread: hashes the file's bytes and deflates them, with the zeros that pad
/// them to a tar block, into `path`.
fn spool(path: &Path, chunks: std::sync::mpsc::Receiver<Vec<u8>>) -> Result<Spooled, SyncError> {
    let io = SyncError::io("writing spooled bundle data");
    let mut out =
        BufWriter::new(File::create(path).map_err(SyncError::io("creating a spool file"))?);
    let mut sha = Sha256::new();
    let mut segment = Segment::default();
    let mut bytes = 0u64;
    for chunk in chunks {
        sha.update(&chunk);
        bytes += chunk.len() as u64;
        segment.write(&chunk, &mut out).map_err(&io)?;
    }
    segment.write(&padding(bytes), &mut out).map_err(&io)?;
    let crc = segment.end(&mut out).map_err(&io)?;
    out.flush().map_err(&io)?;
    Ok(Spooled {
        sha256: sha.finalize().into(),
        crc,
    })
}

/// The zeros after `size` bytes up to the next tar block.
fn padding(size: u64) -> Vec<u8> {
    vec![0; ((BLOCK - size % BLOCK) % BLOCK) as usize]
}

pub struct BundleWriter {
    spool: tempfile::TempDir,
    files: Vec<(FileEntry, PathBuf, crc32fast::Hasher)>,
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
        let (to, chunks) = sync_channel(QUEUED);
        let at = path.clone();
        let thread = std::thread::Builder::new()
            .name("bundle-spool".into())
            .spawn(move || spool(&at, chunks))
            .map_err(SyncError::io("starting a spool thread"))?;
        Ok(RecordFile {
            name: super::data_member(name),
            path,
            chunk: Vec::with_capacity(CHUNK + 4096),
            bytes: 0,
            records: 0,
            spool: Some((to, thread)),
        })
    }

    pub fn close(&mut self, mut file: RecordFile) -> Result<(), SyncError> {
        if !file.chunk.is_empty() {
            file.hand_on()?;
        }
        let spooled = file.join()?;
        self.files.push((
            FileEntry {
                name: std::mem::take(&mut file.name),
                sha256: hex::encode(spooled.sha256),
                bytes: file.bytes,
                records: file.records,
            },
            std::mem::take(&mut file.path),
            spooled.crc,
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
            kind: header.kind.as_str().into(),
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
            files: self.files.iter().map(|(f, ..)| f.clone()).collect(),
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
        let io = SyncError::io("writing the bundle");
        let mut gz = BufWriter::new(tmp.reopen().map_err(SyncError::io("opening the bundle"))?);
        gz.write_all(&deflate::GZIP_HEADER).map_err(&io)?;
        let mtime = header.created_at.max(0) as u64;
        let member = |name: &str, size: u64| -> Result<[u8; 512], SyncError> {
            let mut h = tar::Header::new_ustar();
            h.set_path(name)
                .map_err(SyncError::io("naming a bundle member"))?;
            h.set_size(size);
            h.set_mode(0o644);
            h.set_mtime(mtime);
            h.set_cksum();
            Ok(*h.as_bytes())
        };
        // The leading members, then each data file's header before its spooled segment.
        let mut head = Segment::default();
        let mut crc = crc32fast::Hasher::new();
        for (name, data) in [
            ("manifest.json", manifest_bytes.as_slice()),
            ("manifest.sig", signature.as_slice()),
            ("signer.pub.pem", signer_pem.as_bytes()),
        ] {
            head.write(&member(name, data.len() as u64)?, &mut gz)
                .map_err(&io)?;
            head.write(data, &mut gz).map_err(&io)?;
            head.write(&padding(data.len() as u64), &mut gz)
                .map_err(&io)?;
        }
        for (entry, path, file_crc) in &self.files {
            head.write(&member(&entry.name, entry.bytes)?, &mut gz)
                .map_err(&io)?;
            crc.combine(&head.end(&mut gz).map_err(&io)?);
            let mut spooled = File::open(path).map_err(SyncError::io("reading spooled data"))?;
            std::io::copy(&mut spooled, &mut gz).map_err(&io)?;
            crc.combine(file_crc);
            head = Segment::default();
        }
        // The tar's end: two zero blocks.
        head.write(&[0; 2 * BLOCK as usize], &mut gz).map_err(&io)?;
        crc.combine(&head.end_last(&mut gz).map_err(&io)?);
        gz.write_all(&deflate::gzip_trailer(crc)).map_err(&io)?;
        gz.flush().map_err(SyncError::io("finishing the bundle"))?;
        drop(gz);
        tmp.persist(out)
            .map_err(|e| SyncError::Io(format!("saving {}: {e}", out.display())))?;
        Ok(manifest)
    }
}
