//! The routes: the Hugging Face Hub protocol as `huggingface_hub` and `hf-hub` use it
//! (see `../shared/design/hub-protocol.md`), plus zoo's documented search extensions.
//!
//! URLs are matched by hand on percent-decoded segments: revisions and paths arrive in
//! shapes a router's patterns do not express (`refs%2Fpr%2F1`, nested file paths).

mod git;
mod lfs;
mod reads;
mod repos;
mod web;
mod writes;
mod xet;

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

use lfs::*;
use reads::*;
use repos::*;
use writes::*;

pub(crate) use writes::reindex;

type HubResult<T = Response> = Result<T, HubError>;

/// A running hub's state.
pub struct Hub {
    pub meta: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub config: HubConfig,
    secret: Vec<u8>,
    /// The hub this one mirrors (`--upstream`).
    pub upstream: Option<Arc<crate::mirror::Upstream>>,
    /// Requests allowed to block a thread at once (see [`blocking`]).
    blocking_slots: tokio::sync::Semaphore,
    /// One git request at a time per repository (its bare repository is rewritten first).
    git_locks: std::sync::Mutex<std::collections::HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
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
        let upstream = crate::mirror::Upstream::from_config(&config).map(Arc::new);
        Hub {
            meta,
            blobs,
            config,
            secret,
            upstream,
            blocking_slots: tokio::sync::Semaphore::new(
                4 * std::thread::available_parallelism().map_or(4, |n| n.get()),
            ),
            git_locks: Default::default(),
        }
    }

    /// The lock of repository `repo_id`'s bare repository.
    fn git_lock(&self, repo_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        self.git_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(repo_id)
            .or_default()
            .clone()
    }
}

/// Runs blocking work — metadata queries, reading and memory-mapping weights — from an async
/// handler without stalling the other requests on the same worker: on the server's
/// multi-thread runtime the worker first hands its queue to another thread
/// (`block_in_place`); elsewhere (a single-threaded test runtime) it just runs. At most
/// [`Hub::blocking_slots`] requests do so at once; the others wait without a thread (500
/// clients would otherwise start 500 threads: 3.6 GB resident under the load test).
pub(crate) async fn blocking<T>(hub: &Hub, f: impl FnOnce() -> T) -> T {
    let _slot = hub.blocking_slots.acquire().await;
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
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
    /// The query string as received.
    fn query_string(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.query {
            q.append_pair(k, v);
        }
        q.finish()
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
    /// The models fine-tuned from `base` that the caller may see (a private child is named
    /// to its owner only).
    fn visible_children(&self, base: &str) -> HubResult<Vec<String>> {
        let mut out = Vec::new();
        for c in self.hub.meta.children(base)? {
            let (ns, name) = c.split_once('/').unwrap_or(("", &c));
            if let Some(r) = self.hub.meta.repo(RepoKind::Model, ns, name)?
                && self.can_read(&r)
            {
                out.push(c);
            }
        }
        Ok(out)
    }
    /// A repository the caller may write to (a mirrored one is read-only).
    fn writable(&self, kind: RepoKind, ns: &str, name: &str) -> HubResult<Repo> {
        let repo = self.owned(kind, ns, name)?;
        if let Some(m) = self.hub.meta.mirror(repo.id, "main")? {
            return Err(HubError::Forbidden(format!(
                "{} is a mirror of {}/{}: push there",
                repo.full_name(),
                m.upstream,
                repo.full_name()
            )));
        }
        Ok(repo)
    }
    /// A repository the caller owns with a write token (mirrored or not).
    fn owned(&self, kind: RepoKind, ns: &str, name: &str) -> HubResult<Repo> {
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
    /// Whether `rev` names a branch of `repo`.
    fn is_branch(&self, repo: &Repo, rev: &str) -> HubResult<bool> {
        Ok(self
            .hub
            .meta
            .refs(repo.id)?
            .iter()
            .any(|r| r.kind == "branch" && r.name == rev))
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

/// `path` without the path part of `public_url`, when it starts with it.
fn strip_prefix<'a>(public_url: Option<&str>, path: &'a str) -> &'a str {
    let prefix = public_url
        .and_then(|u| u.split_once("://"))
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .map(|p| p.trim_end_matches('/'))
        .unwrap_or("");
    match path.strip_prefix(prefix) {
        Some(rest) if !prefix.is_empty() && (rest.is_empty() || rest.starts_with('/')) => rest,
        _ => path,
    }
}

async fn route(
    hub: &Hub,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> HubResult {
    // Behind a path prefix (`public_url` = `https://host/hub`) a proxy may pass the prefix on
    // or strip it: both reach the same routes.
    let path = strip_prefix(hub.config.public_url.as_deref(), uri.path());
    let segs = decode_segments(path)?;
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
    if let (&Method::GET | &Method::HEAD, ["api", "lfs", "objects", oid]) = (method, s.as_slice()) {
        return blocking(hub, || lfs_get(hub, method, headers, oid, &query)).await;
    }
    // The Xet CAS authenticates with its own tokens.
    if let ["xet-cas", kind, ns, name, rest @ ..] = s.as_slice() {
        return xet::cas(hub, method, headers, kind, ns, name, rest, body).await;
    }
    let mut viewer = blocking(hub, || viewer(hub, headers)).await?;
    // A browser signed in to the pages reads with its session (never writes: a write needs
    // the token itself, so a page elsewhere cannot make the browser change anything).
    if viewer.is_none() && (*method == Method::GET || *method == Method::HEAD) {
        viewer = blocking(hub, || web::session::viewer(hub, headers)).await;
    }
    if hub.upstream.is_some()
        && let Some((kind, ns, name, rev)) = mirrored_read(method, &s)
    {
        crate::mirror::ensure(hub, kind, ns, name, &rev).await?;
    }
    let ctx = Ctx {
        hub,
        viewer,
        base,
        query,
        path,
    };
    let get = *method == Method::GET || *method == Method::HEAD;
    match (method.clone(), s.as_slice()) {
        (_, ["api", "whoami-v2"]) if get => blocking(hub, || whoami(&ctx)).await,
        (Method::POST, ["api", "repos", "create"]) => create_repo(&ctx, body).await,
        (Method::DELETE, ["api", "repos", "delete"]) => delete_repo(&ctx, body).await,
        (Method::POST, ["api", "validate-yaml"]) => validate_yaml(body).await,
        (_, ["api", kind @ ("models" | "datasets")]) if get => {
            blocking(hub, || list(&ctx, RepoKind::parse(kind).unwrap())).await
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
        (_, ["datasets", ns, name, rest @ ..]) if git::is_git_path(rest) => {
            git::serve(
                &ctx,
                method,
                headers,
                RepoKind::Dataset,
                ns,
                name,
                rest,
                body,
            )
            .await
        }
        (_, [ns, name, rest @ ..]) if git::is_git_path(rest) => {
            git::serve(&ctx, method, headers, RepoKind::Model, ns, name, rest, body).await
        }
        (_, ["datasets", ns, name, "resolve", rev, path @ ..]) if get && !path.is_empty() => {
            blocking(hub, || {
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
            })
            .await
        }
        (_, [ns, name, "resolve", rev, path @ ..]) if get && !path.is_empty() => {
            blocking(hub, || {
                resolve(
                    &ctx,
                    method,
                    headers,
                    RepoKind::Model,
                    ns,
                    name,
                    rev,
                    &path.join("/"),
                )
            })
            .await
        }
        (_, s) if web::is_page(method, s) => web::page(&ctx, method, headers, s, body).await,
        _ => Err(HubError::NotFound(format!(
            "no route for {method} {}",
            path
        ))),
    }
}

/// The repository and revision a read names, for the mirror to fetch first.
fn mirrored_read<'a>(
    method: &Method,
    s: &[&'a str],
) -> Option<(RepoKind, &'a str, &'a str, String)> {
    let get = *method == Method::GET || *method == Method::HEAD;
    let main = || "main".to_string();
    match (s, get) {
        (["api", kind @ ("models" | "datasets"), ns, name, rest @ ..], _) => {
            let kind = RepoKind::parse(kind)?;
            let rev = match (rest, get) {
                ([] | ["refs"], true) => main(),
                (["revision" | "commits", rev @ ..], true) if !rev.is_empty() => rev.join("/"),
                (["tree", rev, ..], true) => rev.to_string(),
                (["paths-info", rev @ ..], false) if *method == Method::POST && !rev.is_empty() => {
                    rev.join("/")
                }
                _ => return None,
            };
            Some((kind, ns, name, rev))
        }
        (["datasets", ns, name, "resolve", rev, _, ..], true) => {
            Some((RepoKind::Dataset, ns, name, rev.to_string()))
        }
        ([ns, name, "resolve", rev, _, ..], true) if *ns != "api" => {
            Some((RepoKind::Model, ns, name, rev.to_string()))
        }
        _ => None,
    }
}

fn viewer(hub: &Hub, headers: &HeaderMap) -> HubResult<Option<Viewer>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| HubError::BadToken)?;
    // git and git-lfs send HTTP Basic: any user name, the token as the password.
    let basic = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(_, p)| p.to_string()));
    let token = match &basic {
        Some(t) => t.as_str(),
        None => value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(HubError::BadToken)?
            .trim(),
    };
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
    // Issue 16: a cursor near usize::MAX overflowed here.
    let end = cursor.saturating_add(page).min(items.len());
    let slice = items.get(cursor..end).unwrap_or(&[]).to_vec();
    let mut r = json_response(StatusCode::OK, Value::Array(slice));
    if end < items.len() {
        r.headers_mut().insert(header::LINK, next_link(ctx, end));
    }
    Ok(r)
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
        (_, []) if get => blocking(ctx.hub, || info(ctx, kind, ns, name, None)).await,
        // Another revision's index is computed from its weights here.
        (_, ["revision", rev @ ..]) if get && !rev.is_empty() => {
            blocking(ctx.hub, || info(ctx, kind, ns, name, Some(&rev.join("/")))).await
        }
        (_, ["tree", rev, path @ ..]) if get => {
            blocking(ctx.hub, || tree(ctx, kind, ns, name, rev, &path.join("/"))).await
        }
        (_, ["refs"]) if get => blocking(ctx.hub, || refs(ctx, kind, ns, name)).await,
        (Method::POST, ["paths-info", rev @ ..]) if !rev.is_empty() => {
            paths_info(ctx, kind, ns, name, &rev.join("/"), body).await
        }
        (_, ["commits", rev @ ..]) if get && !rev.is_empty() => {
            blocking(ctx.hub, || commits(ctx, kind, ns, name, &rev.join("/"))).await
        }
        (_, ["xet-write-token", rev @ ..]) if get && !rev.is_empty() => {
            xet::write_token(ctx, kind, ns, name, &rev.join("/"))
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
