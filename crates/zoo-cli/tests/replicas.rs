//! Issue 14: a hub of several replicas — `zoo serve --database postgres://… --blobs file:…`
//! twice, behind a real nginx, on a real PostgreSQL. Every replica serves every request (an
//! upload through one is downloaded through the other; LFS links signed by one are honoured
//! by the other), the Python client works through the load balancer, and concurrent commits
//! to one branch through both replicas all land.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};
use zoo_testkit::{Postgres, Rgw};

mod common;
use common::*;

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
        Cluster::start_with(n, None)
    }

    /// `n` replicas on PostgreSQL, with blobs in a shared folder or, given one, in RGW.
    fn start_with(n: usize, rgw: Option<&Rgw>) -> Cluster {
        let pg = Postgres::start();
        let root = tempfile::tempdir().unwrap();
        let (blobs, env) = match rgw {
            Some(r) => (format!("s3://{}/zoo", r.bucket), r.env()),
            None => (
                format!("file:{}", root.path().join("blobs").display()),
                vec![],
            ),
        };
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let database = pg.url.clone();
        let replicas: Vec<Server> = (0..n)
            .map(|i| {
                Server::start(
                    &root.path().join(format!("replica-{i}")),
                    &["--database", &database, "--blobs", &blobs],
                    &env,
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
                .stdout(std::process::Stdio::null())
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

/// The largest file under a folder (an upload in progress), in bytes.
fn largest_file(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        largest_file(&e.path())
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
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
    // A commit cut mid-body on replica A (its connection stays open until A dies).
    let addr = c.replicas[0].addr();
    let line = serde_json::json!({"key": "file", "value": {"path": "cut.txt", "content": "Y3V0", "encoding": "base64"}}).to_string();
    let body = format!(
        "{}\n{line}\n",
        serde_json::json!({"key": "header", "value": {"summary": "cut"}})
    );
    let mut cut = std::net::TcpStream::connect(&addr).unwrap();
    use std::io::Write as _;
    write!(
        cut,
        "POST /api/models/alice/big/commit/main HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        c.token,
        body.len()
    )
    .unwrap();
    cut.write_all(&body.as_bytes()[..body.len() / 2]).unwrap();
    cut.flush().unwrap();
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
        !info["siblings"].to_string().contains("weights.bin")
            && !info["siblings"].to_string().contains("cut.txt"),
        "{info}"
    );
    drop(cut);
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

/// The keys under `prefix` in an RGW bucket (S3 ListObjectsV2, signed by curl).
fn bucket_keys(rgw: &Rgw, prefix: &str) -> Vec<String> {
    let out = Command::new("curl")
        .args(["-sf", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
        .arg(format!("{}:{}", rgw.access_key, rgw.secret_key))
        .args([
            "-H",
            "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ])
        .arg(format!(
            "{}/{}?list-type=2&prefix={}",
            rgw.endpoint,
            rgw.bucket,
            prefix.replace('/', "%2F")
        ))
        .output()
        .unwrap();
    let xml = ok(&out);
    xml.split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .map(str::to_string)
        .collect()
}

/// The same hub on PostgreSQL and a real S3 implementation (Ceph RGW): LFS files stream to
/// the bucket as multipart uploads and appear only under their verified hash; ranged reads;
/// scanning reads through the store (a dangerous pickle is refused, parameters are counted).
#[test]
fn replicas_on_postgres_and_rgw_issue_14() {
    let rgw = Rgw::start();
    let c = Cluster::start_with(2, Some(&rgw));
    let (a, b) = (c.replicas[0].url.clone(), c.replicas[1].url.clone());
    let dir = c.root.path().join("model");
    std::fs::create_dir_all(&dir).unwrap();
    // 40 MB: three parts of a multipart upload.
    let big: Vec<u8> = (0..40_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect();
    let oid = hex(&Sha256::digest(&big));
    std::fs::write(dir.join("weights.bin.raw"), &big).unwrap();
    std::fs::copy(
        fixtures().join("views.expected.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    std::fs::write(
        dir.join("config.json"),
        "{\"architecture\": \"resnet18\"}\n",
    )
    .unwrap();
    let pushed: Value = serde_json::from_str(&ok(&c.zoo(
        &a,
        "cache-a",
        &["push", dir.to_str().unwrap(), "alice/s3", "--json"],
    )))
    .unwrap();
    assert!(
        pushed["lfs_bytes"].as_u64().unwrap() >= big.len() as u64,
        "{pushed}"
    );
    let keys = bucket_keys(&rgw, "zoo/");
    let blob_key = format!("zoo/blobs/{}/{}/{oid}", &oid[..2], &oid[2..4]);
    assert!(keys.contains(&blob_key), "{keys:#?}");
    assert!(
        keys.iter().all(|k| k.starts_with("zoo/blobs/")),
        "nothing but verified blobs in the bucket: {keys:#?}"
    );
    // Pulled through the other replica, byte for byte.
    let pulled: Value =
        serde_json::from_str(&ok(&c.zoo(&b, "cache-b", &["pull", "alice/s3", "--json"]))).unwrap();
    let snap = PathBuf::from(pulled["snapshot"].as_str().unwrap());
    assert_eq!(
        hex(&Sha256::digest(
            std::fs::read(snap.join("weights.bin.raw")).unwrap()
        )),
        oid
    );
    // 16 downloads at once through one replica: the store's reads never wait on each other
    // (they once deadlocked the replica: its runtime threads blocked on full channels).
    let readers: Vec<_> = (0..16)
        .map(|_| {
            let url = format!("{a}/alice/s3/resolve/main/weights.bin.raw");
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(std::time::Duration::from_secs(120)))
                    .build()
                    .into();
                let mut r = agent.get(&url).call().expect("a download");
                let body = r
                    .body_mut()
                    .with_config()
                    .limit(100 << 20)
                    .read_to_vec()
                    .expect("the whole body");
                hex(&Sha256::digest(&body))
            })
        })
        .collect();
    for r in readers {
        assert_eq!(r.join().unwrap(), oid);
    }
    // Ranged reads through nginx.
    let http = Http::new(&c.nginx.url);
    let r = http.get(
        "/alice/s3/resolve/main/weights.bin.raw",
        Some(&c.token),
        Some("bytes=1000000-1000099"),
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, big[1_000_000..1_000_100]);
    // The index counted parameters from weights read through the store.
    let info = http
        .get("/api/models/alice/s3", Some(&c.token), None)
        .json();
    assert!(
        info["safetensors"]["total"].as_u64().unwrap_or(0) > 0,
        "{}",
        info["safetensors"]
    );
    // A dangerous pickle is refused: its scan reads it back from the bucket.
    let bad = c.root.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("pytorch_model.bin"),
        b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.",
    )
    .unwrap();
    let out = c.zoo(&b, "cache-b", &["push", bad.to_str().unwrap(), "alice/s3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dangerous"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = http
        .get("/api/models/alice/s3", Some(&c.token), None)
        .json();
    assert_eq!(
        info["sha"], pushed["commit"],
        "the refused push changed nothing"
    );
    // An LFS upload whose bytes do not hash to the announced oid (20 MB: a multipart upload
    // to the blob's own key) is refused and leaves no object.
    let claimed: Vec<u8> = vec![7u8; 20_000_000];
    let claimed_oid = hex(&Sha256::digest(&claimed));
    let batch = Http::new(&a).post(
        "/alice/s3.git/info/lfs/objects/batch",
        &c.token,
        &serde_json::json!({"operation": "upload", "transfers": ["basic"], "objects": [{"oid": claimed_oid, "size": claimed.len()}], "hash_algo": "sha256"}),
    );
    let href = batch.json()["objects"][0]["actions"]["upload"]["href"]
        .as_str()
        .unwrap()
        .to_string();
    let mut forged = claimed;
    forged[19_999_999] = 8;
    let r = Http::new(&a).put(&href, &forged);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        bucket_keys(&rgw, "zoo/")
            .iter()
            .all(|k| !k.ends_with(&claimed_oid)),
        "a blob that failed its hash is in the bucket"
    );
    assert_eq!(
        Http::new(&b)
            .get("/api/models/alice/s3", Some(&c.token), None)
            .status,
        200
    );
    // Garbage collection through the bucket: the repository deleted, its blobs go.
    let r = Http::new(&a)
        .agent
        .delete(format!("{a}/api/repos/delete"))
        .header("Authorization", format!("Bearer {}", c.token))
        .force_send_body()
        .send_json(serde_json::json!({"name": "s3", "organization": "alice", "type": "model"}))
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let out = Command::new(ZOO)
        .args(["admin", "gc", "--grace", "0", "--json", "--data"])
        .arg(c.root.path().join("admin"))
        .args([
            "--database",
            &c.database,
            "--blobs",
            &format!("s3://{}/zoo", rgw.bucket),
        ])
        .envs(rgw.env())
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert!(
        report["collected"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == &oid),
        "{report}"
    );
    assert!(
        bucket_keys(&rgw, "zoo/blobs/").is_empty(),
        "{:#?}",
        bucket_keys(&rgw, "zoo/")
    );
    // The Python client's default upload path, Xet (hf_xet), through nginx into the bucket,
    // and back.
    let python = std::env::var("ZOO_PYTHON")
        .expect("ZOO_PYTHON: a python with huggingface_hub==1.33.0 (scripts/test.sh sets it)");
    let script = r#"
import hashlib, os, sys
import hf_xet  # noqa: F401
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.utils._runtime import is_xet_available
assert is_xet_available()
data = os.urandom(20_000_000)
api = HfApi()
api.create_repo("alice/xet", exist_ok=True)
api.upload_file(path_or_fileobj=data, path_in_repo="weights.bin", repo_id="alice/xet")
p = hf_hub_download("alice/xet", "weights.bin", cache_dir=sys.argv[1])
got = open(p, "rb").read()
assert got == data, "the bytes differ"
print(hashlib.sha256(data).hexdigest())
"#;
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(c.root.path().join("xet-cache"))
        .env("HF_ENDPOINT", &c.nginx.url)
        .env("HF_TOKEN", &c.token)
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env_remove("HF_HUB_DISABLE_XET")
        .output()
        .unwrap();
    let sha = ok(&out).trim().to_string();
    let keys = bucket_keys(&rgw, "zoo/blobs/");
    assert!(
        keys.iter().any(|k| k.ends_with(&sha)),
        "the uploaded file is stored under its sha256: {keys:#?}"
    );
}

/// Issue 14: replicas on one PostgreSQL with blobs left in each one's data directory would
/// disagree about which files exist: `zoo serve` refuses to start so.
#[test]
fn postgres_without_shared_blobs_is_refused_issue_14() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(ZOO)
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("r1"))
        .args(["--database", &pg.url])
        .env_remove("ZOO_BLOBS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must share their blobs"), "{err}");
}

/// Issue 14: `--blobs-redirect` answers downloads of LFS files with a 302 to a presigned RGW
/// URL (the metadata headers on the redirect, as the Hub's CDN redirects carry them), and the
/// clients follow it: zoo, huggingface_hub, a ranged GET. Regular files stay direct; a store
/// without presigned URLs refuses the flag.
#[test]
fn downloads_redirect_to_presigned_object_store_urls_issue_14() {
    let python = std::env::var("ZOO_PYTHON")
        .expect("ZOO_PYTHON: a python with huggingface_hub==1.33.0 (scripts/test.sh sets it)");
    let rgw = Rgw::start();
    let pg = Postgres::start();
    let root = tempfile::tempdir().unwrap();
    let blobs = format!("s3://{}/redirect", rgw.bucket);
    let env = rgw.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stores = ["--database", pg.url.as_str(), "--blobs", blobs.as_str()];
    let admin = |args: &[&str]| {
        let out = Command::new(ZOO)
            .arg("admin")
            .args(args)
            .arg("--data")
            .arg(root.path().join("admin"))
            .args(["--database", &pg.url])
            .output()
            .unwrap();
        ok(&out).trim().to_string()
    };
    admin(&["user", "add", "alice"]);
    let token = admin(&["token", "create", "--user", "alice", "--scope", "write"]);
    let mut args = stores.to_vec();
    args.push("--blobs-redirect");
    let server = Server::start(&root.path().join("replica"), &args, &env);
    let http = Http::new(&server.url);
    http.create(&token, "alice/r", false);
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let oid = http.lfs_upload(&token, "alice/r", &big);
    let lfs = serde_json::json!({"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": big.len()}});
    let r = http.commit(&token, "alice/r", &[("config.json", b"{}")], &[lfs]);
    assert_eq!(r.status, 200);
    let head = http.head_commit(&token, "alice/r");
    // The redirect, with the metadata the clients read from it.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let r = Http::reply(
        agent
            .head(format!("{}/alice/r/resolve/main/w.bin", server.url))
            .call(),
    );
    assert_eq!(r.status, 302);
    let location = r.header("location").unwrap().to_string();
    assert!(location.starts_with(&rgw.endpoint), "{location}");
    assert_eq!(
        r.header("x-linked-etag"),
        Some(format!("\"{oid}\"").as_str())
    );
    assert_eq!(
        r.header("x-linked-size"),
        Some(big.len().to_string().as_str())
    );
    assert_eq!(r.header("x-repo-commit"), Some(head.as_str()));
    // The presigned URL serves ranges itself.
    let r = Http::reply(agent.get(&location).header("Range", "bytes=100-199").call());
    assert_eq!(r.status, 206);
    assert_eq!(r.body, big[100..200]);
    // A regular file is served here.
    let r = Http::reply(
        agent
            .get(format!("{}/alice/r/resolve/main/config.json", server.url))
            .call(),
    );
    assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
    // zoo and huggingface_hub follow it.
    let out = Command::new(ZOO)
        .args(["download", "alice/r", "--json"])
        .env("HF_ENDPOINT", &server.url)
        .env("HF_HUB_CACHE", root.path().join("cache"))
        .env("HF_HOME", root.path().join("hf-home"))
        .env("HF_TOKEN", &token)
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    let text = ok(&out);
    let snap = PathBuf::from(
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["snapshot"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string()),
    );
    assert_eq!(std::fs::read(snap.join("w.bin")).unwrap(), big);
    let script = r#"
import sys
from huggingface_hub import hf_hub_download
print(hf_hub_download("alice/r", "w.bin", cache_dir=sys.argv[1]))
"#;
    // (By another host name than the store's, as in any real deployment: huggingface_hub
    // keeps its token for URLs on the hub's own host, and a presigned URL takes no token.)
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(root.path().join("py-cache"))
        .env("HF_ENDPOINT", server.url.replace("127.0.0.1", "localhost"))
        .env("HF_TOKEN", &token)
        .env("HF_HUB_DISABLE_XET", "1")
        .output()
        .unwrap();
    let path = ok(&out);
    assert_eq!(std::fs::read(path.trim()).unwrap(), big);
    // Without an object store there is nothing to redirect to.
    let out = Command::new(ZOO)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--blobs-redirect",
            "--data",
        ])
        .arg(root.path().join("plain"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("presigned"));
}
