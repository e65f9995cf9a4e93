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
        for b in card.base_model() {
            tags.push(format!("base_model:{b}"));
            tags.push(format!("base_model:finetune:{b}"));
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
        let Ok(local) = crate::blobs::local_copy(blobs, &f.sha256) else {
            continue;
        };
        let Ok(mapped) = zoo_checkpoint::Mapped::open(local.path()) else {
            continue;
        };
        let Ok(loaded) = zoo_checkpoint::load_named(&mapped, &f.path) else {
            continue;
        };
        counted = true;
        for t in &loaded.tensors {
            if !zoo_checkpoint::is_buffer(&t.name) {
                *by_dtype.entry(t.dtype.as_str().to_string()).or_default() +=
                    t.shape.iter().product::<usize>() as i64;
            }
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
