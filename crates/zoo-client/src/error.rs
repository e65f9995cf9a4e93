//! Client errors; each names the repository, file or URL (redacted) it is about.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("repository not found: {0} (or it is private and the token does not give access)")]
    RepoNotFound(String),
    #[error("{repo}: revision not found: {revision}")]
    RevisionNotFound { repo: String, revision: String },
    #[error("{repo}: file not found: {path}")]
    EntryNotFound { repo: String, path: String },
    #[error("{url}: HTTP {status}: {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: {message}")]
    Network { url: String, message: String },
    #[error("{path}: downloaded bytes hash to {actual}, expected {expected}; not cached")]
    HashMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("offline: {0}")]
    Offline(String),
    #[error("{0}")]
    Usage(String),
    #[error("{url}: unexpected response: {message}")]
    Protocol { url: String, message: String },
}

impl ClientError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ClientError {
        let path = path.into();
        move |error| ClientError::Io { path, error }
    }

    /// Whether retrying (and resuming) may help.
    pub fn transient(&self) -> bool {
        match self {
            ClientError::Network { .. } => true,
            ClientError::Http { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// Whether the disk is full.
    pub fn disk_full(&self) -> bool {
        matches!(self, ClientError::Io { error, .. } if error.raw_os_error() == Some(28))
    }
}
