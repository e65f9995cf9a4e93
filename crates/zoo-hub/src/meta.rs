//! Repository metadata: users, tokens, repositories, commits, refs and the search index.
//!
//! [`MetaStore`] is what the routes use; [`SqliteMeta`] is the embedded default, [`PgMeta`]
//! the store several replicas share. A commit is one transaction (SQLite: WAL,
//! `synchronous = FULL`; PostgreSQL: the branch row locked): all of it becomes visible, or none.

pub mod dump;
pub mod pg;
pub use pg::PgMeta;

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

/// Why metadata could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A database other than SQLite (the message names it).
    #[error("{0}")]
    Backend(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the branch moved: expected parent {expected}, found {found}")]
    Conflict { expected: String, found: String },
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// Models or data sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RepoKind {
    Model,
    Dataset,
}

impl RepoKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RepoKind::Model => "model",
            RepoKind::Dataset => "dataset",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "model" | "models" => Some(RepoKind::Model),
            "dataset" | "datasets" => Some(RepoKind::Dataset),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Repo {
    pub id: i64,
    pub kind: RepoKind,
    pub namespace: String,
    pub name: String,
    pub private: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    pub last_modified: i64,
    pub downloads: i64,
    pub likes: i64,
}

impl Repo {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A file in a commit.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    pub size: u64,
    /// git's blob id: of the content for regular files, of the LFS pointer for LFS files.
    pub git_oid: String,
    pub lfs: bool,
    /// `safe`, `suspicious`, `dangerous`, `invalid`, or `None` for files that are not checkpoints.
    pub verdict: Option<String>,
    /// The scan report as JSON (imports, notes).
    pub scan: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    pub id: String,
    pub parent: Option<String>,
    pub summary: String,
    pub description: String,
    pub author: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ref {
    pub kind: String,
    pub name: String,
    pub commit: String,
}

/// What the search index holds for a repository (from its default branch).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexRow {
    pub pipeline_tag: Option<String>,
    pub library: Option<String>,
    pub license: Option<String>,
    pub architecture: Option<String>,
    /// Parameters counted from the stored weights.
    pub params: Option<i64>,
    /// Parameters per dtype, for the `safetensors` field of repo info.
    pub params_by_dtype: Vec<(String, i64)>,
    /// The card's front matter as JSON.
    pub card_json: Option<String>,
    /// Tags: the card's, plus `dataset:X`, `license:X`, `base_model:X`, the task and library.
    pub tags: Vec<String>,
    pub base_models: Vec<String>,
    /// Benchmark results: (metric key, value).
    pub metrics: Vec<(String, f64)>,
}

/// A commit to apply atomically.
#[derive(Debug, Clone)]
pub struct NewCommit {
    pub repo_id: i64,
    pub branch: String,
    /// When set, the branch must still point here.
    pub expected_parent: Option<String>,
    pub summary: String,
    pub description: String,
    pub author: String,
    pub added: Vec<FileEntry>,
    pub deleted_files: Vec<String>,
    pub deleted_folders: Vec<String>,
    /// A commit pushed over git: its id and time (Unix ms), kept as they are. Otherwise the
    /// id is the git commit the API commit computes to ([`crate::git::commit_id`]).
    pub pushed: Option<(String, i64)>,
}

impl NewCommit {
    /// The tree this commit makes on top of `head`'s files, sorted by path, and its id and
    /// time: a pushed commit's own, else the git commit id of the tree (with `head` as parent)
    /// stamped now. One rule for every store.
    pub fn apply(&self, head: &str, head_files: Vec<FileEntry>) -> (Vec<FileEntry>, String, i64) {
        let mut files: std::collections::BTreeMap<String, FileEntry> = head_files
            .into_iter()
            .map(|f| (f.path.clone(), f))
            .collect();
        for p in &self.deleted_files {
            files.remove(p);
        }
        for p in &self.deleted_folders {
            let prefix = format!("{}/", p.trim_end_matches('/'));
            files.retain(|path, _| !path.starts_with(&prefix));
        }
        for f in &self.added {
            files.insert(f.path.clone(), f.clone());
        }
        let files: Vec<FileEntry> = files.into_values().collect();
        let (id, created_at) = match &self.pushed {
            Some((id, t)) => (id.clone(), *t),
            None => {
                let now = now_ms();
                let id = crate::git::commit_id(
                    &files,
                    Some(head),
                    &self.author,
                    now,
                    &self.summary,
                    &self.description,
                );
                (id, now)
            }
        };
        (files, id, created_at)
    }
}

/// A commit of an upstream hub to store as it is (`zoo serve --upstream`): the repository is
/// created as a mirror when it does not exist yet, the commit (id, parent and time kept) with
/// its whole tree when it is not stored yet, `refs` point at it, and `revision` is recorded as
/// checked against the upstream now. One transaction.
#[derive(Debug, Clone)]
pub struct Import<'a> {
    pub kind: RepoKind,
    pub namespace: &'a str,
    pub name: &'a str,
    pub private: bool,
    /// The upstream's URL.
    pub upstream: &'a str,
    pub commit: &'a Commit,
    /// The commit's tree (ignored when the commit is stored already).
    pub files: &'a [FileEntry],
    /// `(kind, name)` of the branches and tags to point at the commit.
    pub refs: &'a [(&'a str, &'a str)],
    pub revision: &'a str,
}

/// What this hub knows of a mirrored repository's upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub upstream: String,
    /// When the revision asked about was last checked there (Unix ms); `None`: never.
    pub checked_at: Option<i64>,
}

/// Search parameters already parsed by the route.
#[derive(Debug, Clone, Default)]
pub struct Candidates<'a> {
    pub kind: Option<RepoKind>,
    pub author: Option<&'a str>,
    pub search: Option<&'a str>,
    /// The requester, who also sees their own private repositories.
    pub viewer: Option<&'a str>,
}

/// Metadata storage. The routes use only this trait.
pub trait MetaStore: Send + Sync + 'static {
    fn add_user(&self, name: &str) -> Result<()>;
    fn user_exists(&self, name: &str) -> Result<bool>;
    fn add_token(
        &self,
        user: &str,
        scope: &str,
        token_hash: &str,
        display_name: &str,
    ) -> Result<()>;
    /// `(user, scope, display name)` for a token hash.
    fn token(&self, token_hash: &str) -> Result<Option<(String, String, String)>>;

    /// Creates a repository with an initial commit on `main`.
    fn create_repo(
        &self,
        kind: RepoKind,
        namespace: &str,
        name: &str,
        private: bool,
        author: &str,
    ) -> Result<Repo>;
    fn delete_repo(&self, kind: RepoKind, namespace: &str, name: &str) -> Result<bool>;
    fn repo(&self, kind: RepoKind, namespace: &str, name: &str) -> Result<Option<Repo>>;
    fn set_private(&self, repo_id: i64, private: bool) -> Result<()>;

    /// A branch, a tag, or a full commit id of this repository → commit id.
    fn resolve(&self, repo_id: i64, revision: &str) -> Result<Option<String>>;
    fn commit_info(&self, repo_id: i64, commit: &str) -> Result<Option<Commit>>;
    fn files(&self, repo_id: i64, commit: &str) -> Result<Vec<FileEntry>>;
    fn file(&self, repo_id: i64, commit: &str, path: &str) -> Result<Option<FileEntry>>;
    /// Applies a commit atomically and returns its id.
    fn commit(&self, c: &NewCommit) -> Result<String>;
    fn history(&self, repo_id: i64, head: &str, limit: usize) -> Result<Vec<Commit>>;

    fn refs(&self, repo_id: i64) -> Result<Vec<Ref>>;
    fn create_ref(&self, repo_id: i64, kind: &str, name: &str, commit: &str) -> Result<()>;
    fn delete_ref(&self, repo_id: i64, kind: &str, name: &str) -> Result<bool>;

    fn set_index(&self, repo_id: i64, row: &IndexRow) -> Result<()>;
    fn index(&self, repo_id: i64) -> Result<Option<IndexRow>>;
    /// Repositories visible to the viewer matching kind, author and search text, with their index.
    fn candidates(&self, q: &Candidates<'_>) -> Result<Vec<(Repo, IndexRow)>>;
    /// Repositories whose card names `base` as `base_model`, private ones included (callers
    /// show each only to whom may read it).
    fn children(&self, base: &str) -> Result<Vec<String>>;
    fn count_download(&self, repo_id: i64) -> Result<()>;

    /// Records a verified xorb (Xet upload) of a repository: its hash and the blob holding
    /// its serialized bytes (`size` of them). Xorbs are per repository: a shard may name only
    /// its own.
    fn add_xorb(&self, repo_id: i64, hash: &str, blob: &str, size: u64) -> Result<bool>;
    /// The blob of a repository's xorb.
    fn xorb(&self, repo_id: i64, hash: &str) -> Result<Option<String>>;

    /// The key that signs LFS links, shared by every replica of a hub: a store that several
    /// replicas use keeps the first `fresh` it is offered and returns it to all. `None`: this
    /// store is one process's own (the key then lives in the data directory).
    fn signing_secret(&self, _fresh: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Every blob some commit of some repository, or some Xet xorb, still names (what garbage
    /// collection keeps).
    fn referenced_blobs(&self) -> Result<std::collections::HashSet<String>>;

    /// Stores an upstream commit ([`Import`]) and returns the repository. A repository of this
    /// hub's own with that name is [`MetaError::Exists`]: a mirror never shadows it.
    fn import(&self, i: &Import<'_>) -> Result<Repo>;
    /// The upstream of a mirrored repository and when `revision` was last checked there;
    /// `None` for a repository of this hub's own.
    fn mirror(&self, repo_id: i64, revision: &str) -> Result<Option<Mirror>>;

    /// Every table's rows as one consistent snapshot (`zoo admin backup`).
    fn dump(&self) -> Result<dump::Dump>;
    /// Loads a dump into this store, which must hold no user and no repository yet, in one
    /// transaction (`zoo admin restore`).
    fn load(&self, d: &dump::Dump) -> Result<()>;
}

/// Why a store refuses to load a dump: it is not empty.
fn not_empty(users: i64, repos: i64) -> Result<()> {
    if users > 0 || repos > 0 {
        return Err(MetaError::Backend(format!(
            "the metadata store is not empty ({users} users, {repos} repositories): restore into a fresh hub"
        )));
    }
    Ok(())
}

/// SQLite metadata in one file.
#[derive(Debug)]
pub struct SqliteMeta {
    conn: Mutex<Connection>,
}

/// The schema's version (`PRAGMA user_version`): 2 since commit ids are git commit ids, per
/// repository (version 0/1 had random ids, global); 3 adds mirrors (tables only).
const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    display_name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS repos (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    private INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_modified INTEGER NOT NULL,
    downloads INTEGER NOT NULL DEFAULT 0,
    likes INTEGER NOT NULL DEFAULT 0,
    UNIQUE (kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS commits (
    repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    parent TEXT,
    summary TEXT NOT NULL,
    description TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (repo_id, id)
);
CREATE TABLE IF NOT EXISTS commit_files (
    repo_id INTEGER NOT NULL,
    commit_id TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    git_oid TEXT NOT NULL,
    lfs INTEGER NOT NULL,
    verdict TEXT,
    scan TEXT,
    PRIMARY KEY (repo_id, commit_id, path),
    FOREIGN KEY (repo_id, commit_id) REFERENCES commits(repo_id, id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS refs (
    repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('branch', 'tag')),
    name TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    PRIMARY KEY (repo_id, kind, name)
);
CREATE TABLE IF NOT EXISTS repo_index (
    repo_id INTEGER PRIMARY KEY REFERENCES repos(id) ON DELETE CASCADE,
    pipeline_tag TEXT,
    library TEXT,
    license TEXT,
    architecture TEXT,
    params INTEGER,
    params_by_dtype TEXT NOT NULL,
    card_json TEXT,
    tags TEXT NOT NULL,
    base_models TEXT NOT NULL,
    metrics TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lineage (
    repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    base TEXT NOT NULL,
    PRIMARY KEY (repo_id, base)
);
CREATE INDEX IF NOT EXISTS lineage_base ON lineage(base);
CREATE TABLE IF NOT EXISTS xet_xorbs (
    repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    blob TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (repo_id, hash)
);
CREATE TABLE IF NOT EXISTS mirrors (
    repo_id INTEGER PRIMARY KEY REFERENCES repos(id) ON DELETE CASCADE,
    upstream TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mirror_checks (
    repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    revision TEXT NOT NULL,
    checked_at INTEGER NOT NULL,
    PRIMARY KEY (repo_id, revision)
);
"#;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn row_repo(r: &rusqlite::Row<'_>) -> rusqlite::Result<Repo> {
    let kind: String = r.get(1)?;
    Ok(Repo {
        id: r.get(0)?,
        kind: RepoKind::parse(&kind).unwrap_or(RepoKind::Model),
        namespace: r.get(2)?,
        name: r.get(3)?,
        private: r.get::<_, i64>(4)? != 0,
        created_at: r.get(5)?,
        last_modified: r.get(6)?,
        downloads: r.get(7)?,
        likes: r.get(8)?,
    })
}

const REPO_COLS: &str =
    "id, kind, namespace, name, private, created_at, last_modified, downloads, likes";

fn row_file(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileEntry> {
    Ok(FileEntry {
        path: r.get(0)?,
        sha256: r.get(1)?,
        size: r.get::<_, i64>(2)? as u64,
        git_oid: r.get(3)?,
        lfs: r.get::<_, i64>(4)? != 0,
        verdict: r.get(5)?,
        scan: r.get(6)?,
    })
}

fn row_index(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<IndexRow> {
    let json_list = |s: String| serde_json::from_str::<Vec<String>>(&s).unwrap_or_default();
    let pairs_i = |s: String| serde_json::from_str::<Vec<(String, i64)>>(&s).unwrap_or_default();
    let pairs_f = |s: String| serde_json::from_str::<Vec<(String, f64)>>(&s).unwrap_or_default();
    Ok(IndexRow {
        pipeline_tag: r.get(at)?,
        library: r.get(at + 1)?,
        license: r.get(at + 2)?,
        architecture: r.get(at + 3)?,
        params: r.get(at + 4)?,
        params_by_dtype: pairs_i(r.get::<_, Option<String>>(at + 5)?.unwrap_or_default()),
        card_json: r.get(at + 6)?,
        tags: json_list(r.get::<_, Option<String>>(at + 7)?.unwrap_or_default()),
        base_models: json_list(r.get::<_, Option<String>>(at + 8)?.unwrap_or_default()),
        metrics: pairs_f(r.get::<_, Option<String>>(at + 9)?.unwrap_or_default()),
    })
}

/// Version 1 → 2: every commit gets the git commit id its files, parent, author, time and
/// message compute to, unique per repository; refs follow. One transaction.
fn migrate_to_git_ids(conn: &mut Connection) -> Result<()> {
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let tx = conn.transaction()?;
    tx.execute_batch(
        "ALTER TABLE commits RENAME TO commits_v1;
         ALTER TABLE commit_files RENAME TO commit_files_v1;",
    )?;
    tx.execute_batch(SCHEMA)?;
    let old: Vec<(i64, Commit)> = {
        let mut st = tx.prepare(
            "SELECT id, repo_id, parent, summary, description, author, created_at FROM commits_v1 ORDER BY created_at, rowid",
        )?;
        st.query_map([], |r| {
            Ok((
                r.get(1)?,
                Commit {
                    id: r.get(0)?,
                    parent: r.get(2)?,
                    summary: r.get(3)?,
                    description: r.get(4)?,
                    author: r.get(5)?,
                    created_at: r.get(6)?,
                },
            ))
        })?
        .collect::<rusqlite::Result<_>>()?
    };
    let mut new_ids: std::collections::HashMap<String, String> = Default::default();
    let mut pending = old;
    while !pending.is_empty() {
        let before = pending.len();
        let mut later = Vec::new();
        for (repo_id, c) in pending {
            let parent_new = match &c.parent {
                Some(p) => match new_ids.get(p) {
                    Some(n) => Some(n.clone()),
                    None => {
                        later.push((repo_id, c));
                        continue;
                    }
                },
                None => None,
            };
            let files: Vec<FileEntry> = {
                let mut st = tx.prepare(
                    "SELECT path, sha256, size, git_oid, lfs, verdict, scan FROM commit_files_v1 WHERE commit_id = ?1 ORDER BY path",
                )?;
                st.query_map([&c.id], row_file)?
                    .collect::<rusqlite::Result<_>>()?
            };
            let new_id = crate::git::commit_id(
                &files,
                parent_new.as_deref(),
                &c.author,
                c.created_at,
                &c.summary,
                &c.description,
            );
            tx.execute(
                "INSERT OR IGNORE INTO commits (repo_id, id, parent, summary, description, author, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![repo_id, new_id, parent_new, c.summary, c.description, c.author, c.created_at],
            )?;
            insert_files(&tx, repo_id, &new_id, &files)?;
            new_ids.insert(c.id.clone(), new_id);
        }
        if later.len() == before {
            // Parents that do not exist: keep the commits as roots rather than lose them.
            for (_, c) in &mut later {
                c.parent = None;
            }
        }
        pending = later;
    }
    let refs: Vec<(i64, String, String, String)> = {
        let mut st = tx.prepare("SELECT repo_id, kind, name, commit_id FROM refs")?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    for (repo_id, kind, name, commit) in refs {
        if let Some(n) = new_ids.get(&commit) {
            tx.execute(
                "UPDATE refs SET commit_id = ?1 WHERE repo_id = ?2 AND kind = ?3 AND name = ?4",
                params![n, repo_id, kind, name],
            )?;
        }
    }
    tx.execute_batch("DROP TABLE commit_files_v1; DROP TABLE commits_v1;")?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn files_of(c: &Connection, repo_id: i64, commit: &str) -> Result<Vec<FileEntry>> {
    let mut st = c.prepare_cached(
        "SELECT path, sha256, size, git_oid, lfs, verdict, scan FROM commit_files WHERE repo_id = ?1 AND commit_id = ?2 ORDER BY path",
    )?;
    let rows = st
        .query_map(params![repo_id, commit], row_file)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn insert_files(
    tx: &rusqlite::Transaction<'_>,
    repo_id: i64,
    commit: &str,
    files: &[FileEntry],
) -> Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT OR REPLACE INTO commit_files (repo_id, commit_id, path, sha256, size, git_oid, lfs, verdict, scan)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for f in files {
        st.execute(params![
            repo_id,
            commit,
            f.path,
            f.sha256,
            f.size as i64,
            f.git_oid,
            f.lfs as i64,
            f.verdict,
            f.scan
        ])?;
    }
    Ok(())
}

const INDEX_COLS: &str = "i.pipeline_tag, i.library, i.license, i.architecture, i.params, i.params_by_dtype, i.card_json, i.tags, i.base_models, i.metrics";

impl SqliteMeta {
    pub fn open(path: &Path) -> Result<Self> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let existing: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'commits')",
            [],
            |r| r.get(0),
        )?;
        if version > SCHEMA_VERSION {
            return Err(MetaError::Backend(format!(
                "{}: the schema is version {version}, newer than this zoo knows ({SCHEMA_VERSION}): upgrade zoo",
                path.display()
            )));
        }
        if existing && version < 2 {
            migrate_to_git_ids(&mut conn)?;
        }
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(SqliteMeta {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }
}

impl MetaStore for SqliteMeta {
    fn add_user(&self, name: &str) -> Result<()> {
        self.with(|c| {
            match c.execute(
                "INSERT INTO users (name, created_at) VALUES (?1, ?2)",
                params![name, now_ms()],
            ) {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(MetaError::Exists(format!("user `{name}`")))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    fn user_exists(&self, name: &str) -> Result<bool> {
        self.with(|c| {
            Ok(
                c.query_row("SELECT 1 FROM users WHERE name = ?1", [name], |_| Ok(()))
                    .optional()?
                    .is_some(),
            )
        })
    }

    fn add_token(
        &self,
        user: &str,
        scope: &str,
        token_hash: &str,
        display_name: &str,
    ) -> Result<()> {
        if !self.user_exists(user)? {
            return Err(MetaError::NotFound(format!("user `{user}`")));
        }
        self.with(|c| {
            c.execute(
                "INSERT INTO tokens (hash, user, scope, display_name, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![token_hash, user, scope, display_name, now_ms()],
            )?;
            Ok(())
        })
    }

    fn token(&self, token_hash: &str) -> Result<Option<(String, String, String)>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT user, scope, display_name FROM tokens WHERE hash = ?1",
                [token_hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
        })
    }

    fn create_repo(
        &self,
        kind: RepoKind,
        namespace: &str,
        name: &str,
        private: bool,
        author: &str,
    ) -> Result<Repo> {
        self.with(|c| {
            let tx = c.transaction()?;
            let now = now_ms();
            let inserted = tx.execute(
                "INSERT INTO repos (kind, namespace, name, private, created_at, last_modified) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![kind.as_str(), namespace, name, private as i64, now],
            );
            match inserted {
                Ok(_) => {}
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    return Err(MetaError::Exists(format!("{} {namespace}/{name}", kind.as_str())));
                }
                Err(e) => return Err(e.into()),
            }
            let id = tx.last_insert_rowid();
            let commit = crate::git::commit_id(&[], None, author, now, "initial commit", "");
            tx.execute(
                "INSERT INTO commits (repo_id, id, parent, summary, description, author, created_at) VALUES (?1, ?2, NULL, 'initial commit', '', ?3, ?4)",
                params![id, commit, author, now],
            )?;
            tx.execute("INSERT INTO refs (repo_id, kind, name, commit_id) VALUES (?1, 'branch', 'main', ?2)", params![id, commit])?;
            let repo = tx.query_row(&format!("SELECT {REPO_COLS} FROM repos WHERE id = ?1"), [id], row_repo)?;
            tx.commit()?;
            Ok(repo)
        })
    }

    fn delete_repo(&self, kind: RepoKind, namespace: &str, name: &str) -> Result<bool> {
        self.with(|c| {
            let n = c.execute(
                "DELETE FROM repos WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                params![kind.as_str(), namespace, name],
            )?;
            Ok(n > 0)
        })
    }

    fn repo(&self, kind: RepoKind, namespace: &str, name: &str) -> Result<Option<Repo>> {
        self.with(|c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {REPO_COLS} FROM repos WHERE kind = ?1 AND namespace = ?2 AND name = ?3"
                ),
                params![kind.as_str(), namespace, name],
                row_repo,
            )
            .optional()?)
        })
    }

    fn set_private(&self, repo_id: i64, private: bool) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE repos SET private = ?1 WHERE id = ?2",
                params![private as i64, repo_id],
            )?;
            Ok(())
        })
    }

    fn resolve(&self, repo_id: i64, revision: &str) -> Result<Option<String>> {
        self.with(|c| {
            let by_ref: Option<String> = c
                .query_row(
                    "SELECT commit_id FROM refs WHERE repo_id = ?1 AND name = ?2 ORDER BY kind = 'branch' DESC LIMIT 1",
                    params![repo_id, revision],
                    |r| r.get(0),
                )
                .optional()?;
            if by_ref.is_some() {
                return Ok(by_ref);
            }
            if revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(c
                    .query_row("SELECT id FROM commits WHERE repo_id = ?1 AND id = ?2", params![repo_id, revision], |r| r.get(0))
                    .optional()?);
            }
            Ok(None)
        })
    }

    fn commit_info(&self, repo_id: i64, commit: &str) -> Result<Option<Commit>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT id, parent, summary, description, author, created_at FROM commits WHERE repo_id = ?1 AND id = ?2",
                params![repo_id, commit],
                |r| {
                    Ok(Commit {
                        id: r.get(0)?,
                        parent: r.get(1)?,
                        summary: r.get(2)?,
                        description: r.get(3)?,
                        author: r.get(4)?,
                        created_at: r.get(5)?,
                    })
                },
            )
            .optional()?)
        })
    }

    fn files(&self, repo_id: i64, commit: &str) -> Result<Vec<FileEntry>> {
        self.with(|c| files_of(c, repo_id, commit))
    }

    fn file(&self, repo_id: i64, commit: &str, path: &str) -> Result<Option<FileEntry>> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT path, sha256, size, git_oid, lfs, verdict, scan FROM commit_files WHERE repo_id = ?1 AND commit_id = ?2 AND path = ?3",
            )?;
            Ok(st.query_row(params![repo_id, commit, path], row_file).optional()?)
        })
    }

    fn commit(&self, n: &NewCommit) -> Result<String> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let head: Option<String> = tx
                .query_row(
                    "SELECT commit_id FROM refs WHERE repo_id = ?1 AND kind = 'branch' AND name = ?2",
                    params![n.repo_id, n.branch],
                    |r| r.get(0),
                )
                .optional()?;
            let head = head.ok_or_else(|| MetaError::NotFound(format!("branch `{}`", n.branch)))?;
            if let Some(expected) = &n.expected_parent
                && expected != &head {
                    return Err(MetaError::Conflict { expected: expected.clone(), found: head });
                }
            let (files, id, created_at) = n.apply(&head, files_of(&tx, n.repo_id, &head)?);
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO commits (repo_id, id, parent, summary, description, author, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![n.repo_id, id, head, n.summary, n.description, n.author, created_at],
            )?;
            if inserted == 0 {
                return Err(MetaError::Exists(format!("commit {id}")));
            }
            insert_files(&tx, n.repo_id, &id, &files)?;
            let now = now_ms();
            tx.execute(
                "UPDATE refs SET commit_id = ?1 WHERE repo_id = ?2 AND kind = 'branch' AND name = ?3",
                params![id, n.repo_id, n.branch],
            )?;
            tx.execute("UPDATE repos SET last_modified = ?1 WHERE id = ?2", params![now, n.repo_id])?;
            tx.commit()?;
            Ok(id)
        })
    }

    fn history(&self, repo_id: i64, head: &str, limit: usize) -> Result<Vec<Commit>> {
        let mut out = Vec::new();
        let mut next = Some(head.to_string());
        while let Some(id) = next.take() {
            if out.len() >= limit {
                break;
            }
            let Some(c) = self.commit_info(repo_id, &id)? else {
                break;
            };
            next = c.parent.clone();
            out.push(c);
        }
        Ok(out)
    }

    fn refs(&self, repo_id: i64) -> Result<Vec<Ref>> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT kind, name, commit_id FROM refs WHERE repo_id = ?1 ORDER BY kind, name",
            )?;
            let rows = st
                .query_map([repo_id], |r| {
                    Ok(Ref {
                        kind: r.get(0)?,
                        name: r.get(1)?,
                        commit: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn create_ref(&self, repo_id: i64, kind: &str, name: &str, commit: &str) -> Result<()> {
        self.with(|c| {
            match c.execute(
                "INSERT INTO refs (repo_id, kind, name, commit_id) VALUES (?1, ?2, ?3, ?4)",
                params![repo_id, kind, name, commit],
            ) {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(MetaError::Exists(format!("{kind} `{name}`")))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    fn delete_ref(&self, repo_id: i64, kind: &str, name: &str) -> Result<bool> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM refs WHERE repo_id = ?1 AND kind = ?2 AND name = ?3",
                params![repo_id, kind, name],
            )? > 0)
        })
    }

    fn set_index(&self, repo_id: i64, row: &IndexRow) -> Result<()> {
        let j = |v: &dyn erased::Json| v.json();
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO repo_index (repo_id, pipeline_tag, library, license, architecture, params, params_by_dtype, card_json, tags, base_models, metrics)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    repo_id,
                    row.pipeline_tag,
                    row.library,
                    row.license,
                    row.architecture,
                    row.params,
                    j(&row.params_by_dtype),
                    row.card_json,
                    j(&row.tags),
                    j(&row.base_models),
                    j(&row.metrics)
                ],
            )?;
            tx.execute("DELETE FROM lineage WHERE repo_id = ?1", [repo_id])?;
            for b in &row.base_models {
                tx.execute("INSERT OR IGNORE INTO lineage (repo_id, base) VALUES (?1, ?2)", params![repo_id, b])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn index(&self, repo_id: i64) -> Result<Option<IndexRow>> {
        self.with(|c| {
            Ok(c.query_row(
                &format!("SELECT {INDEX_COLS} FROM repo_index i WHERE i.repo_id = ?1"),
                [repo_id],
                |r| row_index(r, 0),
            )
            .optional()?)
        })
    }

    fn candidates(&self, q: &Candidates<'_>) -> Result<Vec<(Repo, IndexRow)>> {
        self.with(|c| {
            let sql = format!(
                "SELECT r.id, r.kind, r.namespace, r.name, r.private, r.created_at, r.last_modified, r.downloads, r.likes, {INDEX_COLS}
                 FROM repos r LEFT JOIN repo_index i ON i.repo_id = r.id
                 WHERE (?1 IS NULL OR r.kind = ?1)
                   AND (?2 IS NULL OR r.namespace = ?2)
                   AND (?3 IS NULL OR instr(lower(r.namespace || '/' || r.name), lower(?3)) > 0)
                   AND (r.private = 0 OR r.namespace = ?4)"
            );
            let mut st = c.prepare_cached(&sql)?;
            let rows = st
                .query_map(params![q.kind.map(|k| k.as_str()), q.author, q.search, q.viewer], |r| {
                    Ok((row_repo(r)?, row_index(r, 9)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn children(&self, base: &str) -> Result<Vec<String>> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT r.namespace || '/' || r.name FROM lineage l JOIN repos r ON r.id = l.repo_id
                 WHERE l.base = ?1 ORDER BY 1",
            )?;
            let rows = st
                .query_map([base], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(rows)
        })
    }

    fn count_download(&self, repo_id: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE repos SET downloads = downloads + 1 WHERE id = ?1",
                [repo_id],
            )?;
            Ok(())
        })
    }

    fn add_xorb(&self, repo_id: i64, hash: &str, blob: &str, size: u64) -> Result<bool> {
        self.with(|c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO xet_xorbs (repo_id, hash, blob, size, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![repo_id, hash, blob, size as i64, now_ms()],
            )?;
            Ok(n > 0)
        })
    }

    fn xorb(&self, repo_id: i64, hash: &str) -> Result<Option<String>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT blob FROM xet_xorbs WHERE repo_id = ?1 AND hash = ?2",
                params![repo_id, hash],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    fn import(&self, i: &Import<'_>) -> Result<Repo> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let now = now_ms();
            let existing = tx
                .query_row(
                    &format!("SELECT {REPO_COLS} FROM repos WHERE kind = ?1 AND namespace = ?2 AND name = ?3"),
                    params![i.kind.as_str(), i.namespace, i.name],
                    row_repo,
                )
                .optional()?;
            let repo_id = match existing {
                Some(r) => {
                    let mirrored: bool = tx.query_row(
                        "SELECT EXISTS (SELECT 1 FROM mirrors WHERE repo_id = ?1)",
                        [r.id],
                        |row| row.get(0),
                    )?;
                    if !mirrored {
                        return Err(MetaError::Exists(format!("{} {} (a repository of this hub's own)", i.kind.as_str(), r.full_name())));
                    }
                    if r.private != i.private {
                        tx.execute("UPDATE repos SET private = ?1 WHERE id = ?2", params![i.private as i64, r.id])?;
                    }
                    r.id
                }
                None => {
                    tx.execute(
                        "INSERT INTO repos (kind, namespace, name, private, created_at, last_modified) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                        params![i.kind.as_str(), i.namespace, i.name, i.private as i64, i.commit.created_at],
                    )?;
                    let id = tx.last_insert_rowid();
                    tx.execute("INSERT INTO mirrors (repo_id, upstream) VALUES (?1, ?2)", params![id, i.upstream])?;
                    id
                }
            };
            let c = i.commit;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO commits (repo_id, id, parent, summary, description, author, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![repo_id, c.id, c.parent, c.summary, c.description, c.author, c.created_at],
            )?;
            if inserted > 0 {
                insert_files(&tx, repo_id, &c.id, i.files)?;
                tx.execute(
                    "UPDATE repos SET last_modified = MAX(last_modified, ?1) WHERE id = ?2",
                    params![c.created_at, repo_id],
                )?;
            }
            for (kind, name) in i.refs {
                tx.execute(
                    "INSERT INTO refs (repo_id, kind, name, commit_id) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (repo_id, kind, name) DO UPDATE SET commit_id = excluded.commit_id",
                    params![repo_id, kind, name, c.id],
                )?;
            }
            tx.execute(
                "INSERT INTO mirror_checks (repo_id, revision, checked_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (repo_id, revision) DO UPDATE SET checked_at = excluded.checked_at",
                params![repo_id, i.revision, now],
            )?;
            let repo = tx.query_row(&format!("SELECT {REPO_COLS} FROM repos WHERE id = ?1"), [repo_id], row_repo)?;
            tx.commit()?;
            Ok(repo)
        })
    }

    fn dump(&self) -> Result<dump::Dump> {
        use rusqlite::types::ValueRef;
        self.with(|c| {
            // One read transaction: every table from the same snapshot.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
            let mut out = dump::Dump::default();
            for t in dump::TABLES {
                let cols: Vec<&str> = t.cols.iter().map(|(n, _)| *n).collect();
                let mut st = tx.prepare(&format!(
                    "SELECT {} FROM {}",
                    cols.iter()
                        .map(|c| format!("\"{c}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                    t.name
                ))?;
                let rows = st
                    .query_map([], |r| {
                        t.cols
                            .iter()
                            .enumerate()
                            .map(|(i, (_, ty))| {
                                Ok(match (r.get_ref(i)?, ty) {
                                    (ValueRef::Null, _) => serde_json::Value::Null,
                                    (ValueRef::Integer(n), dump::Col::Bool) => {
                                        serde_json::Value::Bool(n != 0)
                                    }
                                    (ValueRef::Integer(n), _) => serde_json::Value::from(n),
                                    (ValueRef::Text(b), _) => serde_json::Value::String(
                                        String::from_utf8_lossy(b).into_owned(),
                                    ),
                                    (other, _) => {
                                        return Err(rusqlite::Error::InvalidColumnType(
                                            i,
                                            cols[i].to_string(),
                                            other.data_type(),
                                        ));
                                    }
                                })
                            })
                            .collect::<rusqlite::Result<Vec<_>>>()
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                out.tables.insert(t.name.to_string(), rows);
            }
            drop(tx);
            Ok(out)
        })
    }

    fn load(&self, d: &dump::Dump) -> Result<()> {
        use rusqlite::types::Value as Sql;
        d.check().map_err(MetaError::Backend)?;
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let count = |t: &str| -> Result<i64> {
                Ok(tx.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))?)
            };
            not_empty(count("users")?, count("repos")?)?;
            for t in dump::TABLES {
                let cols: Vec<String> = t.cols.iter().map(|(n, _)| format!("\"{n}\"")).collect();
                let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
                let mut st = tx.prepare(&format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    t.name,
                    cols.join(", "),
                    marks.join(", ")
                ))?;
                for row in d.tables.get(t.name).into_iter().flatten() {
                    let values: Vec<Sql> = row
                        .iter()
                        .map(|v| match v {
                            serde_json::Value::Null => Sql::Null,
                            serde_json::Value::Bool(b) => Sql::Integer(i64::from(*b)),
                            serde_json::Value::Number(n) => Sql::Integer(n.as_i64().unwrap_or(0)),
                            serde_json::Value::String(s) => Sql::Text(s.clone()),
                            other => Sql::Text(other.to_string()),
                        })
                        .collect();
                    st.execute(rusqlite::params_from_iter(values))?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn mirror(&self, repo_id: i64, revision: &str) -> Result<Option<Mirror>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT m.upstream, k.checked_at FROM mirrors m
                   LEFT JOIN mirror_checks k ON k.repo_id = m.repo_id AND k.revision = ?2
                  WHERE m.repo_id = ?1",
                params![repo_id, revision],
                |r| {
                    Ok(Mirror {
                        upstream: r.get(0)?,
                        checked_at: r.get(1)?,
                    })
                },
            )
            .optional()?)
        })
    }

    fn referenced_blobs(&self) -> Result<std::collections::HashSet<String>> {
        self.with(|c| {
            let mut st =
                c.prepare("SELECT sha256 FROM commit_files UNION SELECT blob FROM xet_xorbs")?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }
}

mod erased {
    /// Anything stored as a JSON column.
    pub trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_else(|_| "[]".into())
        }
    }
}
