//! Issue 17: LoRA adapters through the hub. `zoo finetune --peft lora --push` of the real
//! MiniLM (pulled from the hub) publishes an adapter repository; `zoo predict` of it from a
//! fresh cache fetches its base and gives the folder's logits; `zoo merge` of it from the hub
//! gives the same logits as a full model; the hub lists the adapter under its base (tags,
//! search filters, the lineage on the base's page).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;
use common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn zoo(url: &str, token: &str, home: &Path, args: &[&str]) -> String {
    let out = Command::new(ZOO)
        .args(args)
        .env("HF_ENDPOINT", url)
        .env("HF_TOKEN", token)
        .env("HF_HOME", home)
        .env("ZOO_FEATURE_CACHE", home.join("features"))
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    ok(&out)
}

/// Logits of `zoo predict --json` by input, in class order.
fn logits(json: &str) -> Vec<Vec<f64>> {
    let v: Value = serde_json::from_str(json).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let mut out = vec![0.0; row.as_array().unwrap().len()];
            for e in row.as_array().unwrap() {
                out[e["index"].as_u64().unwrap() as usize] = e["logit"].as_f64().unwrap();
            }
            out
        })
        .collect()
}

fn max_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn ids(http: &Http, query: &str) -> Vec<String> {
    let r = http.get(&format!("/api/models?{query}"), None, None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let mut v: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn an_adapter_round_trips_through_the_hub_issue_17() {
    let fx = real_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = root.join("hub");
    let token = user(&data, "zoo", "write");
    let server = Server::start(&data, &[], &[]);
    let url = server.url.clone();
    let home = root.join("home");
    let run = |args: &[&str]| zoo(&url, &token, &home, args);
    run(&[
        "push",
        "-q",
        s(&fx.join("checkpoints/all-MiniLM-L6-v2")),
        "zoo/minilm",
    ]);
    let csv = fx.join("sentiment.csv");
    let adapter = root.join("adapter");
    run(&[
        "finetune",
        "zoo/minilm",
        "--data",
        s(&csv),
        "--out",
        s(&adapter),
        "--peft",
        "lora:r=4,alpha=8",
        "--pooling",
        "pooler",
        "--epochs",
        "2",
        "--lr",
        "3e-3",
        "--batch-size",
        "8",
        "--per-class",
        "24",
        "--max-test",
        "40",
        "-q",
        "--push",
        "zoo/minilm-lora",
    ]);
    let config: Value = serde_json::from_str(
        &std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["base_model_name_or_path"], "zoo/minilm");
    let card = std::fs::read_to_string(adapter.join("README.md")).unwrap();
    assert!(card.contains("base_model: zoo/minilm\n"), "{card}");

    let texts = ["A wonderful, moving film.", "Dull and far too long."];
    let mut args = vec!["predict", s(&adapter), "--json", "-q"];
    args.extend(texts);
    let local = logits(&run(&args));
    // From the hub, with a cache that has neither the adapter nor its base.
    let fresh = root.join("fresh");
    let mut args = vec!["predict", "zoo/minilm-lora", "--json", "-q"];
    args.extend(texts);
    let pulled = logits(&zoo(&url, &token, &fresh, &args));
    assert!(max_diff(&local, &pulled) < 1e-6, "{local:?} vs {pulled:?}");
    assert!(
        fresh.join("hub/models--zoo--minilm").is_dir(),
        "the base was fetched into the cache"
    );
    assert!(local.iter().flatten().any(|x| x.abs() > 1e-3));

    // Merged from the hub: a full model with the adapter's logits.
    let merged = root.join("merged");
    run(&[
        "merge",
        "zoo/minilm-lora",
        "--out",
        s(&merged),
        "--push",
        "zoo/minilm-merged",
        "-q",
    ]);
    assert!(merged.join("model.safetensors").exists());
    assert!(!merged.join("adapter_config.json").exists());
    let mut args = vec!["predict", "zoo/minilm-merged", "--json", "-q"];
    args.extend(texts);
    let m = logits(&run(&args));
    assert!(max_diff(&local, &m) < 1e-5, "{local:?} vs {m:?}");

    // The hub: the adapter under its base, found by the Hub's filter and zoo's.
    let http = Http::new(&url);
    assert_eq!(ids(&http, "filter=relation:adapter"), ["zoo/minilm-lora"]);
    assert_eq!(
        ids(&http, "filter=base_model:adapter:zoo/minilm"),
        ["zoo/minilm-lora"]
    );
    assert_eq!(
        ids(&http, "filter=base_model:merge:zoo/minilm"),
        ["zoo/minilm-merged"]
    );
    assert_eq!(
        ids(&http, "filter=base_model:zoo/minilm"),
        ["zoo/minilm-lora", "zoo/minilm-merged"]
    );
    let info = http.get("/api/models/zoo/minilm-lora", None, None).json();
    assert_eq!(info["library_name"], "peft", "{info}");
    let page = String::from_utf8(http.get("/zoo/minilm", None, None).body).unwrap();
    assert!(
        page.contains("Adapters: ") && page.contains("href=\"/zoo/minilm-lora\""),
        "the base's lineage lists its adapter"
    );
    let page = String::from_utf8(http.get("/zoo/minilm-lora", None, None).body).unwrap();
    assert!(
        page.contains("An adapter on "),
        "the adapter's page says what it is"
    );
    assert!(page.contains("LoRA adapter"));
}
