//! BERT-family encoders in Hugging Face layout: BERT and MiniLM (`embeddings.*`,
//! `encoder.layer.N.*`, `pooler.dense`), RoBERTa (the same names, positions counted from the
//! padding index + 1), DistilBERT (`transformer.layer.N.attention.q_lin`..., no token types);
//! each optionally under its task-model prefix (`bert.`, `roberta.`, `distilbert.`).

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear};
use burn::prelude::{Int, Tensor};
use serde_json::Value;
use zoo_kernels::nn::{LayerNorm, attention, layer_norm as ln};

use crate::lora::{Adaptable, Dense};
use crate::weights::{WeightError, Weights};

/// Which member of the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Bert,
    Roberta,
    DistilBert,
}

/// The fields of a Hugging Face `config.json` the encoder needs.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
}

impl BertConfig {
    /// Reads a Hugging Face BERT config; a missing field is an error naming it.
    pub fn from_json(v: &Value) -> Result<Self, WeightError> {
        let n = |k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .map(|x| x as usize)
                .ok_or_else(|| WeightError::Missing(format!("config.json: {k}")))
        };
        let family = match v.get("model_type").and_then(Value::as_str) {
            Some("roberta") | Some("xlm-roberta") => Family::Roberta,
            Some("distilbert") => Family::DistilBert,
            _ => Family::Bert,
        };
        if family == Family::DistilBert {
            return Ok(BertConfig {
                family,
                vocab_size: n("vocab_size")?,
                hidden_size: n("dim")?,
                num_hidden_layers: n("n_layers")?,
                num_attention_heads: n("n_heads")?,
                intermediate_size: n("hidden_dim")?,
                max_position_embeddings: n("max_position_embeddings")?,
                type_vocab_size: 0,
                layer_norm_eps: 1e-12,
            });
        }
        Ok(BertConfig {
            family,
            vocab_size: n("vocab_size")?,
            hidden_size: n("hidden_size")?,
            num_hidden_layers: n("num_hidden_layers")?,
            num_attention_heads: n("num_attention_heads")?,
            intermediate_size: n("intermediate_size")?,
            max_position_embeddings: n("max_position_embeddings")?,
            type_vocab_size: v
                .get("type_vocab_size")
                .and_then(Value::as_u64)
                .unwrap_or(2) as usize,
            layer_norm_eps: v
                .get("layer_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-12),
        })
    }
}

fn layer_norm(w: &Weights, prefix: &str, d: usize, eps: f64) -> Result<LayerNorm, WeightError> {
    w.layer_norm(prefix, d, eps)
}

fn embedding(w: &Weights, name: &str, n: usize, d: usize) -> Result<Embedding, WeightError> {
    let mut e = EmbeddingConfig::new(n, d).init(&w.device);
    e.weight = w.param(name, [n, d])?;
    Ok(e)
}

/// One transformer layer.
#[derive(Module, Debug)]
pub struct Layer {
    query: Dense,
    key: Dense,
    value: Dense,
    attn_out: Dense,
    attn_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    out_norm: LayerNorm,
    heads: usize,
}

impl Layer {
    fn forward(&self, x: Tensor<3>, mask: Tensor<2>) -> Tensor<3> {
        let qkv = Dense::forward_many(&[&self.query, &self.key, &self.value], x.clone());
        let ctx = attention(qkv, Some(mask), self.heads);
        let x = ln(&self.attn_norm, self.attn_out.forward(ctx) + x);
        let y = self
            .output
            .forward(self.intermediate.forward_gelu(x.clone()));
        ln(&self.out_norm, y + x)
    }
}

/// A BERT encoder.
#[derive(Module, Debug)]
pub struct Bert {
    word: Embedding,
    position: Embedding,
    token_type: Option<Embedding>,
    /// RoBERTa counts positions from its padding index + 1.
    position_offset: Option<usize>,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    pooler: Option<Linear>,
    pub hidden_size: usize,
}

impl Adaptable for Bert {
    fn denses(&mut self) -> Vec<&mut Dense> {
        self.layers
            .iter_mut()
            .flat_map(|l| {
                [
                    &mut l.query,
                    &mut l.key,
                    &mut l.value,
                    &mut l.attn_out,
                    &mut l.intermediate,
                    &mut l.output,
                ]
            })
            .collect()
    }
}

impl Bert {
    /// Loads from Hugging Face names, with or without the `bert.` prefix of task models.
    pub fn load(w: &Weights, c: &BertConfig) -> Result<Self, WeightError> {
        let p = ["bert.", "roberta.", "distilbert."]
            .into_iter()
            .find(|p| w.has(&format!("{p}embeddings.word_embeddings.weight")))
            .unwrap_or("");
        let h = c.hidden_size;
        let eps = c.layer_norm_eps;
        w.skip(&format!("{p}embeddings.position_ids"));
        w.skip(&format!("{p}embeddings.token_type_ids"));
        let mut layers = Vec::new();
        for i in 0..c.num_hidden_layers {
            layers.push(if c.family == Family::DistilBert {
                let l = format!("{p}transformer.layer.{i}");
                Layer {
                    query: Dense::from(w.linear(&format!("{l}.attention.q_lin"), h, h)?),
                    key: Dense::from(w.linear(&format!("{l}.attention.k_lin"), h, h)?),
                    value: Dense::from(w.linear(&format!("{l}.attention.v_lin"), h, h)?),
                    attn_out: Dense::from(w.linear(&format!("{l}.attention.out_lin"), h, h)?),
                    attn_norm: layer_norm(w, &format!("{l}.sa_layer_norm"), h, eps)?,
                    intermediate: Dense::from(w.linear(
                        &format!("{l}.ffn.lin1"),
                        h,
                        c.intermediate_size,
                    )?),
                    output: Dense::from(w.linear(
                        &format!("{l}.ffn.lin2"),
                        c.intermediate_size,
                        h,
                    )?),
                    out_norm: layer_norm(w, &format!("{l}.output_layer_norm"), h, eps)?,
                    heads: c.num_attention_heads,
                }
            } else {
                let l = format!("{p}encoder.layer.{i}");
                Layer {
                    query: Dense::from(w.linear(&format!("{l}.attention.self.query"), h, h)?),
                    key: Dense::from(w.linear(&format!("{l}.attention.self.key"), h, h)?),
                    value: Dense::from(w.linear(&format!("{l}.attention.self.value"), h, h)?),
                    attn_out: Dense::from(w.linear(
                        &format!("{l}.attention.output.dense"),
                        h,
                        h,
                    )?),
                    attn_norm: layer_norm(w, &format!("{l}.attention.output.LayerNorm"), h, eps)?,
                    intermediate: Dense::from(w.linear(
                        &format!("{l}.intermediate.dense"),
                        h,
                        c.intermediate_size,
                    )?),
                    output: Dense::from(w.linear(
                        &format!("{l}.output.dense"),
                        c.intermediate_size,
                        h,
                    )?),
                    out_norm: layer_norm(w, &format!("{l}.output.LayerNorm"), h, eps)?,
                    heads: c.num_attention_heads,
                }
            });
        }
        let pooler = if w.has(&format!("{p}pooler.dense.weight")) {
            Some(w.linear(&format!("{p}pooler.dense"), h, h)?)
        } else {
            None
        };
        let token_type = if c.family == Family::DistilBert {
            None
        } else {
            Some(embedding(
                w,
                &format!("{p}embeddings.token_type_embeddings.weight"),
                c.type_vocab_size,
                h,
            )?)
        };
        Ok(Bert {
            word: embedding(
                w,
                &format!("{p}embeddings.word_embeddings.weight"),
                c.vocab_size,
                h,
            )?,
            position: embedding(
                w,
                &format!("{p}embeddings.position_embeddings.weight"),
                c.max_position_embeddings,
                h,
            )?,
            token_type,
            position_offset: (c.family == Family::Roberta).then_some(2),
            emb_norm: layer_norm(w, &format!("{p}embeddings.LayerNorm"), h, eps)?,
            layers,
            pooler,
            hidden_size: h,
        })
    }

    /// The last hidden state `[batch, tokens, hidden]`. `mask` is 1 for real tokens, 0 for padding.
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        token_types: Tensor<2, Int>,
        mask: Tensor<2>,
    ) -> Tensor<3> {
        let x = self.embed(ids, token_types, mask.clone());
        self.run_layers(x, mask, 0..self.layers.len())
    }

    /// The sequential units, by block name (as `export::block_of` spells them): `stem` (the
    /// embeddings), then the layers (`encoder.layer.N`, DistilBERT's `transformer.layer.N`).
    pub fn unit_names(&self) -> Vec<String> {
        let stack = if self.token_type.is_some() {
            "encoder"
        } else {
            "transformer"
        };
        std::iter::once("stem".to_string())
            .chain((0..self.layers.len()).map(|i| format!("{stack}.layer.{i}")))
            .collect()
    }

    /// Transformer layers.
    pub fn layers(&self) -> usize {
        self.layers.len()
    }

    /// The embeddings' output (unit `stem`), normalised.
    pub fn embed(
        &self,
        ids: Tensor<2, Int>,
        token_types: Tensor<2, Int>,
        mask: Tensor<2>,
    ) -> Tensor<3> {
        let [b, t] = ids.dims();
        let device = ids.device();
        let positions = match self.position_offset {
            None => Tensor::<1, Int>::arange(0..t as i64, &device)
                .reshape([1, t])
                .repeat_dim(0, b),
            // RoBERTa: real tokens at offset, offset + 1, ...; padding at offset - 1 (its padding index).
            Some(offset) => {
                let base = Tensor::<1, Int>::arange(offset as i64..(offset + t) as i64, &device)
                    .reshape([1, t])
                    .repeat_dim(0, b)
                    .float();
                let pad = (offset - 1) as f64;
                (base.sub_scalar(pad) * mask).add_scalar(pad).int()
            }
        };
        let mut x = self.word.forward(ids) + self.position.forward(positions);
        if let Some(tt) = &self.token_type {
            x = x + tt.forward(token_types);
        }
        ln(&self.emb_norm, x)
    }

    /// Runs layers `range` (layer `i` is unit `i + 1` of
    /// [`unit_names`](Bert::unit_names)) on the token states `x`.
    pub fn run_layers(
        &self,
        mut x: Tensor<3>,
        mask: Tensor<2>,
        range: std::ops::Range<usize>,
    ) -> Tensor<3> {
        if range.is_empty() {
            return x;
        }
        // Padding gets a large negative score before the softmax.
        let additive = (mask.ones_like() - mask).mul_scalar(-1e9);
        for l in &self.layers[range] {
            x = l.forward(x, additive.clone());
        }
        x
    }

    /// Mean of the token states over real tokens (sentence-transformers' mean pooling).
    pub fn mean_pool(hidden: Tensor<3>, mask: Tensor<2>) -> Tensor<2> {
        let [b, t, h] = hidden.dims();
        let m = mask.reshape([b, t, 1]);
        let summed = (hidden * m.clone()).sum_dim(1).reshape([b, h]);
        let count = m.sum_dim(1).reshape([b, 1]).clamp_min(1e-9);
        summed / count
    }

    /// The largest value of each feature over real tokens (sentence-transformers' max pooling).
    pub fn max_pool(hidden: Tensor<3>, mask: Tensor<2>) -> Tensor<2> {
        let [b, t, h] = hidden.dims();
        let penalty = (mask.ones_like() - mask)
            .mul_scalar(-1e9)
            .reshape([b, t, 1]);
        (hidden + penalty).max_dim(1).reshape([b, h])
    }

    /// The first token's state (sentence-transformers' CLS pooling).
    pub fn cls_pool(hidden: Tensor<3>) -> Tensor<2> {
        let [b, _, h] = hidden.dims();
        hidden.narrow(1, 0, 1).reshape([b, h])
    }

    /// BERT's pooler: tanh(dense(first token)), when the checkpoint has one.
    pub fn pool_cls(&self, hidden: Tensor<3>) -> Option<Tensor<2>> {
        let [b, _, h] = hidden.dims();
        let cls = hidden.narrow(1, 0, 1).reshape([b, h]);
        self.pooler
            .as_ref()
            .map(|p| burn::tensor::activation::tanh(p.forward(cls)))
    }
}
