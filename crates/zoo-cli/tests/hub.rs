//! `zoo serve` as clients see it: a real server on 127.0.0.1, the unmodified Python
//! `huggingface_hub`, the Rust `hf-hub` crate, and raw HTTP for the edge cases.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

mod common;
use common::*;

/// The Python client's whole surface, with large files through classic LFS
/// (`HF_HUB_DISABLE_XET=1`, as git-lfs, older clients and file-object uploads use it; the Xet
/// path has its own test below).
/// Runs `tests/hub/{script}` with the Python of `ZOO_PYTHON` against `server`, with a private
/// cache and home under `dir` and `env` added; asserts it exits 0 and prints `done`; returns
/// its output.
fn python_checks(
    script: &str,
    server: &Server,
    dir: &Path,
    env: &[(&str, &std::ffi::OsStr)],
    done: &str,
) -> String {
    let python = std::env::var("ZOO_PYTHON")
        .expect("ZOO_PYTHON: a python with huggingface_hub==1.33.0 (scripts/test.sh sets it)");
    let mut cmd = Command::new(python);
    cmd.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/hub")
            .join(script),
    )
    .env_remove("HF_HUB_DISABLE_XET")
    .env("HF_ENDPOINT", &server.url)
    .env("HF_HUB_CACHE", dir.join("cache"))
    .env("HF_HOME", dir.join("hf-home"))
    .env("HF_DATASETS_CACHE", dir.join("datasets"))
    .env("HF_HUB_DISABLE_TELEMETRY", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(done), "{stdout}");
    stdout
}

#[test]
fn python_huggingface_hub_works_unmodified() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    let bob = user(&data, "bob", "write");
    let server = Server::start(&data, &[], &[]);
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let fixtures = real_fixtures();
    python_checks(
        "compat.py",
        &server,
        dir.path(),
        &[
            ("HF_HUB_DISABLE_XET", "1".as_ref()),
            ("ZOO_TOKEN_ALICE", alice.as_ref()),
            ("ZOO_TOKEN_BOB", bob.as_ref()),
            ("ZOO_FIXTURES", fixtures.as_os_str()),
            ("ZOO_WORK", work.as_os_str()),
        ],
        "all python checks passed",
    );
    // Tokens never reach the server's output.
    let log = server.log.lock().unwrap().clone();
    assert!(
        !log.contains(&alice) && !log.contains(&bob),
        "a token appeared in the log"
    );
}

/// Issue 12: uploads through Xet, as huggingface_hub >= 1.20 sends them whenever hf_xet is
/// installed (the default): no environment variable.
#[test]
fn python_uploads_through_xet_with_no_setting_issue_12() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let out = python_checks(
        "xet.py",
        &server,
        dir.path(),
        &[
            ("ZOO_TOKEN_ALICE", alice.as_ref()),
            ("ZOO_DATA", data.as_os_str()),
            ("ZOO_WORK", work.as_os_str()),
        ],
        "all xet checks passed",
    );
    eprintln!("{out}");
}

/// Issue 12: data-set repositories load with `datasets` (CSV, JSON Lines, Parquet, streaming
/// too) and answer the error codes the Hugging Face libraries branch on.
#[test]
fn datasets_load_from_dataset_repositories_issue_12() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    python_checks(
        "datasets_load.py",
        &server,
        dir.path(),
        &[("ZOO_TOKEN_ALICE", alice.as_ref())],
        "all datasets checks passed",
    );
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `tests/hub/prefix.py` against `endpoint` (ending in `/hub`), with Xet and with
/// classic LFS.
fn prefix_checks(python: &str, endpoint: &str, token: &str, work: &Path, repo: &str) {
    for (i, xet) in [true, false].into_iter().enumerate() {
        let dir = work.join(format!("{repo}-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new(python);
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hub/prefix.py"))
            .env("HF_ENDPOINT", endpoint)
            .env("HF_HUB_CACHE", dir.join("cache"))
            .env("HF_HOME", dir.join("hf-home"))
            .env("HF_HUB_DISABLE_TELEMETRY", "1")
            .env("ZOO_TOKEN_ALICE", token)
            .env("ZOO_WORK", &dir)
            .env("ZOO_REPO", format!("alice/{repo}-{i}"));
        if xet {
            cmd.env_remove("HF_HUB_DISABLE_XET");
        } else {
            cmd.env("HF_HUB_DISABLE_XET", "1");
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("all prefix checks passed"),
            "{endpoint} (xet: {xet}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Issue 12: a hub behind a path prefix (`ZOO_PUBLIC_URL=http://host/hub`), reached directly
/// with the prefix in every path, and through a real nginx that strips it.
#[test]
fn a_hub_behind_a_path_prefix_works_with_the_python_client_issue_12() {
    let python = std::env::var("ZOO_PYTHON")
        .expect("ZOO_PYTHON: a python with huggingface_hub==1.33.0 (scripts/test.sh sets it)");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    // Directly: the hub itself at http://127.0.0.1:P/hub.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let public = format!("http://{addr}/hub");
    let server = Server::start(&data, &["--addr", &addr], &[("ZOO_PUBLIC_URL", &public)]);
    prefix_checks(&python, &public, &alice, dir.path(), "direct");
    drop(server);
    // Through nginx, which strips the prefix.
    let nginx = which("nginx").expect("nginx (Debian's nginx-light; .ci/run installs it)");
    let (hub_port, proxy_port) = (free_port(), free_port());
    let public = format!("http://127.0.0.1:{proxy_port}/hub");
    let _server = Server::start(
        &data,
        &["--addr", &format!("127.0.0.1:{hub_port}")],
        &[("ZOO_PUBLIC_URL", &public)],
    );
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off; master_process off; pid {pid}; error_log {log};\n\
             events {{}}\n\
             http {{ access_log off; client_body_temp_path {tmp}; proxy_temp_path {tmp};\n\
             server {{ listen 127.0.0.1:{proxy_port};\n\
             location /hub/ {{ proxy_pass http://127.0.0.1:{hub_port}/; client_max_body_size 0;\n\
             proxy_request_buffering off; proxy_buffering off; proxy_http_version 1.1; proxy_set_header Host $host:$server_port; }} }} }}\n",
            pid = dir.path().join("nginx.pid").display(),
            log = dir.path().join("nginx.err").display(),
            tmp = dir.path().display(),
        ),
    )
    .unwrap();
    let mut proxy = Command::new(nginx)
        .args(["-p", &dir.path().display().to_string(), "-c"])
        .arg(&conf)
        .spawn()
        .unwrap();
    wait_for_port(proxy_port);
    prefix_checks(&python, &public, &alice, dir.path(), "proxied");
    let _ = proxy.kill();
    let _ = proxy.wait();
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    [
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .map(|d| Path::new(d).join(name))
    .find(|p| p.exists())
}

fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("nothing listens on port {port}");
}

#[test]
fn the_rust_hf_hub_crate_downloads_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    http.create(&alice, "alice/rs", false);
    let config = br#"{"architecture": "resnet18", "num_classes": 2}"#;
    assert_eq!(
        http.commit(&alice, "alice/rs", &[("config.json", config)], &[])
            .status,
        200
    );
    let weights = std::fs::read(fixtures().join("views.expected.safetensors")).unwrap();
    let oid = http.lfs_upload(&alice, "alice/rs", &weights);
    let lfs = json!({"key": "lfsFile", "value": {"path": "model.safetensors", "algo": "sha256", "oid": oid, "size": weights.len()}});
    assert_eq!(http.commit(&alice, "alice/rs", &[], &[lfs]).status, 200);
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_endpoint(server.url.clone())
        .with_cache_dir(dir.path().join("cache"))
        .with_progress(false)
        .build()
        .unwrap();
    let repo = api.model("alice/rs".to_string());
    assert_eq!(
        std::fs::read(repo.get("config.json").unwrap()).unwrap(),
        config
    );
    assert_eq!(
        std::fs::read(repo.get("model.safetensors").unwrap()).unwrap(),
        weights
    );
    assert_eq!(
        repo.info().unwrap().sha,
        http.head_commit(&alice, "alice/rs")
    );
}

#[test]
fn private_repos_answer_exactly_like_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    let bob = user(&data, "bob", "read");
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    http.create(&alice, "alice/secret", true);
    assert_eq!(
        http.commit(&alice, "alice/secret", &[("a.txt", b"a")], &[])
            .status,
        200
    );
    for token in [None, Some(bob.as_str())] {
        for (private, missing) in [
            ("/api/models/alice/secret", "/api/models/alice/nothing"),
            (
                "/api/models/alice/secret/tree/main",
                "/api/models/alice/nothing/tree/main",
            ),
            (
                "/alice/secret/resolve/main/a.txt",
                "/alice/nothing/resolve/main/a.txt",
            ),
        ] {
            let (a, b) = (
                http.get(private, token, None),
                http.get(missing, token, None),
            );
            assert_eq!(a.status, 401);
            assert_eq!(
                (a.status, &a.body, a.header("x-error-code")),
                (b.status, &b.body, b.header("x-error-code")),
                "{private}"
            );
            assert_eq!(a.header("x-error-code"), Some("RepoNotFound"));
        }
    }
    assert_eq!(
        http.get("/alice/secret/resolve/main/a.txt", Some(&alice), None)
            .body,
        b"a"
    );
    // An unknown token is an error of its own, not anonymous access.
    assert_eq!(
        http.get("/api/models/alice/secret", Some("zoo_not_a_token"), None)
            .status,
        401
    );
}

#[test]
fn odd_paths_and_names_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    http.create(&alice, "alice/p", false);
    let head = http.head_commit(&alice, "alice/p");
    let long = "a".repeat(2000);
    for bad in [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a\\b",
        "a\0b",
        "a//b",
        "./a",
        ".git/config",
        long.as_str(),
        "",
    ] {
        let r = http.commit(&alice, "alice/p", &[(bad, b"x")], &[]);
        assert_eq!(
            r.status,
            400,
            "{bad:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // One bad path in an otherwise fine commit: all of it is refused.
    let r = http.commit(
        &alice,
        "alice/p",
        &[("fine.txt", b"x"), ("../evil", b"y")],
        &[],
    );
    assert_eq!(r.status, 400);
    assert_eq!(http.head_commit(&alice, "alice/p"), head);
    for bad in [
        "../x",
        "a b",
        "-x",
        "x".repeat(97).as_str(),
        "x--y",
        "y.git",
    ] {
        let r = http.post(
            "/api/repos/create",
            &alice,
            &json!({"name": format!("alice/{bad}")}),
        );
        assert_eq!(r.status, 400, "{bad}");
    }
    let r = http.post("/api/repos/create", &alice, &json!({"name": "bob/x"}));
    assert_eq!(r.status, 403);
}

#[test]
fn uploads_are_verified_and_nothing_partial_is_visible() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    http.create(&alice, "alice/v", false);
    let good = b"the real bytes".repeat(1000);
    let oid = hex(&Sha256::digest(&good));
    let batch = http.post(
        "/alice/v.git/info/lfs/objects/batch",
        &alice,
        &json!({"operation": "upload", "objects": [{"oid": oid, "size": good.len()}]}),
    );
    let href = batch.json()["objects"][0]["actions"]["upload"]["href"]
        .as_str()
        .unwrap()
        .to_string();
    // Same size, different bytes: refused, nothing stored.
    let mut evil = good.clone();
    evil[7] ^= 1;
    let r = http.put(&href, &evil);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let lfs = json!({"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": good.len()}});
    assert_eq!(
        http.commit(&alice, "alice/v", &[], std::slice::from_ref(&lfs))
            .status,
        400
    );
    let again = http.post(
        "/alice/v.git/info/lfs/objects/batch",
        &alice,
        &json!({"operation": "upload", "objects": [{"oid": oid, "size": good.len()}]}),
    );
    assert!(
        again.json()["objects"][0]["actions"]["upload"].is_object(),
        "the bad upload left a blob"
    );
    assert_eq!(uploads_in(&data.join("tmp")), 0);
    // A tampered link is refused.
    assert_eq!(http.put(&href.replace("sig=", "sig=0"), &good).status, 403);
    // The right bytes go through, and then the commit does.
    assert_eq!(http.put(&href, &good).status, 200);
    assert_eq!(http.commit(&alice, "alice/v", &[], &[lfs]).status, 200);
    assert_eq!(
        http.get("/alice/v/resolve/main/w.bin", None, None).body,
        good
    );
}

#[test]
fn weights_are_validated_and_pickles_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    let mut server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    http.create(&alice, "alice/w", false);
    let upload = |http: &Http, path: &str, bytes: &[u8]| {
        let oid = http.lfs_upload(&alice, "alice/w", bytes);
        let lfs = json!({"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": bytes.len()}});
        http.commit(&alice, "alice/w", &[], &[lfs])
    };
    // Invalid safetensors: refused, with the validator's reason.
    let mut broken = std::fs::read(fixtures().join("views.expected.safetensors")).unwrap();
    broken.extend_from_slice(b"trailing");
    let r = upload(&http, "model.safetensors", &broken);
    assert_eq!(r.status, 400);
    assert!(
        String::from_utf8_lossy(&r.body).contains("trailing bytes"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // A dangerous pickle: refused by default.
    let evil = std::fs::read(fixtures().join("hostile/torch_zip_payload.pt")).unwrap();
    let r = upload(&http, "pytorch_model.bin", &evil);
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("posix.system"));
    // A state dict pickle: accepted, its verdict in the listing; parameters counted.
    let good = std::fs::read(fixtures().join("mobilenet_v2_tiny.legacy.pt")).unwrap();
    assert_eq!(upload(&http, "pytorch_model.bin", &good).status, 200);
    let tree = http.get("/api/models/alice/w/tree/main", None, None).json();
    let tree = tree
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "pytorch_model.bin")
        .unwrap();
    assert_eq!(tree["securityFileStatus"]["status"], "safe");
    assert_eq!(
        tree["securityFileStatus"]["pickleImportScan"]["imports"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let info = http.get("/api/models/alice/w", None, None).json();
    let inspected = Command::new(ZOO)
        .args(["inspect", "--json"])
        .arg(fixtures().join("mobilenet_v2_tiny.legacy.pt"))
        .output()
        .unwrap();
    let inspected: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(
        info["safetensors"]["total"], inspected["parameters"],
        "parameters counted from the stored weights"
    );
    // With --allow-dangerous-pickles the same file is accepted and flagged.
    server.kill9();
    let server = Server::start(&data, &["--allow-dangerous-pickles"], &[]);
    let http = Http::new(&server.url);
    assert_eq!(upload(&http, "evil.bin", &evil).status, 200);
    let info = http.get("/api/models/alice/w", None, None).json();
    let evil_sib = info["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["rfilename"] == "evil.bin")
        .unwrap();
    assert_eq!(evil_sib["security"]["verdict"], "dangerous");
    assert_eq!(
        info["securityRepoStatus"]["filesWithIssues"][0]["path"],
        "evil.bin"
    );
    assert!(!Path::new("/tmp/zoo-canary-torch_zip_payload").exists());
}

#[test]
fn resolve_speaks_ranges_etags_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    http.create(&alice, "alice/r", false);
    let body: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    assert_eq!(
        http.commit(&alice, "alice/r", &[("data/x.txt", &body)], &[])
            .status,
        200
    );
    let sha = http.head_commit(&alice, "alice/r");
    let head = http.head("/alice/r/resolve/main/data/x.txt");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("x-repo-commit"), Some(sha.as_str()));
    assert_eq!(head.header("content-length"), Some("1000"));
    let mut git = sha1_smol_like(&body);
    git.insert(0, '"');
    git.push('"');
    assert_eq!(
        head.header("etag"),
        Some(git.as_str()),
        "ETag is the git blob id for regular files"
    );
    assert!(head.header("x-xet-hash").is_none());
    let r = http.get(
        "/alice/r/resolve/main/data/x.txt",
        None,
        Some("bytes=10-19"),
    );
    assert_eq!(
        (r.status, r.header("content-range")),
        (206, Some("bytes 10-19/1000"))
    );
    assert_eq!(r.body, &body[10..20]);
    let r = http.get("/alice/r/resolve/main/data/x.txt", None, Some("bytes=0-0"));
    assert_eq!(
        (r.status, r.header("content-range")),
        (206, Some("bytes 0-0/1000")),
        "hf-hub's probe"
    );
    let r = http.get("/alice/r/resolve/main/data/x.txt", None, Some("bytes=990-"));
    assert_eq!(r.body, &body[990..]);
    let r = http.get("/alice/r/resolve/main/data/x.txt", None, Some("bytes=-5"));
    assert_eq!(r.body, &body[995..]);
    assert_eq!(
        http.get(
            "/alice/r/resolve/main/data/x.txt",
            None,
            Some("bytes=5000-")
        )
        .status,
        416
    );
    let missing = http.get("/alice/r/resolve/main/nope.txt", None, None);
    assert_eq!(
        (missing.status, missing.header("x-error-code")),
        (404, Some("EntryNotFound"))
    );
    assert_eq!(missing.header("x-repo-commit"), Some(sha.as_str()));
    let r = http.get("/alice/r/resolve/nobranch/data/x.txt", None, None);
    assert_eq!(
        (r.status, r.header("x-error-code")),
        (404, Some("RevisionNotFound"))
    );
    // Pinned by commit id, and a branch name with a slash, URL-quoted.
    assert_eq!(
        http.get(&format!("/alice/r/resolve/{sha}/data/x.txt"), None, None)
            .body,
        body
    );
    let r = http.post(
        "/api/models/alice/r/branch/feature%2Fone",
        &alice,
        &json!({}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        http.get("/alice/r/resolve/feature%2Fone/data/x.txt", None, None)
            .body,
        body
    );
}

/// git's blob id, computed independently of the server.
fn sha1_smol_like(bytes: &[u8]) -> String {
    let out = Command::new("git")
        .args(["hash-object", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = out;
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let o = child.wait_with_output().unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

#[test]
fn search_filters_sorts_and_paginates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[("ZOO_PAGE_SIZE", "2")]);
    let http = Http::new(&server.url);
    let card = |top1: f64, license: &str, base: &str| {
        format!(
            "---\nlicense: {license}\npipeline_tag: image-classification\ndatasets: [imagenet-1k]\nbase_model: {base}\nmodel-index:\n- name: m\n  results:\n  - task: {{type: image-classification}}\n    dataset: {{type: imagenet-1k, name: ImageNet-1k}}\n    metrics: [{{type: accuracy, name: top-1, value: {top1}}}]\n---\n"
        )
    };
    let tiny = std::fs::read(fixtures().join("mobilenet_v2_tiny.expected.safetensors")).unwrap();
    let bert = std::fs::read(fixtures().join("bert_tiny.expected.safetensors")).unwrap();
    for (id, top1, weights, license) in [
        ("alice/a", 0.72, &tiny, "mit"),
        ("alice/b", 0.65, &bert, "mit"),
        ("alice/c", 0.80, &bert, "apache-2.0"),
    ] {
        http.create(&alice, id, false);
        let oid = http.lfs_upload(&alice, id, weights);
        let lfs = json!({"key": "lfsFile", "value": {"path": "model.safetensors", "algo": "sha256", "oid": oid, "size": weights.len()}});
        let r = http.commit(
            &alice,
            id,
            &[("README.md", card(top1, license, "alice/a").as_bytes())],
            &[lfs],
        );
        assert_eq!(r.status, 200);
    }
    let ids = |q: &str| -> Vec<String> {
        http.get(&format!("/api/models?{q}&limit=100"), None, None)
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    // image-classification models trained on imagenet-1k with top-1 ≥ 0.7, fewest parameters first
    let bert_params: i64 =
        http.get("/api/models/alice/b", None, None).json()["safetensors"]["total"]
            .as_i64()
            .unwrap();
    let tiny_params: i64 =
        http.get("/api/models/alice/a", None, None).json()["safetensors"]["total"]
            .as_i64()
            .unwrap();
    assert!(bert_params < tiny_params, "{bert_params} {tiny_params}");
    assert_eq!(
        ids(
            "pipeline_tag=image-classification&filter=dataset:imagenet-1k&filter=metric:top-1%3E%3D0.7&sort=params&direction=1"
        ),
        ["alice/c", "alice/a"]
    );
    assert_eq!(ids("sort=metric:top-1"), ["alice/c", "alice/a", "alice/b"]);
    assert_eq!(
        ids("sort=metric:top-1&direction=1"),
        ["alice/b", "alice/a", "alice/c"]
    );
    assert_eq!(ids("filter=license:apache-2.0"), ["alice/c"]);
    assert_eq!(
        ids("filter=base_model:alice/a"),
        ["alice/a", "alice/b", "alice/c"]
    );
    assert_eq!(
        ids(&format!("filter=params%3C{}", tiny_params)),
        ["alice/b", "alice/c"]
    );
    assert_eq!(http.get("/api/models?sort=bogus", None, None).status, 400);
    // Pagination follows the Link header.
    let first = http.get("/api/models", None, None);
    assert_eq!(first.json().as_array().unwrap().len(), 2);
    let link = first.header("link").unwrap().to_string();
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    let second = Http::reply(http.agent.get(next).call());
    assert_eq!(second.json().as_array().unwrap().len(), 1);
    assert!(second.header("link").is_none());
    // Lineage both ways: children are listed on the base model.
    let info = http.get("/api/models/alice/a", None, None).json();
    assert_eq!(
        info["zoo"]["children"],
        json!(["alice/a", "alice/b", "alice/c"])
    );
}

#[test]
fn tree_lists_recursively_with_pagination() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    http.create(&alice, "alice/t", false);
    let files: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| (format!("d/e/f{i}.txt"), vec![b'x'; i]))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    assert_eq!(http.commit(&alice, "alice/t", &refs, &[]).status, 200);
    let top = http.get("/api/models/alice/t/tree/main", None, None).json();
    assert_eq!(
        top,
        json!([{"type": "directory", "path": "d", "oid": top[0]["oid"], "size": 0}])
    );
    let all = http
        .get("/api/models/alice/t/tree/main?recursive=true", None, None)
        .json();
    assert_eq!(all.as_array().unwrap().len(), 7);
    let mut seen = 0;
    let mut next = Some(format!(
        "{}/api/models/alice/t/tree/main/d%2Fe?limit=2",
        server.url
    ));
    while let Some(url) = next {
        let r = Http::reply(http.agent.get(&url).call());
        seen += r.json().as_array().unwrap().len();
        next = r.header("link").map(|l| {
            l.trim_start_matches('<')
                .split('>')
                .next()
                .unwrap()
                .to_string()
        });
    }
    assert_eq!(seen, 5);
    let r = http.get("/api/models/alice/t/tree/main/nope", None, None);
    assert_eq!(r.header("x-error-code"), Some("EntryNotFound"));
}

/// Sends the head of a request and part of its body, then leaves the socket open.
fn half_request(addr: &str, head: &str, partial: &[u8]) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(partial).unwrap();
    s.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    s
}

#[test]
fn a_server_killed_mid_upload_or_mid_commit_restarts_intact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    let mut server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    http.create(&alice, "alice/k", false);
    assert_eq!(
        http.commit(&alice, "alice/k", &[("a.txt", b"before")], &[])
            .status,
        200
    );
    let head = http.head_commit(&alice, "alice/k");
    // An LFS upload cut by kill -9 after half its bytes.
    let big = vec![7u8; 4 << 20];
    let oid = hex(&Sha256::digest(&big));
    let batch = http.post(
        "/alice/k.git/info/lfs/objects/batch",
        &alice,
        &json!({"operation": "upload", "objects": [{"oid": oid, "size": big.len()}]}),
    );
    let href = batch.json()["objects"][0]["actions"]["upload"]["href"]
        .as_str()
        .unwrap()
        .to_string();
    let path = href.splitn(4, '/').nth(3).unwrap();
    let _upload = half_request(
        &server.addr(),
        &format!(
            "PUT /{path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            server.addr(),
            big.len()
        ),
        &big[..big.len() / 2],
    );
    // A commit cut by kill -9 in the middle of its body.
    let line = json!({"key": "file", "value": {"path": "b.txt", "content": base64::engine::general_purpose::STANDARD.encode(vec![b'z'; 1 << 20]), "encoding": "base64"}}).to_string();
    let body = format!(
        "{}\n{line}\n",
        json!({"key": "header", "value": {"summary": "cut"}})
    );
    let _commit = half_request(
        &server.addr(),
        &format!(
            "POST /api/models/alice/k/commit/main HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {alice}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            server.addr(),
            body.len()
        ),
        &body.as_bytes()[..body.len() / 2],
    );
    server.kill9();
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    assert_eq!(
        http.head_commit(&alice, "alice/k"),
        head,
        "the cut commit is not visible"
    );
    let files: Vec<String> = http.get("/api/models/alice/k", None, None).json()["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rfilename"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(files, ["a.txt"]);
    assert_eq!(
        http.get("/alice/k/resolve/main/a.txt", None, None).body,
        b"before"
    );
    let again = http.post(
        "/alice/k.git/info/lfs/objects/batch",
        &alice,
        &json!({"operation": "upload", "objects": [{"oid": oid, "size": big.len()}]}),
    );
    assert!(
        again.json()["objects"][0]["actions"]["upload"].is_object(),
        "the cut upload left a visible blob"
    );
    assert_eq!(
        uploads_in(&data.join("tmp")),
        0,
        "temporary files were cleaned"
    );
    // And the same upload now completes.
    http.lfs_upload(&alice, "alice/k", &big);
}

#[test]
fn concurrent_uploads_of_the_same_blob_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let http = Arc::new(Http::new(&server.url));
    http.create(&alice, "alice/c", false);
    let bytes: Vec<u8> = (0..(6 << 20)).map(|i| (i % 251) as u8).collect();
    let oid = hex(&Sha256::digest(&bytes));
    let batch = http.post(
        "/alice/c.git/info/lfs/objects/batch",
        &alice,
        &json!({"operation": "upload", "objects": [{"oid": oid, "size": bytes.len()}]}),
    );
    let href = batch.json()["objects"][0]["actions"]["upload"]["href"]
        .as_str()
        .unwrap()
        .to_string();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (http, href, bytes) = (http.clone(), href.clone(), bytes.clone());
            std::thread::spawn(move || http.put(&href, &bytes).status)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    let lfs = json!({"key": "lfsFile", "value": {"path": "w.raw", "algo": "sha256", "oid": oid, "size": bytes.len()}});
    assert_eq!(http.commit(&alice, "alice/c", &[], &[lfs]).status, 200);
    assert_eq!(
        http.get("/alice/c/resolve/main/w.raw", None, None).body,
        bytes
    );
}

#[test]
fn limits_tokens_and_admin_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    let reader = admin(
        &data,
        &["token", "create", "--user", "alice", "--scope", "read"],
    );
    let server = Server::start(&data, &[], &[("ZOO_MAX_COMMIT_BYTES", "10000")]);
    let http = Http::new(&server.url);
    http.create(&alice, "alice/l", false);
    let r = http.commit(&alice, "alice/l", &[("big.txt", &[b'a'; 20_000])], &[]);
    assert_eq!(r.status, 413);
    // A read token cannot write.
    assert_eq!(
        http.commit(&reader, "alice/l", &[("a.txt", b"a")], &[])
            .status,
        403
    );
    assert_eq!(
        http.post("/api/repos/create", &reader, &json!({"name": "alice/x"}))
            .status,
        403
    );
    // Users and tokens made while the server runs work at once.
    let carol = user(&data, "carol", "write");
    let who = http.get("/api/whoami-v2", Some(&carol), None).json();
    assert_eq!(who["name"], "carol");
    assert_eq!(who["auth"]["accessToken"]["role"], "write");
    http.create(&carol, "carol/x", false);
    assert_eq!(http.get("/api/whoami-v2", None, None).status, 401);
}

/// Temporary upload files under the blob store's `tmp/` (each process has a folder there).
fn uploads_in(tmp: &Path) -> usize {
    std::fs::read_dir(tmp)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        uploads_in(&e.path())
                    } else {
                        usize::from(e.file_name().to_string_lossy().starts_with("upload-"))
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
