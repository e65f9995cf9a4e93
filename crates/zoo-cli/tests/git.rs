//! git over smart HTTP against a real `zoo serve` (issue 12), with Debian's `git` and
//! `git-lfs` as the clients: clone (LFS content checked out), push (a hub commit whose id is
//! the pushed commit's), branches, data sets, private repositories, and pushes that must be
//! refused with nothing committed.

use std::path::Path;
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

mod common;
use common::*;

/// `git` with a private HOME (git-lfs installed there), no prompts, no system config.
fn git(home: &Path, cwd: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Alice")
        .env("GIT_AUTHOR_EMAIL", "alice@example.com")
        .env("GIT_COMMITTER_NAME", "Alice")
        .env("GIT_COMMITTER_EMAIL", "alice@example.com")
        .output()
        .unwrap()
}

fn ok(home: &Path, cwd: &Path, args: &[&str]) -> String {
    let out = git(home, cwd, args);
    assert!(
        out.status.success(),
        "git {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn sha256_file(p: &Path) -> String {
    hex(&Sha256::digest(std::fs::read(p).unwrap()))
}

#[test]
fn git_clone_and_push_agree_with_the_api_issue_12() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    ok(&home, dir.path(), &["lfs", "install"]);
    let auth_url = |path: &str| {
        server
            .url
            .replacen("http://", &format!("http://alice:{token}@"), 1)
            + path
    };

    // A model made through the API: a small file and an LFS file.
    http.create(&token, "alice/model", false);
    let weights: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let oid = http.lfs_upload(&token, "alice/model", &weights);
    let r = http.commit(
        &token,
        "alice/model",
        &[("README.md", b"# model\n")],
        &[json!({"key": "lfsFile", "value": {"path": "weights.bin", "algo": "sha256", "oid": oid, "size": weights.len()}})],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let api_sha = http.head_commit(&token, "alice/model");

    // Clone: the same commit, the LFS file's content checked out.
    let clone = dir.path().join("clone");
    ok(
        &home,
        dir.path(),
        &["clone", &auth_url("/alice/model"), clone.to_str().unwrap()],
    );
    assert_eq!(ok(&home, &clone, &["rev-parse", "HEAD"]), api_sha);
    assert_eq!(sha256_file(&clone.join("weights.bin")), oid);
    assert_eq!(
        std::fs::read(clone.join("README.md")).unwrap(),
        b"# model\n"
    );
    assert!(
        std::fs::read_to_string(clone.join(".gitattributes"))
            .unwrap()
            .contains("weights.bin filter=lfs")
    );
    // `.git` in the URL works too.
    let clone2 = dir.path().join("clone2");
    ok(
        &home,
        dir.path(),
        &[
            "clone",
            &auth_url("/alice/model.git"),
            clone2.to_str().unwrap(),
        ],
    );

    // Push: a new LFS-tracked file and a small one.
    ok(&home, &clone, &["lfs", "track", "*.dat"]);
    let big: Vec<u8> = (0..1_500_000u32).map(|i| (i * 13 % 253) as u8).collect();
    std::fs::write(clone.join("big.dat"), &big).unwrap();
    std::fs::write(clone.join("notes.txt"), "pushed with git\n").unwrap();
    ok(&home, &clone, &["add", "-A"]);
    ok(
        &home,
        &clone,
        &["commit", "-q", "-m", "Add data", "-m", "from git"],
    );
    ok(&home, &clone, &["push", "-q", "origin", "main"]);
    let pushed = ok(&home, &clone, &["rev-parse", "HEAD"]);
    let info = http
        .get("/api/models/alice/model", Some(&token), None)
        .json();
    assert_eq!(info["sha"], pushed.as_str(), "git log and the API agree");
    let siblings: Vec<(String, bool)> = info["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["rfilename"].as_str().unwrap().to_string(),
                s.get("lfs").is_some(),
            )
        })
        .collect();
    for (name, lfs) in [
        ("big.dat", true),
        ("notes.txt", false),
        ("weights.bin", true),
    ] {
        assert!(
            siblings.contains(&(name.to_string(), lfs)),
            "{name}: {siblings:?}"
        );
    }
    let got = http.get("/alice/model/resolve/main/big.dat", None, None);
    assert_eq!(got.body, big);
    let commits = http
        .get("/api/models/alice/model/commits/main", Some(&token), None)
        .json();
    assert_eq!(commits[0]["title"], "Add data");
    assert_eq!(commits[0]["message"], "from git");

    // An API commit after the push, then fetch: the histories stay one.
    let r = http.commit(
        &token,
        "alice/model",
        &[("api.txt", b"from the API\n")],
        &[],
    );
    assert_eq!(r.status, 200);
    ok(&home, &clone, &["pull", "-q", "--ff-only"]);
    assert_eq!(
        ok(&home, &clone, &["rev-parse", "HEAD"]),
        http.head_commit(&token, "alice/model")
    );
    assert_eq!(ok(&home, &clone, &["rev-parse", "HEAD~1"]), pushed);

    // A branch pushed over git shows in the API.
    ok(
        &home,
        &clone,
        &["push", "-q", "origin", "HEAD:refs/heads/dev"],
    );
    let refs = http
        .get("/api/models/alice/model/refs", Some(&token), None)
        .json();
    assert!(
        refs["branches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "dev"),
        "{refs}"
    );

    // Refused pushes commit nothing: a path with `..`, a dangerous pickle, a force push.
    let head = http.head_commit(&token, "alice/model");
    let evil_tree = {
        let b = Command::new("sh")
            .arg("-c")
            .arg("printf 'x\\n' | git hash-object -w --stdin")
            .current_dir(&clone)
            .env("HOME", &home)
            .output()
            .unwrap();
        let b = String::from_utf8_lossy(&b.stdout).trim().to_string();
        let t = Command::new("sh")
            .arg("-c")
            .arg(format!("printf '100644 blob {b}\\t..\\n' | git mktree"))
            .current_dir(&clone)
            .env("HOME", &home)
            .output()
            .unwrap();
        String::from_utf8_lossy(&t.stdout).trim().to_string()
    };
    let evil = ok(
        &home,
        &clone,
        &["commit-tree", &evil_tree, "-p", "HEAD", "-m", "dotdot"],
    );
    let out = git(
        &home,
        &clone,
        &["push", "origin", &format!("{evil}:refs/heads/main")],
    );
    assert!(!out.status.success(), "a `..` path was accepted");
    assert_eq!(http.head_commit(&token, "alice/model"), head);

    std::fs::write(clone.join("evil.pkl"), b"cos\nsystem\n(S'echo pwned'\ntR.").unwrap();
    ok(&home, &clone, &["add", "evil.pkl"]);
    ok(&home, &clone, &["commit", "-q", "-m", "evil"]);
    let out = git(&home, &clone, &["push", "origin", "main"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("dangerous pickle"),
        "{err}"
    );
    assert_eq!(http.head_commit(&token, "alice/model"), head);
    ok(&home, &clone, &["reset", "-q", "--hard", "HEAD~1"]);
    ok(
        &home,
        &clone,
        &["commit", "-q", "--allow-empty", "-m", "rewritten"],
    );
    ok(&home, &clone, &["reset", "-q", "--hard", "HEAD~2"]);
    ok(
        &home,
        &clone,
        &["commit", "-q", "--allow-empty", "-m", "diverged"],
    );
    let out = git(&home, &clone, &["push", "--force", "origin", "main"]);
    assert!(!out.status.success(), "a force push was accepted");
    assert_eq!(http.head_commit(&token, "alice/model"), head);

    // A private repository: no credentials, no clone; with them, a clone.
    http.create(&token, "alice/secret", true);
    let out = git(
        &home,
        dir.path(),
        &["clone", &format!("{}/alice/secret", server.url), "nope"],
    );
    assert!(!out.status.success());
    ok(
        &home,
        dir.path(),
        &["clone", &auth_url("/alice/secret"), "secret"],
    );

    // A data set.
    let r = http.post(
        "/api/repos/create",
        &token,
        &json!({"name": "alice/table", "type": "dataset"}),
    );
    assert_eq!(r.status, 200);
    let ds = dir.path().join("ds");
    ok(
        &home,
        dir.path(),
        &[
            "clone",
            &auth_url("/datasets/alice/table"),
            ds.to_str().unwrap(),
        ],
    );
    std::fs::write(ds.join("train.csv"), "text,label\nhi,1\n").unwrap();
    ok(&home, &ds, &["add", "-A"]);
    ok(&home, &ds, &["commit", "-q", "-m", "data"]);
    ok(&home, &ds, &["push", "-q", "origin", "main"]);
    let got = http.get(
        "/datasets/alice/table/resolve/main/train.csv",
        Some(&token),
        None,
    );
    assert_eq!(got.body, b"text,label\nhi,1\n");
}

/// Issue 12: git through a hub behind a path prefix (`ZOO_PUBLIC_URL=http://host/hub`), the
/// prefix in every path.
#[test]
fn git_works_behind_a_path_prefix_issue_12() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = user(&data, "alice", "write");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let public = format!("http://{addr}/hub");
    let _server = Server::start(&data, &["--addr", &addr], &[("ZOO_PUBLIC_URL", &public)]);
    let http = Http::new(&public);
    http.create(&token, "alice/p", false);
    let weights: Vec<u8> = (0..2_000_000u32).map(|i| (i % 241) as u8).collect();
    let oid = http.lfs_upload(&token, "alice/p", &weights);
    let r = http.commit(
        &token,
        "alice/p",
        &[("a.txt", b"a\n")],
        &[json!({"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": weights.len()}})],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    ok(&home, dir.path(), &["lfs", "install"]);
    let url = format!("http://alice:{token}@{addr}/hub/alice/p");
    let clone = dir.path().join("c");
    ok(&home, dir.path(), &["clone", &url, clone.to_str().unwrap()]);
    assert_eq!(sha256_file(&clone.join("w.bin")), oid);
    std::fs::write(clone.join("b.txt"), "b\n").unwrap();
    ok(&home, &clone, &["add", "-A"]);
    ok(&home, &clone, &["commit", "-q", "-m", "b"]);
    ok(&home, &clone, &["push", "-q"]);
    assert_eq!(
        http.head_commit(&token, "alice/p"),
        ok(&home, &clone, &["rev-parse", "HEAD"])
    );
}
