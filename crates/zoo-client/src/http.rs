//! Talking to a Hub: JSON endpoints, error codes, pagination.

use std::time::Duration;

use serde_json::Value;

use crate::settings::{Settings, redact};
use crate::{ClientError, RepoId};

/// One file of a revision, as the tree listing describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub path: String,
    pub size: u64,
    /// git blob id (of the content, or of the LFS pointer).
    pub oid: String,
    /// sha256 of the content, for LFS files.
    pub lfs_sha256: Option<String>,
}

impl RemoteFile {
    /// What the cache names the blob by: the sha256 for LFS files, the git blob id otherwise
    /// (the server's ETag).
    pub fn etag(&self) -> &str {
        self.lfs_sha256.as_deref().unwrap_or(&self.oid)
    }
}

/// A Hub client.
#[derive(Debug, Clone)]
pub struct Client {
    pub settings: Settings,
    agent: ureq::Agent,
    /// Attempts after the first for a call that failed in a way retrying may fix
    /// (429, 5xx, a dropped connection); see [`backoff`].
    pub retries: usize,
}

/// The longest `Retry-After` zoo waits for; a server asking for longer gets its error shown.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// How long to wait before attempt `attempt + 1`: the server's `Retry-After` when it sent
/// one, else exponential backoff from 0.5 s (capped at 10 s) with jitter (a uniformly drawn
/// half to all of it), so that many clients cut off together do not come back together.
pub fn backoff(attempt: usize, retry_after: Option<Duration>) -> Duration {
    if let Some(d) = retry_after {
        return d.min(MAX_RETRY_AFTER);
    }
    let full = Duration::from_millis(500)
        .saturating_mul(1u32 << attempt.min(16))
        .min(Duration::from_secs(10));
    full.mul_f64(0.5 + 0.5 * fastrand::f64())
}

/// A `Retry-After` value: delay-seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Which calls may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotence {
    /// Reads, and writes whose repetition changes nothing (create-if-missing, preupload, an
    /// LFS upload of the same bytes): retried after 429, 5xx and dropped connections.
    Safe,
    /// Writes that must not happen twice (a commit): retried only when the server said it did
    /// not act (429, 503) or the connection was refused before anything was sent.
    Once,
}

fn retryable_status(status: u16, idem: Idempotence) -> bool {
    match idem {
        Idempotence::Safe => status == 429 || (500..600).contains(&status) && status != 501,
        Idempotence::Once => status == 429 || status == 503,
    }
}

fn retryable_error(e: &ureq::Error, idem: Idempotence) -> bool {
    let refused = matches!(e, ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused)
        || matches!(e, ureq::Error::ConnectionFailed);
    refused
        || (idem == Idempotence::Safe
            && matches!(
                e,
                ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::Protocol(_)
            ))
}

/// A raw response: status, headers we use, body reader.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub response: ureq::http::Response<ureq::Body>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
    }
}

/// Everything but RFC 3986's unreserved characters is encoded.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// Encodes a file path for a URL, keeping `/`.
pub fn encode_path(path: &str) -> String {
    path.split('/').map(percent).collect::<Vec<_>>().join("/")
}

impl Client {
    pub fn new(settings: Settings) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_connect(Some(settings.timeout))
            .timeout_per_read(Some(settings.timeout))
            .user_agent(concat!("zoo/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client {
            settings,
            agent,
            retries: 5,
        }
    }

    /// Sends a request (built afresh by `send` for each attempt), retrying what
    /// [`Idempotence`] allows with [`backoff`]; the last answer or error is returned.
    pub fn with_retries(
        &self,
        url: &str,
        idem: Idempotence,
        mut send: impl FnMut() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<ureq::http::Response<ureq::Body>, ClientError> {
        self.offline_guard(url)?;
        let mut attempt = 0;
        loop {
            match send() {
                Ok(r) => {
                    let status = r.status().as_u16();
                    if attempt < self.retries && retryable_status(status, idem) {
                        let after = r
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(parse_retry_after);
                        if after.is_none_or(|a| a <= MAX_RETRY_AFTER) {
                            std::thread::sleep(backoff(attempt, after));
                            attempt += 1;
                            continue;
                        }
                    }
                    return Ok(r);
                }
                Err(e) if attempt < self.retries && retryable_error(&e, idem) => {
                    std::thread::sleep(backoff(attempt, None));
                    attempt += 1;
                }
                Err(e) => return Err(Self::net(url, &e)),
            }
        }
    }

    fn offline_guard(&self, url: &str) -> Result<(), ClientError> {
        if self.settings.offline {
            return Err(ClientError::Offline(format!(
                "refusing a network call to {} (HF_HUB_OFFLINE)",
                redact(url)
            )));
        }
        Ok(())
    }

    fn auth(
        &self,
        req: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        match &self.settings.token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        }
    }

    fn auth_body(
        &self,
        req: ureq::RequestBuilder<ureq::typestate::WithBody>,
    ) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        match &self.settings.token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        }
    }

    fn net(url: &str, e: &ureq::Error) -> ClientError {
        ClientError::Network {
            url: redact(url),
            message: e.to_string(),
        }
    }

    /// GET with optional extra headers (Range), once: a download resumes by itself.
    pub fn get_raw(&self, url: &str, headers: &[(&str, String)]) -> Result<Reply, ClientError> {
        self.offline_guard(url)?;
        let response = self
            .get_request(url, headers)
            .call()
            .map_err(|e| Self::net(url, &e))?;
        Ok(Reply {
            status: response.status().as_u16(),
            response,
        })
    }

    fn get_request(
        &self,
        url: &str,
        headers: &[(&str, String)],
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let mut req = self.auth(self.agent.get(url));
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        req
    }

    /// Turns an error response into the error its `X-Error-Code` names.
    pub fn error_for(
        &self,
        url: &str,
        mut reply: Reply,
        repo: Option<&RepoId>,
        what: &str,
    ) -> ClientError {
        let code = reply.header("x-error-code").map(str::to_string);
        let body = reply
            .response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or(body);
        let repo_name = repo.map(|r| r.id.clone()).unwrap_or_default();
        match code.as_deref() {
            Some("RepoNotFound") => ClientError::RepoNotFound(repo_name),
            Some("RevisionNotFound") => ClientError::RevisionNotFound {
                repo: repo_name,
                revision: what.to_string(),
            },
            Some("EntryNotFound") => ClientError::EntryNotFound {
                repo: repo_name,
                path: what.to_string(),
            },
            _ => ClientError::Http {
                url: redact(url),
                status: reply.status,
                message,
            },
        }
    }

    /// GET a JSON document.
    pub fn get_json(
        &self,
        url: &str,
        repo: Option<&RepoId>,
        what: &str,
    ) -> Result<(Value, Option<String>), ClientError> {
        let response =
            self.with_retries(url, Idempotence::Safe, || self.get_request(url, &[]).call())?;
        let mut reply = Reply {
            status: response.status().as_u16(),
            response,
        };
        if reply.status != 200 {
            return Err(self.error_for(url, reply, repo, what));
        }
        let link = reply.header("link").map(str::to_string);
        let body = reply
            .response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .map_err(|e| Self::net(url, &e))?;
        let v = serde_json::from_str(&body).map_err(|e| ClientError::Protocol {
            url: redact(url),
            message: e.to_string(),
        })?;
        Ok((v, next_link(link.as_deref())))
    }

    /// POST JSON that may be sent again ([`Idempotence::Safe`]); returns status and JSON
    /// body (or `null`).
    pub fn post_json(&self, url: &str, body: &Value) -> Result<(u16, Value), ClientError> {
        self.post_bytes(
            url,
            "application/json",
            body.to_string().as_bytes(),
            Idempotence::Safe,
        )
    }

    /// POST raw bytes with a content type. A write waits as long as the server takes to
    /// answer (a commit of large files is scanned first), but not for a stalled upload.
    pub fn post_bytes(
        &self,
        url: &str,
        content_type: &str,
        body: &[u8],
        idem: Idempotence,
    ) -> Result<(u16, Value), ClientError> {
        let mut r = self.with_retries(url, idem, || {
            self.auth_body(self.agent.post(url))
                .config()
                .timeout_per_read(None)
                .timeout_recv_response(Some(Duration::from_secs(600)))
                .timeout_per_write(Some(self.settings.timeout.max(Duration::from_secs(60))))
                .build()
                .header("Content-Type", content_type)
                .send(body)
        })?;
        let status = r.status().as_u16();
        let text = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// PUT bytes to a (signed) URL, streaming from a reader that `open` makes afresh for
    /// each attempt (an LFS upload of the same bytes may be repeated).
    pub fn put_reader<R: std::io::Read + Send + 'static>(
        &self,
        url: &str,
        mut open: impl FnMut() -> Result<R, ClientError>,
    ) -> Result<u16, ClientError> {
        let mut opened = None;
        let r = self.with_retries(url, Idempotence::Safe, || {
            let reader = match open() {
                Ok(r) => r,
                Err(e) => {
                    opened = Some(e);
                    return Err(ureq::Error::Other(
                        "the file to upload could not be opened".into(),
                    ));
                }
            };
            self.agent
                .put(url)
                .config()
                .timeout_per_read(None)
                .timeout_recv_response(Some(Duration::from_secs(600)))
                .timeout_per_write(Some(self.settings.timeout.max(Duration::from_secs(60))))
                .build()
                .send(ureq::SendBody::from_owned_reader(reader))
        });
        if let Some(e) = opened {
            return Err(e);
        }
        Ok(r?.status().as_u16())
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/{path}", self.settings.endpoint)
    }

    /// Repository info at a revision (`sha`, `siblings`, `cardData`, ...).
    pub fn info(&self, repo: &RepoId, revision: Option<&str>) -> Result<Value, ClientError> {
        let url = match revision {
            Some(r) => self.api(&format!(
                "{}/{}/revision/{}",
                repo.kind.plural(),
                repo.id,
                percent(r)
            )),
            None => self.api(&format!("{}/{}", repo.kind.plural(), repo.id)),
        };
        Ok(self
            .get_json(&url, Some(repo), revision.unwrap_or("main"))?
            .0)
    }

    /// Every file of a revision (recursive tree listing, following `Link` pagination).
    pub fn files(&self, repo: &RepoId, commit: &str) -> Result<Vec<RemoteFile>, ClientError> {
        let mut url = Some(self.api(&format!(
            "{}/{}/tree/{}?recursive=true",
            repo.kind.plural(),
            repo.id,
            percent(commit)
        )));
        let mut out = Vec::new();
        while let Some(u) = url.take() {
            let (v, next) = self.get_json(&u, Some(repo), commit)?;
            for e in v.as_array().ok_or_else(|| ClientError::Protocol {
                url: redact(&u),
                message: "tree is not a list".into(),
            })? {
                if e.get("type").and_then(Value::as_str) != Some("file") {
                    continue;
                }
                let path = e
                    .get("path")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if path.is_empty()
                    || path
                        .split('/')
                        .any(|s| s.is_empty() || s == "." || s == "..")
                    || path.starts_with('/')
                    || path.contains('\\')
                {
                    return Err(ClientError::Protocol {
                        url: redact(&u),
                        message: format!("refusing unsafe path `{path}`"),
                    });
                }
                out.push(RemoteFile {
                    path,
                    size: e.get("size").and_then(Value::as_u64).unwrap_or(0),
                    oid: e
                        .get("oid")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    lfs_sha256: e
                        .get("lfs")
                        .and_then(|l| l.get("oid"))
                        .and_then(Value::as_str)
                        .map(str::to_string),
                });
            }
            url = next;
        }
        Ok(out)
    }

    /// `GET /api/models` with query pairs, following pagination up to `limit` items.
    pub fn search(
        &self,
        kind: crate::RepoType,
        query: &[(String, String)],
        limit: usize,
    ) -> Result<Vec<Value>, ClientError> {
        let mut q = String::new();
        for (k, v) in query {
            q.push_str(&format!("{}={}&", percent(k), percent(v)));
        }
        let mut url = Some(self.api(&format!("{}?{q}limit={limit}", kind.plural())));
        let mut out = Vec::new();
        while let Some(u) = url.take() {
            let (v, next) = self.get_json(&u, None, "")?;
            out.extend(v.as_array().cloned().unwrap_or_default());
            if out.len() >= limit {
                out.truncate(limit);
                break;
            }
            url = next;
        }
        Ok(out)
    }

    pub fn whoami(&self) -> Result<Value, ClientError> {
        Ok(self.get_json(&self.api("whoami-v2"), None, "")?.0)
    }

    /// The `resolve` URL of a file at a commit.
    pub fn resolve_url(&self, repo: &RepoId, commit: &str, path: &str) -> String {
        format!(
            "{}/{}{}/resolve/{}/{}",
            self.settings.endpoint,
            repo.url_prefix(),
            repo.id,
            percent(commit),
            encode_path(path)
        )
    }

    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(link: Option<&str>) -> Option<String> {
    let link = link?;
    for part in link.split(',') {
        let (url, params) = part.split_once(';')?;
        if params.contains("rel=\"next\"") || params.contains("rel=next") {
            return Some(
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string(),
            );
        }
    }
    None
}
