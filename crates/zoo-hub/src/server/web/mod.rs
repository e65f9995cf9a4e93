//! The hub's web pages: search, a page per repository (card, metadata, results, files with
//! their scan verdicts, refs, history, lineage, "use this model"), compare, sign-in.
//! Server-rendered HTML (`maud` escapes everything it is given), no JavaScript; cards are
//! Markdown rendered by `pulldown-cmark` and cleaned by `ammonia`, and every page is sent
//! with a Content-Security-Policy that allows no script at all, so even a card the cleaner
//! let through could run nothing. A private repository shows only to its owner, on every
//! page, in every list and count (the same `Ctx::can_read` as the API).

mod pages;
pub(crate) mod session;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::*;

/// The pages' CSP: nothing but this hub's own styles, no scripts, no frames, forms only here.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const CSS: &str = include_str!("zoo.css");

/// Whether a GET/HEAD (or a sign-in/out POST) is for a page.
pub(super) fn is_page(method: &Method, s: &[&str]) -> bool {
    let get = *method == Method::GET || *method == Method::HEAD;
    match s {
        ["login" | "logout"] if *method == Method::POST => true,
        _ if !get => false,
        [""] | ["models" | "datasets" | "compare" | "login"] => true,
        ["static", "zoo.css"] => true,
        ["datasets", ns, name] | [ns, name] => valid_repo_part(ns) && valid_repo_part(name),
        [ns, name, "report", file] => {
            valid_repo_part(ns) && valid_repo_part(name) && report_type(file).is_some()
        }
        _ => false,
    }
}

/// The content type of a training report's file (the only files the report route serves).
fn report_type(file: &str) -> Option<&'static str> {
    if file == "report.html" {
        Some("text/html; charset=utf-8")
    } else if file.ends_with(".png") && !file.contains('/') {
        Some("image/png")
    } else {
        None
    }
}

/// Per-request page state.
pub(super) struct Page<'a> {
    ctx: &'a Ctx<'a>,
    cookies: Vec<(String, String)>,
    /// The CSRF token forms carry, and the cookie to set when it is new.
    csrf: String,
    set_csrf: Option<String>,
    secure: bool,
}

impl Page<'_> {
    fn param(&self, key: &str) -> Option<&str> {
        self.ctx.param(key).filter(|v| !v.trim().is_empty())
    }
}

pub(super) async fn page(
    ctx: &Ctx<'_>,
    method: &Method,
    headers: &HeaderMap,
    s: &[&str],
    body: Body,
) -> HubResult {
    let cookies = session::cookies(headers);
    let secure = ctx.base.starts_with("https://");
    let (csrf, set_csrf) = match session::cookie(&cookies, session::CSRF) {
        Some(t) if t.len() == 32 => (t.to_string(), None),
        _ => {
            let (t, c) = session::new_csrf(secure);
            (t, Some(c))
        }
    };
    let p = Page {
        ctx,
        cookies,
        csrf,
        set_csrf,
        secure,
    };
    match (method.clone(), s) {
        (_, ["static", "zoo.css"]) => {
            return Ok((
                [
                    (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                    (header::CACHE_CONTROL, "public, max-age=3600"),
                ],
                CSS,
            )
                .into_response());
        }
        (Method::POST, ["login"]) => return pages::login_post(&p, body).await,
        (Method::POST, ["logout"]) => return pages::logout(&p, body).await,
        (_, [ns, name, "report", file]) => {
            return blocking(ctx.hub, || pages::report(&p, ns, name, file)).await;
        }
        _ => {}
    }
    let result = blocking(ctx.hub, || match s {
        ["login"] => pages::login_form(&p, None),
        [""] | ["models"] => pages::search(&p, RepoKind::Model),
        ["datasets"] => pages::search(&p, RepoKind::Dataset),
        ["compare"] => pages::compare(&p),
        ["datasets", ns, name] => pages::repo(&p, RepoKind::Dataset, ns, name),
        [ns, name] => pages::repo(&p, RepoKind::Model, ns, name),
        _ => Err(HubError::NotFound("no such page".into())),
    })
    .await;
    Ok(match result {
        Ok((title, body)) => p.respond(StatusCode::OK, &title, &body),
        Err(HubError::RepoNotFound) => p.respond(
            StatusCode::NOT_FOUND,
            "Not found",
            &html! { h1 { "Not found" } p { "No such repository here" @if ctx.viewer.is_none() { " (if it is private, " a href="/login" { "sign in" } ")" } "." } },
        ),
        Err(e @ (HubError::BadRequest(_) | HubError::RevisionNotFound(_) | HubError::NotFound(_))) => {
            let status = match e {
                HubError::BadRequest(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::NOT_FOUND,
            };
            p.respond(status, "Error", &html! { h1 { "Cannot show that" } p { (e.to_string()) } })
        }
        Err(e) => return Err(e),
    })
}

impl Page<'_> {
    /// A whole page: header, navigation, the body, with the security headers.
    fn respond(&self, status: StatusCode, title: &str, body: &Markup) -> Response {
        let viewer = self.ctx.viewer.as_ref();
        let doc = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · zoo" }
                    link rel="stylesheet" href="/static/zoo.css";
                }
                body {
                    header.top {
                        a.brand href="/" { "zoo" }
                        nav {
                            a href="/models" { "Models" }
                            a href="/datasets" { "Datasets" }
                            a href="/compare" { "Compare" }
                        }
                        div.who {
                            @if let Some(v) = viewer {
                                span.user { (v.user) }
                                form.inline method="post" action="/logout" {
                                    input type="hidden" name="csrf" value=(self.csrf);
                                    button type="submit" { "Sign out" }
                                }
                            } @else {
                                a href="/login" { "Sign in" }
                            }
                        }
                    }
                    main { (body) }
                    footer { "Checkpoint Zoo hub · the same repositories answer the Hugging Face Hub API at " code { (self.ctx.base) } }
                }
            }
        };
        let mut r = (status, doc.into_string()).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert("content-security-policy", HeaderValue::from_static(CSP));
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(c) = self
            .set_csrf
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            h.append(header::SET_COOKIE, c);
        }
        r
    }

    /// A 303 to `to` (a path on this hub), with cookies to set.
    fn redirect(&self, to: &str, cookies: &[String]) -> Response {
        let to = if to.starts_with('/') && !to.starts_with("//") {
            to
        } else {
            "/"
        };
        let mut r = StatusCode::SEE_OTHER.into_response();
        if let Ok(v) = HeaderValue::from_str(to) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        for c in cookies {
            if let Ok(v) = HeaderValue::from_str(c) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        r
    }
}

/// Markdown → HTML with everything active removed (scripts, event handlers, `javascript:`
/// links, styles, frames), links marked `nofollow`.
pub(super) fn render_markdown(text: &str) -> PreEscaped<String> {
    use pulldown_cmark::{Options, Parser, html::push_html};
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    opts.insert(Options::ENABLE_TASKLISTS);
    let mut raw = String::with_capacity(text.len() * 2);
    push_html(&mut raw, Parser::new_ext(text, opts));
    let clean = ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .clean(&raw)
        .to_string();
    PreEscaped(clean)
}

/// `3.5M`-style parameter counts.
pub(super) fn human_count(n: i64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.2}B", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1}M", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1}K", f / 1e3)
    } else {
        n.to_string()
    }
}

/// `12.3 MB`-style sizes.
pub(super) fn human_size(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.2} GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1} MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} kB", f / 1e3)
    } else {
        format!("{n} B")
    }
}
