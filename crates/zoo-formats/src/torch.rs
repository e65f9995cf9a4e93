//! PyTorch checkpoints (`.bin`, `.pth`, `.pt`) read without running them.
//!
//! Two layouts exist. The zip format (PyTorch ≥ 1.6): `ARCHIVE/data.pkl` holds the object
//! pickle, `ARCHIVE/data/KEY` the raw bytes of each storage. The legacy format: five pickles
//! in a row (magic number, protocol version, system info, the object, the storage keys),
//! then each storage as a little-endian u64 element count and its bytes.
//!
//! The object pickle is read by the inert reader in [`crate::pickle`]. Only these calls
//! become tensors: `torch._utils._rebuild_tensor(_v2)`, `_rebuild_parameter(_with_state)`,
//! `torch._tensor._rebuild_from_type_v2`; only `collections.OrderedDict` and plain dicts
//! become mappings; storages come from persistent ids naming `torch.*Storage`. Anything else
//! in the tensor path is an error naming the global.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;

use crate::dtype::Dtype;
use crate::pickle::{self, Import, Node, NodeId, Pickle, PickleError};

/// Magic number at the start of a legacy checkpoint.
const LEGACY_MAGIC: u128 = 0x1950a86a20f9469cfc6c;
/// How deep nested dicts and lists may go before the reader gives up.
const MAX_DEPTH: usize = 64;
/// How many values the interpreter may visit in one checkpoint.
const MAX_VISITS: usize = 1 << 24;

/// Why a PyTorch checkpoint could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TorchError {
    #[error("{part}: {error}")]
    Pickle { part: String, error: PickleError },
    #[error("zip archive: {0}")]
    Zip(String),
    #[error("zip archive has no `*/data.pkl`")]
    NoDataPkl,
    #[error("zip archive has several `*/data.pkl`: {0:?}")]
    SeveralDataPkl(Vec<String>),
    #[error("checkpoint is stored big-endian; only little-endian checkpoints are read")]
    BigEndian,
    #[error("legacy header: {0}")]
    LegacyHeader(String),
    #[error("not a PyTorch checkpoint: starts with neither a zip header nor a pickle")]
    NotTorch,
    #[error(
        "the checkpoint is a pickled `{0}` object, not a state dict (save `model.state_dict()` instead)"
    )]
    NotAStateDict(String),
    #[error("`{path}`: calls `{global}`, which is not an allowed tensor constructor")]
    UnexpectedGlobal { path: String, global: String },
    #[error("`{path}`: {reason}")]
    BadTensor { path: String, reason: String },
    #[error("persistent id: {0}")]
    BadPersistentId(String),
    #[error("storage type `torch.{0}` is not supported")]
    UnsupportedStorage(String),
    #[error("storage `{key}` is used with two dtypes ({a} and {b})")]
    StorageDtypeConflict { key: String, a: Dtype, b: Dtype },
    #[error("storage `{0}` is referenced but not present in the file")]
    MissingStorage(String),
    #[error("storage `{key}` holds {have} bytes but {need} are needed")]
    StorageTooSmall { key: String, need: u64, have: u64 },
    #[error("tensor `{name}` reaches element {extent} of a storage with {numel} elements")]
    OutOfBounds {
        name: String,
        extent: u64,
        numel: u64,
    },
    #[error("nesting deeper than {MAX_DEPTH} levels or more than {MAX_VISITS} values")]
    TooComplex,
}

/// The layout a checkpoint was stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchFormat {
    Zip,
    Legacy,
}

impl TorchFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TorchFormat::Zip => "pytorch-zip",
            TorchFormat::Legacy => "pytorch-legacy",
        }
    }
}

/// A storage as the pickle names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    pub key: String,
    pub dtype: Dtype,
    /// Elements the pickle says it holds.
    pub numel: u64,
}

/// A tensor as a view of a storage: PyTorch's (storage, offset, size, stride), in elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    pub name: String,
    pub storage: usize,
    pub dtype: Dtype,
    pub offset: u64,
    pub shape: Vec<usize>,
    pub stride: Vec<u64>,
}

impl TensorRef {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the view is the row-major contiguous run starting at `offset`.
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1u64;
        for (&d, &s) in self.shape.iter().zip(&self.stride).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d as u64;
        }
        true
    }
}

/// A parsed checkpoint: its tensors (in pickle order), storages and their bytes.
#[derive(Debug)]
pub struct TorchCheckpoint<'a> {
    pub format: TorchFormat,
    pub tensors: Vec<TensorRef>,
    pub storages: Vec<Storage>,
    storage_bytes: Vec<Cow<'a, [u8]>>,
    /// Entries that are not tensors (epoch counters, hyper-parameters), by dotted path.
    pub skipped: Vec<String>,
    /// Every global the pickles name.
    pub imports: Vec<Import>,
}

impl<'a> TorchCheckpoint<'a> {
    /// Parses a whole checkpoint file held in memory.
    pub fn parse(file: &'a [u8]) -> Result<Self, TorchError> {
        if file.starts_with(b"PK\x03\x04") {
            parse_zip(file)
        } else if pickle::looks_like(file) || !file.is_empty() && pickle::read(file).is_ok() {
            parse_legacy(file)
        } else {
            Err(TorchError::NotTorch)
        }
    }

    /// The contiguous, row-major bytes of a tensor (borrowed when the view already is).
    pub fn tensor_bytes(&self, t: &TensorRef) -> Result<Cow<'_, [u8]>, TorchError> {
        let bytes: &[u8] = &self.storage_bytes[t.storage];
        let e = t.dtype.size() as u64;
        let numel = bytes.len() as u64 / e;
        let n = t.numel();
        if n == 0 {
            return Ok(Cow::Borrowed(&[]));
        }
        let mut extent = t.offset;
        for (&d, &s) in t.shape.iter().zip(&t.stride) {
            extent = (d as u64 - 1)
                .checked_mul(s)
                .and_then(|x| x.checked_add(extent))
                .ok_or_else(|| TorchError::OutOfBounds {
                    name: t.name.clone(),
                    extent: u64::MAX,
                    numel,
                })?;
        }
        if extent >= numel {
            return Err(TorchError::OutOfBounds {
                name: t.name.clone(),
                extent,
                numel,
            });
        }
        let e = e as usize;
        if t.is_contiguous() {
            let start = t.offset as usize * e;
            return Ok(Cow::Borrowed(&bytes[start..start + n * e]));
        }
        Ok(Cow::Owned(gather(
            bytes,
            e,
            t.offset as usize,
            &t.shape,
            &t.stride,
        )))
    }
}

/// Copies a strided view into row-major order.
fn gather(bytes: &[u8], e: usize, offset: usize, shape: &[usize], stride: &[u64]) -> Vec<u8> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n * e);
    let rank = shape.len();
    let (inner, inner_stride) = (shape[rank - 1], stride[rank - 1] as usize);
    let outer = &shape[..rank - 1];
    let mut idx = vec![0usize; outer.len()];
    loop {
        let base = offset
            + idx
                .iter()
                .zip(stride)
                .map(|(&i, &s)| i * s as usize)
                .sum::<usize>();
        if inner_stride == 1 {
            out.extend_from_slice(&bytes[base * e..(base + inner) * e]);
        } else {
            for j in 0..inner {
                let at = (base + j * inner_stride) * e;
                out.extend_from_slice(&bytes[at..at + e]);
            }
        }
        // Odometer increment over the outer dimensions.
        let mut d = outer.len();
        loop {
            if d == 0 {
                return out;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < outer[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

fn zip_err(e: impl std::fmt::Display) -> TorchError {
    TorchError::Zip(e.to_string())
}

fn read_pickle(part: &str, bytes: &[u8]) -> Result<Pickle, TorchError> {
    pickle::read(bytes).map_err(|(error, _)| TorchError::Pickle {
        part: part.to_string(),
        error,
    })
}

fn parse_zip(file: &[u8]) -> Result<TorchCheckpoint<'_>, TorchError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(file)).map_err(zip_err)?;
    let pkl: Vec<String> = member_names(&archive)?
        .into_iter()
        .filter(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .collect();
    let prefix = match pkl.as_slice() {
        [] => return Err(TorchError::NoDataPkl),
        [one] => one.trim_end_matches("data.pkl").to_string(),
        _ => return Err(TorchError::SeveralDataPkl(pkl)),
    };
    if let Some(order) = entry(&mut archive, file, &format!("{prefix}byteorder"))?
        && order.as_ref() != b"little"
    {
        return Err(TorchError::BigEndian);
    }
    let data_pkl =
        entry(&mut archive, file, &format!("{prefix}data.pkl"))?.ok_or(TorchError::NoDataPkl)?;
    let part = format!("{prefix}data.pkl");
    let pickle = read_pickle(&part, &data_pkl)?;
    let state = interpret(&pickle, &Persistent::Zip)?;
    let mut storage_bytes = Vec::with_capacity(state.storages.len());
    for s in &state.storages {
        let name = format!("{prefix}data/{}", s.key);
        let bytes = entry(&mut archive, file, &name)?
            .ok_or_else(|| TorchError::MissingStorage(s.key.clone()))?;
        check_storage_len(s, bytes.len())?;
        storage_bytes.push(bytes);
    }
    Ok(TorchCheckpoint {
        format: TorchFormat::Zip,
        tensors: state.tensors,
        storages: state.storages,
        storage_bytes,
        skipped: state.skipped,
        imports: pickle.imports,
    })
}

fn member_names(
    archive: &zip::ZipArchive<std::io::Cursor<&[u8]>>,
) -> Result<Vec<String>, TorchError> {
    archive
        .file_names()
        .map(|n| n.map(|n| n.into_owned()).map_err(zip_err))
        .collect()
}

fn check_storage_len(s: &Storage, have: usize) -> Result<(), TorchError> {
    let need = s.numel.saturating_mul(s.dtype.size() as u64);
    if (have as u64) < need {
        return Err(TorchError::StorageTooSmall {
            key: s.key.clone(),
            need,
            have: have as u64,
        });
    }
    Ok(())
}

/// One zip member's bytes: borrowed from the file when stored uncompressed (PyTorch's case).
fn entry<'a>(
    archive: &mut zip::ZipArchive<std::io::Cursor<&'a [u8]>>,
    file: &'a [u8],
    name: &str,
) -> Result<Option<Cow<'a, [u8]>>, TorchError> {
    let mut member = match archive.by_name(name) {
        Ok(m) => m,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(zip_err(e)),
    };
    let size = member.size();
    if member.compression() == zip::CompressionMethod::Stored && member.compressed_size() == size {
        let start = member
            .data_start()
            .ok_or_else(|| zip_err(format!("{name}: no data offset")))?;
        let end = start.checked_add(size).filter(|&e| e <= file.len() as u64);
        let end =
            end.ok_or_else(|| zip_err(format!("{name}: member runs past the end of the file")))?;
        return Ok(Some(Cow::Borrowed(&file[start as usize..end as usize])));
    }
    if size > file.len() as u64 * 1032 {
        return Err(zip_err(format!("{name}: implausible compression ratio")));
    }
    let mut out = Vec::new();
    member
        .by_ref()
        .take(size)
        .read_to_end(&mut out)
        .map_err(|e| zip_err(format!("{name}: {e}")))?;
    Ok(Some(Cow::Owned(out)))
}

fn parse_legacy(file: &[u8]) -> Result<TorchCheckpoint<'_>, TorchError> {
    let mut pos = 0;
    let mut next = |part: &str| -> Result<Pickle, TorchError> {
        let p = read_pickle(part, &file[pos..])?;
        pos += p.len;
        Ok(p)
    };
    let magic = next("legacy magic number")?;
    if !is_legacy_magic(&magic) {
        return Err(TorchError::LegacyHeader("wrong magic number".into()));
    }
    let version = next("legacy protocol version")?;
    if version.int(version.root) != Some(1001) {
        return Err(TorchError::LegacyHeader(
            "protocol version is not 1001".into(),
        ));
    }
    let info = next("legacy system info")?;
    if let Node::Dict(items) = info.node(info.root) {
        for &(k, v) in items {
            if info.str(k) == Some("little_endian") && info.int(v) == Some(0) {
                return Err(TorchError::BigEndian);
            }
        }
    }
    let object = next("object pickle")?;
    let state = interpret(&object, &Persistent::Legacy)?;
    let keys_pickle = next("storage keys")?;
    let keys: Vec<String> = keys_pickle
        .seq(keys_pickle.root)
        .ok_or_else(|| TorchError::LegacyHeader("storage keys are not a list".into()))?
        .iter()
        .map(|&k| keys_pickle.str(k).map(str::to_string))
        .collect::<Option<_>>()
        .ok_or_else(|| TorchError::LegacyHeader("a storage key is not a string".into()))?;
    let index: HashMap<&str, usize> = state
        .storages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.key.as_str(), i))
        .collect();
    let mut storage_bytes: Vec<Option<Cow<'_, [u8]>>> = vec![None; state.storages.len()];
    for key in &keys {
        let i = *index
            .get(key.as_str())
            .ok_or_else(|| TorchError::LegacyHeader(format!("storage `{key}` is never used")))?;
        let s = &state.storages[i];
        let header = file
            .get(pos..pos + 8)
            .ok_or_else(|| TorchError::MissingStorage(key.clone()))?;
        let count = u64::from_le_bytes(header.try_into().unwrap());
        let len = count
            .checked_mul(s.dtype.size() as u64)
            .filter(|&l| l <= (file.len() - pos - 8) as u64);
        let len = len.ok_or_else(|| TorchError::StorageTooSmall {
            key: key.clone(),
            need: count.saturating_mul(s.dtype.size() as u64),
            have: (file.len() - pos - 8) as u64,
        })? as usize;
        let bytes = &file[pos + 8..pos + 8 + len];
        check_storage_len(s, bytes.len())?;
        storage_bytes[i] = Some(Cow::Borrowed(bytes));
        pos += 8 + len;
    }
    let storage_bytes = storage_bytes
        .into_iter()
        .zip(&state.storages)
        .map(|(b, s)| b.ok_or_else(|| TorchError::MissingStorage(s.key.clone())))
        .collect::<Result<_, _>>()?;
    let mut imports = magic.imports;
    for p in [
        version.imports,
        info.imports,
        object.imports,
        keys_pickle.imports,
    ] {
        for i in p {
            if !imports.contains(&i) {
                imports.push(i);
            }
        }
    }
    Ok(TorchCheckpoint {
        format: TorchFormat::Legacy,
        tensors: state.tensors,
        storages: state.storages,
        storage_bytes,
        skipped: state.skipped,
        imports,
    })
}

enum Persistent {
    Zip,
    Legacy,
}

struct State {
    tensors: Vec<TensorRef>,
    storages: Vec<Storage>,
    skipped: Vec<String>,
}

struct Interp<'p> {
    p: &'p Pickle,
    kind: &'p Persistent,
    storages: Vec<Storage>,
    by_key: HashMap<String, usize>,
    tensors: Vec<TensorRef>,
    skipped: Vec<String>,
    visits: usize,
}

/// Keys under which training scripts commonly nest the state dict.
const WRAPPERS: &[&str] = &["state_dict", "model_state_dict", "model", "module", "net"];

/// Turns the object pickle into a flat list of named tensors.
fn interpret(p: &Pickle, kind: &Persistent) -> Result<State, TorchError> {
    let mut it = Interp {
        p,
        kind,
        storages: Vec::new(),
        by_key: HashMap::new(),
        tensors: Vec::new(),
        skipped: Vec::new(),
        visits: 0,
    };
    let Some(mut root) = it.as_mapping(p.root, 0)? else {
        return Err(TorchError::NotAStateDict(it.describe(p.root)));
    };
    // `{"state_dict": {...}, "epoch": 3}`: the tensors live one level down.
    let holds_tensor =
        |it: &mut Interp<'_>, items: &[(NodeId, NodeId)]| -> Result<bool, TorchError> {
            for &(_, v) in items {
                if it.as_tensor_call(v)?.is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        };
    if !holds_tensor(&mut it, &root)? {
        for &(k, v) in &root.clone() {
            if p.str(k).is_some_and(|k| WRAPPERS.contains(&k))
                && let Some(inner) = it.as_mapping(v, 1)?
                && holds_tensor(&mut it, &inner)?
            {
                root = inner;
                break;
            }
        }
    }
    it.walk_items(&root, "", 1)?;
    Ok(State {
        tensors: it.tensors,
        storages: it.storages,
        skipped: it.skipped,
    })
}

impl Interp<'_> {
    fn tick(&mut self, depth: usize) -> Result<(), TorchError> {
        self.visits += 1;
        if depth > MAX_DEPTH || self.visits > MAX_VISITS {
            return Err(TorchError::TooComplex);
        }
        Ok(())
    }

    fn describe(&self, id: NodeId) -> String {
        match self.p.node(id) {
            Node::Call { callable, .. } => match self.p.global(*callable) {
                Some((m, n)) => format!("{m}.{n}"),
                None => "call".into(),
            },
            Node::List(_) => "list".into(),
            Node::Tuple(_) => "tuple".into(),
            Node::Str(_) => "str".into(),
            other => format!("{other:?}").chars().take(40).collect(),
        }
    }

    /// A dict, or a call to `collections.OrderedDict`, as key/value pairs.
    fn as_mapping(
        &mut self,
        id: NodeId,
        depth: usize,
    ) -> Result<Option<Vec<(NodeId, NodeId)>>, TorchError> {
        self.tick(depth)?;
        match self.p.node(id) {
            Node::Dict(items) => Ok(Some(items.clone())),
            Node::Call {
                callable,
                args,
                dict_items,
                ..
            } if self.p.global(*callable) == Some(("collections", "OrderedDict")) => {
                let mut items = Vec::new();
                // OrderedDict([(k, v), ...]) as well as OrderedDict() + SETITEMS.
                if let Some(&[first]) = self.p.seq(*args) {
                    for &pair in self.p.seq(first).unwrap_or(&[]) {
                        if let Some(&[k, v]) = self.p.seq(pair) {
                            items.push((k, v));
                        }
                    }
                }
                items.extend(dict_items.iter().copied());
                Ok(Some(items))
            }
            _ => Ok(None),
        }
    }

    fn key(&self, id: NodeId) -> String {
        match self.p.node(id) {
            Node::Str(s) => s.clone(),
            Node::Int(i) => i.to_string(),
            other => format!("{other:?}"),
        }
    }

    fn walk_items(
        &mut self,
        items: &[(NodeId, NodeId)],
        prefix: &str,
        depth: usize,
    ) -> Result<(), TorchError> {
        for &(k, v) in items {
            let path = if prefix.is_empty() {
                self.key(k)
            } else {
                format!("{prefix}.{}", self.key(k))
            };
            self.walk(v, path, depth + 1)?;
        }
        Ok(())
    }

    fn walk(&mut self, id: NodeId, path: String, depth: usize) -> Result<(), TorchError> {
        self.tick(depth)?;
        if let Some((callable, args)) = self.as_tensor_call(id)? {
            return self.tensor(callable, args, path, depth);
        }
        if let Some(items) = self.as_mapping(id, depth)? {
            return self.walk_items(&items, &path, depth);
        }
        match self.p.node(id) {
            Node::List(items) | Node::Tuple(items)
                if items
                    .iter()
                    .any(|&i| matches!(self.p.node(i), Node::Call { .. })) =>
            {
                for (i, &item) in items.clone().iter().enumerate() {
                    self.walk(item, format!("{path}.{i}"), depth + 1)?;
                }
                Ok(())
            }
            _ => {
                self.skipped.push(path);
                Ok(())
            }
        }
    }

    /// If `id` is a call to a tensor constructor, its (function name, args).
    fn as_tensor_call(&mut self, id: NodeId) -> Result<Option<(&'static str, NodeId)>, TorchError> {
        let Node::Call { callable, args, .. } = self.p.node(id) else {
            return Ok(None);
        };
        let name = match self.p.global(*callable) {
            Some(("torch._utils", "_rebuild_tensor_v2")) => "_rebuild_tensor_v2",
            Some(("torch._utils", "_rebuild_tensor")) => "_rebuild_tensor",
            Some(("torch._utils", "_rebuild_parameter")) => "_rebuild_parameter",
            Some(("torch._utils", "_rebuild_parameter_with_state")) => "_rebuild_parameter",
            Some(("torch._tensor", "_rebuild_from_type_v2")) => "_rebuild_from_type_v2",
            _ => return Ok(None),
        };
        Ok(Some((name, *args)))
    }

    fn tensor(
        &mut self,
        func: &'static str,
        args: NodeId,
        path: String,
        depth: usize,
    ) -> Result<(), TorchError> {
        self.tick(depth)?;
        let p = path.clone();
        let bad = move |reason: &str| TorchError::BadTensor {
            path: p.clone(),
            reason: format!("{func}: {reason}"),
        };
        let a = self
            .p
            .seq(args)
            .ok_or_else(|| bad("arguments are not a tuple"))?
            .to_vec();
        match func {
            "_rebuild_parameter" | "_rebuild_from_type_v2" => {
                // (data, requires_grad, hooks[, state]) or (func, type, args, state).
                let inner = if func == "_rebuild_parameter" {
                    *a.first().ok_or_else(|| bad("no data"))?
                } else {
                    let (&f, &inner_args) = (
                        a.first().ok_or_else(|| bad("no function"))?,
                        a.get(2).ok_or_else(|| bad("no arguments"))?,
                    );
                    match self.p.global(f) {
                        Some(("torch._utils", "_rebuild_tensor_v2")) => {
                            return self.tensor("_rebuild_tensor_v2", inner_args, path, depth + 1);
                        }
                        Some((m, n)) => {
                            return Err(TorchError::UnexpectedGlobal {
                                path,
                                global: format!("{m}.{n}"),
                            });
                        }
                        None => return Err(bad("function is not a global")),
                    }
                };
                match self.as_tensor_call(inner)? {
                    Some((f, inner_args)) => self.tensor(f, inner_args, path, depth + 1),
                    None => Err(match self.p.node(inner) {
                        Node::Call { callable, .. } => match self.p.global(*callable) {
                            Some((m, n)) => TorchError::UnexpectedGlobal {
                                path,
                                global: format!("{m}.{n}"),
                            },
                            None => bad("data is not a tensor"),
                        },
                        _ => bad("data is not a tensor"),
                    }),
                }
            }
            _ => {
                // (storage, storage_offset, size, stride, ...)
                if a.len() < 4 {
                    return Err(bad("fewer than 4 arguments"));
                }
                let (storage, base) = self.storage(a[0]).map_err(|e| match e {
                    TorchError::BadPersistentId(r) => bad(&r),
                    other => other,
                })?;
                let offset = self
                    .p
                    .int(a[1])
                    .and_then(|o| u64::try_from(o).ok())
                    .ok_or_else(|| bad("offset is not a non-negative integer"))?;
                let dims = |id: NodeId, what: &str| -> Result<Vec<u64>, TorchError> {
                    let items = self
                        .p
                        .seq(id)
                        .or_else(|| self.size_call(id))
                        .ok_or_else(|| bad(&format!("{what} is not a tuple")))?;
                    items
                        .iter()
                        .map(|&d| self.p.int(d).and_then(|v| u64::try_from(v).ok()))
                        .collect::<Option<Vec<u64>>>()
                        .ok_or_else(|| {
                            bad(&format!(
                                "{what} holds a value that is not a non-negative integer"
                            ))
                        })
                };
                let shape = dims(a[2], "size")?;
                let stride = dims(a[3], "stride")?;
                if shape.len() != stride.len() {
                    return Err(bad("size and stride differ in length"));
                }
                let shape = shape
                    .into_iter()
                    .map(|d| usize::try_from(d).ok())
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("dimension too large"))?;
                let dtype = self.storages[storage].dtype;
                self.tensors.push(TensorRef {
                    name: path,
                    storage,
                    dtype,
                    offset: offset
                        .checked_add(base)
                        .ok_or_else(|| bad("offset overflows"))?,
                    shape,
                    stride,
                });
                Ok(())
            }
        }
    }

    /// `torch.Size((...))` as its tuple.
    fn size_call(&self, id: NodeId) -> Option<&[NodeId]> {
        match self.p.node(id) {
            Node::Call { callable, args, .. }
                if self.p.global(*callable) == Some(("torch", "Size")) =>
            {
                self.p
                    .seq(*args)
                    .and_then(|a| a.first())
                    .and_then(|&t| self.p.seq(t))
            }
            _ => None,
        }
    }

    /// Resolves a persistent id to (storage index, extra element offset for legacy views).
    fn storage(&mut self, id: NodeId) -> Result<(usize, u64), TorchError> {
        let bad = |r: &str| TorchError::BadPersistentId(r.to_string());
        let Node::PersistentId(pid) = self.p.node(id) else {
            return Err(bad("storage argument is not a persistent id"));
        };
        let t = self.p.seq(*pid).ok_or_else(|| bad("not a tuple"))?;
        if t.len() < 5 || self.p.str(t[0]) != Some("storage") {
            return Err(bad("not a ('storage', type, key, location, numel) tuple"));
        }
        let dtype = match self.p.global(t[1]) {
            Some(("torch", "UntypedStorage")) => Dtype::U8,
            Some(("torch", name)) => Dtype::from_torch_storage(name)
                .ok_or_else(|| TorchError::UnsupportedStorage(name.to_string()))?,
            Some((m, n)) => {
                return Err(TorchError::UnexpectedGlobal {
                    path: "persistent id".into(),
                    global: format!("{m}.{n}"),
                });
            }
            None => return Err(bad("storage type is not a global")),
        };
        let key = self.key(t[2]);
        if key.is_empty() || key.contains(['/', '\\', '\0']) || key.contains("..") {
            return Err(bad(&format!("storage key `{key}` is not a plain name")));
        }
        let numel = self
            .p
            .int(t[4])
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| bad("numel is not a non-negative integer"))?;
        // Legacy storage views: (view_key, offset, size) into the root storage.
        let mut base = 0;
        if let (Persistent::Legacy, Some(&view)) = (self.kind, t.get(5))
            && let Some(&[_, off, _]) = self.p.seq(view)
        {
            base = self
                .p
                .int(off)
                .and_then(|o| u64::try_from(o).ok())
                .ok_or_else(|| bad("view offset"))?;
        }
        let index = match self.by_key.get(&key) {
            Some(&i) => {
                let s = &mut self.storages[i];
                if s.dtype != dtype {
                    return Err(TorchError::StorageDtypeConflict {
                        key,
                        a: s.dtype,
                        b: dtype,
                    });
                }
                s.numel = s.numel.max(numel);
                i
            }
            None => {
                self.storages.push(Storage {
                    key: key.clone(),
                    dtype,
                    numel,
                });
                self.by_key.insert(key, self.storages.len() - 1);
                self.storages.len() - 1
            }
        };
        Ok((index, base))
    }
}

/// Every pickle inside a PyTorch checkpoint or a bare pickle file, read for its imports:
/// `(part name, imports, error)`. Used by the scanner; nothing is interpreted.
pub fn pickle_parts(file: &[u8]) -> Vec<(String, Vec<Import>, Option<String>)> {
    let mut out = Vec::new();
    if file.starts_with(b"PK\x03\x04") {
        let mut archive = match zip::ZipArchive::new(std::io::Cursor::new(file)) {
            Ok(a) => a,
            Err(e) => {
                out.push(("zip archive".into(), Vec::new(), Some(e.to_string())));
                return out;
            }
        };
        let names = match member_names(&archive) {
            Ok(n) => n,
            Err(e) => {
                out.push(("zip archive".into(), Vec::new(), Some(e.to_string())));
                return out;
            }
        };
        for name in names.into_iter().filter(|n| n.ends_with(".pkl")) {
            match entry(&mut archive, file, &name) {
                Ok(Some(bytes)) => {
                    let (imports, err) = all_pickles(&bytes);
                    out.push((name, imports, err));
                }
                Ok(None) => {}
                Err(e) => out.push((name, Vec::new(), Some(e.to_string()))),
            }
        }
        return out;
    }
    let (imports, err) = all_pickles(file);
    out.push(("pickle".into(), imports, err));
    out
}

/// Reads pickles one after another (legacy checkpoints hold five) until the bytes no longer
/// start with a pickle; collects their imports and the first error.
pub fn all_pickles(bytes: &[u8]) -> (Vec<Import>, Option<String>) {
    let mut imports: Vec<Import> = Vec::new();
    let mut pos = 0;
    let mut count = 0;
    // A legacy checkpoint is exactly five pickles followed by raw storages.
    let mut max = usize::MAX;
    while pos < bytes.len() && count < max && (count == 0 || pickle::looks_like(&bytes[pos..])) {
        let result = pickle::read(&bytes[pos..]);
        let (seen, err) = match result {
            Ok(p) => {
                if count == 0 && is_legacy_magic(&p) {
                    max = 5;
                }
                pos += p.len;
                (p.imports, None)
            }
            Err((e, seen)) => (seen, Some(e.to_string())),
        };
        for i in seen {
            if !imports.contains(&i) {
                imports.push(i);
            }
        }
        if err.is_some() {
            return (imports, err);
        }
        count += 1;
    }
    if count == 0 {
        // Issue 16: an empty `pytorch_model.bin` scanned as a safe pickle.
        return (imports, Some("no pickle: the file is empty".into()));
    }
    (imports, None)
}

fn is_legacy_magic(p: &Pickle) -> bool {
    match p.node(p.root) {
        Node::BigInt(b) if b.len() <= 16 => {
            let mut buf = [0u8; 16];
            buf[..b.len()].copy_from_slice(b);
            u128::from_le_bytes(buf) == LEGACY_MAGIC
        }
        _ => false,
    }
}
