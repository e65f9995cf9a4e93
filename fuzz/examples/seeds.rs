//! Writes seed inputs for the fuzz targets that start from structured bytes (run by
//! `fuzz/run.sh`): ndjson commits, LFS batches, a xorb and its shard, tokenizer folders.
use std::path::Path;

use zoo_hub::xet::{FileInfo, Hash, Term, chunk_hash, shard_bytes, verification_hash, xorb_bytes};

fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let oid = "a".repeat(64);
    put(
        "commit_ndjson",
        "seed",
        format!(
            "{}\n{}\n{}\n{}\n{}\n",
            r#"{"key":"header","value":{"summary":"s","description":"d","parentCommit":"0123"}}"#,
            r#"{"key":"file","value":{"path":"a/b.txt","content":"aGVsbG8=","encoding":"base64"}}"#,
            format_args!(
                r#"{{"key":"lfsFile","value":{{"path":"w.safetensors","algo":"sha256","oid":"{oid}","size":12}}}}"#
            ),
            r#"{"key":"deletedFile","value":{"path":"old.txt"}}"#,
            r#"{"key":"deletedFolder","value":{"path":"logs/"}}"#,
        )
        .as_bytes(),
    );
    put(
        "lfs_batch",
        "seed",
        format!(
            r#"{{"operation":"upload","transfers":["basic"],"objects":[{{"oid":"{oid}","size":12}},{{"oid":"AB","size":1}}],"hash_algo":"sha256"}}"#
        )
        .as_bytes(),
    );
    let chunks: Vec<Vec<u8>> = (0..3u8)
        .map(|i| vec![i + 1; 100 + usize::from(i)])
        .collect();
    let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
    let (xorb, hash) = xorb_bytes(&refs);
    put("xet_xorb", "seed", &xorb);
    let hashes: Vec<Hash> = chunks.iter().map(|c| chunk_hash(c)).collect();
    let shard = shard_bytes(&[FileInfo {
        file_hash: Hash([9; 32]),
        terms: vec![Term {
            xorb: hash,
            bytes: chunks.iter().map(|c| c.len() as u32).sum(),
            chunk_start: 0,
            chunk_end: 3,
            verification: Some(verification_hash(&hashes)),
        }],
        sha256: Some([7; 32]),
    }]);
    put("xet_shard", "seed", &shard);
    let sep = [0xFFu8];
    let vocab = b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n##s\n";
    let cfg = br#"{"do_lower_case":true,"unk_token":"[UNK]"}"#;
    let st = br#"{"max_seq_length":8}"#;
    put(
        "text_loaders",
        "vocab",
        &[
            &[1u8][..],
            vocab,
            &sep,
            cfg,
            &sep,
            st,
            &sep,
            b"Hello worlds",
        ]
        .concat(),
    );
    let json = br#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,"model":{"type":"WordLevel","vocab":{"[PAD]":0,"[UNK]":1,"hello":2,"world":3},"unk_token":"[UNK]"}}"#;
    put(
        "text_loaders",
        "json",
        &[
            &[0u8][..],
            json,
            &sep,
            b"{}",
            &sep,
            st,
            &sep,
            b"hello world",
        ]
        .concat(),
    );
}
