//! The frozen-feature cache: a frozen backbone's pooled features, computed once and stored on
//! disk as safetensors keyed by the model's weights (sha256), its preprocessing and the data's
//! content, then reused — so a head trains in seconds and a second run starts at once.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::TrainError;
use crate::data::{Example, Input};
use crate::net::{Kind, Source};

/// What every key starts with: the engine's version decides the bits of cached features, so
/// a new engine (a kernel fix) never serves the old one's values. Issue 16: the key used to
/// carry no version for plain features and hashed a `Debug` string of the preprocessing.
pub fn key_version() -> String {
    format!("zoo-features-v2|zoo-{}\0", env!("CARGO_PKG_VERSION"))
}

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
        h.update(key_version().as_bytes());
        if !tag.is_empty() {
            h.update(format!("{tag}\0").as_bytes());
        }
        h.update(source.weights_sha256.as_bytes());
        match &source.kind {
            Kind::Image {
                arch, transform, ..
            } => {
                h.update(format!("{arch}|{}", transform.cache_key()).as_bytes());
            }
            Kind::Text {
                pooling, tokenizer, ..
            } => {
                h.update(format!("{}|{}", pooling.name(), tokenizer.max_length).as_bytes());
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
        let rows = self.get_mapped(key)?;
        if rows.shape.len() != 2 {
            return None;
        }
        Some((rows.values(0..rows.len()), rows.shape[1]))
    }

    /// Cached rows of any shape (`[n, ...]`, f32), memory-mapped, if present and valid.
    pub fn get_mapped(&self, key: &str) -> Option<MappedRows> {
        let map = zoo_checkpoint::Mapped::open(self.path(key)).ok()?;
        let header = zoo_formats::safetensors::validate(map.bytes()).ok()?;
        let t = header.tensors.iter().find(|t| t.name == "features")?;
        if t.dtype != zoo_formats::Dtype::F32 || t.shape.is_empty() {
            return None;
        }
        Some(MappedRows {
            start: header.data_start + t.data_offsets.0,
            shape: t.shape.clone(),
            map,
        })
    }

    /// Starts writing rows of `shape` (`[n, ...]`) under `key`: they stream to disk as they
    /// come and appear in the cache complete, on [`RowWriter::finish`], or not at all.
    pub fn writer(&self, key: &str, shape: &[usize]) -> Result<RowWriter, TrainError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| TrainError::io(&self.dir, e))?;
        let path = self.path(key);
        let bytes = shape.iter().product::<usize>() * 4;
        let mut header = serde_json::json!({
            "features": {"dtype": "F32", "shape": shape, "data_offsets": [0, bytes]}
        })
        .to_string()
        .into_bytes();
        // Padded with spaces to a multiple of 8, as safetensors' own writer does.
        header.resize(header.len().next_multiple_of(8), b' ');
        let mut file = zoo_checkpoint::AtomicFile::create(&path)?;
        let io = |e| TrainError::io(&path, e);
        file.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(io)?;
        file.write_all(&header).map_err(io)?;
        Ok(RowWriter {
            file,
            path,
            left: bytes,
        })
    }

    /// Stores features atomically (a killed run leaves no half file).
    pub fn put(&self, key: &str, features: &[f32], dim: usize) -> Result<(), TrainError> {
        let mut w = self.writer(key, &[features.len() / dim.max(1), dim])?;
        w.push(features)?;
        w.finish()
    }
}

/// Rows of a cache file, read through its memory map.
#[derive(Debug)]
pub struct MappedRows {
    map: zoo_checkpoint::Mapped,
    /// Where the values start in the file.
    start: usize,
    /// `[n, ...]`.
    pub shape: Vec<usize>,
}

impl MappedRows {
    /// Rows (`n`).
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values of one row.
    pub fn row_len(&self) -> usize {
        self.shape[1..].iter().product()
    }

    /// Appends row `i`'s values to `out`.
    pub fn extend_row(&self, i: usize, out: &mut Vec<f32>) {
        self.extend_row_prefix(i, self.row_len(), out);
    }

    /// Appends the first `take` values of row `i` to `out`.
    pub fn extend_row_prefix(&self, i: usize, take: usize, out: &mut Vec<f32>) {
        assert!(take <= self.row_len(), "extend_row_prefix: {take} values");
        let at = self.start + i * self.row_len() * 4;
        out.extend(
            self.map.bytes()[at..at + take * 4]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    }

    /// The values of rows `range`.
    pub fn values(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        let mut out = Vec::with_capacity(range.len() * self.row_len());
        for i in range {
            self.extend_row(i, &mut out);
        }
        out
    }
}

/// Rows streaming into a cache file (see [`FeatureCache::writer`]).
#[derive(Debug)]
pub struct RowWriter {
    file: zoo_checkpoint::AtomicFile,
    path: PathBuf,
    /// Bytes still expected.
    left: usize,
}

impl RowWriter {
    /// Appends values (whole rows, in order).
    pub fn push(&mut self, values: &[f32]) -> Result<(), TrainError> {
        let bytes = values.len() * 4;
        if bytes > self.left {
            return Err(TrainError::io(
                &self.path,
                std::io::Error::other("more rows than the header announced"),
            ));
        }
        let mut buf = Vec::with_capacity(bytes);
        for v in values {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        self.file
            .write_all(&buf)
            .map_err(|e| TrainError::io(&self.path, e))?;
        self.left -= bytes;
        Ok(())
    }

    /// Puts the file in place once every announced row has come.
    pub fn finish(self) -> Result<(), TrainError> {
        if self.left != 0 {
            return Err(TrainError::io(
                &self.path,
                std::io::Error::other(format!("{} bytes of rows missing", self.left)),
            ));
        }
        Ok(self.file.commit()?)
    }
}

/// Whether a path is inside the cache folder (for `zoo cache` listings).
pub fn is_feature_file(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "safetensors")
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_name_the_engine_version_issue_16() {
        let v = super::key_version();
        assert!(v.contains(env!("CARGO_PKG_VERSION")), "{v}");
        assert!(
            !v.contains("v1"),
            "old keys (made from Debug strings) are not reused"
        );
    }
}
