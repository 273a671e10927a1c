//! im2col + GEMM: any layer (kernel size, stride, dilation, padding, groups) as
//! `[N·Ho·Wo × Kh·Kw·Cin/g] · [Kh·Kw·Cin/g × Cout/g]` per group, with the filter packed once
//! ([`PackedB`]) and the patch matrix built a block of output pixels at a time (the block
//! stays in cache between the copy and the GEMM that reads it). A 1×1 stride-1 unpadded
//! layer is a plain GEMM on the input itself: no im2col buffer.
//!
//! OHWI makes the GEMM's B matrix free: for group g, `B[k][o] = filter[(g·Cout/g + o)·K +
//! k]` with `k = (kh·Kw + kw)·Cin/g + i`, a column-major view of the filter slice, which
//! `PackedB` packs directly. NHWC makes the patch rows cheap: each (kh, kw) contributes
//! Cin/g contiguous input channels.

use super::params::Geometry;
use super::simd::{self, Isa, LaneFn, Lanes};
use super::{parallel_ranges, SyncPtr};
use crate::error::Error;
use crate::gemm::{sgemm_prepacked_seq, PackedB};
use crate::kernels::Kernel;
use crate::matrix::MatRef;
use alloc::vec::Vec;

/// The filter of each group packed as the GEMM's B.
pub(crate) struct Im2col {
    packed: Vec<PackedB>,
    /// Kh·Kw·Cin/g.
    k: usize,
}

impl Im2col {
    pub(crate) fn new(
        kernel: Option<&Kernel>,
        filter: &[f32],
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
                Some(kern) => PackedB::with_kernel(kern, b)?,
                None => PackedB::new(b)?,
            });
        }
        Ok(Im2col { packed, k })
    }

    /// Runs the layer. Lengths were checked by the caller.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        isa: Isa,
        g: &Geometry,
        input: &[f32],
        bias: &[f32],
        lo: f32,
        hi: f32,
        output: &mut [f32],
        threads: usize,
    ) {
        let rows = g.output.batch * g.output.height * g.output.width;
        if rows == 0 {
            return;
        }
        let pointwise = g.is_pointwise();
        let ktot = self.k * g.groups;
        // Row-block length: the patch block (rows × K) in about a quarter of L2, at least a
        // few kernel row tiles, in whole kernel tiles. Measured on Zen 5 (see README).
        let l2 = crate::arch::cpu_info().l2;
        let mr = 16;
        let mut mb = (l2 / 4 / (ktot * 4).max(1)).clamp(4 * mr, 1024) / mr * mr;
        if pointwise {
            mb = 1024;
        }
        let nblocks = rows.div_ceil(mb);
        let ld = if pointwise { 0 } else { padded_ld(ktot) };
        let out = SyncPtr(output.as_mut_ptr());
        let inp = SyncPtr(input.as_ptr() as *mut f32);
        let job = |blocks: core::ops::Range<usize>| {
            let body = |ws: *mut f32| {
                for blk in blocks.clone() {
                    let r0 = blk * mb;
                    let m = mb.min(rows - r0);
                    let (a_ptr, a_rs) = if pointwise {
                        (
                            inp.get().wrapping_add(r0 * g.input.channels),
                            g.input.channels,
                        )
                    } else {
                        // SAFETY: ws holds mb*ld elements; the input is the checked tensor.
                        unsafe { fill_patches(g, inp.get(), r0, m, ws, ld) };
                        (ws, ld)
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
                        // SAFETY: A is a block of the patch buffer or of the input, C a block
                        // of this thread's output rows (blocks are disjoint across threads);
                        // C does not overlap A (output and input are distinct slices, the
                        // patch buffer is private) or the packed filter.
                        unsafe { sgemm_prepacked_seq(a, packed, 0.0, c) };
                    }
                    let mut ep = Epilogue {
                        out: out.get().wrapping_add(r0 * g.output.channels),
                        rows: m,
                        ld: g.output.channels,
                        bias: bias.as_ptr(),
                        lo,
                        hi,
                    };
                    // SAFETY: rows r0..r0+m of the output and all of bias are valid.
                    unsafe { simd::run_split(isa, &mut ep, g.output.channels) };
                }
            };
            if pointwise {
                body(core::ptr::null_mut());
            } else {
                crate::scratch::with_workspace(mb * ld, body);
            }
        };
        parallel_ranges(nblocks, threads, rows * ktot * g.output.channels, &job);
    }
}

/// A row stride of at least `k` elements that is a whole number of cache lines and not a
/// multiple of 4 KiB (rows at such strides share L1 sets).
pub(crate) fn padded_ld(k: usize) -> usize {
    let ld = k.div_ceil(16) * 16;
    if (ld * 4) % 4096 == 0 {
        ld + 16
    } else {
        ld
    }
}

/// Writes the patch rows of output pixels `r0..r0+m` (flattened n, oh, ow) at `dst` (row
/// stride `ld`): row i holds, for each group, `[kh][kw][cin/g]` (zeros for padding).
///
/// # Safety
/// `input` holds the geometry's input tensor; `dst` has `m*ld` writable elements, `ld ≥ K`.
unsafe fn fill_patches(
    g: &Geometry,
    input: *const f32,
    r0: usize,
    m: usize,
    dst: *mut f32,
    ld: usize,
) {
    let (h, w, c) = (g.input.height, g.input.width, g.input.channels);
    let (ho, wo) = (g.output.height, g.output.width);
    let kg = g.kh * g.kw * g.cin_g;
    for i in 0..m {
        let p = r0 + i;
        let (n, rem) = (p / (ho * wo), p % (ho * wo));
        let (oh, ow) = (rem / wo, rem % wo);
        // SAFETY: row i of dst has ld ≥ groups*kg elements; input offsets are for in-bounds
        // (ih, iw) only.
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
                            core::ptr::write_bytes(d, 0, c);
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
                                core::ptr::write_bytes(d, 0, g.cin_g);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// out[r][c] ← clamp(out[r][c] + bias[c], lo, hi) over a block of rows.
pub(crate) struct Epilogue {
    pub out: *mut f32,
    pub rows: usize,
    pub ld: usize,
    pub bias: *const f32,
    pub lo: f32,
    pub hi: f32,
}

impl LaneFn for Epilogue {
    #[inline(always)]
    unsafe fn run<L: Lanes>(&mut self, c0: usize, c1: usize) {
        let (lo, hi) = (L::splat(self.lo), L::splat(self.hi));
        for r in 0..self.rows {
            let mut c = c0;
            while c < c1 {
                // SAFETY: row r < rows and channel c + N ≤ c1 ≤ ld are inside the block and
                // the bias (contract of run_split's caller).
                unsafe {
                    let p = self.out.add(r * self.ld + c);
                    let v = L::load(p).add(L::load(self.bias.add(c)));
                    v.clamp(lo, hi).store(p);
                }
                c += L::N;
            }
        }
    }
}
