//! Endpoint, token and cache location, found the way the Hugging Face tools find them.
//!
//! Tokens: `--token`, else `HF_TOKEN`, else the token stored for this endpoint, else the file
//! `HF_TOKEN_PATH` (default `$HF_HOME/token`, the Python tools' active token). `zoo auth login`
//! against huggingface.co writes that file, as `hf auth login` does; against any other
//! endpoint it stores the token in `stored_tokens` (the Python tools' INI file of named
//! tokens, beside the token file) under the name `zoo@ENDPOINT`, so logging in to a team hub
//! never overwrites the huggingface.co token the Python tools use.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ClientError;

/// The Hub the Python tools talk to when `HF_ENDPOINT` is unset.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where the token in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// `--token`.
    Flag,
    /// `HF_TOKEN`.
    Env,
    /// The `zoo@ENDPOINT` section of `stored_tokens`.
    Stored,
    /// `HF_TOKEN_PATH` / `$HF_HOME/token`.
    File,
    /// No token.
    None,
}

/// What flags override in [`Settings::resolve`].
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub endpoint: Option<String>,
    pub token: Option<String>,
    pub offline: bool,
    /// `--cache-dir`: instead of `HF_HUB_CACHE`.
    pub cache_dir: Option<PathBuf>,
}

/// Where to talk to and where to cache.
#[derive(Clone)]
pub struct Settings {
    /// `HF_ENDPOINT`, default `https://huggingface.co`.
    pub endpoint: String,
    /// See the module documentation for the order.
    pub token: Option<String>,
    pub token_source: TokenSource,
    /// `HF_HOME`, default `$XDG_CACHE_HOME/huggingface` or `~/.cache/huggingface`.
    pub home: PathBuf,
    /// `--cache-dir`, else `HF_HUB_CACHE`, default `$HF_HOME/hub`.
    pub cache: PathBuf,
    /// `HF_TOKEN_PATH`, default `$HF_HOME/token`.
    pub token_file: PathBuf,
    /// `stored_tokens` beside the token file (as `huggingface_hub` places it).
    pub stored_tokens: PathBuf,
    /// `HF_HUB_OFFLINE=1` or `--offline`: no network at all.
    pub offline: bool,
    /// False when `HF_HUB_DISABLE_PROGRESS_BARS` is set to a true value.
    pub progress_bars: bool,
    /// `HF_HUB_DOWNLOAD_TIMEOUT` (seconds, default 10): connecting, and the longest wait for
    /// the next bytes of a response.
    pub timeout: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &redact(&self.endpoint))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_source", &self.token_source)
            .field("home", &self.home)
            .field("cache", &self.cache)
            .field("offline", &self.offline)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn truthy(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

/// Whether `HF_HUB_DISABLE_PROGRESS_BARS` turns progress bars off (as in the Python tools).
pub fn progress_bars_disabled() -> bool {
    std::env::var("HF_HUB_DISABLE_PROGRESS_BARS").is_ok_and(|v| truthy(&v))
}

/// `~` and `~/…` at the start of a path become the home folder (as Python's `expanduser`).
pub fn expand_home(p: &str) -> PathBuf {
    let home = || std::env::var("HOME").ok().filter(|h| !h.is_empty());
    if p == "~" {
        if let Some(h) = home() {
            return PathBuf::from(h);
        }
    } else if let Some(rest) = p.strip_prefix("~/")
        && let Some(h) = home()
    {
        return Path::new(&h).join(rest);
    }
    PathBuf::from(p)
}

impl Settings {
    /// From the environment, with optional overrides from flags.
    pub fn from_env(endpoint: Option<&str>, token: Option<&str>, offline: bool) -> Settings {
        Settings::resolve(&Overrides {
            endpoint: endpoint.map(str::to_string),
            token: token.map(str::to_string),
            offline,
            cache_dir: None,
        })
    }

    /// From the environment and the flags in `o`.
    pub fn resolve(o: &Overrides) -> Settings {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = env("HF_HOME").map(|h| expand_home(&h)).unwrap_or_else(|| {
            let base = env("XDG_CACHE_HOME")
                .map(|x| expand_home(&x))
                .unwrap_or_else(|| expand_home("~").join(".cache"));
            base.join("huggingface")
        });
        let cache = o
            .cache_dir
            .clone()
            .or_else(|| env("HF_HUB_CACHE").map(|c| expand_home(&c)))
            .unwrap_or_else(|| home.join("hub"));
        let endpoint = o
            .endpoint
            .clone()
            .or_else(|| env("HF_ENDPOINT"))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.into())
            .trim_end_matches('/')
            .to_string();
        let token_file = env("HF_TOKEN_PATH")
            .map(|p| expand_home(&p))
            .unwrap_or_else(|| home.join("token"));
        let stored_tokens = token_file
            .parent()
            .unwrap_or(Path::new("."))
            .join("stored_tokens");
        let (token, token_source) = if let Some(t) = &o.token {
            (Some(t.clone()), TokenSource::Flag)
        } else if let Some(t) = env("HF_TOKEN") {
            (Some(t), TokenSource::Env)
        } else if let Some(t) = stored_token(&stored_tokens, &endpoint) {
            (Some(t), TokenSource::Stored)
        } else if let Some(t) = std::fs::read_to_string(&token_file)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
        {
            (Some(t), TokenSource::File)
        } else {
            (None, TokenSource::None)
        };
        let offline = o.offline || env("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v));
        let progress_bars = !progress_bars_disabled();
        let timeout = env("HF_HUB_DOWNLOAD_TIMEOUT")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(10));
        Settings {
            endpoint,
            token,
            token_source,
            home,
            cache,
            token_file,
            stored_tokens,
            offline,
            progress_bars,
            timeout,
        }
    }

    /// Whether this is huggingface.co (whose token lives in the token file).
    pub fn is_default_endpoint(&self) -> bool {
        self.endpoint == DEFAULT_ENDPOINT
    }

    /// The `stored_tokens` section that holds this endpoint's token.
    pub fn token_name(&self) -> String {
        format!("zoo@{}", self.endpoint)
    }

    /// Where [`Settings::save_token`] puts this endpoint's token.
    pub fn token_path(&self) -> PathBuf {
        if self.is_default_endpoint() {
            self.token_file.clone()
        } else {
            self.stored_tokens.clone()
        }
    }

    /// Saves a token for this endpoint (mode 0600, atomically): the token file for
    /// huggingface.co, this endpoint's section of `stored_tokens` otherwise.
    pub fn save_token(&self, token: &str) -> Result<(), ClientError> {
        if self.is_default_endpoint() {
            write_secret(&self.token_file, token.as_bytes())
        } else {
            let text = read_optional(&self.stored_tokens)?;
            let updated = ini_set(&text, &self.token_name(), Some(token));
            write_secret(&self.stored_tokens, updated.as_bytes())
        }
    }

    /// Forgets this endpoint's saved token; false when there was none.
    pub fn remove_token(&self) -> Result<bool, ClientError> {
        if self.is_default_endpoint() {
            let path = &self.token_file;
            return match std::fs::remove_file(path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(ClientError::Io {
                    path: path.clone(),
                    error: e,
                }),
            };
        }
        let text = read_optional(&self.stored_tokens)?;
        if stored_token_in(&text, &self.token_name()).is_none() {
            return Ok(false);
        }
        let updated = ini_set(&text, &self.token_name(), None);
        write_secret(&self.stored_tokens, updated.as_bytes())?;
        Ok(true)
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }
}

fn read_optional(path: &Path) -> Result<String, ClientError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(ClientError::Io {
            path: path.to_path_buf(),
            error: e,
        }),
    }
}

/// Writes a file readable only by its owner, atomically (the folder is created).
fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(ClientError::io(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(ClientError::io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600))
            .map_err(ClientError::io(path))?;
    }
    std::io::Write::write_all(&mut tmp, bytes).map_err(ClientError::io(path))?;
    tmp.as_file().sync_all().map_err(ClientError::io(path))?;
    tmp.persist(path).map_err(|e| ClientError::Io {
        path: path.to_path_buf(),
        error: e.error,
    })?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn stored_token(path: &Path, endpoint: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    stored_token_in(&text, &format!("zoo@{endpoint}"))
}

/// The `hf_token` of section `name` in an INI text as Python's `configparser` writes it.
fn stored_token_in(text: &str, name: &str) -> Option<String> {
    let mut inside = false;
    for line in text.lines() {
        let l = line.trim();
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            inside = s == name;
        } else if inside
            && let Some((k, v)) = l.split_once('=').or_else(|| l.split_once(':'))
            && k.trim().eq_ignore_ascii_case("hf_token")
        {
            return Some(v.trim().to_string()).filter(|t| !t.is_empty());
        }
    }
    None
}

/// The INI text with section `name` set to `hf_token = TOKEN` (or removed for `None`); every
/// other line is kept as it was.
fn ini_set(text: &str, name: &str, token: Option<&str>) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let l = line.trim();
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            skipping = s == name;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some(t) = token {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&format!("[{name}]\nhf_token = {t}\n\n"));
    }
    out
}

/// A URL with any `user:password@` credentials and `token`/`sig` query values masked.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = &out[scheme_end + 3..];
        let host_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..host_end].rfind('@') {
            out = format!("{}://***@{}", &out[..scheme_end], &rest[at + 1..]);
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let masked: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _))
                    if matches!(
                        k,
                        "token" | "sig" | "signature" | "access_token" | "X-Amz-Signature"
                    ) =>
                {
                    format!("{k}=***")
                }
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{base}{}", masked.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{ini_set, redact, stored_token_in};

    #[test]
    fn credentials_and_signatures_are_redacted() {
        assert_eq!(
            redact("https://user:secret@hub.example/x?a=1"),
            "https://***@hub.example/x?a=1"
        );
        assert_eq!(
            redact("http://127.0.0.1:8080/api/lfs/upload/abc?size=3&expires=9&sig=deadbeef"),
            "http://127.0.0.1:8080/api/lfs/upload/abc?size=3&expires=9&sig=***"
        );
        assert_eq!(
            redact("https://h/p?token=zoo_x&b=2"),
            "https://h/p?token=***&b=2"
        );
        assert_eq!(redact("https://h/p"), "https://h/p");
    }

    #[test]
    fn stored_tokens_keep_the_python_tools_sections() {
        let python = "[work]\nhf_token = hf_abc\n\n[oauth]\nhf_token = hf_o\nrefresh_token = r\nexpires_at = 9\n\n";
        let a = ini_set(python, "zoo@http://127.0.0.1:8080", Some("zoo_1"));
        assert!(a.starts_with(python), "{a}");
        assert_eq!(
            stored_token_in(&a, "zoo@http://127.0.0.1:8080").as_deref(),
            Some("zoo_1")
        );
        assert_eq!(stored_token_in(&a, "work").as_deref(), Some("hf_abc"));
        let b = ini_set(&a, "zoo@http://127.0.0.1:8080", Some("zoo_2"));
        assert_eq!(b.matches("zoo@").count(), 1, "{b}");
        assert_eq!(
            stored_token_in(&b, "zoo@http://127.0.0.1:8080").as_deref(),
            Some("zoo_2")
        );
        let c = ini_set(&b, "zoo@http://127.0.0.1:8080", None);
        assert_eq!(c, python);
    }
}
