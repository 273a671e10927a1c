//! What is wrong with a model file or blob, without allocating.
//!
//! One [`ModelError`] type serves the format readers (TFLite, ONNX; feature `alloc`) and the
//! `no_std` blob loader: a fixed reason plus the context that locates the problem (byte
//! offset, operator index, tensor index, a short name), all `Copy`, so it fits in
//! [`crate::Error::Model`].

use core::fmt;

/// Which kind of file a [`ModelError`] is about (the first words of its message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelFormat {
    /// A TFLite flatbuffer (`.tflite`).
    Tflite,
    /// An ONNX protobuf (`.onnx`).
    Onnx,
    /// An edgemm model blob.
    Blob,
    /// A model as edgemm's graph IR (importing, lowering, running).
    Graph,
}

impl ModelFormat {
    /// The words that start a message about this kind of file.
    pub fn label(self) -> &'static str {
        match self {
            ModelFormat::Tflite => "TFLite model",
            ModelFormat::Onnx => "ONNX model",
            ModelFormat::Blob => "model blob",
            ModelFormat::Graph => "model",
        }
    }
}

/// A tensor or operator name held inline (truncated to [`ShortName::CAPACITY`] bytes on a
/// character boundary), so an error can name it without allocating.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortName {
    len: u8,
    truncated: bool,
    bytes: [u8; ShortName::CAPACITY],
}

impl ShortName {
    /// How many bytes of a name are kept.
    pub const CAPACITY: usize = 30;

    /// The first [`Self::CAPACITY`] bytes of `name` (whole characters only).
    pub fn new(name: &str) -> Self {
        let mut bytes = [0u8; Self::CAPACITY];
        let mut len = name.len().min(Self::CAPACITY);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        if let (Some(dst), Some(src)) = (bytes.get_mut(..len), name.as_bytes().get(..len)) {
            dst.copy_from_slice(src);
        }
        ShortName {
            len: len as u8,
            truncated: len < name.len(),
            bytes,
        }
    }

    /// The kept part of the name.
    pub fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..self.len as usize).unwrap_or(&[]);
        core::str::from_utf8(bytes).unwrap_or("?")
    }

    /// Whether the name was longer than what is kept.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

impl fmt::Debug for ShortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)?;
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

// Indices are stored as u32 with this sentinel to keep the error (and so `crate::Error`) small;
// model files address at most 4 GiB anyway.
const NONE: u32 = u32::MAX;

/// What is wrong with a model file or blob: a fixed reason and where it was found.
///
/// The reason may contain `{}` placeholders, filled in order from [`ModelError::values`] when
/// displayed, so numbers can be reported without allocating. The display reads like
///
/// ```text
/// TFLite model: tensor 12 "conv1/weights" (byte 2380): constant data is 300 bytes, shape needs 288
/// TFLite model: operator 3 "CONV_2D" (byte 5124): input 1 is tensor 90, out of range (57 tensors)
/// TFLite model (byte 1804): a vector runs past the end of the file
/// ```
///
/// The name, when present, is the tensor's if a tensor index is set, else the operator's.
///
/// With edgemm's feature `terse-errors` (for a firmware short of flash) it keeps the kind of
/// file and the offset, operator and tensor indices only: no reason text, numbers or name
/// (see [`TERSE_REASON`]), so the messages are not in the firmware and the error is small.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ModelError {
    format: ModelFormat,
    #[cfg(not(feature = "terse-errors"))]
    reason: &'static str,
    offset: u32,
    operator: u32,
    tensor: u32,
    #[cfg(not(feature = "terse-errors"))]
    n_values: u8,
    #[cfg(not(feature = "terse-errors"))]
    values: [i64; 3],
    #[cfg(not(feature = "terse-errors"))]
    name: Option<ShortName>,
}

/// The reason every [`ModelError`] gives in a build with the feature `terse-errors`, which
/// drops the reasons (the same model run on the host, or through `edgemm run`, names it).
pub const TERSE_REASON: &str =
    "refused (this build has edgemm's feature `terse-errors`: load the model on the host for the reason)";

fn index(i: usize) -> u32 {
    // An index too large to store is shown as unknown rather than wrapped.
    u32::try_from(i).unwrap_or(NONE)
}

fn opt(i: u32) -> Option<usize> {
    (i != NONE).then_some(i as usize)
}

impl ModelError {
    /// An error with a reason and no context yet (the reason is dropped with the feature
    /// `terse-errors`).
    #[inline(always)]
    pub const fn new(format: ModelFormat, reason: &'static str) -> Self {
        #[cfg(feature = "terse-errors")]
        let _ = reason;
        ModelError {
            format,
            #[cfg(not(feature = "terse-errors"))]
            reason,
            offset: NONE,
            operator: NONE,
            tensor: NONE,
            #[cfg(not(feature = "terse-errors"))]
            n_values: 0,
            #[cfg(not(feature = "terse-errors"))]
            values: [0; 3],
            #[cfg(not(feature = "terse-errors"))]
            name: None,
        }
    }

    /// Sets the byte offset in the file where the problem was found.
    pub fn with_offset(mut self, offset: usize) -> Self {
        self.offset = index(offset);
        self
    }

    /// Sets the index of the operator the problem is in.
    pub fn with_operator(mut self, operator: usize) -> Self {
        self.operator = index(operator);
        self
    }

    /// Sets the index of the tensor the problem is in.
    pub fn with_tensor(mut self, tensor: usize) -> Self {
        self.tensor = index(tensor);
        self
    }

    /// Sets the name of the tensor (or operator) the problem is in (not kept with the
    /// feature `terse-errors`).
    #[cfg(not(feature = "terse-errors"))]
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(ShortName::new(name));
        self
    }

    /// Sets the name of the tensor (or operator) the problem is in (not kept with the
    /// feature `terse-errors`).
    #[cfg(feature = "terse-errors")]
    #[inline(always)]
    pub fn with_name(self, name: &str) -> Self {
        let _ = name;
        self
    }

    /// Sets the numbers that fill the reason's `{}` placeholders (at most 3 are kept; none
    /// with the feature `terse-errors`).
    #[cfg(not(feature = "terse-errors"))]
    pub fn with_values(mut self, values: &[i64]) -> Self {
        let n = values.len().min(self.values.len());
        if let (Some(dst), Some(src)) = (self.values.get_mut(..n), values.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.n_values = n as u8;
        self
    }

    /// Sets the numbers that fill the reason's `{}` placeholders (at most 3 are kept; none
    /// with the feature `terse-errors`).
    #[cfg(feature = "terse-errors")]
    #[inline(always)]
    pub fn with_values(self, values: &[i64]) -> Self {
        let _ = values;
        self
    }

    /// The kind of file.
    pub fn format(&self) -> ModelFormat {
        self.format
    }

    /// The reason, with its `{}` placeholders unfilled ([`TERSE_REASON`] with the feature
    /// `terse-errors`).
    pub fn reason(&self) -> &'static str {
        #[cfg(not(feature = "terse-errors"))]
        return self.reason;
        #[cfg(feature = "terse-errors")]
        TERSE_REASON
    }

    /// The byte offset in the file where the problem was found, if known.
    pub fn offset(&self) -> Option<usize> {
        opt(self.offset)
    }

    /// The index of the operator the problem is in, if any.
    pub fn operator(&self) -> Option<usize> {
        opt(self.operator)
    }

    /// The index of the tensor the problem is in, if any.
    pub fn tensor(&self) -> Option<usize> {
        opt(self.tensor)
    }

    /// The tensor's (or else the operator's) name, if known (never with the feature
    /// `terse-errors`).
    pub fn name(&self) -> Option<&ShortName> {
        #[cfg(not(feature = "terse-errors"))]
        return self.name.as_ref();
        #[cfg(feature = "terse-errors")]
        None
    }

    /// The numbers that fill the reason's placeholders.
    pub fn values(&self) -> &[i64] {
        #[cfg(not(feature = "terse-errors"))]
        return self.values.get(..self.n_values as usize).unwrap_or(&[]);
        #[cfg(feature = "terse-errors")]
        &[]
    }
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.format.label())?;
        let mut sep = ": ";
        if let Some(op) = self.operator() {
            write!(f, "{sep}operator {op}")?;
            sep = ", ";
        }
        if let Some(t) = self.tensor() {
            write!(f, "{sep}tensor {t}")?;
            sep = ", ";
        }
        if let Some(name) = self.name() {
            if sep == ": " {
                write!(f, "{sep}")?;
            } else {
                f.write_str(" ")?;
            }
            write!(f, "\"{}", name.as_str())?;
            f.write_str(if name.truncated { "...\"" } else { "\"" })?;
        }
        if let Some(off) = self.offset() {
            write!(f, " (byte {off})")?;
        }
        f.write_str(": ")?;
        let mut rest = self.reason();
        let mut values = self.values().iter();
        while let Some(at) = rest.find("{}") {
            f.write_str(rest.get(..at).unwrap_or(""))?;
            match values.next() {
                Some(v) => write!(f, "{v}")?,
                None => f.write_str("?")?,
            }
            rest = rest.get(at + 2..).unwrap_or("");
        }
        f.write_str(rest)
    }
}

impl fmt::Debug for ModelError {
    // The message is the useful view; the raw fields (sentinels, unfilled reason) are not.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelError({self})")
    }
}
