//! git over smart HTTP: clone, fetch and push of models (`/{ns}/{name}[.git]/…`) and data
//! sets (`/datasets/{ns}/{name}[.git]/…`), through Debian's `git http-backend` on each
//! repository's bare repository, brought in step with the metadata first
//! ([`crate::gitrepo::sync`]). Credentials come as HTTP Basic (any user name, a hub token as
//! the password) — git asks for them after a `401` — or as a Bearer token. A push runs the
//! repository's `pre-receive` hook, which is `zoo hub-hook pre-receive` (this binary).

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::gitrepo::{BareRepo, bare_dir, sync};

/// Whether `rest` (after `{ns}/{name}`) is a smart-HTTP git path.
pub(super) fn is_git_path(rest: &[&str]) -> bool {
    matches!(
        rest,
        ["info", "refs"] | ["git-upload-pack"] | ["git-receive-pack"]
    )
}

/// A `401` that makes git (and git-lfs) send credentials.
fn ask_credentials(why: &str) -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, why.to_string()).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"zoo\""),
    );
    r
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn serve(
    ctx: &Ctx<'_>,
    method: &Method,
    headers: &HeaderMap,
    kind: RepoKind,
    ns: &str,
    name: &str,
    rest: &[&str],
    body: Body,
) -> HubResult {
    let name = name.strip_suffix(".git").unwrap_or(name);
    let service = match (method.clone(), rest) {
        (Method::GET, ["info", "refs"]) => ctx.param("service").unwrap_or("").to_string(),
        (Method::POST, [s]) => (*s).to_string(),
        _ => return Err(HubError::NotFound("no such git route".into())),
    };
    let push = match service.as_str() {
        "git-upload-pack" => false,
        "git-receive-pack" => true,
        _ => {
            return Err(HubError::BadRequest(
                "this hub speaks git's smart HTTP protocol only (git 1.6.6 or later)".into(),
            ));
        }
    };
    let repo = match (push, ctx.viewer.is_some()) {
        (true, false) => return Ok(ask_credentials("pushing needs a write token")),
        (true, true) => ctx.writable(kind, ns, name)?,
        (false, _) => match ctx.readable(kind, ns, name) {
            Ok(r) => r,
            Err(HubError::RepoNotFound) if ctx.viewer.is_none() => {
                return Ok(ask_credentials(
                    "Repository not found (or private: sign in)",
                ));
            }
            Err(e) => return Err(e),
        },
    };
    if ctx.hub.meta.mirror(repo.id, "main")?.is_some() {
        // Its commits carry the upstream's ids, which only the upstream's git objects make.
        return Err(HubError::BadRequest(format!(
            "{} is mirrored from another hub: git clone is not served for mirrors; download it with huggingface_hub, `zoo download`, or clone from the upstream",
            repo.full_name()
        )));
    }
    let hub = ctx.hub;
    let lock = hub.git_lock(repo.id);
    let _guard = lock.lock().await;
    // Absolute: git runs the hook in the bare repository.
    let data = std::path::absolute(&hub.config.data).unwrap_or_else(|_| hub.config.data.clone());
    let dir = bare_dir(&data, &repo);
    let (meta, blobs) = (hub.meta.clone(), hub.blobs.clone());
    let id = repo.id;
    let sync_dir = dir.clone();
    tokio::task::spawn_blocking(move || -> HubResult<()> {
        let dir = sync_dir;
        let bare = BareRepo::open_or_init(&dir).map_err(|e| HubError::Internal(e.to_string()))?;
        sync(meta.as_ref(), blobs.as_ref(), &bare, id)
            .map_err(|e| HubError::Internal(e.to_string()))
    })
    .await
    .map_err(|e| HubError::Internal(e.to_string()))??;
    let body = axum::body::to_bytes(
        body,
        usize::try_from(hub.config.max_commit_bytes).unwrap_or(usize::MAX),
    )
    .await
    .map_err(|e| HubError::TooLarge(format!("git request body: {e}")))?;
    let bare_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path_info = match rest {
        ["info", "refs"] => format!("/{bare_name}/info/refs"),
        _ => format!("/{bare_name}/{service}"),
    };
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", data.join("git"))
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("PATH_INFO", &path_info)
        .env("REQUEST_METHOD", method.as_str())
        .env("QUERY_STRING", ctx.query_string())
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(v) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        cmd.env("CONTENT_TYPE", v);
    }
    if let Some(v) = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        cmd.env("HTTP_CONTENT_ENCODING", v);
    }
    if let Some(v) = headers.get("git-protocol").and_then(|v| v.to_str().ok()) {
        cmd.env("GIT_PROTOCOL", v);
    }
    if let Some(v) = &ctx.viewer {
        cmd.env("REMOTE_USER", &v.user);
        if push {
            let exe = std::env::current_exe()
                .map_err(|e| HubError::Internal(format!("the server's own executable: {e}")))?;
            cmd.env("ZOO_HOOK_EXE", exe)
                .env("ZOO_HOOK_DATA", &data)
                .env("ZOO_HOOK_REPO", id.to_string())
                .env("ZOO_HOOK_BARE", &dir)
                .env("ZOO_HOOK_USER", &v.user)
                .env("ZOO_HOOK_MAX_FILE", hub.config.max_file_bytes.to_string())
                .env(
                    "ZOO_HOOK_DATABASE",
                    hub.config.database.as_deref().unwrap_or(""),
                )
                .env("ZOO_HOOK_BLOBS", hub.config.blobs.as_deref().unwrap_or(""))
                .env(
                    "ZOO_HOOK_ALLOW_DANGEROUS",
                    if hub.config.allow_dangerous_pickles {
                        "1"
                    } else {
                        "0"
                    },
                );
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| HubError::Internal(format!("git http-backend: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    let feed = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut stderr = child.stderr.take().expect("piped");
    // The CGI headers, then the body.
    let mut status = StatusCode::OK;
    let mut builder = Response::builder();
    loop {
        let mut line = String::new();
        let n = stdout
            .read_line(&mut line)
            .await
            .map_err(|e| HubError::Internal(format!("git http-backend: {e}")))?;
        let line = line.trim_end_matches(['\r', '\n']);
        if n == 0 || line.is_empty() {
            break;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            status = v
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            builder = builder.header(k, v);
        }
    }
    let mut rest_out = Vec::new();
    stdout
        .read_to_end(&mut rest_out)
        .await
        .map_err(|e| HubError::Internal(format!("git http-backend: {e}")))?;
    let mut err = Vec::new();
    let _ = stderr.read_to_end(&mut err).await;
    let _ = feed.await;
    let _ = child.wait().await;
    if status.is_server_error() {
        return Err(HubError::Internal(format!(
            "git http-backend: {}",
            String::from_utf8_lossy(&err).trim()
        )));
    }
    builder
        .status(status)
        .body(Body::from(rest_out))
        .map_err(|e| HubError::Internal(e.to_string()))
}
