//! `zoo inspect`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

pub fn run(path: &Path, json: bool) -> Result<ExitCode> {
    let mapped = zoo_checkpoint::Mapped::open(path)?;
    let loaded =
        zoo_checkpoint::load(&mapped).with_context(|| format!("inspecting {}", path.display()))?;
    if json {
        let tensors: Vec<_> = loaded
            .tensors
            .iter()
            .map(|t| serde_json::json!({"name": t.name, "dtype": t.dtype.as_str(), "shape": t.shape, "bytes": t.data.len()}))
            .collect();
        let imports: Vec<_> = loaded
            .imports
            .iter()
            .map(|(i, v)| serde_json::json!({"module": i.module, "name": i.name, "verdict": v}))
            .collect();
        let doc = serde_json::json!({
            "path": path,
            "format": loaded.format,
            "tensors": tensors,
            "parameters": loaded.parameters(),
            "elements": loaded.elements(),
            "bytes": loaded.bytes(),
            "metadata": loaded.metadata,
            "skipped": loaded.skipped,
            "imports": imports,
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("file:       {}", path.display());
    outln!("format:     {}", loaded.format.as_str());
    outln!("tensors:    {}", loaded.tensors.len());
    outln!(
        "parameters: {} ({} elements with buffers)",
        thousands(loaded.parameters()),
        thousands(loaded.elements())
    );
    outln!("bytes:      {}", human_bytes(loaded.bytes()));
    for (k, v) in &loaded.metadata {
        outln!("metadata:   {k} = {v}");
    }
    if !loaded.skipped.is_empty() {
        outln!("not tensors: {}", loaded.skipped.join(", "));
    }
    let width = loaded
        .tensors
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    outln!();
    outln!("{:<width$}  {:<7}  SHAPE", "NAME", "DTYPE");
    for t in &loaded.tensors {
        outln!("{:<width$}  {:<7}  {:?}", t.name, t.dtype.as_str(), t.shape);
    }
    Ok(ExitCode::SUCCESS)
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in B / KB / MB / GB (powers of 1000, as the Hub shows sizes).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
