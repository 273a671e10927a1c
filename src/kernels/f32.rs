//! The f32 micro-kernel contract and the table of f32 kernels.
//!
//! A micro-kernel computes one tile `C[m×n] = α·A[m×k]·B[k×n] + β·C` with `m ≤ MR`,
//! `n ≤ NR`, reading A and B through byte strides (see [`SgemmArgs`]). The driver passes
//! packed panels or, on its no-packing paths, the caller's matrices directly.

use crate::arch::Features;

/// Arguments of one micro-kernel call. `#[repr(C)]`: the assembly reads these fields at the
/// offsets asserted below. All strides are in bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct SgemmArgs {
    /// A[i, p] at `a + i*a_rs + p*a_ks`.
    pub a: *const f32,
    /// B[p, j] at `b + p*b_ks + 4*j`: B's columns are always unit-stride.
    pub b: *const f32,
    /// C[i, j] at `c + i*c_rs + 4*j`.
    pub c: *mut f32,
    pub k: usize,
    pub a_rs: isize,
    pub a_ks: isize,
    pub b_ks: isize,
    pub c_rs: isize,
    /// Rows of the tile, `1..=MR`.
    pub m: usize,
    /// Columns of the tile, `1..=NR`. B is read for all NR columns regardless.
    pub n: usize,
    pub alpha: f32,
    /// 0 (either sign) means C is not read.
    pub beta: f32,
    /// Byte offset from the B row being read to the line a kernel may prefetch (the next
    /// micro-panel). A prefetch hint only: kernels may ignore it.
    pub b_pf: isize,
}

// The assembly hard-codes these offsets (ARG_* in asm/*/sgemm_*.S).
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(SgemmArgs, a) == 0);
    assert!(offset_of!(SgemmArgs, b) == 8 || cfg!(target_pointer_width = "32"));
    assert!(offset_of!(SgemmArgs, c) == 16 || cfg!(target_pointer_width = "32"));
    assert!(offset_of!(SgemmArgs, k) == 24 || cfg!(target_pointer_width = "32"));
    assert!(offset_of!(SgemmArgs, a_rs) == 32 || cfg!(target_pointer_width = "32"));
    assert!(offset_of!(SgemmArgs, a_ks) == 40 || cfg!(target_pointer_width = "32"));
    assert!(offset_of!(SgemmArgs, b_ks) == 48 || cfg!(target_pointer_width = "32"));
    assert!(offset_of!(SgemmArgs, c_rs) == 56 || cfg!(target_pointer_width = "32"));
    assert!(offset_of!(SgemmArgs, m) == 64 || cfg!(target_pointer_width = "32"));
    assert!(offset_of!(SgemmArgs, n) == 72 || cfg!(target_pointer_width = "32"));
    assert!(offset_of!(SgemmArgs, alpha) == 80 || cfg!(target_pointer_width = "32"));
    assert!(offset_of!(SgemmArgs, beta) == 84 || cfg!(target_pointer_width = "32"));
    assert!(offset_of!(SgemmArgs, b_pf) == 88 || cfg!(target_pointer_width = "32"));
    // 32-bit targets: every field is 4 bytes, in order.
    assert!(offset_of!(SgemmArgs, beta) == 44 || cfg!(target_pointer_width = "64"));
    assert!(offset_of!(SgemmArgs, b_pf) == 48 || cfg!(target_pointer_width = "64"));
};

/// Arguments of one call of a convolution micro-kernel ([`SconvUkr`]): the product of
/// [`SgemmArgs`] over A read in segments (an implicit-GEMM convolution's filter rows, each
/// where the input row lies), then bias and clamp, C written (never read). `#[repr(C)]`:
/// the assembly reads these fields at the offsets asserted below. Strides in bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct SconvArgs {
    /// A[i, s, p] at `a + i*a_rs + s*a_ss + p*a_ks`.
    pub a: *const f32,
    /// B[q, j] at `b + q*b_ks + 4*j`, q = s·k + p over all segments.
    pub b: *const f32,
    /// C[i, j] at `c + i*c_rs + 4*j`.
    pub c: *mut f32,
    /// Values of each segment.
    pub k: usize,
    pub a_rs: isize,
    pub a_ks: isize,
    pub b_ks: isize,
    pub c_rs: isize,
    /// Rows of the tile, `1..=MR`.
    pub m: usize,
    /// Columns of the tile, `1..=NR`. B is read for all NR columns regardless.
    pub n: usize,
    /// Segments, `1..`.
    pub segs: usize,
    pub a_ss: isize,
    /// n values added to each row of the sums.
    pub bias: *const f32,
    /// As [`SgemmArgs::b_pf`].
    pub b_pf: isize,
    /// The clamp, TFLite's `min(max(v, lo), hi)` (NaN sums stay NaN).
    pub lo: f32,
    pub hi: f32,
}

// The assembly hard-codes these offsets (ARG_* in asm/x86_64/sconv_*.S); 64-bit only.
#[cfg(target_pointer_width = "64")]
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(SconvArgs, k) == 24 && offset_of!(SconvArgs, n) == 72);
    assert!(offset_of!(SconvArgs, segs) == 80 && offset_of!(SconvArgs, a_ss) == 88);
    assert!(offset_of!(SconvArgs, bias) == 96 && offset_of!(SconvArgs, b_pf) == 104);
    assert!(offset_of!(SconvArgs, lo) == 112 && offset_of!(SconvArgs, hi) == 116);
};

/// A convolution micro-kernel: `unsafe extern "C" fn(&SconvArgs)`.
///
/// # Safety (for callers)
/// `1 ≤ m ≤ MR`, `1 ≤ n ≤ NR`, `segs ≥ 1`; rows `0..m` of A must be readable for `segs`
/// segments of `k` values at the given strides, all NR columns of B for `segs·k` rows, and
/// `bias[0..n)`; the m×n tile of C must be writable and must not overlap A, B or the bias.
pub(crate) type SconvUkr = unsafe extern "C" fn(*const SconvArgs);

/// A kernel's convolution variants (same MR and NR).
pub(crate) struct ConvUkrs {
    pub full: SconvUkr,
    /// For tiles of `n ≤ NR/2`, reading NR/2 columns of B (as [`SgemmKernel::half`]).
    pub half: SconvUkr,
    /// For tiles of `n ≤ 3·NR/4`, reading 3·NR/4 columns of B, if the kernel has it (at
    /// about three quarters of the full tile's work).
    pub three_quarter: Option<SconvUkr>,
}

/// A micro-kernel: `unsafe extern "C" fn(&SgemmArgs)`.
///
/// # Safety (for callers)
/// `1 ≤ m ≤ MR`, `1 ≤ n ≤ NR`; rows `0..m` of A and all NR columns of B must be readable for
/// `k` steps at the given strides; the m×n tile of C must be writable (and readable unless
/// β = 0) and must not overlap A or B.
pub(crate) type SgemmUkr = unsafe extern "C" fn(*const SgemmArgs);

/// y = α·xᵀB + β·y for one row vector x (m = 1), over contiguous x and y.
///
/// `cols == false`: B[p, j] at `b + p*ldb + j` (rows contiguous, streamed row by row).
/// `cols == true`:  B[p, j] at `b + p + j*ldb` (columns contiguous, one dot product each).
/// β = 0 never reads y.
///
/// # Safety (for callers)
/// x has k readable elements, y n writable ones (readable unless β = 0), and B every
/// element of its k×n extent readable; y overlaps neither.
pub(crate) type GemvFn = unsafe fn(
    k: usize,
    n: usize,
    alpha: f32,
    x: *const f32,
    b: *const f32,
    ldb: isize,
    cols: bool,
    beta: f32,
    y: *mut f32,
);

/// One entry of the f32 kernel table.
pub(crate) struct SgemmKernel {
    pub name: &'static str,
    /// What the CPU must have, and how to say it.
    pub requires: Features,
    pub isa: &'static str,
    pub mr: usize,
    pub nr: usize,
    pub ukr: SgemmUkr,
    /// Its half-width variant, if it has one: the same contract for tiles of `n ≤ NR/2`
    /// columns, reading only NR/2 columns of B (so a B of NR/2 columns can be read in
    /// place), at about half the work of the full tile.
    pub half: Option<SgemmUkr>,
    /// The m = 1 path that goes with this kernel (same ISA).
    pub gemv: GemvFn,
    /// Its convolution variants, if it has them (else `conv_rows` calls `ukr` once per
    /// filter row and adds bias and clamp after).
    pub conv: Option<ConvUkrs>,
}

/// Every f32 kernel compiled in, best first: selection takes the first one the CPU runs.
pub(crate) static SGEMM_KERNELS: &[SgemmKernel] = &[
    #[cfg(all(target_arch = "x86_64", edgemm_asm))]
    SgemmKernel {
        name: "sgemm_avx512f_14x32",
        // (VL: the three-quarter convolution variant's ymm16-31 and masked ymm.)
        requires: Features::AVX512F
            .with(Features::AVX512VL)
            .with(Features::AVX2)
            .with(Features::FMA),
        isa: "avx512f",
        mr: 14,
        nr: 32,
        ukr: super::x86_64::sgemm_avx512f_14x32,
        half: Some(super::x86_64::sgemm_avx512f_14x16),
        gemv: super::x86_64::sgemv_avx2_fma,
        conv: Some(ConvUkrs {
            full: super::x86_64::sconv_avx512f_14x32,
            half: super::x86_64::sconv_avx512f_14x16,
            three_quarter: Some(super::x86_64::sconv_avx512f_14x24),
        }),
    },
    #[cfg(all(target_arch = "x86_64", edgemm_asm))]
    SgemmKernel {
        name: "sgemm_avx2_fma_6x16",
        requires: Features::AVX2.with(Features::FMA),
        isa: "avx2+fma",
        mr: 6,
        nr: 16,
        ukr: super::x86_64::sgemm_avx2_fma_6x16,
        half: None,
        gemv: super::x86_64::sgemv_avx2_fma,
        conv: None,
    },
    #[cfg(all(target_arch = "aarch64", edgemm_asm))]
    SgemmKernel {
        name: "sgemm_neon_8x12",
        requires: Features::NEON,
        isa: "neon",
        mr: 8,
        nr: 12,
        ukr: super::aarch64::sgemm_neon_8x12,
        half: None,
        gemv: super::aarch64::sgemv_neon,
        conv: None,
    },
    // Cortex-M4F (FPv4-SP) and later M-profile FPUs; chosen at compile time from the target.
    #[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4))]
    SgemmKernel {
        name: "sgemm_vfp4_4x4",
        requires: Features::VFP4,
        isa: "fpv4-sp",
        mr: 4,
        nr: 4,
        ukr: super::arm::sgemm_vfp4_4x4,
        half: None,
        gemv: super::generic::sgemv_generic,
        conv: None,
    },
    SgemmKernel {
        name: "sgemm_generic_4x8",
        requires: Features::NONE,
        isa: "portable",
        mr: 4,
        nr: 8,
        ukr: super::generic::sgemm_generic_4x8,
        half: None,
        gemv: super::generic::sgemv_generic,
        conv: None,
    },
];

/// The largest MR and NR of any f32 kernel (sizes stack scratch tiles).
pub(crate) const MAX_MR: usize = 16;
pub(crate) const MAX_NR: usize = 32;

#[cfg(test)]
mod tests {
    #[test]
    fn tiles_fit_the_scratch_tile() {
        for k in super::SGEMM_KERNELS {
            assert!(k.mr <= super::MAX_MR && k.nr <= super::MAX_NR, "{}", k.name);
        }
    }
}
