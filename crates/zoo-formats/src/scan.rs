//! Content sniffing and the verdict on one file's bytes: the same code for `zoo scan`,
//! the hub's upload check and the client's download check.

use serde::Serialize;

use crate::pickle::Import;
use crate::policy::{self, Verdict};
use crate::{safetensors, torch};

/// What the bytes of a file are, whatever its name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Safetensors,
    /// A zip archive (PyTorch's current format, or any zip).
    Zip,
    /// A raw pickle stream (PyTorch's legacy format, `.pkl`).
    Pickle,
    Other,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Safetensors => "safetensors",
            Kind::Zip => "zip",
            Kind::Pickle => "pickle",
            Kind::Other => "other",
        }
    }
}

/// Sniffs the kind from the first bytes.
pub fn sniff(prefix: &[u8]) -> Kind {
    if prefix.starts_with(b"PK\x03\x04") || prefix.starts_with(b"PK\x05\x06") {
        Kind::Zip
    } else if crate::pickle::looks_like(prefix) {
        Kind::Pickle
    } else if safetensors::looks_like(prefix) {
        Kind::Safetensors
    } else {
        Kind::Other
    }
}

/// What a file name leads one to expect.
pub fn expected_kind(file_name: &str) -> Option<Kind> {
    let lower = file_name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map(|(_, e)| e)?;
    Some(match ext {
        "safetensors" => Kind::Safetensors,
        "bin" | "pt" | "pth" | "ckpt" | "pkl" | "pickle" | "joblib" | "dat" | "data" | "npy" => {
            Kind::Pickle
        }
        "zip" | "npz" | "mar" => Kind::Zip,
        _ => return None,
    })
}

/// One import and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportVerdict {
    pub module: String,
    pub name: String,
    pub verdict: Verdict,
    /// The pickle inside the file that names it (`archive/data.pkl`, `pickle`).
    pub part: String,
}

/// The verdict on one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// What the content is.
    pub kind: Kind,
    /// What the name said, where the name says anything.
    pub expected: Option<Kind>,
    /// `safe`, `suspicious`, `dangerous` or `invalid`.
    pub verdict: FileVerdict,
    pub imports: Vec<ImportVerdict>,
    /// Why the file is invalid, or other findings (a name that lies about the content).
    pub notes: Vec<String>,
    /// Tensor count for a valid safetensors file.
    pub tensors: Option<usize>,
}

/// A file's verdict: the worst import verdict, or `invalid` when it cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileVerdict {
    Safe,
    Suspicious,
    Invalid,
    Dangerous,
}

impl FileVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            FileVerdict::Safe => "safe",
            FileVerdict::Suspicious => "suspicious",
            FileVerdict::Invalid => "invalid",
            FileVerdict::Dangerous => "dangerous",
        }
    }

    /// Whether this verdict makes `zoo scan` exit non-zero.
    pub fn fails(self) -> bool {
        matches!(self, FileVerdict::Invalid | FileVerdict::Dangerous)
    }
}

impl From<Verdict> for FileVerdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Safe => FileVerdict::Safe,
            Verdict::Suspicious => FileVerdict::Suspicious,
            Verdict::Dangerous => FileVerdict::Dangerous,
        }
    }
}

/// The kind of a file's content, given its name: [`sniff`], plus protocol 0 and 1 pickles,
/// which have no header: a pickle is what reads as one, and a file named like a pickle is
/// read as one whatever its first bytes.
pub fn content_kind(file_name: &str, bytes: &[u8]) -> Kind {
    let kind = sniff(bytes);
    if kind == Kind::Other
        && (expected_kind(file_name) == Some(Kind::Pickle) || crate::pickle::read(bytes).is_ok())
    {
        return Kind::Pickle;
    }
    kind
}

/// Scans one file's bytes. `file_name` is used only for what its extension promises.
pub fn scan_bytes(file_name: &str, bytes: &[u8]) -> Report {
    let expected = expected_kind(file_name);
    let kind = content_kind(file_name, bytes);
    let mut report = Report {
        kind,
        expected,
        verdict: FileVerdict::Safe,
        imports: Vec::new(),
        notes: Vec::new(),
        tensors: None,
    };
    if let Some(exp) = expected {
        let pickle_like = |k: Kind| matches!(k, Kind::Zip | Kind::Pickle);
        let agrees = exp == kind || (pickle_like(exp) && pickle_like(kind));
        if !agrees {
            report.notes.push(format!(
                "the name says {} but the content is {}",
                exp.as_str(),
                kind.as_str()
            ));
        }
        if exp == Kind::Safetensors && kind != Kind::Safetensors {
            // A `.safetensors` that is not one is a trap: loaders trust the extension.
            report.verdict = FileVerdict::Invalid;
        }
    }
    match kind {
        Kind::Safetensors => match safetensors::validate(bytes) {
            Ok(h) => report.tensors = Some(h.tensors.len()),
            Err(e) => {
                report.verdict = FileVerdict::Invalid;
                report.notes.push(format!("invalid safetensors: {e}"));
            }
        },
        Kind::Zip | Kind::Pickle => {
            let parts = torch::pickle_parts(bytes);
            if kind == Kind::Zip && parts.is_empty() {
                report.notes.push("zip archive holds no pickle".into());
            }
            for (part, imports, err) in parts {
                for Import { module, name } in imports {
                    let v = policy::verdict(&Import {
                        module: module.clone(),
                        name: name.clone(),
                    });
                    report.verdict = report.verdict.max(v.into());
                    report.imports.push(ImportVerdict {
                        module,
                        name,
                        verdict: v,
                        part: part.clone(),
                    });
                }
                if let Some(err) = err {
                    report.verdict = report.verdict.max(FileVerdict::Invalid);
                    report.notes.push(format!("{part}: {err}"));
                }
            }
        }
        Kind::Other => {
            if expected.is_some() {
                report.verdict = report.verdict.max(FileVerdict::Invalid);
                report
                    .notes
                    .push("content is neither safetensors, a zip nor a pickle".into());
            }
        }
    }
    // Polyglots: bytes that are a zip or safetensors file *and* a pickle would run code in
    // `pickle.load`. Read every file as a raw pickle stream too and report what it imports.
    if kind != Kind::Pickle {
        let (imports, _) = torch::all_pickles(bytes);
        for Import { module, name } in imports {
            if report
                .imports
                .iter()
                .any(|i| i.module == module && i.name == name)
            {
                continue;
            }
            let v = policy::verdict(&Import {
                module: module.clone(),
                name: name.clone(),
            });
            report.verdict = report.verdict.max(v.into());
            report.imports.push(ImportVerdict {
                module,
                name,
                verdict: v,
                part: "raw bytes read as a pickle".into(),
            });
        }
    }
    report
}
