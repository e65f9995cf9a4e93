//! Backups: `zoo admin backup DIR` copies a consistent snapshot of a hub — its metadata as
//! one snapshot of every table ([`crate::meta::dump`]) and every blob that snapshot names —
//! into a folder; `zoo admin restore DIR` loads one into a fresh hub, of either store pair
//! (SQLite + files, PostgreSQL + S3, or one of each: a backup is also how a single-machine hub
//! moves to replicas).
//!
//! The folder:
//! - `blobs/ab/cd/<sha256>`: each blob, written whole (temporary file, hash checked, fsync,
//!   rename) — a later backup into the same folder copies only the blobs it lacks and drops
//!   the ones nothing names any more;
//! - `metadata-<time>.json`: the tables;
//! - `manifest.json`, written last, names the metadata file and its sha256. A backup cut
//!   short leaves the previous manifest, and the files it names, as they were.
//!
//! Safe while the hub runs: the metadata is read in one transaction first, then the blobs
//! it names are copied (blobs never change; one deleted meanwhile by `zoo admin gc` — its
//! repository deleted after the snapshot and the grace period over — fails the backup,
//! which can be run again). Restoring verifies every blob's sha256 on its way into the store
//! and loads the metadata only after all of them are in, in one transaction, into a store
//! with no user and no repository.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::blobs::{BlobError, BlobStore, is_sha256};
use crate::meta::dump::Dump;
use crate::meta::{MetaError, MetaStore, now_ms};

const FORMAT: &str = "zoo-backup";
const VERSION: u32 = 1;
const MANIFEST: &str = "manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("metadata: {0}")]
    Meta(#[from] MetaError),
    #[error("blob store: {0}")]
    Blobs(#[from] BlobError),
    #[error("{path}: {reason}")]
    Bad { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |error| BackupError::Io {
        path: path.to_path_buf(),
        error,
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    created_at: i64,
    zoo: String,
    metadata: String,
    metadata_sha256: String,
    blobs: usize,
    bytes: u64,
}

/// [`backup`] or [`restore`]: the same shape, for callers that pick one.
pub type Copy = fn(
    &dyn MetaStore,
    &dyn BlobStore,
    &Path,
    &indicatif::ProgressBar,
) -> Result<Summary, BackupError>;

/// What a backup or a restore did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub users: usize,
    pub repos: usize,
    pub commits: usize,
    /// Blobs the metadata names, and their bytes.
    pub blobs: usize,
    pub bytes: u64,
    /// Blobs copied this time, and those already there.
    pub copied: usize,
    pub reused: usize,
    /// Blobs of an earlier backup that nothing names any more, removed.
    pub pruned: usize,
}

fn summary(dump: &Dump) -> Summary {
    Summary {
        users: dump.count("users"),
        repos: dump.count("repos"),
        commits: dump.count("commits"),
        ..Summary::default()
    }
}

fn blob_path(dir: &Path, sha: &str) -> PathBuf {
    dir.join("blobs").join(&sha[..2]).join(&sha[2..4]).join(sha)
}

/// Writes `bytes` to `path` whole: a temporary file beside it, fsynced, renamed, and the
/// folder fsynced.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| BackupError::Io {
        path: path.to_path_buf(),
        error: e.error,
    })?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Copies a consistent snapshot of the hub into `dir` (created, or an earlier backup to bring
/// up to date). `bar` counts bytes.
pub fn backup(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    dir: &Path,
    bar: &indicatif::ProgressBar,
) -> Result<Summary, BackupError> {
    std::fs::create_dir_all(dir.join("blobs")).map_err(io(dir))?;
    #[cfg(unix)]
    {
        // Token hashes and private repositories are inside.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    let created_at = now_ms();
    let dump = meta.dump()?;
    let mut out = summary(&dump);
    let needed = dump.blobs();
    let mut sizes = Vec::with_capacity(needed.len());
    for sha in &needed {
        if !is_sha256(sha) {
            return Err(BackupError::Bad {
                path: dir.into(),
                reason: format!("the metadata names a blob `{sha}` that is not a sha256"),
            });
        }
        let size = blobs.size(sha)?.ok_or_else(|| BackupError::Bad {
            path: dir.into(),
            reason: format!("blob {sha} is named by the metadata but missing from the blob store (deleted by `zoo admin gc` since the snapshot? run the backup again)"),
        })?;
        sizes.push((sha.clone(), size));
    }
    out.blobs = sizes.len();
    out.bytes = sizes.iter().map(|(_, s)| s).sum();
    bar.set_length(out.bytes);
    for (sha, size) in &sizes {
        let path = blob_path(dir, sha);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == *size) {
            out.reused += 1;
            bar.inc(*size);
            continue;
        }
        copy_out(blobs, sha, *size, &path, bar)?;
        out.copied += 1;
    }
    let text = serde_json::to_vec(&dump).map_err(|e| BackupError::Bad {
        path: dir.into(),
        reason: e.to_string(),
    })?;
    let name = format!("metadata-{created_at}.json");
    write_whole(&dir.join(&name), &text)?;
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        created_at,
        zoo: env!("CARGO_PKG_VERSION").into(),
        metadata: name.clone(),
        metadata_sha256: hex::encode(Sha256::digest(&text)),
        blobs: out.blobs,
        bytes: out.bytes,
    };
    let manifest = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    write_whole(&dir.join(MANIFEST), &manifest)?;
    // Only now: what the previous manifest named and this one does not.
    for e in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("metadata-") && n.ends_with(".json") && n != name {
            std::fs::remove_file(e.path()).map_err(io(&e.path()))?;
        }
    }
    out.pruned = prune(dir, &needed)?;
    Ok(out)
}

/// One blob out of the store into the backup, its hash checked on the way.
fn copy_out(
    blobs: &dyn BlobStore,
    sha: &str,
    size: u64,
    path: &Path,
    bar: &indicatif::ProgressBar,
) -> Result<(), BackupError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).map_err(io(folder))?;
    let mut tmp = tempfile::NamedTempFile::new_in(folder).map_err(io(folder))?;
    let mut reader = blobs.read_range(sha, 0, size)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut copied = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n]).map_err(io(path))?;
        copied += n as u64;
        bar.inc(n as u64);
    }
    let actual = hex::encode(hasher.finalize());
    if actual != sha || copied != size {
        return Err(BackupError::Bad {
            path: path.into(),
            reason: format!(
                "the store's blob {sha} reads back as {copied} bytes hashing to {actual}: the store is damaged; not backed up"
            ),
        });
    }
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| BackupError::Io {
        path: path.into(),
        error: e.error,
    })?;
    Ok(())
}

/// Removes the backup's blobs that `keep` does not name; returns how many.
fn prune(dir: &Path, keep: &std::collections::BTreeSet<String>) -> Result<usize, BackupError> {
    let mut pruned = 0;
    let root = dir.join("blobs");
    for a in std::fs::read_dir(&root).map_err(io(&root))?.flatten() {
        for b in std::fs::read_dir(a.path()).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(b.path()).into_iter().flatten().flatten() {
                let n = f.file_name().to_string_lossy().into_owned();
                if !keep.contains(&n) {
                    std::fs::remove_file(f.path()).map_err(io(&f.path()))?;
                    pruned += 1;
                }
            }
        }
    }
    Ok(pruned)
}

/// The backup in `dir`, checked: its manifest, and metadata matching the manifest's hash.
fn read_backup(dir: &Path) -> Result<Dump, BackupError> {
    let bad = |path: &Path, reason: String| BackupError::Bad {
        path: path.into(),
        reason,
    };
    let mpath = dir.join(MANIFEST);
    let text = std::fs::read(&mpath).map_err(io(&mpath))?;
    let m: Manifest = serde_json::from_slice(&text)
        .map_err(|e| bad(&mpath, format!("not a zoo backup manifest: {e}")))?;
    if m.format != FORMAT || m.version != VERSION {
        return Err(bad(
            &mpath,
            format!(
                "format {} version {}: this zoo reads {FORMAT} version {VERSION}",
                m.format, m.version
            ),
        ));
    }
    if m.metadata.contains(['/', '\\']) || !m.metadata.starts_with("metadata-") {
        return Err(bad(&mpath, format!("bad metadata name `{}`", m.metadata)));
    }
    let path = dir.join(&m.metadata);
    let text = std::fs::read(&path).map_err(io(&path))?;
    let actual = hex::encode(Sha256::digest(&text));
    if actual != m.metadata_sha256 {
        return Err(bad(
            &path,
            format!(
                "hashes to {actual}, the manifest says {}: the backup is damaged",
                m.metadata_sha256
            ),
        ));
    }
    let dump: Dump =
        serde_json::from_slice(&text).map_err(|e| bad(&path, format!("not metadata: {e}")))?;
    dump.check().map_err(|reason| bad(&path, reason))?;
    Ok(dump)
}

/// Loads the backup in `dir` into a fresh hub's stores: every blob (hash-verified by the
/// store on its way in), then the metadata in one transaction.
pub fn restore(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    dir: &Path,
    bar: &indicatif::ProgressBar,
) -> Result<Summary, BackupError> {
    let dump = read_backup(dir)?;
    // Loading nothing runs the store's check that it is empty, before any blob is copied.
    meta.load(&Dump::default())?;
    let mut out = summary(&dump);
    let needed = dump.blobs();
    let mut files = Vec::with_capacity(needed.len());
    for sha in &needed {
        if !is_sha256(sha) {
            return Err(BackupError::Bad {
                path: dir.into(),
                reason: format!("the metadata names a blob `{sha}` that is not a sha256"),
            });
        }
        let path = blob_path(dir, sha);
        let size = std::fs::metadata(&path)
            .map_err(|e| BackupError::Bad {
                path: path.clone(),
                reason: format!("named by the metadata but not in the backup: {e}"),
            })?
            .len();
        files.push((sha.clone(), path, size));
    }
    out.blobs = files.len();
    out.bytes = files.iter().map(|(_, _, s)| s).sum();
    bar.set_length(out.bytes);
    for (sha, path, size) in &files {
        if blobs.size(sha)? == Some(*size) {
            out.reused += 1;
            bar.inc(*size);
            continue;
        }
        let mut f = std::fs::File::open(path).map_err(io(path))?;
        let mut w = blobs.writer_for(Some(sha))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(io(path))?;
            if n == 0 {
                break;
            }
            w.write_chunk(&buf[..n])?;
            bar.inc(n as u64);
        }
        w.commit(Some(sha), Some(*size)).map_err(|e| BackupError::Bad {
            path: path.clone(),
            reason: format!(
                "{e}: the backup is damaged; no metadata was restored (the blobs copied so far are left for `zoo admin gc`)"
            ),
        })?;
        out.copied += 1;
    }
    meta.load(&dump)?;
    Ok(out)
}
