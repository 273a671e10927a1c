//! Lowering: each IR node becomes a runtime operator with its parameters precomputed
//! (fixed-point multipliers, activation ranges, padding) and its weights laid out for the
//! kernels (portable, or packed for this machine's int8 kernel). The operators' own `lower`
//! functions do the work (one per operator file, `nn::ops`); this module drives them and
//! collects their tensors.

use alloc::string::String;
use alloc::vec::Vec;

use super::ir::{Graph, Quant};
use crate::error::Error;
use crate::kernels::targets::{qshape, Kernels, QShape, BUILD_TARGETS, CORTEX_M4};
use crate::nn::dtype::DType;
use crate::nn::ops::{self, REGISTRY};

/// How weights are laid out in the blob, and which build's kernels its GEMM scratch is
/// sized for: the target a model is converted for. The blob records it by name
/// ([`Packing::name`]); a build refuses a blob packed for a target it does not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    /// Plain int8/f32 weights, read in place by any build (slower: packed per call); scratch
    /// sized for the kernels of every build.
    Portable,
    /// Packed once for this build's default int8 kernel on this CPU.
    Host,
    /// Packed for a Cortex-M4F with the DSP extension (`qgemm_s16_m4dsp_16x4`), scratch sized
    /// for its build (`thumbv7em-none-eabihf`), whatever machine converts it; int8
    /// convolutions in the direct form with int8 weights.
    CortexM4,
    /// [`Packing::CortexM4`] with the direct convolutions' weights as i16 pairs (twice the
    /// flash, a faster kernel; the blob records the same target).
    CortexM4I16,
}

impl Packing {
    /// Every target `edgemm convert --target` takes, by the name it takes.
    pub const TARGETS: [(&'static str, Packing); 4] = [
        ("host", Packing::Host),
        ("portable", Packing::Portable),
        ("cortex-m4", Packing::CortexM4),
        ("cortex-m4-i16", Packing::CortexM4I16),
    ];

    /// The target named `name` (a name of [`Packing::TARGETS`], or the packing name a blob
    /// records, e.g. `cortex-m4-dsp`).
    pub fn from_name(name: &str) -> Option<Packing> {
        Self::TARGETS
            .iter()
            .find(|(n, p)| *n == name || p.name() == name)
            .map(|&(_, p)| p)
    }

    /// The name recorded in the blob: `portable`, or the packing target of the kernel the
    /// weights are packed for (`x86_64-avx512-vnni`, `x86_64-avx2`, `cortex-m4-dsp`,
    /// `aarch64-neon-dot`, ..., `generic`).
    pub fn name(self) -> &'static str {
        match self {
            Packing::Portable => "portable",
            Packing::Host => self
                .pack_shape()
                .ok()
                .flatten()
                .map_or("host", |s| s.target),
            Packing::CortexM4 | Packing::CortexM4I16 => CORTEX_M4.name,
        }
    }

    /// Whether this build runs blobs of this target (else loading one is
    /// [`Error::TargetMismatch`]).
    pub fn runs_here(self) -> bool {
        BUILD_TARGETS.contains(&self.name()) || self == Packing::Portable
    }

    /// The kernels its GEMM scratch is sized for.
    pub(crate) fn kernels(self) -> Kernels {
        match self {
            Packing::Portable => Kernels::Any,
            Packing::Host => Kernels::Build,
            Packing::CortexM4 | Packing::CortexM4I16 => Kernels::Target(&CORTEX_M4),
        }
    }

    /// The int8 kernel weights are packed for (`None`: portable).
    fn pack_shape(self) -> Result<Option<&'static QShape>, Error> {
        Ok(match self {
            Packing::Portable => None,
            Packing::Host => qshape(crate::kernels::qgemm_kernel()?.name),
            Packing::CortexM4 | Packing::CortexM4I16 => qshape(CORTEX_M4.qgemm[0]),
        })
    }

    /// `w` (k×n, row-major) packed for this target's int8 kernel: the packed operand's bytes
    /// and the kernel's name; `None` for [`Packing::Portable`].
    pub(crate) fn pack_i8(
        self,
        w: &[i8],
        k: usize,
        n: usize,
    ) -> Result<Option<(Vec<u8>, &'static str)>, Error> {
        let Some(shape) = self.pack_shape()? else {
            return Ok(None);
        };
        let bytes = crate::quant::pack_bytes_for(shape, crate::MatRef::row_major(w, k, n)?)?;
        Ok(Some((bytes, shape.name)))
    }
}

/// A tensor of the lowered model.
#[derive(Clone, Debug)]
pub struct LTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub quant: Option<Quant>,
    /// Constant bytes (weights, tables); `None` for arena tensors.
    pub data: Option<Vec<u8>>,
    /// Bytes of the tensor (for packed constants, their length).
    pub bytes: usize,
}

/// An operator of the lowered model.
#[derive(Clone, Debug)]
pub struct LOp {
    pub code: u16,
    pub inputs: Vec<Option<usize>>,
    pub outputs: Vec<usize>,
    /// Scratch tensors, alive while the operator runs.
    pub temps: Vec<usize>,
    pub params: Vec<i32>,
    /// The IR node it came from.
    pub node: usize,
    /// Its output 0 may share the bytes of its input 0 (reshape: a view, no copy).
    pub alias: bool,
    /// Its output 0 may be written over its input 0 when nothing reads that input later
    /// (the operator then reads the input through the output): the planner may give both
    /// the same offset. Set from the operator's `OpDef::in_place`; `lower` clears it for
    /// geometries the operator cannot run in place.
    pub in_place: bool,
}

/// The lowering state the operators' `lower` functions add to.
#[derive(Debug)]
pub struct Lowering<'g> {
    pub graph: &'g Graph,
    pub packing: Packing,
    /// The graph's tensors first (same indices), then constants and scratch added here.
    pub tensors: Vec<LTensor>,
    pub ops: Vec<LOp>,
}

/// The lowered model: what the memory planner and the blob writer take.
#[derive(Clone, Debug)]
pub struct Lowered {
    pub tensors: Vec<LTensor>,
    pub ops: Vec<LOp>,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
    pub packing: Packing,
}

impl<'g> Lowering<'g> {
    /// A constant tensor added by lowering (packed weights, multipliers, shifts).
    pub fn add_const(
        &mut self,
        name: String,
        dtype: DType,
        shape: Vec<usize>,
        data: Vec<u8>,
    ) -> usize {
        self.tensors.push(LTensor {
            name,
            dtype,
            shape,
            quant: None,
            bytes: data.len(),
            data: Some(data),
        });
        self.tensors.len() - 1
    }

    /// An i32 constant.
    pub fn add_i32(&mut self, name: String, values: &[i32]) -> usize {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add_const(name, DType::I32, alloc::vec![values.len()], data)
    }

    /// A scratch buffer of `bytes` bytes for the operator being lowered.
    pub fn add_temp(&mut self, name: String, bytes: usize) -> usize {
        self.tensors.push(LTensor {
            name,
            dtype: DType::U8,
            shape: alloc::vec![bytes],
            quant: None,
            data: None,
            bytes,
        });
        self.tensors.len() - 1
    }

    /// Adds the operator for IR node `node`.
    pub fn push(&mut self, op: LOp) {
        self.ops.push(op);
    }

    /// An operator for node `node` with the node's own tensors and these parameters.
    pub fn op(&self, node: usize, code: u16, params: Vec<i32>) -> LOp {
        let n = &self.graph.nodes[node];
        LOp {
            code,
            inputs: n.inputs.clone(),
            outputs: n.outputs.clone(),
            temps: Vec::new(),
            params,
            node,
            alias: false,
            in_place: ops::def(code).is_some_and(|d| d.in_place),
        }
    }
}

/// Every node whose operator this build cannot run: (node index, TFLite name).
pub fn unsupported(graph: &Graph) -> Vec<(usize, &'static str)> {
    graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| u16::try_from(n.op.code()).ok().and_then(ops::def).is_none())
        .map(|(i, n)| (i, n.op.name()))
        .collect()
}

/// Lowers every node; the first one this build cannot run is an error naming it (use
/// [`unsupported`] to list them all). Pointwise and depthwise pairs with an intermediate
/// tensor of [`super::expand_depthwise::FUSE_MIN_BYTES`] or more run fused.
pub fn lower(graph: &Graph, packing: Packing) -> Result<Lowered, Error> {
    lower_fusing(graph, packing, super::expand_depthwise::FUSE_MIN_BYTES)
}

/// [`lower`], fusing the pointwise and depthwise pairs whose intermediate tensor takes at
/// least `min_bytes` (0: all that can be; `usize::MAX`: none), see
/// [`super::expand_depthwise`].
pub fn lower_fusing(graph: &Graph, packing: Packing, min_bytes: usize) -> Result<Lowered, Error> {
    let mut l = Lowering {
        graph,
        packing,
        tensors: graph
            .tensors
            .iter()
            .map(|t| LTensor {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                quant: t.quant.clone(),
                data: t.data.clone(),
                bytes: t.byte_len(),
            })
            .collect(),
        ops: Vec::new(),
    };
    for (i, n) in graph.nodes.iter().enumerate() {
        let def = u16::try_from(n.op.code())
            .ok()
            .and_then(|c| REGISTRY.iter().find(|d| d.code == c));
        match def {
            Some(d) => (d.lower)(&mut l, i)?,
            None => return Err(graph.node_error(i, "this operator is not supported")),
        }
    }
    for &t in graph.inputs.iter().chain(&graph.outputs) {
        if t >= l.tensors.len() || l.tensors[t].data.is_some() {
            return Err(graph.tensor_error(t, "a model input or output is a constant"));
        }
    }
    let mut lowered = Lowered {
        tensors: l.tensors,
        ops: l.ops,
        inputs: graph.inputs.clone(),
        outputs: graph.outputs.clone(),
        packing,
    };
    super::expand_depthwise::fuse_expand_depthwise(&mut lowered, min_bytes);
    Ok(lowered)
}

/// TFLite's `CalculateActivationRangeQuantized`: the output clamp of a fused activation in
/// output units, within the type's range `qmin..=qmax`.
pub fn activation_range_q(
    act: super::ir::Activation,
    scale: f32,
    zero_point: i32,
    qmin: i32,
    qmax: i32,
) -> Result<(i32, i32), &'static str> {
    use super::ir::Activation as A;
    let q = |f: f32| zero_point.saturating_add(round_half_away(f64::from(f / scale)) as i32);
    let (lo, hi) = match act {
        A::None => (qmin, qmax),
        A::Relu => (qmin.max(q(0.0)), qmax),
        A::Relu6 => (qmin.max(q(0.0)), qmax.min(q(6.0))),
        A::ReluN1To1 => (qmin.max(q(-1.0)), qmax.min(q(1.0))),
        _ => return Err("this fused activation is not supported"),
    };
    Ok((lo, hi))
}

/// The float clamp of a fused activation.
pub fn activation_range_f(act: super::ir::Activation) -> Result<(f32, f32), &'static str> {
    use super::ir::Activation as A;
    Ok(match act {
        A::None => (f32::NEG_INFINITY, f32::INFINITY),
        A::Relu => (0.0, f32::INFINITY),
        A::Relu6 => (0.0, 6.0),
        A::ReluN1To1 => (-1.0, 1.0),
        _ => return Err("this fused activation is not supported"),
    })
}

/// `std::round` (half away from zero) without `std`, saturating at the i64 range.
pub fn round_half_away(x: f64) -> i64 {
    if x.is_nan() {
        return 0;
    }
    if x >= 9.2e18 {
        return i64::MAX;
    }
    if x <= -9.2e18 {
        return i64::MIN;
    }
    let t = x as i64; // truncates toward zero
    let frac = x - t as f64; // exact for |x| < 2^52
    if frac >= 0.5 {
        t + 1
    } else if frac <= -0.5 {
        t - 1
    } else {
        t
    }
}

/// TFLite's multiplier for a requantization by `real` (`QuantizeMultiplier`).
pub fn multiplier(real: f64) -> Result<(i32, i32), Error> {
    crate::quantize_multiplier(real)
}

#[cfg(test)]
mod tests {
    use super::{round_half_away, Packing};

    /// Packing for a named kernel (of any build) writes what packing for the kernel itself
    /// writes: host-packed weights are the bytes they were before targets had names.
    #[test]
    fn packing_for_the_host_target_is_packing_for_its_kernel() {
        use crate::{MatRef, PackedQBRef};
        let (k, n) = (37, 21);
        let w: alloc::vec::Vec<i8> = (0..k * n).map(|i| (i * 7 % 256) as u8 as i8).collect();
        let (bytes, kernel) = Packing::Host.pack_i8(&w, k, n).unwrap().unwrap();
        let mut buf = alloc::vec![0u8; crate::qgemm_packed_b_size(k, n)];
        let p = PackedQBRef::pack(MatRef::row_major(&w, k, n).unwrap(), &mut buf).unwrap();
        assert_eq!((&bytes[..], kernel), (p.as_bytes(), p.kernel_name()));
        assert_eq!(Packing::Portable.pack_i8(&w, k, n).unwrap(), None);
        let (m4, kernel) = Packing::CortexM4.pack_i8(&w, k, n).unwrap().unwrap();
        assert_eq!(kernel, "qgemm_s16_m4dsp_16x4");
        // i16 pairs: 2 bytes per weight, k and n rounded up to 2 and 4.
        assert!(m4.len() >= 2 * 38 * 24);
    }

    #[test]
    fn rounds_like_std_round() {
        for (x, r) in [
            (0.5, 1),
            (-0.5, -1),
            (1.49, 1),
            (2.5, 3),
            (-2.5, -3),
            (0.0, 0),
        ] {
            assert_eq!(round_half_away(x), r, "{x}");
        }
    }
}
