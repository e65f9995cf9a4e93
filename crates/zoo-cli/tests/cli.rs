//! The real `zoo` binary on real files: exit codes, JSON, messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use zoo_testkit::real_fixtures;

fn zoo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zoo"))
        .args(args)
        .output()
        .unwrap()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../zoo-checkpoint/tests/fixtures")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn scan_stops_every_hostile_file_without_running_it() {
    let dir = fixtures().join("hostile");
    let canaries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let stem = e
                .unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .to_string();
            PathBuf::from(format!("/tmp/zoo-canary-{stem}"))
        })
        .collect();
    for c in &canaries {
        let _ = std::fs::remove_file(c);
    }
    let out = zoo(&["scan", "--json", s(&dir)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = json(&out);
    assert_eq!(doc["verdict"], "dangerous");
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 9);
    for f in files {
        assert_eq!(f["verdict"], "dangerous", "{f}");
        assert!(
            f["imports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["verdict"] == "dangerous"),
            "{f}"
        );
    }
    // The masquerading files are called out.
    let named = files
        .iter()
        .find(|f| {
            f["path"]
                .as_str()
                .unwrap()
                .ends_with("pickle_named.safetensors")
        })
        .unwrap();
    assert_eq!(named["kind"], "pickle");
    assert!(
        named["notes"][0]
            .as_str()
            .unwrap()
            .contains("the name says safetensors")
    );
    // Converting one is refused with a clear error, exit 2.
    let out = zoo(&[
        "convert",
        s(&dir.join("torch_zip_payload.pt")),
        "/tmp/zoo-never-written.safetensors",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dangerous")
            && err.contains("posix.system")
            && err.contains("torch_zip_payload.pt"),
        "{err}"
    );
    assert!(!Path::new("/tmp/zoo-never-written.safetensors").exists());
    for c in &canaries {
        assert!(!c.exists(), "{} was created", c.display());
    }
}

#[test]
fn scan_passes_clean_files_and_names_suspicious_ones() {
    let out = zoo(&[
        "scan",
        s(&fixtures().join("views.zip.pt")),
        s(&fixtures().join("views.expected.safetensors")),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("safe       torch._utils._rebuild_tensor_v2"),
        "{text}"
    );
    assert!(text.ends_with("2 files scanned, verdict: safe\n"), "{text}");

    let out = zoo(&["scan", "--json", s(&fixtures().join("whole_module.pt"))]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "suspicious is reported, not failed"
    );
    let doc = json(&out);
    assert_eq!(doc["verdict"], "suspicious");
    assert!(
        doc["files"][0]["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["module"] == "torch.nn.modules.linear" && i["verdict"] == "suspicious")
    );
}

#[test]
fn scan_sniffs_content_and_validates_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    // A .bin that is really safetensors: valid, with a note.
    let bin = dir.path().join("pytorch_model.bin");
    std::fs::copy(fixtures().join("views.expected.safetensors"), &bin).unwrap();
    // A broken safetensors: trailing bytes.
    let broken = dir.path().join("broken.safetensors");
    let mut b = std::fs::read(fixtures().join("views.expected.safetensors")).unwrap();
    b.extend_from_slice(b"junk");
    std::fs::write(&broken, b).unwrap();
    // A text file in the folder is not reported.
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let out = zoo(&["scan", "--json", s(dir.path())]);
    assert_eq!(out.status.code(), Some(1));
    let doc = json(&out);
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    let by = |name: &str| {
        files
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(name))
            .unwrap()
            .clone()
    };
    assert_eq!(by("broken.safetensors")["verdict"], "invalid");
    assert!(
        by("broken.safetensors")["notes"][0]
            .as_str()
            .unwrap()
            .contains("4 trailing bytes")
    );
    assert_eq!(by("pytorch_model.bin")["verdict"], "safe");
    assert_eq!(by("pytorch_model.bin")["kind"], "safetensors");
    assert!(
        by("pytorch_model.bin")["notes"][0]
            .as_str()
            .unwrap()
            .contains("the name says pickle")
    );
}

#[test]
fn inspect_reports_tensors_parameters_and_metadata() {
    let out = zoo(&[
        "inspect",
        "--json",
        s(&fixtures().join("mobilenet_v2_tiny.expected.safetensors")),
    ]);
    assert!(out.status.success());
    let doc = json(&out);
    assert_eq!(doc["format"], "safetensors");
    assert_eq!(doc["metadata"]["format"], "pt");
    assert_eq!(doc["tensors"].as_array().unwrap().len(), 314);
    let first = &doc["tensors"][0];
    assert!(first["name"].is_string() && first["dtype"].is_string() && first["shape"].is_array());
    // The same weights read from the PyTorch file: same tensors, same totals.
    let pt = json(&zoo(&[
        "inspect",
        "--json",
        s(&fixtures().join("mobilenet_v2_tiny.legacy.pt")),
    ]));
    assert_eq!(pt["format"], "pytorch-legacy");
    assert_eq!(pt["parameters"], doc["parameters"]);
    assert_eq!(pt["bytes"], doc["bytes"]);
}

#[test]
fn inspect_fails_clearly_on_invalid_files() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("model.safetensors");
    let mut b = std::fs::read(fixtures().join("views.expected.safetensors")).unwrap();
    b.truncate(b.len() - 3);
    std::fs::write(&bad, b).unwrap();
    let out = zoo(&["inspect", s(&bad)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("model.safetensors")
            && err.contains("invalid safetensors")
            && err.contains("data section"),
        "{err}"
    );
    let text = dir.path().join("README.md");
    std::fs::write(&text, "# hi").unwrap();
    let out = zoo(&["inspect", s(&text)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a checkpoint"));
}

#[test]
fn convert_writes_pytorch_identical_bytes_and_casts() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.safetensors");
    let out = zoo(&[
        "convert",
        "--json",
        s(&fixtures().join("bert_tiny.zip.pt")),
        s(&out_path),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["input_format"], "pytorch-zip");
    assert_eq!(
        std::fs::read(&out_path).unwrap(),
        std::fs::read(fixtures().join("bert_tiny.expected.safetensors")).unwrap()
    );
    let out = zoo(&[
        "convert",
        "--dtype",
        "bf16",
        s(&fixtures().join("cast.legacy.pt")),
        s(&out_path),
    ]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(&out_path).unwrap(),
        std::fs::read(fixtures().join("cast.expected-bf16.safetensors")).unwrap()
    );
    let out = zoo(&[
        "convert",
        "--dtype",
        "f8",
        s(&fixtures().join("cast.legacy.pt")),
        s(&out_path),
    ]);
    assert_eq!(out.status.code(), Some(2), "clap refuses unknown dtypes");
}

#[test]
fn real_checkpoints_inspect_and_convert_cleanly() {
    let ck = real_fixtures().join("checkpoints");
    let doc = json(&zoo(&[
        "inspect",
        "--json",
        s(&ck.join("mobilenet_v2-b0353104.pth")),
    ]));
    assert_eq!(doc["format"], "pytorch-legacy");
    // torchvision: sum(p.numel() for p in mobilenet_v2().parameters()) == 3_504_872.
    assert_eq!(doc["parameters"], 3_504_872);
    let classifier = doc["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "classifier.1.weight")
        .unwrap();
    assert_eq!(classifier["shape"], serde_json::json!([1000, 1280]));
    let doc = json(&zoo(&[
        "inspect",
        "--json",
        s(&ck.join("efficientnet-lite0-57934424.pth")),
    ]));
    assert!(
        doc["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "_fc.weight")
    );
    let out = zoo(&["scan", s(&ck)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let dir = tempfile::tempdir().unwrap();
    let out = zoo(&[
        "convert",
        s(&ck.join("efficientnet-lite0-57934424.pth")),
        s(&dir.path().join("e.safetensors")),
    ]);
    assert!(out.status.success());
    let again = json(&zoo(&[
        "inspect",
        "--json",
        s(&dir.path().join("e.safetensors")),
    ]));
    assert_eq!(again["parameters"], doc["parameters"]);
}
