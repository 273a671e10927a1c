//! Element types of the runtime's tensors.

/// The element type of a tensor in a model blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DType {
    F32,
    I8,
    U8,
    I16,
    I32,
    I64,
    Bool,
    /// Weights packed for a GEMM kernel (a `PackedQBRef` blob): opaque bytes.
    Packed,
}

impl DType {
    /// The code stored in a blob.
    pub const fn code(self) -> u8 {
        match self {
            DType::F32 => 1,
            DType::I8 => 2,
            DType::U8 => 3,
            DType::I16 => 4,
            DType::I32 => 5,
            DType::I64 => 6,
            DType::Bool => 7,
            DType::Packed => 8,
        }
    }

    /// The type of a blob code, if known.
    pub const fn from_code(code: u8) -> Option<DType> {
        Some(match code {
            1 => DType::F32,
            2 => DType::I8,
            3 => DType::U8,
            4 => DType::I16,
            5 => DType::I32,
            6 => DType::I64,
            7 => DType::Bool,
            8 => DType::Packed,
            _ => return None,
        })
    }

    /// Bytes per element (1 for the opaque packed bytes).
    pub const fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::I8 | DType::U8 | DType::Bool | DType::Packed => 1,
            DType::I16 => 2,
            DType::I64 => 8,
        }
    }

    /// The lower-case name (`float32`, `int8`, ...), as TFLite and NumPy spell it.
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::Bool => "bool",
            DType::Packed => "packed",
        }
    }
}

impl core::fmt::Display for DType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
