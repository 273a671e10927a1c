//! The one error type of the crate. Every variant carries what is needed to say what was
//! wrong without allocating, so it works the same with and without `alloc`.

use core::fmt;

/// Which operand of a call an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    A,
    B,
    C,
    /// A view built directly with `MatRef::new`/`MatMut::new` (no call yet).
    View,
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operand::A => "A",
            Operand::B => "B",
            Operand::C => "C",
            Operand::View => "view",
        })
    }
}

/// A short kernel name held inline (kernel names are ASCII and well under 48 bytes), so an
/// unknown name from `EDGEMM_KERNEL` can be reported without allocating. (Its first 23 bytes
/// with the feature `terse-errors`, which keeps [`Error`] small.)
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KernelName {
    len: u8,
    bytes: [u8; KERNEL_NAME_BYTES],
}

#[cfg(not(feature = "terse-errors"))]
const KERNEL_NAME_BYTES: usize = 47;
#[cfg(feature = "terse-errors")]
const KERNEL_NAME_BYTES: usize = 23;

impl KernelName {
    pub(crate) fn new(name: &str) -> Self {
        let mut bytes = [0u8; KERNEL_NAME_BYTES];
        // Keep whole UTF-8 characters only, so `as_str` is always valid.
        let mut len = name.len().min(bytes.len());
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        KernelName {
            len: len as u8,
            bytes,
        }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("?")
    }
}

impl fmt::Debug for KernelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Everything that can go wrong in a call. Bad input never panics: it comes back as one of
/// these, and its `Display` says what was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A view reaches an element outside its slice (or its extent overflows `isize`).
    OutOfBounds {
        operand: Operand,
        rows: usize,
        cols: usize,
        row_stride: isize,
        col_stride: isize,
        len: usize,
    },
    /// A mutable view whose strides map two different elements to one memory location.
    Aliasing {
        operand: Operand,
        rows: usize,
        cols: usize,
        row_stride: isize,
        col_stride: isize,
    },
    /// A sub-view that does not lie inside its parent.
    SubviewOutOfRange {
        row: usize,
        col: usize,
        rows: usize,
        cols: usize,
        parent_rows: usize,
        parent_cols: usize,
    },
    /// Operand shapes that do not multiply: A is m×k, B is k×n, C is m×n.
    DimensionMismatch {
        a: (usize, usize),
        b: (usize, usize),
        c: (usize, usize),
    },
    /// The output overlaps an input (raw-pointer entry point only; safe views cannot).
    OutputOverlapsInput { operand: Operand },
    /// A null pointer for a non-empty matrix (raw-pointer entry point).
    NullPointer { operand: Operand },
    /// `Par::Threads(0)`.
    ZeroThreads,
    /// A kernel name (from `EDGEMM_KERNEL` or a lookup) that no compiled kernel has.
    UnknownKernel { name: KernelName },
    /// A kernel exists but this CPU cannot run it.
    KernelNotSupported {
        name: &'static str,
        isa: &'static str,
    },
    /// A kernel of another family (an int8 kernel passed to `sgemm`, say).
    WrongKernelKind {
        name: &'static str,
        expected: &'static str,
    },
    /// A prepacked operand used with a different kernel than it was packed for.
    PackingMismatch {
        packed_for: &'static str,
        kernel: &'static str,
    },
    /// A model blob whose weights are packed for a target this build does not run (its
    /// packing name, e.g. `cortex-m4-dsp`, and this build's best target, e.g.
    /// `x86_64-avx512-vnni`).
    TargetMismatch {
        made_for: &'static str,
        this_build: &'static str,
    },
    /// A caller-provided workspace (or buffer to pack into) that is too small (sizes in
    /// bytes: see `sgemm_workspace_size`, `qgemm_workspace_size`, `qgemm_packed_b_size`).
    WorkspaceTooSmall { needed: usize, got: usize },
    /// Bytes that are not a valid prepacked operand (`PackedQBRef::from_bytes`): what is
    /// wrong with them.
    InvalidPacked { reason: &'static str },
    /// A size computation overflowed `usize`.
    SizeOverflow,
    /// A zero point outside its type's range.
    ZeroPointOutOfRange {
        operand: Operand,
        value: i32,
        min: i32,
        max: i32,
    },
    /// k too large for the int8 sums to be exact with these zero points.
    KTooLarge { k: usize, max: usize },
    /// A requantization shift outside −31..=30.
    ShiftOutOfRange { channel: usize, shift: i32 },
    /// A per-column array (bias, per-channel scale) of the wrong length.
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// An output clamp that leaves no value of the output type.
    EmptyClamp { min: i32, max: i32 },
    /// A scale that is infinite, NaN, or too large to express with a shift ≤ 30.
    InvalidScale,
    /// A convolution parameter out of range (a zero channel count, kernel size, stride,
    /// dilation or group count).
    ConvParam {
        name: &'static str,
        value: usize,
        requirement: &'static str,
    },
    /// A group count that does not divide both channel counts.
    ConvGroups {
        groups: usize,
        in_channels: usize,
        out_channels: usize,
    },
    /// A clamp activation whose bounds are NaN or out of order.
    ConvClamp,
    /// A tensor (input, filter, bias or output) whose slice length does not match its shape.
    ConvTensorLength {
        tensor: &'static str,
        expected: usize,
        got: usize,
    },
    /// An input whose channel count is not the layer's.
    ConvChannels { expected: usize, got: usize },
    /// An input (plus its padding) smaller than the dilated kernel along one axis.
    ConvInputTooSmall {
        axis: &'static str,
        padded: usize,
        kernel_extent: usize,
    },
    /// An algorithm asked for that cannot compute this layer.
    ConvAlgorithm {
        algorithm: &'static str,
        reason: &'static str,
    },
    /// int8 convolution quantization parameters that do not fit (see `conv::ConvQuant`).
    ConvQuant { reason: &'static str },
    /// A model file or blob that is malformed or uses something not supported: what, and
    /// where (byte offset, operator, tensor and its name). See [`crate::nn::ModelError`].
    Model(crate::nn::ModelError),
    /// A WAV file that is malformed or not in the format asked for, or a frontend call with a
    /// buffer of the wrong size. See [`crate::audio::AudioError`].
    Audio(crate::audio::AudioError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::OutOfBounds {
                operand,
                rows,
                cols,
                row_stride,
                col_stride,
                len,
            } => write!(
                f,
                "{operand}: a {rows}x{cols} view with strides ({row_stride}, {col_stride}) \
                 reaches outside its slice of {len} elements (or its extent overflows isize)"
            ),
            Error::Aliasing {
                operand,
                rows,
                cols,
                row_stride,
                col_stride,
            } => write!(
                f,
                "{operand}: a mutable {rows}x{cols} view with strides ({row_stride}, \
                 {col_stride}) maps two elements to the same memory location"
            ),
            Error::SubviewOutOfRange {
                row,
                col,
                rows,
                cols,
                parent_rows,
                parent_cols,
            } => write!(
                f,
                "sub-view of {rows}x{cols} at ({row}, {col}) does not fit in a \
                 {parent_rows}x{parent_cols} matrix"
            ),
            Error::DimensionMismatch { a, b, c } => write!(
                f,
                "dimension mismatch: A is {}x{}, B is {}x{}, C is {}x{} \
                 (need A m x k, B k x n, C m x n)",
                a.0, a.1, b.0, b.1, c.0, c.1
            ),
            Error::OutputOverlapsInput { operand } => {
                write!(
                    f,
                    "C overlaps {operand} in memory; the output must not alias an input"
                )
            }
            Error::NullPointer { operand } => {
                write!(f, "{operand}: null pointer for a non-empty matrix")
            }
            Error::ZeroThreads => {
                f.write_str("Par::Threads(0): the thread count must be at least 1")
            }
            Error::UnknownKernel { name } => write!(
                f,
                "no kernel named {:?} is compiled into this build (edgemm::kernels() lists them)",
                name.as_str()
            ),
            Error::KernelNotSupported { name, isa } => {
                write!(f, "kernel {name} needs {isa}, which this CPU does not have")
            }
            Error::WrongKernelKind { name, expected } => {
                write!(f, "kernel {name} is not a {expected} kernel")
            }
            Error::PackingMismatch { packed_for, kernel } => write!(
                f,
                "operand was packed for kernel {packed_for} but the call uses {kernel}; \
                 pack it again for this kernel"
            ),
            Error::TargetMismatch {
                made_for,
                this_build,
            } => write!(
                f,
                "the model blob was converted for target {made_for}, but this build runs \
                 {this_build}: convert the model again for this target (or --target portable)"
            ),
            Error::WorkspaceTooSmall { needed, got } => {
                write!(f, "workspace too small: {got} bytes given, {needed} needed")
            }
            Error::InvalidPacked { reason } => {
                write!(f, "not a valid prepacked operand: {reason}")
            }
            Error::SizeOverflow => f.write_str("a size computation overflowed usize"),
            Error::ZeroPointOutOfRange {
                operand,
                value,
                min,
                max,
            } => write!(
                f,
                "{operand}: zero point {value} is outside the type's range {min}..={max}"
            ),
            Error::KTooLarge { k, max } => write!(
                f,
                "k = {k} is too large for exact int8 sums with these zero points (at most {max})"
            ),
            Error::ShiftOutOfRange { channel, shift } => write!(
                f,
                "requantization shift {shift} (channel {channel}) is outside -31..=30"
            ),
            Error::LengthMismatch {
                what,
                expected,
                got,
            } => write!(
                f,
                "{what} has {got} entries, expected {expected} (one per column)"
            ),
            Error::EmptyClamp { min, max } => write!(
                f,
                "output clamp [{min}, {max}] leaves no value of the output type"
            ),
            Error::InvalidScale => f.write_str(
                "scale must be finite and below 2^30 to be expressed as a multiplier and shift",
            ),
            Error::ConvParam {
                name,
                value,
                requirement,
            } => write!(f, "convolution parameter {name} = {value}: {requirement}"),
            Error::ConvGroups {
                groups,
                in_channels,
                out_channels,
            } => write!(
                f,
                "convolution groups = {groups} must divide both in_channels = {in_channels} \
                 and out_channels = {out_channels}"
            ),
            Error::ConvClamp => {
                f.write_str("clamp activation: min and max must not be NaN and min must be <= max")
            }
            Error::ConvTensorLength {
                tensor,
                expected,
                got,
            } => write!(
                f,
                "convolution {tensor}: slice of {got} elements, its shape needs {expected}"
            ),
            Error::ConvChannels { expected, got } => write!(
                f,
                "convolution input has {got} channels, the layer takes {expected}"
            ),
            Error::ConvInputTooSmall {
                axis,
                padded,
                kernel_extent,
            } => write!(
                f,
                "convolution input {axis} with padding is {padded}, smaller than the \
                 dilated kernel ({kernel_extent})"
            ),
            Error::ConvAlgorithm { algorithm, reason } => {
                write!(
                    f,
                    "convolution algorithm {algorithm} cannot run this layer: {reason}"
                )
            }
            Error::ConvQuant { reason } => {
                write!(f, "int8 convolution quantization: {reason}")
            }
            Error::Model(e) => fmt::Display::fmt(&e, f),
            Error::Audio(e) => fmt::Display::fmt(&e, f),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
