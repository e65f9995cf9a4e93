//! The routes: the Hugging Face Hub protocol as `huggingface_hub` and `hf-hub` use it
//! (see `../shared/design/hub-protocol.md`), plus zoo's documented search extensions.
//!
//! URLs are matched by hand on percent-decoded segments: revisions and paths arrive in
//! shapes a router's patterns do not express (`refs%2Fpr%2F1`, nested file paths).

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::auth::{Viewer, hash_token};
use crate::blobs::{BlobStore, git_blob_sha1, is_sha256, lfs_pointer};
use crate::config::HubConfig;
use crate::error::HubError;
use crate::meta::{Candidates, FileEntry, IndexRow, MetaStore, NewCommit, Repo, RepoKind, now_ms};
use crate::paths::{path_problem, valid_ref_name, valid_repo_part};
use crate::search::Query;

type HubResult<T = Response> = Result<T, HubError>;

/// Files larger than this, binary files and weight formats go through LFS.
const LFS_THRESHOLD: u64 = 10_000_000;
/// Extensions that always go through LFS, as the Hub's default `.gitattributes` says.
const LFS_EXTENSIONS: &[&str] = &[
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

/// A running hub's state.
pub struct Hub {
    pub meta: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub config: HubConfig,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Hub {
    pub fn new(
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        config: HubConfig,
        secret: Vec<u8>,
    ) -> Self {
        Hub {
            meta,
            blobs,
            config,
            secret,
        }
    }
}

/// The whole HTTP surface.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new().fallback(dispatch).with_state(hub)
}

async fn dispatch(
    State(hub): State<Arc<Hub>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match route(&hub, &method, &uri, &headers, body).await {
        Ok(r) => r,
        Err(e) => {
            let mut r = e.into_response();
            if method == Method::HEAD {
                *r.body_mut() = Body::empty();
            }
            r
        }
    }
}

/// Request context shared by the handlers.
struct Ctx<'a> {
    hub: &'a Hub,
    viewer: Option<Viewer>,
    base: String,
    query: Vec<(String, String)>,
    path: &'a str,
}

impl Ctx<'_> {
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn params(&self, key: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn flag(&self, key: &str) -> bool {
        matches!(self.param(key), Some("1" | "true" | "True" | ""))
    }
    fn user(&self) -> HubResult<&Viewer> {
        self.viewer.as_ref().ok_or_else(|| {
            HubError::Unauthorized("a token is required (Authorization: Bearer ...)".into())
        })
    }
    fn can_read(&self, repo: &Repo) -> bool {
        !repo.private
            || self
                .viewer
                .as_ref()
                .is_some_and(|v| v.user == repo.namespace)
    }
    /// A repository the caller may read; missing and private-to-someone-else answer alike.
    fn readable(&self, kind: RepoKind, ns: &str, name: &str) -> HubResult<Repo> {
        match self.hub.meta.repo(kind, ns, name)? {
            Some(r) if self.can_read(&r) => Ok(r),
            _ => Err(HubError::RepoNotFound),
        }
    }
    /// A repository the caller may write to.
    fn writable(&self, kind: RepoKind, ns: &str, name: &str) -> HubResult<Repo> {
        let v = self.user()?.clone();
        let repo = self.readable(kind, ns, name)?;
        if !v.write {
            return Err(HubError::Forbidden(
                "this token is read-only: create a write token".into(),
            ));
        }
        if v.user != repo.namespace {
            return Err(HubError::Forbidden(format!(
                "you cannot write to {}/{}",
                repo.namespace, repo.name
            )));
        }
        Ok(repo)
    }
    fn repo_url(&self, repo: &Repo) -> String {
        match repo.kind {
            RepoKind::Model => format!("{}/{}", self.base, repo.full_name()),
            RepoKind::Dataset => format!("{}/datasets/{}", self.base, repo.full_name()),
        }
    }
    fn resolve(&self, repo: &Repo, rev: &str) -> HubResult<String> {
        self.hub
            .meta
            .resolve(repo.id, rev)?
            .ok_or_else(|| HubError::RevisionNotFound(rev.to_string()))
    }
}

fn decode_segments(path: &str) -> HubResult<Vec<String>> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| HubError::BadRequest("path is not UTF-8".into()))
        })
        .collect()
}

async fn route(
    hub: &Hub,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> HubResult {
    let segs = decode_segments(uri.path())?;
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let query: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let base = match &hub.config.public_url {
        Some(u) => u.clone(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            format!("http://{host}")
        }
    };
    // Signed LFS uploads carry their authority in the URL: the Python client sends no token.
    if let (&Method::PUT, ["api", "lfs", "upload", oid]) = (method, s.as_slice()) {
        return lfs_put(hub, oid, &query, body).await;
    }
    let viewer = viewer(hub, headers)?;
    let ctx = Ctx {
        hub,
        viewer,
        base,
        query,
        path: uri.path(),
    };
    let get = *method == Method::GET || *method == Method::HEAD;
    match (method.clone(), s.as_slice()) {
        (_, ["api", "whoami-v2"]) if get => whoami(&ctx),
        (Method::POST, ["api", "repos", "create"]) => create_repo(&ctx, body).await,
        (Method::DELETE, ["api", "repos", "delete"]) => delete_repo(&ctx, body).await,
        (Method::POST, ["api", "validate-yaml"]) => validate_yaml(body).await,
        (_, ["api", kind @ ("models" | "datasets")]) if get => {
            list(&ctx, RepoKind::parse(kind).unwrap())
        }
        (_, ["api", kind @ ("models" | "datasets"), ns, name, rest @ ..]) => {
            let kind = RepoKind::parse(kind).unwrap();
            api_repo(&ctx, method, kind, ns, name, rest, body).await
        }
        (Method::POST, ["api", "lfs", "verify", kind, ns, name]) => {
            let kind =
                RepoKind::parse(kind).ok_or_else(|| HubError::NotFound("no such route".into()))?;
            lfs_verify(&ctx, kind, ns, name, body).await
        }
        (Method::POST, ["datasets", ns, repo, "info", "lfs", "objects", "batch"])
            if repo.ends_with(".git") =>
        {
            lfs_batch(&ctx, RepoKind::Dataset, ns, &repo[..repo.len() - 4], body).await
        }
        (Method::POST, [ns, repo, "info", "lfs", "objects", "batch"]) if repo.ends_with(".git") => {
            lfs_batch(&ctx, RepoKind::Model, ns, &repo[..repo.len() - 4], body).await
        }
        (_, ["datasets", ns, name, "resolve", rev, path @ ..]) if get && !path.is_empty() => {
            resolve(
                &ctx,
                method,
                headers,
                RepoKind::Dataset,
                ns,
                name,
                rev,
                &path.join("/"),
            )
        }
        (_, [ns, name, "resolve", rev, path @ ..]) if get && !path.is_empty() => resolve(
            &ctx,
            method,
            headers,
            RepoKind::Model,
            ns,
            name,
            rev,
            &path.join("/"),
        ),
        _ => Err(HubError::NotFound(format!(
            "no route for {method} {}",
            uri.path()
        ))),
    }
}

fn viewer(hub: &Hub, headers: &HeaderMap) -> HubResult<Option<Viewer>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| HubError::BadToken)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(HubError::BadToken)?
        .trim();
    match hub.meta.token(&hash_token(token))? {
        Some((user, scope, display_name)) => Ok(Some(Viewer {
            user,
            write: scope == "write",
            display_name,
        })),
        None => Err(HubError::BadToken),
    }
}

async fn read_json(body: Body, limit: usize) -> HubResult<Value> {
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| HubError::TooLarge(format!("request body: {e}")))?;
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| HubError::BadRequest(format!("request body is not JSON: {e}")))
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

fn iso(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_default()
}

fn whoami(ctx: &Ctx<'_>) -> HubResult {
    let v = ctx.user()?;
    Ok(json_response(
        StatusCode::OK,
        json!({
            "type": "user",
            "id": v.user,
            "name": v.user,
            "fullname": v.user,
            "email": null,
            "emailVerified": false,
            "isPro": false,
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": v.display_name, "role": if v.write { "write" } else { "read" }}},
        }),
    ))
}

fn names_from(body: &Value, viewer: &Viewer) -> HubResult<(RepoKind, String, String)> {
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| HubError::BadRequest("`name` is required".into()))?;
    let (ns, name) = match name.split_once('/') {
        Some((ns, n)) => (ns.to_string(), n.to_string()),
        None => (
            body.get("organization")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| viewer.user.clone()),
            name.to_string(),
        ),
    };
    let kind = match body.get("type").and_then(Value::as_str) {
        None => RepoKind::Model,
        Some(t) => RepoKind::parse(t).ok_or_else(|| {
            HubError::BadRequest(format!(
                "repository type `{t}` is not supported (model, dataset)"
            ))
        })?,
    };
    if !valid_repo_part(&ns) || !valid_repo_part(&name) {
        return Err(HubError::BadRequest(format!(
            "`{ns}/{name}` is not a valid repository id: use letters, digits, `-`, `_`, `.`, at most 96 characters each"
        )));
    }
    Ok((kind, ns, name))
}

async fn create_repo(ctx: &Ctx<'_>, body: Body) -> HubResult {
    let v = ctx.user()?.clone();
    let body = read_json(body, 1 << 20).await?;
    let (kind, ns, name) = names_from(&body, &v)?;
    if !v.write {
        return Err(HubError::Forbidden(
            "this token is read-only: create a write token".into(),
        ));
    }
    if ns != v.user {
        return Err(HubError::Forbidden(format!(
            "you cannot create repositories in `{ns}`"
        )));
    }
    let private = body
        .get("private")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || body.get("visibility").and_then(Value::as_str) == Some("private");
    match ctx.hub.meta.create_repo(kind, &ns, &name, private, &v.user) {
        Ok(repo) => Ok(json_response(
            StatusCode::OK,
            json!({"url": ctx.repo_url(&repo), "name": repo.full_name(), "id": repo.full_name()}),
        )),
        Err(crate::meta::MetaError::Exists(_)) => {
            let url = match kind {
                RepoKind::Model => format!("{}/{ns}/{name}", ctx.base),
                RepoKind::Dataset => format!("{}/datasets/{ns}/{name}", ctx.base),
            };
            Ok(json_response(
                StatusCode::CONFLICT,
                json!({"error": "You already created this repo", "url": url}),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

async fn delete_repo(ctx: &Ctx<'_>, body: Body) -> HubResult {
    let v = ctx.user()?.clone();
    let body = read_json(body, 1 << 20).await?;
    let (kind, ns, name) = names_from(&body, &v)?;
    ctx.writable(kind, &ns, &name)?;
    ctx.hub.meta.delete_repo(kind, &ns, &name)?;
    Ok(json_response(StatusCode::OK, json!({})))
}

async fn validate_yaml(body: Body) -> HubResult {
    let body = read_json(body, 4 << 20).await?;
    let content = body.get("content").and_then(Value::as_str).unwrap_or("");
    match zoo_card::ModelCard::parse(content).and_then(|c| c.results().map(|_| c)) {
        Ok(_) => Ok(json_response(
            StatusCode::OK,
            json!({"errors": [], "warnings": []}),
        )),
        Err(e) => Ok(json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": e.to_string(), "errors": [{"message": e.to_string()}], "warnings": []}),
        )),
    }
}

#[allow(clippy::too_many_arguments)]
async fn api_repo(
    ctx: &Ctx<'_>,
    method: &Method,
    kind: RepoKind,
    ns: &str,
    name: &str,
    rest: &[&str],
    body: Body,
) -> HubResult {
    let get = *method == Method::GET || *method == Method::HEAD;
    match (method.clone(), rest) {
        (_, []) if get => info(ctx, kind, ns, name, None),
        (_, ["revision", rev @ ..]) if get && !rev.is_empty() => {
            info(ctx, kind, ns, name, Some(&rev.join("/")))
        }
        (_, ["tree", rev, path @ ..]) if get => tree(ctx, kind, ns, name, rev, &path.join("/")),
        (_, ["refs"]) if get => refs(ctx, kind, ns, name),
        (_, ["commits", rev @ ..]) if get && !rev.is_empty() => {
            commits(ctx, kind, ns, name, &rev.join("/"))
        }
        (Method::POST, ["preupload", rev @ ..]) if !rev.is_empty() => {
            preupload(ctx, kind, ns, name, &rev.join("/"), body).await
        }
        (Method::POST, ["commit", rev @ ..]) if !rev.is_empty() => {
            commit(ctx, kind, ns, name, &rev.join("/"), body).await
        }
        (Method::POST, ["branch", branch @ ..]) if !branch.is_empty() => {
            create_branch(ctx, kind, ns, name, &branch.join("/"), body).await
        }
        (Method::DELETE, ["branch", branch @ ..]) if !branch.is_empty() => {
            delete_ref(ctx, kind, ns, name, "branch", &branch.join("/"))
        }
        (Method::POST, ["tag", rev @ ..]) if !rev.is_empty() => {
            create_tag(ctx, kind, ns, name, &rev.join("/"), body).await
        }
        (Method::DELETE, ["tag", tag @ ..]) if !tag.is_empty() => {
            delete_ref(ctx, kind, ns, name, "tag", &tag.join("/"))
        }
        (Method::PUT, ["settings"]) => settings(ctx, kind, ns, name, body).await,
        _ => Err(HubError::NotFound(format!(
            "no route for {method} {}",
            ctx.path
        ))),
    }
}

/// `securityFileStatus` as the Hub's file listing shapes it, from zoo's scan.
fn security(f: &FileEntry) -> Option<Value> {
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

fn sibling(f: &FileEntry) -> Value {
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
fn repo_json(ctx: &Ctx<'_>, repo: &Repo, row: &IndexRow, sha: Option<&str>, card: bool) -> Value {
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

fn info(ctx: &Ctx<'_>, kind: RepoKind, ns: &str, name: &str, rev: Option<&str>) -> HubResult {
    let repo = ctx.readable(kind, ns, name)?;
    let sha = ctx.resolve(&repo, rev.unwrap_or("main"))?;
    let files = ctx.hub.meta.files(&sha)?;
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
    v["zoo"]["children"] = json!(ctx.hub.meta.children(&repo.full_name())?);
    Ok(json_response(StatusCode::OK, v))
}

fn small_json(hub: &Hub, f: &FileEntry) -> Option<Value> {
    if f.size > 1 << 20 {
        return None;
    }
    let mut r = hub.blobs.read_range(&f.sha256, 0, f.size).ok()?;
    let mut s = Vec::new();
    r.read_to_end(&mut s).ok()?;
    serde_json::from_slice(&s).ok()
}

fn next_link(ctx: &Ctx<'_>, cursor: usize) -> HeaderValue {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in ctx.query.iter().filter(|(k, _)| k != "cursor") {
        q.append_pair(k, v);
    }
    q.append_pair("cursor", &cursor.to_string());
    HeaderValue::from_str(&format!(
        "<{}{}?{}>; rel=\"next\"",
        ctx.base,
        ctx.path,
        q.finish()
    ))
    .unwrap_or(HeaderValue::from_static(""))
}

fn paginate(ctx: &Ctx<'_>, items: &[Value], page: usize) -> HubResult {
    let cursor: usize = ctx
        .param("cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let end = (cursor + page).min(items.len());
    let slice = items.get(cursor..end).unwrap_or(&[]).to_vec();
    let mut r = json_response(StatusCode::OK, Value::Array(slice));
    if end < items.len() {
        r.headers_mut().insert(header::LINK, next_link(ctx, end));
    }
    Ok(r)
}

fn tree(ctx: &Ctx<'_>, kind: RepoKind, ns: &str, name: &str, rev: &str, dir: &str) -> HubResult {
    let repo = ctx.readable(kind, ns, name)?;
    let sha = ctx.resolve(&repo, rev)?;
    let files = ctx.hub.meta.files(&sha)?;
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
            let mut e = json!({"type": "file", "path": f.path, "oid": f.git_oid, "size": f.size});
            if f.lfs {
                e["lfs"] = json!({"oid": f.sha256, "size": f.size, "pointerSize": lfs_pointer(&f.sha256, f.size).len()});
            }
            if let Some(s) = security(f) {
                e["securityFileStatus"] = s;
            }
            entries.push(e);
        }
    }
    if !dir.is_empty() && entries.is_empty() && dirs.is_empty() {
        return Err(HubError::EntryNotFound {
            path: dir.to_string(),
            commit: sha,
        });
    }
    let mut all: Vec<Value> = dirs
        .into_iter()
        .map(|d| {
            let oid = git_blob_sha1(d.as_bytes());
            json!({"type": "directory", "path": d, "oid": oid, "size": 0})
        })
        .collect();
    all.extend(entries);
    all.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    let page = ctx
        .param("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(ctx.hub.config.page_size)
        .clamp(1, 10_000);
    paginate(ctx, &all, page)
}

fn refs(ctx: &Ctx<'_>, kind: RepoKind, ns: &str, name: &str) -> HubResult {
    let repo = ctx.readable(kind, ns, name)?;
    let refs = ctx.hub.meta.refs(repo.id)?;
    let list = |k: &str, prefix: &str| -> Vec<Value> {
        refs.iter()
            .filter(|r| r.kind == k)
            .map(|r| json!({"name": r.name, "ref": format!("{prefix}{}", r.name), "targetCommit": r.commit}))
            .collect()
    };
    Ok(json_response(
        StatusCode::OK,
        json!({"branches": list("branch", "refs/heads/"), "tags": list("tag", "refs/tags/"), "converts": [], "pullRequests": []}),
    ))
}

fn commits(ctx: &Ctx<'_>, kind: RepoKind, ns: &str, name: &str, rev: &str) -> HubResult {
    let repo = ctx.readable(kind, ns, name)?;
    let sha = ctx.resolve(&repo, rev)?;
    let list: Vec<Value> = ctx
        .hub
        .meta
        .history(repo.id, &sha, 10_000)?
        .into_iter()
        .map(|c| {
            json!({"id": c.id, "title": c.summary, "message": c.description, "authors": [{"user": c.author}], "date": iso(c.created_at)})
        })
        .collect();
    paginate(ctx, &list, ctx.hub.config.page_size)
}

async fn create_branch(
    ctx: &Ctx<'_>,
    kind: RepoKind,
    ns: &str,
    name: &str,
    branch: &str,
    body: Body,
) -> HubResult {
    let repo = ctx.writable(kind, ns, name)?;
    if !valid_ref_name(branch) {
        return Err(HubError::BadRequest(format!(
            "`{branch}` is not a valid branch name"
        )));
    }
    let body = read_json(body, 1 << 20).await?;
    let start = body
        .get("startingPoint")
        .and_then(Value::as_str)
        .unwrap_or("main");
    let sha = ctx.resolve(&repo, start)?;
    ctx.hub.meta.create_ref(repo.id, "branch", branch, &sha)?;
    Ok(json_response(StatusCode::OK, json!({})))
}

async fn create_tag(
    ctx: &Ctx<'_>,
    kind: RepoKind,
    ns: &str,
    name: &str,
    rev: &str,
    body: Body,
) -> HubResult {
    let repo = ctx.writable(kind, ns, name)?;
    let body = read_json(body, 1 << 20).await?;
    let tag = body
        .get("tag")
        .and_then(Value::as_str)
        .ok_or_else(|| HubError::BadRequest("`tag` is required".into()))?;
    if !valid_ref_name(tag) {
        return Err(HubError::BadRequest(format!(
            "`{tag}` is not a valid tag name"
        )));
    }
    let sha = ctx.resolve(&repo, rev)?;
    ctx.hub.meta.create_ref(repo.id, "tag", tag, &sha)?;
    Ok(json_response(StatusCode::OK, json!({})))
}

fn delete_ref(
    ctx: &Ctx<'_>,
    kind: RepoKind,
    ns: &str,
    name: &str,
    ref_kind: &str,
    ref_name: &str,
) -> HubResult {
    let repo = ctx.writable(kind, ns, name)?;
    if ref_kind == "branch" && ref_name == "main" {
        return Err(HubError::Forbidden(
            "the default branch `main` cannot be deleted".into(),
        ));
    }
    if !ctx.hub.meta.delete_ref(repo.id, ref_kind, ref_name)? {
        return Err(HubError::RevisionNotFound(ref_name.to_string()));
    }
    Ok(json_response(StatusCode::OK, json!({})))
}

async fn settings(ctx: &Ctx<'_>, kind: RepoKind, ns: &str, name: &str, body: Body) -> HubResult {
    let repo = ctx.writable(kind, ns, name)?;
    let body = read_json(body, 1 << 20).await?;
    let private = body.get("private").and_then(Value::as_bool).or_else(|| {
        body.get("visibility")
            .and_then(Value::as_str)
            .map(|v| v == "private")
    });
    if let Some(p) = private {
        ctx.hub.meta.set_private(repo.id, p)?;
    }
    Ok(json_response(StatusCode::OK, json!({})))
}

fn upload_mode(path: &str, size: u64, sample: &[u8]) -> &'static str {
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

async fn preupload(
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
            && let Some(existing) = ctx.hub.meta.file(head, path)?
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

fn sign(secret: &[u8], oid: &str, size: u64, expires: i64) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("upload\0{oid}\0{size}\0{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

async fn lfs_batch(ctx: &Ctx<'_>, kind: RepoKind, ns: &str, name: &str, body: Body) -> HubResult {
    let body = read_json(body, 64 << 20).await?;
    let operation = body
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or("upload");
    let repo = if operation == "upload" {
        ctx.writable(kind, ns, name)?
    } else {
        ctx.readable(kind, ns, name)?
    };
    let objects = body
        .get("objects")
        .and_then(Value::as_array)
        .ok_or_else(|| HubError::BadRequest("`objects` is required".into()))?;
    let expires = now_ms() / 1000 + 3600;
    let mut out = Vec::new();
    for o in objects {
        let oid = o
            .get("oid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        let size = o.get("size").and_then(Value::as_u64).unwrap_or(0);
        if !is_sha256(&oid) {
            out.push(json!({"oid": oid, "size": size, "error": {"code": 422, "message": "oid must be a sha256 hex digest"}}));
            continue;
        }
        if size > ctx.hub.config.max_file_bytes {
            out.push(json!({"oid": oid, "size": size, "error": {"code": 422, "message": format!("file exceeds the limit of {} bytes", ctx.hub.config.max_file_bytes)}}));
            continue;
        }
        let stored = ctx.hub.blobs.size(&oid)?;
        if operation == "download" {
            match stored {
                Some(s) => out.push(json!({"oid": oid, "size": s, "authenticated": true, "actions": {"download": {"href": format!("{}/api/lfs/objects/{oid}", ctx.base)}}})),
                None => out.push(json!({"oid": oid, "size": size, "error": {"code": 404, "message": "object not found"}})),
            }
            continue;
        }
        if stored == Some(size) {
            out.push(json!({"oid": oid, "size": size, "authenticated": true}));
            continue;
        }
        let sig = sign(&ctx.hub.secret, &oid, size, expires);
        let (k, full) = (repo.kind.as_str(), repo.full_name());
        out.push(json!({
            "oid": oid, "size": size, "authenticated": true,
            "actions": {
                "upload": {"href": format!("{}/api/lfs/upload/{oid}?size={size}&expires={expires}&sig={sig}", ctx.base), "expires_in": 3600},
                "verify": {"href": format!("{}/api/lfs/verify/{k}/{full}", ctx.base)},
            }
        }));
    }
    let mut r = json_response(
        StatusCode::OK,
        json!({"transfer": "basic", "objects": out, "hash_algo": "sha256"}),
    );
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.git-lfs+json"),
    );
    Ok(r)
}

async fn lfs_put(hub: &Hub, oid: &str, query: &[(String, String)], body: Body) -> HubResult {
    let q = |k: &str| {
        query
            .iter()
            .find(|(qk, _)| qk == k)
            .map(|(_, v)| v.as_str())
    };
    let size: u64 = q("size")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HubError::BadRequest("`size` is required".into()))?;
    let expires: i64 = q("expires")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HubError::BadRequest("`expires` is required".into()))?;
    let given = q("sig").unwrap_or("");
    let expected = sign(&hub.secret, oid, size, expires);
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) || expires < now_ms() / 1000 {
        return Err(HubError::Forbidden(
            "upload link is invalid or expired: ask the batch endpoint again".into(),
        ));
    }
    if hub.blobs.size(oid)? == Some(size) {
        // Already stored (a concurrent upload of the same content won): drain and accept.
        let mut stream = body.into_data_stream();
        while stream.next().await.is_some() {}
        return Ok(json_response(StatusCode::OK, json!({})));
    }
    let mut writer = hub.blobs.writer()?;
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk: Bytes =
            chunk.map_err(|e| HubError::BadRequest(format!("upload interrupted: {e}")))?;
        received += chunk.len() as u64;
        if received > size {
            return Err(HubError::BadRequest(format!(
                "upload is longer than the announced {size} bytes"
            )));
        }
        tokio::task::block_in_place(|| writer.write_chunk(&chunk))?;
    }
    let oid = oid.to_string();
    tokio::task::block_in_place(move || writer.commit(Some(&oid), Some(size)))?;
    Ok(json_response(StatusCode::OK, json!({})))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn lfs_verify(ctx: &Ctx<'_>, kind: RepoKind, ns: &str, name: &str, body: Body) -> HubResult {
    ctx.writable(kind, ns, name)?;
    let body = read_json(body, 1 << 20).await?;
    let oid = body.get("oid").and_then(Value::as_str).unwrap_or("");
    let size = body.get("size").and_then(Value::as_u64);
    match ctx.hub.blobs.size(oid)? {
        Some(s) if size.is_none_or(|n| n == s) => Ok(json_response(
            StatusCode::OK,
            json!({"oid": oid, "size": s}),
        )),
        _ => Err(HubError::NotFound(format!(
            "object {oid} was not uploaded (or its size differs)"
        ))),
    }
}

/// One parsed ndjson operation.
enum Op {
    File {
        path: String,
        content: Vec<u8>,
    },
    Lfs {
        path: String,
        oid: String,
        size: Option<u64>,
    },
    DeleteFile(String),
    DeleteFolder(String),
}

async fn commit(
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
    let is_branch = ctx
        .hub
        .meta
        .refs(repo.id)?
        .iter()
        .any(|r| r.kind == "branch" && r.name == rev);
    if !is_branch {
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
    let mut summary = String::new();
    let mut description = String::new();
    let mut parent = None;
    let mut ops = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: Value = serde_json::from_slice(line)
            .map_err(|e| HubError::BadRequest(format!("commit line {}: {e}", i + 1)))?;
        let key = v.get("key").and_then(Value::as_str).unwrap_or("");
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        let path = || -> HubResult<String> {
            let p = value
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| HubError::BadRequest(format!("commit line {}: no `path`", i + 1)))?;
            match path_problem(p) {
                Some(problem) => Err(HubError::BadRequest(format!("`{p}`: {problem}"))),
                None => Ok(p.to_string()),
            }
        };
        match key {
            "header" => {
                summary = value
                    .get("summary")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                description = value
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                parent = value
                    .get("parentCommit")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            "file" => {
                let content = value.get("content").and_then(Value::as_str).unwrap_or("");
                let content = match value.get("encoding").and_then(Value::as_str) {
                    Some("base64") | None => base64::engine::general_purpose::STANDARD
                        .decode(content)
                        .map_err(|e| {
                            HubError::BadRequest(format!("commit line {}: base64: {e}", i + 1))
                        })?,
                    Some("utf-8") | Some("utf8") => content.as_bytes().to_vec(),
                    Some(other) => {
                        return Err(HubError::BadRequest(format!(
                            "encoding `{other}` is not supported"
                        )));
                    }
                };
                ops.push(Op::File {
                    path: path()?,
                    content,
                });
            }
            "lfsFile" => {
                let oid = value
                    .get("oid")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if value
                    .get("algo")
                    .and_then(Value::as_str)
                    .is_some_and(|a| a != "sha256")
                    || !is_sha256(&oid)
                {
                    return Err(HubError::BadRequest(format!(
                        "commit line {}: lfsFile needs a sha256 oid",
                        i + 1
                    )));
                }
                ops.push(Op::Lfs {
                    path: path()?,
                    oid,
                    size: value.get("size").and_then(Value::as_u64),
                });
            }
            "deletedFile" => ops.push(Op::DeleteFile(path()?)),
            "deletedFolder" => {
                ops.push(Op::DeleteFolder(path()?.trim_end_matches('/').to_string()))
            }
            other => {
                return Err(HubError::BadRequest(format!(
                    "commit line {}: unknown key `{other}`",
                    i + 1
                )));
            }
        }
    }
    if summary.is_empty() {
        summary = "Upload files".into();
    }
    // Store regular files and check LFS objects: blobs become visible only once hashed.
    let blobs = ctx.hub.blobs.clone();
    let allow_dangerous = ctx.hub.config.allow_dangerous_pickles;
    let (added, deleted_files, deleted_folders) = tokio::task::spawn_blocking(move || -> HubResult<_> {
        let mut added = Vec::new();
        let (mut df, mut dd) = (Vec::new(), Vec::new());
        for op in ops {
            match op {
                Op::File { path, content } => {
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
                    scan_entry(blobs.as_ref(), &mut e, allow_dangerous)?;
                    added.push(e);
                }
                Op::Lfs { path, oid, size } => {
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
                    scan_entry(blobs.as_ref(), &mut e, allow_dangerous)?;
                    added.push(e);
                }
                Op::DeleteFile(p) => df.push(p),
                Op::DeleteFolder(p) => dd.push(p),
            }
        }
        Ok((added, df, dd))
    })
    .await
    .map_err(|e| HubError::Internal(e.to_string()))??;
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
pub async fn reindex(hub: &Hub, repo: &Repo, commit: &str) -> HubResult<()> {
    let files = hub.meta.files(commit)?;
    let blobs = hub.blobs.clone();
    let row = tokio::task::spawn_blocking(move || crate::index::compute(&files, blobs.as_ref()))
        .await
        .map_err(|e| HubError::Internal(e.to_string()))?;
    hub.meta.set_index(repo.id, &row)?;
    Ok(())
}

/// Scans a new file: safetensors must pass the validator; dangerous pickles are refused
/// unless the server allows them. The verdict and report are recorded with the file.
fn scan_entry(blobs: &dyn BlobStore, e: &mut FileEntry, allow_dangerous: bool) -> HubResult<()> {
    use zoo_formats::scan::{FileVerdict, Kind};
    let Some(local) = blobs.local_path(&e.sha256) else {
        return Ok(());
    };
    let mapped =
        zoo_checkpoint::Mapped::open(&local).map_err(|err| HubError::Internal(err.to_string()))?;
    let name = e.path.rsplit('/').next().unwrap_or(&e.path);
    let report = zoo_formats::scan::scan_bytes(name, mapped.bytes());
    let checkpoint_like = report.kind != Kind::Other || report.expected.is_some();
    if !checkpoint_like {
        return Ok(());
    }
    if report.verdict == FileVerdict::Invalid
        && (report.kind == Kind::Safetensors || report.expected == Some(Kind::Safetensors))
    {
        return Err(HubError::BadRequest(format!(
            "`{}` is not a valid safetensors file: {}",
            e.path,
            report.notes.join("; ")
        )));
    }
    if report.verdict == FileVerdict::Dangerous && !allow_dangerous {
        let bad: Vec<String> = report
            .imports
            .iter()
            .filter(|i| i.verdict == zoo_formats::policy::Verdict::Dangerous)
            .map(|i| format!("{}.{}", i.module, i.name))
            .collect();
        return Err(HubError::BadRequest(format!(
            "`{}` is a dangerous pickle (imports {}); refused. Convert it with `zoo convert`, or start the server with --allow-dangerous-pickles",
            e.path,
            bad.join(", ")
        )));
    }
    e.verdict = Some(report.verdict.as_str().to_string());
    e.scan = serde_json::to_string(&report).ok();
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn resolve(
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
        .file(&sha, path)?
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

/// `Range: bytes=a-b | a- | -n` → the half-open byte range, `None` for a header that does
/// not parse (served whole, as HTTP says), an error when it cannot be satisfied.
fn parse_range(header: &str, size: u64) -> HubResult<Option<(u64, u64)>> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(s), Some(e)) if s <= e => (s, (e + 1).min(size)),
        (Some(s), None) if b.is_empty() => (s, size),
        (None, Some(n)) if a.is_empty() => (size.saturating_sub(n), size),
        _ => return Ok(None),
    };
    if start >= size || start >= end {
        return Err(HubError::RangeNotSatisfiable(size));
    }
    Ok(Some((start, end)))
}

/// Streams a blocking reader as a response body, 256 KiB at a time.
fn stream_reader(mut reader: Box<dyn Read + Send>) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut buf = vec![0u8; 256 << 10];
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}

fn list(ctx: &Ctx<'_>, kind: RepoKind) -> HubResult {
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
        if i < cursor || i >= cursor + page {
            out.push(Value::Null);
            continue;
        }
        let sha = ctx.hub.meta.resolve(repo.id, "main")?;
        let mut v = repo_json(ctx, repo, row, sha.as_deref(), card);
        if full {
            let files = match &sha {
                Some(s) => ctx.hub.meta.files(s)?,
                None => Vec::new(),
            };
            v["siblings"] = Value::Array(files.iter().map(sibling).collect());
        }
        out.push(v);
    }
    paginate(ctx, &out, page)
}
