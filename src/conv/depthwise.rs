//! Depthwise convolution (one input channel per group, any depth multiplier, kernel size,
//! stride, dilation and padding), vectorized over channels: NHWC keeps a pixel's channels
//! contiguous, and the filter is rearranged once to `[kh][kw][channel]` so each tap is one
//! vector of weights.
//!
//! Per output row, interior pixels go four at a time (each weight vector loaded once for
//! four pixels, no bounds checks); pixels whose window crosses the padding go one at a
//! time with checks. A depth multiplier above 1 computes each of the `multiplier` outputs of
//! an input channel as its own vector and scatters it (rare in practice: MobileNets use 1).

use super::params::Geometry;
use super::simd::{self, Isa, LaneFn, Lanes};
use super::{parallel_ranges, SyncPtr};
use alloc::vec;
use alloc::vec::Vec;

/// The filter rearranged for the channel-vector loops.
pub(crate) struct Depthwise {
    /// `[kh][kw][j][c]`: weight of output channel `c·mult + j` at tap (kh, kw).
    weights: Vec<f32>,
    /// `[j][c]`: bias of output channel `c·mult + j`.
    bias: Vec<f32>,
    mult: usize,
}

impl Depthwise {
    /// `filter` is OHWI with I = 1 (`[c·mult + j][kh][kw]`), `bias` one per output channel.
    pub(crate) fn new(
        filter: &[f32],
        bias: &[f32],
        channels: usize,
        mult: usize,
        kh: usize,
        kw: usize,
    ) -> Self {
        let taps = kh * kw;
        let mut weights = vec![0f32; taps * mult * channels];
        let mut b = vec![0f32; mult * channels];
        for c in 0..channels {
            for j in 0..mult {
                let o = c * mult + j;
                for t in 0..taps {
                    weights[(t * mult + j) * channels + c] = filter[o * taps + t];
                }
                b[j * channels + c] = bias[o];
            }
        }
        Depthwise {
            weights,
            bias: b,
            mult,
        }
    }

    /// Runs the layer. Lengths were checked by the caller.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        isa: Isa,
        g: &Geometry,
        input: &[f32],
        lo: f32,
        hi: f32,
        output: &mut [f32],
        threads: usize,
    ) {
        let rows = g.output.batch * g.output.height;
        if rows == 0 || g.output.width == 0 {
            return;
        }
        let out = SyncPtr(output.as_mut_ptr());
        let inp = SyncPtr(input.as_ptr() as *mut f32);
        let job = |range: core::ops::Range<usize>| {
            let mut rowjob = Rows {
                g: *g,
                input: inp.get(),
                output: out.get(),
                weights: self.weights.as_ptr(),
                bias: self.bias.as_ptr(),
                mult: self.mult,
                lo,
                hi,
                rows: range,
            };
            // SAFETY: rows of this range are this thread's alone (ranges are disjoint); the
            // tensors have the geometry's sizes (checked by the caller).
            unsafe { simd::run_split(isa, &mut rowjob, g.input.channels) };
        };
        let macs = g.output.len().unwrap_or(0) * g.kh * g.kw;
        parallel_ranges(rows, threads, macs, &job);
    }
}

/// Output rows `rows` (flattened n, oh) of a depthwise layer, channels c0..c1 per call.
struct Rows {
    g: Geometry,
    input: *const f32,
    output: *mut f32,
    weights: *const f32,
    bias: *const f32,
    mult: usize,
    lo: f32,
    hi: f32,
    rows: core::ops::Range<usize>,
}

impl LaneFn for Rows {
    #[inline(always)]
    unsafe fn run<L: Lanes>(&mut self, c0: usize, c1: usize) {
        let g = &self.g;
        let (h, w, ch) = (g.input.height, g.input.width, g.input.channels);
        let (ho, wo) = (g.output.height, g.output.width);
        // Interior columns: every tap inside 0..w.
        let ow_lo = g.pads.left.div_ceil(g.sw).min(wo);
        let last = (g.kw - 1) * g.dw;
        let ow_hi = if w + g.pads.left > last {
            ((w - 1 + g.pads.left - last) / g.sw + 1).min(wo).max(ow_lo)
        } else {
            ow_lo
        };
        for row in self.rows.clone() {
            let (n, oh) = (row / ho, row % ho);
            // Kernel rows that land inside the input.
            let mut r_lo = 0;
            while r_lo < g.kh && g.ih(oh, r_lo) < 0 {
                r_lo += 1;
            }
            let mut r_hi = g.kh;
            while r_hi > r_lo && g.ih(oh, r_hi - 1) >= h as isize {
                r_hi -= 1;
            }
            // SAFETY (both calls): pixels of row (n, oh) < the output's rows; channel ranges
            // within 0..channels; r_lo..r_hi and the column ranges keep reads inside the input.
            unsafe {
                let img = self.input.add(n * h * w * ch);
                let orow = self.output.add(row * wo * g.output.channels);
                if self.mult == 1 {
                    let mut ow = 0;
                    while ow < wo {
                        if ow >= ow_lo && ow + 4 <= ow_hi {
                            self.quad::<L>(img, orow, oh, ow, r_lo, r_hi, c0, c1);
                            ow += 4;
                        } else {
                            self.single::<L>(img, orow, oh, ow, r_lo, r_hi, c0, c1);
                            ow += 1;
                        }
                    }
                } else {
                    for ow in 0..wo {
                        self.single::<L>(img, orow, oh, ow, r_lo, r_hi, c0, c1);
                    }
                }
            }
        }
    }
}

impl Rows {
    /// Four interior pixels ow..ow+4 (every tap in bounds), multiplier 1.
    ///
    /// # Safety
    /// As `run`, with `ow_lo ≤ ow` and `ow + 4 ≤ ow_hi`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn quad<L: Lanes>(
        &self,
        img: *const f32,
        orow: *mut f32,
        oh: usize,
        ow: usize,
        r_lo: usize,
        r_hi: usize,
        c0: usize,
        c1: usize,
    ) {
        let g = &self.g;
        let (w, ch) = (g.input.width, g.input.channels);
        let (lo, hi) = (L::splat(self.lo), L::splat(self.hi));
        let col0 = g.iw(ow, 0) as usize;
        let step = g.sw * ch;
        let mut c = c0;
        while c < c1 {
            // SAFETY: every (ih, iw) below is inside the image (interior pixels, valid kernel
            // rows); c + N ≤ c1 ≤ channels; outputs ow..ow+4 < wo.
            unsafe {
                let b = L::load(self.bias.add(c));
                let (mut a0, mut a1, mut a2, mut a3) = (b, b, b, b);
                for r in r_lo..r_hi {
                    let ih = g.ih(oh, r) as usize;
                    let mut x = img.add((ih * w + col0) * ch + c);
                    let mut wp = self.weights.add(r * g.kw * ch + c);
                    for _ in 0..g.kw {
                        let wv = L::load(wp);
                        a0 = a0.mla(L::load(x), wv);
                        a1 = a1.mla(L::load(x.add(step)), wv);
                        a2 = a2.mla(L::load(x.add(2 * step)), wv);
                        a3 = a3.mla(L::load(x.add(3 * step)), wv);
                        x = x.add(g.dw * ch);
                        wp = wp.add(ch);
                    }
                }
                let o = orow.add(ow * ch + c);
                a0.clamp(lo, hi).store(o);
                a1.clamp(lo, hi).store(o.add(ch));
                a2.clamp(lo, hi).store(o.add(2 * ch));
                a3.clamp(lo, hi).store(o.add(3 * ch));
            }
            c += L::N;
        }
    }

    /// One pixel with bounds checks on every tap; any multiplier.
    ///
    /// # Safety
    /// As `run`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn single<L: Lanes>(
        &self,
        img: *const f32,
        orow: *mut f32,
        oh: usize,
        ow: usize,
        r_lo: usize,
        r_hi: usize,
        c0: usize,
        c1: usize,
    ) {
        let g = &self.g;
        let (w, ch) = (g.input.width, g.input.channels);
        let (lo, hi) = (L::splat(self.lo), L::splat(self.hi));
        let mult = self.mult;
        let mut c = c0;
        while c < c1 {
            for j in 0..mult {
                // SAFETY: reads only taps with (ih, iw) inside the image; c + N ≤ c1 ≤
                // channels; the outputs (c + l)·mult + j < out channels of pixel ow < wo.
                unsafe {
                    let mut acc = L::load(self.bias.add(j * ch + c));
                    for r in r_lo..r_hi {
                        let ih = g.ih(oh, r) as usize;
                        for s in 0..g.kw {
                            let iw = g.iw(ow, s);
                            if iw < 0 || iw >= w as isize {
                                continue;
                            }
                            let x = L::load(img.add((ih * w + iw as usize) * ch + c));
                            let wv =
                                L::load(self.weights.add(((r * g.kw + s) * mult + j) * ch + c));
                            acc = acc.mla(x, wv);
                        }
                    }
                    let acc = acc.clamp(lo, hi);
                    let o = orow.add(ow * ch * mult);
                    if mult == 1 {
                        acc.store(o.add(c));
                    } else {
                        let mut tmp = [0f32; 16];
                        acc.store(tmp.as_mut_ptr());
                        for (l, v) in tmp.iter().take(L::N).enumerate() {
                            *o.add((c + l) * mult + j) = *v;
                        }
                    }
                }
            }
            c += L::N;
        }
    }
}
