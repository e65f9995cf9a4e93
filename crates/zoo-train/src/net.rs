//! A model folder read for training or evaluation: the backbone it names, its preprocessing,
//! and a head (new, or the folder's own when it was fine-tuned).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::{Device, Int, Tensor};
use burn::tensor::TensorData;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use zoo_card::Config;
use zoo_engine::bert::{Bert, BertConfig};
use zoo_engine::classifier::{Head, HeadSpec, ImageClassifier, Pooling, TextClassifier};
use zoo_engine::{Model, Names, Weights};
use zoo_preprocess::text::TextTokenizer;
use zoo_preprocess::{AugmentDraw, ImageTransform};

use crate::TrainError;
use crate::data::{Example, Input};

/// What kind of network a folder holds.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Kind {
    Image {
        arch: String,
        transform: ImageTransform,
        cfg: zoo_card::PretrainedCfg,
    },
    Text {
        config: Value,
        tokenizer: TextTokenizer,
        pooling: Pooling,
        /// Whether the folder says how it pools (zoo's notes, a transformers classifier's
        /// head, sentence-transformers' `1_Pooling`) rather than `pooling` being the default.
        pooling_declared: bool,
        family: String,
    },
}

/// A model folder (`model.safetensors` + `config.json`, and a tokenizer for text).
#[derive(Debug)]
pub struct Source {
    pub dir: PathBuf,
    pub kind: Kind,
    /// Label names when the folder is a classifier.
    pub labels: Vec<String>,
    /// The folder's head, when it has one that zoo can rebuild (`fc`, `classifier.1`, ...).
    pub head: Option<HeadSpec>,
    /// sha256 of `model.safetensors`: the model's identity in the feature cache (with the
    /// adapter's, for an adapter).
    pub weights_sha256: String,
    /// A `peft` adapter on top of the base model in `dir`, when the folder opened was one.
    pub adapter: Option<crate::peft::Adapter>,
}

fn model_err(path: &Path, reason: impl std::fmt::Display) -> TrainError {
    TrainError::Model {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The sentence-transformers pooling of a folder (`1_Pooling/config.json`), if any; a mode
/// zoo does not implement is an error naming it.
fn st_pooling(dir: &Path) -> Result<Option<Pooling>, TrainError> {
    let path = dir.join("1_Pooling/config.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let v: Value = serde_json::from_str(&text).map_err(|e| model_err(&path, e))?;
    let on = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    for mode in [
        "pooling_mode_mean_sqrt_len_tokens",
        "pooling_mode_weightedmean_tokens",
        "pooling_mode_lasttoken",
    ] {
        if on(mode) {
            return Err(model_err(&path, format!("{mode} is not implemented yet")));
        }
    }
    if let Some(m) = v.get("pooling_mode").and_then(Value::as_str)
        && !matches!(m, "mean" | "cls" | "max")
    {
        return Err(model_err(
            &path,
            format!("pooling_mode `{m}` is not implemented yet (mean, cls, max are)"),
        ));
    }
    Ok(Some(if on("pooling_mode_cls_token") {
        Pooling::Cls
    } else if on("pooling_mode_max_tokens") {
        Pooling::Max
    } else {
        Pooling::Mean
    }))
}

impl Source {
    /// Reads a model folder. `image_size` overrides the input resolution (fine-tuning at 96²).
    pub fn open(dir: &Path, image_size: Option<u32>) -> Result<Source, TrainError> {
        if crate::peft::is_adapter(dir) {
            return Err(model_err(
                dir,
                "is a peft adapter: it is opened on its base model (`zoo predict`/`eval`/`merge` fetch the base it names)",
            ));
        }
        let config_path = dir.join("config.json");
        let text =
            std::fs::read_to_string(&config_path).map_err(|e| TrainError::io(&config_path, e))?;
        let raw: Value = serde_json::from_str(&text).map_err(|e| model_err(&config_path, e))?;
        let weights_path = dir.join("model.safetensors");
        let mapped = zoo_checkpoint::Mapped::open(&weights_path)?;
        let weights_sha256 = hex::encode(Sha256::digest(mapped.bytes()));
        let zoo = raw.get("zoo").cloned().unwrap_or(Value::Null);
        let head = zoo
            .get("head")
            .and_then(Value::as_str)
            .and_then(HeadSpec::parse);
        if let Some(model_type) = raw
            .get("model_type")
            .and_then(Value::as_str)
            .map(str::to_string)
        {
            if !matches!(model_type.as_str(), "bert" | "roberta" | "distilbert") {
                return Err(model_err(
                    &config_path,
                    format!(
                        "model_type `{model_type}` is not implemented yet (available: bert, roberta, distilbert)"
                    ),
                ));
            }
            let c = BertConfig::from_json(&raw).map_err(|e| model_err(&config_path, e))?;
            // RoBERTa's positions start after the padding index (2): 514 embeddings hold 512
            // tokens, as transformers counts them.
            let positions = if model_type == "roberta" {
                c.max_position_embeddings.saturating_sub(2)
            } else {
                c.max_position_embeddings
            };
            let tokenizer = TextTokenizer::from_dir(dir, positions)?;
            // A transformers classifier saved elsewhere implies its head and pooling.
            let implied = if head.is_none() {
                let loaded = zoo_checkpoint::load(&mapped)?;
                let names: Vec<&str> = loaded.tensors.iter().map(|t| t.name.as_str()).collect();
                crate::layout::implied_head(&names, |n| {
                    loaded
                        .tensors
                        .iter()
                        .find(|t| t.name == n)
                        .map(|t| t.shape[0])
                })
            } else {
                None
            };
            let declared = zoo
                .get("pooling")
                .and_then(Value::as_str)
                .and_then(Pooling::parse)
                .or(implied.map(|(_, p)| p))
                .or(st_pooling(dir)?);
            let pooling_declared = declared.is_some();
            let pooling = declared.unwrap_or(Pooling::Pooler);
            let labels = match raw.get("id2label").and_then(Value::as_object) {
                Some(m) => {
                    let mut v: Vec<(usize, String)> = m
                        .iter()
                        .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string())))
                        .collect();
                    v.sort();
                    v.into_iter().map(|(_, l)| l).collect()
                }
                None => Vec::new(),
            };
            let head = head.or(implied.map(|(h, _)| h));
            return Ok(Source {
                dir: dir.to_path_buf(),
                kind: Kind::Text {
                    config: raw,
                    tokenizer,
                    pooling,
                    pooling_declared,
                    family: model_type,
                },
                labels,
                head,
                weights_sha256,
                adapter: None,
            });
        }
        let config = Config::parse(&text).map_err(|e| model_err(&config_path, e))?;
        let arch = config
            .architecture()
            .ok_or_else(|| {
                model_err(
                    &config_path,
                    "no `architecture` (timm) or `model_type` (transformers)",
                )
            })?
            .to_string();
        if zoo_engine::head_name(&arch).is_none() {
            return Err(model_err(
                &config_path,
                format!(
                    "architecture `{arch}` is not implemented yet (available: {})",
                    zoo_engine::ARCHITECTURES.join(", ")
                ),
            ));
        }
        let mut cfg = config
            .pretrained_cfg()
            .map_err(|e| model_err(&config_path, e))?
            .unwrap_or_default();
        if let Some(s) = image_size {
            cfg.input_size = [3, s, s];
        }
        let transform = ImageTransform::from_cfg(&cfg)?;
        let labels = config.label_names().unwrap_or_default();
        let head = head.or(Some(HeadSpec::Linear));
        Ok(Source {
            dir: dir.to_path_buf(),
            kind: Kind::Image {
                arch,
                transform,
                cfg,
            },
            labels,
            head,
            weights_sha256,
            adapter: None,
        })
    }

    /// Opens a `peft` adapter folder on its base model's folder `base_dir` (which the caller
    /// found from the adapter's `base_model_name_or_path`).
    pub fn open_adapter(adapter_dir: &Path, base_dir: &Path) -> Result<Source, TrainError> {
        let adapter = crate::peft::Adapter::read(adapter_dir)?;
        if crate::peft::is_adapter(base_dir) {
            return Err(model_err(
                base_dir,
                "the base of an adapter is itself an adapter (merge it first: `zoo merge`)",
            ));
        }
        let mut source = Source::open(base_dir, adapter.image_size)?;
        if let (Some(p), Kind::Text { pooling, .. }) = (&adapter.pooling, &mut source.kind) {
            *pooling = Pooling::parse(p)
                .ok_or_else(|| model_err(adapter_dir, format!("pooling `{p}` is unknown")))?;
        }
        source.head = Some(HeadSpec::parse(&adapter.head).ok_or_else(|| {
            model_err(adapter_dir, format!("head `{}` is unknown", adapter.head))
        })?);
        source.labels = adapter.labels.clone();
        let weights = zoo_checkpoint::Mapped::open(adapter_dir.join(crate::peft::WEIGHTS_FILE))?;
        let mut h = Sha256::new();
        h.update(source.weights_sha256.as_bytes());
        h.update(Sha256::digest(weights.bytes()));
        source.weights_sha256 = hex::encode(h.finalize());
        source.adapter = Some(adapter);
        Ok(source)
    }

    pub fn is_text(&self) -> bool {
        matches!(self.kind, Kind::Text { .. })
    }

    pub fn pooling(&self) -> Pooling {
        match &self.kind {
            Kind::Text { pooling, .. } => *pooling,
            Kind::Image { .. } => Pooling::Mean,
        }
    }

    /// Builds the network. `new_head` replaces the folder's head with a fresh one for
    /// `classes` classes; otherwise the folder's own head is loaded (evaluation, prediction).
    /// `from_scratch` re-initialises every weight (the same architecture, trained from zero).
    pub fn build(
        &self,
        new_head: Option<(HeadSpec, usize)>,
        from_scratch: Option<u64>,
        seed: u64,
        device: &Device,
    ) -> Result<(Net, Names), TrainError> {
        let weights_path = self.dir.join("model.safetensors");
        let mapped = zoo_checkpoint::Mapped::open(&weights_path)?;
        let loaded = zoo_checkpoint::load(&mapped)?;
        let head_name = match &self.kind {
            Kind::Image { arch, .. } => zoo_engine::head_name(arch).unwrap_or("classifier"),
            Kind::Text { .. } => "classifier",
        };
        let head_prefixes = [format!("{head_name}."), "pre_classifier.".to_string()];
        let prefixes: Vec<&str> = head_prefixes.iter().map(String::as_str).collect();
        let mut w = Weights::from_loaded(&loaded, device).allow_unused(&prefixes);
        match &self.kind {
            Kind::Image { arch, .. } => w = w.in_torchvision_layout(arch),
            Kind::Text {
                pooling, family, ..
            } => {
                w = crate::layout::import_text(&self.dir, family, w, *pooling)?
                    .allow_unused(&prefixes)
            }
        }
        if let Some(seed) = from_scratch {
            w = w.reinitialized(seed).allow_unused(&prefixes);
        }
        let err = |e: &dyn std::fmt::Display| model_err(&weights_path, e);
        let (net, mut names, features) = match &self.kind {
            Kind::Image { arch, .. } => {
                let (backbone, _) = Model::build(arch, &w, false).map_err(|e| err(&e))?;
                let f = backbone.num_features();
                (NetParts::Image(backbone), w.names(), f)
            }
            Kind::Text { config, .. } => {
                let c = BertConfig::from_json(config).map_err(|e| err(&e))?;
                let encoder = Bert::load(&w, &c).map_err(|e| err(&e))?;
                let f = encoder.hidden_size;
                (NetParts::Text(encoder), w.names(), f)
            }
        };
        let adapter_file = match (&self.adapter, new_head) {
            (Some(a), None) => Some(zoo_checkpoint::Mapped::open(
                a.dir.join(crate::peft::WEIGHTS_FILE),
            )?),
            _ => None,
        };
        let loaded_adapter = adapter_file
            .as_ref()
            .map(zoo_checkpoint::load)
            .transpose()?;
        let adapter_head = match (&self.adapter, &loaded_adapter) {
            (Some(a), Some(loaded)) => {
                let spec = self.head.unwrap_or(HeadSpec::Linear);
                let classes = adapter_classes(a, loaded, spec)?;
                if !a.labels.is_empty() && a.labels.len() != classes {
                    return Err(model_err(
                        &a.dir,
                        format!(
                            "{} names {} labels but its head has {classes} outputs",
                            crate::peft::ZOO_FILE,
                            a.labels.len()
                        ),
                    ));
                }
                Some((spec, classes))
            }
            _ => None,
        };
        let (spec, classes, reuse) = match new_head.or(adapter_head) {
            Some((spec, classes)) => (spec, classes, false),
            None => {
                let spec = self.head.ok_or_else(|| {
                    model_err(
                        &self.dir,
                        "has no classification head (fine-tune it first, or use `zoo embed`)",
                    )
                })?;
                let out = match spec {
                    HeadSpec::Linear => format!("{head_name}.weight"),
                    HeadSpec::Mlp { .. } => format!("{head_name}.3.weight"),
                };
                let classes = w
                    .shape(&out)
                    .map(|s| s[0])
                    .ok_or_else(|| err(&format!("missing tensor `{out}`")))?;
                (spec, classes, true)
            }
        };
        let head = Head::new(spec, features, classes, head_name, &mut names, device, seed);
        let mut net = match net {
            NetParts::Image(backbone) => Net::Image(ImageClassifier { backbone, head }),
            NetParts::Text(encoder) => Net::Text(TextClassifier { encoder, head }),
        };
        if reuse {
            let mut values = HashMap::new();
            for (_, p) in names.params.iter() {
                if p.name.starts_with(&format!("{head_name}.")) {
                    let (_, v) = w.values(&p.name).map_err(|e| err(&e))?;
                    values.insert(p.name.clone(), v);
                }
            }
            let only_head = names.filtered(|_, n| n.starts_with(&format!("{head_name}.")));
            net = zoo_engine::export::load_state(net, &only_head, &values)
                .map_err(|m| err(&format!("head tensors: {}", m.join(", "))))?;
            w.finish().map_err(|e| err(&e))?;
        }
        if let (Some(a), Some(loaded)) = (&self.adapter, &loaded_adapter) {
            let published = crate::peft::Published::of(self, &names, &a.head);
            crate::peft::attach(
                &mut net, &mut names, a.shape, &a.targets, &published, device, seed,
            )
            .map_err(|e| model_err(&a.dir, e))?;
            let values = a.values(loaded, &names, &published)?;
            let adapter_names = crate::peft::trained_names(&net, &names);
            net = zoo_engine::export::load_state(net, &adapter_names, &values).map_err(|m| {
                model_err(
                    &a.dir.join(crate::peft::WEIGHTS_FILE),
                    format!("missing or misshapen tensors: {}", m.join(", ")),
                )
            })?;
        }
        Ok((net, names))
    }
}

/// The number of classes of an adapter's head (its `modules_to_save` tensors): the rows of
/// the head's output layer — its only weight for a linear head; for `mlp:H` the weight that
/// takes the H hidden values (`[classes, H]`; the first layer is `[H, features]`).
fn adapter_classes(
    a: &crate::peft::Adapter,
    loaded: &zoo_checkpoint::Loaded<'_>,
    spec: HeadSpec,
) -> Result<usize, TrainError> {
    let path = a.dir.join(crate::peft::WEIGHTS_FILE);
    let weights: Vec<&[usize]> = loaded
        .tensors
        .iter()
        .filter(|t| !t.name.contains(".lora_") && t.name.ends_with(".weight") && t.shape.len() == 2)
        .map(|t| t.shape.as_slice())
        .collect();
    let out = match spec {
        HeadSpec::Linear if weights.len() == 1 => Some(weights[0]),
        HeadSpec::Mlp { hidden, .. } if weights.len() == 2 => {
            let takes_hidden: Vec<&[usize]> =
                weights.iter().copied().filter(|s| s[1] == hidden).collect();
            takes_hidden
                .iter()
                .copied()
                .find(|s| s[0] != hidden)
                .or(takes_hidden.first().copied())
        }
        _ => None,
    };
    out.map(|s| s[0]).ok_or_else(|| {
        model_err(
            &path,
            format!(
                "holds {} head weights (modules_to_save), not the {} head zoo_adapter.json names",
                weights.len(),
                spec.to_config()
            ),
        )
    })
}

#[allow(clippy::large_enum_variant)]
enum NetParts {
    Image(Model),
    Text(Bert),
}

/// A backbone with its head.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Net {
    Image(ImageClassifier),
    Text(TextClassifier),
}

/// A batch of prepared inputs.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Batch {
    Image(Tensor<4>),
    Text {
        ids: Tensor<2, Int>,
        types: Tensor<2, Int>,
        mask: Tensor<2>,
    },
}

impl Net {
    /// Pooled backbone features.
    pub fn features(&self, b: Batch, pooling: Pooling) -> Tensor<2> {
        match (self, b) {
            (Net::Image(m), Batch::Image(x)) => m.backbone.features(x),
            (Net::Text(m), Batch::Text { ids, types, mask }) => {
                m.features(ids, types, mask, pooling)
            }
            _ => panic!("batch kind does not match the network"),
        }
    }

    /// The image backbone, if this is an image network.
    pub fn image_backbone(&self) -> Option<&zoo_engine::Model> {
        match self {
            Net::Image(m) => Some(&m.backbone),
            Net::Text(_) => None,
        }
    }

    /// The block names of the backbone's sequential units, in forward order (where a frozen
    /// prefix can end).
    pub fn prefix_units(&self) -> Vec<String> {
        match self {
            Net::Image(m) => m.backbone.prefix_units(),
            Net::Text(m) => m.encoder.unit_names(),
        }
    }

    /// An image network's activation after its first `k` units.
    pub fn run_image_prefix(&self, x: Tensor<4>, k: usize) -> Tensor<4> {
        match self {
            Net::Image(m) => m.backbone.run_prefix(x, k),
            Net::Text(_) => panic!("run_image_prefix: a text network"),
        }
    }

    /// A text network's token states after its first `k >= 1` units.
    pub fn run_text_prefix(
        &self,
        ids: Tensor<2, Int>,
        types: Tensor<2, Int>,
        mask: Tensor<2>,
        k: usize,
    ) -> Tensor<3> {
        match self {
            Net::Text(m) => m.run_prefix(ids, types, mask, k),
            Net::Image(_) => panic!("run_text_prefix: an image network"),
        }
    }

    /// Logits from the activation after the first `k` backbone units (the frozen prefix).
    pub fn logits_from(&self, x: Tensor<4>, k: usize) -> Tensor<2> {
        match self {
            Net::Image(m) => m.head.forward(m.backbone.features_from(x, k)),
            Net::Text(_) => panic!("logits_from: a text network has no image prefix"),
        }
    }

    /// Logits from a text's token states after the first `k` units.
    pub fn text_logits_from(
        &self,
        x: Tensor<3>,
        mask: Tensor<2>,
        k: usize,
        pooling: Pooling,
    ) -> Tensor<2> {
        match self {
            Net::Text(m) => m.head.forward(m.features_from(x, mask, k, pooling)),
            Net::Image(_) => panic!("text_logits_from: an image network"),
        }
    }

    pub fn head(&self) -> &Head {
        match self {
            Net::Image(m) => &m.head,
            Net::Text(m) => &m.head,
        }
    }

    pub fn head_forward(&self, f: Tensor<2>) -> Tensor<2> {
        self.head().forward(f)
    }

    pub fn logits(&self, b: Batch, pooling: Pooling) -> Tensor<2> {
        self.head_forward(self.features(b, pooling))
    }

    /// The parameters of the backbone (everything but the head), by id.
    pub fn backbone_ids(&self, names: &Names) -> std::collections::HashSet<burn::module::ParamId> {
        let all = zoo_engine::export::parameters(self, names);
        let head = zoo_engine::export::parameters(self.head(), names);
        let head: std::collections::HashSet<_> = head.into_iter().map(|(id, _)| id).collect();
        all.into_iter()
            .map(|(id, _)| id)
            .filter(|id| !head.contains(id))
            .collect()
    }
}

/// How inputs are prepared for one pass over the data.
#[derive(Debug, Clone, Copy)]
pub enum Prep {
    Eval,
    /// Augmented, with a seed for this pass.
    Augment(u64),
}

/// Prepares a batch: images decoded and transformed in parallel; texts tokenised (padding to
/// the longest). Errors name the file or line.
pub fn prepare(
    source: &Source,
    examples: &[&Example],
    prep: Prep,
    device: &Device,
) -> Result<(Batch, usize), TrainError> {
    match &source.kind {
        Kind::Image { transform: t, .. } => {
            let rows: Vec<Result<Vec<f32>, TrainError>> = examples
                .par_iter()
                .map(|e| {
                    let Input::Image(path) = &e.input else {
                        return Err(TrainError::Data(format!("{}: not an image", e.origin)));
                    };
                    let bytes = std::fs::read(path).map_err(|err| TrainError::io(path, err))?;
                    let img = zoo_preprocess::decode(&bytes, &e.origin)?;
                    Ok(match prep {
                        Prep::Eval => t.apply(&img)?,
                        Prep::Augment(seed) => {
                            let mut h = Sha256::new();
                            h.update(seed.to_le_bytes());
                            h.update(e.origin.as_bytes());
                            let s = u64::from_le_bytes(h.finalize()[..8].try_into().unwrap());
                            let mut rng = ChaCha8Rng::seed_from_u64(s);
                            let d = AugmentDraw {
                                area: rng.random(),
                                ratio: rng.random(),
                                x: rng.random(),
                                y: rng.random(),
                                flip: rng.random(),
                            };
                            t.augment(&img, d)?
                        }
                    })
                })
                .collect();
            let mut data = Vec::with_capacity(examples.len() * 3 * (t.height * t.width) as usize);
            for r in rows {
                data.extend(r?);
            }
            let x = Tensor::from_data(
                TensorData::new(
                    data,
                    [examples.len(), 3, t.height as usize, t.width as usize],
                ),
                device,
            );
            Ok((Batch::Image(x), 0))
        }
        Kind::Text { tokenizer, .. } => {
            let texts: Vec<&str> = examples
                .iter()
                .map(|e| match &e.input {
                    Input::Text(t) => Ok(t.as_str()),
                    Input::Image(_) => Err(TrainError::Data(format!("{}: not a text", e.origin))),
                })
                .collect::<Result<_, _>>()?;
            let b = tokenizer.encode(&texts, false)?;
            let shape = [b.batch, b.tokens];
            Ok((
                Batch::Text {
                    ids: Tensor::from_data(TensorData::new(b.ids, shape), device),
                    types: Tensor::from_data(TensorData::new(b.type_ids, shape), device),
                    mask: Tensor::from_data(TensorData::new(b.mask, shape), device),
                },
                b.truncated.len(),
            ))
        }
    }
}
