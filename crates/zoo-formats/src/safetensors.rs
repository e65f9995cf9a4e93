//! The one strict safetensors validator, and the writer.
//!
//! [`validate`] is the single verdict on a safetensors file used by every part of zoo:
//! the hub refuses an upload that fails it, the client refuses a download that fails it,
//! `zoo scan` and `zoo inspect` report it. It works on a byte slice (usually a memory map)
//! and allocates only for the header.
//!
//! Rules, each with its own [`SafetensorsError`] variant:
//! - the file holds at least the 8-byte little-endian header length;
//! - the header length is at most [`MAX_HEADER_LEN`] and lies within the file;
//! - the header is UTF-8 JSON, an object, with no duplicate keys;
//! - `__metadata__`, if present, maps strings to strings;
//! - every other entry is `{dtype, shape, data_offsets}` and nothing else, with a known dtype;
//! - shape × dtype size is computed without overflow and equals the entry's byte range;
//! - the byte ranges, sorted, start at 0 and are contiguous (so never overlap);
//! - the last range ends exactly at the end of the file (no trailing bytes).

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::dtype::Dtype;

/// Largest header accepted: 100 MB, as the reference implementation.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// Why a byte string is not a valid safetensors file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SafetensorsError {
    #[error("file is {len} bytes, too short for the 8-byte header length")]
    TooShort { len: usize },
    #[error("header length {header_len} exceeds the limit of {MAX_HEADER_LEN} bytes")]
    HeaderTooLarge { header_len: u64 },
    #[error("header length {header_len} runs past the end of the {file_len}-byte file")]
    HeaderOutOfBounds { header_len: u64, file_len: usize },
    #[error("header is not UTF-8")]
    HeaderNotUtf8,
    #[error("header is not a JSON object: {reason}")]
    HeaderNotJsonObject { reason: String },
    #[error("header has the key `{key}` twice")]
    DuplicateKey { key: String },
    #[error("`__metadata__` must map strings to strings: {reason}")]
    BadMetadata { reason: String },
    #[error("tensor `{name}`: {reason}")]
    BadEntry { name: String, reason: String },
    #[error("tensor `{name}`: unknown dtype `{dtype}`")]
    UnknownDtype { name: String, dtype: String },
    #[error("tensor `{name}`: shape {shape:?} × {dtype} overflows")]
    SizeOverflow {
        name: String,
        shape: Vec<u64>,
        dtype: Dtype,
    },
    #[error(
        "tensor `{name}`: shape {shape:?} × {dtype} is {expected} bytes but data_offsets [{begin}, {end}] hold {actual}"
    )]
    SizeMismatch {
        name: String,
        shape: Vec<u64>,
        dtype: Dtype,
        expected: u64,
        begin: u64,
        end: u64,
        actual: u64,
    },
    #[error("tensor `{name}`: data_offsets [{begin}, {end}] are reversed")]
    ReversedOffsets { name: String, begin: u64, end: u64 },
    #[error(
        "tensor `{name}`: data starts at {begin}, expected {expected} (ranges must be contiguous and not overlap)"
    )]
    NotContiguous {
        name: String,
        begin: u64,
        expected: u64,
    },
    #[error("data section is {data_len} bytes but tensors end at {end}")]
    OutOfRange { end: u64, data_len: u64 },
    #[error("{trailing} trailing bytes after the last tensor")]
    TrailingBytes { trailing: u64 },
}

/// One tensor as the header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Byte range relative to the start of the data section.
    pub data_offsets: (usize, usize),
}

impl TensorInfo {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn nbytes(&self) -> usize {
        self.data_offsets.1 - self.data_offsets.0
    }
}

/// A validated header: tensors in file order (sorted by offset), metadata, and where data starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub tensors: Vec<TensorInfo>,
    pub metadata: Option<BTreeMap<String, String>>,
    /// Absolute offset of the data section in the file (8 + header length).
    pub data_start: usize,
}

impl Header {
    /// The bytes of one tensor inside the file the header was validated against.
    pub fn tensor_bytes<'a>(&self, file: &'a [u8], info: &TensorInfo) -> &'a [u8] {
        &file[self.data_start + info.data_offsets.0..self.data_start + info.data_offsets.1]
    }
}

/// Key/value pairs of a JSON object in order, keeping duplicates so they can be refused.
struct Entries(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        deserializer.deserialize_map(V)
    }
}

fn bad(name: &str, reason: impl Into<String>) -> SafetensorsError {
    SafetensorsError::BadEntry {
        name: name.to_string(),
        reason: reason.into(),
    }
}

fn as_u64(v: &Value, name: &str, what: &str) -> Result<u64, SafetensorsError> {
    v.as_u64().ok_or_else(|| {
        bad(
            name,
            format!("{what} must be a non-negative integer, got {v}"),
        )
    })
}

/// Validates a whole safetensors file held in memory (usually a memory map).
pub fn validate(file: &[u8]) -> Result<Header, SafetensorsError> {
    let header_bytes = header_slice(file)?;
    let data_start = 8 + header_bytes.len();
    let data_len = (file.len() - data_start) as u64;
    let header = std::str::from_utf8(header_bytes).map_err(|_| SafetensorsError::HeaderNotUtf8)?;
    if !header.trim_start().starts_with('{') {
        return Err(SafetensorsError::HeaderNotJsonObject {
            reason: "does not start with `{`".into(),
        });
    }
    let entries: Entries =
        serde_json::from_str(header).map_err(|e| SafetensorsError::HeaderNotJsonObject {
            reason: e.to_string(),
        })?;

    let mut seen = HashSet::new();
    let mut metadata = None;
    let mut tensors = Vec::with_capacity(entries.0.len());
    for (key, value) in entries.0 {
        if !seen.insert(key.clone()) {
            return Err(SafetensorsError::DuplicateKey { key });
        }
        if key == "__metadata__" {
            metadata = Some(parse_metadata(value)?);
            continue;
        }
        tensors.push(parse_entry(&key, &value)?);
    }

    tensors.sort_by(|a, b| (a.data_offsets, &a.name).cmp(&(b.data_offsets, &b.name)));
    let mut expected = 0u64;
    for t in &tensors {
        let begin = t.data_offsets.0 as u64;
        if begin != expected {
            return Err(SafetensorsError::NotContiguous {
                name: t.name.clone(),
                begin,
                expected,
            });
        }
        expected = t.data_offsets.1 as u64;
    }
    if expected > data_len {
        return Err(SafetensorsError::OutOfRange {
            end: expected,
            data_len,
        });
    }
    if expected < data_len {
        return Err(SafetensorsError::TrailingBytes {
            trailing: data_len - expected,
        });
    }
    Ok(Header {
        tensors,
        metadata,
        data_start,
    })
}

/// The header bytes, after checking the length prefix.
fn header_slice(file: &[u8]) -> Result<&[u8], SafetensorsError> {
    if file.len() < 8 {
        return Err(SafetensorsError::TooShort { len: file.len() });
    }
    let header_len = u64::from_le_bytes(file[..8].try_into().unwrap());
    if header_len > MAX_HEADER_LEN {
        return Err(SafetensorsError::HeaderTooLarge { header_len });
    }
    if header_len > (file.len() - 8) as u64 {
        return Err(SafetensorsError::HeaderOutOfBounds {
            header_len,
            file_len: file.len(),
        });
    }
    Ok(&file[8..8 + header_len as usize])
}

fn parse_metadata(value: Value) -> Result<BTreeMap<String, String>, SafetensorsError> {
    let Value::Object(map) = value else {
        return Err(SafetensorsError::BadMetadata {
            reason: format!("got {value}"),
        });
    };
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            other => Err(SafetensorsError::BadMetadata {
                reason: format!("value of `{k}` is {other}"),
            }),
        })
        .collect()
}

fn parse_entry(name: &str, value: &Value) -> Result<TensorInfo, SafetensorsError> {
    let Value::Object(obj) = value else {
        return Err(bad(name, format!("entry must be an object, got {value}")));
    };
    for k in obj.keys() {
        if !matches!(k.as_str(), "dtype" | "shape" | "data_offsets") {
            return Err(bad(name, format!("unexpected field `{k}`")));
        }
    }
    let dtype_name = obj
        .get("dtype")
        .ok_or_else(|| bad(name, "missing `dtype`"))?
        .as_str()
        .ok_or_else(|| bad(name, "`dtype` must be a string"))?;
    let dtype = Dtype::ALL
        .into_iter()
        .find(|d| d.as_str() == dtype_name)
        .ok_or_else(|| SafetensorsError::UnknownDtype {
            name: name.to_string(),
            dtype: dtype_name.to_string(),
        })?;
    let shape: Vec<u64> = obj
        .get("shape")
        .ok_or_else(|| bad(name, "missing `shape`"))?
        .as_array()
        .ok_or_else(|| bad(name, "`shape` must be an array"))?
        .iter()
        .map(|d| as_u64(d, name, "a dimension"))
        .collect::<Result<_, _>>()?;
    let offsets = obj
        .get("data_offsets")
        .ok_or_else(|| bad(name, "missing `data_offsets`"))?
        .as_array()
        .ok_or_else(|| bad(name, "`data_offsets` must be an array"))?;
    let [begin, end] = offsets.as_slice() else {
        return Err(bad(name, "`data_offsets` must hold exactly two integers"));
    };
    let (begin, end) = (
        as_u64(begin, name, "an offset")?,
        as_u64(end, name, "an offset")?,
    );
    if end < begin {
        return Err(SafetensorsError::ReversedOffsets {
            name: name.to_string(),
            begin,
            end,
        });
    }
    let expected = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.size() as u64))
        .filter(|&n| usize::try_from(n).is_ok())
        .ok_or_else(|| SafetensorsError::SizeOverflow {
            name: name.to_string(),
            shape: shape.clone(),
            dtype,
        })?;
    if expected != end - begin {
        return Err(SafetensorsError::SizeMismatch {
            name: name.to_string(),
            shape,
            dtype,
            expected,
            begin,
            end,
            actual: end - begin,
        });
    }
    let to_usize =
        |v: u64| usize::try_from(v).map_err(|_| bad(name, "offset does not fit in memory"));
    Ok(TensorInfo {
        name: name.to_string(),
        dtype,
        shape: shape.iter().map(|&d| d as usize).collect(),
        data_offsets: (to_usize(begin)?, to_usize(end)?),
    })
}

/// A tensor to write: its name, dtype, shape and little-endian contiguous bytes.
#[derive(Debug, Clone)]
pub struct TensorData<'a> {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: std::borrow::Cow<'a, [u8]>,
}

struct View<'b, 'a>(&'b TensorData<'a>);

impl safetensors::View for View<'_, '_> {
    fn dtype(&self) -> safetensors::Dtype {
        self.0.dtype.to_safetensors()
    }
    fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.0.data)
    }
    fn data_len(&self) -> usize {
        self.0.data.len()
    }
}

/// Why tensors could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("tensor `{name}`: {len} bytes do not match shape {shape:?} × {dtype}")]
    WrongLength {
        name: String,
        shape: Vec<usize>,
        dtype: Dtype,
        len: usize,
    },
    #[error("tensor name `{0}` appears twice")]
    DuplicateName(String),
    #[error("`__metadata__` is reserved and cannot name a tensor")]
    ReservedName,
    #[error("serialising safetensors: {0}")]
    Serialize(#[from] safetensors::SafeTensorError),
}

/// Serialises tensors into a writer, laid out exactly as `safetensors.torch.save_file`
/// lays them out (the same Rust core: sorted by alignment then name, header padded
/// to 8 bytes), so the output is byte-identical to PyTorch's export.
pub fn write<W: std::io::Write>(
    tensors: &[TensorData<'_>],
    metadata: Option<&BTreeMap<String, String>>,
    writer: W,
) -> Result<(), WriteError> {
    check_tensors(tensors)?;
    let views: Vec<(String, View<'_, '_>)> =
        tensors.iter().map(|t| (t.name.clone(), View(t))).collect();
    let meta = metadata.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    let mut writer = writer;
    let bytes = safetensors::serialize(views, meta)?;
    writer
        .write_all(&bytes)
        .map_err(|e| WriteError::Serialize(safetensors::SafeTensorError::IoError(e)))?;
    Ok(())
}

/// Serialises tensors into a new buffer; see [`write`].
pub fn to_vec(
    tensors: &[TensorData<'_>],
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<Vec<u8>, WriteError> {
    let mut out = Vec::new();
    write(tensors, metadata, &mut out)?;
    Ok(out)
}

fn check_tensors(tensors: &[TensorData<'_>]) -> Result<(), WriteError> {
    let mut names = HashSet::new();
    for t in tensors {
        if t.name == "__metadata__" {
            return Err(WriteError::ReservedName);
        }
        if !names.insert(t.name.as_str()) {
            return Err(WriteError::DuplicateName(t.name.clone()));
        }
        let expected = t
            .shape
            .iter()
            .try_fold(t.dtype.size(), |a, &d| a.checked_mul(d));
        if expected != Some(t.data.len()) {
            return Err(WriteError::WrongLength {
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype,
                len: t.data.len(),
            });
        }
    }
    Ok(())
}

/// Whether the first bytes look like a safetensors header: a plausible length followed by `{`.
pub fn looks_like(prefix: &[u8]) -> bool {
    if prefix.len() < 9 {
        return false;
    }
    let n = u64::from_le_bytes(prefix[..8].try_into().unwrap());
    (2..=MAX_HEADER_LEN).contains(&n) && prefix[8] == b'{'
}
