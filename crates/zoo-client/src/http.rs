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
            .user_agent(concat!("zoo/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client { settings, agent }
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

    /// GET with optional extra headers (Range).
    pub fn get_raw(&self, url: &str, headers: &[(&str, String)]) -> Result<Reply, ClientError> {
        self.offline_guard(url)?;
        let mut req = self.auth(self.agent.get(url));
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let response = req.call().map_err(|e| Self::net(url, &e))?;
        Ok(Reply {
            status: response.status().as_u16(),
            response,
        })
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
        let mut reply = self.get_raw(url, &[])?;
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

    /// POST JSON; returns status and JSON body (or `null`).
    pub fn post_json(&self, url: &str, body: &Value) -> Result<(u16, Value), ClientError> {
        self.post_bytes(url, "application/json", body.to_string().as_bytes())
    }

    /// POST raw bytes with a content type.
    pub fn post_bytes(
        &self,
        url: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(u16, Value), ClientError> {
        self.offline_guard(url)?;
        let mut r = self
            .auth_body(self.agent.post(url))
            .header("Content-Type", content_type)
            .send(body)
            .map_err(|e| Self::net(url, &e))?;
        let status = r.status().as_u16();
        let text = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// PUT bytes from a reader to a (signed) URL, streaming.
    pub fn put_reader(
        &self,
        url: &str,
        reader: impl std::io::Read + Send + 'static,
    ) -> Result<u16, ClientError> {
        self.offline_guard(url)?;
        let r = self
            .agent
            .put(url)
            .send(ureq::SendBody::from_owned_reader(reader))
            .map_err(|e| Self::net(url, &e))?;
        Ok(r.status().as_u16())
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
