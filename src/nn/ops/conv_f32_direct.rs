//! f32 CONV_2D with few input channels (a first layer: 1 or 3 channels), computed without
//! patches (the GEMM form of `conv`, same blob form, results within f32 rounding).
//!
//! Filter rows of a few values are too short for `conv_rows` and make im2col copy each
//! input value kh·kw times in pieces of a few bytes, which costs more than the GEMM. Here
//! the output channels go in vector lanes (four or two vectors at a time, then one, then the
//! narrower instruction sets' vectors, then one lane) and the output pixels of a row in
//! tiles: for each tap and input channel, each pixel's input value is broadcast and
//! multiplied by that row of the k×n weights (read in place, as the GEMM's B), into sums
//! kept in registers through all the taps; then the bias and the clamp. Filter rows above or
//! below the image are skipped; in a tile that touches the left or right edge, a tap outside
//! the image reads 0.0 (as im2col's padding). A block of output pixels is any range of them
//! (the caller's threads take blocks, as with the GEMM).

use super::conv::Geom;
use super::depthwise_lanes::{FLanes, Finish, Isa};
use crate::error::Error;

/// Input channels this form takes, at most (more go `conv_rows` or im2col).
pub(crate) const MAX_IC: usize = 8;

/// A checked convolution ready to run directly.
pub(crate) struct Direct<'a> {
    g: Geom,
    /// k×n, row-major (k = kh·kw·c_in, taps row by row, then channels).
    w: &'a [f32],
    bias: &'a [f32],
    lo: f32,
    hi: f32,
    isa: Isa,
}

/// One run of output pixels of one output row (see [`Direct::block`]), as raw pointers.
struct Run {
    /// Input rows of the filter rows inside the image, and those filter rows' first weights.
    x: [*const f32; MAX_KH],
    w: [*const f32; MAX_KH],
    rows: usize,
    /// Input column of the run's first pixel's first tap (may be negative: padding).
    col0: i64,
    kw: usize,
    ic: usize,
    iw: i64,
    sw: i64,
    dw: i64,
    n: usize,
    /// Pixels `lo..hi` of the run read only columns inside the image.
    lo: usize,
    hi: usize,
    fin: Finish,
    out: *mut f32,
}

/// Filter rows this form takes, at most.
const MAX_KH: usize = 16;

impl<'a> Direct<'a> {
    /// `None` when the form does not take the convolution: more than [`MAX_IC`] input
    /// channels or [`MAX_KH`] filter rows, no bias, or weights shorter than k×n.
    pub(crate) fn new(
        g: &Geom,
        w: &'a [f32],
        bias: Option<&'a [f32]>,
        (lo, hi): (f32, f32),
    ) -> Option<Self> {
        let n = g.oc;
        let k = g.kh.checked_mul(g.kw)?.checked_mul(g.ic)?;
        let bias = bias?.get(..n)?;
        if g.ic == 0 || g.ic > MAX_IC || g.kh > MAX_KH || n == 0 || w.len() < k.checked_mul(n)? {
            return None;
        }
        Some(Direct {
            g: *g,
            w,
            bias,
            lo,
            hi,
            isa: Isa::detect(),
        })
    }

    fn bad() -> Error {
        crate::nn::blob::blob_err("CONV_2D: a tensor is smaller than its geometry")
    }

    /// Output pixels `p0..p0 + rows` (b·oh·ow + oy·ow + ox) of input `x` into `y` (their
    /// n values each).
    pub(crate) fn block(
        &self,
        x: &[f32],
        p0: usize,
        rows: usize,
        y: &mut [f32],
    ) -> Result<(), Error> {
        let g = &self.g;
        let (n, ow) = (g.oc, g.ow.max(1));
        let plane = (g.oh * ow).max(1);
        let (row_len, image) = (g.iw * g.ic, g.ih * g.iw * g.ic);
        let y = y.get_mut(..rows * n).ok_or_else(Self::bad)?;
        let mut r = 0;
        while r < rows {
            let p = p0 + r;
            let (b, oy, ox0) = (p / plane, p % plane / ow, p % ow);
            let len = (ow - ox0).min(rows - r);
            let mut run = Run {
                x: [core::ptr::null(); MAX_KH],
                w: [core::ptr::null(); MAX_KH],
                rows: 0,
                col0: (ox0 * g.sw) as i64 - g.pl as i64,
                kw: g.kw,
                ic: g.ic,
                iw: g.iw as i64,
                sw: g.sw as i64,
                dw: g.dw as i64,
                n,
                lo: 0,
                hi: 0,
                fin: Finish {
                    bias: self.bias.as_ptr(),
                    mults: core::ptr::null(),
                    shifts: core::ptr::null(),
                    left: false,
                    fast: false,
                    zo: 0,
                    lo: 0,
                    hi: 0,
                    flo: self.lo,
                    fhi: self.hi,
                },
                out: y[r * n..].as_mut_ptr(),
            };
            for fy in 0..g.kh {
                let iy = g.in_y(oy, fy);
                if iy < 0 || iy >= g.ih as i64 {
                    continue;
                }
                let at = b * image + iy as usize * row_len;
                let xr = x.get(at..at + row_len).ok_or_else(Self::bad)?;
                let w_at = fy * g.kw * g.ic * n;
                // (The weights' length was checked in `new`: all kh filter rows.)
                run.x[run.rows] = xr.as_ptr();
                run.w[run.rows] = self.w[w_at..].as_ptr();
                run.rows += 1;
            }
            // The pixels whose taps all lie inside the row: column col0 + i·sw ≥ 0 and
            // col0 + i·sw + (kw − 1)·dw < iw.
            // (`check` refused a zero stride: the `max` only keeps this division total.)
            let (sw, span) = (run.sw.max(1), ((g.kw.max(1) - 1) * g.dw) as i64);
            let lo = ((-run.col0).max(0) + sw - 1) / sw;
            let hi = ((run.iw - span - run.col0).max(0) + sw - 1) / sw;
            run.hi = (hi as usize).min(len);
            run.lo = (lo as usize).min(run.hi);
            // SAFETY: each input row holds iw·ic values and is read only at columns inside
            // 0..iw (outside ones are skipped by `lo`/`hi` and the edge tiles' checks), the
            // weights k×n values (`new`), the bias n, `y` the run's len·n outputs from out.
            unsafe { dispatch(self.isa, &run, len) };
            r += len;
        }
        Ok(())
    }
}

// `dispatch(isa, r, n)`: `channels` with the widest lanes `isa` has, then narrower ones.
super::depthwise_lanes::f32_lanes_dispatch!(Run);

/// Output channels from `c` while whole vectors of `L` fit; returns the first not done.
///
/// # Safety
/// As [`dispatch`]; `L`'s instruction set runs here.
#[inline(always)]
unsafe fn channels<L: FLanes>(r: &Run, len: usize, mut c: usize) -> usize {
    // SAFETY (every loop): channels c..c + 4N (2N, N) ≤ n.
    unsafe {
        // Four vectors where 32 registers hold their sums (AVX-512): the column checks of
        // edge tiles and the broadcasts then serve more channels each.
        while L::P == 8 && c + 4 * L::N <= r.n {
            pixels::<L, 4>(r, len, c);
            c += 4 * L::N;
        }
        while c + 2 * L::N <= r.n {
            pixels::<L, 2>(r, len, c);
            c += 2 * L::N;
        }
        if c + L::N <= r.n {
            pixels::<L, 1>(r, len, c);
            c += L::N;
        }
    }
    c
}

/// Output channels `c..c + V·N` of the run's pixels, in tiles of up to 8 pixels (5 with
/// four vectors, P with two, as many as fit with one); tiles inside `lo..hi` skip the
/// checks.
///
/// # Safety
/// As [`channels`], with those channels below n.
#[inline(always)]
unsafe fn pixels<L: FLanes, const V: usize>(r: &Run, len: usize, c: usize) {
    let most = match V {
        4 => 5,
        2 => L::P,
        _ => (2 * L::P).min(8),
    };
    let mut x = 0;
    // SAFETY: every tile's pixels are below len.
    unsafe {
        while x < len {
            let p = (len - x).min(most);
            let edge = x < r.lo || x + p > r.hi;
            match (p, edge) {
                (1, _) => tile::<L, V, 1, true>(r, c, x),
                (2, _) => tile::<L, V, 2, true>(r, c, x),
                (3, _) => tile::<L, V, 3, true>(r, c, x),
                (4, true) => tile::<L, V, 4, true>(r, c, x),
                (4, false) => tile::<L, V, 4, false>(r, c, x),
                (5, _) => tile::<L, V, 5, true>(r, c, x),
                (6, _) => tile::<L, V, 6, true>(r, c, x),
                (7, _) => tile::<L, V, 7, true>(r, c, x),
                (_, true) => tile::<L, V, 8, true>(r, c, x),
                (_, false) => tile::<L, V, 8, false>(r, c, x),
            }
            x += p;
        }
    }
}

/// Pixels `x..x + P` of the run, channels `c..c + V·N`: the sums through every tap and
/// input channel, then the output stage. With `EDGE`, a tap's column outside the image
/// reads 0.0.
///
/// # Safety
/// As [`pixels`], with those pixels below the run's length; without `EDGE`, the pixels
/// inside `lo..hi`.
#[inline(always)]
unsafe fn tile<L: FLanes, const V: usize, const P: usize, const EDGE: bool>(
    r: &Run,
    c: usize,
    x: usize,
) {
    // SAFETY (whole body): pixel x + k's tap fx reads input column
    // col0 + (x + k)·sw + fx·dw of each row, inside 0..iw (checked with EDGE, else by
    // lo..hi), channels below ic; the weights of filter row i, tap fx, channel ci at
    // w[i] + (fx·ic + ci)·n + c, below k×n; the outputs at out + (x + k)·n + c.
    unsafe {
        let mut acc = [[L::zero(); V]; P];
        for i in 0..r.rows {
            let (xr, wr) = (r.x[i], r.w[i]);
            for fx in 0..r.kw {
                let col = r.col0 + x as i64 * r.sw + fx as i64 * r.dw;
                for ci in 0..r.ic {
                    let ws = wr.add((fx * r.ic + ci) * r.n + c);
                    let mut w = [L::zero(); V];
                    for (v, w) in w.iter_mut().enumerate() {
                        *w = L::load(ws.add(v * L::N));
                    }
                    for (k, a) in acc.iter_mut().enumerate() {
                        let cc = col + k as i64 * r.sw;
                        let xv = if !EDGE || (0..r.iw).contains(&cc) {
                            *xr.add(cc as usize * r.ic + ci)
                        } else {
                            0.0
                        };
                        for (v, a) in a.iter_mut().enumerate() {
                            *a = a.tap_splat(xv, w[v]);
                        }
                    }
                }
            }
        }
        for v in 0..V {
            let f = L::consts(&r.fin, c + v * L::N);
            for (k, a) in acc.iter().enumerate() {
                a[v].finish(&f, r.out.add((x + k) * r.n + c + v * L::N));
            }
        }
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use crate::nn::ops::conv::same_or_valid;
    use crate::nn::transform::ir::Padding;
    use alloc::vec::Vec;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn range(&mut self, lo: usize, hi: usize) -> usize {
            lo + (self.next() % (hi - lo + 1) as u64) as usize
        }
        fn f32(&mut self) -> f32 {
            (self.next() % 2001) as f32 / 1000.0 - 1.0
        }
    }

    /// Every instruction set this CPU runs (the portable one forced too), random geometries
    /// and blocks of pixels, against the plain loops.
    #[test]
    fn every_isa_matches_the_reference_loops() {
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..200 {
            let (kh, kw) = (r.range(1, 5), r.range(1, 5));
            let (sh, sw, dh, dw) = (r.range(1, 2), r.range(1, 2), r.range(1, 2), r.range(1, 2));
            let (ic, oc) = (r.range(1, MAX_IC), r.range(1, 80));
            let pad = if r.range(0, 1) == 0 {
                Padding::Same
            } else {
                Padding::Valid
            };
            let (ih, iw) = (r.range(1, 12), r.range(1, 20));
            let (Some((oh, pt)), Some((ow, pl))) = (
                same_or_valid(pad, ih, kh, sh, dh),
                same_or_valid(pad, iw, kw, sw, dw),
            ) else {
                continue;
            };
            if oh == 0 || ow == 0 {
                continue;
            }
            let g = Geom {
                batch: r.range(1, 2),
                ih,
                iw,
                ic,
                oh,
                ow,
                oc,
                kh,
                kw,
                sh,
                sw,
                dh,
                dw,
                pt,
                pl,
            };
            let k = kh * kw * ic;
            let x: Vec<f32> = (0..g.batch * ih * iw * ic).map(|_| r.f32()).collect();
            let w: Vec<f32> = (0..k * oc).map(|_| r.f32()).collect();
            let bias: Vec<f32> = (0..oc).map(|_| r.f32()).collect();
            let (lo, hi) = (-0.5f32, 1.5f32);
            let m = g.batch * oh * ow;
            let mut want = Vec::new();
            for p in 0..m {
                let (b, oy, ox) = (p / (oh * ow), p % (oh * ow) / ow, p % ow);
                for o in 0..oc {
                    let mut acc = 0f32;
                    for fy in 0..kh {
                        for fx in 0..kw {
                            let at = g.in_pixel(b, g.in_y(oy, fy), g.in_x(ox, fx));
                            for ci in 0..ic {
                                if let Some(at) = at {
                                    acc += x[at + ci] * w[((fy * kw + fx) * ic + ci) * oc + o];
                                }
                            }
                        }
                    }
                    want.push((acc + bias[o]).clamp(lo, hi));
                }
            }
            let block = r.range(1, m);
            for isa in Isa::all_runnable() {
                let mut d = Direct::new(&g, &w, Some(&bias), (lo, hi)).unwrap();
                d.isa = isa;
                let mut got = alloc::vec![f32::NAN; m * oc];
                let mut p0 = 0;
                while p0 < m {
                    let rows = block.min(m - p0);
                    d.block(&x, p0, rows, &mut got[p0 * oc..(p0 + rows) * oc])
                        .unwrap();
                    p0 += rows;
                }
                for (a, b) in got.iter().zip(&want) {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "{isa:?} {g:?} block {block}: {a} vs {b}"
                    );
                }
            }
        }
    }
}
