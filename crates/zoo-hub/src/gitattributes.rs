//! `.gitattributes`: which paths git-lfs manages in a clone. A file committed through LFS
//! must be covered, or `git clone` leaves its pointer in place of the content; the hub adds a
//! line for every LFS file no pattern covers (as the Hugging Face Hub does).

/// The patterns of `filter=lfs` lines.
pub fn lfs_patterns(content: &str) -> Vec<String> {
    content
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let pattern = parts.next()?;
            parts
                .any(|a| a == "filter=lfs")
                .then(|| pattern.replace("[[:space:]]", " "))
        })
        .collect()
}

/// Whether a gitattributes `pattern` matches `path`: a pattern without `/` matches the file
/// name at any depth, one with `/` the whole path (`**` crossing folders).
pub fn matches(pattern: &str, path: &str) -> bool {
    let pattern = pattern.trim_start_matches('/');
    let (pattern, subject) = if pattern.contains('/') {
        (pattern, path)
    } else {
        (pattern, path.rsplit('/').next().unwrap_or(path))
    };
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher().is_match(subject))
        .unwrap_or(false)
}

/// `content` with a line for each of `paths` that no `filter=lfs` pattern covers; `None`
/// when every path is covered.
pub fn covering(content: &str, paths: &[&str]) -> Option<String> {
    let patterns = lfs_patterns(content);
    let missing: Vec<&&str> = paths
        .iter()
        .filter(|p| !patterns.iter().any(|pat| matches(pat, p)))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut out = content.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for p in missing {
        out.push_str(&format!(
            "{} filter=lfs diff=lfs merge=lfs -text\n",
            p.replace(' ', "[[:space:]]")
        ));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfs_paths_are_covered_or_added() {
        let attrs = "*.bin filter=lfs diff=lfs merge=lfs -text\nsaved_model/**/* filter=lfs -text\n*.md text\n";
        assert_eq!(lfs_patterns(attrs), ["*.bin", "saved_model/**/*"]);
        assert!(matches("*.bin", "a/b/w.bin"));
        assert!(matches("saved_model/**/*", "saved_model/x/y.pb"));
        assert!(!matches("saved_model/**/*", "other/saved_model/y.pb"));
        assert!(!matches("*.bin", "w.binary"));
        assert_eq!(covering(attrs, &["w.bin", "deep/x.bin"]), None);
        let more = covering(attrs, &["big.raw", "a dir/x y.dat"]).unwrap();
        assert!(more.ends_with(
            "big.raw filter=lfs diff=lfs merge=lfs -text\na[[:space:]]dir/x[[:space:]]y.dat filter=lfs diff=lfs merge=lfs -text\n"
        ));
        assert_eq!(covering(&more, &["big.raw", "a dir/x y.dat"]), None);
        assert_eq!(
            covering("", &["x.raw"]).unwrap(),
            "x.raw filter=lfs diff=lfs merge=lfs -text\n"
        );
    }
}
