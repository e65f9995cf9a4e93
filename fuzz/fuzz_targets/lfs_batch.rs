//! The LFS batch request body (issue 16): parsed or refused, never a panic; oids come out
//! lower-cased.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = zoo_hub::wire::parse_lfs_batch(data) {
        for o in &batch.objects {
            assert!(!o.oid.bytes().any(|b| b.is_ascii_uppercase()));
            let _ = o.valid_oid();
        }
    }
});
