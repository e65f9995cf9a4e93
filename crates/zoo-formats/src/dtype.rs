//! Element types shared by safetensors and PyTorch storages.

use std::fmt;
use std::str::FromStr;

/// An element type, spelled as safetensors spells it.
///
/// Only byte-sized types are known; anything else is refused by the validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dtype {
    Bool,
    U8,
    I8,
    F8E5M2,
    F8E4M3,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    F64,
    I64,
    U64,
}

impl Dtype {
    pub const ALL: [Dtype; 15] = [
        Dtype::Bool,
        Dtype::U8,
        Dtype::I8,
        Dtype::F8E5M2,
        Dtype::F8E4M3,
        Dtype::I16,
        Dtype::U16,
        Dtype::F16,
        Dtype::BF16,
        Dtype::I32,
        Dtype::U32,
        Dtype::F32,
        Dtype::F64,
        Dtype::I64,
        Dtype::U64,
    ];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 | Dtype::F8E5M2 | Dtype::F8E4M3 => 1,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::BF16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
        }
    }

    /// The name used in safetensors headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::F8E5M2 => "F8_E5M2",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64 | Dtype::F8E4M3 | Dtype::F8E5M2
        )
    }

    /// The dtype of a PyTorch legacy typed storage class (`torch.FloatStorage` → F32).
    pub fn from_torch_storage(name: &str) -> Option<Dtype> {
        Some(match name {
            "FloatStorage" => Dtype::F32,
            "DoubleStorage" => Dtype::F64,
            "HalfStorage" => Dtype::F16,
            "BFloat16Storage" => Dtype::BF16,
            "LongStorage" => Dtype::I64,
            "IntStorage" => Dtype::I32,
            "ShortStorage" => Dtype::I16,
            "CharStorage" => Dtype::I8,
            "ByteStorage" => Dtype::U8,
            "BoolStorage" => Dtype::Bool,
            _ => return None,
        })
    }

    /// The dtype a `torch.<name>` dtype global stands for (`torch.float32` → F32).
    pub fn from_torch_dtype(name: &str) -> Option<Dtype> {
        Some(match name {
            "float32" | "float" => Dtype::F32,
            "float64" | "double" => Dtype::F64,
            "float16" | "half" => Dtype::F16,
            "bfloat16" => Dtype::BF16,
            "int64" | "long" => Dtype::I64,
            "int32" | "int" => Dtype::I32,
            "int16" | "short" => Dtype::I16,
            "int8" => Dtype::I8,
            "uint8" => Dtype::U8,
            "bool" => Dtype::Bool,
            "uint16" => Dtype::U16,
            "uint32" => Dtype::U32,
            "uint64" => Dtype::U64,
            "float8_e4m3fn" => Dtype::F8E4M3,
            "float8_e5m2" => Dtype::F8E5M2,
            _ => return None,
        })
    }

    pub(crate) fn to_safetensors(self) -> safetensors::Dtype {
        use safetensors::Dtype as S;
        match self {
            Dtype::Bool => S::BOOL,
            Dtype::U8 => S::U8,
            Dtype::I8 => S::I8,
            Dtype::F8E5M2 => S::F8_E5M2,
            Dtype::F8E4M3 => S::F8_E4M3,
            Dtype::I16 => S::I16,
            Dtype::U16 => S::U16,
            Dtype::F16 => S::F16,
            Dtype::BF16 => S::BF16,
            Dtype::I32 => S::I32,
            Dtype::U32 => S::U32,
            Dtype::F32 => S::F32,
            Dtype::F64 => S::F64,
            Dtype::I64 => S::I64,
            Dtype::U64 => S::U64,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown dtype name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dtype `{0}`")]
pub struct UnknownDtype(pub String);

impl FromStr for Dtype {
    type Err = UnknownDtype;

    /// Accepts the safetensors spelling (`F32`) and the common lower-case one (`f32`, `bf16`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dtype::ALL
            .into_iter()
            .find(|d| d.as_str() == s || d.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownDtype(s.to_string()))
    }
}

/// Converts a buffer of floating-point elements from one dtype to another the way
/// PyTorch's `Tensor.to(dtype)` does on CPU: every narrowing goes through f32 (c10's
/// `Half` and `BFloat16` are built from `float`), rounding to nearest even.
///
/// Returns `None` when either dtype is not one of F16, BF16, F32, F64.
pub fn convert_float(bytes: &[u8], from: Dtype, to: Dtype) -> Option<Vec<u8>> {
    use half::{bf16, f16};
    if from == to {
        return Some(bytes.to_vec());
    }
    if to == Dtype::F64 {
        let wide: Vec<f64> = match from {
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f64())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f64())
                .collect(),
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            _ => return None,
        };
        return Some(wide.into_iter().flat_map(f64::to_le_bytes).collect());
    }
    let narrow = to_f32(bytes, from)?;
    Some(match to {
        Dtype::F16 => narrow
            .into_iter()
            .flat_map(|v| f16::from_f32(v).to_le_bytes())
            .collect(),
        Dtype::BF16 => narrow
            .into_iter()
            .flat_map(|v| bf16::from_f32(v).to_le_bytes())
            .collect(),
        Dtype::F32 => narrow.into_iter().flat_map(f32::to_le_bytes).collect(),
        _ => return None,
    })
}

/// Little-endian F16, BF16, F32 or F64 elements as f32 (F64 rounded as `Tensor.to` does).
/// `None` for any other dtype.
pub fn to_f32(bytes: &[u8], from: Dtype) -> Option<Vec<f32>> {
    use half::{bf16, f16};
    Some(match from {
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        _ => return None,
    })
}
