//! `zoo scan`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use zoo_formats::scan::FileVerdict;

pub fn run(paths: &[PathBuf], json: bool) -> Result<ExitCode> {
    let reports = zoo_checkpoint::scan_paths(paths)?;
    let worst = reports
        .iter()
        .map(|r| r.report.verdict)
        .max()
        .unwrap_or(FileVerdict::Safe);
    if json {
        let doc = serde_json::json!({ "verdict": worst, "files": reports });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for r in &reports {
            outln!(
                "{}: {} ({})",
                r.path.display(),
                r.report.verdict.as_str(),
                r.report.kind.as_str()
            );
            for i in &r.report.imports {
                outln!("  {:<10} {}.{}", i.verdict.to_string(), i.module, i.name);
            }
            if let Some(n) = r.report.tensors {
                outln!("  {n} tensors, header valid");
            }
            for n in &r.report.notes {
                outln!("  note: {n}");
            }
        }
        outln!(
            "{} files scanned, verdict: {}",
            reports.len(),
            worst.as_str()
        );
    }
    Ok(if worst.fails() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
