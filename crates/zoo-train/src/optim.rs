//! AdamW with per-parameter learning rates (layer-wise decay), decoupled weight decay (not on
//! biases and norm weights, as timm and transformers do), global-norm gradient clipping, and a
//! state saved by parameter *name* so a resumed run continues exactly.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::{Device, Tensor};
use burn::tensor::TensorData;
use zoo_engine::Names;

/// The learning-rate schedule after the warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    Cosine,
    Linear,
    Constant,
}

impl Schedule {
    pub fn parse(s: &str) -> Option<Schedule> {
        Some(match s {
            "cosine" => Schedule::Cosine,
            "linear" => Schedule::Linear,
            "constant" | "constant_with_warmup" => Schedule::Constant,
            _ => return None,
        })
    }
}

/// Learning rate of the optimizer step `step` (0-based) of `total`, as transformers'
/// schedulers give it: a linear warm-up from 0 over `warmup` steps (step 0 has rate 0), then
/// cosine or linear decay to zero at `total`, or constant.
pub fn lr_at(base: f64, step: usize, total: usize, warmup: usize, schedule: Schedule) -> f64 {
    if step < warmup {
        return base * step as f64 / warmup as f64;
    }
    let t = ((step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64).min(1.0);
    match schedule {
        Schedule::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()),
        Schedule::Linear => base * (1.0 - t),
        Schedule::Constant => base,
    }
}

/// AdamW state.
#[derive(Debug)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Multiplier of the base learning rate per parameter (1.0 when absent).
    pub lr_scale: HashMap<ParamId, f64>,
    /// Steps taken.
    pub t: u64,
    /// First and second moments, flattened, by parameter.
    moments: HashMap<ParamId, (Tensor<1>, Tensor<1>)>,
}

impl AdamW {
    pub fn new(weight_decay: f64) -> Self {
        AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            lr_scale: HashMap::new(),
            t: 0,
            moments: HashMap::new(),
        }
    }

    /// One step over the parameters that have a gradient. `clip` bounds the global L2 norm of
    /// the gradients; the norm before clipping is returned.
    pub fn step<M: Module>(
        &mut self,
        lr: f64,
        module: M,
        mut grads: GradientsParams,
        clip: Option<f64>,
    ) -> (M, f64) {
        let mut norm = GradNorm {
            grads: &grads,
            sum: 0.0,
        };
        module.visit(&mut norm);
        let total = norm.sum.sqrt();
        let scale = match clip {
            Some(c) if total > c && total > 0.0 => c / total,
            _ => 1.0,
        };
        self.t += 1;
        let mut m = Stepper {
            opt: self,
            grads: &mut grads,
            lr,
            scale,
        };
        (module.map(&mut m), total)
    }

    /// The moments by parameter name, for a checkpoint: `m.NAME`, `v.NAME`.
    pub fn state(&self, names: &Names) -> Vec<(String, Vec<f32>)> {
        let mut out = Vec::new();
        for (id, (m, v)) in &self.moments {
            if let Some(n) = names.get(id) {
                out.push((
                    format!("m.{n}"),
                    m.clone()
                        .into_data()
                        .try_to_vec::<f32>()
                        .unwrap_or_default(),
                ));
                out.push((
                    format!("v.{n}"),
                    v.clone()
                        .into_data()
                        .try_to_vec::<f32>()
                        .unwrap_or_default(),
                ));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Restores the moments saved by [`AdamW::state`] onto a rebuilt network's ids.
    pub fn restore(
        &mut self,
        names: &Names,
        t: u64,
        values: &HashMap<String, Vec<f32>>,
        device: &Device,
    ) {
        self.t = t;
        self.moments.clear();
        for (id, p) in &names.params {
            if let (Some(m), Some(v)) = (
                values.get(&format!("m.{}", p.name)),
                values.get(&format!("v.{}", p.name)),
            ) {
                let t = |x: &Vec<f32>| {
                    Tensor::<1>::from_data(TensorData::new(x.clone(), [x.len()]), device)
                };
                self.moments.insert(*id, (t(m), t(v)));
            }
        }
    }
}

struct GradNorm<'a> {
    grads: &'a GradientsParams,
    sum: f64,
}

impl ModuleVisitor for GradNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.sum += f64::from(g.powi_scalar(2).sum().into_scalar::<f32>());
        }
    }
}

struct Stepper<'a> {
    opt: &'a mut AdamW,
    grads: &'a mut GradientsParams,
    lr: f64,
    scale: f64,
}

impl ModuleMapper for Stepper<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(g) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let o = &mut *self.opt;
        let dims = tensor.dims();
        let n: usize = dims.iter().product();
        let require = tensor.is_require_grad();
        let x = tensor.inner().reshape([n]);
        let g = g.reshape([n]).mul_scalar(self.scale);
        let (m, v) = match o.moments.remove(&id) {
            Some(s) => s,
            None => (g.zeros_like(), g.zeros_like()),
        };
        let m = m
            .mul_scalar(o.beta1)
            .add(g.clone().mul_scalar(1.0 - o.beta1));
        let v = v
            .mul_scalar(o.beta2)
            .add(g.powi_scalar(2).mul_scalar(1.0 - o.beta2));
        let t = o.t as i32;
        let bc1 = 1.0 - o.beta1.powi(t);
        let bc2 = 1.0 - o.beta2.powi(t);
        let lr = self.lr * o.lr_scale.get(&id).copied().unwrap_or(1.0);
        // Decoupled weight decay, not on biases and norm weights (1-D tensors).
        let decay = if D > 1 { o.weight_decay } else { 0.0 };
        let update = m
            .clone()
            .div_scalar(bc1)
            .div(v.clone().div_scalar(bc2).sqrt().add_scalar(o.eps));
        let x = x.mul_scalar(1.0 - lr * decay).sub(update.mul_scalar(lr));
        o.moments.insert(id, (m, v));
        let mut out: Tensor<D> = Tensor::from_inner(x.reshape(dims));
        if require {
            out = out.require_grad();
        }
        Param::from_mapped_value(id, out, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::{Schedule, lr_at};

    /// The values of transformers' `get_{cosine,linear,constant}_schedule_with_warmup`
    /// (`LambdaLR` factors at steps 0, 5, 10, 55, 99 of 100 with 10 warm-up steps).
    #[test]
    fn warm_up_from_zero_then_the_schedule_issue_13() {
        let c = |s| lr_at(1.0, s, 100, 10, Schedule::Cosine);
        assert_eq!(c(0), 0.0);
        assert!((c(5) - 0.5).abs() < 1e-12);
        assert!((c(10) - 1.0).abs() < 1e-12);
        assert!((c(55) - 0.5).abs() < 1e-12);
        assert!(c(99) < 0.001);
        let l = |s| lr_at(1.0, s, 100, 10, Schedule::Linear);
        assert_eq!(l(0), 0.0);
        assert!((l(10) - 1.0).abs() < 1e-12);
        assert!((l(55) - 0.5).abs() < 1e-12);
        assert!((l(99) - 1.0 / 90.0).abs() < 1e-12);
        assert_eq!(lr_at(1.0, 99, 100, 10, Schedule::Constant), 1.0);
        assert_eq!(lr_at(1.0, 0, 100, 0, Schedule::Cosine), 1.0);
        assert_eq!(Schedule::parse("polynomial"), None);
    }
}
