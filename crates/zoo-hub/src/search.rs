//! `GET /api/models` filters and sorting, with zoo's extensions.
//!
//! Standard parameters keep their Hub meaning: `search` (substring of the id), `author`,
//! `filter` (repeatable; a tag such as `image-classification`, `dataset:imagenet-1k`,
//! `license:mit`, `base_model:org/name`, a library name), `pipeline_tag`, `library`,
//! `sort` (`downloads`, `likes`, `lastModified`, `createdAt`, `trendingScore`), `direction`
//! (`-1` descending, the default; `1` ascending), `limit`.
//!
//! Extensions: `filter=task:X`, `filter=library:X`, `filter=arch:X` (architecture),
//! `filter=metric:NAME>=V` (also `>`, `<=`, `<`, `=`; NAME is a `model-index` metric's name or
//! type, e.g. `top-1`, `accuracy`), `filter=params<=N`, `filter=relation:adapter` (also
//! `finetune`, `merge`, `quantized`: repositories with that relation to some base; the Hub's
//! own `filter=base_model:adapter:org/name` names the base); `sort=params` (parameters counted
//! from the stored weights) and `sort=metric:NAME`.

use std::cmp::Ordering;

use crate::error::HubError;
use crate::meta::{IndexRow, Repo};

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Ge => a >= b,
            Op::Gt => a > b,
            Op::Le => a <= b,
            Op::Lt => a < b,
            Op::Eq => (a - b).abs() < 1e-12,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Tag(String),
    Task(String),
    Library(String),
    Arch(String),
    Relation(String),
    Metric(String, Op, f64),
    Params(Op, f64),
}

fn split_op(s: &str) -> Option<(&str, Op, f64)> {
    for (tok, op) in [
        (">=", Op::Ge),
        ("<=", Op::Le),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("=", Op::Eq),
    ] {
        if let Some((k, v)) = s.split_once(tok) {
            return v.trim().parse().ok().map(|v| (k.trim(), op, v));
        }
    }
    None
}

fn parse_filter(s: &str) -> Result<Filter, HubError> {
    let bad = || {
        HubError::BadRequest(format!(
            "filter `{s}`: expected NAME>=VALUE (or >, <=, <, =)"
        ))
    };
    if let Some(rest) = s.strip_prefix("metric:") {
        let (k, op, v) = split_op(rest).ok_or_else(bad)?;
        return Ok(Filter::Metric(k.to_ascii_lowercase(), op, v));
    }
    if s.starts_with("params") && s.len() > 6 && matches!(s.as_bytes()[6], b'<' | b'>' | b'=') {
        let (_, op, v) = split_op(s).ok_or_else(bad)?;
        return Ok(Filter::Params(op, v));
    }
    Ok(match s.split_once(':') {
        Some(("task", v)) => Filter::Task(v.to_string()),
        Some(("library", v)) => Filter::Library(v.to_string()),
        Some(("arch", v)) => Filter::Arch(v.to_string()),
        Some(("relation", v)) => {
            Filter::Relation(format!("base_model:{}:", v.to_ascii_lowercase()))
        }
        _ => Filter::Tag(s.to_string()),
    })
}

fn eq(a: &Option<String>, b: &str) -> bool {
    a.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(b))
}

fn matches(f: &Filter, row: &IndexRow) -> bool {
    match f {
        Filter::Tag(t) => row.tags.iter().any(|x| x.eq_ignore_ascii_case(t)),
        Filter::Task(t) => eq(&row.pipeline_tag, t),
        Filter::Library(l) => eq(&row.library, l),
        Filter::Arch(a) => eq(&row.architecture, a),
        Filter::Relation(prefix) => row
            .tags
            .iter()
            .any(|t| t.to_ascii_lowercase().starts_with(prefix.as_str())),
        Filter::Metric(k, op, v) => row
            .metrics
            .iter()
            .any(|(mk, mv)| mk == k && op.holds(*mv, *v)),
        Filter::Params(op, v) => row.params.is_some_and(|p| op.holds(p as f64, *v)),
    }
}

/// The sort key of a listing.
#[derive(Debug, Clone, PartialEq)]
pub enum Sort {
    Downloads,
    Likes,
    LastModified,
    CreatedAt,
    Params,
    Metric(String),
    Id,
}

/// Parsed query.
#[derive(Debug, Clone)]
pub struct Query {
    filters: Vec<Filter>,
    pub sort: Sort,
    pub ascending: bool,
}

impl Query {
    pub fn parse(
        filters: &[String],
        pipeline_tag: Option<&str>,
        library: Option<&str>,
        sort: Option<&str>,
        direction: Option<&str>,
    ) -> Result<Self, HubError> {
        let mut fs = filters
            .iter()
            .map(|f| parse_filter(f))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(t) = pipeline_tag {
            fs.push(Filter::Task(t.to_string()));
        }
        if let Some(l) = library {
            fs.push(Filter::Library(l.to_string()));
        }
        let sort = match sort {
            None => Sort::Id,
            Some("downloads") => Sort::Downloads,
            Some("likes") | Some("trendingScore") | Some("trending_score") => Sort::Likes,
            Some("lastModified") | Some("last_modified") | Some("updated") => Sort::LastModified,
            Some("createdAt") | Some("created_at") => Sort::CreatedAt,
            Some("params") | Some("parameters") => Sort::Params,
            Some(s) if s.starts_with("metric:") => {
                Sort::Metric(s["metric:".len()..].to_ascii_lowercase())
            }
            Some(other) => return Err(HubError::BadRequest(format!("unknown sort `{other}`"))),
        };
        let ascending = match direction {
            None => sort == Sort::Id,
            Some("1") | Some("asc") => true,
            Some("-1") | Some("desc") => false,
            Some(other) => {
                return Err(HubError::BadRequest(format!(
                    "direction `{other}`: expected 1 or -1"
                )));
            }
        };
        Ok(Query {
            filters: fs,
            sort,
            ascending,
        })
    }

    /// Filters and sorts candidates in place.
    pub fn apply(&self, items: &mut Vec<(Repo, IndexRow)>) {
        items.retain(|(_, row)| self.filters.iter().all(|f| matches(f, row)));
        let key = |(repo, row): &(Repo, IndexRow)| -> Option<f64> {
            match &self.sort {
                Sort::Downloads => Some(repo.downloads as f64),
                Sort::Likes => Some(repo.likes as f64),
                Sort::LastModified => Some(repo.last_modified as f64),
                Sort::CreatedAt => Some(repo.created_at as f64),
                Sort::Params => row.params.map(|p| p as f64),
                Sort::Metric(m) => row
                    .metrics
                    .iter()
                    .filter(|(k, _)| k == m)
                    .map(|(_, v)| *v)
                    .reduce(f64::max),
                Sort::Id => None,
            }
        };
        items.sort_by(|a, b| {
            let by_id = || a.0.full_name().cmp(&b.0.full_name());
            if self.sort == Sort::Id {
                return if self.ascending {
                    by_id()
                } else {
                    by_id().reverse()
                };
            }
            // Items without the key go last whatever the direction.
            match (key(a), key(b)) {
                (Some(x), Some(y)) => {
                    let o = x.partial_cmp(&y).unwrap_or(Ordering::Equal);
                    (if self.ascending { o } else { o.reverse() }).then_with(by_id)
                }
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => by_id(),
            }
        });
    }
}
