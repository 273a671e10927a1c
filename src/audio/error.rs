//! What is wrong with a WAV file or a frontend call, without allocating: a fixed reason whose
//! `{}` placeholders are filled from up to two numbers, and the byte offset in the file when
//! there is one. Fits in [`crate::Error::Audio`].

use core::fmt;

const NONE: u32 = u32::MAX;

/// An audio error. Displays like
///
/// ```text
/// WAV file (byte 24): sample rate 44100 Hz; firmware reads 16000 Hz only (audio::load_wav converts on the host)
/// WAV file (byte 40): data chunk of 32000 bytes runs past the end of the file (31990 left)
/// audio frontend: output buffer holds 400 floats, 49 frames need 490
/// ```
///
/// With edgemm's feature `terse-errors` it keeps the offset only (the reason is
/// [`crate::nn::TERSE_REASON`], no numbers).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AudioError {
    #[cfg(not(feature = "terse-errors"))]
    reason: &'static str,
    offset: u32,
    #[cfg(not(feature = "terse-errors"))]
    n_values: u8,
    #[cfg(not(feature = "terse-errors"))]
    values: [i64; 2],
}

impl AudioError {
    /// An error about a call (no file offset).
    pub(crate) const fn new(reason: &'static str) -> Self {
        #[cfg(feature = "terse-errors")]
        let _ = reason;
        AudioError {
            #[cfg(not(feature = "terse-errors"))]
            reason,
            offset: NONE,
            #[cfg(not(feature = "terse-errors"))]
            n_values: 0,
            #[cfg(not(feature = "terse-errors"))]
            values: [0; 2],
        }
    }

    /// An error about a WAV file at byte `offset`.
    pub(crate) fn wav(reason: &'static str, offset: usize) -> Self {
        let mut e = Self::new(reason);
        e.offset = u32::try_from(offset).unwrap_or(NONE - 1);
        e
    }

    /// Sets the numbers for the reason's `{}` placeholders (at most 2 kept).
    #[cfg(not(feature = "terse-errors"))]
    pub(crate) fn with(mut self, values: &[i64]) -> Self {
        let n = values.len().min(2);
        self.values[..n].copy_from_slice(&values[..n]);
        self.n_values = n as u8;
        self
    }

    /// (None kept with the feature `terse-errors`.)
    #[cfg(feature = "terse-errors")]
    pub(crate) fn with(self, values: &[i64]) -> Self {
        let _ = values;
        self
    }

    /// The reason, placeholders unfilled.
    pub fn reason(&self) -> &'static str {
        #[cfg(not(feature = "terse-errors"))]
        return self.reason;
        #[cfg(feature = "terse-errors")]
        crate::nn::TERSE_REASON
    }

    /// The byte offset in the WAV file, if the error is about one.
    pub fn offset(&self) -> Option<usize> {
        (self.offset != NONE).then_some(self.offset as usize)
    }

    /// The numbers that fill the reason's placeholders.
    pub fn values(&self) -> &[i64] {
        #[cfg(not(feature = "terse-errors"))]
        return &self.values[..self.n_values as usize];
        #[cfg(feature = "terse-errors")]
        &[]
    }
}

impl fmt::Display for AudioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset() {
            Some(o) => write!(f, "WAV file (byte {o}): ")?,
            None => f.write_str("audio frontend: ")?,
        }
        let mut values = self.values().iter();
        let mut parts = self.reason().split("{}");
        if let Some(first) = parts.next() {
            f.write_str(first)?;
        }
        for part in parts {
            match values.next() {
                Some(v) => write!(f, "{v}")?,
                None => f.write_str("?")?,
            }
            f.write_str(part)?;
        }
        Ok(())
    }
}

impl fmt::Debug for AudioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AudioError(\"{self}\")")
    }
}

impl From<AudioError> for crate::Error {
    fn from(e: AudioError) -> Self {
        crate::Error::Audio(e)
    }
}
