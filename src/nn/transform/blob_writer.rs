//! Writes a lowered, planned model as a blob (`docs/blob-format.md`; the reader is
//! `nn::blob`). Only tensors the operators or the model's inputs and outputs use are
//! written; constants are 16-byte aligned (64-byte in blobs for a host: a 512-bit load of
//! weights then never splits a cache line).

use alloc::vec;
use alloc::vec::Vec;

use super::lower::{Lowered, Packing};
use super::plan::Plan;
use crate::error::Error;
use crate::nn::blob::*;
use crate::nn::dtype::DType;

/// Options of the writer.
#[derive(Clone, Copy, Debug)]
pub struct WriteOptions {
    /// Keep tensor names (for errors and `inspect`); firmware blobs may strip them.
    pub names: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { names: true }
    }
}

fn too_big() -> Error {
    blob_err("the model is too large for a blob (over 4 GiB)")
}

fn u32_of(x: usize) -> Result<u32, Error> {
    u32::try_from(x).map_err(|_| too_big())
}

fn put(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The blob bytes of `l` with memory plan `p`.
pub fn write_blob(l: &Lowered, p: &Plan, opts: WriteOptions) -> Result<Vec<u8>, Error> {
    // Which tensors are written, and their new indices.
    let mut used = vec![false; l.tensors.len()];
    for op in &l.ops {
        for &t in op
            .inputs
            .iter()
            .flatten()
            .chain(&op.outputs)
            .chain(&op.temps)
        {
            used[t] = true;
        }
    }
    for &t in l.inputs.iter().chain(&l.outputs) {
        used[t] = true;
    }
    let mut new_index = vec![NO_TENSOR; l.tensors.len()];
    let mut order = Vec::new();
    for (t, &u) in used.iter().enumerate() {
        if u {
            new_index[t] = u32_of(order.len())?;
            order.push(t);
        }
    }
    let n_io: usize = l
        .ops
        .iter()
        .map(|o| o.inputs.len() + o.outputs.len() + o.temps.len())
        .sum();
    let n_params: usize = l.ops.iter().map(|o| o.params.len()).sum();

    // Fixed-size sections first, then variable ones, then constants.
    let tensors_at = HEADER;
    let ops_at = tensors_at + order.len() * TENSOR_REC;
    let inputs_at = ops_at + l.ops.len() * OP_REC;
    let outputs_at = inputs_at + 4 * l.inputs.len();
    let io_at = outputs_at + 4 * l.outputs.len();
    let params_at = io_at + 4 * n_io;
    let strings_at = params_at + 4 * n_params;
    let mut out = vec![0u8; strings_at];
    out[..4].copy_from_slice(&MAGIC);
    put(&mut out, H_VERSION, VERSION);
    put(&mut out, H_FLAGS, 0); // no flags are defined yet
    put(&mut out, H_ARENA, u32_of(p.arena)?);
    put(&mut out, H_BASELINE, u32_of(p.baseline)?);
    put(&mut out, H_N_TENSORS, u32_of(order.len())?);
    put(&mut out, H_TENSORS, u32_of(tensors_at)?);
    put(&mut out, H_N_OPS, u32_of(l.ops.len())?);
    put(&mut out, H_OPS, u32_of(ops_at)?);
    put(&mut out, H_N_INPUTS, u32_of(l.inputs.len())?);
    put(&mut out, H_INPUTS, u32_of(inputs_at)?);
    put(&mut out, H_N_OUTPUTS, u32_of(l.outputs.len())?);
    put(&mut out, H_OUTPUTS, u32_of(outputs_at)?);

    let string = |out: &mut Vec<u8>, s: &str| -> Result<u32, Error> {
        let at = out.len();
        let len = u16::try_from(s.len()).map_err(|_| blob_err("a name is over 65535 bytes"))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        u32_of(at)
    };
    let packing = string(&mut out, l.packing.name())?;
    put(&mut out, H_PACKING, packing);
    let mut names = vec![0u32; order.len()];
    if opts.names {
        for (k, &t) in order.iter().enumerate() {
            if !l.tensors[t].name.is_empty() {
                names[k] = string(&mut out, &l.tensors[t].name)?;
            }
        }
    }
    // Constants, each 16-byte aligned; a microcontroller's flash keeps the padding small, a
    // host's weights start on cache lines (the loaded blob is 64-byte aligned).
    let const_align = match l.packing {
        Packing::CortexM4 | Packing::CortexM4I16 => ALIGN,
        Packing::Host | Packing::Portable => 64,
    };
    let mut const_at = vec![0usize; order.len()];
    for (k, &t) in order.iter().enumerate() {
        if let Some(d) = &l.tensors[t].data {
            out.resize(out.len().next_multiple_of(const_align), 0);
            const_at[k] = out.len();
            out.extend_from_slice(d);
        }
    }
    out.resize(out.len().next_multiple_of(ALIGN), 0);

    for (k, &t) in order.iter().enumerate() {
        let x = &l.tensors[t];
        let rec = tensors_at + k * TENSOR_REC;
        if x.shape.len() > MAX_RANK {
            return Err(blob_err("a tensor has more than 6 dimensions"));
        }
        out[rec + T_DTYPE] = x.dtype.code();
        out[rec + T_RANK] = x.shape.len() as u8;
        for (d, &dim) in x.shape.iter().enumerate() {
            put(&mut out, rec + T_DIMS + 4 * d, u32_of(dim)?);
        }
        let bytes = if x.dtype == DType::Packed {
            x.data.as_ref().map_or(0, |d| d.len())
        } else {
            x.shape.iter().product::<usize>() * x.dtype.size()
        };
        put(&mut out, rec + T_BYTES, u32_of(bytes)?);
        let (storage, offset) = match &x.data {
            Some(_) => (STORAGE_CONST, const_at[k]),
            None => (
                STORAGE_ARENA,
                p.offsets[t].ok_or_else(|| blob_err("an arena tensor has no planned offset"))?,
            ),
        };
        out[rec + T_STORAGE] = storage;
        put(&mut out, rec + T_OFFSET, u32_of(offset)?);
        if let Some(q) = &x.quant {
            let (scale, zp) = q.first();
            out[rec + T_QUANT] = if q.per_channel() { 2 } else { 1 };
            put(&mut out, rec + T_SCALE, scale.to_bits());
            put(&mut out, rec + T_ZERO_POINT, zp as u32);
        }
        put(&mut out, rec + T_NAME, names[k]);
    }
    let map = |t: usize| new_index[t];
    let mut io = io_at;
    let mut params = params_at;
    for (i, op) in l.ops.iter().enumerate() {
        let rec = ops_at + i * OP_REC;
        out[rec + O_CODE..rec + O_CODE + 2].copy_from_slice(&op.code.to_le_bytes());
        let count = |n: usize| u8::try_from(n).map_err(|_| blob_err("over 255 operator tensors"));
        out[rec + O_N_IN] = count(op.inputs.len())?;
        out[rec + O_N_OUT] = count(op.outputs.len())?;
        out[rec + O_N_TMP] = count(op.temps.len())?;
        put(&mut out, rec + O_IO, u32_of(io)?);
        for t in &op.inputs {
            put(&mut out, io, t.map_or(NO_TENSOR, map));
            io += 4;
        }
        for &t in op.outputs.iter().chain(&op.temps) {
            put(&mut out, io, map(t));
            io += 4;
        }
        put(&mut out, rec + O_PARAMS, u32_of(params)?);
        put(&mut out, rec + O_PARAMS_LEN, u32_of(4 * op.params.len())?);
        for &w in &op.params {
            put(&mut out, params, w as u32);
            params += 4;
        }
    }
    for (k, &t) in l.inputs.iter().enumerate() {
        put(&mut out, inputs_at + 4 * k, map(t));
    }
    for (k, &t) in l.outputs.iter().enumerate() {
        put(&mut out, outputs_at + 4 * k, map(t));
    }
    let total = out.len();
    put(&mut out, H_TOTAL, u32_of(total)?);
    let crc = crc32(&out[16..]);
    put(&mut out, H_CRC, crc);
    Ok(out)
}
