//! The frozen-feature cache: a frozen backbone's pooled features, computed once and stored on
//! disk as safetensors keyed by the model's weights (sha256), its preprocessing and the data's
//! content, then reused — so a head trains in seconds and a second run starts at once.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::TrainError;
use crate::data::{Example, Input};
use crate::net::{Kind, Source};

/// A folder of cached feature files.
#[derive(Debug, Clone)]
pub struct FeatureCache {
    pub dir: PathBuf,
}

impl FeatureCache {
    /// `$ZOO_FEATURE_CACHE`, else `$XDG_CACHE_HOME/checkpoint-zoo/features`, else
    /// `~/.cache/checkpoint-zoo/features`.
    pub fn default_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("ZOO_FEATURE_CACHE") {
            return PathBuf::from(d);
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".cache"));
        base.join("checkpoint-zoo/features")
    }

    /// The key of `examples` under `source`'s backbone and preprocessing.
    pub fn key(source: &Source, examples: &[Example]) -> Result<String, TrainError> {
        Self::key_tagged(source, examples, "")
    }

    /// [`key`](FeatureCache::key) for another kind of cached value (`tag`, such as
    /// `prefix:8` for the activations after the first 8 frozen blocks).
    pub fn key_tagged(
        source: &Source,
        examples: &[Example],
        tag: &str,
    ) -> Result<String, TrainError> {
        let mut h = Sha256::new();
        h.update(b"zoo-features-v1\0");
        if !tag.is_empty() {
            // The engine's kernels decide the bits of these values: a change of engine
            // invalidates them.
            h.update(format!("{tag}|zoo-kernels-{}\0", env!("CARGO_PKG_VERSION")).as_bytes());
        }
        h.update(source.weights_sha256.as_bytes());
        match &source.kind {
            Kind::Image {
                arch, transform, ..
            } => {
                h.update(format!("{arch}|{transform:?}").as_bytes());
            }
            Kind::Text {
                pooling, tokenizer, ..
            } => {
                h.update(format!("{pooling:?}|{}", tokenizer.max_length).as_bytes());
            }
        }
        for e in examples {
            match &e.input {
                Input::Image(p) => {
                    let bytes = std::fs::read(p).map_err(|err| TrainError::io(p, err))?;
                    h.update(Sha256::digest(&bytes));
                }
                Input::Text(t) => {
                    h.update((t.len() as u64).to_le_bytes());
                    h.update(t.as_bytes());
                }
            }
        }
        Ok(hex::encode(h.finalize()))
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.safetensors"))
    }

    /// Cached features `[n, dim]`, row-major, if present and readable.
    pub fn get(&self, key: &str) -> Option<(Vec<f32>, usize)> {
        let mapped = zoo_checkpoint::Mapped::open(self.path(key)).ok()?;
        let loaded = zoo_checkpoint::load(&mapped).ok()?;
        let t = loaded.tensors.iter().find(|t| t.name == "features")?;
        if t.shape.len() != 2 || t.dtype != zoo_formats::Dtype::F32 {
            return None;
        }
        Some((zoo_formats::dtype::to_f32(&t.data, t.dtype)?, t.shape[1]))
    }

    /// Cached rows of any shape (`[n, ...]`), if present and readable.
    pub fn get_rows(&self, key: &str) -> Option<(Vec<f32>, Vec<usize>)> {
        let mapped = zoo_checkpoint::Mapped::open(self.path(key)).ok()?;
        let loaded = zoo_checkpoint::load(&mapped).ok()?;
        let t = loaded.tensors.iter().find(|t| t.name == "features")?;
        if t.dtype != zoo_formats::Dtype::F32 {
            return None;
        }
        Some((
            zoo_formats::dtype::to_f32(&t.data, t.dtype)?,
            t.shape.clone(),
        ))
    }

    /// Stores rows of any shape atomically.
    pub fn put_rows(&self, key: &str, values: &[f32], shape: &[usize]) -> Result<(), TrainError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| TrainError::io(&self.dir, e))?;
        let data: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        let t = zoo_formats::safetensors::TensorData {
            name: "features".into(),
            dtype: zoo_formats::Dtype::F32,
            shape: shape.to_vec(),
            data: std::borrow::Cow::Owned(data),
        };
        zoo_checkpoint::write_safetensors(&self.path(key), &[t], None)?;
        Ok(())
    }

    /// Stores features atomically (a killed run leaves no half file).
    pub fn put(&self, key: &str, features: &[f32], dim: usize) -> Result<(), TrainError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| TrainError::io(&self.dir, e))?;
        let data: Vec<u8> = features.iter().flat_map(|x| x.to_le_bytes()).collect();
        let t = zoo_formats::safetensors::TensorData {
            name: "features".into(),
            dtype: zoo_formats::Dtype::F32,
            shape: vec![features.len() / dim.max(1), dim],
            data: std::borrow::Cow::Owned(data),
        };
        zoo_checkpoint::write_safetensors(&self.path(key), &[t], None)?;
        Ok(())
    }
}

/// Whether a path is inside the cache folder (for `zoo cache` listings).
pub fn is_feature_file(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "safetensors")
}
