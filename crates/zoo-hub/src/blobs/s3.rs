//! Blobs in an S3-compatible object store (`zoo serve --blobs s3://BUCKET/PREFIX`), through
//! `object_store`. Endpoint, region and credentials come from the usual `AWS_*` variables
//! (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`); path-style requests, plain HTTP allowed for an `http://` endpoint.
//!
//! Layout: `PREFIX/blobs/ab/cd/<sha256>`, as [`super::FsBlobStore`]. A blob is visible only
//! after its hash is verified: when the writer knows the hash to expect (LFS and Xet uploads
//! announce it), the bytes go as a multipart upload straight to the blob's key and the upload
//! is completed only if they hash to it (aborted otherwise) — an incomplete multipart upload is
//! invisible to readers; otherwise they go to `PREFIX/tmp/…` and are copied to their key once
//! hashed. Small blobs (one part) are one `PUT`, sent after the hash is checked.
//!
//! The store's I/O runs on a small runtime of its own (reqwest needs one); the synchronous
//! [`BlobStore`] calls wait for it with `futures::executor::block_on`, safe on any thread.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use futures_executor::block_on;
use futures_util::StreamExt;
use object_store::ObjectStoreExt as _;
use object_store::path::Path as StorePath;
use object_store::{GetOptions, GetRange, MultipartUpload, ObjectStore, PutPayload};
use sha2::{Digest, Sha256};

use super::{BlobError, BlobInfo, BlobStore, BlobWriter, StoredBlob, is_sha256};

/// Bytes per part of a multipart upload (S3's minimum is 5 MiB).
const PART: usize = 16 << 20;
/// Parts in flight per upload.
const IN_FLIGHT: usize = 4;

/// `PREFIX/rest`, or `rest` without a prefix.
fn prefixed(prefix: &str, rest: &str) -> StorePath {
    if prefix.is_empty() {
        StorePath::from(rest)
    } else {
        StorePath::from(format!("{prefix}/{rest}"))
    }
}

/// A blob's key under `prefix`: `blobs/ab/cd/<sha256>` (the caller checked the digest).
fn blob_key_in(prefix: &str, sha256: &str) -> StorePath {
    prefixed(
        prefix,
        &format!("blobs/{}/{}/{sha256}", &sha256[..2], &sha256[2..4]),
    )
}

/// Runs a future on the store's runtime and waits for it (from any thread).
fn run_on<T: Send + 'static>(
    rt: &tokio::runtime::Handle,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    block_on(rt.spawn(f)).expect("an S3 task panicked")
}

fn s3_err(what: &str, e: impl std::fmt::Display) -> BlobError {
    BlobError::Store(format!("S3 {what}: {e}"))
}

/// An S3 bucket (and key prefix) as a blob store.
pub struct S3BlobStore {
    store: Arc<dyn ObjectStore>,
    /// The same store, for presigning download links.
    signer: Arc<object_store::aws::AmazonS3>,
    prefix: String,
    url: String,
    rt: tokio::runtime::Handle,
    max_blob: u64,
    /// Dropped with the store: its runtime's thread then ends.
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3BlobStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl S3BlobStore {
    /// Opens `s3://BUCKET[/PREFIX]` and checks that the bucket answers.
    pub fn open(url: &str, max_blob: u64) -> Result<Self, BlobError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| s3_err("URL", format!("`{url}` is not s3://BUCKET/PREFIX")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(s3_err("URL", format!("`{url}` names no bucket")));
        }
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut b = object_store::aws::AmazonS3Builder::from_env()
            // object_store's default gives a request 30 s, body included: a large download to
            // a slow client (or 128 at once) is cut and resumed again and again until the
            // retries run out. A request's total time is the client's to bound; connecting
            // keeps its own limit.
            .with_config(
                object_store::aws::AmazonS3ConfigKey::Client(
                    object_store::ClientConfigKey::Timeout,
                ),
                "24h",
            )
            .with_bucket_name(bucket)
            .with_region(
                env("AWS_REGION")
                    .or(env("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|| "us-east-1".into()),
            );
        if let Some(endpoint) = env("AWS_ENDPOINT_URL").or(env("AWS_ENDPOINT")) {
            b = b
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        let signer = Arc::new(b.build().map_err(|e| s3_err("configuration", e))?);
        let store: Arc<dyn ObjectStore> = signer.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("zoo-s3".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("zoo-s3-io")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok(rt.handle().clone()));
                rt.block_on(async move {
                    let _ = stop.await;
                });
            })
            .map_err(|e| s3_err("starting a thread", e))?;
        let rt = rx
            .recv()
            .map_err(|e| s3_err("starting the I/O runtime", e))?
            .map_err(|e| s3_err("starting the I/O runtime", e))?;
        let s = S3BlobStore {
            store,
            signer,
            prefix: prefix.trim_matches('/').to_string(),
            url: url.to_string(),
            rt,
            max_blob,
            _shutdown: shutdown,
        };
        // The bucket must answer now, not at the first upload.
        let probe = s.key("blobs/.probe");
        let store = s.store.clone();
        match s.run(async move { store.head(&probe).await }) {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(s),
            Err(e) => Err(s3_err(&format!("{url}: the bucket does not answer"), e)),
        }
    }

    fn key(&self, rest: &str) -> StorePath {
        prefixed(&self.prefix, rest)
    }

    fn blob_key(&self, sha256: &str) -> Result<StorePath, BlobError> {
        if !is_sha256(sha256) {
            return Err(BlobError::BadOid(sha256.to_string()));
        }
        Ok(blob_key_in(&self.prefix, sha256))
    }

    /// Runs a future on the store's runtime and waits for it.
    fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        run_on(&self.rt, f)
    }
}

impl BlobStore for S3BlobStore {
    fn writer(&self) -> Result<Box<dyn BlobWriter>, BlobError> {
        self.writer_for(None)
    }

    fn writer_for(&self, expected_sha256: Option<&str>) -> Result<Box<dyn BlobWriter>, BlobError> {
        let target = match expected_sha256 {
            Some(sha) => Target::Blob(self.blob_key(sha)?),
            None => {
                let mut id = [0u8; 16];
                getrandom::fill(&mut id).expect("the OS random source");
                Target::Temp(self.key(&format!("tmp/upload-{}", hex::encode(id))))
            }
        };
        Ok(Box::new(S3Writer {
            store: self.store.clone(),
            rt: self.rt.clone(),
            prefix: self.prefix.clone(),
            max_blob: self.max_blob,
            target,
            upload: None,
            parts: Vec::new(),
            buf: Vec::new(),
            sha256: Sha256::new(),
            size: 0,
        }))
    }

    fn size(&self, sha256: &str) -> Result<Option<u64>, BlobError> {
        let key = self.blob_key(sha256)?;
        let store = self.store.clone();
        match self.run(async move { store.head(&key).await }) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(s3_err(&format!("HEAD blob {sha256}"), e)),
        }
    }

    fn read_range(
        &self,
        sha256: &str,
        start: u64,
        end: u64,
    ) -> Result<Box<dyn Read + Send>, BlobError> {
        let key = self.blob_key(sha256)?;
        if end <= start {
            return Ok(Box::new(std::io::empty()));
        }
        let store = self.store.clone();
        let opts = GetOptions {
            range: Some(GetRange::Bounded(start..end)),
            ..GetOptions::default()
        };
        let got = self
            .run(async move { store.get_opts(&key, opts).await })
            .map_err(|e| s3_err(&format!("GET blob {sha256}"), e))?;
        // The body streams on the store's runtime into a small channel the reader drains. The
        // sending side awaits (never blocks a runtime thread: a reader that waits must not
        // stop every other transfer).
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
        let mut stream = got.into_stream();
        self.rt.spawn(async move {
            while let Some(chunk) = stream.next().await {
                let item = chunk.map_err(std::io::Error::other);
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Box::new(ChannelReader {
            rx,
            chunk: Bytes::new(),
        }))
    }

    fn local_path(&self, _sha256: &str) -> Option<std::path::PathBuf> {
        None
    }

    fn presigned_get(
        &self,
        sha256: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<String>, BlobError> {
        use object_store::signer::Signer;
        let key = self.blob_key(sha256)?;
        let signer = self.signer.clone();
        let url = self
            .run(async move { signer.signed_url(axum::http::Method::GET, &key, ttl).await })
            .map_err(|e| s3_err(&format!("presigning blob {sha256}"), e))?;
        Ok(Some(url.to_string()))
    }

    fn list(&self) -> Result<Vec<StoredBlob>, BlobError> {
        let store = self.store.clone();
        let prefix = self.key("blobs");
        let metas: Vec<object_store::ObjectMeta> = self
            .run(async move {
                let mut s = store.list(Some(&prefix));
                let mut v = Vec::new();
                while let Some(m) = s.next().await {
                    v.push(m?);
                }
                Ok::<_, object_store::Error>(v)
            })
            .map_err(|e| s3_err("listing blobs", e))?;
        let mut out: Vec<StoredBlob> = metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                is_sha256(&name).then(|| StoredBlob {
                    sha256: name,
                    size: m.size,
                    modified_ms: m.last_modified.timestamp_millis(),
                })
            })
            .collect();
        out.sort_by(|x, y| x.sha256.cmp(&y.sha256));
        Ok(out)
    }

    fn delete(&self, sha256: &str) -> Result<bool, BlobError> {
        let had = self.size(sha256)?.is_some();
        let key = self.blob_key(sha256)?;
        let store = self.store.clone();
        match self.run(async move { store.delete(&key).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(had),
            Err(e) => Err(s3_err(&format!("DELETE blob {sha256}"), e)),
        }
    }
}

/// A blocking reader over the chunks a task sends (tokio's channel is runtime-agnostic:
/// `block_on` may wait on it from any thread).
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match block_on(self.rx.recv()) {
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

enum Target {
    /// The blob's own key: the hash was announced.
    Blob(StorePath),
    /// A temporary key, copied to the blob's key once hashed.
    Temp(StorePath),
}

struct S3Writer {
    store: Arc<dyn ObjectStore>,
    rt: tokio::runtime::Handle,
    prefix: String,
    max_blob: u64,
    target: Target,
    upload: Option<Box<dyn MultipartUpload>>,
    parts: Vec<tokio::task::JoinHandle<object_store::Result<()>>>,
    buf: Vec<u8>,
    sha256: Sha256,
    size: u64,
}

impl S3Writer {
    fn key(&self) -> &StorePath {
        match &self.target {
            Target::Blob(k) | Target::Temp(k) => k,
        }
    }

    /// Sends the buffer as the next part (starting the multipart upload with the first).
    fn send_part(&mut self) -> Result<(), BlobError> {
        if self.upload.is_none() {
            let store = self.store.clone();
            let key = self.key().clone();
            let up = run_on(&self.rt, async move { store.put_multipart(&key).await })
                .map_err(|e| s3_err("starting a multipart upload", e))?;
            self.upload = Some(up);
        }
        let bytes = Bytes::from(std::mem::take(&mut self.buf));
        let part = self
            .upload
            .as_mut()
            .expect("started above")
            .put_part(PutPayload::from(bytes));
        self.parts.push(self.rt.spawn(part));
        // Bounded memory: wait for the oldest part when too many are in flight.
        while self.parts.iter().filter(|p| !p.is_finished()).count() >= IN_FLIGHT {
            let oldest = self.parts.remove(0);
            block_on(oldest)
                .expect("an S3 task panicked")
                .map_err(|e| s3_err("uploading a part", e))?;
        }
        Ok(())
    }

    fn abort(&mut self) {
        if let Some(mut up) = self.upload.take() {
            let _ = run_on(&self.rt, async move { up.abort().await });
        }
    }
}

impl BlobWriter for S3Writer {
    fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.size += chunk.len() as u64;
        if self.size > self.max_blob {
            self.abort();
            return Err(BlobError::TooLarge {
                limit: self.max_blob,
            });
        }
        self.sha256.update(chunk);
        self.buf.extend_from_slice(chunk);
        if self.buf.len() >= PART
            && let Err(e) = self.send_part()
        {
            self.abort();
            return Err(e);
        }
        Ok(())
    }

    fn commit(
        mut self: Box<Self>,
        expected_sha256: Option<&str>,
        expected_size: Option<u64>,
    ) -> Result<BlobInfo, BlobError> {
        let actual = hex::encode(std::mem::take(&mut self.sha256).finalize());
        let wrong = if let Some(expected) = expected_size
            && expected != self.size
        {
            Some(BlobError::SizeMismatch {
                expected,
                actual: self.size,
            })
        } else if let Some(expected) = expected_sha256
            && expected != actual
        {
            Some(BlobError::HashMismatch {
                expected: expected.to_string(),
                actual: actual.clone(),
            })
        } else if let Target::Blob(k) = &self.target
            && !k.as_ref().ends_with(&actual)
        {
            Some(BlobError::HashMismatch {
                expected: k.filename().unwrap_or("").to_string(),
                actual: actual.clone(),
            })
        } else {
            None
        };
        if let Some(e) = wrong {
            self.abort();
            return Err(e);
        }
        let final_key = blob_key_in(&self.prefix, &actual);
        let store = self.store.clone();
        if self.upload.is_none() {
            // One part: a single PUT, straight to the blob's key, after the hash is checked.
            let bytes = Bytes::from(std::mem::take(&mut self.buf));
            run_on(&self.rt, async move {
                store.put(&final_key, PutPayload::from(bytes)).await
            })
            .map_err(|e| s3_err(&format!("PUT blob {actual}"), e))?;
        } else {
            if !self.buf.is_empty() {
                self.send_part()?;
            }
            for p in std::mem::take(&mut self.parts) {
                if let Err(e) = block_on(p)
                    .expect("an S3 task panicked")
                    .map_err(|e| s3_err("uploading a part", e))
                {
                    self.abort();
                    return Err(e);
                }
            }
            let mut up = self.upload.take().expect("a multipart upload");
            run_on(&self.rt, async move { up.complete().await })
                .map_err(|e| s3_err("completing a multipart upload", e))?;
            if let Target::Temp(tmp) = &self.target {
                let tmp = tmp.clone();
                run_on(&self.rt, async move {
                    store.copy(&tmp, &final_key).await?;
                    store.delete(&tmp).await
                })
                .map_err(|e| s3_err(&format!("moving blob {actual} into place"), e))?;
            }
        }
        Ok(BlobInfo {
            sha256: actual,
            size: self.size,
        })
    }
}

impl Drop for S3Writer {
    /// A writer dropped without a commit (a cut upload) leaves no multipart upload behind.
    fn drop(&mut self) {
        self.abort();
    }
}
