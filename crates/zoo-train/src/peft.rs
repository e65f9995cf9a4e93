//! Parameter-efficient fine-tuning: LoRA adapters in `peft`'s own format, and BitFit.
//!
//! `--peft lora:r=8,alpha=16,dropout=0.05,targets=GLOBS` gives each targeted linear layer of
//! the backbone a low-rank adapter ([`zoo_engine::lora`]); only the adapters and the new head
//! train, every base tensor stays bit-identical. The result is a `peft` adapter folder:
//! `adapter_config.json` (`peft_type: LORA`, `r`, `lora_alpha`, `lora_dropout`,
//! `target_modules`, `modules_to_save` = the head, `base_model_name_or_path`) and
//! `adapter_model.safetensors` under `peft`'s names (`base_model.model.` + the module's name
//! in the published layout — timm's for images, transformers' for text — + `.lora_A.weight`),
//! plus `zoo_adapter.json` (labels, head, pooling, input size: what `peft`'s config has no
//! field for). `--peft bitfit` trains the biases and the head; `peft` has no format for a
//! bias-only delta, so its result is a full model folder.
//!
//! Targets follow `peft`'s rule for a list: a name matches a module whose name equals it or
//! ends with `.` + it (`query` matches `bert.encoder.layer.0.attention.self.query`); a target
//! with `*`, `?` or `[` is a glob over the whole module name. They are matched against the
//! published names, so an adapter's config means the same to zoo and to `peft`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use burn::module::ParamId;
use burn::prelude::Device;
use serde_json::{Value, json};
use zoo_engine::Names;
use zoo_engine::lora::{Adaptable, Dense, LoraShape};

use crate::TrainError;
use crate::layout::{self, TextLayout};
use crate::net::{Kind, Net, Source};

/// The file `peft` reads an adapter's configuration from.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The adapter's tensors.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// What zoo needs besides `peft`'s config: labels, head, pooling, input size.
pub const ZOO_FILE: &str = "zoo_adapter.json";
/// The prefix `peft` gives every tensor of a saved adapter.
pub const PEFT_PREFIX: &str = "base_model.model.";

fn opt_err(s: impl Into<String>) -> TrainError {
    TrainError::Options(s.into())
}

/// Which parameter-efficient method a run uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Peft {
    Lora {
        shape: LoraShape,
        /// `None`: the architecture's defaults.
        targets: Option<Vec<String>>,
    },
    BitFit,
}

impl Peft {
    /// Parses `bitfit` or `lora[:r=8,alpha=16,dropout=0.05,targets=a|b]` (targets separated
    /// by `|` or `;`, since `,` separates the settings).
    pub fn parse(s: &str) -> Result<Peft, TrainError> {
        let bad = |why: &str| opt_err(format!("--peft {s}: {why}"));
        if s == "bitfit" {
            return Ok(Peft::BitFit);
        }
        let rest = match s.strip_prefix("lora") {
            Some("") => "",
            Some(r) => r
                .strip_prefix(':')
                .ok_or_else(|| bad("expected lora:KEY=VALUE,... or bitfit"))?,
            None => {
                return Err(bad(
                    "expected lora[:r=8,alpha=16,dropout=0.05,targets=query|value] or bitfit",
                ));
            }
        };
        let mut shape = LoraShape {
            r: 8,
            alpha: 16.0,
            dropout: 0.05,
        };
        let mut targets = None;
        for kv in rest.split(',').filter(|x| !x.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(&format!("`{kv}`: expected KEY=VALUE")))?;
            match k.trim() {
                "r" => {
                    shape.r = v
                        .parse()
                        .map_err(|_| bad(&format!("r={v}: expected a whole number")))?
                }
                "alpha" => {
                    shape.alpha = v
                        .parse()
                        .map_err(|_| bad(&format!("alpha={v}: expected a number")))?
                }
                "dropout" => {
                    shape.dropout = v
                        .parse()
                        .map_err(|_| bad(&format!("dropout={v}: expected a number")))?
                }
                "targets" => {
                    targets = Some(
                        v.split(['|', ';'])
                            .map(|t| t.trim().to_string())
                            .filter(|t| !t.is_empty())
                            .collect::<Vec<_>>(),
                    )
                }
                other => {
                    return Err(bad(&format!(
                        "unknown setting `{other}` (r, alpha, dropout, targets)"
                    )));
                }
            }
        }
        check_shape(&shape).map_err(|e| bad(&e))?;
        if targets.as_ref().is_some_and(Vec::is_empty) {
            return Err(bad("targets= names no module"));
        }
        Ok(Peft::Lora { shape, targets })
    }
}

fn check_shape(s: &LoraShape) -> Result<(), String> {
    if s.r == 0 {
        return Err("rank r must be at least 1".into());
    }
    if !(s.alpha.is_finite() && s.alpha > 0.0) {
        return Err(format!("lora_alpha {} must be a positive number", s.alpha));
    }
    if !(0.0..1.0).contains(&s.dropout) {
        return Err(format!("lora_dropout {} must be in [0, 1)", s.dropout));
    }
    Ok(())
}

/// Whether `target` selects the module `name` (`peft`'s rule for a list of names; a glob
/// when it has `*`, `?` or `[`).
pub fn target_matches(target: &str, name: &str) -> bool {
    if target.contains(['*', '?', '[']) {
        return globset::Glob::new(target)
            .map(|g| g.compile_matcher().is_match(name))
            .unwrap_or(false);
    }
    name == target || name.ends_with(&format!(".{target}"))
}

/// The default targets of an architecture, in published names: attention query and value
/// for BERT-family encoders and ViT (whose query, key and value are one `qkv` layer), the
/// two linear layers of every ConvNeXt block.
pub fn default_targets(source: &Source) -> Result<Vec<String>, TrainError> {
    let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect();
    match &source.kind {
        Kind::Text { family, .. } => Ok(match family.as_str() {
            "distilbert" => v(&["q_lin", "v_lin"]),
            _ => v(&["query", "value"]),
        }),
        Kind::Image { arch, .. } => {
            let tv = zoo_engine::timm::torchvision_arch(arch);
            if zoo_engine::vit::heads(tv).is_some() {
                Ok(v(&["qkv"]))
            } else if tv.starts_with("convnext") {
                Ok(v(&["mlp.fc1", "mlp.fc2"]))
            } else {
                Err(opt_err(format!(
                    "--peft lora: {arch} has no linear layers in its backbone for LoRA to adapt (LoRA here targets linear layers: BERT-family encoders, ViT, ConvNeXt); use --peft bitfit, or fine-tune it in full"
                )))
            }
        }
    }
}

/// How zoo's tensor names map to the published ones (and so to `peft`'s).
#[derive(Debug, Clone)]
pub enum Published {
    /// timm's names, for this torchvision architecture.
    Image { tv: String },
    /// transformers' task-model names or sentence-transformers' root names.
    Text {
        family: String,
        layout: TextLayout,
        prefix: String,
    },
}

impl Published {
    /// The layout a network of `source` is published in.
    pub fn of(source: &Source, names: &Names, head: &str) -> Published {
        match &source.kind {
            Kind::Image { arch, .. } => Published::Image {
                tv: zoo_engine::timm::torchvision_arch(arch).to_string(),
            },
            Kind::Text {
                family,
                pooling,
                config,
                ..
            } => {
                let all: Vec<&str> = names.params.values().map(|p| p.name.as_str()).collect();
                let has_pooler = all.iter().any(|n| n.ends_with("pooler.dense.weight"));
                let hidden = zoo_engine::bert::BertConfig::from_json(config)
                    .map(|c| c.hidden_size)
                    .unwrap_or(0);
                let spec = zoo_engine::classifier::HeadSpec::parse(head)
                    .unwrap_or(zoo_engine::classifier::HeadSpec::Linear);
                Published::Text {
                    family: family.clone(),
                    layout: TextLayout::choose(family, *pooling, spec, has_pooler, hidden),
                    prefix: layout::prefix_of(all.into_iter()).to_string(),
                }
            }
        }
    }

    /// The published name of one of zoo's tensors (`….lora_A.weight` follows its module).
    pub fn name(&self, internal: &str) -> String {
        for part in [".lora_A.weight", ".lora_B.weight"] {
            if let Some(module) = internal.strip_suffix(part) {
                let w = self.name(&format!("{module}.weight"));
                return format!("{}{part}", w.strip_suffix(".weight").unwrap_or(&w));
            }
        }
        match self {
            Published::Image { tv } => {
                zoo_engine::timm::to_timm(tv, internal).unwrap_or_else(|| internal.to_string())
            }
            Published::Text {
                family,
                layout,
                prefix,
            } => match layout {
                TextLayout::Transformers(_) => layout::transformers_name(family, prefix, internal),
                TextLayout::SentenceTransformers => layout::root_name(prefix, internal),
            },
        }
    }

    /// The published shape of a tensor (timm keeps ConvNeXt's layer scale flat).
    pub fn shape(&self, published: &str, shape: &[usize]) -> Vec<usize> {
        match self {
            Published::Image { .. } => zoo_engine::timm::timm_shape(published, shape),
            Published::Text { .. } => shape.to_vec(),
        }
    }
}

impl Adaptable for Net {
    fn denses(&mut self) -> Vec<&mut Dense> {
        match self {
            Net::Image(m) => m.backbone.denses(),
            Net::Text(m) => m.encoder.denses(),
        }
    }
}

/// The published module name of each adaptable linear layer of `net`, in forward order.
fn module_names(net: &mut Net, names: &Names, published: &Published) -> Vec<(String, String)> {
    net.denses()
        .iter()
        .filter_map(|d| {
            let w = names.get(&d.linear.weight.id)?;
            let internal = w.strip_suffix(".weight")?.to_string();
            let p = published.name(w);
            Some((
                internal,
                p.strip_suffix(".weight").unwrap_or(&p).to_string(),
            ))
        })
        .collect()
}

/// Gives every linear layer that `targets` select an adapter; returns the published names of
/// the adapted modules. A target that selects nothing is an error listing what there is.
pub fn attach(
    net: &mut Net,
    names: &mut Names,
    shape: LoraShape,
    targets: &[String],
    published: &Published,
    device: &Device,
    seed: u64,
) -> Result<Vec<String>, TrainError> {
    check_shape(&shape).map_err(opt_err)?;
    let modules = module_names(net, names, published);
    if modules.is_empty() {
        return Err(opt_err(
            "LoRA: this backbone has no linear layers to adapt (use --peft bitfit)",
        ));
    }
    for t in targets {
        if !modules.iter().any(|(_, p)| target_matches(t, p)) {
            let mut leaves: Vec<&str> = modules
                .iter()
                .map(|(_, p)| p.rsplit('.').next().unwrap_or(p))
                .collect();
            leaves.sort();
            leaves.dedup();
            return Err(opt_err(format!(
                "LoRA target `{t}` matches no linear layer of the backbone (its layers end in: {}; e.g. {})",
                leaves.join(", "),
                modules[0].1
            )));
        }
    }
    let mut adapted = Vec::new();
    let mut i = 0u64;
    for (d, (internal, public)) in net.denses().into_iter().zip(modules) {
        if targets.iter().any(|t| target_matches(t, &public)) {
            i += 1;
            let s = seed ^ 0x6c6f_7261 ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            d.attach(&internal, shape, names, device, s);
            adapted.push(public);
        }
    }
    Ok(adapted)
}

/// The ids of the adapter tensors (`….lora_A/B.weight`) of `net`.
pub fn lora_ids(names: &Names) -> HashSet<ParamId> {
    names
        .params
        .iter()
        .filter(|(_, p)| p.name.contains(".lora_A.") || p.name.contains(".lora_B."))
        .map(|(id, _)| *id)
        .collect()
}

/// BitFit's trainable backbone tensors: every bias.
pub fn bias_ids(backbone: &HashSet<ParamId>, names: &Names) -> HashSet<ParamId> {
    backbone
        .iter()
        .filter(|id| names.get(id).is_some_and(|n| n.ends_with(".bias")))
        .copied()
        .collect()
}

/// The tensors an adapter folder holds: the adapter factors and the head, by name.
pub fn trained_names(net: &Net, names: &Names) -> Names {
    let lora = lora_ids(names);
    let head: HashSet<ParamId> = zoo_engine::export::parameters(net.head(), names)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    names.filtered(|id, _| lora.contains(id) || head.contains(id))
}

/// An adapter read from its folder (`adapter_config.json`, `zoo_adapter.json`).
#[derive(Debug, Clone)]
pub struct Adapter {
    pub dir: PathBuf,
    pub shape: LoraShape,
    pub targets: Vec<String>,
    /// The base model: a hub repository `org/name` or a folder.
    pub base: String,
    pub revision: Option<String>,
    pub labels: Vec<String>,
    pub head: String,
    pub pooling: Option<String>,
    pub image_size: Option<u32>,
}

/// Whether `dir` holds a `peft` adapter.
pub fn is_adapter(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file()
}

impl Adapter {
    /// Reads and checks an adapter folder's configuration: a malformed or unsupported field
    /// is an error naming the file and the field.
    pub fn read(dir: &Path) -> Result<Adapter, TrainError> {
        let path = dir.join(CONFIG_FILE);
        let err = |why: String| TrainError::Model {
            path: path.display().to_string(),
            reason: why,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        let peft_type = v.get("peft_type").and_then(Value::as_str).unwrap_or("");
        if peft_type != "LORA" {
            return Err(err(format!(
                "peft_type `{peft_type}` is not implemented (LORA is)"
            )));
        }
        for flag in ["use_dora", "fan_in_fan_out"] {
            if v.get(flag).and_then(Value::as_bool) == Some(true) {
                return Err(err(format!("{flag}: true is not implemented yet")));
            }
        }
        let r = v
            .get("r")
            .and_then(Value::as_u64)
            .ok_or_else(|| err("r: expected a whole number".into()))? as usize;
        let alpha = v
            .get("lora_alpha")
            .and_then(Value::as_f64)
            .ok_or_else(|| err("lora_alpha: expected a number".into()))?;
        let dropout = v.get("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0);
        let mut shape = LoraShape { r, alpha, dropout };
        check_shape(&shape).map_err(err)?;
        if v.get("use_rslora").and_then(Value::as_bool) == Some(true) {
            // rsLoRA scales by alpha / sqrt(r) = (alpha · sqrt(r)) / r.
            shape.alpha = alpha * (r as f64).sqrt();
        }
        let targets: Vec<String> = match v.get("target_modules") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| err("target_modules: expected names".into()))
                })
                .collect::<Result<_, _>>()?,
            Some(Value::String(_)) => {
                return Err(err(
                    "target_modules as a regular expression is not implemented yet (a list of module names is)".into(),
                ));
            }
            _ => return Err(err("target_modules: missing".into())),
        };
        if targets.is_empty() {
            return Err(err("target_modules names no module".into()));
        }
        let base = v
            .get("base_model_name_or_path")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                err("base_model_name_or_path: missing (an adapter needs its base model)".into())
            })?
            .to_string();
        let revision = v
            .get("revision")
            .and_then(Value::as_str)
            .map(str::to_string);
        let zoo_path = dir.join(ZOO_FILE);
        let zoo: Value = match std::fs::read_to_string(&zoo_path) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| TrainError::Model {
                path: zoo_path.display().to_string(),
                reason: e.to_string(),
            })?,
            Err(_) => Value::Null,
        };
        Ok(Adapter {
            dir: dir.to_path_buf(),
            shape,
            targets,
            base,
            revision,
            labels: zoo
                .get("labels")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            head: zoo
                .get("head")
                .and_then(Value::as_str)
                .unwrap_or("linear")
                .to_string(),
            pooling: zoo
                .get("pooling")
                .and_then(Value::as_str)
                .map(str::to_string),
            image_size: zoo
                .get("image_size")
                .and_then(Value::as_u64)
                .map(|x| x as u32),
        })
    }

    /// The adapter's tensors under zoo's names: each `peft` name is matched with the
    /// published name of a tensor of `names` (the network with its adapters attached). A
    /// tensor the network does not have is an error naming it.
    pub fn values(
        &self,
        loaded: &zoo_checkpoint::Loaded<'_>,
        names: &Names,
        published: &Published,
    ) -> Result<HashMap<String, Vec<f32>>, TrainError> {
        let path = self.dir.join(WEIGHTS_FILE);
        let by_public: HashMap<String, String> = names
            .params
            .values()
            .map(|p| (published.name(&p.name), p.name.clone()))
            .collect();
        let mut out = HashMap::new();
        for t in &loaded.tensors {
            let public = t.name.strip_prefix(PEFT_PREFIX).unwrap_or(&t.name);
            let internal = by_public.get(public).ok_or_else(|| TrainError::Model {
                path: path.display().to_string(),
                reason: format!(
                    "tensor `{}` belongs to no module of the base model (is this the adapter's base?)",
                    t.name
                ),
            })?;
            let v =
                zoo_formats::dtype::to_f32(&t.data, t.dtype).ok_or_else(|| TrainError::Model {
                    path: path.display().to_string(),
                    reason: format!("{}: {:?} is not a float type", t.name, t.dtype),
                })?;
            out.insert(internal.clone(), v);
        }
        Ok(out)
    }
}

/// Writes the adapter's files: `adapter_config.json`, `adapter_model.safetensors` (the
/// adapters and the head under `peft`'s names) and `zoo_adapter.json`.
#[allow(clippy::too_many_arguments)]
pub fn write(
    net: &Net,
    names: &Names,
    published: &Published,
    shape: LoraShape,
    targets: &[String],
    base: &str,
    task_type: Option<&str>,
    zoo: &Value,
    out: &Path,
) -> Result<u64, TrainError> {
    let keep: HashSet<String> = trained_names(net, names)
        .params
        .into_values()
        .map(|p| p.name)
        .collect();
    let mut tensors: Vec<zoo_engine::export::NamedTensor> =
        zoo_engine::export::state_dict(net, names)
            .into_iter()
            .filter(|t| keep.contains(&t.name))
            .collect();
    let mut modules_to_save: Vec<String> = Vec::new();
    for t in &mut tensors {
        let is_head = !t.name.contains(".lora_");
        let public = published.name(&t.name);
        t.shape = published.shape(&public, &t.shape);
        if is_head {
            let m = public
                .rsplit_once('.')
                .map(|(m, _)| m.to_string())
                .unwrap_or_default();
            if !modules_to_save.contains(&m) {
                modules_to_save.push(m);
            }
        }
        t.name = format!("{PEFT_PREFIX}{public}");
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let views: Vec<_> = tensors.iter().map(|t| t.view()).collect();
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let wp = out.join(WEIGHTS_FILE);
    zoo_checkpoint::write_safetensors(&wp, &views, Some(&meta))?;
    let config = json!({
        "peft_type": "LORA",
        "task_type": task_type,
        "base_model_name_or_path": base,
        "revision": null,
        "r": shape.r,
        "lora_alpha": shape.alpha,
        "lora_dropout": shape.dropout,
        "target_modules": targets,
        "modules_to_save": modules_to_save,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "use_rslora": false,
        "use_dora": false,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
    });
    let write_json = |name: &str, v: &Value| -> Result<(), TrainError> {
        let p = out.join(name);
        zoo_checkpoint::write_bytes_atomic(
            &p,
            (serde_json::to_string_pretty(v).unwrap_or_default() + "\n").as_bytes(),
        )?;
        Ok(())
    };
    write_json(CONFIG_FILE, &config)?;
    write_json(ZOO_FILE, zoo)?;
    Ok(std::fs::metadata(&wp).map(|m| m.len()).unwrap_or(0))
}

/// Folds every adapter of `net` into its base weight (`W + alpha/r · B A`).
pub fn merge(net: &mut Net, names: &mut Names) {
    for d in net.denses() {
        d.merge(names);
    }
}
