//! Issue 16's fault campaign: `kill -9` of the server at random points while clients push
//! (regular files, LFS and Xet uploads, commits), and of `zoo download` at random points
//! while it pulls. After each server kill the hub restarts on the same data: every commit a
//! client saw succeed is there, every file it names reads back with its hash, and no blob in
//! the store differs from its name. After each client kill the next pull completes and
//! `zoo cache verify` is clean.
//!
//! `ZOO_KILLS` sets the rounds of each (CI: 6; the campaign in the closing note: 50).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zoo_hub::xet::{self, FileInfo, Hash, Term};

mod common;
use common::*;

fn rounds() -> u64 {
    std::env::var("ZOO_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
}

/// xorshift64*: reproducible kill points and contents from the round number.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Between `lo` and `lo + spread` random bytes.
    fn sized(&mut self, lo: usize, spread: u64) -> Vec<u8> {
        let n = lo + self.below(spread) as usize;
        self.bytes(n)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// A commit a client saw succeed, with the sha256 of every file it wrote.
#[derive(Debug, Clone)]
struct Done {
    oid: String,
    files: Vec<(String, String)>,
}

/// A client that gives up at the first transport error (the server is gone).
struct Pusher {
    agent: ureq::Agent,
    base: String,
    token: String,
    repo: String,
}

type Step<T> = Result<T, String>;

impl Pusher {
    fn send(&self, method: &str, url: &str, token: &str, body: &[u8], ct: &str) -> Step<Value> {
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            format!("{}{url}", self.base)
        };
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", ct)
            .body(body.to_vec())
            .unwrap();
        let mut r = self.agent.run(req).map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
        if status != 200 {
            // The hub answering an error to a well-formed request is a finding, not a kill.
            panic!("{method} {url}: {status} {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn commit(&self, lines: Vec<Value>) -> Step<String> {
        let mut body = vec![json!({"key": "header", "value": {"summary": "kill campaign"}})];
        body.extend(lines);
        let body: Vec<String> = body.iter().map(Value::to_string).collect();
        let v = self.send(
            "POST",
            &format!("/api/models/{}/commit/main", self.repo),
            &self.token,
            (body.join("\n") + "\n").as_bytes(),
            "application/x-ndjson",
        )?;
        Ok(v["commitOid"].as_str().expect("commitOid").to_string())
    }

    fn lfs_line(path: &str, bytes: &[u8]) -> (Value, String) {
        let oid = hex(&Sha256::digest(bytes));
        (
            json!({"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": bytes.len()}}),
            oid,
        )
    }

    /// Regular files inline in the commit.
    fn regular(&self, rng: &mut Rng, dir: &str) -> Step<Done> {
        let mut files = Vec::new();
        let mut lines = Vec::new();
        for j in 0..3 {
            let bytes = rng.sized(1, 200_000);
            let path = format!("{dir}/f{j}.txt");
            files.push((path.clone(), hex(&Sha256::digest(&bytes))));
            let content = base64::engine::general_purpose::STANDARD.encode(&bytes);
            lines.push(json!({"key": "file", "value": {"path": path, "content": content, "encoding": "base64"}}));
        }
        Ok(Done {
            oid: self.commit(lines)?,
            files,
        })
    }

    /// One file through the LFS batch API and a PUT, then the commit naming it.
    fn lfs(&self, rng: &mut Rng, dir: &str) -> Step<Done> {
        let bytes = rng.sized(1_000_000, 7_000_000);
        let path = format!("{dir}/w.bin");
        let (line, oid) = Self::lfs_line(&path, &bytes);
        let batch = json!({"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": bytes.len()}], "hash_algo": "sha256"});
        let v = self.send(
            "POST",
            &format!("/{}.git/info/lfs/objects/batch", self.repo),
            &self.token,
            batch.to_string().as_bytes(),
            "application/vnd.git-lfs+json",
        )?;
        if let Some(href) = v["objects"][0]["actions"]["upload"]["href"].as_str() {
            self.send("PUT", href, &self.token, &bytes, "application/octet-stream")?;
        }
        Ok(Done {
            oid: self.commit(vec![line])?,
            files: vec![(path, oid)],
        })
    }

    /// One file as a xorb and a shard through the Xet CAS, then the commit naming it.
    fn xet(&self, rng: &mut Rng, dir: &str) -> Step<Done> {
        let v = self.send(
            "GET",
            &format!("/api/models/{}/xet-write-token/main", self.repo),
            &self.token,
            b"",
            "application/json",
        )?;
        let cas = v["casUrl"].as_str().unwrap().to_string();
        let cas_token = v["accessToken"].as_str().unwrap().to_string();
        let chunks: Vec<Vec<u8>> = (0..1 + rng.below(4))
            .map(|_| rng.sized(10_000, 60_000))
            .collect();
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let (xorb, hash) = xet::xorb_bytes(&refs);
        let content = chunks.concat();
        let digest: [u8; 32] = Sha256::digest(&content).into();
        let hashes: Vec<Hash> = chunks.iter().map(|c| xet::chunk_hash(c)).collect();
        let shard = xet::shard_bytes(&[FileInfo {
            file_hash: Hash(rng.bytes(32).try_into().unwrap()),
            terms: vec![Term {
                xorb: hash,
                bytes: content.len() as u32,
                chunk_start: 0,
                chunk_end: chunks.len() as u32,
                verification: Some(xet::verification_hash(&hashes)),
            }],
            sha256: Some(Hash::from_hex(&hex(&digest)).unwrap().0),
        }]);
        let ct = "application/octet-stream";
        let url = format!("{cas}/v1/xorbs/default/{}", hash.hex());
        self.send("POST", &url, &cas_token, &xorb, ct)?;
        self.send("POST", &format!("{cas}/v1/shards"), &cas_token, &shard, ct)?;
        let path = format!("{dir}/x.bin");
        let (line, oid) = Self::lfs_line(&path, &content);
        Ok(Done {
            oid: self.commit(vec![line])?,
            files: vec![(path, oid)],
        })
    }
}

fn sha_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Every file under the blob store is named by the sha256 of its content; returns how many.
fn check_blob_store(data: &Path) -> usize {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&data.join("blobs"), &mut files);
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        let found = sha_hex(&std::fs::read(f).unwrap());
        assert_eq!(found, name, "blob {f:?} does not match its name");
    }
    files.len()
}

#[test]
fn server_killed_mid_write_keeps_every_completed_commit_issue_16() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = user(&data, "alice", "write");
    let repo = "alice/kills".to_string();
    let mut server = Server::start(&data, &[], &[]);
    Http::new(&server.url).create(&token, &repo, false);
    let done: Arc<Mutex<Vec<Done>>> = Arc::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Which step each kill interrupted: regular-file commit, LFS upload, Xet upload.
    let mut interrupted = [0u64; 3];
    for round in 0..rounds() {
        if round > 0 {
            server = Server::start(&data, &[], &[]);
        }
        let pusher = Pusher {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
            base: server.url.clone(),
            token: token.clone(),
            repo: repo.clone(),
        };
        let (done2, seed) = (done.clone(), rng.next() | 1);
        let worker = std::thread::spawn(move || {
            let mut rng = Rng(seed);
            for i in 0.. {
                let dir = format!("r{round}/{i}");
                let step = match (round + i) % 3 {
                    0 => pusher.regular(&mut rng, &dir),
                    1 => pusher.lfs(&mut rng, &dir),
                    _ => pusher.xet(&mut rng, &dir),
                };
                match step {
                    Ok(d) => done2.lock().unwrap().push(d),
                    Err(_) => return ((round + i) % 3) as usize,
                }
            }
            unreachable!()
        });
        std::thread::sleep(Duration::from_millis(30 + rng.below(600)));
        server.kill9();
        interrupted[worker.join().unwrap()] += 1;
    }
    // Restarted on the same data: every completed commit and every file it wrote.
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    let done = done.lock().unwrap().clone();
    assert!(!done.is_empty(), "no commit completed before the kills");
    let mut checked = 0;
    for d in &done {
        let r = http.get(
            &format!("/api/models/{repo}/revision/{}", d.oid),
            Some(&token),
            None,
        );
        assert_eq!(r.status, 200, "completed commit {} is gone", d.oid);
        for (path, sha) in &d.files {
            let r = http.get(
                &format!("/{repo}/resolve/{}/{path}", d.oid),
                Some(&token),
                None,
            );
            assert_eq!(r.status, 200, "{path} at {}", d.oid);
            assert_eq!(&sha_hex(&r.body), sha, "{path} at {}", d.oid);
            checked += 1;
        }
    }
    // What main shows is whole: every file of its tree reads back with its recorded hash.
    let tree = http
        .get(
            &format!("/api/models/{repo}/tree/main?recursive=true"),
            Some(&token),
            None,
        )
        .json();
    let mut at_head = BTreeMap::new();
    for e in tree.as_array().unwrap() {
        if e["type"] != "file" {
            continue;
        }
        let path = e["path"].as_str().unwrap();
        let r = http.get(&format!("/{repo}/resolve/main/{path}"), Some(&token), None);
        assert_eq!(r.status, 200, "{path}");
        if let Some(sha) = e["lfs"]["oid"].as_str() {
            assert_eq!(sha_hex(&r.body), sha, "{path} at main");
        }
        assert_eq!(r.body.len() as u64, e["size"].as_u64().unwrap(), "{path}");
        at_head.insert(path.to_string(), ());
    }
    for d in &done {
        for (path, _) in &d.files {
            assert!(at_head.contains_key(path), "{path} missing from main");
        }
    }
    let blobs = check_blob_store(&data);
    // The restarted hub removed the temporary folders of the killed ones: what is left in
    // tmp/ is its own folder (empty: no upload is running) and its lock.
    let tmp: Vec<_> = std::fs::read_dir(data.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(tmp.len(), 2, "left in tmp/: {tmp:?}");
    let own = tmp
        .iter()
        .find(|p| p.is_dir())
        .expect("the live hub's folder");
    assert_eq!(std::fs::read_dir(own).unwrap().count(), 0, "{own:?}");
    eprintln!(
        "server kills: {} rounds (interrupting {} regular-file commits, {} LFS uploads, {} Xet uploads), {} commits completed, {checked} files read back by hash, {} files at main, {blobs} blobs hash-checked, tmp/ holding only the live hub's empty folder",
        rounds(),
        interrupted[0],
        interrupted[1],
        interrupted[2],
        done.len(),
        at_head.len()
    );
}

#[test]
fn client_killed_mid_pull_next_pull_completes_issue_16() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = root.join("data");
    let token = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    http.create(&token, "alice/pull", false);
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let big = rng.bytes(64 << 20);
    let small: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| (format!("small/{i}.txt"), rng.bytes(1000 + i * 5000)))
        .collect();
    let mid = rng.bytes(6 << 20);
    let (oid, mid_oid) = (
        http.lfs_upload(&token, "alice/pull", &big),
        http.lfs_upload(&token, "alice/pull", &mid),
    );
    let files: Vec<(&str, &[u8])> = small
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let lfs = [
        json!({"key": "lfsFile", "value": {"path": "big.bin", "algo": "sha256", "oid": oid, "size": big.len()}}),
        json!({"key": "lfsFile", "value": {"path": "mid.bin", "algo": "sha256", "oid": mid_oid, "size": mid.len()}}),
    ];
    assert_eq!(http.commit(&token, "alice/pull", &files, &lfs).status, 200);
    let mut expected: Vec<(String, String)> =
        small.iter().map(|(p, b)| (p.clone(), sha_hex(b))).collect();
    expected.push(("big.bin".into(), oid));
    expected.push(("mid.bin".into(), mid_oid));
    let zoo = |cache: &Path, args: &[&str]| {
        let mut c = Command::new(ZOO);
        c.args(args)
            .env("HF_ENDPOINT", &server.url)
            .env("HF_HUB_CACHE", cache)
            .env("HF_HOME", root.join("hf-home"))
            .env("HF_TOKEN", &token)
            .env_remove("HF_HUB_OFFLINE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    // How long a whole pull takes here: the kill points spread over it.
    let t = Instant::now();
    ok(&zoo(&root.join("c-timing"), &["download", "alice/pull"])
        .output()
        .unwrap());
    let full = t.elapsed().as_millis() as u64;
    let mut killed_mid = 0;
    for round in 0..rounds() {
        let cache = root.join(format!("c{round}"));
        let mut child = zoo(&cache, &["download", "alice/pull"]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(full * 11 / 10 + 1)));
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        killed_mid += u64::from(!finished);
        // A killed pull's leftovers are not corruption, and the next pull completes.
        ok(&zoo(&cache, &["cache", "verify"]).output().unwrap());
        let snap =
            PathBuf::from(ok(&zoo(&cache, &["download", "alice/pull"]).output().unwrap()).trim());
        for (path, sha) in &expected {
            let bytes = std::fs::read(snap.join(path)).unwrap();
            assert_eq!(&sha_hex(&bytes), sha, "round {round}: {path}");
        }
        let v = ok(&zoo(&cache, &["cache", "verify"]).output().unwrap());
        assert!(v.contains("0 corrupt blobs, 0 left"), "round {round}: {v}");
        std::fs::remove_dir_all(&cache).unwrap();
    }
    eprintln!(
        "client kills: {} rounds ({killed_mid} killed mid-pull), a whole pull takes {full} ms; every next pull complete and hash-verified, cache verify clean",
        rounds()
    );
    assert!(
        killed_mid * 2 >= rounds(),
        "most kills should land mid-pull"
    );
}
