//! Errors become HTTP responses in one place, with the `X-Error-Code` header clients branch on.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::blobs::BlobError;
use crate::meta::MetaError;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Missing, or private and not the caller's: both answer the same.
    #[error("Repository not found")]
    RepoNotFound,
    #[error("Invalid rev id: {0}")]
    RevisionNotFound(String),
    #[error("Entry not found: {path}")]
    EntryNotFound { path: String, commit: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("Invalid credentials in Authorization header")]
    BadToken,
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    RangeNotSatisfiable(u64),
    #[error("{0}")]
    NotFound(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The hub's disk (or database) is full: nothing was stored; retry once space returns.
    #[error("{0}")]
    InsufficientStorage(String),
    /// The hub this one mirrors failed (or could not be reached).
    #[error("{0}")]
    Upstream(String),
}

impl From<MetaError> for HubError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::Exists(what) => HubError::Conflict(format!("{what} already exists")),
            MetaError::Conflict { expected, found } => HubError::PreconditionFailed(format!(
                "parentCommit {expected} is not the head of the branch ({found}): pull and retry"
            )),
            MetaError::NotFound(what) => HubError::NotFound(format!("{what} not found")),
            MetaError::Db(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) => {
                HubError::InsufficientStorage(format!(
                    "the hub's database is out of space ({e}): nothing was committed; retry once space returns"
                ))
            }
            MetaError::Db(e) => HubError::Internal(e.to_string()),
            MetaError::Backend(e) => HubError::Internal(e),
        }
    }
}

impl From<BlobError> for HubError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::HashMismatch { .. }
            | BlobError::SizeMismatch { .. }
            | BlobError::BadOid(_) => HubError::BadRequest(e.to_string()),
            BlobError::TooLarge { .. } => HubError::TooLarge(e.to_string()),
            BlobError::Io { ref error, .. } if error.kind() == std::io::ErrorKind::StorageFull => {
                HubError::InsufficientStorage(format!(
                    "the hub is out of disk space ({e}): nothing was stored; retry once space returns"
                ))
            }
            BlobError::Io { .. } | BlobError::Store(_) => HubError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        let (status, code) = match &self {
            HubError::RepoNotFound => (StatusCode::UNAUTHORIZED, Some("RepoNotFound")),
            HubError::RevisionNotFound(_) => (StatusCode::NOT_FOUND, Some("RevisionNotFound")),
            HubError::EntryNotFound { commit, .. } => {
                if let Ok(v) = HeaderValue::from_str(commit) {
                    headers.insert("x-repo-commit", v);
                }
                (StatusCode::NOT_FOUND, Some("EntryNotFound"))
            }
            HubError::BadRequest(_) => (StatusCode::BAD_REQUEST, None),
            HubError::BadToken => {
                headers.insert(
                    "x-error-message",
                    HeaderValue::from_static("Invalid credentials in Authorization header"),
                );
                (StatusCode::UNAUTHORIZED, None)
            }
            HubError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, None),
            HubError::Forbidden(_) => (StatusCode::FORBIDDEN, None),
            HubError::Conflict(_) => (StatusCode::CONFLICT, None),
            HubError::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, None),
            HubError::TooLarge(_) => {
                // The rest of the body is not read: the connection cannot carry another
                // request, and a client must not put one on it.
                headers.insert(
                    axum::http::header::CONNECTION,
                    HeaderValue::from_static("close"),
                );
                (StatusCode::PAYLOAD_TOO_LARGE, None)
            }
            HubError::RangeNotSatisfiable(size) => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert("content-range", v);
                }
                (StatusCode::RANGE_NOT_SATISFIABLE, None)
            }
            HubError::NotFound(_) => (StatusCode::NOT_FOUND, None),
            HubError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
            HubError::Upstream(_) => (StatusCode::BAD_GATEWAY, None),
            HubError::InsufficientStorage(_) => (StatusCode::INSUFFICIENT_STORAGE, None),
        };
        if let Some(code) = code {
            headers.insert("x-error-code", HeaderValue::from_static(code));
        }
        let message = match &self {
            HubError::RangeNotSatisfiable(_) => "Requested range not satisfiable".to_string(),
            HubError::BadToken => "Invalid username or password.".to_string(),
            other => other.to_string(),
        };
        if matches!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR
                | StatusCode::BAD_GATEWAY
                | StatusCode::INSUFFICIENT_STORAGE
        ) {
            eprintln!("zoo serve: {message}");
        }
        (
            status,
            headers,
            axum::Json(serde_json::json!({ "error": message })),
        )
            .into_response()
    }
}
