//! Classification metrics from scores: accuracy, top-5, macro-F1, per-class precision and
//! recall, the confusion matrix.

use serde::Serialize;

/// Per-class figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassMetrics {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// The evaluation of a classifier on a labelled set.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evaluation {
    pub examples: usize,
    pub accuracy: f64,
    /// Top-5 accuracy, when there are more than 5 classes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top5: Option<f64>,
    pub macro_f1: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
}

/// Evaluates `logits` (row-major `[n, classes]`) against `labels`.
pub fn evaluate(logits: &[f32], labels: &[usize], classes: &[String]) -> Evaluation {
    let k = classes.len();
    let n = labels.len();
    let mut confusion = vec![vec![0usize; k]; k];
    let mut correct = 0usize;
    let mut top5 = 0usize;
    let mut loss = 0f64;
    for (i, &y) in labels.iter().enumerate() {
        let row = &logits[i * k..(i + 1) * k];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = f64::from(max)
            + row
                .iter()
                .map(|&x| f64::from(x - max).exp())
                .sum::<f64>()
                .ln();
        loss += lse - f64::from(row[y]);
        let pred = (0..k)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
            .unwrap_or(0);
        confusion[y][pred] += 1;
        if pred == y {
            correct += 1;
        }
        let above = row.iter().filter(|&&x| x > row[y]).count();
        if above < 5 {
            top5 += 1;
        }
    }
    let mut per_class = Vec::with_capacity(k);
    for c in 0..k {
        let tp = confusion[c][c] as f64;
        let support: usize = confusion[c].iter().sum();
        let predicted: usize = confusion.iter().map(|r| r[c]).sum();
        let precision = if predicted > 0 {
            tp / predicted as f64
        } else {
            0.0
        };
        let recall = if support > 0 {
            tp / support as f64
        } else {
            0.0
        };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        per_class.push(ClassMetrics {
            label: classes[c].clone(),
            precision,
            recall,
            f1,
            support,
        });
    }
    let present: Vec<&ClassMetrics> = per_class.iter().filter(|c| c.support > 0).collect();
    let macro_f1 = if present.is_empty() {
        0.0
    } else {
        present.iter().map(|c| c.f1).sum::<f64>() / present.len() as f64
    };
    let nf = n.max(1) as f64;
    Evaluation {
        examples: n,
        accuracy: correct as f64 / nf,
        top5: (k > 5).then_some(top5 as f64 / nf),
        macro_f1,
        loss: loss / nf,
        per_class,
        confusion,
    }
}

impl Evaluation {
    /// The confusion matrix and per-class table as text.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let w = self
            .per_class
            .iter()
            .map(|c| c.label.len())
            .max()
            .unwrap_or(5)
            .max(5);
        s.push_str(&format!(
            "{:w$}  precision  recall     f1  support\n",
            "class"
        ));
        for c in &self.per_class {
            s.push_str(&format!(
                "{:w$}  {:>9.3}  {:>6.3}  {:>5.3}  {:>7}\n",
                c.label, c.precision, c.recall, c.f1, c.support
            ));
        }
        s.push_str("\nconfusion (rows: true, columns: predicted)\n");
        for (i, row) in self.confusion.iter().enumerate() {
            s.push_str(&format!("{:w$}", self.per_class[i].label));
            for v in row {
                s.push_str(&format!(" {v:>5}"));
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::evaluate;

    #[test]
    fn metrics_by_hand() {
        let classes: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        // Predictions: a, a, b, b; truth: a, b, b, b.
        let logits = [2.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 3.0];
        let e = evaluate(&logits, &[0, 1, 1, 1], &classes);
        assert_eq!(e.accuracy, 0.75);
        assert_eq!(e.confusion, vec![vec![1, 0], vec![1, 2]]);
        assert_eq!(e.per_class[0].precision, 0.5);
        assert_eq!(e.per_class[1].recall, 2.0 / 3.0);
        let f1a = 2.0 * 0.5 * 1.0 / 1.5;
        let f1b = 2.0 * 1.0 * (2.0 / 3.0) / (1.0 + 2.0 / 3.0);
        assert!((e.macro_f1 - (f1a + f1b) / 2.0).abs() < 1e-12);
        assert!(e.top5.is_none());
    }
}
