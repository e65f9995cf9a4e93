//! Metadata as plain rows, for backups: every table the hub's state lives in, as JSON values
//! in a column order both stores share, so a backup of one store restores into either.
//! Left out: the signing key (a new hub makes its own; LFS links live minutes) and the
//! PostgreSQL migration records (the schema is the restoring zoo's).

use serde_json::Value;

/// A column's type in the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Int,
    OptInt,
    Text,
    OptText,
    Bool,
}

/// A table and its columns (SQLite's names; PostgreSQL calls `tokens.user` `user_name`).
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub cols: &'static [(&'static str, Col)],
}

use Col::*;

/// Every table, parents before children (the order rows are loaded in).
pub const TABLES: &[Table] = &[
    Table {
        name: "users",
        cols: &[("name", Text), ("created_at", Int)],
    },
    Table {
        name: "tokens",
        cols: &[
            ("hash", Text),
            ("user", Text),
            ("scope", Text),
            ("display_name", Text),
            ("created_at", Int),
        ],
    },
    Table {
        name: "repos",
        cols: &[
            ("id", Int),
            ("kind", Text),
            ("namespace", Text),
            ("name", Text),
            ("private", Bool),
            ("created_at", Int),
            ("last_modified", Int),
            ("downloads", Int),
            ("likes", Int),
        ],
    },
    Table {
        name: "commits",
        cols: &[
            ("repo_id", Int),
            ("id", Text),
            ("parent", OptText),
            ("summary", Text),
            ("description", Text),
            ("author", Text),
            ("created_at", Int),
        ],
    },
    Table {
        name: "commit_files",
        cols: &[
            ("repo_id", Int),
            ("commit_id", Text),
            ("path", Text),
            ("sha256", Text),
            ("size", Int),
            ("git_oid", Text),
            ("lfs", Bool),
            ("verdict", OptText),
            ("scan", OptText),
        ],
    },
    Table {
        name: "refs",
        cols: &[
            ("repo_id", Int),
            ("kind", Text),
            ("name", Text),
            ("commit_id", Text),
        ],
    },
    Table {
        name: "repo_index",
        cols: &[
            ("repo_id", Int),
            ("pipeline_tag", OptText),
            ("library", OptText),
            ("license", OptText),
            ("architecture", OptText),
            ("params", OptInt),
            ("params_by_dtype", Text),
            ("card_json", OptText),
            ("tags", Text),
            ("base_models", Text),
            ("metrics", Text),
        ],
    },
    Table {
        name: "lineage",
        cols: &[("repo_id", Int), ("base", Text)],
    },
    Table {
        name: "xet_xorbs",
        cols: &[
            ("repo_id", Int),
            ("hash", Text),
            ("blob", Text),
            ("size", Int),
            ("created_at", Int),
        ],
    },
    Table {
        name: "mirrors",
        cols: &[("repo_id", Int), ("upstream", Text)],
    },
    Table {
        name: "mirror_checks",
        cols: &[("repo_id", Int), ("revision", Text), ("checked_at", Int)],
    },
];

/// One table's rows, each in [`Table::cols`] order.
pub type Rows = Vec<Vec<Value>>;

/// Every table's rows, as one consistent snapshot of a store.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dump {
    pub tables: std::collections::BTreeMap<String, Rows>,
}

impl Dump {
    /// Checks that every table is known and every row fits its columns (a backup file is
    /// input like any other).
    pub fn check(&self) -> Result<(), String> {
        for (name, rows) in &self.tables {
            let table = TABLES
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| format!("unknown table `{name}`"))?;
            for (i, row) in rows.iter().enumerate() {
                if row.len() != table.cols.len() {
                    return Err(format!(
                        "{name} row {}: {} values for {} columns",
                        i + 1,
                        row.len(),
                        table.cols.len()
                    ));
                }
                for ((col, ty), v) in table.cols.iter().zip(row) {
                    let fits = match ty {
                        Int => v.is_i64(),
                        OptInt => v.is_i64() || v.is_null(),
                        Text => v.is_string(),
                        OptText => v.is_string() || v.is_null(),
                        Bool => v.is_boolean(),
                    };
                    if !fits {
                        return Err(format!("{name} row {}: `{col}` is {v}", i + 1));
                    }
                }
            }
        }
        Ok(())
    }

    /// Every blob the metadata names (what a backup must hold).
    pub fn blobs(&self) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        let mut take = |table: &str, col: usize| {
            for row in self.tables.get(table).into_iter().flatten() {
                if let Some(s) = row.get(col).and_then(Value::as_str) {
                    out.insert(s.to_string());
                }
            }
        };
        take("commit_files", 3);
        take("xet_xorbs", 2);
        out
    }

    /// Rows in `table`.
    pub fn count(&self, table: &str) -> usize {
        self.tables.get(table).map_or(0, Vec::len)
    }
}
