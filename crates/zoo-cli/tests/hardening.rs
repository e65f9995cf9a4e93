//! Issue 16: request values that overflowed or slipped past the hub's checks, against the
//! real server (the test binary is built with overflow checks on, as the quickstart's is).

use serde_json::json;

mod common;
use common::*;

#[test]
fn cursors_and_ranges_at_the_edge_of_u64_are_answered_not_panicked_on_issue_16() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let alice = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    http.create(&alice, "alice/m", false);
    let bytes: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let r = http.commit(&alice, "alice/m", &[("w.bin", &bytes)], &[]);
    assert_eq!(r.status, 200);
    let max = u64::MAX.to_string();
    // Cursors: an empty page, not a dropped connection.
    for path in [
        format!("/api/models?cursor={max}"),
        format!("/api/models?cursor={max}&limit=10000"),
        format!("/api/models/alice/m/tree/main?cursor={max}"),
        format!("/api/models/alice/m/commits/main?cursor={max}"),
    ] {
        let r = http.get(&path, None, None);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.json(), json!([]), "{path}");
    }
    // Ranges, by RFC 9110: an end past the file is clamped, a start past it unsatisfiable,
    // a header that does not parse ignored.
    let get = |range: &str| http.get("/alice/m/resolve/main/w.bin", None, Some(range));
    let r = get(&format!("bytes=0-{max}"));
    assert_eq!((r.status, r.body.len()), (206, 1000));
    assert_eq!(r.header("content-range"), Some("bytes 0-999/1000"));
    let r = get(&format!("bytes=990-{max}"));
    assert_eq!((r.status, r.body.as_slice()), (206, &bytes[990..]));
    for bad in [
        format!("bytes={max}-"),
        format!("bytes={max}-{max}"),
        "bytes=-0".into(),
    ] {
        let r = get(&bad);
        assert_eq!(r.status, 416, "{bad}");
        assert_eq!(r.header("content-range"), Some("bytes */1000"), "{bad}");
    }
    for ignored in ["bytes=abc", "pages=0-1", "bytes=5-2"] {
        let r = get(ignored);
        assert_eq!((r.status, r.body.len()), (200, 1000), "{ignored}");
    }
    // An end beyond u64: the whole file either way, never a panic.
    let r = get(&format!("bytes=0-{max}0"));
    assert!(
        matches!(r.status, 200 | 206) && r.body == bytes,
        "{}",
        r.status
    );
    // Signed links with signatures that are not even hex: refused, not a panic.
    for sig in ["zz", "", &"0".repeat(64), "%ff"] {
        let r = http.get(
            &format!(
                "/api/lfs/objects/{}?expires=9999999999&sig={sig}",
                "a".repeat(64)
            ),
            None,
            None,
        );
        assert_eq!(r.status, 403, "sig {sig:?}");
    }
    // The server is still there.
    assert_eq!(http.get("/api/models", None, None).status, 200);
}
