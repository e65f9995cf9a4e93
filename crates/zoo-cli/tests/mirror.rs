//! Issue 14: `zoo serve --upstream URL` — a pull-through mirror of another hub (here a second
//! `zoo serve`): repositories fetched on first request with their commit ids, hash-verified,
//! served with the upstream stopped; private upstream repositories only with a token; a
//! mirror is read-only and a local repository never shadows an upstream one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

mod common;
use common::proxy::{Faults, Proxy};
use common::*;

/// A small valid safetensors file (one 2×2 f32 tensor).
fn safetensors(values: [f32; 4]) -> Vec<u8> {
    let mut header = r#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#.to_string();
    while !(header.len() + 8).is_multiple_of(8) {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

struct Upstream {
    _dir: tempfile::TempDir,
    server: Server,
    alice: String,
    /// `main` before the second commit (tagged `v1`), and after.
    v1: String,
    main: String,
    weights_v1: Vec<u8>,
    weights_main: Vec<u8>,
    config: Vec<u8>,
}

fn lfs_line(path: &str, oid: &str, size: usize) -> Value {
    json!({"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": size}})
}

/// An upstream hub with `alice/base` (two commits, the first tagged `v1`), a public
/// `alice/taken` and a private `alice/secret`.
fn upstream() -> Upstream {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("up");
    let alice = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    for (name, private) in [("base", false), ("taken", false), ("secret", true)] {
        http.create(&alice, &format!("alice/{name}"), private);
    }
    let config = br#"{"architectures": ["TinyNet"], "model_type": "tiny"}"#.to_vec();
    let card = b"---\nlicense: mit\npipeline_tag: image-classification\n---\n# base\n".to_vec();
    let weights_v1 = safetensors([1.0, 2.0, 3.0, 4.0]);
    let oid = http.lfs_upload(&alice, "alice/base", &weights_v1);
    let r = http.commit(
        &alice,
        "alice/base",
        &[("config.json", &config), ("README.md", &card)],
        &[lfs_line("model.safetensors", &oid, weights_v1.len())],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v1 = http.head_commit(&alice, "alice/base");
    let r = http.post(
        "/api/models/alice/base/tag/main",
        &alice,
        &json!({"tag": "v1"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let weights_main = safetensors([5.0, 6.0, 7.0, 8.0]);
    let oid = http.lfs_upload(&alice, "alice/base", &weights_main);
    let r = http.commit(
        &alice,
        "alice/base",
        &[],
        &[lfs_line("model.safetensors", &oid, weights_main.len())],
    );
    assert_eq!(r.status, 200);
    let main = http.head_commit(&alice, "alice/base");
    let r = http.commit(&alice, "alice/secret", &[("secret.txt", b"hush")], &[]);
    assert_eq!(r.status, 200);
    Upstream {
        _dir: dir,
        server,
        alice,
        v1,
        main,
        weights_v1,
        weights_main,
        config,
    }
}

/// `zoo download` against `endpoint` into `cache`; the snapshot folder.
fn download(endpoint: &str, cache: &Path, token: Option<&str>, spec: &str) -> Output {
    let mut c = Command::new(ZOO);
    c.args(["download", spec])
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_CACHE", cache)
        .env("HF_HOME", cache.join("home"))
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE");
    if let Some(t) = token {
        c.env("HF_TOKEN", t);
    }
    c.output().unwrap()
}

fn snapshot(out: &Output) -> PathBuf {
    PathBuf::from(ok(out).trim())
}

fn blob_count(data: &Path) -> usize {
    fn walk(p: &Path) -> usize {
        std::fs::read_dir(p).map_or(0, |d| {
            d.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    walk(&data.join("blobs"))
}

#[test]
fn mirror_fetches_on_first_request_and_serves_with_the_upstream_stopped_issue_14() {
    let mut up = upstream();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mirror");
    let local_alice = user(&data, "alice", "write");
    let mirror = Server::start(
        &data,
        &["--upstream", &up.server.url, "--upstream-refresh", "0"],
        &[],
    );
    assert!(mirror.log.lock().unwrap().contains("mirroring"));
    let http = Http::new(&mirror.url);
    let cache = dir.path().join("cache");

    // First request: fetched, with the upstream's commit id, byte-identical.
    let snap = snapshot(&download(&mirror.url, &cache, None, "alice/base"));
    assert!(snap.ends_with(&up.main), "{snap:?}");
    assert_eq!(
        std::fs::read(snap.join("model.safetensors")).unwrap(),
        up.weights_main
    );
    assert_eq!(std::fs::read(snap.join("config.json")).unwrap(), up.config);
    // The tag, and a commit id, pinned.
    let snap = snapshot(&download(&mirror.url, &cache, None, "alice/base@v1"));
    assert!(snap.ends_with(&up.v1), "{snap:?}");
    assert_eq!(
        std::fs::read(snap.join("model.safetensors")).unwrap(),
        up.weights_v1
    );
    let info = http.get("/api/models/alice/base", None, None).json();
    assert_eq!(info["sha"], json!(up.main));
    // Stored like the hub's own: scanned, indexed, searchable, history from the upstream.
    let weights = info["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["rfilename"] == "model.safetensors")
        .unwrap()
        .clone();
    assert_eq!(weights["security"]["verdict"], json!("safe"), "{weights}");
    assert_eq!(info["safetensors"]["total"], json!(4), "{info}");
    let found = http
        .get("/api/models?search=base&filter=license:mit", None, None)
        .json();
    assert!(
        found
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "alice/base"),
        "{found}"
    );
    let refs = http.get("/api/models/alice/base/refs", None, None).json();
    assert_eq!(refs["tags"][0]["targetCommit"], json!(up.v1), "{refs}");
    let commits = http
        .get("/api/models/alice/base/commits/main", None, None)
        .json();
    assert_eq!(commits[0]["id"], json!(up.main));
    assert_eq!(commits[0]["title"], json!("test commit"), "{commits}");

    // The upstream's private repository: not without a token.
    let r = http.get("/api/models/alice/secret", Some(&local_alice), None);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-error-code"), Some("RepoNotFound"));
    // Nothing upstream: 404 as for any missing repository.
    let r = http.get("/api/models/alice/nothing", None, None);
    assert_eq!(r.header("x-error-code"), Some("RepoNotFound"));

    // A mirror is read-only; a local repository may not take an upstream name.
    let r = http.commit(&local_alice, "alice/base", &[("x.txt", b"x")], &[]);
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("mirror"));
    let r = http.post(
        "/api/repos/create",
        &local_alice,
        &json!({"name": "alice/taken"}),
    );
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("upstream"));
    let r = http.get(
        "/alice/base.git/info/refs?service=git-upload-pack",
        None,
        None,
    );
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("git clone is not served for mirrors"));
    http.create(&local_alice, "alice/mine", false);
    let r = http.commit(&local_alice, "alice/mine", &[("x.txt", b"x")], &[]);
    assert_eq!(r.status, 200);

    // The upstream stops: what was fetched is still served, by branch, tag and commit id.
    up.server.kill9();
    let cache2 = dir.path().join("cache2");
    for (spec, commit, weights) in [
        ("alice/base", &up.main, &up.weights_main),
        ("alice/base@v1", &up.v1, &up.weights_v1),
        (&*format!("alice/base@{}", up.v1), &up.v1, &up.weights_v1),
    ] {
        let snap = snapshot(&download(&mirror.url, &cache2, None, spec));
        assert!(snap.ends_with(commit), "{spec}: {snap:?}");
        assert_eq!(
            &std::fs::read(snap.join("model.safetensors")).unwrap(),
            weights
        );
    }
    // What was never fetched cannot be: a clear 502 naming the upstream.
    let r = http.get("/api/models/alice/taken", None, None);
    assert_eq!(r.status, 502);
    assert!(
        String::from_utf8_lossy(&r.body).contains(&up.server.url),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // Its own repositories are untouched by the upstream's absence.
    let r = http.get("/api/models/alice/mine", Some(&local_alice), None);
    assert_eq!(r.status, 200);
}

#[test]
fn private_upstream_repositories_need_the_token_and_stay_private_issue_14() {
    let up = upstream();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mirror");
    let local_alice = user(&data, "alice", "read");
    let local_bob = user(&data, "bob", "read");
    let mirror = Server::start(
        &data,
        &["--upstream", &up.server.url, "--upstream-token", &up.alice],
        &[],
    );
    let http = Http::new(&mirror.url);
    // Fetched with the mirror's token, kept private: its owner sees it, nobody else.
    let r = http.get("/api/models/alice/secret", Some(&local_alice), None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["private"], json!(true));
    let cache = dir.path().join("cache");
    let snap = snapshot(&download(
        &mirror.url,
        &cache,
        Some(&local_alice),
        "alice/secret",
    ));
    assert_eq!(std::fs::read(snap.join("secret.txt")).unwrap(), b"hush");
    for token in [None, Some(local_bob.as_str())] {
        let r = http.get("/api/models/alice/secret", token, None);
        assert_eq!(r.header("x-error-code"), Some("RepoNotFound"));
    }
    let listed = http.get("/api/models?author=alice", None, None).json();
    assert!(
        !listed.to_string().contains("secret"),
        "a private mirror is listed: {listed}"
    );
}

#[test]
fn a_mirrored_file_that_fails_its_hash_is_never_stored_issue_14() {
    let up = upstream();
    let proxy = Proxy::start(&up.server.url);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mirror");
    let mirror = Server::start(&data, &["--upstream", &proxy.url], &[]);
    let http = Http::new(&mirror.url);
    // Every file download from the upstream arrives with a bit flipped.
    proxy.set(Faults {
        flip_at: Some(40),
        ..Faults::default()
    });
    let r = http.get("/api/models/alice/base", None, None);
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert!(
        body.contains("hash") && body.contains("not stored"),
        "{body}"
    );
    assert_eq!(blob_count(&data), 0, "a corrupt file was stored");
    // Nothing half-mirrored is visible: the repository is still missing here, and once
    // the transfer is sound it is fetched whole. A cut connection is resumed by a retry.
    proxy.set(Faults {
        cut_at: Some(100),
        ..Faults::default()
    });
    let r = http.get("/api/models/alice/base", None, None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["sha"], json!(up.main));
    let r = http.get("/alice/base/resolve/main/model.safetensors", None, None);
    assert_eq!(r.body, up.weights_main);
}
