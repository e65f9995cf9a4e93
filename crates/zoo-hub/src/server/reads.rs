//! Reading repositories: info, listings and search, file trees, and file downloads with
//! `Range`.

use super::*;

/// `securityFileStatus` as the Hub's file listing shapes it, from zoo's scan.
pub(super) fn security(f: &FileEntry) -> Option<Value> {
    let verdict = f.verdict.as_deref()?;
    let scan: Value = f
        .scan
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let level = |v: &str| match v {
        "safe" => "innocuous",
        "suspicious" => "suspicious",
        _ => "dangerous",
    };
    let imports: Vec<Value> = scan
        .get("imports")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|i| json!({"module": i["module"], "name": i["name"], "safety": level(i["verdict"].as_str().unwrap_or(""))}))
                .collect()
        })
        .unwrap_or_default();
    Some(json!({
        "status": match verdict { "safe" => "safe", "suspicious" => "caution", _ => "unsafe" },
        "verdict": verdict,
        "avScan": {"virusFound": false, "status": "not-scanned"},
        "pickleImportScan": {"highestSafetyLevel": if imports.is_empty() { "innocuous" } else { level(verdict) }, "imports": imports},
        "notes": scan.get("notes").cloned().unwrap_or(json!([])),
    }))
}

pub(super) fn sibling(f: &FileEntry) -> Value {
    let mut v = json!({"rfilename": f.path, "size": f.size, "blobId": f.git_oid});
    if f.lfs {
        v["lfs"] = json!({"sha256": f.sha256, "size": f.size, "pointerSize": lfs_pointer(&f.sha256, f.size).len()});
    }
    if let Some(s) = security(f) {
        v["security"] = s;
    }
    v
}

/// The repository JSON shared by info and listings.
pub(super) fn repo_json(
    ctx: &Ctx<'_>,
    repo: &Repo,
    row: &IndexRow,
    sha: Option<&str>,
    card: bool,
) -> Value {
    let id = repo.full_name();
    let mut v = json!({
        "_id": format!("{:024x}", repo.id),
        "id": id,
        "author": repo.namespace,
        "private": repo.private,
        "gated": false,
        "disabled": false,
        "downloads": repo.downloads,
        "likes": repo.likes,
        "tags": row.tags,
        "createdAt": iso(repo.created_at),
        "lastModified": iso(repo.last_modified),
    });
    if repo.kind == RepoKind::Model {
        v["modelId"] = json!(id);
        if let Some(t) = &row.pipeline_tag {
            v["pipeline_tag"] = json!(t);
        }
        if let Some(l) = &row.library {
            v["library_name"] = json!(l);
        }
    }
    if let Some(sha) = sha {
        v["sha"] = json!(sha);
    }
    if let Some(p) = row.params {
        let by: serde_json::Map<String, Value> = row
            .params_by_dtype
            .iter()
            .map(|(d, n)| (d.clone(), json!(n)))
            .collect();
        v["safetensors"] = json!({"parameters": by, "total": p});
    }
    let metrics: serde_json::Map<String, Value> = row
        .metrics
        .iter()
        .map(|(k, x)| (k.clone(), json!(x)))
        .collect();
    v["zoo"] = json!({"architecture": row.architecture, "params": row.params, "metrics": metrics, "baseModels": row.base_models});
    if card
        && let Some(c) = row
            .card_json
            .as_deref()
            .and_then(|c| serde_json::from_str::<Value>(c).ok())
    {
        v["cardData"] = c;
    }
    let _ = ctx;
    v
}

pub(super) fn info(
    ctx: &Ctx<'_>,
    kind: RepoKind,
    ns: &str,
    name: &str,
    rev: Option<&str>,
) -> HubResult {
    let repo = ctx.readable(kind, ns, name)?;
    let sha = ctx.resolve(&repo, rev.unwrap_or("main"))?;
    let files = ctx.hub.meta.files(repo.id, &sha)?;
    // The index follows the default branch; other revisions are computed on demand.
    let row = match rev {
        None | Some("main") => ctx.hub.meta.index(repo.id)?.unwrap_or_default(),
        Some(_) => crate::index::compute(&files, ctx.hub.blobs.as_ref()),
    };
    let mut v = repo_json(ctx, &repo, &row, Some(&sha), true);
    v["siblings"] = Value::Array(files.iter().map(sibling).collect());
    let issues: Vec<Value> = files
        .iter()
        .filter(|f| {
            matches!(
                f.verdict.as_deref(),
                Some("dangerous" | "invalid" | "suspicious")
            )
        })
        .map(|f| json!({"path": f.path, "level": f.verdict}))
        .collect();
    v["securityRepoStatus"] = json!({"scansDone": true, "filesWithIssues": issues});
    if let Some(config) = files
        .iter()
        .find(|f| f.path == "config.json")
        .and_then(|f| small_json(ctx.hub, f))
    {
        v["config"] = config;
    }
    v["zoo"]["children"] = json!(ctx.visible_children(&repo.full_name())?);
    Ok(json_response(StatusCode::OK, v))
}

pub(super) fn small_json(hub: &Hub, f: &FileEntry) -> Option<Value> {
    if f.size > 1 << 20 {
        return None;
    }
    let mut r = hub.blobs.read_range(&f.sha256, 0, f.size).ok()?;
    let mut s = Vec::new();
    r.read_to_end(&mut s).ok()?;
    serde_json::from_slice(&s).ok()
}

pub(super) fn tree(
    ctx: &Ctx<'_>,
    kind: RepoKind,
    ns: &str,
    name: &str,
    rev: &str,
    dir: &str,
) -> HubResult {
    let repo = ctx.readable(kind, ns, name)?;
    let sha = ctx.resolve(&repo, rev)?;
    let files = ctx.hub.meta.files(repo.id, &sha)?;
    let recursive = ctx.flag("recursive");
    let dir = dir.trim_matches('/');
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut dirs = std::collections::BTreeSet::new();
    let mut entries = Vec::new();
    for f in files.iter().filter(|f| f.path.starts_with(&prefix)) {
        let rest = &f.path[prefix.len()..];
        let parts: Vec<&str> = rest.split('/').collect();
        for i in 1..parts.len() {
            if !recursive && i > 1 {
                break;
            }
            dirs.insert(format!("{prefix}{}", parts[..i].join("/")));
        }
        if recursive || parts.len() == 1 {
            entries.push(file_json(f));
        }
    }
    if !dir.is_empty() && entries.is_empty() && dirs.is_empty() {
        return Err(HubError::EntryNotFound {
            path: dir.to_string(),
            commit: sha,
        });
    }
    let mut all: Vec<Value> = dirs.into_iter().map(|d| dir_json(&d)).collect();
    all.extend(entries);
    all.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    let page = ctx
        .param("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(ctx.hub.config.page_size)
        .clamp(1, 10_000);
    paginate(ctx, &all, page)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn resolve(
    ctx: &Ctx<'_>,
    method: &Method,
    headers: &HeaderMap,
    kind: RepoKind,
    ns: &str,
    name: &str,
    rev: &str,
    path: &str,
) -> HubResult {
    let repo = ctx.readable(kind, ns, name)?;
    let sha = ctx.resolve(&repo, rev)?;
    let file = ctx
        .hub
        .meta
        .file(repo.id, &sha, path)?
        .ok_or_else(|| HubError::EntryNotFound {
            path: path.to_string(),
            commit: sha.clone(),
        })?;
    let etag = if file.lfs {
        file.sha256.clone()
    } else {
        file.git_oid.clone()
    };
    let size = file.size;
    let range = headers
        .get(header::RANGE)
        .and_then(|r| r.to_str().ok())
        .map(|r| parse_range(r, size))
        .transpose()?;
    let (status, start, end) = match range {
        Some(Some((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        _ => (StatusCode::OK, 0, size),
    };
    let mut r = Response::builder()
        .status(status)
        .header("x-repo-commit", &sha)
        .header(header::ETAG, format!("\"{etag}\""))
        .header("x-linked-etag", format!("\"{etag}\""))
        .header("x-linked-size", size.to_string())
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, (end - start).to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        r = r.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    // LFS files straight from the object store, as the Hub sends them to its CDN: the
    // metadata headers here, the bytes (and `Range`) there.
    if file.lfs
        && ctx.hub.config.blobs_redirect
        && let Some(url) = ctx
            .hub
            .blobs
            .presigned_get(&file.sha256, std::time::Duration::from_secs(900))?
    {
        if *method == Method::GET {
            ctx.hub.meta.count_download(repo.id)?;
        }
        return Response::builder()
            .status(StatusCode::FOUND)
            .header("x-repo-commit", &sha)
            .header(header::ETAG, format!("\"{etag}\""))
            .header("x-linked-etag", format!("\"{etag}\""))
            .header("x-linked-size", size.to_string())
            .header(header::LOCATION, url)
            .header(header::CONTENT_LENGTH, "0")
            .body(Body::empty())
            .map_err(|e| HubError::Internal(e.to_string()));
    }
    if *method == Method::HEAD {
        return r
            .body(Body::empty())
            .map_err(|e| HubError::Internal(e.to_string()));
    }
    if start == 0 {
        ctx.hub.meta.count_download(repo.id)?;
    }
    let reader = ctx.hub.blobs.read_range(&file.sha256, start, end)?;
    r.body(stream_reader(reader))
        .map_err(|e| HubError::Internal(e.to_string()))
}

/// `Range: bytes=a-b | a- | -n` → the half-open byte range, parsed and checked by
/// `http-range-header` (RFC 9110): `None` for a header that does not parse or asks for
/// several ranges (served whole, as HTTP allows), an error when it cannot be satisfied.
/// Issue 16: `bytes=0-18446744073709551615` overflowed the hand-written parser.
pub(super) fn parse_range(header: &str, size: u64) -> HubResult<Option<(u64, u64)>> {
    let Ok(parsed) = http_range_header::parse_range_header(header) else {
        return Ok(None);
    };
    match parsed.validate(size) {
        // `end` < `size`, so `end + 1` cannot overflow.
        Ok(ranges) if ranges.len() == 1 => Ok(Some((*ranges[0].start(), *ranges[0].end() + 1))),
        Ok(_) => Ok(None),
        Err(_) => Err(HubError::RangeNotSatisfiable(size)),
    }
}

/// Streams a blocking reader as a response body, 256 KiB at a time.
pub(super) fn stream_reader(reader: Box<dyn Read + Send>) -> Body {
    // One chunk at a time, each read on a blocking thread that is free again between chunks:
    // a slow client holds no thread and at most one chunk (a thread and 2 MB of queued
    // chunks per download made 500 concurrent downloads cost gigabytes).
    let stream = futures_util::stream::unfold(Some(reader), |state| async move {
        let mut reader = state?;
        let (reader, read) = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; 256 << 10];
            let read = reader.read(&mut buf).map(|n| {
                buf.truncate(n);
                buf
            });
            (reader, read)
        })
        .await
        .ok()?;
        match read {
            Ok(buf) if buf.is_empty() => None,
            Ok(buf) => Some((Ok(Bytes::from(buf)), Some(reader))),
            Err(e) => Some((Err(e), None)),
        }
    });
    Body::from_stream(stream)
}

pub(super) fn list(ctx: &Ctx<'_>, kind: RepoKind) -> HubResult {
    let search = ctx.params("search").into_iter().find(|s| !s.is_empty());
    let author = ctx.param("author").map(str::to_string);
    let query = Query::parse(
        &ctx.params("filter"),
        ctx.param("pipeline_tag"),
        ctx.param("library"),
        ctx.param("sort"),
        ctx.param("direction"),
    )?;
    let viewer = ctx.viewer.as_ref().map(|v| v.user.clone());
    let mut items = ctx.hub.meta.candidates(&Candidates {
        kind: Some(kind),
        author: author.as_deref(),
        search: search.as_deref(),
        viewer: viewer.as_deref(),
    })?;
    query.apply(&mut items);
    let full = ctx.flag("full");
    let card = full || ctx.flag("cardData");
    let page = ctx
        .param("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(ctx.hub.config.page_size)
        .clamp(1, 10_000);
    let cursor: usize = ctx
        .param("cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut out = Vec::with_capacity(items.len());
    for (i, (repo, row)) in items.iter().enumerate() {
        // Only the page being returned needs its head commit and files.
        if i < cursor || i >= cursor.saturating_add(page) {
            out.push(Value::Null);
            continue;
        }
        let sha = ctx.hub.meta.resolve(repo.id, "main")?;
        let mut v = repo_json(ctx, repo, row, sha.as_deref(), card);
        if full {
            let files = match &sha {
                Some(s) => ctx.hub.meta.files(repo.id, s)?,
                None => Vec::new(),
            };
            v["siblings"] = Value::Array(files.iter().map(sibling).collect());
        }
        out.push(v);
    }
    paginate(ctx, &out, page)
}

/// A file as `tree` and `paths-info` list it.
fn file_json(f: &FileEntry) -> Value {
    let mut e = json!({"type": "file", "path": f.path, "oid": f.git_oid, "size": f.size});
    if f.lfs {
        e["lfs"] = json!({"oid": f.sha256, "size": f.size, "pointerSize": lfs_pointer(&f.sha256, f.size).len()});
    }
    if let Some(s) = security(f) {
        e["securityFileStatus"] = s;
    }
    e
}

/// A folder as `tree` and `paths-info` list it.
fn dir_json(d: &str) -> Value {
    let oid = git_blob_sha1(d.as_bytes());
    json!({"type": "directory", "path": d, "oid": oid, "size": 0})
}

/// `POST /api/{kind}s/{repo}/paths-info/{rev}`: the files and folders among `paths` (form
/// fields, as huggingface_hub sends them, or JSON), missing ones left out.
pub(super) async fn paths_info(
    ctx: &Ctx<'_>,
    kind: RepoKind,
    ns: &str,
    name: &str,
    rev: &str,
    body: Body,
) -> HubResult {
    let repo = ctx.readable(kind, ns, name)?;
    let sha = ctx.resolve(&repo, rev)?;
    let bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .map_err(|e| HubError::TooLarge(format!("request body: {e}")))?;
    let paths: Vec<String> = match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) => v["paths"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) => form_urlencoded::parse(&bytes)
            .filter(|(k, _)| k == "paths")
            .map(|(_, v)| v.into_owned())
            .collect(),
    };
    let files = ctx.hub.meta.files(repo.id, &sha)?;
    let mut out = Vec::new();
    for p in paths {
        let p = p.trim_matches('/');
        if let Some(f) = files.iter().find(|f| f.path == p) {
            out.push(file_json(f));
        } else if !p.is_empty() && files.iter().any(|f| f.path.starts_with(&format!("{p}/"))) {
            out.push(dir_json(p));
        }
    }
    let mut r = json_response(StatusCode::OK, Value::Array(out));
    if let Ok(v) = HeaderValue::from_str(&sha) {
        r.headers_mut().insert("x-repo-commit", v);
    }
    Ok(r)
}
