//! The operators: one file each, registered in [`REGISTRY`] (the one place that lists them).
//!
//! An operator file has three parts:
//! - `check`: validates, once at load, everything `run` will rely on (shapes, parameter
//!   words, sizes of its tensors), so a loaded model runs without further checks;
//! - `run`: computes its outputs from its inputs (no allocation, scratch from the arena);
//! - `lower` (feature `alloc`): turns an IR node into the operator's blob form (parameters
//!   precomputed: fixed-point multipliers, padding, packed weights), on the host.
//!
//! Operator codes are TFLite's builtin operator codes.

use super::blob::{Model, OpView, Place, Storage, TensorInfo};
use super::dtype::DType;
use crate::error::Error;

#[cfg(feature = "alloc")]
use super::transform::lower::Lowering;

mod batch_matmul;
mod binary;
pub(crate) mod broadcast;
mod concat;
mod conv;
mod conv_direct;
mod conv_f32_direct;
mod conv_rows;
mod depthwise_conv;
mod depthwise_f32;
mod depthwise_lanes;
mod depthwise_m4;
mod depthwise_vnni;
pub(crate) mod expand_depthwise;
mod fixed_point;
pub(crate) mod fully_connected;
mod gather;
mod gemm_common;
mod gemv;
mod hard_swish;
mod logistic;
mod mean;
mod nd;
mod pad;
mod pooling;
mod quantize;
mod relu;
mod reshape;
mod resize;
mod slice;
mod softmax;
mod split;
mod strided;
mod unary;

/// One operator of the registry.
pub(crate) struct OpDef {
    /// TFLite's builtin operator code.
    pub code: u16,
    /// TFLite's name for it.
    pub name: &'static str,
    /// Whether an output may share the arena bytes of its first input (same offset).
    pub in_place: bool,
    /// Multiply-accumulates one run performs (reported by `inspect` and the profile;
    /// [`no_macs`] for operators without products).
    pub macs: fn(&OpView) -> u64,
    pub check: fn(&OpView) -> Result<(), Error>,
    pub run: fn(&OpView, &mut OpMem) -> Result<(), Error>,
    /// IR node → blob operator (host side).
    #[cfg(feature = "alloc")]
    pub lower: fn(&mut Lowering, usize) -> Result<(), Error>,
}

/// An entry's form: `(is, bits)`, whether a loaded operator of its code is in this entry's
/// form, and the form bits a firmware's forms set must hold for it (see [`FORM_GEMM`]).
/// Without them: every operator of the code, no bits.
macro_rules! form_of {
    () => {
        (any_form as fn(&OpView) -> bool, 0u32)
    };
    ($is:path, $bits:expr) => {
        ($is as fn(&OpView) -> bool, $bits)
    };
}

/// Declares the operator table and its dispatch from one list: [`REGISTRY`] (with the
/// lowering functions, for the host), the data-only name table, and [`check_in`] and
/// [`run_in`], which call each operator directly behind a test on constants so that, for a
/// constant operator set and forms set, the operators and forms outside them are dead code
/// and never linked.
///
/// An operator with several forms is listed once per form (same code; the first whose test
/// holds runs an operator), each as `DEF => (is_form, bits)`.
macro_rules! registry {
    ($($def:path $(=> ($is:path, $bits:expr))?),* $(,)?) => {
        /// Every operator this build has.
        #[cfg(feature = "alloc")]
        pub(crate) static REGISTRY: &[OpDef] = &[$($def),*];

        /// The code of every operator: data only, so looking one up links none of them.
        static CODES: &[u16] = &[$($def.code),*];

        /// The names, in `CODES`' order: linked only where an operator is named (not by a
        /// firmware built with `terse-errors`, whose errors carry no names).
        static NAMES: &[&str] = &[$($def.name),*];

        /// The MAC counts, in `CODES`' order.
        static MACS: &[fn(&OpView) -> u64] = &[$($def.macs),*];

        // Operator sets are bit masks over the codes (see `op_set`).
        const _: () = { $(assert!($def.code < 128);)* };

        /// The codes of this build (an operator set): one test at load, not a search of
        /// `CODES` (which the compiler unrolls into a chain of compares).
        const KNOWN: u128 = 0 $(| 1u128 << $def.code)*;

        /// The codes of the operators that may work in place.
        const IN_PLACE: u128 = 0 $(| if $def.in_place { 1u128 << $def.code } else { 0 })*;

        /// The form bits of every entry, in `CODES`' order.
        static FORM_INFO: &[(u16, fn(&OpView) -> bool, u32)] =
            &[$(($def.code, form_of!($($is, $bits)?).0, form_of!($($is, $bits)?).1)),*];

        /// `check` of `op`'s operator when it is in `OPS` (an error when its form is not in
        /// `FORMS`); `None` when it is not (or not in this build).
        pub(crate) fn check_in<const OPS: u128, const FORMS: u32>(
            op: &OpView,
        ) -> Option<Result<(), Error>> {
            $(
                if OPS & (1u128 << $def.code) != 0 && op.code == $def.code {
                    let (is, bits) = form_of!($($is, $bits)?);
                    if is(op) {
                        if bits & !FORMS != 0 {
                            return Some(Err(op.error(
                                "the operator's form is not in this firmware's forms set",
                            )));
                        }
                        return Some(($def.check)(op));
                    }
                }
            )*
            None
        }

        /// `run` of `op`'s operator when it and its form are in `OPS` and `FORMS`; `None`
        /// when not.
        pub(crate) fn run_in<const OPS: u128, const FORMS: u32>(
            op: &OpView,
            mem: &mut OpMem,
        ) -> Option<Result<(), Error>> {
            $(
                if OPS & (1u128 << $def.code) != 0 && op.code == $def.code {
                    let (is, bits) = form_of!($($is, $bits)?);
                    if bits & !FORMS == 0 && is(op) {
                        return Some(($def.run)(op, mem));
                    }
                }
            )*
            None
        }
    };
}

registry!(
    conv::DIRECT_I16 => (conv::is_direct_i16, FORM_DIRECT_I16),
    // (The portable entry first: a firmware without its bit skips it on a constant, and the
    // fused entry's test is then the mode and block words only, not a scan of the scales.)
    conv::DIRECT => (conv::is_direct_i8_portable, FORM_DIRECT_PORTABLE),
    // (The general patches' entry before the fused one, whose run refuses them.)
    conv::DIRECT_PATCHES => (conv::is_direct_i8_patches, FORM_DIRECT_PATCHES),
    conv::DIRECT_FUSED => (conv::is_direct_i8, 0),
    conv::DEF => (any_form, FORM_GEMM),
    // (The entry apart first, as conv::DIRECT: the in-place entry's run refuses the rest.)
    depthwise_conv::M4_APART => (depthwise_conv::is_m4_apart, FORM_DW_M4_APART),
    depthwise_conv::M4 => (depthwise_conv::is_m4, 0),
    depthwise_conv::DEF => (any_form, FORM_DW_GENERAL),
    // (The GEMM driver runs its pointwise half.)
    expand_depthwise::DEF => (any_form, FORM_GEMM),
    fully_connected::DEF => (any_form, FORM_GEMM),
    reshape::DEF,
    reshape::SQUEEZE,
    binary::DEF,
    binary::SUB_DEF,
    binary::MUL_DEF,
    binary::MAXIMUM_DEF,
    binary::MINIMUM_DEF,
    quantize::DEF,
    quantize::DEQUANTIZE_DEF,
    relu::DEF,
    relu::RELU_N1_TO_1,
    relu::RELU6,
    relu::LEAKY_RELU,
    logistic::DEF,
    logistic::TANH,
    hard_swish::DEF,
    softmax::DEF,
    pooling::DEF,
    pooling::MAX_POOL,
    mean::DEF,
    pad::DEF,
    pad::PADV2,
    resize::BILINEAR,
    resize::NEAREST,
    concat::CONCATENATION,
    concat::PACK,
    slice::TRANSPOSE,
    slice::SLICE,
    slice::STRIDED_SLICE,
    split::SPLIT,
    split::SPLIT_V,
    split::UNPACK,
    gather::DEF,
    batch_matmul::DEF,
);

/// An operator set: bit `c` stands for the operator of TFLite builtin code `c` (every code in
/// [`REGISTRY`] is below 128). A firmware passes the set its model uses (`edgemm convert`
/// emits it) to [`crate::nn::Model::from_bytes_with`] and [`crate::nn::Session::run_with`] as
/// a constant, so the operators outside it are not linked.
pub const fn op_set(codes: &[u16]) -> u128 {
    let mut set = 0u128;
    let mut i = 0;
    while i < codes.len() {
        if codes[i] < 128 {
            set |= 1 << codes[i];
        }
        i += 1;
    }
    set
}

/// Every operator of this build.
pub const ALL_OPS: u128 = u128::MAX;

/// A forms set bit: CONV_2D and FULLY_CONNECTED through the GEMM driver (im2col or pointwise
/// GEMM, f32 or int8; the driver, its packing and kernels), not CONV_2D's direct int8 form,
/// which is what `convert --target cortex-m4` lowers int8 convolutions and symmetric fully
/// connected layers to. A firmware passes the forms its model uses (`edgemm convert --rust`
/// emits them as `FORMS`) beside the operator set, so the others are not linked.
pub const FORM_GEMM: u32 = 1;

/// A forms set bit: CONV_2D's direct int8 form with its weights as i16 pairs (`convert
/// --target cortex-m4-i16`), not the int8 weights of `--target cortex-m4`: each layout has
/// its own kernels.
pub const FORM_DIRECT_I16: u32 = 2;

/// A forms set bit: DEPTHWISE_CONV_2D's general form (tap-pair weights, any geometry: the
/// row driver, its ring and the vector kernels of `depthwise_lanes`), not the Cortex-M4 3×3
/// form (`depthwise_m4`), which is what `convert --target cortex-m4` lowers the int8 3×3
/// layers it can compute exactly to.
pub const FORM_DW_GENERAL: u32 = 4;

/// A forms set bit: CONV_2D's direct int8 form (int8 weights) for a layer that the
/// Cortex-M4 kernel's fused output stage cannot compute exactly (an odd channel count, a
/// shift of more than 22 bits, sums that could reach 2^23: see `conv_direct::fused_i8`), which
/// takes the portable sums and the Rust output stage instead; a model without one links only
/// the fused path.
pub const FORM_DIRECT_PORTABLE: u32 = 8;

/// A forms set bit: DEPTHWISE_CONV_2D's Cortex-M4 3×3 form planned with its output apart
/// from its input (not in place): a model whose layers of that form all run in place links
/// only the in-place row loop.
pub const FORM_DW_M4_APART: u32 = 16;

/// A forms set bit: CONV_2D's direct int8 form (fused) for a layer whose patches are neither
/// pointwise nor one word a filter row (kw·c_in = 4, e.g. a one-channel input's first
/// layer), which takes the general patch fills; a model without one links only those two.
pub const FORM_DIRECT_PATCHES: u32 = 32;

/// Every form.
pub const ALL_FORMS: u32 = u32::MAX;

/// The form test of an operator with one form.
fn any_form(_: &OpView) -> bool {
    true
}

/// The forms set a loaded model's operators need (`edgemm convert` emits it).
pub fn forms_of(model: &Model) -> u32 {
    (0..model.num_ops())
        .filter_map(|i| model.op(i))
        .filter_map(|op| {
            FORM_INFO
                .iter()
                .find(|&&(c, is, _)| c == op.code && is(&op))
                .map(|&(.., bits)| bits)
        })
        .fold(0, |a, b| a | b)
}

/// Whether this build runs the f32 forms of the operators (feature `f32`). Without it, the
/// code that branches on an operator's element type tests this constant first (or matches a
/// variant holding an [`F32Form`]), so its f32 forms compile out, and `check` refuses them.
pub(crate) const F32: bool = cfg!(feature = "f32");

/// A value that exists only in a build with the f32 forms: a variant holding it is
/// uninhabited without them, so the f32 arms of a `match` on it compile out.
#[cfg(feature = "f32")]
#[derive(Clone, Copy)]
pub(crate) struct F32Form;

/// (Without the feature `f32`: no value.)
#[cfg(not(feature = "f32"))]
#[derive(Clone, Copy)]
pub(crate) enum F32Form {}

impl F32Form {
    /// The form, or the error of an operator whose f32 form this build does not have.
    pub(crate) fn get(op: &OpView) -> Result<F32Form, Error> {
        #[cfg(feature = "f32")]
        {
            let _ = op;
            Ok(F32Form)
        }
        #[cfg(not(feature = "f32"))]
        Err(checks::no_f32(op))
    }
}

/// The operator with this code, if this build has it.
#[cfg(feature = "alloc")]
pub(crate) fn def(code: u16) -> Option<&'static OpDef> {
    REGISTRY.iter().find(|d| d.code == code)
}

/// Whether `code` is in the operator set `set`.
fn in_set(set: u128, code: u16) -> bool {
    code < 128 && set & (1u128 << code) != 0
}

/// Whether this build has the operator of this code.
pub(crate) fn known(code: u16) -> bool {
    in_set(KNOWN, code)
}

/// TFLite's name for an operator code this build has (`"unknown"` otherwise). A loop over
/// the table, not the compare chain the compiler would unroll it into (it names operators in
/// messages and listings, never on a hot path).
pub(crate) fn name(code: u16) -> &'static str {
    core::hint::black_box(CODES)
        .iter()
        .position(|&c| c == code)
        .map_or("unknown", |i| NAMES[i])
}

/// The MAC count of operators that have none worth reporting (element-wise, data movement).
pub(crate) fn no_macs(_: &OpView) -> u64 {
    0
}

/// Multiply-accumulates of one run of a loaded operator (without `alloc` too: no
/// [`REGISTRY`] there).
pub(crate) fn macs(op: &OpView) -> u64 {
    CODES
        .iter()
        .position(|&c| c == op.code)
        .map_or(0, |i| MACS[i](op))
}

/// Output elements of `op` times `per_output` products each (the GEMM-like operators).
pub(crate) fn output_macs(op: &OpView, per_output: u64) -> u64 {
    checks::output(op, 0).map_or(0, |y| (y.elems() as u64).saturating_mul(per_output))
}

pub(crate) fn in_place(code: u16) -> bool {
    in_set(IN_PLACE, code)
}

/// The error of an [`OpMem`] accessor (a tensor not laid out as loading checked it): its
/// reason, none with the feature `terse-errors`, where it is then a zero-sized value so an
/// accessor's result comes back in registers and each `?` on it is a test and a call of the
/// cold conversion into [`Error`], not a copy of an `Error` through the caller's frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MemError {
    #[cfg(not(feature = "terse-errors"))]
    reason: &'static str,
}

impl MemError {
    #[inline(always)]
    const fn new(reason: &'static str) -> Self {
        #[cfg(feature = "terse-errors")]
        let _ = reason;
        MemError {
            #[cfg(not(feature = "terse-errors"))]
            reason,
        }
    }
}

impl From<MemError> for Error {
    #[cold]
    #[inline(never)]
    fn from(e: MemError) -> Error {
        #[cfg(not(feature = "terse-errors"))]
        return super::blob::blob_err(e.reason);
        #[cfg(feature = "terse-errors")]
        {
            let _ = e;
            super::blob::blob_err("")
        }
    }
}

/// An error on its way out of an operator's run: with the feature `terse-errors` the
/// operator's index only (`usize::MAX`: an [`OpMem`] accessor's, about the blob), one word
/// that comes back in a register, so a check deep in an inlined driver is a test and a
/// branch, and the [`Error`] is built once where the run returns (its `From`); else the
/// [`Error`] itself, the same message as [`OpView::error`]'s or the accessor's.
#[cfg(feature = "terse-errors")]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fail(usize);

/// (Without `terse-errors`: the error itself.)
#[cfg(not(feature = "terse-errors"))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fail(Error);

impl Fail {
    /// An error about `op` ([`OpView::error`]'s).
    #[cfg(feature = "terse-errors")]
    #[inline(always)]
    pub(crate) fn of(op: &OpView, reason: &'static str) -> Fail {
        let _ = reason;
        Fail(op.index)
    }

    /// An error about `op` ([`OpView::error`]'s).
    #[cfg(not(feature = "terse-errors"))]
    pub(crate) fn of(op: &OpView, reason: &'static str) -> Fail {
        Fail(op.error(reason))
    }
}

impl From<MemError> for Fail {
    #[inline(always)]
    fn from(e: MemError) -> Fail {
        #[cfg(feature = "terse-errors")]
        {
            let _ = e;
            Fail(usize::MAX)
        }
        #[cfg(not(feature = "terse-errors"))]
        Fail(Error::from(e))
    }
}

impl From<Fail> for Error {
    #[cold]
    #[inline(never)]
    fn from(e: Fail) -> Error {
        #[cfg(feature = "terse-errors")]
        return super::blob::terse_err((e.0 != usize::MAX).then_some(e.0));
        #[cfg(not(feature = "terse-errors"))]
        e.0
    }
}

/// The error type of a driver shared by runs that return an [`Error`] and runs that
/// return a [`Fail`]: its two constructors.
pub(crate) trait RunError: From<MemError> {
    /// An error about `op` ([`OpView::error`]'s message).
    fn of(op: &OpView, reason: &'static str) -> Self;
    /// An error about the blob (`blob_err`'s message).
    fn blob(reason: &'static str) -> Self;
}

impl RunError for Error {
    fn of(op: &OpView, reason: &'static str) -> Self {
        op.error(reason)
    }
    fn blob(reason: &'static str) -> Self {
        super::blob::blob_err(reason)
    }
}

impl RunError for Fail {
    #[inline(always)]
    fn of(op: &OpView, reason: &'static str) -> Self {
        Fail::of(op, reason)
    }
    #[inline(always)]
    fn blob(reason: &'static str) -> Self {
        #[cfg(feature = "terse-errors")]
        {
            let _ = reason;
            Fail(usize::MAX)
        }
        #[cfg(not(feature = "terse-errors"))]
        Fail(super::blob::blob_err(reason))
    }
}

/// The memory one operator runs over: the blob's constants and the arena.
///
/// Inputs are shared slices that live as long as the operator runs (`'a`); outputs and
/// scratch are mutable slices borrowed from this value one at a time. That is sound because
/// loading checked that an operator's outputs and scratch overlap neither each other nor its
/// inputs (except for operators that declare in-place work, which read only through the
/// output). Loading also checked that every arena tensor lies inside the model's arena size,
/// which the arena holds at least ([`OpMem::new`]), so the accessors do not check bounds
/// again: a runnable [`Model`] is a validated one (`from_bytes`, or `from_validated_bytes`
/// under its contract).
pub(crate) struct OpMem<'a> {
    model: Model<'a>,
    arena: *mut u8,
    arena_len: usize,
    threads: usize,
    _arena: core::marker::PhantomData<&'a mut [u8]>,
}

impl<'a> OpMem<'a> {
    /// # Safety
    /// `arena` is valid for reads and writes of `arena_len ≥ model.arena_size()` bytes for
    /// `'a`, 16-byte aligned, and nothing else accesses it meanwhile.
    pub(crate) unsafe fn new(model: Model<'a>, arena: *mut u8, arena_len: usize) -> Self {
        debug_assert!(arena_len >= model.arena_size());
        OpMem {
            model,
            arena,
            arena_len,
            threads: 1,
            _arena: core::marker::PhantomData,
        }
    }

    /// With up to `n` threads for the operator (1 without `std`; 0 counts as 1).
    pub(crate) fn with_threads(mut self, n: usize) -> Self {
        self.threads = if cfg!(feature = "std") { n.max(1) } else { 1 };
        self
    }

    /// Threads the operator may use, the calling one included (1 without `std`). An
    /// operator's result must not depend on it.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Whether output `out` was planned over input `x` (same arena offset): the operator then
    /// reads `x` only through [`OpMem::in_place_and_temp`], never through [`OpMem::input`].
    pub(crate) fn is_in_place(&self, x: usize, out: usize) -> bool {
        match (self.place(x), self.place(out)) {
            (Ok(x), Ok(y)) => {
                x.storage == Storage::Arena && y.storage == Storage::Arena && x.offset == y.offset
            }
            _ => false,
        }
    }

    fn place(&self, t: usize) -> Result<Place, MemError> {
        self.model
            .place(t)
            .ok_or(MemError::new("an operator names a missing tensor"))
    }

    /// The bytes of tensor `t` (constant or arena), to read. Out of line on the firmware
    /// (inlined, each operator's reads are a copy of it).
    #[cfg_attr(target_os = "none", inline(never))]
    pub(crate) fn input(&self, t: usize) -> Result<&'a [u8], MemError> {
        let p = self.place(t)?;
        match p.storage {
            Storage::Constant => Ok(self.model.constant_at(p)),
            Storage::Arena => {
                debug_assert!(p.offset + p.bytes <= self.arena_len);
                // SAFETY: inside the arena (every arena tensor is: checked at load, see
                // `OpMem`); no output of the running operator overlaps it (checked at load),
                // so nothing writes it while this slice lives.
                Ok(unsafe { core::slice::from_raw_parts(self.arena.add(p.offset), p.bytes) })
            }
        }
    }

    /// The bytes of arena tensor `t` (an output or scratch of the running operator), to
    /// write.
    pub(crate) fn output(&mut self, t: usize) -> Result<&mut [u8], MemError> {
        let p = self.place(t)?;
        if p.storage != Storage::Arena {
            return Err(MemError::new("an output is not an arena tensor"));
        }
        debug_assert!(p.offset + p.bytes <= self.arena_len);
        // SAFETY: inside the arena (an arena tensor: see `OpMem`); borrowed mutably from
        // `self`, so one at a time; no input slice overlaps it (checked at load) unless the
        // operator is in place.
        Ok(unsafe { core::slice::from_raw_parts_mut(self.arena.add(p.offset), p.bytes) })
    }

    /// Output `t` and scratch `s` at once (they do not overlap: checked at load).
    pub(crate) fn output_and_temp(
        &mut self,
        t: usize,
        s: usize,
    ) -> Result<(&mut [u8], &mut [u8]), MemError> {
        let (ti, si) = (self.place(t)?, self.place(s)?);
        let ok = |i: &Place| i.storage == Storage::Arena;
        let disjoint = ti.offset + ti.bytes <= si.offset || si.offset + si.bytes <= ti.offset;
        let overlap = !disjoint && ti.bytes > 0 && si.bytes > 0;
        if !ok(&ti) || !ok(&si) || t == s || overlap {
            return Err(MemError::new("an operator's output and scratch overlap"));
        }
        debug_assert!(ti.offset + ti.bytes <= self.arena_len);
        debug_assert!(si.offset + si.bytes <= self.arena_len);
        // SAFETY: both arena tensors (checked above), so inside the arena (see `OpMem`), and
        // disjoint (checked above), borrowed from `self`.
        unsafe {
            Ok((
                core::slice::from_raw_parts_mut(self.arena.add(ti.offset), ti.bytes),
                core::slice::from_raw_parts_mut(self.arena.add(si.offset), si.bytes),
            ))
        }
    }

    /// For an operator working in place: input `i` and output `o`, which start at the same
    /// arena offset, as one buffer (as long as the longer of the two; the operator reads the
    /// input only through it), and scratch `s`, disjoint from it.
    pub(crate) fn in_place_and_temp(
        &mut self,
        i: usize,
        o: usize,
        s: usize,
    ) -> Result<(&mut [u8], &mut [u8]), MemError> {
        let (ii, oi, si) = (self.place(i)?, self.place(o)?, self.place(s)?);
        let arena = |x: &Place| x.storage == Storage::Arena;
        let len = ii.bytes.max(oi.bytes);
        let disjoint = || ii.offset + len <= si.offset || si.offset + si.bytes <= ii.offset;
        if !arena(&ii)
            || !arena(&oi)
            || !arena(&si)
            || ii.offset != oi.offset
            || !(si.bytes == 0 || disjoint())
        {
            return Err(MemError::new(
                "an in-place operator's tensors are not laid out for it",
            ));
        }
        debug_assert!(ii.offset + len <= self.arena_len);
        debug_assert!(si.offset + si.bytes <= self.arena_len);
        // SAFETY: both inside the arena (arena tensors, checked above: see `OpMem`; the
        // input and output start together, so the longer one ends the buffer) and disjoint
        // (checked above), borrowed from `self`; the input is not lent out as a shared slice
        // meanwhile (the operator reads it only through the first slice).
        unsafe {
            Ok((
                core::slice::from_raw_parts_mut(self.arena.add(ii.offset), len),
                core::slice::from_raw_parts_mut(self.arena.add(si.offset), si.bytes),
            ))
        }
    }

    pub(crate) fn model(&self) -> &Model<'a> {
        &self.model
    }
}

/// Bytes viewed as elements of `T` (a plain number type). Blob constants and arena tensors
/// are 16-byte aligned, so the views always fit; a misaligned slice gives an empty view.
pub(crate) fn cast<T: Pod>(b: &[u8]) -> &[T] {
    // SAFETY: T is a plain number type (every bit pattern valid, no padding).
    let (pre, mid, _) = unsafe { b.align_to::<T>() };
    if pre.is_empty() {
        mid
    } else {
        &[]
    }
}

/// [`cast`] for writing.
pub(crate) fn cast_mut<T: Pod>(b: &mut [u8]) -> &mut [T] {
    // SAFETY: as in `cast`.
    let (pre, mid, _) = unsafe { b.align_to_mut::<T>() };
    if pre.is_empty() {
        mid
    } else {
        &mut []
    }
}

/// Plain number types: every bit pattern is a value.
pub(crate) trait Pod: Copy {}
impl Pod for f32 {}
impl Pod for i8 {}
impl Pod for u8 {}
impl Pod for i16 {}
impl Pod for i32 {}
impl Pod for u32 {}
impl Pod for i64 {}

/// Shared checks for `check` functions. Not inlined: they run once at load, and one copy of
/// each (not one per call site) keeps a microcontroller firmware small.
pub(crate) mod checks {
    use super::*;

    /// The tensor info of input `i`, required.
    #[inline(never)]
    pub(crate) fn input<'a>(op: &OpView<'a>, i: usize) -> Result<TensorInfo<'a>, Error> {
        op.input(i)
            .and_then(|t| op.model().tensor(t))
            .ok_or_else(|| op.error("a required input is missing"))
    }

    /// The tensor info of output `i`, required.
    #[inline(never)]
    pub(crate) fn output<'a>(op: &OpView<'a>, i: usize) -> Result<TensorInfo<'a>, Error> {
        op.output(i)
            .and_then(|t| op.model().tensor(t))
            .ok_or_else(|| op.error("a required output is missing"))
    }

    /// The tensor info of scratch `i`, required.
    #[inline(never)]
    pub(crate) fn temp<'a>(op: &OpView<'a>, i: usize) -> Result<TensorInfo<'a>, Error> {
        op.temp(i)
            .and_then(|t| op.model().tensor(t))
            .ok_or_else(|| op.error("a required scratch buffer is missing"))
    }

    /// Requires exactly these counts of inputs, outputs, scratch tensors and parameters.
    #[inline(never)]
    pub(crate) fn counts(
        op: &OpView,
        inputs: usize,
        outputs: usize,
        temps: usize,
        params: usize,
    ) -> Result<(), Error> {
        if op.num_inputs() != inputs
            || op.num_outputs() != outputs
            || op.num_temps() != temps
            || op.num_params() != params
        {
            return Err(op.error("wrong number of tensors or parameters"));
        }
        Ok(())
    }

    /// The error of an f32 operator in a build without the f32 forms.
    #[cold]
    pub(crate) fn no_f32(op: &OpView) -> Error {
        op.error("f32 operators are not in this build (edgemm's feature `f32`)")
    }

    /// `Ok(float)` when this build has the form: an f32 operator (`float`) is an error
    /// without the feature `f32`, and the `Ok` is then a constant `false`, so the caller's
    /// f32 branches compile out.
    #[inline(always)]
    pub(crate) fn float_form(op: &OpView, float: bool) -> Result<bool, Error> {
        if float && !F32 {
            return Err(no_f32(op));
        }
        Ok(F32 && float)
    }

    /// Requires a dtype.
    #[inline(never)]
    pub(crate) fn dtype(op: &OpView, t: &TensorInfo, want: DType) -> Result<(), Error> {
        if t.dtype != want {
            return Err(op.error("a tensor has the wrong element type"));
        }
        Ok(())
    }
}

/// What a session prepares for an operator when it is created (feature `alloc`): for the
/// operators that have a plan (FULLY_CONNECTED of one row, int8 CONV_2D in the implicit-GEMM
/// form), their tensors' places and kernel or GEMM, so that running them reads no record and
/// validates nothing again; the others run through [`run_in`].
#[cfg(feature = "alloc")]
#[derive(Clone, Copy)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Plan<'m> {
    General,
    FullyConnected(fully_connected::Plan<'m>),
    Conv(conv::Plan<'m>),
}

#[cfg(feature = "alloc")]
impl core::fmt::Debug for Plan<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Plan::General => "General",
            Plan::FullyConnected(_) => "FullyConnected",
            Plan::Conv(_) => "Conv",
        })
    }
}

/// Every operator's plan for `model` over an arena of `arena_len` bytes, in order.
#[cfg(feature = "alloc")]
pub(crate) fn plans<'m>(model: &Model<'m>, arena_len: usize) -> alloc::vec::Vec<Plan<'m>> {
    (0..model.num_ops())
        .map(|i| {
            model
                .op(i)
                .map_or(Plan::General, |op| Plan::of(&op, arena_len))
        })
        .collect()
}

#[cfg(feature = "alloc")]
impl<'m> Plan<'m> {
    /// The plan of a checked operator over an arena of `arena_len` bytes.
    pub(crate) fn of(op: &OpView<'m>, arena_len: usize) -> Self {
        if op.code == fully_connected::DEF.code {
            if let Some(p) = fully_connected::plan(op, arena_len) {
                return Plan::FullyConnected(p);
            }
        }
        if op.code == conv::DEF.code {
            if let Some(p) = conv::plan(op, arena_len) {
                return Plan::Conv(p);
            }
        }
        Plan::General
    }

    /// Runs the operator by its plan if it has one, is in `OPS` and `FORMS` (else false,
    /// having written nothing: the caller runs it through [`run_in`]).
    ///
    /// # Safety
    /// `arena` is valid for reads and writes of the `arena_len` bytes given to
    /// [`Plan::of`], 16-byte aligned, and nothing else accesses it meanwhile.
    #[inline]
    pub(crate) unsafe fn run<const OPS: u128, const FORMS: u32>(
        &self,
        arena: *mut u8,
        threads: usize,
    ) -> bool {
        let threads = if cfg!(feature = "std") { threads } else { 1 };
        match self {
            Plan::FullyConnected(p)
                if OPS & (1u128 << fully_connected::DEF.code) != 0 && FORM_GEMM & !FORMS == 0 =>
            {
                // SAFETY: forwarded (caller).
                unsafe { p.run(arena, threads) }
            }
            // (An error, which load-time checks rule out, is left to the operator's `run`
            // to report: the implicit form never works in place (conv's `check_implicit`),
            // so its input is intact and that run writes its output and scratch again.)
            Plan::Conv(p) if OPS & (1u128 << conv::DEF.code) != 0 && FORM_GEMM & !FORMS == 0 => {
                // SAFETY: forwarded (caller).
                unsafe { p.run(arena, threads) }.is_ok()
            }
            _ => false,
        }
    }
}
