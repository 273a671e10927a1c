//! Packing for the int8 kernels: operands transformed to the kernel's format (see
//! `QFormat`), k in groups, with the row sums of A' and the column sums of B' that the zero
//! point terms need, computed in the same pass.
//!
//! A sliver s (rows of row tile s, see `gemm::pack::row_tile`) holds A'[i, g·q + t] at
//! byte `(s·MR·G + (q·MR + i)·g + t)·e` — per k-group q, MR rows of g elements — with
//! G = groups in the block and e the element size. A B sliver holds B'[g·q + t, j] at
//! `(s·NR·G + (q·NR + j)·g + t)·e`. Elements past k (and columns past n) are zero, so the
//! padded products vanish; the sums cover the real elements only.

// Without `alloc` nothing drives this module yet (the int8 entry points allocate).
#![cfg_attr(not(feature = "alloc"), allow(dead_code))]

use super::QuantInput;
#[cfg(target_arch = "x86_64")]
use crate::arch::{cpu_info, Features};
use crate::gemm::pack::{row_tile, row_tiles, transpose_rows};
use crate::gemm::raw::Raw;
use crate::kernels::int8::QFormat;

/// Packs `a` (mc×kc) for `fmt`, adding each row's sum of A' to `rowsum[i]` when
/// `sums` (the sums are only needed when B's zero point is not 0).
///
/// # Safety
/// `a` names only in-bounds elements; `dst` has `ceil(mc/MR)·MR·ceil(kc/g)·g·e` writable
/// bytes plus `PACK_SLACK`·4; `rowsum` has mc elements.
pub(crate) unsafe fn pack_a<A: QuantInput>(
    a: Raw<A>,
    fmt: QFormat,
    mr: usize,
    dst: *mut u8,
    rowsum: &mut [i32],
    sums: bool,
) {
    let (mc, kc) = (a.rows, a.cols);
    #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
    if fmt == QFormat::I16x2 && a.cs == 1 {
        // SAFETY: forwarded.
        unsafe { arm::pack_a_i16_rowmajor(a, mr, dst, rowsum, sums) };
        return;
    }
    // Byte formats from row-major A whose rows start on 4-byte steps: each k group of a row
    // is 4 contiguous bytes, so packing is a transpose of 4-byte elements (plus the sign
    // flip when the format wants the other signedness).
    if matches!(fmt, QFormat::U8x4 | QFormat::I8x4) && a.cs == 1 && a.rs % 4 == 0 && kc >= 4 {
        // SAFETY: forwarded; the fast path reads whole groups only inside each row.
        unsafe { pack_a_bytes_rowmajor(a, fmt, mr, dst, rowsum, sums) };
        return;
    }
    if fmt == QFormat::I16x2 && a.cs == 1 && mr <= MAX_WIDEN_ROWS {
        // SAFETY: forwarded.
        unsafe { pack_a_i16_rowmajor(a, mr, dst, rowsum, sums) };
        return;
    }
    let g = fmt.k_group();
    let groups = kc.div_ceil(g);
    let shift = fmt.a_shift(A::SIGNED);
    for s in 0..row_tiles(mc, mr) {
        let (i0, h) = row_tile(mc, mr, s);
        let base = s * mr * groups * g;
        for i in 0..h {
            let mut sum = 0i32;
            // SAFETY: row i0+i, columns 0..kc are inside `a`; indices below stay inside the
            // sliver (q < groups, i < mr, t < g).
            unsafe {
                let row = a.at(i0 + i, 0);
                for q in 0..groups {
                    for t in 0..g {
                        let p = q * g + t;
                        let v = if p < kc {
                            (*row.offset(p as isize * a.cs)).into() + shift
                        } else {
                            0
                        };
                        sum = sum.wrapping_add(v);
                        let idx = base + (q * mr + i) * g + t;
                        match fmt {
                            QFormat::U8x4 | QFormat::I8x4 | QFormat::I8x8 => {
                                *dst.add(idx) = v as u8
                            }
                            QFormat::I16x2 => (dst as *mut i16).add(idx).write_unaligned(v as i16),
                        }
                    }
                }
            }
            rowsum[i0 + i] = rowsum[i0 + i].wrapping_add(sum);
        }
    }
}

/// Rows the i16 widening path handles per sliver (its stack buffer).
const MAX_WIDEN_ROWS: usize = 8;
/// k values widened per step of that path.
const WIDEN_CHUNK: usize = 256;

/// The fast path of [`pack_a`] for the i16 format and row-major A: a chunk of each row is
/// widened to i16 on the stack (LLVM vectorizes the loop), then each pair of k values is
/// one 4-byte element of a transpose, as for the byte formats.
///
/// # Safety
/// As [`pack_a`], with `a.cs == 1` and `mr <= MAX_WIDEN_ROWS`.
unsafe fn pack_a_i16_rowmajor<A: QuantInput>(
    a: Raw<A>,
    mr: usize,
    dst: *mut u8,
    rowsum: &mut [i32],
    sums: bool,
) {
    let (mc, kc) = (a.rows, a.cols);
    let groups = kc.div_ceil(2);
    let mut wide = [[0i16; WIDEN_CHUNK]; MAX_WIDEN_ROWS];
    for s in 0..row_tiles(mc, mr) {
        let (i0, h) = row_tile(mc, mr, s);
        let sliver = dst.wrapping_add(s * mr * groups * 4);
        for p0 in (0..kc).step_by(WIDEN_CHUNK) {
            let len = WIDEN_CHUNK.min(kc - p0);
            for (i, row) in wide.iter_mut().enumerate().take(h) {
                let mut sum = 0i32;
                // SAFETY: row i0+i, columns p0..p0+len are inside `a` (unit column stride).
                let src = unsafe { core::slice::from_raw_parts(a.at(i0 + i, p0), len) };
                for (w, &x) in row.iter_mut().zip(src) {
                    let v: i32 = x.into();
                    *w = v as i16;
                    sum += v;
                }
                row[len..len.div_ceil(2) * 2].fill(0);
                if sums {
                    rowsum[i0 + i] = rowsum[i0 + i].wrapping_add(sum);
                }
            }
            // SAFETY: h rows of len.div_ceil(2) 4-byte pairs in `wide` (row stride
            // WIDEN_CHUNK/2 pairs); the destination groups p0/2.. of the sliver, plus slack.
            unsafe {
                transpose_rows(
                    wide.as_ptr() as *const [u8; 4],
                    (WIDEN_CHUNK / 2) as isize,
                    h,
                    len.div_ceil(2),
                    mr,
                    (sliver as *mut [u8; 4]).add(p0 / 2 * mr),
                )
            };
        }
    }
}

/// The fast path of [`pack_a`] for byte formats and row-major A (row stride a multiple of 4).
///
/// # Safety
/// As [`pack_a`], with `a.cs == 1` and `a.rs % 4 == 0`.
unsafe fn pack_a_bytes_rowmajor<A: QuantInput>(
    a: Raw<A>,
    fmt: QFormat,
    mr: usize,
    dst: *mut u8,
    rowsum: &mut [i32],
    sums: bool,
) {
    let (mc, kc) = (a.rows, a.cols);
    let groups = kc.div_ceil(4);
    let full = kc / 4;
    let flip = fmt.a_shift(A::SIGNED) != 0;
    for s in 0..row_tiles(mc, mr) {
        let (i0, h) = row_tile(mc, mr, s);
        let sliver = dst.wrapping_add(s * mr * groups * 4);
        // SAFETY: rows i0..i0+h hold `full` whole groups of 4 bytes each (kc ≥ 4·full);
        // the sliver has groups·mr 4-byte slots plus the slack after the buffer.
        unsafe {
            transpose_rows(
                a.at(i0, 0) as *const [u8; 4],
                a.rs / 4,
                h,
                full,
                mr,
                sliver as *mut [u8; 4],
            );
            if full < groups {
                // The last, partial group: the real bytes, then zeros.
                for i in 0..h {
                    for t in 0..4 {
                        let p = full * 4 + t;
                        let v = if p < kc {
                            *(a.at(i0 + i, p) as *const u8)
                        } else {
                            0
                        };
                        *sliver.add((full * mr + i) * 4 + t) = v;
                    }
                }
            }
            if flip {
                let bytes = core::slice::from_raw_parts_mut(sliver, groups * mr * 4);
                for b in bytes {
                    *b ^= 0x80;
                }
            }
        }
        if sums {
            let shift = fmt.a_shift(A::SIGNED);
            for i in 0..h {
                let mut sum = 0i32;
                for p in 0..kc {
                    // SAFETY: (i0+i, p) is inside `a`.
                    sum += unsafe { (*a.at(i0 + i, p)).into() };
                }
                let v = sum.wrapping_add(shift.wrapping_mul(kc as i32));
                rowsum[i0 + i] = rowsum[i0 + i].wrapping_add(v);
            }
        }
    }
}

/// Arm M-profile with the DSP extension (Cortex-M4): row-major A widened to i16 pairs four
/// bytes at a time, with no intermediate buffer. `sxtb16` (`uxtb16` for u8) splits a word
/// a0 a1 a2 a3 into the halfword pairs (a0, a2) and (a1, a3); `pkhbt`/`pkhtb` rejoin them as
/// the k-pairs (a0, a1) and (a2, a3), stored MR words apart (consecutive k-groups of the
/// row in the sliver). Row sums, when asked, by `smlad` with (1, 1). 8 instructions per 4
/// elements (2 with the sums) plus the loop.
#[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
mod arm {
    use super::super::QuantInput;
    use crate::gemm::pack::{row_tile, row_tiles};
    use crate::gemm::raw::Raw;
    use core::arch::asm;

    /// The k-pairs (a0, a1) and (a2, a3) of the bytes a0..a3 of `w` (little-endian),
    /// sign-extended (`SIGNED`) or zero-extended.
    #[inline(always)]
    fn widen(w: u32, signed: bool) -> (u32, u32) {
        let (lo, hi): (u32, u32);
        // SAFETY: register arithmetic only.
        unsafe {
            if signed {
                asm!(
                    "sxtb16 {e}, {w}",
                    "sxtb16 {o}, {w}, ror #8",
                    "pkhbt {lo}, {e}, {o}, lsl #16",
                    "pkhtb {hi}, {o}, {e}, asr #16",
                    w = in(reg) w, e = out(reg) _, o = out(reg) _,
                    lo = out(reg) lo, hi = out(reg) hi,
                    options(pure, nomem, nostack, preserves_flags),
                );
            } else {
                asm!(
                    "uxtb16 {e}, {w}",
                    "uxtb16 {o}, {w}, ror #8",
                    "pkhbt {lo}, {e}, {o}, lsl #16",
                    "pkhtb {hi}, {o}, {e}, asr #16",
                    w = in(reg) w, e = out(reg) _, o = out(reg) _,
                    lo = out(reg) lo, hi = out(reg) hi,
                    options(pure, nomem, nostack, preserves_flags),
                );
            }
        }
        (lo, hi)
    }

    /// `s + p.lo + p.hi` (signed halfwords).
    #[inline(always)]
    fn add_pair(s: i32, p: u32) -> i32 {
        let r: i32;
        // SAFETY: register arithmetic only (smlad may set Q, which nothing reads).
        unsafe {
            asm!(
                "smlad {r}, {p}, {one}, {s}",
                r = lateout(reg) r, p = in(reg) p, one = in(reg) 0x0001_0001u32, s = in(reg) s,
                options(pure, nomem, nostack, preserves_flags),
            )
        };
        r
    }

    /// One k-pair word from the elements p, p+1 of a row of kc (zero past kc).
    ///
    /// # Safety
    /// `row[p]` readable, `row[p + 1]` too when p + 1 < kc.
    #[inline(always)]
    unsafe fn pair<A: QuantInput>(row: *const A, p: usize, kc: usize) -> u32 {
        // SAFETY: as stated.
        let v0: i32 = unsafe { (*row.add(p)).into() };
        let v1: i32 = if p + 1 < kc {
            // SAFETY: as stated.
            unsafe { (*row.add(p + 1)).into() }
        } else {
            0
        };
        (v0 as u32 & 0xffff) | ((v1 as u32) << 16)
    }

    /// [`super::pack_a`] for `QFormat::I16x2` and `a.cs == 1`.
    ///
    /// # Safety
    /// As [`super::pack_a`].
    pub(super) unsafe fn pack_a_i16_rowmajor<A: QuantInput>(
        a: Raw<A>,
        mr: usize,
        dst: *mut u8,
        rowsum: &mut [i32],
        sums: bool,
    ) {
        let (mc, kc) = (a.rows, a.cols);
        let groups = kc.div_ceil(2);
        let quads = kc / 4;
        for s in 0..row_tiles(mc, mr) {
            let (i0, h) = row_tile(mc, mr, s);
            let sliver = dst.wrapping_add(s * mr * groups * 4) as *mut u32;
            for i in 0..h {
                let row = a.at(i0 + i, 0) as *const A;
                let mut d = sliver.wrapping_add(i);
                let mut sum = 0i32;
                // SAFETY: the row has kc elements (unit stride): quads·4 bytes are read as
                // words; the sliver holds MR words per k-group for `groups` groups, and row
                // i's word of group q is at i + q·MR.
                unsafe {
                    let src = row as *const u8;
                    for q in 0..quads {
                        let w = (src.add(4 * q) as *const u32).read_unaligned();
                        let (lo, hi) = widen(w, A::SIGNED);
                        d.write(lo);
                        d.add(mr).write(hi);
                        d = d.add(2 * mr);
                        if sums {
                            sum = add_pair(add_pair(sum, lo), hi);
                        }
                    }
                    let mut p = 4 * quads;
                    while p < kc {
                        let w = pair(row, p, kc);
                        d.write(w);
                        d = d.add(mr);
                        if sums {
                            sum = add_pair(sum, w);
                        }
                        p += 2;
                    }
                }
                if sums {
                    rowsum[i0 + i] = rowsum[i0 + i].wrapping_add(sum);
                }
            }
        }
    }
}

/// Packs `b` (kc×nc) for `fmt`, adding each column's sum to `colsum[j]`.
///
/// # Safety
/// `b` names only in-bounds elements; `dst` has `ceil(nc/NR)·NR·ceil(kc/g)·g·e` writable
/// bytes; `colsum` has nc elements.
pub(crate) unsafe fn pack_b(b: Raw<i8>, fmt: QFormat, nr: usize, dst: *mut u8, colsum: &mut [i32]) {
    let (kc, nc) = (b.rows, b.cols);
    #[cfg(target_arch = "x86_64")]
    if fmt == QFormat::I16x2
        && nr == 16
        && b.cs == 1
        && cpu_info().features.contains(Features::AVX2)
    {
        // SAFETY: the CPU has AVX2; bounds as stated for pack_b.
        unsafe { x86_avx2::pack_b_i16x2_nr16(b, dst, colsum) };
        return;
    }
    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
    {
        if matches!(fmt, QFormat::U8x4 | QFormat::I8x4)
            && nr == 32
            && b.cs == 1
            && cpu_info()
                .features
                .contains(Features::AVX512BW.with(Features::AVX512VNNI))
        {
            // SAFETY: the CPU has AVX-512BW and VNNI; bounds as stated for pack_b.
            unsafe { x86::pack_b_bytes4_nr32(b, dst, colsum) };
            return;
        }
    }
    let g = fmt.k_group();
    let groups = kc.div_ceil(g);
    for j0 in (0..nc).step_by(nr) {
        let w = nr.min(nc - j0);
        let base = j0 / nr * nr * groups * g;
        for q in 0..groups {
            for j in 0..nr {
                for t in 0..g {
                    let p = q * g + t;
                    let v = if j < w && p < kc {
                        // SAFETY: (p, j0+j) is inside `b`.
                        unsafe { *b.at(p, j0 + j) as i32 }
                    } else {
                        0
                    };
                    if j < w {
                        colsum[j0 + j] = colsum[j0 + j].wrapping_add(v);
                    }
                    let idx = base + (q * nr + j) * g + t;
                    // SAFETY: idx is inside the sliver (q < groups, j < nr, t < g).
                    unsafe {
                        match fmt {
                            QFormat::U8x4 | QFormat::I8x4 | QFormat::I8x8 => {
                                *dst.add(idx) = v as u8
                            }
                            QFormat::I16x2 => (dst as *mut i16).add(idx).write_unaligned(v as i16),
                        }
                    }
                }
            }
        }
    }
}

// Compiled only when build.rs found rustc ≥ 1.89 (`edgemm_avx512_intrinsics`), which the
// MSRV lint cannot see.
#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[allow(clippy::incompatible_msrv)]
mod x86 {
    use crate::gemm::raw::Raw;
    use core::arch::x86_64::*;

    /// B (kc×nc, row-major) into the byte format with groups of 4 and NR = 32, 64 columns
    /// (two slivers) at a time: the four rows of a group are byte- then word-interleaved
    /// (so every dword is one column's four k values, in an order scrambled by 128-bit
    /// lane), then a 4×4 transpose of 128-bit lanes puts the columns in order. Column sums
    /// come from `vpdpbusd` against a vector of ones. Rows past kc and columns past nc are
    /// loaded as zeros (masked loads never touch memory outside B).
    ///
    /// # Safety
    /// AVX-512BW and VNNI; `b` names only in-bounds elements with unit column stride;
    /// `dst` holds `ceil(nc/32)·32·ceil(kc/4)·4` bytes; `colsum` has nc elements.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn pack_b_bytes4_nr32(b: Raw<i8>, dst: *mut u8, colsum: &mut [i32]) {
        let (kc, nc) = (b.rows, b.cols);
        let groups = kc.div_ceil(4);
        let sliver_bytes = 32 * groups * 4;
        let ones = _mm512_set1_epi8(1);
        let mut j0 = 0;
        while j0 < nc {
            let cols = (nc - j0).min(64);
            let mask: __mmask64 = if cols == 64 { !0 } else { (1u64 << cols) - 1 };
            let two = cols > 32;
            let mut sums = [_mm512_setzero_si512(); 4];
            for q in 0..groups {
                // SAFETY (loads): masked to the columns that exist, rows < kc only.
                let row = |t: usize| -> __m512i {
                    let p = 4 * q + t;
                    if p < kc {
                        unsafe { _mm512_maskz_loadu_epi8(mask, b.at(p, j0) as *const i8) }
                    } else {
                        _mm512_setzero_si512()
                    }
                };
                let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
                let lo01 = _mm512_unpacklo_epi8(r0, r1);
                let hi01 = _mm512_unpackhi_epi8(r0, r1);
                let lo23 = _mm512_unpacklo_epi8(r2, r3);
                let hi23 = _mm512_unpackhi_epi8(r2, r3);
                // z0: columns 0-3 of each 16-column lane, z1: 4-7, z2: 8-11, z3: 12-15.
                let z0 = _mm512_unpacklo_epi16(lo01, lo23);
                let z1 = _mm512_unpackhi_epi16(lo01, lo23);
                let z2 = _mm512_unpacklo_epi16(hi01, hi23);
                let z3 = _mm512_unpackhi_epi16(hi01, hi23);
                // 4×4 transpose of 128-bit lanes: out[l] = columns 16l .. 16l+15.
                let a = _mm512_shuffle_i32x4::<0b01_00_01_00>(z0, z1);
                let bb = _mm512_shuffle_i32x4::<0b01_00_01_00>(z2, z3);
                let c = _mm512_shuffle_i32x4::<0b11_10_11_10>(z0, z1);
                let d = _mm512_shuffle_i32x4::<0b11_10_11_10>(z2, z3);
                let out = [
                    _mm512_shuffle_i32x4::<0b10_00_10_00>(a, bb),
                    _mm512_shuffle_i32x4::<0b11_01_11_01>(a, bb),
                    _mm512_shuffle_i32x4::<0b10_00_10_00>(c, d),
                    _mm512_shuffle_i32x4::<0b11_01_11_01>(c, d),
                ];
                for (l, o) in out.iter().enumerate() {
                    sums[l] = _mm512_dpbusd_epi32(sums[l], ones, *o);
                }
                // SAFETY: sliver j0/32 (and the next when it exists) holds group q at
                // q·128 bytes, inside dst.
                unsafe {
                    let s0 = dst.add(j0 / 32 * sliver_bytes + q * 128);
                    _mm512_storeu_si512(s0 as *mut __m512i, out[0]);
                    _mm512_storeu_si512(s0.add(64) as *mut __m512i, out[1]);
                    if two {
                        let s1 = s0.add(sliver_bytes);
                        _mm512_storeu_si512(s1 as *mut __m512i, out[2]);
                        _mm512_storeu_si512(s1.add(64) as *mut __m512i, out[3]);
                    }
                }
            }
            let mut lanes = [0i32; 64];
            for (l, s) in sums.iter().enumerate() {
                // SAFETY: 16 i32 into lanes[16l..16l+16].
                unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().add(16 * l) as *mut __m512i, *s) };
            }
            for (j, v) in lanes.iter().enumerate().take(cols) {
                colsum[j0 + j] = colsum[j0 + j].wrapping_add(*v);
            }
            j0 += 64;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86_avx2 {
    use crate::gemm::raw::Raw;
    use core::arch::x86_64::*;

    /// B (kc×nc, row-major) into the i16 format with pairs of k and NR = 16: rows 2q and
    /// 2q+1 are sign-extended and word-interleaved (each dword one column's pair), column
    /// sums by `vpmaddwd` against ones. A last sliver of fewer than 16 columns and an odd
    /// last row are completed with zeros.
    ///
    /// # Safety
    /// AVX2; `b` names only in-bounds elements with unit column stride; `dst` holds
    /// `ceil(nc/16)·16·ceil(kc/2)·4` bytes; `colsum` has nc elements.
    #[target_feature(enable = "avx2")]
    #[allow(unused_unsafe)]
    pub(super) unsafe fn pack_b_i16x2_nr16(b: Raw<i8>, dst: *mut u8, colsum: &mut [i32]) {
        // SAFETY (whole body): AVX2 (caller); memory accesses as commented below.
        unsafe {
            let (kc, nc) = (b.rows, b.cols);
            let groups = kc.div_ceil(2);
            let ones = _mm256_set1_epi16(1);
            for j0 in (0..nc).step_by(16) {
                let w = (nc - j0).min(16);
                let sliver = dst.wrapping_add(j0 / 16 * 16 * groups * 4);
                let (mut s0, mut s1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                for q in 0..groups {
                    // 16 bytes of a row (zeros past the last column or row).
                    let row = |p: usize| -> __m256i {
                        if p >= kc {
                            return _mm256_setzero_si256();
                        }
                        let mut buf = [0i8; 16];
                        // SAFETY: row p, columns j0..j0+w are inside B.
                        {
                            if w == 16 {
                                return _mm256_cvtepi8_epi16(_mm_loadu_si128(
                                    b.at(p, j0) as *const __m128i
                                ));
                            }
                            core::ptr::copy_nonoverlapping(b.at(p, j0), buf.as_mut_ptr(), w);
                            _mm256_cvtepi8_epi16(_mm_loadu_si128(buf.as_ptr() as *const __m128i))
                        }
                    };
                    let (r0, r1) = (row(2 * q), row(2 * q + 1));
                    let lo = _mm256_unpacklo_epi16(r0, r1); // columns 0-3 | 8-11
                    let hi = _mm256_unpackhi_epi16(r0, r1); // columns 4-7 | 12-15
                    let o0 = _mm256_permute2x128_si256::<0x20>(lo, hi); // columns 0-7
                    let o1 = _mm256_permute2x128_si256::<0x31>(lo, hi); // columns 8-15
                    s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(o0, ones));
                    s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(o1, ones));
                    // SAFETY: group q of the sliver, 64 bytes, inside dst.
                    {
                        _mm256_storeu_si256(sliver.add(q * 64) as *mut __m256i, o0);
                        _mm256_storeu_si256(sliver.add(q * 64 + 32) as *mut __m256i, o1);
                    }
                }
                let mut lanes = [0i32; 16];
                // SAFETY: 16 i32.
                {
                    _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, s0);
                    _mm256_storeu_si256(lanes.as_mut_ptr().add(8) as *mut __m256i, s1);
                }
                for (j, v) in lanes.iter().enumerate().take(w) {
                    colsum[j0 + j] = colsum[j0 + j].wrapping_add(*v);
                }
            }
        }
    }
}
