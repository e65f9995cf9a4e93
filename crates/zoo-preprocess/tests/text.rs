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
