//! PyTorch checkpoints made by real PyTorch (see fixtures/generate.py): `zoo convert` must write
//! exactly the bytes `safetensors.torch.save_file({k: v.contiguous()})` writes.

use std::path::{Path, PathBuf};
use zoo_testkit::real_fixtures;

use sha2::{Digest, Sha256};
use zoo_checkpoint::{Error, Format, Mapped, convert, load};
use zoo_formats::Dtype;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn converted(input: &Path, dtype: Option<Dtype>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    convert(input, &out, dtype).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    std::fs::read(out).unwrap()
}

#[test]
fn both_layouts_convert_byte_identical_to_pytorch() {
    for name in ["views", "cast", "mobilenet_v2_tiny", "bert_tiny", "wrapped"] {
        let expected =
            std::fs::read(fixtures().join(format!("{name}.expected.safetensors"))).unwrap();
        for layout in ["zip", "legacy"] {
            let got = converted(&fixtures().join(format!("{name}.{layout}.pt")), None);
            assert!(
                got == expected,
                "{name}.{layout}.pt: output differs from PyTorch's export"
            );
        }
    }
}

#[test]
fn casts_round_like_pytorch() {
    for (dtype, suffix) in [(Dtype::F16, "f16"), (Dtype::BF16, "bf16")] {
        let expected =
            std::fs::read(fixtures().join(format!("cast.expected-{suffix}.safetensors"))).unwrap();
        for layout in ["zip", "legacy"] {
            let got = converted(&fixtures().join(format!("cast.{layout}.pt")), Some(dtype));
            assert!(
                got == expected,
                "cast.{layout}.pt --dtype {suffix}: differs from Tensor.to()"
            );
        }
    }
}

#[test]
fn formats_are_detected_and_views_materialised() {
    let zip = Mapped::open(fixtures().join("views.zip.pt")).unwrap();
    let legacy = Mapped::open(fixtures().join("views.legacy.pt")).unwrap();
    let (a, b) = (load(&zip).unwrap(), load(&legacy).unwrap());
    assert_eq!(a.format, Format::PytorchZip);
    assert_eq!(b.format, Format::PytorchLegacy);
    let get = |l: &zoo_checkpoint::Loaded<'_>, n: &str| {
        l.tensors
            .iter()
            .find(|t| t.name == n)
            .unwrap()
            .data
            .to_vec()
    };
    // base = arange(24).reshape(4, 6); transposed = base.t()
    let f32s = |b: Vec<u8>| {
        b.chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect::<Vec<_>>()
    };
    let t = f32s(get(&a, "transposed"));
    assert_eq!(&t[..5], &[0.0, 6.0, 12.0, 18.0, 1.0]);
    assert_eq!(
        f32s(get(&b, "broadcast")),
        vec![
            1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0
        ]
    );
    assert_eq!(get(&a, "empty").len(), 0);
    assert_eq!(
        a.tensors.iter().find(|t| t.name == "scalar").unwrap().shape,
        Vec::<usize>::new()
    );
    // Every dtype survives.
    let dtypes: std::collections::BTreeSet<Dtype> = a.tensors.iter().map(|t| t.dtype).collect();
    for d in [
        Dtype::F32,
        Dtype::F16,
        Dtype::BF16,
        Dtype::F64,
        Dtype::I64,
        Dtype::I32,
        Dtype::I16,
        Dtype::I8,
        Dtype::U8,
        Dtype::Bool,
    ] {
        assert!(dtypes.contains(&d), "{d} missing");
    }
}

#[test]
fn wrapped_checkpoints_use_the_inner_state_dict() {
    let m = Mapped::open(fixtures().join("wrapped.zip.pt")).unwrap();
    let l = load(&m).unwrap();
    assert!(l.tensors.iter().all(|t| t.name.starts_with("features.")));
    assert_eq!(l.tensors.len(), 6);
}

#[test]
fn whole_pickled_modules_are_refused_with_a_clear_error() {
    let m = Mapped::open(fixtures().join("whole_module.pt")).unwrap();
    let err = load(&m).unwrap_err().to_string();
    assert!(
        err.contains("whole_module.pt")
            && err.contains("torch.nn.modules.linear.Linear")
            && err.contains("state_dict"),
        "{err}"
    );
}

#[test]
fn hostile_pickles_are_refused_and_never_run() {
    let dir = fixtures().join("hostile");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let canary = PathBuf::from(format!("/tmp/zoo-canary-{stem}"));
        let _ = std::fs::remove_file(&canary);
        let m = Mapped::open(&path).unwrap();
        match load(&m) {
            Err(Error::Dangerous { path: p, imports }) => {
                assert_eq!(p, path);
                assert!(!imports.is_empty());
            }
            Err(other) => panic!(
                "{}: expected a dangerous-pickle refusal, got {other}",
                path.display()
            ),
            Ok(_) => panic!("{}: hostile file loaded", path.display()),
        }
        let out = tempfile::tempdir().unwrap();
        assert!(convert(&path, &out.path().join("x.safetensors"), None).is_err());
        assert!(
            !out.path().join("x.safetensors").exists(),
            "nothing written for {stem}"
        );
        assert!(!canary.exists(), "{}: canary created", path.display());
        seen += 1;
    }
    assert_eq!(seen, 9);
}

#[test]
fn truncated_checkpoints_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["mobilenet_v2_tiny.zip.pt", "mobilenet_v2_tiny.legacy.pt"] {
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        for cut in [1, 100, bytes.len() / 2, bytes.len() - 1] {
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let m = Mapped::open(&path).unwrap();
            let err = load(&m).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}

#[test]
fn corrupted_storages_never_read_out_of_bounds() {
    // Flip bytes all over a legacy file: every outcome is Ok or a clean error.
    let bytes = std::fs::read(fixtures().join("views.legacy.pt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flipped.pt");
    for i in (0..bytes.len()).step_by(7) {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        std::fs::write(&path, &b).unwrap();
        let m = Mapped::open(&path).unwrap();
        if let Ok(l) = load(&m) {
            for t in &l.tensors {
                assert_eq!(
                    t.data.len(),
                    t.shape.iter().product::<usize>() * t.dtype.size()
                );
            }
        }
    }
}

#[test]
fn real_imagenet_checkpoints_convert_byte_identical() {
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("real-expected.json")).unwrap(),
    )
    .unwrap();
    let ck = real_fixtures().join("checkpoints");
    for (name, sum) in expected.as_object().unwrap() {
        let got = converted(&ck.join(name), None);
        let hex: String = Sha256::digest(&got)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(&hex, sum.as_str().unwrap(), "{name}");
    }
}
