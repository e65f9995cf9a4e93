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

/// What a push did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pushed {
    pub repo: String,
    pub commit: String,
    pub url: Option<String>,
    pub uploaded: Vec<String>,
    pub unchanged: Vec<String>,
    pub lfs_bytes: u64,
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
            let mut f = File::open(&p).map_err(ClientError::io(&p))?;
            let mut sha = Hasher::new(false, meta.len());
            let mut git = Hasher::new(true, meta.len());
            let mut sample = Vec::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).map_err(ClientError::io(&p))?;
                if n == 0 {
                    break;
                }
                if sample.len() < 512 {
                    sample.extend_from_slice(&buf[..n.min(512 - sample.len())]);
                }
                sha.update(&buf[..n]);
                git.update(&buf[..n]);
            }
            out.push(Local {
                path: rel,
                full: p,
                size: meta.len(),
                sha256: sha.finish(),
                git_sha1: git.finish(),
                sample,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
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

/// Pushes a folder to a repository.
pub fn push(
    client: &Client,
    dir: &Path,
    repo: &RepoId,
    opts: &PushOptions,
) -> Result<Pushed, ClientError> {
    let files = walk(dir)?;
    let ep = &client.settings.endpoint;
    // 1. The repository (409: it exists already).
    let (status, body) = client.post_json(
        &client.api("repos/create"),
        &json!({"name": repo.id, "private": opts.private, "type": repo.kind.singular()}),
    )?;
    if status != 409 {
        check(status, &body, &client.api("repos/create"))?;
    }
    let branch = opts.branch.clone().unwrap_or_else(|| "main".into());
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
    let rev = percent_encoding::utf8_percent_encode(&branch, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    // 2. Upload modes and what the server already has.
    let mut modes = std::collections::HashMap::new();
    for chunk in files.chunks(256) {
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
        let (lfs, oid) = modes.get(&f.path).cloned().unwrap_or((false, None));
        let local = if lfs { &f.sha256 } else { &f.git_sha1 };
        if oid.as_deref() == Some(local.as_str()) {
            unchanged.push(f.path.clone());
        } else {
            changed.push((f, lfs));
        }
    }
    if changed.is_empty() {
        let info = client.info(repo, Some(&branch))?;
        let commit = info
            .get("sha")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        return Ok(Pushed {
            repo: repo.id.clone(),
            commit,
            url: None,
            uploaded: Vec::new(),
            unchanged,
            lfs_bytes: 0,
        });
    }
    // 3. Large files through LFS.
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
                let file = File::open(&f.full).map_err(ClientError::io(&f.full))?;
                let status = client.put_reader(
                    href,
                    Counted {
                        inner: file,
                        bar: bar.clone(),
                    },
                )?;
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
    // 4. One commit.
    let summary = opts
        .message
        .clone()
        .unwrap_or_else(|| format!("Upload {} files with zoo", changed.len()));
    let mut lines = vec![
        json!({"key": "header", "value": {"summary": summary, "description": ""}}).to_string(),
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
    let url = client.api(&format!("{}/{}/commit/{rev}", repo.kind.plural(), repo.id));
    let (status, body) = client.post_bytes(
        &url,
        "application/x-ndjson",
        (lines.join("\n") + "\n").as_bytes(),
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
        lfs_bytes,
    })
}
