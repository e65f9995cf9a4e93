//! Xet uploads through the router, in process (issue 12): the write token, xorbs and shards
//! as a client sends them, and every way a hostile or broken upload is refused with nothing
//! stored. The real client (huggingface_hub with hf_xet) runs in zoo-cli's tests.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt as _;
use zoo_hub::xet::{self, FileInfo, Hash, Term};
use zoo_hub::{Hub, HubConfig};

struct T {
    hub: Arc<Hub>,
    token: String,
    _dir: tempfile::TempDir,
}

impl T {
    /// A hub with user alice (write token) owning alice/a and alice/b, bob owning bob/c.
    fn new() -> T {
        let dir = tempfile::tempdir().unwrap();
        let hub = zoo_hub::open(HubConfig::new(dir.path().join("data"))).unwrap();
        let token = "zoo_test_alice".to_string();
        hub.meta.add_user("alice").unwrap();
        hub.meta.add_user("bob").unwrap();
        hub.meta
            .add_token("alice", "write", &zoo_hub::auth::hash_token(&token), "t")
            .unwrap();
        let kind = zoo_hub::meta::RepoKind::Model;
        for (ns, name) in [("alice", "a"), ("alice", "b"), ("bob", "c")] {
            hub.meta.create_repo(kind, ns, name, false, ns).unwrap();
        }
        T {
            hub: Arc::new(hub),
            token,
            _dir: dir,
        }
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        auth: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut r = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "hub.test");
        if let Some(a) = auth {
            r = r.header("authorization", format!("Bearer {a}"));
        }
        let resp = zoo_hub::router(self.hub.clone())
            .oneshot(r.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The Xet token and CAS URL path for alice's repository `name`.
    async fn xet(&self, name: &str) -> (String, String) {
        let (s, v) = self
            .call(
                "GET",
                &format!("/api/models/alice/{name}/xet-write-token/main"),
                Some(&self.token),
                vec![],
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let cas = v["casUrl"]
            .as_str()
            .unwrap()
            .strip_prefix("http://hub.test")
            .unwrap()
            .to_string();
        (v["accessToken"].as_str().unwrap().to_string(), cas)
    }

    async fn commit(&self, name: &str, path: &str, sha: &str, size: usize) -> (StatusCode, Value) {
        let body = [
            json!({"key": "header", "value": {"summary": "xet"}}),
            json!({"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": sha, "size": size}}),
        ]
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
        self.call(
            "POST",
            &format!("/api/models/alice/{name}/commit/main"),
            Some(&self.token),
            body.into_bytes(),
        )
        .await
    }
}

/// A file of three chunks in one xorb, and the shard that describes it.
fn file() -> (Vec<u8>, Vec<u8>, Hash, Vec<u8>) {
    let chunks: Vec<Vec<u8>> = (0..3u8)
        .map(|i| vec![i + 1; 1000 + usize::from(i)])
        .collect();
    let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
    let (xorb, hash) = xet::xorb_bytes(&refs);
    let content = chunks.concat();
    let shard = shard_for(&content, hash, &chunks, None);
    (content, xorb, hash, shard)
}

fn shard_for(content: &[u8], xorb: Hash, chunks: &[Vec<u8>], sha: Option<[u8; 32]>) -> Vec<u8> {
    let hashes: Vec<Hash> = chunks.iter().map(|c| xet::chunk_hash(c)).collect();
    let digest: [u8; 32] = Sha256::digest(content).into();
    // The shard carries the sha256 as a Xet hash, whose string form is the digest's hex.
    let sha = sha.unwrap_or_else(|| Hash::from_hex(&hex(&digest)).unwrap().0);
    xet::shard_bytes(&[FileInfo {
        file_hash: Hash([9; 32]),
        terms: vec![Term {
            xorb,
            bytes: content.len() as u32,
            chunk_start: 0,
            chunk_end: chunks.len() as u32,
            verification: Some(xet::verification_hash(&hashes)),
        }],
        sha256: Some(sha),
    }])
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_uploaded_through_xet_is_committed_and_served() {
    let t = T::new();
    let (content, xorb, hash, shard) = file();
    let (token, cas) = t.xet("a").await;
    let (s, v) = t
        .call(
            "POST",
            &format!("{cas}/v1/xorbs/default/{}", hash.hex()),
            Some(&token),
            xorb.clone(),
        )
        .await;
    assert_eq!(
        (s, v["was_inserted"].clone()),
        (StatusCode::OK, json!(true))
    );
    // Again: accepted, not inserted twice.
    let (s, v) = t
        .call(
            "POST",
            &format!("{cas}/v1/xorbs/default/{}", hash.hex()),
            Some(&token),
            xorb,
        )
        .await;
    assert_eq!(
        (s, v["was_inserted"].clone()),
        (StatusCode::OK, json!(false))
    );
    // The optional routes answer 404 (the client falls back).
    for (m, p) in [
        ("GET", "v1/chunks/default-merkledb/00"),
        ("POST", "v2/shards"),
        ("POST", "v1/xorb-grants/default/00"),
    ] {
        assert_eq!(
            t.call(m, &format!("{cas}/{p}"), Some(&token), vec![])
                .await
                .0,
            StatusCode::NOT_FOUND,
            "{p}"
        );
    }
    let (s, v) = t
        .call("POST", &format!("{cas}/v1/shards"), Some(&token), shard)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let sha = hex(&Sha256::digest(&content));
    let (s, v) = t.commit("a", "w.bin", &sha, content.len()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let resp = zoo_hub::router(t.hub.clone())
        .oneshot(
            Request::get("/alice/a/resolve/main/w.bin")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers().get("x-xet-hash").is_none(),
        "downloads stay plain HTTP"
    );
    let got = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(got.as_ref(), content.as_slice());
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_or_hostile_uploads_are_refused_and_store_nothing_issue_12() {
    let t = T::new();
    let (content, xorb, hash, shard) = file();
    let sha = hex(&Sha256::digest(&content));
    let (token, cas) = t.xet("a").await;
    let post = |path: String, auth: Option<String>, body: Vec<u8>| {
        let t = &t;
        async move { t.call("POST", &path, auth.as_deref(), body).await }
    };
    let xorb_url = format!("{cas}/v1/xorbs/default/{}", hash.hex());

    // No token, a hub token instead of a Xet one, a forged or another repository's token.
    assert_eq!(
        post(xorb_url.clone(), None, xorb.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(xorb_url.clone(), Some(t.token.clone()), xorb.clone())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('0') { '1' } else { '0' });
    assert_eq!(
        post(xorb_url.clone(), Some(forged), xorb.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (token_b, cas_b) = t.xet("b").await;
    assert_eq!(
        post(xorb_url.clone(), Some(token_b.clone()), xorb.clone())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // A token for bob's repository cannot be had by alice.
    let (s, _) = t
        .call(
            "GET",
            "/api/models/bob/c/xet-write-token/main",
            Some(&t.token),
            vec![],
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Pull requests: the data may come, the commit says clearly that they are not supported.
    let (s, _) = t
        .call(
            "GET",
            "/api/models/alice/a/xet-write-token/None?create_pr=1",
            Some(&t.token),
            vec![],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = t
        .call(
            "POST",
            "/api/models/alice/a/commit/main?create_pr=1",
            Some(&t.token),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v.to_string().contains("pull requests are not supported"),
        "{v}"
    );
    // An unknown revision gets no token.
    let (s, _) = t
        .call(
            "GET",
            "/api/models/alice/a/xet-write-token/nope",
            Some(&t.token),
            vec![],
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A xorb whose bytes do not hash to its name; a truncated one.
    let wrong = xet::chunk_hash(b"not this");
    let (s, v) = post(
        format!("{cas}/v1/xorbs/default/{}", wrong.hex()),
        Some(token.clone()),
        xorb.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = post(
        xorb_url.clone(),
        Some(token.clone()),
        xorb[..xorb.len() - 10].to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(t.hub.meta.xorb(1, &hash.hex()).unwrap().is_none());

    // A shard naming a xorb nobody uploaded here.
    let (s, v) = post(
        format!("{cas}/v1/shards"),
        Some(token.clone()),
        shard.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v.to_string()
            .contains("was not uploaded to this repository"),
        "{v}"
    );

    // The xorb uploaded to repository b cannot be named by a shard of repository a.
    let (s, _) = post(
        format!("{cas_b}/v1/xorbs/default/{}", hash.hex()),
        Some(token_b),
        xorb.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = post(
        format!("{cas}/v1/shards"),
        Some(token.clone()),
        shard.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Uploaded to a: a shard announcing another sha256, a wrong verification hash, a chunk
    // range past the xorb's end.
    assert_eq!(
        post(xorb_url, Some(token.clone()), xorb).await.0,
        StatusCode::OK
    );
    let chunks: Vec<Vec<u8>> = (0..3u8)
        .map(|i| vec![i + 1; 1000 + usize::from(i)])
        .collect();
    let (s, v) = post(
        format!("{cas}/v1/shards"),
        Some(token.clone()),
        shard_for(&content, hash, &chunks, Some([3; 32])),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v.to_string().contains("rebuilds to sha256"), "{v}");
    let mut bad = shard.clone();
    let at = 48 + 48 + 48; // header, file header, one term: the verification entry
    bad[at] ^= 1;
    assert_eq!(
        post(format!("{cas}/v1/shards"), Some(token.clone()), bad)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let mut past = shard.clone();
    past[48 + 48 + 44..48 + 48 + 48].copy_from_slice(&9u32.to_le_bytes());
    assert_eq!(
        post(format!("{cas}/v1/shards"), Some(token.clone()), past)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post(
            format!("{cas}/v1/shards"),
            Some(token.clone()),
            b"garbage".to_vec()
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    // None of it made the file available: a commit naming it is refused.
    assert!(t.hub.blobs.size(&sha).unwrap().is_none());
    let (s, _) = t.commit("a", "w.bin", &sha, content.len()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // The good shard still goes through.
    assert_eq!(
        post(format!("{cas}/v1/shards"), Some(token), shard).await.0,
        StatusCode::OK
    );
    assert_eq!(
        t.commit("a", "w.bin", &sha, content.len()).await.0,
        StatusCode::OK
    );
}
