//! `zoo rank`'s scores (issue 17): LogME against an independent NumPy implementation (the
//! evidence in matrix form: solve, slogdet), and the ranking of a real pre-trained encoder
//! against the same encoder with scrambled weights on real sentences.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::Command;

use zoo_train::Silent;
use zoo_train::rank::{RankOptions, Score, rank};
use zoo_train::scores::{Labelled, h_score, logme};

fn fixtures() -> PathBuf {
    zoo_testkit::real_fixtures()
}

/// Deterministic pseudo-random features: 3 classes whose means differ along a few axes.
fn synthetic(n: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut s = seed;
    let mut next = || {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let mut rows = Vec::new();
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    for &l in &labels {
        for j in 0..d {
            rows.push(next() + if j % 3 == l { 0.8 } else { 0.0 });
        }
    }
    (rows, labels)
}

/// LogME per class in matrix form, written apart from the Rust one: the same fixed point,
/// but γ, m and the residual from A = αI + βFᵀF by solve and slogdet.
const NUMPY_LOGME: &str = r#"
import json, sys
import numpy as np
d = json.load(sys.stdin)
F = np.array(d["rows"], dtype=np.float64).reshape(d["n"], d["dim"])
labels = np.array(d["labels"])
N, D = F.shape
G = F.T @ F
ev = np.linalg.eigvalsh(G)
out = []
for k in range(d["classes"]):
    y = (labels == k).astype(np.float64)
    alpha, beta = 1.0, 1.0
    for _ in range(100):
        t = alpha / beta
        A = alpha * np.eye(D) + beta * G
        m = beta * np.linalg.solve(A, F.T @ y)
        gamma = np.sum(beta * ev / (alpha + beta * ev))
        m2 = m @ m
        res2 = np.sum((F @ m - y) ** 2)
        alpha = gamma / (m2 + 1e-5)
        beta = (N - gamma) / (res2 + 1e-5)
        if abs(alpha / beta - t) / t <= 1e-3:
            break
    A = alpha * np.eye(D) + beta * G
    m = beta * np.linalg.solve(A, F.T @ y)
    m2 = m @ m
    res2 = np.sum((F @ m - y) ** 2)
    _, logdet = np.linalg.slogdet(A)
    ev_ = D / 2 * np.log(alpha) + N / 2 * np.log(beta) - 0.5 * logdet - beta / 2 * res2 - alpha / 2 * m2 - N / 2 * np.log(2 * np.pi)
    out.append(ev_ / N)
print(json.dumps(float(np.mean(out))))
"#;

#[test]
fn logme_matches_an_independent_numpy_implementation_issue_17() {
    let python = std::env::var("ZOO_PYTHON")
        .expect("ZOO_PYTHON: a python with numpy (scripts/test.sh sets it)");
    for (n, d) in [(300, 24), (40, 12), (20, 30)] {
        let (rows, labels) = synthetic(n, d, n as u64 * 31 + d as u64);
        let l = Labelled {
            rows: &rows,
            n,
            dim: d,
            labels: &labels,
            classes: 3,
        };
        let ours = logme(&l).unwrap();
        let input =
            serde_json::json!({"rows": rows, "n": n, "dim": d, "labels": labels, "classes": 3});
        let mut child = Command::new(&python)
            .args(["-c", NUMPY_LOGME])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "numpy LogME failed");
        let theirs: f64 = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            (ours - theirs).abs() < 1e-4 * theirs.abs().max(1.0),
            "n={n} d={d}: zoo {ours} vs numpy {theirs}"
        );
        // H-score is bounded by classes − 1.
        let h = h_score(&l).unwrap();
        assert!((0.0..=2.0 + 1e-9).contains(&h), "{h}");
    }
}

/// A copy of the MiniLM folder whose weights are replaced by seeded noise of the same shapes
/// (a "from-scratch" candidate).
fn scrambled(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        if e.path().is_file() && e.file_name() != "model.safetensors" {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
    let mapped = zoo_checkpoint::Mapped::open(src.join("model.safetensors")).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let mut s = 7u64;
    let tensors: Vec<_> = loaded
        .tensors
        .iter()
        .map(|t| {
            let mut t = t.clone();
            let noise: Vec<u8> = t
                .data
                .chunks(4)
                .flat_map(|_| {
                    s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1).to_le_bytes()
                })
                .collect();
            t.data = Cow::Owned(noise);
            t
        })
        .collect();
    zoo_checkpoint::write_safetensors(&dst.join("model.safetensors"), &tensors, None).unwrap();
}

#[test]
fn a_pretrained_encoder_outranks_its_scrambled_copy_on_real_sentences_issue_17() {
    let tmp = tempfile::tempdir().unwrap();
    let minilm = fixtures().join("checkpoints/all-MiniLM-L6-v2");
    let noise = tmp.path().join("scrambled");
    scrambled(&minilm, &noise);
    // 240 sentences of the sentiment set, both classes.
    let text = std::fs::read_to_string(fixtures().join("sentiment.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let data = tmp.path().join("sentences.csv");
    let body: Vec<&str> = lines.take(240).collect();
    std::fs::write(&data, format!("{header}\n{}\n", body.join("\n"))).unwrap();
    let dataset = zoo_train::data::load(&data).unwrap();
    let models = vec![
        ("scrambled".to_string(), noise),
        ("minilm".to_string(), minilm),
    ];
    let opts = RankOptions {
        cache: None,
        ..RankOptions::default()
    };
    let ranked = rank(&models, &data, &dataset, &opts, &Silent).unwrap();
    assert_eq!(ranked[0].model, "minilm", "{ranked:#?}");
    let (good, bad) = (&ranked[0], &ranked[1]);
    for s in Score::ALL {
        assert!(
            good.score(s) > bad.score(s),
            "{}: minilm {} vs scrambled {}",
            s.name(),
            good.score(s),
            bad.score(s)
        );
    }
    assert!(good.knn > 0.75 && good.linear_probe > 0.75, "{good:#?}");
    assert_eq!(good.dim, 384);

    // A candidate of the other modality is an error naming it.
    let images = tmp.path().join("images");
    for class in ["a", "b"] {
        std::fs::create_dir_all(images.join(class)).unwrap();
        let img = image_png();
        std::fs::write(images.join(class).join("x.png"), &img).unwrap();
        std::fs::write(images.join(class).join("y.png"), &img).unwrap();
    }
    let image_set = zoo_train::data::load(&images).unwrap();
    let e = rank(&models[1..], &images, &image_set, &opts, &Silent)
        .unwrap_err()
        .to_string();
    assert!(e.contains("minilm: a text model"), "{e}");
}

/// A 2×2 PNG.
fn image_png() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(2, 2, image::Rgb([200, 10, 10]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}
