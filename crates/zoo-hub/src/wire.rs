//! Request bodies of the Hub protocol, parsed without I/O: the ndjson commit and the LFS
//! batch. The handlers in `server` call these, and `fuzz/` drives them with arbitrary bytes
//! (targets `commit_ndjson` and `lfs_batch`): every input is either parsed or refused with a
//! [`HubError::BadRequest`] naming the line or field.

use base64::Engine;
use serde_json::Value;

use crate::blobs::is_sha256;
use crate::error::HubError;
use crate::paths::path_problem;

/// One operation of an ndjson commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A regular file, inline.
    File {
        path: String,
        content: Vec<u8>,
    },
    /// A file uploaded beforehand through LFS, named by its sha256.
    Lfs {
        path: String,
        oid: String,
        size: Option<u64>,
    },
    DeleteFile(String),
    DeleteFolder(String),
}

/// A parsed ndjson commit body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitRequest {
    /// The title; "Upload files" when the header names none.
    pub summary: String,
    pub description: String,
    /// `parentCommit`: the commit the client expects the branch to be at.
    pub parent: Option<String>,
    pub ops: Vec<Op>,
}

/// Parses the body of `POST /api/{kind}s/{repo}/commit/{rev}`: one JSON object per line,
/// `{"key": "header"|"file"|"lfsFile"|"deletedFile"|"deletedFolder", "value": {…}}`.
pub fn parse_commit(body: &[u8]) -> Result<CommitRequest, HubError> {
    let mut req = CommitRequest::default();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let n = i + 1;
        let bad = |m: String| HubError::BadRequest(format!("commit line {n}: {m}"));
        let v: Value = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
        let key = v.get("key").and_then(Value::as_str).unwrap_or("");
        let value = v.get("value").unwrap_or(&Value::Null);
        let text = |k: &str| value.get(k).and_then(Value::as_str);
        // A folder may be named with its trailing slash (`huggingface_hub` keeps it).
        let path = |folder: bool| -> Result<String, HubError> {
            let p = text("path").ok_or_else(|| bad("no `path`".into()))?;
            let p = if folder { p.trim_end_matches('/') } else { p };
            match path_problem(p) {
                Some(problem) => Err(HubError::BadRequest(format!("`{p}`: {problem}"))),
                None => Ok(p.to_string()),
            }
        };
        match key {
            "header" => {
                req.summary = text("summary").unwrap_or("").to_string();
                req.description = text("description").unwrap_or("").to_string();
                req.parent = text("parentCommit").map(str::to_string);
            }
            "file" => {
                let content = text("content").unwrap_or("");
                let content = match text("encoding") {
                    Some("base64") | None => base64::engine::general_purpose::STANDARD
                        .decode(content)
                        .map_err(|e| bad(format!("base64: {e}")))?,
                    Some("utf-8") | Some("utf8") => content.as_bytes().to_vec(),
                    Some(other) => {
                        return Err(bad(format!("encoding `{other}` is not supported")));
                    }
                };
                req.ops.push(Op::File {
                    path: path(false)?,
                    content,
                });
            }
            "lfsFile" => {
                let oid = text("oid").unwrap_or("").to_ascii_lowercase();
                if text("algo").is_some_and(|a| a != "sha256") || !is_sha256(&oid) {
                    return Err(bad("lfsFile needs a sha256 oid".into()));
                }
                req.ops.push(Op::Lfs {
                    path: path(false)?,
                    oid,
                    size: value.get("size").and_then(Value::as_u64),
                });
            }
            "deletedFile" => req.ops.push(Op::DeleteFile(path(false)?)),
            "deletedFolder" => req.ops.push(Op::DeleteFolder(path(true)?)),
            other => return Err(bad(format!("unknown key `{other}`"))),
        }
    }
    if req.summary.is_empty() {
        req.summary = "Upload files".into();
    }
    Ok(req)
}

/// What an LFS batch asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LfsOperation {
    Upload,
    Download,
}

/// One object of an LFS batch, as sent: `oid` lower-cased, a missing size is 0. Whether the
/// oid is a sha256 is answered per object (the batch API reports errors per object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LfsObject {
    pub oid: String,
    pub size: u64,
}

impl LfsObject {
    /// Whether `oid` is a sha256 hex digest (the only hash this hub stores by).
    pub fn valid_oid(&self) -> bool {
        is_sha256(&self.oid)
    }
}

/// A parsed `POST …/info/lfs/objects/batch` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LfsBatch {
    pub operation: LfsOperation,
    pub objects: Vec<LfsObject>,
}

/// Parses an LFS batch request (`operation` defaults to upload; `objects` is required; an
/// empty body is `{}`).
pub fn parse_lfs_batch(body: &[u8]) -> Result<LfsBatch, HubError> {
    let v: Value = if body.is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| HubError::BadRequest(format!("request body is not JSON: {e}")))?
    };
    let operation = match v.get("operation").and_then(Value::as_str) {
        None | Some("upload") => LfsOperation::Upload,
        Some("download") => LfsOperation::Download,
        Some(other) => {
            return Err(HubError::BadRequest(format!(
                "LFS operation `{other}`: expected upload or download"
            )));
        }
    };
    let objects = v
        .get("objects")
        .and_then(Value::as_array)
        .ok_or_else(|| HubError::BadRequest("`objects` is required".into()))?
        .iter()
        .map(|o| LfsObject {
            oid: o
                .get("oid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase(),
            size: o.get("size").and_then(Value::as_u64).unwrap_or(0),
        })
        .collect();
    Ok(LfsBatch { operation, objects })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_lines_parse_in_order() {
        let body = br#"{"key":"header","value":{"summary":"s","parentCommit":"abc"}}
{"key":"file","value":{"path":"a.txt","content":"aGk=","encoding":"base64"}}

{"key":"lfsFile","value":{"path":"w.bin","algo":"sha256","oid":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","size":3}}
{"key":"deletedFolder","value":{"path":"old/"}}
"#;
        let r = parse_commit(body).unwrap();
        assert_eq!(r.summary, "s");
        assert_eq!(r.parent.as_deref(), Some("abc"));
        assert_eq!(
            r.ops,
            vec![
                Op::File {
                    path: "a.txt".into(),
                    content: b"hi".to_vec()
                },
                Op::Lfs {
                    path: "w.bin".into(),
                    oid: "a".repeat(64),
                    size: Some(3)
                },
                Op::DeleteFolder("old".into()),
            ]
        );
    }

    #[test]
    fn bad_commit_lines_name_their_line() {
        for (body, want) in [
            (&b"{\"key\":\"header\"}\n{"[..], "commit line 2"),
            (
                b"{\"key\":\"file\",\"value\":{\"path\":\"../x\"}}",
                "`../x`",
            ),
            (b"{\"key\":\"nope\"}", "unknown key `nope`"),
            (
                b"{\"key\":\"lfsFile\",\"value\":{\"path\":\"x\",\"oid\":\"12\"}}",
                "sha256",
            ),
        ] {
            let e = parse_commit(body).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn lfs_batch_defaults_and_refusals() {
        let b = parse_lfs_batch(br#"{"objects":[{"oid":"AB","size":5},{}]}"#).unwrap();
        assert_eq!(b.operation, LfsOperation::Upload);
        assert_eq!(b.objects[0].oid, "ab");
        assert_eq!(b.objects[1].size, 0);
        assert!(!b.objects[0].valid_oid());
        assert!(parse_lfs_batch(b"").is_err());
        assert!(parse_lfs_batch(br#"{"operation":"x","objects":[]}"#).is_err());
    }
}
