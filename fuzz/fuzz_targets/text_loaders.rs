//! The tokenizer loaders (issue 16): a model folder whose `tokenizer.json` or `vocab.txt`,
//! `tokenizer_config.json` and `sentence_bert_config.json` come from the input loads or is
//! refused, and a loaded tokenizer encodes within its limit. The input is split on 0xFF.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("zoo-fuzz-text-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let main = if first & 1 == 0 {
        "tokenizer.json"
    } else {
        "vocab.txt"
    };
    let mut parts = rest.splitn(4, |&b| b == 0xFF);
    for name in [main, "tokenizer_config.json", "sentence_bert_config.json"] {
        if let Some(part) = parts.next() {
            std::fs::write(dir.join(name), part).unwrap();
        }
    }
    let text = parts
        .next()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    if let Ok(t) = zoo_preprocess::text::TextTokenizer::from_dir(&dir, 64) {
        if let Ok(batch) = t.encode(&[text.as_ref(), "a"], false) {
            assert!(batch.tokens <= t.max_length());
            assert_eq!(batch.ids.len(), batch.batch * batch.tokens);
        }
    }
});
