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
    /// With [`REQUANT`]: the output stage's constants for the tile's columns (never read
    /// otherwise; null then).
    pub rq: *const RqArgs,
}

/// `QgemmArgs::flags`: add to C instead of overwriting it.
pub(crate) const ACCUMULATE: usize = 1;

/// `QgemmArgs::flags` (kernels whose table entry says `fused_requant`; never with
/// [`ACCUMULATE`]): `c` points at the byte output (`c_rs` bytes per row, unit column
/// stride) and each finished sum is requantized by `rq` as the output stage does
/// (`requant::RqPlan::one`) and stored as one byte (i8 or u8 bit pattern). Valid only when
/// every sum is below 2^30 in magnitude, no shift is positive and no multiplier negative
/// (`RqPlan::acc_small`, `RqPlan::no_left_shift`, `RqPlan::mults_nonneg`): the one-shift
/// rounding of the AVX-512 output stage; when `(|zp| + 1)·2^e ≤ 2^30` for every column's
/// right shift `e` (the zero point is added as `zp·2^e` before the shift); and when the row
/// offsets are zero (the kernel does not read `row_off`: B's zero point is 0).
/// `requant::Fused` checks the first four.
pub(crate) const REQUANT: usize = 2;

/// The output stage as a kernel with [`REQUANT`] reads it (offsets hard-coded in the
/// assembly, RQ_*): column j of the tile has multiplier `mult[j]` and shift `shift[j]`
/// (−31..=0), read for j < n only.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct RqArgs {
    pub mult: *const i32,
    pub shift: *const i32,
    pub zp: i32,
    pub lo: i32,
    pub hi: i32,
}

/// `QgemmArgs::flags` with [`REQUANT`]: the clamp is the whole i8 range, so the kernel
/// narrows with signed saturation instead of clamping.
pub(crate) const RQ_SAT: usize = 4;

/// `QgemmArgs::flags` with [`REQUANT`]: the zero point is at most the clamp's low end (a
/// ReLU's output), so the kernel skips the rounding's correction for negative sums, which
/// then changes no output (the proof at the assembly's RQVEC).
pub(crate) const RQ_NOCORR: usize = 8;

// The assembly hard-codes these offsets (RQ_* in asm/x86_64/qgemm_u8i8_avx512vnni_14x32.S);
// only x86-64 has a kernel that reads them.
#[cfg(target_arch = "x86_64")]
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(RqArgs, mult) == 0);
    assert!(offset_of!(RqArgs, shift) == 8);
    assert!(offset_of!(RqArgs, zp) == 16);
    assert!(offset_of!(RqArgs, lo) == 20);
    assert!(offset_of!(RqArgs, hi) == 24);
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
    /// Whether it (and its half-width variant) takes [`REQUANT`]: the output stage fused
    /// into its epilogue, on the accumulators while they are in registers.
    pub fused_requant: bool,
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
        fused_requant: true,
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
        fused_requant: false,
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
        fused_requant: false,
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
        fused_requant: false,
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
        fused_requant: false,
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
        fused_requant: false,
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
        fused_requant: false,
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
                            rq: core::ptr::null(),
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
                        if ker.fused_requant {
                            requant_case(ker, &args, &a, &b, kt, g, &mut next);
                        }
                    }
                }
            }
        }
    }

    /// The fused output stage (REQUANT) of one call of the direct test, per-channel and
    /// per-tensor, with and without RQ_SAT and RQ_NOCORR: the bytes of the m×n tile must be the output
    /// stage's (`RqPlan::one`) of the exact sums plus small offsets (below 2^30, as the
    /// flag requires), and no other byte may change.
    #[cfg(feature = "std")]
    #[allow(clippy::too_many_arguments)]
    fn requant_case(
        ker: &super::QgemmKernel,
        args: &super::QgemmArgs,
        a: &[i32],
        b: &[i32],
        kt: usize,
        g: usize,
        next: &mut impl FnMut() -> u64,
    ) {
        use super::*;
        use crate::quant::requant::{Fused, Mults, RqPlan};
        use std::vec::Vec;
        let (mr, nr, m, n) = (ker.mr, ker.nr, args.m, args.n);
        // (REQUANT never reads row offsets: B's zero point is 0 where it is passed. The
        // kernel gets garbage there to show it.)
        let row_off: Vec<i32> = (0..m).map(|_| (next() as i32) >> 12).collect();
        let col_off: Vec<i32> = (0..nr).map(|_| (next() as i32) >> 12).collect();
        // Multipliers as TFLite makes them (in [2^30, 2^31), or 0), shifts −22..=0 (the
        // largest right shift the fused stage takes with any zero point) with the small
        // ones more likely (so values survive), one in eight 0.
        let mults: Vec<i32> = (0..n)
            .map(|j| match next() % 8 {
                0 if j % 2 == 0 => 0,
                _ => (1 << 30) + (next() % (1 << 30)) as i32,
            })
            .collect();
        let shifts: Vec<i32> = (0..n)
            .map(|_| match next() % 8 {
                0 => 0,
                1 => -22,
                _ => -((next() % 20) as i32),
            })
            .collect();
        let zp = (next() % 256) as i32 - 128;
        // The zero point goes in before the right shift (as zp·2^e): refused where that
        // could leave i32, (|zp| + 1)·2^e > 2^30.
        for (zp, shift, fits) in [(-128, -22, true), (-128, -23, false), (127, -23, true)] {
            let plan = RqPlan {
                mults: Mults::PerChannel {
                    multipliers: &[1 << 30, 1 << 30],
                    shifts: &[0, shift],
                },
                out_zp: zp,
                lo: -128,
                hi: 127,
                no_left_shift: true,
                zp_fits: crate::quant::requant::zp_fits(zp, shift),
                right_shift_only: false,
                mults_nonneg: true,
                acc_small: true,
            };
            assert_eq!(Fused::new(&plan).is_some(), fits, "zp={zp} shift={shift}");
        }
        // (The last two: a zero point at the clamp's low end, RQ_NOCORR, with and without
        // RQ_SAT, per channel.)
        for (per_channel, zp, lo, hi) in [
            (true, zp, -128, 127),
            (true, zp, (next() % 128) as i32 - 128, (next() % 128) as i32),
            (false, zp, zp.max(-128), 127),
            (false, zp, 0, 255),
            (true, -128, -128, 127),
            (true, zp.min(100), zp.min(100), 127),
        ] {
            let mults = if per_channel {
                Mults::PerChannel {
                    multipliers: &mults,
                    shifts: &shifts,
                }
            } else {
                Mults::PerTensor {
                    multiplier: mults[0] | 1 << 30,
                    shift: shifts[0],
                }
            };
            let plan = RqPlan {
                mults,
                out_zp: zp,
                lo,
                hi,
                no_left_shift: true,
                zp_fits: crate::quant::requant::zp_fits(zp, *shifts.iter().min().unwrap_or(&0)),
                right_shift_only: false,
                mults_nonneg: true,
                acc_small: true,
            };
            let fused = Fused::new(&plan).unwrap();
            assert_eq!(fused.flags & RQ_NOCORR != 0, zp <= lo);
            let rq = fused.args(0);
            let ldo = nr + 5;
            let mut out = std::vec![0x5au8; (mr + 1) * ldo];
            let mut want = out.clone();
            for i in 0..m {
                for j in 0..n {
                    let mut s = col_off[j];
                    for p in 0..kt * g {
                        let (q, t) = (p / g, p % g);
                        s += a[(i * kt + q) * g + t] * b[(j * kt + q) * g + t];
                    }
                    want[i * ldo + j] = plan.one(s, j) as u8;
                }
            }
            let half = ker.half.filter(|_| 2 * n <= nr);
            for (ukr, which) in [(Some(ker.ukr), "full"), (half, "half")] {
                let Some(ukr) = ukr else { continue };
                out.fill(0x5a);
                let args = QgemmArgs {
                    c: out.as_mut_ptr() as *mut i32,
                    c_rs: ldo as isize,
                    row_off: row_off.as_ptr(),
                    col_off: col_off.as_ptr(),
                    flags: fused.flags,
                    rq: &rq,
                    ..*args
                };
                // SAFETY: as in the caller; the output has MR+1 rows of ldo ≥ NR bytes, the
                // per-channel arrays n values (the kernel reads only those), the sums are
                // far below 2^30 (k ≤ 60 products of at most 2^15, offsets below 2^19).
                unsafe { ukr(&args) };
                assert!(
                    out == want,
                    "{} ({which}, requant): m={m} n={n} kt={kt} per_channel={per_channel} \
                     lo={lo} hi={hi}\n got {out:?}\nwant {want:?}",
                    ker.name
                );
            }
        }
    }

    /// The fused output stage (REQUANT) at its boundaries: k_groups = 0, so each column's
    /// sum is its column offset, set to values next to the rounding ties of both steps
    /// (SRDHM's halfway point and RDBPOT's, for positive and negative sums), and to the
    /// extremes below 2^30; multipliers at 0, 2^30, 2^31 − 1 and in between; shifts 0 (no
    /// rounding step), 1 and up to 22; per-channel, with and without RQ_SAT and RQ_NOCORR. Every byte
    /// must be the output stage's (`RqPlan::one`, TFLite's reference arithmetic).
    #[cfg(feature = "std")]
    #[test]
    fn fused_requant_is_exact_at_rounding_ties() {
        use super::*;
        use crate::quant::requant::{Fused, Mults, RqPlan};
        use std::vec::Vec;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        const MULTS: [i32; 6] = [
            0,
            1 << 30,
            (1 << 30) + 1,
            1_518_500_250,
            1_999_999_999,
            i32::MAX,
        ];
        const SHIFTS: [i32; 7] = [0, -1, -2, -3, -7, -13, -22];
        // Sums x whose SRDHM(x, m) is y or next to it (x·m near y·2^31 − 2^30), within 2^30.
        let near = |y: i64, m: i32, d: i64| -> i32 {
            let m = i64::from(m.max(1));
            ((y * (1 << 31) - (1 << 30)) / m + d).clamp(-(1 << 30) + 1, (1 << 30) - 1) as i32
        };
        for ker in QGEMM_KERNELS {
            if !ker.fused_requant || !crate::arch::cpu_info().features.contains(ker.requires) {
                continue;
            }
            let (mr, nr) = (ker.mr, ker.nr);
            let zeros = std::vec![0u8; 4 * nr + 64];
            for round in 0..400 {
                let n = 1 + round % nr;
                let m = 1 + round % mr;
                let mults: Vec<i32> = (0..n).map(|_| MULTS[next() as usize % 6]).collect();
                let shifts: Vec<i32> = (0..n).map(|_| SHIFTS[next() as usize % 7]).collect();
                // (One round in four with the zero point at the clamp's low end and the i8
                // range, RQ_SAT and RQ_NOCORR; the other odd ones RQ_NOCORR alone, mostly.)
                let zp = match round % 4 {
                    3 => -128,
                    _ => (next() % 256) as i32 - 128,
                };
                let col_off: Vec<i32> = (0..nr)
                    .map(|j| {
                        let (mj, e) = (mults[j % n], -shifts[j % n]);
                        // y at a tie of RDBPOT (q·2^e + 2^(e−1)), any small y, or an extreme.
                        let q = (next() % 512) as i64 - 256;
                        let d = (next() % 7) as i64 - 3;
                        match next() % 4 {
                            0 if e > 0 => near(q * (1 << e) + (1 << (e - 1)), mj, d),
                            1 => near(q, mj, d),
                            2 => [(1 << 30) - 1, 1 - (1 << 30), 0, 1, -1][next() as usize % 5],
                            _ => (next() as i32) >> 2,
                        }
                    })
                    .collect();
                let (lo, hi) = if round % 2 == 0 {
                    (-128, 127)
                } else {
                    (zp.max(-128), 127)
                };
                let plan = RqPlan {
                    mults: Mults::PerChannel {
                        multipliers: &mults,
                        shifts: &shifts,
                    },
                    out_zp: zp,
                    lo,
                    hi,
                    no_left_shift: true,
                    zp_fits: crate::quant::requant::zp_fits(zp, *shifts.iter().min().unwrap()),
                    right_shift_only: false,
                    mults_nonneg: true,
                    acc_small: true,
                };
                let fused = Fused::new(&plan).unwrap();
                assert_eq!(fused.flags & RQ_NOCORR != 0, zp <= lo);
                assert_eq!(fused.flags & RQ_SAT != 0, (lo, hi) == (-128, 127));
                let rq = fused.args(0);
                let ldo = nr + 3;
                let mut want = std::vec![0x5au8; (mr + 1) * ldo];
                for i in 0..m {
                    for j in 0..n {
                        want[i * ldo + j] = plan.one(col_off[j], j) as u8;
                    }
                }
                let half = ker.half.filter(|_| 2 * n <= nr);
                for (ukr, which) in [(Some(ker.ukr), "full"), (half, "half")] {
                    let Some(ukr) = ukr else { continue };
                    let mut out = std::vec![0x5au8; (mr + 1) * ldo];
                    let args = QgemmArgs {
                        a: zeros.as_ptr(),
                        b: zeros.as_ptr(),
                        c: out.as_mut_ptr() as *mut i32,
                        k_groups: 0,
                        a_rs: 4,
                        a_ks: 4,
                        b_ks: (4 * nr) as isize,
                        c_rs: ldo as isize,
                        m,
                        n,
                        row_off: zeros.as_ptr() as *const i32,
                        col_off: col_off.as_ptr(),
                        flags: fused.flags,
                        a_segs: 1,
                        a_ss: 0,
                        rq: &rq,
                    };
                    // SAFETY: the CPU runs the kernel (checked); no k groups are read (the
                    // buffers exist anyway); col_off has NR values, the per-channel arrays
                    // n; the output has MR+1 rows of ldo >= NR bytes; the sums are below
                    // 2^30 and the plan fusable (Fused::new).
                    unsafe { ukr(&args) };
                    assert!(
                        out == want,
                        "{} ({which}): m={m} n={n} zp={zp} lo={lo}\nmults={mults:?}\n\
                         shifts={shifts:?}\nx={col_off:?}\n got {out:?}\nwant {want:?}",
                        ker.name
                    );
                }
            }
        }
    }
}
