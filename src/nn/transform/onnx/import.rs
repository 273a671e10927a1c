//! ONNX → IR (float32 models, and QDQ models: int8).
//!
//! **Layout.** ONNX images are NCHW, the runtime's operators NHWC. Every ONNX value is held
//! as an IR tensor plus a permutation `perm` (`ir.shape[i] = onnx.shape[perm[i]]`): Conv,
//! pooling and BatchNormalization produce NHWC (`[0, 2, 3, 1]`), element-wise operators keep
//! their input's layout, Reshape-like operators and Gemm/MatMul work in ONNX order. When an
//! operator needs a value in another layout, one TRANSPOSE is inserted (once per value and
//! layout; a RESHAPE when only size-1 dimensions move), so NCHW → NHWC happens once and
//! transposes that would cancel are never emitted; an ONNX Transpose only relabels the
//! layout. Constants are laid out at import (weights OHWI / `[1, kh, kw, c·m]` / `[n, k]`,
//! broadcast operands permuted). The model's inputs and outputs keep the layout the file
//! declares ([`IoLayout::AsDeclared`]), or 4-D ones are NHWC ([`IoLayout::Nhwc`], no
//! transpose at the edges).
//!
//! **Shapes.** Symbolic or unknown input dimensions are 1 unless [`OnnxOptions`] gives the
//! input's shape; every other shape is inferred here. Shape/Gather/Cast/Concat/Unsqueeze/...
//! chains on static shapes are folded to constants.
//!
//! **Operators.** Conv (group 1 or depthwise; dilations, pads, auto_pad), Gemm, MatMul, Add,
//! Sub, Mul, Div (by a constant), Relu, Clip, LeakyRelu, HardSigmoid, HardSwish, Sigmoid, Tanh,
//! Softmax, MaxPool (ceil_mode: the end padded with −∞), AveragePool, GlobalAveragePool,
//! BatchNormalization (a per-channel MUL+ADD, which the `fold_batch_norms` pass folds into
//! the conv or FC before it, as it folds an Add of a bias after a MatMul), Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Pad (constant mode),
//! ReduceMean, Max, Min, Identity, Dropout, Constant, and Shape, Gather, Cast, Slice,
//! ConstantOfShape on constants. Relu and Clip(0, 6) / Clip(0, ∞) / Clip(−1, 1) fold into a
//! preceding conv, FC, add, sub, mul or pool they are the only user of. Explicit pads that are not TFLite's SAME become a PAD (zeros, or −∞
//! before a max pool) and a VALID conv/pool. Anything else is an error naming the node and what
//! is not supported.
//!
//! **QDQ models** (onnxruntime's quantizer: QuantizeLinear/DequantizeLinear around float
//! operators) import as int8 operators. The graph is read as the float graph it wraps: a
//! QuantizeLinear of an activation gives that tensor the file's parameters and passes the
//! value on, the DequantizeLinear after it passes it on too (its parameters must be the
//! same), and a DequantizeLinear of constant weights gives their float values, remembered
//! with their scales so the conv or FC reading them keeps them (the integers come back
//! exactly). uint8 values become int8 by subtracting 128 from the values and zero points:
//! the same real numbers. Fusion looks through the Q/DQ pairs (a value read through two
//! DequantizeLinear nodes has two readers). When the whole file is read,
//! `passes::quantize::quantize_annotated` makes the graph int8 with those parameters
//! (float inputs and outputs, as the file has them).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{parse_onnx, AttrValue, Dim, OnnxGraph, OnnxNode, Values};
use crate::error::Error;
use crate::nn::dtype::DType;
use crate::nn::error::{ModelError, ModelFormat};
use crate::nn::transform::ir::{
    Activation, BuiltinOp, Graph, Node, OpOptions, Padding, Quant, Tensor,
};
use crate::nn::transform::passes::quantize::{quantize_annotated, Io};
use crate::nn::transform::passes::Pipeline;

/// The ONNX operator types the importer knows (whether a node imports also depends on its
/// attributes and inputs).
pub const OPERATORS: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "DequantizeLinear",
    "Div",
    "Dropout",
    "Flatten",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "LeakyRelu",
    "MatMul",
    "Max",
    "MaxPool",
    "Min",
    "Mul",
    "Pad",
    "QuantizeLinear",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

/// Every node of `g` whose operator type (or domain) the importer does not know:
/// `(node index, op type)`, so that a caller can list them all at once.
pub fn unsupported_nodes<'g>(g: &'g OnnxGraph<'_>) -> Vec<(usize, &'g str)> {
    g.nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            !(n.domain.is_empty() || n.domain == "ai.onnx")
                || !OPERATORS.contains(&n.op_type.as_str())
        })
        .map(|(i, n)| (i, n.op_type.as_str()))
        .collect()
}

/// The largest tensor (elements) an imported model may hold.
pub const MAX_ELEMS: usize = 1 << 24;

/// Elements of a shape, if at most [`MAX_ELEMS`] (counting zero dimensions as 1 for the
/// bound, so that no stride of an empty tensor overflows either).
pub(crate) fn elems(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d.max(1)))
        .filter(|&n| n <= MAX_ELEMS)?;
    Some(shape.iter().product())
}

/// The layout of the model's 4-D inputs and outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoLayout {
    /// As the file declares them (NCHW for images): a TRANSPOSE at each edge.
    #[default]
    AsDeclared,
    /// 4-D inputs and outputs NHWC (what firmware wants: no transpose buffer).
    Nhwc,
}

/// How to import an ONNX model.
#[derive(Clone, Debug, Default)]
pub struct OnnxOptions {
    /// Shapes for named inputs (in the file's layout), replacing the declared ones.
    pub input_shapes: Vec<(String, Vec<usize>)>,
    pub io_layout: IoLayout,
}

/// Reads a `.onnx` file into the IR.
pub fn import_onnx(bytes: &[u8], opts: &OnnxOptions) -> Result<Graph, Error> {
    let m = parse_onnx(bytes)?;
    let opset = m
        .opsets
        .iter()
        .find(|(d, _)| d.is_empty() || d == "ai.onnx")
        .map_or(0, |(_, v)| *v);
    let Some(g) = &m.graph else {
        return Err(model_err("the model has no graph"));
    };
    Importer::new(g, opset, opts)?.run()
}

fn model_err(reason: &'static str) -> Error {
    Error::Model(ModelError::new(ModelFormat::Onnx, reason))
}

/// A constant value (folded at import).
#[derive(Clone, Debug)]
struct Const {
    shape: Vec<usize>,
    v: Values,
}

impl Const {
    fn floats(&self) -> Vec<f32> {
        match &self.v {
            Values::F32(x) => x.clone(),
            Values::I64(x) => x.iter().map(|&i| i as f32).collect(),
        }
    }
    fn ints(&self) -> Vec<i64> {
        match &self.v {
            Values::F32(x) => x.iter().map(|&f| f as i64).collect(),
            Values::I64(x) => x.clone(),
        }
    }
    fn len(&self) -> usize {
        match &self.v {
            Values::F32(x) => x.len(),
            Values::I64(x) => x.len(),
        }
    }
    /// Gathers elements by flat index (for transposes, broadcasts, gathers).
    fn pick(&self, shape: Vec<usize>, idx: &[usize]) -> Const {
        let v = match &self.v {
            Values::F32(x) => Values::F32(idx.iter().map(|&i| x[i]).collect()),
            Values::I64(x) => Values::I64(idx.iter().map(|&i| x[i]).collect()),
        };
        Const { shape, v }
    }
}

/// An ONNX value: a constant, or an IR tensor in a layout.
#[derive(Clone, Debug)]
enum Val {
    Const(Const),
    /// `ir.shape[i] = onnx.shape[perm[i]]`.
    Act {
        t: usize,
        perm: Vec<usize>,
    },
}

fn identity(r: usize) -> Vec<usize> {
    (0..r).collect()
}

fn invert(p: &[usize]) -> Vec<usize> {
    let mut q = vec![0; p.len()];
    for (i, &x) in p.iter().enumerate() {
        q[x] = i;
    }
    q
}

const NHWC: [usize; 4] = [0, 2, 3, 1];

/// Row-major strides.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Flat source indices of `shape` transposed so that `out.shape[i] = shape[perm[i]]`.
fn transpose_index(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let st = strides(shape);
    let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let ost: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
    let n: usize = out.iter().product();
    let mut idx = Vec::with_capacity(n);
    let mut pos = vec![0usize; out.len()];
    for _ in 0..n {
        idx.push(pos.iter().zip(&ost).map(|(a, b)| a * b).sum());
        for d in (0..out.len()).rev() {
            pos[d] += 1;
            if pos[d] < out[d] {
                break;
            }
            pos[d] = 0;
        }
    }
    (out, idx)
}

/// ONNX (numpy) broadcasting of two shapes.
fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let get = |s: &[usize], i: usize| (i + s.len()).checked_sub(r).map_or(1, |j| s[j]);
    (0..r)
        .map(|i| match (get(a, i), get(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Flat indices of `shape` broadcast to `out`.
fn broadcast_index(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let r = out.len();
    let mut ext = vec![1; r - shape.len()];
    ext.extend_from_slice(shape);
    let st = strides(&ext);
    let n: usize = out.iter().product();
    let mut idx = Vec::with_capacity(n);
    let mut pos = vec![0usize; r];
    for _ in 0..n {
        idx.push(
            (0..r)
                .map(|d| if ext[d] == 1 { 0 } else { pos[d] * st[d] })
                .sum(),
        );
        for d in (0..r).rev() {
            pos[d] += 1;
            if pos[d] < out[d] {
                break;
            }
            pos[d] = 0;
        }
    }
    idx
}

/// Whether `n` is a QuantizeLinear or DequantizeLinear of the default domain.
fn is_qdq(n: &OnnxNode<'_>) -> bool {
    (n.domain.is_empty() || n.domain == "ai.onnx")
        && matches!(n.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear")
}

/// The value `name` stands for through QuantizeLinear / DequantizeLinear nodes.
fn root(alias: &BTreeMap<String, String>, name: &str) -> String {
    let mut s = name;
    // Bounded: a malformed file may alias in a cycle.
    for _ in 0..=alias.len() {
        match alias.get(s) {
            Some(x) => s = x,
            None => break,
        }
    }
    String::from(s)
}

/// How a DequantizeLinear made a constant: `real = scale[c]·(q − zero_point[c])` along
/// ONNX axis `axis` (one entry: per tensor), zero points in the int8 domain (uint8 ones
/// shifted by −128).
#[derive(Clone, Debug)]
struct DqConst {
    scale: Vec<f32>,
    zero_point: Vec<i64>,
    axis: usize,
}

struct Importer<'m, 'a> {
    og: &'m OnnxGraph<'a>,
    opset: i64,
    opts: &'m OnnxOptions,
    g: Graph,
    vals: BTreeMap<String, Val>,
    /// Conversions made: (tensor, layout relative to the tensor's own) → tensor.
    views: BTreeMap<(usize, Vec<usize>), usize>,
    /// The node that writes each tensor.
    producer: Vec<Option<usize>>,
    /// How many node inputs and graph outputs read each value (a QuantizeLinear /
    /// DequantizeLinear pair passes its input on: its readers count as the input's).
    uses: BTreeMap<String, usize>,
    /// The value each QuantizeLinear / DequantizeLinear output stands for.
    alias: BTreeMap<String, String>,
    /// Constants made by a DequantizeLinear, by value name: how they were quantized.
    dq: BTreeMap<String, DqConst>,
    /// Whether the model has QuantizeLinear / DequantizeLinear nodes (a QDQ model).
    qdq: bool,
    /// The ONNX node being imported (for errors).
    cur: usize,
}

type R<T> = Result<T, Error>;

impl<'m, 'a> Importer<'m, 'a> {
    fn new(og: &'m OnnxGraph<'a>, opset: i64, opts: &'m OnnxOptions) -> R<Self> {
        let mut alias = BTreeMap::new();
        for n in og.nodes.iter().filter(|n| is_qdq(n)) {
            if let (Some(i), Some(o)) = (n.inputs.first(), n.outputs.first()) {
                alias.insert(o.clone(), i.clone());
            }
        }
        let mut uses = BTreeMap::new();
        for n in og.nodes.iter().filter(|n| !is_qdq(n)) {
            for i in &n.inputs {
                *uses.entry(root(&alias, i)).or_insert(0) += 1;
            }
        }
        for o in &og.outputs {
            *uses.entry(root(&alias, &o.name)).or_insert(0) += 1;
        }
        Ok(Importer {
            alias,
            dq: BTreeMap::new(),
            qdq: false,
            og,
            opset,
            opts,
            g: Graph::default(),
            vals: BTreeMap::new(),
            views: BTreeMap::new(),
            producer: Vec::new(),
            uses,
            cur: usize::MAX,
        })
    }

    // ---------------------------------------------------------------- errors and helpers

    fn node(&self) -> Option<&'m OnnxNode<'a>> {
        self.og.nodes.get(self.cur)
    }

    /// An error about the current node, named by its op type.
    fn err(&self, reason: &'static str) -> Error {
        let mut e = ModelError::new(ModelFormat::Onnx, reason);
        if let Some(n) = self.node() {
            let name = if n.name.is_empty() {
                &n.op_type
            } else {
                &n.name
            };
            e = e.with_operator(self.cur).with_name(name).with_offset(n.at);
        }
        Error::Model(e)
    }

    fn err_v(&self, reason: &'static str, v: &[i64]) -> Error {
        match self.err(reason) {
            Error::Model(m) => Error::Model(m.with_values(v)),
            e => e,
        }
    }

    fn attr(&self, name: &str) -> Option<&'m AttrValue<'a>> {
        self.node()?
            .attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| &a.value)
    }

    fn attr_i(&self, name: &str, default: i64) -> R<i64> {
        match self.attr(name) {
            None => Ok(default),
            Some(AttrValue::Int(i)) => Ok(*i),
            Some(_) => Err(self.err("an attribute that should be an int is not")),
        }
    }

    fn attr_f(&self, name: &str, default: f32) -> R<f32> {
        match self.attr(name) {
            None => Ok(default),
            Some(AttrValue::Float(f)) => Ok(*f),
            Some(_) => Err(self.err("an attribute that should be a float is not")),
        }
    }

    fn attr_ints(&self, name: &str) -> R<Option<Vec<i64>>> {
        match self.attr(name) {
            None => Ok(None),
            Some(AttrValue::Ints(v)) => Ok(Some(v.clone())),
            Some(_) => Err(self.err("an attribute that should be a list of ints is not")),
        }
    }

    fn attr_s(&self, name: &str) -> R<Option<&'m [u8]>> {
        match self.attr(name) {
            None => Ok(None),
            Some(AttrValue::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.err("an attribute that should be a string is not")),
        }
    }

    /// Input `k` of the current node, if present.
    fn opt_in(&self, k: usize) -> R<Option<Val>> {
        let Some(name) = self.node().and_then(|n| n.inputs.get(k)) else {
            return Ok(None);
        };
        if name.is_empty() {
            return Ok(None);
        }
        match self.vals.get(name) {
            Some(v) => Ok(Some(v.clone())),
            None => Err(self.err("an input is not produced before this node (or not at all)")),
        }
    }

    fn input(&self, k: usize) -> R<Val> {
        self.opt_in(k)?
            .ok_or_else(|| self.err("a required input is missing"))
    }

    fn input_const(&self, k: usize, what: &'static str) -> R<Option<Const>> {
        match self.opt_in(k)? {
            None => Ok(None),
            Some(Val::Const(c)) => Ok(Some(c)),
            Some(_) => Err(self.err(what)),
        }
    }

    fn out_name(&self, k: usize) -> R<String> {
        self.node()
            .and_then(|n| n.outputs.get(k))
            .cloned()
            .ok_or_else(|| self.err("a required output is missing"))
    }

    /// Defines output `k` of the current node.
    fn set_out(&mut self, k: usize, v: Val) -> R<()> {
        let name = self.out_name(k)?;
        if let Val::Const(c) = &v {
            if elems(&c.shape) != Some(c.len()) {
                return Err(self.err("a folded constant does not match its shape"));
            }
        }
        self.vals.insert(name, v);
        Ok(())
    }

    /// Refuses extra outputs that something reads (Dropout's mask, MaxPool's indices).
    fn only_first_output(&self) -> R<()> {
        let n = self.node().map_or(&[][..], |n| &n.outputs[..]);
        if n.iter()
            .skip(1)
            .any(|o| !o.is_empty() && self.uses.contains_key(o))
        {
            return Err(self.err("a second output of this operator is not supported"));
        }
        Ok(())
    }

    /// The ONNX shape of a value.
    fn shape(&self, v: &Val) -> Vec<usize> {
        match v {
            Val::Const(c) => c.shape.clone(),
            Val::Act { t, perm } => {
                let ir = &self.g.tensors[*t].shape;
                let mut s = vec![0; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    s[p] = ir[i];
                }
                s
            }
        }
    }

    fn rank(&self, v: &Val) -> usize {
        match v {
            Val::Const(c) => c.shape.len(),
            Val::Act { perm, .. } => perm.len(),
        }
    }

    // ---------------------------------------------------------------- building the IR

    fn check_shape(&self, shape: &[usize]) -> R<()> {
        if shape.len() > crate::nn::blob::MAX_RANK || elems(shape).is_none() {
            return Err(self.err("a tensor of more than 6 dimensions or too many elements"));
        }
        Ok(())
    }

    fn add_tensor(
        &mut self,
        name: String,
        dtype: DType,
        shape: Vec<usize>,
        data: Option<Vec<u8>>,
    ) -> usize {
        self.g.tensors.push(Tensor {
            name,
            dtype,
            shape,
            quant: None,
            data,
        });
        self.producer.push(None);
        self.g.tensors.len() - 1
    }

    fn act(&mut self, name: String, shape: Vec<usize>) -> R<usize> {
        self.check_shape(&shape)?;
        Ok(self.add_tensor(name, DType::F32, shape, None))
    }

    fn const_f32(&mut self, name: String, shape: Vec<usize>, v: &[f32]) -> usize {
        let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.add_tensor(name, DType::F32, shape, Some(data))
    }

    fn const_i32(&mut self, name: String, v: &[i32]) -> usize {
        let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.add_tensor(name, DType::I32, vec![v.len()], Some(data))
    }

    fn emit(&mut self, op: BuiltinOp, options: OpOptions, inputs: Vec<Option<usize>>, out: usize) {
        self.producer[out] = Some(self.g.nodes.len());
        self.g.nodes.push(Node {
            op,
            version: 1,
            options,
            inputs,
            outputs: vec![out],
        });
    }

    /// An IR tensor holding `v` laid out as `perm` (`ir.shape[i] = onnx.shape[perm[i]]`).
    fn tensor_in(&mut self, v: &Val, perm: &[usize]) -> R<usize> {
        if self.rank(v) != perm.len() {
            return Err(self.err("a layout that does not match the value's rank"));
        }
        match v {
            Val::Const(c) => {
                let (shape, idx) = transpose_index(&c.shape, perm);
                let data = c.pick(shape.clone(), &idx).floats();
                let name = format!(
                    "{}/const{}",
                    self.out_name(0).unwrap_or_default(),
                    self.g.tensors.len()
                );
                Ok(self.const_f32(name, shape, &data))
            }
            Val::Act { t, perm: p } if p[..] == perm[..] => Ok(*t),
            Val::Act { t, perm: p } => {
                let (t, p) = (*t, p.clone());
                // The IR transpose: out_ir[i] = in_ir[q[i]].
                let pinv = invert(&p);
                let q: Vec<usize> = perm.iter().map(|&x| pinv[x]).collect();
                if let Some(&done) = self.views.get(&(t, q.clone())) {
                    return Ok(done);
                }
                let src = self.g.tensors[t].shape.clone();
                let shape: Vec<usize> = q.iter().map(|&j| src[j]).collect();
                let suffix = if perm[..] == NHWC[..] {
                    "nhwc"
                } else if perm.iter().enumerate().all(|(i, &x)| i == x) {
                    "onnx"
                } else {
                    "t"
                };
                let name = format!("{}/{suffix}", self.g.tensors[t].name);
                let out = self.act(name, shape)?;
                // Only size-1 dimensions move: the bytes are the same, a RESHAPE will do.
                let big = |s: &[usize], order: &[usize]| -> Vec<usize> {
                    order.iter().copied().filter(|&j| s[j] > 1).collect()
                };
                if big(&src, &q) == big(&src, &identity(src.len())) {
                    let ns = self.g.tensors[out]
                        .shape
                        .iter()
                        .map(|&d| d as i32)
                        .collect();
                    self.emit(
                        BuiltinOp::Reshape,
                        OpOptions::Reshape {
                            new_shape: Some(ns),
                        },
                        vec![Some(t)],
                        out,
                    );
                } else {
                    let qs: Vec<i32> = q.iter().map(|&x| x as i32).collect();
                    let pt = self.const_i32(format!("{}/perm", self.g.tensors[out].name), &qs);
                    self.emit(
                        BuiltinOp::Transpose,
                        OpOptions::None,
                        vec![Some(t), Some(pt)],
                        out,
                    );
                }
                self.views.insert((t, q), out);
                Ok(out)
            }
        }
    }

    /// `v` in ONNX order with `shape` (same elements): a RESHAPE (a view, no copy).
    fn reshape(&mut self, v: &Val, shape: Vec<usize>, name: String) -> R<Val> {
        self.check_shape(&shape)?;
        if let Val::Const(c) = v {
            if elems(&shape) != Some(c.len()) {
                return Err(self.err("a reshape changes the number of elements"));
            }
            return Ok(Val::Const(Const {
                shape,
                v: c.v.clone(),
            }));
        }
        if elems(&shape) != elems(&self.shape(v)) {
            return Err(self.err("a reshape changes the number of elements"));
        }
        let r = self.rank(v);
        let x = self.tensor_in(v, &identity(r))?;
        let y = self.act(name, shape.clone())?;
        let ns = shape.iter().map(|&d| d as i32).collect();
        self.emit(
            BuiltinOp::Reshape,
            OpOptions::Reshape {
                new_shape: Some(ns),
            },
            vec![Some(x)],
            y,
        );
        Ok(Val::Act {
            t: y,
            perm: identity(shape.len()),
        })
    }

    /// A new activation for output 0 in layout `perm` with ONNX shape `shape`.
    fn out_act(&mut self, shape: &[usize], perm: &[usize]) -> R<usize> {
        let ir: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        let name = self.out_name(0)?;
        self.act(name, ir)
    }

    // ---------------------------------------------------------------- the graph

    fn run(mut self) -> R<Graph> {
        for t in &self.og.initializers {
            let c = Const {
                shape: t.shape().map_err(Error::Model)?,
                v: t.values().map_err(Error::Model)?,
            };
            self.vals.insert(t.name.clone(), Val::Const(c));
        }
        for vi in &self.og.inputs {
            if self.vals.contains_key(&vi.name) {
                continue; // an initializer listed as an input (older exporters)
            }
            let e = |r| Error::Model(ModelError::new(ModelFormat::Onnx, r).with_name(&vi.name));
            if vi.elem_type != 1 {
                return Err(e(
                    "a model input that is not float32 is not supported (float32 models only)",
                ));
            }
            let shape = match self.opts.input_shapes.iter().find(|(n, _)| *n == vi.name) {
                Some((_, s)) => s.clone(),
                None => {
                    let dims = vi.shape.as_ref().ok_or(e(
                        "a model input has no declared shape; give it with --input-shape",
                    ))?;
                    let mut s = Vec::new();
                    for d in dims {
                        s.push(match d {
                            Dim::Value(v) => usize::try_from(*v)
                                .map_err(|_| e("a model input has a negative dimension"))?,
                            // Symbolic (batch) or unknown: 1.
                            _ => 1,
                        });
                    }
                    s
                }
            };
            let perm = if shape.len() == 4 && self.opts.io_layout == IoLayout::Nhwc {
                NHWC.to_vec()
            } else {
                identity(shape.len())
            };
            let ir: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
            let t = self.act(vi.name.clone(), ir)?;
            self.g.inputs.push(t);
            self.vals.insert(vi.name.clone(), Val::Act { t, perm });
        }
        for (name, _) in &self.opts.input_shapes {
            if !self.og.inputs.iter().any(|v| v.name == *name) {
                return Err(Error::Model(
                    ModelError::new(ModelFormat::Onnx, "--input-shape names no model input")
                        .with_name(name),
                ));
            }
        }
        for i in 0..self.og.nodes.len() {
            self.cur = i;
            self.import_node()?;
        }
        self.cur = usize::MAX;
        for vo in &self.og.outputs {
            let e = |r| Error::Model(ModelError::new(ModelFormat::Onnx, r).with_name(&vo.name));
            let v = self
                .vals
                .get(&vo.name)
                .cloned()
                .ok_or(e("a model output is not produced by any node"))?;
            if matches!(v, Val::Const(_)) {
                return Err(e("a model output that is a constant is not supported"));
            }
            let r = self.rank(&v);
            let perm = if r == 4 && self.opts.io_layout == IoLayout::Nhwc {
                NHWC.to_vec()
            } else {
                identity(r)
            };
            let t = self.tensor_in(&v, &perm)?;
            if self.g.inputs.contains(&t) || self.g.outputs.contains(&t) {
                return Err(e(
                    "a model output that is a model input or another output is not supported",
                ));
            }
            // The output tensor carries the ONNX name (an internal layout of it is renamed).
            for (k, x) in self.g.tensors.iter_mut().enumerate() {
                if k != t && x.name == vo.name {
                    x.name.push_str("/nhwc");
                }
            }
            self.g.tensors[t].name = vo.name.clone();
            self.g.outputs.push(t);
        }
        if self.qdq {
            // The float graph carries the file's quantization on its tensors: make it
            // int8 (float inputs and outputs, as a QDQ model has them), after folding batch
            // norms and biases while they are float (as the default pipeline does for a
            // float model).
            Pipeline::parse("fold_batch_norms")?.run(&mut self.g, |_, _, _, _| {})?;
            quantize_annotated(&mut self.g, Io::Float)?;
        }
        Ok(self.g)
    }

    fn import_node(&mut self) -> R<()> {
        let Some(n) = self.node() else { return Ok(()) };
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(self
                .err("an operator of a domain other than the default ONNX one is not supported"));
        }
        if n.outputs.is_empty() {
            return Err(self.err("an operator without outputs"));
        }
        match n.op_type.as_str() {
            "Conv" => self.conv(),
            "Gemm" => self.gemm(),
            "MatMul" => self.matmul(),
            "Add" => self.binary(BuiltinOp::Add),
            "Sub" => self.binary(BuiltinOp::Sub),
            "Mul" => self.binary(BuiltinOp::Mul),
            "Div" => self.div(),
            "Max" => self.variadic(BuiltinOp::Maximum),
            "Min" => self.variadic(BuiltinOp::Minimum),
            "Relu" => self.activation(Activation::Relu),
            "Clip" => self.clip(),
            "LeakyRelu" => {
                let alpha = self.attr_f("alpha", 0.01)?;
                self.unary(BuiltinOp::LeakyRelu, OpOptions::LeakyRelu { alpha })
            }
            "HardSigmoid" => self.hard_sigmoid(),
            "HardSwish" => self.unary(BuiltinOp::HardSwish, OpOptions::None),
            "Sigmoid" => self.unary(BuiltinOp::Logistic, OpOptions::None),
            "Tanh" => self.unary(BuiltinOp::Tanh, OpOptions::None),
            "Softmax" => self.softmax(),
            "MaxPool" | "AveragePool" => self.pool(),
            "GlobalAveragePool" => self.global_average_pool(),
            "BatchNormalization" => self.batch_norm(),
            "Reshape" => self.reshape_op(),
            "Flatten" => self.flatten(),
            "Squeeze" | "Unsqueeze" => self.squeeze(),
            "Transpose" => self.transpose(),
            "Concat" => self.concat(),
            "Pad" => self.pad(),
            "ReduceMean" => self.reduce_mean(),
            "Identity" | "Dropout" => {
                self.only_first_output()?;
                let x = self.input(0)?;
                self.set_out(0, x)
            }
            "Constant" => self.constant(),
            "Shape" => self.shape_op(),
            "Gather" => self.gather(),
            "Cast" => self.cast(),
            "ConstantOfShape" => self.constant_of_shape(),
            "Slice" => self.slice(),
            "QuantizeLinear" => self.quantize_linear(),
            "DequantizeLinear" => self.dequantize_linear(),
            // Keep OPERATORS in step with this match (a test imports each name).
            _ => Err(self.err("this operator type is not supported")),
        }
    }

    // ---------------------------------------------------------------- element-wise

    fn unary(&mut self, op: BuiltinOp, options: OpOptions) -> R<()> {
        let x = self.input(0)?;
        let Val::Act { t, perm } = &x else {
            return Err(self.err("this operator on a constant is not supported"));
        };
        let (t, perm) = (*t, perm.clone());
        let shape = self.g.tensors[t].shape.clone();
        let y = self.act(self.out_name(0)?, shape)?;
        self.emit(op, options, vec![Some(t)], y);
        self.set_out(0, Val::Act { t: y, perm })
    }

    /// Folds a Relu-like activation into the operator that wrote `x`, when this node is
    /// its only reader; else `None`.
    fn fuse(&mut self, x: &Val, act: Activation) -> R<Option<Val>> {
        let Val::Act { t, .. } = x else {
            return Ok(None);
        };
        let in_name = self
            .node()
            .and_then(|n| n.inputs.first())
            .cloned()
            .unwrap_or_default();
        if self.uses.get(&root(&self.alias, &in_name)) != Some(&1) || self.g.inputs.contains(t) {
            return Ok(None);
        }
        let Some(k) = self.producer[*t] else {
            return Ok(None);
        };
        let slot = match &mut self.g.nodes[k].options {
            OpOptions::Conv2d { activation, .. }
            | OpOptions::DepthwiseConv2d { activation, .. }
            | OpOptions::FullyConnected { activation, .. }
            | OpOptions::Add { activation, .. }
            | OpOptions::Sub { activation, .. }
            | OpOptions::Mul { activation }
            | OpOptions::Pool2d { activation, .. } => activation,
            _ => return Ok(None),
        };
        if *slot != Activation::None {
            return Ok(None);
        }
        *slot = act;
        self.g.tensors[*t].name = self.out_name(0)?;
        Ok(Some(x.clone()))
    }

    /// Relu, Relu6, ReluN1To1: fused, or an operator of their own.
    fn activation(&mut self, act: Activation) -> R<()> {
        let x = self.input(0)?;
        if let Some(v) = self.fuse(&x, act)? {
            return self.set_out(0, v);
        }
        let op = match act {
            Activation::Relu => BuiltinOp::Relu,
            Activation::Relu6 => BuiltinOp::Relu6,
            _ => BuiltinOp::from_code(20), // RELU_N1_TO_1
        };
        self.unary(op, OpOptions::None)
    }

    fn clip(&mut self) -> R<()> {
        let bound = |s: &Self, k: usize, attr: &str, default: f32| -> R<f32> {
            match s.input_const(k, "Clip with computed bounds is not supported")? {
                Some(c) if c.len() == 1 => Ok(c.floats()[0]),
                Some(_) => Err(s.err("Clip bounds that are not scalars")),
                None => s.attr_f(attr, default),
            }
        };
        let lo = bound(self, 1, "min", f32::NEG_INFINITY)?;
        let hi = bound(self, 2, "max", f32::INFINITY)?;
        let act = match (lo, hi) {
            (l, h) if l == 0.0 && h == f32::INFINITY => Some(Activation::Relu),
            (l, h) if l == 0.0 && h == 6.0 => Some(Activation::Relu6),
            (l, h) if l == -1.0 && h == 1.0 => Some(Activation::ReluN1To1),
            _ => None,
        };
        if let Some(a) = act {
            return self.activation(a);
        }
        // Any other range: MAXIMUM then MINIMUM with scalar constants.
        let x = self.input(0)?;
        let name = self.out_name(0)?;
        let mut v = x;
        if lo > f32::NEG_INFINITY {
            let c = Val::Const(Const {
                shape: vec![],
                v: Values::F32(vec![lo]),
            });
            let last = hi == f32::INFINITY;
            v = self.elementwise(
                BuiltinOp::Maximum,
                &v,
                &c,
                if last {
                    name.clone()
                } else {
                    format!("{name}/max")
                },
            )?;
        }
        if hi < f32::INFINITY {
            let c = Val::Const(Const {
                shape: vec![],
                v: Values::F32(vec![hi]),
            });
            v = self.elementwise(BuiltinOp::Minimum, &v, &c, name)?;
        }
        self.set_out(0, v)
    }

    fn hard_sigmoid(&mut self) -> R<()> {
        // max(0, min(1, alpha·x + beta)) = MINIMUM(ADD(MUL(x, alpha), beta) with RELU, 1).
        let alpha = self.attr_f("alpha", 0.2)?;
        let beta = self.attr_f("beta", 0.5)?;
        let x = self.input(0)?;
        let name = self.out_name(0)?;
        let s = |v: f32| {
            Val::Const(Const {
                shape: vec![],
                v: Values::F32(vec![v]),
            })
        };
        let a = self.elementwise(BuiltinOp::Mul, &x, &s(alpha), format!("{name}/mul"))?;
        let b = self.elementwise(BuiltinOp::Add, &a, &s(beta), format!("{name}/add"))?;
        if let Val::Act { t, .. } = &b {
            if let Some(k) = self.producer[*t] {
                if let OpOptions::Add { activation, .. } = &mut self.g.nodes[k].options {
                    *activation = Activation::Relu;
                }
            }
        }
        let y = self.elementwise(BuiltinOp::Minimum, &b, &s(1.0), name)?;
        self.set_out(0, y)
    }

    fn binary(&mut self, op: BuiltinOp) -> R<()> {
        let (a, b) = (self.input(0)?, self.input(1)?);
        let name = self.out_name(0)?;
        let y = self.elementwise(op, &a, &b, name)?;
        self.annotate_operands(&y);
        self.set_out(0, y)
    }

    fn div(&mut self) -> R<()> {
        let (a, b) = (self.input(0)?, self.input(1)?);
        let name = self.out_name(0)?;
        let y = match &b {
            Val::Const(c) if !matches!(a, Val::Const(_)) => {
                // x / c = x · (1/c).
                let r = Val::Const(Const {
                    shape: c.shape.clone(),
                    v: Values::F32(c.floats().iter().map(|v| 1.0 / v).collect()),
                });
                self.elementwise(BuiltinOp::Mul, &a, &r, name)?
            }
            _ => self.elementwise(BuiltinOp::from_code(42), &a, &b, name)?, // DIV: constants only
        };
        self.set_out(0, y)
    }

    fn variadic(&mut self, op: BuiltinOp) -> R<()> {
        let n = self.node().map_or(0, |n| n.inputs.len());
        let name = self.out_name(0)?;
        let mut acc = self.input(0)?;
        for k in 1..n {
            let b = self.input(k)?;
            let nm = if k + 1 == n {
                name.clone()
            } else {
                format!("{name}/{k}")
            };
            acc = self.elementwise(op, &acc, &b, nm)?;
        }
        self.set_out(0, acc)
    }

    /// An element-wise binary operator with ONNX broadcasting, folded when both are
    /// constants; the output takes the layout of an activation input of the output's rank.
    fn elementwise(&mut self, op: BuiltinOp, a: &Val, b: &Val, name: String) -> R<Val> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        let out =
            broadcast(&sa, &sb).ok_or_else(|| self.err("the input shapes do not broadcast"))?;
        self.check_shape(&out)?;
        let r = out.len();
        if let (Val::Const(x), Val::Const(y)) = (a, b) {
            return self.fold_binary(op, x, y, out);
        }
        if op.code() == 42 {
            return Err(self.err("Div by a computed tensor is not supported"));
        }
        let perm = [a, b]
            .iter()
            .find_map(|v| match v {
                Val::Act { perm, .. } if perm.len() == r => Some(perm.clone()),
                _ => None,
            })
            .unwrap_or_else(|| identity(r));
        let mut ins = Vec::new();
        for v in [a, b] {
            let s = self.shape(v);
            let v = if s.len() < r {
                let mut ext = vec![1; r - s.len()];
                ext.extend_from_slice(&s);
                self.reshape(v, ext, format!("{name}/rank"))?
            } else {
                v.clone()
            };
            ins.push(Some(self.tensor_in(&v, &perm)?));
        }
        let ir: Vec<usize> = perm.iter().map(|&p| out[p]).collect();
        let y = self.act(name, ir)?;
        let options = match op {
            BuiltinOp::Add => OpOptions::Add {
                activation: Activation::None,
                pot_scale_int16: true,
            },
            BuiltinOp::Sub => OpOptions::Sub {
                activation: Activation::None,
                pot_scale_int16: true,
            },
            BuiltinOp::Mul => OpOptions::Mul {
                activation: Activation::None,
            },
            _ => OpOptions::None,
        };
        self.emit(op, options, ins, y);
        Ok(Val::Act { t: y, perm })
    }

    fn fold_binary(&self, op: BuiltinOp, x: &Const, y: &Const, out: Vec<usize>) -> R<Val> {
        let (ia, ib) = (
            broadcast_index(&x.shape, &out),
            broadcast_index(&y.shape, &out),
        );
        let v = match (&x.v, &y.v) {
            (Values::I64(p), Values::I64(q)) => {
                let f = |a: i64, b: i64| -> Option<i64> {
                    match op {
                        BuiltinOp::Add => a.checked_add(b),
                        BuiltinOp::Sub => a.checked_sub(b),
                        BuiltinOp::Mul => a.checked_mul(b),
                        BuiltinOp::Maximum => Some(a.max(b)),
                        BuiltinOp::Minimum => Some(a.min(b)),
                        _ => a.checked_div(b),
                    }
                };
                let v: Option<Vec<i64>> =
                    ia.iter().zip(&ib).map(|(&i, &j)| f(p[i], q[j])).collect();
                Values::I64(v.ok_or_else(|| {
                    self.err("integer overflow or division by zero in a constant")
                })?)
            }
            _ => {
                let (p, q) = (x.floats(), y.floats());
                let f = |a: f32, b: f32| match op {
                    BuiltinOp::Add => a + b,
                    BuiltinOp::Sub => a - b,
                    BuiltinOp::Mul => a * b,
                    BuiltinOp::Maximum => a.max(b),
                    BuiltinOp::Minimum => a.min(b),
                    _ => a / b,
                };
                Values::F32(ia.iter().zip(&ib).map(|(&i, &j)| f(p[i], q[j])).collect())
            }
        };
        Ok(Val::Const(Const { shape: out, v }))
    }

    fn softmax(&mut self) -> R<()> {
        let x = self.act_input(0)?;
        let s = self.shape(&x);
        let r = s.len();
        let axis = self.axis(
            self.attr_i("axis", if self.opset >= 13 { -1 } else { 1 })?,
            r,
        )?;
        let name = self.out_name(0)?;
        let inner: usize = s[axis + 1..].iter().product();
        if self.opset < 13 && inner != 1 {
            // Softmax over the flattened dimensions from `axis` on: a 2-D softmax.
            let outer: usize = s[..axis].iter().product();
            let flat = self.reshape(&x, vec![outer, s[axis] * inner], format!("{name}/2d"))?;
            let Val::Act { t, .. } = flat else {
                return Err(self.err("Softmax of a constant"));
            };
            let shape2 = self.g.tensors[t].shape.clone();
            let y2 = self.act(format!("{name}/softmax"), shape2)?;
            self.emit(
                BuiltinOp::Softmax,
                OpOptions::Softmax { beta: 1.0 },
                vec![Some(t)],
                y2,
            );
            let y = self.reshape(
                &Val::Act {
                    t: y2,
                    perm: identity(2),
                },
                s,
                name,
            )?;
            return self.set_out(0, y);
        }
        // TFLite's softmax is over the last dimension: pick a layout with `axis` last.
        let perm = match &x {
            Val::Act { perm, .. } if perm.last() == Some(&axis) => perm.clone(),
            _ => {
                let mut p: Vec<usize> = (0..r).filter(|&d| d != axis).collect();
                p.push(axis);
                p
            }
        };
        let t = self.tensor_in(&x, &perm)?;
        let y = self.out_act(&s, &perm)?;
        self.emit(
            BuiltinOp::Softmax,
            OpOptions::Softmax { beta: 1.0 },
            vec![Some(t)],
            y,
        );
        self.set_out(0, Val::Act { t: y, perm })
    }

    /// A non-negative axis of a rank-`r` value.
    fn axis(&self, a: i64, r: usize) -> R<usize> {
        let a = if a < 0 { a + r as i64 } else { a };
        usize::try_from(a)
            .ok()
            .filter(|&a| a < r)
            .ok_or_else(|| self.err_v("axis {} is out of range", &[a]))
    }

    fn act_input(&self, k: usize) -> R<Val> {
        match self.input(k)? {
            Val::Const(_) => Err(self.err("this operator on a constant input is not supported")),
            v => Ok(v),
        }
    }

    // ---------------------------------------------------------------- conv and pooling

    /// A 4-D activation input in NHWC: (tensor, [n, c, h, w] in ONNX order).
    fn nhwc_input(&mut self, k: usize) -> R<(usize, [usize; 4])> {
        let x = self.act_input(k)?;
        let s = self.shape(&x);
        let Ok(s4) = <[usize; 4]>::try_from(&s[..]) else {
            return Err(self.err("an input that is not 4-D (NCHW) is not supported (1-D and 3-D convolutions and pools are not)"));
        };
        Ok((self.tensor_in(&x, &NHWC)?, s4))
    }

    /// The output size and TFLite padding of a window op, or explicit `[top, left, bottom,
    /// right]` pads for a PAD before a VALID op. `k` are the effective (dilated) kernel sizes.
    #[allow(clippy::type_complexity)]
    fn window(
        &self,
        hw: [usize; 2],
        k: [usize; 2],
        s: [usize; 2],
        ceil: bool,
    ) -> R<([usize; 2], Padding, Option<[usize; 4]>)> {
        if hw.contains(&0) {
            return Err(self.err("an empty input"));
        }
        let auto = self.attr_s("auto_pad")?.unwrap_or(b"NOTSET");
        let same = |i: usize| {
            let out = hw[i].div_ceil(s[i]);
            let total = ((out - 1) * s[i] + k[i]).saturating_sub(hw[i]);
            (out, total)
        };
        let mut pads: [usize; 4] = match auto {
            b"NOTSET" => match self.attr_ints("pads")? {
                None => [0; 4],
                Some(p) if p.len() == 4 => {
                    let mut q = [0; 4];
                    for (d, &v) in q.iter_mut().zip(&p) {
                        *d = usize::try_from(v)
                            .ok()
                            .filter(|&v| v < 1 << 16)
                            .ok_or_else(|| self.err("negative or huge pads are not supported"))?;
                    }
                    [q[0], q[1], q[2], q[3]]
                }
                Some(_) => return Err(self.err("pads that are not 4 values (2-D)")),
            },
            b"VALID" => [0; 4],
            b"SAME_UPPER" | b"SAME_LOWER" => {
                let (t0, t1) = (same(0).1, same(1).1);
                let (b0, b1) = if auto == b"SAME_UPPER" {
                    (t0 / 2, t1 / 2)
                } else {
                    (t0 - t0 / 2, t1 - t1 / 2)
                };
                [b0, b1, t0 - b0, t1 - b1]
            }
            _ => return Err(self.err("this auto_pad is not supported")),
        };
        let mut out = [0; 2];
        for i in 0..2 {
            let span = (hw[i] + pads[i] + pads[i + 2])
                .checked_sub(k[i])
                .ok_or_else(|| self.err("the window is larger than the padded input"))?;
            out[i] = span / s[i] + 1;
            if ceil && span % s[i] != 0 {
                // ceil_mode adds a last window if it starts inside the input or the begin
                // padding; for a max pool, padding the end with −∞ up to it is the same.
                let max = self.node().is_some_and(|n| n.op_type == "MaxPool");
                if !max {
                    return Err(self.err(
                        "ceil_mode = 1 that changes the output size is not supported (MaxPool only)",
                    ));
                }
                if out[i] * s[i] < hw[i] + pads[i] {
                    pads[i + 2] += out[i] * s[i] + k[i] - (hw[i] + pads[i] + pads[i + 2]);
                    out[i] += 1;
                }
            }
        }
        if pads == [0; 4] {
            return Ok((out, Padding::Valid, None));
        }
        let tf_same = (0..2).all(|i| {
            let (o, total) = same(i);
            o == out[i] && pads[i] == total / 2 && pads[i + 2] == total - total / 2
        });
        if tf_same {
            Ok((out, Padding::Same, None))
        } else {
            Ok((out, Padding::Valid, Some(pads)))
        }
    }

    /// Two positive values of an ints attribute (strides, dilations, kernel_shape).
    fn pair(&self, name: &str, default: Option<usize>) -> R<[usize; 2]> {
        match (self.attr_ints(name)?, default) {
            (None, Some(d)) => Ok([d, d]),
            (Some(v), _) if v.len() == 2 => {
                let p = |x: i64| {
                    usize::try_from(x)
                        .ok()
                        .filter(|&x| (1..1 << 16).contains(&x))
                };
                match (p(v[0]), p(v[1])) {
                    (Some(a), Some(b)) => Ok([a, b]),
                    _ => Err(self.err("a stride, dilation or kernel size below 1 or too large")),
                }
            }
            _ => Err(self.err("strides, dilations or kernel_shape that are not 2 values (2-D)")),
        }
    }

    /// A PAD of NHWC `x` by `[top, left, bottom, right]`, with `value` (PADV2 unless 0).
    fn pad_nhwc(&mut self, x: usize, p: [usize; 4], value: f32) -> R<usize> {
        let s = self.g.tensors[x].shape.clone();
        let shape = vec![s[0], s[1] + p[0] + p[2], s[2] + p[1] + p[3], s[3]];
        let name = format!("{}/pad", self.out_name(0)?);
        let y = self.act(name.clone(), shape)?;
        let pads: Vec<i32> = [0, 0, p[0], p[2], p[1], p[3], 0, 0]
            .iter()
            .map(|&v| v as i32)
            .collect();
        let pt = self.add_tensor(
            format!("{name}/paddings"),
            DType::I32,
            vec![4, 2],
            Some(pads.iter().flat_map(|v| v.to_le_bytes()).collect()),
        );
        if value == 0.0 {
            self.emit(BuiltinOp::Pad, OpOptions::None, vec![Some(x), Some(pt)], y);
        } else {
            let c = self.const_f32(format!("{name}/value"), vec![], &[value]);
            self.emit(
                BuiltinOp::PadV2,
                OpOptions::None,
                vec![Some(x), Some(pt), Some(c)],
                y,
            );
        }
        Ok(y)
    }

    fn conv(&mut self) -> R<()> {
        let (x, [n, c, h, w]) = self.nhwc_input(0)?;
        let wc = self
            .input_const(1, "Conv with computed weights is not supported")?
            .ok_or_else(|| self.err("Conv without weights"))?;
        let bias = self.input_const(2, "Conv with a computed bias is not supported")?;
        let Ok([m, cg, kh, kw]) = <[usize; 4]>::try_from(&wc.shape[..]) else {
            return Err(self.err("Conv weights that are not 4-D"));
        };
        if kh == 0 || kw == 0 || c == 0 {
            return Err(self.err("an empty convolution"));
        }
        let group = self.attr_i("group", 1)?;
        let depthwise = group != 1 && group as usize == c && cg == 1 && m % c == 0;
        if !(group == 1 && cg == c || depthwise) {
            return Err(self.err_v("grouped convolution (group {} of {} channels) is not supported; group 1 or depthwise only", &[group, c as i64]));
        }
        if let Some(b) = &bias {
            if b.len() != m {
                return Err(self.err("a Conv bias whose length is not the output channels"));
            }
        }
        let st = self.pair("strides", Some(1))?;
        let dl = self.pair("dilations", Some(1))?;
        if let Some(ks) = self.attr_ints("kernel_shape")? {
            if ks != [kh as i64, kw as i64] {
                return Err(self.err("kernel_shape does not match the weights"));
            }
        }
        let keff = [(kh - 1) * dl[0] + 1, (kw - 1) * dl[1] + 1];
        let (out, padding, explicit) = self.window([h, w], keff, st, false)?;
        let x = match explicit {
            Some(p) => self.pad_nhwc(x, p, 0.0)?,
            None => x,
        };
        let name = self.out_name(0)?;
        let (wperm, options, op) = if depthwise {
            (
                [1, 2, 3, 0],
                OpOptions::DepthwiseConv2d {
                    padding,
                    stride_w: st[1] as i32,
                    stride_h: st[0] as i32,
                    depth_multiplier: (m / c) as i32,
                    activation: Activation::None,
                    dilation_w_factor: dl[1] as i32,
                    dilation_h_factor: dl[0] as i32,
                },
                BuiltinOp::DepthwiseConv2d,
            )
        } else {
            (
                [0, 2, 3, 1],
                OpOptions::Conv2d {
                    padding,
                    stride_w: st[1] as i32,
                    stride_h: st[0] as i32,
                    activation: Activation::None,
                    dilation_w_factor: dl[1] as i32,
                    dilation_h_factor: dl[0] as i32,
                },
                BuiltinOp::Conv2d,
            )
        };
        let (ws, idx) = transpose_index(&wc.shape, &wperm);
        let wdata = wc.pick(ws.clone(), &idx).floats();
        let wt = self.const_f32(format!("{name}/weights"), ws, &wdata);
        self.g.tensors[wt].quant = self.weight_quant(1, 0, m);
        let bt = bias.map(|b| self.const_f32(format!("{name}/bias"), vec![m], &b.floats()));
        let y = self.act(name, vec![n, out[0], out[1], m])?;
        self.emit(op, options, vec![Some(x), Some(wt), bt], y);
        self.set_out(
            0,
            Val::Act {
                t: y,
                perm: NHWC.to_vec(),
            },
        )
    }

    fn pool(&mut self) -> R<()> {
        self.only_first_output()?;
        let max = self.node().is_some_and(|n| n.op_type == "MaxPool");
        let (x, [n, c, h, w]) = self.nhwc_input(0)?;
        let k = self.pair("kernel_shape", None)?;
        let st = self.pair("strides", Some(1))?;
        if self.pair("dilations", Some(1))? != [1, 1] {
            return Err(self.err("pooling with dilations is not supported"));
        }
        if self.attr_i("storage_order", 0)? != 0 {
            return Err(self.err("MaxPool storage_order 1 is not supported"));
        }
        let ceil = self.attr_i("ceil_mode", 0)? != 0;
        let (out, mut padding, explicit) = self.window([h, w], k, st, ceil)?;
        let include_pad = self.attr_i("count_include_pad", 0)? != 0;
        // TFLite's average pool leaves padding out of the count: with count_include_pad,
        // pad explicitly with zeros and pool VALID.
        let explicit = match explicit {
            None if !max && include_pad && padding == Padding::Same => {
                let same = |i: usize| {
                    let o = [h, w][i].div_ceil(st[i]);
                    ((o - 1) * st[i] + k[i]).saturating_sub([h, w][i])
                };
                let (t0, t1) = (same(0), same(1));
                Some([t0 / 2, t1 / 2, t0 - t0 / 2, t1 - t1 / 2])
            }
            None => None,
            Some(_) if !max && !include_pad => {
                return Err(self.err("AveragePool with count_include_pad = 0 and pads other than TFLite's SAME is not supported"))
            }
            e => e,
        };
        let x = match explicit {
            Some(p) => {
                padding = Padding::Valid;
                self.pad_nhwc(x, p, if max { f32::NEG_INFINITY } else { 0.0 })?
            }
            None => x,
        };
        let y = self.act(self.out_name(0)?, vec![n, out[0], out[1], c])?;
        let options = OpOptions::Pool2d {
            padding,
            stride_w: st[1] as i32,
            stride_h: st[0] as i32,
            filter_width: k[1] as i32,
            filter_height: k[0] as i32,
            activation: Activation::None,
        };
        let op = if max {
            BuiltinOp::MaxPool2d
        } else {
            BuiltinOp::AveragePool2d
        };
        self.emit(op, options, vec![Some(x)], y);
        self.set_out(
            0,
            Val::Act {
                t: y,
                perm: NHWC.to_vec(),
            },
        )
    }

    fn global_average_pool(&mut self) -> R<()> {
        let (x, [n, c, _, _]) = self.nhwc_input(0)?;
        let axes = self.const_i32(format!("{}/axes", self.out_name(0)?), &[1, 2]);
        let y = self.act(self.out_name(0)?, vec![n, 1, 1, c])?;
        self.emit(
            BuiltinOp::Mean,
            OpOptions::Reducer { keep_dims: true },
            vec![Some(x), Some(axes)],
            y,
        );
        self.set_out(
            0,
            Val::Act {
                t: y,
                perm: NHWC.to_vec(),
            },
        )
    }

    fn batch_norm(&mut self) -> R<()> {
        self.only_first_output()?;
        if self.attr_i("training_mode", 0)? != 0 {
            return Err(self.err("BatchNormalization in training mode is not supported"));
        }
        let eps = self.attr_f("epsilon", 1e-5)?;
        let what = "BatchNormalization with computed parameters is not supported";
        let mut p = Vec::new();
        for k in 1..5 {
            p.push(
                self.input_const(k, what)?
                    .ok_or_else(|| self.err(what))?
                    .floats(),
            );
        }
        let x = self.act_input(0)?;
        let s = self.shape(&x);
        let c = *s
            .get(1)
            .ok_or_else(|| self.err("BatchNormalization of a tensor below 2-D"))?;
        if p.iter().any(|v| v.len() != c) {
            return Err(self.err("BatchNormalization parameters whose length is not the channels"));
        }
        // y = x·a + b with a = scale / sqrt(var + eps), b = B − mean·a.
        let a: Vec<f32> = (0..c).map(|i| p[0][i] / libm_sqrt(p[3][i] + eps)).collect();
        let b: Vec<f32> = (0..c).map(|i| p[1][i] - p[2][i] * a[i]).collect();
        let mut cs = vec![c];
        cs.extend(core::iter::repeat_n(1, s.len() - 2));
        let name = self.out_name(0)?;
        let av = Val::Const(Const {
            shape: cs.clone(),
            v: Values::F32(a),
        });
        let bv = Val::Const(Const {
            shape: cs,
            v: Values::F32(b),
        });
        let m = self.elementwise(BuiltinOp::Mul, &x, &av, format!("{name}/scale"))?;
        let y = self.elementwise(BuiltinOp::Add, &m, &bv, name)?;
        self.set_out(0, y)
    }

    // ---------------------------------------------------------------- matrix products

    /// A FULLY_CONNECTED by `[n, k]` weights `w` (quantized as `wq` in a QDQ model).
    fn fc(
        &mut self,
        x: &Val,
        w: Vec<f32>,
        n: usize,
        k: usize,
        bias: Option<Vec<f32>>,
        wq: Option<Quant>,
    ) -> R<()> {
        let s = self.shape(x);
        let r = s.len();
        let xt = self.tensor_in(x, &identity(r))?;
        let name = self.out_name(0)?;
        let wt = self.const_f32(format!("{name}/weights"), vec![n, k], &w);
        self.g.tensors[wt].quant = wq;
        let bt = bias.map(|b| self.const_f32(format!("{name}/bias"), vec![n], &b));
        let mut out = s.clone();
        if let Some(l) = out.last_mut() {
            *l = n;
        }
        let y = self.act(name, out)?;
        self.emit(
            BuiltinOp::FullyConnected,
            OpOptions::FullyConnected {
                activation: Activation::None,
                keep_num_dims: r > 2,
                asymmetric_quantize_inputs: false,
            },
            vec![Some(xt), Some(wt), bt],
            y,
        );
        self.set_out(
            0,
            Val::Act {
                t: y,
                perm: identity(r),
            },
        )
    }

    fn gemm(&mut self) -> R<()> {
        let a = self.act_input(0)?;
        let b = self
            .input_const(1, "Gemm with a computed B is not supported")?
            .ok_or_else(|| self.err("Gemm without B"))?;
        let c = self.input_const(2, "Gemm with a computed C is not supported")?;
        let (alpha, beta) = (self.attr_f("alpha", 1.0)?, self.attr_f("beta", 1.0)?);
        let a = if self.attr_i("transA", 0)? != 0 {
            self.relabel(&a, &[1, 0])?
        } else {
            a
        };
        let sa = self.shape(&a);
        let Ok([_, k]) = <[usize; 2]>::try_from(&sa[..]) else {
            return Err(self.err("Gemm of inputs that are not 2-D"));
        };
        let Ok([b0, b1]) = <[usize; 2]>::try_from(&b.shape[..]) else {
            return Err(self.err("Gemm of inputs that are not 2-D"));
        };
        let trans_b = self.attr_i("transB", 0)? != 0;
        // FULLY_CONNECTED weights are [n, k].
        let (n, wc) = if trans_b {
            (b0, b)
        } else {
            let (s, idx) = transpose_index(&b.shape, &[1, 0]);
            (b1, b.pick(s, &idx))
        };
        if wc.shape != [n, k] {
            return Err(self.err("Gemm operands do not match"));
        }
        let w: Vec<f32> = wc.floats().iter().map(|v| v * alpha).collect();
        let bias =
            match c {
                None => None,
                Some(c) => {
                    let cs: Vec<usize> = c.shape.iter().copied().filter(|&d| d != 1).collect();
                    let v = c.floats();
                    match (cs.as_slice(), v.len()) {
                        (_, 1) => Some(vec![v[0] * beta; n]),
                        ([d], _) if *d == n && c.shape.last() == Some(&n) => {
                            Some(v.iter().map(|x| x * beta).collect())
                        }
                        _ => return Err(self.err(
                            "a Gemm C that is not a scalar or a row of n values is not supported",
                        )),
                    }
                }
            };
        let wq = if alpha == 1.0 {
            self.weight_quant(1, if trans_b { 0 } else { 1 }, n)
        } else {
            None
        };
        self.fc(&a, w, n, k, bias, wq)
    }

    fn matmul(&mut self) -> R<()> {
        let a = self.act_input(0)?;
        let sa = self.shape(&a);
        if sa.len() < 2 {
            return Err(self.err("MatMul of a 1-D input is not supported"));
        }
        let k = sa[sa.len() - 1];
        match self.input(1)? {
            Val::Const(b) => {
                let Ok([bk, n]) = <[usize; 2]>::try_from(&b.shape[..]) else {
                    return Err(
                        self.err("MatMul by constant weights that are not 2-D is not supported")
                    );
                };
                if bk != k {
                    return Err(self.err("MatMul operands do not match"));
                }
                let (_, idx) = transpose_index(&b.shape, &[1, 0]);
                let w = b.pick(vec![n, k], &idx).floats();
                let wq = self.weight_quant(1, 1, n);
                self.fc(&a, w, n, k, None, wq)
            }
            b => {
                let sb = self.shape(&b);
                if sb.len() < 2 || sb[sb.len() - 2] != k {
                    return Err(self.err("MatMul operands do not match"));
                }
                let batch = broadcast(&sa[..sa.len() - 2], &sb[..sb.len() - 2])
                    .ok_or_else(|| self.err("MatMul batch dimensions do not broadcast"))?;
                let mut out = batch;
                out.extend([sa[sa.len() - 2], sb[sb.len() - 1]]);
                let (xa, adj_x) = self.matrix_in(&a)?;
                let (xb, adj_y) = self.matrix_in(&b)?;
                let r = out.len();
                let y = self.act(self.out_name(0)?, out)?;
                self.emit(
                    BuiltinOp::BatchMatMul,
                    OpOptions::BatchMatMul {
                        adj_x,
                        adj_y,
                        asymmetric_quantize_inputs: false,
                    },
                    vec![Some(xa), Some(xb)],
                    y,
                );
                self.set_out(
                    0,
                    Val::Act {
                        t: y,
                        perm: identity(r),
                    },
                )
            }
        }
    }

    /// A BATCH_MATMUL operand: its tensor in ONNX order, or held with the last two
    /// dimensions swapped (a transposed activation) with `adj` set instead of a TRANSPOSE.
    fn matrix_in(&mut self, v: &Val) -> R<(usize, bool)> {
        let r = self.rank(v);
        if let Val::Act { t, perm } = v {
            let mut swapped = identity(r);
            swapped.swap(r - 2, r - 1);
            if *perm == swapped {
                return Ok((*t, true));
            }
        }
        Ok((self.tensor_in(v, &identity(r))?, false))
    }

    // ---------------------------------------------------------------- shapes and layout

    /// `v` transposed by ONNX permutation `q` (`out.shape[j] = in.shape[q[j]]`): constants
    /// are transposed, activations only relabelled.
    fn relabel(&self, v: &Val, q: &[usize]) -> R<Val> {
        let r = self.rank(v);
        let mut seen = vec![false; r];
        if q.len() != r
            || !q
                .iter()
                .all(|&x| x < r && !core::mem::replace(&mut seen[x], true))
        {
            return Err(self.err("a permutation that is not one of the input's dimensions"));
        }
        Ok(match v {
            Val::Const(c) => {
                let (s, idx) = transpose_index(&c.shape, q);
                Val::Const(c.pick(s, &idx))
            }
            Val::Act { t, perm } => {
                let qinv = invert(q);
                Val::Act {
                    t: *t,
                    perm: perm.iter().map(|&p| qinv[p]).collect(),
                }
            }
        })
    }

    fn transpose(&mut self) -> R<()> {
        let x = self.input(0)?;
        let r = self.rank(&x);
        let q: Vec<usize> = match self.attr_ints("perm")? {
            Some(p) => p
                .iter()
                .map(|&v| usize::try_from(v).unwrap_or(usize::MAX))
                .collect(),
            None => (0..r).rev().collect(),
        };
        let y = self.relabel(&x, &q)?;
        self.set_out(0, y)
    }

    fn reshape_op(&mut self) -> R<()> {
        let x = self.input(0)?;
        let s = self.shape(&x);
        let spec = self
            .input_const(1, "Reshape to a computed shape is not supported")?
            .ok_or_else(|| self.err("Reshape without a shape"))?
            .ints();
        let allow_zero = self.attr_i("allowzero", 0)? != 0;
        let mut out = Vec::with_capacity(spec.len());
        let mut infer = None;
        for (i, &d) in spec.iter().enumerate() {
            out.push(match d {
                0 if !allow_zero => *s
                    .get(i)
                    .ok_or_else(|| self.err("a Reshape 0 beyond the input's rank"))?,
                -1 if infer.is_none() => {
                    infer = Some(i);
                    1
                }
                d => usize::try_from(d)
                    .map_err(|_| self.err("a Reshape dimension below -1, or two -1"))?,
            });
        }
        let total = elems(&s).ok_or_else(|| self.err("a tensor is too large"))?;
        if let Some(i) = infer {
            let rest = elems(&out)
                .filter(|&r| r > 0 && total % r == 0)
                .ok_or_else(|| self.err("a Reshape -1 that cannot be inferred"))?;
            out[i] = total / rest;
        }
        let y = self.reshape(&x, out, self.out_name(0)?)?;
        self.set_out(0, y)
    }

    fn flatten(&mut self) -> R<()> {
        let x = self.input(0)?;
        let s = self.shape(&x);
        let a = self.attr_i("axis", 1)?;
        let a = if a < 0 { a + s.len() as i64 } else { a };
        let a = usize::try_from(a)
            .ok()
            .filter(|&a| a <= s.len())
            .ok_or_else(|| self.err("Flatten axis out of range"))?;
        let out = vec![s[..a].iter().product(), s[a..].iter().product()];
        let y = self.reshape(&x, out, self.out_name(0)?)?;
        self.set_out(0, y)
    }

    /// The axes of Squeeze/Unsqueeze/ReduceMean: an attribute before opset 13 (18 for
    /// ReduceMean), an input from then on.
    fn axes(&self, input_from: i64) -> R<Option<Vec<i64>>> {
        if self.opset >= input_from {
            Ok(self
                .input_const(1, "computed axes are not supported")?
                .map(|c| c.ints()))
        } else {
            self.attr_ints("axes")
        }
    }

    fn squeeze(&mut self) -> R<()> {
        let x = self.input(0)?;
        let s = self.shape(&x);
        let unsqueeze = self.node().is_some_and(|n| n.op_type == "Unsqueeze");
        let axes = self.axes(13)?;
        let out = if unsqueeze {
            let axes = axes.ok_or_else(|| self.err("Unsqueeze without axes"))?;
            let r = s.len() + axes.len();
            let mut mark = vec![false; r];
            for &a in &axes {
                let a = self.axis(a, r)?;
                if core::mem::replace(&mut mark[a], true) {
                    return Err(self.err("a repeated Unsqueeze axis"));
                }
            }
            let mut it = s.iter();
            mark.iter()
                .map(|&m| {
                    if m {
                        1
                    } else {
                        it.next().copied().unwrap_or(1)
                    }
                })
                .collect()
        } else {
            let r = s.len();
            let mut mark = vec![false; r];
            match axes {
                Some(axes) => {
                    for &a in &axes {
                        let a = self.axis(a, r)?;
                        if s[a] != 1 {
                            return Err(self.err("Squeeze of a dimension that is not 1"));
                        }
                        mark[a] = true;
                    }
                }
                None => mark.iter_mut().zip(&s).for_each(|(m, &d)| *m = d == 1),
            }
            s.iter()
                .zip(&mark)
                .filter(|(_, &m)| !m)
                .map(|(&d, _)| d)
                .collect()
        };
        let y = self.reshape(&x, out, self.out_name(0)?)?;
        self.set_out(0, y)
    }

    fn concat(&mut self) -> R<()> {
        let n = self.node().map_or(0, |n| n.inputs.len());
        let mut ins = Vec::new();
        for k in 0..n {
            ins.push(self.input(k)?);
        }
        let first = ins
            .first()
            .ok_or_else(|| self.err("Concat without inputs"))?;
        let r = self.rank(first);
        let axis = self.axis(self.attr_i("axis", 0)?, r)?;
        let mut out = self.shape(first);
        for v in &ins[1..] {
            let s = self.shape(v);
            if s.len() != r || (0..r).any(|d| d != axis && s[d] != out[d]) {
                return Err(self.err("Concat inputs whose shapes do not match"));
            }
            out[axis] += s[axis];
        }
        self.check_shape(&out)?;
        if ins.iter().all(|v| matches!(v, Val::Const(_))) {
            // Folded (shape computations).
            let mut parts = Vec::new();
            for v in &ins {
                if let Val::Const(c) = v {
                    parts.push(c.clone());
                }
            }
            let outer: usize = out[..axis].iter().product();
            let floats = parts.iter().any(|c| matches!(c.v, Values::F32(_)));
            let (mut f, mut i) = (Vec::new(), Vec::new());
            for o in 0..outer {
                for c in &parts {
                    let chunk = c.shape[axis..].iter().product::<usize>();
                    let range = o * chunk..(o + 1) * chunk;
                    if floats {
                        f.extend_from_slice(&c.floats()[range]);
                    } else {
                        i.extend_from_slice(&c.ints()[range]);
                    }
                }
            }
            let v = if floats {
                Values::F32(f)
            } else {
                Values::I64(i)
            };
            return self.set_out(0, Val::Const(Const { shape: out, v }));
        }
        let perm = ins
            .iter()
            .find_map(|v| match v {
                Val::Act { perm, .. } => Some(perm.clone()),
                _ => None,
            })
            .unwrap_or_else(|| identity(r));
        let mut ts = Vec::new();
        for v in &ins {
            ts.push(Some(self.tensor_in(v, &perm)?));
        }
        let ir_axis = invert(&perm)[axis];
        let y = self.out_act(&out, &perm)?;
        self.emit(
            BuiltinOp::Concatenation,
            OpOptions::Concatenation {
                axis: ir_axis as i32,
                activation: Activation::None,
            },
            ts,
            y,
        );
        self.set_out(0, Val::Act { t: y, perm })
    }

    fn pad(&mut self) -> R<()> {
        let mode = self.attr_s("mode")?.unwrap_or(b"constant");
        if mode != b"constant" {
            return Err(
                self.err("Pad modes other than constant (reflect, edge, wrap) are not supported")
            );
        }
        if self.opt_in(3)?.is_some() {
            return Err(self.err("Pad with axes is not supported"));
        }
        let x = self.act_input(0)?;
        let s = self.shape(&x);
        let r = s.len();
        let pads = self
            .input_const(1, "Pad with computed pads is not supported")?
            .ok_or_else(|| self.err("Pad without pads"))?
            .ints();
        let value = match self.input_const(2, "Pad with a computed value is not supported")? {
            Some(c) if c.len() == 1 => c.floats()[0],
            Some(_) => return Err(self.err("a Pad value that is not a scalar")),
            None => 0.0,
        };
        if pads.len() != 2 * r || pads.iter().any(|&p| !(0..1 << 20).contains(&p)) {
            return Err(self.err("Pad pads that are negative or do not match the rank"));
        }
        let perm = match &x {
            Val::Act { perm, .. } => perm.clone(),
            _ => identity(r),
        };
        let t = self.tensor_in(&x, &perm)?;
        let out: Vec<usize> = (0..r)
            .map(|d| s[d] + (pads[d] + pads[r + d]) as usize)
            .collect();
        let ir_pads: Vec<i32> = perm
            .iter()
            .flat_map(|&p| [pads[p] as i32, pads[r + p] as i32])
            .collect();
        let name = self.out_name(0)?;
        let pt = self.add_tensor(
            format!("{name}/paddings"),
            DType::I32,
            vec![r, 2],
            Some(ir_pads.iter().flat_map(|v| v.to_le_bytes()).collect()),
        );
        let y = self.out_act(&out, &perm)?;
        if value == 0.0 {
            self.emit(BuiltinOp::Pad, OpOptions::None, vec![Some(t), Some(pt)], y);
        } else {
            let c = self.const_f32(format!("{name}/value"), vec![], &[value]);
            self.emit(
                BuiltinOp::PadV2,
                OpOptions::None,
                vec![Some(t), Some(pt), Some(c)],
                y,
            );
        }
        self.set_out(0, Val::Act { t: y, perm })
    }

    fn reduce_mean(&mut self) -> R<()> {
        let x = self.act_input(0)?;
        let s = self.shape(&x);
        let r = s.len();
        let keep = self.attr_i("keepdims", 1)? != 0;
        let axes = match self.axes(18)? {
            Some(a) if !a.is_empty() => a,
            _ if self.attr_i("noop_with_empty_axes", 0)? != 0 => return self.set_out(0, x),
            _ => (0..r as i64).collect(),
        };
        let mut mark = vec![false; r];
        for &a in &axes {
            mark[self.axis(a, r)?] = true;
        }
        let perm = match &x {
            Val::Act { perm, .. } => perm.clone(),
            _ => identity(r),
        };
        let t = self.tensor_in(&x, &perm)?;
        let pinv = invert(&perm);
        let ir_axes: Vec<i32> = (0..r)
            .filter(|&d| mark[d])
            .map(|d| pinv[d] as i32)
            .collect();
        let name = self.out_name(0)?;
        let at = self.const_i32(format!("{name}/axes"), &ir_axes);
        let (out, operm): (Vec<usize>, Vec<usize>) = if keep {
            (
                (0..r).map(|d| if mark[d] { 1 } else { s[d] }).collect(),
                perm,
            )
        } else {
            // The kept dimensions, renumbered, in the input's layout order.
            let rank_of = |d: usize| (0..d).filter(|&e| !mark[e]).count();
            let out = (0..r).filter(|&d| !mark[d]).map(|d| s[d]).collect();
            (
                out,
                perm.iter()
                    .filter(|&&p| !mark[p])
                    .map(|&p| rank_of(p))
                    .collect(),
            )
        };
        let y = self.out_act(&out, &operm)?;
        self.emit(
            BuiltinOp::Mean,
            OpOptions::Reducer { keep_dims: keep },
            vec![Some(t), Some(at)],
            y,
        );
        self.set_out(0, Val::Act { t: y, perm: operm })
    }

    // ---------------------------------------------------------------- constants

    // ---------------------------------------------------------------- QDQ

    /// The ONNX data type of value `name`, when it is an initializer or a Constant's output.
    fn dtype_of(&self, name: &str) -> Option<i32> {
        let init = self.og.initializers.iter().find(|t| t.name == name);
        if let Some(t) = init {
            return Some(t.data_type);
        }
        let node =
            self.og.nodes.iter().find(|n| {
                n.op_type == "Constant" && n.outputs.first().is_some_and(|o| o == name)
            })?;
        match &node.attributes.first()?.value {
            AttrValue::Tensor(t) => Some(t.data_type),
            _ => None,
        }
    }

    /// The scale(s) and zero point(s) of the current QuantizeLinear/DequantizeLinear, zero
    /// points in the int8 domain, and the shift that takes its quantized values there (128
    /// for uint8, else 0). The type is the zero point's (uint8 without one); `data` is the
    /// quantized input's index for a DequantizeLinear.
    fn qparams(&self, data: Option<usize>) -> R<(Vec<f32>, Vec<i64>, i64)> {
        let what = "a QuantizeLinear/DequantizeLinear with a computed scale or zero point is \
                    not supported";
        let scale = self
            .input_const(1, what)?
            .ok_or_else(|| self.err("a QuantizeLinear/DequantizeLinear without a scale"))?
            .floats();
        let zp = self.input_const(2, what)?;
        let name_of = |k: usize| self.node().and_then(|n| n.inputs.get(k)).cloned();
        let ty = match (&zp, data) {
            (Some(_), _) => name_of(2).and_then(|n| self.dtype_of(&n)),
            (None, Some(k)) => name_of(k).and_then(|n| self.dtype_of(&n)).or(Some(2)),
            (None, None) => Some(2),
        };
        let shift =
            match ty {
                Some(2) => 128,
                Some(3) | Some(6) => 0,
                _ => return Err(self.err(
                    "QuantizeLinear/DequantizeLinear of a type other than uint8 or int8 (int32 \
                     for a bias) is not supported",
                )),
            };
        let zp = match zp {
            Some(z) => z.ints().iter().map(|v| v.saturating_sub(shift)).collect(),
            None => vec![0; scale.len()],
        };
        if zp.len() != scale.len()
            || scale.is_empty()
            || scale.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(self.err(
                "a QuantizeLinear/DequantizeLinear whose scales are not positive or do not \
                 match its zero points",
            ));
        }
        Ok((scale, zp, shift))
    }

    /// QuantizeLinear of an activation: its tensor is given the file's (per-tensor)
    /// parameters, and the value passes on (the graph stays float until the whole model is
    /// read; then it becomes int8). Of a constant: folded.
    fn quantize_linear(&mut self) -> R<()> {
        self.qdq = true;
        if self.attr_i("saturate", 1)? != 1 || self.attr_i("block_size", 0)? != 0 {
            return Err(self.err("QuantizeLinear with saturate or block_size is not supported"));
        }
        let (scale, zp, shift) = self.qparams(None)?;
        let x = self.input(0)?;
        match x {
            Val::Act { t, .. } => {
                if scale.len() != 1 {
                    return Err(
                        self.err("a per-axis QuantizeLinear of an activation is not supported")
                    );
                }
                self.g.tensors[t].quant = Some(Quant {
                    scale,
                    zero_point: zp,
                    axis: 0,
                });
                self.set_out(0, x)
            }
            Val::Const(c) => {
                if scale.len() != 1 {
                    return Err(
                        self.err("a per-axis QuantizeLinear of a constant is not supported")
                    );
                }
                let (s, z) = (scale[0], zp[0]);
                let q = c
                    .floats()
                    .iter()
                    .map(|&v| round_half_even(v / s).saturating_add(z).clamp(-128, 127) + shift)
                    .collect();
                self.set_out(
                    0,
                    Val::Const(Const {
                        shape: c.shape,
                        v: Values::I64(q),
                    }),
                )
            }
        }
    }

    /// DequantizeLinear of a quantized activation: the value it was quantized from (the
    /// parameters must be its QuantizeLinear's). Of a constant (weights, biases): its
    /// float values, remembered with their quantization so that the conv, FC or
    /// element-wise operator reading it keeps the file's.
    fn dequantize_linear(&mut self) -> R<()> {
        self.qdq = true;
        let (scale, zp, shift) = self.qparams(Some(0))?;
        match self.input(0)? {
            x @ Val::Act { t, .. } => {
                let same = self.g.tensors[t]
                    .quant
                    .as_ref()
                    .is_some_and(|q| q.scale == scale && q.zero_point == zp);
                if !same {
                    return Err(self.err(
                        "a DequantizeLinear of an activation with other parameters than its \
                         QuantizeLinear's is not supported",
                    ));
                }
                self.set_out(0, x)
            }
            Val::Const(c) => {
                let r = c.shape.len();
                let axis = if scale.len() == 1 {
                    0
                } else {
                    let a = self.axis(self.attr_i("axis", 1)?, r)?;
                    if c.shape[a] != scale.len() {
                        return Err(self.err(
                            "a DequantizeLinear whose scales are not one per element of its axis",
                        ));
                    }
                    a
                };
                let inner: usize = c.shape.get(axis + 1..).map_or(1, |s| s.iter().product());
                let channel = |i: usize| {
                    if scale.len() == 1 {
                        0
                    } else {
                        (i / inner.max(1)) % scale.len()
                    }
                };
                let v: Vec<f32> = c
                    .ints()
                    .iter()
                    .enumerate()
                    .map(|(i, &q)| {
                        let q = q.saturating_sub(shift).saturating_sub(zp[channel(i)]);
                        q as f32 * scale[channel(i)]
                    })
                    .collect();
                let name = self.out_name(0)?;
                self.dq.insert(
                    name,
                    DqConst {
                        scale,
                        zero_point: zp,
                        axis,
                    },
                );
                self.set_out(
                    0,
                    Val::Const(Const {
                        shape: c.shape,
                        v: Values::F32(v),
                    }),
                )
            }
        }
    }

    /// The quantization a QDQ file gave the weights read as input `k` (symmetric int8, per
    /// tensor or per output channel along ONNX axis `out_axis` of `channels`), for the
    /// operator to keep; `None` to choose them (not from a DequantizeLinear, or zero points
    /// that are not 0).
    fn weight_quant(&self, k: usize, out_axis: usize, channels: usize) -> Option<Quant> {
        let name = self.node()?.inputs.get(k)?;
        let d = self.dq.get(name)?;
        let per_channel = d.scale.len() == channels && d.axis == out_axis;
        if !(d.scale.len() == 1 || per_channel) || d.zero_point.iter().any(|&z| z != 0) {
            return None;
        }
        Some(Quant {
            scale: d.scale.clone(),
            zero_point: d.zero_point.clone(),
            axis: 0, // set by the operator reading it
        })
    }

    /// Gives the constant operands of the element-wise node just emitted the per-tensor
    /// quantization of the DequantizeLinear they came from.
    fn annotate_operands(&mut self, y: &Val) {
        let Val::Act { t: yt, .. } = y else { return };
        let Some(last) = self.g.nodes.last().filter(|n| n.outputs.contains(yt)) else {
            return;
        };
        let ins: Vec<Option<usize>> = last.inputs.clone();
        for (k, t) in ins.iter().enumerate() {
            let (Some(t), Some(name)) = (t, self.node().and_then(|n| n.inputs.get(k))) else {
                continue;
            };
            let Some(d) = self.dq.get(name) else { continue };
            if d.scale.len() == 1 && self.g.tensors[*t].data.is_some() {
                self.g.tensors[*t].quant = Some(Quant {
                    scale: d.scale.clone(),
                    zero_point: d.zero_point.clone(),
                    axis: 0,
                });
            }
        }
    }

    fn constant(&mut self) -> R<()> {
        let n = self.node().ok_or_else(|| self.err("no node"))?;
        let a = n
            .attributes
            .first()
            .ok_or_else(|| self.err("Constant without a value"))?;
        let c = match (a.name.as_str(), &a.value) {
            ("value", AttrValue::Tensor(t)) => Const {
                shape: t.shape().map_err(Error::Model)?,
                v: t.values().map_err(Error::Model)?,
            },
            ("value_float", AttrValue::Float(f)) => Const {
                shape: vec![],
                v: Values::F32(vec![*f]),
            },
            ("value_floats", AttrValue::Floats(f)) => Const {
                shape: vec![f.len()],
                v: Values::F32(f.clone()),
            },
            ("value_int", AttrValue::Int(i)) => Const {
                shape: vec![],
                v: Values::I64(vec![*i]),
            },
            ("value_ints", AttrValue::Ints(i)) => Const {
                shape: vec![i.len()],
                v: Values::I64(i.clone()),
            },
            _ => return Err(self.err("a Constant of this kind (string, sparse) is not supported")),
        };
        self.set_out(0, Val::Const(c))
    }

    fn shape_op(&mut self) -> R<()> {
        let x = self.input(0)?;
        let s: Vec<i64> = self.shape(&x).iter().map(|&d| d as i64).collect();
        let r = s.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let start = clamp(self.attr_i("start", 0)?);
        let end = clamp(self.attr_i("end", r)?);
        let v = s.get(start..end.max(start)).unwrap_or(&[]).to_vec();
        self.set_out(
            0,
            Val::Const(Const {
                shape: vec![v.len()],
                v: Values::I64(v),
            }),
        )
    }

    fn gather(&mut self) -> R<()> {
        let data = self
            .input_const(0, "Gather from a computed tensor is not supported")?
            .ok_or_else(|| self.err("Gather without data"))?;
        let idx = self
            .input_const(1, "Gather with computed indices is not supported")?
            .ok_or_else(|| self.err("Gather without indices"))?;
        let r = data.shape.len();
        let axis = self.axis(self.attr_i("axis", 0)?, r)?;
        let dim = data.shape[axis];
        let mut out: Vec<usize> = data.shape[..axis].to_vec();
        out.extend_from_slice(&idx.shape);
        out.extend_from_slice(&data.shape[axis + 1..]);
        self.check_shape(&out)?;
        let (outer, inner): (usize, usize) = (
            data.shape[..axis].iter().product(),
            data.shape[axis + 1..].iter().product(),
        );
        let mut flat = Vec::new();
        let ids = idx.ints();
        for o in 0..outer {
            for &i in &ids {
                let i = if i < 0 { i + dim as i64 } else { i };
                let i = usize::try_from(i)
                    .ok()
                    .filter(|&i| i < dim)
                    .ok_or_else(|| self.err("a Gather index is out of range"))?;
                flat.extend((0..inner).map(|j| (o * dim + i) * inner + j));
            }
        }
        self.set_out(0, Val::Const(data.pick(out, &flat)))
    }

    fn cast(&mut self) -> R<()> {
        let to = self.attr_i("to", 0)?;
        let float = match to {
            1 | 10 | 11 => true,
            2..=7 | 9 | 12 | 13 => false,
            _ => return Err(self.err_v("Cast to data type {} is not supported", &[to])),
        };
        match self.input(0)? {
            Val::Const(c) => {
                let v = if float {
                    Values::F32(c.floats())
                } else {
                    Values::I64(c.ints())
                };
                self.set_out(0, Val::Const(Const { shape: c.shape, v }))
            }
            v if to == 1 => self.set_out(0, v),
            _ => Err(self.err(
                "Cast of a float activation to another type is not supported (float32 models only)",
            )),
        }
    }

    /// Slice of a constant (shape computations; `starts`, `ends`, `axes`, `steps` inputs).
    fn slice(&mut self) -> R<()> {
        let what = "Slice of a computed tensor is not supported (constants only)";
        let data = self.input_const(0, what)?.ok_or_else(|| self.err(what))?;
        let get = |k| -> R<Option<Vec<i64>>> { Ok(self.input_const(k, what)?.map(|c| c.ints())) };
        let starts = get(1)?.ok_or_else(|| self.err("Slice without starts"))?;
        let ends = get(2)?.ok_or_else(|| self.err("Slice without ends"))?;
        let r = data.shape.len();
        let axes = get(3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = get(4)?.unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(self.err("Slice starts, ends, axes and steps differ in length"));
        }
        // Per dimension: first index, step, count.
        let mut sel: Vec<(i64, i64, usize)> = data.shape.iter().map(|&d| (0, 1, d)).collect();
        for i in 0..starts.len() {
            let a = self.axis(axes[i], r)?;
            let d = data.shape[a] as i64;
            if d == 0 {
                continue;
            }
            let step = steps[i];
            if step == 0 {
                return Err(self.err("a Slice step of 0"));
            }
            let clampi = |v: i64, lo: i64, hi: i64| {
                let v = if v < 0 { v.saturating_add(d) } else { v };
                v.clamp(lo, hi)
            };
            let (b, e) = if step > 0 {
                (clampi(starts[i], 0, d), clampi(ends[i], 0, d))
            } else {
                (clampi(starts[i], 0, d - 1), clampi(ends[i], -1, d - 1))
            };
            // In i128: a hostile step (i64::MIN) must not overflow.
            let (b2, e2, st2) = (i128::from(b), i128::from(e), i128::from(step));
            let n = if step > 0 {
                (e2 - b2 + st2 - 1).max(0) / st2
            } else {
                (b2 - e2 - st2 - 1).max(0) / -st2
            };
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            sel[a] = (b, step, n);
        }
        let out: Vec<usize> = sel.iter().map(|s| s.2).collect();
        self.check_shape(&out)?;
        let st = strides(&data.shape);
        let total = elems(&out).unwrap_or(0);
        let mut idx = Vec::with_capacity(total);
        let mut pos = vec![0usize; r];
        for _ in 0..total {
            idx.push(
                (0..r)
                    .map(|d| (sel[d].0 + sel[d].1 * pos[d] as i64) as usize * st[d])
                    .sum(),
            );
            for d in (0..r).rev() {
                pos[d] += 1;
                if pos[d] < out[d] {
                    break;
                }
                pos[d] = 0;
            }
        }
        self.set_out(0, Val::Const(data.pick(out, &idx)))
    }

    fn constant_of_shape(&mut self) -> R<()> {
        let shape: Vec<usize> = self
            .input_const(0, "ConstantOfShape of a computed shape is not supported")?
            .ok_or_else(|| self.err("ConstantOfShape without a shape"))?
            .ints()
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| self.err("a negative dimension")))
            .collect::<R<_>>()?;
        self.check_shape(&shape)?;
        let n = elems(&shape).unwrap_or(0);
        // Exporters fill small shape-sized tensors; a huge one would only cost time.
        if n > 1 << 16 {
            return Err(self.err("a ConstantOfShape of more than 65536 elements is not supported"));
        }
        let v = match self.attr("value") {
            None => Values::F32(vec![0.0; n]),
            Some(AttrValue::Tensor(t)) => match t.values().map_err(Error::Model)? {
                Values::F32(f) if f.len() == 1 => Values::F32(vec![f[0]; n]),
                Values::I64(i) if i.len() == 1 => Values::I64(vec![i[0]; n]),
                _ => return Err(self.err("a ConstantOfShape value that is not one element")),
            },
            Some(_) => return Err(self.err("a ConstantOfShape value that is not a tensor")),
        };
        self.set_out(0, Val::Const(Const { shape, v }))
    }
}

/// Rounds half to even, as QuantizeLinear does.
fn round_half_even(x: f32) -> i64 {
    let f = f64::from(x);
    let r = crate::nn::transform::lower::round_half_away(f);
    let d = r as f64 - f; // ±0.5 exactly at a tie
    if (d == 0.5 || d == -0.5) && r % 2 != 0 {
        r - r.signum()
    } else {
        r
    }
}

/// `sqrt` without `std` (Newton's iteration from the bit-level estimate; exact to an ulp for
/// the positive finite values BatchNormalization folds).
fn libm_sqrt(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 || x.is_infinite() {
        return x;
    }
    let x64 = f64::from(x);
    let mut y = f64::from(f32::from_bits((x.to_bits() >> 1) + 0x1fbd_1df5));
    for _ in 0..6 {
        y = 0.5 * (y + x64 / y);
    }
    y as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_operator_is_dispatched() {
        // A node of each listed type, without inputs: an error about its inputs or
        // attributes, never "not supported".
        for op in OPERATORS {
            let node = OnnxNode {
                name: String::new(),
                op_type: String::from(*op),
                domain: String::new(),
                inputs: Vec::new(),
                outputs: vec![String::from("y")],
                attributes: Vec::new(),
                at: 0,
            };
            let g = OnnxGraph {
                nodes: vec![node],
                ..OnnxGraph::default()
            };
            let opts = OnnxOptions::default();
            let r = Importer::new(&g, 13, &opts).and_then(|i| i.run());
            if let Err(e) = r {
                let msg = alloc::format!("{e}");
                assert!(
                    !msg.contains("operator type is not supported"),
                    "{op}: {msg}"
                );
            }
            assert!(unsupported_nodes(&g).is_empty());
        }
    }

    /// x → Q(u8) → DQ → Gemm by DQ(int8 per-channel weights) → Q(u8) → DQ.
    #[test]
    fn qdq_imports_as_int8_with_uint8_zero_points_shifted() {
        use super::super::{OnnxTensor, TensorData, ValueInfo};
        let t = |name: &str, ty: i32, dims: &[i64], data: TensorData<'static>| OnnxTensor {
            name: String::from(name),
            data_type: ty,
            dims: dims.to_vec(),
            data,
            at: 0,
        };
        let node = |op: &str, ins: &[&str], out: &str| OnnxNode {
            name: String::new(),
            op_type: String::from(op),
            domain: String::new(),
            inputs: ins.iter().map(|s| String::from(*s)).collect(),
            outputs: vec![String::from(out)],
            // Gemm's transB, DequantizeLinear's axis (the others have no attributes).
            attributes: vec![super::super::Attribute {
                name: String::from(if op == "Gemm" { "transB" } else { "axis" }),
                value: AttrValue::Int(i64::from(op == "Gemm")),
            }],
            at: 0,
        };
        let g = OnnxGraph {
            nodes: vec![
                node("QuantizeLinear", &["x", "sx", "zx"], "xq"),
                node("DequantizeLinear", &["xq", "sx", "zx"], "xd"),
                node("DequantizeLinear", &["wq", "sw"], "w"),
                node("Gemm", &["xd", "w"], "y"),
                node("QuantizeLinear", &["y", "sy", "zy"], "yq"),
                node("DequantizeLinear", &["yq", "sy", "zy"], "out"),
            ],
            initializers: vec![
                t("sx", 1, &[], TensorData::F32(vec![0.5])),
                t("zx", 2, &[], TensorData::Ints(vec![130])),
                t(
                    "wq",
                    3,
                    &[2, 3],
                    TensorData::Ints(vec![1, -2, 3, -127, 5, 127]),
                ),
                t("sw", 1, &[2], TensorData::F32(vec![0.25, 0.125])),
                t("sy", 1, &[], TensorData::F32(vec![0.75])),
                t("zy", 2, &[], TensorData::Ints(vec![0])),
            ],
            inputs: vec![ValueInfo {
                name: String::from("x"),
                elem_type: 1,
                shape: Some(vec![Dim::Value(1), Dim::Value(3)]),
            }],
            outputs: vec![ValueInfo {
                name: String::from("out"),
                elem_type: 1,
                shape: None,
            }],
            ..OnnxGraph::default()
        };
        let opts = OnnxOptions::default();
        let ir = Importer::new(&g, 13, &opts).and_then(|i| i.run()).unwrap();
        let fc = ir
            .nodes
            .iter()
            .find(|n| n.op == BuiltinOp::FullyConnected)
            .unwrap();
        let q = |k: usize| ir.tensors[fc.inputs[k].unwrap()].quant.clone().unwrap();
        let x = q(0);
        assert_eq!((x.scale[0], x.zero_point[0]), (0.5, 2)); // uint8 130 → int8 2
        let w = &ir.tensors[fc.inputs[1].unwrap()];
        assert_eq!(w.dtype, DType::I8);
        assert_eq!(w.quant.as_ref().unwrap().scale, [0.25, 0.125]); // the file's, per channel
        let wv: Vec<i8> = w.data.as_ref().unwrap().iter().map(|&b| b as i8).collect();
        assert_eq!(wv, [1, -2, 3, -127, 5, 127]); // exactly the file's integers
        let y = ir.tensors[fc.outputs[0]].quant.clone().unwrap();
        // uint8 0 → int8 −128.
        assert_eq!((y.scale[0], y.zero_point[0]), (0.75, -128));
        // Float edges: QUANTIZE first, DEQUANTIZE last.
        assert_eq!(ir.nodes.first().unwrap().op, BuiltinOp::Quantize);
        assert_eq!(ir.nodes.last().unwrap().op, BuiltinOp::Dequantize);
        // What is not supported says so: a DequantizeLinear with other parameters than its
        // QuantizeLinear's, a uint16 zero point, a float operator left between DQ and Q.
        let fails = |g: &OnnxGraph, want: &str| {
            let e = Importer::new(g, 13, &opts)
                .and_then(|i| i.run())
                .unwrap_err();
            let msg = alloc::format!("{e}");
            assert!(msg.contains(want), "{msg}");
        };
        let mut bad = g.clone();
        bad.nodes[5].inputs[1] = String::from("sx");
        fails(&bad, "other parameters");
        let mut bad = g.clone();
        bad.initializers[5].data_type = 4;
        fails(&bad, "type other than");
        let mut bad = g.clone();
        bad.nodes[5].outputs[0] = String::from("yd");
        bad.nodes.push(node("HardSwish", &["yd"], "out"));
        fails(&bad, "no quantization");
    }

    #[test]
    fn quantize_linear_rounds_half_to_even() {
        let r: Vec<i64> = [0.5f32, 1.5, 2.5, -0.5, -1.5, 1.4, -2.6]
            .iter()
            .map(|&x| round_half_even(x))
            .collect();
        assert_eq!(r, [0, 2, 2, 0, -2, 1, -3]);
    }

    #[test]
    fn sqrt_is_close() {
        for x in [1e-5f32, 0.5, 1.0, 2.0, 3.0, 1e6, 123.456] {
            let want = (x as f64).sqrt() as f32;
            assert_eq!(libm_sqrt(x), want, "{x}");
        }
    }

    #[test]
    fn transposes_and_broadcasts() {
        let (s, idx) = transpose_index(&[2, 3], &[1, 0]);
        assert_eq!(s, [3, 2]);
        assert_eq!(idx, [0, 3, 1, 4, 2, 5]);
        assert_eq!(broadcast(&[4, 1, 3], &[2, 1]), Some(vec![4, 2, 3]));
        assert_eq!(broadcast(&[2], &[3]), None);
        assert_eq!(broadcast_index(&[3], &[2, 3]), [0, 1, 2, 0, 1, 2]);
    }
}
