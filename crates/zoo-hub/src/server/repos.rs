//! Repository administration: create, delete, settings, branches and tags, refs and
//! history, and the caller's identity.

use super::*;

pub(super) fn whoami(ctx: &Ctx<'_>) -> HubResult {
    let v = ctx.user()?;
    Ok(json_response(
        StatusCode::OK,
        json!({
            "type": "user",
            "id": v.user,
            "name": v.user,
            "fullname": v.user,
            "email": null,
            "emailVerified": false,
            "isPro": false,
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": v.display_name, "role": if v.write { "write" } else { "read" }}},
        }),
    ))
}

pub(super) fn names_from(body: &Value, viewer: &Viewer) -> HubResult<(RepoKind, String, String)> {
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| HubError::BadRequest("`name` is required".into()))?;
    let (ns, name) = match name.split_once('/') {
        Some((ns, n)) => (ns.to_string(), n.to_string()),
        None => (
            body.get("organization")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| viewer.user.clone()),
            name.to_string(),
        ),
    };
    let kind = match body.get("type").and_then(Value::as_str) {
        None => RepoKind::Model,
        Some(t) => RepoKind::parse(t).ok_or_else(|| {
            HubError::BadRequest(format!(
                "repository type `{t}` is not supported (model, dataset)"
            ))
        })?,
    };
    if !valid_repo_part(&ns) || !valid_repo_part(&name) {
        return Err(HubError::BadRequest(format!(
            "`{ns}/{name}` is not a valid repository id: use letters, digits, `-`, `_`, `.`, at most 96 characters each"
        )));
    }
    Ok((kind, ns, name))
}

pub(super) async fn create_repo(ctx: &Ctx<'_>, body: Body) -> HubResult {
    let v = ctx.user()?.clone();
    let body = read_json(body, 1 << 20).await?;
    let (kind, ns, name) = names_from(&body, &v)?;
    if !v.write {
        return Err(HubError::Forbidden(
            "this token is read-only: create a write token".into(),
        ));
    }
    if ns != v.user {
        return Err(HubError::Forbidden(format!(
            "you cannot create repositories in `{ns}`"
        )));
    }
    let private = body
        .get("private")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || body.get("visibility").and_then(Value::as_str) == Some("private");
    if let Some(up) = ctx.hub.upstream.clone()
        && ctx.hub.meta.repo(kind, &ns, &name)?.is_none()
    {
        let (ns_, name_) = (ns.clone(), name.clone());
        let clash = tokio::task::spawn_blocking(move || up.has(kind, &ns_, &name_))
            .await
            .map_err(|e| HubError::Internal(e.to_string()))??;
        if clash {
            return Err(HubError::Conflict(format!(
                "{ns}/{name} exists on the upstream this hub mirrors ({}): a repository here would shadow it; choose another name",
                ctx.hub.upstream.as_ref().map_or("", |u| u.url.as_str())
            )));
        }
    }
    match ctx.hub.meta.create_repo(kind, &ns, &name, private, &v.user) {
        Ok(repo) => Ok(json_response(
            StatusCode::OK,
            json!({"url": ctx.repo_url(&repo), "name": repo.full_name(), "id": repo.full_name()}),
        )),
        Err(crate::meta::MetaError::Exists(_)) => {
            let url = match kind {
                RepoKind::Model => format!("{}/{ns}/{name}", ctx.base),
                RepoKind::Dataset => format!("{}/datasets/{ns}/{name}", ctx.base),
            };
            Ok(json_response(
                StatusCode::CONFLICT,
                json!({"error": "You already created this repo", "url": url}),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn delete_repo(ctx: &Ctx<'_>, body: Body) -> HubResult {
    let v = ctx.user()?.clone();
    let body = read_json(body, 1 << 20).await?;
    let (kind, ns, name) = names_from(&body, &v)?;
    // A mirror may be deleted (the next request fetches it again).
    let repo = ctx.owned(kind, &ns, &name)?;
    ctx.hub.meta.delete_repo(kind, &ns, &name)?;
    // Its bare git repository goes too (a later repository may get the same id).
    let bare = crate::gitrepo::bare_dir(&ctx.hub.config.data, &repo);
    let _ = std::fs::remove_dir_all(bare);
    Ok(json_response(StatusCode::OK, json!({})))
}

pub(super) async fn validate_yaml(body: Body) -> HubResult {
    let body = read_json(body, 4 << 20).await?;
    let content = body.get("content").and_then(Value::as_str).unwrap_or("");
    match zoo_card::ModelCard::parse(content).and_then(|c| c.results().map(|_| c)) {
        Ok(_) => Ok(json_response(
            StatusCode::OK,
            json!({"errors": [], "warnings": []}),
        )),
        Err(e) => Ok(json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": e.to_string(), "errors": [{"message": e.to_string()}], "warnings": []}),
        )),
    }
}

pub(super) fn refs(ctx: &Ctx<'_>, kind: RepoKind, ns: &str, name: &str) -> HubResult {
    let repo = ctx.readable(kind, ns, name)?;
    let refs = ctx.hub.meta.refs(repo.id)?;
    let list = |k: &str, prefix: &str| -> Vec<Value> {
        refs.iter()
            .filter(|r| r.kind == k)
            .map(|r| json!({"name": r.name, "ref": format!("{prefix}{}", r.name), "targetCommit": r.commit}))
            .collect()
    };
    Ok(json_response(
        StatusCode::OK,
        json!({"branches": list("branch", "refs/heads/"), "tags": list("tag", "refs/tags/"), "converts": [], "pullRequests": []}),
    ))
}

pub(super) fn commits(ctx: &Ctx<'_>, kind: RepoKind, ns: &str, name: &str, rev: &str) -> HubResult {
    let repo = ctx.readable(kind, ns, name)?;
    let sha = ctx.resolve(&repo, rev)?;
    let list: Vec<Value> = ctx
        .hub
        .meta
        .history(repo.id, &sha, 10_000)?
        .into_iter()
        .map(|c| {
            json!({"id": c.id, "title": c.summary, "message": c.description, "authors": [{"user": c.author}], "date": iso(c.created_at)})
        })
        .collect();
    paginate(ctx, &list, ctx.hub.config.page_size)
}

pub(super) async fn create_branch(
    ctx: &Ctx<'_>,
    kind: RepoKind,
    ns: &str,
    name: &str,
    branch: &str,
    body: Body,
) -> HubResult {
    let repo = ctx.writable(kind, ns, name)?;
    if !valid_ref_name(branch) {
        return Err(HubError::BadRequest(format!(
            "`{branch}` is not a valid branch name"
        )));
    }
    let body = read_json(body, 1 << 20).await?;
    let start = body
        .get("startingPoint")
        .and_then(Value::as_str)
        .unwrap_or("main");
    let sha = ctx.resolve(&repo, start)?;
    ctx.hub.meta.create_ref(repo.id, "branch", branch, &sha)?;
    Ok(json_response(StatusCode::OK, json!({})))
}

pub(super) async fn create_tag(
    ctx: &Ctx<'_>,
    kind: RepoKind,
    ns: &str,
    name: &str,
    rev: &str,
    body: Body,
) -> HubResult {
    let repo = ctx.writable(kind, ns, name)?;
    let body = read_json(body, 1 << 20).await?;
    let tag = body
        .get("tag")
        .and_then(Value::as_str)
        .ok_or_else(|| HubError::BadRequest("`tag` is required".into()))?;
    if !valid_ref_name(tag) {
        return Err(HubError::BadRequest(format!(
            "`{tag}` is not a valid tag name"
        )));
    }
    let sha = ctx.resolve(&repo, rev)?;
    ctx.hub.meta.create_ref(repo.id, "tag", tag, &sha)?;
    Ok(json_response(StatusCode::OK, json!({})))
}

pub(super) fn delete_ref(
    ctx: &Ctx<'_>,
    kind: RepoKind,
    ns: &str,
    name: &str,
    ref_kind: &str,
    ref_name: &str,
) -> HubResult {
    let repo = ctx.writable(kind, ns, name)?;
    if ref_kind == "branch" && ref_name == "main" {
        return Err(HubError::Forbidden(
            "the default branch `main` cannot be deleted".into(),
        ));
    }
    if !ctx.hub.meta.delete_ref(repo.id, ref_kind, ref_name)? {
        return Err(HubError::RevisionNotFound(ref_name.to_string()));
    }
    Ok(json_response(StatusCode::OK, json!({})))
}

pub(super) async fn settings(
    ctx: &Ctx<'_>,
    kind: RepoKind,
    ns: &str,
    name: &str,
    body: Body,
) -> HubResult {
    let repo = ctx.writable(kind, ns, name)?;
    let body = read_json(body, 1 << 20).await?;
    let private = match (body.get("private"), body.get("visibility")) {
        (Some(Value::Bool(p)), _) => Some(*p),
        (Some(Value::Null) | None, Some(Value::String(v))) if v == "private" || v == "public" => {
            Some(v == "private")
        }
        (Some(Value::Null) | None, None) => None,
        (p, v) => {
            return Err(HubError::BadRequest(format!(
                "settings: `private` must be true or false, `visibility` public or private (got {}, {})",
                p.unwrap_or(&Value::Null),
                v.unwrap_or(&Value::Null)
            )));
        }
    };
    if let Some(p) = private {
        ctx.hub.meta.set_private(repo.id, p)?;
    }
    Ok(json_response(StatusCode::OK, json!({})))
}
