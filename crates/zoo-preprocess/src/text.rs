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
    pub fn from_dir(dir: &Path, max_length: usize) -> Result<Self, PreprocessError> {
        let path = dir.join("tokenizer.json");
        let mut inner = Tokenizer::from_file(&path).map_err(|e| PreprocessError::Tokenizer {
            path: path.display().to_string(),
            reason: e.to_string(),
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
        Ok(TextTokenizer {
            inner,
            max_length: st_limit.unwrap_or(max_length).min(max_length),
            pad_id,
        })
    }

    /// Tokenises a batch. With `no_truncate`, an input longer than the limit is an error
    /// naming it; otherwise it is cut (its index is in `truncated`).
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
