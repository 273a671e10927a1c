//! A hand-written reader for TFLite flatbuffers (schema version 3), no dependencies.
//!
//! [`parse_tflite`] turns the bytes of a `.tflite` file into a [`TfliteModel`]: owned, plain
//! data (tensor names, shapes, quantization, operators with their decoded options) that
//! borrows only the constant tensors' bytes from the file. The importer that builds the IR
//! consumes it.
//!
//! The reader checks the file, not the model: every offset, vtable, vector length and string
//! is bounds-checked, every tensor, buffer and operator-code index is checked to be in range,
//! and constant data must be as long as its tensor's shape and type say. Anything else is an
//! [`Error::Model`] that says what and where (byte offset, operator or
//! tensor index and name); nothing panics. Operators are not judged: one edgemm cannot run
//! is returned like any other ([`BuiltinOp::Other`], or [`BuiltinOp::Custom`] with its
//! custom code), so a caller can list every unsupported operator at once.
//!
//! Not supported (an error naming it): more than one subgraph, sparse tensors, custom
//! quantization details, buffers stored outside the flatbuffer (models over 2 GB), the
//! shuffled FULLY_CONNECTED weights format.

mod flatbuf;
mod ops;
mod reader;

use alloc::string::String;
use alloc::vec::Vec;

use crate::Error;

pub use ops::{Activation, BuiltinOp, OpOptions, Padding};

/// A TFLite model's single subgraph, with the model-level fields.
#[derive(Clone, Debug, PartialEq)]
pub struct TfliteModel<'a> {
    /// The schema version (always 3: other versions are an error).
    pub version: u32,
    /// The model's description (the converter writes e.g. `"MLIR Converted."`).
    pub description: Option<String>,
    /// The subgraph's name, if any.
    pub subgraph_name: Option<String>,
    /// Every tensor of the subgraph; operators and inputs/outputs index into it.
    pub tensors: Vec<TfTensor<'a>>,
    /// The operators in execution order.
    pub operators: Vec<TfOperator<'a>>,
    /// Indices of the model's input tensors.
    pub inputs: Vec<usize>,
    /// Indices of the model's output tensors.
    pub outputs: Vec<usize>,
}

/// A tensor: activation, model input/output, or constant (weights, biases, shapes).
#[derive(Clone, Debug, PartialEq)]
pub struct TfTensor<'a> {
    /// The name (empty if the file has none).
    pub name: String,
    /// The element type.
    pub dtype: TfDtype,
    /// The shape, outermost first (NHWC for images). A dimension may be -1 only in
    /// `shape_signature`; here unknown dimensions are usually 1.
    pub shape: Vec<i32>,
    /// The shape with unknown dimensions as -1, when the file has it.
    pub shape_signature: Option<Vec<i32>>,
    /// The constant data, borrowed from the file (little-endian elements, row-major), or
    /// `None` for tensors computed at run time. Its length matches shape × element size
    /// (checked for every type with a fixed size; INT4 is two per byte).
    pub data: Option<&'a [u8]>,
    /// Quantization parameters, when the tensor has scales.
    pub quant: Option<TfQuant>,
    /// A variable tensor (state kept between runs).
    pub is_variable: bool,
}

/// Affine quantization: `real = scale * (q - zero_point)`, per tensor (one scale) or per
/// channel along `quantized_dimension`.
#[derive(Clone, Debug, PartialEq)]
pub struct TfQuant {
    /// One scale per tensor, or one per channel (never empty).
    pub scale: Vec<f32>,
    /// As many zero points as scales.
    pub zero_point: Vec<i64>,
    /// The channel axis, checked to be inside the shape with as many entries as scales when
    /// there is more than one scale.
    pub quantized_dimension: usize,
    /// Recorded float ranges (often empty).
    pub min: Vec<f32>,
    /// Recorded float ranges (often empty).
    pub max: Vec<f32>,
}

/// An operator with its tensors and decoded options.
#[derive(Clone, Debug, PartialEq)]
pub struct TfOperator<'a> {
    /// Which operator.
    pub op: BuiltinOp,
    /// The operator version from its operator code (which options and types it may use).
    pub version: i32,
    /// The custom code (the operator's name) of a [`BuiltinOp::Custom`].
    pub custom_code: Option<String>,
    /// Input tensor indices; `None` for an optional input left out (-1 in the file).
    pub inputs: Vec<Option<usize>>,
    /// Output tensor indices.
    pub outputs: Vec<usize>,
    /// The decoded builtin options.
    pub options: OpOptions,
    /// The raw custom options (usually a flexbuffer) of a custom operator, borrowed.
    pub custom_options: Option<&'a [u8]>,
}

impl TfOperator<'_> {
    /// A name for messages: the custom code of a custom operator (unless empty), else
    /// TFLite's name.
    pub fn name(&self) -> &str {
        match (&self.op, &self.custom_code) {
            (BuiltinOp::Custom, Some(code)) if !code.is_empty() => code,
            _ => self.op.name(),
        }
    }
}

/// `enum TensorType : byte` from `schema.fbs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TfDtype {
    Float32,
    Float16,
    Int32,
    Uint8,
    Int64,
    String,
    Bool,
    Int16,
    Complex64,
    Int8,
    Float64,
    Complex128,
    Uint64,
    Resource,
    Variant,
    Uint32,
    Uint16,
    Int4,
    Bfloat16,
    /// A code newer than this list.
    Other(i8),
}

impl TfDtype {
    /// The type for a `TensorType` code.
    pub fn from_code(code: i8) -> Self {
        use TfDtype::*;
        match code {
            0 => Float32,
            1 => Float16,
            2 => Int32,
            3 => Uint8,
            4 => Int64,
            5 => String,
            6 => Bool,
            7 => Int16,
            8 => Complex64,
            9 => Int8,
            10 => Float64,
            11 => Complex128,
            12 => Uint64,
            13 => Resource,
            14 => Variant,
            15 => Uint32,
            16 => Uint16,
            17 => Int4,
            18 => Bfloat16,
            other => Other(other),
        }
    }

    /// TFLite's name for the type (`"INT8"`).
    pub fn name(self) -> &'static str {
        use TfDtype::*;
        match self {
            Float32 => "FLOAT32",
            Float16 => "FLOAT16",
            Int32 => "INT32",
            Uint8 => "UINT8",
            Int64 => "INT64",
            String => "STRING",
            Bool => "BOOL",
            Int16 => "INT16",
            Complex64 => "COMPLEX64",
            Int8 => "INT8",
            Float64 => "FLOAT64",
            Complex128 => "COMPLEX128",
            Uint64 => "UINT64",
            Resource => "RESOURCE",
            Variant => "VARIANT",
            Uint32 => "UINT32",
            Uint16 => "UINT16",
            Int4 => "INT4",
            Bfloat16 => "BFLOAT16",
            Other(_) => "UNKNOWN",
        }
    }

    /// Bits per element for types stored at a fixed size (INT4 is 4: two per byte), `None`
    /// for STRING, RESOURCE, VARIANT and unknown types.
    pub fn bits(self) -> Option<usize> {
        use TfDtype::*;
        Some(match self {
            Int4 => 4,
            Bool | Uint8 | Int8 => 8,
            Float16 | Int16 | Uint16 | Bfloat16 => 16,
            Float32 | Int32 | Uint32 => 32,
            Int64 | Uint64 | Float64 | Complex64 => 64,
            Complex128 => 128,
            String | Resource | Variant | Other(_) => return None,
        })
    }
}

impl core::fmt::Display for TfDtype {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads a `.tflite` file (the whole file, in memory). See the [module docs](self) for what
/// is checked; every problem is an [`Error::Model`] that says what and where.
///
/// ```
/// # use edgemm::nn::transform::tflite::parse_tflite;
/// let err = parse_tflite(b"not a model").unwrap_err();
/// assert!(err.to_string().contains("TFL3"));
/// ```
pub fn parse_tflite(bytes: &[u8]) -> Result<TfliteModel<'_>, Error> {
    reader::parse(bytes).map_err(Error::Model)
}
