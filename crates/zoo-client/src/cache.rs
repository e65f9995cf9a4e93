//! The Hugging Face cache layout, shared with the Python client:
//!
//! ```text
//! HF_HUB_CACHE/models--org--name/
//!   blobs/{etag}                 file contents, named by ETag (sha256 for LFS files)
//!   blobs/{etag}.incomplete      a download in progress (resumable)
//!   snapshots/{commit}/{path}    relative symlinks into blobs/
//!   refs/{revision}              the commit a branch or tag resolved to
//!   .no_exist/{commit}/{path}    known-missing files
//! HF_HUB_CACHE/.locks/models--org--name/{etag}.lock
//! ```

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::{ClientError, RepoId, RepoType};

/// One repository's use of the cache (`zoo cache ls`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepoUsage {
    pub repo: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Bytes of its finished blobs.
    pub bytes: u64,
    pub blobs: usize,
    pub revisions: Vec<RevisionUsage>,
}

/// One snapshot of a repository.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RevisionUsage {
    pub commit: String,
    /// Branches and tags that point at it.
    pub refs: Vec<String>,
    pub files: usize,
    pub bytes: u64,
}

/// What a prune or a removal deletes: worked out first (for `--dry-run` and the question
/// before deleting), then [`Cache::remove`]d.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Removal {
    /// Files and folders, in the order they are removed.
    pub paths: Vec<PathBuf>,
    pub repos: Vec<String>,
    pub snapshots: usize,
    pub blobs: usize,
    /// Bytes of the blobs (and unfinished downloads) removed.
    pub bytes: u64,
}

/// A blob whose bytes do not hash to its name.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Corrupt {
    pub repo: String,
    pub blob: String,
    pub repaired: bool,
}

/// A cache root.
#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
}

/// An exclusive cross-process lock, released when dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

fn is_hex(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Writes a file atomically (temporary file in the same folder, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(ClientError::io(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(ClientError::io(dir))?;
    tmp.write_all(bytes).map_err(ClientError::io(path))?;
    tmp.as_file().sync_all().map_err(ClientError::io(path))?;
    tmp.persist(path).map_err(|e| ClientError::Io {
        path: path.to_path_buf(),
        error: e.error,
    })?;
    sync_dir(dir);
    Ok(())
}

/// fsyncs a folder, so that a rename into it survives a crash (best effort: some file
/// systems cannot).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Hashes a whole file: sha256, or git's blob id when `git` is set.
pub fn hash_file(path: &Path, git: bool) -> Result<String, ClientError> {
    let mut f = File::open(path).map_err(ClientError::io(path))?;
    let size = f.metadata().map_err(ClientError::io(path))?.len();
    let mut h = Hasher::new(git, size);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(ClientError::io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

/// sha256 or git blob sha1, streaming.
#[derive(Clone, Debug)]
pub enum Hasher {
    Sha256(Sha256),
    Git(Sha1),
}

impl Hasher {
    pub fn new(git: bool, size: u64) -> Hasher {
        if git {
            let mut h = Sha1::new();
            h.update(format!("blob {size}\0").as_bytes());
            Hasher::Git(h)
        } else {
            Hasher::Sha256(Sha256::new())
        }
    }
    pub fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Git(h) => h.update(b),
        }
    }
    pub fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Git(h) => hex::encode(h.finalize()),
        }
    }
}

impl Cache {
    pub fn new(root: &Path) -> Cache {
        Cache {
            root: root.to_path_buf(),
        }
    }
    pub fn repo_dir(&self, repo: &RepoId) -> PathBuf {
        self.root.join(repo.folder())
    }
    pub fn blob(&self, repo: &RepoId, etag: &str) -> PathBuf {
        self.repo_dir(repo).join("blobs").join(etag)
    }
    pub fn incomplete(&self, repo: &RepoId, etag: &str) -> PathBuf {
        self.repo_dir(repo)
            .join("blobs")
            .join(format!("{etag}.incomplete"))
    }
    pub fn snapshot(&self, repo: &RepoId, commit: &str) -> PathBuf {
        self.repo_dir(repo).join("snapshots").join(commit)
    }
    pub fn ref_path(&self, repo: &RepoId, revision: &str) -> PathBuf {
        self.repo_dir(repo).join("refs").join(revision)
    }

    /// Takes the lock for one blob, waiting for another process that holds it.
    pub fn lock(&self, repo: &RepoId, etag: &str) -> Result<Lock, ClientError> {
        let dir = self.root.join(".locks").join(repo.folder());
        fs::create_dir_all(&dir).map_err(ClientError::io(&dir))?;
        let path = dir.join(format!("{etag}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(ClientError::io(&path))?;
        file.lock().map_err(ClientError::io(&path))?;
        Ok(Lock { _file: file })
    }

    pub fn write_ref(
        &self,
        repo: &RepoId,
        revision: &str,
        commit: &str,
    ) -> Result<(), ClientError> {
        if revision == commit {
            return Ok(());
        }
        write_atomic(&self.ref_path(repo, revision), commit.as_bytes())
    }

    pub fn read_ref(&self, repo: &RepoId, revision: &str) -> Option<String> {
        let s = fs::read_to_string(self.ref_path(repo, revision)).ok()?;
        let s = s.trim().to_string();
        is_hex(&s, 40).then_some(s)
    }

    /// Points `snapshots/{commit}/{path}` at `blobs/{etag}` with a relative symlink, atomically.
    pub fn link(
        &self,
        repo: &RepoId,
        commit: &str,
        path: &str,
        etag: &str,
    ) -> Result<PathBuf, ClientError> {
        let dest = self.snapshot(repo, commit).join(path);
        let dir = dest.parent().unwrap().to_path_buf();
        fs::create_dir_all(&dir).map_err(ClientError::io(&dir))?;
        let depth = 2 + path.matches('/').count();
        let target = format!("{}blobs/{etag}", "../".repeat(depth));
        if fs::read_link(&dest)
            .ok()
            .is_some_and(|t| t == Path::new(&target))
        {
            return Ok(dest);
        }
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            dest.file_name().unwrap().to_string_lossy(),
            std::process::id()
        ));
        let _ = fs::remove_file(&tmp);
        #[cfg(unix)]
        std::os::unix::fs::symlink(&target, &tmp).map_err(ClientError::io(&tmp))?;
        #[cfg(not(unix))]
        fs::copy(self.blob(repo, etag), &tmp).map_err(ClientError::io(&tmp))?;
        fs::rename(&tmp, &dest).map_err(ClientError::io(&dest))?;
        Ok(dest)
    }

    /// Records a file known not to exist at a commit.
    pub fn mark_missing(&self, repo: &RepoId, commit: &str, path: &str) -> Result<(), ClientError> {
        write_atomic(
            &self
                .repo_dir(repo)
                .join(".no_exist")
                .join(commit)
                .join(path),
            b"",
        )
    }

    /// Every repository in the cache.
    pub fn repos(&self) -> Result<Vec<RepoId>, ClientError> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => {
                return Err(ClientError::Io {
                    path: self.root.clone(),
                    error: e,
                });
            }
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let mut parts = name.splitn(3, "--");
            let (Some(kind), Some(org), Some(rest)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let kind = match kind {
                "models" => RepoType::Model,
                "datasets" => RepoType::Dataset,
                _ => continue,
            };
            out.push(RepoId {
                kind,
                id: format!("{org}/{}", rest.replace("--", "/")),
            });
        }
        out.sort_by_key(RepoId::folder);
        Ok(out)
    }

    /// Files of a snapshot: (path in repo, blob name it links to).
    pub fn snapshot_files(
        &self,
        repo: &RepoId,
        commit: &str,
    ) -> Result<Vec<(String, String)>, ClientError> {
        let root = self.snapshot(repo, commit);
        let mut out = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir).map_err(ClientError::io(&dir))?.flatten() {
                let p = e.path();
                let ft = e.file_type().map_err(ClientError::io(&p))?;
                if ft.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/");
                    let blob = fs::read_link(&p)
                        .ok()
                        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().to_string()))
                        .unwrap_or_default();
                    out.push((rel, blob));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Commits with a snapshot folder.
    pub fn snapshots(&self, repo: &RepoId) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.repo_dir(repo).join("snapshots"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Refs: (revision, commit).
    pub fn refs(&self, repo: &RepoId) -> Vec<(String, String)> {
        let root = self.repo_dir(repo).join("refs");
        let mut out = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(c) = fs::read_to_string(&p) {
                    let rel = p
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/");
                    out.push((rel, c.trim().to_string()));
                }
            }
        }
        out.sort();
        out
    }

    /// Blob names (finished blobs only) and sizes.
    pub fn blobs(&self, repo: &RepoId) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = fs::read_dir(self.repo_dir(repo).join("blobs"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().to_string();
                        // Finished blobs only: not `{etag}.incomplete` nor its `.ranges` record.
                        (!n.contains(".incomplete"))
                            .then(|| (n, e.metadata().map(|m| m.len()).unwrap_or(0)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Whether a blob's bytes match its name (64 hex: sha256; 40 hex: git blob id).
    pub fn verify_blob(&self, repo: &RepoId, name: &str) -> Result<bool, ClientError> {
        let path = self.blob(repo, name);
        if is_hex(name, 64) {
            Ok(hash_file(&path, false)? == name)
        } else if is_hex(name, 40) {
            Ok(hash_file(&path, true)? == name)
        } else {
            Ok(false)
        }
    }
}

impl Cache {
    /// Sizes per repository and revision.
    pub fn usage(&self) -> Result<Vec<RepoUsage>, ClientError> {
        let mut out = Vec::new();
        for repo in self.repos()? {
            let blobs = self.blobs(&repo);
            let size = |b: &str| {
                blobs
                    .iter()
                    .find(|(n, _)| n == b)
                    .map(|(_, s)| *s)
                    .unwrap_or(0)
            };
            let refs = self.refs(&repo);
            let mut revisions = Vec::new();
            for commit in self.snapshots(&repo) {
                let files = self.snapshot_files(&repo, &commit)?;
                revisions.push(RevisionUsage {
                    bytes: files.iter().map(|(_, b)| size(b)).sum(),
                    files: files.len(),
                    refs: refs
                        .iter()
                        .filter(|(_, c)| *c == commit)
                        .map(|(r, _)| r.clone())
                        .collect(),
                    commit,
                });
            }
            out.push(RepoUsage {
                repo: repo.id.clone(),
                kind: repo.kind.singular(),
                bytes: blobs.iter().map(|(_, s)| s).sum(),
                blobs: blobs.len(),
                revisions,
            });
        }
        Ok(out)
    }

    /// Blobs whose bytes do not match their names, over the whole cache.
    pub fn corrupt_blobs(&self) -> Result<Vec<(RepoId, String)>, ClientError> {
        let mut out = Vec::new();
        for repo in self.repos()? {
            for (name, _) in self.blobs(&repo) {
                if !self.verify_blob(&repo, &name)? {
                    out.push((repo.clone(), name));
                }
            }
        }
        Ok(out)
    }

    /// What a prune removes: snapshots no ref points to (with `keep_latest`, every snapshot
    /// but the one `main` — else the first ref — points to, and the other refs), blobs no
    /// remaining snapshot links to, and unfinished downloads.
    pub fn prune_plan(&self, keep_latest: bool) -> Result<Removal, ClientError> {
        let mut plan = Removal::default();
        for repo in self.repos()? {
            let refs = self.refs(&repo);
            let keep: Vec<String> = if keep_latest {
                refs.iter()
                    .find(|(r, _)| r == "main")
                    .or(refs.first())
                    .map(|(_, c)| c.clone())
                    .into_iter()
                    .collect()
            } else {
                refs.iter().map(|(_, c)| c.clone()).collect()
            };
            let mut used = std::collections::HashSet::new();
            for commit in self.snapshots(&repo) {
                if keep.contains(&commit) {
                    for (_, b) in self.snapshot_files(&repo, &commit)? {
                        used.insert(b);
                    }
                } else {
                    plan.paths.push(self.snapshot(&repo, &commit));
                    plan.snapshots += 1;
                }
            }
            if keep_latest {
                for (r, c) in &refs {
                    if !keep.contains(c) {
                        plan.paths.push(self.ref_path(&repo, r));
                    }
                }
            }
            for (name, size) in self.blobs(&repo) {
                if !used.contains(&name) {
                    plan.paths.push(self.blob(&repo, &name));
                    plan.blobs += 1;
                    plan.bytes += size;
                }
            }
            if let Ok(rd) = fs::read_dir(self.repo_dir(&repo).join("blobs")) {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().to_string();
                    if n.ends_with(".incomplete") || n.ends_with(".incomplete.ranges") {
                        plan.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                        plan.paths.push(e.path());
                    }
                }
            }
        }
        Ok(plan)
    }

    /// What removing one repository from the cache deletes.
    pub fn rm_plan(&self, repo: &RepoId) -> Result<Removal, ClientError> {
        let dir = self.repo_dir(repo);
        if !dir.is_dir() {
            return Err(ClientError::Usage(format!(
                "{} is not in the cache at {}",
                repo.id,
                self.root.display()
            )));
        }
        let blobs = self.blobs(repo);
        Ok(Removal {
            paths: vec![dir, self.root.join(".locks").join(repo.folder())],
            repos: vec![repo.id.clone()],
            snapshots: self.snapshots(repo).len(),
            blobs: blobs.len(),
            bytes: blobs.iter().map(|(_, s)| s).sum(),
        })
    }

    /// Deletes what a plan lists (a path already gone is no error).
    pub fn remove(&self, plan: &Removal) -> Result<(), ClientError> {
        for p in &plan.paths {
            let r = match fs::symlink_metadata(p) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(p),
                Ok(_) => fs::remove_file(p),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => Err(e),
            };
            r.map_err(ClientError::io(p))?;
        }
        Ok(())
    }
}
