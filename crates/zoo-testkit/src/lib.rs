//! Helpers shared by the integration tests of every crate.

use std::path::PathBuf;

/// The fixtures directory prepared by `scripts/fetch-fixtures.sh` (`$ZOO_FIXTURES`, default
/// `~/.cache/checkpoint-zoo/fixtures`). Fails loudly when it is missing: tests that need the
/// real checkpoints never skip themselves.
pub fn real_fixtures() -> PathBuf {
    let dir = std::env::var_os("ZOO_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/checkpoint-zoo/fixtures")
        });
    assert!(
        dir.join("checkpoints").is_dir(),
        "{} has no fixtures: run scripts/fetch-fixtures.sh (or set ZOO_FIXTURES)",
        dir.display()
    );
    dir
}
