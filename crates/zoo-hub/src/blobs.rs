//! Content-addressed blob storage.
//!
//! Blobs are named by their sha256. A write goes to a temporary file, is hashed while it
//! streams, fsynced, and renamed into place only when its hash and size match what was
//! announced: a blob is visible only after its hash is verified. A process killed mid-write
//! leaves a temporary file that the next start removes, never a partial blob.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha1::Sha1;
use sha2::{Digest, Sha256};

pub mod s3;
pub use s3::S3BlobStore;

/// Why a blob could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store I/O on {path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("content hashes to {actual}, not the announced {expected}")]
    HashMismatch { expected: String, actual: String },
    #[error("content is {actual} bytes, not the announced {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("content exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("`{0}` is not a sha256 hex digest")]
    BadOid(String),
    /// An object store's error (the message names the operation and the blob).
    #[error("{0}")]
    Store(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |error| BlobError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// What a stored blob is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub sha256: String,
    pub size: u64,
}

/// Where blobs live: [`FsBlobStore`] (the embedded default, also a folder replicas share) or
/// [`S3BlobStore`].
pub trait BlobStore: Send + Sync + 'static {
    /// Starts a write. Nothing is visible until [`BlobWriter::commit`] verifies it.
    fn writer(&self) -> Result<Box<dyn BlobWriter>, BlobError>;
    /// Starts a write whose hash is announced (an LFS or Xet upload): a store may then write
    /// straight to the blob's place, still visible only once the hash is verified.
    fn writer_for(&self, _expected_sha256: Option<&str>) -> Result<Box<dyn BlobWriter>, BlobError> {
        self.writer()
    }
    /// Size of a stored blob, or `None`.
    fn size(&self, sha256: &str) -> Result<Option<u64>, BlobError>;
    /// Reads `start..end` of a blob.
    fn read_range(
        &self,
        sha256: &str,
        start: u64,
        end: u64,
    ) -> Result<Box<dyn Read + Send>, BlobError>;
    /// A local path to the blob for memory-mapped scanning, if the store has one.
    fn local_path(&self, sha256: &str) -> Option<PathBuf>;
    /// A time-limited URL a client can download the blob from directly (an object store's
    /// presigned GET); `None` when the store has none.
    fn presigned_get(
        &self,
        _sha256: &str,
        _ttl: std::time::Duration,
    ) -> Result<Option<String>, BlobError> {
        Ok(None)
    }
    /// Every stored blob (garbage collection).
    fn list(&self) -> Result<Vec<StoredBlob>, BlobError>;
    /// Removes a blob (garbage collection); `false` when it was not there.
    fn delete(&self, sha256: &str) -> Result<bool, BlobError>;
}

/// A stored blob as [`BlobStore::list`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub sha256: String,
    pub size: u64,
    /// When it was stored (Unix milliseconds).
    pub modified_ms: i64,
}

/// A blob as a local file, for memory-mapped reading (scanning, counting parameters): the
/// store's own file, or a temporary copy read through the store (removed when dropped).
#[derive(Debug)]
pub enum LocalBlob {
    Stored(PathBuf),
    Copy(tempfile::NamedTempFile),
}

impl LocalBlob {
    pub fn path(&self) -> &Path {
        match self {
            LocalBlob::Stored(p) => p,
            LocalBlob::Copy(t) => t.path(),
        }
    }
}

/// A local file with a blob's bytes, whatever the store: scanning never depends on the store
/// having local paths.
pub fn local_copy(blobs: &dyn BlobStore, sha256: &str) -> Result<LocalBlob, BlobError> {
    if let Some(p) = blobs.local_path(sha256) {
        return Ok(LocalBlob::Stored(p));
    }
    let size = blobs
        .size(sha256)?
        .ok_or_else(|| BlobError::Store(format!("blob {sha256} is not in the store")))?;
    let tmp_dir = std::env::temp_dir();
    let mut tmp = tempfile::Builder::new()
        .prefix("zoo-blob-")
        .tempfile_in(&tmp_dir)
        .map_err(io_err(&tmp_dir))?;
    let mut r = blobs.read_range(sha256, 0, size)?;
    let copied = io::copy(&mut r, tmp.as_file_mut()).map_err(io_err(tmp.path()))?;
    if copied != size {
        return Err(BlobError::SizeMismatch {
            expected: size,
            actual: copied,
        });
    }
    Ok(LocalBlob::Copy(tmp))
}

/// A blob being written: hashed as it streams.
pub trait BlobWriter: Send {
    fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), BlobError>;
    /// Verifies the hash (and size, when given) and makes the blob visible.
    fn commit(
        self: Box<Self>,
        expected_sha256: Option<&str>,
        expected_size: Option<u64>,
    ) -> Result<BlobInfo, BlobError>;
}

/// Blobs as files under `ROOT/blobs/ab/cd/<sha256>`; each process's temporary files under
/// `ROOT/tmp/<id>/`, owned through a lock on `ROOT/tmp/<id>.lock` held while it runs. Several
/// processes (replicas) may share `ROOT`: one that starts removes only the temporary folders
/// whose owner is gone (its lock is free), never an upload another process is writing.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
    tmp: PathBuf,
    max_blob: u64,
    _owner: std::sync::Arc<File>,
}

pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

impl FsBlobStore {
    /// Opens (creating) a store and removes the temporary files of processes that are gone.
    pub fn open(root: &Path, max_blob: u64) -> Result<Self, BlobError> {
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        fs::create_dir_all(root.join("blobs")).map_err(io_err(root))?;
        for e in fs::read_dir(&tmp).map_err(io_err(&tmp))?.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(id) = name.strip_suffix(".lock") {
                let Ok(f) = fs::OpenOptions::new().write(true).open(&p) else {
                    continue;
                };
                // Free: its owner has exited (or was killed).
                if f.try_lock().is_ok() {
                    let _ = fs::remove_dir_all(tmp.join(id));
                    let _ = fs::remove_file(&p);
                }
            } else if name.starts_with("upload-") {
                // The layout before per-process folders.
                let _ = fs::remove_file(&p);
            }
        }
        let mut id = [0u8; 12];
        getrandom::fill(&mut id).expect("the OS random source");
        let id = hex::encode(id);
        let lock_path = tmp.join(format!("{id}.lock"));
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        lock.lock().map_err(io_err(&lock_path))?;
        let own = tmp.join(&id);
        fs::create_dir_all(&own).map_err(io_err(&own))?;
        Ok(FsBlobStore {
            root: root.to_path_buf(),
            tmp: own,
            max_blob,
            _owner: std::sync::Arc::new(lock),
        })
    }

    fn path(&self, sha256: &str) -> Result<PathBuf, BlobError> {
        if !is_sha256(sha256) {
            return Err(BlobError::BadOid(sha256.to_string()));
        }
        Ok(self
            .root
            .join("blobs")
            .join(&sha256[..2])
            .join(&sha256[2..4])
            .join(sha256))
    }
}

impl BlobStore for FsBlobStore {
    fn writer(&self) -> Result<Box<dyn BlobWriter>, BlobError> {
        let tmp = self.tmp.clone();
        let file = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(&tmp)
            .map_err(io_err(&tmp))?;
        Ok(Box::new(FsWriter {
            store: self.clone(),
            file: io::BufWriter::with_capacity(1 << 20, file),
            sha256: Sha256::new(),
            size: 0,
        }))
    }

    fn size(&self, sha256: &str) -> Result<Option<u64>, BlobError> {
        let path = self.path(sha256)?;
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BlobError::Io { path, error: e }),
        }
    }

    fn read_range(
        &self,
        sha256: &str,
        start: u64,
        end: u64,
    ) -> Result<Box<dyn Read + Send>, BlobError> {
        let path = self.path(sha256)?;
        let mut f = File::open(&path).map_err(io_err(&path))?;
        f.seek(SeekFrom::Start(start)).map_err(io_err(&path))?;
        Ok(Box::new(f.take(end.saturating_sub(start))))
    }

    fn local_path(&self, sha256: &str) -> Option<PathBuf> {
        self.path(sha256).ok()
    }

    fn list(&self) -> Result<Vec<StoredBlob>, BlobError> {
        let mut out = Vec::new();
        let root = self.root.join("blobs");
        for a in fs::read_dir(&root).map_err(io_err(&root))?.flatten() {
            let Ok(rd) = fs::read_dir(a.path()) else {
                continue;
            };
            for b in rd.flatten() {
                let Ok(rd) = fs::read_dir(b.path()) else {
                    continue;
                };
                for f in rd.flatten() {
                    let name = f.file_name().to_string_lossy().to_string();
                    if !is_sha256(&name) {
                        continue;
                    }
                    let Ok(m) = f.metadata() else { continue };
                    let modified_ms = m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_millis() as i64);
                    out.push(StoredBlob {
                        sha256: name,
                        size: m.len(),
                        modified_ms,
                    });
                }
            }
        }
        out.sort_by(|x, y| x.sha256.cmp(&y.sha256));
        Ok(out)
    }

    fn delete(&self, sha256: &str) -> Result<bool, BlobError> {
        let path = self.path(sha256)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(BlobError::Io { path, error: e }),
        }
    }
}

struct FsWriter {
    store: FsBlobStore,
    file: io::BufWriter<tempfile::NamedTempFile>,
    sha256: Sha256,
    size: u64,
}

impl BlobWriter for FsWriter {
    fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.size += chunk.len() as u64;
        if self.size > self.store.max_blob {
            return Err(BlobError::TooLarge {
                limit: self.store.max_blob,
            });
        }
        self.sha256.update(chunk);
        let path = self.file.get_ref().path().to_path_buf();
        self.file.write_all(chunk).map_err(io_err(&path))
    }

    fn commit(
        self: Box<Self>,
        expected_sha256: Option<&str>,
        expected_size: Option<u64>,
    ) -> Result<BlobInfo, BlobError> {
        let FsWriter {
            store,
            file,
            sha256,
            size,
        } = *self;
        let actual = hex::encode(sha256.finalize());
        if let Some(expected) = expected_size
            && expected != size
        {
            return Err(BlobError::SizeMismatch {
                expected,
                actual: size,
            });
        }
        if let Some(expected) = expected_sha256
            && expected != actual
        {
            return Err(BlobError::HashMismatch {
                expected: expected.to_string(),
                actual,
            });
        }
        let tmp_path = file.get_ref().path().to_path_buf();
        let tmp = file.into_inner().map_err(|e| BlobError::Io {
            path: tmp_path,
            error: e.into_error(),
        })?;
        tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
        let dest = store.path(&actual)?;
        let dir = dest.parent().unwrap().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        // Same content, same name: if another upload won the race the rename replaces
        // identical bytes, which is harmless.
        tmp.persist(&dest).map_err(|e| BlobError::Io {
            path: dest.clone(),
            error: e.error,
        })?;
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(BlobInfo {
            sha256: actual,
            size,
        })
    }
}

/// git's blob id of bytes.
pub fn git_blob_sha1(bytes: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex::encode(h.finalize())
}

/// The git-lfs pointer file for a blob, as the Hub stores it in git.
pub fn lfs_pointer(sha256: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}
