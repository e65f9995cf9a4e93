//! Every file that enters a repository is scanned first: safetensors must pass the strict
//! validator and a dangerous pickle is refused unless the server allows it. Used by the
//! commit route and by git pushes.

use crate::blobs::BlobStore;
use crate::error::HubError;
use crate::meta::FileEntry;

/// Scans a new file: safetensors must pass the validator; dangerous pickles are refused
/// unless the server allows them. The verdict and report are recorded with the file.
pub fn scan_entry(
    blobs: &dyn BlobStore,
    e: &mut FileEntry,
    allow_dangerous: bool,
) -> Result<(), HubError> {
    use zoo_formats::scan::{FileVerdict, Kind};
    // Read through the store when it has no local files: a file that cannot be scanned is
    // refused, never waved through.
    let local = crate::blobs::local_copy(blobs, &e.sha256).map_err(|err| {
        HubError::Internal(format!(
            "`{}` could not be read for scanning: {err}",
            e.path
        ))
    })?;
    let mapped = zoo_checkpoint::Mapped::open(local.path())
        .map_err(|err| HubError::Internal(format!("`{}` could not be scanned: {err}", e.path)))?;
    let name = e.path.rsplit('/').next().unwrap_or(&e.path);
    let report = zoo_formats::scan::scan_bytes(name, mapped.bytes());
    let checkpoint_like = report.kind != Kind::Other || report.expected.is_some();
    if !checkpoint_like {
        return Ok(());
    }
    if report.verdict == FileVerdict::Invalid
        && (report.kind == Kind::Safetensors || report.expected == Some(Kind::Safetensors))
    {
        return Err(HubError::BadRequest(format!(
            "`{}` is not a valid safetensors file: {}",
            e.path,
            report.notes.join("; ")
        )));
    }
    if report.verdict == FileVerdict::Dangerous && !allow_dangerous {
        let bad: Vec<String> = report
            .imports
            .iter()
            .filter(|i| i.verdict == zoo_formats::policy::Verdict::Dangerous)
            .map(|i| format!("{}.{}", i.module, i.name))
            .collect();
        return Err(HubError::BadRequest(format!(
            "`{}` is a dangerous pickle (imports {}); refused. Convert it with `zoo convert`, or start the server with --allow-dangerous-pickles",
            e.path,
            bad.join(", ")
        )));
    }
    e.verdict = Some(report.verdict.as_str().to_string());
    e.scan = serde_json::to_string(&report).ok();
    Ok(())
}
