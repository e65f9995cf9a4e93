//! The hub's commits as git objects, so `git clone`, `fetch` and `push` see the same history
//! as the API (commit ids are git commit ids).
//!
//! A commit made through the API is a git commit computed from the metadata alone: a tree of
//! the commit's files (regular files as their content's blob, LFS files as their pointer's
//! blob — the ids the hub already records), the parent, `{user} <{user}@users.noreply.zoo>`
//! as author and committer at the commit's time, and its summary and description as the
//! message. The bare repository that `git http-backend` serves (`bare`) is derived from the
//! metadata and the blob store, except for commits pushed over git, whose objects come with
//! the push.

use sha1::{Digest, Sha1};

use crate::meta::FileEntry;

/// A git object: its kind (`blob`, `tree`, `commit`), content and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub kind: &'static str,
    pub data: Vec<u8>,
    pub id: String,
}

impl Object {
    pub fn new(kind: &'static str, data: Vec<u8>) -> Object {
        let id = object_id(kind, &data);
        Object { kind, data, id }
    }
}

/// `sha1("{kind} {len}\0" + data)`, hex.
pub fn object_id(kind: &str, data: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("{kind} {}\0", data.len()).as_bytes());
    h.update(data);
    hex::encode(h.finalize())
}

/// The tree objects of a commit's files (innermost first, the root last).
pub fn trees(files: &[FileEntry]) -> Vec<Object> {
    let mut paths: Vec<(&str, &str)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.git_oid.as_str()))
        .collect();
    paths.sort_unstable();
    let mut out = Vec::new();
    tree_of(&paths, &mut out);
    out
}

/// The tree of `entries` (paths relative to it, sorted), its subtrees pushed first.
fn tree_of(entries: &[(&str, &str)], out: &mut Vec<Object>) -> String {
    // (name, is_dir, id)
    let mut items: Vec<(String, bool, String)> = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let (path, oid) = entries[i];
        match path.split_once('/') {
            None => {
                items.push((path.to_string(), false, oid.to_string()));
                i += 1;
            }
            Some((dir, _)) => {
                let prefix = format!("{dir}/");
                let mut j = i;
                let mut sub = Vec::new();
                while j < entries.len() && entries[j].0.starts_with(&prefix) {
                    sub.push((&entries[j].0[prefix.len()..], entries[j].1));
                    j += 1;
                }
                let id = tree_of(&sub, out);
                items.push((dir.to_string(), true, id));
                i = j;
            }
        }
    }
    // git orders entries by name, a directory's name compared as if it ended in '/'.
    items.sort_by(|a, b| {
        let key = |(n, d, _): &(String, bool, String)| {
            let mut k = n.as_bytes().to_vec();
            if *d {
                k.push(b'/');
            }
            k
        };
        key(a).cmp(&key(b))
    });
    let mut data = Vec::new();
    for (name, dir, id) in &items {
        data.extend_from_slice(if *dir { b"40000 " } else { b"100644 " });
        data.extend_from_slice(name.as_bytes());
        data.push(0);
        data.extend_from_slice(&hex::decode(id).unwrap_or_else(|_| vec![0; 20]));
    }
    let tree = Object::new("tree", data);
    let id = tree.id.clone();
    out.push(tree);
    id
}

/// What an API commit's git commit is made of.
#[derive(Debug, Clone)]
pub struct CommitFields<'a> {
    pub tree: &'a str,
    pub parent: Option<&'a str>,
    pub author: &'a str,
    /// Unix milliseconds.
    pub created_at: i64,
    pub summary: &'a str,
    pub description: &'a str,
}

/// The commit object an API commit is.
pub fn commit_object(c: &CommitFields<'_>) -> Object {
    let who = format!(
        "{0} <{0}@users.noreply.zoo> {1} +0000",
        c.author,
        c.created_at.div_euclid(1000)
    );
    let mut s = format!("tree {}\n", c.tree);
    if let Some(p) = c.parent {
        s.push_str(&format!("parent {p}\n"));
    }
    s.push_str(&format!("author {who}\ncommitter {who}\n\n{}\n", c.summary));
    if !c.description.is_empty() {
        s.push_str(&format!("\n{}\n", c.description.trim_end_matches('\n')));
    }
    Object::new("commit", s.into_bytes())
}

/// The id of the git commit an API commit of `files` is.
pub fn commit_id(
    files: &[FileEntry],
    parent: Option<&str>,
    author: &str,
    created_at: i64,
    summary: &str,
    description: &str,
) -> String {
    let trees = trees(files);
    let empty = Object::new("tree", Vec::new());
    let root = trees.last().unwrap_or(&empty);
    commit_object(&CommitFields {
        tree: &root.id,
        parent,
        author,
        created_at,
        summary,
        description,
    })
    .id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::git_blob_sha1;

    fn file(path: &str, content: &[u8]) -> FileEntry {
        FileEntry {
            path: path.into(),
            sha256: String::new(),
            size: content.len() as u64,
            git_oid: git_blob_sha1(content),
            lfs: false,
            verdict: None,
            scan: None,
        }
    }

    /// Ids checked against git itself: `git hash-object`, `git mktree`, `git commit-tree`
    /// with these dates and identities give these ids.
    #[test]
    fn trees_and_commits_hash_as_git_does() {
        assert_eq!(
            Object::new("tree", Vec::new()).id,
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        );
        // `a.txt` ("a\n"), `dir/b.txt` ("b\n"), `dir.txt` ("c\n"): git sorts `dir.txt` before
        // the directory `dir` (compared as `dir/`).
        let files = [
            file("dir/b.txt", b"b\n"),
            file("a.txt", b"a\n"),
            file("dir.txt", b"c\n"),
        ];
        let t = trees(&files);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].id, "f8f7aefc2900a3d737cea9eee45729fd55761e1a");
        assert_eq!(t[1].id, "4cc26d22b61499e7815822b141bf0c00bcc2d7ae");
        let first = commit_id(
            &files,
            None,
            "alice",
            1_700_000_000_999,
            "Upload files",
            "a description",
        );
        assert_eq!(first, "5e742e62f0c001b0c868b705e29033384ac8bdbb");
        let second = commit_id(&files, Some(&first), "bob", 1_700_000_001_000, "second", "");
        assert_eq!(second, "8f69df71af1154d6c07b937f49257b23a87413a7");
    }
}
