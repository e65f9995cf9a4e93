//! `zoo serve` configuration: flags override environment variables, which override the
//! optional TOML file (`--config FILE`, or `DATA/zoo.toml` when present).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub data: PathBuf,
    pub addr: SocketAddr,
    /// The URL clients reach the server at, for absolute URLs (LFS upload links, `Link`
    /// pagination). Default: taken from each request's `Host` header.
    pub public_url: Option<String>,
    /// Accept pickles whose scan verdict is `dangerous` (refused by default).
    pub allow_dangerous_pickles: bool,
    /// Largest ndjson commit body (regular files travel inside it, base64).
    pub max_commit_bytes: u64,
    /// Largest single file.
    pub max_file_bytes: u64,
    /// Items per page of `tree` and `GET /api/models`.
    pub page_size: usize,
    /// Where metadata lives: `sqlite:PATH` or `postgres://…` (default `sqlite:DATA/meta.sqlite`).
    pub database: Option<String>,
    /// Where blobs live: `file:PATH` (default `file:DATA`) or `s3://BUCKET/PREFIX`.
    pub blobs: Option<String>,
    /// A hub to mirror (`--upstream`): repositories this hub does not have are fetched from
    /// it on first request.
    pub upstream: Option<String>,
    /// The token sent to the upstream (its private repositories are mirrored only with one).
    pub upstream_token: Option<String>,
    /// How long a mirrored branch or tag is served before the upstream is asked again where
    /// it points (seconds). Commit ids never need asking again.
    pub upstream_refresh: u64,
    /// Answer downloads of LFS files with a redirect to a presigned URL of the object store
    /// (S3 only) instead of streaming them through this server.
    pub blobs_redirect: bool,
}

impl HubConfig {
    pub fn new(data: PathBuf) -> Self {
        HubConfig {
            data,
            addr: "127.0.0.1:8080".parse().unwrap(),
            public_url: None,
            allow_dangerous_pickles: false,
            max_commit_bytes: 1 << 30,
            max_file_bytes: 100 << 30,
            page_size: 1000,
            database: None,
            blobs: None,
            upstream: None,
            upstream_token: None,
            upstream_refresh: 300,
            blobs_redirect: false,
        }
    }
}

/// The TOML file: every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub addr: Option<SocketAddr>,
    pub public_url: Option<String>,
    pub allow_dangerous_pickles: Option<bool>,
    pub max_commit_bytes: Option<u64>,
    pub max_file_bytes: Option<u64>,
    pub page_size: Option<usize>,
    pub database: Option<String>,
    pub blobs: Option<String>,
    pub upstream: Option<String>,
    pub upstream_token: Option<String>,
    pub upstream_refresh: Option<u64>,
    pub blobs_redirect: Option<bool>,
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {error}")]
    Toml {
        path: PathBuf,
        error: toml::de::Error,
    },
    #[error("environment variable {name}: {reason}")]
    Env { name: &'static str, reason: String },
    #[error("{what} {url}: {reason}")]
    Url {
        what: &'static str,
        url: String,
        reason: String,
    },
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.into(),
            error,
        })?;
        toml::from_str(&text).map_err(|error| ConfigError::Toml {
            path: path.into(),
            error,
        })
    }

    /// Applies the file, then `ZOO_ADDR`, `ZOO_PUBLIC_URL`, `ZOO_ALLOW_DANGEROUS_PICKLES`,
    /// `ZOO_MAX_COMMIT_BYTES`, `ZOO_MAX_FILE_BYTES`, `ZOO_PAGE_SIZE`, `ZOO_DATABASE`,
    /// `ZOO_BLOBS`, `ZOO_UPSTREAM`, `ZOO_UPSTREAM_TOKEN`, `ZOO_UPSTREAM_REFRESH`,
    /// `ZOO_BLOBS_REDIRECT`.
    pub fn apply(self, c: &mut HubConfig) -> Result<(), ConfigError> {
        fn env<T: std::str::FromStr>(name: &'static str) -> Result<Option<T>, ConfigError> {
            match std::env::var(name) {
                Ok(v) => v.parse().map(Some).map_err(|_| ConfigError::Env {
                    name,
                    reason: format!("cannot parse `{v}`"),
                }),
                Err(_) => Ok(None),
            }
        }
        if let Some(v) = env::<SocketAddr>("ZOO_ADDR")?.or(self.addr) {
            c.addr = v;
        }
        if let Some(v) = env::<String>("ZOO_PUBLIC_URL")?.or(self.public_url) {
            c.public_url = Some(v.trim_end_matches('/').to_string());
        }
        if let Some(v) =
            env::<bool>("ZOO_ALLOW_DANGEROUS_PICKLES")?.or(self.allow_dangerous_pickles)
        {
            c.allow_dangerous_pickles = v;
        }
        if let Some(v) = env::<u64>("ZOO_MAX_COMMIT_BYTES")?.or(self.max_commit_bytes) {
            c.max_commit_bytes = v;
        }
        if let Some(v) = env::<u64>("ZOO_MAX_FILE_BYTES")?.or(self.max_file_bytes) {
            c.max_file_bytes = v;
        }
        if let Some(v) = env::<usize>("ZOO_PAGE_SIZE")?.or(self.page_size) {
            c.page_size = v.max(1);
        }
        if let Some(v) = env::<String>("ZOO_DATABASE")?.or(self.database) {
            c.database = Some(v);
        }
        if let Some(v) = env::<String>("ZOO_BLOBS")?.or(self.blobs) {
            c.blobs = Some(v);
        }
        if let Some(v) = env::<String>("ZOO_UPSTREAM")?.or(self.upstream) {
            c.upstream = Some(v.trim_end_matches('/').to_string()).filter(|v| !v.is_empty());
        }
        if let Some(v) = env::<String>("ZOO_UPSTREAM_TOKEN")?.or(self.upstream_token) {
            c.upstream_token = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = env::<u64>("ZOO_UPSTREAM_REFRESH")?.or(self.upstream_refresh) {
            c.upstream_refresh = v;
        }
        if let Some(v) = env::<bool>("ZOO_BLOBS_REDIRECT")?.or(self.blobs_redirect) {
            c.blobs_redirect = v;
        }
        Ok(())
    }
}

/// Where a hub keeps its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

/// Where a hub keeps its blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blobs {
    Files(PathBuf),
    /// `s3://BUCKET/PREFIX`, endpoint and credentials from `AWS_*`.
    S3(String),
}

impl HubConfig {
    /// The metadata store `database` names (default: SQLite in the data directory).
    pub fn database(&self) -> Result<Database, ConfigError> {
        let Some(url) = self.database.as_deref() else {
            return Ok(Database::Sqlite(self.data.join("meta.sqlite")));
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.to_string()));
        }
        if let Some(p) = url.strip_prefix("sqlite:") {
            let p = p.strip_prefix("//").unwrap_or(p);
            if !p.is_empty() {
                return Ok(Database::Sqlite(PathBuf::from(p)));
            }
        }
        Err(ConfigError::Url {
            what: "--database",
            url: url.to_string(),
            reason: "expected sqlite:PATH or postgres://USER@HOST:PORT/DB".into(),
        })
    }

    /// The blob store `blobs` names (default: files in the data directory).
    pub fn blobs(&self) -> Result<Blobs, ConfigError> {
        let Some(url) = self.blobs.as_deref() else {
            return Ok(Blobs::Files(self.data.clone()));
        };
        if let Some(p) = url.strip_prefix("file:") {
            let p = p.strip_prefix("//").unwrap_or(p);
            if !p.is_empty() {
                return Ok(Blobs::Files(PathBuf::from(p)));
            }
        }
        if url.starts_with("s3://") && url.len() > "s3://".len() {
            return Ok(Blobs::S3(url.to_string()));
        }
        Err(ConfigError::Url {
            what: "--blobs",
            url: url.to_string(),
            reason: "expected file:PATH or s3://BUCKET/PREFIX".into(),
        })
    }
}
