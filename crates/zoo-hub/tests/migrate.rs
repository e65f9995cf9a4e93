//! Issue 12: a data directory from before commit ids were git commit ids opens migrated —
//! every commit gets the git id its files, parent, author, time and message compute to, refs
//! follow, files stay — and opening it again changes nothing.

use rusqlite::{Connection, params};
use zoo_hub::meta::{FileEntry, MetaStore, SqliteMeta};

/// The version-1 tables (random, global commit ids).
const V1: &str = "
CREATE TABLE repos (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
  private INTEGER NOT NULL, created_at INTEGER NOT NULL, last_modified INTEGER NOT NULL,
  downloads INTEGER NOT NULL DEFAULT 0, likes INTEGER NOT NULL DEFAULT 0, UNIQUE (kind, namespace, name));
CREATE TABLE commits (id TEXT PRIMARY KEY, repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
  parent TEXT, summary TEXT NOT NULL, description TEXT NOT NULL, author TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE commit_files (commit_id TEXT NOT NULL REFERENCES commits(id) ON DELETE CASCADE, path TEXT NOT NULL,
  sha256 TEXT NOT NULL, size INTEGER NOT NULL, git_oid TEXT NOT NULL, lfs INTEGER NOT NULL, verdict TEXT, scan TEXT,
  PRIMARY KEY (commit_id, path));
CREATE TABLE refs (repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE, kind TEXT NOT NULL,
  name TEXT NOT NULL, commit_id TEXT NOT NULL, PRIMARY KEY (repo_id, kind, name));
";

fn file(path: &str, content: &[u8]) -> FileEntry {
    FileEntry {
        path: path.into(),
        sha256: format!("{:064x}", content.len()),
        size: content.len() as u64,
        git_oid: zoo_hub::blobs::git_blob_sha1(content),
        lfs: false,
        verdict: None,
        scan: None,
    }
}

#[test]
fn an_old_data_directory_gets_git_commit_ids_issue_12() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meta.sqlite");
    let a = file("a.txt", b"a\n");
    let b = file("sub/b.txt", b"b\n");
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch(V1).unwrap();
        // Two repositories whose first commits would be identical git commits (same author,
        // same second): ids are per repository now.
        for id in [1, 2] {
            c.execute(
                "INSERT INTO repos (id, kind, namespace, name, private, created_at, last_modified) VALUES (?1, 'model', 'alice', ?2, 0, 1700000000000, 1700000000000)",
                params![id, format!("r{id}")],
            )
            .unwrap();
            let root = format!("root{id}");
            c.execute(
                "INSERT INTO commits VALUES (?1, ?2, NULL, 'initial commit', '', 'alice', 1700000000000)",
                params![root, id],
            )
            .unwrap();
            c.execute(
                "INSERT INTO refs VALUES (?1, 'branch', 'main', ?2)",
                params![id, root],
            )
            .unwrap();
        }
        // Repository 1: two more commits on main, a tag on the middle one.
        c.execute(
            "INSERT INTO commits VALUES ('c1', 1, 'root1', 'add a', '', 'alice', 1700000001000)",
            [],
        )
        .unwrap();
        c.execute("INSERT INTO commits VALUES ('c2', 1, 'c1', 'add b', 'with a description', 'bob', 1700000002000)", []).unwrap();
        for (commit, f) in [("c1", &a), ("c2", &a), ("c2", &b)] {
            c.execute(
                "INSERT INTO commit_files VALUES (?1, ?2, ?3, ?4, ?5, 0, NULL, NULL)",
                params![commit, f.path, f.sha256, f.size as i64, f.git_oid],
            )
            .unwrap();
        }
        c.execute("UPDATE refs SET commit_id = 'c2' WHERE repo_id = 1", [])
            .unwrap();
        c.execute("INSERT INTO refs VALUES (1, 'tag', 'v1', 'c1')", [])
            .unwrap();
    }
    let meta = SqliteMeta::open(&db).unwrap();
    let root = zoo_hub::git::commit_id(&[], None, "alice", 1_700_000_000_000, "initial commit", "");
    let c1 = zoo_hub::git::commit_id(
        std::slice::from_ref(&a),
        Some(&root),
        "alice",
        1_700_000_001_000,
        "add a",
        "",
    );
    let c2 = zoo_hub::git::commit_id(
        &[a.clone(), b.clone()],
        Some(&c1),
        "bob",
        1_700_000_002_000,
        "add b",
        "with a description",
    );
    assert_eq!(
        meta.resolve(1, "main").unwrap().as_deref(),
        Some(c2.as_str())
    );
    assert_eq!(meta.resolve(1, "v1").unwrap().as_deref(), Some(c1.as_str()));
    assert_eq!(
        meta.resolve(2, "main").unwrap().as_deref(),
        Some(root.as_str())
    );
    let history: Vec<String> = meta
        .history(1, &c2, 10)
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(history, [c2.clone(), c1.clone(), root.clone()]);
    assert_eq!(meta.files(1, &c1).unwrap(), vec![a.clone()]);
    assert_eq!(meta.files(1, &c2).unwrap(), vec![a, b]);
    assert_eq!(meta.history(2, &root, 10).unwrap().len(), 1);
    drop(meta);
    // Opening again: nothing moves.
    let meta = SqliteMeta::open(&db).unwrap();
    assert_eq!(
        meta.resolve(1, "main").unwrap().as_deref(),
        Some(c2.as_str())
    );
    assert_eq!(meta.files(1, &c2).unwrap().len(), 2);
}
