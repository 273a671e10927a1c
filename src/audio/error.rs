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
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AudioError {
    reason: &'static str,
    offset: u32,
    n_values: u8,
    values: [i64; 2],
}

impl AudioError {
    /// An error about a call (no file offset).
    pub(crate) const fn new(reason: &'static str) -> Self {
        AudioError {
            reason,
            offset: NONE,
            n_values: 0,
            values: [0; 2],
        }
    }

    /// An error about a WAV file at byte `offset`.
    pub(crate) fn wav(reason: &'static str, offset: usize) -> Self {
        AudioError {
            offset: u32::try_from(offset).unwrap_or(NONE - 1),
            ..Self::new(reason)
        }
    }

    /// Sets the numbers for the reason's `{}` placeholders (at most 2 kept).
    pub(crate) fn with(mut self, values: &[i64]) -> Self {
        let n = values.len().min(2);
        self.values[..n].copy_from_slice(&values[..n]);
        self.n_values = n as u8;
        self
    }

    /// The reason, placeholders unfilled.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The byte offset in the WAV file, if the error is about one.
    pub fn offset(&self) -> Option<usize> {
        (self.offset != NONE).then_some(self.offset as usize)
    }

    /// The numbers that fill the reason's placeholders.
    pub fn values(&self) -> &[i64] {
        &self.values[..self.n_values as usize]
    }
}

impl fmt::Display for AudioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset() {
            Some(o) => write!(f, "WAV file (byte {o}): ")?,
            None => f.write_str("audio frontend: ")?,
        }
        let mut values = self.values().iter();
        let mut parts = self.reason.split("{}");
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
