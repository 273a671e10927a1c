//! The graph IR: tensors (shapes, types, quantization, constant data) and operator nodes in
//! execution order. Importers build it, passes rewrite it, lowering turns it into a blob.
//!
//! The operator vocabulary is TFLite's builtin operator set with its options (the runtime
//! implements TFLite's semantics); other formats import into it.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::Error;
use crate::nn::dtype::DType;
use crate::nn::error::{ModelError, ModelFormat};

pub use super::tflite::{Activation, BuiltinOp, OpOptions, Padding};

/// A model as a graph.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub tensors: Vec<Tensor>,
    /// Operators in execution order.
    pub nodes: Vec<Node>,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
}

/// A tensor: an activation (no data) or a constant.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub quant: Option<Quant>,
    /// Little-endian bytes of a constant.
    pub data: Option<Vec<u8>>,
}

/// `real = scale · (q − zero_point)`, per tensor (one entry) or per channel along `axis`.
#[derive(Clone, Debug, PartialEq)]
pub struct Quant {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub axis: usize,
}

impl Quant {
    /// The scale and zero point of a per-tensor quantization (channel 0's otherwise).
    pub fn first(&self) -> (f32, i32) {
        (
            self.scale.first().copied().unwrap_or(0.0),
            self.zero_point.first().copied().unwrap_or(0) as i32,
        )
    }

    pub fn per_channel(&self) -> bool {
        self.scale.len() > 1
    }
}

/// An operator node.
#[derive(Clone, Debug)]
pub struct Node {
    pub op: BuiltinOp,
    /// The operator version the file declared.
    pub version: i32,
    pub options: OpOptions,
    /// Tensor indices; `None` for an absent optional input.
    pub inputs: Vec<Option<usize>>,
    pub outputs: Vec<usize>,
}

/// The largest tensor a graph may hold, in bytes (a blob addresses 4 GiB in all).
pub const MAX_TENSOR_BYTES: usize = 1 << 31;

/// Bytes of a tensor of `shape` with elements of `size` bytes, if at most
/// [`MAX_TENSOR_BYTES`] (zero dimensions count as one for the bound, so no stride of an empty
/// tensor overflows either).
pub fn checked_bytes(shape: &[usize], size: usize) -> Option<usize> {
    shape
        .iter()
        .try_fold(size, |a, &d| a.checked_mul(d.max(1)))
        .filter(|&b| b <= MAX_TENSOR_BYTES)?;
    Some(shape.iter().product::<usize>() * size)
}

impl Tensor {
    /// Elements (product of the shape). Saturates: the importers bound every tensor (TFLite
    /// by [`checked_bytes`], ONNX by its own element bound), and a shape that overflows must
    /// never look small.
    pub fn elems(&self) -> usize {
        self.shape
            .iter()
            .fold(1, |a: usize, &d| a.saturating_mul(d))
    }

    /// Bytes of its data (saturating, as [`Tensor::elems`]).
    pub fn byte_len(&self) -> usize {
        self.elems().saturating_mul(self.dtype.size())
    }
}

impl Graph {
    /// An error about node `i`, naming its operator.
    pub fn node_error(&self, i: usize, reason: &'static str) -> Error {
        let name = self.nodes.get(i).map_or("?", |n| n.op.name());
        Error::Model(
            ModelError::new(ModelFormat::Graph, reason)
                .with_operator(i)
                .with_name(name),
        )
    }

    /// An error about tensor `t`, naming it.
    pub fn tensor_error(&self, t: usize, reason: &'static str) -> Error {
        let name = self.tensors.get(t).map_or("?", |x| x.name.as_str());
        Error::Model(
            ModelError::new(ModelFormat::Graph, reason)
                .with_tensor(t)
                .with_name(name),
        )
    }

    /// Input `k` of node `i` (required).
    pub fn input(&self, i: usize, k: usize) -> Result<&Tensor, Error> {
        let t = self.input_index(i, k)?;
        Ok(&self.tensors[t])
    }

    /// The tensor index of input `k` of node `i` (required).
    pub fn input_index(&self, i: usize, k: usize) -> Result<usize, Error> {
        self.nodes
            .get(i)
            .and_then(|n| n.inputs.get(k).copied().flatten())
            .filter(|&t| t < self.tensors.len())
            .ok_or_else(|| self.node_error(i, "a required input is missing"))
    }

    /// The tensor index of output `k` of node `i` (required).
    pub fn output_index(&self, i: usize, k: usize) -> Result<usize, Error> {
        self.nodes
            .get(i)
            .and_then(|n| n.outputs.get(k).copied())
            .filter(|&t| t < self.tensors.len())
            .ok_or_else(|| self.node_error(i, "a required output is missing"))
    }
}
