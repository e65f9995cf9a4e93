//! Writing repositories: the preupload classification and the ndjson commit (regular files
//! inline, LFS files by oid), with every new file scanned before it is committed.

use super::*;

/// Files larger than this, binary files and weight formats go through LFS.
pub(super) const LFS_THRESHOLD: u64 = 10_000_000;

/// Extensions that always go through LFS, as the Hub's default `.gitattributes` says.
pub(super) const LFS_EXTENSIONS: &[&str] = &[
    "safetensors",
    "bin",
    "pt",
    "pth",
    "ckpt",
    "h5",
    "onnx",
    "msgpack",
    "pkl",
    "pickle",
    "npy",
    "npz",
    "gguf",
    "zip",
    "tar",
    "gz",
    "tgz",
    "zst",
    "parquet",
    "arrow",
    "tflite",
    "ot",
    "model",
    "joblib",
    "png",
    "jpg",
    "jpeg",
    "webp",
];

pub(super) fn upload_mode(path: &str, size: u64, sample: &[u8]) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if size > LFS_THRESHOLD || sample.contains(&0) || LFS_EXTENSIONS.contains(&ext.as_str()) {
        "lfs"
    } else {
        "regular"
    }
}

pub(super) async fn preupload(
    ctx: &Ctx<'_>,
    kind: RepoKind,
    ns: &str,
    name: &str,
    rev: &str,
    body: Body,
) -> HubResult {
    let repo = ctx.writable(kind, ns, name)?;
    let body = read_json(body, 64 << 20).await?;
    let head = ctx.hub.meta.resolve(repo.id, rev)?;
    let files = body
        .get("files")
        .and_then(Value::as_array)
        .ok_or_else(|| HubError::BadRequest("`files` is required".into()))?;
    let mut out = Vec::new();
    for f in files {
        let path = f
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| HubError::BadRequest("a file has no `path`".into()))?;
        if let Some(p) = path_problem(path) {
            return Err(HubError::BadRequest(format!("`{path}`: {p}")));
        }
        let size = f.get("size").and_then(Value::as_u64).unwrap_or(0);
        let sample = f
            .get("sample")
            .and_then(Value::as_str)
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .unwrap_or_default();
        let mode = upload_mode(path, size, &sample);
        let mut entry = json!({"path": path, "uploadMode": mode, "shouldIgnore": false});
        if let Some(head) = &head
            && let Some(existing) = ctx.hub.meta.file(repo.id, head, path)?
        {
            entry["oid"] = json!(if mode == "lfs" {
                existing.sha256
            } else {
                existing.git_oid
            });
        }
        out.push(entry);
    }
    Ok(json_response(StatusCode::OK, json!({"files": out})))
}

pub(super) async fn commit(
    ctx: &Ctx<'_>,
    kind: RepoKind,
    ns: &str,
    name: &str,
    rev: &str,
    body: Body,
) -> HubResult {
    let repo = ctx.writable(kind, ns, name)?;
    let author = ctx.user()?.user.clone();
    if ctx.flag("create_pr") {
        return Err(HubError::BadRequest(
            "pull requests are not supported by this hub: commit to a branch".into(),
        ));
    }
    if !ctx.is_branch(&repo, rev)? {
        return match ctx.hub.meta.resolve(repo.id, rev)? {
            Some(_) => Err(HubError::BadRequest(format!(
                "`{rev}` is not a branch: commits go to branches"
            ))),
            None => Err(HubError::RevisionNotFound(rev.to_string())),
        };
    }
    let limit = usize::try_from(ctx.hub.config.max_commit_bytes).unwrap_or(usize::MAX);
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        HubError::TooLarge(format!(
            "commit body exceeds {} bytes: send large files through LFS",
            ctx.hub.config.max_commit_bytes
        ))
    })?;
    let crate::wire::CommitRequest {
        summary,
        description,
        parent,
        ops,
    } = crate::wire::parse_commit(&bytes)?;
    // Store regular files and check LFS objects: blobs become visible only once hashed.
    let blobs = ctx.hub.blobs.clone();
    let allow_dangerous = ctx.hub.config.allow_dangerous_pickles;
    let (added, deleted_files, deleted_folders) = tokio::task::spawn_blocking(move || -> HubResult<_> {
        let mut added = Vec::new();
        let (mut df, mut dd) = (Vec::new(), Vec::new());
        for op in ops {
            match op {
                crate::wire::Op::File { path, content } => {
                    let mut w = blobs.writer()?;
                    w.write_chunk(&content)?;
                    let info = w.commit(None, Some(content.len() as u64))?;
                    let mut e = FileEntry {
                        path,
                        sha256: info.sha256,
                        size: info.size,
                        git_oid: git_blob_sha1(&content),
                        lfs: false,
                        verdict: None,
                        scan: None,
                    };
                    crate::scan::scan_entry(blobs.as_ref(), &mut e, allow_dangerous)?;
                    added.push(e);
                }
                crate::wire::Op::Lfs { path, oid, size } => {
                    let stored = blobs.size(&oid)?.ok_or_else(|| {
                        HubError::BadRequest(format!("`{path}`: LFS object {oid} was not uploaded (or failed its hash check)"))
                    })?;
                    if size.is_some_and(|s| s != stored) {
                        return Err(HubError::BadRequest(format!("`{path}`: LFS object {oid} is {stored} bytes, not {}", size.unwrap())));
                    }
                    let pointer = lfs_pointer(&oid, stored);
                    let mut e = FileEntry {
                        path,
                        sha256: oid,
                        size: stored,
                        git_oid: git_blob_sha1(pointer.as_bytes()),
                        lfs: true,
                        verdict: None,
                        scan: None,
                    };
                    crate::scan::scan_entry(blobs.as_ref(), &mut e, allow_dangerous)?;
                    added.push(e);
                }
                crate::wire::Op::DeleteFile(p) => df.push(p),
                crate::wire::Op::DeleteFolder(p) => dd.push(p),
            }
        }
        Ok((added, df, dd))
    })
    .await
    .map_err(|e| HubError::Internal(e.to_string()))??;
    let added = cover_lfs_files(ctx.hub, &repo, rev, added).await?;
    let id = ctx.hub.meta.commit(&NewCommit {
        repo_id: repo.id,
        branch: rev.to_string(),
        expected_parent: parent,
        summary: summary.clone(),
        description,
        author,
        added,
        deleted_files,
        deleted_folders,
        pushed: None,
    })?;
    if rev == "main" {
        reindex(ctx.hub, &repo, &id).await?;
    }
    Ok(json_response(
        StatusCode::OK,
        json!({"commitUrl": format!("{}/commit/{id}", ctx.repo_url(&repo)), "commitOid": id, "commitMessage": summary, "pullRequestUrl": null, "success": true}),
    ))
}

/// Recomputes the search index of a repository from a commit (its new `main`).
pub(crate) async fn reindex(hub: &Hub, repo: &Repo, commit: &str) -> HubResult<()> {
    let files = hub.meta.files(repo.id, commit)?;
    let blobs = hub.blobs.clone();
    let row = tokio::task::spawn_blocking(move || crate::index::compute(&files, blobs.as_ref()))
        .await
        .map_err(|e| HubError::Internal(e.to_string()))?;
    hub.meta.set_index(repo.id, &row)?;
    Ok(())
}

/// `added`, plus a `.gitattributes` that covers every LFS file among them (so that a git
/// clone checks their content out, not their pointers), when the branch's does not.
async fn cover_lfs_files(
    hub: &Hub,
    repo: &Repo,
    rev: &str,
    mut added: Vec<FileEntry>,
) -> HubResult<Vec<FileEntry>> {
    let lfs: Vec<String> = added
        .iter()
        .filter(|f| f.lfs)
        .map(|f| f.path.clone())
        .collect();
    if lfs.is_empty() {
        return Ok(added);
    }
    let current = match added.iter().find(|f| f.path == ".gitattributes") {
        Some(f) => Some(f.clone()),
        None => match hub.meta.resolve(repo.id, rev)? {
            Some(head) => hub.meta.file(repo.id, &head, ".gitattributes")?,
            None => None,
        },
    };
    let blobs = hub.blobs.clone();
    let entry = tokio::task::spawn_blocking(move || -> HubResult<Option<FileEntry>> {
        let text = match &current {
            Some(f) if !f.lfs && f.size < 1 << 20 => {
                let mut s = String::new();
                blobs
                    .read_range(&f.sha256, 0, f.size)?
                    .read_to_string(&mut s)
                    .map_err(|e| HubError::Internal(format!(".gitattributes: {e}")))?;
                s
            }
            _ => String::new(),
        };
        let paths: Vec<&str> = lfs.iter().map(String::as_str).collect();
        let Some(new) = crate::gitattributes::covering(&text, &paths) else {
            return Ok(None);
        };
        let mut w = blobs.writer()?;
        w.write_chunk(new.as_bytes())?;
        let info = w.commit(None, Some(new.len() as u64))?;
        Ok(Some(FileEntry {
            path: ".gitattributes".into(),
            sha256: info.sha256,
            size: info.size,
            git_oid: git_blob_sha1(new.as_bytes()),
            lfs: false,
            verdict: None,
            scan: None,
        }))
    })
    .await
    .map_err(|e| HubError::Internal(e.to_string()))??;
    if let Some(e) = entry {
        added.retain(|f| f.path != ".gitattributes");
        added.push(e);
    }
    Ok(added)
}
