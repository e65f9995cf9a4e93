//! Issue 16: the hub on a full disk. Its data folder is a small tmpfs; once it is full, an LFS
//! upload and inline commits (large, then tiny on a disk with no byte left) each get a clear
//! 507 naming the lack of space, nothing half-written becomes visible, what was there still reads back, and the
//! same requests succeed once space returns. (The client's side: `client.rs`,
//! `a_full_disk_is_a_clear_error_and_a_retry_succeeds`.)

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

mod common;
use common::*;

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Bytes free on the file system holding `path`.
fn free(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn pattern(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

#[test]
fn a_full_hub_disk_is_a_clear_507_and_a_retry_succeeds_issue_16() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "mounting a 48 MiB tmpfs needs root (CI runs as root)"
    );
    let _guard = Unmount(mnt.clone());
    let data = mnt.join("data");
    let token = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    http.create(&token, "alice/full", false);
    let a = pattern(200_000, 1);
    let b = pattern(4 << 20, 2);
    let b_oid = http.lfs_upload(&token, "alice/full", &b);
    let lfs_b = json!({"key": "lfsFile", "value": {"path": "b.bin", "algo": "sha256", "oid": b_oid, "size": b.len()}});
    assert_eq!(
        http.commit(&token, "alice/full", &[("a.txt", &a)], &[lfs_b])
            .status,
        200
    );
    let head = http.head_commit(&token, "alice/full");

    // Fill the disk to within 256 KiB.
    let filler = mnt.join("filler");
    let room = free(&mnt).saturating_sub(256 << 10);
    std::fs::write(&filler, vec![1u8; room as usize]).unwrap();

    // An LFS upload larger than what is left.
    let c = pattern(3 << 20, 3);
    let c_oid = hex(&Sha256::digest(&c));
    let batch = http.post(
        "/alice/full.git/info/lfs/objects/batch",
        &token,
        &json!({"operation": "upload", "objects": [{"oid": c_oid, "size": c.len()}]}),
    );
    assert_eq!(batch.status, 200);
    let href = batch.json()["objects"][0]["actions"]["upload"]["href"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http.put(&href, &c);
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert_eq!(r.status, 507, "{body}");
    assert!(body.contains("out of disk space"), "{body}");
    // A commit naming it is refused: it was not stored.
    let lfs_c = json!({"key": "lfsFile", "value": {"path": "c.bin", "algo": "sha256", "oid": c_oid, "size": c.len()}});
    let r = http.commit(&token, "alice/full", &[], std::slice::from_ref(&lfs_c));
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    // An inline file larger than what is left.
    let d = pattern(1 << 20, 4);
    let r = http.commit(&token, "alice/full", &[("d.txt", &d)], &[]);
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert_eq!(r.status, 507, "{body}");
    assert!(body.contains("out of"), "{body}");

    // Not a byte left: even a tiny commit is a clear 507.
    let last = mnt.join("filler-last");
    let mut f = std::fs::File::create(&last).unwrap();
    while std::io::Write::write_all(&mut f, &[2u8; 4096]).is_ok() {}
    drop(f);
    let r = http.commit(&token, "alice/full", &[("e.txt", b"tiny")], &[]);
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert_eq!(r.status, 507, "{body}");
    assert!(body.contains("out of"), "{body}");
    std::fs::remove_file(&last).unwrap();

    // Nothing moved: same head, same files, no blob of the refused content, no temporary file.
    assert_eq!(http.head_commit(&token, "alice/full"), head);
    for (path, bytes) in [("a.txt", &a), ("b.bin", &b)] {
        let r = http.get(&format!("/alice/full/resolve/main/{path}"), None, None);
        assert_eq!((r.status, &r.body), (200, bytes), "{path}");
    }
    for (path, bytes) in [("c.bin", &c), ("d.txt", &d)] {
        let r = http.get(&format!("/alice/full/resolve/main/{path}"), None, None);
        assert_eq!(r.status, 404, "{path}");
        let sha = hex(&Sha256::digest(bytes));
        assert!(
            !data
                .join("blobs")
                .join(&sha[..2])
                .join(&sha[2..4])
                .join(&sha)
                .exists(),
            "{path}"
        );
    }
    let tmp_files: usize = std::fs::read_dir(data.join("tmp"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| std::fs::read_dir(e.path()).unwrap().count())
        .sum();
    assert_eq!(tmp_files, 0, "temporary files left behind");

    // Space returns: the same requests succeed, and the server never went away.
    std::fs::remove_file(&filler).unwrap();
    let r = http.put(&href, &c);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = http.commit(&token, "alice/full", &[("d.txt", &d)], &[lfs_c]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    for (path, bytes) in [("a.txt", &a), ("b.bin", &b), ("c.bin", &c), ("d.txt", &d)] {
        let r = http.get(&format!("/alice/full/resolve/main/{path}"), None, None);
        assert_eq!((r.status, &r.body), (200, bytes), "{path}");
    }
    // The hub logged it (its output is collected when it exits).
    let mut server = server;
    server.kill9();
    let logged = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        server.log.lock().unwrap().contains("out of disk space")
    });
    assert!(logged, "{}", server.log.lock().unwrap());
}
