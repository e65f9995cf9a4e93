//! Issue 14: the metadata stores behave alike. One conformance suite runs against SQLite and
//! against a real PostgreSQL server; PostgreSQL's own guarantees for several replicas —
//! commits to one branch from two stores at once all land, a stale parent is refused, the
//! schema is migrated once and a newer one refused, one signing key for all — are checked
//! with two independent connections pools, as two replicas have.

use std::sync::Arc;

use zoo_hub::meta::{
    Candidates, Commit, FileEntry, Import, IndexRow, MetaError, MetaStore, NewCommit, PgMeta,
    RepoKind, SqliteMeta,
};
use zoo_testkit::Postgres;

fn file(path: &str, content: &str) -> FileEntry {
    FileEntry {
        path: path.into(),
        sha256: format!("{:0>64}", content.len()),
        size: content.len() as u64,
        git_oid: format!("{:0>40}", content.len()),
        lfs: false,
        verdict: None,
        scan: None,
    }
}

fn commit(repo_id: i64, parent: Option<String>, summary: &str, added: Vec<FileEntry>) -> NewCommit {
    NewCommit {
        repo_id,
        branch: "main".into(),
        expected_parent: parent,
        summary: summary.into(),
        description: String::new(),
        author: "alice".into(),
        added,
        deleted_files: Vec::new(),
        deleted_folders: Vec::new(),
        pushed: None,
    }
}

/// Everything the routes rely on, against one store.
fn conformance(m: &dyn MetaStore) {
    // Users and tokens.
    m.add_user("alice").unwrap();
    assert!(matches!(m.add_user("alice"), Err(MetaError::Exists(_))));
    assert!(m.user_exists("alice").unwrap());
    assert!(!m.user_exists("bob").unwrap());
    m.add_token("alice", "write", "h1", "laptop").unwrap();
    assert!(matches!(
        m.add_token("bob", "read", "h2", "x"),
        Err(MetaError::NotFound(_))
    ));
    assert_eq!(
        m.token("h1").unwrap(),
        Some(("alice".into(), "write".into(), "laptop".into()))
    );
    assert_eq!(m.token("nope").unwrap(), None);
    // Repositories.
    let repo = m
        .create_repo(RepoKind::Model, "alice", "m", false, "alice")
        .unwrap();
    assert_eq!(repo.full_name(), "alice/m");
    assert!(matches!(
        m.create_repo(RepoKind::Model, "alice", "m", true, "alice"),
        Err(MetaError::Exists(_))
    ));
    let ds = m
        .create_repo(RepoKind::Dataset, "alice", "m", true, "alice")
        .unwrap();
    assert_ne!(ds.id, repo.id, "a data set and a model may share a name");
    assert_eq!(
        m.repo(RepoKind::Model, "alice", "m").unwrap().unwrap(),
        repo
    );
    m.set_private(ds.id, false).unwrap();
    assert!(
        !m.repo(RepoKind::Dataset, "alice", "m")
            .unwrap()
            .unwrap()
            .private
    );
    // Commits: files carried forward, deleted, replaced; history; resolve.
    let initial = m.resolve(repo.id, "main").unwrap().unwrap();
    assert_eq!(m.files(repo.id, &initial).unwrap(), vec![]);
    let c1 = m
        .commit(&commit(
            repo.id,
            Some(initial),
            "first",
            vec![
                file("a.txt", "a"),
                file("dir/b.txt", "bb"),
                file("dir/c.txt", "ccc"),
            ],
        ))
        .unwrap();
    let mut second = commit(repo.id, None, "second", vec![file("a.txt", "aaaa")]);
    second.deleted_folders = vec!["dir".into()];
    let c2 = m.commit(&second).unwrap();
    let files = m.files(repo.id, &c2).unwrap();
    assert_eq!(files, vec![file("a.txt", "aaaa")]);
    assert_eq!(
        m.files(repo.id, &c1).unwrap().len(),
        3,
        "old commits keep their files"
    );
    assert_eq!(
        m.file(repo.id, &c1, "dir/b.txt").unwrap(),
        Some(file("dir/b.txt", "bb"))
    );
    assert_eq!(m.file(repo.id, &c2, "dir/b.txt").unwrap(), None);
    assert_eq!(m.resolve(repo.id, "main").unwrap(), Some(c2.clone()));
    assert_eq!(m.resolve(repo.id, &c1).unwrap(), Some(c1.clone()));
    assert_eq!(m.resolve(repo.id, &"f".repeat(40)).unwrap(), None);
    assert_eq!(
        m.resolve(ds.id, &c1).unwrap(),
        None,
        "commits are per repository"
    );
    let history: Vec<String> = m
        .history(repo.id, &c2, 10)
        .unwrap()
        .into_iter()
        .map(|c| c.summary)
        .collect();
    assert_eq!(history, ["second", "first", "initial commit"]);
    assert_eq!(m.history(repo.id, &c2, 2).unwrap().len(), 2);
    let info = m.commit_info(repo.id, &c2).unwrap().unwrap();
    assert_eq!(info.parent.as_deref(), Some(c1.as_str()));
    // A stale parent is refused and changes nothing.
    let stale = m.commit(&commit(
        repo.id,
        Some(c1.clone()),
        "stale",
        vec![file("x", "x")],
    ));
    assert!(
        matches!(stale, Err(MetaError::Conflict { .. })),
        "{stale:?}"
    );
    assert_eq!(m.resolve(repo.id, "main").unwrap(), Some(c2.clone()));
    // Refs.
    m.create_ref(repo.id, "tag", "v1", &c1).unwrap();
    m.create_ref(repo.id, "branch", "dev", &c1).unwrap();
    assert!(matches!(
        m.create_ref(repo.id, "tag", "v1", &c2),
        Err(MetaError::Exists(_))
    ));
    assert_eq!(m.resolve(repo.id, "v1").unwrap(), Some(c1));
    let refs: Vec<(String, String)> = m
        .refs(repo.id)
        .unwrap()
        .into_iter()
        .map(|r| (r.kind, r.name))
        .collect();
    assert_eq!(
        refs,
        [
            ("branch".to_string(), "dev".to_string()),
            ("branch".into(), "main".into()),
            ("tag".into(), "v1".into())
        ]
    );
    let mut on_dev = commit(repo.id, None, "on dev", vec![file("d", "d")]);
    on_dev.branch = "dev".into();
    let d = m.commit(&on_dev).unwrap();
    assert_eq!(m.resolve(repo.id, "dev").unwrap(), Some(d));
    assert_eq!(m.resolve(repo.id, "main").unwrap(), Some(c2));
    assert!(m.delete_ref(repo.id, "tag", "v1").unwrap());
    assert!(!m.delete_ref(repo.id, "tag", "v1").unwrap());
    // The search index, lineage, privacy.
    let row = IndexRow {
        pipeline_tag: Some("image-classification".into()),
        library: Some("timm".into()),
        license: Some("apache-2.0".into()),
        architecture: Some("resnet18".into()),
        params: Some(11_689_512),
        params_by_dtype: vec![("F32".into(), 11_689_512)],
        card_json: Some("{\"license\":\"apache-2.0\"}".into()),
        tags: vec!["timm".into(), "base_model:org/base".into()],
        base_models: vec!["org/base".into()],
        metrics: vec![("top-1".into(), 0.7)],
    };
    m.set_index(repo.id, &row).unwrap();
    m.set_index(repo.id, &row).unwrap();
    assert_eq!(m.index(repo.id).unwrap(), Some(row.clone()));
    assert_eq!(m.children("org/base").unwrap(), ["alice/m"]);
    let private = m
        .create_repo(RepoKind::Model, "alice", "secret", true, "alice")
        .unwrap();
    m.set_index(
        private.id,
        &IndexRow {
            base_models: vec!["org/base".into()],
            ..IndexRow::default()
        },
    )
    .unwrap();
    assert_eq!(
        m.children("org/base").unwrap(),
        ["alice/m", "alice/secret"],
        "the store lists private children too (the routes filter by viewer)"
    );
    let names = |q: Candidates<'_>| -> Vec<String> {
        let mut v: Vec<String> = m
            .candidates(&q)
            .unwrap()
            .into_iter()
            .map(|(r, _)| format!("{}:{}", r.kind.as_str(), r.full_name()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(Candidates {
            kind: Some(RepoKind::Model),
            ..Candidates::default()
        }),
        ["model:alice/m"]
    );
    assert_eq!(
        names(Candidates {
            kind: Some(RepoKind::Model),
            viewer: Some("alice"),
            ..Candidates::default()
        }),
        ["model:alice/m", "model:alice/secret"]
    );
    assert_eq!(
        names(Candidates {
            search: Some("ALICE/M"),
            ..Candidates::default()
        }),
        ["dataset:alice/m", "model:alice/m"]
    );
    let (found, idx) = m
        .candidates(&Candidates {
            kind: Some(RepoKind::Model),
            author: Some("alice"),
            search: Some("m"),
            viewer: None,
        })
        .unwrap()
        .remove(0);
    assert_eq!(found.id, repo.id);
    assert_eq!(idx, row);
    m.count_download(repo.id).unwrap();
    m.count_download(repo.id).unwrap();
    assert_eq!(
        m.repo(RepoKind::Model, "alice", "m")
            .unwrap()
            .unwrap()
            .downloads,
        2
    );
    // Xet xorbs, per repository.
    assert!(m.add_xorb(repo.id, "x1", "blob1", 10).unwrap());
    assert!(!m.add_xorb(repo.id, "x1", "blob1", 10).unwrap());
    assert_eq!(m.xorb(repo.id, "x1").unwrap().as_deref(), Some("blob1"));
    assert_eq!(m.xorb(ds.id, "x1").unwrap(), None);
    // Deleting a repository takes its commits, refs, index and lineage with it.
    assert!(m.delete_repo(RepoKind::Model, "alice", "m").unwrap());
    assert!(!m.delete_repo(RepoKind::Model, "alice", "m").unwrap());
    assert_eq!(m.repo(RepoKind::Model, "alice", "m").unwrap(), None);
    assert_eq!(m.children("org/base").unwrap(), ["alice/secret"]);
    assert_eq!(m.index(repo.id).unwrap(), None);
    let again = m
        .create_repo(RepoKind::Model, "alice", "m", false, "alice")
        .unwrap();
    assert_eq!(
        m.history(again.id, &m.resolve(again.id, "main").unwrap().unwrap(), 10)
            .unwrap()
            .len(),
        1
    );
    mirrors(m);
}

/// Imports of an upstream's commits (`zoo serve --upstream`).
fn mirrors(m: &dyn MetaStore) {
    let upstream_commit = |id: char, parent: Option<String>| Commit {
        id: id.to_string().repeat(40),
        parent,
        summary: format!("upstream {id}"),
        description: String::new(),
        author: "carol".into(),
        created_at: 1_700_000_000_000,
    };
    let c1 = upstream_commit('a', None);
    let files = vec![file("w.bin", "weights"), file("config.json", "{}")];
    let import = |c: &Commit, files: &[FileEntry], refs: &[(&str, &str)], rev: &str| {
        m.import(&Import {
            kind: RepoKind::Model,
            namespace: "carol",
            name: "up",
            private: false,
            upstream: "http://upstream",
            commit: c,
            files,
            refs,
            revision: rev,
        })
    };
    let repo = import(&c1, &files, &[("branch", "main")], "main").unwrap();
    assert_eq!(repo.full_name(), "carol/up");
    assert_eq!(m.resolve(repo.id, "main").unwrap(), Some(c1.id.clone()));
    assert_eq!(m.commit_info(repo.id, &c1.id).unwrap(), Some(c1.clone()));
    assert_eq!(m.files(repo.id, &c1.id).unwrap().len(), 2);
    let mirror = m.mirror(repo.id, "main").unwrap().unwrap();
    assert_eq!(mirror.upstream, "http://upstream");
    assert!(mirror.checked_at.is_some());
    assert_eq!(m.mirror(repo.id, "v1").unwrap().unwrap().checked_at, None);
    // The same commit again (a refresh that found nothing new): its tree is kept, a tag
    // added; the branch moves on to a new commit.
    import(&c1, &[], &[("tag", "v1")], "v1").unwrap();
    assert_eq!(m.files(repo.id, &c1.id).unwrap().len(), 2);
    assert_eq!(m.resolve(repo.id, "v1").unwrap(), Some(c1.id.clone()));
    let c2 = upstream_commit('b', Some(c1.id.clone()));
    import(&c2, &files[..1], &[("branch", "main")], "main").unwrap();
    assert_eq!(m.resolve(repo.id, "main").unwrap(), Some(c2.id.clone()));
    assert_eq!(m.history(repo.id, &c2.id, 10).unwrap().len(), 2);
    assert_eq!(m.resolve(repo.id, "v1").unwrap(), Some(c1.id.clone()));
    // A repository of this hub's own is no mirror and is never replaced by one.
    let own = m
        .create_repo(RepoKind::Model, "carol", "own", false, "carol")
        .unwrap();
    assert_eq!(m.mirror(own.id, "main").unwrap(), None);
    let clash = m.import(&Import {
        kind: RepoKind::Model,
        namespace: "carol",
        name: "own",
        private: false,
        upstream: "http://upstream",
        commit: &c1,
        files: &files,
        refs: &[("branch", "main")],
        revision: "main",
    });
    assert!(matches!(clash, Err(MetaError::Exists(_))), "{clash:?}");
    assert_eq!(
        m.resolve(own.id, "main").unwrap().as_deref().map(str::len),
        Some(40)
    );
    assert_ne!(m.resolve(own.id, "main").unwrap(), Some(c1.id));
    // The upstream made it private: so is the mirror.
    let repo = m
        .import(&Import {
            kind: RepoKind::Model,
            namespace: "carol",
            name: "up",
            private: true,
            upstream: "http://upstream",
            commit: &c2,
            files: &[],
            refs: &[("branch", "main")],
            revision: "main",
        })
        .unwrap();
    assert!(repo.private);
    // Deleting a mirror forgets it.
    assert!(m.delete_repo(RepoKind::Model, "carol", "up").unwrap());
    assert_eq!(m.mirror(repo.id, "main").unwrap(), None);
}

#[test]
fn sqlite_passes_the_metadata_conformance_suite_issue_14() {
    let dir = tempfile::tempdir().unwrap();
    let m = SqliteMeta::open(&dir.path().join("meta.sqlite")).unwrap();
    conformance(&m);
}

#[test]
fn postgres_passes_the_metadata_conformance_suite_issue_14() {
    let pg = Postgres::start();
    let m = PgMeta::connect(&pg.url, 4).unwrap();
    conformance(&m);
}

/// Two replicas (two pools) commit to one branch at once, 4 threads each: every commit lands,
/// in some order, each on top of the one before; none is lost.
#[test]
fn concurrent_commits_from_two_replicas_all_land_issue_14() {
    let pg = Postgres::start();
    let a: Arc<dyn MetaStore> = Arc::new(PgMeta::connect(&pg.url, 4).unwrap());
    let b: Arc<dyn MetaStore> = Arc::new(PgMeta::connect(&pg.url, 4).unwrap());
    a.add_user("alice").unwrap();
    let repo = a
        .create_repo(RepoKind::Model, "alice", "busy", false, "alice")
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let m = if i % 2 == 0 { a.clone() } else { b.clone() };
            std::thread::spawn(move || {
                m.commit(&commit(
                    repo.id,
                    None,
                    &format!("commit {i}"),
                    vec![file(&format!("f{i}.txt"), &"x".repeat(i + 1))],
                ))
                .unwrap()
            })
        })
        .collect();
    let ids: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let head = b.resolve(repo.id, "main").unwrap().unwrap();
    let history = a.history(repo.id, &head, 100).unwrap();
    assert_eq!(history.len(), 9, "8 commits and the initial one");
    for id in &ids {
        assert!(history.iter().any(|c| &c.id == id), "commit {id} was lost");
    }
    let files = a.files(repo.id, &head).unwrap();
    assert_eq!(
        files.len(),
        8,
        "every commit's file is in the head: {files:?}"
    );
    // A commit naming a parent the branch has left is refused, from either replica.
    let stale = b.commit(&commit(
        repo.id,
        Some(history[1].id.clone()),
        "stale",
        vec![],
    ));
    assert!(
        matches!(stale, Err(MetaError::Conflict { .. })),
        "{stale:?}"
    );
}

/// The schema is versioned: a second replica finds it current and applies nothing; a database
/// from a newer zoo is refused with a message saying so; all replicas get one signing key.
#[test]
fn postgres_schema_is_migrated_once_and_the_signing_key_is_shared_issue_14() {
    let pg = Postgres::start();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| PgMeta::connect(&pg.url, 2).unwrap());
        let b = s.spawn(|| PgMeta::connect(&pg.url, 2).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    let newest = zoo_hub::meta::pg::MIGRATIONS.last().unwrap().0;
    assert_eq!(a.schema_version().unwrap(), newest);
    assert_eq!(b.schema_version().unwrap(), newest);
    let ka = a.signing_secret(&[1; 32]).unwrap().unwrap();
    let kb = b.signing_secret(&[2; 32]).unwrap().unwrap();
    assert_eq!(ka, kb, "one key for every replica");
    assert_eq!(ka, vec![1; 32]);
    // A newer schema than this zoo knows.
    let newer = pg.database("newer");
    drop(PgMeta::connect(&newer, 1).unwrap());
    let out = std::process::Command::new("psql")
        .arg(&newer)
        .arg("-qc")
        .arg("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = PgMeta::connect(&newer, 1).unwrap_err().to_string();
    assert!(err.contains("newer than this zoo"), "{err}");
    // SQLite keeps its key in the data directory.
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteMeta::open(&dir.path().join("m.sqlite")).unwrap();
    assert_eq!(s.signing_secret(&[3; 32]).unwrap(), None);
}

/// A dump (`zoo admin backup`) of one store loads into the other and dumps back identical:
/// every table, both directions; a store with content refuses a load.
#[test]
fn dumps_round_trip_between_sqlite_and_postgres_issue_14() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteMeta::open(&dir.path().join("a.sqlite")).unwrap();
    conformance(&sqlite);
    let repo = sqlite
        .create_repo(RepoKind::Model, "alice", "kept", true, "alice")
        .unwrap();
    sqlite
        .commit(&commit(
            repo.id,
            None,
            "files",
            vec![file("a.txt", "a"), file("w.bin", "www")],
        ))
        .unwrap();
    let dump = sqlite.dump().unwrap();
    assert!(dump.count("users") > 0 && dump.count("commit_files") > 0);
    assert!(dump.count("mirrors") == 0 && dump.count("refs") > 0);
    let pg = Postgres::start();
    let pgm = PgMeta::connect(&pg.url, 2).unwrap();
    pgm.load(&dump).unwrap();
    assert_eq!(pgm.dump().unwrap(), dump);
    let back = SqliteMeta::open(&dir.path().join("b.sqlite")).unwrap();
    back.load(&pgm.dump().unwrap()).unwrap();
    assert_eq!(back.dump().unwrap(), dump);
    for m in [&sqlite as &dyn MetaStore, &pgm] {
        let e = m.load(&dump).unwrap_err();
        assert!(e.to_string().contains("not empty"), "{e}");
    }
    // New repositories continue after the loaded ids.
    let r = pgm
        .create_repo(RepoKind::Model, "alice", "after", false, "alice")
        .unwrap();
    let max = dump.tables["repos"]
        .iter()
        .map(|row| row[0].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(r.id > max, "{} <= {max}", r.id);
}
