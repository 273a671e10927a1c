//! edgemm: fast GEMM for CPUs from server cores down to microcontrollers.
//!
//! - [`sgemm`]: C ← αAB + βC in f32 for any strides, packed and cache-blocked around
//!   assembly micro-kernels (AVX-512, AVX2+FMA; a portable kernel everywhere), with an
//!   unpacked path for small and vector-shaped products and threads ([`Par`]).
//! - [`PackedB`] / [`sgemm_packed`]: a right-hand operand packed once and reused.
//! - [`qgemm`] / [`qgemm_requantize`]: exact int8 GEMM with zero points, and TFLite-exact
//!   requantized i8/u8 output, per tensor or per channel; [`PackedQB`] for weights.
//!   Without allocation: [`qgemm_with_workspace`], [`qgemm_requantize_with_workspace`], and
//!   weights packed into caller memory or read in place from flash ([`PackedQBRef`],
//!   [`qgemm_requantize_packed_with_workspace`]), all sized by `const fn`s.
//! - [`kernels`]: every micro-kernel compiled in, which ones this CPU runs, which is used.
//! - [`conv`] (feature `alloc`): NHWC convolution on top of the GEMM: im2col, 1×1 as GEMM,
//!   depthwise, Winograd F(2,3)/F(4,3)/F(6,3), with a prepared-layer object.
//!
//! Views ([`MatRef`], [`MatMut`]) are validated once when built; bad input returns an
//! [`Error`] that says what was wrong and never panics.
//!
//! `no_std`: the crate builds without its default `std` feature (kernels are then chosen at
//! compile time from `target_feature`); `alloc` adds packing buffers and [`PackedB`].
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod arch;
#[cfg(feature = "alloc")]
pub mod conv;
mod error;
mod gemm;
mod kernels;
mod matrix;
mod par;
mod quant;
pub mod reference;
mod scratch;
mod threads;

pub use arch::{cpu_info, CpuInfo, Features};
pub use error::{Error, KernelName, Operand};
pub use gemm::{
    sgemm, sgemm_raw, sgemm_with_kernel, sgemm_with_kernel_and_workspace, sgemm_with_workspace,
    sgemm_workspace_size,
};
#[cfg(feature = "alloc")]
pub use gemm::{sgemm_packed, PackedB};
pub use kernels::{kernels, Kernel, KernelInfo, KernelKind};
pub use matrix::{MatMut, MatRef};
pub use par::Par;
pub use quant::{
    max_exact_k, qgemm_packed_b_size, qgemm_packed_with_workspace, qgemm_packed_workspace_size,
    qgemm_requantize_packed_with_workspace, qgemm_requantize_with_kernel_and_workspace,
    qgemm_requantize_with_workspace, qgemm_with_kernel_and_workspace, qgemm_with_workspace,
    qgemm_workspace_size, quantize_multiplier, PackedQBRef, QuantInput, QuantOutput, Requantize,
    Scale,
};
#[cfg(feature = "alloc")]
pub use quant::{
    qgemm, qgemm_packed, qgemm_requantize, qgemm_requantize_packed, qgemm_requantize_with_kernel,
    qgemm_with_kernel, PackedQB,
};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
