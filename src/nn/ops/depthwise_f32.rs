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
//! one lane at a time). With 3 filter columns and pixels 1 or 2 columns apart (stride 1 or
//! 2, or wide pixels), AVX-512 tiles slide instead: a filter row's three weight columns stay
//! in registers and each input column of the tile is loaded once, then used by every pixel
//! whose window holds it (a third or half of the input loads; the same fused steps in the
//! same order, so the same bits). Sliding tiles also take image rows with virtual padding
//! (`Row::cols`): the input columns outside the image are 0.0 in registers, not loaded,
//! so no padded copy of the rows is needed. One call may cover several output rows whose
//! inputs lie a constant stride apart (`Row::count`, `Row::pitch`).

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
    /// Output rows (at least 1): the rows after the first read their inputs `pitch` values
    /// further on in each of `rows`' slices, and follow each other in `out`.
    pub count: usize,
    pub pitch: usize,
    /// 0: the rows are padded rows (every window lies inside them). Else they are image
    /// rows of `cols` pixels whose padding is virtual ([`virtual_pads`]): the first
    /// pixel's window starts `lpad` columns left of the image, and every input column
    /// outside the image reads as 0.0, without a load (the same fused steps as over a pad
    /// pixel of 0.0, so the same bits).
    pub cols: usize,
    pub lpad: usize,
}

/// Whether a row may have virtual padding (`Row::cols` > 0) on `isa`: 3 filter columns
/// a pixel apart (dilation 1), pixels 1 or 2 columns apart, channels in whole AVX-512
/// vectors (every channel then goes the sliding tiles, which alone know the padding).
pub(crate) fn virtual_pads(isa: Isa, kw: usize, col: usize, step: usize, oc: usize) -> bool {
    isa.lanes() == 16 && kw == 3 && col == oc && oc % 16 == 0 && (step == col || step == 2 * col)
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
    /// `Row::cols` (`usize::MAX` without virtual padding) and `Row::lpad`.
    cols: usize,
    lpad: usize,
}

/// Computes `r.count` output rows of `out.len() / (r.count·r.oc)` pixels each on `isa`;
/// false (nothing written) when a slice is shorter than the rows need or a row has more
/// than [`MAX_KH`] filter rows (which `depthwise_conv` never passes).
pub(crate) fn run(isa: Isa, r: &Row, out: &mut [f32]) -> bool {
    let (oc, count) = (r.oc, r.count);
    let Some(per) = oc.checked_mul(count) else {
        return false;
    };
    if per == 0 || out.len() % per != 0 || r.rows.len() > MAX_KH || r.bias.len() < oc {
        return false;
    }
    let n = out.len() / per;
    if n == 0 {
        return true;
    }
    if r.cols > 0 && !virtual_pads(isa, r.kw, r.col, r.step, oc) {
        return false;
    }
    // The last element any pixel's tap of any row reads, plus one: with virtual padding,
    // the last image column's.
    let last = match r.cols {
        0 => (n - 1)
            .checked_mul(r.step)
            .and_then(|v| v.checked_add(r.kw.checked_sub(1)?.checked_mul(r.col)?)),
        c => (c - 1).checked_mul(r.col),
    };
    let Some(reach) = last
        .and_then(|v| v.checked_add(oc))
        .and_then(|v| v.checked_add((count - 1).checked_mul(r.pitch)?))
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
        cols: if r.cols > 0 { r.cols } else { usize::MAX },
        lpad: if r.cols > 0 { r.lpad } else { 0 },
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
    for row in 0..count {
        if row > 0 {
            for x in &mut raw.x[..raw.rows] {
                // SAFETY: row `row` < count starts `row·pitch` values into each input
                // slice, which holds `reach` ≥ (count − 1)·pitch values (checked above).
                *x = unsafe { x.add(r.pitch) };
            }
            // SAFETY: `out` holds count·n·oc values; rows before this one took n·oc each.
            raw.out = unsafe { raw.out.add(n * oc) };
        }
        // SAFETY: each input row holds `reach` values, which every tap of the n pixels of
        // every row stays below; each filter row's weights hold kw·oc values; the bias oc;
        // `out` count·n·oc (checked above); `isa` was detected on this CPU (the caller's
        // `Isa`).
        unsafe { dispatch(isa, &raw, n) };
    }
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

/// Channels `c..c + V·N` of the `n` pixels: by [`tiles`] with `S` the stride in taps when
/// the lanes slide (`L::SLIDE`, 3 columns, a pixel `S` columns from the previous one), else
/// with `S` = 0 (the general tile).
///
/// # Safety
/// As [`channels`], with those channels below oc.
#[inline(always)]
unsafe fn pixels<L: FLanes, const V: usize>(r: &Raw, n: usize, c: usize) {
    // SAFETY: forwarded.
    unsafe {
        if L::SLIDE && r.kw == 3 && r.col > 0 {
            if r.step == r.col {
                return tiles::<L, V, 1>(r, n, c);
            }
            if Some(r.step) == r.col.checked_mul(2) {
                return tiles::<L, V, 2>(r, n, c);
            }
        }
        tiles::<L, V, 0>(r, n, c)
    }
}

/// Channels `c..c + V·N` of the `n` pixels, in tiles of `L::P` pixels and one of the rest.
///
/// # Safety
/// As [`pixels`].
#[inline(always)]
unsafe fn tiles<L: FLanes, const V: usize, const S: usize>(r: &Raw, n: usize, c: usize) {
    let mut x = 0;
    // SAFETY: every tile's pixels are below n (the arms above P never run: P ≥ 4, and
    // n − x < P after the loop).
    unsafe {
        while x + L::P <= n {
            if L::P == 8 {
                tile_at::<L, V, 8, S>(r, c, x);
            } else {
                tile_at::<L, V, 4, S>(r, c, x);
            }
            x += L::P;
        }
        match n - x {
            0 => {}
            1 => tile_at::<L, V, 1, S>(r, c, x),
            2 => tile_at::<L, V, 2, S>(r, c, x),
            3 => tile_at::<L, V, 3, S>(r, c, x),
            m if L::P == 8 => match m {
                4 => tile_at::<L, V, 4, S>(r, c, x),
                5 => tile_at::<L, V, 5, S>(r, c, x),
                6 => tile_at::<L, V, 6, S>(r, c, x),
                _ => tile_at::<L, V, 7, S>(r, c, x),
            },
            _ => {}
        }
    }
}

/// [`tile`], checking each input column against the image (`E`) when the row's padding
/// is virtual and the tile's span (columns x·S..(x + P − 1)·S + 3 of the padded row)
/// reaches outside the image.
///
/// # Safety
/// As [`tile`].
#[inline(always)]
unsafe fn tile_at<L: FLanes, const V: usize, const P: usize, const S: usize>(
    r: &Raw,
    c: usize,
    x: usize,
) {
    let edge = S > 0
        && r.cols != usize::MAX
        && (x * S < r.lpad || (x + P - 1) * S + 3 > r.lpad.saturating_add(r.cols));
    // SAFETY: forwarded (`E` whenever a column outside the image may be read).
    unsafe {
        if edge {
            tile::<L, V, P, S, true>(r, c, x)
        } else {
            tile::<L, V, P, S, false>(r, c, x)
        }
    }
}

/// Pixels `x..x + P`, channels `c..c + V·N`: the sums in registers through every tap,
/// then the output stage. `S` = 0: tap by tap, each input loaded by the tap that reads it.
/// `S` ∈ {1, 2} (3 columns, pixels `S` columns apart: step = S·col): per filter row, its
/// three columns of weights are loaded once, and each input column of the tile's span once
/// (pixel k's columns S·k..S·k + 3 share 3 − S of them with pixel k − 1's, kept in
/// registers). Each sum still takes its taps in TFLite's order, the same fused steps.
///
/// With virtual padding (`S` > 0 only), input column j of the span is column x·S + j −
/// lpad of the image, and `E` loads only those inside it (the others read as 0.0).
///
/// # Safety
/// As [`tiles`], with those pixels below n; `S` > 0 only with 3 columns and step = S·col;
/// `E` whenever virtual padding puts a column of the span outside the image.
#[inline(always)]
unsafe fn tile<L: FLanes, const V: usize, const P: usize, const S: usize, const E: bool>(
    r: &Raw,
    c: usize,
    x: usize,
) {
    // SAFETY (whole body): row i's input for pixel x + k, tap kx, channels c.. is at
    // x[i] + (x + k)·step + kx·col + c, inside what `run` checked (with S > 0 that is
    // x[i] + x·step + (S·k + kx)·col + c: input column j = S·k + kx of the span, j below
    // S·(P − 1) + 3; with virtual padding lpad columns to the left, loaded only inside
    // the image, whose `cols` columns `run` checked); its weights at w[i] + kx·oc + c; the
    // outputs at out + (x + k)·oc + c.
    unsafe {
        let mut acc = [[L::zero(); V]; P];
        // The span's columns inside the image (all of them without `E`).
        let inside = match E {
            true => (
                r.lpad.saturating_sub(x * S),
                r.lpad.saturating_add(r.cols).saturating_sub(x * S),
            ),
            false => (0, usize::MAX),
        };
        for i in 0..r.rows {
            // (Wrapping: with virtual padding, the span may start left of the row.)
            let xs = r.x[i]
                .wrapping_add(x * r.step + c)
                .wrapping_sub(r.lpad * r.col);
            let ws = r.w[i].add(c);
            if S > 0 {
                let mut w = [[L::zero(); V]; 3];
                for (kx, w) in w.iter_mut().enumerate() {
                    for (v, w) in w.iter_mut().enumerate() {
                        *w = L::load(ws.add(kx * r.oc + v * L::N));
                    }
                }
                // Input columns S·k, S·k + 1, S·k + 2 of pixel k: a window kept from the
                // previous pixel's (its last one, or last two with S = 1). One call per
                // pixel, so that every index is a constant (the sums stay in registers).
                let mut win = [[L::zero(); V]; 3];
                let c = (xs, r.col, &w, inside);
                slide::<L, V, P, S, E, 0>(&mut acc, &mut win, c);
                slide::<L, V, P, S, E, 1>(&mut acc, &mut win, c);
                slide::<L, V, P, S, E, 2>(&mut acc, &mut win, c);
                slide::<L, V, P, S, E, 3>(&mut acc, &mut win, c);
                slide::<L, V, P, S, E, 4>(&mut acc, &mut win, c);
                slide::<L, V, P, S, E, 5>(&mut acc, &mut win, c);
                slide::<L, V, P, S, E, 6>(&mut acc, &mut win, c);
                slide::<L, V, P, S, E, 7>(&mut acc, &mut win, c);
                continue;
            }
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

/// Pixel `K` of a sliding tile (nothing when `K` ≥ `P`): moves the window of input columns
/// on to its columns S·K..S·K + 3 (loading the new ones from `x` + column·`col`; with `E`,
/// those in `inside` only, the others 0.0), then adds its three taps, in order, to its
/// sums.
///
/// # Safety
/// As [`tile`] with `S` > 0: `x` its row's input for the tile's first pixel and channel,
/// `P` ≤ 8.
#[inline(always)]
unsafe fn slide<
    L: FLanes,
    const V: usize,
    const P: usize,
    const S: usize,
    const E: bool,
    const K: usize,
>(
    acc: &mut [[L; V]; P],
    win: &mut [[L; V]; 3],
    (x, col, w, inside): (*const f32, usize, &[[L; V]; 3], (usize, usize)),
) {
    if K >= P {
        return;
    }
    // SAFETY: columns below S·(P − 1) + 3 of the tile's pixels, inside the image with
    // virtual padding (the caller's).
    unsafe {
        let load = |win: &mut [L; V], t: usize| {
            let j = S * K + t;
            if E && !(inside.0..inside.1).contains(&j) {
                *win = [L::zero(); V];
                return;
            }
            for (v, xv) in win.iter_mut().enumerate() {
                *xv = L::load(x.wrapping_add(j * col + v * L::N));
            }
        };
        if K == 0 {
            for (t, win) in win.iter_mut().enumerate() {
                load(win, t);
            }
        } else if S == 1 {
            win[0] = win[1];
            win[1] = win[2];
            load(&mut win[2], 2);
        } else {
            win[0] = win[2];
            load(&mut win[1], 1);
            load(&mut win[2], 2);
        }
        for (win, w) in win.iter().zip(w) {
            for (a, (xv, wv)) in acc[K].iter_mut().zip(win.iter().zip(w)) {
                *a = a.tap_reg(*xv, *wv);
            }
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Every fused instruction set against sums taken tap by tap with `mul_add` in TFLite's
    /// order (then the bias, then the clamp), bit for bit: the sliding tiles (3 columns,
    /// pixels 1 or 2 columns apart) and the general ones alike. The channels are whole
    /// vectors of 8 (the one-lane rest adds unfused).
    #[test]
    fn fused_paths_match_mul_add_bit_for_bit() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |m: usize| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % m as u64) as usize
        };
        let isas: Vec<Isa> = Isa::all_runnable()
            .into_iter()
            .filter(|&i| i != Isa::Portable)
            .collect();
        let mut slid = 0;
        for case in 0..400 {
            let oc = 8 * (1 + next(9));
            let kw = if case % 2 == 0 { 3 } else { 1 + next(4) };
            let n = 1 + next(19);
            // Columns: a pixel's channels apart, or less (wide pixels), or dilated.
            let col = match next(3) {
                0 => oc,
                1 => oc / 2,
                _ => 2 * oc,
            };
            let step = match next(4) {
                0 => col,
                1 => 2 * col,
                _ => oc * (1 + next(2)),
            };
            slid += usize::from(kw == 3 && (step == col || step == 2 * col));
            let kh = 1 + next(3);
            let rows_in: Vec<usize> = (0..kh).filter(|_| next(4) != 0).collect();
            let len = (n - 1) * step + (kw - 1) * col + oc + next(3);
            let mut val = || (next(2001) as f32 - 1000.0) / 997.0;
            let xs: Vec<Vec<f32>> = rows_in
                .iter()
                .map(|_| (0..len).map(|_| val()).collect())
                .collect();
            let w: Vec<f32> = (0..kh * kw * oc).map(|_| val()).collect();
            let bias: Vec<f32> = (0..oc).map(|_| val()).collect();
            let (lo, hi) = if case % 3 == 0 {
                (0.0, 6.0)
            } else {
                (f32::MIN, f32::MAX)
            };
            let rows: Vec<(usize, &[f32])> = rows_in
                .iter()
                .zip(&xs)
                .map(|(&fy, x)| (fy, &x[..]))
                .collect();
            let row = Row {
                rows: &rows,
                kw,
                col,
                step,
                oc,
                w: &w,
                bias: &bias,
                lo,
                hi,
                count: 1,
                pitch: 0,
                cols: 0,
                lpad: 0,
            };
            let mut want = Vec::with_capacity(n * oc);
            for k in 0..n {
                for c in 0..oc {
                    let mut s = 0.0f32;
                    for &(fy, x) in &rows {
                        for kx in 0..kw {
                            s = x[k * step + kx * col + c].mul_add(w[(fy * kw + kx) * oc + c], s);
                        }
                    }
                    want.push((s + bias[c]).max(lo).min(hi).to_bits());
                }
            }
            for &isa in &isas {
                let mut out = vec![f32::NAN; n * oc];
                assert!(run(isa, &row, &mut out));
                let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                assert_eq!(
                    got, want,
                    "{isa:?} n {n} oc {oc} kw {kw} col {col} step {step}"
                );
            }
        }
        assert!(slid > 100, "{slid} sliding cases");
    }

    /// Rows with virtual padding (image rows, columns outside read as 0.0), several output
    /// rows per call, against sums over a padded copy taken tap by tap with `mul_add` (a
    /// pad column adds a 0.0 product, as a pad pixel of the ring does), bit for bit.
    #[test]
    fn virtual_padding_matches_padded_rows_bit_for_bit() {
        let isa = Isa::detect();
        if isa.lanes() != 16 {
            return;
        }
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |m: usize| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % m as u64) as usize
        };
        for case in 0..200 {
            let oc = 16 * (1 + next(4));
            let sw = 1 + next(2);
            let cols = 1 + next(20);
            let lpad = next(3);
            let n = 1 + next(12);
            let count = 1 + next(4);
            let kh = 1 + next(3);
            // Image rows: count output rows, kh filter rows each, `sh` rows apart (row
            // k·sh + fy of the image), then spare values.
            let sh = 1 + next(2);
            let ih = (count - 1) * sh + kh;
            let len = cols * oc;
            let spare = next(3);
            let mut val = || (next(2001) as f32 - 1000.0) / 997.0;
            let img: Vec<f32> = (0..ih * len + spare).map(|_| val()).collect();
            let w: Vec<f32> = (0..kh * 3 * oc).map(|_| val()).collect();
            let bias: Vec<f32> = (0..oc).map(|_| val()).collect();
            let (lo, hi) = if case % 3 == 0 {
                (0.0, 6.0)
            } else {
                (f32::MIN, f32::MAX)
            };
            let rows: Vec<(usize, &[f32])> = (0..kh).map(|fy| (fy, &img[fy * len..])).collect();
            let row = Row {
                rows: &rows,
                kw: 3,
                col: oc,
                step: sw * oc,
                oc,
                w: &w,
                bias: &bias,
                lo,
                hi,
                count,
                pitch: sh * len,
                cols,
                lpad,
            };
            let mut want = Vec::new();
            for k in 0..count {
                for p in 0..n {
                    for c in 0..oc {
                        let mut s = 0.0f32;
                        for fy in 0..kh {
                            for kx in 0..3 {
                                let ic = (p * sw + kx) as i64 - lpad as i64;
                                let y = k * sh + fy;
                                let x = if ic < 0 || ic >= cols as i64 {
                                    0.0
                                } else {
                                    img[y * len + ic as usize * oc + c]
                                };
                                s = x.mul_add(w[(fy * 3 + kx) * oc + c], s);
                            }
                        }
                        want.push((s + bias[c]).max(lo).min(hi).to_bits());
                    }
                }
            }
            let mut out = vec![f32::NAN; count * n * oc];
            assert!(run(isa, &row, &mut out), "case {case}");
            let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
            assert_eq!(
                got, want,
                "case {case}: oc {oc} sw {sw} cols {cols} lpad {lpad} n {n}"
            );
        }
    }
}
