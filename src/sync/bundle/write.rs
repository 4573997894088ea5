//! Writing a bundle: data files spooled to temporary files while hashing, then packed
//! behind the signed manifest that names their hashes.

use super::{FileEntry, Header, Manifest, Party, FORMAT};
use crate::crypto::AuthorityKey;
use crate::sync::SyncError;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

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
            name: super::data_member(name),
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
