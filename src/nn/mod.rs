//! The inference runtime (`no_std`, no allocation): the model blob reader ([`Model`]), the
//! interpreter ([`Session`]) and the operators. Formats (TFLite, ONNX), the graph IR, the
//! passes and the blob writer live in [`transform`] (feature `alloc`).
//!
//! Data flows one way: `.tflite` bytes → [`transform`] (import, lower, plan, write) → blob
//! bytes → [`Model::from_bytes`] (validated once) → [`Session`] over the caller's arena →
//! operators in order → outputs.

pub mod blob;
mod dtype;
mod error;
pub(crate) mod ops;
mod session;
#[cfg(feature = "alloc")]
pub mod transform;

pub use blob::{Model, OpView, Shape, Storage, TensorInfo};
pub use dtype::DType;
pub use error::{ModelError, ModelFormat, ShortName, TERSE_REASON};
pub use ops::{
    forms_of, op_set, ALL_FORMS, ALL_OPS, FORM_DIRECT_I16, FORM_DIRECT_PATCHES,
    FORM_DIRECT_PORTABLE, FORM_DW_GENERAL, FORM_DW_M4_APART, FORM_GEMM,
};
pub use session::Session;
