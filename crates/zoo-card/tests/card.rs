use zoo_card::{Config, ConfigKind, EvalResult, ModelCard, PretrainedCfg};
use zoo_testkit::real_fixtures;

const CARD: &str = "---
language: en
license: apache-2.0
library_name: timm
tags:
- image-classification
- timm
datasets:
- imagenet-1k
base_model: torchvision/mobilenet_v2
custom_field:
  nested: [1, 2]
model-index:
- name: mobilenet_v2
  results:
  - task: {type: image-classification}
    dataset: {type: imagenet-1k, name: ImageNet-1k, split: validation}
    metrics:
    - {type: accuracy, value: 71.878, name: top-1}
    - {type: accuracy, value: 90.286, name: top-5}
---

# MobileNetV2

Body text.
";

#[test]
fn reads_the_fields_zoo_uses() {
    let c = ModelCard::parse(CARD).unwrap();
    assert_eq!(c.license().as_deref(), Some("apache-2.0"));
    assert_eq!(c.library_name().as_deref(), Some("timm"));
    assert_eq!(c.tags(), vec!["image-classification", "timm"]);
    assert_eq!(c.datasets(), vec!["imagenet-1k"]);
    assert_eq!(c.language(), vec!["en"]);
    assert_eq!(c.base_model(), vec!["torchvision/mobilenet_v2"]);
    let r = c.results().unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].key(), "top-1");
    assert_eq!(r[0].value, 71.878);
    assert_eq!(r[1].dataset, "imagenet-1k");
    assert_eq!(r[1].split.as_deref(), Some("validation"));
    assert!(c.body.starts_with("\n# MobileNetV2"));
}

#[test]
fn round_trip_keeps_unknown_fields_order_and_body() {
    let c = ModelCard::parse(CARD).unwrap();
    let again = ModelCard::parse(&c.render()).unwrap();
    assert_eq!(again, c);
    let keys: Vec<_> = again
        .metadata
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys[..6],
        [
            "language",
            "license",
            "library_name",
            "tags",
            "datasets",
            "base_model"
        ]
    );
    assert!(again.get("custom_field").is_some());
}

#[test]
fn writing_results_and_lineage() {
    let mut c = ModelCard::parse(CARD).unwrap();
    c.set_list("base_model", &["zoo/mobilenet_v2".to_string()]);
    let r = EvalResult {
        task: "image-classification".into(),
        dataset: "fashion-mnist".into(),
        dataset_name: Some("Fashion-MNIST".into()),
        split: Some("test".into()),
        metric: "accuracy".into(),
        metric_name: None,
        value: 0.87,
    };
    let f1 = EvalResult {
        metric: "f1".into(),
        metric_name: Some("macro-F1".into()),
        value: 0.86,
        ..r.clone()
    };
    c.set_results("mnv2-fashion", &[r, f1]);
    let again = ModelCard::parse(&c.render()).unwrap();
    assert_eq!(again.base_model(), vec!["zoo/mobilenet_v2"]);
    let res = again.results().unwrap();
    assert_eq!(res.len(), 2);
    assert_eq!(res[1].key(), "macro-F1");
    assert!(again.render().contains("base_model: zoo/mobilenet_v2\n"));
    assert_eq!(again.to_json()["custom_field"]["nested"][1], 2);
}

#[test]
fn cards_without_front_matter_and_broken_ones() {
    let c = ModelCard::parse("# Just a title\n").unwrap();
    assert!(c.metadata.is_empty());
    assert_eq!(c.render(), "# Just a title\n");
    assert!(ModelCard::parse("---\nlicense: mit\n").is_err());
    assert!(ModelCard::parse("---\n- a list\n---\n").is_err());
    assert!(ModelCard::parse("---\nlicense: [unclosed\n---\n").is_err());
    let bad_index = "---\nmodel-index:\n- name: x\n  results:\n  - metrics: [{type: accuracy, value: high}]\n---\n";
    let err = ModelCard::parse(bad_index)
        .unwrap()
        .results()
        .unwrap_err()
        .to_string();
    assert!(err.contains("model-index"), "{err}");
    // Billion laughs: aliases that expand exponentially are refused, not expanded.
    let mut laughs = String::from(
        "---\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (i, c) in ('b'..='j').enumerate() {
        let p = (b'a' + i as u8) as char;
        laughs.push_str(&format!(
            "{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
        ));
    }
    laughs.push_str("---\n");
    assert!(ModelCard::parse(&laughs).is_err());
}

#[test]
fn timm_configs() {
    let labels: Vec<String> = ["cat", "dog"].iter().map(|s| s.to_string()).collect();
    let c = Config::timm("mobilenet_v2", &labels, &PretrainedCfg::default());
    assert_eq!(c.kind(), ConfigKind::Timm);
    let again = Config::parse(&c.to_json_string()).unwrap();
    assert_eq!(again.architecture(), Some("mobilenet_v2"));
    assert_eq!(again.num_classes(), Some(2));
    assert_eq!(again.label_names().unwrap(), labels);
    let p = again.pretrained_cfg().unwrap().unwrap();
    assert_eq!(p.input_size, [3, 224, 224]);
    assert_eq!(p.crop_pct, 0.875);
    // Partial pretrained_cfg: defaults fill the gaps, unknown keys survive a set.
    let mut c = Config::parse(
        r#"{"architecture":"x","pretrained_cfg":{"mean":[0.5,0.5,0.5],"tag":"keep"},"extra":1}"#,
    )
    .unwrap();
    assert_eq!(c.pretrained_cfg().unwrap().unwrap().mean, [0.5; 3]);
    c.set_pretrained_cfg(&PretrainedCfg {
        crop_pct: 1.0,
        ..PretrainedCfg::default()
    });
    assert_eq!(c.raw["pretrained_cfg"]["tag"], "keep");
    assert_eq!(c.raw["extra"], 1);
}

#[test]
fn hugging_face_configs() {
    let mut c = Config::parse(r#"{"architectures":["BertForSequenceClassification"],"model_type":"bert","hidden_size":384,"id2label":{"1":"positive","0":"negative"}}"#).unwrap();
    assert_eq!(c.kind(), ConfigKind::HuggingFace);
    assert_eq!(c.architecture(), Some("bert"));
    assert_eq!(c.label_names().unwrap(), vec!["negative", "positive"]);
    c.set_labels(&["a".into(), "b".into(), "c".into()]);
    assert_eq!(c.raw["label2id"]["c"], 2);
    assert_eq!(c.num_classes(), Some(3));
    assert_eq!(c.raw["hidden_size"], 384);
    assert!(
        Config::parse(r#"{"id2label":{"0":"a","2":"b"}}"#)
            .unwrap()
            .label_names()
            .is_err()
    );
    assert!(Config::parse("[1]").is_err());
}

#[test]
fn the_real_minilm_card_and_config() {
    let dir = real_fixtures().join("checkpoints/all-MiniLM-L6-v2");
    let text = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let card = ModelCard::parse(&text).unwrap();
    assert_eq!(card.pipeline_tag().as_deref(), Some("sentence-similarity"));
    assert_eq!(card.license().as_deref(), Some("apache-2.0"));
    assert_eq!(card.datasets().len(), 21);
    assert_eq!(ModelCard::parse(&card.render()).unwrap(), card);
    let config = Config::parse(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config.architecture(), Some("bert"));
    assert_eq!(config.raw["hidden_size"], 384);
    assert_eq!(Config::parse(&config.to_json_string()).unwrap(), config);
}

/// Found by fuzzing (fuzz/fuzz_targets/card.rs): a YAML tag could not be written back.
#[test]
fn fuzz_yaml_tags_are_dropped_so_cards_always_render() {
    let c = ModelCard::parse("---\nmodel-index: !l [1]\nlicense: !!str mit\n---\n").unwrap();
    let again = ModelCard::parse(&c.render()).unwrap();
    assert_eq!(again.license().as_deref(), Some("mit"));
    assert_eq!(
        again
            .get("model-index")
            .unwrap()
            .as_sequence()
            .unwrap()
            .len(),
        1
    );
}

/// Found by fuzzing: an empty front matter followed by a body that starts with `---`.
#[test]
fn fuzz_a_body_that_looks_like_front_matter_round_trips() {
    let c = ModelCard::parse("---\n\n---\n---\nbody\n").unwrap();
    assert!(c.metadata.is_empty());
    assert_eq!(ModelCard::parse(&c.render()).unwrap(), c);
}

/// Issue 13: the Hub API's `cardData` (JSON) reads as the same card as its YAML front matter.
#[test]
fn card_data_json_reads_like_the_front_matter_issue_13() {
    let text = "---\nlicense: apache-2.0\nbase_model: org/base\ndatasets:\n- beans\nmodel-index:\n- name: m\n  results:\n  - task: {type: image-classification}\n    dataset: {type: beans, name: Beans}\n    metrics:\n    - {type: accuracy, value: 0.91}\n---\n";
    let yaml = ModelCard::parse(text).unwrap();
    let json = serde_json::to_value(&yaml.metadata).unwrap();
    let card = ModelCard::from_json(&json).unwrap();
    assert_eq!(card.metadata, yaml.metadata);
    assert_eq!(card.license().as_deref(), Some("apache-2.0"));
    assert_eq!(card.base_model(), vec!["org/base".to_string()]);
    assert_eq!(card.results().unwrap(), yaml.results().unwrap());
    assert_eq!(card.results().unwrap()[0].value, 0.91);
    assert!(
        ModelCard::from_json(&serde_json::Value::Null)
            .unwrap()
            .metadata
            .is_empty()
    );
    assert!(ModelCard::from_json(&serde_json::json!([1, 2])).is_err());
}

#[test]
fn a_body_of_a_byte_order_mark_and_dashes_round_trips_issue_16() {
    // Found by the `card` fuzz target: two BOMs, then front matter that never closes. Parsing
    // strips one BOM, so the body starts with the second one and `---`; rendering must not
    // let that read back as (unclosed) front matter.
    for text in [
        "\u{feff}\u{feff}---\nlicense: mit\nbase_model: a/b\n",
        "\u{feff}\u{feff}---\r\nx: 1\r\n",
    ] {
        let card = ModelCard::parse(text).unwrap();
        assert!(card.metadata.is_empty());
        let again = ModelCard::parse(&card.render()).expect("a rendered card parses");
        assert_eq!(again.body, card.body);
        assert!(again.metadata.is_empty());
    }
}

#[test]
fn a_mapping_used_as_a_key_is_refused_not_a_panic_issue_16() {
    // Found by the `card` fuzz target: an explicit complex key (`? a: b`) parsed, and
    // rendering the card then panicked in the YAML emitter.
    for text in [
        "---\n? ddd;dataset: 8881.5}]\n---\nbody\n",
        "---\nmodel-index:\n- ? [a, b]\n  : 1\n---\n",
        // The fuzzer's input as found.
        "---\n?     dddddddddddddddddddddddddddddddddddddddd;dddddddddddddddddddddddataseuataset: 8888888881.5}]\n---\nt: 8888888881.5}]\n---\nbody\u{1a}",
    ] {
        let e = ModelCard::parse(text).unwrap_err().to_string();
        assert!(e.contains("used as a key"), "{e}");
    }
    // Plain scalar keys still parse and render.
    let c = ModelCard::parse("---\n? plain\n: 1\n2: two\n---\n").unwrap();
    assert_eq!(ModelCard::parse(&c.render()).unwrap(), c);
}
