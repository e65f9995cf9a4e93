//! `zoo import` and `zoo predict` on the real MobileNetV2 checkpoint (issue 5, first part).

use std::path::Path;
use std::process::{Command, Output};
use zoo_testkit::real_fixtures;

use serde_json::Value;

const ZOO: &str = env!("CARGO_BIN_EXE_zoo");

fn zoo(args: &[&str]) -> Output {
    Command::new(ZOO).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `zoo import` of a real fixture checkpoint with the ImageNet labels; asserts success.
fn import(checkpoint: &str, arch: &str, out: &Path) {
    let fx = real_fixtures();
    let r = zoo(&[
        "import",
        s(&fx.join("checkpoints").join(checkpoint)),
        "--arch",
        arch,
        "--labels",
        s(&fx.join("imagenet_classes.txt")),
        "--out",
        s(out),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

#[test]
fn import_then_predict_classifies_the_photos_like_torchvision() {
    let fx = real_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mnv2");
    import("mobilenet_v2-b0353104.pth", "mobilenet_v2", &out);
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    // Issue 13: timm's architecture and tensor names, so timm loads the folder as published.
    assert_eq!(config["architecture"], "mobilenetv2_100");
    let mapped = zoo_checkpoint::Mapped::open(out.join("model.safetensors")).unwrap();
    let names: Vec<String> = zoo_checkpoint::load(&mapped)
        .unwrap()
        .tensors
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n == "conv_stem.weight" || n == "blocks.6.0.conv_pwl.weight")
    );
    assert!(
        !names.iter().any(|n| n.starts_with("features.")),
        "{names:?}"
    );
    assert!(
        std::fs::read_to_string(out.join("README.md"))
            .unwrap()
            .contains("library_name: timm")
    );
    assert_eq!(config["num_classes"], 1000);
    assert_eq!(config["label_names"][967], "espresso");
    assert_eq!(
        config["pretrained_cfg"]["input_size"],
        serde_json::json!([3, 224, 224])
    );
    assert!(
        std::fs::read_to_string(out.join("README.md"))
            .unwrap()
            .contains("pipeline_tag: image-classification")
    );
    let r = zoo(&[
        "predict",
        s(&out),
        s(&fx.join("images/chelsea.png")),
        s(&fx.join("images/coffee.png")),
        "--top",
        "3",
        "--json",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let doc: Value = serde_json::from_slice(&r.stdout).unwrap();
    // torchvision on these weights: "Egyptian cat" 0.71, "tiger cat" 0.15, "tabby cat" 0.13; "espresso" 0.99.
    assert_eq!(doc[0][0]["label"], "Egyptian cat");
    assert!((doc[0][0]["score"].as_f64().unwrap() - 0.71).abs() < 0.05);
    assert_eq!(doc[0][1]["label"], "tiger cat");
    assert_eq!(doc[0][2]["label"], "tabby, tabby cat");
    assert_eq!(doc[1][0]["label"], "espresso");
    assert_eq!(doc[1][0]["index"], 967);
    assert!(doc[1][0]["score"].as_f64().unwrap() > 0.95);
    let scores: Vec<f64> = doc[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "sorted by score");
}

#[test]
fn bad_inputs_get_clear_errors() {
    let fx = real_fixtures();
    let dir = tempfile::tempdir().unwrap();
    // An architecture not (yet) in the library.
    let r = zoo(&[
        "import",
        s(&fx.join("checkpoints/mobilenet_v2-b0353104.pth")),
        "--arch",
        "resnet9000",
        "--out",
        s(&dir.path().join("x")),
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("architecture `resnet9000` is not implemented")
    );
    // A checkpoint of another architecture: the missing tensor is named.
    let r = zoo(&[
        "import",
        s(&fx.join("checkpoints/efficientnet-lite0-57934424.pth")),
        "--arch",
        "mobilenet_v2",
        "--out",
        s(&dir.path().join("y")),
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("missing tensor `features.0.0.weight"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    // Labels that do not match the head.
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "a\nb\n").unwrap();
    let r = zoo(&[
        "import",
        s(&fx.join("checkpoints/mobilenet_v2-b0353104.pth")),
        "--arch",
        "mobilenet_v2",
        "--labels",
        s(&labels),
        "--out",
        s(&dir.path().join("z")),
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&r.stderr)
            .contains("2 class names but the checkpoint's head has 1000 outputs")
    );
    // A corrupt image.
    let model = dir.path().join("m");
    import("mobilenet_v2-b0353104.pth", "mobilenet_v2", &model);
    let bad = dir.path().join("broken.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0garbage").unwrap();
    let r = zoo(&["predict", s(&model), s(&bad)]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("broken.jpg: not a readable image"));
}

#[test]
fn efficientnet_lite0_imports_with_its_own_preprocessing() {
    let fx = real_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lite0");
    import(
        "efficientnet-lite0-57934424.pth",
        "efficientnet_lite0",
        &out,
    );
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["pretrained_cfg"]["mean"],
        serde_json::json!([0.498, 0.498, 0.498])
    );
    let r = zoo(&[
        "predict",
        s(&out),
        s(&fx.join("images/coffee.png")),
        "--json",
    ]);
    let doc: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(doc[0][0]["label"], "espresso");
    assert!((doc[0][0]["score"].as_f64().unwrap() - 0.96).abs() < 0.03);
}

fn embeddings(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let out = zoo(&["inspect", "--json", s(path)]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let shape: Vec<usize> = doc["tensors"][0]["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (
        shape,
        bytes[8 + n..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
    )
}

#[test]
fn embed_writes_features_for_texts_and_images() {
    let fx = real_fixtures();
    let dir = tempfile::tempdir().unwrap();
    // Text: a CSV with a `text` column, batched with padding; the same sentence twice gives
    // the same vector whatever else is in its batch.
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "text,label\n\"A man is playing a guitar.\",x\nShort.,y\n\"A man is playing a guitar.\",x\n").unwrap();
    let out = dir.path().join("t.safetensors");
    let r = zoo(&[
        "embed",
        s(&fx.join("checkpoints/all-MiniLM-L6-v2")),
        "--data",
        s(&csv),
        "--out",
        s(&out),
        "--batch-size",
        "2",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (shape, v) = embeddings(&out);
    assert_eq!(shape, vec![3, 384]);
    let max_diff = v[..384]
        .iter()
        .zip(&v[768..])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        max_diff < 1e-4,
        "padding changed the embedding by {max_diff}"
    );
    // Images: a folder, pooled MobileNetV2 features.
    let model = dir.path().join("m");
    import("mobilenet_v2-b0353104.pth", "mobilenet_v2", &model);
    let out = dir.path().join("i.safetensors");
    let r = zoo(&[
        "embed",
        s(&model),
        "--data",
        s(&fx.join("images")),
        "--out",
        s(&out),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(embeddings(&out).0, vec![2, 1280]);
    // --no-truncate: an over-long text is an error naming it.
    let long = dir.path().join("long.txt");
    std::fs::write(&long, format!("short\n{}\n", "word ".repeat(400))).unwrap();
    let r = zoo(&[
        "embed",
        s(&fx.join("checkpoints/all-MiniLM-L6-v2")),
        "--data",
        s(&long),
        "--out",
        s(&dir.path().join("x.safetensors")),
        "--no-truncate",
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("over the model's limit of 256"));
    let r = zoo(&[
        "embed",
        s(&fx.join("checkpoints/all-MiniLM-L6-v2")),
        "--data",
        s(&long),
        "--out",
        s(&dir.path().join("x.safetensors")),
    ]);
    assert!(r.status.success());
    assert!(
        String::from_utf8_lossy(&r.stderr)
            .contains("1 inputs were longer than 256 tokens and were cut")
    );
}

#[test]
fn embed_follows_the_sentence_transformers_pooling_config() {
    let fx = real_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let src = fx.join("checkpoints/all-MiniLM-L6-v2");
    let model = dir.path().join("minilm");
    std::fs::create_dir_all(&model).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "sentence_bert_config.json",
    ] {
        std::fs::copy(src.join(f), model.join(f)).unwrap();
    }
    let txt = dir.path().join("t.txt");
    std::fs::write(&txt, "A man is playing a guitar.\nShort.\n").unwrap();
    let run = |pooling: Option<&str>| {
        let pool_dir = model.join("1_Pooling");
        let _ = std::fs::remove_dir_all(&pool_dir);
        if let Some(mode) = pooling {
            std::fs::create_dir_all(&pool_dir).unwrap();
            std::fs::write(
                pool_dir.join("config.json"),
                format!("{{\"word_embedding_dimension\": 384, \"{mode}\": true}}"),
            )
            .unwrap();
        }
        let out = dir.path().join("e.safetensors");
        let r = zoo(&["embed", s(&model), "--data", s(&txt), "--out", s(&out)]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        embeddings(&out).1
    };
    let mean = run(None);
    assert_eq!(
        mean,
        run(Some("pooling_mode_mean_tokens")),
        "mean pooling is the default"
    );
    let cls = run(Some("pooling_mode_cls_token"));
    let max = run(Some("pooling_mode_max_tokens"));
    assert_ne!(mean, cls);
    assert_ne!(mean, max);
    assert!(
        max.iter().zip(&mean).all(|(m, a)| m >= a),
        "a maximum is never below the mean"
    );
}

/// `zoo rank` (issue 17) on 3 Fashion-MNIST classes with the two ImageNet checkpoints: a
/// table, JSON, features from the cache on the second run (same scores), and a text model
/// among image candidates refused by name.
#[test]
fn rank_scores_candidates_and_reuses_their_features_issue_17() {
    let fx = real_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for class in ["bag", "sandal", "trouser"] {
        let src = fx.join("fashion-mnist/train").join(class);
        let mut files: Vec<_> = std::fs::read_dir(&src)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        std::fs::create_dir_all(data.join(class)).unwrap();
        for f in files.iter().take(12) {
            std::fs::copy(f, data.join(class).join(f.file_name().unwrap())).unwrap();
        }
    }
    let (mnv2, lite0) = (dir.path().join("mnv2"), dir.path().join("lite0"));
    import("mobilenet_v2-b0353104.pth", "mobilenet_v2", &mnv2);
    import(
        "efficientnet-lite0-57934424.pth",
        "efficientnet_lite0",
        &lite0,
    );
    let cache = dir.path().join("features");
    let rank = |extra: &[&str]| {
        let mut args = vec!["rank", "--data", s(&data), s(&mnv2), s(&lite0)];
        args.extend_from_slice(extra);
        let out = Command::new(ZOO)
            .args(&args)
            .env("ZOO_FEATURE_CACHE", &cache)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first: Value = serde_json::from_str(&rank(&["--json"])).unwrap();
    assert_eq!(first["examples"], 36);
    assert_eq!(first["classes"], 3);
    // The default score: the winner of benches/rank.
    assert_eq!(first["by"], "linear-probe");
    let c = first["candidates"].as_array().unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(first["recommended"], c[0]["model"]);
    assert!(c[0]["linear_probe"].as_f64().unwrap() >= c[1]["linear_probe"].as_f64().unwrap());
    for x in c {
        assert_eq!(x["cached"], false);
        // Three easy classes: frozen ImageNet features separate them well.
        assert!(x["knn"].as_f64().unwrap() > 0.8, "{x}");
        assert!(x["dim"].as_u64().unwrap() >= 1000, "{x}");
    }
    let second: Value = serde_json::from_str(&rank(&["--json", "--by", "logme"])).unwrap();
    assert_eq!(second["by"], "logme");
    let c2 = second["candidates"].as_array().unwrap();
    assert!(c2[0]["logme"].as_f64().unwrap() >= c2[1]["logme"].as_f64().unwrap());
    for x in c2 {
        assert_eq!(x["cached"], true, "{x}");
        let before = c.iter().find(|y| y["model"] == x["model"]).unwrap();
        assert_eq!(x["knn"], before["knn"]);
        assert_eq!(x["logme"], before["logme"]);
    }
    let table = rank(&[]);
    assert!(table.contains("recommended: "), "{table}");
    assert!(table.contains("knn") && table.contains("logme"), "{table}");
    // A text model among image candidates.
    let r = zoo(&[
        "rank",
        "--data",
        s(&data),
        s(&fx.join("checkpoints/all-MiniLM-L6-v2")),
    ]);
    assert_eq!(r.status.code(), Some(2));
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(e.contains("a text model") && e.contains("images"), "{e}");
    let r = zoo(&["rank", "--data", s(&data), s(&mnv2), "--by", "nope"]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("unknown score `nope`"));
}
