//! A Hugging Face Hub client, as a library: endpoint and token the way the Hugging Face
//! tools find them, resumable and hash-verified downloads into the cache layout the Python
//! client uses (one cache for both), push through preupload, LFS and one atomic commit,
//! search, repository info and cache management.
//!
//! Invariants: a file enters `blobs/` only after its hash matches (sha256 for LFS files, the
//! git blob id for small ones); every write into the cache is a rename of a complete file;
//! two processes fetching the same blob serialise on a lock file in `.locks/`; tokens are
//! never printed and URLs are redacted before they appear in an error.

pub mod cache;
pub mod download;
pub mod error;
pub mod http;
pub mod push;
pub mod settings;

pub use error::ClientError;
pub use http::Client;
pub use settings::Settings;

/// `models` or `datasets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoType {
    Model,
    Dataset,
}

impl RepoType {
    pub fn plural(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
        }
    }
    pub fn singular(self) -> &'static str {
        match self {
            RepoType::Model => "model",
            RepoType::Dataset => "dataset",
        }
    }
}

/// `org/name` plus its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoId {
    pub kind: RepoType,
    pub id: String,
}

impl RepoId {
    pub fn model(id: &str) -> Self {
        RepoId {
            kind: RepoType::Model,
            id: id.to_string(),
        }
    }

    /// `org/name[@revision]` → (repo, revision).
    pub fn parse(spec: &str, kind: RepoType) -> Result<(RepoId, Option<String>), ClientError> {
        let (id, rev) = match spec.split_once('@') {
            Some((i, r)) => (i, Some(r.to_string())),
            None => (spec, None),
        };
        let ok = id.split('/').count() == 2
            && id
                .split('/')
                .all(|p| !p.is_empty() && p != "." && p != "..");
        if !ok {
            return Err(ClientError::Usage(format!(
                "`{spec}` is not a repository id (org/name[@revision])"
            )));
        }
        Ok((
            RepoId {
                kind,
                id: id.to_string(),
            },
            rev,
        ))
    }

    /// Like [`RepoId::parse`], and also an `hf://` URI as the `hf` CLI and `huggingface_hub`'s
    /// file system write it: `hf://org/name`, `hf://models/org/name`,
    /// `hf://datasets/org/name@revision`. The URI's kind wins over `kind`.
    pub fn parse_uri(spec: &str, kind: RepoType) -> Result<(RepoId, Option<String>), ClientError> {
        let Some(rest) = spec.strip_prefix("hf://") else {
            return RepoId::parse(spec, kind);
        };
        let (kind, rest) = if let Some(r) = rest.strip_prefix("datasets/") {
            (RepoType::Dataset, r)
        } else if let Some(r) = rest.strip_prefix("models/") {
            (RepoType::Model, r)
        } else if rest.starts_with("spaces/") {
            return Err(ClientError::Usage(format!(
                "`{spec}`: Spaces are not implemented (models and datasets are)"
            )));
        } else {
            (kind, rest)
        };
        RepoId::parse(rest.trim_end_matches('/'), kind)
    }

    /// The cache folder: `models--org--name`.
    pub fn folder(&self) -> String {
        format!("{}--{}", self.kind.plural(), self.id.replace('/', "--"))
    }

    /// URL prefix for `resolve`: `""` for models, `datasets/` for data sets.
    pub fn url_prefix(&self) -> &'static str {
        match self.kind {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
        }
    }
}
