//! Checkpoint files on disk.
//!
//! Opens files memory-mapped, sniffs what they really are, loads their tensors through the
//! parsers in `zoo-formats` (never through Python's unpickler), writes safetensors
//! atomically (temporary file in the same folder, fsync, rename), and scans files and
//! directories for `zoo scan`. Every error names the file it is about.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use zoo_formats::policy::{self, Verdict};
use zoo_formats::safetensors::{self as st, SafetensorsError, TensorData, WriteError};
use zoo_formats::scan::{self, Kind, Report};
use zoo_formats::torch::{TorchCheckpoint, TorchError};
use zoo_formats::{Dtype, pickle::Import};

/// Errors about checkpoint files; each names its file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: invalid safetensors: {error}")]
    Safetensors {
        path: PathBuf,
        error: SafetensorsError,
    },
    #[error("{path}: {error}")]
    Torch { path: PathBuf, error: TorchError },
    #[error("{path}: refusing a dangerous pickle: it imports {}", .imports.join(", "))]
    Dangerous { path: PathBuf, imports: Vec<String> },
    #[error(
        "{path}: not a checkpoint: the content is {kind}, not safetensors or a PyTorch checkpoint"
    )]
    UnknownFormat { path: PathBuf, kind: &'static str },
    #[error("{path}: {error}")]
    Write { path: PathBuf, error: WriteError },
}

impl Error {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            error: source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A file's bytes, memory-mapped (or empty).
#[derive(Debug)]
pub struct Mapped {
    path: PathBuf,
    map: Option<memmap2::Mmap>,
}

impl Mapped {
    /// Maps a file read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let map = if len == 0 {
            None
        } else {
            #[allow(unsafe_code)]
            // SAFETY: memmap2 requires `unsafe` because another process could change the file
            // while it is mapped. Checkpoints are treated as immutable inputs; every parser
            // bounds-checks what it reads, so a concurrent change can corrupt results but
            // cannot make them read out of bounds.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            Some(map)
        };
        Ok(Mapped {
            path: path.to_path_buf(),
            map,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The layout a checkpoint was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Safetensors,
    PytorchZip,
    PytorchLegacy,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::PytorchZip => "pytorch-zip",
            Format::PytorchLegacy => "pytorch-legacy",
        }
    }
}

/// A checkpoint's tensors, borrowed from the mapping where the bytes are already contiguous.
#[derive(Debug)]
pub struct Loaded<'a> {
    pub format: Format,
    pub tensors: Vec<TensorData<'a>>,
    /// safetensors `__metadata__`.
    pub metadata: BTreeMap<String, String>,
    /// Non-tensor entries of a PyTorch checkpoint, by dotted path.
    pub skipped: Vec<String>,
    /// Imports named by the pickles, with verdicts (empty for safetensors).
    pub imports: Vec<(Import, Verdict)>,
}

impl Loaded<'_> {
    /// Learnable parameters: every element except BatchNorm's running statistics, which a
    /// state dict stores beside the weights (PyTorch's `sum(p.numel() for p in
    /// model.parameters())`).
    pub fn parameters(&self) -> u64 {
        self.tensors
            .iter()
            .filter(|t| !is_buffer(&t.name))
            .map(|t| t.shape.iter().product::<usize>() as u64)
            .sum()
    }

    /// Every element of every tensor, buffers included.
    pub fn elements(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| t.shape.iter().product::<usize>() as u64)
            .sum()
    }
    pub fn bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.data.len() as u64).sum()
    }
}

/// Loads every tensor of a safetensors or PyTorch file. A pickle that imports anything
/// dangerous is refused before it is interpreted.
pub fn load(mapped: &Mapped) -> Result<Loaded<'_>> {
    load_named(mapped, &mapped.path().to_string_lossy())
}

/// [`load`], for bytes whose name (what their extension promises) is not the mapped path's,
/// such as a content-addressed blob.
pub fn load_named<'a>(mapped: &'a Mapped, name: &str) -> Result<Loaded<'a>> {
    let path = mapped.path();
    let bytes = mapped.bytes();
    match scan::content_kind(name, bytes) {
        Kind::Safetensors => {
            let header = st::validate(bytes).map_err(|error| Error::Safetensors {
                path: path.to_path_buf(),
                error,
            })?;
            let tensors = header
                .tensors
                .iter()
                .map(|t| TensorData {
                    name: t.name.clone(),
                    dtype: t.dtype,
                    shape: t.shape.clone(),
                    data: Cow::Borrowed(header.tensor_bytes(bytes, t)),
                })
                .collect();
            Ok(Loaded {
                format: Format::Safetensors,
                tensors,
                metadata: header.metadata.unwrap_or_default(),
                skipped: Vec::new(),
                imports: Vec::new(),
            })
        }
        Kind::Zip | Kind::Pickle => {
            refuse_dangerous(path, name, bytes)?;
            let torch = |error| Error::Torch {
                path: path.to_path_buf(),
                error,
            };
            let ckpt = TorchCheckpoint::parse(bytes).map_err(torch)?;
            let mut tensors = Vec::with_capacity(ckpt.tensors.len());
            for t in &ckpt.tensors {
                let data = ckpt.tensor_bytes(t).map_err(torch)?;
                // Borrowed data lives as long as the mapping; owned data is a gathered view.
                let data = match data {
                    Cow::Borrowed(b) => match reborrow(bytes, b) {
                        Some(b) => Cow::Borrowed(b),
                        None => Cow::Owned(b.to_vec()),
                    },
                    Cow::Owned(v) => Cow::Owned(v),
                };
                tensors.push(TensorData {
                    name: t.name.clone(),
                    dtype: t.dtype,
                    shape: t.shape.clone(),
                    data,
                });
            }
            let format = match ckpt.format {
                zoo_formats::torch::TorchFormat::Zip => Format::PytorchZip,
                zoo_formats::torch::TorchFormat::Legacy => Format::PytorchLegacy,
            };
            let imports = ckpt
                .imports
                .iter()
                .map(|i| (i.clone(), policy::verdict(i)))
                .collect();
            Ok(Loaded {
                format,
                tensors,
                metadata: BTreeMap::new(),
                skipped: ckpt.skipped,
                imports,
            })
        }
        Kind::Other => Err(Error::UnknownFormat {
            path: path.to_path_buf(),
            kind: "neither",
        }),
    }
}

/// Whether a state-dict name is a BatchNorm buffer rather than a parameter.
pub fn is_buffer(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    matches!(last, "running_mean" | "running_var" | "num_batches_tracked")
}

/// Re-ties a slice borrowed from a `TorchCheckpoint` to the mapping it points into, or
/// `None` when it points elsewhere (a member that was decompressed into memory).
fn reborrow<'a>(file: &'a [u8], part: &[u8]) -> Option<&'a [u8]> {
    let start = (part.as_ptr() as usize).checked_sub(file.as_ptr() as usize)?;
    file.get(start..start.checked_add(part.len())?)
}

fn refuse_dangerous(path: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let report = scan::scan_bytes(name, bytes);
    let dangerous: Vec<String> = report
        .imports
        .iter()
        .filter(|i| i.verdict == Verdict::Dangerous)
        .map(|i| format!("{}.{}", i.module, i.name))
        .collect();
    if dangerous.is_empty() {
        Ok(())
    } else {
        Err(Error::Dangerous {
            path: path.to_path_buf(),
            imports: dangerous,
        })
    }
}

/// What a conversion did.
#[derive(Debug, Clone, Serialize)]
pub struct ConvertSummary {
    pub input_format: Format,
    pub tensors: usize,
    pub parameters: u64,
    pub bytes: u64,
    /// Tensors whose dtype was changed.
    pub cast: usize,
    pub skipped: Vec<String>,
}

/// Converts a checkpoint to safetensors. Tensor bytes are what PyTorch's
/// `save_file({k: v.contiguous()})` writes; with `dtype`, floating tensors are cast as
/// `Tensor.to(dtype)` would cast them and other tensors are kept.
pub fn convert(input: &Path, output: &Path, dtype: Option<Dtype>) -> Result<ConvertSummary> {
    let mapped = Mapped::open(input)?;
    let mut loaded = load(&mapped)?;
    let mut cast = 0;
    if let Some(to) = dtype {
        for t in &mut loaded.tensors {
            if t.dtype != to
                && let Some(bytes) = zoo_formats::dtype::convert_float(&t.data, t.dtype, to)
            {
                t.data = Cow::Owned(bytes);
                t.dtype = to;
                cast += 1;
            }
        }
    }
    let mut metadata = loaded.metadata.clone();
    metadata
        .entry("format".into())
        .or_insert_with(|| "pt".into());
    write_safetensors(output, &loaded.tensors, Some(&metadata))?;
    Ok(ConvertSummary {
        input_format: loaded.format,
        tensors: loaded.tensors.len(),
        parameters: loaded.parameters(),
        bytes: loaded.bytes(),
        cast,
        skipped: loaded.skipped,
    })
}

/// Writes tensors as a safetensors file, atomically (see [`write_atomic`]).
pub fn write_safetensors(
    path: &Path,
    tensors: &[st::TensorData<'_>],
    metadata: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<()> {
    write_atomic(path, |w| {
        st::write(tensors, metadata, w).map_err(|error| Error::Write {
            path: path.to_path_buf(),
            error,
        })
    })
}

/// Writes a file atomically: a temporary file in the same folder, flushed and fsynced,
/// then renamed over `path`. On any error nothing is left at `path`'s name.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    write(&mut f)?;
    f.commit()
}

/// Writes `bytes` to `path` whole or not at all ([`write_atomic`]).
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes).map_err(|e| Error::io(path, e)))
}

/// Renames a finished temporary file over `path` after fsyncing it, then fsyncs the folder:
/// for writers that must be given a path (an image encoder), the same guarantee as
/// [`AtomicFile`].
pub fn persist_atomic(tmp: &Path, path: &Path) -> Result<()> {
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(tmp, e))?;
    std::fs::rename(tmp, path).map_err(|e| Error::io(path, e))?;
    sync_parent(path);
    Ok(())
}

/// fsyncs the folder holding `path`, so that a rename into it survives a crash (best
/// effort: some file systems cannot).
fn sync_parent(path: &Path) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A file that appears at its name complete or not at all: written to a temporary file in
/// the same folder, which [`commit`](AtomicFile::commit) flushes, fsyncs and renames over
/// the name (then fsyncs the folder). Dropped without a commit, it leaves nothing behind.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: std::io::BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<Self> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".zoo-tmp-")
            .tempfile_in(dir)
            .map_err(|e| Error::io(path, e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp: std::io::BufWriter::new(tmp),
        })
    }

    /// Flushes, fsyncs and renames the file into place.
    pub fn commit(self) -> Result<()> {
        let path = self.path;
        let tmp = self
            .tmp
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        tmp.as_file().sync_all().map_err(|e| Error::io(&path, e))?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        sync_parent(&path);
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tmp.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.tmp.write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.tmp.flush()
    }
}

/// One scanned file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    #[serde(flatten)]
    pub report: Report,
}

/// Scans files and directories (recursively). In directories, only files that look like
/// checkpoints by name or content are reported; named files are always reported.
pub fn scan_paths(paths: &[PathBuf]) -> Result<Vec<FileReport>> {
    let mut out = Vec::new();
    for root in paths {
        let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
        if meta.is_file() {
            out.push(scan_file(root)?);
            continue;
        }
        for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(root).to_path_buf();
                Error::Io {
                    path,
                    error: e.into(),
                }
            })?;
            if !entry.file_type().is_file() {
                continue;
            }
            let report = scan_file(entry.path())?;
            if report.report.kind != Kind::Other || report.report.expected.is_some() {
                out.push(report);
            }
        }
    }
    Ok(out)
}

/// Scans one file.
pub fn scan_file(path: &Path) -> Result<FileReport> {
    let mapped = Mapped::open(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(FileReport {
        path: path.to_path_buf(),
        report: scan::scan_bytes(&name, mapped.bytes()),
    })
}
