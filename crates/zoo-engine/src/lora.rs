//! Low-rank adapters (LoRA, Hu et al. 2021) as `peft` defines them: a targeted linear layer
//! `y = W x + b` becomes `y = W x + b + (alpha / r) · B A dropout(x)` with `A` `[r, in]`
//! (Kaiming-uniform, as `peft` draws it) and `B` `[out, r]` (zeros, so training starts from
//! the base model exactly). Only `A` and `B` train; the base weight stays as it was, and
//! [`Dense::merge`] folds the product into it for a plain model.
//!
//! Tensors are named as `peft` names them under the module's own name:
//! `{module}.lora_A.weight`, `{module}.lora_B.weight` (PyTorch layout `[r, in]`, `[out, r]`).

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::{Device, Tensor};
use burn::tensor::TensorData;
use zoo_kernels::nn::{gelu, linear, linear_gelu, linear_many};

use crate::weights::Names;

/// A linear layer that may carry a low-rank adapter.
#[derive(Module, Debug)]
pub struct Dense {
    pub linear: Linear,
    pub lora: Option<Lora>,
}

/// The adapter's two factors, kept in burn's `[in, out]` orientation: `a` `[in, r]`, `b`
/// `[r, out]`.
#[derive(Module, Debug)]
pub struct Lora {
    pub a: Param<Tensor<2>>,
    pub b: Param<Tensor<2>>,
    pub dropout: Dropout,
    /// `alpha / r`.
    pub scale: f64,
}

impl From<Linear> for Dense {
    fn from(linear: Linear) -> Self {
        Dense { linear, lora: None }
    }
}

/// How an adapter is shaped (the numbers of `peft`'s `LoraConfig`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoraShape {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f64,
}

impl Lora {
    /// `scale · dropout(x) A B` for `x` `[..., in]`.
    fn delta<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dims = x.dims();
        let [k, r] = self.a.dims();
        let [_, n] = self.b.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        let x = self.dropout.forward(x).reshape([rows, k]);
        let y = x
            .matmul(self.a.val())
            .matmul(self.b.val())
            .mul_scalar(self.scale);
        debug_assert_eq!(r, self.b.dims()[0]);
        let mut out = dims;
        out[D - 1] = n;
        y.reshape(out)
    }
}

impl Dense {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match &self.lora {
            None => linear(&self.linear, x),
            Some(l) => linear(&self.linear, x.clone()) + l.delta(x),
        }
    }

    /// `gelu(forward(x))`, through the fused kernel when there is no adapter.
    pub fn forward_gelu<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match &self.lora {
            None => linear_gelu(&self.linear, x),
            Some(_) => gelu(self.forward(x)),
        }
    }

    /// Several layers on the same input, their outputs side by side (a fused query, key and
    /// value): one product for the base weights, plus each adapter's term.
    pub fn forward_many<const D: usize>(ds: &[&Dense], x: Tensor<D>) -> Tensor<D> {
        let linears: Vec<&Linear> = ds.iter().map(|d| &d.linear).collect();
        if ds.iter().all(|d| d.lora.is_none()) {
            return linear_many(&linears, x);
        }
        let base = linear_many(&linears, x.clone());
        let deltas: Vec<Tensor<D>> = ds
            .iter()
            .map(|d| match &d.lora {
                Some(l) => l.delta(x.clone()),
                None => {
                    let mut dims = x.dims();
                    dims[D - 1] = d.linear.weight.dims()[1];
                    Tensor::zeros(dims, &x.device())
                }
            })
            .collect();
        base + Tensor::cat(deltas, D - 1)
    }

    /// Input and output widths.
    pub fn dims(&self) -> (usize, usize) {
        let [i, o] = self.linear.weight.dims();
        (i, o)
    }

    /// Gives the layer an adapter of `shape`, its factors registered in `names` under
    /// `module` (`encoder.layer.0.attention.self.query`). `A` is drawn from `seed` as
    /// `peft` draws it (Kaiming-uniform with a = √5: U(−1/√in, 1/√in)); `B` is zero.
    pub fn attach(
        &mut self,
        module: &str,
        shape: LoraShape,
        names: &mut Names,
        device: &Device,
        seed: u64,
    ) {
        let (i, o) = self.dims();
        let r = shape.r;
        let bound = 1.0 / (i as f64).sqrt();
        let mut rng = crate::seeded::SplitMix::new(seed);
        // Drawn in PyTorch's [r, in] order, stored as [in, r].
        let torch: Vec<f32> = (0..r * i)
            .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
            .collect();
        let mut a = vec![0f32; r * i];
        for row in 0..r {
            for col in 0..i {
                a[col * r + row] = torch[row * i + col];
            }
        }
        let a = Param::from_tensor(Tensor::from_data(TensorData::new(a, [i, r]), device));
        let b = Param::from_tensor(Tensor::zeros([r, o], device));
        names.insert(a.id, format!("{module}.lora_A.weight"), true);
        names.insert(b.id, format!("{module}.lora_B.weight"), true);
        self.lora = Some(Lora {
            a,
            b,
            dropout: DropoutConfig::new(shape.dropout).init(),
            scale: shape.alpha / r as f64,
        });
    }

    /// Folds the adapter into the base weight (`W + scale · A B`, what `peft`'s
    /// `merge_and_unload` computes) and drops it, forgetting its names. The base weight keeps
    /// its id, so its name stays.
    pub fn merge(&mut self, names: &mut Names) {
        let Some(l) = self.lora.take() else {
            return;
        };
        names.params.remove(&l.a.id);
        names.params.remove(&l.b.id);
        let delta = l.a.val().matmul(l.b.val()).mul_scalar(l.scale);
        let (id, w, _) = self.linear.weight.clone().consume();
        let merged = Tensor::from_data((w + delta).into_data(), &l.a.val().device());
        self.linear.weight = Param::initialized(id, merged);
    }
}

/// Layers that expose their adaptable linear layers (every [`Dense`]) for adapters to be
/// attached or merged.
pub trait Adaptable {
    fn denses(&mut self) -> Vec<&mut Dense>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;

    #[test]
    fn a_fresh_adapter_changes_nothing_and_merging_matches_the_adapter() {
        let device = crate::cpu();
        let mut names = Names::default();
        let mut d = Dense::from(LinearConfig::new(6, 4).init(&device));
        let x: Tensor<3> = Tensor::random(
            [2, 3, 6],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let plain = d.forward(x.clone());
        d.attach(
            "m",
            LoraShape {
                r: 2,
                alpha: 16.0,
                dropout: 0.0,
            },
            &mut names,
            &device,
            7,
        );
        assert_eq!(names.params.len(), 2);
        let same = d.forward(x.clone());
        plain
            .clone()
            .into_data()
            .assert_approx_eq::<f32>(&same.into_data(), burn::tensor::Tolerance::absolute(1e-7));
        // A non-zero B: the adapter moves the output, and merging gives the same output.
        let l = d.lora.as_mut().unwrap();
        l.b = Param::initialized(l.b.id, Tensor::ones([2, 4], &device));
        let adapted = d.forward(x.clone());
        let moved: f32 = (adapted.clone() - plain).abs().max().into_scalar();
        assert!(moved > 1e-3, "the adapter moved the output by {moved}");
        d.merge(&mut names);
        assert!(d.lora.is_none() && names.params.is_empty());
        let merged = d.forward(x);
        adapted
            .into_data()
            .assert_approx_eq::<f32>(&merged.into_data(), burn::tensor::Tolerance::absolute(1e-5));
    }
}
