//! Strided N-D copies, shared by the data-movement operators (TRANSPOSE, SLICE,
//! STRIDED_SLICE, SPLIT, SPLIT_V, UNPACK): a box of elements read from a source at a base
//! element offset with signed element strides per dimension, written contiguously in
//! row-major order. Elements are `esize` bytes, so int8 and f32 tensors share one path.
//!
//! Blob form of a box (parameter words from some index `p`): rank `r` (≤ 6), the base element
//! offset, the `r` dimensions of the box, then the `r` source strides in elements (negative
//! strides walk backwards, as STRIDED_SLICE does).

use crate::nn::blob::{OpView, MAX_RANK};

/// A box read from a source tensor.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StridedBox {
    pub rank: usize,
    pub base: usize,
    pub dims: [usize; MAX_RANK],
    pub strides: [isize; MAX_RANK],
}

impl StridedBox {
    /// Parameter words this box takes.
    pub(crate) fn words(rank: usize) -> usize {
        2 + 2 * rank
    }

    /// The box written at parameter word `p`, if its rank is in range and its dimensions are
    /// not negative (bounds are checked by [`StridedBox::fits`]).
    pub(crate) fn read(op: &OpView, p: usize) -> Option<Self> {
        let rank = usize::try_from(op.param(p))
            .ok()
            .filter(|&r| r <= MAX_RANK)?;
        let base = usize::try_from(op.param(p + 1)).ok()?;
        let mut b = StridedBox {
            rank,
            base,
            ..Default::default()
        };
        for d in 0..rank {
            b.dims[d] = usize::try_from(op.param(p + 2 + d)).ok()?;
            b.strides[d] = op.param(p + 2 + rank + d) as isize;
        }
        Some(b)
    }

    /// Its parameter words (rank, base, dims, strides).
    #[cfg(feature = "alloc")]
    pub(crate) fn to_params(
        dims: &[usize],
        strides: &[isize],
        base: usize,
    ) -> alloc::vec::Vec<i32> {
        let mut p = alloc::vec![dims.len() as i32, base as i32];
        p.extend(dims.iter().map(|&d| d as i32));
        p.extend(strides.iter().map(|&s| s as i32));
        p
    }

    pub(crate) fn dims(&self) -> &[usize] {
        self.dims.get(..self.rank).unwrap_or(&[])
    }

    pub(crate) fn strides(&self) -> &[isize] {
        self.strides.get(..self.rank).unwrap_or(&[])
    }

    /// The same box with its dimensions of size 1 dropped and each dimension merged into
    /// the one before it where their strides make them one run (`stride[d] = stride[d + 1]
    /// · dims[d + 1]`): the same elements in the same order, in fewer, longer dimensions (an
    /// NCHW → NHWC TRANSPOSE of `[1, H, W, C]` becomes `[H·W, C]`).
    pub(crate) fn canonical(&self) -> Self {
        let mut c = StridedBox {
            base: self.base,
            ..Default::default()
        };
        for (&d, &s) in self.dims().iter().zip(self.strides()) {
            if d == 1 {
                continue;
            }
            if let Some(last) = c.rank.checked_sub(1) {
                let merged = isize::try_from(d)
                    .ok()
                    .and_then(|di| s.checked_mul(di))
                    .filter(|&run| run == c.strides[last])
                    .and_then(|_| c.dims[last].checked_mul(d));
                if let Some(n) = merged {
                    c.dims[last] = n;
                    c.strides[last] = s;
                    continue;
                }
            }
            c.dims[c.rank] = d;
            c.strides[c.rank] = s;
            c.rank += 1;
        }
        c
    }

    /// Elements of the box (`None` on overflow).
    pub(crate) fn elems(&self) -> Option<usize> {
        self.dims()
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// Whether every element of the box lies inside a source of `src_elems` elements.
    pub(crate) fn fits(&self, src_elems: usize) -> bool {
        if self.elems() == Some(0) {
            return true;
        }
        let (mut lo, mut hi) = (self.base as i128, self.base as i128);
        for (&d, &s) in self.dims().iter().zip(self.strides()) {
            let reach = (d as i128 - 1) * s as i128;
            if reach < 0 {
                lo += reach;
            } else {
                hi += reach;
            }
        }
        lo >= 0 && hi < src_elems as i128
    }
}

/// Copies the box `b` of `esize`-byte elements from `src` into the start of `dst`, in
/// row-major order. `false` (nothing guaranteed written) when an element falls outside
/// `src` or `dst` is too small; [`StridedBox::fits`] proves the former at load.
pub(crate) fn copy_box(src: &[u8], b: &StridedBox, esize: usize, dst: &mut [u8]) -> bool {
    let Some(total) = b.elems() else {
        return false;
    };
    if total == 0 || esize == 0 {
        return true;
    }
    let Some(dst) = total
        .checked_mul(esize)
        .and_then(|bytes| dst.get_mut(..bytes))
    else {
        return false;
    };
    let b = &b.canonical();
    if let Some(done) = interleave_box(src, b, esize, dst) {
        return done;
    }
    let (dims, strides) = (b.dims(), b.strides());
    let Some((&inner, outer_dims)) = dims.split_last() else {
        // A scalar: one element.
        let at = b.base.wrapping_mul(esize);
        return match src.get(at..at.wrapping_add(esize)) {
            Some(s) => {
                dst.copy_from_slice(s);
                true
            }
            None => false,
        };
    };
    let inner_stride = strides.last().copied().unwrap_or(1);
    let row_bytes = inner * esize;
    // Rows go in groups along the dimension before the last (one odometer step per group:
    // the step costs more than a short row), the odometer over the dimensions before it.
    let r = dims.len();
    let (group, group_stride, outer) = match r {
        2.. => (dims[r - 2], strides[r - 2], &outer_dims[..r - 2]),
        _ => (1, 0, outer_dims),
    };
    let mut idx = [0usize; MAX_RANK];
    let mut group_start = b.base as isize;
    for rows in dst.chunks_exact_mut(group * row_bytes) {
        let mut row_start = group_start;
        for row in rows.chunks_exact_mut(row_bytes) {
            let copied = if inner_stride == 1 {
                let run = usize::try_from(row_start).ok().and_then(|s| {
                    let at = s.checked_mul(esize)?;
                    src.get(at..at.checked_add(row_bytes)?)
                });
                run.map(|run| row.copy_from_slice(run)).is_some()
            } else {
                // Element sizes known at compile time: each element one move, not a
                // `memcpy` call (an NCHW → NHWC input TRANSPOSE of 3 channels is all such
                // rows).
                match esize {
                    1 => gather(src, row, 1, row_start, inner_stride),
                    2 => gather(src, row, 2, row_start, inner_stride),
                    4 => gather(src, row, 4, row_start, inner_stride),
                    _ => gather(src, row, esize, row_start, inner_stride),
                }
            };
            if !copied {
                return false;
            }
            row_start = row_start.wrapping_add(group_stride);
        }
        // The next group: an odometer over the outer dimensions.
        for (d, (&n, &s)) in outer.iter().zip(strides).enumerate().rev() {
            let i = &mut idx[d];
            *i += 1;
            group_start = group_start.wrapping_add(s);
            if *i < n {
                break;
            }
            *i = 0;
            group_start = group_start.wrapping_sub(s.wrapping_mul(n as isize));
        }
    }
    true
}

/// The most channels [`interleave_box`] takes (the planes an NCHW → NHWC TRANSPOSE reads at
/// once).
const MAX_PLANES: usize = 4;

/// The fast path of an NCHW → NHWC TRANSPOSE (and any box whose canonical form ends in a
/// dimension of stride 1 followed by at most [`MAX_PLANES`] planes a positive stride apart):
/// for each block of the outer dimensions, `dst[g][k] = src[start + g + k·stride]`, reading
/// each plane as one contiguous run and writing whole pixels, vectorized (a loop the compiler
/// turns into shuffles; with AVX2 where the CPU has it). `None` when the box is not of that
/// form or the element size is not 1, 2 or 4 bytes; `Some(false)` when a plane falls outside
/// `src`. `dst` is exactly the box's bytes.
fn interleave_box(src: &[u8], b: &StridedBox, esize: usize, dst: &mut [u8]) -> Option<bool> {
    let (dims, strides) = (b.dims(), b.strides());
    let r = dims.len();
    if r < 2 || strides[r - 2] != 1 || strides[r - 1] <= 1 || !matches!(esize, 1 | 2 | 4) {
        return None;
    }
    let (group, planes) = (dims[r - 2], dims[r - 1]);
    if planes > MAX_PLANES || group < 2 * MAX_PLANES {
        return None;
    }
    let plane_stride = strides[r - 1] as usize; // > 1: checked above
    let outer = &dims[..r - 2];
    let mut idx = [0usize; MAX_RANK];
    let mut start = b.base as isize;
    for block in dst.chunks_exact_mut(group * planes * esize) {
        let Ok(first) = usize::try_from(start) else {
            return Some(false);
        };
        let mut runs: [&[u8]; MAX_PLANES] = [&[]; MAX_PLANES];
        for (k, run) in runs.iter_mut().take(planes).enumerate() {
            let at = plane_stride
                .checked_mul(k)
                .and_then(|o| o.checked_add(first))
                .and_then(|e| e.checked_mul(esize));
            let got = at.and_then(|at| src.get(at..at.checked_add(group * esize)?));
            match got {
                Some(g) => *run = g,
                None => return Some(false),
            }
        }
        let ok = match (esize, planes) {
            (1, 1) | (2, 1) | (4, 1) => {
                block.copy_from_slice(runs[0]);
                true
            }
            (1, 2) => interleave::<1, 2>(&runs, block),
            (1, 3) => interleave::<1, 3>(&runs, block),
            (1, _) => interleave::<1, 4>(&runs, block),
            (2, 2) => interleave::<2, 2>(&runs, block),
            (2, 3) => interleave::<2, 3>(&runs, block),
            (2, _) => interleave::<2, 4>(&runs, block),
            (4, 2) => interleave::<4, 2>(&runs, block),
            (4, 3) => interleave::<4, 3>(&runs, block),
            _ => interleave::<4, 4>(&runs, block),
        };
        if !ok {
            return Some(false);
        }
        // The next block: an odometer over the outer dimensions.
        for (d, (&n, &s)) in outer.iter().zip(strides).enumerate().rev() {
            let i = &mut idx[d];
            *i += 1;
            start = start.wrapping_add(s);
            if *i < n {
                break;
            }
            *i = 0;
            start = start.wrapping_sub(s.wrapping_mul(n as isize));
        }
    }
    Some(true)
}

/// `dst` (pixels of `K` elements of `E` bytes) from the first `K` of `runs` (one element of
/// each per pixel); `false` when a run is shorter than `dst` needs.
fn interleave<const E: usize, const K: usize>(runs: &[&[u8]; MAX_PLANES], dst: &mut [u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if crate::arch::cpu_info()
        .features
        .contains(crate::arch::Features::AVX2)
    {
        // SAFETY: the CPU has AVX2 (just checked); the function is safe code otherwise.
        return unsafe { interleave_avx2::<E, K>(runs, dst) };
    }
    interleave_body::<E, K>(runs, dst)
}

/// [`interleave_body`] compiled for AVX2 (32-byte shuffles: 2.5× the SSE2 code's speed on
/// an NCHW → NHWC image of 3 channels).
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn interleave_avx2<const E: usize, const K: usize>(
    runs: &[&[u8]; MAX_PLANES],
    dst: &mut [u8],
) -> bool {
    interleave_body::<E, K>(runs, dst)
}

#[inline(always)]
fn interleave_body<const E: usize, const K: usize>(
    runs: &[&[u8]; MAX_PLANES],
    dst: &mut [u8],
) -> bool {
    let n = dst.len() / (K * E);
    // Runs cut to exactly n elements, so the loop below has no bounds checks left (the
    // compiler proves every index in range) and vectorizes.
    let mut p: [&[u8]; K] = [&[]; K];
    for (k, cut) in p.iter_mut().enumerate() {
        match runs.get(k).and_then(|r| r.get(..n * E)) {
            Some(r) => *cut = r,
            None => return false,
        }
    }
    for (w, px) in dst.chunks_exact_mut(K * E).enumerate() {
        for k in 0..K {
            px[k * E..k * E + E].copy_from_slice(&p[k][w * E..w * E + E]);
        }
    }
    true
}

/// Fills `row` with `esize`-byte elements of `src`, element `start` on, `stride` elements
/// apart; `false` when one falls outside `src`. Inlined, so a constant `esize` makes each
/// element one move.
#[inline(always)]
fn gather(src: &[u8], row: &mut [u8], esize: usize, start: isize, stride: isize) -> bool {
    let mut at = start;
    for e in row.chunks_exact_mut(esize) {
        let Ok(s) = usize::try_from(at) else {
            return false;
        };
        let s = s.wrapping_mul(esize);
        match src.get(s..s.wrapping_add(esize)) {
            Some(v) => e.copy_from_slice(v),
            None => return false,
        }
        at = at.wrapping_add(stride);
    }
    true
}

/// Row-major element strides of a shape.
#[cfg(feature = "alloc")]
pub(crate) fn row_major_strides(shape: &[usize]) -> alloc::vec::Vec<isize> {
    let mut s = alloc::vec![1isize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1] as isize;
    }
    s
}

/// The values of constant input `k` of IR node `node` (int32 or int64), for lowering.
#[cfg(feature = "alloc")]
pub(crate) fn const_ints(
    g: &crate::nn::transform::ir::Graph,
    node: usize,
    k: usize,
) -> Result<alloc::vec::Vec<i64>, crate::error::Error> {
    use crate::nn::dtype::DType;
    let t = g.input(node, k)?;
    let data = t
        .data
        .as_ref()
        .ok_or_else(|| g.node_error(node, "a non-constant index operand is not supported"))?;
    let v = match t.dtype {
        DType::I32 => data
            .chunks_exact(4)
            .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        DType::I64 => data
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                i64::from_le_bytes(b)
            })
            .collect(),
        _ => return Err(g.node_error(node, "an index operand that is not int32 or int64")),
    };
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(dims: &[usize], strides: &[isize], base: usize) -> StridedBox {
        let mut b = StridedBox {
            rank: dims.len(),
            base,
            ..Default::default()
        };
        b.dims[..dims.len()].copy_from_slice(dims);
        b.strides[..dims.len()].copy_from_slice(strides);
        b
    }

    /// The box read one element at a time, by its definition.
    fn reference(src: &[u8], b: &StridedBox, esize: usize) -> Option<alloc::vec::Vec<u8>> {
        let mut out = alloc::vec::Vec::new();
        let total = b.elems()?;
        let mut idx = [0usize; MAX_RANK];
        for _ in 0..total {
            let mut at = b.base as isize;
            for (&i, &s) in idx.iter().zip(b.strides()) {
                at += i as isize * s;
            }
            let at = usize::try_from(at).ok()? * esize;
            out.extend_from_slice(src.get(at..at + esize)?);
            for d in (0..b.rank).rev() {
                idx[d] += 1;
                if idx[d] < b.dims[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Some(out)
    }

    #[test]
    fn canonical_merges_runs_and_drops_unit_dimensions() {
        // NCHW [1, 3, 4, 5] read as NHWC: [1, 4, 5, 3] with strides [60, 5, 1, 20].
        let t = boxed(&[1, 4, 5, 3], &[60, 5, 1, 20], 0).canonical();
        assert_eq!((t.dims(), t.strides()), (&[20, 3][..], &[1, 20][..]));
        let c = boxed(&[2, 1, 3, 4], &[12, 7, 4, 1], 5).canonical();
        assert_eq!((c.dims(), c.strides(), c.base), (&[24][..], &[1][..], 5));
        let s = boxed(&[1, 1], &[3, 1], 2).canonical();
        assert_eq!((s.rank, s.base), (0, 2));
    }

    #[test]
    fn nchw_to_nhwc_and_other_boxes_match_the_definition() {
        let src: alloc::vec::Vec<u8> = (0..4096u32).map(|i| (i * 37 % 253) as u8).collect();
        for esize in [1, 2, 4, 3] {
            for (n, c, h, w) in [(1, 3, 5, 7), (2, 3, 4, 4), (1, 2, 3, 9), (1, 4, 6, 2)] {
                // NCHW -> NHWC, and back (NHWC source -> NCHW).
                let nhwc = boxed(
                    &[n, h, w, c],
                    &[(c * h * w) as isize, w as isize, 1, (h * w) as isize],
                    0,
                );
                let nchw = boxed(
                    &[n, c, h, w],
                    &[(c * h * w) as isize, 1, (w * c) as isize, c as isize],
                    1,
                );
                let odd = boxed(&[h, w, c], &[(2 * w) as isize, 2, (2 * h * w) as isize], 3);
                for b in [nhwc, nchw, odd] {
                    let want = reference(&src, &b, esize).unwrap();
                    let mut got = alloc::vec![0u8; want.len() + 3];
                    assert!(copy_box(&src, &b, esize, &mut got));
                    assert_eq!(&got[..want.len()], &want[..], "{b:?} esize {esize}");
                }
            }
        }
        // A plane past the end: refused, nothing panics.
        let past = boxed(&[1, 16, 3], &[0, 1, 2000], 0);
        let mut out = [0u8; 192];
        assert!(!copy_box(&src, &past, 4, &mut out));
        assert!(copy_box(&src, &past, 1, &mut out));
    }

    #[test]
    fn transposes_and_reverses() {
        // 2×3 source 0..6; its transpose (3×2) and a reversed row.
        let src: [u8; 6] = [0, 1, 2, 3, 4, 5];
        let t = boxed(&[3, 2], &[1, 3], 0);
        assert!(t.fits(6));
        let mut out = [0u8; 6];
        assert!(copy_box(&src, &t, 1, &mut out));
        assert_eq!(out, [0, 3, 1, 4, 2, 5]);
        let r = boxed(&[2, 3], &[3, -1], 2);
        assert!(r.fits(6));
        assert!(copy_box(&src, &r, 1, &mut out));
        assert_eq!(out, [2, 1, 0, 5, 4, 3]);
        // Out of bounds: refused by fits and by the copy, no panic.
        let bad = boxed(&[2, 4], &[3, 1], 0);
        assert!(!bad.fits(6));
        assert!(!copy_box(&src, &bad, 1, &mut out));
        let neg = boxed(&[2], &[-1], 0);
        assert!(!neg.fits(6));
        assert!(!copy_box(&src, &neg, 1, &mut out));
    }
}
