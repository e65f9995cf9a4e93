//! A folder with only `vocab.txt` tokenises exactly as the same model's `tokenizer.json`
//! (issue 5's leftover): real MiniLM vocabulary, every fixture sentence plus hard cases.

use zoo_preprocess::text::TextTokenizer;
use zoo_testkit::real_fixtures;

#[test]
fn vocab_txt_alone_tokenises_like_tokenizer_json() {
    let model = real_fixtures().join("checkpoints/all-MiniLM-L6-v2");
    let vocab_only = tempfile::tempdir().unwrap();
    for f in ["vocab.txt", "tokenizer_config.json"] {
        std::fs::copy(model.join(f), vocab_only.path().join(f)).unwrap();
    }
    let reference = TextTokenizer::from_dir(&model, 512).unwrap();
    let ours = TextTokenizer::from_dir(vocab_only.path(), 512).unwrap();

    let mut texts: Vec<String> = csv::Reader::from_path(real_fixtures().join("sentiment.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap()[0].to_string())
        .collect();
    assert!(texts.len() > 1000, "{} sentences", texts.len());
    texts.extend(
        [
            "Café crème, naïve résumé — ÀÉÎÕÜ",
            "中文字符 mixed with English",
            "a literal [SEP] and [CLS] and [MASK] inside",
            "supercalifragilisticexpialidocious antidisestablishmentarianism",
            "tabs\tand\nnewlines\r\nand \u{200b}zero-width and \u{7}bell",
            "emoji 🙂 and symbols ©®™ and numbers 3.14159e10",
            "",
        ]
        .map(String::from),
    );
    for chunk in texts.chunks(64) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let a = reference.encode(&refs, false).unwrap();
        let b = ours.encode(&refs, false).unwrap();
        assert_eq!(a, b, "a batch starting with {:?}", refs[0]);
    }
}

/// Issue 16, found by the `text_loaders` fuzz target: tokenizers 0.22 panics on some broken
/// `tokenizer.json` files; each is an error naming the file instead.
#[test]
fn a_broken_tokenizer_json_is_an_error_not_a_panic_issue_16() {
    let head = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"#;
    let model = r#""model":{"type":"WordLevel","vocab":{"[PAD]":0,"[UNK]":1,"hello":2},"unk_token":"[UNK]"}}"#;
    for (what, json) in [
        // The fuzzer's input: a decoder that is not JSON.
        (
            "decoder",
            format!(r#"{head}"normalizer":null,"decoder":gul":8}}"#),
        ),
        // Valid JSON whose precompiled charsmap is not base64.
        (
            "charsmap",
            format!(
                r#"{head}"normalizer":{{"type":"Precompiled","precompiled_charsmap":"!!!"}},"decoder":null,{model}"#
            ),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), json).unwrap();
        let e = zoo_preprocess::text::TextTokenizer::from_dir(dir.path(), 128)
            .expect_err(what)
            .to_string();
        assert!(e.contains("tokenizer.json"), "{what}: {e}");
    }
}
