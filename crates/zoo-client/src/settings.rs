//! Endpoint, token and cache location, found the way the Hugging Face tools find them.

use std::path::{Path, PathBuf};

use crate::ClientError;

/// Where to talk to and where to cache.
#[derive(Clone)]
pub struct Settings {
    /// `HF_ENDPOINT`, default `https://huggingface.co`.
    pub endpoint: String,
    /// `--token`, else `HF_TOKEN`, else the file `$HF_HOME/token`.
    pub token: Option<String>,
    /// `HF_HOME`, default `~/.cache/huggingface`.
    pub home: PathBuf,
    /// `HF_HUB_CACHE`, default `$HF_HOME/hub`.
    pub cache: PathBuf,
    /// `HF_HUB_OFFLINE=1` or `--offline`: no network at all.
    pub offline: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &redact(&self.endpoint))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("home", &self.home)
            .field("cache", &self.cache)
            .field("offline", &self.offline)
            .finish()
    }
}

fn truthy(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

impl Settings {
    /// From the environment, with optional overrides from flags.
    pub fn from_env(endpoint: Option<&str>, token: Option<&str>, offline: bool) -> Settings {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = env("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let base = env("XDG_CACHE_HOME").map(PathBuf::from).unwrap_or_else(|| {
                PathBuf::from(env("HOME").unwrap_or_else(|| ".".into())).join(".cache")
            });
            base.join("huggingface")
        });
        let cache = env("HF_HUB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("hub"));
        let endpoint = endpoint
            .map(str::to_string)
            .or_else(|| env("HF_ENDPOINT"))
            .unwrap_or_else(|| "https://huggingface.co".into())
            .trim_end_matches('/')
            .to_string();
        let token = token
            .map(str::to_string)
            .or_else(|| env("HF_TOKEN"))
            .or_else(|| {
                std::fs::read_to_string(home.join("token"))
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
            });
        let offline = offline || env("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v));
        Settings {
            endpoint,
            token,
            home,
            cache,
            offline,
        }
    }

    pub fn token_path(&self) -> PathBuf {
        self.home.join("token")
    }

    /// Saves a token as `$HF_HOME/token` (mode 0600), as `huggingface-cli login` does.
    pub fn save_token(&self, token: &str) -> Result<(), ClientError> {
        let path = self.token_path();
        std::fs::create_dir_all(&self.home).map_err(ClientError::io(&self.home))?;
        let mut tmp =
            tempfile::NamedTempFile::new_in(&self.home).map_err(ClientError::io(&self.home))?;
        std::io::Write::write_all(&mut tmp, token.as_bytes()).map_err(ClientError::io(&path))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600))
                .map_err(ClientError::io(&path))?;
        }
        tmp.persist(&path).map_err(|e| ClientError::Io {
            path: path.clone(),
            error: e.error,
        })?;
        Ok(())
    }

    pub fn remove_token(&self) -> Result<bool, ClientError> {
        let path = self.token_path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ClientError::Io { path, error: e }),
        }
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }
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
    use super::redact;

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
}
