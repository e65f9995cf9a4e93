//! Text: a Hugging Face tokenizer (`tokenizer.json` through the `tokenizers` crate), padding to
//! the longest sequence in the batch (not to a fixed length, whatever the file says) and
//! truncation to the model's limit — with a warning, or an error under `no_truncate`.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::PreprocessError;

/// A batch ready for an encoder: row-major `[batch, tokens]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TextBatch {
    pub batch: usize,
    pub tokens: usize,
    pub ids: Vec<i64>,
    pub type_ids: Vec<i64>,
    /// 1.0 for real tokens, 0.0 for padding.
    pub mask: Vec<f32>,
    /// Inputs that were cut to the limit.
    pub truncated: Vec<usize>,
}

/// Reads a `tokenizer.json`. tokenizers 0.22 panics (`expect`) on some malformed parts — a
/// decoder that is not JSON, an undecodable precompiled charsmap — so the text is checked as
/// JSON first and a panic while building is caught: a hostile file is an error naming it,
/// never a crash (issue 16, found by the `text_loaders` fuzz target).
fn tokenizer_json(path: &Path) -> Result<Tokenizer, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str::<serde_json::Value>(&text).map_err(|e| format!("not JSON: {e}"))?;
    match std::panic::catch_unwind(|| text.parse::<Tokenizer>()) {
        Ok(parsed) => parsed.map_err(|e| e.to_string()),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a malformed part");
            Err(format!("the tokenizers crate could not read it ({why})"))
        }
    }
}

/// A tokenizer with the model's length limit.
#[derive(Debug)]
pub struct TextTokenizer {
    inner: Tokenizer,
    pub max_length: usize,
    pad_id: u32,
}

impl TextTokenizer {
    /// Reads `tokenizer.json` from a model folder; the limit is `sentence_bert_config.json`'s
    /// `max_seq_length` when present, else `max_length` (the model's position embeddings).
    ///
    /// A folder with only `vocab.txt` (older BERT checkpoints) gets the tokenizer transformers'
    /// `BertTokenizerFast` builds from it: BERT normalisation (lower-casing and accents as
    /// `tokenizer_config.json` says), BERT pre-tokenisation, WordPiece, `[CLS] … [SEP]`.
    pub fn from_dir(dir: &Path, max_length: usize) -> Result<Self, PreprocessError> {
        let json = dir.join("tokenizer.json");
        let path = if json.exists() || !dir.join("vocab.txt").exists() {
            json
        } else {
            dir.join("vocab.txt")
        };
        let mut inner = if path.ends_with("vocab.txt") {
            wordpiece_from_vocab(dir, &path)
        } else {
            tokenizer_json(&path)
        }
        .map_err(|reason| PreprocessError::Tokenizer {
            path: path.display().to_string(),
            reason,
        })?;
        // Padding and truncation are ours to do: pad to the longest in the batch, cut with a warning.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| PreprocessError::Tokenizer {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        let st_limit = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v.get("max_seq_length").and_then(serde_json::Value::as_u64))
            .map(|v| v as usize);
        let pad_id = inner
            .token_to_id("[PAD]")
            .or_else(|| inner.token_to_id("<pad>"))
            .unwrap_or(0);
        let max_length = st_limit.unwrap_or(max_length).min(max_length);
        if max_length < 2 {
            // Room for at least the two special tokens, or every input would be cut to nothing.
            return Err(PreprocessError::Tokenizer {
                path: dir.display().to_string(),
                reason: format!(
                    "a text limit of {max_length} tokens (max_seq_length / max_position_embeddings) leaves no room for any text"
                ),
            });
        }
        Ok(TextTokenizer {
            inner,
            max_length,
            pad_id,
        })
    }

    /// Tokenises a batch. With `no_truncate`, an input longer than the limit is an error
    /// naming it; otherwise it is cut (its index is in `truncated`).
    /// The most tokens a text keeps (longer ones are truncated).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    pub fn encode(&self, texts: &[&str], no_truncate: bool) -> Result<TextBatch, PreprocessError> {
        let mut rows = Vec::with_capacity(texts.len());
        let mut truncated = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            let enc = self
                .inner
                .encode(*t, true)
                .map_err(|e| PreprocessError::Tokenizer {
                    path: format!("input {i}"),
                    reason: e.to_string(),
                })?;
            let mut ids: Vec<i64> = enc.get_ids().iter().map(|&x| i64::from(x)).collect();
            let mut types: Vec<i64> = enc.get_type_ids().iter().map(|&x| i64::from(x)).collect();
            if ids.len() > self.max_length {
                if no_truncate {
                    return Err(PreprocessError::TooLong {
                        index: i,
                        tokens: ids.len(),
                        limit: self.max_length,
                    });
                }
                // Keep the final special token ([SEP]) so the sequence stays well-formed.
                let last = *ids.last().unwrap();
                ids.truncate(self.max_length);
                types.truncate(self.max_length);
                *ids.last_mut().unwrap() = last;
                truncated.push(i);
            }
            rows.push((ids, types));
        }
        let tokens = rows.iter().map(|(r, _)| r.len()).max().unwrap_or(0);
        let mut batch = TextBatch {
            batch: rows.len(),
            tokens,
            ids: Vec::new(),
            type_ids: Vec::new(),
            mask: Vec::new(),
            truncated,
        };
        for (ids, types) in rows {
            let pad = tokens - ids.len();
            batch
                .mask
                .extend(std::iter::repeat_n(1.0, ids.len()).chain(std::iter::repeat_n(0.0, pad)));
            batch.ids.extend(
                ids.into_iter()
                    .chain(std::iter::repeat_n(i64::from(self.pad_id), pad)),
            );
            batch
                .type_ids
                .extend(types.into_iter().chain(std::iter::repeat_n(0, pad)));
        }
        Ok(batch)
    }
}

/// transformers' `BertTokenizerFast` from `vocab.txt` and `tokenizer_config.json`.
fn wordpiece_from_vocab(dir: &Path, vocab: &Path) -> Result<Tokenizer, String> {
    use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
    use tokenizers::models::wordpiece::WordPiece;
    use tokenizers::normalizers::BertNormalizer;
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    use tokenizers::processors::bert::BertProcessing;
    use tokenizers::{AddedToken, Model};

    let cfg: serde_json::Value = std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let flag = |k: &str| cfg.get(k).and_then(serde_json::Value::as_bool);
    let token = |k: &str, default: &str| {
        cfg.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let (unk, sep, cls, pad, mask) = (
        token("unk_token", "[UNK]"),
        token("sep_token", "[SEP]"),
        token("cls_token", "[CLS]"),
        token("pad_token", "[PAD]"),
        token("mask_token", "[MASK]"),
    );
    let model = WordPiece::from_file(&vocab.display().to_string())
        .unk_token(unk.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let id = |t: &str| {
        model
            .token_to_id(t)
            .ok_or_else(|| format!("`{t}` is not in the vocabulary"))
    };
    let (sep_id, cls_id) = (id(&sep)?, id(&cls)?);
    let specials: Vec<AddedToken> = [&unk, &pad, &mask, &sep, &cls]
        .into_iter()
        .filter(|s| id(s).is_ok())
        .map(|s| AddedToken::from(s.clone(), true))
        .collect();
    let mut t = Tokenizer::new(model);
    t.with_normalizer(Some(BertNormalizer::new(
        true,
        flag("tokenize_chinese_chars").unwrap_or(true),
        flag("strip_accents"),
        flag("do_lower_case").unwrap_or(true),
    )));
    t.with_pre_tokenizer(Some(BertPreTokenizer));
    t.with_post_processor(Some(BertProcessing::new((sep, sep_id), (cls, cls_id))));
    t.with_decoder(Some(WordPieceDecoder::default()));
    t.add_special_tokens(&specials);
    Ok(t)
}
