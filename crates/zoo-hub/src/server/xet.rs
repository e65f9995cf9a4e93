//! Xet uploads (huggingface_hub >= 1.20 with hf_xet sends every LFS file this way): the
//! write-token endpoint and the CAS routes the client calls with that token. Each
//! repository has its own CAS URL (`/xet-cas/{kind}s/{ns}/{name}`) and its own xorbs, so a
//! shard can rebuild files only from what was uploaded to that repository (nobody commits
//! another tenant's chunks by naming a hash), and the client's local dedup cache, kept per
//! CAS URL, never offers chunks of another repository. A shard's files are rebuilt from the
//! stored xorbs, sha256-verified and stored as ordinary LFS blobs before the commit that
//! names them; downloads stay plain HTTP (no `X-Xet-Hash` is ever sent).

use super::*;
use crate::xet::{self, Hash, XetError};

/// How long a write token lives.
const TOKEN_SECONDS: i64 = 3600;

/// The scope a Xet token grants: writing to one repository (at one revision).
#[derive(Debug)]
struct Grant {
    repo_id: i64,
}

fn token_mac(secret: &[u8], payload: &str) -> String {
    mac_hex(secret, &["xet-write", payload])
}

fn issue_token(secret: &[u8], repo_id: i64, user: &str, rev: &str, exp: i64) -> String {
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"r": repo_id, "u": user, "v": rev, "e": exp}).to_string());
    format!("xet.{payload}.{}", token_mac(secret, &payload))
}

/// The grant of a CAS request's `Authorization: Bearer xet.…` token, if valid, unexpired and
/// for `repo_id`.
fn grant(hub: &Hub, headers: &HeaderMap, repo_id: i64) -> HubResult<Grant> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| HubError::Unauthorized("a Xet write token is required".into()))?;
    let bad = || HubError::Unauthorized("invalid or expired Xet token: ask for a new one".into());
    let (payload, sig) = token
        .strip_prefix("xet.")
        .and_then(|t| t.split_once('.'))
        .ok_or_else(bad)?;
    if !mac_ok(&hub.secret, &["xet-write", payload], sig) {
        return Err(bad());
    }
    let claims: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(bad)?;
    let exp = claims["e"].as_i64().ok_or_else(bad)?;
    if exp < now_ms() / 1000 {
        return Err(bad());
    }
    if claims["r"].as_i64() != Some(repo_id) {
        return Err(HubError::Forbidden(
            "this Xet token is for another repository".into(),
        ));
    }
    Ok(Grant { repo_id })
}

/// `GET /api/{kind}s/{ns}/{name}/xet-write-token/{rev}`: a token for this repository's CAS.
pub(super) fn write_token(
    ctx: &Ctx<'_>,
    kind: RepoKind,
    ns: &str,
    name: &str,
    rev: &str,
) -> HubResult {
    let repo = ctx.writable(kind, ns, name)?;
    // With `create_pr` the client asks for revision `None`. The data may come (hf_xet shows
    // only the status of an error here); the commit that follows says that pull requests are
    // not supported, which the client shows in full.
    if !ctx.flag("create_pr") && !ctx.is_branch(&repo, rev)? {
        return Err(HubError::RevisionNotFound(rev.to_string()));
    }
    let exp = now_ms() / 1000 + TOKEN_SECONDS;
    let user = &ctx.user()?.user;
    let token = issue_token(&ctx.hub.secret, repo.id, user, rev, exp);
    let cas = format!(
        "{}/xet-cas/{}s/{}",
        ctx.base,
        repo.kind.as_str(),
        repo.full_name()
    );
    let mut r = json_response(
        StatusCode::OK,
        json!({"accessToken": token, "exp": exp, "casUrl": cas}),
    );
    let h = r.headers_mut();
    for (k, v) in [
        ("x-xet-cas-url", cas.as_str()),
        ("x-xet-access-token", token.as_str()),
        ("x-xet-token-expiration", &exp.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    }
    Ok(r)
}

/// The CAS routes under `/xet-cas/{kind}s/{ns}/{name}/`. Unknown ones (global dedup
/// `v1/chunks`, `v1/xorb-grants`, `v2/shards`, telemetry) answer 404, which the client takes
/// as "not offered" and falls back from.
#[allow(clippy::too_many_arguments)]
pub(super) async fn cas(
    hub: &Hub,
    method: &Method,
    headers: &HeaderMap,
    kind: &str,
    ns: &str,
    name: &str,
    rest: &[&str],
    body: Body,
) -> HubResult {
    let kind = kind
        .strip_suffix('s')
        .and_then(RepoKind::parse)
        .ok_or_else(|| HubError::NotFound("no such CAS".into()))?;
    let repo = hub
        .meta
        .repo(kind, ns, name)?
        .ok_or(HubError::RepoNotFound)?;
    match (method.clone(), rest) {
        (Method::POST, ["v1", "xorbs", _prefix, hash]) => {
            let g = grant(hub, headers, repo.id)?;
            upload_xorb(hub, &g, hash, body).await
        }
        (Method::POST, ["v1", "shards"]) => {
            let g = grant(hub, headers, repo.id)?;
            upload_shard(hub, &g, body).await
        }
        _ => Err(HubError::NotFound(format!(
            "this CAS does not offer {method} {}",
            rest.join("/")
        ))),
    }
}

async fn body_bytes(body: Body) -> HubResult<Bytes> {
    axum::body::to_bytes(body, xet::MAX_OBJECT + (1 << 20))
        .await
        .map_err(|e| {
            eprintln!("zoo serve: Xet object refused: {e}");
            HubError::TooLarge(format!(
                "Xet objects are at most {} bytes: {e}",
                xet::MAX_OBJECT
            ))
        })
}

fn refused(what: &str, e: &XetError) -> HubError {
    // Logged: a refused upload is otherwise visible only as a status in the client's error.
    eprintln!("zoo serve: Xet {what} refused: {e}");
    HubError::BadRequest(format!("{what}: {e}"))
}

/// `POST v1/xorbs/{prefix}/{hash}`: verified against its hash, stored as a blob, recorded for
/// this repository.
async fn upload_xorb(hub: &Hub, g: &Grant, hash: &str, body: Body) -> HubResult {
    let expected = Hash::from_hex(hash)
        .ok_or_else(|| HubError::BadRequest(format!("`{hash}` is not a Xet hash")))?;
    if hub.meta.xorb(g.repo_id, &expected.hex())?.is_some() {
        return Ok(json_response(
            StatusCode::OK,
            json!({"was_inserted": false}),
        ));
    }
    let bytes = body_bytes(body).await?;
    let blobs = hub.blobs.clone();
    let info = tokio::task::spawn_blocking(move || -> HubResult<_> {
        xet::parse_xorb(&bytes, &expected).map_err(|e| refused("xorb", &e))?;
        let mut w = blobs.writer()?;
        w.write_chunk(&bytes)?;
        Ok(w.commit(None, Some(bytes.len() as u64))?)
    })
    .await
    .map_err(|e| HubError::Internal(e.to_string()))??;
    let inserted = hub
        .meta
        .add_xorb(g.repo_id, &expected.hex(), &info.sha256, info.size)?;
    Ok(json_response(
        StatusCode::OK,
        json!({"was_inserted": inserted}),
    ))
}

/// `POST v1/shards`: every file of the shard rebuilt from this repository's xorbs, checked
/// against its sha256 and stored; the commit that follows names it by that sha256.
async fn upload_shard(hub: &Hub, g: &Grant, body: Body) -> HubResult {
    let bytes = body_bytes(body).await?;
    let files = xet::parse_shard(&bytes).map_err(|e| refused("shard", &e))?;
    let meta = hub.meta.clone();
    let blobs = hub.blobs.clone();
    let max_file = hub.config.max_file_bytes;
    let repo_id = g.repo_id;
    tokio::task::spawn_blocking(move || -> HubResult<()> {
        // The xorb last read (a file's terms usually follow one xorb in order).
        let mut cached: Option<(Hash, Vec<u8>, xet::Xorb)> = None;
        for f in &files {
            let sha = f.sha256.ok_or_else(|| {
                HubError::BadRequest(format!(
                    "shard: file {} has no sha256 (metadata extension): a git repository needs it",
                    f.file_hash
                ))
            })?;
            if f.size() > max_file {
                return Err(HubError::TooLarge(format!(
                    "file {} is {} bytes, more than the limit of {max_file}",
                    f.file_hash,
                    f.size()
                )));
            }
            // The shard carries the sha256 as a Xet hash: its string form is the digest.
            let announced = Hash(sha).hex();
            let mut w = blobs.writer_for(Some(&announced))?;
            for t in &f.terms {
                if cached.as_ref().is_none_or(|(h, _, _)| *h != t.xorb) {
                    let blob = meta.xorb(repo_id, &t.xorb.hex())?.ok_or_else(|| {
                        HubError::BadRequest(format!(
                            "shard: xorb {} was not uploaded to this repository",
                            t.xorb
                        ))
                    })?;
                    let size = blobs.size(&blob)?.unwrap_or(0);
                    let mut data = Vec::with_capacity(size as usize);
                    blobs.read_range(&blob, 0, size)?.read_to_end(&mut data).map_err(|e| {
                        HubError::Internal(format!("reading xorb {}: {e}", t.xorb))
                    })?;
                    let x = xet::parse_xorb(&data, &t.xorb).map_err(|e| refused("stored xorb", &e))?;
                    cached = Some((t.xorb, data, x));
                }
                let (_, data, x) = cached.as_ref().expect("just cached");
                let range = t.chunk_start as usize..t.chunk_end as usize;
                let chunks = x.chunks.get(range.clone()).ok_or_else(|| {
                    HubError::BadRequest(format!(
                        "shard: chunks {}..{} of xorb {} (it has {})",
                        range.start,
                        range.end,
                        t.xorb,
                        x.chunks.len()
                    ))
                })?;
                if let Some(v) = t.verification {
                    let hashes: Vec<Hash> = chunks.iter().map(|c| c.hash).collect();
                    if xet::verification_hash(&hashes) != v {
                        return Err(HubError::BadRequest(format!(
                            "shard: the verification hash of chunks {}..{} of xorb {} does not match",
                            range.start, range.end, t.xorb
                        )));
                    }
                }
                let mut n = 0u64;
                for c in chunks {
                    let d = xet::chunk_data(data, c).map_err(|e| refused("stored xorb", &e))?;
                    n += d.len() as u64;
                    w.write_chunk(&d)?;
                }
                if n != u64::from(t.bytes) {
                    return Err(HubError::BadRequest(format!(
                        "shard: a term of file {} says {} bytes, its chunks hold {n}",
                        f.file_hash, t.bytes
                    )));
                }
            }
            // The blob store hashes while it writes; the file appears only if it matches.
            match w.commit(Some(&announced), Some(f.size())) {
                Err(crate::blobs::BlobError::HashMismatch { actual, .. }) => {
                    return Err(HubError::BadRequest(format!(
                        "shard: file {} rebuilds to sha256 {actual}, not the {announced} it announces",
                        f.file_hash
                    )));
                }
                other => {
                    other?;
                }
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| HubError::Internal(e.to_string()))??;
    Ok(json_response(StatusCode::OK, json!({"result": 1})))
}
