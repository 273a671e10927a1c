//! Depthwise convolution (one input channel per group, any depth multiplier, kernel size,
//! stride, dilation and padding), vectorized over channels: NHWC keeps a pixel's channels
//! contiguous, so each filter tap is one vector of weights across channels.
//!
//! Two paths:
//! - **3×3, multiplier 1, dilation 1, stride 1 or 2** (MobileNets' layers): the image is
//!   swept once per block of channels, the block sized so the three input rows under the
//!   kernel stay in L1 and serve the three output rows that read them (at 14×14×512 three
//!   full rows are 84 KiB). Within a row, interior pixels go in blocks of 8/4/2/1 (16-lane
//!   vectors; 4/2/1 at 8 lanes) with the block's channel vectors inside: at stride 1 each
//!   input vector is loaded once for its three taps, and blocks of fewer than four pixels
//!   keep one partial sum per kernel row so the FMA chains stay short. Kernel rows in the
//!   padding read a row of zeros; the pixels at the left and right edges check their
//!   columns. The filter is stored `[channel/16][tap][16]`: a vector's nine taps are nine
//!   adjacent cache lines (at 512+ channels a `[tap][channel]` layout puts them in one or
//!   two L1 sets).
//! - **Everything else**: per output row, interior pixels four at a time (no bounds
//!   checks), pixels whose window crosses the padding one at a time with checks. A depth
//!   multiplier above 1 computes each of the `multiplier` outputs of an input channel as its
//!   own vector and scatters it (rare in practice: MobileNets use 1).

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
    /// 3×3 with multiplier 1: `[c/16][tap][c%16]`, channels padded to a multiple of 16.
    w3x3: Vec<f32>,
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
        let mut w3x3 = Vec::new();
        if mult == 1 && kh == 3 && kw == 3 {
            w3x3 = vec![0f32; channels.div_ceil(16) * 16 * 9];
            for c in 0..channels {
                for t in 0..9 {
                    w3x3[w3_index(t, c)] = filter[c * 9 + t];
                }
            }
        }
        Depthwise {
            weights,
            bias: b,
            mult,
            w3x3,
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
        let fast = !self.w3x3.is_empty() && g.dh == 1 && g.dw == 1 && g.sw <= 2;
        let (w, ch) = (g.input.width, g.input.channels);
        // Channels per block. At 512+ channels (a pixel spans 2 KiB or more, so the lines of
        // a row fall in one or two L1 sets) the image is swept per block of channels sized
        // so three input rows of the block stay in half of L1 and serve the three output
        // rows that read them: measured 20–30% faster at 14×14×512 and 7×7×1024. Below
        // that, whole pixels: blocking made 56×56×128 and 28×28×256 10–25% slower (reading
        // a pixel in pieces defeats the sequential prefetch).
        let l1 = crate::arch::cpu_info().l1d;
        let cb = if ch * 4 >= 2048 {
            ((l1 / 2) / (3 * w * 4).max(1) / 16 * 16).max(64)
        } else {
            ch
        };
        let job = |range: core::ops::Range<usize>| {
            if fast {
                crate::scratch::with_workspace(w * ch, |zeros| {
                    // SAFETY: the workspace holds w*ch elements.
                    unsafe { core::ptr::write_bytes(zeros, 0, w * ch) };
                    let mut job = Dw3x3 {
                        g: *g,
                        input: inp.get(),
                        output: out.get(),
                        weights: self.w3x3.as_ptr(),
                        bias: self.bias.as_ptr(),
                        lo,
                        hi,
                        rows: range.clone(),
                        zeros,
                        cb,
                    };
                    // SAFETY: rows of this range are this thread's alone (ranges are
                    // disjoint); the tensors have the geometry's sizes (checked by the
                    // caller); `zeros` holds a zero input row.
                    unsafe { simd::run_split(isa, &mut job, g.input.channels) };
                });
            } else {
                let mut job = Rows {
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
                // SAFETY: as above, without the ring.
                unsafe { simd::run_split(isa, &mut job, g.input.channels) };
            }
        };
        let macs = g.output.len().unwrap_or(0) * g.kh * g.kw;
        parallel_ranges(rows, threads, macs, &job);
    }
}

/// Index of tap `t` of channel `c` in the chunk-interleaved 3×3 filter.
#[inline(always)]
fn w3_index(t: usize, c: usize) -> usize {
    (c / 16) * 144 + t * 16 + c % 16
}

/// The 3×3 path over output rows `rows` (flattened n, oh), channels c0..c1 per call.
struct Dw3x3 {
    g: Geometry,
    input: *const f32,
    output: *mut f32,
    /// Chunk-interleaved filter (`w3_index`).
    weights: *const f32,
    bias: *const f32,
    lo: f32,
    hi: f32,
    rows: core::ops::Range<usize>,
    /// `width × channels` zeros: the input row under kernel rows in the padding.
    zeros: *const f32,
    /// Channels per block (a multiple of 16).
    cb: usize,
}

impl LaneFn for Dw3x3 {
    #[inline(always)]
    unsafe fn run<L: Lanes>(&mut self, c0: usize, c1: usize) {
        let g = self.g;
        let (h, w, ch) = (g.input.height, g.input.width, g.input.channels);
        let (ho, wo) = (g.output.height, g.output.width);
        // Interior columns: all three taps inside 0..w.
        let ow_lo = g.pads.left.div_ceil(g.sw).min(wo);
        let ow_hi = if w + g.pads.left > 2 {
            ((w + g.pads.left - 3) / g.sw + 1).min(wo).max(ow_lo)
        } else {
            ow_lo
        };
        let mut cb0 = c0;
        while cb0 < c1 {
            let cb1 = (cb0 + self.cb).min(c1);
            for row in self.rows.clone() {
                let (n, oh) = (row / ho, row % ho);
                let mut x = [self.zeros; 3];
                for (r, xr) in x.iter_mut().enumerate() {
                    let ih = g.ih(oh, r);
                    if ih >= 0 && ih < h as isize {
                        *xr = self.input.wrapping_add((n * h + ih as usize) * w * ch);
                    }
                }
                let orow = self.output.wrapping_add(row * wo * ch);
                // SAFETY: x holds input rows (or zeros) of w pixels; interior pixels
                // ow_lo..ow_hi have all taps inside, edge pixels check theirs; channels
                // cb0..cb1 within the run's; output row `row` is this thread's.
                unsafe {
                    if g.sw == 1 {
                        self.row::<L, 1>(&x, orow, ow_lo, ow_hi, cb0, cb1);
                    } else {
                        self.row::<L, 2>(&x, orow, ow_lo, ow_hi, cb0, cb1);
                    }
                }
            }
            cb0 = cb1;
        }
    }
}

impl Dw3x3 {
    /// One output row, channels c0..c1, stride `S`.
    ///
    /// # Safety
    /// See `run`.
    #[inline(always)]
    unsafe fn row<L: Lanes, const S: usize>(
        &self,
        xrows: &[*const f32; 3],
        orow: *mut f32,
        ow_lo: usize,
        ow_hi: usize,
        c0: usize,
        c1: usize,
    ) {
        let wo = self.g.output.width;
        // SAFETY (all calls): edge pixels check their columns; blocks are interior pixels.
        unsafe {
            for ow in 0..ow_lo {
                self.edge::<L>(xrows, orow, ow, c0, c1);
            }
            let mut ow = ow_lo;
            if L::N >= 16 {
                while ow + 8 <= ow_hi {
                    self.block::<L, 8, S>(xrows, orow, ow, c0, c1);
                    ow += 8;
                }
            }
            while ow + 4 <= ow_hi {
                self.block::<L, 4, S>(xrows, orow, ow, c0, c1);
                ow += 4;
            }
            while ow + 2 <= ow_hi {
                self.block::<L, 2, S>(xrows, orow, ow, c0, c1);
                ow += 2;
            }
            if ow < ow_hi {
                self.block::<L, 1, S>(xrows, orow, ow, c0, c1);
            }
            for ow in ow_hi..wo {
                self.edge::<L>(xrows, orow, ow, c0, c1);
            }
        }
    }

    /// The nine weight vectors and the bias of channels c..c+N.
    ///
    /// # Safety
    /// c + N ≤ channels.
    #[inline(always)]
    unsafe fn taps<L: Lanes>(&self, c: usize) -> ([L; 9], L) {
        let mut wv = [L::zero(); 9];
        // SAFETY: w3_index(t, c) is inside the padded filter; the bias has `channels`.
        unsafe {
            let wb = self.weights.add(w3_index(0, c));
            for (t, v) in wv.iter_mut().enumerate() {
                *v = L::load(wb.add(t * 16));
            }
            (wv, L::load(self.bias.add(c)))
        }
    }

    /// Interior pixels `ow..ow+P` (every tap inside the rows), all channel vectors of
    /// c0..c1. At stride 1 each input vector is loaded once for its three taps; fewer than
    /// four pixels keep one partial sum per kernel row (a single chain of nine FMAs would be
    /// bound by their latency).
    ///
    /// # Safety
    /// As `row`, with the pixels interior.
    #[inline(always)]
    unsafe fn block<L: Lanes, const P: usize, const S: usize>(
        &self,
        xrows: &[*const f32; 3],
        orow: *mut f32,
        ow: usize,
        c0: usize,
        c1: usize,
    ) {
        let g = &self.g;
        let ch = g.input.channels;
        let (lo, hi) = (L::splat(self.lo), L::splat(self.hi));
        let split = P < 4;
        let col = g.iw(ow, 0) as usize;
        let mut c = c0;
        while c < c1 {
            // SAFETY: every tap of pixels ow..ow+P is inside the rows (caller); channels
            // c..c+N ≤ c1; stores go to those pixels of this output row.
            unsafe {
                let (wv, b) = self.taps::<L>(c);
                let mut acc = [[L::zero(); P]; 3];
                acc[0] = [b; P];
                for (r, xr) in xrows.iter().enumerate() {
                    let ar = if split { r } else { 0 };
                    // Pointers advance one pixel at a time: no per-load offsets to keep.
                    let mut xp = xr.add(col * ch + c);
                    if S == 1 {
                        for k in 0..P + 2 {
                            let v = L::load(xp);
                            xp = xp.add(ch);
                            for s in 0..3 {
                                if k >= s && k - s < P {
                                    acc[ar][k - s] = acc[ar][k - s].mla(v, wv[r * 3 + s]);
                                }
                            }
                        }
                    } else {
                        for a in acc[ar].iter_mut() {
                            let v0 = L::load(xp);
                            let v1 = L::load(xp.add(ch));
                            let v2 = L::load(xp.add(2 * ch));
                            *a = a
                                .mla(v0, wv[r * 3])
                                .mla(v1, wv[r * 3 + 1])
                                .mla(v2, wv[r * 3 + 2]);
                            xp = xp.add(S * ch);
                        }
                    }
                }
                let o = orow.add(ow * ch + c);
                for (q, &a0) in acc[0].iter().enumerate() {
                    let a = if split {
                        a0.add(acc[1][q]).add(acc[2][q])
                    } else {
                        a0
                    };
                    a.clamp(lo, hi).store(o.add(q * ch));
                }
            }
            c += L::N;
        }
    }

    /// One pixel whose window may cross the left or right padding (columns checked), with
    /// one partial sum per kernel row. (A method, not a closure: closures are not reliably
    /// inlined into the ISA's function, and would then run the vector operations out of
    /// line.)
    ///
    /// # Safety
    /// As `row`.
    #[inline(always)]
    unsafe fn edge<L: Lanes>(
        &self,
        xrows: &[*const f32; 3],
        orow: *mut f32,
        ow: usize,
        c0: usize,
        c1: usize,
    ) {
        let g = &self.g;
        let (w, ch) = (g.input.width, g.input.channels);
        let (lo, hi) = (L::splat(self.lo), L::splat(self.hi));
        let mut c = c0;
        while c < c1 {
            // SAFETY: c + N ≤ c1 ≤ channels (caller).
            let (wv, b) = unsafe { self.taps::<L>(c) };
            let mut part = [b, L::zero(), L::zero()];
            for (r, xr) in xrows.iter().enumerate() {
                for s in 0..3 {
                    let iw = g.iw(ow, s);
                    if iw >= 0 && iw < w as isize {
                        // SAFETY: column iw is inside the row (checked), channels c..c+N.
                        let v = unsafe { L::load(xr.add(iw as usize * ch + c)) };
                        part[r] = part[r].mla(v, wv[r * 3 + s]);
                    }
                }
            }
            let a = part[0].add(part[1]).add(part[2]);
            // SAFETY: pixel ow < wo, channels c..c+N (caller).
            unsafe { a.clamp(lo, hi).store(orow.add(ow * ch + c)) };
            c += L::N;
        }
    }
}

/// Output rows `rows` (flattened n, oh) of any depthwise layer, channels c0..c1 per call.
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
            // SAFETY (all calls): pixels of row (n, oh) < the output's rows; channel ranges
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
