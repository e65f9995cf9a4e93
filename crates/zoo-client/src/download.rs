//! Pulling a repository: resolve the revision, list the files, download them in parallel
//! (large files in byte ranges), verify each hash while it streams, and place them in the
//! cache. Interrupted downloads resume from `{etag}.incomplete`, also in a later process.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use globset::{Glob, GlobSet, GlobSetBuilder};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cache::{Cache, Hasher};
use crate::http::{Client, RemoteFile};
use crate::{ClientError, RepoId};

/// What to pull and how.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub revision: Option<String>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Also copy the files into this folder (plain files, not links).
    pub local_dir: Option<PathBuf>,
    /// Files downloaded at once.
    pub jobs: usize,
    /// Files at least this large are fetched in parallel byte ranges.
    pub range_threshold: u64,
    /// Attempts per file on network errors (each resumes where the last stopped).
    pub retries: usize,
    pub progress: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            revision: None,
            include: Vec::new(),
            exclude: Vec::new(),
            local_dir: None,
            jobs: 8,
            range_threshold: 256 << 20,
            retries: 5,
            progress: false,
        }
    }
}

/// What a pull produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pulled {
    pub repo: String,
    pub commit: String,
    pub snapshot: PathBuf,
    pub local_dir: Option<PathBuf>,
    pub files: Vec<PulledFile>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PulledFile {
    pub path: String,
    pub size: u64,
    /// Bytes fetched over the network this time (0 when the cache had it).
    pub downloaded: u64,
}

pub(crate) fn globset(patterns: &[String]) -> Result<Option<GlobSet>, ClientError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        // A bare folder name matches everything under it, as the Python client's patterns do.
        let p = if p.ends_with('/') {
            format!("{p}*")
        } else {
            p.clone()
        };
        b.add(Glob::new(&p).map_err(|e| ClientError::Usage(format!("pattern `{p}`: {e}")))?);
    }
    Ok(Some(
        b.build().map_err(|e| ClientError::Usage(e.to_string()))?,
    ))
}

pub(crate) fn selected(path: &str, include: &Option<GlobSet>, exclude: &Option<GlobSet>) -> bool {
    include.as_ref().is_none_or(|g| g.is_match(path))
        && !exclude.as_ref().is_some_and(|g| g.is_match(path))
}

fn bar(multi: &MultiProgress, len: u64, name: &str) -> ProgressBar {
    let pb = multi.add(ProgressBar::new(len));
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    pb.set_message(name.to_string());
    pb
}

/// What a pull would fetch (`--dry-run`): the files selected at the revision and whether
/// the cache has each already.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub repo: String,
    pub commit: String,
    pub files: Vec<PlannedFile>,
    /// Bytes of the files the cache does not have.
    pub to_download: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedFile {
    pub path: String,
    pub size: u64,
    pub cached: bool,
}

/// Works out what [`pull`] would download, fetching only metadata.
pub fn plan(client: &Client, repo: &RepoId, opts: &PullOptions) -> Result<Plan, ClientError> {
    let cache = Cache::new(&client.settings.cache);
    let include = globset(&opts.include)?;
    let exclude = globset(&opts.exclude)?;
    let revision = opts.revision.clone().unwrap_or_else(|| "main".into());
    let commit = resolve_commit(client, repo, &revision)?;
    let files: Vec<PlannedFile> = client
        .files(repo, &commit)?
        .into_iter()
        .filter(|f| selected(&f.path, &include, &exclude))
        .map(|f| PlannedFile {
            cached: fs::metadata(cache.blob(repo, f.etag())).is_ok_and(|m| m.len() == f.size),
            path: f.path,
            size: f.size,
        })
        .collect();
    Ok(Plan {
        repo: repo.id.clone(),
        commit,
        to_download: files.iter().filter(|f| !f.cached).map(|f| f.size).sum(),
        files,
    })
}

fn resolve_commit(client: &Client, repo: &RepoId, revision: &str) -> Result<String, ClientError> {
    let info = client.info(repo, Some(revision))?;
    Ok(info
        .get("sha")
        .and_then(|s| s.as_str())
        .filter(|s| s.len() == 40)
        .ok_or_else(|| ClientError::Protocol {
            url: repo.id.clone(),
            message: "repo info has no 40-hex `sha`".into(),
        })?
        .to_string())
}

/// Pulls a repository into the cache; returns the snapshot path.
pub fn pull(client: &Client, repo: &RepoId, opts: &PullOptions) -> Result<Pulled, ClientError> {
    let cache = Cache::new(&client.settings.cache);
    let include = globset(&opts.include)?;
    let exclude = globset(&opts.exclude)?;
    if client.settings.offline {
        return pull_offline(&cache, repo, opts, &include, &exclude);
    }
    let revision = opts.revision.clone().unwrap_or_else(|| "main".into());
    let commit = resolve_commit(client, repo, &revision)?;
    let files: Vec<RemoteFile> = client
        .files(repo, &commit)?
        .into_iter()
        .filter(|f| selected(&f.path, &include, &exclude))
        .collect();
    let multi = MultiProgress::with_draw_target(if opts.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Result<PulledFile, ClientError>>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1).min(files.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(f) = files.get(i) else { break };
                    let r = fetch(client, &cache, repo, &commit, f, opts, &multi).and_then(
                        |downloaded| {
                            cache.link(repo, &commit, &f.path, f.etag())?;
                            Ok(PulledFile {
                                path: f.path.clone(),
                                size: f.size,
                                downloaded,
                            })
                        },
                    );
                    results.lock().unwrap().push(r);
                }
            });
        }
    });
    let mut pulled = Vec::new();
    for r in results.into_inner().unwrap() {
        pulled.push(r?);
    }
    pulled.sort_by(|a, b| a.path.cmp(&b.path));
    cache.write_ref(repo, &revision, &commit)?;
    let snapshot = cache.snapshot(repo, &commit);
    fs::create_dir_all(&snapshot).map_err(ClientError::io(&snapshot))?;
    if let Some(dir) = &opts.local_dir {
        copy_to_local_dir(&snapshot, dir, pulled.iter().map(|p| p.path.as_str()))?;
    }
    Ok(Pulled {
        repo: repo.id.clone(),
        commit,
        snapshot,
        local_dir: opts.local_dir.clone(),
        files: pulled,
    })
}

fn pull_offline(
    cache: &Cache,
    repo: &RepoId,
    opts: &PullOptions,
    include: &Option<GlobSet>,
    exclude: &Option<GlobSet>,
) -> Result<Pulled, ClientError> {
    let revision = opts.revision.clone().unwrap_or_else(|| "main".into());
    let commit = if revision.len() == 40 && cache.snapshot(repo, &revision).is_dir() {
        revision
    } else {
        cache.read_ref(repo, &revision).ok_or_else(|| {
            ClientError::Offline(format!(
                "{}@{revision} is not in the cache at {}",
                repo.id,
                cache.root.display()
            ))
        })?
    };
    let snapshot = cache.snapshot(repo, &commit);
    if !snapshot.is_dir() {
        return Err(ClientError::Offline(format!(
            "{}@{commit}: no snapshot in the cache",
            repo.id
        )));
    }
    let mut files = Vec::new();
    for (path, _) in cache.snapshot_files(repo, &commit)? {
        if !selected(&path, include, exclude) {
            continue;
        }
        let full = snapshot.join(&path);
        let size = fs::metadata(&full)
            .map_err(|_| {
                ClientError::Offline(format!("{}: {path} links to a missing blob", repo.id))
            })?
            .len();
        files.push(PulledFile {
            path,
            size,
            downloaded: 0,
        });
    }
    if let Some(dir) = &opts.local_dir {
        copy_to_local_dir(&snapshot, dir, files.iter().map(|p| p.path.as_str()))?;
    }
    Ok(Pulled {
        repo: repo.id.clone(),
        commit,
        snapshot,
        local_dir: opts.local_dir.clone(),
        files,
    })
}

fn copy_to_local_dir<'a>(
    snapshot: &Path,
    dir: &Path,
    paths: impl Iterator<Item = &'a str>,
) -> Result<(), ClientError> {
    for p in paths {
        let src = snapshot.join(p);
        let dst = dir.join(p);
        let parent = dst.parent().unwrap();
        fs::create_dir_all(parent).map_err(ClientError::io(parent))?;
        let tmp = parent.join(format!(
            ".{}.zoo-tmp",
            dst.file_name().unwrap().to_string_lossy()
        ));
        fs::copy(&src, &tmp).map_err(ClientError::io(&dst))?;
        // Whole or absent, also across a crash: the copy reaches the disk before its name.
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(ClientError::io(&dst))?;
        fs::rename(&tmp, &dst).map_err(ClientError::io(&dst))?;
        crate::cache::sync_dir(parent);
    }
    Ok(())
}

/// Makes sure a file's blob is in the cache; returns the bytes downloaded.
fn fetch(
    client: &Client,
    cache: &Cache,
    repo: &RepoId,
    commit: &str,
    f: &RemoteFile,
    opts: &PullOptions,
    multi: &MultiProgress,
) -> Result<u64, ClientError> {
    let blob = cache.blob(repo, f.etag());
    if fs::metadata(&blob).is_ok_and(|m| m.len() == f.size) {
        return Ok(0);
    }
    let _lock = cache.lock(repo, f.etag())?;
    // Another process may have finished it while we waited for the lock.
    if fs::metadata(&blob).is_ok_and(|m| m.len() == f.size) {
        return Ok(0);
    }
    let incomplete = cache.incomplete(repo, f.etag());
    let dir = incomplete.parent().unwrap().to_path_buf();
    fs::create_dir_all(&dir).map_err(ClientError::io(&dir))?;
    let url = client.resolve_url(repo, commit, &f.path);
    let pb = bar(multi, f.size, &f.path);
    let result = if f.size >= opts.range_threshold {
        download_ranges(client, &url, &incomplete, f, opts, &pb)
    } else {
        download_resumable(client, &url, &incomplete, f, opts, &pb)
    };
    pb.finish_and_clear();
    match result {
        Ok(n) => {
            fs::rename(&incomplete, &blob).map_err(ClientError::io(&blob))?;
            if let Ok(d) = File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(n)
        }
        Err(e) => {
            // A full disk or a wrong hash leaves nothing behind; a cut connection leaves
            // the partial file for the next attempt to resume.
            if e.disk_full() || matches!(e, ClientError::HashMismatch { .. }) {
                let _ = fs::remove_file(&incomplete);
                let _ = fs::remove_file(ranges_path(&incomplete));
            }
            if let ClientError::EntryNotFound { .. } = e {
                let _ = cache.mark_missing(repo, commit, &f.path);
            }
            Err(e)
        }
    }
}

fn expected(f: &RemoteFile) -> (bool, &str) {
    match &f.lfs_sha256 {
        Some(sha) => (false, sha.as_str()),
        None => (true, f.oid.as_str()),
    }
}

/// One stream, resumed with `Range: bytes=N-` after a cut (retrying up to `opts.retries`).
fn download_resumable(
    client: &Client,
    url: &str,
    incomplete: &Path,
    f: &RemoteFile,
    opts: &PullOptions,
    pb: &ProgressBar,
) -> Result<u64, ClientError> {
    let (git, want) = expected(f);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(incomplete)
        .map_err(ClientError::io(incomplete))?;
    let mut downloaded = 0;
    let mut attempt = 0;
    loop {
        let mut have = file.metadata().map_err(ClientError::io(incomplete))?.len();
        if have > f.size {
            file.set_len(0).map_err(ClientError::io(incomplete))?;
            have = 0;
        }
        // Hash what is already there, then continue from its end.
        let mut hasher = Hasher::new(git, f.size);
        file.seek(SeekFrom::Start(0))
            .map_err(ClientError::io(incomplete))?;
        let mut prefix = (&mut file).take(have);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = prefix.read(&mut buf).map_err(ClientError::io(incomplete))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        pb.set_position(have);
        let result = if have == f.size {
            Ok(())
        } else {
            stream_into(
                client,
                url,
                &mut file,
                &mut hasher,
                have,
                f.size,
                pb,
                &mut downloaded,
            )
        };
        match result {
            Ok(()) => {
                file.sync_all().map_err(ClientError::io(incomplete))?;
                let actual = hasher.finish();
                if actual != want {
                    return Err(ClientError::HashMismatch {
                        path: f.path.clone(),
                        expected: want.to_string(),
                        actual,
                    });
                }
                return Ok(downloaded);
            }
            Err(e) if e.transient() && attempt < opts.retries => {
                std::thread::sleep(crate::http::backoff(attempt, None));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Streams `url` from byte `have` into `file` (positioned at `have`), hashing as it goes.
#[allow(clippy::too_many_arguments)]
fn stream_into(
    client: &Client,
    url: &str,
    file: &mut File,
    hasher: &mut Hasher,
    have: u64,
    size: u64,
    pb: &ProgressBar,
    downloaded: &mut u64,
) -> Result<(), ClientError> {
    let headers: Vec<(&str, String)> = if have > 0 {
        vec![("Range", format!("bytes={have}-"))]
    } else {
        Vec::new()
    };
    let mut reply = client.get_raw(url, &headers)?;
    let mut pos = have;
    match reply.status {
        206 => {
            let start = reply
                .header("content-range")
                .and_then(|c| c.strip_prefix("bytes "))
                .and_then(|c| c.split('-').next())
                .and_then(|s| s.parse::<u64>().ok());
            if start != Some(have) {
                return Err(ClientError::Protocol {
                    url: crate::settings::redact(url),
                    message: "Content-Range does not start where asked".into(),
                });
            }
        }
        200 => {
            // The server ignored the range: start the file again.
            if have > 0 {
                file.set_len(0).map_err(|e| ClientError::Io {
                    path: PathBuf::from(url),
                    error: e,
                })?;
                *hasher = Hasher::new(matches!(hasher, Hasher::Git(_)), size);
                pos = 0;
                pb.set_position(0);
            }
        }
        _ => return Err(client.error_for(url, reply, None, url)),
    }
    file.seek(SeekFrom::Start(pos))
        .map_err(|e| ClientError::Io {
            path: PathBuf::from("incomplete"),
            error: e,
        })?;
    let mut body = reply
        .response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .reader();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                return Err(ClientError::Network {
                    url: crate::settings::redact(url),
                    message: format!("connection cut after {pos} bytes: {e}"),
                });
            }
        };
        if pos + n as u64 > size {
            return Err(ClientError::Protocol {
                url: crate::settings::redact(url),
                message: "more bytes than the listed size".into(),
            });
        }
        file.write_all(&buf[..n]).map_err(|e| ClientError::Io {
            path: PathBuf::from(url),
            error: e,
        })?;
        hasher.update(&buf[..n]);
        pos += n as u64;
        *downloaded += n as u64;
        pb.set_position(pos);
    }
    if pos != size {
        return Err(ClientError::Network {
            url: crate::settings::redact(url),
            message: format!("connection closed after {pos} of {size} bytes"),
        });
    }
    Ok(())
}

fn ranges_path(incomplete: &Path) -> PathBuf {
    incomplete.with_extension("incomplete.ranges")
}

/// Large files: parts fetched in parallel into one preallocated file; finished parts are
/// recorded beside it so a later process resumes part by part. The whole file is hashed at
/// the end, before it enters the cache.
fn download_ranges(
    client: &Client,
    url: &str,
    incomplete: &Path,
    f: &RemoteFile,
    opts: &PullOptions,
    pb: &ProgressBar,
) -> Result<u64, ClientError> {
    let parts_n = 8u64;
    let part = f.size.div_ceil(parts_n).max(1 << 20);
    let parts: Vec<(u64, u64)> = (0..f.size.div_ceil(part))
        .map(|i| (i * part, ((i + 1) * part).min(f.size)))
        .collect();
    let record = ranges_path(incomplete);
    let mut done: Vec<u64> = fs::read_to_string(&record)
        .ok()
        .map(|s| s.lines().filter_map(|l| l.parse().ok()).collect())
        .unwrap_or_default();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(incomplete)
        .map_err(ClientError::io(incomplete))?;
    if file.metadata().map_err(ClientError::io(incomplete))?.len() != f.size {
        done.clear();
        file.set_len(f.size).map_err(ClientError::io(incomplete))?;
    }
    let done_bytes: u64 = parts
        .iter()
        .filter(|(s, _)| done.contains(s))
        .map(|(s, e)| e - s)
        .sum();
    pb.set_position(done_bytes);
    let downloaded = std::sync::atomic::AtomicU64::new(0);
    let record_lock = Mutex::new(done.clone());
    let errors: Mutex<Vec<ClientError>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for &(start, end) in parts.iter().filter(|(s, _)| !done.contains(s)) {
            let (file, downloaded, record_lock, errors, record) =
                (&file, &downloaded, &record_lock, &errors, &record);
            s.spawn(move || {
                let mut attempt = 0;
                let mut pos = start;
                loop {
                    match fetch_part(client, url, file, &mut pos, end, pb, downloaded) {
                        Ok(()) => {
                            let mut d = record_lock.lock().unwrap();
                            d.push(start);
                            let text: String = d.iter().map(|x| format!("{x}\n")).collect();
                            let _ = crate::cache::write_atomic(record, text.as_bytes());
                            return;
                        }
                        Err(e) if e.transient() && attempt < opts.retries => {
                            std::thread::sleep(crate::http::backoff(attempt, None));
                            attempt += 1;
                        }
                        Err(e) => {
                            errors.lock().unwrap().push(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = errors.into_inner().unwrap().into_iter().next() {
        return Err(e);
    }
    file.sync_all().map_err(ClientError::io(incomplete))?;
    let (git, want) = expected(f);
    let actual = crate::cache::hash_file(incomplete, git)?;
    let _ = fs::remove_file(&record);
    if actual != want {
        return Err(ClientError::HashMismatch {
            path: f.path.clone(),
            expected: want.to_string(),
            actual,
        });
    }
    Ok(downloaded.into_inner())
}

fn fetch_part(
    client: &Client,
    url: &str,
    file: &File,
    pos: &mut u64,
    end: u64,
    pb: &ProgressBar,
    downloaded: &std::sync::atomic::AtomicU64,
) -> Result<(), ClientError> {
    use std::os::unix::fs::FileExt;
    let mut reply = client.get_raw(url, &[("Range", format!("bytes={}-{}", *pos, end - 1))])?;
    if reply.status != 206 {
        return Err(if reply.status == 200 {
            ClientError::Protocol {
                url: crate::settings::redact(url),
                message: "the server ignores byte ranges".into(),
            }
        } else {
            client.error_for(url, reply, None, url)
        });
    }
    let mut body = reply
        .response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .reader();
    let mut buf = vec![0u8; 256 << 10];
    while *pos < end {
        let n = body.read(&mut buf).map_err(|e| ClientError::Network {
            url: crate::settings::redact(url),
            message: e.to_string(),
        })?;
        if n == 0 {
            return Err(ClientError::Network {
                url: crate::settings::redact(url),
                message: format!("part cut at byte {}", *pos),
            });
        }
        let n = n.min((end - *pos) as usize);
        file.write_all_at(&buf[..n], *pos)
            .map_err(|e| ClientError::Io {
                path: PathBuf::from("incomplete"),
                error: e,
            })?;
        *pos += n as u64;
        downloaded.fetch_add(n as u64, Ordering::Relaxed);
        pb.inc(n as u64);
    }
    Ok(())
}

/// Fetches a corrupt blob again, from a snapshot that links to it (`zoo cache verify
/// --repair`); the corrupt bytes are removed first, so the download starts clean.
pub fn repair(client: &Client, repo: &RepoId, blob: &str) -> Result<(), ClientError> {
    let cache = Cache::new(&client.settings.cache);
    for commit in cache.snapshots(repo) {
        for (path, linked) in cache.snapshot_files(repo, &commit)? {
            if linked != blob {
                continue;
            }
            let file = cache.blob(repo, blob);
            fs::remove_file(&file).map_err(ClientError::io(&file))?;
            let opts = PullOptions {
                revision: Some(commit.clone()),
                include: vec![globset::escape(&path)],
                ..PullOptions::default()
            };
            pull(client, repo, &opts)?;
            if !cache.verify_blob(repo, blob)? {
                return Err(ClientError::Usage(format!(
                    "{}: blob {blob} ({path}) is still corrupt after fetching it again",
                    repo.id
                )));
            }
            return Ok(());
        }
    }
    Err(ClientError::Usage(format!(
        "{}: no snapshot links to blob {blob}; `zoo cache prune` removes it",
        repo.id
    )))
}
