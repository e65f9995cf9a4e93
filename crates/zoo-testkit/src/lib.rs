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

/// A throwaway PostgreSQL server on 127.0.0.1 (`scripts/services/postgres.sh`), stopped when
/// dropped. Fails loudly when PostgreSQL is not installed: `.ci/run` installs it.
#[derive(Debug)]
pub struct Postgres {
    dir: std::path::PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// `postgres://postgres@127.0.0.1:PORT/hub`, an empty database.
    pub url: String,
}

impl Postgres {
    pub fn start() -> Postgres {
        let tmp = tempfile::Builder::new()
            .prefix("zoo-pg-")
            .tempdir()
            .expect("a temporary folder");
        // The server runs as `postgres` when the tests run as root: it must reach the folder.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
        let dir = tmp.path().to_path_buf();
        let out = std::process::Command::new(Self::script())
            .arg("start")
            .arg(&dir)
            .output()
            .expect("running scripts/services/postgres.sh");
        assert!(
            out.status.success(),
            "PostgreSQL did not start (scripts/services/postgres.sh): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string();
        Postgres {
            dir,
            _tmp: Some(tmp),
            url,
        }
    }

    /// A second, empty database on the same server.
    pub fn database(&self, name: &str) -> String {
        let base = self.url.rsplit_once('/').expect("a database in the URL").0;
        let out = std::process::Command::new("psql")
            .arg(format!("{base}/postgres"))
            .arg("-qc")
            .arg(format!("CREATE DATABASE \"{name}\""))
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "CREATE DATABASE {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("{base}/{name}")
    }

    fn script() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services/postgres.sh")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new(Self::script())
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

/// A throwaway S3-compatible object store: Ceph's RADOS gateway on 127.0.0.1
/// (`scripts/services/rgw.sh`), stopped when dropped. Fails loudly when Ceph is not
/// installed: `.ci/run` installs it.
#[derive(Debug)]
pub struct Rgw {
    dir: std::path::PathBuf,
    _tmp: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// An empty bucket.
    pub bucket: String,
}

impl Rgw {
    pub fn start() -> Rgw {
        let tmp = tempfile::Builder::new()
            .prefix("zoo-rgw-")
            .tempdir()
            .expect("a temporary folder");
        let dir = tmp.path().to_path_buf();
        // Three tries: the script picks free ports that a cluster started at the same moment
        // by a parallel test can take first — its OSD then meets the other cluster's monitor
        // ("wrong fsid"). Each try starts from an empty folder.
        let mut out = None;
        for _ in 0..3 {
            let o = std::process::Command::new(Self::script())
                .arg("start")
                .arg(&dir)
                .output()
                .expect("running scripts/services/rgw.sh");
            if o.status.success() {
                out = Some(o);
                break;
            }
            let _ = std::process::Command::new(Self::script())
                .arg("stop")
                .arg(&dir)
                .output();
            let _ = std::fs::remove_dir_all(dir.join("rgw"));
            out = Some(o);
        }
        let out = out.expect("at least one try");
        assert!(
            out.status.success(),
            "Ceph RGW did not start (scripts/services/rgw.sh): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let line = text.lines().last().unwrap_or_default().to_string();
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(parts.len(), 4, "rgw.sh printed {line:?}");
        Rgw {
            dir,
            _tmp: tmp,
            endpoint: parts[0].into(),
            access_key: parts[1].into(),
            secret_key: parts[2].into(),
            bucket: parts[3].into(),
        }
    }

    /// The `AWS_*` variables a client of this store needs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    fn script() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services/rgw.sh")
    }
}

impl Drop for Rgw {
    fn drop(&mut self) {
        let _ = std::process::Command::new(Self::script())
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}
