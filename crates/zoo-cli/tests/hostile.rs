//! Issue 16: a table of hostile inputs, each with the refusal it must get — the file formats
//! (pickles, safetensors, PyTorch zips, cards, config.json, tokenizer files, images, CSV), the
//! hub's HTTP API (paths, headers, bodies, JSON, ndjson commits, LFS, Range, cursors,
//! tokens) and the CLI. Every row is asserted; the count is asserted too, so the table can
//! only grow. After the HTTP rows the hub must still answer and hold nothing partial.

use base64::Engine as _;
use serde_json::{Value, json};
use zoo_formats::scan::{FileVerdict, scan_bytes};

mod common;
use common::*;

/// A safetensors file from a header string and a data section.
fn st(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// The file-format rows: `(what, file name, bytes, the verdict the scanner must give)`.
fn format_rows() -> Vec<(&'static str, &'static str, Vec<u8>, FileVerdict)> {
    use FileVerdict::*;
    let p = |b: &[u8]| b.to_vec();
    let ok_tensor = r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    vec![
        // Pickles.
        (
            "os.system via GLOBAL",
            "model.bin",
            p(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R."),
            Dangerous,
        ),
        (
            "subprocess via STACK_GLOBAL",
            "model.pkl",
            p(b"\x80\x04\x8c\nsubprocess\x8c\x05Popen\x93X\x02\x00\x00\x00id\x85R."),
            Dangerous,
        ),
        (
            "builtins.eval",
            "x.pt",
            p(b"\x80\x02c__builtin__\neval\nX\x01\x00\x00\x001\x85R."),
            Dangerous,
        ),
        (
            "builtins.exec",
            "x.pth",
            p(b"\x80\x02cbuiltins\nexec\nX\x01\x00\x00\x001\x85R."),
            Dangerous,
        ),
        (
            "posix.system",
            "x.ckpt",
            p(b"\x80\x02cposix\nsystem\nX\x01\x00\x00\x00x\x85R."),
            Dangerous,
        ),
        (
            "nt.system",
            "x.pkl",
            p(b"\x80\x02cnt\nsystem\nX\x01\x00\x00\x00x\x85R."),
            Dangerous,
        ),
        (
            "runpy",
            "x.pkl",
            p(b"\x80\x02crunpy\n_run_code\nX\x01\x00\x00\x00x\x85R."),
            Dangerous,
        ),
        (
            "webbrowser.open",
            "x.pkl",
            p(b"\x80\x02cwebbrowser\nopen\nX\x01\x00\x00\x00x\x85R."),
            Dangerous,
        ),
        (
            "dangerous import then garbage",
            "x.pkl",
            p(b"\x80\x02cos\nsystem\n\xff\xff"),
            Dangerous,
        ),
        (
            "truncated pickle",
            "x.pkl",
            p(b"\x80\x02(K\x01K\x02"),
            Invalid,
        ),
        ("unknown opcode", "x.pkl", p(b"\x80\x02\xfe."), Invalid),
        ("protocol 9", "x.pkl", p(b"\x80\x09N."), Invalid),
        (
            "memo key never stored",
            "x.pkl",
            p(b"\x80\x02h\x07."),
            Invalid,
        ),
        ("REDUCE on empty stack", "x.pkl", p(b"\x80\x02R."), Invalid),
        (
            "length past the end",
            "x.pkl",
            p(b"\x80\x02X\xff\xff\xff\x7fab."),
            Invalid,
        ),
        (
            "negative BINBYTES length",
            "x.pkl",
            p(b"\x80\x03B\xff\xff\xff\xff."),
            Invalid,
        ),
        ("SETITEM on None", "x.pkl", p(b"\x80\x02NNNs."), Invalid),
        (
            "BUILD on a string",
            "x.pkl",
            p(b"\x80\x02X\x01\x00\x00\x00aNb."),
            Invalid,
        ),
        (
            "extension registry opcode",
            "x.pkl",
            p(b"\x80\x02\x82\x01."),
            Invalid,
        ),
        ("empty .bin", "pytorch_model.bin", Vec::new(), Invalid),
        (
            "text named .pt",
            "model.pt",
            p(b"hello, this is not a checkpoint\n"),
            Invalid,
        ),
        // Safetensors.
        (
            "header length past the end",
            "model.safetensors",
            p(&u64::MAX.to_le_bytes()),
            Invalid,
        ),
        (
            "header not JSON",
            "model.safetensors",
            st("not json", b""),
            Invalid,
        ),
        (
            "header a JSON list",
            "model.safetensors",
            st("[1,2,3]", b""),
            Invalid,
        ),
        (
            "offsets past the data",
            "model.safetensors",
            st(
                r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                &[0; 4],
            ),
            Invalid,
        ),
        (
            "shape × dtype ≠ bytes",
            "model.safetensors",
            st(
                r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            Invalid,
        ),
        (
            "overlapping tensors",
            "model.safetensors",
            st(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            Invalid,
        ),
        (
            "unknown dtype",
            "model.safetensors",
            st(
                r#"{"w":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            Invalid,
        ),
        (
            "shape overflow",
            "model.safetensors",
            st(
                r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            Invalid,
        ),
        (
            "negative offsets",
            "model.safetensors",
            st(
                r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#,
                &[0; 4],
            ),
            Invalid,
        ),
        (
            "reversed offsets",
            "model.safetensors",
            st(
                r#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}"#,
                &[0; 4],
            ),
            Invalid,
        ),
        (
            "duplicate tensor names",
            "model.safetensors",
            st(
                r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            Invalid,
        ),
        (
            "bytes after the last tensor",
            "model.safetensors",
            st(ok_tensor, &[0; 8]),
            Invalid,
        ),
        (
            "metadata not strings",
            "model.safetensors",
            st(
                r#"{"__metadata__":{"a":1},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            Invalid,
        ),
        (
            "truncated header",
            "model.safetensors",
            {
                let mut v = st(ok_tensor, &[0; 4]);
                v.truncate(20);
                v
            },
            Invalid,
        ),
        (
            "a pickle named .safetensors",
            "model.safetensors",
            p(b"\x80\x02N."),
            Invalid,
        ),
        // PyTorch zip archives.
        (
            "zip magic, nothing else",
            "model.pt",
            p(b"PK\x03\x04"),
            Invalid,
        ),
        (
            "zip with garbage central directory",
            "model.pt",
            {
                let mut v = b"PK\x03\x04".to_vec();
                v.extend_from_slice(&[0xAB; 200]);
                v.extend_from_slice(b"PK\x05\x06");
                v.extend_from_slice(&[0xFF; 18]);
                v
            },
            Invalid,
        ),
    ]
}

#[test]
fn hostile_files_are_refused_with_the_expected_verdict_issue_16() {
    let rows = format_rows();
    for (what, name, bytes, expected) in &rows {
        let report = scan_bytes(name, bytes);
        assert_eq!(report.verdict, *expected, "{what} ({name}): {report:?}");
    }
    // Cards, configs, tokenizers, images, CSV: each refused with an error (never a panic).
    let dir = tempfile::tempdir().unwrap();
    let mut refused = 0;
    let cards: &[(&str, &str)] = &[
        (
            "unclosed front matter",
            "---\nlicense: mit\n# no closing line\n",
        ),
        ("front matter not a mapping", "---\n- a\n- b\n---\nbody\n"),
        ("YAML syntax error", "---\nlicense: [mit\n---\n"),
        (
            "alias bomb",
            "---\na: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n---\n",
        ),
        (
            "huge front matter",
            &format!("---\nx: \"{}\"\n---\n", "a".repeat(2 << 20)),
        ),
        ("model-index not a list", "---\nmodel-index: 3\n---\n"),
    ];
    for (what, text) in cards {
        let parsed = zoo_card::ModelCard::parse(text);
        let bad = match parsed {
            Err(_) => true,
            Ok(c) => c.results().is_err(),
        };
        assert!(bad, "card: {what} was accepted");
        refused += 1;
    }
    for (what, text) in [
        ("config not JSON", "{"),
        ("config a list", "[1]"),
        ("config a string", "\"x\""),
        ("config id2label not a map", r#"{"id2label": 3}"#),
        (
            "config labels with holes",
            r#"{"id2label": {"0": "a", "5": "b"}}"#,
        ),
    ] {
        let bad = match zoo_card::Config::parse(text) {
            Err(_) => true,
            Ok(c) => c.label_names().is_err(),
        };
        assert!(bad, "config: {what} was accepted");
        refused += 1;
    }
    for (what, text) in [
        ("tokenizer not JSON", "{"),
        ("tokenizer without a model", r#"{"version": "1.0"}"#),
        (
            "tokenizer with an unknown model",
            r#"{"version": "1.0", "model": {"type": "Nope"}}"#,
        ),
    ] {
        let d = dir.path().join(format!("tok-{refused}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("tokenizer.json"), text).unwrap();
        assert!(
            zoo_preprocess::text::TextTokenizer::from_dir(&d, 128).is_err(),
            "tokenizer: {what} was accepted"
        );
        refused += 1;
    }
    let png = include_bytes!("../../zoo-preprocess/tests/fixtures/small28.png");
    for (what, bytes) in [
        ("empty image", Vec::new()),
        ("PNG cut in half", png[..png.len() / 2].to_vec()),
        (
            "PNG magic then garbage",
            [&png[..8], &[0xEE; 64][..]].concat(),
        ),
        (
            "JPEG magic then garbage",
            [&b"\xff\xd8\xff\xe0"[..], &[0x11; 64][..]].concat(),
        ),
        ("text named .png", b"not an image".to_vec()),
    ] {
        assert!(
            zoo_preprocess::decode(&bytes, "img.png").is_err(),
            "image: {what} was accepted"
        );
        refused += 1;
    }
    for (what, name, bytes) in [
        (
            "CSV without a label column",
            "a.csv",
            b"text\nhello\n".to_vec(),
        ),
        (
            "CSV with an empty label",
            "b.csv",
            b"text,label\nhello,\n".to_vec(),
        ),
        (
            "CSV with ragged rows",
            "c.csv",
            b"text,label\nhello,pos,extra\n".to_vec(),
        ),
        (
            "CSV that is not UTF-8",
            "d.csv",
            b"text,label\nhel\xfflo,pos\nhi,neg\n".to_vec(),
        ),
        ("CSV with no rows", "e.csv", b"text,label\n".to_vec()),
        (
            "JSON Lines without a label",
            "f.jsonl",
            b"{\"text\": \"hi\"}\n".to_vec(),
        ),
        (
            "JSON Lines that is not JSON",
            "g.jsonl",
            b"{text: hi}\n".to_vec(),
        ),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        assert!(
            zoo_train::data::load(&p).is_err(),
            "data: {what} was accepted"
        );
        refused += 1;
    }
    let total = rows.len() + refused;
    assert!(total >= 60, "the format table has {total} rows");
    println!("{total} hostile files refused");
}

/// One HTTP row: method, path, headers, body → expected status (and a text the body holds).
struct Row {
    what: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
}

fn send(base: &str, r: &Row) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let url = format!("{base}{}", r.path);
    let mut req = ureq::http::Request::builder().method(r.method).uri(&url);
    for (k, v) in &r.headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(r.body.clone())
        .unwrap_or_else(|e| panic!("{}: {e}", r.what));
    let mut resp = match agent.run(req) {
        Ok(resp) => resp,
        // A body over the limit may be cut off by the server's 413 before it is all sent.
        Err(e) if r.status == 413 => return (413, format!("connection closed: {e}")),
        Err(e) => panic!("{}: {e}", r.what),
    };
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    (status, body)
}

#[test]
fn hostile_requests_are_refused_and_change_nothing_issue_16() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let alice = user(&data, "alice", "write");
    let reader = admin(
        &data,
        &["token", "create", "--user", "alice", "--scope", "read"],
    );
    let server = Server::start(&data, &[], &[]);
    let http = Http::new(&server.url);
    http.create(&alice, "alice/m", false);
    let r = http.commit(&alice, "alice/m", &[("a.txt", b"hello")], &[]);
    assert_eq!(r.status, 200);
    let head = http.head_commit(&alice, "alice/m");
    let auth = || vec![("Authorization", format!("Bearer {alice}"))];
    let json_auth = || {
        vec![
            ("Authorization", format!("Bearer {alice}")),
            ("Content-Type", "application/json".to_string()),
        ]
    };
    let nd = |lines: &[Value]| -> Vec<u8> {
        let mut s = json!({"key": "header", "value": {"summary": "x"}}).to_string() + "\n";
        for l in lines {
            s.push_str(&l.to_string());
            s.push('\n');
        }
        s.into_bytes()
    };
    let commit = |what: &'static str, body: Vec<u8>, status: u16| Row {
        what,
        method: "POST",
        path: "/api/models/alice/m/commit/main".into(),
        headers: auth(),
        body,
        status,
    };
    let file = |path: &str| json!({"key": "file", "value": {"path": path, "content": "eA==", "encoding": "base64"}});
    let get = |what: &'static str, path: String, status: u16| Row {
        what,
        method: "GET",
        path,
        headers: vec![],
        body: vec![],
        status,
    };
    let get_h = |what: &'static str, path: &str, h: (&'static str, String), status: u16| Row {
        what,
        method: "GET",
        path: path.to_string(),
        headers: vec![h],
        body: vec![],
        status,
    };
    let max = u64::MAX;
    let b64 = base64::engine::general_purpose::STANDARD.encode(b"x");
    let rows = vec![
        // Paths.
        commit("`..` in a path", nd(&[file("../evil")]), 400),
        commit("absolute path", nd(&[file("/etc/passwd")]), 400),
        commit("backslash path", nd(&[file("a\\b")]), 400),
        commit("NUL in a path", nd(&[file("a\u{0}b")]), 400),
        commit("empty path segment", nd(&[file("a//b")]), 400),
        commit("`.git/` path", nd(&[file(".git/config")]), 400),
        commit("over-long path", nd(&[file(&"a/".repeat(3000))]), 400),
        commit("dot path", nd(&[file("./a")]), 400),
        get(
            "resolve with `..`",
            "/alice/m/resolve/main/..%2F..%2Fetc%2Fpasswd".into(),
            404,
        ),
        get(
            "tree with `..`",
            "/api/models/alice/m/tree/main/..".into(),
            404,
        ),
        get(
            "percent-encoded non-UTF-8",
            "/api/models/alice/%ff%fe".into(),
            400,
        ),
        get(
            "repo name too long",
            format!("/api/models/alice/{}", "a".repeat(500)),
            401,
        ),
        get("unknown route", "/api/nothing/here".into(), 404),
        // ndjson commits.
        commit("not JSON", b"{{{\n".to_vec(), 400),
        commit(
            "unknown key",
            nd(&[json!({"key": "nope", "value": {}})]),
            400,
        ),
        commit(
            "file without path",
            nd(&[json!({"key": "file", "value": {"content": b64}})]),
            400,
        ),
        commit(
            "bad base64",
            nd(&[
                json!({"key": "file", "value": {"path": "a", "content": "!!!", "encoding": "base64"}}),
            ]),
            400,
        ),
        commit(
            "unknown encoding",
            nd(&[
                json!({"key": "file", "value": {"path": "a", "content": "x", "encoding": "rot13"}}),
            ]),
            400,
        ),
        commit(
            "lfsFile with a bad oid",
            nd(&[
                json!({"key": "lfsFile", "value": {"path": "w", "algo": "sha256", "oid": "xyz", "size": 1}}),
            ]),
            400,
        ),
        commit(
            "lfsFile with sha1",
            nd(&[
                json!({"key": "lfsFile", "value": {"path": "w", "algo": "sha1", "oid": "a".repeat(64), "size": 1}}),
            ]),
            400,
        ),
        commit(
            "lfsFile never uploaded",
            nd(&[
                json!({"key": "lfsFile", "value": {"path": "w", "algo": "sha256", "oid": "b".repeat(64), "size": 1}}),
            ]),
            400,
        ),
        commit(
            "stale parentCommit",
            format!(
                "{}\n",
                json!({"key": "header", "value": {"summary": "x", "parentCommit": "0".repeat(40)}})
            )
            .into_bytes(),
            412,
        ),
        Row {
            what: "commit to a tag-less unknown branch",
            method: "POST",
            path: "/api/models/alice/m/commit/nope".into(),
            headers: auth(),
            body: nd(&[file("a")]),
            status: 404,
        },
        Row {
            what: "commit with create_pr",
            method: "POST",
            path: "/api/models/alice/m/commit/main?create_pr=1".into(),
            headers: auth(),
            body: nd(&[file("a")]),
            status: 400,
        },
        Row {
            what: "commit with a read token",
            method: "POST",
            path: "/api/models/alice/m/commit/main".into(),
            headers: vec![("Authorization", format!("Bearer {reader}"))],
            body: nd(&[file("a")]),
            status: 403,
        },
        Row {
            what: "commit without a token",
            method: "POST",
            path: "/api/models/alice/m/commit/main".into(),
            headers: vec![],
            body: nd(&[file("a")]),
            status: 401,
        },
        // JSON bodies.
        Row {
            what: "create: body not JSON",
            method: "POST",
            path: "/api/repos/create".into(),
            headers: json_auth(),
            body: b"{".to_vec(),
            status: 400,
        },
        Row {
            what: "create: no name",
            method: "POST",
            path: "/api/repos/create".into(),
            headers: json_auth(),
            body: b"{}".to_vec(),
            status: 400,
        },
        Row {
            what: "create: bad name",
            method: "POST",
            path: "/api/repos/create".into(),
            headers: json_auth(),
            body: br#"{"name": "alice/../x"}"#.to_vec(),
            status: 400,
        },
        Row {
            what: "create: someone else's namespace",
            method: "POST",
            path: "/api/repos/create".into(),
            headers: json_auth(),
            body: br#"{"name": "bob/x"}"#.to_vec(),
            status: 403,
        },
        Row {
            what: "create: unknown type",
            method: "POST",
            path: "/api/repos/create".into(),
            headers: json_auth(),
            body: br#"{"name": "x", "type": "space"}"#.to_vec(),
            status: 400,
        },
        Row {
            what: "create: body too large",
            method: "POST",
            path: "/api/repos/create".into(),
            headers: json_auth(),
            body: vec![b' '; 2 << 20],
            status: 413,
        },
        Row {
            what: "branch: bad name",
            method: "POST",
            path: "/api/models/alice/m/branch/a..b".into(),
            headers: json_auth(),
            body: b"{}".to_vec(),
            status: 400,
        },
        Row {
            what: "branch: unknown start",
            method: "POST",
            path: "/api/models/alice/m/branch/x".into(),
            headers: json_auth(),
            body: br#"{"startingPoint": "nope"}"#.to_vec(),
            status: 404,
        },
        Row {
            what: "paths-info: `..` paths (nothing answered)",
            method: "POST",
            path: "/api/models/alice/m/paths-info/main".into(),
            headers: vec![
                ("Authorization", format!("Bearer {alice}")),
                ("Content-Type", "application/x-www-form-urlencoded".into()),
            ],
            body: b"paths=..%2F..%2Fetc%2Fpasswd&paths=%2Fetc%2Fpasswd".to_vec(),
            status: 200,
        },
        Row {
            what: "preupload: files not a list",
            method: "POST",
            path: "/api/models/alice/m/preupload/main".into(),
            headers: json_auth(),
            body: br#"{"files": 3}"#.to_vec(),
            status: 400,
        },
        Row {
            what: "settings: private not a bool",
            method: "PUT",
            path: "/api/models/alice/m/settings".into(),
            headers: json_auth(),
            body: br#"{"private": "yes"}"#.to_vec(),
            status: 400,
        },
        // LFS.
        Row {
            what: "LFS batch: not JSON",
            method: "POST",
            path: "/alice/m.git/info/lfs/objects/batch".into(),
            headers: json_auth(),
            body: b"nope".to_vec(),
            status: 400,
        },
        // (The LFS batch API answers per object: 200 with the object's own 422.)
        Row {
            what: "LFS batch: bad oid",
            method: "POST",
            path: "/alice/m.git/info/lfs/objects/batch".into(),
            headers: json_auth(),
            body: br#"{"operation": "upload", "objects": [{"oid": "../x", "size": 1}]}"#.to_vec(),
            status: 200,
        },
        Row {
            what: "LFS batch: unknown operation",
            method: "POST",
            path: "/alice/m.git/info/lfs/objects/batch".into(),
            headers: json_auth(),
            body: br#"{"operation": "steal", "objects": []}"#.to_vec(),
            status: 400,
        },
        Row {
            what: "LFS PUT without a signature",
            method: "PUT",
            path: format!(
                "/api/lfs/upload/{}?size=1&expires=9999999999",
                "c".repeat(64)
            ),
            headers: vec![],
            body: b"x".to_vec(),
            status: 403,
        },
        Row {
            what: "LFS PUT with a forged signature",
            method: "PUT",
            path: format!(
                "/api/lfs/upload/{}?size=1&expires=9999999999&sig={}",
                "c".repeat(64),
                "0".repeat(64)
            ),
            headers: vec![],
            body: b"x".to_vec(),
            status: 403,
        },
        Row {
            what: "LFS PUT with an expired link",
            method: "PUT",
            path: format!(
                "/api/lfs/upload/{}?size=1&expires=1&sig={}",
                "c".repeat(64),
                "0".repeat(64)
            ),
            headers: vec![],
            body: b"x".to_vec(),
            status: 403,
        },
        Row {
            what: "LFS PUT without size",
            method: "PUT",
            path: format!("/api/lfs/upload/{}", "c".repeat(64)),
            headers: vec![],
            body: b"x".to_vec(),
            status: 400,
        },
        get(
            "LFS GET with a forged signature",
            format!(
                "/api/lfs/objects/{}?expires=9999999999&sig=00",
                "c".repeat(64)
            ),
            403,
        ),
        // Range.
        get_h(
            "Range start past the end",
            "/alice/m/resolve/main/a.txt",
            ("Range", "bytes=99-".into()),
            416,
        ),
        get_h(
            "Range start at u64::MAX",
            "/alice/m/resolve/main/a.txt",
            ("Range", format!("bytes={max}-")),
            416,
        ),
        get_h(
            "Range suffix of zero",
            "/alice/m/resolve/main/a.txt",
            ("Range", "bytes=-0".into()),
            416,
        ),
        get_h(
            "Range end at u64::MAX (clamped)",
            "/alice/m/resolve/main/a.txt",
            ("Range", format!("bytes=0-{max}")),
            206,
        ),
        get_h(
            "Range garbage (ignored)",
            "/alice/m/resolve/main/a.txt",
            ("Range", "bytes=x-y".into()),
            200,
        ),
        get_h(
            "Range reversed (ignored)",
            "/alice/m/resolve/main/a.txt",
            ("Range", "bytes=3-1".into()),
            200,
        ),
        // Cursors and limits.
        get("cursor u64::MAX", format!("/api/models?cursor={max}"), 200),
        get("cursor negative", "/api/models?cursor=-1".into(), 200),
        get("limit 0", "/api/models?limit=0".into(), 200),
        get("limit huge", format!("/api/models?limit={max}"), 200),
        get(
            "bad filter",
            "/api/models?filter=metric:top-1%3E%3Ex".into(),
            400,
        ),
        get("bad sort", "/api/models?sort=nope".into(), 400),
        get(
            "bad direction",
            "/api/models?sort=downloads&direction=up".into(),
            400,
        ),
        get(
            "tree cursor u64::MAX",
            format!("/api/models/alice/m/tree/main?cursor={max}"),
            200,
        ),
        // Revisions.
        get(
            "unknown revision",
            "/api/models/alice/m/revision/nope".into(),
            404,
        ),
        get(
            "commit id of another length",
            format!("/api/models/alice/m/revision/{}", &head[..39]),
            404,
        ),
        get("unknown file", "/alice/m/resolve/main/nope.txt".into(), 404),
        // Tokens and headers.
        get_h(
            "Bearer garbage",
            "/api/whoami-v2",
            ("Authorization", "Bearer nope".into()),
            401,
        ),
        get_h(
            "Basic without a colon",
            "/api/whoami-v2",
            ("Authorization", "Basic bm9jb2xvbg==".into()),
            401,
        ),
        get_h(
            "unknown auth scheme",
            "/api/whoami-v2",
            ("Authorization", "Digest x".into()),
            401,
        ),
        get_h(
            "empty bearer",
            "/api/whoami-v2",
            ("Authorization", "Bearer ".into()),
            401,
        ),
        get("whoami without a token", "/api/whoami-v2".into(), 401),
        get_h(
            "forged session cookie",
            "/api/whoami-v2",
            ("Cookie", "zoo_session=a.9999999999999.00".into()),
            401,
        ),
        Row {
            what: "sign-in without CSRF",
            method: "POST",
            path: "/login".into(),
            headers: vec![("Content-Type", "application/x-www-form-urlencoded".into())],
            body: format!("token={alice}").into_bytes(),
            status: 403,
        },
        Row {
            what: "sign-out without CSRF",
            method: "POST",
            path: "/logout".into(),
            headers: vec![],
            body: vec![],
            status: 403,
        },
        // Xet.
        Row {
            what: "Xet xorb with a forged token",
            method: "POST",
            path: format!(
                "/xet-cas/models/alice/m/v1/xorbs/default/{}",
                "a".repeat(64)
            ),
            headers: vec![("Authorization", "Bearer xet.e30.00".into())],
            body: vec![0; 16],
            status: 401,
        },
        get(
            "Xet CAS GET of a xorb (not offered)",
            "/xet-cas/models/alice/m/v1/xorbs/default/aa".into(),
            404,
        ),
        Row {
            what: "Xet shard upload without a token",
            method: "POST",
            path: "/xet-cas/models/alice/m/v1/shards".into(),
            headers: vec![],
            body: vec![1, 2, 3],
            status: 401,
        },
        // Deletion.
        Row {
            what: "delete someone else's (missing) repo: not found, nothing revealed",
            method: "DELETE",
            path: "/api/repos/delete".into(),
            headers: json_auth(),
            body: br#"{"name": "bob/x"}"#.to_vec(),
            status: 401,
        },
        Row {
            what: "delete with a read token",
            method: "DELETE",
            path: "/api/repos/delete".into(),
            headers: vec![
                ("Authorization", format!("Bearer {reader}")),
                ("Content-Type", "application/json".into()),
            ],
            body: br#"{"name": "alice/m"}"#.to_vec(),
            status: 403,
        },
    ];
    let mut failures = Vec::new();
    for r in &rows {
        let (status, body) = send(&server.url, r);
        if status != r.status {
            failures.push(format!(
                "{}: {} {} → {status} (expected {}): {}",
                r.what,
                r.method,
                r.path.chars().take(80).collect::<String>(),
                r.status,
                body.chars().take(200).collect::<String>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert!(rows.len() >= 60, "{} rows", rows.len());
    // Still serving, and unchanged: the one commit, the one file.
    assert_eq!(http.head_commit(&alice, "alice/m"), head);
    let tree = http
        .get("/api/models/alice/m/tree/main", Some(&alice), None)
        .json();
    let paths: Vec<&str> = tree
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["a.txt"]);
    let listed = http
        .get("/api/models?author=alice", Some(&alice), None)
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    println!("{} hostile requests refused", rows.len());
}
