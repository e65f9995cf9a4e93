//! Garbage collection (`zoo admin gc`): blobs that no commit of any repository and no Xet
//! xorb names any more — left by deleted repositories, rewritten files, abandoned uploads —
//! are deleted once they are older than a grace period.
//!
//! Safe against uploads running meanwhile: the store is listed *before* the references are
//! read, so a blob stored after the listing is never a candidate; a blob stored before it
//! whose commit lands after the references were read is younger than the grace period (an
//! upload is committed seconds after it is stored), so it is kept; and a commit naming an
//! LFS blob that has gone is refused by the commit route (it checks every blob it names), so
//! the metadata never points at a deleted blob.

use std::time::Duration;

use crate::blobs::BlobStore;
use crate::meta::{MetaStore, now_ms};

/// What a collection found and did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GcReport {
    /// Blobs in the store.
    pub stored: usize,
    /// Of them, named by some commit or xorb.
    pub referenced: usize,
    /// Unreferenced but younger than the grace period: kept.
    pub young: usize,
    /// Unreferenced and old enough: deleted (or, in a dry run, to delete).
    pub collected: Vec<String>,
    pub bytes: u64,
    pub dry_run: bool,
}

/// Why collection stopped.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Meta(#[from] crate::meta::MetaError),
    #[error(transparent)]
    Blobs(#[from] crate::blobs::BlobError),
}

/// Collects unreferenced blobs older than `grace`.
pub fn collect(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    grace: Duration,
    dry_run: bool,
) -> Result<GcReport, GcError> {
    // First the store, then the references (see the module's note).
    let stored = blobs.list()?;
    let referenced = meta.referenced_blobs()?;
    let cutoff = now_ms() - grace.as_millis() as i64;
    let mut report = GcReport {
        stored: stored.len(),
        dry_run,
        ..GcReport::default()
    };
    for b in stored {
        if referenced.contains(&b.sha256) {
            report.referenced += 1;
        } else if b.modified_ms > cutoff {
            report.young += 1;
        } else {
            if !dry_run {
                blobs.delete(&b.sha256)?;
            }
            report.bytes += b.size;
            report.collected.push(b.sha256);
        }
    }
    Ok(report)
}
