//! Arm M-profile (Thumb-2) kernels: the assembly in `asm/thumbv7em/`, assembled by build.rs
//! for ARMv7E-M class targets (`cfg(edgemm_asm)`), and listed in the kernel table when the
//! target has what they need (`cfg(edgemm_arm_vfp4)`: an FPU with `vfma.f32`;
//! `cfg(edgemm_arm_dsp)`: the DSP extension's `smlad`).

#[cfg(edgemm_arm_vfp4)]
use super::f32::SgemmArgs;
#[cfg(edgemm_arm_dsp)]
use super::int8::QgemmArgs;

#[cfg_attr(not(any(edgemm_arm_vfp4, edgemm_arm_dsp)), allow(unused_macros))]
macro_rules! asm_kernels {
    ($($name:ident: $args:ty),* $(,)?) => {
        extern "C" {
            $(
                #[link_name = concat!(
                    "edgemm_", env!("CARGO_PKG_VERSION_MAJOR"), "_",
                    env!("CARGO_PKG_VERSION_MINOR"), "_", env!("CARGO_PKG_VERSION_PATCH"),
                    "_", stringify!($name)
                )]
                pub(crate) fn $name(args: *const $args);
            )*
        }
    };
}

#[cfg(edgemm_arm_vfp4)]
asm_kernels!(sgemm_vfp4_4x4: SgemmArgs);
#[cfg(edgemm_arm_dsp)]
asm_kernels!(qgemm_s16_m4dsp_16x4: QgemmArgs);
