//! Signing in to the pages with a token: a session cookie (HTTP-only, `SameSite=Lax`) that
//! names the token by its hash, with an expiry, under the hub's HMAC key (shared by
//! replicas, so any replica accepts it). The token is looked up on every request, so a
//! deleted token ends its sessions. Forms that change something carry a CSRF token equal to
//! an HTTP-only `SameSite=Strict` cookie (double submit).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::{Viewer, hash_token};
use crate::server::Hub;

pub(super) const SESSION: &str = "zoo_session";
pub(super) const CSRF: &str = "zoo_csrf";
/// Sessions last a week.
const LIFETIME_MS: i64 = 7 * 24 * 3600 * 1000;

fn mac(secret: &[u8], token_hash: &str, expires: i64) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(b"session\0");
    m.update(token_hash.as_bytes());
    m.update(b"\0");
    m.update(expires.to_string().as_bytes());
    m
}

/// The cookies of a request, by name.
pub(super) fn cookies(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

pub(super) fn cookie<'a>(cookies: &'a [(String, String)], name: &str) -> Option<&'a str> {
    cookies
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A session cookie's value for a token (checked by the caller).
pub(super) fn open_session(hub: &Hub, token: &str) -> String {
    let hash = hash_token(token);
    let expires = crate::meta::now_ms() + LIFETIME_MS;
    let tag = hex::encode(mac(&hub.secret, &hash, expires).finalize().into_bytes());
    format!("{hash}.{expires}.{tag}")
}

/// The signed-in user of a session cookie: its signature and expiry checked, its token
/// still existing.
pub(crate) fn viewer(hub: &Hub, headers: &axum::http::HeaderMap) -> Option<Viewer> {
    let cookies = cookies(headers);
    let value = cookie(&cookies, SESSION)?;
    let mut parts = value.split('.');
    let (hash, expires, tag) = (parts.next()?, parts.next()?, parts.next()?);
    let expires: i64 = expires.parse().ok()?;
    if expires < crate::meta::now_ms() || parts.next().is_some() {
        return None;
    }
    let tag = hex::decode(tag).ok()?;
    mac(&hub.secret, hash, expires).verify_slice(&tag).ok()?;
    let (user, scope, display_name) = hub.meta.token(hash).ok()??;
    Some(Viewer {
        user,
        write: scope == "write",
        display_name,
    })
}

/// `Set-Cookie` for the session (or its removal, with `None`).
pub(super) fn session_cookie(value: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(v) => format!(
            "{SESSION}={v}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            LIFETIME_MS / 1000
        ),
        None => format!("{SESSION}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    }
}

/// A fresh CSRF token and its cookie.
pub(super) fn new_csrf(secure: bool) -> (String, String) {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source");
    let token = hex::encode(b);
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!("{CSRF}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
    (token, cookie)
}
