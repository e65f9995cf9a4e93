//! The hub's ndjson commit body (issue 16): any bytes are parsed or refused, never a panic;
//! every parsed path passes the hub's path rules and every LFS oid is a sha256.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zoo_hub::wire::{Op, parse_commit};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_commit(data) {
        assert!(!req.summary.is_empty());
        for op in &req.ops {
            let path = match op {
                Op::File { path, .. } | Op::Lfs { path, .. } | Op::DeleteFile(path) => path,
                Op::DeleteFolder(path) => {
                    assert!(!path.ends_with('/'));
                    continue;
                }
            };
            assert!(zoo_hub::paths::path_problem(path).is_none(), "{path:?}");
            if let Op::Lfs { oid, .. } = op {
                assert!(zoo_hub::blobs::is_sha256(oid), "{oid:?}");
            }
        }
    }
});
