//! Issue 14: `zoo admin gc` deletes the blobs nothing names any more — a deleted
//! repository's, an abandoned upload's — once older than the grace period, keeps every
//! referenced one, and never breaks uploads and commits running at the same time.

use std::process::Command;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

mod common;
use common::*;

fn gc(data: &std::path::Path, args: &[&str]) -> Value {
    let out = Command::new(ZOO)
        .args(["admin", "gc", "--json", "--data"])
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "zoo admin gc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn blob_path(data: &std::path::Path, oid: &str) -> std::path::PathBuf {
    data.join("blobs")
        .join(&oid[..2])
        .join(&oid[2..4])
        .join(oid)
}

fn commit_lfs(http: &Http, token: &str, repo: &str, path: &str, bytes: &[u8]) -> String {
    let oid = http.lfs_upload(token, repo, bytes);
    let lfs = json!({"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": bytes.len()}});
    let r = http.commit(token, repo, &[], &[lfs]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    oid
}

#[test]
fn gc_collects_what_nothing_names_after_the_grace_period_issue_14() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    http.create(&alice, "alice/keep", false);
    http.create(&alice, "alice/drop", false);
    let kept = commit_lfs(&http, &alice, "alice/keep", "w.bin", &vec![1u8; 300_000]);
    let dropped = commit_lfs(&http, &alice, "alice/drop", "w.bin", &vec![2u8; 300_000]);
    // An upload never committed.
    let abandoned = http.lfs_upload(&alice, "alice/keep", &vec![3u8; 300_000]);
    // Dry run: the abandoned upload only; nothing deleted.
    let r = gc(&data, &["--grace", "0", "--dry-run"]);
    assert_eq!(r["collected"], json!([abandoned]), "{r}");
    assert!(blob_path(&data, &abandoned).exists());
    // Within the grace period: kept as young.
    let r = gc(&data, &["--grace", "1h"]);
    assert_eq!(r["young"], 1, "{r}");
    assert_eq!(r["collected"], json!([]));
    assert!(blob_path(&data, &abandoned).exists());
    // A deleted repository's blobs go, with the abandoned upload; referenced ones stay.
    let r = http
        .agent
        .delete(format!("{}/api/repos/delete", server.url))
        .header("Authorization", format!("Bearer {alice}"))
        .force_send_body()
        .send_json(json!({"name": "drop", "organization": "alice", "type": "model"}))
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = gc(&data, &["--grace", "0"]);
    let mut collected: Vec<String> = r["collected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    collected.sort();
    let mut expected = vec![dropped.clone(), abandoned.clone()];
    expected.sort();
    assert_eq!(collected, expected, "{r}");
    assert!(!blob_path(&data, &dropped).exists());
    assert!(!blob_path(&data, &abandoned).exists());
    assert!(blob_path(&data, &kept).exists());
    let got = http.get("/alice/keep/resolve/main/w.bin", None, None);
    assert_eq!(got.status, 200);
    assert_eq!(hex(&Sha256::digest(&got.body)), kept);
}

/// Uploads and commits while gc runs again and again: every committed file stays whole.
#[test]
fn gc_during_uploads_loses_nothing_issue_14() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    http.create(&alice, "alice/busy", false);
    let url = server.url.clone();
    let token = alice;
    let uploader = std::thread::spawn(move || {
        let http = Http::new(&url);
        (0..12u8)
            .map(|i| {
                let bytes = vec![i; 200_000 + i as usize];
                let oid = commit_lfs(&http, &token, "alice/busy", &format!("f{i}.bin"), &bytes);
                (format!("f{i}.bin"), oid)
            })
            .collect::<Vec<_>>()
    });
    let mut runs = 0;
    while !uploader.is_finished() || runs < 3 {
        gc(&data, &["--grace", "60s"]);
        runs += 1;
    }
    let files = uploader.join().unwrap();
    gc(&data, &["--grace", "0"]);
    for (path, oid) in files {
        let got = http.get(&format!("/alice/busy/resolve/main/{path}"), None, None);
        assert_eq!(got.status, 200, "{path}");
        assert_eq!(hex(&Sha256::digest(&got.body)), oid, "{path}");
    }
    assert!(runs >= 3);
}
