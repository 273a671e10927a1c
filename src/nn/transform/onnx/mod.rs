//! ONNX models: a hand-written protobuf reader (no dependencies) and the importer into the
//! graph IR (float32 models and QDQ int8 models, opsets 11–21).
//!
//! [`parse_onnx`] turns the bytes of a `.onnx` file into an [`OnnxModel`]: the graph's nodes
//! with their attributes, initializers (constant tensors borrowing `raw_data` from the file,
//! or the typed `float_data`/`int32_data`/`int64_data`/`double_data` values), inputs and
//! outputs with their declared shapes, and the opset imports. Every length and offset is
//! bounds-checked ([`proto`]); a tensor whose data lives in an external file, a sparse
//! initializer, a segmented or string tensor is an error that says so.
//!
//! [`import_onnx`] builds the IR (TFLite's operators, NHWC activations) from it; see
//! [`import`](self::import) for the operators and the layout conversion.

mod import;
mod proto;
mod reader;

use alloc::string::String;
use alloc::vec::Vec;

use crate::nn::{ModelError, ModelFormat};
use crate::Error;

pub use import::{import_onnx, unsupported_nodes, IoLayout, OnnxOptions, OPERATORS};

/// The opsets of the default domain this importer accepts.
pub const OPSETS: core::ops::RangeInclusive<i64> = 11..=21;

/// A parsed `ModelProto`.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxModel<'a> {
    pub ir_version: i64,
    pub producer: String,
    /// `(domain, version)` of every `opset_import` (the default domain is `""`).
    pub opsets: Vec<(String, i64)>,
    pub graph: Option<OnnxGraph<'a>>,
}

/// A parsed `GraphProto`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OnnxGraph<'a> {
    pub name: String,
    /// Nodes in the file's order (ONNX requires topological order).
    pub nodes: Vec<OnnxNode<'a>>,
    pub initializers: Vec<OnnxTensor<'a>>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub value_info: Vec<ValueInfo>,
}

/// A `ValueInfoProto` of a tensor value.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    /// `TensorProto.DataType` (0 when not a tensor or not given).
    pub elem_type: i32,
    /// The declared shape, if any.
    pub shape: Option<Vec<Dim>>,
}

/// One dimension of a declared shape.
#[derive(Clone, Debug, PartialEq)]
pub enum Dim {
    Value(i64),
    /// A symbolic dimension (`"batch"`).
    Param(String),
    Unknown,
}

/// A `NodeProto`.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxNode<'a> {
    pub name: String,
    pub op_type: String,
    pub domain: String,
    /// Input value names (`""` for an absent optional input).
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<Attribute<'a>>,
    /// Byte offset of the node in the file.
    pub at: usize,
}

/// An `AttributeProto`.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribute<'a> {
    pub name: String,
    pub value: AttrValue<'a>,
}

/// An attribute's value (by its `AttributeType`).
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue<'a> {
    Float(f32),
    Int(i64),
    String(&'a [u8]),
    Tensor(OnnxTensor<'a>),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<&'a [u8]>),
    /// Graphs, sparse tensors, type protos (not read): the `AttributeType` code.
    Other(i32),
}

/// A `TensorProto` (an initializer or a constant attribute).
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxTensor<'a> {
    pub name: String,
    /// `TensorProto.DataType`: FLOAT 1, UINT8 2, INT8 3, UINT16 4, INT16 5, INT32 6,
    /// INT64 7, BOOL 9, FLOAT16 10, DOUBLE 11, UINT32 12, UINT64 13, ...
    pub data_type: i32,
    pub dims: Vec<i64>,
    pub data: TensorData<'a>,
    /// Byte offset of the tensor in the file.
    pub at: usize,
}

/// Where a tensor's values are.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData<'a> {
    /// `raw_data`: little-endian elements, borrowed from the file.
    Raw(&'a [u8]),
    /// `float_data`.
    F32(Vec<f32>),
    /// `double_data`.
    F64(Vec<f64>),
    /// `int32_data` (also int8/uint8/int16/uint16/bool/float16 bits), `int64_data` or
    /// `uint64_data`.
    Ints(Vec<i64>),
    /// No data field (an empty tensor, or missing data).
    None,
}

/// A tensor's values: floats widened or narrowed to f32, integers and bools to i64.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl OnnxTensor<'_> {
    fn error(&self, reason: &'static str) -> ModelError {
        ModelError::new(ModelFormat::Onnx, reason)
            .with_offset(self.at)
            .with_name(&self.name)
    }

    /// The shape, checked: no negative dimension, at most [`import::MAX_ELEMS`] elements.
    pub fn shape(&self) -> Result<Vec<usize>, ModelError> {
        let shape: Option<Vec<usize>> =
            self.dims.iter().map(|&d| usize::try_from(d).ok()).collect();
        let shape = shape.ok_or(self.error("a tensor has a negative dimension"))?;
        import::elems(&shape).ok_or(self.error("a tensor is too large"))?;
        Ok(shape)
    }

    /// The values, checked to be as many as the shape says.
    pub fn values(&self) -> Result<Values, ModelError> {
        let n = import::elems(&self.shape()?).unwrap_or(0);
        let ty = self.data_type;
        let size = match ty {
            1 | 6 | 12 => 4,
            2 | 3 | 9 => 1,
            4 | 5 | 10 => 2,
            7 | 11 | 13 => 8,
            _ => {
                return Err(self
                    .error("tensor data type {} is not supported")
                    .with_values(&[ty.into()]))
            }
        };
        let is_float = matches!(ty, 1 | 10 | 11);
        let wrong = || self.error("a tensor's data does not match its shape and type");
        let v = match &self.data {
            TensorData::Raw(r) => {
                if n.checked_mul(size) != Some(r.len()) {
                    return Err(wrong());
                }
                let mut words = r.chunks_exact(size).map(|c| {
                    let mut b = [0u8; 8];
                    b[..size].copy_from_slice(c);
                    u64::from_le_bytes(b)
                });
                match ty {
                    1 => Values::F32(words.map(|w| f32::from_bits(w as u32)).collect()),
                    10 => Values::F32(words.map(|w| super::import::f16_to_f32(w as u16)).collect()),
                    11 => Values::F32(words.map(|w| f64::from_bits(w) as f32).collect()),
                    3 => Values::I64(words.map(|w| w as u8 as i8 as i64).collect()),
                    5 => Values::I64(words.map(|w| w as u16 as i16 as i64).collect()),
                    6 => Values::I64(words.map(|w| w as u32 as i32 as i64).collect()),
                    _ => Values::I64(words.by_ref().map(|w| w as i64).collect()),
                }
            }
            TensorData::F32(f) if ty == 1 => Values::F32(f.clone()),
            TensorData::F64(f) if ty == 11 => Values::F32(f.iter().map(|&x| x as f32).collect()),
            TensorData::Ints(i) if ty == 10 => Values::F32(
                i.iter()
                    .map(|&w| super::import::f16_to_f32(w as u16))
                    .collect(),
            ),
            TensorData::Ints(i) if !is_float => Values::I64(i.clone()),
            TensorData::None if n == 0 => {
                if is_float {
                    Values::F32(Vec::new())
                } else {
                    Values::I64(Vec::new())
                }
            }
            _ => return Err(wrong()),
        };
        let len = match &v {
            Values::F32(x) => x.len(),
            Values::I64(x) => x.len(),
        };
        if len != n {
            return Err(wrong());
        }
        Ok(v)
    }
}

/// Whether `bytes` look like an ONNX model: a `ModelProto` starts with `ir_version`
/// (field 1, a varint from 1 to 15 today).
pub fn is_onnx(bytes: &[u8]) -> bool {
    matches!(bytes, [0x08, v, ..] if (1..=15).contains(v))
}

/// Reads a `.onnx` file and checks its opset: the default domain's must be within
/// [`OPSETS`]. Every problem is an [`Error::Model`] that says what and where.
///
/// ```
/// # use edgemm::nn::transform::onnx::parse_onnx;
/// assert!(parse_onnx(b"\x08\x07\x12\xff").is_err());
/// ```
pub fn parse_onnx(bytes: &[u8]) -> Result<OnnxModel<'_>, Error> {
    let m = reader::model(bytes).map_err(Error::Model)?;
    let e = |r| Error::Model(ModelError::new(ModelFormat::Onnx, r));
    if m.graph.is_none() {
        return Err(e("the model has no graph"));
    }
    match m
        .opsets
        .iter()
        .find(|(d, _)| d.is_empty() || d == "ai.onnx")
    {
        Some((_, v)) if OPSETS.contains(v) => Ok(m),
        Some((_, v)) => Err(Error::Model(
            ModelError::new(
                ModelFormat::Onnx,
                "opset {} is not supported (opsets 11 to 21 are); re-export the model with \
                 one of those",
            )
            .with_values(&[*v]),
        )),
        None => Err(e("the model imports no opset of the default ONNX domain")),
    }
}
