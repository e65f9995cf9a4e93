//! Issue 14: `zoo admin backup DIR` / `zoo admin restore DIR` — a consistent copy of a hub's
//! metadata and blobs, taken while it runs, restored into a fresh hub of either store pair
//! (SQLite + files, PostgreSQL + Ceph RGW, and across), where every repository, revision and
//! file comes back byte-identical, tokens included; a damaged backup restores nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use zoo_testkit::{Postgres, Rgw};

mod common;
use common::*;

/// `zoo admin backup|restore DIR --json` with store flags and environment.
fn admin_json(
    verb: &str,
    dir: &Path,
    data: &Path,
    stores: &[&str],
    env: &[(&str, String)],
) -> Value {
    let out = Command::new(ZOO)
        .args(["admin", verb])
        .arg(dir)
        .arg("--json")
        .arg("--data")
        .arg(data)
        .args(stores)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    serde_json::from_str(&ok(&out)).unwrap()
}

fn admin_fails(verb: &str, dir: &Path, data: &Path) -> String {
    let out = Command::new(ZOO)
        .args(["admin", verb])
        .arg(dir)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    assert!(!out.status.success(), "zoo admin {verb} succeeded");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Seeds a hub: public and private models (LFS and regular files, a tag, a second branch)
/// and a dataset.
fn seed(http: &Http, alice: &str) {
    http.create(alice, "alice/m", false);
    http.create(alice, "alice/hidden", true);
    let r = http.post(
        "/api/repos/create",
        alice,
        &json!({"name": "alice/ds", "type": "dataset"}),
    );
    assert_eq!(r.status, 200);
    let weights: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let oid = http.lfs_upload(alice, "alice/m", &weights);
    let lfs = json!({"key": "lfsFile", "value": {"path": "big.bin", "algo": "sha256", "oid": oid, "size": weights.len()}});
    let r = http.commit(
        alice,
        "alice/m",
        &[
            ("config.json", br#"{"model_type": "tiny"}"#),
            ("README.md", b"---\nlicense: mit\n---\n# m\n"),
        ],
        &[lfs],
    );
    assert_eq!(r.status, 200);
    let r = http.post("/api/models/alice/m/tag/main", alice, &json!({"tag": "v1"}));
    assert_eq!(r.status, 200);
    let r = http.post("/api/models/alice/m/branch/dev", alice, &json!({}));
    assert_eq!(r.status, 200);
    let r = http.commit(alice, "alice/m", &[("notes/a.txt", b"second")], &[]);
    assert_eq!(r.status, 200);
    let r = http.commit(alice, "alice/hidden", &[("secret.txt", b"hush")], &[]);
    assert_eq!(r.status, 200);
    let r = Http::reply(
        http.agent
            .post(format!("{}/api/datasets/alice/ds/commit/main", http.base))
            .header("Authorization", format!("Bearer {alice}"))
            .header("Content-Type", "application/x-ndjson")
            .send(
                (json!({"key": "header", "value": {"summary": "data"}}).to_string()
                    + "\n"
                    + &json!({"key": "file", "value": {"path": "train.csv", "content": "YSxiCjEsMgo=", "encoding": "base64"}}).to_string()
                    + "\n")
                    .as_bytes(),
            ),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

/// Everything a client can read of a hub, as `(repo @ ref) → (commit, path → bytes)`, read
/// with `token`.
fn contents(http: &Http, token: &str) -> BTreeMap<String, (String, BTreeMap<String, Vec<u8>>)> {
    let mut out = BTreeMap::new();
    for (kind, prefix, repos) in [
        ("models", "", vec!["alice/m", "alice/hidden"]),
        ("datasets", "datasets/", vec!["alice/ds"]),
    ] {
        for repo in repos {
            let refs = http.get(&format!("/api/{kind}/{repo}/refs"), Some(token), None);
            assert_eq!(refs.status, 200, "{repo}");
            let refs = refs.json();
            let names: Vec<String> = ["branches", "tags"]
                .iter()
                .flat_map(|k| refs[k].as_array().unwrap().clone())
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect();
            for name in names {
                let info = http
                    .get(
                        &format!("/api/{kind}/{repo}/revision/{name}"),
                        Some(token),
                        None,
                    )
                    .json();
                let sha = info["sha"].as_str().unwrap().to_string();
                let mut files = BTreeMap::new();
                for s in info["siblings"].as_array().unwrap() {
                    let path = s["rfilename"].as_str().unwrap();
                    let r = http.get(
                        &format!("/{prefix}{repo}/resolve/{sha}/{path}"),
                        Some(token),
                        None,
                    );
                    assert_eq!(r.status, 200, "{repo}@{name}/{path}");
                    files.insert(path.to_string(), r.body);
                }
                out.insert(format!("{kind}/{repo}@{name}"), (sha, files));
            }
        }
    }
    out
}

#[test]
fn a_backup_restores_byte_identical_into_a_fresh_hub_issue_14() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let alice = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    seed(&http, &alice);
    let before = contents(&http, &alice);
    assert_eq!(before.len(), 5, "{:?}", before.keys());

    // Taken while the hub runs.
    let backup = dir.path().join("backup");
    let s = admin_json("backup", &backup, &data, &[], &[]);
    assert_eq!(
        (s["users"].as_u64(), s["repos"].as_u64()),
        (Some(1), Some(3)),
        "{s}"
    );
    assert_eq!(s["copied"], s["blobs"]);

    // Restored into a fresh hub: every revision and file identical, the token still works.
    let restored = dir.path().join("restored");
    let r = admin_json("restore", &backup, &restored, &[], &[]);
    assert_eq!(r["blobs"], s["blobs"]);
    let server2 = Server::start(&restored, &[], &[]);
    let http2 = Http::new(&server2.url);
    assert_eq!(contents(&http2, &alice), before);
    // Private stays private; the restored hub takes new commits on top.
    let r = http2.get("/api/models/alice/hidden", None, None);
    assert_eq!(r.header("x-error-code"), Some("RepoNotFound"));
    let r = http2.commit(&alice, "alice/m", &[("after.txt", b"restored")], &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    http2.create(&alice, "alice/new", false);
    // Not into a hub that has content.
    let e = admin_fails("restore", &backup, &restored);
    assert!(e.contains("not empty"), "{e}");

    // A second backup into the same folder copies only what is new and drops what nothing
    // names any more.
    let r = Http::reply(
        http.agent
            .delete(format!("{}/api/repos/delete", server.url))
            .header("Authorization", format!("Bearer {alice}"))
            .force_send_body()
            .send_json(json!({"name": "hidden", "organization": "alice", "type": "model"})),
    );
    assert_eq!(r.status, 200);
    let r = http.commit(&alice, "alice/m", &[("more.txt", b"more")], &[]);
    assert_eq!(r.status, 200);
    let s2 = admin_json("backup", &backup, &data, &[], &[]);
    assert_eq!(s2["repos"], json!(2), "{s2}");
    assert_eq!(s2["copied"], json!(1), "{s2}");
    assert_eq!(s2["pruned"], json!(1), "{s2}");
    let metadata: Vec<_> = std::fs::read_dir(&backup)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("metadata-"))
        .collect();
    assert_eq!(metadata.len(), 1);

    // A damaged backup restores nothing: a blob's byte flipped.
    let big = backup.join("blobs");
    let victim = walk(&big)
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&victim, &bytes).unwrap();
    let fresh = dir.path().join("fresh");
    let e = admin_fails("restore", &backup, &fresh);
    assert!(e.contains("damaged"), "{e}");
    let server3 = Server::start(&fresh, &[], &[]);
    let listed = Http::new(&server3.url)
        .get("/api/models", None, None)
        .json();
    assert_eq!(listed, json!([]), "a damaged restore left metadata");
    // …and a damaged manifest or metadata file is refused the same way.
    bytes[1000] ^= 1;
    std::fs::write(&victim, &bytes).unwrap();
    let meta = metadata[0].path();
    let mut text = std::fs::read(&meta).unwrap();
    let at = text.len() / 2;
    text[at] = text[at].wrapping_add(1);
    std::fs::write(&meta, &text).unwrap();
    let e = admin_fails("restore", &backup, &dir.path().join("fresh2"));
    assert!(e.contains("damaged"), "{e}");
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// PostgreSQL + RGW → backup → a fresh PostgreSQL database + another bucket prefix, and →
/// SQLite + files: both serve the same bytes.
#[test]
fn backups_move_between_postgres_rgw_and_sqlite_issue_14() {
    let pg = Postgres::start();
    let rgw = Rgw::start();
    let env = rgw.env();
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = tempfile::tempdir().unwrap();
    let blobs = format!("s3://{}/hub", rgw.bucket);
    let stores = ["--database", pg.url.as_str(), "--blobs", blobs.as_str()];
    let admin_pg = |args: &[&str]| {
        let out = Command::new(ZOO)
            .arg("admin")
            .args(args)
            .arg("--data")
            .arg(dir.path().join("admin"))
            .args(stores)
            .envs(env_ref.iter().copied())
            .output()
            .unwrap();
        ok(&out).trim().to_string()
    };
    admin_pg(&["user", "add", "alice"]);
    let alice = admin_pg(&["token", "create", "--user", "alice", "--scope", "write"]);
    let server = Server::start(&dir.path().join("replica"), &stores, &env_ref);
    let http = Http::new(&server.url);
    seed(&http, &alice);
    let before = contents(&http, &alice);

    let backup = dir.path().join("backup");
    let s = admin_json("backup", &backup, &dir.path().join("admin"), &stores, &env);
    assert_eq!(s["repos"], json!(3), "{s}");

    // Into a fresh database and another prefix of the bucket.
    let db2 = pg.database("restored");
    let blobs2 = format!("s3://{}/restored", rgw.bucket);
    let stores2 = ["--database", db2.as_str(), "--blobs", blobs2.as_str()];
    let r = admin_json(
        "restore",
        &backup,
        &dir.path().join("admin2"),
        &stores2,
        &env,
    );
    assert_eq!(r["copied"], s["blobs"], "{r}");
    let server2 = Server::start(&dir.path().join("replica2"), &stores2, &env_ref);
    let http2 = Http::new(&server2.url);
    assert_eq!(contents(&http2, &alice), before);
    // New repositories get ids after the restored ones.
    http2.create(&alice, "alice/new", false);

    // Into SQLite + files.
    let local = dir.path().join("local");
    admin_json("restore", &backup, &local, &[], &[]);
    let server3 = Server::start(&local, &[], &[]);
    assert_eq!(contents(&Http::new(&server3.url), &alice), before);
}
