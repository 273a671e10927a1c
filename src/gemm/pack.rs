//! Packing: copying a block of A into MR-row slivers and a block of B into NR-column
//! slivers, each k-major, so the micro-kernel reads both as sequential streams.
//!
//! A sliver s of an mc×kc block of A holds `A[s*MR + i, p]` at `s*MR*kc + p*MR + i`;
//! a sliver s of a kc×nc block of B holds `B[p, s*NR + j]` at `s*NR*kc + p*NR + j`.
//! The last B sliver is zero-padded to NR columns (the kernel reads all NR). Row tiles of A
//! are balanced (see [`row_tile`]), so a sliver may hold fewer than MR rows; the rows past
//! its height are left as they are (the kernel reads only m rows).

use super::raw::Raw;

/// Number of row tiles for `m` rows with at most `mr` rows each.
#[inline]
pub(crate) fn row_tiles(m: usize, mr: usize) -> usize {
    m.div_ceil(mr)
}

/// (first row, rows) of row tile `s` of `m`: the tiles have near-equal heights (differing by
/// at most one) instead of full tiles plus a short remainder, because a very short tile has
/// too few accumulators to hide the FMA latency (16 rows run as 8 + 8, not 14 + 2).
#[inline]
pub(crate) fn row_tile(m: usize, mr: usize, s: usize) -> (usize, usize) {
    let t = row_tiles(m, mr);
    let (lo, hi) = (s * m / t, (s + 1) * m / t);
    (lo, hi - lo)
}

/// The row tiles of `m` rows as [`row_tile`] makes them, (first row, rows) in order, each
/// found from the last by adds and a compare instead of [`row_tile`]'s divisions (a
/// driver calling a kernel per tile of a few hundred multiply-adds waited on them).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowTiles {
    left: usize,
    /// The end of the last tile, `(s·m) / t` as `q` and remainder `r` (r < t).
    q: usize,
    r: usize,
    t: usize,
    step_q: usize,
    step_r: usize,
}

impl RowTiles {
    #[inline]
    pub(crate) fn new(m: usize, mr: usize) -> Self {
        let t = row_tiles(m, mr.max(1));
        let d = t.max(1);
        RowTiles {
            left: t,
            q: 0,
            r: 0,
            t: d,
            step_q: m / d,
            step_r: m % d,
        }
    }
}

impl Iterator for RowTiles {
    type Item = (usize, usize);

    #[inline]
    fn next(&mut self) -> Option<(usize, usize)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // (s + 1)·m = s·m + m: add m's quotient and remainder by t, carrying one.
        let lo = self.q;
        self.q += self.step_q;
        self.r += self.step_r;
        if self.r >= self.t {
            self.r -= self.t;
            self.q += 1;
        }
        Some((lo, self.q - lo))
    }
}

/// Packs all of `a` (mc×kc) into row-tile slivers at `dst`, sliver s (see [`row_tile`]) at
/// `s*MR*kc`.
///
/// # Safety
/// `a` names only in-bounds elements; `dst` has `ceil(mc/MR)*MR*kc` writable elements.
pub(crate) unsafe fn pack_a(a: Raw<f32>, mr: usize, dst: *mut f32) {
    let (mc, kc) = (a.rows, a.cols);
    let mut d = dst;
    for s in 0..row_tiles(mc, mr) {
        let (i0, h) = row_tile(mc, mr, s);
        // SAFETY: rows i0..i0+h and columns 0..kc are inside `a`; the sliver's mr*kc
        // destination elements are inside `dst` (caller).
        unsafe {
            if a.rs == 1 {
                // Column-major A: each k step of the sliver is h contiguous elements.
                for p in 0..kc {
                    copy_run(a.at(i0, p), d.add(p * mr), h);
                }
            } else if a.cs == 1 {
                // Row-major A: a transpose of h rows; eight k steps at a time keep every
                // source row read sequentially.
                transpose_rows(a.at(i0, 0), a.rs, h, kc, mr, d);
            } else {
                for p in 0..kc {
                    for i in 0..h {
                        *d.add(p * mr + i) = *a.at(i0 + i, p);
                    }
                }
            }
            d = d.add(mr * kc);
        }
    }
}

/// dst[p*ld + i] = src[i*rs + p] for i < h, p < len: a transpose of h rows of any 4-byte
/// element (f32, or the 4-byte k groups of int8 data: the vector path only moves bits).
///
/// # Safety
/// h ≤ 32 rows of `len` contiguous readable elements at stride `rs`; `dst` has `len*ld`
/// elements plus [`PACK_SLACK`] writable ones after them.
#[inline]
pub(crate) unsafe fn transpose_rows<T: Copy>(
    src: *const T,
    rs: isize,
    h: usize,
    len: usize,
    ld: usize,
    dst: *mut T,
) {
    const { assert!(core::mem::size_of::<T>() == 4) };
    #[cfg(target_arch = "x86_64")]
    {
        if crate::arch::cpu_info()
            .features
            .contains(crate::arch::Features::AVX2)
        {
            // SAFETY: AVX2 is present; bounds as stated above; the vector code moves 4-byte
            // lanes without interpreting them.
            unsafe { x86::transpose_rows_avx2(src as *const f32, rs, h, len, ld, dst as *mut f32) };
            return;
        }
    }
    // SAFETY: every index below is within the bounds stated above.
    unsafe { transpose_rows_scalar(src, rs, h, 0, len, ld, dst) }
}

/// The scalar transpose of columns `p0..len`.
///
/// # Safety
/// As [`transpose_rows`].
unsafe fn transpose_rows_scalar<T: Copy>(
    src: *const T,
    rs: isize,
    h: usize,
    p0: usize,
    len: usize,
    ld: usize,
    dst: *mut T,
) {
    for p in p0..len {
        for i in 0..h {
            // SAFETY: i < h, p < len (caller). Unaligned accesses: the int8 packers pass
            // 4-byte groups of byte data (as f32 from the AVX2 path), which may start at any
            // address.
            unsafe {
                dst.add(p * ld + i)
                    .write_unaligned(src.offset(i as isize * rs).add(p).read_unaligned())
            };
        }
    }
}

/// Elements past the end of a packed buffer the vector packers may write (junk, never read).
pub(crate) const PACK_SLACK: usize = 16;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    /// 8×8 transposes, one group of eight rows at a time (a short last group padded with
    /// zero rows), sixteen k steps per iteration so each source row is read a whole cache
    /// line at a time (eight rows at a time fit any L1 set even at 4 KiB strides). Each
    /// output is stored as a full 8-lane vector; lanes past row h spill into positions that
    /// are unused (≥ h) or are written later — groups run from last to first so group 0's
    /// stores land after every spill, and the scalar tail after all vector stores — or into
    /// the buffer's slack. No masked stores needed.
    ///
    /// # Safety
    /// AVX2; as `transpose_rows`, with `PACK_SLACK` (≥ 8) elements of slack after `dst`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transpose_rows_avx2(
        src: *const f32,
        rs: isize,
        h: usize,
        len: usize,
        ld: usize,
        dst: *mut f32,
    ) {
        debug_assert!(h <= 32, "at most four groups of eight rows");
        let groups = h.div_ceil(8);
        let full = len - len % 16;
        // SAFETY (whole body): loads read rows i < h, columns p..p+16 ≤ len; stores write
        // dst[(p+q)*ld + 8g .. +8], which is inside dst's len*ld elements or its slack.
        unsafe {
            for g in (0..groups).rev() {
                let rows = (h - 8 * g).min(8);
                let mut p = 0;
                while p < full {
                    let mut lo = [_mm256_setzero_ps(); 8];
                    let mut hi = [_mm256_setzero_ps(); 8];
                    for i in 0..rows {
                        let r = src.offset((8 * g + i) as isize * rs).add(p);
                        lo[i] = _mm256_loadu_ps(r);
                        hi[i] = _mm256_loadu_ps(r.add(8));
                    }
                    let lo = transpose8(lo);
                    let hi = transpose8(hi);
                    let d = dst.add(p * ld + 8 * g);
                    for (q, v) in lo.iter().chain(hi.iter()).enumerate() {
                        _mm256_storeu_ps(d.add(q * ld), *v);
                    }
                    p += 16;
                }
            }
            super::transpose_rows_scalar(src, rs, h, full, len, ld, dst);
        }
    }

    /// # Safety
    /// AVX2. (An `unsafe fn` rather than a safe target-feature function, and an `unsafe`
    /// block that newer compilers find unneeded: both for the MSRV, 1.85.)
    #[target_feature(enable = "avx2")]
    #[inline]
    #[allow(unused_unsafe)]
    unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        // SAFETY: AVX2 (caller); register shuffles only.
        unsafe {
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            [
                _mm256_permute2f128_ps::<0x20>(s0, s4),
                _mm256_permute2f128_ps::<0x20>(s1, s5),
                _mm256_permute2f128_ps::<0x20>(s2, s6),
                _mm256_permute2f128_ps::<0x20>(s3, s7),
                _mm256_permute2f128_ps::<0x31>(s0, s4),
                _mm256_permute2f128_ps::<0x31>(s1, s5),
                _mm256_permute2f128_ps::<0x31>(s2, s6),
                _mm256_permute2f128_ps::<0x31>(s3, s7),
            ]
        }
    }
}

/// Packs all of `b` (kc×nc) into NR-column slivers at `dst`, zero-padding the last one.
///
/// # Safety
/// `b` names only in-bounds elements; `dst` has `ceil(nc/NR)*NR*kc` writable elements.
pub(crate) unsafe fn pack_b(b: Raw<f32>, nr: usize, dst: *mut f32) {
    let (kc, nc) = (b.rows, b.cols);
    if b.cs == 1 {
        // Row-major B: walk it row by row (each source row read sequentially, one page at a
        // time), scattering NR-wide runs to their slivers.
        let full = nc - nc % nr;
        for p in 0..kc {
            // SAFETY: row p, columns 0..nc are inside `b`; sliver s of row p is at
            // s*nr*kc + p*nr, inside `dst` (caller).
            unsafe {
                let src = b.at(p, 0);
                let mut j0 = 0;
                while j0 < full {
                    copy_run(src.add(j0), dst.add(j0 * kc + p * nr), nr);
                    j0 += nr;
                }
                if full < nc {
                    let o = dst.add(full * kc + p * nr);
                    copy_run(src.add(full), o, nc - full);
                    core::ptr::write_bytes(o.add(nc - full), 0, nr - (nc - full));
                }
            }
        }
        return;
    }
    let mut d = dst;
    for j0 in (0..nc).step_by(nr) {
        let w = nr.min(nc - j0);
        // SAFETY: columns j0..j0+w, rows 0..kc are inside `b`; nr*kc elements of `dst`.
        unsafe {
            if b.rs == 1 {
                // Column-major B: each column is contiguous in p — a transpose.
                transpose_rows(b.at(0, j0), b.cs, w, kc, nr, d);
            } else {
                for p in 0..kc {
                    for j in 0..w {
                        *d.add(p * nr + j) = *b.at(p, j0 + j);
                    }
                }
            }
            if w < nr {
                for p in 0..kc {
                    core::ptr::write_bytes(d.add(p * nr + w), 0, nr - w);
                }
            }
            d = d.add(nr * kc);
        }
    }
}

/// Copies `len` contiguous elements; the tile widths get fixed-size copies (vector moves)
/// instead of a call to `memcpy` per k step.
///
/// # Safety
/// `len` readable elements at `src`, writable at `dst`, not overlapping.
#[inline(always)]
unsafe fn copy_run(src: *const f32, dst: *mut f32, len: usize) {
    #[inline(always)]
    unsafe fn fixed<const N: usize>(src: *const f32, dst: *mut f32) {
        // SAFETY: N == len elements (caller of copy_run).
        unsafe {
            core::ptr::write_unaligned(
                dst as *mut [f32; N],
                core::ptr::read_unaligned(src as *const [f32; N]),
            )
        }
    }
    // SAFETY: forwarded.
    unsafe {
        match len {
            32 => fixed::<32>(src, dst),
            16 => fixed::<16>(src, dst),
            14 => fixed::<14>(src, dst),
            8 => fixed::<8>(src, dst),
            6 => fixed::<6>(src, dst),
            4 => fixed::<4>(src, dst),
            _ => core::ptr::copy_nonoverlapping(src, dst, len),
        }
    }
}

/// Packs one micro-panel of int8 B with a scale per column into an f32 sliver at `dst`:
/// `dst[p*NR + j] = B[p, j] · scales[j]` (the weights dequantized exactly as a DEQUANTIZE
/// would write them), zero past the panel's width. B is row-major (unit column stride),
/// at most NR columns wide.
///
/// # Safety
/// `b` names only in-bounds elements and has `cs == 1`; `scales` has `b.cols` readable
/// elements; `dst` has `nr*kc` writable elements; `b.cols ≤ nr ≤ MAX_NR`.
pub(crate) unsafe fn pack_b_widened(b: Raw<i8>, scales: *const f32, nr: usize, dst: *mut f32) {
    debug_assert!(b.cs == 1 && b.cols <= nr && nr <= crate::kernels::f32::MAX_NR);
    #[cfg(target_arch = "x86_64")]
    {
        use crate::arch::{cpu_info, Features};
        if cpu_info().features.contains(Features::AVX512F) {
            // SAFETY: the CPU has AVX-512F (checked); the rest is the caller's.
            return unsafe { pack_b_widened_avx512(b, scales, nr, dst) };
        }
        if cpu_info().features.contains(Features::AVX2) {
            // SAFETY: the CPU has AVX2 (checked); the rest is the caller's.
            return unsafe { pack_b_widened_avx2(b, scales, nr, dst) };
        }
    }
    // SAFETY: forwarded.
    unsafe { pack_b_widened_body(b, scales, nr, dst) }
}

/// [`pack_b_widened`]'s loop, compiled for each vector width: the scales of the panel in a
/// fixed-size array so the multiply over a k step vectorizes.
///
/// # Safety
/// As [`pack_b_widened`].
#[inline(always)]
pub(crate) unsafe fn pack_b_widened_body(b: Raw<i8>, scales: *const f32, nr: usize, dst: *mut f32) {
    use crate::kernels::f32::MAX_NR;
    let w = b.cols;
    let mut s = [0f32; MAX_NR];
    // SAFETY: w ≤ MAX_NR readable scales (caller).
    unsafe { core::ptr::copy_nonoverlapping(scales, s.as_mut_ptr(), w) };
    /// A whole panel of N columns: fixed-size rows, one vector loop per k step.
    #[inline(always)]
    unsafe fn full<const N: usize>(b: Raw<i8>, s: &[f32; MAX_NR], dst: *mut f32) {
        let s: &[f32; N] = s[..N].try_into().unwrap_or(&[0.0; N]);
        for p in 0..b.rows {
            // SAFETY: row p's N columns are inside `b`, N elements at p*N of dst (caller).
            unsafe {
                let q = core::ptr::read_unaligned(b.at(p, 0) as *const [i8; N]);
                let mut d = [0f32; N];
                for j in 0..N {
                    d[j] = f32::from(q[j]) * s[j];
                }
                core::ptr::write_unaligned(dst.add(p * N) as *mut [f32; N], d);
            }
        }
    }
    match (w, nr) {
        // SAFETY: w == nr == N (the caller's bounds).
        (32, 32) => return unsafe { full::<32>(b, &s, dst) },
        // SAFETY: as above.
        (16, 16) => return unsafe { full::<16>(b, &s, dst) },
        // SAFETY: as above.
        (8, 8) => return unsafe { full::<8>(b, &s, dst) },
        _ => {}
    }
    for p in 0..b.rows {
        // SAFETY: row p, columns 0..w are inside `b`; dst has nr elements at p*nr (caller).
        unsafe {
            let src = core::slice::from_raw_parts(b.at(p, 0) as *const i8, w);
            let d = core::slice::from_raw_parts_mut(dst.add(p * nr), nr);
            for ((d, &q), &s) in d.iter_mut().zip(src).zip(&s) {
                *d = f32::from(q) * s;
            }
            d[w..].fill(0.0);
        }
    }
}

/// # Safety
/// The CPU has AVX-512F; as [`pack_b_widened`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_b_widened_avx512(b: Raw<i8>, scales: *const f32, nr: usize, dst: *mut f32) {
    // SAFETY: forwarded.
    unsafe { pack_b_widened_body(b, scales, nr, dst) }
}

/// # Safety
/// The CPU has AVX2; as [`pack_b_widened`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pack_b_widened_avx2(b: Raw<i8>, scales: *const f32, nr: usize, dst: *mut f32) {
    // SAFETY: forwarded.
    unsafe { pack_b_widened_body(b, scales, nr, dst) }
}

#[cfg(test)]
mod tests {
    use super::{row_tile, row_tiles, RowTiles};

    /// The tiles of `RowTiles::new(m, mr)`, then its end, against `row_tile`'s.
    fn check(m: usize, mr: usize) {
        let mut it = RowTiles::new(m, mr);
        for s in 0..row_tiles(m, mr) {
            assert_eq!(
                it.next(),
                Some(row_tile(m, mr, s)),
                "m {m} mr {mr} tile {s}"
            );
        }
        assert_eq!(it.next(), None, "m {m} mr {mr}");
    }

    #[test]
    fn row_tiles_iterator_makes_the_tiles_of_row_tile() {
        for mr in 1..=16 {
            for m in 0..=200 {
                check(m, mr);
            }
        }
        for m in [1 << 20, (1 << 20) + 13, 1_000_003] {
            check(m, 14);
        }
    }
}
