//! `zoo push`: create the repository if needed, upload only what changed (the server's
//! `preupload` oids), large files through the LFS batch API, then one atomic commit.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::cache::Hasher;
use crate::http::Client;
use crate::{ClientError, RepoId};

/// What to push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub private: bool,
    pub branch: Option<String>,
    pub message: Option<String>,
    /// Draw a progress bar for the LFS uploads.
    pub progress: bool,
    /// Where in the repository: a folder for a folder, the file's path for a single file
    /// (default: the root, or the file's name).
    pub path_in_repo: Option<String>,
    /// Only local files matching these globs (relative to the folder pushed).
    pub include: Vec<String>,
    /// Leave out local files matching these globs.
    pub exclude: Vec<String>,
    /// Delete the repository's files under `path_in_repo` that match these globs (relative to
    /// `path_in_repo`) and are not being uploaded, in the same commit.
    pub delete: Vec<String>,
    /// Work out what would be uploaded and deleted, and change nothing.
    pub dry_run: bool,
}

/// A reader that advances a progress bar.
struct Counted<R> {
    inner: R,
    bar: indicatif::ProgressBar,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// What a push did (or, with `dry_run`, would do).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pushed {
    pub repo: String,
    /// The new commit; the branch head when nothing changed; empty for a dry run.
    pub commit: String,
    pub url: Option<String>,
    pub uploaded: Vec<String>,
    pub unchanged: Vec<String>,
    pub deleted: Vec<String>,
    pub lfs_bytes: u64,
    pub dry_run: bool,
}

/// A repository path: `/`-separated, no empty, `.` or `..` segment.
fn clean_repo_path(p: &str) -> Result<String, ClientError> {
    let p = p.trim_matches('/');
    if p.is_empty() || p == "." {
        return Ok(String::new());
    }
    if p.contains('\\') || p.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(ClientError::Usage(format!(
            "`{p}` is not a path inside a repository"
        )));
    }
    Ok(p.to_string())
}

/// The local files to push, named by their path in the repository.
fn local_files(dir: &Path, opts: &PushOptions) -> Result<Vec<Local>, ClientError> {
    let prefix = clean_repo_path(opts.path_in_repo.as_deref().unwrap_or(""))?;
    let meta = std::fs::metadata(dir).map_err(ClientError::io(dir))?;
    if !meta.is_dir() {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let path = if prefix.is_empty() { name } else { prefix };
        return Ok(vec![hash_local(dir, path)?]);
    }
    let include = crate::download::globset(&opts.include)?;
    let exclude = crate::download::globset(&opts.exclude)?;
    let mut files: Vec<Local> = walk(dir)?
        .into_iter()
        .filter(|f| crate::download::selected(&f.path, &include, &exclude))
        .collect();
    if !prefix.is_empty() {
        for f in &mut files {
            f.path = format!("{prefix}/{}", f.path);
        }
    }
    Ok(files)
}

struct Local {
    path: String,
    full: PathBuf,
    size: u64,
    sha256: String,
    git_sha1: String,
    sample: Vec<u8>,
}

fn walk(dir: &Path) -> Result<Vec<Local>, ClientError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .map_err(ClientError::io(&d))?
            .flatten()
        {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            let rel = p
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if rel == ".git"
                || rel.starts_with(".git/")
                || rel == ".cache"
                || rel.starts_with(".cache/")
                || name.ends_with(".zoo-tmp")
            {
                continue;
            }
            let meta = std::fs::metadata(&p).map_err(ClientError::io(&p))?;
            if meta.is_dir() {
                stack.push(p);
                continue;
            }
            out.push(hash_local(&p, rel)?);
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Hashes one file, named `path` in the repository.
fn hash_local(p: &Path, path: String) -> Result<Local, ClientError> {
    let size = std::fs::metadata(p).map_err(ClientError::io(p))?.len();
    let mut f = File::open(p).map_err(ClientError::io(p))?;
    let mut sha = Hasher::new(false, size);
    let mut git = Hasher::new(true, size);
    let mut sample = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(ClientError::io(p))?;
        if n == 0 {
            break;
        }
        if sample.len() < 512 {
            sample.extend_from_slice(&buf[..n.min(512 - sample.len())]);
        }
        sha.update(&buf[..n]);
        git.update(&buf[..n]);
    }
    Ok(Local {
        path,
        full: p.to_path_buf(),
        size,
        sha256: sha.finish(),
        git_sha1: git.finish(),
        sample,
    })
}

fn check(status: u16, body: &Value, url: &str) -> Result<(), ClientError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let message = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Err(ClientError::Http {
        url: crate::settings::redact(url),
        status,
        message,
    })
}

/// Creates a repository; `Ok(false)` when it existed already (and `exist_ok`).
pub fn create_repo(
    client: &Client,
    repo: &RepoId,
    private: bool,
    exist_ok: bool,
) -> Result<bool, ClientError> {
    let url = client.api("repos/create");
    let (status, body) = client.post_json(
        &url,
        &json!({"name": repo.id, "private": private, "type": repo.kind.singular()}),
    )?;
    if status == 409 {
        if exist_ok {
            return Ok(false);
        }
        return Err(ClientError::Usage(format!(
            "{}: the repository exists already",
            repo.id
        )));
    }
    check(status, &body, &url)?;
    Ok(true)
}

/// Pushes a folder (or one file) to a repository.
pub fn push(
    client: &Client,
    dir: &Path,
    repo: &RepoId,
    opts: &PushOptions,
) -> Result<Pushed, ClientError> {
    let files = local_files(dir, opts)?;
    let ep = &client.settings.endpoint;
    let branch = opts.branch.clone().unwrap_or_else(|| "main".into());
    let rev = percent_encoding::utf8_percent_encode(&branch, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    // 1. The repository and the branch (a dry run creates nothing, and a repository that
    // does not exist yet has nothing to compare with).
    let exists = if opts.dry_run {
        match client.info(repo, Some(&branch)) {
            Ok(_) => true,
            Err(ClientError::RepoNotFound(_) | ClientError::RevisionNotFound { .. }) => false,
            Err(e) => return Err(e),
        }
    } else {
        create_repo(client, repo, opts.private, true)?;
        if branch != "main" {
            let url = client.api(&format!(
                "{}/{}/branch/{}",
                repo.kind.plural(),
                repo.id,
                crate::http::encode_path(&branch)
            ));
            let (status, body) = client.post_json(&url, &json!({}))?;
            if status != 409 {
                check(status, &body, &url)?;
            }
        }
        true
    };
    // 2. Upload modes and what the server already has.
    let mut modes = std::collections::HashMap::new();
    for chunk in files.chunks(256).filter(|_| exists) {
        let url = client.api(&format!(
            "{}/{}/preupload/{rev}",
            repo.kind.plural(),
            repo.id
        ));
        let payload: Vec<Value> = chunk
            .iter()
            .map(|f| json!({"path": f.path, "size": f.size, "sample": base64::engine::general_purpose::STANDARD.encode(&f.sample)}))
            .collect();
        let (status, body) = client.post_json(&url, &json!({"files": payload}))?;
        check(status, &body, &url)?;
        for f in body
            .get("files")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let path = f
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let mode = f
                .get("uploadMode")
                .and_then(Value::as_str)
                .unwrap_or("regular")
                == "lfs";
            let oid = f.get("oid").and_then(Value::as_str).map(str::to_string);
            modes.insert(path, (mode, oid));
        }
    }
    let (mut changed, mut unchanged) = (Vec::new(), Vec::new());
    for f in &files {
        // Without the server's answer (a dry run against a new repository): its default rule.
        let (lfs, oid) = modes
            .get(&f.path)
            .cloned()
            .unwrap_or((f.size >= 10 << 20, None));
        let local = if lfs { &f.sha256 } else { &f.git_sha1 };
        if oid.as_deref() == Some(local.as_str()) {
            unchanged.push(f.path.clone());
        } else {
            changed.push((f, lfs));
        }
    }
    // 3. What to delete: the repository's files under path_in_repo matching --delete that
    // are not being uploaded.
    let mut deleted = Vec::new();
    if !opts.delete.is_empty() && exists {
        let prefix = clean_repo_path(opts.path_in_repo.as_deref().unwrap_or(""))?;
        let prefix = if dir.is_dir() { prefix } else { String::new() };
        let patterns = crate::download::globset(&opts.delete)?;
        let head = client.info(repo, Some(&branch))?;
        let commit = head.get("sha").and_then(Value::as_str).unwrap_or(&branch);
        let ours: std::collections::HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
        for remote in client.files(repo, commit)? {
            let rel = if prefix.is_empty() {
                Some(remote.path.as_str())
            } else {
                remote
                    .path
                    .strip_prefix(&prefix)
                    .and_then(|r| r.strip_prefix('/'))
            };
            if let Some(rel) = rel
                && !ours.contains(remote.path.as_str())
                && crate::download::selected(rel, &patterns, &None)
            {
                deleted.push(remote.path.clone());
            }
        }
    }
    if opts.dry_run || (changed.is_empty() && deleted.is_empty()) {
        let commit = if opts.dry_run {
            String::new()
        } else {
            client
                .info(repo, Some(&branch))?
                .get("sha")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        return Ok(Pushed {
            repo: repo.id.clone(),
            commit,
            url: None,
            uploaded: changed.iter().map(|(f, _)| f.path.clone()).collect(),
            unchanged,
            deleted,
            lfs_bytes: 0,
            dry_run: opts.dry_run,
        });
    }
    // 4. Large files through LFS.
    let lfs: Vec<&Local> = changed
        .iter()
        .filter(|(_, l)| *l)
        .map(|(f, _)| *f)
        .collect();
    let mut lfs_bytes = 0;
    let total: u64 = lfs.iter().map(|f| f.size).sum();
    let bar = if opts.progress {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "uploading [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    if !lfs.is_empty() {
        let url = format!(
            "{ep}/{}{}.git/info/lfs/objects/batch",
            repo.url_prefix(),
            repo.id
        );
        let objects: Vec<Value> = lfs
            .iter()
            .map(|f| json!({"oid": f.sha256, "size": f.size}))
            .collect();
        let (status, body) = client.post_json(&url, &json!({"operation": "upload", "transfers": ["basic"], "objects": objects, "hash_algo": "sha256"}))?;
        check(status, &body, &url)?;
        for o in body
            .get("objects")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            if let Some(err) = o.get("error") {
                return Err(ClientError::Http {
                    url: crate::settings::redact(&url),
                    status: 422,
                    message: err.to_string(),
                });
            }
            let oid = o.get("oid").and_then(Value::as_str).unwrap_or("");
            let Some(f) = lfs.iter().find(|f| f.sha256 == oid) else {
                continue;
            };
            if let Some(href) = o.pointer("/actions/upload/href").and_then(Value::as_str) {
                let start = bar.position();
                let status = client.put_reader(href, || {
                    // A retry starts the file again: so does its share of the bar.
                    bar.set_position(start);
                    let file = File::open(&f.full).map_err(ClientError::io(&f.full))?;
                    Ok(Counted {
                        inner: file,
                        bar: bar.clone(),
                    })
                })?;
                check(status, &Value::Null, href)?;
                lfs_bytes += f.size;
                if let Some(verify) = o.pointer("/actions/verify/href").and_then(Value::as_str) {
                    let (status, body) =
                        client.post_json(verify, &json!({"oid": f.sha256, "size": f.size}))?;
                    check(status, &body, verify)?;
                }
            }
        }
    }
    bar.finish_and_clear();
    // 5. One commit.
    let summary = opts.message.clone().unwrap_or_else(|| match deleted.len() {
        0 => format!("Upload {} files with zoo", changed.len()),
        d => format!("Upload {} files, delete {d}, with zoo", changed.len()),
    });
    let (summary, description) = match summary.split_once("\n\n") {
        Some((s, d)) => (s.to_string(), d.to_string()),
        None => (summary, String::new()),
    };
    let mut lines = vec![
        json!({"key": "header", "value": {"summary": summary, "description": description}})
            .to_string(),
    ];
    for (f, is_lfs) in &changed {
        if *is_lfs {
            lines.push(json!({"key": "lfsFile", "value": {"path": f.path, "algo": "sha256", "oid": f.sha256, "size": f.size}}).to_string());
        } else {
            let bytes = std::fs::read(&f.full).map_err(ClientError::io(&f.full))?;
            let content = base64::engine::general_purpose::STANDARD.encode(bytes);
            lines.push(json!({"key": "file", "value": {"path": f.path, "content": content, "encoding": "base64"}}).to_string());
        }
    }
    for path in &deleted {
        lines.push(json!({"key": "deletedFile", "value": {"path": path}}).to_string());
    }
    let url = client.api(&format!("{}/{}/commit/{rev}", repo.kind.plural(), repo.id));
    let (status, body) = client.post_bytes(
        &url,
        "application/x-ndjson",
        (lines.join("\n") + "\n").as_bytes(),
        crate::http::Idempotence::Once,
    )?;
    check(status, &body, &url)?;
    Ok(Pushed {
        repo: repo.id.clone(),
        commit: body
            .get("commitOid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        url: body
            .get("commitUrl")
            .and_then(Value::as_str)
            .map(str::to_string),
        uploaded: changed.iter().map(|(f, _)| f.path.clone()).collect(),
        unchanged,
        deleted,
        lfs_bytes,
        dry_run: false,
    })
}
