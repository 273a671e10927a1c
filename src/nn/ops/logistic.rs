//! LOGISTIC (sigmoid) and TANH.
//!
//! int8: a 256-entry lookup table, as TFLite's reference kernels (`Register_LOGISTIC_REF`,
//! `Register_TANH_REF`: `LUTPopulate<int8_t>` in Prepare, `LookupTable` in Eval). The table
//! is built when lowering with TFLite's float arithmetic: for each int8 `q`,
//! `round(f(s_in·(q − z_in)) / s_out) + z_out` clamped to int8, where `f` is
//! `1/(1 + expf(−x))` or `tanhf(x)` in f32 (the host computes them in f64 and rounds, which
//! is the correctly rounded float result). f32: TFLite's `reference_ops::Logistic` (1 above
//! 16.619…, `e^x` below −9, else `1/(1 + e^−x)`) and `tanh`.
//!
//! Blob form: input x, for int8 the table (256 int8, indexed by the input byte), output y;
//! no parameters, no scratch. Works in place.

use super::unary::{self, check_same, exp_f32, is_f32, tanh_f32};
use super::{cast, checks, OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::OpView;
use crate::nn::dtype::DType;

pub(crate) const DEF: OpDef = OpDef {
    code: 14,
    name: "LOGISTIC",
    in_place: true,
    macs: super::no_macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower,
};

pub(crate) const TANH: OpDef = OpDef {
    code: 28,
    name: "TANH",
    ..DEF
};

fn check(op: &OpView) -> Result<(), Error> {
    let (dtype, _) = check_same(op)?;
    if dtype == DType::F32 {
        return checks::counts(op, 1, 1, 0, 0);
    }
    checks::counts(op, 2, 1, 0, 0)?;
    let table = checks::input(op, 1)?;
    checks::dtype(op, &table, DType::I8)?;
    if table.elems() != 256 {
        return Err(op.error("the lookup table does not have 256 entries"));
    }
    Ok(())
}

/// TFLite's reference float logistic.
pub(crate) fn logistic_f32(x: f32) -> f32 {
    if x > 16.619_047 {
        1.0
    } else if x < -9.0 {
        exp_f32(x)
    } else {
        1.0 / (1.0 + exp_f32(-x))
    }
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    if is_f32(op) {
        let io = unary::io(op, mem)?;
        if op.code() == TANH.code {
            unary::map::<f32>(io, tanh_f32);
        } else {
            unary::map::<f32>(io, logistic_f32);
        }
        return Ok(());
    }
    let table_t = op.input(1).ok_or_else(|| op.error("missing table"))?;
    let table: &[i8; 256] = cast::<i8>(mem.input(table_t)?)
        .try_into()
        .map_err(|_| op.error("the lookup table does not have 256 entries"))?;
    let io = unary::io(op, mem)?;
    unary::map::<i8>(io, |x| table[x as u8 as usize]);
    Ok(())
}

/// TFLite's `LUTPopulate<int8_t>`: the int8 table of `f` from the input to the output
/// quantization, in TFLite's float arithmetic.
#[cfg(feature = "alloc")]
pub(crate) fn int8_table(
    (s_in, z_in): (f32, i32),
    (s_out, z_out): (f32, i32),
    f: impl Fn(f32) -> f32,
) -> [i8; 256] {
    let inverse_scale = 1.0 / s_out;
    let mut table = [0i8; 256];
    for q in -128i32..=127 {
        let dequantized = s_in * (q - z_in) as f32;
        let rescaled = unary::round_f32(f(dequantized) * inverse_scale);
        // static_cast<int32_t>(rescaled + z_out): truncating, saturating like `as`.
        let quantized = (rescaled + z_out as f32) as i32;
        table[q as u8 as usize] = quantized.clamp(-128, 127) as i8;
    }
    table
}

/// `1.0f / (1.0f + std::exp(-x))` with a correctly rounded `expf`.
#[cfg(feature = "alloc")]
fn sigmoid_host(x: f32) -> f32 {
    1.0 / (1.0 + unary::exp_f64(f64::from(-x)) as f32)
}

/// `std::tanh(x)` (float), correctly rounded.
#[cfg(feature = "alloc")]
fn tanh_host(x: f32) -> f32 {
    unary::tanh_f64(f64::from(x)) as f32
}

#[cfg(feature = "alloc")]
fn lower(l: &mut crate::nn::transform::lower::Lowering, node: usize) -> Result<(), Error> {
    use alloc::format;
    use alloc::vec::Vec;

    let g = l.graph;
    let err = |r| g.node_error(node, r);
    let code = g.nodes[node].op.code() as u16;
    let x = g.input(node, 0)?;
    let y = &g.tensors[g.output_index(node, 0)?];
    if x.dtype != y.dtype || x.elems() != y.elems() {
        return Err(err("input and output differ in type or size"));
    }
    match x.dtype {
        DType::F32 => {
            let mut op = l.op(node, code, Vec::new());
            op.inputs.truncate(1);
            l.push(op);
            Ok(())
        }
        DType::I8 => {
            let q = |t: &crate::nn::transform::ir::Tensor| {
                t.quant
                    .as_ref()
                    .map(|q| q.first())
                    .ok_or_else(|| err("a quantized tensor has no scale"))
            };
            let (qi, qo) = (q(x)?, q(y)?);
            let table = if code == TANH.code {
                int8_table(qi, qo, tanh_host)
            } else {
                // TFLite's Prepare requires the 1/256 output scale.
                if f64::from(qo.0) != 1.0 / 256.0 {
                    return Err(err(
                        "int8 LOGISTIC with an output scale other than 1/256 is not supported",
                    ));
                }
                int8_table(qi, qo, sigmoid_host)
            };
            let bytes = table.iter().map(|&v| v as u8).collect();
            let name = format!("{}/table", y.name);
            let t = l.add_const(name, DType::I8, alloc::vec![256], bytes);
            let mut op = l.op(node, code, Vec::new());
            op.inputs = alloc::vec![op.inputs.first().copied().flatten(), Some(t)];
            l.push(op);
            Ok(())
        }
        _ => Err(err("this activation's element type is not supported")),
    }
}
