//! Labelled data sets: image folders (`PATH/<class>/*` or `PATH/train|val|test/<class>/*`) and
//! text as CSV or JSONL with `text` and `label` columns. Class names are sorted — as numbers
//! when every name is an integer (so class `10` comes after `9` and a label's index is the
//! integer a `datasets.ClassLabel` user has), as strings otherwise (as torchvision's
//! `ImageFolder`) — and kept in that order in the model's config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;

use crate::TrainError;

/// One input.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Image(PathBuf),
    Text(String),
}

/// A labelled example; `origin` names where it came from (a file, or `file:line`).
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub input: Input,
    pub label: usize,
    pub origin: String,
}

/// Examples with their class names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    pub classes: Vec<String>,
    pub examples: Vec<Example>,
}

/// Train, validation and (when the data has one) test splits.
#[derive(Debug, Clone)]
pub struct Splits {
    pub train: Dataset,
    pub val: Dataset,
    pub test: Option<Dataset>,
    /// Whether the validation split was carved out of the training data.
    pub val_from_train: bool,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.examples.len()
    }
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
    pub fn is_text(&self) -> bool {
        matches!(
            self.examples.first().map(|e| &e.input),
            Some(Input::Text(_))
        )
    }

    /// Examples per class.
    pub fn counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes.len()];
        for e in &self.examples {
            c[e.label] += 1;
        }
        c
    }

    /// At most `n` examples of each class, chosen with `seed` (the rest keep their order).
    pub fn per_class(&self, n: usize, seed: u64) -> Dataset {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let mut taken = vec![0; self.classes.len()];
        let mut keep: Vec<usize> = idx
            .into_iter()
            .filter(|&i| {
                let l = self.examples[i].label;
                taken[l] += 1;
                taken[l] <= n
            })
            .collect();
        keep.sort_unstable();
        self.select(&keep)
    }

    /// At most `n` examples, stratified, chosen with `seed`.
    pub fn at_most(&self, n: usize, seed: u64) -> Dataset {
        if self.len() <= n {
            return self.clone();
        }
        let (_, rest) = stratified_split(self, n, seed);
        rest
    }

    fn select(&self, idx: &[usize]) -> Dataset {
        Dataset {
            classes: self.classes.clone(),
            examples: idx.iter().map(|&i| self.examples[i].clone()).collect(),
        }
    }

    /// A short description: "1000 images, 10 classes".
    pub fn describe(&self) -> String {
        format!(
            "{} {}, {} classes",
            self.len(),
            if self.is_text() { "texts" } else { "images" },
            self.classes.len()
        )
    }

    /// Relabels to `classes` (a model's label names); a label the model does not know is an
    /// error naming the example.
    pub fn relabel(&self, classes: &[String]) -> Result<Dataset, TrainError> {
        let mut examples = Vec::with_capacity(self.len());
        for e in &self.examples {
            let name = &self.classes[e.label];
            let label = classes.iter().position(|c| c == name).ok_or_else(|| {
                TrainError::Data(format!(
                    "{}: label `{name}` is not one of the model's classes ({})",
                    e.origin,
                    classes.join(", ")
                ))
            })?;
            examples.push(Example { label, ..e.clone() });
        }
        Ok(Dataset {
            classes: classes.to_vec(),
            examples,
        })
    }
}

/// Splits off `n_second` examples, stratified by class, with a seed. Returns (first, second).
pub fn stratified_split(d: &Dataset, n_second: usize, seed: u64) -> (Dataset, Dataset) {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); d.classes.len()];
    for (i, e) in d.examples.iter().enumerate() {
        by_class[e.label].push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let total = d.len().max(1);
    let mut second = Vec::new();
    for idx in &mut by_class {
        idx.shuffle(&mut rng);
        let k = ((idx.len() * n_second) as f64 / total as f64).round() as usize;
        second.extend(idx.iter().take(k.min(idx.len())).copied());
    }
    second.sort_unstable();
    let is_second: std::collections::HashSet<usize> = second.iter().copied().collect();
    let first: Vec<usize> = (0..d.len()).filter(|i| !is_second.contains(i)).collect();
    (d.select(&first), d.select(&second))
}

const IMAGE_EXTS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp"];

/// Sorts class names: numerically when all are integers, as strings otherwise.
pub fn sort_classes(names: &mut [String]) {
    let numbers: Option<Vec<i128>> = names.iter().map(|n| n.trim().parse().ok()).collect();
    match numbers {
        Some(_) => names.sort_by_key(|n| n.trim().parse::<i128>().unwrap_or_default()),
        None => names.sort(),
    }
}

/// `dir/<class>/*` as a data set with sorted class names.
pub fn image_folder(dir: &Path) -> Result<Dataset, TrainError> {
    let read = |p: &Path| {
        std::fs::read_dir(p).map_err(|e| TrainError::Data(format!("{}: {e}", p.display())))
    };
    let mut classes: Vec<(String, PathBuf)> = Vec::new();
    for entry in read(dir)? {
        let entry = entry.map_err(|e| TrainError::Data(format!("{}: {e}", dir.display())))?;
        if entry.path().is_dir() {
            classes.push((
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            ));
        }
    }
    let mut names: Vec<String> = classes.iter().map(|(n, _)| n.clone()).collect();
    sort_classes(&mut names);
    classes.sort_by_key(|(n, _)| names.iter().position(|m| m == n));
    if classes.is_empty() {
        return Err(TrainError::Data(format!(
            "{}: no class folders (expected {0}/<class>/<image>)",
            dir.display()
        )));
    }
    let mut examples = Vec::new();
    for (label, (_, path)) in classes.iter().enumerate() {
        let mut files: Vec<PathBuf> = read(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        files.sort();
        examples.extend(files.into_iter().map(|p| Example {
            origin: p.display().to_string(),
            input: Input::Image(p),
            label,
        }));
    }
    Ok(Dataset {
        classes: classes.into_iter().map(|(n, _)| n).collect(),
        examples,
    })
}

/// A CSV or JSONL file with `text` and `label` columns.
pub fn text_file(path: &Path) -> Result<Dataset, TrainError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let name = path.display().to_string();
    match ext.as_str() {
        "csv" | "tsv" => {
            let mut rd = csv::ReaderBuilder::new()
                .delimiter(if ext == "tsv" { b'\t' } else { b',' })
                .from_path(path)
                .map_err(|e| TrainError::Data(format!("{name}: {e}")))?;
            let headers = rd
                .headers()
                .map_err(|e| TrainError::Data(format!("{name}: header: {e}")))?
                .clone();
            let col = |c: &str| {
                headers.iter().position(|h| h == c).ok_or_else(|| {
                    TrainError::Data(format!(
                        "{name}: no `{c}` column (columns: {})",
                        headers.iter().collect::<Vec<_>>().join(", ")
                    ))
                })
            };
            let (ti, li) = (col("text")?, col("label")?);
            for rec in rd.records() {
                let rec = rec.map_err(|e| TrainError::Data(format!("{name}: {e}")))?;
                let line = rec.position().map(|p| p.line()).unwrap_or(0);
                let origin = format!("{name}:{line}");
                let text = rec.get(ti).unwrap_or("").to_string();
                let label = rec.get(li).unwrap_or("").trim().to_string();
                if label.is_empty() {
                    return Err(TrainError::Data(format!("{origin}: empty label")));
                }
                rows.push((text, label, origin));
            }
        }
        "jsonl" | "json" => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| TrainError::Data(format!("{name}: {e}")))?;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let origin = format!("{name}:{}", i + 1);
                let v: serde_json::Value = serde_json::from_str(line)
                    .map_err(|e| TrainError::Data(format!("{origin}: {e}")))?;
                let text = v
                    .get("text")
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| TrainError::Data(format!("{origin}: no string `text`")))?;
                let label = match v.get("label") {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    _ => {
                        return Err(TrainError::Data(format!(
                            "{origin}: no `label` (a string or a number)"
                        )));
                    }
                };
                rows.push((text.to_string(), label, origin));
            }
        }
        _ => {
            return Err(TrainError::Data(format!(
                "{name}: expected an image folder, a .csv or a .jsonl file"
            )));
        }
    }
    if rows.is_empty() {
        return Err(TrainError::Data(format!("{name}: no examples")));
    }
    let mut classes: Vec<String> = rows
        .iter()
        .map(|(_, l, _)| l.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    sort_classes(&mut classes);
    let index: BTreeMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let examples = rows
        .iter()
        .map(|(t, l, o)| Example {
            input: Input::Text(t.clone()),
            label: index[l.as_str()],
            origin: o.clone(),
        })
        .collect();
    Ok(Dataset { classes, examples })
}

/// Any supported data path, as one data set (no splitting).
pub fn load(path: &Path) -> Result<Dataset, TrainError> {
    if path.is_dir() {
        image_folder(path)
    } else if path.exists() {
        text_file(path)
    } else {
        Err(TrainError::Data(format!(
            "{}: no such file or folder",
            path.display()
        )))
    }
}

/// Loads train/val/test splits. A folder with `train/` (and optionally `val/`, `test/`) uses
/// them; otherwise, and when there is no validation split, `val_fraction` of the training data
/// is split off, stratified, with `seed`.
pub fn load_splits(path: &Path, val_fraction: f64, seed: u64) -> Result<Splits, TrainError> {
    let sub = |n: &str| Some(path.join(n)).filter(|p| p.is_dir());
    let (train, val, test) = match sub("train") {
        Some(t) => (
            image_folder(&t)?,
            sub("val")
                .or_else(|| sub("valid"))
                .or_else(|| sub("validation"))
                .map(|p| image_folder(&p))
                .transpose()?,
            sub("test").map(|p| image_folder(&p)).transpose()?,
        ),
        None => (load(path)?, None, None),
    };
    let relabel = |d: Option<Dataset>| -> Result<Option<Dataset>, TrainError> {
        d.map(|d| d.relabel(&train.classes)).transpose()
    };
    let val = relabel(val)?;
    let test = relabel(test)?;
    if train.classes.len() < 2 {
        return Err(TrainError::Data(format!(
            "{}: fine-tuning needs at least 2 classes, found {}",
            path.display(),
            train.classes.len()
        )));
    }
    Ok(match val {
        Some(val) => Splits {
            train,
            val,
            test,
            val_from_train: false,
        },
        None => {
            let n = ((train.len() as f64) * val_fraction).round().max(1.0) as usize;
            let (train, val) = stratified_split(&train, n, seed);
            Splits {
                train,
                val,
                test,
                val_from_train: true,
            }
        }
    })
}

#[cfg(test)]
mod class_order_tests {
    use super::sort_classes;

    /// Issue 13: numeric labels in numeric order, others as strings.
    #[test]
    fn numeric_labels_sort_as_numbers_issue_13() {
        let mut n: Vec<String> = ["10", "2", "0", "1", "-1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        sort_classes(&mut n);
        assert_eq!(n, ["-1", "0", "1", "2", "10"]);
        let mut s: Vec<String> = ["b", "10", "a", "2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        sort_classes(&mut s);
        assert_eq!(s, ["10", "2", "a", "b"]);
    }
}
