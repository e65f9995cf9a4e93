//! Pull-through mirroring (`zoo serve --upstream URL`): a repository this hub does not have
//! is fetched from the upstream hub on its first request — its revision's metadata, then
//! every file, each verified against the upstream's hash (sha256 for LFS files, the git blob
//! id for the others) before it becomes visible — and stored like the hub's own: the same
//! commit id, scanned, indexed, served with the upstream down.
//!
//! Rules:
//! - a commit id, once stored, is never asked about again; a branch or tag is asked again
//!   after `upstream_refresh` seconds, and when the upstream cannot be reached the stored one
//!   is served;
//! - a mirrored repository is read-only here (push to the upstream);
//! - a repository of this hub's own never shadows an upstream one: creating one whose name
//!   the upstream has is refused, and a mirror never replaces one;
//! - the upstream's private repositories are mirrored only with `--upstream-token`, and stay
//!   private here (visible to the user of the same name).

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sha1::Digest as _;
use zoo_client::http::RemoteFile;
use zoo_client::{Client, ClientError, RepoId, RepoType, Settings};

use crate::blobs::{BlobStore, git_blob_sha1, is_sha256, lfs_pointer};
use crate::config::HubConfig;
use crate::error::HubError;
use crate::meta::{Commit, FileEntry, Import, MetaStore, RepoKind, now_ms};

/// Files fetched at once from the upstream.
const PARALLEL: usize = 4;
/// Attempts per file when the connection fails.
const ATTEMPTS: usize = 3;

/// The upstream hub of a mirroring hub.
pub struct Upstream {
    client: Client,
    /// Its URL, without a trailing `/`.
    pub url: String,
    refresh_ms: i64,
    /// One fetch at a time per repository in this process (replicas: the store's transaction).
    locks: Mutex<HashMap<(RepoKind, String), Turn>>,
}

type Turn = Arc<tokio::sync::Mutex<()>>;

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("url", &self.url).finish()
    }
}

/// What a request found upstream.
enum Outcome {
    /// The revision is stored here now (`main_moved`: the default branch points elsewhere).
    Stored { repo_id: i64, main_moved: bool },
    /// The upstream has no such repository or revision (or hides it from our token).
    Missing,
}

fn upstream_err(url: &str, e: impl std::fmt::Display) -> HubError {
    HubError::Upstream(format!("upstream {url}: {e}"))
}

fn is_commit_id(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Upstream {
    /// The upstream the configuration names, if any.
    pub fn from_config(config: &HubConfig) -> Option<Upstream> {
        let url = config
            .upstream
            .as_deref()?
            .trim_end_matches('/')
            .to_string();
        let mut settings = Settings::from_env(Some(&url), None, false);
        // Only the token given for the upstream: never one the server's environment holds.
        settings.token = config.upstream_token.clone();
        settings.token_source = if settings.token.is_some() {
            zoo_client::settings::TokenSource::Flag
        } else {
            zoo_client::settings::TokenSource::None
        };
        settings.progress_bars = false;
        let mut client = Client::new(settings);
        client.retries = 2;
        Some(Upstream {
            client,
            url,
            refresh_ms: i64::try_from(config.upstream_refresh.saturating_mul(1000))
                .unwrap_or(i64::MAX),
            locks: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self, kind: RepoKind, id: &str) -> Turn {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((kind, id.to_string()))
            .or_default()
            .clone()
    }

    fn repo_id(kind: RepoKind, ns: &str, name: &str) -> RepoId {
        RepoId {
            kind: match kind {
                RepoKind::Model => RepoType::Model,
                RepoKind::Dataset => RepoType::Dataset,
            },
            id: format!("{ns}/{name}"),
        }
    }

    /// Whether the upstream has `ns/name` (for refusing a local repository that would shadow
    /// it). An upstream that cannot be asked is an error: a clash could not be ruled out.
    pub fn has(&self, kind: RepoKind, ns: &str, name: &str) -> Result<bool, HubError> {
        match self.client.info(&Self::repo_id(kind, ns, name), None) {
            Ok(_) => Ok(true),
            Err(ClientError::RepoNotFound(_)) => Ok(false),
            Err(e) => Err(upstream_err(
                &self.url,
                format!(
                    "{e} (a repository is created here only once the upstream says it has none of that name)"
                ),
            )),
        }
    }

    /// Fetches `rev` of `ns/name` from the upstream into the stores (blocking).
    fn fetch(
        &self,
        meta: &dyn MetaStore,
        blobs: &dyn BlobStore,
        kind: RepoKind,
        ns: &str,
        name: &str,
        rev: &str,
    ) -> Result<Outcome, HubError> {
        let rid = Self::repo_id(kind, ns, name);
        let info = match self.client.info(&rid, Some(rev)) {
            Ok(v) => v,
            Err(ClientError::RepoNotFound(_) | ClientError::RevisionNotFound { .. }) => {
                return Ok(Outcome::Missing);
            }
            Err(e) => return Err(upstream_err(&self.url, e)),
        };
        let sha = info
            .get("sha")
            .and_then(Value::as_str)
            .filter(|s| is_commit_id(s))
            .ok_or_else(|| {
                upstream_err(
                    &self.url,
                    format!("{} @ {rev}: the answer names no commit id", rid.id),
                )
            })?
            .to_ascii_lowercase();
        let private = info
            .get("private")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let refs = self.ref_kind(&rid, rev, &sha);
        let refs: Vec<(&str, &str)> = refs.iter().map(|k| (*k, rev)).collect();
        let local = meta.repo(kind, ns, name)?;
        let old_main = match &local {
            Some(r) => meta.resolve(r.id, "main")?,
            None => None,
        };
        let stored = match &local {
            Some(r) => meta.commit_info(r.id, &sha)?,
            None => None,
        };
        // A commit stored already needs only its refs moved: `import` keeps its tree.
        let (commit, files) = if let Some(commit) = stored {
            (commit, Vec::new())
        } else {
            let listed = self
                .client
                .files(&rid, &sha)
                .map_err(|e| upstream_err(&self.url, e))?;
            let files = self.fetch_files(blobs, &rid, &sha, &listed)?;
            (self.commit_of(&rid, &sha), files)
        };
        let repo = meta.import(&Import {
            kind,
            namespace: ns,
            name,
            private,
            upstream: &self.url,
            commit: &commit,
            files: &files,
            refs: &refs,
            revision: rev,
        })?;
        let main_moved = refs.contains(&("branch", "main")) && old_main.as_deref() != Some(&sha);
        Ok(Outcome::Stored {
            repo_id: repo.id,
            main_moved,
        })
    }

    /// Whether `rev` is a branch or a tag upstream (a commit id is neither).
    fn ref_kind(&self, rid: &RepoId, rev: &str, sha: &str) -> Option<&'static str> {
        if rev.eq_ignore_ascii_case(sha) {
            return None;
        }
        let url = self
            .client
            .api(&format!("{}/{}/refs", rid.kind.plural(), rid.id));
        let is_in = |v: &Value, key: &str| {
            v.get(key).and_then(Value::as_array).is_some_and(|a| {
                a.iter()
                    .any(|r| r.get("name").and_then(Value::as_str) == Some(rev))
            })
        };
        match self.client.get_json(&url, Some(rid), rev) {
            Ok((v, _)) if is_in(&v, "tags") && !is_in(&v, "branches") => Some("tag"),
            _ => Some("branch"),
        }
    }

    /// The upstream's description of commit `sha` (its title, author, time and parent), or a
    /// plain one when it has none to give.
    fn commit_of(&self, rid: &RepoId, sha: &str) -> Commit {
        let url = self
            .client
            .api(&format!("{}/{}/commits/{sha}", rid.kind.plural(), rid.id));
        let list = self
            .client
            .get_json(&url, Some(rid), sha)
            .ok()
            .and_then(|(v, _)| v.as_array().cloned())
            .unwrap_or_default();
        let text = |v: Option<&Value>, key: &str| {
            v.and_then(|v| v.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let first = list
            .first()
            .filter(|c| text(Some(c), "id").as_deref() == Some(sha));
        let created_at = text(first, "date")
            .and_then(|d| {
                time::OffsetDateTime::parse(&d, &time::format_description::well_known::Rfc3339).ok()
            })
            .map_or_else(now_ms, |t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
        Commit {
            id: sha.to_string(),
            parent: first
                .and_then(|_| text(list.get(1), "id"))
                .filter(|p| is_commit_id(p)),
            summary: text(first, "title").unwrap_or_else(|| format!("mirrored from {}", self.url)),
            description: text(first, "message").unwrap_or_default(),
            author: first
                .and_then(|c| c.get("authors"))
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(|a| text(Some(a), "user"))
                .unwrap_or_else(|| "upstream".into()),
            created_at,
        }
    }

    /// Every file of the revision into the blob store, hash-verified and scanned.
    fn fetch_files(
        &self,
        blobs: &dyn BlobStore,
        rid: &RepoId,
        sha: &str,
        listed: &[RemoteFile],
    ) -> Result<Vec<FileEntry>, HubError> {
        if let Some(bad) = listed
            .iter()
            .find(|f| crate::paths::path_problem(&f.path).is_some())
        {
            return Err(upstream_err(
                &self.url,
                format!("{} @ {sha}: refusing the path `{}`", rid.id, bad.path),
            ));
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<FileEntry, HubError>>>> =
            Mutex::new((0..listed.len()).map(|_| None).collect());
        std::thread::scope(|s| {
            for _ in 0..PARALLEL.min(listed.len()) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(f) = listed.get(i) else { break };
                        let r = self.fetch_file(blobs, rid, sha, f);
                        let failed = r.is_err();
                        results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                        if failed {
                            // The others stop at their next file.
                            next.store(listed.len(), std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let mut out = Vec::with_capacity(listed.len());
        for r in results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .flatten()
        {
            out.push(r?);
        }
        if out.len() != listed.len() {
            return Err(HubError::Internal(format!(
                "{} @ {sha}: fetched {} of {} files",
                rid.id,
                out.len(),
                listed.len()
            )));
        }
        Ok(out)
    }

    /// One file, retried when the connection fails; visible only once its hash matches.
    fn fetch_file(
        &self,
        blobs: &dyn BlobStore,
        rid: &RepoId,
        sha: &str,
        f: &RemoteFile,
    ) -> Result<FileEntry, HubError> {
        let lfs = f.lfs_sha256.as_deref().map(str::to_ascii_lowercase);
        if let Some(oid) = &lfs
            && !is_sha256(oid)
        {
            return Err(upstream_err(
                &self.url,
                format!("{} @ {sha}: `{}` has a bad LFS oid", rid.id, f.path),
            ));
        }
        let stored = match &lfs {
            Some(oid) => blobs.size(oid)? == Some(f.size),
            None => false,
        };
        let mut e = if stored {
            let oid = lfs.unwrap_or_default();
            FileEntry {
                path: f.path.clone(),
                git_oid: git_blob_sha1(lfs_pointer(&oid, f.size).as_bytes()),
                sha256: oid,
                size: f.size,
                lfs: true,
                verdict: None,
                scan: None,
            }
        } else {
            let mut attempt = 0;
            loop {
                match self.download(blobs, rid, sha, f, lfs.as_deref()) {
                    Ok(e) => break e,
                    Err(Failure::Transient(message)) if attempt + 1 < ATTEMPTS => {
                        eprintln!("zoo serve: {message}; retrying");
                        std::thread::sleep(zoo_client::http::backoff(attempt, None));
                        attempt += 1;
                    }
                    Err(Failure::Transient(message) | Failure::Fatal(message)) => {
                        return Err(upstream_err(&self.url, message));
                    }
                    Err(Failure::Hub(e)) => return Err(e),
                }
            }
        };
        // Scanned like an upload: the verdict is shown where the file is listed. A dangerous
        // pickle is the upstream's content and is flagged, not refused; a safetensors file
        // that fails the validator is refused (the whole revision with it).
        crate::scan::scan_entry(blobs, &mut e, true)?;
        Ok(e)
    }

    fn download(
        &self,
        blobs: &dyn BlobStore,
        rid: &RepoId,
        sha: &str,
        f: &RemoteFile,
        lfs: Option<&str>,
    ) -> Result<FileEntry, Failure> {
        let url = self.client.resolve_url(rid, sha, &f.path);
        let what = format!("{} @ {sha}: `{}`", rid.id, f.path);
        let mut reply = self.client.get_raw(&url, &[]).map_err(|e| {
            if e.transient() {
                Failure::Transient(format!("{what}: {e}"))
            } else {
                Failure::Fatal(format!("{what}: {e}"))
            }
        })?;
        if reply.status != 200 {
            let status = reply.status;
            let e = self.client.error_for(&url, reply, Some(rid), &f.path);
            return Err(if status >= 500 || status == 429 {
                Failure::Transient(format!("{what}: {e}"))
            } else {
                Failure::Fatal(format!("{what}: {e}"))
            });
        }
        let mut w = blobs.writer_for(lfs).map_err(|e| Failure::Hub(e.into()))?;
        // A regular file is checked against its git blob id (the upstream's listing gives no
        // sha256 for it); an LFS file against its sha256, by the store.
        let mut git = sha1::Sha1::new();
        git.update(format!("blob {}\0", f.size).as_bytes());
        let mut body = reply
            .response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .reader();
        let mut buf = vec![0u8; 256 << 10];
        let mut got = 0u64;
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    return Err(Failure::Transient(format!(
                        "{what}: connection cut after {got} bytes: {e}"
                    )));
                }
            };
            got += n as u64;
            if got > f.size {
                return Err(Failure::Fatal(format!(
                    "{what}: more than the {} bytes listed",
                    f.size
                )));
            }
            if lfs.is_none() {
                git.update(&buf[..n]);
            }
            w.write_chunk(&buf[..n])
                .map_err(|e| Failure::Hub(e.into()))?;
        }
        if got != f.size {
            return Err(Failure::Transient(format!(
                "{what}: {got} of {} bytes",
                f.size
            )));
        }
        let git_oid = match lfs {
            Some(oid) => git_blob_sha1(lfs_pointer(oid, f.size).as_bytes()),
            None => {
                let oid = hex::encode(git.finalize());
                if !oid.eq_ignore_ascii_case(&f.oid) {
                    return Err(Failure::Fatal(format!(
                        "{what}: the bytes hash to git blob {oid}, the listing says {}; not stored",
                        f.oid
                    )));
                }
                oid
            }
        };
        let info = w.commit(lfs, Some(f.size)).map_err(|e| match e {
            crate::blobs::BlobError::HashMismatch { .. } => {
                Failure::Fatal(format!("{what}: {e}; not stored"))
            }
            other => Failure::Hub(other.into()),
        })?;
        Ok(FileEntry {
            path: f.path.clone(),
            sha256: info.sha256,
            size: info.size,
            git_oid,
            lfs: lfs.is_some(),
            verdict: None,
            scan: None,
        })
    }
}

enum Failure {
    /// Worth another try (the connection failed, the upstream answered 5xx).
    Transient(String),
    Fatal(String),
    /// This hub's own stores failed.
    Hub(HubError),
}

/// Makes sure `rev` of `ns/name` is here when this hub mirrors an upstream: a repository of
/// this hub's own is left alone; a mirrored one is refreshed per the rules above; a missing
/// one is fetched. When the upstream has no such thing, nothing happens (the route answers
/// 404); when it cannot be reached, a stored copy is served, and without one the request
/// fails with 502.
pub async fn ensure(
    hub: &crate::Hub,
    kind: RepoKind,
    ns: &str,
    name: &str,
    rev: &str,
) -> Result<(), HubError> {
    let Some(up) = hub.upstream.clone() else {
        return Ok(());
    };
    if !crate::paths::valid_repo_part(ns) || !crate::paths::valid_repo_part(name) {
        return Ok(());
    }
    let lock = up.lock(kind, &format!("{ns}/{name}"));
    let _turn = lock.lock().await;
    let local = hub.meta.repo(kind, ns, name)?;
    if let Some(r) = &local {
        let Some(m) = hub.meta.mirror(r.id, rev)? else {
            return Ok(());
        };
        let have = hub.meta.resolve(r.id, rev)?.is_some();
        let fresh = m
            .checked_at
            .is_some_and(|t| now_ms().saturating_sub(t) < up.refresh_ms);
        if have && (is_commit_id(rev) || fresh) {
            return Ok(());
        }
    }
    let (meta, blobs) = (hub.meta.clone(), hub.blobs.clone());
    let (ns_, name_, rev_) = (ns.to_string(), name.to_string(), rev.to_string());
    let up_ = up.clone();
    let fetched = tokio::task::spawn_blocking(move || {
        up_.fetch(meta.as_ref(), blobs.as_ref(), kind, &ns_, &name_, &rev_)
    })
    .await
    .map_err(|e| HubError::Internal(e.to_string()))?;
    match fetched {
        Ok(Outcome::Stored {
            repo_id,
            main_moved,
        }) => {
            if main_moved {
                let repo = hub
                    .meta
                    .repo(kind, ns, name)?
                    .filter(|r| r.id == repo_id)
                    .ok_or(HubError::RepoNotFound)?;
                let head = hub.meta.resolve(repo_id, "main")?.unwrap_or_default();
                crate::server::reindex(hub, &repo, &head).await?;
            }
            Ok(())
        }
        Ok(Outcome::Missing) => Ok(()),
        Err(e) => {
            let have = match &local {
                Some(r) => hub.meta.resolve(r.id, rev)?.is_some(),
                None => false,
            };
            if have {
                eprintln!("zoo serve: serving the stored {ns}/{name} @ {rev}: {e}");
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}
