//! `zoo rank` (issue 17): which checkpoint to start from. Each candidate sees the user's
//! labelled data once — pooled backbone features, the ones a new head would see, through the
//! feature cache — and [`crate::scores`] rates how well those features suit the labels.
//! Candidates are ordered by the recommended score ([`Score::default`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use zoo_engine::classifier::HeadSpec;

use crate::cache::FeatureCache;
use crate::data::{Dataset, Input};
use crate::net::Source;
use crate::options::Options;
use crate::scores::{self, Labelled};
use crate::{Progress, TrainError};

/// A transferability score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Score {
    /// Leave-one-out k-nearest-neighbour accuracy (cosine).
    Knn,
    LogMe,
    /// Cross-validated ridge-classifier accuracy: the default, as the best predictor of
    /// fine-tuned accuracy in `benches/rank` (mean weighted Kendall τ 0.58 over four target
    /// tasks, LogME 0.51, k-NN 0.14; see `benches/rank/results.md`).
    #[default]
    LinearProbe,
    HScore,
}

impl Score {
    pub const ALL: [Score; 4] = [Score::Knn, Score::LogMe, Score::LinearProbe, Score::HScore];

    pub fn name(self) -> &'static str {
        match self {
            Score::Knn => "knn",
            Score::LogMe => "logme",
            Score::LinearProbe => "linear-probe",
            Score::HScore => "h-score",
        }
    }

    pub fn parse(s: &str) -> Result<Score, TrainError> {
        Score::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                TrainError::Options(format!(
                    "unknown score `{s}`: expected knn, logme, linear-probe or h-score"
                ))
            })
    }
}

/// How to rank.
#[derive(Debug, Clone)]
pub struct RankOptions {
    /// Neighbours of the k-NN score.
    pub k: usize,
    /// Folds of the linear probe.
    pub folds: usize,
    pub seed: u64,
    /// The feature cache (`None`: no cache).
    pub cache: Option<PathBuf>,
    /// The score that orders the candidates.
    pub by: Score,
    /// Image models see the images at this size (the fine-tuning run's `--image-size`)
    /// instead of their own.
    pub image_size: Option<u32>,
}

impl Default for RankOptions {
    fn default() -> Self {
        RankOptions {
            k: 5,
            folds: 5,
            seed: 0,
            cache: Some(FeatureCache::default_dir()),
            by: Score::default(),
            image_size: None,
        }
    }
}

/// One candidate's scores.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// As named on the command line.
    pub model: String,
    pub dim: usize,
    pub logme: f64,
    pub knn: f64,
    pub linear_probe: f64,
    pub h_score: f64,
    /// Seconds to get the features (near zero from the cache).
    pub feature_seconds: f64,
    /// Seconds for the four scores.
    pub score_seconds: f64,
    pub cached: bool,
}

impl Candidate {
    pub fn score(&self, s: Score) -> f64 {
        match s {
            Score::Knn => self.knn,
            Score::LogMe => self.logme,
            Score::LinearProbe => self.linear_probe,
            Score::HScore => self.h_score,
        }
    }
}

/// Scores every candidate on `data` and returns them best first by `opts.by`. A candidate
/// whose modality does not match the data (an image model for texts) is an error naming it.
pub fn rank(
    models: &[(String, PathBuf)],
    data: &Path,
    dataset: &Dataset,
    opts: &RankOptions,
    progress: &dyn Progress,
) -> Result<Vec<Candidate>, TrainError> {
    if models.is_empty() {
        return Err(TrainError::Options("rank needs at least one model".into()));
    }
    if dataset.classes.len() < 2 {
        return Err(TrainError::Data(format!(
            "{}: ranking needs at least 2 classes",
            data.display()
        )));
    }
    let texts = matches!(
        dataset.examples.first().map(|e| &e.input),
        Some(Input::Text(_))
    );
    let labels: Vec<usize> = dataset.examples.iter().map(|e| e.label).collect();
    let cache = opts
        .cache
        .as_ref()
        .map(|dir| FeatureCache { dir: dir.clone() });
    let mut out = Vec::new();
    for (name, dir) in models {
        let source = Source::open(dir, opts.image_size)?;
        if source.is_text() != texts {
            return Err(TrainError::Data(format!(
                "{name}: {} model, but {} holds {}",
                if source.is_text() {
                    "a text"
                } else {
                    "an image"
                },
                data.display(),
                if texts { "texts" } else { "images" }
            )));
        }
        let t = Instant::now();
        let (rows, dim, cached) = features(&source, dataset, cache.as_ref(), name, opts, progress)?;
        let feature_seconds = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let l = Labelled {
            rows: &rows,
            n: labels.len(),
            dim,
            labels: &labels,
            classes: dataset.classes.len(),
        };
        let err = |e: scores::ScoreError| TrainError::Data(format!("{name}: {e}"));
        let c = Candidate {
            model: name.clone(),
            dim,
            logme: scores::logme(&l).map_err(err)?,
            knn: scores::knn_accuracy(&l, opts.k).map_err(err)?,
            linear_probe: scores::linear_probe(&l, opts.folds, opts.seed).map_err(err)?,
            h_score: scores::h_score(&l).map_err(err)?,
            feature_seconds,
            score_seconds: t.elapsed().as_secs_f64(),
            cached,
        };
        progress.note(&format!(
            "{name}: knn {:.3}, logme {:.3}, probe {:.3}, h-score {:.3}",
            c.knn, c.logme, c.linear_probe, c.h_score
        ));
        out.push(c);
    }
    out.sort_by(|a, b| b.score(opts.by).total_cmp(&a.score(opts.by)));
    Ok(out)
}

/// Pooled backbone features of `dataset`, from the cache when it has them (the pass
/// fine-tuning makes for a frozen backbone, with its batch sizes).
fn features(
    source: &Source,
    dataset: &Dataset,
    cache: Option<&FeatureCache>,
    name: &str,
    opts: &RankOptions,
    progress: &dyn Progress,
) -> Result<(Vec<f32>, usize, bool), TrainError> {
    // The head is not used: a one-class placeholder lets any folder build.
    let (net, _) = source.build(Some((HeadSpec::Linear, 1)), None, 0, &zoo_engine::cpu())?;
    let (rows, dim, _, cached) = crate::finetune::features(
        &net,
        source,
        dataset,
        &Options {
            image_size: opts.image_size,
            ..Options::default()
        },
        cache,
        name,
        progress,
    )?;
    Ok((rows, dim, cached))
}
