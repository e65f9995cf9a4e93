//! Named weights taken strictly: each tensor is taken once, with the shape the architecture
//! expects; whatever is left at the end is an unexpected tensor.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use burn::module::{Param, ParamId, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::{Device, Tensor};
use burn::tensor::TensorData;
use zoo_formats::Dtype;
use zoo_kernels::nn::LayerNorm;

/// Why weights do not fit an architecture.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error("missing tensor `{0}`")]
    Missing(String),
    #[error("unexpected tensors: {}", .0.join(", "))]
    Unexpected(Vec<String>),
    #[error("tensor `{name}` has shape {actual:?}, the architecture needs {expected:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("tensor `{name}` is {dtype}, not a floating-point tensor")]
    Dtype { name: String, dtype: Dtype },
    #[error(transparent)]
    Checkpoint(#[from] zoo_checkpoint::Error),
}

/// Where a parameter of a built network came from: its standard name, and whether burn holds
/// it transposed (a linear layer's `[in, out]` against PyTorch's `[out, in]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamName {
    pub name: String,
    pub transposed: bool,
}

/// The standard names of a built network's tensors, by burn parameter id, plus the tensors
/// that were known but not used (`num_batches_tracked`, `position_ids`), kept verbatim so an
/// export loads back into PyTorch strictly.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub params: std::collections::HashMap<ParamId, ParamName>,
    /// name → (shape, raw little-endian bytes, dtype).
    pub passthrough: BTreeMap<String, (Vec<usize>, Vec<u8>, Dtype)>,
}

impl Names {
    /// The standard name of a parameter.
    pub fn get(&self, id: &ParamId) -> Option<&str> {
        self.params.get(id).map(|p| p.name.as_str())
    }

    /// Registers a parameter that the caller created (a new head).
    pub fn insert(&mut self, id: ParamId, name: impl Into<String>, transposed: bool) {
        self.params.insert(
            id,
            ParamName {
                name: name.into(),
                transposed,
            },
        );
    }

    /// The parameters `keep` accepts (by id and name), without passthrough tensors: the
    /// part of a state to load (a head, an adapter).
    pub fn filtered(&self, keep: impl Fn(&ParamId, &str) -> bool) -> Names {
        Names {
            params: self
                .params
                .iter()
                .filter(|(id, p)| keep(id, &p.name))
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            passthrough: Default::default(),
        }
    }

    /// Forgets every name under `prefix` (a head being replaced).
    pub fn remove_prefix(&mut self, prefix: &str) {
        self.params.retain(|_, p| !p.name.starts_with(prefix));
        self.passthrough.retain(|n, _| !n.starts_with(prefix));
    }
}

/// Tensors by name, as f32.
#[derive(Debug)]
pub struct Weights {
    tensors: BTreeMap<String, (Vec<usize>, Vec<u8>, Dtype)>,
    taken: RefCell<BTreeSet<String>>,
    names: RefCell<Names>,
    /// Names that may be left over (a head being replaced).
    allow: Vec<String>,
    pub device: Device,
}

impl Weights {
    /// From a loaded checkpoint (any format zoo-checkpoint reads).
    pub fn from_loaded(loaded: &zoo_checkpoint::Loaded<'_>, device: &Device) -> Self {
        let tensors = loaded
            .tensors
            .iter()
            .map(|t| (t.name.clone(), (t.shape.clone(), t.data.to_vec(), t.dtype)))
            .collect();
        Weights {
            tensors,
            taken: RefCell::new(BTreeSet::new()),
            names: RefCell::new(Names::default()),
            allow: Vec::new(),
            device: device.clone(),
        }
    }

    /// The tensors whose names start with `prefix`, with the prefix removed.
    pub fn from_loaded_prefix(
        loaded: &zoo_checkpoint::Loaded<'_>,
        prefix: &str,
        device: &Device,
    ) -> Self {
        let tensors = loaded
            .tensors
            .iter()
            .filter_map(|t| {
                t.name
                    .strip_prefix(prefix)
                    .map(|n| (n.to_string(), (t.shape.clone(), t.data.to_vec(), t.dtype)))
            })
            .collect();
        Weights {
            tensors,
            taken: RefCell::new(BTreeSet::new()),
            names: RefCell::new(Names::default()),
            allow: Vec::new(),
            device: device.clone(),
        }
    }

    /// Renames tensors: `f` gives a tensor's new name, or `None` to keep it.
    pub fn renamed(mut self, f: impl Fn(&str) -> Option<String>) -> Self {
        let tensors = std::mem::take(&mut self.tensors);
        self.tensors = tensors
            .into_iter()
            .map(|(name, t)| (f(&name).unwrap_or(name), t))
            .collect();
        self
    }

    /// Adds the tensors of another file (a module folder beside the main checkpoint), each
    /// under the name `f` gives it; tensors `f` maps to `None` are left out.
    pub fn with_tensors_from(
        mut self,
        loaded: &zoo_checkpoint::Loaded<'_>,
        f: impl Fn(&str) -> Option<String>,
    ) -> Self {
        for t in &loaded.tensors {
            if let Some(name) = f(&t.name) {
                self.tensors
                    .insert(name, (t.shape.clone(), t.data.to_vec(), t.dtype));
            }
        }
        self
    }

    /// Renames a timm-named checkpoint of `arch` (`conv_stem`, `blocks.S.I…`,
    /// `stages.S.blocks.I…`) to the torchvision names zoo builds from; other checkpoints are
    /// unchanged.
    pub fn in_torchvision_layout(mut self, arch: &str) -> Self {
        let arch = crate::timm::torchvision_arch(arch);
        let names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        if !crate::timm::is_timm_layout(arch, &names) {
            return self;
        }
        let tensors = std::mem::take(&mut self.tensors);
        self.tensors = tensors
            .into_iter()
            .map(
                |(name, (shape, bytes, dtype))| match crate::timm::to_torchvision(arch, &name) {
                    Some(tv) => {
                        let shape = crate::timm::torchvision_shape(&tv, &shape);
                        (tv, (shape, bytes, dtype))
                    }
                    None => (name, (shape, bytes, dtype)),
                },
            )
            .collect();
        self
    }

    /// Allows tensors under these prefixes to go unused (`--allow-partial` when replacing a head).
    pub fn allow_unused(mut self, prefixes: &[&str]) -> Self {
        self.allow = prefixes.iter().map(|p| p.to_string()).collect();
        self
    }

    fn f32s(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), WeightError> {
        let (shape, bytes, dtype) = self
            .tensors
            .get(name)
            .ok_or_else(|| WeightError::Missing(name.to_string()))?;
        let v = zoo_formats::dtype::to_f32(bytes, *dtype).ok_or_else(|| WeightError::Dtype {
            name: name.to_string(),
            dtype: *dtype,
        })?;
        self.taken.borrow_mut().insert(name.to_string());
        Ok((shape.clone(), v))
    }

    /// Takes a tensor with exactly this shape.
    pub fn take<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<D>, WeightError> {
        let (actual, v) = self.f32s(name)?;
        if actual != shape {
            return Err(WeightError::Shape {
                name: name.to_string(),
                expected: shape.to_vec(),
                actual,
            });
        }
        Ok(Tensor::from_data(TensorData::new(v, shape), &self.device))
    }

    /// Takes a tensor's values as f32 (marks it used).
    pub fn values(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), WeightError> {
        self.f32s(name)
    }

    /// Takes a tensor as a trainable parameter, remembering its name for export.
    pub fn param<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Param<Tensor<D>>, WeightError> {
        let p = Param::from_tensor(self.take(name, shape)?);
        self.names.borrow_mut().insert(p.id, name, false);
        Ok(p)
    }

    /// Takes a linear weight `[out, in]` as burn's transposed `[in, out]` parameter.
    fn param_transposed(
        &self,
        name: &str,
        shape: [usize; 2],
    ) -> Result<Param<Tensor<2>>, WeightError> {
        let p = Param::from_tensor(self.take(name, shape)?.transpose());
        self.names.borrow_mut().insert(p.id, name, true);
        Ok(p)
    }

    /// Takes a tensor as running state (BatchNorm statistics), remembering its name.
    pub fn running<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<RunningState<Tensor<D>>, WeightError> {
        let id = ParamId::new();
        let r = RunningState::with_id(id, self.take(name, shape)?);
        self.names.borrow_mut().insert(id, name, false);
        Ok(r)
    }

    /// Marks a tensor as known but unused (`num_batches_tracked`); it is kept for export.
    pub fn skip(&self, name: &str) {
        if let Some(t) = self.tensors.get(name) {
            self.taken.borrow_mut().insert(name.to_string());
            self.names
                .borrow_mut()
                .passthrough
                .insert(name.to_string(), t.clone());
        }
    }

    /// The standard names of everything taken so far.
    pub fn names(&self) -> Names {
        self.names.borrow().clone()
    }

    /// Errors if any tensor was not taken (outside the allowed prefixes).
    pub fn finish(&self) -> Result<(), WeightError> {
        let taken = self.taken.borrow();
        let left: Vec<String> = self
            .tensors
            .keys()
            .filter(|k| {
                !taken.contains(*k) && !self.allow.iter().any(|p| k.starts_with(p.as_str()))
            })
            .cloned()
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(WeightError::Unexpected(left))
        }
    }

    /// A bias-free (or biased) 2-D convolution named `prefix` (`prefix.weight`, `prefix.bias`).
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d(
        &self,
        prefix: &str,
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        padding: [usize; 4],
        groups: usize,
        bias: bool,
    ) -> Result<Conv2d, WeightError> {
        let [p_top, p_left, p_bottom, p_right] = padding;
        let mut conv = Conv2dConfig::new(channels, [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(p_top, p_left, p_bottom, p_right))
            .with_groups(groups)
            .with_bias(bias)
            .init(&self.device);
        conv.weight = self.param(
            &format!("{prefix}.weight"),
            [channels[1], channels[0] / groups, kernel, kernel],
        )?;
        if bias {
            conv.bias = Some(self.param(&format!("{prefix}.bias"), [channels[1]])?);
        }
        Ok(conv)
    }

    /// BatchNorm named `prefix` with its running statistics.
    pub fn batch_norm(&self, prefix: &str, n: usize, eps: f64) -> Result<BatchNorm, WeightError> {
        let mut bn = BatchNormConfig::new(n).with_epsilon(eps).init(&self.device);
        bn.gamma = self.param(&format!("{prefix}.weight"), [n])?;
        bn.beta = self.param(&format!("{prefix}.bias"), [n])?;
        bn.running_mean = self.running(&format!("{prefix}.running_mean"), [n])?;
        bn.running_var = self.running(&format!("{prefix}.running_var"), [n])?;
        self.skip(&format!("{prefix}.num_batches_tracked"));
        Ok(bn)
    }

    /// LayerNorm named `prefix` (`prefix.weight`, `prefix.bias`).
    pub fn layer_norm(&self, prefix: &str, d: usize, eps: f64) -> Result<LayerNorm, WeightError> {
        Ok(LayerNorm {
            gamma: self.param(&format!("{prefix}.weight"), [d])?,
            beta: self.param(&format!("{prefix}.bias"), [d])?,
            epsilon: eps,
        })
    }

    /// A linear layer named `prefix`, PyTorch's `[out, in]` weight transposed to burn's `[in, out]`.
    pub fn linear(&self, prefix: &str, d_in: usize, d_out: usize) -> Result<Linear, WeightError> {
        let mut l = LinearConfig::new(d_in, d_out).init(&self.device);
        l.weight = self.param_transposed(&format!("{prefix}.weight"), [d_out, d_in])?;
        l.bias = Some(self.param(&format!("{prefix}.bias"), [d_out])?);
        Ok(l)
    }

    /// The same names and shapes with fresh values, as PyTorch initialises a network before
    /// training from scratch: convolutions Kaiming-normal (fan-out, as torchvision), linear
    /// layers and embeddings normal(0, 0.02), norm weights 1, biases 0, running mean 0 and
    /// variance 1. Deterministic for a seed.
    pub fn reinitialized(&self, seed: u64) -> Weights {
        let mut rng = crate::seeded::SplitMix::new(seed ^ 0x9e37_79b9_7f4a_7c15);
        let tensors = self
            .tensors
            .iter()
            .map(|(name, (shape, bytes, dtype))| {
                if !dtype.is_float() {
                    return (name.clone(), (shape.clone(), bytes.clone(), *dtype));
                }
                let n: usize = shape.iter().product();
                let leaf = name.rsplit('.').next().unwrap_or("");
                let v: Vec<f32> = if leaf == "running_var" {
                    vec![1.0; n]
                } else if leaf == "bias"
                    || leaf == "running_mean"
                    || shape.len() <= 1 && leaf != "weight"
                {
                    vec![0.0; n]
                } else if shape.len() <= 1 {
                    vec![1.0; n]
                } else if shape.len() == 4 {
                    let fan_out = (shape[0] * shape[2] * shape[3]) as f32;
                    let std = (2.0 / fan_out).sqrt();
                    (0..n).map(|_| rng.normal() * std).collect()
                } else {
                    (0..n).map(|_| rng.normal() * 0.02).collect()
                };
                let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                (name.clone(), (shape.clone(), bytes, Dtype::F32))
            })
            .collect();
        Weights {
            tensors,
            taken: RefCell::new(BTreeSet::new()),
            names: RefCell::new(Names::default()),
            allow: self.allow.clone(),
            device: self.device.clone(),
        }
    }

    /// Whether a tensor is present.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The shape of a tensor, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|(s, _, _)| s.as_slice())
    }
}
