//! How a fine-tuned text classifier is laid out on disk so that the tool its card names
//! reproduces zoo's logits, and how zoo reads each layout back.
//!
//! The rule (ARCHITECTURE.md repeats it):
//!
//! | encoder | pooling | head | layout |
//! |---|---|---|---|
//! | BERT (with pooler weights) | `pooler` | linear | transformers `BertForSequenceClassification` |
//! | RoBERTa (with pooler weights) | `pooler` | linear | transformers `RobertaForSequenceClassification` (`classifier.dense` = the pooler, `classifier.out_proj` = the head) |
//! | DistilBERT | `cls` | `mlp:DIM` (hidden width = the encoder's) | transformers `DistilBertForSequenceClassification` (`pre_classifier` + ReLU + `classifier`) |
//! | anything else | mean / max / cls / pooler | linear / MLP | sentence-transformers: the encoder at the root, `1_Pooling`, a `Dense` with `Tanh` for BERT's pooler, then one `Dense` per head layer (`ReLU`, then `Identity`); `encode` returns the logits |
//!
//! transformers' heads are fixed shapes, so only those three combinations match one exactly;
//! sentence-transformers' `Pooling` + `Dense` modules express every other combination
//! without remote code.

use std::path::Path;

use serde_json::{Value, json};
use zoo_engine::classifier::{HeadSpec, Pooling};
use zoo_engine::export::NamedTensor;

use crate::TrainError;

/// Where a fine-tuned text classifier's head lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextLayout {
    /// transformers' `*ForSequenceClassification` class, by name.
    Transformers(&'static str),
    /// The encoder at the root, pooling and head as sentence-transformers modules.
    SentenceTransformers,
}

impl TextLayout {
    /// The layout for a family (`bert`, `roberta`, `distilbert`), pooling and head.
    /// `has_pooler`: the encoder has pooler weights; `hidden`: its width.
    pub fn choose(
        family: &str,
        pooling: Pooling,
        head: HeadSpec,
        has_pooler: bool,
        hidden: usize,
    ) -> TextLayout {
        match (family, pooling, head) {
            ("bert", Pooling::Pooler, HeadSpec::Linear) if has_pooler => {
                TextLayout::Transformers("BertForSequenceClassification")
            }
            ("roberta", Pooling::Pooler, HeadSpec::Linear) if has_pooler => {
                TextLayout::Transformers("RobertaForSequenceClassification")
            }
            ("distilbert", Pooling::Cls, HeadSpec::Mlp { hidden: h, .. }) if h == hidden => {
                TextLayout::Transformers("DistilBertForSequenceClassification")
            }
            _ => TextLayout::SentenceTransformers,
        }
    }

    /// The card's `library_name`.
    pub fn library(self) -> &'static str {
        match self {
            TextLayout::Transformers(_) => "transformers",
            TextLayout::SentenceTransformers => "sentence-transformers",
        }
    }

    /// The name config.json records (`zoo.layout`).
    pub fn name(self) -> &'static str {
        match self {
            TextLayout::Transformers(_) => "transformers",
            TextLayout::SentenceTransformers => "sentence-transformers",
        }
    }
}

/// The encoder's prefix in task-model names (`bert.`), `""` for base-model names.
fn encoder_prefix<'a>(names: impl Iterator<Item = &'a str>) -> &'static str {
    let names: Vec<&str> = names.collect();
    ["bert.", "roberta.", "distilbert."]
        .into_iter()
        .find(|p| {
            names
                .iter()
                .any(|n| n.starts_with(&format!("{p}embeddings.")))
        })
        .unwrap_or("")
}

/// Drops the encoder's task-model prefix (`bert.`) from a name.
fn strip_encoder_prefix(t: &mut NamedTensor, prefix: &str) {
    if let Some(rest) = t.name.strip_prefix(prefix) {
        t.name = rest.to_string();
    }
}

/// zoo's head names → the transformers class's, per family (first matching prefix wins):
/// RoBERTa's `RobertaClassificationHead` is dense + tanh + out_proj on `<s>` — the pooler and
/// the linear head; DistilBERT's is pre_classifier + ReLU + classifier on the first token — the
/// MLP head. BERT's are zoo's own names.
fn head_renames(family: &str) -> &'static [(&'static str, &'static str)] {
    match family {
        "roberta" => &[
            ("roberta.pooler.dense.", "classifier.dense."),
            ("classifier.", "classifier.out_proj."),
        ],
        "distilbert" => &[
            ("classifier.0.", "pre_classifier."),
            ("classifier.3.", "classifier."),
        ],
        _ => &[],
    }
}

/// `name` under the first `(from, to)` whose `from` prefixes it.
fn rename_first<'a>(
    name: &str,
    mut pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Option<String> {
    pairs.find_map(|(from, to)| name.strip_prefix(from).map(|rest| format!("{to}{rest}")))
}

/// The name a tensor of zoo's (the encoder under `prefix`, the head as `classifier.*`) takes
/// in a transformers task model: the encoder under `{family}.`, then the class's head names.
pub fn transformers_name(family: &str, prefix: &str, name: &str) -> String {
    let mut n = if name.starts_with("classifier.") {
        name.to_string()
    } else {
        format!("{family}.{}", name.strip_prefix(prefix).unwrap_or(name))
    };
    if let Some(r) = rename_first(&n, head_renames(family).iter().copied()) {
        n = r;
    }
    n
}

/// The name a tensor of zoo's takes at the root of the sentence-transformers layout (the
/// encoder's base-model names; the head keeps zoo's `classifier.*`).
pub fn root_name(prefix: &str, name: &str) -> String {
    if name.starts_with("classifier.") {
        name.to_string()
    } else {
        name.strip_prefix(prefix).unwrap_or(name).to_string()
    }
}

/// The encoder's prefix (`bert.`, or `""`) among these tensor names.
pub fn prefix_of<'a>(names: impl Iterator<Item = &'a str>) -> &'static str {
    encoder_prefix(names)
}

/// A sentence-transformers `Dense` module: its folder, config and weights.
#[derive(Debug)]
pub struct DenseModule {
    pub activation: &'static str,
    pub weight: NamedTensor,
    pub bias: NamedTensor,
}

/// What to write for a text classifier: the root checkpoint and, for the
/// sentence-transformers layout, the `Dense` modules after pooling.
#[derive(Debug)]
pub struct TextExport {
    pub root: Vec<NamedTensor>,
    pub dense: Vec<DenseModule>,
}

/// Lays out zoo's tensors (the encoder under any prefix, the head as `classifier.*` or
/// `classifier.0.*`/`classifier.3.*`) for `layout`.
pub fn export_text(
    family: &str,
    layout: TextLayout,
    pooling: Pooling,
    tensors: Vec<NamedTensor>,
) -> Result<TextExport, TrainError> {
    let prefix = encoder_prefix(tensors.iter().map(|t| t.name.as_str())).to_string();
    let is_head = |n: &str| n.starts_with("classifier.");
    match layout {
        TextLayout::Transformers(_) => {
            let mut root = tensors;
            for t in &mut root {
                t.name = transformers_name(family, &prefix, &t.name);
            }
            root.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(TextExport {
                root,
                dense: Vec::new(),
            })
        }
        TextLayout::SentenceTransformers => {
            let mut root = Vec::new();
            let mut head = std::collections::BTreeMap::new();
            let mut pooler = std::collections::BTreeMap::new();
            for mut t in tensors {
                if is_head(&t.name) {
                    head.insert(t.name.clone(), t);
                    continue;
                }
                strip_encoder_prefix(&mut t, &prefix);
                if pooling == Pooling::Pooler
                    && let Some(rest) = t.name.strip_prefix("pooler.dense.")
                {
                    let mut copy = t.clone();
                    copy.name = rest.to_string();
                    pooler.insert(rest.to_string(), copy);
                }
                root.push(t);
            }
            root.sort_by(|a, b| a.name.cmp(&b.name));
            let mut dense = Vec::new();
            let mut take = |map: &mut std::collections::BTreeMap<String, NamedTensor>,
                            w: &str,
                            b: &str,
                            activation: &'static str|
             -> Result<(), TrainError> {
                let missing = |n: &str| TrainError::Options(format!("export: no tensor `{n}`"));
                let weight = map.remove(w).ok_or_else(|| missing(w))?;
                let bias = map.remove(b).ok_or_else(|| missing(b))?;
                dense.push(DenseModule {
                    activation,
                    weight,
                    bias,
                });
                Ok(())
            };
            if pooling == Pooling::Pooler && !pooler.is_empty() {
                take(
                    &mut pooler,
                    "weight",
                    "bias",
                    "torch.nn.modules.activation.Tanh",
                )?;
            }
            if head.contains_key("classifier.weight") {
                take(
                    &mut head,
                    "classifier.weight",
                    "classifier.bias",
                    "torch.nn.modules.linear.Identity",
                )?;
            } else {
                take(
                    &mut head,
                    "classifier.0.weight",
                    "classifier.0.bias",
                    "torch.nn.modules.activation.ReLU",
                )?;
                take(
                    &mut head,
                    "classifier.3.weight",
                    "classifier.3.bias",
                    "torch.nn.modules.linear.Identity",
                )?;
            }
            Ok(TextExport { root, dense })
        }
    }
}

fn write_json(path: &Path, v: &Value) -> Result<(), TrainError> {
    Ok(zoo_checkpoint::write_bytes_atomic(
        path,
        (serde_json::to_string_pretty(v).unwrap_or_default() + "\n").as_bytes(),
    )?)
}

/// Writes `modules.json`, `1_Pooling/config.json` and the `Dense` folders.
pub fn write_st_modules(
    out: &Path,
    pooling: Pooling,
    hidden: usize,
    dense: &[DenseModule],
) -> Result<(), TrainError> {
    let mut modules = vec![
        json!({"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}),
        json!({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}),
    ];
    let pool_dir = out.join("1_Pooling");
    std::fs::create_dir_all(&pool_dir).map_err(|e| TrainError::io(&pool_dir, e))?;
    let mode = |m: Pooling| match pooling {
        Pooling::Pooler => m == Pooling::Cls,
        p => p == m,
    };
    write_json(
        &pool_dir.join("config.json"),
        &json!({
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": mode(Pooling::Cls),
            "pooling_mode_mean_tokens": mode(Pooling::Mean),
            "pooling_mode_max_tokens": mode(Pooling::Max),
            "pooling_mode_mean_sqrt_len_tokens": false,
        }),
    )?;
    for (i, d) in dense.iter().enumerate() {
        let idx = i + 2;
        let name = format!("{idx}_Dense");
        let dir = out.join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
        // zoo's weights are `[out, in]`, as torch's nn.Linear keeps them.
        let (out_f, in_f) = (d.weight.shape[0], d.weight.shape[1]);
        write_json(
            &dir.join("config.json"),
            &json!({
                "in_features": in_f,
                "out_features": out_f,
                "bias": true,
                "activation_function": d.activation,
            }),
        )?;
        let renamed = |t: &NamedTensor, n: &str| NamedTensor {
            name: n.to_string(),
            ..t.clone()
        };
        let tensors = [
            renamed(&d.bias, "linear.bias"),
            renamed(&d.weight, "linear.weight"),
        ];
        let views: Vec<_> = tensors.iter().map(NamedTensor::view).collect();
        zoo_checkpoint::write_safetensors(&dir.join("model.safetensors"), &views, None)?;
        modules.push(json!({"idx": idx, "name": idx.to_string(), "path": name, "type": "sentence_transformers.models.Dense"}));
    }
    write_json(&out.join("modules.json"), &Value::Array(modules))
}

/// Removes the sentence-transformers modules a previous run wrote into `out` (the folders
/// its `modules.json` lists, then the list), so a re-run in another layout leaves none behind.
pub fn remove_st_modules(out: &Path) -> Result<(), TrainError> {
    let list = out.join("modules.json");
    let Ok(text) = std::fs::read_to_string(&list) else {
        return Ok(());
    };
    let modules: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    for m in modules.as_array().into_iter().flatten() {
        let sub = m.get("path").and_then(Value::as_str).unwrap_or("");
        if sub.is_empty() || sub.contains("..") || sub.contains('/') {
            continue;
        }
        let dir = out.join(sub);
        if dir.is_dir() {
            std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
        }
    }
    std::fs::remove_file(&list).map_err(|e| TrainError::io(&list, e))
}

/// The `Dense` modules after pooling in a sentence-transformers folder, in order: their
/// weights files and activation names.
fn st_dense(dir: &Path) -> Result<Vec<(std::path::PathBuf, String)>, TrainError> {
    let path = dir.join("modules.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Vec::new());
    };
    let err = |e: &dyn std::fmt::Display| TrainError::Model {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let v: Value = serde_json::from_str(&text).map_err(|e| err(&e))?;
    let mut out = Vec::new();
    for m in v.as_array().into_iter().flatten() {
        let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
        if !ty.ends_with(".Dense") {
            continue;
        }
        let sub = m.get("path").and_then(Value::as_str).unwrap_or("");
        if sub.contains("..") || sub.starts_with('/') {
            return Err(err(&format!("module path `{sub}` leaves the folder")));
        }
        let cfg_path = dir.join(sub).join("config.json");
        let cfg: Value = serde_json::from_str(
            &std::fs::read_to_string(&cfg_path).map_err(|e| TrainError::io(&cfg_path, e))?,
        )
        .map_err(|e| err(&e))?;
        let act = cfg
            .get("activation_function")
            .and_then(Value::as_str)
            .unwrap_or("torch.nn.modules.activation.Tanh")
            .to_string();
        out.push((dir.join(sub).join("model.safetensors"), act));
    }
    Ok(out)
}

/// Reads a text classifier in any of the layouts above into zoo's names: the encoder's own
/// names, the head as `classifier.*` (linear) or `classifier.0.*` / `classifier.3.*` (MLP).
/// `head` is what config.json says (`zoo.head`), if anything.
pub fn import_text(
    dir: &Path,
    family: &str,
    weights: zoo_engine::Weights,
    pooling: Pooling,
) -> Result<zoo_engine::Weights, TrainError> {
    let mut w = weights;
    // transformers' RoBERTa and DistilBERT heads, told by their first layer's name.
    let renames = head_renames(family);
    if let Some((_, marker)) = renames.first()
        && w.has(&format!("{marker}weight"))
    {
        w = w.renamed(|n| rename_first(n, renames.iter().map(|&(from, to)| (to, from))));
    }
    if w.has("classifier.weight") || w.has("classifier.0.weight") {
        return Ok(w);
    }
    // sentence-transformers: Dense modules after pooling (BERT's pooler first, when the
    // pooling is `pooler` and the folder says Tanh).
    let mut dense = st_dense(dir)?;
    if pooling == Pooling::Pooler && dense.first().is_some_and(|(_, a)| a.ends_with(".Tanh")) {
        dense.remove(0);
    }
    let names: &[&str] = match dense.len() {
        0 => return Ok(w),
        1 => &["classifier"],
        2 => &["classifier.0", "classifier.3"],
        n => {
            return Err(TrainError::Model {
                path: dir.join("modules.json").display().to_string(),
                reason: format!(
                    "{n} Dense modules after pooling; zoo reads a head of one or two (linear, mlp:H)"
                ),
            });
        }
    };
    for ((file, _), name) in dense.iter().zip(names) {
        let mapped = zoo_checkpoint::Mapped::open(file)?;
        let loaded = zoo_checkpoint::load(&mapped)?;
        w = w.with_tensors_from(&loaded, |n| {
            n.strip_prefix("linear.").map(|r| format!("{name}.{r}"))
        });
    }
    Ok(w)
}

/// The head and pooling a transformers classifier without zoo's notes implies:
/// DistilBERT's `pre_classifier` is an MLP head on the first token; RoBERTa's
/// `classifier.out_proj` a linear head on the pooler; `classifier` a linear head.
pub fn implied_head(
    names: &[&str],
    hidden_of: impl Fn(&str) -> Option<usize>,
) -> Option<(HeadSpec, Pooling)> {
    if names.contains(&"pre_classifier.weight") {
        let hidden = hidden_of("pre_classifier.weight")?;
        return Some((
            HeadSpec::Mlp {
                hidden,
                dropout: 0.2,
            },
            Pooling::Cls,
        ));
    }
    if names.contains(&"classifier.out_proj.weight") {
        return Some((HeadSpec::Linear, Pooling::Pooler));
    }
    names
        .iter()
        .any(|n| *n == "classifier.weight" || n.ends_with(".classifier.weight"))
        .then_some((HeadSpec::Linear, Pooling::Pooler))
}
