//! Model formats, the graph IR and the passes that end in a blob (feature `alloc`).
//!
//! `.tflite` bytes → [`import`] (or `.onnx` bytes → [`onnx`]) → [`ir::Graph`] → [`lower`] (an
//! operator per node, weights laid out) → [`plan`] (arena offsets) → [`blob_writer`] → blob
//! bytes. [`host`] runs that chain in memory to load a model on the host.

pub mod blob_writer;
pub mod host;
pub mod import;
pub mod ir;
pub mod lower;
pub mod onnx;
pub mod plan;
pub mod tflite;

pub use host::{LoadedModel, Runner};
pub use lower::Packing;
