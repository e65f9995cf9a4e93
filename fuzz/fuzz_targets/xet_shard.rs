//! Xet upload shards (issue 16): parsed or refused, never a panic or an allocation the
//! input's length does not pay for; a parsed shard serializes back to one that parses equal.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zoo_hub::xet::{parse_shard, shard_bytes};

fuzz_target!(|data: &[u8]| {
    if let Ok(files) = parse_shard(data) {
        let _ = files.iter().map(|f| f.size()).sum::<u64>();
        let again = parse_shard(&shard_bytes(&files)).expect("a serialized shard parses");
        assert_eq!(again, files);
    }
});
