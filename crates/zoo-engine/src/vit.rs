//! Vision Transformers with timm's names (`patch_embed.proj`, `cls_token`, `pos_embed`,
//! `blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}`, `norm`, `head`): pre-norm
//! blocks, LayerNorm eps 1e-6, exact GELU, the class token as the pooled feature.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::prelude::Tensor;
use zoo_kernels::nn::{LayerNorm, attention, layer_norm as ln, linear};

use crate::lora::{Adaptable, Dense};
use crate::weights::{WeightError, Weights};

const EPS: f64 = 1e-6;

/// Attention heads of the published ViT sizes, by timm name.
pub fn heads(arch: &str) -> Option<usize> {
    Some(match arch {
        "vit_tiny_patch16_224" => 3,
        "vit_small_patch16_224" => 6,
        "vit_base_patch16_224" => 12,
        "vit_large_patch16_224" => 16,
        _ => return None,
    })
}

fn layer_norm(w: &Weights, prefix: &str, d: usize) -> Result<LayerNorm, WeightError> {
    w.layer_norm(prefix, d, EPS)
}

/// One pre-norm transformer block.
#[derive(Module, Debug)]
pub struct Block {
    norm1: LayerNorm,
    qkv: Dense,
    proj: Dense,
    norm2: LayerNorm,
    fc1: Dense,
    fc2: Dense,
    heads: usize,
}

impl Block {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let qkv = self.qkv.forward(ln(&self.norm1, x.clone()));
        let ctx = attention(qkv, None, self.heads);
        let x = x + self.proj.forward(ctx);
        let y = self
            .fc2
            .forward(self.fc1.forward_gelu(ln(&self.norm2, x.clone())));
        x + y
    }
}

/// A Vision Transformer.
#[derive(Module, Debug)]
pub struct Vit {
    patch: Conv2d,
    cls_token: Param<Tensor<3>>,
    pos_embed: Param<Tensor<3>>,
    blocks: Vec<Block>,
    norm: LayerNorm,
    head: Option<Linear>,
    pub num_features: usize,
}

impl Adaptable for Vit {
    fn denses(&mut self) -> Vec<&mut Dense> {
        self.blocks
            .iter_mut()
            .flat_map(|b| [&mut b.qkv, &mut b.proj, &mut b.fc1, &mut b.fc2])
            .collect()
    }
}

impl Vit {
    /// Builds from timm-named weights; width, depth, patch and image size come from the
    /// weights' shapes, the number of heads from the caller (it is not in the weights).
    pub fn load(
        w: &Weights,
        heads: usize,
        num_classes: Option<usize>,
    ) -> Result<Self, WeightError> {
        let pshape = w
            .shape("patch_embed.proj.weight")
            .ok_or_else(|| WeightError::Missing("patch_embed.proj.weight".into()))?
            .to_vec();
        let (d, p) = (pshape[0], pshape[2]);
        let tokens = w
            .shape("pos_embed")
            .ok_or_else(|| WeightError::Missing("pos_embed".into()))?[1];
        let depth = (0..)
            .take_while(|i| w.has(&format!("blocks.{i}.norm1.weight")))
            .count();
        let mut blocks = Vec::new();
        for i in 0..depth {
            let b = format!("blocks.{i}");
            let hidden = w
                .shape(&format!("{b}.mlp.fc1.weight"))
                .map(|s| s[0])
                .unwrap_or(4 * d);
            blocks.push(Block {
                norm1: layer_norm(w, &format!("{b}.norm1"), d)?,
                qkv: Dense::from(w.linear(&format!("{b}.attn.qkv"), d, 3 * d)?),
                proj: Dense::from(w.linear(&format!("{b}.attn.proj"), d, d)?),
                norm2: layer_norm(w, &format!("{b}.norm2"), d)?,
                fc1: Dense::from(w.linear(&format!("{b}.mlp.fc1"), d, hidden)?),
                fc2: Dense::from(w.linear(&format!("{b}.mlp.fc2"), hidden, d)?),
                heads,
            });
        }
        let head = match num_classes {
            Some(n) => Some(w.linear("head", d, n)?),
            None => None,
        };
        Ok(Vit {
            patch: w.conv2d("patch_embed.proj", [3, d], p, p, [0, 0, 0, 0], 1, true)?,
            cls_token: w.param("cls_token", [1, 1, d])?,
            pos_embed: w.param("pos_embed", [1, tokens, d])?,
            blocks,
            norm: layer_norm(w, "norm", d)?,
            head,
            num_features: d,
        })
    }

    /// Token states after the final norm `[batch, 1 + patches, dim]`.
    pub fn tokens(&self, x: Tensor<4>) -> Tensor<3> {
        let y = self.run_units(x, 0..self.units());
        let [b, _, t, d] = y.dims();
        ln(&self.norm, y.reshape([b, t, d]))
    }

    /// The sequential units, by block name: `stem` (patch embedding, class token, position
    /// embedding), then `blocks.0` … `blocks.N-1`.
    pub fn unit_names(&self) -> Vec<String> {
        std::iter::once("stem".to_string())
            .chain((0..self.blocks.len()).map(|i| format!("blocks.{i}")))
            .collect()
    }

    pub fn units(&self) -> usize {
        self.blocks.len() + 1
    }

    /// Runs units `range` (indices into [`unit_names`](Vit::unit_names)). Before unit 0 `y`
    /// is the image; after it, the token states as `[batch, 1, tokens, dim]` (one shape for
    /// every boundary, so a frozen prefix is cached like a feature map).
    pub fn run_units(&self, y: Tensor<4>, range: std::ops::Range<usize>) -> Tensor<4> {
        let [b, _, _, _] = y.dims();
        if range.is_empty() {
            return y;
        }
        let (mut x, first) = if range.start == 0 {
            let p = zoo_kernels::nn::conv2d(&self.patch, y); // [b, d, h, w]
            let [_, d, h, wd] = p.dims();
            let p = p.reshape([b, d, h * wd]).swap_dims(1, 2);
            let cls = self.cls_token.val().repeat_dim(0, b);
            (Tensor::cat(vec![cls, p], 1) + self.pos_embed.val(), 1)
        } else {
            let [_, _, t, d] = y.dims();
            (y.reshape([b, t, d]), range.start)
        };
        for blk in &self.blocks[first - 1..range.end - 1] {
            x = blk.forward(x);
        }
        let [_, t, d] = x.dims();
        x.reshape([b, 1, t, d])
    }

    /// The class token (the pooled feature) from the activation after the first `start`
    /// units.
    pub fn features_from(&self, x: Tensor<4>, start: usize) -> Tensor<2> {
        let y = self.run_units(x, start..self.units());
        let [b, _, t, d] = y.dims();
        let t = ln(&self.norm, y.reshape([b, t, d]));
        t.narrow(1, 0, 1).reshape([b, d])
    }

    /// The class token: the pooled feature.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        self.features_from(x, 0)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let f = self.features(x);
        match &self.head {
            Some(h) => linear(h, f),
            None => f,
        }
    }
}
