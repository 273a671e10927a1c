//! The int8 micro-kernel contract and the table of int8 kernels.
//!
//! A kernel computes exact i32 sums over packed, transformed operands:
//!
//! ```text
//! C[i, j] (+)= Σ_p A'[i, p]·B'[p, j]  +  row_off[i]  +  col_off[j]       (wrapping i32)
//! ```
//!
//! where A' and B' are A and B in the kernel's packing format (see [`QFormat`]). The zero
//! points never reach the inner loop: with `za'` the zero point of A' (see
//! [`QFormat::a_shift`]),
//! `Σ (a − za)(b − zb) = Σ a'b − za'·Σ_p b − zb·Σ_p a' + k·za'·zb`, so the driver passes
//! `row_off[i] = −zb·Σ_p a'[i, p]` (from packing A) and
//! `col_off[j] = −za'·Σ_p b[p, j] + k·za'·zb (+ bias[j])` (from packing B). The arithmetic
//! wraps; the result is exact whenever the true value fits i32.

use crate::arch::Features;

/// How a kernel wants its operands laid out, k grouped by the instruction's depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QFormat {
    /// Bytes, k in groups of 4: A' unsigned (u8 as is, i8 + 128), B' i8. x86 `vpdpbusd`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    U8x4,
    /// Bytes, k in groups of 4: A' signed (i8 as is, u8 − 128), B' i8. Arm `sdot`, and the
    /// ARMv8.0 `smull` + `sadalp` kernel.
    #[cfg_attr(not(all(target_arch = "aarch64", edgemm_asm)), allow(dead_code))]
    I8x4,
    /// Bytes, k in groups of 8: A' signed, B' i8. Arm `smmla` (i8mm): with the packed
    /// layout `[group][MR or NR][8]`, rows 2p and 2p+1 of a group are the 16 bytes of one
    /// `smmla` operand (a 2×8 matrix), and likewise columns 2c and 2c+1 of B'.
    #[cfg_attr(not(all(target_arch = "aarch64", edgemm_asm)), allow(dead_code))]
    I8x8,
    /// i16, k in groups of 2: A' and B' sign- or zero-extended. x86 `vpmaddwd`, Arm `smlad`,
    /// portable code. Exact for the whole int8 range (no 16-bit pair sums).
    I16x2,
}

impl QFormat {
    /// k steps per packed group.
    pub const fn k_group(self) -> usize {
        match self {
            QFormat::U8x4 | QFormat::I8x4 => 4,
            QFormat::I8x8 => 8,
            QFormat::I16x2 => 2,
        }
    }

    /// Bytes per packed element.
    pub const fn elem_bytes(self) -> usize {
        match self {
            QFormat::U8x4 | QFormat::I8x4 | QFormat::I8x8 => 1,
            QFormat::I16x2 => 2,
        }
    }

    /// What is added to an A value to make A' (and to A's zero point): +128 turns i8 into
    /// u8, −128 turns u8 into i8 (both are `^ 0x80` on the byte).
    pub const fn a_shift(self, a_signed: bool) -> i32 {
        match (self, a_signed) {
            (QFormat::U8x4, true) => 128,
            (QFormat::I8x4 | QFormat::I8x8, false) => -128,
            _ => 0,
        }
    }
}

/// Arguments of one int8 micro-kernel call. `#[repr(C)]`: the assembly reads these fields
/// at the offsets asserted below. Strides are in bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct QgemmArgs {
    /// A' row i, k-group q at `a + i*a_rs + q*a_ks` (k_group elements, contiguous); with
    /// segments (see `a_segs`), group q of segment s at `a + i*a_rs + s*a_ss + q*a_ks`.
    pub a: *const u8,
    /// B' k-group q, column j at `b + q*b_ks + j*k_group*elem` (all NR columns readable).
    pub b: *const u8,
    /// C[i, j] (i32) at `c + i*c_rs + 4*j`.
    pub c: *mut i32,
    /// Number of k groups (per segment of A, with segments).
    pub k_groups: usize,
    pub a_rs: isize,
    pub a_ks: isize,
    pub b_ks: isize,
    pub c_rs: isize,
    /// Rows of the tile, 1..=MR.
    pub m: usize,
    /// Columns of the tile, 1..=NR.
    pub n: usize,
    /// m values added to the rows (never null: zeros when there is nothing to add).
    pub row_off: *const i32,
    /// NR values added to the columns (never null: zeros when there is nothing to add).
    pub col_off: *const i32,
    /// Bit 0 ([`ACCUMULATE`]): C += result; otherwise C = result (C not read).
    pub flags: usize,
    /// Segments of A (0 counts as 1), each of `k_groups` groups, `a_ss` bytes apart: an
    /// implicit-GEMM convolution's patch row is a run of input bytes per filter row. Only
    /// kernels whose table entry says `segments` read these two fields; the others must
    /// get 1 (one segment: the whole depth).
    pub a_segs: usize,
    pub a_ss: isize,
}

/// `QgemmArgs::flags`: add to C instead of overwriting it.
pub(crate) const ACCUMULATE: usize = 1;

// The assembly hard-codes these offsets (ARG_* in asm/*/qgemm_*.S).
const _: () = {
    use core::mem::offset_of;
    let w = core::mem::size_of::<usize>();
    assert!(offset_of!(QgemmArgs, a) == 0);
    assert!(offset_of!(QgemmArgs, b) == w);
    assert!(offset_of!(QgemmArgs, c) == 2 * w);
    assert!(offset_of!(QgemmArgs, k_groups) == 3 * w);
    assert!(offset_of!(QgemmArgs, a_rs) == 4 * w);
    assert!(offset_of!(QgemmArgs, a_ks) == 5 * w);
    assert!(offset_of!(QgemmArgs, b_ks) == 6 * w);
    assert!(offset_of!(QgemmArgs, c_rs) == 7 * w);
    assert!(offset_of!(QgemmArgs, m) == 8 * w);
    assert!(offset_of!(QgemmArgs, n) == 9 * w);
    assert!(offset_of!(QgemmArgs, row_off) == 10 * w);
    assert!(offset_of!(QgemmArgs, col_off) == 11 * w);
    assert!(offset_of!(QgemmArgs, flags) == 12 * w);
    assert!(offset_of!(QgemmArgs, a_segs) == 13 * w);
    assert!(offset_of!(QgemmArgs, a_ss) == 14 * w);
};

/// An int8 micro-kernel: `unsafe extern "C" fn(&QgemmArgs)`.
///
/// # Safety (for callers)
/// `1 ≤ m ≤ MR`, `1 ≤ n ≤ NR`; rows `0..m` of A' and all NR columns of B' readable for
/// `k_groups` groups; `row_off` (m values) and `col_off` (NR values) readable;
/// the m×n tile of C writable (and readable with ACCUMULATE), not overlapping the inputs.
pub(crate) type QgemmUkr = unsafe extern "C" fn(*const QgemmArgs);

/// One entry of the int8 kernel table.
pub(crate) struct QgemmKernel {
    pub name: &'static str,
    pub requires: Features,
    pub isa: &'static str,
    pub mr: usize,
    pub nr: usize,
    pub format: QFormat,
    pub ukr: QgemmUkr,
    /// Its half-width variant, if it has one: the same contract and packed B' layout for
    /// tiles of `n ≤ NR/2` columns (it reads the first NR/2 columns of each k-group of B'
    /// and of `col_off`), at about half the work of the full tile.
    pub half: Option<QgemmUkr>,
    /// Whether it (and its half-width variant) reads A in segments (`QgemmArgs::a_segs`).
    pub segments: bool,
    /// The output stage that goes with this kernel (same ISA).
    pub requant: crate::quant::requant::RequantFn,
}

/// Every int8 kernel compiled in, best first.
pub(crate) static QGEMM_KERNELS: &[QgemmKernel] = &[
    #[cfg(all(target_arch = "x86_64", edgemm_asm))]
    QgemmKernel {
        name: "qgemm_u8i8_avx512vnni_14x32",
        requires: Features::AVX512F
            .with(Features::AVX512BW)
            .with(Features::AVX512VNNI)
            .with(Features::AVX2),
        isa: "avx512vnni",
        mr: 14,
        nr: 32,
        format: QFormat::U8x4,
        ukr: super::x86_64::qgemm_u8i8_avx512vnni_14x32,
        half: Some(super::x86_64::qgemm_u8i8_avx512vnni_14x16),
        segments: true,
        #[cfg(edgemm_avx512_intrinsics)]
        requant: crate::quant::requant::requantize_avx512,
        #[cfg(not(edgemm_avx512_intrinsics))]
        requant: crate::quant::requant::requantize_avx2,
    },
    #[cfg(all(target_arch = "x86_64", edgemm_asm))]
    QgemmKernel {
        name: "qgemm_i16_avx2_6x16",
        requires: Features::AVX2,
        isa: "avx2",
        mr: 6,
        nr: 16,
        format: QFormat::I16x2,
        ukr: super::x86_64::qgemm_i16_avx2_6x16,
        half: None,
        segments: false,
        requant: crate::quant::requant::requantize_avx2,
    },
    #[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp))]
    QgemmKernel {
        name: "qgemm_s16_m4dsp_16x4",
        requires: Features::DSP,
        isa: "dsp",
        mr: 16,
        nr: 4,
        format: QFormat::I16x2,
        ukr: super::arm::qgemm_s16_m4dsp_16x4,
        half: None,
        segments: false,
        requant: crate::quant::requant::arm::requantize_m4dsp,
    },
    #[cfg(all(target_arch = "aarch64", edgemm_asm))]
    QgemmKernel {
        name: "qgemm_i8_neon_i8mm_8x12",
        requires: Features::NEON.with(Features::I8MM),
        isa: "i8mm",
        mr: 8,
        nr: 12,
        format: QFormat::I8x8,
        ukr: super::aarch64::qgemm_i8_neon_i8mm_8x12,
        half: None,
        segments: false,
        requant: crate::quant::requant::requantize_neon,
    },
    #[cfg(all(target_arch = "aarch64", edgemm_asm))]
    QgemmKernel {
        name: "qgemm_i8_neon_dot_8x12",
        requires: Features::NEON.with(Features::DOTPROD),
        isa: "dotprod",
        mr: 8,
        nr: 12,
        format: QFormat::I8x4,
        ukr: super::aarch64::qgemm_i8_neon_dot_8x12,
        half: None,
        segments: false,
        requant: crate::quant::requant::requantize_neon,
    },
    #[cfg(all(target_arch = "aarch64", edgemm_asm))]
    QgemmKernel {
        name: "qgemm_i8_neon_6x8",
        requires: Features::NEON,
        isa: "neon",
        mr: 6,
        nr: 8,
        format: QFormat::I8x4,
        ukr: super::aarch64::qgemm_i8_neon_6x8,
        half: None,
        segments: false,
        requant: crate::quant::requant::requantize_neon,
    },
    QgemmKernel {
        name: "qgemm_i16_generic_4x8",
        requires: Features::NONE,
        isa: "portable",
        mr: 4,
        nr: 8,
        format: QFormat::I16x2,
        ukr: super::generic::qgemm_i16_generic_4x8,
        half: None,
        segments: false,
        requant: crate::quant::requant::requantize_scalar,
    },
];

/// The largest MR and NR of any int8 kernel (sizes scratch tiles).
pub(crate) const MAX_MR: usize = 16;
pub(crate) const MAX_NR: usize = 32;

#[cfg(test)]
mod tests {
    #[test]
    fn tiles_fit_the_scratch_tile() {
        for k in super::QGEMM_KERNELS {
            assert!(k.mr <= super::MAX_MR && k.nr <= super::MAX_NR, "{}", k.name);
        }
    }

    /// Every kernel this CPU runs, called directly (not through the driver, which always
    /// packs): every m ≤ MR and n ≤ NR, several k, with packed A' (a_rs = one group) and with
    /// A' rows apart (row-major groups, a_rs ≠ one group: the kernels' strided-row paths),
    /// a padded b_ks, extreme values, with and without ACCUMULATE. The m×n tile must hold
    /// the exact wrapping sums plus offsets, and nothing else of C may change.
    #[cfg(feature = "std")]
    #[test]
    fn kernels_keep_the_contract_called_directly() {
        use super::*;
        use std::vec::Vec;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        const GUARD: i32 = 0x5a5a_5a5a;
        for ker in QGEMM_KERNELS {
            if !crate::arch::cpu_info().features.contains(ker.requires) {
                std::println!("SKIPPED {}: this CPU lacks {}", ker.name, ker.isa);
                continue;
            }
            let (mr, nr) = (ker.mr, ker.nr);
            let (g, e) = (ker.format.k_group(), ker.format.elem_bytes());
            let a_min = if ker.format == QFormat::U8x4 { 0 } else { -128 };
            for kg in [0usize, 1, 2, 3, 5] {
                for m in 1..=mr {
                    for n in 1..=nr {
                        let strided = (m + n) % 2 == 1;
                        let accumulate = (m * 7 + n + kg) % 3 == 0;
                        // A in segments (strided rows only), where the kernel reads them.
                        let segs = if ker.segments && strided {
                            1 + (m + kg) % 3
                        } else {
                            1
                        };
                        let kt = segs * kg;
                        // Values: half the time an extreme, else anything in range.
                        let mut val = |lo: i32| -> i32 {
                            let r = next();
                            match r % 4 {
                                0 => lo,
                                1 => lo + 255,
                                _ => lo + ((r >> 8) % 256) as i32,
                            }
                        };
                        let a: Vec<i32> = (0..mr * kt * g).map(|_| val(a_min)).collect();
                        let b: Vec<i32> = (0..nr * kt * g).map(|_| val(-128)).collect();
                        // Segments a gap of 12 bytes apart, rows 8 bytes past their last.
                        let a_ss = (kg * g * e + 12) as isize;
                        let (a_rs, a_ks) = if strided {
                            (segs as isize * a_ss + 8, (g * e) as isize)
                        } else {
                            ((g * e) as isize, (mr * g * e) as isize)
                        };
                        let b_ks = (nr * g * e + 16) as isize;
                        let put = |buf: &mut [u8], at: usize, v: i32| {
                            if e == 1 {
                                buf[at] = v as u8;
                            } else {
                                buf[at..at + 2].copy_from_slice(&(v as i16).to_le_bytes());
                            }
                        };
                        // A' holds only rows 0..m (the kernel may read nothing else).
                        let mut abuf = std::vec![0u8; (m * a_rs.max(a_ks) as usize) * (kt + 1)];
                        for i in 0..m {
                            for q in 0..kt {
                                let (sg, qq) = (q / kg.max(1), q % kg.max(1));
                                for t in 0..g {
                                    let at = i * a_rs as usize
                                        + sg * a_ss as usize
                                        + qq * a_ks as usize
                                        + t * e;
                                    put(&mut abuf, at, a[(i * kt + q) * g + t]);
                                }
                            }
                        }
                        let mut bbuf = std::vec![0u8; b_ks as usize * kt.max(1)];
                        for q in 0..kt {
                            for j in 0..nr {
                                for t in 0..g {
                                    let at = q * b_ks as usize + (j * g + t) * e;
                                    put(&mut bbuf, at, b[(j * kt + q) * g + t]);
                                }
                            }
                        }
                        let row_off: Vec<i32> = (0..m).map(|_| next() as i32).collect();
                        let col_off: Vec<i32> = (0..nr).map(|_| next() as i32).collect();
                        let ldc = nr + 3;
                        let mut c = std::vec![GUARD; (mr + 1) * ldc];
                        let mut want = c.clone();
                        for i in 0..m {
                            for j in 0..n {
                                let mut s = 0i32;
                                for p in 0..kt * g {
                                    let (q, t) = (p / g, p % g);
                                    let x = a[(i * kt + q) * g + t] * b[(j * kt + q) * g + t];
                                    s = s.wrapping_add(x);
                                }
                                let v = s.wrapping_add(row_off[i]).wrapping_add(col_off[j]);
                                if accumulate {
                                    c[i * ldc + j] = next() as i32;
                                }
                                want[i * ldc + j] = if accumulate {
                                    c[i * ldc + j].wrapping_add(v)
                                } else {
                                    v
                                };
                            }
                        }
                        let args = QgemmArgs {
                            a: abuf.as_ptr(),
                            b: bbuf.as_ptr(),
                            c: c.as_mut_ptr(),
                            k_groups: kg,
                            a_rs,
                            a_ks,
                            b_ks,
                            c_rs: (ldc * 4) as isize,
                            m,
                            n,
                            row_off: row_off.as_ptr(),
                            col_off: col_off.as_ptr(),
                            flags: if accumulate { ACCUMULATE } else { 0 },
                            a_segs: segs,
                            a_ss,
                        };
                        // The kernel, and its half-width variant where the tile fits it.
                        let half = ker.half.filter(|_| 2 * n <= nr);
                        let c0 = c.clone();
                        for (ukr, which) in [(Some(ker.ukr), "full"), (half, "half")] {
                            let Some(ukr) = ukr else { continue };
                            c.copy_from_slice(&c0);
                            let args = QgemmArgs {
                                c: c.as_mut_ptr(),
                                ..args
                            };
                            // SAFETY: the CPU runs the kernel (checked); rows 0..m of A' and
                            // all NR columns of B' exist for kg groups at the given strides;
                            // row_off has m values, col_off NR; C has MR+1 rows of ldc ≥ NR
                            // values.
                            unsafe { ukr(&args) };
                            assert!(
                                c == want,
                                "{} ({which}): m={m} n={n} k_groups={kg} segs={segs} \
                                 strided={strided} accumulate={accumulate}\n got {c:?}\nwant {want:?}",
                                ker.name
                            );
                        }
                    }
                }
            }
        }
    }
}
