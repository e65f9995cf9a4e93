//! The hub behind `zoo serve`: the Hugging Face Hub protocol over a [`meta::MetaStore`]
//! (SQLite by default) and a [`blobs::BlobStore`] (content-addressed files by default).
//!
//! Invariants:
//! - a blob is visible only after its hash is verified (`blobs`);
//! - a commit is atomic (`meta::MetaStore::commit`, one transaction);
//! - the hub never unpickles: uploaded pickles are scanned by `zoo-formats`, which reads them
//!   as data;
//! - a private repository answers exactly like a missing one to anyone but its owner;
//! - a mirrored file is stored only once it matches the upstream's hash (`mirror`).

pub mod auth;
pub mod backup;
pub mod blobs;
pub mod config;
pub mod error;
pub mod gc;
pub mod git;
pub mod gitattributes;
pub mod gitrepo;
pub mod index;
pub mod meta;
pub mod mirror;
pub mod paths;
pub mod scan;
pub mod search;
pub mod server;
pub mod wire;
pub mod xet;

use std::path::Path;
use std::sync::Arc;

pub use config::HubConfig;
pub use server::{Hub, router};

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{path}: {error}")]
    Io {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    #[error("metadata: {0}")]
    Meta(#[from] meta::MetaError),
    #[error("blob store: {0}")]
    Blobs(#[from] blobs::BlobError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
}

/// Opens the stores the configuration names — by default the embedded ones under
/// `config.data` (`meta.sqlite`, `blobs/`, `tmp/`, `secret`) — and the signing key (shared
/// through the database when it is PostgreSQL, so every replica signs alike).
pub fn open(config: HubConfig) -> Result<Hub, StartError> {
    let data = config.data.clone();
    std::fs::create_dir_all(&data).map_err(|error| StartError::Io {
        path: data.clone(),
        error,
    })?;
    if matches!(config.database()?, config::Database::Postgres(_)) && config.blobs.is_none() {
        // Each replica would keep blobs in its own data directory while the metadata it
        // shares says they exist: downloads through the other replicas would fail.
        return Err(StartError::Config(config::ConfigError::Url {
            what: "--database",
            url: "postgres://…".into(),
            reason: "replicas sharing PostgreSQL must share their blobs too: give --blobs s3://BUCKET/PREFIX or --blobs file:SHARED_FOLDER (ZOO_BLOBS)".into(),
        }));
    }
    if config.blobs_redirect && !matches!(config.blobs()?, config::Blobs::S3(_)) {
        return Err(StartError::Config(config::ConfigError::Url {
            what: "--blobs-redirect",
            url: "file:…".into(),
            reason:
                "redirects go to an object store's presigned URLs: give --blobs s3://BUCKET/PREFIX"
                    .into(),
        }));
    }
    let meta = open_meta(&config)?;
    let blobs = open_blobs(&config)?;
    let mut fresh = vec![0u8; 32];
    getrandom::fill(&mut fresh).expect("the OS random source");
    let secret = match meta.signing_secret(&fresh)? {
        Some(s) => s,
        None => secret(&data)?,
    };
    Ok(Hub::new(meta, blobs, config, secret))
}

/// Opens the metadata store alone (for `zoo admin`, while the server runs).
pub fn open_meta(config: &HubConfig) -> Result<Arc<dyn meta::MetaStore>, StartError> {
    Ok(match config.database()? {
        config::Database::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|error| StartError::Io {
                    path: dir.to_path_buf(),
                    error,
                })?;
            }
            Arc::new(meta::SqliteMeta::open(&path)?)
        }
        config::Database::Postgres(url) => Arc::new(meta::PgMeta::connect(&url, 8)?),
    })
}

/// Opens the blob store alone (for `zoo admin gc`).
pub fn open_blobs(config: &HubConfig) -> Result<Arc<dyn blobs::BlobStore>, StartError> {
    Ok(match config.blobs()? {
        config::Blobs::Files(root) => {
            Arc::new(blobs::FsBlobStore::open(&root, config.max_file_bytes)?)
        }
        config::Blobs::S3(url) => Arc::new(blobs::S3BlobStore::open(&url, config.max_file_bytes)?),
    })
}

/// The key that signs LFS upload links, made once per data directory (mode 0600, written
/// whole or not at all).
fn secret(data: &Path) -> Result<Vec<u8>, StartError> {
    let path = data.join("secret");
    match std::fs::read(&path) {
        Ok(s) if s.len() >= 32 => Ok(s),
        _ => {
            let mut s = vec![0u8; 32];
            getrandom::fill(&mut s).expect("the OS random source");
            let io = |error| StartError::Io {
                path: path.clone(),
                error,
            };
            let mut tmp = tempfile::NamedTempFile::new_in(data).map_err(io)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600))
                    .map_err(io)?;
            }
            std::io::Write::write_all(&mut tmp, &s).map_err(io)?;
            tmp.as_file().sync_all().map_err(io)?;
            tmp.persist(&path).map_err(|e| io(e.error))?;
            Ok(s)
        }
    }
}

/// Serves until the process is stopped.
pub async fn serve(hub: Hub) -> Result<(), StartError> {
    let addr = hub.config.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| StartError::Io {
            path: addr.to_string().into(),
            error,
        })?;
    let local = listener.local_addr().map_err(|error| StartError::Io {
        path: addr.to_string().into(),
        error,
    })?;
    let store = match hub.config.database() {
        Ok(config::Database::Postgres(_)) => "metadata in PostgreSQL, ",
        _ => "",
    };
    let mirror = match &hub.upstream {
        Some(u) => format!(", mirroring {}", u.url),
        None => String::new(),
    };
    println!(
        "zoo serve: listening on http://{local} ({store}data in {}{mirror})",
        hub.config.data.display()
    );
    axum::serve(listener, router(Arc::new(hub)))
        .await
        .map_err(|error| StartError::Io {
            path: local.to_string().into(),
            error,
        })
}
