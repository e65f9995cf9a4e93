//! Issue 14: a hub of several replicas — `zoo serve --database postgres://… --blobs file:…`
//! twice, behind a real nginx, on a real PostgreSQL. Every replica serves every request (an
//! upload through one is downloaded through the other; LFS links signed by one are honoured
//! by the other), the Python client works through the load balancer, and concurrent commits
//! to one branch through both replicas all land.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};
use zoo_testkit::Postgres;

mod common;
use common::*;

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/services")
        .join(name)
}

/// nginx in front of the replicas (`scripts/services/nginx.sh`), stopped when dropped.
struct Nginx {
    dir: PathBuf,
    url: String,
}

impl Nginx {
    fn start(dir: &Path, upstreams: &[String]) -> Nginx {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = Command::new(script("nginx.sh"))
            .arg("start")
            .arg(dir)
            .arg(port.to_string())
            .args(upstreams)
            .output()
            .unwrap();
        Nginx {
            dir: dir.to_path_buf(),
            url: ok(&out).trim().to_string(),
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new(script("nginx.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

/// Fields drop in this order: nginx and the replicas stop before PostgreSQL, and the folder
/// (with nginx's pid file) goes last.
struct Cluster {
    nginx: Nginx,
    replicas: Vec<Server>,
    _pg: Postgres,
    database: String,
    token: String,
    root: tempfile::TempDir,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        let pg = Postgres::start();
        let root = tempfile::tempdir().unwrap();
        let blobs = format!("file:{}", root.path().join("blobs").display());
        let database = pg.url.clone();
        let replicas: Vec<Server> = (0..n)
            .map(|i| {
                Server::start(
                    &root.path().join(format!("replica-{i}")),
                    &["--database", &database, "--blobs", &blobs],
                    &[],
                )
            })
            .collect();
        let admin = |args: &[&str]| {
            let out = Command::new(ZOO)
                .arg("admin")
                .args(args)
                .arg("--data")
                .arg(root.path().join("admin"))
                .args(["--database", &database])
                .output()
                .unwrap();
            ok(&out).trim().to_string()
        };
        admin(&["user", "add", "alice"]);
        let token = admin(&["token", "create", "--user", "alice", "--scope", "write"]);
        let upstreams: Vec<String> = replicas.iter().map(Server::addr).collect();
        let nginx = Nginx::start(&root.path().join("lb"), &upstreams);
        Cluster {
            nginx,
            replicas,
            _pg: pg,
            database,
            token,
            root,
        }
    }

    fn zoo(&self, endpoint: &str, cache: &str, args: &[&str]) -> Output {
        Command::new(ZOO)
            .args(args)
            .env("HF_ENDPOINT", endpoint)
            .env("HF_HUB_CACHE", self.root.path().join(cache))
            .env("HF_HOME", self.root.path().join("hf-home"))
            .env("HF_TOKEN", &self.token)
            .env_remove("HF_HUB_OFFLINE")
            .output()
            .unwrap()
    }
}

#[test]
fn replicas_on_postgres_serve_every_request_issue_14() {
    let python = std::env::var("ZOO_PYTHON")
        .expect("ZOO_PYTHON: a python with huggingface_hub==1.33.0 (scripts/test.sh sets it)");
    let c = Cluster::start(2);
    let (a, b) = (&c.replicas[0].url, &c.replicas[1].url);
    // A folder with an LFS file and a small one, pushed through replica A.
    let dir = c.root.path().join("model");
    std::fs::create_dir_all(&dir).unwrap();
    let big: Vec<u8> = (0..12_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(dir.join("weights.bin"), &big).unwrap();
    std::fs::write(dir.join("config.json"), "{\"a\": 1}\n").unwrap();
    let pushed: Value = serde_json::from_str(&ok(&c.zoo(
        a,
        "cache-a",
        &["push", dir.to_str().unwrap(), "alice/shared", "--json"],
    )))
    .unwrap();
    assert_eq!(pushed["lfs_bytes"], big.len());
    // Pulled through replica B: the same bytes, the same commit.
    let pulled: Value = serde_json::from_str(&ok(&c.zoo(
        b,
        "cache-b",
        &["pull", "alice/shared", "--json"],
    )))
    .unwrap();
    assert_eq!(pulled["commit"], pushed["commit"]);
    let snap = PathBuf::from(pulled["snapshot"].as_str().unwrap());
    assert_eq!(
        hex(&Sha256::digest(
            std::fs::read(snap.join("weights.bin")).unwrap()
        )),
        hex(&Sha256::digest(&big))
    );
    // LFS links signed by one replica are honoured by the other (one signing key).
    let batch = Http::new(a).agent.post(&format!("{a}/alice/shared.git/info/lfs/objects/batch"))
        .header("Authorization", &format!("Bearer {}", c.token))
        .header("Content-Type", "application/vnd.git-lfs+json")
        .send(serde_json::json!({"operation": "download", "objects": [{"oid": hex(&Sha256::digest(&big)), "size": big.len()}]}).to_string())
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let batch: Value = serde_json::from_str(&batch).unwrap();
    let href = batch["objects"][0]["actions"]["download"]["href"]
        .as_str()
        .unwrap()
        .to_string();
    let on_b = href.replacen(a, b, 1);
    assert_ne!(href, on_b);
    let reply = Http::new(b).get(
        on_b.trim_start_matches(b.as_str()),
        None,
        Some("bytes=0-99"),
    );
    assert_eq!(
        reply.status,
        206,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.body, big[..100]);
    // The Python client through nginx: upload, then a fresh download, both round-robined.
    let script = r#"
import os, sys
from huggingface_hub import HfApi, snapshot_download
api = HfApi()
api.create_repo("alice/py", exist_ok=True)
for i in range(3):
    api.upload_file(path_or_fileobj=f"file {i}\n".encode(), path_in_repo=f"f{i}.txt", repo_id="alice/py")
p = snapshot_download("alice/py", cache_dir=sys.argv[1])
print(sorted(os.listdir(p)))
print(len(api.list_repo_commits("alice/py")))
"#;
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(c.root.path().join("py-cache"))
        .env("HF_ENDPOINT", &c.nginx.url)
        .env("HF_TOKEN", &c.token)
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(
        text.contains("['.gitattributes', 'f0.txt', 'f1.txt', 'f2.txt']")
            || text.contains("['f0.txt', 'f1.txt', 'f2.txt']"),
        "{text}"
    );
    assert_eq!(text.lines().nth(1), Some("4"), "{text}");
    // 8 uploads to one branch at once through nginx (both replicas): all land.
    let uploads: Vec<_> = (0..8)
        .map(|i| {
            let f = c.root.path().join(format!("u{i}.txt"));
            std::fs::write(&f, format!("upload {i}\n")).unwrap();
            Command::new(ZOO)
                .args(["upload", "alice/shared"])
                .arg(&f)
                .arg(format!("concurrent/u{i}.txt"))
                .env("HF_ENDPOINT", &c.nginx.url)
                .env("HF_TOKEN", &c.token)
                .env("HF_HOME", c.root.path().join("hf-home"))
                .spawn()
                .unwrap()
        })
        .collect();
    for mut u in uploads {
        assert!(u.wait().unwrap().success());
    }
    let tree = Http::new(b).get(
        "/api/models/alice/shared/tree/main/concurrent",
        Some(&c.token),
        None,
    );
    let tree: Value = tree.json();
    assert_eq!(tree.as_array().unwrap().len(), 8, "{tree}");
    let commits = Http::new(a).get(
        "/api/models/alice/shared/commits/main",
        Some(&c.token),
        None,
    );
    assert_eq!(
        commits.json().as_array().unwrap().len(),
        2 + 8,
        "initial + push + 8 uploads"
    );
    assert!(!c.database.is_empty());
}

/// The largest file in a folder (an upload in progress), in bytes.
fn largest_file(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// A replica killed (SIGKILL) in the middle of a 200 MB upload leaves nothing half-visible:
/// the other replica serves the previous state, the blob never appears, and the upload
/// retried through the other replica succeeds.
#[test]
fn a_replica_killed_mid_upload_leaves_the_previous_state_issue_14() {
    let mut c = Cluster::start(2);
    let a = c.replicas[0].url.clone();
    let b = c.replicas[1].url.clone();
    let dir = c.root.path().join("model");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), "{\"v\": 1}\n").unwrap();
    let before: Value = serde_json::from_str(&ok(&c.zoo(
        &a,
        "cache",
        &["push", dir.to_str().unwrap(), "alice/big", "--json"],
    )))
    .unwrap();
    let big: Vec<u8> = (0..200_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    let oid = hex(&Sha256::digest(&big));
    std::fs::write(dir.join("weights.bin"), &big).unwrap();
    let mut push = Command::new(ZOO)
        .args(["push", dir.to_str().unwrap(), "alice/big", "-q"])
        .env("HF_ENDPOINT", &a)
        .env("HF_TOKEN", &c.token)
        .env("HF_HOME", c.root.path().join("hf-home"))
        .spawn()
        .unwrap();
    let tmp = c.root.path().join("blobs/tmp");
    let t = std::time::Instant::now();
    while largest_file(&tmp) < 20_000_000 {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(120),
            "the upload never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    c.replicas[0].kill9();
    let _ = push.kill();
    let _ = push.wait();
    // Replica B: the state before the upload; the half-uploaded blob is nowhere.
    let http = Http::new(&b);
    let info = http
        .get("/api/models/alice/big", Some(&c.token), None)
        .json();
    assert_eq!(info["sha"], before["commit"]);
    assert!(
        !info["siblings"].to_string().contains("weights.bin"),
        "{info}"
    );
    let blob = c
        .root
        .path()
        .join("blobs/blobs")
        .join(&oid[..2])
        .join(&oid[2..4])
        .join(&oid);
    assert!(!blob.exists(), "{blob:?} is visible");
    let batch = http.post(
        "/alice/big.git/info/lfs/objects/batch",
        &c.token,
        &serde_json::json!({"operation": "download", "objects": [{"oid": oid, "size": big.len()}]}),
    );
    assert!(
        batch.json()["objects"][0].get("error").is_some(),
        "a half-uploaded object must not be downloadable: {}",
        batch.json()
    );
    // The upload again, through the surviving replica: it lands whole.
    let pushed: Value = serde_json::from_str(&ok(&c.zoo(
        &b,
        "cache",
        &["push", dir.to_str().unwrap(), "alice/big", "--json"],
    )))
    .unwrap();
    assert_eq!(pushed["lfs_bytes"], big.len());
    let pulled: Value = serde_json::from_str(&ok(&c.zoo(
        &b,
        "cache-pull",
        &["pull", "alice/big", "--json"],
    )))
    .unwrap();
    let snap = PathBuf::from(pulled["snapshot"].as_str().unwrap());
    assert_eq!(
        hex(&Sha256::digest(
            std::fs::read(snap.join("weights.bin")).unwrap()
        )),
        oid
    );
    assert!(blob.exists(), "the blob store's layout changed: {blob:?}");
}
