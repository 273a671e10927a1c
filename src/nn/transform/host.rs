//! Loading and running a model on the host: a `.tflite` or `.onnx` file or a blob in, a
//! validated model in an aligned buffer it owns, sessions with their own arenas. One run
//! path: a model file is imported, lowered, planned and written as a blob in memory, then
//! run like any blob.

use alloc::vec;
use alloc::vec::Vec;

use super::blob_writer::{write_blob, WriteOptions};
use super::import::import_tflite;
use super::ir::Graph;
use super::lower::{lower, Packing};
use super::onnx::{import_onnx, is_onnx, OnnxOptions};
use super::passes::{Pipeline, DEFAULT_PIPELINE};
use super::plan::plan;
use crate::error::Error;
use crate::nn::blob::{blob_err, Model, MAGIC};
use crate::nn::dtype::DType;
use crate::nn::session::Session;

/// 64 bytes, 64-byte aligned: the unit of the blob and arena buffers. The blob only needs
/// 16-byte alignment, but constants and arena tensors are laid out from the buffer's start,
/// and a 64-byte start keeps a tensor at a 64-byte offset on whole cache lines: a 512-bit
/// load (AVX-512) then never splits two lines (measured: the f32 depthwise layers of the KWS
/// DS-CNN ran 1.3× slower from a 16-byte-only aligned arena on Zen 4).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A model blob in a 64-byte aligned buffer ([`Line`]), validated.
#[derive(Clone)]
pub struct LoadedModel {
    words: Vec<Line>,
    len: usize,
    /// False when read by [`LoadedModel::for_inspection`].
    runnable: bool,
}

impl core::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "LoadedModel({:?})", self.model())
    }
}

/// The file kinds [`LoadedModel::load`] recognises by their first bytes.
pub fn is_blob(bytes: &[u8]) -> bool {
    bytes.get(..4) == Some(&MAGIC[..])
}

/// A TFLite flatbuffer (file identifier `TFL3` at bytes 4..8).
pub fn is_tflite(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(&b"TFL3"[..])
}

impl LoadedModel {
    /// A blob (copied into an aligned buffer), a `.tflite` or an `.onnx` (converted with
    /// weights packed for this machine; ONNX with [`OnnxOptions::default`]), told apart by
    /// their first bytes.
    pub fn load(bytes: &[u8]) -> Result<Self, Error> {
        if is_blob(bytes) {
            Self::from_blob(bytes)
        } else if is_tflite(bytes) {
            Self::from_tflite(bytes, Packing::Host)
        } else if is_onnx(bytes) {
            Self::from_onnx(bytes, &OnnxOptions::default(), Packing::Host)
        } else {
            Err(blob_err(
                "neither an edgemm blob (\"EGMB\"), a TFLite model (\"TFL3\") nor an ONNX model",
            ))
        }
    }

    /// Copies and validates a blob.
    pub fn from_blob(bytes: &[u8]) -> Result<Self, Error> {
        let m = Self::copy(bytes, true);
        Model::from_bytes(m.bytes())?;
        Ok(m)
    }

    /// Copies a blob and reads it only to describe it ([`Model::for_inspection`]): a blob
    /// packed for another target loads; its runner refuses to run it.
    pub fn for_inspection(bytes: &[u8]) -> Result<Self, Error> {
        let m = Self::copy(bytes, false);
        Model::for_inspection(m.bytes())?;
        Ok(m)
    }

    fn copy(bytes: &[u8], runnable: bool) -> Self {
        let mut words = vec![Line([0; 64]); bytes.len().div_ceil(64)];
        // SAFETY: viewing the `Line` buffer as its bytes (no alignment or validity needs).
        let dst = unsafe {
            core::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, words.len() * 64)
        };
        dst[..bytes.len()].copy_from_slice(bytes);
        LoadedModel {
            words,
            len: bytes.len(),
            runnable,
        }
    }

    /// Imports, lowers and plans a `.tflite` model.
    pub fn from_tflite(bytes: &[u8], packing: Packing) -> Result<Self, Error> {
        Self::from_graph(&import_tflite(bytes)?, packing)
    }

    /// Imports (see [`super::onnx`]) an `.onnx` model, runs the default pipeline's graph
    /// passes (the importer leaves batch norms and MatMul biases to `fold_batch_norms`), lowers
    /// and plans it.
    pub fn from_onnx(bytes: &[u8], opts: &OnnxOptions, packing: Packing) -> Result<Self, Error> {
        let mut g = import_onnx(bytes, opts)?;
        Pipeline::parse(DEFAULT_PIPELINE)?.run(&mut g, |_, _, _, _| {})?;
        Self::from_graph(&g, packing)
    }

    /// Lowers and plans a graph.
    pub fn from_graph(g: &Graph, packing: Packing) -> Result<Self, Error> {
        let l = lower(g, packing)?;
        let p = plan(&l);
        Self::from_blob(&write_blob(&l, &p, WriteOptions::default())?)
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the `Line` buffer viewed as bytes; `len` is within it.
        unsafe { core::slice::from_raw_parts(self.words.as_ptr() as *const u8, self.len) }
    }

    /// The model (validated when loaded; this re-reads only its header).
    pub fn model(&self) -> Model<'_> {
        Model::validated(self.bytes(), self.runnable)
    }

    /// The blob bytes (to save with `edgemm convert`).
    pub fn blob(&self) -> &[u8] {
        self.bytes()
    }

    /// A runner with its own arena.
    pub fn runner(&self) -> Runner<'_> {
        let model = self.model();
        let arena = vec![Line([0; 64]); model.arena_size().div_ceil(64)];
        let plans = crate::nn::ops::plans(&model, arena.len() * 64);
        Runner {
            model,
            arena,
            plans,
            threads: 1,
        }
    }
}

/// A model with an arena of its own: write inputs, run, read outputs.
#[derive(Debug)]
pub struct Runner<'m> {
    model: Model<'m>,
    arena: Vec<Line>,
    /// The operators' plans for this arena, made once: a run allocates nothing.
    plans: Vec<crate::nn::ops::Plan<'m>>,
    threads: usize,
}

impl<'m> Runner<'m> {
    /// A session over this runner's arena.
    pub fn session(&mut self) -> Result<Session<'m, '_>, Error> {
        // SAFETY: the `Line` buffer viewed as bytes (64-byte aligned, more than the 16 the
        // session needs).
        let bytes = unsafe {
            core::slice::from_raw_parts_mut(
                self.arena.as_mut_ptr() as *mut u8,
                self.arena.len() * 64,
            )
        };
        let mut s = Session::with_plans(self.model, bytes, &self.plans)?;
        s.set_threads(self.threads);
        Ok(s)
    }

    /// Runs on up to `n` threads (see [`Session::set_threads`]; default 1).
    pub fn set_threads(&mut self, n: usize) {
        self.threads = n.max(1);
    }

    pub fn model(&self) -> &Model<'m> {
        &self.model
    }

    /// Writes input `i` from raw little-endian bytes of its own type.
    pub fn set_input(&mut self, i: usize, bytes: &[u8]) -> Result<(), Error> {
        self.session()?.set_input(i, bytes)
    }

    /// Writes input `i` from f32 values, quantized for an integer input (TFLite's
    /// `real / scale + zero_point`, rounded half away from zero, saturated).
    pub fn set_input_f32(&mut self, i: usize, values: &[f32]) -> Result<(), Error> {
        let t = self
            .model
            .input(i)
            .ok_or_else(|| blob_err("no such model input"))?;
        let info = self
            .model
            .tensor(t)
            .ok_or_else(|| blob_err("no such model input"))?;
        if values.len() != info.elems() {
            return Err(crate::nn::session::input_size_error(
                i,
                t,
                info.name,
                info.elems(),
                values.len(),
                "model input {} takes {} values, {} were given",
            ));
        }
        let (scale, zp) = info.quant.unwrap_or((1.0, 0));
        let q = |v: f32, lo: i64, hi: i64| {
            (super::lower::round_half_away(f64::from(v / scale)) + zp as i64).clamp(lo, hi)
        };
        let bytes: Vec<u8> = match info.dtype {
            DType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DType::I8 => values
                .iter()
                .map(|&v| q(v, -128, 127) as i8 as u8)
                .collect(),
            DType::U8 => values.iter().map(|&v| q(v, 0, 255) as u8).collect(),
            DType::I16 => values
                .iter()
                .flat_map(|&v| (q(v, -32768, 32767) as i16).to_le_bytes())
                .collect(),
            _ => return Err(blob_err("this input type cannot be set from f32")),
        };
        self.set_input(i, &bytes)
    }

    pub fn run(&mut self) -> Result<(), Error> {
        self.session()?.run()
    }

    /// Output `i` as raw bytes.
    pub fn output(&mut self, i: usize) -> Result<Vec<u8>, Error> {
        Ok(self.session()?.output(i)?.to_vec())
    }

    /// Output `i` as f32 (dequantized for integer outputs).
    pub fn output_f32(&mut self, i: usize) -> Result<Vec<f32>, Error> {
        let info = self
            .model
            .output(i)
            .and_then(|t| self.model.tensor(t))
            .ok_or_else(|| blob_err("no such model output"))?;
        let bytes = self.output(i)?;
        let (scale, zp) = info.quant.unwrap_or((1.0, 0));
        let dq = |q: i32| scale * (q - zp) as f32;
        Ok(match info.dtype {
            DType::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::I8 => bytes.iter().map(|&b| dq(b as i8 as i32)).collect(),
            DType::U8 => bytes.iter().map(|&b| dq(b as i32)).collect(),
            DType::I16 => bytes
                .chunks_exact(2)
                .map(|c| dq(i16::from_le_bytes([c[0], c[1]]) as i32))
                .collect(),
            DType::I32 => bytes
                .chunks_exact(4)
                .map(|c| dq(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            _ => return Err(blob_err("this output type cannot be read as f32")),
        })
    }
}
