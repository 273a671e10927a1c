//! Converting a model for a target (`edgemm convert`): the blob, and what a firmware declares
//! beside it (DESIGN.md, "Code size on a microcontroller"): a small Rust source with the
//! arena size and the operator set as constants, and the blob embedded at its alignment.
//!
//! A blob for a target this build does not run (`--target cortex-m4` on an x86 host) is
//! written without the load-time validation this build would refuse it with; the target's
//! runtime validates it when it loads it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::blob_writer::{write_blob, WriteOptions};
use super::host::LoadedModel;
use super::import::import_tflite;
use super::ir::Graph;
use super::lower::{lower, Packing};
use super::plan::plan;
use crate::error::Error;
use crate::nn::ops;

/// A model converted for a target.
#[derive(Clone, Debug)]
pub struct Converted {
    /// The blob bytes (`docs/blob-format.md`).
    pub blob: Vec<u8>,
    /// The target it was converted for.
    pub packing: Packing,
    /// Bytes of arena a session needs.
    pub arena_size: usize,
    /// The distinct operator codes it runs (TFLite builtin codes), ascending.
    pub operators: Vec<u16>,
    /// Multiply-accumulates of one inference ([`macs`]).
    pub macs: u64,
    /// Bytes of each model input, in order.
    pub input_bytes: Vec<usize>,
    /// Bytes of each model output, in order.
    pub output_bytes: Vec<usize>,
}

/// Multiply-accumulates of one inference of `g`: CONV_2D, FULLY_CONNECTED and BATCH_MATMUL
/// count output elements × depth, DEPTHWISE_CONV_2D output elements × kernel taps; the
/// other operators count none (the convention of published MAC counts, e.g. MLPerf Tiny's
/// 2.66 M for its DS-CNN).
pub fn macs(g: &Graph) -> u64 {
    let mut total = 0u64;
    for n in &g.nodes {
        let out = n
            .outputs
            .first()
            .and_then(|&t| g.tensors.get(t))
            .map_or(0, |t| t.elems() as u64);
        let input = |k: usize| {
            n.inputs
                .get(k)
                .copied()
                .flatten()
                .and_then(|t| g.tensors.get(t))
        };
        let depth = match (n.op.name(), input(1)) {
            // Weights [out, (kh, kw,) in]: out·depth elements.
            ("CONV_2D" | "FULLY_CONNECTED", Some(w)) => {
                w.elems() / w.shape.first().copied().unwrap_or(1).max(1)
            }
            // Weights [1, kh, kw, channels]: one tap per weight of a channel.
            ("DEPTHWISE_CONV_2D", Some(w)) => {
                w.elems() / w.shape.last().copied().unwrap_or(1).max(1)
            }
            // lhs [..., m, k] (k the reduced dimension unless adjoint: the product's depth is
            // the lhs's last dimension either way for the shapes TFLite emits without adj_x).
            ("BATCH_MATMUL", _) => input(0).and_then(|a| a.shape.last().copied()).unwrap_or(0),
            _ => 0,
        };
        total += out * depth as u64;
    }
    total
}

/// Imports a `.tflite` model and converts it for `packing`.
pub fn convert_tflite(
    bytes: &[u8],
    packing: Packing,
    opts: WriteOptions,
) -> Result<Converted, Error> {
    convert_graph(&import_tflite(bytes)?, packing, opts)
}

/// Lowers, plans and writes a graph for `packing`; validated as a loader would when this build
/// runs that target.
pub fn convert_graph(g: &Graph, packing: Packing, opts: WriteOptions) -> Result<Converted, Error> {
    let l = lower(g, packing)?;
    let p = plan(&l);
    let blob = write_blob(&l, &p, opts)?;
    if packing.runs_here() {
        LoadedModel::from_blob(&blob)?;
    }
    let mut operators: Vec<u16> = l.ops.iter().map(|o| o.code).collect();
    operators.sort_unstable();
    operators.dedup();
    Ok(Converted {
        blob,
        packing,
        arena_size: p.arena,
        operators,
        macs: macs(g),
        input_bytes: l.inputs.iter().map(|&t| l.tensors[t].bytes).collect(),
        output_bytes: l.outputs.iter().map(|&t| l.tensors[t].bytes).collect(),
    })
}

impl Converted {
    /// The operator set as the runtime takes it ([`crate::nn::op_set`] of its codes).
    pub fn op_set(&self) -> u128 {
        ops::op_set(&self.operators)
    }

    /// A Rust source for a firmware to `include!`: `ARENA_SIZE`, `BLOB_SIZE`, `PACKING`,
    /// `OPERATORS` (the operator set, for [`crate::nn::Model::from_bytes_with`] and
    /// [`crate::nn::Session::run_with`], so the operators the model does not use are not
    /// linked) and `BLOB`, the blob file `blob_file` (a path relative to the generated file)
    /// embedded 16-byte aligned. `source` names the model it came from, for the header.
    pub fn rust_source(&self, source: &str, blob_file: &str) -> String {
        let names: Vec<String> = self
            .operators
            .iter()
            .map(|&c| format!("{} ({c})", ops::name(c)))
            .collect();
        let codes: Vec<String> = self.operators.iter().map(|c| format!("{c}")).collect();
        format!(
            "// Generated by `edgemm convert` from {source:?} for target {packing}: do not edit.\n\
             // Include it in a firmware with `include!`; `{blob_file}` must sit beside it.\n\
             \n\
             /// Bytes of arena a session of the model needs (a multiple of 16).\n\
             pub const ARENA_SIZE: usize = {arena};\n\
             /// Bytes of the blob.\n\
             pub const BLOB_SIZE: usize = {size};\n\
             /// The weights layout the blob holds (its packing name).\n\
             pub const PACKING: &str = {packing:?};\n\
             /// Multiply-accumulates of one inference.\n\
             pub const MACS: u64 = {macs};\n\
             /// Bytes of each model input and output, in order.\n\
             pub const INPUT_BYTES: &[usize] = &{inputs:?};\n\
             pub const OUTPUT_BYTES: &[usize] = &{outputs:?};\n\
             /// The operators the model uses: {names}.\n\
             pub const OPERATORS: u128 = edgemm::nn::op_set(&[{codes}]);\n\
             \n\
             /// 16 bytes of alignment for what it wraps.\n\
             #[repr(C, align(16))]\n\
             pub struct Align16<T: ?Sized>(pub T);\n\
             \n\
             /// The blob, 16-byte aligned (its constants are read in place).\n\
             pub static BLOB: &Align16<[u8; BLOB_SIZE]> = &Align16(*include_bytes!({blob_file:?}));\n",
            packing = self.packing.name(),
            arena = self.arena_size,
            size = self.blob.len(),
            macs = self.macs,
            inputs = self.input_bytes,
            outputs = self.output_bytes,
            names = names.join(", "),
            codes = codes.join(", "),
        )
    }
}
