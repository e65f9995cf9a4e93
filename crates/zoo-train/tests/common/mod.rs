//! Helpers shared by zoo-train's integration tests.

use std::path::Path;

/// Writes `out/model.safetensors` from one of zoo-engine's parity fixtures (random weights of
/// a reduced architecture, stored as `weights.*`), under the model's own names. Each
/// `(from, to)` in `copies` also writes the tensors under prefix `from` again under `to`.
#[allow(dead_code)]
pub fn write_fixture_weights(file: &str, out: &Path, copies: &[(&str, &str)]) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../zoo-engine/tests/fixtures")
        .join(file);
    let mapped = zoo_checkpoint::Mapped::open(&src).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    use zoo_formats::safetensors::TensorData;
    fn renamed<'a>(t: &TensorData<'a>, name: String) -> TensorData<'a> {
        TensorData { name, ..t.clone() }
    }
    let mut tensors = Vec::new();
    for t in &loaded.tensors {
        let Some(name) = t.name.strip_prefix("weights.") else {
            continue;
        };
        for (from, to) in copies {
            if let Some(rest) = name.strip_prefix(from) {
                tensors.push(renamed(t, format!("{to}{rest}")));
            }
        }
        tensors.push(renamed(t, name.to_string()));
    }
    std::fs::create_dir_all(out).unwrap();
    zoo_checkpoint::write_safetensors(&out.join("model.safetensors"), &tensors, None).unwrap();
}

/// The first `per_class` positive and negative sentences of the sentiment fixture as a CSV.
#[allow(dead_code)]
pub fn sentiment_csv(dir: &Path, per_class: usize) -> std::path::PathBuf {
    let csv = dir.join("s.csv");
    let mut rd =
        csv::Reader::from_path(zoo_testkit::real_fixtures().join("sentiment.csv")).unwrap();
    let mut w = csv::Writer::from_path(&csv).unwrap();
    w.write_record(["text", "label"]).unwrap();
    let (mut pos, mut neg) = (0, 0);
    for r in rd.records() {
        let r = r.unwrap();
        let c = if &r[1] == "positive" {
            &mut pos
        } else {
            &mut neg
        };
        if *c < per_class {
            *c += 1;
            w.write_record([&r[0], &r[1]]).unwrap();
        }
    }
    w.flush().unwrap();
    csv
}
