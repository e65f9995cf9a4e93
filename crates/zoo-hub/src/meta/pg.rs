//! PostgreSQL metadata, for hubs of several replicas (`zoo serve --database postgres://…`).
//!
//! The same tables as [`super::SqliteMeta`] in PostgreSQL's dialect, created and upgraded by
//! versioned migrations ([`MIGRATIONS`], recorded in `schema_migrations`, applied under an
//! advisory lock so replicas starting together apply each once). A commit is one transaction
//! that locks its branch's row (`SELECT … FOR UPDATE`): commits to one branch from any number
//! of replicas are serialised, each on top of the head it found, and one that names a parent
//! the branch has moved away from is refused ([`MetaError::Conflict`]).
//!
//! [`MetaStore`] is synchronous (the routes call it as they call SQLite). The connections'
//! I/O runs on a small runtime of its own, on its own threads; a call waits for its query with
//! `futures::executor::block_on`, which polls the client's request channel only and so may be
//! used from any thread, a tokio worker included.

use std::sync::{Condvar, Mutex};

use futures_executor::block_on;
use tokio_postgres::{Client, GenericClient, NoTls, Row};

use super::{
    Candidates, Commit, FileEntry, Import, IndexRow, MetaError, MetaStore, Mirror, NewCommit, Ref,
    Repo, RepoKind, Result, dump, not_empty, now_ms,
};

/// Schema versions, in order; each applied once, in one transaction with its record.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r#"
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
CREATE TABLE tokens (
    hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    display_name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE repos (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    private BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    last_modified BIGINT NOT NULL,
    downloads BIGINT NOT NULL DEFAULT 0,
    likes BIGINT NOT NULL DEFAULT 0,
    UNIQUE (kind, namespace, name)
);
CREATE TABLE commits (
    repo_id BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    parent TEXT,
    summary TEXT NOT NULL,
    description TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, id)
);
CREATE TABLE commit_files (
    repo_id BIGINT NOT NULL,
    commit_id TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    git_oid TEXT NOT NULL,
    lfs BOOLEAN NOT NULL,
    verdict TEXT,
    scan TEXT,
    PRIMARY KEY (repo_id, commit_id, path),
    FOREIGN KEY (repo_id, commit_id) REFERENCES commits(repo_id, id) ON DELETE CASCADE
);
CREATE TABLE refs (
    repo_id BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('branch', 'tag')),
    name TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    PRIMARY KEY (repo_id, kind, name)
);
CREATE TABLE repo_index (
    repo_id BIGINT PRIMARY KEY REFERENCES repos(id) ON DELETE CASCADE,
    pipeline_tag TEXT,
    library TEXT,
    license TEXT,
    architecture TEXT,
    params BIGINT,
    params_by_dtype TEXT NOT NULL,
    card_json TEXT,
    tags TEXT NOT NULL,
    base_models TEXT NOT NULL,
    metrics TEXT NOT NULL
);
CREATE TABLE lineage (
    repo_id BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    base TEXT NOT NULL,
    PRIMARY KEY (repo_id, base)
);
CREATE INDEX lineage_base ON lineage(base);
CREATE TABLE xet_xorbs (
    repo_id BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    blob TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, hash)
);
CREATE TABLE hub_settings (
    key TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
"#,
    ),
    (
        2,
        r#"
CREATE TABLE mirrors (
    repo_id BIGINT PRIMARY KEY REFERENCES repos(id) ON DELETE CASCADE,
    upstream TEXT NOT NULL
);
CREATE TABLE mirror_checks (
    repo_id BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    revision TEXT NOT NULL,
    checked_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, revision)
);
"#,
    ),
];

/// A dump column's name here (`user` is reserved in PostgreSQL).
fn pg_column<'a>(table: &str, col: &'a str) -> &'a str {
    match (table, col) {
        ("tokens", "user") => "user_name",
        _ => col,
    }
}

/// The advisory lock key migrations run under (any constant shared by all replicas).
const MIGRATION_LOCK: i64 = 0x7a6f_6f68_7562;

// By value: it is `map_err`'s argument everywhere.
#[allow(clippy::needless_pass_by_value)]
fn pg(e: tokio_postgres::Error) -> MetaError {
    // The server's message (with its detail) says more than the client's summary.
    match e.as_db_error() {
        Some(db) => MetaError::Backend(format!(
            "PostgreSQL: {}{}",
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        )),
        None => MetaError::Backend(format!("PostgreSQL: {e}")),
    }
}

fn unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// PostgreSQL metadata over a fixed pool of connections.
pub struct PgMeta {
    clients: Mutex<Vec<Client>>,
    freed: Condvar,
    /// Dropped with the store: the I/O thread then ends.
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for PgMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgMeta").finish_non_exhaustive()
    }
}

/// A connection taken from the pool; back in it when dropped.
struct Lease<'a> {
    meta: &'a PgMeta,
    client: Option<Client>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let mut pool = self.meta.clients.lock().unwrap_or_else(|p| p.into_inner());
            pool.push(c);
            self.meta.freed.notify_one();
        }
    }
}

impl PgMeta {
    /// Connects `connections` times to `url` (`postgres://user@host:port/db`) and brings the
    /// schema up to date.
    pub fn connect(url: &str, connections: usize) -> Result<Self> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| MetaError::Backend(format!("PostgreSQL URL: {e}")))?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let n = connections.max(1);
        std::thread::Builder::new()
            .name("zoo-postgres".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("zoo-postgres-io")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(MetaError::Backend(format!(
                            "PostgreSQL: starting the I/O runtime: {e}"
                        ))));
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut clients = Vec::with_capacity(n);
                    for _ in 0..n {
                        match config.connect(NoTls).await {
                            Ok((client, connection)) => {
                                tokio::spawn(connection);
                                clients.push(client);
                            }
                            Err(e) => {
                                let _ = ready_tx.send(Err(pg(e)));
                                return;
                            }
                        }
                    }
                    let _ = ready_tx.send(Ok(clients));
                    let _ = stop.await;
                });
            })
            .map_err(|e| MetaError::Backend(format!("PostgreSQL: starting a thread: {e}")))?;
        let clients = ready_rx
            .recv()
            .map_err(|_| MetaError::Backend("PostgreSQL: the I/O thread ended".into()))??;
        let meta = PgMeta {
            clients: Mutex::new(clients),
            freed: Condvar::new(),
            _shutdown: shutdown,
        };
        meta.migrate()?;
        Ok(meta)
    }

    fn lease(&self) -> Lease<'_> {
        let mut pool = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(c) = pool.pop() {
                return Lease {
                    meta: self,
                    client: Some(c),
                };
            }
            pool = self.freed.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Runs `f` with a connection of the pool.
    fn with<T>(&self, f: impl AsyncFnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let mut lease = self.lease();
        let client = lease.client.as_mut().expect("a leased connection");
        block_on(f(client))
    }

    /// The schema version recorded in the database (0 when none).
    pub fn schema_version(&self) -> Result<i32> {
        self.with(async |c| {
            let row = c
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                    &[],
                )
                .await
                .map_err(pg)?;
            Ok(row.get(0))
        })
    }

    fn migrate(&self) -> Result<()> {
        self.with(async |c| {
            let tx = c.transaction().await.map_err(pg)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(pg)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .await
            .map_err(pg)?;
            let current: i32 = tx
                .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
                .await
                .map_err(pg)?
                .get(0);
            let newest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
            if current > newest {
                return Err(MetaError::Backend(format!(
                    "the database's schema is version {current}, newer than this zoo knows ({newest}): upgrade zoo"
                )));
            }
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
                tx.batch_execute(sql).await.map_err(pg)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                    &[version, &now_ms()],
                )
                .await
                .map_err(pg)?;
            }
            tx.commit().await.map_err(pg)?;
            Ok(())
        })
    }
}

const REPO_COLS: &str =
    "id, kind, namespace, name, private, created_at, last_modified, downloads, likes";

const FILE_COLS: &str = "path, sha256, size, git_oid, lfs, verdict, scan";

const INDEX_COLS: &str = "i.pipeline_tag, i.library, i.license, i.architecture, i.params, i.params_by_dtype, i.card_json, i.tags, i.base_models, i.metrics";

fn row_repo(r: &Row, at: usize) -> Repo {
    let kind: String = r.get(at + 1);
    Repo {
        id: r.get(at),
        kind: RepoKind::parse(&kind).unwrap_or(RepoKind::Model),
        namespace: r.get(at + 2),
        name: r.get(at + 3),
        private: r.get(at + 4),
        created_at: r.get(at + 5),
        last_modified: r.get(at + 6),
        downloads: r.get(at + 7),
        likes: r.get(at + 8),
    }
}

fn row_commit(r: &Row) -> Commit {
    Commit {
        id: r.get(0),
        parent: r.get(1),
        summary: r.get(2),
        description: r.get(3),
        author: r.get(4),
        created_at: r.get(5),
    }
}

fn row_file(r: &Row) -> FileEntry {
    FileEntry {
        path: r.get(0),
        sha256: r.get(1),
        size: r.get::<_, i64>(2) as u64,
        git_oid: r.get(3),
        lfs: r.get(4),
        verdict: r.get(5),
        scan: r.get(6),
    }
}

fn row_index(r: &Row, at: usize) -> IndexRow {
    fn list<T: serde::de::DeserializeOwned>(s: Option<String>) -> Vec<T> {
        s.and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default()
    }
    IndexRow {
        pipeline_tag: r.get(at),
        library: r.get(at + 1),
        license: r.get(at + 2),
        architecture: r.get(at + 3),
        params: r.get(at + 4),
        params_by_dtype: list(r.get(at + 5)),
        card_json: r.get(at + 6),
        tags: list(r.get(at + 7)),
        base_models: list(r.get(at + 8)),
        metrics: list(r.get(at + 9)),
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

async fn files_of(c: &impl GenericClient, repo_id: i64, commit: &str) -> Result<Vec<FileEntry>> {
    let rows = c
        .query(
            &format!(
                "SELECT {FILE_COLS} FROM commit_files WHERE repo_id = $1 AND commit_id = $2 ORDER BY path"
            ),
            &[&repo_id, &commit],
        )
        .await
        .map_err(pg)?;
    Ok(rows.iter().map(row_file).collect())
}

/// Writes a commit's file list in one statement (a commit stores its whole snapshot: row by
/// row, 1 000 files cost 1 000 round trips, about half a second).
async fn insert_files(
    tx: &tokio_postgres::Transaction<'_>,
    repo_id: i64,
    commit: &str,
    files: &[FileEntry],
) -> Result<()> {
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let shas: Vec<&str> = files.iter().map(|f| f.sha256.as_str()).collect();
    let sizes: Vec<i64> = files.iter().map(|f| f.size as i64).collect();
    let oids: Vec<&str> = files.iter().map(|f| f.git_oid.as_str()).collect();
    let lfs: Vec<bool> = files.iter().map(|f| f.lfs).collect();
    let verdicts: Vec<Option<&str>> = files.iter().map(|f| f.verdict.as_deref()).collect();
    let scans: Vec<Option<&str>> = files.iter().map(|f| f.scan.as_deref()).collect();
    tx.execute(
        "INSERT INTO commit_files (repo_id, commit_id, path, sha256, size, git_oid, lfs, verdict, scan)
         SELECT $1, $2, * FROM UNNEST($3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::TEXT[], $7::BOOLEAN[], $8::TEXT[], $9::TEXT[])
         ON CONFLICT (repo_id, commit_id, path) DO UPDATE SET sha256 = EXCLUDED.sha256,
           size = EXCLUDED.size, git_oid = EXCLUDED.git_oid, lfs = EXCLUDED.lfs,
           verdict = EXCLUDED.verdict, scan = EXCLUDED.scan",
        &[&repo_id, &commit, &paths, &shas, &sizes, &oids, &lfs, &verdicts, &scans],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

impl MetaStore for PgMeta {
    fn add_user(&self, name: &str) -> Result<()> {
        self.with(async |c| {
            match c
                .execute(
                    "INSERT INTO users (name, created_at) VALUES ($1, $2)",
                    &[&name, &now_ms()],
                )
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if unique_violation(&e) => Err(MetaError::Exists(format!("user `{name}`"))),
                Err(e) => Err(pg(e)),
            }
        })
    }

    fn user_exists(&self, name: &str) -> Result<bool> {
        self.with(async |c| {
            Ok(c.query_opt("SELECT 1 FROM users WHERE name = $1", &[&name])
                .await
                .map_err(pg)?
                .is_some())
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
        self.with(async |c| {
            c.execute(
                "INSERT INTO tokens (hash, user_name, scope, display_name, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[&token_hash, &user, &scope, &display_name, &now_ms()],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
    }

    fn token(&self, token_hash: &str) -> Result<Option<(String, String, String)>> {
        self.with(async |c| {
            Ok(c.query_opt(
                "SELECT user_name, scope, display_name FROM tokens WHERE hash = $1",
                &[&token_hash],
            )
            .await
            .map_err(pg)?
            .map(|r| (r.get(0), r.get(1), r.get(2))))
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
        self.with(async |c| {
            let tx = c.transaction().await.map_err(pg)?;
            let now = now_ms();
            let row = match tx
                .query_one(
                    &format!(
                        "INSERT INTO repos (kind, namespace, name, private, created_at, last_modified) VALUES ($1, $2, $3, $4, $5, $5) RETURNING {REPO_COLS}"
                    ),
                    &[&kind.as_str(), &namespace, &name, &private, &now],
                )
                .await
            {
                Ok(r) => r,
                Err(e) if unique_violation(&e) => {
                    return Err(MetaError::Exists(format!(
                        "{} {namespace}/{name}",
                        kind.as_str()
                    )));
                }
                Err(e) => return Err(pg(e)),
            };
            let repo = row_repo(&row, 0);
            let commit = crate::git::commit_id(&[], None, author, now, "initial commit", "");
            tx.execute(
                "INSERT INTO commits (repo_id, id, parent, summary, description, author, created_at) VALUES ($1, $2, NULL, 'initial commit', '', $3, $4)",
                &[&repo.id, &commit, &author, &now],
            )
            .await
            .map_err(pg)?;
            tx.execute(
                "INSERT INTO refs (repo_id, kind, name, commit_id) VALUES ($1, 'branch', 'main', $2)",
                &[&repo.id, &commit],
            )
            .await
            .map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            Ok(repo)
        })
    }

    fn delete_repo(&self, kind: RepoKind, namespace: &str, name: &str) -> Result<bool> {
        self.with(async |c| {
            let n = c
                .execute(
                    "DELETE FROM repos WHERE kind = $1 AND namespace = $2 AND name = $3",
                    &[&kind.as_str(), &namespace, &name],
                )
                .await
                .map_err(pg)?;
            Ok(n > 0)
        })
    }

    fn repo(&self, kind: RepoKind, namespace: &str, name: &str) -> Result<Option<Repo>> {
        self.with(async |c| {
            Ok(c.query_opt(
                &format!(
                    "SELECT {REPO_COLS} FROM repos WHERE kind = $1 AND namespace = $2 AND name = $3"
                ),
                &[&kind.as_str(), &namespace, &name],
            )
            .await
            .map_err(pg)?
            .map(|r| row_repo(&r, 0)))
        })
    }

    fn set_private(&self, repo_id: i64, private: bool) -> Result<()> {
        self.with(async |c| {
            c.execute(
                "UPDATE repos SET private = $1 WHERE id = $2",
                &[&private, &repo_id],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
    }

    fn resolve(&self, repo_id: i64, revision: &str) -> Result<Option<String>> {
        self.with(async |c| {
            if let Some(r) = c
                .query_opt(
                    "SELECT commit_id FROM refs WHERE repo_id = $1 AND name = $2 ORDER BY kind = 'branch' DESC LIMIT 1",
                    &[&repo_id, &revision],
                )
                .await
                .map_err(pg)?
            {
                return Ok(Some(r.get(0)));
            }
            if revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(c
                    .query_opt(
                        "SELECT id FROM commits WHERE repo_id = $1 AND id = $2",
                        &[&repo_id, &revision],
                    )
                    .await
                    .map_err(pg)?
                    .map(|r| r.get(0)));
            }
            Ok(None)
        })
    }

    fn commit_info(&self, repo_id: i64, commit: &str) -> Result<Option<Commit>> {
        self.with(async |c| {
            Ok(c.query_opt(
                "SELECT id, parent, summary, description, author, created_at FROM commits WHERE repo_id = $1 AND id = $2",
                &[&repo_id, &commit],
            )
            .await
            .map_err(pg)?
            .map(|r| row_commit(&r)))
        })
    }

    fn files(&self, repo_id: i64, commit: &str) -> Result<Vec<FileEntry>> {
        self.with(async |c| files_of(c, repo_id, commit).await)
    }

    fn file(&self, repo_id: i64, commit: &str, path: &str) -> Result<Option<FileEntry>> {
        self.with(async |c| {
            Ok(c.query_opt(
                &format!(
                    "SELECT {FILE_COLS} FROM commit_files WHERE repo_id = $1 AND commit_id = $2 AND path = $3"
                ),
                &[&repo_id, &commit, &path],
            )
            .await
            .map_err(pg)?
            .map(|r| row_file(&r)))
        })
    }

    fn commit(&self, n: &NewCommit) -> Result<String> {
        self.with(async |c| {
            let tx = c.transaction().await.map_err(pg)?;
            // The branch's row, locked until this transaction ends: a commit from another
            // replica waits here and then sees this one's head.
            let head: String = tx
                .query_opt(
                    "SELECT commit_id FROM refs WHERE repo_id = $1 AND kind = 'branch' AND name = $2 FOR UPDATE",
                    &[&n.repo_id, &n.branch],
                )
                .await
                .map_err(pg)?
                .map(|r| r.get(0))
                .ok_or_else(|| MetaError::NotFound(format!("branch `{}`", n.branch)))?;
            if let Some(expected) = &n.expected_parent
                && expected != &head
            {
                return Err(MetaError::Conflict {
                    expected: expected.clone(),
                    found: head,
                });
            }
            let (files, id, created_at) = n.apply(&head, files_of(&tx, n.repo_id, &head).await?);
            let inserted = tx
                .execute(
                    "INSERT INTO commits (repo_id, id, parent, summary, description, author, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                    &[&n.repo_id, &id, &head, &n.summary, &n.description, &n.author, &created_at],
                )
                .await
                .map_err(pg)?;
            if inserted == 0 {
                return Err(MetaError::Exists(format!("commit {id}")));
            }
            insert_files(&tx, n.repo_id, &id, &files).await?;
            tx.execute(
                "UPDATE refs SET commit_id = $1 WHERE repo_id = $2 AND kind = 'branch' AND name = $3",
                &[&id, &n.repo_id, &n.branch],
            )
            .await
            .map_err(pg)?;
            tx.execute(
                "UPDATE repos SET last_modified = $1 WHERE id = $2",
                &[&now_ms(), &n.repo_id],
            )
            .await
            .map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            Ok(id)
        })
    }

    fn history(&self, repo_id: i64, head: &str, limit: usize) -> Result<Vec<Commit>> {
        self.with(async |c| {
            let rows = c
                .query(
                    "WITH RECURSIVE h(id, parent, summary, description, author, created_at, depth) AS (
                        SELECT id, parent, summary, description, author, created_at, 1 FROM commits
                         WHERE repo_id = $1 AND id = $2
                        UNION ALL
                        SELECT c.id, c.parent, c.summary, c.description, c.author, c.created_at, h.depth + 1
                          FROM commits c JOIN h ON c.repo_id = $1 AND c.id = h.parent
                         WHERE h.depth < $3::BIGINT)
                     SELECT id, parent, summary, description, author, created_at FROM h ORDER BY depth",
                    &[&repo_id, &head, &(limit as i64)],
                )
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(row_commit).collect())
        })
    }

    fn refs(&self, repo_id: i64) -> Result<Vec<Ref>> {
        self.with(async |c| {
            let rows = c
                .query(
                    "SELECT kind, name, commit_id FROM refs WHERE repo_id = $1 ORDER BY kind, name",
                    &[&repo_id],
                )
                .await
                .map_err(pg)?;
            Ok(rows
                .iter()
                .map(|r| Ref {
                    kind: r.get(0),
                    name: r.get(1),
                    commit: r.get(2),
                })
                .collect())
        })
    }

    fn create_ref(&self, repo_id: i64, kind: &str, name: &str, commit: &str) -> Result<()> {
        self.with(async |c| {
            match c
                .execute(
                    "INSERT INTO refs (repo_id, kind, name, commit_id) VALUES ($1, $2, $3, $4)",
                    &[&repo_id, &kind, &name, &commit],
                )
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if unique_violation(&e) => {
                    Err(MetaError::Exists(format!("{kind} `{name}`")))
                }
                Err(e) => Err(pg(e)),
            }
        })
    }

    fn delete_ref(&self, repo_id: i64, kind: &str, name: &str) -> Result<bool> {
        self.with(async |c| {
            Ok(c.execute(
                "DELETE FROM refs WHERE repo_id = $1 AND kind = $2 AND name = $3",
                &[&repo_id, &kind, &name],
            )
            .await
            .map_err(pg)?
                > 0)
        })
    }

    fn set_index(&self, repo_id: i64, row: &IndexRow) -> Result<()> {
        self.with(async |c| {
            let tx = c.transaction().await.map_err(pg)?;
            let (by_dtype, tags, bases, metrics) = (
                json(&row.params_by_dtype),
                json(&row.tags),
                json(&row.base_models),
                json(&row.metrics),
            );
            tx.execute(
                "INSERT INTO repo_index (repo_id, pipeline_tag, library, license, architecture, params, params_by_dtype, card_json, tags, base_models, metrics)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (repo_id) DO UPDATE SET pipeline_tag = EXCLUDED.pipeline_tag,
                   library = EXCLUDED.library, license = EXCLUDED.license,
                   architecture = EXCLUDED.architecture, params = EXCLUDED.params,
                   params_by_dtype = EXCLUDED.params_by_dtype, card_json = EXCLUDED.card_json,
                   tags = EXCLUDED.tags, base_models = EXCLUDED.base_models, metrics = EXCLUDED.metrics",
                &[
                    &repo_id,
                    &row.pipeline_tag,
                    &row.library,
                    &row.license,
                    &row.architecture,
                    &row.params,
                    &by_dtype,
                    &row.card_json,
                    &tags,
                    &bases,
                    &metrics,
                ],
            )
            .await
            .map_err(pg)?;
            tx.execute("DELETE FROM lineage WHERE repo_id = $1", &[&repo_id])
                .await
                .map_err(pg)?;
            for b in &row.base_models {
                tx.execute(
                    "INSERT INTO lineage (repo_id, base) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&repo_id, b],
                )
                .await
                .map_err(pg)?;
            }
            tx.commit().await.map_err(pg)?;
            Ok(())
        })
    }

    fn index(&self, repo_id: i64) -> Result<Option<IndexRow>> {
        self.with(async |c| {
            Ok(c.query_opt(
                &format!("SELECT {INDEX_COLS} FROM repo_index i WHERE i.repo_id = $1"),
                &[&repo_id],
            )
            .await
            .map_err(pg)?
            .map(|r| row_index(&r, 0)))
        })
    }

    fn candidates(&self, q: &Candidates<'_>) -> Result<Vec<(Repo, IndexRow)>> {
        self.with(async |c| {
            let sql = format!(
                "SELECT r.id, r.kind, r.namespace, r.name, r.private, r.created_at, r.last_modified, r.downloads, r.likes, {INDEX_COLS}
                 FROM repos r LEFT JOIN repo_index i ON i.repo_id = r.id
                 WHERE ($1::TEXT IS NULL OR r.kind = $1)
                   AND ($2::TEXT IS NULL OR r.namespace = $2)
                   AND ($3::TEXT IS NULL OR strpos(lower(r.namespace || '/' || r.name), lower($3)) > 0)
                   AND (NOT r.private OR r.namespace = $4)"
            );
            let kind = q.kind.map(|k| k.as_str());
            let rows = c
                .query(&sql, &[&kind, &q.author, &q.search, &q.viewer])
                .await
                .map_err(pg)?;
            Ok(rows
                .iter()
                .map(|r| (row_repo(r, 0), row_index(r, 9)))
                .collect())
        })
    }

    fn children(&self, base: &str) -> Result<Vec<String>> {
        self.with(async |c| {
            let rows = c
                .query(
                    "SELECT r.namespace || '/' || r.name FROM lineage l JOIN repos r ON r.id = l.repo_id
                     WHERE l.base = $1 ORDER BY 1",
                    &[&base],
                )
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn count_download(&self, repo_id: i64) -> Result<()> {
        self.with(async |c| {
            c.execute(
                "UPDATE repos SET downloads = downloads + 1 WHERE id = $1",
                &[&repo_id],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
    }

    fn add_xorb(&self, repo_id: i64, hash: &str, blob: &str, size: u64) -> Result<bool> {
        self.with(async |c| {
            let n = c
                .execute(
                    "INSERT INTO xet_xorbs (repo_id, hash, blob, size, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[&repo_id, &hash, &blob, &(size as i64), &now_ms()],
                )
                .await
                .map_err(pg)?;
            Ok(n > 0)
        })
    }

    fn xorb(&self, repo_id: i64, hash: &str) -> Result<Option<String>> {
        self.with(async |c| {
            Ok(c.query_opt(
                "SELECT blob FROM xet_xorbs WHERE repo_id = $1 AND hash = $2",
                &[&repo_id, &hash],
            )
            .await
            .map_err(pg)?
            .map(|r| r.get(0)))
        })
    }

    fn referenced_blobs(&self) -> Result<std::collections::HashSet<String>> {
        self.with(async |c| {
            let rows = c
                .query(
                    "SELECT sha256 FROM commit_files UNION SELECT blob FROM xet_xorbs",
                    &[],
                )
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn import(&self, i: &Import<'_>) -> Result<Repo> {
        self.with(async |c| {
            let tx = c.transaction().await.map_err(pg)?;
            let now = now_ms();
            // The repository's row locked (or created) first: imports of one repository from
            // several replicas take turns.
            let inserted = tx
                .query_opt(
                    &format!(
                        "INSERT INTO repos (kind, namespace, name, private, created_at, last_modified) VALUES ($1, $2, $3, $4, $5, $5)
                         ON CONFLICT (kind, namespace, name) DO NOTHING RETURNING {REPO_COLS}"
                    ),
                    &[&i.kind.as_str(), &i.namespace, &i.name, &i.private, &i.commit.created_at],
                )
                .await
                .map_err(pg)?;
            let repo_id = match inserted {
                Some(row) => {
                    let id = row_repo(&row, 0).id;
                    tx.execute(
                        "INSERT INTO mirrors (repo_id, upstream) VALUES ($1, $2)",
                        &[&id, &i.upstream],
                    )
                    .await
                    .map_err(pg)?;
                    id
                }
                None => {
                    let row = tx
                        .query_one(
                            &format!(
                                "SELECT {REPO_COLS} FROM repos WHERE kind = $1 AND namespace = $2 AND name = $3 FOR UPDATE"
                            ),
                            &[&i.kind.as_str(), &i.namespace, &i.name],
                        )
                        .await
                        .map_err(pg)?;
                    let r = row_repo(&row, 0);
                    let mirrored = tx
                        .query_opt("SELECT 1 FROM mirrors WHERE repo_id = $1", &[&r.id])
                        .await
                        .map_err(pg)?
                        .is_some();
                    if !mirrored {
                        return Err(MetaError::Exists(format!(
                            "{} {} (a repository of this hub's own)",
                            i.kind.as_str(),
                            r.full_name()
                        )));
                    }
                    if r.private != i.private {
                        tx.execute(
                            "UPDATE repos SET private = $1 WHERE id = $2",
                            &[&i.private, &r.id],
                        )
                        .await
                        .map_err(pg)?;
                    }
                    r.id
                }
            };
            let k = i.commit;
            let added = tx
                .execute(
                    "INSERT INTO commits (repo_id, id, parent, summary, description, author, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                    &[&repo_id, &k.id, &k.parent, &k.summary, &k.description, &k.author, &k.created_at],
                )
                .await
                .map_err(pg)?;
            if added > 0 {
                insert_files(&tx, repo_id, &k.id, i.files).await?;
                tx.execute(
                    "UPDATE repos SET last_modified = GREATEST(last_modified, $1) WHERE id = $2",
                    &[&k.created_at, &repo_id],
                )
                .await
                .map_err(pg)?;
            }
            for (kind, name) in i.refs {
                tx.execute(
                    "INSERT INTO refs (repo_id, kind, name, commit_id) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (repo_id, kind, name) DO UPDATE SET commit_id = EXCLUDED.commit_id",
                    &[&repo_id, kind, name, &k.id],
                )
                .await
                .map_err(pg)?;
            }
            tx.execute(
                "INSERT INTO mirror_checks (repo_id, revision, checked_at) VALUES ($1, $2, $3)
                 ON CONFLICT (repo_id, revision) DO UPDATE SET checked_at = EXCLUDED.checked_at",
                &[&repo_id, &i.revision, &now],
            )
            .await
            .map_err(pg)?;
            let row = tx
                .query_one(
                    &format!("SELECT {REPO_COLS} FROM repos WHERE id = $1"),
                    &[&repo_id],
                )
                .await
                .map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            Ok(row_repo(&row, 0))
        })
    }

    fn mirror(&self, repo_id: i64, revision: &str) -> Result<Option<Mirror>> {
        self.with(async |c| {
            Ok(c.query_opt(
                "SELECT m.upstream, k.checked_at FROM mirrors m
                   LEFT JOIN mirror_checks k ON k.repo_id = m.repo_id AND k.revision = $2
                  WHERE m.repo_id = $1",
                &[&repo_id, &revision],
            )
            .await
            .map_err(pg)?
            .map(|r| Mirror {
                upstream: r.get(0),
                checked_at: r.get(1),
            }))
        })
    }

    fn dump(&self) -> Result<dump::Dump> {
        use serde_json::Value;
        self.with(async |c| {
            // One snapshot for every table.
            let tx = c
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg)?;
            let mut out = dump::Dump::default();
            for t in dump::TABLES {
                let cols: Vec<&str> = t.cols.iter().map(|(n, _)| pg_column(t.name, n)).collect();
                let rows = tx
                    .query(&format!("SELECT {} FROM {}", cols.join(", "), t.name), &[])
                    .await
                    .map_err(pg)?;
                let rows = rows
                    .iter()
                    .map(|r| {
                        t.cols
                            .iter()
                            .enumerate()
                            .map(|(i, (_, ty))| {
                                Ok(match ty {
                                    dump::Col::Int => Value::from(r.try_get::<_, i64>(i)?),
                                    dump::Col::OptInt => r
                                        .try_get::<_, Option<i64>>(i)?
                                        .map_or(Value::Null, Value::from),
                                    dump::Col::Text => Value::from(r.try_get::<_, String>(i)?),
                                    dump::Col::OptText => r
                                        .try_get::<_, Option<String>>(i)?
                                        .map_or(Value::Null, Value::from),
                                    dump::Col::Bool => Value::from(r.try_get::<_, bool>(i)?),
                                })
                            })
                            .collect::<std::result::Result<Vec<_>, tokio_postgres::Error>>()
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(pg)?;
                out.tables.insert(t.name.to_string(), rows);
            }
            tx.commit().await.map_err(pg)?;
            Ok(out)
        })
    }

    fn load(&self, d: &dump::Dump) -> Result<()> {
        use tokio_postgres::types::ToSql;
        d.check().map_err(MetaError::Backend)?;
        self.with(async |c| {
            let tx = c.transaction().await.map_err(pg)?;
            let mut counts = Vec::new();
            for t in ["users", "repos"] {
                let n: i64 = tx
                    .query_one(&format!("SELECT COUNT(*) FROM {t}"), &[])
                    .await
                    .map_err(pg)?
                    .get(0);
                counts.push(n);
            }
            not_empty(counts[0], counts[1])?;
            for t in dump::TABLES {
                let cols: Vec<&str> = t.cols.iter().map(|(n, _)| pg_column(t.name, n)).collect();
                let marks: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
                let st = tx
                    .prepare(&format!(
                        "INSERT INTO {} ({}) VALUES ({})",
                        t.name,
                        cols.join(", "),
                        marks.join(", ")
                    ))
                    .await
                    .map_err(pg)?;
                for row in d.tables.get(t.name).into_iter().flatten() {
                    let values: Vec<Box<dyn ToSql + Sync + Send>> = t
                        .cols
                        .iter()
                        .zip(row)
                        .map(|((_, ty), v)| -> Box<dyn ToSql + Sync + Send> {
                            match ty {
                                dump::Col::Int => Box::new(v.as_i64().unwrap_or(0)),
                                dump::Col::OptInt => Box::new(v.as_i64()),
                                dump::Col::Text => {
                                    Box::new(v.as_str().unwrap_or_default().to_string())
                                }
                                dump::Col::OptText => Box::new(v.as_str().map(str::to_string)),
                                dump::Col::Bool => Box::new(v.as_bool().unwrap_or(false)),
                            }
                        })
                        .collect();
                    let refs: Vec<&(dyn ToSql + Sync)> = values
                        .iter()
                        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                        .collect();
                    tx.execute(&st, &refs).await.map_err(pg)?;
                }
            }
            // Repositories keep their ids; new ones continue after them.
            tx.execute(
                "SELECT setval(pg_get_serial_sequence('repos', 'id'), COALESCE((SELECT MAX(id) FROM repos), 0) + 1, false)",
                &[],
            )
            .await
            .map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            Ok(())
        })
    }

    fn signing_secret(&self, fresh: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with(async |c| {
            c.execute(
                "INSERT INTO hub_settings (key, value) VALUES ('signing_secret', $1) ON CONFLICT DO NOTHING",
                &[&fresh],
            )
            .await
            .map_err(pg)?;
            let row = c
                .query_one(
                    "SELECT value FROM hub_settings WHERE key = 'signing_secret'",
                    &[],
                )
                .await
                .map_err(pg)?;
            Ok(Some(row.get(0)))
        })
    }
}
