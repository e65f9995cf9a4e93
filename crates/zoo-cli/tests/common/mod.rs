//! Shared by the integration tests that run `zoo serve`: the server process, admin
//! commands, a small HTTP helper.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
#[allow(unused_imports)]
pub use zoo_testkit::real_fixtures;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const ZOO: &str = env!("CARGO_BIN_EXE_zoo");

/// A `zoo serve` child process; killed (SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub log: Arc<Mutex<String>>,
}

impl Server {
    pub fn start(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let addr = if args.contains(&"--addr") {
            &[][..]
        } else {
            &["--addr", "127.0.0.1:0"][..]
        };
        let mut child = Command::new(ZOO)
            .arg("serve")
            .args(addr)
            .arg("--data")
            .arg(data)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        let log = Arc::new(Mutex::new(line.clone()));
        let (l1, l2) = (log.clone(), log.clone());
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            l1.lock().unwrap().push_str(&s);
        });
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            l2.lock().unwrap().push_str(&s);
        });
        Server { child, url, log }
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command's standard output; fails the test, with both streams, when it did not succeed.
pub fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn admin(data: &Path, args: &[&str]) -> String {
    let out = Command::new(ZOO)
        .arg("admin")
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "zoo admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A user with a token of the given scope.
pub fn user(data: &Path, name: &str, scope: &str) -> String {
    admin(data, &["user", "add", name]);
    admin(data, &["token", "create", "--user", name, "--scope", scope])
}

pub struct Http {
    pub agent: ureq::Agent,
    pub base: String,
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Http {
    pub fn new(base: &str) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Http {
            agent,
            base: base.to_string(),
        }
    }

    pub fn reply(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut r = r.unwrap();
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = r
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap_or_default();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>, range: Option<&str>) -> Reply {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(r) = range {
            req = req.header("Range", r);
        }
        Self::reply(req.call())
    }

    pub fn head(&self, path: &str) -> Reply {
        Self::reply(self.agent.head(format!("{}{path}", self.base)).call())
    }

    pub fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        Self::reply(
            self.agent
                .post(format!("{}{path}", self.base))
                .header("Authorization", format!("Bearer {token}"))
                .send_json(body),
        )
    }

    pub fn put(&self, url: &str, bytes: &[u8]) -> Reply {
        Self::reply(self.agent.put(url).send(bytes))
    }

    pub fn create(&self, token: &str, id: &str, private: bool) {
        let r = self.post(
            "/api/repos/create",
            token,
            &json!({"name": id, "private": private}),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }

    /// An ndjson commit of regular files (`(path, bytes)`) and raw extra lines.
    pub fn commit(
        &self,
        token: &str,
        repo: &str,
        files: &[(&str, &[u8])],
        extra: &[Value],
    ) -> Reply {
        let mut lines = vec![
            json!({"key": "header", "value": {"summary": "test commit", "description": ""}})
                .to_string(),
        ];
        for (path, bytes) in files {
            let content = base64::engine::general_purpose::STANDARD.encode(bytes);
            lines.push(json!({"key": "file", "value": {"path": path, "content": content, "encoding": "base64"}}).to_string());
        }
        lines.extend(extra.iter().map(Value::to_string));
        let body = lines.join("\n") + "\n";
        Self::reply(
            self.agent
                .post(format!("{}/api/models/{repo}/commit/main", self.base))
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", "application/x-ndjson")
                .send(body.as_bytes()),
        )
    }

    /// Uploads bytes through the LFS batch API; returns the oid.
    pub fn lfs_upload(&self, token: &str, repo: &str, bytes: &[u8]) -> String {
        let oid = hex(&Sha256::digest(bytes));
        let batch = self.post(
            &format!("/{repo}.git/info/lfs/objects/batch"),
            token,
            &json!({"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": bytes.len()}], "hash_algo": "sha256"}),
        );
        assert_eq!(batch.status, 200);
        let obj = &batch.json()["objects"][0];
        if let Some(href) = obj["actions"]["upload"]["href"].as_str() {
            let r = self.put(href, bytes);
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        }
        oid
    }

    pub fn head_commit(&self, token: &str, repo: &str) -> String {
        self.get(&format!("/api/models/{repo}"), Some(token), None)
            .json()["sha"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../zoo-checkpoint/tests/fixtures")
}

pub mod proxy;
