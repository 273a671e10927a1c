//! The lowered-model step that fuses a pointwise CONV_2D into the DEPTHWISE_CONV_2D reading
//! it (operator `CONV_2D+DEPTHWISE_CONV_2D`, `nn::ops::expand_depthwise`), where it pays.
//!
//! The rule, by sizes: a pair whose intermediate tensor takes at least
//! [`FUSE_MIN_BYTES`] (1 MiB, the L2 of a Zen 4 core). A tensor that big leaves L2 between
//! the two layers (written out by one, read back by the other); fused, it is never whole,
//! only the ring of rows the depthwise windows read (L2-sized: 3 rows of 113×96 f32 for
//! MobileNet-v2's first expansion, 130 KB). Smaller ones stay in L2 anyway, and the fused
//! form's one-row GEMM calls cost more than that saves there. The intermediate must have
//! no other reader, not be a model output, and its reader must run right after the pointwise
//! layer (as in every MobileNet-v2 block), so no tensor lives longer than before. The fused operator runs where the depthwise
//! layer ran; the two operators and the intermediate tensor leave the model (the planner
//! places no tensor no operator uses).

use alloc::vec;
use alloc::vec::Vec;

use super::lower::Lowered;
use crate::nn::ops::expand_depthwise;

/// The fewest bytes of intermediate tensor for which a pair is fused.
pub const FUSE_MIN_BYTES: usize = 1 << 20;

/// Fuses every pair of `l` in the operator's form whose intermediate tensor takes at least
/// `min_bytes` (0: every pair in the form; `usize::MAX`: none). Returns the pairs fused.
pub fn fuse_expand_depthwise(l: &mut Lowered, min_bytes: usize) -> usize {
    if min_bytes == usize::MAX {
        return 0;
    }
    let mut readers = vec![0usize; l.tensors.len()];
    for op in &l.ops {
        for &t in op.inputs.iter().flatten() {
            readers[t] += 1;
        }
    }
    let kernels = l.packing.kernels();
    let mut fused = 0;
    let mut ops = Vec::with_capacity(l.ops.len());
    let mut i = 0;
    while i < l.ops.len() {
        let op = &l.ops[i];
        // The pointwise layer's one reader, if it is the depthwise one right after it.
        let mid = op.outputs.first().copied();
        let pair = mid.filter(|&t| {
            readers[t] == 1
                && l.tensors[t].bytes >= min_bytes
                && !l.outputs.contains(&t)
                && l.ops
                    .get(i + 1)
                    .is_some_and(|d| d.inputs.first() == Some(&Some(t)))
        });
        if let Some(new) =
            pair.and_then(|_| expand_depthwise::fuse(&mut l.tensors, kernels, op, &l.ops[i + 1]))
        {
            ops.push(new);
            fused += 1;
            i += 2;
            continue;
        }
        ops.push(op.clone());
        i += 1;
    }
    l.ops = ops;
    fused
}
