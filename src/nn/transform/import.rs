//! TFLite → IR: types and shapes mapped, constants copied, float16 weights widened to f32
//! (the converter's `float16` option stores them with a DEQUANTIZE, folded here), and
//! dynamic-range ("hybrid") models refused with an error that says what they are.

use alloc::vec::Vec;

use super::ir::{checked_bytes, BuiltinOp, Graph, Node, Quant, Tensor};
use super::tflite::{parse_tflite, TfDtype, TfliteModel};
use crate::error::Error;
use crate::nn::dtype::DType;
use crate::nn::error::{ModelError, ModelFormat};

/// Reads a `.tflite` file into the IR.
pub fn import_tflite(bytes: &[u8]) -> Result<Graph, Error> {
    let m = parse_tflite(bytes)?;
    from_tflite(&m)
}

fn tensor_err(m: &TfliteModel, t: usize, reason: &'static str) -> Error {
    let name = m.tensors.get(t).map_or("", |x| x.name.as_str());
    Error::Model(
        ModelError::new(ModelFormat::Tflite, reason)
            .with_tensor(t)
            .with_name(name),
    )
}

/// The IR of a parsed TFLite model.
pub fn from_tflite(m: &TfliteModel) -> Result<Graph, Error> {
    let mut g = Graph {
        inputs: m.inputs.clone(),
        outputs: m.outputs.clone(),
        ..Graph::default()
    };
    for (t, x) in m.tensors.iter().enumerate() {
        let mut shape = Vec::with_capacity(x.shape.len());
        for &d in &x.shape {
            let d = usize::try_from(d)
                .map_err(|_| tensor_err(m, t, "a dimension is negative (an unknown size)"))?;
            shape.push(d);
        }
        let (dtype, data) = match (x.dtype, x.data) {
            (TfDtype::Float16, Some(d)) => (DType::F32, Some(widen_f16(d))),
            (TfDtype::Float16, None) => {
                return Err(tensor_err(m, t, "float16 activations are not supported"))
            }
            (dt, d) => {
                let dtype = match dt {
                    TfDtype::Float32 => DType::F32,
                    TfDtype::Int8 => DType::I8,
                    TfDtype::Uint8 => DType::U8,
                    TfDtype::Int16 => DType::I16,
                    TfDtype::Int32 => DType::I32,
                    TfDtype::Int64 => DType::I64,
                    TfDtype::Bool => DType::Bool,
                    _ => return Err(tensor_err(m, t, "this element type is not supported")),
                };
                (dtype, d.map(|d| d.to_vec()))
            }
        };
        if checked_bytes(&shape, dtype.size()).is_none() {
            return Err(tensor_err(
                m,
                t,
                "the tensor is over 2 GiB (its shape is too large)",
            ));
        }
        let quant = x
            .quant
            .as_ref()
            .filter(|q| !q.scale.is_empty())
            .map(|q| Quant {
                scale: q.scale.clone(),
                zero_point: q.zero_point.clone(),
                axis: q.quantized_dimension,
            });
        // Operators do their arithmetic on zero points in i32, as TFLite's kernels do, whose
        // Prepare functions accept only zero points their element type can hold.
        let range = match dtype {
            DType::I8 => Some(i64::from(i8::MIN)..=i64::from(i8::MAX)),
            DType::U8 => Some(0..=i64::from(u8::MAX)),
            DType::I16 => Some(i64::from(i16::MIN)..=i64::from(i16::MAX)),
            _ => None,
        };
        if let (Some(q), Some(range)) = (&quant, range) {
            if !q.zero_point.iter().all(|z| range.contains(z)) {
                return Err(tensor_err(
                    m,
                    t,
                    "a zero point is outside its element type's range",
                ));
            }
        }
        let tensor = Tensor {
            name: x.name.clone(),
            dtype,
            shape,
            quant,
            data,
        };
        if let Some(d) = &tensor.data {
            if d.len() != tensor.byte_len() {
                return Err(tensor_err(m, t, "constant data does not match its shape"));
            }
        }
        g.tensors.push(tensor);
    }
    for (i, op) in m.operators.iter().enumerate() {
        let node = Node {
            op: op.op,
            version: op.version,
            options: op.options.clone(),
            inputs: op.inputs.clone(),
            outputs: op.outputs.clone(),
        };
        // A DEQUANTIZE of a constant (float16 weights) is folded into a float constant.
        if node.op == BuiltinOp::Dequantize {
            if let (Some(Some(src)), Some(&dst)) = (node.inputs.first(), node.outputs.first()) {
                if g.tensors[*src].data.is_some() {
                    fold_dequantize(&mut g, *src, dst).map_err(|e| with_op(e, i, op.name()))?;
                    continue;
                }
            }
        }
        if is_hybrid(&g, &node) {
            return Err(Error::Model(
                ModelError::new(
                    ModelFormat::Tflite,
                    "a dynamic-range (\"hybrid\") quantized model: float activations with \
                     int8 weights; convert it with full-integer quantization (a \
                     representative dataset) or keep it float",
                )
                .with_operator(i)
                .with_name(op.name()),
            ));
        }
        g.nodes.push(node);
    }
    Ok(g)
}

fn with_op(e: Error, i: usize, name: &str) -> Error {
    match e {
        Error::Model(me) => Error::Model(me.with_operator(i).with_name(name)),
        e => e,
    }
}

/// Float activations multiplied by int8 constant weights.
fn is_hybrid(g: &Graph, n: &Node) -> bool {
    let weighted = matches!(
        n.op,
        BuiltinOp::FullyConnected
            | BuiltinOp::Conv2d
            | BuiltinOp::DepthwiseConv2d
            | BuiltinOp::BatchMatMul
    );
    let dt = |k: usize| n.inputs.get(k).copied().flatten().map(|t| &g.tensors[t]);
    match (dt(0), dt(1)) {
        (Some(x), Some(w)) => {
            weighted && x.dtype == DType::F32 && w.dtype == DType::I8 && w.data.is_some()
        }
        _ => false,
    }
}

fn fold_dequantize(g: &mut Graph, src: usize, dst: usize) -> Result<(), Error> {
    let s = &g.tensors[src];
    let data = s.data.as_deref().unwrap_or(&[]);
    let out: Vec<u8> = match s.dtype {
        DType::F32 => data.to_vec(),
        DType::I8 | DType::U8 => {
            let (scale, zp) = s.quant.as_ref().map_or((1.0, 0), |q| q.first());
            if s.quant.as_ref().is_some_and(|q| q.per_channel()) {
                return Err(g.tensor_error(src, "a per-channel DEQUANTIZE of a constant"));
            }
            data.iter()
                .flat_map(|&b| {
                    let q = if s.dtype == DType::I8 {
                        b as i8 as i32
                    } else {
                        b as i32
                    };
                    (scale * (q - zp) as f32).to_le_bytes()
                })
                .collect()
        }
        _ => return Err(g.tensor_error(src, "DEQUANTIZE of a constant of this type")),
    };
    let d = &mut g.tensors[dst];
    if d.dtype != DType::F32 || out.len() != d.byte_len() {
        return Err(g.tensor_error(dst, "DEQUANTIZE output does not match its input"));
    }
    d.data = Some(out);
    Ok(())
}

/// IEEE half-precision (little-endian pairs of bytes) to f32 bytes.
fn widen_f16(b: &[u8]) -> Vec<u8> {
    b.chunks_exact(2)
        .flat_map(|h| f16_to_f32(u16::from_le_bytes([h[0], h[1]])).to_le_bytes())
        .collect()
}

/// Exact conversion (every half is an f32): subnormals normalised, inf/NaN kept.
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value m·2^-24; normalise.
            let s = m.leading_zeros() - 21; // brings the top bit to bit 10
            let m = (m << s) & 0x3ff;
            sign | ((113 - s) << 23) | (m << 13)
        }
        (31, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

    #[test]
    fn halves_widen_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
    }
}
