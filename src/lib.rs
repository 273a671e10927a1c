//! edgemm: fast GEMM for CPUs from server cores down to microcontrollers.
//!
//! - [`sgemm`]: C ← αAB + βC in f32 for any strides, packed and cache-blocked around
//!   assembly micro-kernels (AVX-512, AVX2+FMA, NEON; a portable kernel everywhere), with
//!   an unpacked path for small and vector-shaped products; B a view or packed once
//!   ([`PackedB`]).
//! - [`qgemm`]: exact int8 GEMM with zero points, raw i32 or TFLite-exact requantized
//!   i8/u8 output ([`Requantized`]), per tensor or per channel; weights packed once
//!   ([`PackedQB`], or [`PackedQBRef`] in caller memory or flash).
//! - [`Context`]: how a call runs: threads ([`Par`]), a forced kernel, and the caller's
//!   workspace for calls that must not allocate (sized by `const fn`s such as
//!   [`sgemm_workspace_size`] and [`qgemm_workspace_size`]). A `Par` alone is a context.
//! - [`kernels`]: every micro-kernel compiled in, which ones this CPU runs, which is used.
//! - [`conv`] (feature `alloc`): NHWC convolution on top of the GEMM: im2col, 1×1 as GEMM,
//!   depthwise, Winograd F(2,3)/F(4,3)/F(6,3), with a prepared-layer object.
//! - [`audio`]: the keyword-spotting frontend (16 kHz PCM → MFCCs as `tf.signal` computes
//!   them, `no_std`, no alloc) and a WAV reader; with `alloc`, a WAV loader that converts any
//!   PCM format, channel count and sample rate.
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
pub mod audio;
mod context;
#[cfg(feature = "alloc")]
pub mod conv;
mod error;
mod gemm;
mod kernels;
mod matrix;
pub mod nn;
mod par;
mod quant;
pub mod reference;
mod scratch;
mod threads;

pub use arch::{cpu_info, CpuInfo, Features};
pub use context::Context;
pub use error::{Error, KernelName, Operand};
#[cfg(feature = "alloc")]
pub use gemm::PackedB;
pub use gemm::{sgemm, sgemm_raw, sgemm_workspace_size, SgemmB};
pub use kernels::{kernels, Kernel, KernelInfo, KernelKind};
pub use matrix::{MatMut, MatRef};
pub use par::Par;
#[cfg(feature = "alloc")]
pub use quant::PackedQB;
pub use quant::{
    max_exact_k, qgemm, qgemm_packed_b_size, qgemm_packed_workspace_size, qgemm_workspace_size,
    quantize_multiplier, PackedQBRef, QgemmB, QgemmC, QuantInput, QuantOutput, Requantize,
    Requantized, Scale,
};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
