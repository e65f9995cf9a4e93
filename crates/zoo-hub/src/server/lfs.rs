//! Git LFS: the batch API, signed uploads (hashed while they stream; visible only once
//! verified) and verification.

use super::*;

fn mac(secret: &[u8], parts: &[&str]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(parts.join("\0").as_bytes());
    mac
}

/// HMAC-SHA256 of `parts` joined by NUL bytes (the first names what the link allows), hex.
pub(super) fn mac_hex(secret: &[u8], parts: &[&str]) -> String {
    hex::encode(mac(secret, parts).finalize().into_bytes())
}

/// Whether `sig` (hex) is the MAC of `parts`: the `hmac` crate's constant-time check.
pub(super) fn mac_ok(secret: &[u8], parts: &[&str], sig: &str) -> bool {
    hex::decode(sig).is_ok_and(|tag| mac(secret, parts).verify_slice(&tag).is_ok())
}

pub(super) fn sign(secret: &[u8], oid: &str, size: u64, expires: i64) -> String {
    mac_hex(
        secret,
        &["upload", oid, &size.to_string(), &expires.to_string()],
    )
}

pub(super) async fn lfs_batch(
    ctx: &Ctx<'_>,
    kind: RepoKind,
    ns: &str,
    name: &str,
    body: Body,
) -> HubResult {
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .map_err(|e| HubError::TooLarge(format!("request body: {e}")))?;
    let batch = crate::wire::parse_lfs_batch(&bytes)?;
    let download = batch.operation == crate::wire::LfsOperation::Download;
    let repo = if download {
        ctx.readable(kind, ns, name)?
    } else {
        ctx.writable(kind, ns, name)?
    };
    let expires = now_ms() / 1000 + 3600;
    let mut out = Vec::new();
    for o in batch.objects {
        let (oid, size) = (o.oid, o.size);
        if !is_sha256(&oid) {
            out.push(json!({"oid": oid, "size": size, "error": {"code": 422, "message": "oid must be a sha256 hex digest"}}));
            continue;
        }
        if size > ctx.hub.config.max_file_bytes {
            out.push(json!({"oid": oid, "size": size, "error": {"code": 422, "message": format!("file exceeds the limit of {} bytes", ctx.hub.config.max_file_bytes)}}));
            continue;
        }
        let stored = ctx.hub.blobs.size(&oid)?;
        if download {
            match stored {
                Some(s) => {
                    let sig = sign_download(&ctx.hub.secret, &oid, expires);
                    out.push(json!({"oid": oid, "size": s, "authenticated": true, "actions": {"download": {"href": format!("{}/api/lfs/objects/{oid}?expires={expires}&sig={sig}", ctx.base), "expires_in": 3600}}}))
                }
                None => out.push(json!({"oid": oid, "size": size, "error": {"code": 404, "message": "object not found"}})),
            }
            continue;
        }
        if stored == Some(size) {
            out.push(json!({"oid": oid, "size": size, "authenticated": true}));
            continue;
        }
        let sig = sign(&ctx.hub.secret, &oid, size, expires);
        let (k, full) = (repo.kind.as_str(), repo.full_name());
        out.push(json!({
            "oid": oid, "size": size, "authenticated": true,
            "actions": {
                "upload": {"href": format!("{}/api/lfs/upload/{oid}?size={size}&expires={expires}&sig={sig}", ctx.base), "expires_in": 3600},
                "verify": {"href": format!("{}/api/lfs/verify/{k}/{full}?expires={expires}&sig={}", ctx.base, sign_verify(&ctx.hub.secret, &oid, expires))},
            }
        }));
    }
    let mut r = json_response(
        StatusCode::OK,
        json!({"transfer": "basic", "objects": out, "hash_algo": "sha256"}),
    );
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.git-lfs+json"),
    );
    Ok(r)
}

pub(super) async fn lfs_put(
    hub: &Hub,
    oid: &str,
    query: &[(String, String)],
    body: Body,
) -> HubResult {
    let q = |k: &str| {
        query
            .iter()
            .find(|(qk, _)| qk == k)
            .map(|(_, v)| v.as_str())
    };
    let size: u64 = q("size")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HubError::BadRequest("`size` is required".into()))?;
    let expires: i64 = q("expires")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HubError::BadRequest("`expires` is required".into()))?;
    let given = q("sig").unwrap_or("");
    let signed = mac_ok(
        &hub.secret,
        &["upload", oid, &size.to_string(), &expires.to_string()],
        given,
    );
    if !signed || expires < now_ms() / 1000 {
        return Err(HubError::Forbidden(
            "upload link is invalid or expired: ask the batch endpoint again".into(),
        ));
    }
    if hub.blobs.size(oid)? == Some(size) {
        // Already stored (a concurrent upload of the same content won): drain and accept.
        let mut stream = body.into_data_stream();
        while stream.next().await.is_some() {}
        return Ok(json_response(StatusCode::OK, json!({})));
    }
    let mut writer = hub.blobs.writer_for(Some(oid))?;
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    // A write that fails (a full disk) is answered once the announced body has arrived, so
    // that the client reads the error instead of a connection reset mid-send.
    let mut failed = None;
    while let Some(chunk) = stream.next().await {
        let chunk: Bytes =
            chunk.map_err(|e| HubError::BadRequest(format!("upload interrupted: {e}")))?;
        received += chunk.len() as u64;
        if received > size {
            return Err(HubError::BadRequest(format!(
                "upload is longer than the announced {size} bytes"
            )));
        }
        if failed.is_none() {
            failed = tokio::task::block_in_place(|| writer.write_chunk(&chunk)).err();
        }
    }
    if let Some(e) = failed {
        return Err(e.into());
    }
    let oid = oid.to_string();
    tokio::task::block_in_place(move || writer.commit(Some(&oid), Some(size)))?;
    Ok(json_response(StatusCode::OK, json!({})))
}

pub(super) async fn lfs_verify(
    ctx: &Ctx<'_>,
    kind: RepoKind,
    ns: &str,
    name: &str,
    body: Body,
) -> HubResult {
    let body = read_json(body, 1 << 20).await?;
    let oid = body.get("oid").and_then(Value::as_str).unwrap_or("");
    let size = body.get("size").and_then(Value::as_u64);
    // git-lfs calls the verify link without credentials: the batch API signed it.
    let expires: i64 = ctx
        .param("expires")
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    let signed = ctx
        .param("sig")
        .is_some_and(|sig| mac_ok(&ctx.hub.secret, &["verify", oid, &expires.to_string()], sig))
        && expires >= now_ms() / 1000;
    if !signed {
        ctx.writable(kind, ns, name)?;
    }
    match ctx.hub.blobs.size(oid)? {
        Some(s) if size.is_none_or(|n| n == s) => Ok(json_response(
            StatusCode::OK,
            json!({"oid": oid, "size": s}),
        )),
        _ => Err(HubError::NotFound(format!(
            "object {oid} was not uploaded (or its size differs)"
        ))),
    }
}

pub(super) fn sign_download(secret: &[u8], oid: &str, expires: i64) -> String {
    mac_hex(secret, &["download", oid, &expires.to_string()])
}

/// `GET /api/lfs/objects/{oid}?expires=…&sig=…`: an LFS object, by the signed link the batch
/// API handed out to someone who may read a repository holding it.
pub(super) fn lfs_get(
    hub: &Hub,
    method: &Method,
    headers: &HeaderMap,
    oid: &str,
    query: &[(String, String)],
) -> HubResult {
    let q = |k: &str| {
        query
            .iter()
            .find(|(qk, _)| qk == k)
            .map(|(_, v)| v.as_str())
    };
    let expires: i64 = q("expires").and_then(|s| s.parse().ok()).unwrap_or(0);
    if !mac_ok(
        &hub.secret,
        &["download", oid, &expires.to_string()],
        q("sig").unwrap_or(""),
    ) || expires < now_ms() / 1000
    {
        return Err(HubError::Forbidden(
            "download link is invalid or expired: ask the batch endpoint again".into(),
        ));
    }
    let size = hub
        .blobs
        .size(oid)?
        .ok_or_else(|| HubError::NotFound(format!("object {oid} not found")))?;
    let range = headers
        .get(header::RANGE)
        .and_then(|r| r.to_str().ok())
        .map(|r| parse_range(r, size))
        .transpose()?
        .flatten();
    let (status, start, end) = match range {
        Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
        None => (StatusCode::OK, 0, size),
    };
    let mut r = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, (end - start).to_string())
        .header(header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        r = r.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        stream_reader(hub.blobs.read_range(oid, start, end)?)
    };
    r.body(body).map_err(|e| HubError::Internal(e.to_string()))
}

fn sign_verify(secret: &[u8], oid: &str, expires: i64) -> String {
    mac_hex(secret, &["verify", oid, &expires.to_string()])
}
