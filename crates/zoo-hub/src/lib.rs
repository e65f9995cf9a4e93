//! The hub behind `zoo serve`: the Hugging Face Hub protocol over a [`meta::MetaStore`]
//! (SQLite by default) and a [`blobs::BlobStore`] (content-addressed files by default).
//!
//! Invariants:
//! - a blob is visible only after its hash is verified (`blobs`);
//! - a commit is atomic (`meta::MetaStore::commit`, one transaction);
//! - the hub never unpickles: uploaded pickles are scanned by `zoo-formats`, which reads them
//!   as data;
//! - a private repository answers exactly like a missing one to anyone but its owner.

pub mod auth;
pub mod blobs;
pub mod config;
pub mod error;
pub mod git;
pub mod gitattributes;
pub mod gitrepo;
pub mod index;
pub mod meta;
pub mod paths;
pub mod scan;
pub mod search;
pub mod server;
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
}

/// Opens the embedded stores under `config.data`: `meta.sqlite`, `blobs/`, `tmp/`, `secret`.
pub fn open(config: HubConfig) -> Result<Hub, StartError> {
    let data = config.data.clone();
    std::fs::create_dir_all(&data).map_err(|error| StartError::Io {
        path: data.clone(),
        error,
    })?;
    let meta = open_meta(&data)?;
    let blobs = blobs::FsBlobStore::open(&data, config.max_file_bytes)?;
    let secret = secret(&data)?;
    Ok(Hub::new(Arc::new(meta), Arc::new(blobs), config, secret))
}

/// Opens the metadata database alone (for `zoo admin`, while the server runs).
pub fn open_meta(data: &Path) -> Result<meta::SqliteMeta, StartError> {
    std::fs::create_dir_all(data).map_err(|error| StartError::Io {
        path: data.to_path_buf(),
        error,
    })?;
    Ok(meta::SqliteMeta::open(&data.join("meta.sqlite"))?)
}

/// The key that signs LFS upload links, made once per data directory.
fn secret(data: &Path) -> Result<Vec<u8>, StartError> {
    let path = data.join("secret");
    match std::fs::read(&path) {
        Ok(s) if s.len() >= 32 => Ok(s),
        _ => {
            let mut s = vec![0u8; 32];
            getrandom::fill(&mut s).expect("the OS random source");
            std::fs::write(&path, &s).map_err(|error| StartError::Io {
                path: path.clone(),
                error,
            })?;
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
    println!(
        "zoo serve: listening on http://{local} (data in {})",
        hub.config.data.display()
    );
    axum::serve(listener, router(Arc::new(hub)))
        .await
        .map_err(|error| StartError::Io {
            path: local.to_string().into(),
            error,
        })
}
