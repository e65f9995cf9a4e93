//! The bare git repository behind each hub repository (`DATA/git/{id}-{created}.git`), which
//! `git http-backend` serves for clone, fetch and push.
//!
//! The metadata is the source of truth. Before every git request the bare repository is
//! brought in step ([`sync`]): the refs are rewritten from the metadata, and every commit a
//! ref reaches whose objects are missing — a commit made through the API since — is written
//! from the metadata and the blob store (its id must come out as recorded). A push goes the
//! other way: the `pre-receive` hook ([`pre_receive`], run as `zoo hub-hook pre-receive`)
//! validates and scans every pushed commit, stores its files, copies the pushed objects in,
//! and records the commits under their own ids; a refused push leaves nothing behind.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::blobs::{BlobStore, lfs_pointer};
use crate::git::{CommitFields, Object, commit_object, trees};
use crate::meta::{FileEntry, MetaStore, NewCommit, Ref};
use crate::paths::{path_problem, valid_ref_name};

/// Why the git side failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("metadata: {0}")]
    Meta(#[from] crate::meta::MetaError),
    #[error("blob store: {0}")]
    Blob(#[from] crate::blobs::BlobError),
    #[error("{0}")]
    Refused(String),
    #[error("git: {0}")]
    Git(String),
}

type Result<T, E = GitError> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GitError + '_ {
    move |error| GitError::Io {
        path: path.to_path_buf(),
        error,
    }
}

const ZERO: &str = "0000000000000000000000000000000000000000";

/// The hook every bare repository runs before a push updates its refs: the `zoo` binary that
/// serves it (`ZOO_HOOK_EXE`, set by the server for each push).
const PRE_RECEIVE: &str = "#!/bin/sh\n# Installed by zoo serve: every push is validated, scanned and recorded by the hub.\nexec \"$ZOO_HOOK_EXE\" hub-hook pre-receive\n";

/// Where a repository's bare repository lives: named by its id and creation time, so a
/// later repository that gets a deleted one's id never sees its objects.
pub fn bare_dir(data: &Path, repo: &crate::meta::Repo) -> PathBuf {
    data.join("git")
        .join(format!("{}-{}.git", repo.id, repo.created_at))
}

/// A bare repository.
#[derive(Debug, Clone)]
pub struct BareRepo {
    pub dir: PathBuf,
}

impl BareRepo {
    /// Opens the bare repository at `dir`, creating it (and its hook) when missing.
    pub fn open_or_init(dir: &Path) -> Result<BareRepo> {
        for sub in [
            "objects/info",
            "objects/pack",
            "refs/heads",
            "refs/tags",
            "hooks",
        ] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io(dir))?;
        }
        let files = [
            ("HEAD", "ref: refs/heads/main\n"),
            (
                "config",
                "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n\
                 [receive]\n\tfsckObjects = true\n\tdenyNonFastForwards = true\n\tdenyDeleteCurrent = true\n",
            ),
            ("hooks/pre-receive", PRE_RECEIVE),
        ];
        for (name, content) in files {
            let p = dir.join(name);
            if std::fs::read_to_string(&p).ok().as_deref() != Some(content) {
                write_atomic(&p, content.as_bytes())?;
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let hook = dir.join("hooks/pre-receive");
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
                .map_err(io(&hook))?;
        }
        Ok(BareRepo {
            dir: dir.to_path_buf(),
        })
    }

    fn loose(&self, id: &str) -> PathBuf {
        self.dir.join("objects").join(&id[..2]).join(&id[2..])
    }

    /// Writes a loose object (zlib) unless it is there already.
    pub fn write_object(&self, o: &Object) -> Result<()> {
        let path = self.loose(&o.id);
        if path.exists() {
            return Ok(());
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(format!("{} {}\0", o.kind, o.data.len()).as_bytes())
            .and_then(|()| z.write_all(&o.data))
            .map_err(io(&path))?;
        let bytes = z.finish().map_err(io(&path))?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        write_atomic(&path, &bytes)
    }

    /// Makes the refs exactly the metadata's: `packed-refs`, loose ones removed.
    pub fn set_refs(&self, refs: &[Ref]) -> Result<()> {
        let mut text = String::from("# pack-refs with: peeled fully-peeled sorted \n");
        let mut lines: Vec<String> = refs
            .iter()
            .map(|r| {
                let prefix = if r.kind == "tag" {
                    "refs/tags/"
                } else {
                    "refs/heads/"
                };
                format!("{} {prefix}{}\n", r.commit, r.name)
            })
            .collect();
        lines.sort_by(|a, b| a[41..].cmp(&b[41..]));
        text.extend(lines);
        for sub in ["refs/heads", "refs/tags"] {
            remove_files(&self.dir.join(sub))?;
        }
        write_atomic(&self.dir.join("packed-refs"), text.as_bytes())
    }
}

fn remove_files(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            remove_files(&p)?;
            let _ = std::fs::remove_dir(&p);
        } else {
            std::fs::remove_file(&p).map_err(io(&p))?;
        }
    }
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".zoo-tmp-")
        .tempfile_in(dir)
        .map_err(io(path))?;
    tmp.write_all(bytes).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| GitError::Io {
        path: path.to_path_buf(),
        error: e.error,
    })?;
    Ok(())
}

/// `git cat-file --batch-check` on a repository: which objects it has (loose or packed).
struct Objects {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Objects {
    fn open(dir: &Path) -> Result<Objects> {
        let mut child = git(dir)
            .args(["cat-file", "--batch-check"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io(dir))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Ok(Objects {
            child,
            stdin,
            stdout,
        })
    }

    fn has(&mut self, id: &str) -> Result<bool> {
        writeln!(self.stdin, "{id}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| GitError::Git(format!("cat-file: {e}")))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| GitError::Git(format!("cat-file: {e}")))?;
        Ok(!line.trim_end().ends_with("missing") && !line.is_empty())
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `git` on a bare repository, with nothing from the user's configuration.
fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("--git-dir")
        .arg(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    c
}

/// Brings repository `repo_id`'s bare repository in step with the metadata (see the module
/// documentation).
pub fn sync(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    bare: &BareRepo,
    repo_id: i64,
) -> Result<()> {
    let refs = meta.refs(repo_id)?;
    let mut objects = Objects::open(&bare.dir)?;
    for r in &refs {
        let mut missing = Vec::new();
        let mut next = Some(r.commit.clone());
        while let Some(id) = next.take() {
            if objects.has(&id)? {
                break;
            }
            let c = meta
                .commit_info(repo_id, &id)?
                .ok_or_else(|| GitError::Git(format!("commit {id} is not recorded")))?;
            next = c.parent.clone();
            missing.push(c);
        }
        for c in missing.iter().rev() {
            let files = meta.files(repo_id, &c.id)?;
            for f in &files {
                if objects.has(&f.git_oid)? {
                    continue;
                }
                let data = if f.lfs {
                    lfs_pointer(&f.sha256, f.size).into_bytes()
                } else {
                    let mut d = Vec::with_capacity(f.size as usize);
                    blobs
                        .read_range(&f.sha256, 0, f.size)?
                        .read_to_end(&mut d)
                        .map_err(|e| GitError::Git(format!("{}: {e}", f.path)))?;
                    d
                };
                let o = Object::new("blob", data);
                if o.id != f.git_oid {
                    return Err(GitError::Git(format!(
                        "{}: the stored content hashes to git blob {}, not {}",
                        f.path, o.id, f.git_oid
                    )));
                }
                bare.write_object(&o)?;
            }
            let t = trees(&files);
            let empty = Object::new("tree", Vec::new());
            let root = t.last().cloned().unwrap_or(empty);
            for o in t.iter().chain(std::iter::once(&root)) {
                bare.write_object(o)?;
            }
            let o = commit_object(&CommitFields {
                tree: &root.id,
                parent: c.parent.as_deref(),
                author: &c.author,
                created_at: c.created_at,
                summary: &c.summary,
                description: &c.description,
            });
            if o.id != c.id {
                return Err(GitError::Git(format!(
                    "commit {} came from a push and its objects are missing from {}",
                    c.id,
                    bare.dir.display()
                )));
            }
            bare.write_object(&o)?;
        }
    }
    bare.set_refs(&refs)
}

/// What a push may do, from the server that received it.
#[derive(Debug, Clone)]
pub struct Push<'a> {
    pub repo_id: i64,
    /// The hub user who pushes (their write access is checked before the push starts).
    pub user: &'a str,
    pub allow_dangerous: bool,
    pub max_file_bytes: u64,
    /// Where git keeps the pushed objects until the hook accepts them.
    pub quarantine: Option<&'a Path>,
}

/// The `pre-receive` hook: `input` is git's `OLD NEW REF` lines. Every pushed commit is
/// checked (one parent, regular files at valid paths, LFS objects present, every new file
/// scanned), its files stored, its objects copied into the repository, and then recorded
/// under its own id. Branches first, then tags. Returns what to tell the pusher.
pub fn pre_receive(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    bare: &BareRepo,
    p: &Push<'_>,
    input: &str,
) -> Result<Vec<String>> {
    let mut updates: Vec<(&str, &str, &str)> = Vec::new();
    for line in input.lines() {
        let mut it = line.split_whitespace();
        match (it.next(), it.next(), it.next()) {
            (Some(o), Some(n), Some(r)) => updates.push((o, n, r)),
            _ => return Err(GitError::Refused(format!("unexpected hook input `{line}`"))),
        }
    }
    // Validate everything before recording anything.
    // (branch, new head — `None` to delete it, its new commits)
    let mut branch_commits: Vec<(String, Option<String>, Vec<Pushed>)> = Vec::new();
    let mut tags: Vec<(String, Option<String>)> = Vec::new();
    for (old, new, r) in &updates {
        let (kind, name) = match (r.strip_prefix("refs/heads/"), r.strip_prefix("refs/tags/")) {
            (Some(b), _) => ("branch", b),
            (_, Some(t)) => ("tag", t),
            _ => {
                return Err(GitError::Refused(format!(
                    "`{r}`: only branches and tags can be pushed"
                )));
            }
        };
        if !valid_ref_name(name) {
            return Err(GitError::Refused(format!(
                "`{name}` is not a valid {kind} name"
            )));
        }
        if *new == ZERO {
            if kind == "branch" && name == "main" {
                return Err(GitError::Refused(
                    "the default branch `main` cannot be deleted".into(),
                ));
            }
            if kind == "branch" {
                branch_commits.push((name.to_string(), None, Vec::new()));
            } else {
                tags.push((name.to_string(), None));
            }
            continue;
        }
        if kind == "tag" {
            let commit = run(
                bare,
                &["rev-parse", "--verify", &format!("{new}^{{commit}}")],
            )?;
            tags.push((name.to_string(), Some(commit.trim().to_string())));
            continue;
        }
        let list = run(
            bare,
            &[
                "rev-list",
                "--reverse",
                "--topo-order",
                new,
                "--not",
                "--all",
            ],
        )?;
        let mut commits = Vec::new();
        let mut parent_files: Option<(String, Vec<FileEntry>)> = None;
        for id in list.split_whitespace() {
            let c = read_commit(bare, id)?;
            let parent = match c.parents.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(GitError::Refused(format!(
                        "commit {id} has no parent: push on top of the hub's history (git pull first)"
                    )));
                }
                _ => {
                    return Err(GitError::Refused(format!(
                        "commit {id} is a merge: this hub keeps a linear history (rebase instead)"
                    )));
                }
            };
            let before: Vec<FileEntry> = match &parent_files {
                Some((pid, files)) if *pid == parent => files.clone(),
                _ => match meta.commit_info(p.repo_id, &parent)? {
                    Some(_) => meta.files(p.repo_id, &parent)?,
                    None => {
                        return Err(GitError::Refused(format!(
                            "commit {id}: its parent {parent} is not in this repository"
                        )));
                    }
                },
            };
            let files = tree_files(bare, blobs, p, id, &before)?;
            parent_files = Some((id.to_string(), files.clone()));
            commits.push(Pushed {
                commit: c,
                parent,
                files,
            });
        }
        let _ = old;
        branch_commits.push((name.to_string(), Some(new.to_string()), commits));
    }
    // The pushed objects join the repository before any commit that needs them is recorded.
    if let Some(q) = p.quarantine {
        copy_objects(q, &bare.dir.join("objects"))?;
    }
    let mut said = Vec::new();
    for (branch, new, commits) in branch_commits {
        let Some(new) = new else {
            if meta.delete_ref(p.repo_id, "branch", &branch)? {
                said.push(format!("deleted branch {branch}"));
            }
            continue;
        };
        let exists = meta
            .refs(p.repo_id)?
            .iter()
            .any(|r| r.kind == "branch" && r.name == branch);
        if commits.is_empty() {
            // The branch moves to (or starts at) a commit the repository has.
            if meta.commit_info(p.repo_id, &new)?.is_none() {
                return Err(GitError::Refused(format!(
                    "{new} is not in this repository"
                )));
            }
            if exists {
                meta.delete_ref(p.repo_id, "branch", &branch)?;
            }
            meta.create_ref(p.repo_id, "branch", &branch, &new)?;
            said.push(format!("branch {branch} at {new}"));
            continue;
        }
        if !exists {
            meta.create_ref(p.repo_id, "branch", &branch, &commits[0].parent)?;
        }
        for c in &commits {
            let before = meta.files(p.repo_id, &c.parent)?;
            let deleted: Vec<String> = before
                .iter()
                .filter(|f| !c.files.iter().any(|n| n.path == f.path))
                .map(|f| f.path.clone())
                .collect();
            meta.commit(&NewCommit {
                repo_id: p.repo_id,
                branch: branch.clone(),
                expected_parent: Some(c.parent.clone()),
                summary: c.commit.summary.clone(),
                description: c.commit.description.clone(),
                author: p.user.to_string(),
                added: c.files.clone(),
                deleted_files: deleted,
                deleted_folders: Vec::new(),
                pushed: Some((c.commit.id.clone(), c.commit.time_ms)),
            })?;
        }
        said.push(format!("{} commit(s) recorded on {branch}", commits.len()));
    }
    for (tag, commit) in tags {
        let _ = meta.delete_ref(p.repo_id, "tag", &tag)?;
        if let Some(c) = commit {
            if meta.commit_info(p.repo_id, &c)?.is_none() {
                return Err(GitError::Refused(format!(
                    "tag `{tag}` points at {c}, which is not on a branch of this repository"
                )));
            }
            meta.create_ref(p.repo_id, "tag", &tag, &c)?;
        }
    }
    Ok(said)
}

/// A pushed commit, checked.
#[derive(Debug, Clone)]
struct Pushed {
    commit: GitCommit,
    parent: String,
    files: Vec<FileEntry>,
}

#[derive(Debug, Clone)]
struct GitCommit {
    id: String,
    parents: Vec<String>,
    time_ms: i64,
    summary: String,
    description: String,
}

fn run(bare: &BareRepo, args: &[&str]) -> Result<String> {
    Ok(String::from_utf8_lossy(&run_bytes(bare, args)?).into_owned())
}

fn read_commit(bare: &BareRepo, id: &str) -> Result<GitCommit> {
    let text = run(bare, &["cat-file", "commit", id])?;
    let (headers, message) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut parents = Vec::new();
    let mut time_ms = 0;
    for h in headers.lines() {
        if let Some(p) = h.strip_prefix("parent ") {
            parents.push(p.trim().to_string());
        } else if let Some(c) = h.strip_prefix("committer ") {
            // `NAME <EMAIL> SECONDS ZONE`
            let mut parts = c.rsplitn(3, ' ');
            let _zone = parts.next();
            time_ms = parts
                .next()
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0)
                .saturating_mul(1000);
        }
    }
    let message = message.trim_end();
    let (summary, description) = message.split_once('\n').unwrap_or((message, ""));
    Ok(GitCommit {
        id: id.to_string(),
        parents,
        time_ms,
        summary: summary.trim().to_string(),
        description: description.trim().to_string(),
    })
}

/// The files of pushed commit `id`: unchanged ones as `before` has them, changed ones read,
/// stored, checked and scanned. LFS pointers must name objects already uploaded.
fn tree_files(
    bare: &BareRepo,
    blobs: &dyn BlobStore,
    p: &Push<'_>,
    id: &str,
    before: &[FileEntry],
) -> Result<Vec<FileEntry>> {
    let known: HashMap<(&str, &str), &FileEntry> = before
        .iter()
        .map(|f| ((f.path.as_str(), f.git_oid.as_str()), f))
        .collect();
    let listing = run(bare, &["ls-tree", "-r", "-z", "-l", "--full-tree", id])?;
    let mut out = Vec::new();
    for entry in listing.split('\0').filter(|e| !e.is_empty()) {
        let (meta_part, path) = entry
            .split_once('\t')
            .ok_or_else(|| GitError::Git(format!("ls-tree: `{entry}`")))?;
        let fields: Vec<&str> = meta_part.split_whitespace().collect();
        let [mode, kind, oid, size] = fields[..] else {
            return Err(GitError::Git(format!("ls-tree: `{entry}`")));
        };
        if let Some(problem) = path_problem(path) {
            return Err(GitError::Refused(format!("`{path}`: {problem}")));
        }
        if kind != "blob" || !(mode == "100644" || mode == "100755") {
            return Err(GitError::Refused(format!(
                "`{path}`: only regular files can be pushed (this is a {})",
                if mode == "120000" {
                    "symbolic link"
                } else {
                    kind
                }
            )));
        }
        if let Some(f) = known.get(&(path, oid)) {
            out.push((*f).clone());
            continue;
        }
        let size: u64 = size.parse().unwrap_or(0);
        if size > p.max_file_bytes {
            return Err(GitError::Refused(format!(
                "`{path}` is {size} bytes, more than the limit of {}: track it with git-lfs",
                p.max_file_bytes
            )));
        }
        let content = run_bytes(bare, &["cat-file", "blob", oid])?;
        let mut e = match parse_lfs_pointer(&content) {
            Some((sha, n)) => {
                match blobs.size(&sha)? {
                    Some(s) if s == n => {}
                    _ => {
                        return Err(GitError::Refused(format!(
                            "`{path}`: LFS object {sha} ({n} bytes) was not uploaded (git lfs push first)"
                        )));
                    }
                }
                FileEntry {
                    path: path.to_string(),
                    sha256: sha,
                    size: n,
                    git_oid: oid.to_string(),
                    lfs: true,
                    verdict: None,
                    scan: None,
                }
            }
            None => {
                let mut w = blobs.writer()?;
                w.write_chunk(&content)?;
                let info = w.commit(None, Some(content.len() as u64))?;
                FileEntry {
                    path: path.to_string(),
                    sha256: info.sha256,
                    size: info.size,
                    git_oid: oid.to_string(),
                    lfs: false,
                    verdict: None,
                    scan: None,
                }
            }
        };
        crate::scan::scan_entry(blobs, &mut e, p.allow_dangerous)
            .map_err(|err| GitError::Refused(err.to_string()))?;
        out.push(e);
    }
    Ok(out)
}

fn run_bytes(bare: &BareRepo, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("git")
        .args(args)
        .current_dir(&bare.dir)
        .stdin(Stdio::null())
        .output()
        .map_err(io(&bare.dir))?;
    if !out.status.success() {
        return Err(GitError::Git(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// `(sha256, size)` of a git-lfs pointer file.
pub fn parse_lfs_pointer(content: &[u8]) -> Option<(String, u64)> {
    if content.len() > 1024 {
        return None;
    }
    let text = std::str::from_utf8(content).ok()?;
    let mut lines = text.lines();
    if !lines
        .next()?
        .starts_with("version https://git-lfs.github.com/spec/")
    {
        return None;
    }
    let (mut oid, mut size) = (None, None);
    for l in lines {
        if let Some(o) = l.strip_prefix("oid sha256:") {
            oid = Some(o.to_string());
        } else if let Some(s) = l.strip_prefix("size ") {
            size = s.parse().ok();
        }
    }
    let oid = oid.filter(|o| crate::blobs::is_sha256(o))?;
    Some((oid, size?))
}

/// Copies the quarantined objects (packs and loose objects) into the repository's own.
fn copy_objects(from: &Path, to: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let src = e.path();
        let dst = to.join(e.file_name());
        if src.is_dir() {
            std::fs::create_dir_all(&dst).map_err(io(&dst))?;
            copy_objects(&src, &dst)?;
        } else if !dst.exists() {
            let bytes = std::fs::read(&src).map_err(io(&src))?;
            write_atomic(&dst, &bytes)?;
        }
    }
    Ok(())
}

/// `zoo hub-hook pre-receive`: the environment the server set for the push, git's ref
/// updates on stdin. Exit status 0 lets git update the refs.
pub fn hook_main() -> i32 {
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        eprintln!("zoo: could not read the pushed refs");
        return 1;
    }
    match hook(&input) {
        Ok(said) => {
            for s in said {
                eprintln!("zoo: {s}");
            }
            0
        }
        Err(e) => {
            eprintln!("zoo: push refused: {e}");
            1
        }
    }
}

fn hook(input: &str) -> Result<Vec<String>, String> {
    let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set (run by zoo serve)"));
    let data = PathBuf::from(var("ZOO_HOOK_DATA")?);
    let repo_id: i64 = var("ZOO_HOOK_REPO")?
        .parse()
        .map_err(|_| "ZOO_HOOK_REPO".to_string())?;
    let user = var("ZOO_HOOK_USER")?;
    let mut config = crate::HubConfig::new(data);
    config.database = std::env::var("ZOO_HOOK_DATABASE")
        .ok()
        .filter(|v| !v.is_empty());
    config.blobs = std::env::var("ZOO_HOOK_BLOBS")
        .ok()
        .filter(|v| !v.is_empty());
    config.allow_dangerous_pickles =
        std::env::var("ZOO_HOOK_ALLOW_DANGEROUS").is_ok_and(|v| v == "1");
    if let Ok(m) = var("ZOO_HOOK_MAX_FILE")
        && let Ok(m) = m.parse()
    {
        config.max_file_bytes = m;
    }
    let hub = crate::open(config.clone()).map_err(|e| e.to_string())?;
    let bare = BareRepo {
        dir: PathBuf::from(var("ZOO_HOOK_BARE")?),
    };
    let quarantine = std::env::var_os("GIT_QUARANTINE_PATH").map(PathBuf::from);
    let said = pre_receive(
        hub.meta.as_ref(),
        hub.blobs.as_ref(),
        &bare,
        &Push {
            repo_id,
            user: &user,
            allow_dangerous: config.allow_dangerous_pickles,
            max_file_bytes: config.max_file_bytes,
            quarantine: quarantine.as_deref(),
        },
        input,
    )
    .map_err(|e| e.to_string())?;
    // The search index follows `main`.
    if let Ok(Some(head)) = hub.meta.resolve(repo_id, "main")
        && let Ok(files) = hub.meta.files(repo_id, &head)
    {
        let row = crate::index::compute(&files, hub.blobs.as_ref());
        let _ = hub.meta.set_index(repo_id, &row);
    }
    Ok(said)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfs_pointers_parse_and_other_files_do_not() {
        let sha = "a".repeat(64);
        let p = lfs_pointer(&sha, 42);
        assert_eq!(parse_lfs_pointer(p.as_bytes()), Some((sha, 42)));
        assert_eq!(parse_lfs_pointer(b"hello"), None);
        assert_eq!(
            parse_lfs_pointer(
                b"version https://git-lfs.github.com/spec/v1\noid sha256:xyz\nsize 1\n"
            ),
            None
        );
    }
}
