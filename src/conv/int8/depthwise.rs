//! int8 depthwise convolution (one input channel per group, any depth multiplier, kernel
//! size, stride, dilation and padding), vectorized over channels with exact i32 lanes
//! (see `lanes.rs`).
//!
//! The zero point leaves the inner loop: with the padding taken as the input zero point
//! `za` (whose terms vanish, as TFLite's skipped taps),
//! `Σ_taps (x − za)·w = Σ_taps x·w − za·Σ_taps w`, and `bias − za·Σ_taps w` is computed per
//! output channel when the layer is prepared. Each output row is then:
//!
//! 1. per channel vector, per block of four interior pixels (every tap inside the image
//!    width): the accumulators start at that constant and take one `madd` per tap and
//!    pixel, the tap's weight vector loaded once for the four pixels; kernel rows in the
//!    vertical padding read a row of `za` bytes; pixels whose window crosses the left or
//!    right padding go one at a time, their outside taps reading `za` too;
//! 2. the row's i32 accumulators are requantized by the int8 GEMM's own output stage (the
//!    kernel's `RequantFn`: AVX-512, AVX2 or scalar, TFLite's arithmetic).
//!
//! A depth multiplier above 1 computes the `multiplier` outputs of each input channel as
//! their own vectors and scatters them into the row (rare in practice: MobileNets use 1).

use super::lanes::{pack_w, run_split, QIsa, QLaneFn, QLanes};
use super::QuantOwned;
use crate::conv::params::Geometry;
use crate::conv::{parallel_ranges, SyncPtr};
use crate::kernels::int8::QgemmKernel;
use crate::quant::QuantInput;
use alloc::vec;
use alloc::vec::Vec;

/// The filter rearranged for the channel-vector loops.
pub(crate) struct QDepthwise {
    /// `[tap][j][c]`: weight of output channel `c·mult + j` at tap (kh, kw), packed for
    /// `QLanes::madd` (low 16 bits).
    weights: Vec<i32>,
    /// `[j][c]`: `bias − za·Σ_taps w` of output channel `c·mult + j` (wrapping).
    init: Vec<i32>,
    mult: usize,
}

impl QDepthwise {
    /// `filter` is OHWI with I = 1 (`[c·mult + j][kh][kw]`), `bias` one per output channel.
    pub(crate) fn new(
        filter: &[i8],
        bias: Option<&[i32]>,
        za: i32,
        channels: usize,
        mult: usize,
        taps: usize,
    ) -> Self {
        let mut weights = vec![0i32; taps * mult * channels];
        let mut init = vec![0i32; mult * channels];
        for c in 0..channels {
            for j in 0..mult {
                let o = c * mult + j;
                let mut sum = 0i32;
                for t in 0..taps {
                    let w = filter[o * taps + t];
                    weights[(t * mult + j) * channels + c] = pack_w(w);
                    sum += w as i32;
                }
                let b = bias.map_or(0, |b| b[o]);
                init[j * channels + c] = b.wrapping_sub(za.wrapping_mul(sum));
            }
        }
        QDepthwise {
            weights,
            init,
            mult,
        }
    }

    /// Runs the layer. Lengths were checked by the caller; `ker`'s output stage runs here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run<A: QuantInput>(
        &self,
        isa: QIsa,
        ker: &QgemmKernel,
        g: &Geometry,
        q: &QuantOwned,
        input: &[A],
        output: &mut [u8],
        threads: usize,
    ) {
        let rows = g.output.batch * g.output.height;
        let (w, ch) = (g.input.width, g.input.channels);
        let (wo, co) = (g.output.width, g.output.channels);
        if rows == 0 || wo == 0 {
            return;
        }
        let out = SyncPtr(output.as_mut_ptr());
        let inp = SyncPtr(input.as_ptr() as *mut u8);
        let taps = g.kh * g.kw;
        // Per-thread workspace: the row's accumulators, a row of za, the taps' row bases.
        let acc_bytes = (wo * co * 4).div_ceil(64) * 64;
        let za_bytes = (w * ch).div_ceil(64) * 64;
        let tap_bytes = taps * core::mem::size_of::<usize>();
        let plan = q.plan(0, co);
        let job = |range: core::ops::Range<usize>| {
            crate::scratch::with_workspace((acc_bytes + za_bytes + tap_bytes).div_ceil(4), |ws| {
                let acc = ws as *mut i32;
                let zrow = (ws as *mut u8).wrapping_add(acc_bytes);
                let tapbase = zrow.wrapping_add(za_bytes) as *mut *const u8;
                // SAFETY: the workspace holds za_bytes ≥ w·ch bytes after the accumulators.
                unsafe { core::ptr::write_bytes(zrow, q.za as u8, w * ch) };
                for row in range {
                    let (n, oh) = (row / g.output.height, row % g.output.height);
                    for r in 0..g.kh {
                        let ih = g.ih(oh, r);
                        let base = if ih >= 0 && ih < g.input.height as isize {
                            inp.get()
                                .wrapping_add((n * g.input.height + ih as usize) * w * ch)
                        } else {
                            zrow
                        };
                        for s in 0..g.kw {
                            // SAFETY: tapbase has `taps` entries in the workspace (8-byte
                            // aligned: it follows 64-byte multiples).
                            unsafe {
                                *tapbase.add(r * g.kw + s) =
                                    base.wrapping_add(s * g.dw * ch) as *const u8
                            };
                        }
                    }
                    let mut stage = Row {
                        g,
                        mult: self.mult,
                        signed: A::SIGNED,
                        weights: self.weights.as_ptr(),
                        init: self.init.as_ptr(),
                        tapbase,
                        zrow,
                        acc,
                    };
                    // SAFETY: the tap bases point at input rows of this image or the za row
                    // (w·ch bytes each); acc holds wo·co i32; weights and init have the
                    // layer's sizes; isa runs on this CPU (detected, or a test's choice
                    // among the runnable ones).
                    unsafe { run_split(isa, &mut stage, ch) };
                    // SAFETY: the accumulator tile (wo × co, row stride co) is complete; the
                    // output row (n, oh) is wo·co bytes inside the output, this thread's
                    // alone; the plan covers all co channels; the kernel's output stage runs
                    // on this CPU (it was selected or checked for it).
                    unsafe {
                        (ker.requant)(
                            acc,
                            co,
                            wo,
                            co,
                            &plan,
                            0,
                            out.get().wrapping_add(row * wo * co),
                            co as isize,
                            1,
                        )
                    };
                }
            });
        };
        let macs = g.output.len().unwrap_or(0) * taps;
        parallel_ranges(rows, threads, macs, &job);
    }
}

/// One output row's accumulators, channels c0..c1 per call.
struct Row<'a> {
    g: &'a Geometry,
    mult: usize,
    signed: bool,
    weights: *const i32,
    init: *const i32,
    /// Per tap (kh, kw): the start of the input row under kernel row kh (or the za row),
    /// plus the tap's column offset `kw·dw·ch` (so pixel ow reads at `+ col(ow)·ch`).
    tapbase: *const *const u8,
    /// `w·ch` bytes of the input zero point.
    zrow: *const u8,
    /// `wo × co` i32, row stride co.
    acc: *mut i32,
}

impl QLaneFn for Row<'_> {
    #[inline(always)]
    unsafe fn run<L: QLanes>(&mut self, c0: usize, c1: usize) {
        // SAFETY: forwarded (the contract of `run_split`'s caller).
        unsafe {
            if self.signed {
                self.run_typed::<L, true>(c0, c1)
            } else {
                self.run_typed::<L, false>(c0, c1)
            }
        }
    }
}

impl Row<'_> {
    /// # Safety
    /// As `QLaneFn::run`: the pointers cover the row as set up by `QDepthwise::run`.
    #[inline(always)]
    unsafe fn run_typed<L: QLanes, const SIGNED: bool>(&mut self, c0: usize, c1: usize) {
        let g = self.g;
        let w = g.input.width;
        let wo = g.output.width;
        // Interior columns: every tap's iw = ow·sw + s·dw − left inside 0..w.
        let ext = (g.kw - 1) * g.dw;
        let ow_lo = g.pads.left.div_ceil(g.sw).min(wo);
        let ow_hi = if w + g.pads.left > ext {
            ((w + g.pads.left - ext - 1) / g.sw + 1).min(wo).max(ow_lo)
        } else {
            ow_lo
        };
        for j in 0..self.mult {
            let mut c = c0;
            while c < c1 {
                // SAFETY: channels c..c+N ≤ c1 of multiplier index j; interior columns
                // ow_lo..ow_hi; the rest checked.
                unsafe {
                    let mut ow = ow_lo;
                    if g.kw == 3 && g.dw == 1 && g.sw == 1 {
                        while ow + 8 <= ow_hi {
                            self.interior3::<L, SIGNED, 8, 1>(ow, c, j);
                            ow += 8;
                        }
                    } else if g.kw == 3 && g.dw == 1 && g.sw == 2 {
                        while ow + 4 <= ow_hi {
                            self.interior3::<L, SIGNED, 4, 2>(ow, c, j);
                            ow += 4;
                        }
                    }
                    while ow + 8 <= ow_hi {
                        self.interior::<L, SIGNED, 8>(ow, c, j);
                        ow += 8;
                    }
                    if ow + 4 <= ow_hi {
                        self.interior::<L, SIGNED, 4>(ow, c, j);
                        ow += 4;
                    }
                    for ow in (0..ow_lo).chain(ow..wo) {
                        self.checked::<L, SIGNED>(ow, c, j, ow < ow_lo || ow >= ow_hi);
                    }
                }
                c += L::N;
            }
        }
    }

    /// Byte offset of output column ow's window (its tap-0 column) in an input row:
    /// `(ow·sw − left)·ch`, negative at the left edge.
    #[inline(always)]
    fn col(&self, ow: usize) -> isize {
        let g = self.g;
        ((ow * g.sw) as isize - g.pads.left as isize) * g.input.channels as isize
    }

    /// `P` interior pixels from column `ow`: each tap's weight vector is loaded once.
    ///
    /// # Safety
    /// Columns ow..ow+P are interior; channels c..c+N exist.
    #[inline(always)]
    unsafe fn interior<L: QLanes, const SIGNED: bool, const P: usize>(
        &self,
        ow: usize,
        c: usize,
        j: usize,
    ) {
        let g = self.g;
        let (ch, mult) = (g.input.channels, self.mult);
        let taps = g.kh * g.kw;
        let mut off = [0isize; P];
        for (p, o) in off.iter_mut().enumerate() {
            *o = self.col(ow + p) + c as isize;
        }
        let wj = self.weights.wrapping_add(j * ch + c);
        // SAFETY: init has mult·ch entries; weights [tap][j][c] taps·mult·ch; input loads at
        // interior columns of the rows the tap bases name (or of the za row), channels
        // c..c+N; stores inside the accumulator row (caller's contract).
        unsafe {
            let b = L::load(self.init.add(j * ch + c));
            let mut a = [b; P];
            for t in 0..taps {
                let wv = L::load(wj.add(t * mult * ch));
                let base = *self.tapbase.add(t);
                for p in 0..P {
                    a[p] = a[p].madd(L::load_x::<SIGNED>(base.wrapping_offset(off[p])), wv);
                }
            }
            for (p, ap) in a.iter().enumerate() {
                self.store(*ap, ow + p, c, j);
            }
        }
    }

    /// `P` interior pixels of a 3-wide, undilated kernel at stride `SW` (1 or 2): per kernel
    /// row, the `(P − 1)·SW + 3` input vectors under the block are loaded once and serve
    /// all three taps of every pixel that reads them.
    ///
    /// # Safety
    /// As [`Row::interior`]; `kw == 3`, `dw == 1`, `sw == SW`, `(P − 1)·SW + 3 ≤ 17`.
    #[inline(always)]
    unsafe fn interior3<L: QLanes, const SIGNED: bool, const P: usize, const SW: usize>(
        &self,
        ow: usize,
        c: usize,
        j: usize,
    ) {
        let g = self.g;
        let (ch, mult) = (g.input.channels, self.mult);
        let nx = (P - 1) * SW + 3;
        let start = self.col(ow) + c as isize;
        let wj = self.weights.wrapping_add(j * ch + c);
        // SAFETY: as `interior`: columns ow·SW − left .. + nx are inside the row (the block's
        // pixels are interior), channels c..c+N; weights and init in range.
        unsafe {
            let mut a = [L::load(self.init.add(j * ch + c)); P];
            for r in 0..g.kh {
                let row = (*self.tapbase.add(r * 3)).wrapping_offset(start);
                let mut x = [L::splat(0); 17];
                for (m, xm) in x.iter_mut().enumerate().take(nx) {
                    *xm = L::load_x::<SIGNED>(row.add(m * ch));
                }
                let w0 = L::load(wj.add(3 * r * mult * ch));
                let w1 = L::load(wj.add((3 * r + 1) * mult * ch));
                let w2 = L::load(wj.add((3 * r + 2) * mult * ch));
                for (p, ap) in a.iter_mut().enumerate() {
                    *ap = ap
                        .madd(x[p * SW], w0)
                        .madd(x[p * SW + 1], w1)
                        .madd(x[p * SW + 2], w2);
                }
            }
            for (p, ap) in a.iter().enumerate() {
                self.store(*ap, ow + p, c, j);
            }
        }
    }

    /// One pixel, taps outside the image (when `check`) reading the za row.
    ///
    /// # Safety
    /// Column ow < wo; channels c..c+N exist.
    #[inline(always)]
    unsafe fn checked<L: QLanes, const SIGNED: bool>(
        &self,
        ow: usize,
        c: usize,
        j: usize,
        check: bool,
    ) {
        let g = self.g;
        let (w, ch, mult) = (g.input.width, g.input.channels, self.mult);
        let first = (ow * g.sw) as isize - g.pads.left as isize;
        let wj = self.weights.wrapping_add(j * ch + c);
        // SAFETY: as `interior`, with each tap's column checked when `check`.
        unsafe {
            let mut a = L::load(self.init.add(j * ch + c));
            let mut t = 0;
            for _ in 0..g.kh {
                for s in 0..g.kw {
                    let iw = first + (s * g.dw) as isize;
                    let x = if check && (iw < 0 || iw >= w as isize) {
                        self.zrow.wrapping_add(c)
                    } else {
                        (*self.tapbase.add(t)).wrapping_offset(self.col(ow) + c as isize)
                    };
                    a = a.madd(L::load_x::<SIGNED>(x), L::load(wj.add(t * mult * ch)));
                    t += 1;
                }
            }
            self.store(a, ow, c, j);
        }
    }

    /// Stores the accumulators of input channels c.. (multiplier index j) of column ow.
    ///
    /// # Safety
    /// Output channels `(c + l)·mult + j` for l < N are inside the row.
    #[inline(always)]
    unsafe fn store<L: QLanes>(&self, a: L, ow: usize, c: usize, j: usize) {
        let dst = self.acc.wrapping_add(ow * self.g.output.channels);
        if self.mult == 1 {
            // SAFETY: channels c..c+N of column ow (caller).
            unsafe { a.store(dst.add(c)) };
        } else {
            let mut tmp = [0i32; 16];
            // SAFETY: N ≤ 16 lanes into the stack buffer, then each lane's channel (caller).
            unsafe {
                a.store(tmp.as_mut_ptr());
                for (l, &v) in tmp.iter().enumerate().take(L::N) {
                    *dst.add((c + l) * self.mult + j) = v;
                }
            }
        }
    }
}
