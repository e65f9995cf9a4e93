//! What people choose a model by, computed from a commit: the card's task, data sets,
//! licence, library, tags, results and lineage, the config's architecture, and the parameter
//! count from the stored weights (never from the card).

use std::collections::BTreeMap;

use zoo_card::{Config, ModelCard};

use crate::blobs::BlobStore;
use crate::meta::{FileEntry, IndexRow};

/// Weight files, by the name transformers, timm and torchvision use.
fn is_weights(path: &str) -> Option<bool> {
    let lower = path.to_ascii_lowercase();
    if lower.ends_with(".safetensors") {
        Some(true)
    } else if lower.ends_with(".bin") || lower.ends_with(".pth") || lower.ends_with(".pt") {
        Some(false)
    } else {
        None
    }
}

/// Parameters per dtype of one weights file (buffers left out), or `None` when it cannot be
/// read as weights. Blobs never change, so each is counted once per process: with blobs in
/// an object store, counting means fetching the whole file, and every commit to a repository
/// recomputes its index.
fn weight_counts(blobs: &dyn BlobStore, f: &FileEntry) -> Option<Vec<(String, i64)>> {
    type Counts = Option<Vec<(String, i64)>>;
    static COUNTED: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<(String, String), Counts>>,
    > = std::sync::OnceLock::new();
    let cache = COUNTED.get_or_init(Default::default);
    // By path too: the format is told by the name (a `.bin` may be a pickle or safetensors).
    let key = (
        f.sha256.clone(),
        f.path.rsplit('/').next().unwrap_or("").to_string(),
    );
    if let Some(hit) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return hit.clone();
    }
    // A store that cannot be read now may be readable later: not remembered.
    let local = crate::blobs::local_copy(blobs, &f.sha256).ok()?;
    let counts = (|| {
        let mapped = zoo_checkpoint::Mapped::open(local.path()).ok()?;
        let loaded = zoo_checkpoint::load_named(&mapped, &f.path).ok()?;
        let mut by: BTreeMap<String, i64> = BTreeMap::new();
        for t in &loaded.tensors {
            if !zoo_checkpoint::is_buffer(&t.name) {
                *by.entry(t.dtype.as_str().to_string()).or_default() +=
                    t.shape.iter().product::<usize>() as i64;
            }
        }
        Some(by.into_iter().collect::<Vec<_>>())
    })();
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= 16_384 {
        cache.clear();
    }
    cache.insert(key, counts.clone());
    counts
}

/// Builds the index row for a commit's files.
pub fn compute(files: &[FileEntry], blobs: &dyn BlobStore) -> IndexRow {
    let mut row = IndexRow::default();
    let read_small = |f: &FileEntry| -> Option<String> {
        if f.size > 4 << 20 {
            return None;
        }
        let mut r = blobs.read_range(&f.sha256, 0, f.size).ok()?;
        let mut s = String::new();
        std::io::Read::read_to_string(&mut r, &mut s).ok()?;
        Some(s)
    };
    let mut tags: Vec<String> = Vec::new();
    if let Some(card) = files
        .iter()
        .find(|f| f.path == "README.md")
        .and_then(read_small)
        .and_then(|t| ModelCard::parse(&t).ok())
    {
        row.card_json = Some(card.to_json().to_string());
        row.pipeline_tag = card.pipeline_tag();
        row.library = card.library_name();
        row.license = card.license();
        tags.extend(card.tags());
        for d in card.datasets() {
            tags.push(format!("dataset:{d}"));
        }
        // The relation to each base, as the Hugging Face Hub tags it: the card's
        // `base_model_relation`, else `adapter` for a peft adapter (adapter_config.json),
        // else `finetune`.
        let relation = card
            .base_model_relation()
            .filter(|r| !r.is_empty() && !r.contains(':'))
            .unwrap_or_else(|| {
                if files.iter().any(|f| f.path == "adapter_config.json") {
                    "adapter".into()
                } else {
                    "finetune".into()
                }
            });
        for b in card.base_model() {
            tags.push(format!("base_model:{b}"));
            tags.push(format!("base_model:{relation}:{b}"));
        }
        row.base_models = card.base_model();
        for r in card.results().unwrap_or_default() {
            row.metrics.push((r.key().to_ascii_lowercase(), r.value));
        }
    }
    if let Some(config) = files
        .iter()
        .find(|f| f.path == "config.json")
        .and_then(read_small)
        .and_then(|t| Config::parse(&t).ok())
    {
        row.architecture = config.architecture().map(str::to_string);
    }
    // Parameters from the weights: safetensors files if any, else PyTorch files.
    let weights: Vec<&FileEntry> = {
        let st: Vec<&FileEntry> = files
            .iter()
            .filter(|f| is_weights(&f.path) == Some(true))
            .collect();
        if st.is_empty() {
            files
                .iter()
                .filter(|f| is_weights(&f.path) == Some(false))
                .collect()
        } else {
            st
        }
    };
    let mut by_dtype: BTreeMap<String, i64> = BTreeMap::new();
    let mut counted = false;
    for f in weights {
        let Some(counts) = weight_counts(blobs, f) else {
            continue;
        };
        counted = true;
        for (dtype, n) in counts {
            *by_dtype.entry(dtype).or_default() += n;
        }
    }
    if counted {
        row.params = Some(by_dtype.values().sum());
        row.params_by_dtype = by_dtype.into_iter().collect();
    }
    if let Some(t) = &row.pipeline_tag {
        tags.push(t.clone());
    }
    if let Some(l) = &row.library {
        tags.push(l.clone());
    }
    if let Some(l) = &row.license {
        tags.push(format!("license:{l}"));
    }
    if files.iter().any(|f| is_weights(&f.path) == Some(true)) {
        tags.push("safetensors".into());
    }
    if files.iter().any(|f| is_weights(&f.path) == Some(false)) {
        tags.push("pytorch".into());
    }
    let mut seen = std::collections::HashSet::new();
    row.tags = tags
        .into_iter()
        .filter(|t| seen.insert(t.clone()))
        .collect();
    row
}
