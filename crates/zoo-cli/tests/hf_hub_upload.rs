//! The Rust `hf-hub` crate 1.0 uploading to `zoo serve` (issue 12): a small file, and a large
//! one that the hub classifies as LFS — which hf-hub commits inline (base64) when the LFS
//! batch answer is not `xet`; the hub accepts it at any size up to its commit limit.

use hf_hub_1::HFClient;
use hf_hub_1::repository::{AddSource, RepoTypeModel};

mod common;
use common::*;

#[test]
fn the_rust_hf_hub_crate_uploads_issue_12() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = user(&data, "alice", "write");
    let server = Server::start(&data, &[], &[]);
    let small = b"uploaded from Rust\n".to_vec();
    let big: Vec<u8> = (0..11_000_000u32).map(|i| (i % 253) as u8).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = HFClient::builder()
            .endpoint(server.url.clone())
            .token(token.clone())
            .cache_dir(dir.path().join("cache"))
            .build()
            .unwrap();
        client
            .create_repository()
            .repo_id("alice/rs")
            .repo_type(RepoTypeModel)
            .send()
            .await
            .unwrap();
        let repo = client.model("alice", "rs");
        repo.upload_file()
            .source(AddSource::Bytes(small.clone().into()))
            .path_in_repo("notes/hello.txt")
            .commit_message("small")
            .send()
            .await
            .unwrap();
        repo.upload_file()
            .source(AddSource::Bytes(big.clone().into()))
            .path_in_repo("big.raw")
            .commit_message("large")
            .send()
            .await
            .unwrap();
    });
    let http = Http::new(&server.url);
    assert_eq!(
        http.get("/alice/rs/resolve/main/notes/hello.txt", None, None)
            .body,
        small
    );
    assert_eq!(
        http.get("/alice/rs/resolve/main/big.raw", None, None).body,
        big
    );
    let info = http.get("/api/models/alice/rs", None, None).json();
    let titles: Vec<String> = http
        .get("/api/models/alice/rs/commits/main", None, None)
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(titles[..2], ["large", "small"], "{info}");
}
