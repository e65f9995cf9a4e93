//! Back to standard names: a built (and trained) network's tensors as a PyTorch-style state
//! dict, freezing by name, and the block a parameter belongs to (for `stages:N` freezing and
//! layer-wise learning rates).

use std::collections::{BTreeMap, HashSet};

use burn::module::Flag;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::Tensor;
use zoo_formats::Dtype;
use zoo_formats::safetensors::TensorData;

use crate::weights::Names;

/// One tensor of a state dict, f32 (or the passthrough's own dtype).
#[derive(Debug, Clone)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    pub data: Vec<u8>,
}

impl NamedTensor {
    pub fn view(&self) -> TensorData<'_> {
        TensorData {
            name: self.name.clone(),
            dtype: self.dtype,
            shape: self.shape.clone(),
            data: std::borrow::Cow::Borrowed(&self.data),
        }
    }

    /// The values as f32 (f32 tensors only).
    pub fn f32s(&self) -> Vec<f32> {
        zoo_formats::dtype::to_f32(&self.data, self.dtype).unwrap_or_default()
    }
}

struct Collect<'a> {
    names: &'a Names,
    out: BTreeMap<String, NamedTensor>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(p) = self.names.params.get(&param.id) else {
            return;
        };
        let mut t = param.val();
        if p.transposed {
            t = t.transpose();
        }
        let shape = t.dims().to_vec();
        let v: Vec<f32> = t
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 tensor data");
        let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.out.insert(
            p.name.clone(),
            NamedTensor {
                name: p.name.clone(),
                shape,
                dtype: Dtype::F32,
                data,
            },
        );
    }
}

/// The module's tensors under their standard names, sorted by name, with the passthrough
/// tensors (`num_batches_tracked`, ...) as they came.
///
/// BatchNorm's running statistics are read as of the last step: burn keeps a training step's
/// update aside until the next step or a sync, and `valid()` syncs them.
pub fn state_dict<M: Module>(module: &M, names: &Names) -> Vec<NamedTensor> {
    let mut c = Collect {
        names,
        out: BTreeMap::new(),
    };
    module.valid().visit(&mut c);
    for (name, (shape, data, dtype)) in &names.passthrough {
        c.out.entry(name.clone()).or_insert_with(|| NamedTensor {
            name: name.clone(),
            shape: shape.clone(),
            dtype: *dtype,
            data: data.clone(),
        });
    }
    c.out.into_values().collect()
}

struct Load<'a> {
    names: &'a Names,
    values: &'a std::collections::HashMap<String, Vec<f32>>,
    missing: Vec<String>,
}

impl ModuleMapper for Load<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(p) = self.names.params.get(&param.id) else {
            return param;
        };
        let Some(v) = self.values.get(&p.name) else {
            self.missing.push(p.name.clone());
            return param;
        };
        let (id, t, mapper) = param.consume();
        let mut dims = t.dims();
        if p.transposed {
            dims.swap(D - 2, D - 1);
        }
        if v.len() != dims.iter().product::<usize>() {
            self.missing.push(format!("{} (wrong size)", p.name));
            return Param::from_mapped_value(id, t, mapper);
        }
        // Built in burn's own layout, contiguous, as an optimiser step leaves a parameter: a
        // strided (transposed) view would take other matmul paths and round differently, so a
        // resumed run would drift from an uninterrupted one.
        let data = if p.transposed {
            transpose_last(v, &dims)
        } else {
            v.clone()
        };
        let logical = t.dims();
        let mut new: Tensor<D> =
            Tensor::from_data(burn::tensor::TensorData::new(data, logical), &t.device());
        if t.is_require_grad() {
            new = new.require_grad();
        }
        Param::from_mapped_value(id, new, mapper)
    }
}

/// `v` laid out as `dims` (row-major) with its last two axes swapped.
fn transpose_last(v: &[f32], dims: &[usize]) -> Vec<f32> {
    let (r, c) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let mut out = vec![0f32; v.len()];
    for (m, block) in v.chunks_exact(r * c).enumerate() {
        let dst = &mut out[m * r * c..(m + 1) * r * c];
        for i in 0..r {
            for j in 0..c {
                dst[j * r + i] = block[i * c + j];
            }
        }
    }
    out
}

/// Replaces the module's tensors by name (a state dict read back: resuming, restoring the best
/// epoch). Every named tensor must be present with its size.
pub fn load_state<M: Module>(
    module: M,
    names: &Names,
    values: &std::collections::HashMap<String, Vec<f32>>,
) -> Result<M, Vec<String>> {
    let mut l = Load {
        names,
        values,
        missing: Vec::new(),
    };
    let m = module.map(&mut l);
    if l.missing.is_empty() {
        Ok(m)
    } else {
        Err(l.missing)
    }
}

/// Sets whether the parameters in `ids` train. BatchNorm layers whose weight is in the set
/// switch to (or back from) their running statistics, which then stay bit-identical.
struct Freezer<'a> {
    ids: &'a HashSet<ParamId>,
    train: bool,
    modules: Vec<String>,
    last_matched: bool,
}

impl ModuleMapper for Freezer<'_> {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        self.modules.push(container_type.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.modules.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        self.last_matched = self.ids.contains(&param.id);
        if self.last_matched {
            param.set_require_grad(self.train)
        } else {
            param
        }
    }
    fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
        // A BatchNorm visits gamma and beta before its training flag.
        let in_batch_norm = self.modules.last().is_some_and(|t| t.contains("BatchNorm"));
        if in_batch_norm && self.last_matched {
            flag.with_value(self.train)
        } else {
            flag
        }
    }
}

/// Sets every BatchNorm layer's training flag: `false` keeps all running statistics fixed
/// (and normalises with them) while gamma and beta may still train — the usual remedy when
/// batches are small or few.
pub fn set_batch_norm_training<M: Module>(module: M, train: bool) -> M {
    struct Flags {
        train: bool,
        modules: Vec<String>,
    }
    impl ModuleMapper for Flags {
        fn enter_module(&mut self, _name: &str, container_type: &str) {
            self.modules.push(container_type.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.modules.pop();
        }
        fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
            if self.modules.last().is_some_and(|t| t.contains("BatchNorm")) {
                flag.with_value(self.train)
            } else {
                flag
            }
        }
    }
    module.map(&mut Flags {
        train,
        modules: Vec::new(),
    })
}

/// Freezes (`train = false`) or unfreezes the parameters in `ids`, with their BatchNorm layers.
pub fn set_trainable<M: Module>(module: M, ids: &HashSet<ParamId>, train: bool) -> M {
    module.map(&mut Freezer {
        ids,
        train,
        modules: Vec::new(),
        last_matched: false,
    })
}

/// Ids and names of the module's parameters that require a gradient, in visiting order.
pub fn trainable<M: Module>(module: &M, names: &Names) -> Vec<(ParamId, String)> {
    struct V<'a>(&'a Names, Vec<(ParamId, String)>);
    impl ModuleVisitor for V<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.val().is_require_grad() {
                let name = self.0.get(&param.id).unwrap_or("?").to_string();
                self.1.push((param.id, name));
            }
        }
    }
    let mut v = V(names, Vec::new());
    module.visit(&mut v);
    v.1
}

/// How many values (not tensors) of the module require a gradient.
pub fn trainable_values<M: Module>(module: &M) -> usize {
    struct V(usize);
    impl ModuleVisitor for V {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.val().is_require_grad() {
                self.0 += param.val().dims().iter().product::<usize>();
            }
        }
    }
    let mut v = V(0);
    module.visit(&mut v);
    v.0
}

/// Every parameter (not running statistics) with its standard name, in visiting order
/// (which is forward order).
pub fn parameters<M: Module>(module: &M, names: &Names) -> Vec<(ParamId, String)> {
    struct V<'a>(&'a Names, Vec<(ParamId, String)>, HashSet<ParamId>);
    impl ModuleVisitor for V<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(n) = self.0.get(&param.id)
                && !n.ends_with("running_mean")
                && !n.ends_with("running_var")
                && self.2.insert(param.id)
            {
                self.1.push((param.id, n.to_string()));
            }
        }
    }
    let mut v = V(names, Vec::new(), HashSet::new());
    module.visit(&mut v);
    v.1
}

/// The block a parameter belongs to, for `--freeze stages:N` and layer-wise learning rates:
/// `features.3` (torchvision's MobileNet/EfficientNet/ConvNeXt), `layer2` (ResNet),
/// `_blocks.7` (EfficientNet-Lite), `blocks.5` (ViT), `encoder.layer.4` (BERT); stems
/// (`conv1`, `bn1`, `_conv_stem`, `embeddings`, `patch_embed`, ...) are the block `stem`.
pub fn block_of(name: &str) -> String {
    let name = ["bert.", "roberta.", "distilbert."]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    let parts: Vec<&str> = name.split('.').collect();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        [
            "conv1" | "bn1" | "_conv_stem" | "_bn0" | "embeddings" | "patch_embed" | "cls_token"
            | "pos_embed",
            ..,
        ] => "stem".into(),
        [a @ ("encoder" | "transformer"), b, n, ..] if numeric(n) => format!("{a}.{b}.{n}"),
        // ResNet: a stage `layerN` is one block.
        [a, ..] if a.strip_prefix("layer").is_some_and(numeric) => (*a).to_string(),
        [a, n, ..] if numeric(n) => format!("{a}.{n}"),
        [a, ..] => (*a).to_string(),
        [] => String::new(),
    }
}

/// The blocks of the named parameters, in forward order, without repeats.
pub fn blocks(params: &[(ParamId, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, n) in params {
        let b = block_of(n);
        if !out.contains(&b) {
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::block_of;

    #[test]
    fn blocks_by_architecture() {
        assert_eq!(block_of("features.3.conv.0.0.weight"), "features.3");
        assert_eq!(block_of("layer2.0.conv1.weight"), "layer2");
        assert_eq!(block_of("bn1.running_mean"), "stem");
        assert_eq!(block_of("_blocks.7._bn1.weight"), "_blocks.7");
        assert_eq!(
            block_of("bert.encoder.layer.4.output.dense.weight"),
            "encoder.layer.4"
        );
        assert_eq!(block_of("embeddings.LayerNorm.weight"), "stem");
        assert_eq!(block_of("fc.weight"), "fc");
        assert_eq!(block_of("classifier.1.weight"), "classifier.1");
    }
}
