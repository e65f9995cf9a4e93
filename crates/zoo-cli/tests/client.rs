//! `zoo pull`, `push`, `search`, `info`, `cache` against a real `zoo serve`, with a
//! fault-injecting proxy between them, and the Python client sharing the same cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

mod common;
use common::proxy::{Busy, Faults, Proxy};
use common::*;

/// A hub with alice, and a repository `alice/data` holding an LFS file and a regular file.
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    server: Server,
    token: String,
    big: Vec<u8>,
    small: Vec<u8>,
}

/// The `.gitattributes` the hub adds for the LFS file of [`setup`]'s repository (issue 12: a
/// git clone checks its content out).
const ATTRS: &str = "weights.raw filter=lfs diff=lfs merge=lfs -text\n";

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let data = root.join("data");
    let token = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    http.create(&token, "alice/data", false);
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let small = b"a small regular file\n".repeat(500);
    let oid = http.lfs_upload(&token, "alice/data", &big);
    let lfs = json!({"key": "lfsFile", "value": {"path": "weights.raw", "algo": "sha256", "oid": oid, "size": big.len()}});
    assert_eq!(
        http.commit(&token, "alice/data", &[("notes/small.txt", &small)], &[lfs])
            .status,
        200
    );
    Setup {
        _dir: dir,
        root,
        server,
        token,
        big,
        small,
    }
}

impl Setup {
    fn zoo(&self, endpoint: &str, cache: &Path, args: &[&str]) -> Output {
        Command::new(ZOO)
            .args(args)
            .env("HF_ENDPOINT", endpoint)
            .env("HF_HUB_CACHE", cache)
            .env("HF_HOME", self.root.join("hf-home"))
            .env("HF_TOKEN", &self.token)
            .env_remove("HF_HUB_OFFLINE")
            .output()
            .unwrap()
    }
    fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }
    fn blob(&self) -> PathBuf {
        let oid = hex(&Sha256::digest(&self.big));
        self.cache().join("models--alice--data/blobs").join(oid)
    }
}

fn snapshot_of(out: &Output) -> PathBuf {
    PathBuf::from(ok(out).trim())
}

#[test]
fn pull_writes_the_hf_cache_layout() {
    let s = setup();
    let snap = snapshot_of(&s.zoo(&s.server.url, &s.cache(), &["pull", "alice/data"]));
    assert_eq!(std::fs::read(snap.join("weights.raw")).unwrap(), s.big);
    assert_eq!(
        std::fs::read(snap.join("notes/small.txt")).unwrap(),
        s.small
    );
    let repo = s.cache().join("models--alice--data");
    let commit = std::fs::read_to_string(repo.join("refs/main")).unwrap();
    assert_eq!(snap, repo.join("snapshots").join(&commit));
    // Relative symlinks into blobs/, named by ETag (sha256 for LFS, git blob id otherwise).
    assert_eq!(
        std::fs::read_link(snap.join("weights.raw")).unwrap(),
        Path::new("../../blobs").join(hex(&Sha256::digest(&s.big)))
    );
    let small_link = std::fs::read_link(snap.join("notes/small.txt")).unwrap();
    assert!(
        small_link.starts_with("../../../blobs"),
        "{}",
        small_link.display()
    );
    assert_eq!(small_link.file_name().unwrap().len(), 40);
    // --include / --exclude / --local-dir / --json.
    let local = s.root.join("local");
    let out = s.zoo(
        &s.server.url,
        &s.root.join("cache2"),
        &[
            "pull",
            "alice/data",
            "--include",
            "notes/*",
            "--local-dir",
            local.to_str().unwrap(),
            "--json",
        ],
    );
    let doc: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(doc["files"].as_array().unwrap().len(), 1);
    assert_eq!(
        std::fs::read(local.join("notes/small.txt")).unwrap(),
        s.small
    );
    assert!(!local.join("weights.raw").exists());
    let out = s.zoo(
        &s.server.url,
        &s.root.join("cache3"),
        &["pull", "alice/data", "--exclude", "*.raw", "--json"],
    );
    let doc: Value = serde_json::from_str(&ok(&out)).unwrap();
    let paths: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, [".gitattributes", "notes/small.txt"]);
    // Errors name the repository; exit 2.
    let out = s.zoo(&s.server.url, &s.cache(), &["pull", "alice/nothing"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("alice/nothing"));
    let out = s.zoo(&s.server.url, &s.cache(), &["pull", "alice/data@nobranch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("revision not found: nobranch"));
}

#[test]
fn a_cut_connection_resumes_at_the_byte_it_stopped() {
    let s = setup();
    let proxy = Proxy::start(&s.server.url);
    // In one process: the pull retries and resumes.
    proxy.set(Faults {
        cut_at: Some(1_000_000),
        ..Faults::default()
    });
    let snap = snapshot_of(&s.zoo(
        &proxy.url,
        &s.cache(),
        &["pull", "alice/data", "--jobs", "1"],
    ));
    assert_eq!(std::fs::read(snap.join("weights.raw")).unwrap(), s.big);
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.contains("weights.raw") && r.ends_with("range=bytes=1000000-")),
        "{:#?}",
        proxy.requests()
    );
    // In a later process: the first gives up, the second resumes from the partial file.
    let cache = s.root.join("cache-b");
    proxy.set(Faults {
        cut_at: Some(1_234_567),
        ..Faults::default()
    });
    let out = s.zoo(
        &proxy.url,
        &cache,
        &["pull", "alice/data", "--retries", "0"],
    );
    assert_eq!(out.status.code(), Some(2));
    let partial = cache
        .join("models--alice--data/blobs")
        .join(format!("{}.incomplete", hex(&Sha256::digest(&s.big))));
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 1_234_567);
    let snap = snapshot_of(&s.zoo(&proxy.url, &cache, &["pull", "alice/data"]));
    assert_eq!(std::fs::read(snap.join("weights.raw")).unwrap(), s.big);
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.ends_with("range=bytes=1234567-"))
    );
    assert!(!partial.exists());
}

#[test]
fn a_flipped_bit_is_refused_and_never_cached() {
    let s = setup();
    let proxy = Proxy::start(&s.server.url);
    proxy.set(Faults {
        flip_at: Some(2_000_001),
        ..Faults::default()
    });
    let out = s.zoo(
        &proxy.url,
        &s.cache(),
        &["pull", "alice/data", "--include", "*.raw"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("weights.raw") && err.contains("not cached"),
        "{err}"
    );
    let blobs = s.cache().join("models--alice--data/blobs");
    assert_eq!(
        std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0),
        0,
        "nothing in blobs/"
    );
    assert!(
        !s.cache().join("models--alice--data/snapshots").exists()
            || std::fs::read_dir(s.cache().join("models--alice--data/snapshots"))
                .unwrap()
                .flatten()
                .all(|d| !d.path().join("weights.raw").exists())
    );
    proxy.set(Faults::default());
    let snap = snapshot_of(&s.zoo(&proxy.url, &s.cache(), &["pull", "alice/data"]));
    assert_eq!(std::fs::read(snap.join("weights.raw")).unwrap(), s.big);
}

#[test]
fn a_200_to_a_ranged_request_restarts_the_file() {
    let s = setup();
    let proxy = Proxy::start(&s.server.url);
    proxy.set(Faults {
        cut_at: Some(500_000),
        ..Faults::default()
    });
    assert_eq!(
        s.zoo(
            &proxy.url,
            &s.cache(),
            &["pull", "alice/data", "--retries", "0"]
        )
        .status
        .code(),
        Some(2)
    );
    proxy.set(Faults {
        ignore_range: true,
        ..Faults::default()
    });
    let snap = snapshot_of(&s.zoo(&proxy.url, &s.cache(), &["pull", "alice/data"]));
    assert_eq!(std::fs::read(snap.join("weights.raw")).unwrap(), s.big);
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.contains("weights.raw") && r.ends_with("range=bytes=500000-"))
    );
}

#[test]
fn a_slow_server_is_no_false_alarm_and_two_processes_share_the_work() {
    let s = setup();
    let proxy = Proxy::start(&s.server.url);
    proxy.set(Faults {
        slow: Some((64 << 10, Duration::from_millis(40))),
        ..Faults::default()
    });
    let spawn = || {
        Command::new(ZOO)
            .args(["pull", "alice/data", "--json"])
            .env("HF_ENDPOINT", &proxy.url)
            .env("HF_HUB_CACHE", s.cache())
            .env("HF_TOKEN", &s.token)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (da, db): (Value, Value) = (
        serde_json::from_str(&ok(&a)).unwrap(),
        serde_json::from_str(&ok(&b)).unwrap(),
    );
    assert_eq!(da["snapshot"], db["snapshot"]);
    let total = |d: &Value| {
        d["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["downloaded"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(
        total(&da) + total(&db),
        (s.big.len() + s.small.len() + ATTRS.len()) as u64,
        "each blob fetched once"
    );
    assert_eq!(
        std::fs::read(PathBuf::from(da["snapshot"].as_str().unwrap()).join("weights.raw")).unwrap(),
        s.big
    );
}

#[test]
fn a_full_disk_is_a_clear_error_and_a_retry_succeeds() {
    let s = setup();
    let mnt = s.root.join("small-disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=5m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "mounting a 5 MiB tmpfs needs root (CI runs as root)"
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 3 << 20]).unwrap();
    let cache = mnt.join("cache");
    let out = s.zoo(&s.server.url, &cache, &["pull", "alice/data"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    let blobs = cache.join("models--alice--data/blobs");
    let leftovers: Vec<_> = std::fs::read_dir(&blobs)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers
            .iter()
            .all(|n| !n.to_string_lossy().ends_with(".incomplete")),
        "{leftovers:?}"
    );
    assert!(!s.blob().exists());
    std::fs::remove_file(&filler).unwrap();
    let snap = snapshot_of(&s.zoo(&s.server.url, &cache, &["pull", "alice/data"]));
    assert_eq!(std::fs::read(snap.join("weights.raw")).unwrap(), s.big);
}

#[test]
fn offline_mode_and_the_python_client_share_one_cache() {
    let python = std::env::var("ZOO_PYTHON")
        .expect("ZOO_PYTHON: a python with huggingface_hub==1.33.0 (scripts/test.sh sets it)");
    let mut s = setup();
    let snap = snapshot_of(&s.zoo(&s.server.url, &s.cache(), &["pull", "alice/data"]));
    // Python reads, offline, what zoo wrote.
    let script = "import os,sys\nfrom huggingface_hub import hf_hub_download, snapshot_download\np = hf_hub_download('alice/data', 'weights.raw')\nprint(p)\nprint(snapshot_download('alice/data'))\n";
    let out = Command::new(&python)
        .args(["-c", script])
        .env("HF_HUB_CACHE", s.cache())
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let text = ok(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(std::fs::read(lines[0]).unwrap(), s.big);
    assert_eq!(PathBuf::from(lines[1]), snap);
    // zoo pull --offline reads what Python downloaded (a second repo, fetched by Python).
    let http = Http::new(&s.server.url);
    http.create(&s.token, "alice/py", false);
    assert_eq!(
        http.commit(&s.token, "alice/py", &[("config.json", b"{\"a\": 1}")], &[])
            .status,
        200
    );
    let pycache = s.root.join("pycache");
    let out = Command::new(&python)
        .args([
            "-c",
            "from huggingface_hub import snapshot_download; print(snapshot_download('alice/py'))",
        ])
        .env("HF_HUB_CACHE", &pycache)
        .env("HF_ENDPOINT", &s.server.url)
        .env("HF_TOKEN", &s.token)
        .output()
        .unwrap();
    let py_snap = PathBuf::from(ok(&out).trim());
    s.server.kill9();
    let out = s.zoo(
        "http://127.0.0.1:9",
        &pycache,
        &["pull", "--offline", "alice/py", "--json"],
    );
    let doc: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(PathBuf::from(doc["snapshot"].as_str().unwrap()), py_snap);
    assert_eq!(doc["files"][0]["path"], "config.json");
    // HF_HUB_OFFLINE=1 too, and a repository not in the cache is a clear error.
    let out = Command::new(ZOO)
        .args(["pull", "alice/data"])
        .env("HF_HUB_CACHE", s.cache())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(PathBuf::from(ok(&out).trim()), snap);
    let out = Command::new(ZOO)
        .args(["pull", "alice/absent"])
        .env("HF_HUB_CACHE", s.cache())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in the cache"));
}

#[test]
fn push_uploads_only_what_changed_in_one_commit() {
    let s = setup();
    let dir = s.root.join("model");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(
        dir.join("README.md"),
        "---\nlicense: mit\nbase_model: alice/data\n---\n# m\n",
    )
    .unwrap();
    std::fs::write(dir.join("sub/a.txt"), "a").unwrap();
    std::fs::copy(
        fixtures().join("views.expected.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let push = |args: &[&str]| -> Value {
        let mut full = vec!["push", dir.to_str().unwrap(), "alice/pushed", "--json"];
        full.extend_from_slice(args);
        serde_json::from_str(&ok(&s.zoo(&s.server.url, &s.cache(), &full))).unwrap()
    };
    let first = push(&["-m", "first"]);
    assert_eq!(first["uploaded"].as_array().unwrap().len(), 3);
    assert!(
        first["lfs_bytes"].as_u64().unwrap() > 0,
        "the safetensors file went through LFS"
    );
    let again = push(&[]);
    assert_eq!(again["uploaded"].as_array().unwrap().len(), 0);
    assert_eq!(again["commit"], first["commit"]);
    std::fs::write(dir.join("sub/a.txt"), "changed").unwrap();
    let third = push(&[]);
    assert_eq!(third["uploaded"], json!(["sub/a.txt"]));
    let http = Http::new(&s.server.url);
    assert_eq!(
        http.get("/alice/pushed/resolve/main/sub/a.txt", None, None)
            .body,
        b"changed"
    );
    // --branch and --private.
    let b = push(&["--branch", "exp"]);
    assert_eq!(
        b["uploaded"].as_array().unwrap().len(),
        0,
        "the new branch starts from main"
    );
    let out = s.zoo(
        &s.server.url,
        &s.cache(),
        &["push", dir.to_str().unwrap(), "alice/hidden", "--private"],
    );
    ok(&out);
    assert_eq!(http.get("/api/models/alice/hidden", None, None).status, 401);
    // Lineage and search through the CLI.
    let info: Value = serde_json::from_str(&ok(&s.zoo(
        &s.server.url,
        &s.cache(),
        &["info", "alice/data", "--json"],
    )))
    .unwrap();
    // Its owner sees the private child; nobody else does.
    assert_eq!(info["children"], json!(["alice/hidden", "alice/pushed"]));
    let anonymous = http.get("/api/models/alice/data", None, None).json();
    assert_eq!(anonymous["zoo"]["children"], json!(["alice/pushed"]));
    let info: Value = serde_json::from_str(&ok(&s.zoo(
        &s.server.url,
        &s.cache(),
        &["info", "alice/pushed", "--json"],
    )))
    .unwrap();
    assert_eq!(info["base_models"], json!(["alice/data"]));
    assert_eq!(info["license"], "mit");
    let found: Value = serde_json::from_str(&ok(&s.zoo(
        &s.server.url,
        &s.cache(),
        &["search", "push", "--license", "mit", "--json"],
    )))
    .unwrap();
    assert_eq!(
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["alice/pushed"]
    );
}

#[test]
fn cache_ls_verify_repair_prune_rm() {
    let s = setup();
    ok(&s.zoo(&s.server.url, &s.cache(), &["pull", "alice/data"]));
    let ls: Value = serde_json::from_str(&ok(&s.zoo(
        &s.server.url,
        &s.cache(),
        &["cache", "ls", "--json"],
    )))
    .unwrap();
    assert_eq!(ls[0]["repo"], "alice/data");
    assert_eq!(
        ls[0]["bytes"],
        (s.big.len() + s.small.len() + ATTRS.len()) as u64
    );
    assert_eq!(ls[0]["revisions"][0]["refs"], json!(["main"]));
    // Corrupt a blob: verify fails; --repair fetches it again.
    let mut bytes = std::fs::read(s.blob()).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(s.blob(), &bytes).unwrap();
    let out = s.zoo(&s.server.url, &s.cache(), &["cache", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("corrupt: alice/data"));
    ok(&s.zoo(&s.server.url, &s.cache(), &["cache", "verify", "--repair"]));
    assert_eq!(std::fs::read(s.blob()).unwrap(), s.big);
    ok(&s.zoo(&s.server.url, &s.cache(), &["cache", "verify"]));
    // A new commit, pulled: prune --keep-latest drops the old snapshot and its blobs.
    let http = Http::new(&s.server.url);
    let r = http.commit(
        &s.token,
        "alice/data",
        &[("notes/small.txt", b"new")],
        &[json!({"key": "deletedFile", "value": {"path": "weights.raw"}})],
    );
    assert_eq!(r.status, 200);
    ok(&s.zoo(&s.server.url, &s.cache(), &["pull", "alice/data"]));
    // Issue 13: --dry-run lists and removes nothing; without a terminal, --yes is required.
    let out = ok(&s.zoo(
        &s.server.url,
        &s.cache(),
        &["cache", "prune", "--keep-latest", "--dry-run"],
    ));
    assert!(
        out.contains("would remove 1 snapshots and 2 blobs"),
        "{out}"
    );
    assert!(s.blob().exists(), "a dry run removes nothing");
    let refused = s.zoo(
        &s.server.url,
        &s.cache(),
        &["cache", "prune", "--keep-latest"],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("pass --yes"));
    assert!(s.blob().exists());
    let out = ok(&s.zoo(
        &s.server.url,
        &s.cache(),
        &["cache", "prune", "--keep-latest", "--yes"],
    ));
    assert!(out.contains("removed 1 snapshots and 2 blobs"), "{out}");
    assert!(!s.blob().exists());
    let plan: Value = serde_json::from_str(&ok(&s.zoo(
        &s.server.url,
        &s.cache(),
        &["cache", "rm", "hf://alice/data", "--dry-run", "--json"],
    )))
    .unwrap();
    assert_eq!(plan["repos"], json!(["alice/data"]));
    assert_eq!(plan["snapshots"], 1);
    assert!(s.cache().join("models--alice--data").exists());
    ok(&s.zoo(
        &s.server.url,
        &s.cache(),
        &["cache", "rm", "alice/data", "-y"],
    ));
    assert!(!s.cache().join("models--alice--data").exists());
    let gone = s.zoo(
        &s.server.url,
        &s.cache(),
        &["cache", "rm", "alice/data", "-y"],
    );
    assert!(String::from_utf8_lossy(&gone.stderr).contains("is not in the cache"));
}

#[test]
fn login_logout_whoami_keep_the_token_out_of_output() {
    let s = setup();
    let home = s.root.join("hf-home");
    let run = |args: &[&str]| {
        Command::new(ZOO)
            .args(args)
            .env("HF_ENDPOINT", &s.server.url)
            .env("HF_HOME", &home)
            .env_remove("HF_TOKEN")
            .output()
            .unwrap()
    };
    let out = run(&["login", "--token", &s.token]);
    let text = ok(&out);
    assert!(
        text.contains("as alice") && !text.contains(&s.token),
        "{text}"
    );
    // A hub that is not huggingface.co: its own entry in stored_tokens.
    assert!(
        std::fs::read_to_string(home.join("stored_tokens"))
            .unwrap()
            .contains(&s.token)
    );
    assert!(!home.join("token").exists());
    assert_eq!(ok(&run(&["whoami"])).trim(), "alice");
    let bad = run(&["login", "--token", "zoo_wrong"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&bad.stderr).contains("zoo_wrong"));
    ok(&run(&["logout"]));
    assert!(
        !std::fs::read_to_string(home.join("stored_tokens"))
            .unwrap()
            .contains(&s.token)
    );
    assert_eq!(run(&["whoami"]).status.code(), Some(2));
}

#[test]
fn large_files_come_in_parallel_byte_ranges_and_survive_a_cut() {
    let s = setup();
    let proxy = Proxy::start(&s.server.url);
    proxy.set(Faults {
        cut_at: Some(100_000),
        ..Faults::default()
    });
    let snap = snapshot_of(&s.zoo(
        &proxy.url,
        &s.cache(),
        &["pull", "alice/data", "--range-threshold", "1000000"],
    ));
    assert_eq!(std::fs::read(snap.join("weights.raw")).unwrap(), s.big);
    let ranged: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.contains("weights.raw"))
        .collect();
    assert!(ranged.len() >= 4, "{ranged:#?}");
    assert!(
        ranged
            .iter()
            .all(|r| r.contains("range=bytes=") && r.contains('-')),
        "{ranged:#?}"
    );
    assert!(
        !s.cache()
            .join("models--alice--data/blobs")
            .read_dir()
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("incomplete"))
    );
}

/// Issue 13: the `hf` CLI's spellings — `zoo upload REPO LOCAL_PATH` with a commit message and
/// description, `zoo download REPO FILES… --revision`, `hf://` URIs, `--repo-type` — do what
/// push and pull do; what zoo does not implement is a clear error.
#[test]
fn download_and_upload_speak_the_hf_cli_dialect_issue_13() {
    let s = setup();
    let dir = s.root.join("up");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), "{\"a\": 1}\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "notes\n").unwrap();
    let run = |args: &[&str]| s.zoo(&s.server.url, &s.cache(), args);
    let up: Value = serde_json::from_str(&ok(&run(&[
        "upload",
        "hf://alice/up",
        dir.to_str().unwrap(),
        "--commit-message",
        "first upload",
        "--commit-description",
        "with a description",
        "--json",
    ])))
    .unwrap();
    assert_eq!(up["uploaded"].as_array().unwrap().len(), 2, "{up}");
    let http = Http::new(&s.server.url);
    let commits = http.get("/api/models/alice/up/commits/main", Some(&s.token), None);
    let body = String::from_utf8_lossy(&commits.body);
    assert!(
        body.contains("first upload") && body.contains("with a description"),
        "{body}"
    );
    // One file, by name, at a revision, into a local folder.
    let local = s.root.join("local");
    ok(&run(&[
        "download",
        "alice/up",
        "config.json",
        "--revision",
        "main",
        "--local-dir",
        local.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read_to_string(local.join("config.json")).unwrap(),
        "{\"a\": 1}\n"
    );
    assert!(!local.join("notes.txt").exists(), "only the file asked for");
    // An hf:// URI with a revision; a data set by --repo-type and by URI.
    let snap = snapshot_of(&run(&["download", "hf://alice/up@main"]));
    assert!(snap.join("notes.txt").exists());
    ok(&run(&[
        "upload",
        "alice/ds",
        dir.to_str().unwrap(),
        "--repo-type",
        "dataset",
    ]));
    let ds = snapshot_of(&run(&["download", "hf://datasets/alice/ds", "notes.txt"]));
    assert!(
        ds.to_string_lossy().contains("datasets--alice--ds"),
        "{ds:?}"
    );
    let ds2 = snapshot_of(&run(&["download", "alice/ds", "--repo-type", "dataset"]));
    assert!(ds2.join("config.json").exists());
    // What zoo does not do says so.
    let e = run(&["download", "alice/up@main", "--revision", "other"]);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("two revisions"));
    let e = run(&["upload", "alice/up", dir.to_str().unwrap(), "../escape"]);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("not a path inside a repository"));
    let e = run(&["download", "hf://spaces/alice/app"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("Spaces are not implemented"));
}

/// The remote file list of `alice/up` at main.
fn remote_files(s: &Setup, repo: &str) -> Vec<String> {
    let http = Http::new(&s.server.url);
    let r = http.get(
        &format!("/api/models/{repo}/tree/main?recursive=true"),
        Some(&s.token),
        None,
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "file")
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// Issue 13: `zoo upload REPO LOCAL_PATH PATH_IN_REPO` with --include/--exclude/--delete and
/// --dry-run; one file to a path; `zoo repo create`; `zoo download --dry-run`; --cache-dir.
#[test]
fn upload_into_folders_with_include_exclude_delete_and_dry_runs_issue_13() {
    let s = setup();
    let run = |args: &[&str]| s.zoo(&s.server.url, &s.cache(), args);
    let created = ok(&run(&["repo", "create", "alice/tree"]));
    assert!(
        created.contains("created") && created.contains("/alice/tree"),
        "{created}"
    );
    let again = run(&["repo", "create", "alice/tree"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    ok(&run(&["repo", "create", "alice/tree", "--exist-ok"]));
    let dir = s.root.join("tree");
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(dir.join("a.json"), "{}").unwrap();
    std::fs::write(dir.join("b.txt"), "b").unwrap();
    std::fs::write(dir.join("logs/run.log"), "log").unwrap();
    // Into a folder, leaving out the logs.
    let d = dir.to_str().unwrap();
    ok(&run(&[
        "upload",
        "alice/tree",
        d,
        "v1",
        "--exclude",
        "logs/*",
    ]));
    assert_eq!(remote_files(&s, "alice/tree"), ["v1/a.json", "v1/b.txt"]);
    // One file to a path of its own; only the JSON into a second folder.
    ok(&run(&[
        "upload",
        "alice/tree",
        dir.join("b.txt").to_str().unwrap(),
        "docs/readme.txt",
    ]));
    ok(&run(&[
        "upload",
        "alice/tree",
        d,
        "v2",
        "--include",
        "*.json",
    ]));
    assert_eq!(
        remote_files(&s, "alice/tree"),
        ["docs/readme.txt", "v1/a.json", "v1/b.txt", "v2/a.json"]
    );
    // --delete: v1's .txt files that are not uploaded go in the same commit; a dry run first
    // says so and changes nothing.
    std::fs::remove_file(dir.join("b.txt")).unwrap();
    std::fs::write(dir.join("a.json"), "{\"v\": 2}").unwrap();
    let plan: Value = serde_json::from_str(&ok(&run(&[
        "upload",
        "alice/tree",
        d,
        "v1",
        "--exclude",
        "logs/*",
        "--delete",
        "*.txt",
        "--dry-run",
        "--json",
    ])))
    .unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["uploaded"], json!(["v1/a.json"]));
    assert_eq!(plan["deleted"], json!(["v1/b.txt"]));
    assert!(remote_files(&s, "alice/tree").contains(&"v1/b.txt".to_string()));
    let done: Value = serde_json::from_str(&ok(&run(&[
        "upload",
        "alice/tree",
        d,
        "v1",
        "--exclude",
        "logs/*",
        "--delete",
        "*.txt",
        "--json",
    ])))
    .unwrap();
    assert_eq!(done["deleted"], json!(["v1/b.txt"]));
    assert_eq!(
        remote_files(&s, "alice/tree"),
        ["docs/readme.txt", "v1/a.json", "v2/a.json"],
        "docs/readme.txt is outside v1 and stays"
    );
    // download --dry-run lists, marks what the cache has, and downloads nothing; --cache-dir.
    let other = s.root.join("other-cache");
    let plan: Value = serde_json::from_str(&ok(&run(&[
        "download",
        "alice/tree",
        "v1/*",
        "--dry-run",
        "--json",
        "--cache-dir",
        other.to_str().unwrap(),
    ])))
    .unwrap();
    assert_eq!(plan["files"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(plan["files"][0]["cached"], false);
    assert!(!other.join("models--alice--tree").exists());
    let snap = snapshot_of(&run(&[
        "download",
        "alice/tree",
        "--cache-dir",
        other.to_str().unwrap(),
    ]));
    assert!(snap.starts_with(&other), "{snap:?}");
    let plan: Value = serde_json::from_str(&ok(&run(&[
        "download",
        "alice/tree",
        "--dry-run",
        "--json",
        "--cache-dir",
        other.to_str().unwrap(),
    ])))
    .unwrap();
    assert!(
        plan["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["cached"] == true),
        "{plan}"
    );
    assert_eq!(plan["to_download"], 0);
}

/// Commits on `repo`'s main branch.
fn commit_count(s: &Setup, repo: &str) -> usize {
    let r = Http::new(&s.server.url).get(
        &format!("/api/models/{repo}/commits/main"),
        Some(&s.token),
        None,
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v.as_array().unwrap().len()
}

fn busy(matching: &str, times: usize, status: u16, retry_after: Option<&str>) -> Faults {
    Faults {
        busy: Some(Busy {
            matching: matching.into(),
            times,
            status,
            retry_after: retry_after.map(str::to_string),
        }),
        ..Faults::default()
    }
}

/// Issue 13: metadata calls and pushes are retried with backoff after 429/503, waiting what
/// `Retry-After` asks; a commit is repeated only when the server said it did not act (a 500
/// is not retried, so nothing is committed twice); a wait longer than zoo's limit is shown
/// as the error it is.
#[test]
fn metadata_and_push_retry_and_honour_retry_after_issue_13() {
    let s = setup();
    let proxy = Proxy::start(&s.server.url);
    let count = |needle: &str| {
        proxy
            .requests()
            .iter()
            .filter(|r| r.contains(needle))
            .count()
    };
    proxy.set(busy("GET /api/models/alice/data HTTP", 2, 503, Some("1")));
    let t = std::time::Instant::now();
    let info: Value = serde_json::from_str(&ok(&s.zoo(
        &proxy.url,
        &s.cache(),
        &["info", "alice/data", "--json"],
    )))
    .unwrap();
    assert_eq!(info["id"], "alice/data");
    assert_eq!(count("GET /api/models/alice/data HTTP"), 3);
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "two Retry-After: 1 waits, took {:?}",
        t.elapsed()
    );
    // A push whose commit is refused once with 429: one commit lands.
    let dir = s.root.join("retry");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "a").unwrap();
    ok(&s.zoo(
        &proxy.url,
        &s.cache(),
        &["push", dir.to_str().unwrap(), "alice/retry"],
    ));
    let before = commit_count(&s, "alice/retry");
    std::fs::write(dir.join("a.txt"), "b").unwrap();
    proxy.set(busy("/commit/main", 1, 429, Some("1")));
    ok(&s.zoo(
        &proxy.url,
        &s.cache(),
        &["push", dir.to_str().unwrap(), "alice/retry"],
    ));
    assert_eq!(commit_count(&s, "alice/retry"), before + 1);
    // A 500 on the commit is not retried: the push fails and nothing is committed.
    std::fs::write(dir.join("a.txt"), "c").unwrap();
    proxy.set(busy("/commit/main", 1, 500, None));
    let seen = count("/commit/main");
    let out = s.zoo(
        &proxy.url,
        &s.cache(),
        &["push", dir.to_str().unwrap(), "alice/retry"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 500"));
    assert_eq!(count("/commit/main"), seen + 1, "a commit is sent once");
    assert_eq!(commit_count(&s, "alice/retry"), before + 1);
    // Retry-After beyond zoo's limit: the error at once, not a long wait.
    proxy.set(busy(
        "GET /api/models/alice/data HTTP",
        1,
        503,
        Some("100000"),
    ));
    let t = std::time::Instant::now();
    let out = s.zoo(&proxy.url, &s.cache(), &["info", "alice/data"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("503"));
    assert!(t.elapsed() < Duration::from_secs(60));
}

/// Issue 13: HF_HUB_DOWNLOAD_TIMEOUT bounds the wait for the next bytes of a response: a
/// download stalled mid-body is abandoned after it and resumed where it stopped.
#[test]
fn a_stalled_download_times_out_and_resumes_issue_13() {
    let s = setup();
    let proxy = Proxy::start(&s.server.url);
    proxy.set(Faults {
        stall_at: Some((500_000, Duration::from_secs(90))),
        ..Faults::default()
    });
    let t = std::time::Instant::now();
    let out = Command::new(ZOO)
        .args(["pull", "alice/data"])
        .env("HF_ENDPOINT", &proxy.url)
        .env("HF_HUB_CACHE", s.cache())
        .env("HF_HOME", s.root.join("hf-home"))
        .env("HF_TOKEN", &s.token)
        .env("HF_HUB_DOWNLOAD_TIMEOUT", "1")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    let snap = snapshot_of(&out);
    assert_eq!(std::fs::read(snap.join("weights.raw")).unwrap(), s.big);
    assert!(
        t.elapsed() < Duration::from_secs(45),
        "the stall (90 s) was waited out: {:?}",
        t.elapsed()
    );
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.contains("weights.raw") && r.contains("range=bytes=500000-")),
        "{:#?}",
        proxy.requests()
    );
}

/// Issue 13: one saved token per hub. Logging in to a team hub leaves huggingface.co's token
/// file alone and stores the token under `zoo@ENDPOINT` in `stored_tokens`, keeping the
/// Python tools' entries (which still read the file); the prompt hides the token on a
/// terminal; `HF_TOKEN_PATH` and `~` in `HF_HOME` are honoured.
#[test]
fn auth_keeps_one_token_per_endpoint_issue_13() {
    let python = std::env::var("ZOO_PYTHON")
        .expect("ZOO_PYTHON: a python with huggingface_hub==1.33.0 (scripts/test.sh sets it)");
    let s = setup();
    let home = s.root.join("home");
    let hf = home.join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    std::fs::write(hf.join("token"), "hf_public_token").unwrap();
    std::fs::write(hf.join("stored_tokens"), "[work]\nhf_token = hf_work\n\n").unwrap();
    let cmd = |args: &[&str]| {
        let mut c = Command::new(ZOO);
        c.args(args)
            .env("HOME", &home)
            .env("HF_HOME", "~/hf")
            .env("HF_ENDPOINT", &s.server.url)
            .env_remove("HF_TOKEN")
            .env_remove("HF_TOKEN_PATH")
            .env_remove("HF_HUB_CACHE");
        c
    };
    // A token on standard input (a pipe: read as one line).
    let mut child = cmd(&["auth", "login"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    writeln!(child.stdin.take().unwrap(), "{}", s.token).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = ok(&out);
    assert!(
        text.contains("as alice") && !text.contains(&s.token),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(hf.join("token")).unwrap(),
        "hf_public_token",
        "huggingface.co's token is not overwritten"
    );
    let who: Value =
        serde_json::from_str(&ok(&cmd(&["auth", "whoami", "--json"]).output().unwrap())).unwrap();
    assert_eq!(who["name"], "alice");
    assert_eq!(who["token_source"], "stored");
    // The Python tools read the file, both entries.
    let out = Command::new(&python)
        .args([
            "-c",
            "import json; from huggingface_hub.utils import get_stored_tokens; print(json.dumps(get_stored_tokens()))",
        ])
        .env("HF_HOME", &hf)
        .env_remove("HF_TOKEN_PATH")
        .output()
        .unwrap();
    let stored: Value = serde_json::from_str(ok(&out).trim()).unwrap();
    assert_eq!(stored["work"], "hf_work");
    assert_eq!(stored[format!("zoo@{}", s.server.url)], s.token.as_str());
    // On a terminal the prompt does not echo the token (a pseudo-terminal drives it).
    let pty = r#"
import os, pty, sys
zoo, token = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(zoo, [zoo, "auth", "login"])
import termios, time
seen = b""
while b"token" not in seen:
    seen += os.read(fd, 1024)
# The prompt is printed before echo goes off: wait (at most 5 s) until the terminal stops
# echoing, as a person typing would be later than that.
deadline = time.time() + 5
while termios.tcgetattr(fd)[3] & termios.ECHO and time.time() < deadline:
    time.sleep(0.01)
os.write(fd, token.encode() + b"\n")
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let out = Command::new(&python)
        .args(["-c", pty, ZOO, &s.token])
        .env("HOME", &home)
        .env("HF_HOME", "~/hf")
        .env("HF_ENDPOINT", &s.server.url)
        .env_remove("HF_TOKEN")
        .output()
        .unwrap();
    let screen = ok(&out);
    assert!(
        screen.contains("input is hidden") && screen.contains("as alice"),
        "{screen}"
    );
    assert!(!screen.contains(&s.token), "the token was echoed: {screen}");
    // Logout removes this hub's entry only.
    ok(&cmd(&["auth", "logout"]).output().unwrap());
    let stored = std::fs::read_to_string(hf.join("stored_tokens")).unwrap();
    assert!(
        stored.contains("hf_work") && !stored.contains(&s.token),
        "{stored}"
    );
    assert_eq!(
        std::fs::read_to_string(hf.join("token")).unwrap(),
        "hf_public_token"
    );
    // HF_TOKEN_PATH, with `~`, is the token file.
    std::fs::write(home.join("tok"), &s.token).unwrap();
    let who: Value = serde_json::from_str(&ok(&cmd(&["auth", "whoami", "--json"])
        .env("HF_TOKEN_PATH", "~/tok")
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(who["name"], "alice");
    assert_eq!(who["token_source"], "file");
    // `~` in HF_HOME places the cache there too.
    let snap = snapshot_of(
        &cmd(&["download", "alice/data", "notes/small.txt"])
            .env("HF_TOKEN", &s.token)
            .output()
            .unwrap(),
    );
    assert!(snap.starts_with(hf.join("hub")), "{snap:?}");
}

/// Issue 13: `zoo embed org/name[@rev]` takes the model from the hub, like predict, and gives
/// the same vectors as the local folder.
#[test]
fn embed_takes_a_model_from_the_hub_issue_13() {
    let s = setup();
    let fx = real_fixtures();
    let src = fx.join("checkpoints/all-MiniLM-L6-v2");
    let model = s.root.join("minilm");
    std::fs::create_dir_all(model.join("1_Pooling")).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
    ] {
        if src.join(f).exists() {
            std::fs::copy(src.join(f), model.join(f)).unwrap();
        }
    }
    ok(&s.zoo(
        &s.server.url,
        &s.cache(),
        &["push", model.to_str().unwrap(), "alice/minilm"],
    ));
    let txt = s.root.join("t.txt");
    std::fs::write(&txt, "A man is playing a guitar.\nShort.\n").unwrap();
    let local = s.root.join("local.safetensors");
    let hub = s.root.join("hub.safetensors");
    ok(&s.zoo(
        &s.server.url,
        &s.cache(),
        &[
            "embed",
            model.to_str().unwrap(),
            "--data",
            txt.to_str().unwrap(),
            "--out",
            local.to_str().unwrap(),
        ],
    ));
    ok(&s.zoo(
        &s.server.url,
        &s.cache(),
        &[
            "embed",
            "alice/minilm@main",
            "--data",
            txt.to_str().unwrap(),
            "--out",
            hub.to_str().unwrap(),
        ],
    ));
    let body = |p: &Path| {
        let b = std::fs::read(p).unwrap();
        let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        b[8 + n..].to_vec()
    };
    assert_eq!(body(&local), body(&hub));
    assert_eq!(body(&local).len(), 2 * 384 * 4);
    assert!(s.cache().join("models--alice--minilm").exists());
}
