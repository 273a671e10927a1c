//! Model formats, the graph IR and the passes that end in a blob (feature `alloc`).
//!
//! `.tflite` bytes → [`import`] (or `.onnx` bytes → [`onnx`]) → [`ir::Graph`] → [`passes`]
//! (graph rewrites, a pipeline of named passes) → [`lower`] (an operator per node, weights
//! laid out) → [`plan`] (arena offsets) → [`blob_writer`] → blob bytes. [`host`] runs that
//! chain in memory to load a model on the host.

pub mod blob_writer;
pub mod convert;
pub mod expand_depthwise;
pub mod host;
pub mod import;
pub mod ir;
pub mod lower;
pub mod onnx;
pub mod passes;
pub mod plan;
pub mod tflite;

pub use convert::{convert_graph, convert_tflite, Converted};
pub use host::{LoadedModel, Runner};
pub use lower::Packing;
