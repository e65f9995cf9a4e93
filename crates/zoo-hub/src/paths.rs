//! Validation of everything a client names: namespaces, repository names, file paths,
//! branch and tag names. Anything odd is refused before it reaches storage.

/// Longest file path accepted, in bytes.
pub const MAX_PATH: usize = 1024;

/// `org`, `name`: letters, digits, `-`, `_`, `.`; starting with a letter or digit; at most
/// 96 characters; no `--` or `..`; not ending in `.git`.
pub fn valid_repo_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && !s.contains("--")
        && !s.contains("..")
        && !s.ends_with(".git")
        && !s.ends_with('.')
}

/// Why a file path is refused, or `None` when it is acceptable.
pub fn path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("empty path");
    }
    if path.len() > MAX_PATH {
        return Some("path longer than 1024 bytes");
    }
    if path.starts_with('/') {
        return Some("absolute path");
    }
    if path.contains('\\') {
        return Some("backslash in path");
    }
    if path.chars().any(|c| c.is_control()) {
        return Some("control character in path");
    }
    for seg in path.split('/') {
        if seg.is_empty() {
            return Some("empty path segment");
        }
        if seg == "." || seg == ".." {
            return Some("`.` or `..` segment");
        }
        if seg.len() > 255 {
            return Some("path segment longer than 255 bytes");
        }
    }
    if path == ".git" || path.starts_with(".git/") {
        return Some("path inside .git");
    }
    None
}

/// Branch and tag names: git's rules, simplified.
pub fn valid_ref_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.starts_with(['-', '/', '.'])
        && !s.ends_with(['/', '.'])
        && !s.ends_with(".lock")
        && !s.contains("..")
        && !s.contains("//")
        && !s.contains("@{")
        && !s
            .chars()
            .any(|c| c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
        && !(s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}
