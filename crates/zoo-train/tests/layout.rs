//! Issue 13: a fine-tuned text classifier is published in the layout its card names
//! (transformers' `*ForSequenceClassification` where its fixed head matches, else
//! sentence-transformers modules), and zoo reads every layout back to the same network.
//! That Python's tools reproduce the logits is `scripts/compat-check.sh`'s job.

use std::path::{Path, PathBuf};

mod common;

use serde_json::{Value, json};
use zoo_train::Silent;
use zoo_train::finetune::{Options, finetune, predict_logits};
use zoo_train::net::Source;

const WORDS: &[&str] = &[
    "good", "bad", "great", "awful", "film", "the", "was", "a", "plot", "dull", "fine", "best",
    "worst", "acting", "i", "it", "loved", "hated", "story", "boring",
];

/// A word-level tokenizer over `WORDS` (`<s> … </s>`, pad `<pad>` = 1), in tokenizer.json form.
fn tokenizer_json() -> Value {
    let mut vocab = serde_json::Map::new();
    for (i, t) in ["<s>", "<pad>", "</s>", "[UNK]"].iter().enumerate() {
        vocab.insert(t.to_string(), json!(i));
    }
    for (i, w) in WORDS.iter().enumerate() {
        vocab.insert(w.to_string(), json!(i + 4));
    }
    let special = |t: &str, id: usize| json!({"id": t, "ids": [id], "tokens": [t]});
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {"<s>": special("<s>", 0), "</s>": special("</s>", 2)}
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    })
}

/// A tiny random encoder of `family` (zoo-engine's parity fixture) as a model folder.
fn tiny(dir: &Path, family: &str) -> PathBuf {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zoo-engine/tests/fixtures");
    let out = dir.join(family);
    // roberta-base has pooler weights; this fixture does not: borrow a square layer's.
    let copies: &[(&str, &str)] = match family {
        "roberta" => &[("encoder.layer.0.attention.output.dense.", "pooler.dense.")],
        _ => &[],
    };
    common::write_fixture_weights(&format!("{family}.parity.safetensors"), &out, copies);
    std::fs::copy(
        fx.join(format!("{family}.config.json")),
        out.join("config.json"),
    )
    .unwrap();
    std::fs::write(
        out.join("tokenizer.json"),
        serde_json::to_string(&tokenizer_json()).unwrap(),
    )
    .unwrap();
    out
}

fn csv(dir: &Path) -> PathBuf {
    let p = dir.join("reviews.csv");
    let mut s = String::from("text,label\n");
    let pos = [
        "good film",
        "great acting",
        "i loved the story",
        "best plot",
        "loved it",
    ];
    let neg = [
        "bad film",
        "awful acting",
        "i hated the story",
        "worst plot",
        "boring it was",
    ];
    for w in &WORDS[..4] {
        for t in pos {
            s.push_str(&format!("{t} {w},positive\n"));
        }
        for t in neg {
            s.push_str(&format!("{t} {w},negative\n"));
        }
    }
    std::fs::write(&p, s).unwrap();
    p
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn names(p: &Path) -> Vec<String> {
    let mapped = zoo_checkpoint::Mapped::open(p).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    loaded.tensors.iter().map(|t| t.name.clone()).collect()
}

#[test]
fn every_text_combination_is_published_in_the_layout_its_card_names_issue_13() {
    let tmp = tempfile::tempdir().unwrap();
    let data = csv(tmp.path());
    // (family, pooling, head, the class transformers loads, or None for sentence-transformers)
    let cases = [
        (
            "bert",
            "pooler",
            "linear",
            Some("BertForSequenceClassification"),
        ),
        ("bert", "mean", "linear", None),
        ("bert", "pooler", "mlp:16", None),
        ("bert", "max", "mlp:16", None),
        (
            "roberta",
            "pooler",
            "linear",
            Some("RobertaForSequenceClassification"),
        ),
        ("roberta", "cls", "mlp:16", None),
        (
            "distilbert",
            "cls",
            "mlp:32",
            Some("DistilBertForSequenceClassification"),
        ),
        ("distilbert", "mean", "linear", None),
    ];
    for (family, pooling, head, transformers) in cases {
        let base = tiny(tmp.path(), family);
        let what = format!("{family} {pooling} {head}");
        let out = tmp
            .path()
            .join(format!("{family}-{pooling}-{head}").replace(':', ""));
        let o = Options {
            epochs: 2,
            batch_size: 8,
            lr: 1e-3,
            pooling: Some(pooling.into()),
            head: head.into(),
            ..Options::default()
        };
        let s = finetune(&base, &data, &out, &o, &Silent).unwrap_or_else(|e| panic!("{what}: {e}"));
        let config = read_json(&out.join("config.json"));
        let card = std::fs::read_to_string(out.join("README.md")).unwrap();
        let root = names(&out.join("model.safetensors"));
        match transformers {
            Some(class) => {
                assert_eq!(config["architectures"][0], class, "{what}");
                assert!(card.contains("library_name: transformers"), "{what}");
                assert!(!out.join("modules.json").exists(), "{what}");
                assert!(
                    root.iter().all(|n| n.starts_with(&format!("{family}."))
                        || n.starts_with("classifier.")
                        || n.starts_with("pre_classifier.")),
                    "{what}: {root:?}"
                );
                let head_names: &[&str] = match family {
                    "roberta" => &["classifier.dense.weight", "classifier.out_proj.weight"],
                    "distilbert" => &["pre_classifier.weight", "classifier.weight"],
                    _ => &["classifier.weight", "bert.pooler.dense.weight"],
                };
                for n in head_names {
                    assert!(root.iter().any(|r| r == n), "{what}: no {n} in {root:?}");
                }
            }
            None => {
                assert!(
                    config["architectures"][0]
                        .as_str()
                        .unwrap()
                        .ends_with("Model"),
                    "{what}"
                );
                assert!(
                    card.contains("library_name: sentence-transformers"),
                    "{what}"
                );
                assert!(
                    card.contains("SentenceTransformer("),
                    "{what}: the card's snippet"
                );
                // The encoder alone at the root, under its base-model names.
                assert!(
                    root.iter()
                        .all(|n| !n.starts_with("classifier")
                            && !n.starts_with(&format!("{family}."))),
                    "{what}: {root:?}"
                );
                let modules = read_json(&out.join("modules.json"));
                let dense: Vec<&Value> = modules
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| m["type"] == "sentence_transformers.models.Dense")
                    .collect();
                let want = usize::from(head != "linear") + 1 + usize::from(pooling == "pooler");
                assert_eq!(dense.len(), want, "{what}: {modules}");
                let pool = read_json(&out.join("1_Pooling/config.json"));
                let mode = match pooling {
                    "pooler" => "cls",
                    p => p,
                };
                let key = match mode {
                    "mean" => "pooling_mode_mean_tokens",
                    "max" => "pooling_mode_max_tokens",
                    _ => "pooling_mode_cls_token",
                };
                assert_eq!(pool[key], true, "{what}: {pool}");
                let last = dense.last().unwrap()["path"].as_str().unwrap();
                let last_cfg = read_json(&out.join(last).join("config.json"));
                assert_eq!(last_cfg["out_features"], 2, "{what}");
                assert_eq!(
                    last_cfg["activation_function"],
                    "torch.nn.modules.linear.Identity"
                );
            }
        }
        // zoo reads its own layout back: the published folder, evaluated on the run's
        // validation split, gives the loss and accuracy the run reported.
        let splits = zoo_train::data::load_splits(&data, o.val_fraction, o.seed).unwrap();
        let source = Source::open(&out, None).unwrap();
        let val = splits.val.relabel(&source.labels).unwrap();
        let (net, _) = source.build(None, None, 0, &zoo_engine::cpu()).unwrap();
        let logits = predict_logits(&net, &source, &val, 8, &Silent).unwrap();
        let labels: Vec<usize> = val.examples.iter().map(|e| e.label).collect();
        let e = zoo_train::metrics::evaluate(&logits, &labels, &source.labels);
        assert_eq!(e.examples, s.eval.examples, "{what}");
        assert!(
            (e.loss - s.eval.loss).abs() <= 1e-5 * s.eval.loss.abs().max(1.0),
            "{what}: loss {} read back, {} in training",
            e.loss,
            s.eval.loss
        );
        assert_eq!(e.accuracy, s.eval.accuracy, "{what}");
    }
}

/// Issue 16: RoBERTa's positions start after its padding index, so 42 position embeddings
/// hold 40 tokens (transformers: 514 → 512), BERT's hold all of them; a zero limit
/// (`max_seq_length: 0`) is a clear error, not a panic in the tokenizer.
#[test]
fn text_limits_match_transformers_and_a_zero_limit_is_refused_issue_16() {
    let tmp = tempfile::tempdir().unwrap();
    let limit = |dir: &Path| match Source::open(dir, None).unwrap().kind {
        zoo_train::net::Kind::Text { tokenizer, .. } => tokenizer.max_length,
        _ => panic!("not a text model"),
    };
    assert_eq!(limit(&tiny(tmp.path(), "roberta")), 40);
    let bert = tiny(tmp.path(), "bert");
    let positions = read_json(&bert.join("config.json"))["max_position_embeddings"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(limit(&bert), positions);
    std::fs::write(
        bert.join("sentence_bert_config.json"),
        r#"{"max_seq_length": 0}"#,
    )
    .unwrap();
    let Err(e) = Source::open(&bert, None) else {
        panic!("a zero limit is refused");
    };
    assert!(e.to_string().contains("no room"), "{e}");
}
