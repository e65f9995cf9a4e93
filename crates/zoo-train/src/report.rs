//! Pictures of a run: `curves.png` (loss and accuracy per epoch, train vs validation),
//! `confusion.png`, and `report.html` that shows them with the figures.

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::TrainError;
use crate::metrics::Evaluation;

/// One epoch's figures (a line of `metrics.jsonl`).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    /// Optimizer steps taken by the end of the epoch.
    #[serde(default)]
    pub step: u64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_macro_f1: f64,
    /// Learning rate of each parameter group at the end of the epoch.
    pub lr: std::collections::BTreeMap<String, f64>,
    pub trainable_tensors: usize,
    pub seconds: f64,
}

fn err(e: impl std::fmt::Display) -> TrainError {
    TrainError::Report(e.to_string())
}

/// Loss and accuracy per epoch, train vs validation, side by side.
pub fn curves(path: &Path, history: &[EpochRecord], title: &str) -> Result<(), TrainError> {
    png_atomic(path, |tmp| draw_curves(tmp, history, title))
}

fn draw_curves(path: &Path, history: &[EpochRecord], title: &str) -> Result<(), TrainError> {
    let root = BitMapBackend::new(path, (1100, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(err)?;
    let (left, right) = root.split_horizontally(550);
    let n = history.len().max(1) as f64;
    let epochs: Vec<f64> = history.iter().map(|r| r.epoch as f64).collect();
    let series = |f: &dyn Fn(&EpochRecord) -> f64| -> Vec<(f64, f64)> {
        history
            .iter()
            .zip(&epochs)
            .map(|(r, &e)| (e, f(r)))
            .collect()
    };
    let max_loss = history
        .iter()
        .flat_map(|r| [r.train_loss, r.val_loss])
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.1;
    for (area, caption, y_max, train, val) in [
        (
            &left,
            "loss",
            max_loss,
            series(&|r| r.train_loss),
            series(&|r| r.val_loss),
        ),
        (
            &right,
            "accuracy",
            1.0,
            series(&|r| r.train_accuracy),
            series(&|r| r.val_accuracy),
        ),
    ] {
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0.5..(n + 0.5), 0.0..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_labels(history.len().clamp(2, 12))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(err)?;
        for (data, color, label) in [(train, BLUE, "train"), (val, RED, "validation")] {
            chart
                .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(data.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// The confusion matrix as a heat map with counts, rows true, columns predicted.
pub fn confusion(path: &Path, eval: &Evaluation, title: &str) -> Result<(), TrainError> {
    png_atomic(path, |tmp| draw_confusion(tmp, eval, title))
}

fn draw_confusion(path: &Path, eval: &Evaluation, title: &str) -> Result<(), TrainError> {
    let k = eval.confusion.len();
    let labels: Vec<String> = eval.per_class.iter().map(|c| c.label.clone()).collect();
    let cell = (560 / k.max(1)).clamp(24, 80) as i32;
    let margin_left = 140;
    let margin_top = 60;
    let w = margin_left + cell * k as i32 + 30;
    let h = margin_top + cell * k as i32 + 130;
    let root = BitMapBackend::new(path, (w as u32, h as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    root.draw(&Text::new(title.to_string(), (10, 10), ("sans-serif", 20)))
        .map_err(err)?;
    let max = eval
        .confusion
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    for (i, row) in eval.confusion.iter().enumerate() {
        let support: usize = row.iter().sum();
        for (j, &v) in row.iter().enumerate() {
            let x = margin_left + j as i32 * cell;
            let y = margin_top + i as i32 * cell;
            let t = v as f64 / max;
            let shade = (255.0 * (1.0 - 0.85 * t)) as u8;
            let color = RGBColor(shade, shade, 255);
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                color.filled(),
            ))
            .map_err(err)?;
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                BLACK.mix(0.2),
            ))
            .map_err(err)?;
            let text_color = if t > 0.6 { WHITE } else { BLACK };
            let _ = support;
            root.draw(&Text::new(
                v.to_string(),
                (x + cell / 2 - 8, y + cell / 2 - 7),
                ("sans-serif", 14).into_font().color(&text_color),
            ))
            .map_err(err)?;
        }
        root.draw(&Text::new(
            labels[i].clone(),
            (8, margin_top + i as i32 * cell + cell / 2 - 7),
            ("sans-serif", 14),
        ))
        .map_err(err)?;
    }
    for (j, l) in labels.iter().enumerate() {
        let x = margin_left + j as i32 * cell + cell / 2 - 6;
        let y = margin_top + k as i32 * cell + 8;
        root.draw(&Text::new(
            l.clone(),
            (x, y),
            ("sans-serif", 14)
                .into_font()
                .transform(FontTransform::Rotate90),
        ))
        .map_err(err)?;
    }
    root.draw(&Text::new(
        "rows: true class, columns: predicted".to_string(),
        (10, 35),
        ("sans-serif", 14),
    ))
    .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `report.html`: the summary, the pictures, the per-epoch table and the per-class table.
pub fn html(
    path: &Path,
    title: &str,
    summary: &[(String, String)],
    history: &[EpochRecord],
    eval: &Evaluation,
) -> Result<(), TrainError> {
    let mut s = String::new();
    s.push_str(&format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}th{{background:#f3f3f3}}td:first-child,th:first-child{{text-align:left}}img{{max-width:100%;border:1px solid #ddd}}</style></head><body>\n<h1>{t}</h1>\n<table>",
        t = esc(title)
    ));
    for (k, v) in summary {
        s.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v)));
    }
    s.push_str("</table>\n<h2>Training curves</h2>\n<img src=\"curves.png\" alt=\"loss and accuracy per epoch, train vs validation\">\n");
    s.push_str("<h2>Per epoch</h2>\n<table><tr><th>epoch</th><th>train loss</th><th>train acc</th><th>val loss</th><th>val acc</th><th>val macro-F1</th><th>trainable tensors</th><th>seconds</th></tr>");
    for r in history {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td><td>{:.1}</td></tr>",
            r.epoch, r.train_loss, r.train_accuracy, r.val_loss, r.val_accuracy, r.val_macro_f1, r.trainable_tensors, r.seconds
        ));
    }
    s.push_str("</table>\n<h2>Confusion matrix</h2>\n<img src=\"confusion.png\" alt=\"confusion matrix\">\n<h2>Per class</h2>\n<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>");
    for c in &eval.per_class {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>",
            esc(&c.label),
            c.precision,
            c.recall,
            c.f1,
            c.support
        ));
    }
    s.push_str("</table>\n</body></html>\n");
    Ok(zoo_checkpoint::write_bytes_atomic(path, s.as_bytes())?)
}

/// Draws a PNG into a temporary file beside `path` (the encoder needs a `.png` name), then
/// moves it into place whole; on failure nothing is left.
fn png_atomic(
    path: &Path,
    draw: impl FnOnce(&Path) -> Result<(), TrainError>,
) -> Result<(), TrainError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".zoo-tmp-{}-{name}", std::process::id()));
    match draw(&tmp) {
        Ok(()) => Ok(zoo_checkpoint::persist_atomic(&tmp, path)?),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
