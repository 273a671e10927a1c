//! Whole output rows of the f32 DEPTHWISE_CONV_2D with depth multiplier 1 (see
//! `depthwise_conv`: the operator, its blob form, the sums it reproduces).
//!
//! A row's inputs are the filter rows that lie inside the image, each a padded input row
//! (so every window lies inside it; rows above or below the image are left out, as TFLite
//! skips their taps). Channels go in vector lanes, two vectors at a time, and the row's
//! pixels in tiles of [`FLanes::P`]: each tile keeps 2·P independent sums in registers and
//! loads each tap's weights once for all its pixels. Every sum adds its taps in TFLite's
//! order (filter rows, then columns; fused on x86, as the general kernel `depthwise_lanes`,
//! whose lane types this uses), then the bias, then the clamp. Nothing is set up per pixel
//! or per tap: the caller gives the rows once per output row, and the channels left over
//! after the widest vectors go the narrower ones (AVX-512: 16 lanes, then AVX2's 8, then
//! one lane at a time).

use super::depthwise_lanes::{FLanes, Finish, Isa};

/// Filter rows a row takes, at most (larger filters go the general kernel).
pub(crate) const MAX_KH: usize = 16;

/// One output row (see the module docs).
pub(crate) struct Row<'a> {
    /// The filter rows inside the image: (filter row, padded input row from the column of
    /// the row's first pixel's first tap).
    pub rows: &'a [(usize, &'a [f32])],
    pub kw: usize,
    /// Elements from a tap of a filter row to the next (dw·c), and from a pixel to the
    /// next (sw·c).
    pub col: usize,
    pub step: usize,
    /// Channels (input and output).
    pub oc: usize,
    /// `[tap][oc]`, taps row by row.
    pub w: &'a [f32],
    /// `oc` values.
    pub bias: &'a [f32],
    pub lo: f32,
    pub hi: f32,
}

/// The row as raw pointers, checked by [`run`].
struct Raw {
    x: [*const f32; MAX_KH],
    /// The weights of each filter row in `x`.
    w: [*const f32; MAX_KH],
    rows: usize,
    kw: usize,
    col: usize,
    step: usize,
    oc: usize,
    fin: Finish,
    out: *mut f32,
}

/// Computes `out.len() / r.oc` output pixels of row `r` on `isa`; false (nothing written)
/// when a slice is shorter than the row needs or the row has more than [`MAX_KH`] filter
/// rows (which `depthwise_conv` never passes).
pub(crate) fn run(isa: Isa, r: &Row, out: &mut [f32]) -> bool {
    let oc = r.oc;
    if oc == 0 || out.len() % oc != 0 || r.rows.len() > MAX_KH || r.bias.len() < oc {
        return false;
    }
    let n = out.len() / oc;
    if n == 0 {
        return true;
    }
    // The last element any pixel's tap reads, plus one.
    let Some(reach) = (n - 1)
        .checked_mul(r.step)
        .and_then(|v| v.checked_add(r.kw.checked_sub(1)?.checked_mul(r.col)?))
        .and_then(|v| v.checked_add(oc))
    else {
        return false;
    };
    let mut raw = Raw {
        x: [core::ptr::null(); MAX_KH],
        w: [core::ptr::null(); MAX_KH],
        rows: r.rows.len(),
        kw: r.kw,
        col: r.col,
        step: r.step,
        oc,
        fin: Finish {
            bias: r.bias.as_ptr(),
            mults: core::ptr::null(),
            shifts: core::ptr::null(),
            left: false,
            fast: false,
            zo: 0,
            lo: 0,
            hi: 0,
            flo: r.lo,
            fhi: r.hi,
        },
        out: out.as_mut_ptr(),
    };
    for (i, &(fy, x)) in r.rows.iter().enumerate() {
        let w_end = fy
            .checked_add(1)
            .and_then(|v| v.checked_mul(r.kw)?.checked_mul(oc));
        if x.len() < reach || w_end.is_none_or(|e| e > r.w.len()) {
            return false;
        }
        raw.x[i] = x.as_ptr();
        raw.w[i] = r.w[fy * r.kw * oc..].as_ptr();
    }
    // SAFETY: each input row holds `reach` values, which every tap of the n pixels stays
    // below; each filter row's weights hold kw·oc values; the bias oc; `out` n·oc (checked
    // above); `isa` was detected on this CPU (the caller's `Isa`).
    unsafe { dispatch(isa, &raw, n) };
    true
}

// `dispatch(isa, r, n)`: `channels` with the widest lanes `isa` has, then narrower ones.
super::depthwise_lanes::f32_lanes_dispatch!(Raw);

/// Channels from `c` while whole vectors of `L` fit, for all `n` pixels; returns the first
/// channel not done.
///
/// # Safety
/// As [`dispatch`]; `L`'s instruction set runs here.
#[inline(always)]
unsafe fn channels<L: FLanes>(r: &Raw, n: usize, mut c: usize) -> usize {
    // SAFETY (both loops): channels c..c + 2N (or N) ≤ oc.
    unsafe {
        while c + 2 * L::N <= r.oc {
            pixels::<L, 2>(r, n, c);
            c += 2 * L::N;
        }
        if c + L::N <= r.oc {
            pixels::<L, 1>(r, n, c);
            c += L::N;
        }
    }
    c
}

/// Channels `c..c + V·N` of the `n` pixels, in tiles of `L::P` pixels and one of the rest.
///
/// # Safety
/// As [`channels`], with those channels below oc.
#[inline(always)]
unsafe fn pixels<L: FLanes, const V: usize>(r: &Raw, n: usize, c: usize) {
    let mut x = 0;
    // SAFETY: every tile's pixels are below n (the arms above P never run: P ≥ 4, and
    // n − x < P after the loop).
    unsafe {
        while x + L::P <= n {
            if L::P == 8 {
                tile::<L, V, 8>(r, c, x);
            } else {
                tile::<L, V, 4>(r, c, x);
            }
            x += L::P;
        }
        match n - x {
            0 => {}
            1 => tile::<L, V, 1>(r, c, x),
            2 => tile::<L, V, 2>(r, c, x),
            3 => tile::<L, V, 3>(r, c, x),
            m if L::P == 8 => match m {
                4 => tile::<L, V, 4>(r, c, x),
                5 => tile::<L, V, 5>(r, c, x),
                6 => tile::<L, V, 6>(r, c, x),
                _ => tile::<L, V, 7>(r, c, x),
            },
            _ => {}
        }
    }
}

/// Pixels `x..x + P`, channels `c..c + V·N`: the sums in registers through every tap,
/// then the output stage.
///
/// # Safety
/// As [`pixels`], with those pixels below n.
#[inline(always)]
unsafe fn tile<L: FLanes, const V: usize, const P: usize>(r: &Raw, c: usize, x: usize) {
    // SAFETY (whole body): row i's input for pixel x + k, tap kx, channels c.. is at
    // x[i] + (x + k)·step + kx·col + c, inside what `run` checked; its weights at
    // w[i] + kx·oc + c; the outputs at out + (x + k)·oc + c.
    unsafe {
        let mut acc = [[L::zero(); V]; P];
        for i in 0..r.rows {
            let xs = r.x[i].add(x * r.step + c);
            let ws = r.w[i].add(c);
            for kx in 0..r.kw {
                let mut w = [L::zero(); V];
                for (v, w) in w.iter_mut().enumerate() {
                    *w = L::load(ws.add(kx * r.oc + v * L::N));
                }
                let xk = xs.add(kx * r.col);
                for (k, a) in acc.iter_mut().enumerate() {
                    for (v, a) in a.iter_mut().enumerate() {
                        *a = a.tap(xk.add(k * r.step + v * L::N), w[v]);
                    }
                }
            }
        }
        for v in 0..V {
            let f = L::consts(&r.fin, c + v * L::N);
            for (k, a) in acc.iter().enumerate() {
                a[v].finish(&f, r.out.add((x + k) * r.oc + c + v * L::N));
            }
        }
    }
}
