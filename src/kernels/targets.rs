//! Conversion targets: the int8 and f32 GEMM kernels of every build, as data (names, packing
//! formats, tiles; no code), so a model converted on one machine can have its int8 weights
//! packed, and its GEMM scratch sized, for another (`edgemm convert --target cortex-m4` on an
//! x86 host), and so a build can refuse, by name, a blob packed for a target it does not run.
//!
//! A blob records its packing by target name (`docs/blob-format.md`, header `packing_off`):
//! `portable` (plain int8 weights, scratch sized for every build), or the target of the
//! kernel its weights were packed for (the `target` of a [`QShape`]).

use super::int8::QFormat;

/// An int8 kernel of some build: its name (as [`super::int8::QGEMM_KERNELS`] has it where it
/// is compiled in), the packing target its weights are recorded under, its format and tile.
#[derive(Debug)]
pub(crate) struct QShape {
    pub name: &'static str,
    pub target: &'static str,
    pub format: QFormat,
    pub mr: usize,
    pub nr: usize,
}

/// Every int8 kernel of any build (the union of `QGEMM_KERNELS` over all targets).
pub(crate) static QGEMM_SHAPES: &[QShape] = &[
    QShape {
        name: "qgemm_u8i8_avx512vnni_14x32",
        target: "x86_64-avx512-vnni",
        format: QFormat::U8x4,
        mr: 14,
        nr: 32,
    },
    QShape {
        name: "qgemm_i16_avx2_6x16",
        target: "x86_64-avx2",
        format: QFormat::I16x2,
        mr: 6,
        nr: 16,
    },
    QShape {
        name: "qgemm_s16_m4dsp_16x4",
        target: CORTEX_M4.name,
        format: QFormat::I16x2,
        mr: 16,
        nr: 4,
    },
    QShape {
        name: "qgemm_i8_neon_i8mm_8x12",
        target: "aarch64-neon-i8mm",
        format: QFormat::I8x8,
        mr: 8,
        nr: 12,
    },
    QShape {
        name: "qgemm_i8_neon_dot_8x12",
        target: "aarch64-neon-dot",
        format: QFormat::I8x4,
        mr: 8,
        nr: 12,
    },
    QShape {
        name: "qgemm_i8_neon_6x8",
        target: "aarch64-neon",
        format: QFormat::I8x4,
        mr: 6,
        nr: 8,
    },
    QShape {
        name: "qgemm_i16_generic_4x8",
        target: "generic",
        format: QFormat::I16x2,
        mr: 4,
        nr: 8,
    },
];

/// The widest f32 tile (NR) of any build (`sgemm_avx512f_14x32`).
pub(crate) const SGEMM_MAX_NR_ANY: usize = 32;

/// The int8 kernel of any build with this name.
pub(crate) fn qshape(name: &str) -> Option<&'static QShape> {
    QGEMM_SHAPES.iter().find(|s| s.name == name)
}

/// A build that models are converted for on another machine.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TargetDef {
    /// The packing name recorded in its blobs.
    pub name: &'static str,
    /// The int8 kernels its build compiles in, best first: weights are packed for the first;
    /// GEMM scratch is sized for the largest need of any of them (what its runtime checks).
    pub qgemm: &'static [&'static str],
    /// The widest f32 tile of its build.
    pub sgemm_nr: usize,
}

/// A Cortex-M4F (thumbv7em-none-eabihf, DSP extension): `smlad` kernel and the portable one;
/// f32 `sgemm_vfp4_4x4` and `sgemm_generic_4x8`.
pub(crate) static CORTEX_M4: TargetDef = TargetDef {
    name: "cortex-m4-dsp",
    qgemm: &["qgemm_s16_m4dsp_16x4", "qgemm_i16_generic_4x8"],
    sgemm_nr: 8,
};

/// The kernels a blob's GEMM scratch is sized for (and its int8 weights packed for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Without `alloc` (no lowering) only this build's kernels are asked about.
#[cfg_attr(not(feature = "alloc"), allow(dead_code))]
pub(crate) enum Kernels {
    /// This build's (what its runtime checks require).
    Build,
    /// Another build's.
    Target(&'static TargetDef),
    /// Every build's: portable blobs run anywhere.
    Any,
}

/// The packing targets this build's int8 kernels read, best first: the cfg conditions of
/// `QGEMM_KERNELS` as data, so asking links no kernel (a test checks they agree).
pub(crate) const BUILD_TARGETS: &[&str] = &[
    #[cfg(all(target_arch = "x86_64", edgemm_asm))]
    "x86_64-avx512-vnni",
    #[cfg(all(target_arch = "x86_64", edgemm_asm))]
    "x86_64-avx2",
    #[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp))]
    "cortex-m4-dsp",
    #[cfg(all(target_arch = "aarch64", edgemm_asm))]
    "aarch64-neon-i8mm",
    #[cfg(all(target_arch = "aarch64", edgemm_asm))]
    "aarch64-neon-dot",
    #[cfg(all(target_arch = "aarch64", edgemm_asm))]
    "aarch64-neon",
    "generic",
];

/// Every packing name a blob may record, as a `'static` string (for errors), or `None`.
pub(crate) fn known_target(name: &str) -> Option<&'static str> {
    if name == "portable" {
        return Some("portable");
    }
    QGEMM_SHAPES.iter().map(|s| s.target).find(|&t| t == name)
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::kernels::f32::SGEMM_KERNELS;
    use crate::kernels::int8::QGEMM_KERNELS;

    /// The data here describes the kernel tables of this build exactly.
    #[test]
    fn shapes_and_build_targets_match_the_kernel_tables() {
        let mut targets = std::vec::Vec::new();
        for k in QGEMM_KERNELS {
            let s = qshape(k.name).unwrap_or_else(|| panic!("{} has no QShape", k.name));
            assert_eq!((s.format, s.mr, s.nr), (k.format, k.mr, k.nr), "{}", k.name);
            targets.push(s.target);
        }
        assert_eq!(targets, BUILD_TARGETS);
        assert!(SGEMM_KERNELS.iter().all(|k| k.nr <= SGEMM_MAX_NR_ANY));
        for name in CORTEX_M4.qgemm {
            assert!(qshape(name).is_some(), "{name}");
        }
        assert_eq!(qshape(CORTEX_M4.qgemm[0]).unwrap().target, CORTEX_M4.name);
    }
}
