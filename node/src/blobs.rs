//! Archives on disk, content-addressed: `blobs/sha256/AB/CDEF...` where `ABCDEF...` is the
//! archive's SHA-256. A blob is written to a temporary file in the same file system,
//! fsynced, then renamed into place (and its folder fsynced), so a crash leaves either no
//! blob or the whole blob, never part of one. Writing the same blob twice is harmless.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BlobError {
    #[error("blob store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{0}` is not a SHA-256 checksum (64 lowercase hex digits)")]
    BadChecksum(String),
    #[error("blob {cksum} is corrupt: its content hashes to {actual}")]
    Corrupt { cksum: String, actual: String },
}

/// The blob folder of a node.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_owned(),
        source,
    }
}

fn check_cksum(cksum: &str) -> Result<(), BlobError> {
    if cksum.len() == 64
        && cksum
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(BlobError::BadChecksum(cksum.to_owned()))
    }
}

impl BlobStore {
    /// The store rooted at `root` (`DATA/blobs`), created if missing.
    pub fn open(root: &Path) -> Result<BlobStore, BlobError> {
        fs::create_dir_all(root.join("sha256")).map_err(io(root))?;
        fs::create_dir_all(root.join("tmp")).map_err(io(root))?;
        Ok(BlobStore {
            root: root.to_owned(),
        })
    }

    /// Where the blob `cksum` lives (whether or not it exists).
    pub fn path(&self, cksum: &str) -> Result<PathBuf, BlobError> {
        check_cksum(cksum)?;
        Ok(self.root.join("sha256").join(&cksum[..2]).join(&cksum[2..]))
    }

    /// Stores `bytes` durably; returns their checksum.
    pub fn put(&self, bytes: &[u8]) -> Result<String, BlobError> {
        let cksum = hex::encode(Sha256::digest(bytes));
        let path = self.path(&cksum)?;
        if path.is_file() {
            return Ok(cksum);
        }
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let tmp_dir = self.root.join("tmp");
        let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io(&tmp_dir))?;
        tmp.write_all(bytes).map_err(io(&path))?;
        tmp.as_file().sync_all().map_err(io(&path))?;
        tmp.persist(&path).map_err(|e| BlobError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir))?;
        Ok(cksum)
    }

    /// Reads the blob `cksum`, checking that its content still hashes to it.
    pub fn get(&self, cksum: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let path = self.path(cksum)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != cksum {
            return Err(BlobError::Corrupt {
                cksum: cksum.to_owned(),
                actual,
            });
        }
        Ok(Some(bytes))
    }

    /// Every stored checksum (for fsck).
    pub fn list(&self) -> Result<Vec<String>, BlobError> {
        let mut out = Vec::new();
        let base = self.root.join("sha256");
        for dir in fs::read_dir(&base).map_err(io(&base))? {
            let dir = dir.map_err(io(&base))?;
            let prefix = dir.file_name().to_string_lossy().into_owned();
            for file in fs::read_dir(dir.path()).map_err(io(&base))? {
                let file = file.map_err(io(&base))?;
                out.push(format!("{prefix}{}", file.file_name().to_string_lossy()));
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let cksum = blobs.put(b"archive bytes").unwrap();
        assert_eq!(blobs.get(&cksum).unwrap().unwrap(), b"archive bytes");
        assert_eq!(blobs.put(b"archive bytes").unwrap(), cksum);
        assert_eq!(blobs.list().unwrap(), vec![cksum.clone()]);
        std::fs::write(blobs.path(&cksum).unwrap(), b"tampered").unwrap();
        assert!(matches!(blobs.get(&cksum), Err(BlobError::Corrupt { .. })));
        assert!(blobs.get(&"0".repeat(64)).unwrap().is_none());
        assert!(matches!(
            blobs.get("../../etc/passwd"),
            Err(BlobError::BadChecksum(_))
        ));
    }
}
