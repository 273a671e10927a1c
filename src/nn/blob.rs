//! The model blob: one little-endian byte layout, read in place (from flash on a
//! microcontroller) and validated once by [`Model::from_bytes`]. `docs/blob-format.md`
//! documents it field by field; the constants here are that document in code, shared with
//! the writer (`transform::blob_writer`).

use super::dtype::DType;
use super::error::{ModelError, ModelFormat};
use super::ops;
use crate::error::Error;
use crate::kernels::targets::{known_target, BUILD_TARGETS};

pub(crate) const MAGIC: [u8; 4] = *b"EGMB";
/// The layout version this build reads and writes.
pub const VERSION: u32 = 1;
/// Bytes of the header.
pub(crate) const HEADER: usize = 64;
/// Bytes of a tensor record.
pub(crate) const TENSOR_REC: usize = 48;
/// Bytes of an operator record.
pub(crate) const OP_REC: usize = 20;
/// The most dimensions a tensor has.
pub const MAX_RANK: usize = 6;
/// Alignment of constant data (relative to the blob's start, which must be as aligned) and of
/// arena offsets.
pub const ALIGN: usize = 16;
/// An absent optional operator input.
pub(crate) const NO_TENSOR: u32 = u32::MAX;

// Header fields (u32, by byte offset).
pub(crate) const H_VERSION: usize = 4;
pub(crate) const H_TOTAL: usize = 8;
pub(crate) const H_CRC: usize = 12;
pub(crate) const H_ARENA: usize = 16;
pub(crate) const H_FLAGS: usize = 20;
pub(crate) const H_N_TENSORS: usize = 24;
pub(crate) const H_TENSORS: usize = 28;
pub(crate) const H_N_OPS: usize = 32;
pub(crate) const H_OPS: usize = 36;
pub(crate) const H_N_INPUTS: usize = 40;
pub(crate) const H_INPUTS: usize = 44;
pub(crate) const H_N_OUTPUTS: usize = 48;
pub(crate) const H_OUTPUTS: usize = 52;
pub(crate) const H_PACKING: usize = 56;
pub(crate) const H_BASELINE: usize = 60;

// Tensor record fields (by byte offset).
pub(crate) const T_DTYPE: usize = 0;
pub(crate) const T_RANK: usize = 1;
pub(crate) const T_STORAGE: usize = 2;
pub(crate) const T_QUANT: usize = 3;
pub(crate) const T_DIMS: usize = 4;
pub(crate) const T_BYTES: usize = 28;
pub(crate) const T_OFFSET: usize = 32;
pub(crate) const T_SCALE: usize = 36;
pub(crate) const T_ZERO_POINT: usize = 40;
pub(crate) const T_NAME: usize = 44;

/// Where a tensor's bytes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// In the caller's arena, at an offset the memory plan chose.
    Arena,
    /// In the blob (weights and other constants).
    Constant,
}

pub(crate) const STORAGE_ARENA: u8 = 1;
pub(crate) const STORAGE_CONST: u8 = 2;

// Operator record fields (by byte offset).
pub(crate) const O_CODE: usize = 0;
pub(crate) const O_N_IN: usize = 2;
pub(crate) const O_N_OUT: usize = 3;
pub(crate) const O_N_TMP: usize = 4;
pub(crate) const O_IO: usize = 8;
pub(crate) const O_PARAMS: usize = 12;
pub(crate) const O_PARAMS_LEN: usize = 16;

/// Little-endian u32 at `at`, 0 past the end (callers check ranges before trusting values).
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    match b.get(at..at.wrapping_add(4)) {
        Some(w) => u32::from_le_bytes([w[0], w[1], w[2], w[3]]),
        None => 0,
    }
}

/// Whether `s` is valid UTF-8, as `core::str::from_utf8` decides (no overlong forms, no
/// surrogates, nothing above U+10FFFF), in a short loop: core's check is fast but costs
/// ~0.5 KB of flash, and a blob's few short names need no speed.
fn is_utf8(s: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        // Continuation bytes, the smallest value this length may encode, the lead's bits.
        let (n, min, mut c) = match b {
            0x00..=0x7f => (0, 0, u32::from(b)),
            0xc0..=0xdf => (1, 0x80, u32::from(b & 0x1f)),
            0xe0..=0xef => (2, 0x800, u32::from(b & 0x0f)),
            0xf0..=0xf7 => (3, 0x1_0000, u32::from(b & 0x07)),
            _ => return false,
        };
        for k in 1..=n {
            match s.get(i + k) {
                Some(&t) if t & 0xc0 == 0x80 => c = c << 6 | u32::from(t & 0x3f),
                _ => return false,
            }
        }
        // `from_u32` refuses surrogates and values above U+10FFFF.
        if c < min || char::from_u32(c).is_none() {
            return false;
        }
        i += n + 1;
    }
    true
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    match b.get(at..at.wrapping_add(2)) {
        Some(w) => u16::from_le_bytes([w[0], w[1]]),
        None => 0,
    }
}

fn u8_at(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`), four bits at a time: a 64-byte table
/// (a byte-wide one would be 1 KiB of a firmware's flash, for a check run once at load).
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 16] = {
        let mut t = [0u32; 16];
        let mut i = 0;
        while i < 16 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 4 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    // One byte's step out of line on Arm: LLVM's Arm cost model unrolls no loop that calls,
    // so the firmware links one step (it runs once, at load) instead of an 8-fold unrolled
    // copy (~300 B of flash).
    #[cfg_attr(target_arch = "arm", inline(never))]
    fn step(c: u32, b: u8) -> u32 {
        let c = c ^ b as u32;
        let c = TABLE[(c & 15) as usize] ^ (c >> 4);
        TABLE[(c & 15) as usize] ^ (c >> 4)
    }
    let mut c = !0u32;
    for &b in bytes {
        c = step(c, b);
    }
    !c
}

/// An error about the tensor or operator record at byte `rec` (cold and out of line, as
/// [`OpView::error`]).
#[cfg(not(feature = "terse-errors"))]
#[cold]
#[inline(never)]
fn record_err(reason: &'static str, tensor: Option<usize>, op: Option<usize>, rec: usize) -> Error {
    record_err_in(ModelError::new(ModelFormat::Blob, reason), tensor, op, rec)
}

/// (With the feature `terse-errors`: the reason dropped at the call site, so its text is not
/// linked.)
#[cfg(feature = "terse-errors")]
#[inline(always)]
fn record_err(reason: &'static str, tensor: Option<usize>, op: Option<usize>, rec: usize) -> Error {
    let _ = reason;
    record_err_in(ModelError::new(ModelFormat::Blob, ""), tensor, op, rec)
}

#[cold]
#[inline(never)]
fn record_err_in(e: ModelError, tensor: Option<usize>, op: Option<usize>, rec: usize) -> Error {
    let mut e = e.with_offset(rec);
    if let Some(t) = tensor {
        e = e.with_tensor(t);
    }
    if let Some(i) = op {
        e = e.with_operator(i);
    }
    Error::Model(e)
}

/// The operator name an error about `code` carries: none with `terse-errors`, whose errors
/// drop names (so the name lookup is not linked).
fn error_name(code: u16) -> &'static str {
    if cfg!(feature = "terse-errors") {
        ""
    } else {
        ops::name(code)
    }
}

/// (Cold and out of line, as [`OpView::error`].)
#[cfg(not(feature = "terse-errors"))]
#[cold]
#[inline(never)]
pub(crate) fn blob_err(reason: &'static str) -> Error {
    Error::Model(ModelError::new(ModelFormat::Blob, reason))
}

/// (With the feature `terse-errors`: the reason dropped at the call site, so its text is not
/// linked.)
#[cfg(feature = "terse-errors")]
#[inline(always)]
pub(crate) fn blob_err(reason: &'static str) -> Error {
    let _ = reason;
    terse_err(None)
}

/// The error of a `terse-errors` build: the blob's, or operator `op`'s.
#[cfg(feature = "terse-errors")]
#[cold]
#[inline(never)]
pub(crate) fn terse_err(op: Option<usize>) -> Error {
    let e = ModelError::new(ModelFormat::Blob, "");
    Error::Model(match op {
        Some(i) => e.with_operator(i),
        None => e,
    })
}

/// A model blob, validated: every offset, length, shape and index was checked once, so
/// running it reads only what it was shown to hold. Borrowed, never copied (`&'static [u8]`
/// from flash on a microcontroller).
#[derive(Clone, Copy)]
pub struct Model<'a> {
    bytes: &'a [u8],
    n_tensors: usize,
    n_ops: usize,
    n_inputs: usize,
    n_outputs: usize,
    arena: usize,
    /// False for a model read by [`Model::for_inspection`]: its operators' target-dependent
    /// parameters were not checked, so no session runs it.
    runnable: bool,
}

impl core::fmt::Debug for Model<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Model {{ {} bytes, {} tensors, {} operators, arena {} bytes }}",
            self.bytes.len(),
            self.n_tensors,
            self.n_ops,
            self.arena
        )
    }
}

/// A tensor of a [`Model`]: its type, shape, quantization and where its bytes are.
#[derive(Clone, Copy, Debug)]
pub struct TensorInfo<'a> {
    pub dtype: DType,
    rank: u8,
    dims: [u32; MAX_RANK],
    /// Bytes of its data.
    pub bytes: usize,
    pub storage: Storage,
    /// Arena offset ([`Storage::Arena`]) or blob offset ([`Storage::Constant`]).
    pub offset: usize,
    /// `real = scale · (q − zero_point)`; `None` for float and unquantized tensors. For
    /// per-channel tensors, channel 0's.
    pub quant: Option<(f32, i32)>,
    /// True when the quantization is per channel (weights).
    pub per_channel: bool,
    /// Its name, unless the blob was written without names.
    pub name: Option<&'a str>,
}

impl TensorInfo<'_> {
    /// Its shape.
    pub fn shape(&self) -> Shape {
        Shape {
            rank: self.rank,
            dims: self.dims,
        }
    }

    /// Elements (the product of the shape).
    #[cfg_attr(target_os = "none", inline(never))]
    pub fn elems(&self) -> usize {
        self.shape().elems()
    }
}

/// Where a tensor's bytes are: the part of its record an operator needs to reach them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Place {
    pub storage: Storage,
    /// Arena offset ([`Storage::Arena`]) or blob offset ([`Storage::Constant`]).
    pub offset: usize,
    /// Bytes of its data.
    pub bytes: usize,
}

fn place_of(r: &[u8; TENSOR_REC]) -> Place {
    Place {
        storage: if r[T_STORAGE] == STORAGE_CONST {
            Storage::Constant
        } else {
            Storage::Arena
        },
        offset: u32_at(r, T_OFFSET) as usize,
        bytes: u32_at(r, T_BYTES) as usize,
    }
}

/// A tensor shape of at most [`MAX_RANK`] dimensions, held inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    rank: u8,
    dims: [u32; MAX_RANK],
}

impl Shape {
    /// The dimensions.
    pub fn dims(&self) -> &[u32] {
        self.dims.get(..self.rank as usize).unwrap_or(&[])
    }

    /// Dimension `i` as usize (1 past the rank, so shapes broadcast from the left naturally).
    pub fn dim(&self, i: usize) -> usize {
        self.dims().get(i).map_or(1, |&d| d as usize)
    }

    pub fn rank(&self) -> usize {
        self.rank as usize
    }

    /// The product of the dimensions (1 for a scalar). (Out of line on the firmware: the
    /// load-time checks call it in many places.)
    #[cfg_attr(target_os = "none", inline(never))]
    pub fn elems(&self) -> usize {
        self.dims().iter().map(|&d| d as usize).product()
    }
}

impl core::fmt::Debug for Shape {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.dims().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// An operator of a [`Model`]: its code (TFLite's builtin operator code), its tensors and its
/// parameters (little-endian i32 words, as its lowering wrote them).
#[derive(Clone, Copy, Debug)]
pub struct OpView<'a> {
    pub(crate) model: Model<'a>,
    pub(crate) index: usize,
    pub(crate) code: u16,
    n_in: usize,
    n_out: usize,
    n_tmp: usize,
    io_off: usize,
    params: &'a [u8],
}

impl<'a> OpView<'a> {
    /// Its operator code (TFLite's builtin code).
    pub fn code(&self) -> u16 {
        self.code
    }

    /// Its position in execution order.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Its name (TFLITE's upper-case builtin name).
    /// Multiply-accumulates one run of the operator performs (convolutions, fully
    /// connected, batch matmul; 0 for the others).
    pub fn macs(&self) -> u64 {
        ops::macs(self)
    }

    pub fn name(&self) -> &'static str {
        ops::name(self.code)
    }

    pub fn num_inputs(&self) -> usize {
        self.n_in
    }

    pub fn num_outputs(&self) -> usize {
        self.n_out
    }

    /// Scratch tensors (planned in the arena like activations, alive during this operator).
    pub fn num_temps(&self) -> usize {
        self.n_tmp
    }

    fn io(&self, i: usize) -> Option<usize> {
        let t = u32_at(self.model.bytes, self.io_off + 4 * i);
        (t != NO_TENSOR).then_some(t as usize)
    }

    /// The tensor index of input `i` (`None` for an absent optional input or past the end).
    // Out of line on the firmware: operators look tensors up at many places.
    #[cfg_attr(target_os = "none", inline(never))]
    pub fn input(&self, i: usize) -> Option<usize> {
        if i < self.n_in {
            self.io(i)
        } else {
            None
        }
    }

    /// The tensor index of output `i`.
    // Out of line on the firmware: operators look tensors up at many places.
    #[cfg_attr(target_os = "none", inline(never))]
    pub fn output(&self, i: usize) -> Option<usize> {
        if i < self.n_out {
            self.io(self.n_in + i)
        } else {
            None
        }
    }

    /// The tensor index of scratch tensor `i`.
    // Out of line on the firmware: operators look tensors up at many places.
    #[cfg_attr(target_os = "none", inline(never))]
    pub fn temp(&self, i: usize) -> Option<usize> {
        if i < self.n_tmp {
            self.io(self.n_in + self.n_out + i)
        } else {
            None
        }
    }

    /// Parameter word `i` (0 past the end: `check` functions verify the count).
    pub fn param(&self, i: usize) -> i32 {
        u32_at(self.params, 4 * i) as i32
    }

    /// Parameter words `base..base + N`, each as [`OpView::param`] reads it (0 past the
    /// end): one bounds check for the run, not one a word.
    pub(crate) fn params_at<const N: usize>(&self, base: usize) -> [i32; N] {
        let mut w = [0i32; N];
        let src = self.params.get(base.saturating_mul(4)..).unwrap_or(&[]);
        for (w, c) in w.iter_mut().zip(src.chunks_exact(4)) {
            *w = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        w
    }

    /// How many parameter words it has.
    pub fn num_params(&self) -> usize {
        self.params.len() / 4
    }

    /// The model it belongs to.
    pub fn model(&self) -> &Model<'a> {
        &self.model
    }

    /// An error about this operator. Cold and out of line: its hundreds of call sites (every
    /// check) then cost a call each, not a copy of the error's construction, in a firmware.
    #[cfg(not(feature = "terse-errors"))]
    #[cold]
    #[inline(never)]
    pub fn error(&self, reason: &'static str) -> Error {
        Error::Model(
            ModelError::new(ModelFormat::Blob, reason)
                .with_operator(self.index)
                .with_name(self.name()),
        )
    }

    /// An error about this operator: with the feature `terse-errors`, its index only (the
    /// reason dropped at the call site, so its text is not linked).
    #[cfg(feature = "terse-errors")]
    #[inline(always)]
    pub fn error(&self, reason: &'static str) -> Error {
        let _ = reason;
        terse_err(Some(self.index))
    }
}

impl<'a> Model<'a> {
    /// Reads and validates a blob in place. The slice must start 16-byte aligned (constant
    /// data is aligned relative to it); a host loader copies unaligned bytes into an aligned
    /// buffer first. Any malformed, truncated or inconsistent blob is an [`Error::Model`]
    /// that says what is wrong; operators this build does not have are named.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, Error> {
        Self::from_bytes_with::<{ ops::ALL_OPS }>(bytes)
    }

    /// [`Model::from_bytes`] for a runtime of the operators in `OPS` only (an operator set,
    /// [`crate::nn::op_set`]; `edgemm convert --rust` emits the model's as `OPERATORS`): an
    /// operator outside it is an error, and with [`Session::run_with`] of the same set the
    /// other operators are not linked into a firmware.
    ///
    /// [`Session::run_with`]: crate::nn::Session::run_with
    pub fn from_bytes_with<const OPS: u128>(bytes: &'a [u8]) -> Result<Self, Error> {
        Self::from_bytes_with_forms::<OPS, { ops::ALL_FORMS }>(bytes)
    }

    /// [`Model::from_bytes_with`] for a runtime of the operator forms in `FORMS` only too (a
    /// forms set, [`crate::nn::FORM_GEMM`]; `edgemm convert --rust` emits the model's as
    /// `FORMS`): an operator in another form is an error, and with
    /// [`Session::run_with_forms`] of the same sets the other forms are not linked.
    ///
    /// [`Session::run_with_forms`]: crate::nn::Session::run_with_forms
    pub fn from_bytes_with_forms<const OPS: u128, const FORMS: u32>(
        bytes: &'a [u8],
    ) -> Result<Self, Error> {
        Self::read::<OPS, FORMS>(bytes, true, None)
    }

    /// A blob validated before it was built into the firmware (`edgemm convert --rust` emits
    /// its CRC-32 as `VALIDATED_CRC` when [`Model::validate_for_target`] accepted it):
    /// checks the header's magic number and version, the slice's alignment, the length
    /// field, and that the CRC-32 of the bytes is `crc`, and nothing else, so the rest of the
    /// validator is not linked. A mismatch is an error, as in [`Model::from_bytes`].
    ///
    /// # Safety
    /// Bytes whose CRC-32 is `crc` must be bytes that [`Model::validate_for_target`] accepted
    /// for this build's target (or [`Model::from_bytes_with_forms`] of this build, with the
    /// same `edgemm` version) and whose operators and forms the sets this firmware runs them
    /// with hold: the operators rely on that validation to stay in bounds. The blob and the
    /// generated source that holds `crc`, `OPERATORS` and `FORMS` come from one conversion.
    pub unsafe fn from_validated_bytes(bytes: &'a [u8], crc: u32) -> Result<Self, Error> {
        let bytes = Self::header(bytes)?;
        if crc32(&bytes[16..]) != crc || u32_at(bytes, H_CRC) != crc {
            return Err(blob_err(
                "CRC-32 mismatch: not the blob that was validated at build time",
            ));
        }
        Ok(Self::validated_header(bytes, true))
    }

    /// Validates a blob as a build for `target` (a packing name: `cortex-m4-dsp`) would load
    /// it, on a host that does not run that target (`edgemm convert --rust`, so that the
    /// firmware loads it with [`Model::from_validated_bytes`]): everything
    /// [`Model::from_bytes`] checks, with the blob's packing required to be `target`. Returns
    /// the blob's CRC-32. The checks are the target's own code compiled for the host; the
    /// forms whose checks depend on the kernels compiled in (the GEMM driver's workspace:
    /// CONV_2D's and FULLY_CONNECTED's GEMM forms, BATCH_MATMUL; the general depthwise's
    /// lanes) are refused unless `target` is this build's, so that those blobs are
    /// validated on the target.
    #[cfg(feature = "alloc")]
    pub fn validate_for_target(bytes: &[u8], target: &str) -> Result<u32, Error> {
        let m = Model::read::<{ ops::ALL_OPS }, { ops::ALL_FORMS }>(bytes, true, Some(target))?;
        let kernel_forms = ops::FORM_GEMM | ops::FORM_DW_GENERAL;
        let kernel_ops = ops::op_set(&[126]);
        let kernel_bound = ops::forms_of(&m) & kernel_forms != 0
            || (0..m.n_ops).any(|i| {
                m.op(i)
                    .is_some_and(|o| ops::op_set(&[o.code()]) & kernel_ops != 0)
            });
        if kernel_bound && !BUILD_TARGETS.contains(&target) {
            return Err(blob_err(
                "its GEMM or general depthwise forms are validated on the target only",
            ));
        }
        Ok(u32_at(m.bytes, H_CRC))
    }

    /// Reads a blob to describe it (`edgemm inspect`), whatever target it was packed for:
    /// everything [`Model::from_bytes`] checks but the packing name and what each operator's
    /// own check adds (weight layouts and scratch sizes, which depend on the target). The
    /// accessors stay bounds-checked, so it can be listed safely; [`Session::new`] refuses it.
    ///
    /// [`Session::new`]: crate::nn::Session::new
    pub fn for_inspection(bytes: &'a [u8]) -> Result<Self, Error> {
        Self::read::<{ ops::ALL_OPS }, { ops::ALL_FORMS }>(bytes, false, None)
    }

    /// Whether a session may run this model: true unless it was read by
    /// [`Model::for_inspection`]. The error says why not (another target's packing, or not
    /// validated for running).
    pub fn runnable(&self) -> Result<(), Error> {
        if self.runnable {
            return Ok(());
        }
        // With `terse-errors` the reason is not told (the host's load of the blob tells it):
        // the packing's check and its target names are then not linked into a firmware,
        // where LLVM does not see that a loaded model is always runnable.
        if !cfg!(feature = "terse-errors") {
            self.check_packing()?;
        }
        Err(blob_err(
            "the model was read for inspection only (load it with Model::from_bytes to run it)",
        ))
    }

    /// The header's checks (length, magic number, version, alignment, length field): the
    /// blob's bytes, cut to its length field.
    fn header(bytes: &'a [u8]) -> Result<&'a [u8], Error> {
        if bytes.len() < HEADER {
            return Err(blob_err("shorter than the 64-byte header"));
        }
        if bytes.get(..4) != Some(&MAGIC[..]) {
            return Err(blob_err("no edgemm blob magic number (\"EGMB\")"));
        }
        let version = u32_at(bytes, H_VERSION);
        if version != VERSION {
            return Err(Error::Model(
                ModelError::new(
                    ModelFormat::Blob,
                    "layout version {} is not the version {} this build reads",
                )
                .with_values(&[version as i64, VERSION as i64]),
            ));
        }
        if bytes.as_ptr() as usize % ALIGN != 0 {
            return Err(blob_err(
                "the blob does not start 16-byte aligned (copy it into an aligned buffer)",
            ));
        }
        let total = u32_at(bytes, H_TOTAL) as usize;
        if total < HEADER || total > bytes.len() {
            return Err(Error::Model(
                ModelError::new(
                    ModelFormat::Blob,
                    "its length field says {} bytes, {} are there",
                )
                .with_values(&[total as i64, bytes.len() as i64]),
            ));
        }
        Ok(&bytes[..total])
    }

    /// The model of a blob whose header [`Model::header`] accepted: counts and arena size
    /// read, nothing else checked.
    fn validated_header(bytes: &'a [u8], runnable: bool) -> Self {
        let count = |at: usize| u32_at(bytes, at) as usize;
        Model {
            bytes,
            n_tensors: count(H_N_TENSORS),
            n_ops: count(H_N_OPS),
            n_inputs: count(H_N_INPUTS),
            n_outputs: count(H_N_OUTPUTS),
            arena: count(H_ARENA),
            runnable,
        }
    }

    /// `target`: the packing the blob must have, for a target this build may not run
    /// ([`Model::validate_for_target`]); `None`: one this build runs (with `to_run`).
    fn read<const OPS: u128, const FORMS: u32>(
        bytes: &'a [u8],
        to_run: bool,
        target: Option<&str>,
    ) -> Result<Self, Error> {
        let bytes = Self::header(bytes)?;
        let crc = crc32(&bytes[16..]);
        if crc != u32_at(bytes, H_CRC) {
            return Err(blob_err("CRC-32 mismatch: the blob is corrupted"));
        }
        let model = Self::validated_header(bytes, to_run);
        let sections = [
            (
                H_TENSORS,
                model.n_tensors,
                TENSOR_REC,
                "the tensor table runs outside the blob",
            ),
            (
                H_OPS,
                model.n_ops,
                OP_REC,
                "the operator table runs outside the blob",
            ),
            (
                H_INPUTS,
                model.n_inputs,
                4,
                "the input list runs outside the blob",
            ),
            (
                H_OUTPUTS,
                model.n_outputs,
                4,
                "the output list runs outside the blob",
            ),
        ];
        for (at, n, rec, reason) in sections {
            model.check_section(at, n, rec, reason)?;
        }
        if model.arena % ALIGN != 0 {
            return Err(blob_err("the arena size is not a multiple of 16"));
        }
        // No flag is defined in this version: a set bit marks something this reader would
        // silently get wrong, so it is refused.
        let flags = u32_at(bytes, H_FLAGS);
        if flags != 0 {
            return Err(Error::Model(
                ModelError::new(
                    ModelFormat::Blob,
                    "header flags are {}, but no flag is defined in layout version {}",
                )
                .with_values(&[flags as i64, VERSION as i64]),
            ));
        }
        let packing = u32_at(bytes, H_PACKING) as usize;
        if packing != 0 && model.str_at(packing).is_none() {
            return Err(Error::Model(
                ModelError::new(
                    ModelFormat::Blob,
                    "the packing name is outside the blob or not UTF-8",
                )
                .with_offset(packing),
            ));
        }
        match target {
            Some(t) if model.packing() != t => {
                return Err(blob_err(
                    "the blob is not packed for the target it is checked for",
                ))
            }
            Some(_) => {}
            None if to_run => model.check_packing()?,
            None => {}
        }
        for t in 0..model.n_tensors {
            model.check_tensor(t)?;
        }
        for (reason, at, n) in [
            (
                "a model input is not an arena tensor",
                H_INPUTS,
                model.n_inputs,
            ),
            (
                "a model output is not an arena tensor",
                H_OUTPUTS,
                model.n_outputs,
            ),
        ] {
            for i in 0..n {
                let t = u32_at(bytes, u32_at(bytes, at) as usize + 4 * i) as usize;
                match model.tensor_checked(t) {
                    Some(info) if info.storage == Storage::Arena => {}
                    _ => {
                        return Err(Error::Model(
                            ModelError::new(ModelFormat::Blob, reason).with_tensor(t),
                        ))
                    }
                }
            }
        }
        for i in 0..model.n_ops {
            model.check_op::<OPS, FORMS>(i, to_run)?;
        }
        Ok(model)
    }

    /// A blob that was validated before (by `from_bytes` on these same bytes, or only
    /// written or read for inspection when `runnable` is false): reads the header only. Its
    /// accessors stay bounds-checked, so even wrong bytes cannot make them read out of
    /// bounds; but running relies on the validation (the arena accessors of an operator do
    /// not check bounds again), so `runnable` only for bytes that passed it.
    #[cfg(feature = "alloc")]
    pub(crate) fn validated(bytes: &'a [u8], runnable: bool) -> Self {
        Self::validated_header(bytes, runnable)
    }

    /// A blob packed for a target this build does not run is refused by name, before any
    /// operator reads its weights or relies on its scratch sizes. `host` is what writers
    /// before target names recorded (their operators' own checks still apply).
    fn check_packing(&self) -> Result<(), Error> {
        let name = self.packing();
        if name == "portable" || name == "host" || BUILD_TARGETS.contains(&name) {
            return Ok(());
        }
        Err(Error::TargetMismatch {
            made_for: known_target(name).unwrap_or("(a target unknown to this edgemm version)"),
            this_build: BUILD_TARGETS[0],
        })
    }

    fn check_section(
        &self,
        at: usize,
        n: usize,
        rec: usize,
        reason: &'static str,
    ) -> Result<(), Error> {
        let off = u32_at(self.bytes, at) as usize;
        let end = n.checked_mul(rec).and_then(|b| b.checked_add(off));
        match end {
            Some(end) if off >= HEADER && end <= self.bytes.len() && off % 4 == 0 => Ok(()),
            _ => Err(Error::Model(
                ModelError::new(ModelFormat::Blob, reason).with_offset(off),
            )),
        }
    }

    fn check_tensor(&self, t: usize) -> Result<(), Error> {
        let rec = u32_at(self.bytes, H_TENSORS) as usize + t * TENSOR_REC;
        let b = self.bytes;
        let bad = |reason: &'static str| record_err(reason, Some(t), None, rec);
        let Some(dtype) = DType::from_code(u8_at(b, rec + T_DTYPE)) else {
            return Err(bad("unknown element type"));
        };
        let rank = u8_at(b, rec + T_RANK) as usize;
        if rank > MAX_RANK {
            return Err(bad("more than 6 dimensions"));
        }
        let mut elems: usize = 1;
        for d in 0..rank {
            let dim = u32_at(b, rec + T_DIMS + 4 * d) as usize;
            // Partial products past u32 are refused on every host, as a 32-bit target
            // refuses them (a zero dimension later would hide them from the length check),
            // so a host's validation for a firmware accepts what the firmware's would.
            elems = elems
                .checked_mul(dim)
                .filter(|&e| e <= u32::MAX as usize)
                .ok_or_else(|| bad("its size overflows"))?;
        }
        let len = u32_at(b, rec + T_BYTES) as usize;
        if dtype != DType::Packed && Some(len) != elems.checked_mul(dtype.size()) {
            return Err(bad("its byte length does not match its shape and type"));
        }
        let off = u32_at(b, rec + T_OFFSET) as usize;
        match u8_at(b, rec + T_STORAGE) {
            STORAGE_ARENA => {
                if off % ALIGN != 0 || off.checked_add(len).is_none_or(|e| e > self.arena) {
                    return Err(bad("its arena range is outside the arena or misaligned"));
                }
            }
            STORAGE_CONST => {
                if off % ALIGN != 0
                    || off < HEADER
                    || off.checked_add(len).is_none_or(|e| e > b.len())
                {
                    return Err(bad("its constant data is outside the blob or misaligned"));
                }
            }
            _ => return Err(bad("unknown storage kind")),
        }
        if u8_at(b, rec + T_QUANT) > 2 {
            return Err(bad("unknown quantization kind"));
        }
        let name = u32_at(b, rec + T_NAME) as usize;
        if name != 0 && self.str_at(name).is_none() {
            return Err(bad("its name is outside the blob or not UTF-8"));
        }
        Ok(())
    }

    /// The string at `at` (a u16 length, then UTF-8 bytes), outside the header.
    fn str_at(&self, at: usize) -> Option<&'a str> {
        if at < HEADER {
            return None;
        }
        let len = u16_at(self.bytes, at) as usize;
        let s = self
            .bytes
            .get(at.checked_add(2)?..at.checked_add(2 + len)?)?;
        if !is_utf8(s) {
            return None;
        }
        // SAFETY: `is_utf8` accepts exactly what `core::str::from_utf8` accepts (test
        // `is_utf8_matches_core`), so `s` is valid UTF-8.
        Some(unsafe { core::str::from_utf8_unchecked(s) })
    }

    /// Checks operator `i`'s record, tensors and arena use; with `own_checks`, also what the
    /// operator itself requires (options, shapes, weight layout, scratch).
    fn check_op<const OPS: u128, const FORMS: u32>(
        &self,
        i: usize,
        own_checks: bool,
    ) -> Result<(), Error> {
        let rec = u32_at(self.bytes, H_OPS) as usize + i * OP_REC;
        let b = self.bytes;
        let bad = |reason: &'static str| record_err(reason, None, Some(i), rec);
        let code = u16_at(b, rec + O_CODE);
        if !ops::known(code) {
            return Err(Error::Model(
                ModelError::new(
                    ModelFormat::Blob,
                    "operator code {} is not in this build of the runtime",
                )
                .with_operator(i)
                .with_name(error_name(code))
                .with_values(&[code as i64]),
            ));
        }
        let n_io = u8_at(b, rec + O_N_IN) as usize
            + u8_at(b, rec + O_N_OUT) as usize
            + u8_at(b, rec + O_N_TMP) as usize;
        let io = u32_at(b, rec + O_IO) as usize;
        if io % 4 != 0 || io.checked_add(4 * n_io).is_none_or(|e| e > b.len()) {
            return Err(bad("its tensor list is outside the blob"));
        }
        let p = u32_at(b, rec + O_PARAMS) as usize;
        let plen = u32_at(b, rec + O_PARAMS_LEN) as usize;
        if plen % 4 != 0 || p.checked_add(plen).is_none_or(|e| e > b.len()) {
            return Err(bad("its parameters are outside the blob"));
        }
        let op = self.op_unchecked(i);
        for k in 0..n_io {
            let t = u32_at(b, io + 4 * k);
            let optional_input = k < op.n_in && t == NO_TENSOR;
            if !optional_input && t as usize >= self.n_tensors {
                return Err(bad("it names a tensor that does not exist"));
            }
        }
        // Outputs and scratch are written: they must be arena tensors that overlap no input
        // (but output 0 may be input 0's bytes, at the same offset, for an operator that
        // works in place) and not each other.
        let writes = (0..op.n_out + op.n_tmp).filter_map(|k| op.io(op.n_in + k));
        for (k, w) in writes.clone().enumerate() {
            let wi = self.tensor_unchecked(w);
            if wi.storage != Storage::Arena {
                return Err(bad("it writes a constant tensor"));
            }
            for other in writes.clone().skip(k + 1) {
                if overlaps(&wi, &self.tensor_unchecked(other)) {
                    return Err(bad("two of its outputs share arena bytes"));
                }
            }
            for (j, r) in (0..op.n_in).filter_map(|j| Some((j, op.input(j)?))) {
                let ri = self.tensor_unchecked(r);
                let same = ri.storage == Storage::Arena && ri.offset == wi.offset;
                let in_place = same && k == 0 && j == 0 && op.n_out > 0 && ops::in_place(code);
                if overlaps(&wi, &ri) && !in_place {
                    return Err(bad("an output overlaps an input in the arena"));
                }
            }
        }
        if !own_checks {
            return Ok(());
        }
        match ops::check_in::<OPS, FORMS>(&op) {
            Some(r) => r,
            None => Err(Error::Model(
                ModelError::new(
                    ModelFormat::Blob,
                    "operator code {} is not in this firmware's operator set",
                )
                .with_operator(i)
                .with_name(error_name(code))
                .with_values(&[code as i64]),
            )),
        }
    }

    /// Operator `i`'s record: one bounds check (all zeros past the blob's end, as
    /// [`Model::tensor_rec`]), then every field at a constant offset. The session reads it
    /// for every operator it runs.
    fn op_unchecked(&self, i: usize) -> OpView<'a> {
        let at = (u32_at(self.bytes, H_OPS) as usize).wrapping_add(i.wrapping_mul(OP_REC));
        let r: &[u8; OP_REC] = self
            .bytes
            .get(at..at.wrapping_add(OP_REC))
            .and_then(|r| r.try_into().ok())
            .unwrap_or(&[0; OP_REC]);
        let p = u32_at(r, O_PARAMS) as usize;
        let plen = u32_at(r, O_PARAMS_LEN) as usize;
        OpView {
            model: *self,
            index: i,
            code: u16::from_le_bytes([r[O_CODE], r[O_CODE + 1]]),
            n_in: r[O_N_IN] as usize,
            n_out: r[O_N_OUT] as usize,
            n_tmp: r[O_N_TMP] as usize,
            io_off: u32_at(r, O_IO) as usize,
            params: self.bytes.get(p..p.saturating_add(plen)).unwrap_or(&[]),
        }
    }

    fn tensor_checked(&self, t: usize) -> Option<TensorInfo<'a>> {
        (t < self.n_tensors).then(|| self.tensor_unchecked(t))
    }

    /// [`Model::tensor`] without its name (`name` is `None`): what operators read while
    /// running, without re-checking the name's UTF-8 on every call. (Out of line on the
    /// firmware, as `tensor_unchecked`.)
    #[cfg_attr(target_os = "none", inline(never))]
    pub(crate) fn tensor_unnamed(&self, t: usize) -> Option<TensorInfo<'a>> {
        (t < self.n_tensors).then(|| self.tensor_record(t, false))
    }

    // Out of line on the firmware: inlined, its name check is copied into each caller.
    #[cfg_attr(target_os = "none", inline(never))]
    fn tensor_unchecked(&self, t: usize) -> TensorInfo<'a> {
        self.tensor_record(t, true)
    }

    /// Tensor `t`'s record: one bounds check, then every field at a constant offset (all
    /// zeros past the blob's end, read as `u32_at` reads missing bytes). Operators read
    /// records on every run.
    fn tensor_rec(&self, t: usize) -> &'a [u8; TENSOR_REC] {
        let at = (u32_at(self.bytes, H_TENSORS) as usize).wrapping_add(t.wrapping_mul(TENSOR_REC));
        self.bytes
            .get(at..at.wrapping_add(TENSOR_REC))
            .and_then(|r| r.try_into().ok())
            .unwrap_or(&[0; TENSOR_REC])
    }

    fn tensor_record(&self, t: usize, named: bool) -> TensorInfo<'a> {
        let r = self.tensor_rec(t);
        let mut dims = [0u32; MAX_RANK];
        let rank = (r[T_RANK] as usize).min(MAX_RANK);
        for (d, slot) in dims.iter_mut().enumerate().take(rank) {
            *slot = u32_at(r, T_DIMS + 4 * d);
        }
        let q = r[T_QUANT];
        let name = u32_at(r, T_NAME) as usize;
        let place = place_of(r);
        TensorInfo {
            dtype: DType::from_code(r[T_DTYPE]).unwrap_or(DType::Packed),
            rank: rank as u8,
            dims,
            bytes: place.bytes,
            storage: place.storage,
            offset: place.offset,
            quant: (q != 0).then(|| {
                (
                    f32::from_bits(u32_at(r, T_SCALE)),
                    u32_at(r, T_ZERO_POINT) as i32,
                )
            }),
            per_channel: q == 2,
            name: if name == 0 || !named {
                None
            } else {
                self.str_at(name)
            },
        }
    }

    /// Tensor `t`'s element type (what operators branch on while running, read without the
    /// rest of its record).
    pub(crate) fn dtype(&self, t: usize) -> Option<DType> {
        (t < self.n_tensors)
            .then(|| DType::from_code(self.tensor_rec(t)[T_DTYPE]).unwrap_or(DType::Packed))
    }

    /// Where tensor `t`'s bytes are (what operators look up on every run, read without the
    /// rest of its record). Out of line on the firmware (each run looks up several).
    #[cfg_attr(target_os = "none", inline(never))]
    pub(crate) fn place(&self, t: usize) -> Option<Place> {
        (t < self.n_tensors).then(|| place_of(self.tensor_rec(t)))
    }

    /// The blob's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Bytes of arena a session needs (known before anything runs).
    pub fn arena_size(&self) -> usize {
        self.arena
    }

    /// What TFLite Micro's greedy-by-size plan of the same lifetimes would need, as the
    /// writer recorded it (0 if unknown).
    pub fn baseline_arena_size(&self) -> usize {
        u32_at(self.bytes, H_BASELINE) as usize
    }

    /// The weights layout (`portable`, or the packing target it was converted for).
    pub fn packing(&self) -> &'a str {
        let at = u32_at(self.bytes, H_PACKING) as usize;
        if at == 0 {
            "portable"
        } else {
            self.str_at(at).unwrap_or("?")
        }
    }

    pub fn num_tensors(&self) -> usize {
        self.n_tensors
    }

    pub fn num_ops(&self) -> usize {
        self.n_ops
    }

    pub fn num_inputs(&self) -> usize {
        self.n_inputs
    }

    pub fn num_outputs(&self) -> usize {
        self.n_outputs
    }

    /// Tensor `t`, if it exists.
    pub fn tensor(&self, t: usize) -> Option<TensorInfo<'a>> {
        self.tensor_checked(t)
    }

    /// Operator `i` (execution order), if it exists.
    pub fn op(&self, i: usize) -> Option<OpView<'a>> {
        (i < self.n_ops).then(|| self.op_unchecked(i))
    }

    /// The tensor index of model input `i`.
    pub fn input(&self, i: usize) -> Option<usize> {
        (i < self.n_inputs).then(|| u32_at(self.bytes, self.list(H_INPUTS) + 4 * i) as usize)
    }

    /// The tensor index of model output `i`.
    pub fn output(&self, i: usize) -> Option<usize> {
        (i < self.n_outputs).then(|| u32_at(self.bytes, self.list(H_OUTPUTS) + 4 * i) as usize)
    }

    fn list(&self, at: usize) -> usize {
        u32_at(self.bytes, at) as usize
    }

    /// The constant bytes of tensor `t` (empty for an arena tensor).
    pub fn constant(&self, t: usize) -> &'a [u8] {
        // Without the name: operators read their constants on every run.
        self.place(t).map_or(&[], |p| self.constant_at(p))
    }

    /// [`Model::constant`] of a tensor's place (empty for an arena tensor).
    pub(crate) fn constant_at(&self, p: Place) -> &'a [u8] {
        if p.storage != Storage::Constant {
            return &[];
        }
        self.bytes
            .get(p.offset..p.offset.saturating_add(p.bytes))
            .unwrap_or(&[])
    }
}

fn overlaps(a: &TensorInfo, b: &TensorInfo) -> bool {
    a.storage == Storage::Arena
        && b.storage == Storage::Arena
        && a.bytes > 0
        && b.bytes > 0
        && a.offset < b.offset + b.bytes
        && b.offset < a.offset + a.bytes
}

#[cfg(test)]
mod tests {
    use super::is_utf8;

    fn same(s: &[u8]) {
        assert_eq!(is_utf8(s), core::str::from_utf8(s).is_ok(), "{s:02x?}");
    }

    /// Every sequence of up to 3 bytes (truncated 4-byte forms included), and 4-byte ones
    /// around every lead and second byte, after an ASCII byte too.
    #[test]
    fn is_utf8_matches_core() {
        same(&[]);
        for a in 0..=255u8 {
            same(&[a]);
            for b in 0..=255u8 {
                same(&[a, b]);
                for c in 0..=255u8 {
                    same(&[a, b, c]);
                }
            }
        }
        let edges = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0xbf, 0xc0, 0xf4, 0xff];
        for a in 0xe0..=0xffu8 {
            for b in 0..=255u8 {
                for &c in &edges {
                    for &d in &edges {
                        same(&[a, b, c, d]);
                        same(&[b'x', a, b, c, d, b'y']);
                    }
                }
            }
        }
    }
}
