//! `zoo embed`: pooled backbone features of images or texts, through the same model reader
//! ([`Source`]) and input preparation as fine-tuning and prediction, so an embedding is the
//! feature a head trained by zoo sees.

use std::path::{Path, PathBuf};

use burn::module::Module;
use zoo_engine::classifier::{HeadSpec, Pooling};

use crate::data::{Example, Input};
use crate::net::{Kind, Prep, Source, prepare};
use crate::{Progress, TrainError};

/// How to embed.
#[derive(Debug, Clone)]
pub struct EmbedOptions {
    pub batch_size: usize,
    /// A text longer than the model's limit is an error instead of being cut.
    pub no_truncate: bool,
    /// Text pooling; default: what the folder declares (zoo's notes, a transformers
    /// classifier's head, `1_Pooling`), else mean pooling, as sentence-transformers does
    /// for a plain encoder.
    pub pooling: Option<Pooling>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            batch_size: 32,
            no_truncate: false,
            pooling: None,
        }
    }
}

/// `n × dim` features, row-major, with a name per row.
#[derive(Debug, Clone)]
pub struct Embeddings {
    pub rows: Vec<f32>,
    pub n: usize,
    pub dim: usize,
    /// The image's path under the data folder, or the text's index.
    pub names: Vec<String>,
    /// Texts cut to the model's limit.
    pub truncated: usize,
    /// The model's text limit in tokens (0 for images).
    pub max_length: usize,
    pub pooling: Option<Pooling>,
}

/// Inputs: every image under a folder (sorted), or the lines of a text file, or the `text`
/// column of a CSV.
pub fn read_inputs(data: &Path) -> Result<Vec<Input>, TrainError> {
    if data.is_dir() {
        let mut images: Vec<PathBuf> = walkdir::WalkDir::new(data)
            .follow_links(true)
            .into_iter()
            .filter_map(Result::ok)
            .map(|e| e.into_path())
            .filter(|p| {
                p.is_file()
                    && p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                        matches!(
                            x.to_ascii_lowercase().as_str(),
                            "jpg" | "jpeg" | "png" | "webp"
                        )
                    })
            })
            .collect();
        images.sort();
        if images.is_empty() {
            return Err(TrainError::Data(format!(
                "{}: no images (jpg, png, webp)",
                data.display()
            )));
        }
        return Ok(images.into_iter().map(Input::Image).collect());
    }
    let is_csv = data
        .extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| x.eq_ignore_ascii_case("csv"));
    if is_csv {
        let mut rd = csv::Reader::from_path(data)
            .map_err(|e| TrainError::Data(format!("{}: {e}", data.display())))?;
        let headers = rd
            .headers()
            .map_err(|e| TrainError::Data(format!("{}: header: {e}", data.display())))?
            .clone();
        let col = headers
            .iter()
            .position(|h| h == "text")
            .ok_or_else(|| TrainError::Data(format!("{}: no `text` column", data.display())))?;
        let mut texts = Vec::new();
        for (i, r) in rd.records().enumerate() {
            let r = r.map_err(|e| {
                TrainError::Data(format!("{}: line {}: {e}", data.display(), i + 2))
            })?;
            texts.push(Input::Text(r.get(col).unwrap_or("").to_string()));
        }
        return Ok(texts);
    }
    let text = std::fs::read_to_string(data).map_err(|e| TrainError::io(data, e))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Input::Text(l.to_string()))
        .collect())
}

/// Embeds `inputs` with the backbone of the model folder `dir`.
pub fn embed(
    dir: &Path,
    data: &Path,
    inputs: Vec<Input>,
    opts: &EmbedOptions,
    progress: &dyn Progress,
) -> Result<Embeddings, TrainError> {
    let source = Source::open(dir, None)?;
    let (pooling, max_length) = match &source.kind {
        Kind::Text {
            pooling,
            pooling_declared,
            tokenizer,
            ..
        } => {
            let p = opts
                .pooling
                .or(pooling_declared.then_some(*pooling))
                .unwrap_or(Pooling::Mean);
            (Some(p), tokenizer.max_length)
        }
        Kind::Image { .. } => {
            if opts.pooling.is_some() {
                return Err(TrainError::Options(format!(
                    "{}: an image model pools as its architecture does; --pooling is for text models",
                    dir.display()
                )));
            }
            (None, 0)
        }
    };
    let examples: Vec<Example> = inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| {
            let origin = match &input {
                Input::Image(p) => p.strip_prefix(data).unwrap_or(p).display().to_string(),
                Input::Text(_) => i.to_string(),
            };
            match (&input, source.is_text()) {
                (Input::Image(_), true) => Err(TrainError::Data(format!(
                    "{}: images, but {} is a text model",
                    data.display(),
                    dir.display()
                ))),
                (Input::Text(_), false) => Err(TrainError::Data(format!(
                    "{}: texts, but {} is an image model",
                    data.display(),
                    dir.display()
                ))),
                _ => Ok(Example {
                    input,
                    label: 0,
                    origin,
                }),
            }
        })
        .collect::<Result<_, _>>()?;
    let device = zoo_engine::cpu();
    // The head is not used: a one-class placeholder lets any folder (classifier or bare
    // encoder) build.
    let (net, _) = source.build(Some((HeadSpec::Linear, 1)), None, 0, &device)?;
    let net = net.valid();
    let refs: Vec<&Example> = examples.iter().collect();
    let (mut rows, mut dim, mut truncated) = (Vec::new(), 0, 0);
    progress.start("embedding", refs.len() as u64);
    for chunk in refs.chunks(opts.batch_size.max(1)) {
        if opts.no_truncate
            && let Kind::Text { tokenizer, .. } = &source.kind
        {
            // The tokenizer's own refusal names the input and the limit.
            let texts: Vec<&str> = chunk
                .iter()
                .filter_map(|e| match &e.input {
                    Input::Text(t) => Some(t.as_str()),
                    Input::Image(_) => None,
                })
                .collect();
            tokenizer.encode(&texts, true).map_err(|e| {
                TrainError::Data(format!(
                    "{}: in the batch starting at input {}: {e}",
                    data.display(),
                    chunk[0].origin
                ))
            })?;
        }
        let (b, cut) = prepare(&source, chunk, Prep::Eval, &device)?;
        truncated += cut;
        let f = net.features(b, pooling.unwrap_or(Pooling::Mean));
        dim = f.dims()[1];
        rows.extend(
            f.into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| TrainError::Data(format!("features: {e:?}")))?,
        );
        for _ in chunk {
            progress.step("");
        }
    }
    progress.finish();
    Ok(Embeddings {
        n: examples.len(),
        names: examples.into_iter().map(|e| e.origin).collect(),
        rows,
        dim,
        truncated,
        max_length,
        pooling,
    })
}

/// Writes embeddings as safetensors: `embeddings` [N, D] f32, with the model and the input
/// names in the metadata (complete or absent).
pub fn write(e: &Embeddings, model: &str, out: &Path) -> Result<(), TrainError> {
    let bytes: Vec<u8> = e.rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    let tensor = zoo_formats::safetensors::TensorData {
        name: "embeddings".into(),
        dtype: zoo_formats::Dtype::F32,
        shape: vec![e.n, e.dim],
        data: std::borrow::Cow::Owned(bytes),
    };
    let mut meta = std::collections::BTreeMap::new();
    meta.insert("model".to_string(), model.to_string());
    meta.insert(
        "inputs".to_string(),
        serde_json::to_string(&e.names).map_err(|err| TrainError::Data(err.to_string()))?,
    );
    if let Some(p) = e.pooling {
        meta.insert("pooling".to_string(), format!("{p:?}").to_ascii_lowercase());
    }
    zoo_checkpoint::write_atomic(out, |w| {
        zoo_formats::safetensors::write(std::slice::from_ref(&tensor), Some(&meta), w).map_err(
            |error| zoo_checkpoint::Error::Write {
                path: out.to_path_buf(),
                error,
            },
        )
    })?;
    Ok(())
}
