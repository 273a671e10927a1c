//! int8 im2col + GEMM: per group, `[N·Ho·Wo × Kh·Kw·Cin/g] · [Kh·Kw·Cin/g × Cout/g]`
//! through edgemm's int8 driver with the filter packed once ([`PackedQB`], zero point 0) and
//! TFLite's requantization fused into the GEMM's output stage. The patch rows of a block of
//! output pixels are built in a per-thread buffer that stays in cache for the GEMM that
//! reads them; taps in the padding are filled with the input zero point `za`, so their
//! terms `(za − za)·w` vanish exactly, as TFLite's skipped taps do. A 1×1 stride-1 unpadded
//! layer is a plain GEMM on the input (no patch buffer).
//!
//! As for f32, OHWI makes B free: for group g, `B[k][o] = filter[(g·Cout/g + o)·K + k]`, a
//! column-major view of the group's filter slice that `PackedQB` packs directly.

use super::QuantOwned;
use crate::conv::params::Geometry;
use crate::conv::{parallel_ranges, SyncPtr};
use crate::error::Error;
use crate::kernels::int8::QgemmKernel;
use crate::kernels::Kernel;
use crate::matrix::MatRef;
use crate::quant::{qgemm_requantize_prepacked_seq, PackedQB, QuantInput};
use alloc::vec::Vec;

/// The filter of each group packed as the GEMM's B.
pub(crate) struct QIm2col {
    packed: Vec<PackedQB>,
    /// Kh·Kw·Cin/g.
    k: usize,
}

impl QIm2col {
    pub(crate) fn new(
        kernel: Option<&Kernel>,
        filter: &[i8],
        groups: usize,
        cout_g: usize,
        k: usize,
    ) -> Result<Self, Error> {
        let mut packed = Vec::with_capacity(groups);
        for g in 0..groups {
            let slice = &filter[g * cout_g * k..(g + 1) * cout_g * k];
            // B (k × cout_g) column-major: B[p][o] at o*k + p.
            let b = MatRef::new(slice, k, cout_g, 1, k as isize)?;
            packed.push(match kernel {
                Some(kern) => PackedQB::with_kernel(kern, b)?,
                None => PackedQB::new(b)?,
            });
        }
        Ok(QIm2col { packed, k })
    }

    /// Runs the layer. Lengths were checked by the caller; `ker` is the kernel the filter
    /// was packed for.
    pub(crate) fn run<A: QuantInput>(
        &self,
        ker: &QgemmKernel,
        g: &Geometry,
        q: &QuantOwned,
        input: &[A],
        output: &mut [u8],
        threads: usize,
    ) {
        let rows = g.output.batch * g.output.height * g.output.width;
        if rows == 0 {
            return;
        }
        let pointwise = g.is_pointwise();
        let ktot = self.k * g.groups;
        // Row-block length: the patch block (rows × K bytes) in about a quarter of L2, at
        // least a few kernel row tiles, in whole row tiles.
        let l2 = crate::arch::cpu_info().l2;
        let mr = ker.mr;
        let mut mb = (l2 / 4 / ktot.max(1)).clamp(4 * mr, 1024) / mr * mr;
        if pointwise {
            mb = 1024 / mr * mr;
        }
        let nblocks = rows.div_ceil(mb);
        let ld = if pointwise { 0 } else { padded_ld(ktot) };
        let patch_bytes = (mb * ld).div_ceil(64) * 64;
        // Every group's B has the same shape: one plan serves them all.
        let seq = self.packed[0].seq_plan(mb);
        let out = SyncPtr(output.as_mut_ptr());
        let inp = SyncPtr(input.as_ptr() as *mut A);
        let za = q.za;
        let job = |blocks: core::ops::Range<usize>| {
            crate::scratch::with_workspace((patch_bytes + seq.ws_bytes).div_ceil(4), |ws| {
                let patches = ws as *mut A;
                let gemm_ws = (ws as *mut u8).wrapping_add(patch_bytes);
                for blk in blocks.clone() {
                    let r0 = blk * mb;
                    let m = mb.min(rows - r0);
                    let (a_ptr, a_rs) = if pointwise {
                        (
                            inp.get().wrapping_add(r0 * g.input.channels),
                            g.input.channels,
                        )
                    } else {
                        // SAFETY: the workspace's first patch_bytes ≥ mb·ld bytes hold the
                        // patches; the input is the checked tensor.
                        unsafe { fill_patches(g, inp.get(), za, r0, m, patches, ld) };
                        (patches, ld)
                    };
                    for (grp, packed) in self.packed.iter().enumerate() {
                        let (a, c) = g.group_operands(
                            grp,
                            self.k,
                            pointwise,
                            (a_ptr, a_rs),
                            out.get(),
                            (r0, m),
                        );
                        let c0 = grp * g.cout_g;
                        let bias = q.bias.as_ref().map(|b| &b[c0..c0 + g.cout_g]);
                        // SAFETY: A is a block of the patch buffer or of the input (m ≤ mb
                        // rows), C a block of this thread's output rows (blocks are disjoint
                        // across threads) that overlaps neither; za is in A's range and K
                        // within max_exact_k (validated when the layer was built); the plan
                        // and bias cover the group's channels; gemm_ws is 64-byte aligned
                        // with seq.ws_bytes bytes.
                        unsafe {
                            qgemm_requantize_prepacked_seq(
                                a,
                                za,
                                packed,
                                0, // symmetric weights (TFLite's int8 scheme)
                                &seq,
                                q.plan(c0, g.cout_g),
                                bias,
                                c,
                                gemm_ws,
                            )
                        };
                    }
                }
            });
        };
        parallel_ranges(nblocks, threads, rows * ktot * g.cout_g, &job);
    }
}

/// A row stride of at least `k` bytes that is a whole number of cache lines and not a
/// multiple of 4 KiB (rows at such strides share L1 sets).
fn padded_ld(k: usize) -> usize {
    let ld = k.div_ceil(64) * 64;
    if ld % 4096 == 0 {
        ld + 64
    } else {
        ld
    }
}

/// Writes the patch rows of output pixels `r0..r0+m` (flattened n, oh, ow) at `dst` (row
/// stride `ld`): row i holds, for each group, `[kh][kw][cin/g]`, with `za` for the taps in
/// the padding.
///
/// # Safety
/// `input` holds the geometry's input tensor; `dst` has `m*ld` writable elements, `ld ≥ K`;
/// `za` is in A's range.
unsafe fn fill_patches<A: QuantInput>(
    g: &Geometry,
    input: *const A,
    za: i32,
    r0: usize,
    m: usize,
    dst: *mut A,
    ld: usize,
) {
    let (h, w, c) = (g.input.height, g.input.width, g.input.channels);
    let (ho, wo) = (g.output.height, g.output.width);
    let kg = g.kh * g.kw * g.cin_g;
    // A is one byte: the zero point's bit pattern.
    let zbyte = za as u8;
    for i in 0..m {
        let p = r0 + i;
        let (n, rem) = (p / (ho * wo), p % (ho * wo));
        let (oh, ow) = (rem / wo, rem % wo);
        // SAFETY: row i of dst has ld ≥ groups*kg elements; input offsets are for in-bounds
        // (ih, iw) only; A is a one-byte type, so byte fills write valid values.
        unsafe {
            let row = dst.add(i * ld);
            for r in 0..g.kh {
                let ih = g.ih(oh, r);
                let row_ok = ih >= 0 && ih < h as isize;
                for s in 0..g.kw {
                    let iw = g.iw(ow, s);
                    let ok = row_ok && iw >= 0 && iw < w as isize;
                    let off = (r * g.kw + s) * g.cin_g;
                    if g.groups == 1 {
                        let d = row.add(off);
                        if ok {
                            let src = input.add(((n * h + ih as usize) * w + iw as usize) * c);
                            core::ptr::copy_nonoverlapping(src, d, c);
                        } else {
                            core::ptr::write_bytes(d as *mut u8, zbyte, c);
                        }
                    } else {
                        for grp in 0..g.groups {
                            let d = row.add(grp * kg + off);
                            if ok {
                                let src = input.add(
                                    ((n * h + ih as usize) * w + iw as usize) * c + grp * g.cin_g,
                                );
                                core::ptr::copy_nonoverlapping(src, d, g.cin_g);
                            } else {
                                core::ptr::write_bytes(d as *mut u8, zbyte, g.cin_g);
                            }
                        }
                    }
                }
            }
        }
    }
}
