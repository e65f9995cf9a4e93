//! Transferability scores (issue 17): how well a candidate's frozen features suit a labelled
//! data set, from one pass of features, before any fine-tuning. All arithmetic in `f64`;
//! the linear algebra (symmetric eigendecompositions, Cholesky solves, products) is `faer`'s.
//!
//! - [`logme`]: the log marginal evidence of a Bayesian linear model from the features to
//!   each class's one-hot target, maximised over its two precisions by the fixed point of
//!   You et al. (ICML 2021), per sample, averaged over classes.
//! - [`knn_accuracy`]: leave-one-out k-nearest-neighbour accuracy under cosine similarity.
//! - [`linear_probe`]: cross-validated accuracy of a ridge classifier (least squares on
//!   one-hot targets, features standardised on each training fold).
//! - [`h_score`]: tr(cov(f)⁺ · cov(E[f | y])) of Bao et al. (2019).

use faer::linalg::solvers::Solve;
use faer::{Mat, MatRef, Side};

/// Features of `n` examples (`n × dim`, row-major) with their labels in `0..classes`.
#[derive(Debug, Clone, Copy)]
pub struct Labelled<'a> {
    pub rows: &'a [f32],
    pub n: usize,
    pub dim: usize,
    pub labels: &'a [usize],
    pub classes: usize,
}

/// Why a score cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("{0}")]
    Data(String),
    #[error("linear algebra: {0}")]
    Numeric(String),
}

impl Labelled<'_> {
    fn check(&self) -> Result<(), ScoreError> {
        if self.rows.len() != self.n * self.dim || self.labels.len() != self.n {
            return Err(ScoreError::Data(format!(
                "{} rows of {} features and {} labels do not match",
                self.n,
                self.dim,
                self.labels.len()
            )));
        }
        if self.n < 2 || self.classes < 2 {
            return Err(ScoreError::Data(format!(
                "scores need at least 2 examples and 2 classes ({} examples, {} classes)",
                self.n, self.classes
            )));
        }
        if let Some(&bad) = self.labels.iter().find(|&&l| l >= self.classes) {
            return Err(ScoreError::Data(format!(
                "label {bad} outside 0..{}",
                self.classes
            )));
        }
        if self.rows.iter().any(|v| !v.is_finite()) {
            return Err(ScoreError::Data("features hold NaN or infinity".into()));
        }
        Ok(())
    }

    fn matrix(&self) -> Mat<f64> {
        Mat::from_fn(self.n, self.dim, |i, j| {
            f64::from(self.rows[i * self.dim + j])
        })
    }
}

/// Eigenvalues (ascending) and eigenvectors (columns) of a symmetric matrix.
fn eigh(a: MatRef<'_, f64>) -> Result<(Vec<f64>, Mat<f64>), ScoreError> {
    let evd = a
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| ScoreError::Numeric(format!("eigendecomposition: {e:?}")))?;
    let (s, u) = (evd.S(), evd.U());
    // Ascending, whatever order the solver returns them in.
    let mut order: Vec<usize> = (0..a.nrows()).collect();
    order.sort_by(|&i, &j| s[i].total_cmp(&s[j]));
    let values = order.iter().map(|&i| s[i].max(0.0)).collect();
    Ok((
        values,
        Mat::from_fn(a.nrows(), a.nrows(), |r, c| u[(r, order[c])]),
    ))
}

/// LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer
/// Learning", ICML 2021): for each class, the evidence of y_k = F·m + ε with
/// m ~ N(0, α⁻¹I) and ε ~ N(0, β⁻¹), at the α, β its fixed point converges to, divided by
/// the number of examples; the mean over classes. Higher is better.
pub fn logme(data: &Labelled<'_>) -> Result<f64, ScoreError> {
    logme_through(data, data.n <= data.dim)
}

/// LogME through the eigensystem of F·Fᵀ (`dual`, n × n) or of Fᵀ·F (d × d): the same value.
fn logme_through(data: &Labelled<'_>, dual: bool) -> Result<f64, ScoreError> {
    data.check()?;
    let (n, d) = (data.n, data.dim);
    let f = data.matrix();
    // One-hot targets, one column per class.
    let y = Mat::from_fn(n, data.classes, |i, k| {
        f64::from(u8::from(data.labels[i] == k))
    });
    // The eigensystem of either Gram matrix: σ are the squared singular values of F, and
    // x = Uᵀy each target's coordinates along F's left singular vectors (U = F·V·diag(1/s)
    // from FᵀF's eigenvectors V, or F·Fᵀ's eigenvectors directly).
    let (sigma, coords) = if dual {
        let (sigma, u) = eigh((&f * f.transpose()).as_ref())?;
        (sigma, u.transpose() * &y)
    } else {
        let (sigma, v) = eigh((f.transpose() * &f).as_ref())?;
        let z = v.transpose() * (f.transpose() * &y);
        let top = sigma.last().copied().unwrap_or(0.0).max(1e-300);
        let coords = Mat::from_fn(d, data.classes, |i, k| {
            if sigma[i] > 1e-12 * top {
                z[(i, k)] / sigma[i].sqrt()
            } else {
                0.0
            }
        });
        (sigma, coords)
    };
    let (nf, df) = (n as f64, d as f64);
    let mut total = 0.0;
    for k in 0..data.classes {
        let y: Vec<f64> = (0..n).map(|i| y[(i, k)]).collect();
        let x: Vec<f64> = (0..sigma.len()).map(|i| coords[(i, k)]).collect();
        let x2: Vec<f64> = x.iter().map(|v| v * v).collect();
        let res_x2 = (y.iter().map(|v| v * v).sum::<f64>() - x2.iter().sum::<f64>()).max(0.0);
        let (mut alpha, mut beta) = (1.0f64, 1.0f64);
        let (mut m2, mut res2) = (0.0, 0.0);
        for _ in 0..100 {
            let t = alpha / beta;
            let gamma: f64 = sigma.iter().map(|&s| s / (s + t)).sum();
            m2 = sigma
                .iter()
                .zip(&x2)
                .map(|(&s, &x)| s * x / ((t + s) * (t + s)))
                .sum();
            res2 = sigma
                .iter()
                .zip(&x2)
                .map(|(&s, &x)| x / ((1.0 + s / t) * (1.0 + s / t)))
                .sum::<f64>()
                + res_x2;
            alpha = gamma / (m2 + 1e-5);
            beta = (nf - gamma) / (res2 + 1e-5);
            if ((alpha / beta - t) / t).abs() <= 1e-3 {
                break;
            }
        }
        // log|αI + βFᵀF| over FᵀF's d eigenvalues: the min(n, d) largest of either Gram
        // matrix, the rest zero (log α each).
        let r = n.min(d);
        let log_det: f64 = sigma[sigma.len() - r..]
            .iter()
            .map(|&s| (alpha + beta * s).ln())
            .sum::<f64>()
            + (d - r) as f64 * alpha.ln();
        let evidence = df / 2.0 * alpha.ln() + nf / 2.0 * beta.ln()
            - 0.5 * log_det
            - beta / 2.0 * res2
            - alpha / 2.0 * m2
            - nf / 2.0 * (2.0 * std::f64::consts::PI).ln();
        total += evidence / nf;
    }
    Ok(total / data.classes as f64)
}

/// Leave-one-out k-nearest-neighbour accuracy under cosine similarity: each example is
/// classified by the majority of its `k` most similar others (a tie goes to the class whose
/// tied neighbours are more similar in sum).
pub fn knn_accuracy(data: &Labelled<'_>, k: usize) -> Result<f64, ScoreError> {
    data.check()?;
    let (n, d) = (data.n, data.dim);
    let k = k.clamp(1, n - 1);
    let norms: Vec<f64> = (0..n)
        .map(|i| {
            let r = &data.rows[i * d..(i + 1) * d];
            r.iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt()
                .max(1e-12)
        })
        .collect();
    let unit = Mat::from_fn(n, d, |i, j| f64::from(data.rows[i * d + j]) / norms[i]);
    let mut correct = 0usize;
    const BLOCK: usize = 256;
    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        let sim = unit.subrows(start, end - start) * unit.transpose();
        for i in start..end {
            let row = sim.row(i - start);
            let mut best: Vec<(f64, usize)> =
                (0..n).filter(|&j| j != i).map(|j| (row[j], j)).collect();
            best.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            let mut votes = vec![(0usize, 0.0f64); data.classes];
            for &(s, j) in &best[..k] {
                let v = &mut votes[data.labels[j]];
                v.0 += 1;
                v.1 += s;
            }
            let predicted = (0..data.classes)
                .max_by(|&a, &b| {
                    votes[a]
                        .0
                        .cmp(&votes[b].0)
                        .then(votes[a].1.total_cmp(&votes[b].1))
                        .then(b.cmp(&a))
                })
                .unwrap_or(0);
            correct += usize::from(predicted == data.labels[i]);
        }
    }
    Ok(correct as f64 / n as f64)
}

/// `folds`-fold cross-validated accuracy of a ridge classifier: on each training fold the
/// features are standardised, W = (XᵀX + λI)⁻¹XᵀY (or the dual form when there are fewer
/// examples than features) with λ = 10⁻² · tr(XᵀX)/dim, and the held-out examples are
/// classified by the largest output. Folds are stratified: examples of each class dealt
/// round-robin in a seeded order.
pub fn linear_probe(data: &Labelled<'_>, folds: usize, seed: u64) -> Result<f64, ScoreError> {
    data.check()?;
    let (n, d, c) = (data.n, data.dim, data.classes);
    let folds = folds.clamp(2, n);
    let mut fold_of = vec![0usize; n];
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    for i in (1..n).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        order.swap(i, (state >> 33) as usize % (i + 1));
    }
    let mut dealt = vec![0usize; c];
    for &i in &order {
        let l = data.labels[i];
        fold_of[i] = dealt[l] % folds;
        dealt[l] += 1;
    }
    let f = data.matrix();
    let mut correct = 0usize;
    let mut tested = 0usize;
    for fold in 0..folds {
        let train: Vec<usize> = (0..n).filter(|&i| fold_of[i] != fold).collect();
        let test: Vec<usize> = (0..n).filter(|&i| fold_of[i] == fold).collect();
        if train.is_empty() || test.is_empty() {
            continue;
        }
        let m = train.len() as f64;
        let mean: Vec<f64> = (0..d)
            .map(|j| train.iter().map(|&i| f[(i, j)]).sum::<f64>() / m)
            .collect();
        let scale: Vec<f64> = (0..d)
            .map(|j| {
                let v = train
                    .iter()
                    .map(|&i| (f[(i, j)] - mean[j]).powi(2))
                    .sum::<f64>()
                    / m;
                if v > 1e-12 { 1.0 / v.sqrt() } else { 0.0 }
            })
            .collect();
        let x = Mat::from_fn(train.len(), d, |r, j| {
            (f[(train[r], j)] - mean[j]) * scale[j]
        });
        let y_mean: Vec<f64> = (0..c)
            .map(|k| train.iter().filter(|&&i| data.labels[i] == k).count() as f64 / m)
            .collect();
        let y = Mat::from_fn(train.len(), c, |r, k| {
            f64::from(u8::from(data.labels[train[r]] == k)) - y_mean[k]
        });
        let trace: f64 = (0..d)
            .map(|j| (0..train.len()).map(|r| x[(r, j)] * x[(r, j)]).sum::<f64>())
            .sum();
        let lambda = 1e-2 * (trace / d as f64).max(1e-12);
        let w = if train.len() >= d {
            let mut g = x.transpose() * &x;
            for j in 0..d {
                g[(j, j)] += lambda;
            }
            let llt = g
                .llt(Side::Lower)
                .map_err(|e| ScoreError::Numeric(format!("Cholesky: {e:?}")))?;
            llt.solve(x.transpose() * &y)
        } else {
            let mut g = &x * x.transpose();
            for j in 0..train.len() {
                g[(j, j)] += lambda;
            }
            let llt = g
                .llt(Side::Lower)
                .map_err(|e| ScoreError::Numeric(format!("Cholesky: {e:?}")))?;
            x.transpose() * llt.solve(&y)
        };
        let xt = Mat::from_fn(test.len(), d, |r, j| (f[(test[r], j)] - mean[j]) * scale[j]);
        let out = &xt * &w;
        for (r, &i) in test.iter().enumerate() {
            let predicted = (0..c)
                .max_by(|&a, &b| {
                    (out[(r, a)] + y_mean[a])
                        .total_cmp(&(out[(r, b)] + y_mean[b]))
                        .then(b.cmp(&a))
                })
                .unwrap_or(0);
            correct += usize::from(predicted == data.labels[i]);
            tested += 1;
        }
    }
    Ok(correct as f64 / tested.max(1) as f64)
}

/// H-score (Bao et al., "An Information-Theoretic Approach to Transferability in Task
/// Transfer Learning", ICIP 2019), tr(cov(f)⁻¹ · cov(E[f | y])), with the feature covariance
/// shrunk towards a multiple of the identity by the Ledoit–Wolf rule, as Ibrahim et al.
/// ("Newer is not always better", ICLR 2023) recommend: the plain pseudo-inverse form
/// saturates at classes − 1 for every model once the features outnumber the examples (a
/// 1280-wide MobileNetV2 feature on 200 images). Higher is better; at most classes − 1.
pub fn h_score(data: &Labelled<'_>) -> Result<f64, ScoreError> {
    data.check()?;
    let (n, d, c) = (data.n, data.dim, data.classes);
    let f = data.matrix();
    let mean: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| f[(i, j)]).sum::<f64>() / n as f64)
        .collect();
    let centred = Mat::from_fn(n, d, |i, j| f[(i, j)] - mean[j]);
    let mut cov = centred.transpose() * &centred;
    cov *= faer::Scale(1.0 / n as f64);
    // Ledoit–Wolf: target mu·I with mu = tr(cov)/d; weight alpha = min(1, b² / d²) where
    // d² = ‖cov − mu I‖²_F and b² = (1/n²) Σ_i ‖x_i x_iᵀ − cov‖²_F = (Σ_i ‖x_i‖⁴ / n − ‖cov‖²_F) / n.
    let mu = (0..d).map(|j| cov[(j, j)]).sum::<f64>() / d as f64;
    let mut frob = 0.0;
    for i in 0..d {
        for j in 0..d {
            frob += cov[(i, j)] * cov[(i, j)];
        }
    }
    let dist = frob - 2.0 * mu * mu * d as f64 + mu * mu * d as f64;
    let fourth = (0..n)
        .map(|i| {
            let sq: f64 = (0..d).map(|j| centred[(i, j)] * centred[(i, j)]).sum();
            sq * sq
        })
        .sum::<f64>()
        / n as f64;
    let b2 = ((fourth - frob) / n as f64).clamp(0.0, dist.max(0.0));
    let alpha = if dist > 0.0 { b2 / dist } else { 1.0 };
    // Class means of the centred features, weighted by class frequency.
    let mut g = Mat::<f64>::zeros(c, d);
    let mut count = vec![0usize; c];
    for i in 0..n {
        let l = data.labels[i];
        count[l] += 1;
        for j in 0..d {
            g[(l, j)] += centred[(i, j)];
        }
    }
    let weighted = Mat::from_fn(c, d, |k, j| {
        if count[k] == 0 {
            0.0
        } else {
            g[(k, j)] / count[k] as f64 * (count[k] as f64 / n as f64).sqrt()
        }
    });
    let (values, vectors) = eigh(cov.as_ref())?;
    // tr(S⁻¹ · (1 − alpha) Gᵀ G) with S = (1 − alpha) cov + alpha mu I: Σ_i over the
    // eigenvectors of cov of (1 − alpha) ‖G v_i‖² / ((1 − alpha) λ_i + alpha mu).
    let proj = &weighted * &vectors;
    let mut h = 0.0;
    for (i, &l) in values.iter().enumerate() {
        let denom = (1.0 - alpha) * l.max(0.0) + alpha * mu;
        if denom > 0.0 {
            let s: f64 = (0..c).map(|k| proj[(k, i)] * proj[(k, i)]).sum();
            h += (1.0 - alpha) * s / denom;
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two well-separated classes in 3-D, and the same points with shuffled labels.
    fn blobs(separated: bool) -> (Vec<f32>, Vec<usize>) {
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        let mut s = 12345u64;
        let mut noise = || {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        for i in 0..60 {
            let l = i % 2;
            let centre = if l == 0 { -2.0 } else { 2.0 };
            rows.extend([centre + noise(), noise(), 0.5 + noise()]);
            labels.push(if separated { l } else { (i / 2) % 2 });
        }
        (rows, labels)
    }

    fn scores(separated: bool) -> (f64, f64, f64, f64) {
        let (rows, labels) = blobs(separated);
        let l = Labelled {
            rows: &rows,
            n: 60,
            dim: 3,
            labels: &labels,
            classes: 2,
        };
        (
            logme(&l).unwrap(),
            knn_accuracy(&l, 5).unwrap(),
            linear_probe(&l, 5, 0).unwrap(),
            h_score(&l).unwrap(),
        )
    }

    #[test]
    fn every_score_prefers_features_that_separate_the_classes_issue_17() {
        let good = scores(true);
        let bad = scores(false);
        assert!(good.0 > bad.0, "LogME {good:?} {bad:?}");
        assert_eq!(good.1, 1.0);
        assert!(bad.1 < 0.75, "kNN on shuffled labels {bad:?}");
        assert_eq!(good.2, 1.0);
        assert!(bad.2 < 0.75, "probe on shuffled labels {bad:?}");
        assert!(good.3 > 0.9 && good.3 <= 1.0 + 1e-9, "H-score {good:?}");
        assert!(bad.3 < 0.2, "H-score {bad:?}");
    }

    #[test]
    fn logme_is_the_same_through_either_gram_matrix_issue_17() {
        for (n, dim) in [(40, 3), (12, 3), (6, 10)] {
            let (rows, labels) = blobs(true);
            let rows: Vec<f32> = rows[..n * 3]
                .chunks(3)
                .flat_map(|r| (0..dim).map(move |j| r[j % 3] * (1.0 + j as f32 * 0.1)))
                .collect();
            let l = Labelled {
                rows: &rows,
                n,
                dim,
                labels: &labels[..n],
                classes: 2,
            };
            let a = logme_through(&l, false).unwrap();
            let b = logme_through(&l, true).unwrap();
            assert!(
                (a - b).abs() < 1e-6 * a.abs().max(1.0),
                "n={n} d={dim}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn bad_inputs_are_errors_not_panics_issue_17() {
        let rows = [0.0f32; 6];
        let one_class = Labelled {
            rows: &rows,
            n: 3,
            dim: 2,
            labels: &[0, 0, 0],
            classes: 1,
        };
        assert!(logme(&one_class).is_err());
        let nan = [f32::NAN; 4];
        let l = Labelled {
            rows: &nan,
            n: 2,
            dim: 2,
            labels: &[0, 1],
            classes: 2,
        };
        assert!(knn_accuracy(&l, 1).is_err());
        let l = Labelled {
            rows: &rows,
            n: 3,
            dim: 2,
            labels: &[0, 5, 1],
            classes: 2,
        };
        assert!(h_score(&l).is_err());
    }
}
