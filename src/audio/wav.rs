//! A `no_std` reader of RIFF/WAVE files: the header chunks are checked (every length against
//! what is left of the file), the `fmt ` and `data` chunks found, any other chunk skipped.
//! [`Wav::parse`] accepts what the host loader can convert (PCM integers of 8/16/24/32 bits,
//! 32-bit floats, plain or WAVE_FORMAT_EXTENSIBLE, any channel count and rate);
//! [`Wav::pcm16_mono_16k`] accepts only what the frontend reads directly (firmware).
//!
//! Layout (little-endian): "RIFF" u32(size of the rest) "WAVE", then chunks of
//! id[4] u32(size) bytes[size] (+ 1 pad byte when size is odd). `fmt ` holds u16 format tag
//! (1 PCM, 3 IEEE float, 0xFFFE extensible), u16 channels, u32 sample rate, u32 byte rate,
//! u16 block align (bytes per frame of all channels), u16 bits per sample, and for
//! extensible: u16 extension size, u16 valid bits, u32 channel mask, a 16-byte subformat GUID
//! whose first two bytes are the real tag.

use super::error::AudioError;
use crate::Error;

/// How samples are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WavFormat {
    /// Integers: 8-bit unsigned (offset 128), 16/24/32-bit signed.
    Int,
    /// IEEE 32-bit floats.
    Float,
}

/// A parsed WAV file, borrowing its sample bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wav<'a> {
    /// Sample encoding.
    pub format: WavFormat,
    /// Interleaved channels (≥ 1).
    pub channels: u16,
    /// Frames per second (≥ 1).
    pub sample_rate: u32,
    /// Bits per sample: 8, 16, 24 or 32.
    pub bits: u16,
    /// The data chunk's bytes: whole frames of `channels` samples.
    pub data: &'a [u8],
    /// Where `data` starts in the file.
    pub data_offset: usize,
}

/// The subformat GUID of WAVE_FORMAT_EXTENSIBLE after its first two bytes (the tag).
const GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71,
];

fn err(reason: &'static str, offset: usize) -> Error {
    AudioError::wav(reason, offset).into()
}

fn err_v(reason: &'static str, offset: usize, values: &[i64]) -> Error {
    AudioError::wav(reason, offset).with(values).into()
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    // Callers check `at + 2 <= b.len()`; a short read gives 0 rather than a panic.
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// The fields of a `fmt ` chunk.
struct Fmt {
    format: WavFormat,
    channels: u16,
    rate: u32,
    bits: u16,
    block_align: u16,
}

/// Reads the `fmt ` chunk whose body `body` starts at byte `at` of the file.
fn parse_fmt(body: &[u8], at: usize) -> Result<Fmt, Error> {
    if body.len() < 16 {
        return Err(err_v(
            "fmt chunk of {} bytes, needs 16",
            at - 4,
            &[body.len() as i64],
        ));
    }
    let mut tag = u16_at(body, 0);
    let channels = u16_at(body, 2);
    let rate = u32_at(body, 4);
    let block_align = u16_at(body, 12);
    let bits = u16_at(body, 14);
    if tag == 0xfffe {
        if body.len() < 40 {
            return Err(err_v(
                "extensible fmt chunk of {} bytes, needs 40",
                at - 4,
                &[body.len() as i64],
            ));
        }
        if body[26..40] != GUID_TAIL {
            return Err(err(
                "extensible fmt chunk with an unknown subformat GUID",
                at + 24,
            ));
        }
        tag = u16_at(body, 24);
    }
    let format = match tag {
        1 => WavFormat::Int,
        3 => WavFormat::Float,
        _ => {
            return Err(err_v(
                "format tag {} is not PCM (1) or IEEE float (3): compressed audio is not read",
                at,
                &[tag as i64],
            ))
        }
    };
    if channels == 0 {
        return Err(err("zero channels", at + 2));
    }
    if rate == 0 {
        return Err(err("sample rate 0", at + 4));
    }
    let bits_ok = match format {
        WavFormat::Int => matches!(bits, 8 | 16 | 24 | 32),
        WavFormat::Float => bits == 32,
    };
    if !bits_ok {
        return Err(err_v(
            "{} bits per sample: read are 8/16/24/32-bit integers and 32-bit floats",
            at + 14,
            &[bits as i64],
        ));
    }
    if block_align as u32 != channels as u32 * (bits as u32 / 8) {
        return Err(err_v(
            "block align {} is not channels x bytes per sample ({})",
            at + 12,
            &[block_align as i64, channels as i64 * (bits as i64 / 8)],
        ));
    }
    Ok(Fmt {
        format,
        channels,
        rate,
        bits,
        block_align,
    })
}

impl<'a> Wav<'a> {
    /// Parses a WAV file's header chunks; the samples stay in `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Wav<'a>, Error> {
        if bytes.len() < 12 {
            return Err(err_v(
                "{} bytes, shorter than a RIFF/WAVE header (12)",
                0,
                &[bytes.len() as i64],
            ));
        }
        match &bytes[0..4] {
            b"RIFF" => {}
            b"RIFX" => return Err(err("big-endian RIFX files are not read", 0)),
            b"RF64" => return Err(err("RF64 (64-bit size) files are not read", 0)),
            _ => return Err(err("not a RIFF file (no \"RIFF\" at its start)", 0)),
        }
        if &bytes[8..12] != b"WAVE" {
            return Err(err("a RIFF file, but not WAVE", 8));
        }
        let riff_size = u32_at(bytes, 4) as usize;
        let available = bytes.len() - 8;
        if riff_size > available || riff_size < 4 {
            return Err(err_v(
                "RIFF size {} does not fit the file ({} bytes after the size field)",
                4,
                &[riff_size as i64, available as i64],
            ));
        }
        let end = 8 + riff_size;
        let (mut fmt, mut data) = (None, None);
        let mut at = 12;
        while at < end {
            if end - at < 8 {
                return Err(err_v(
                    "{} stray bytes where a chunk header (8) was expected",
                    at,
                    &[(end - at) as i64],
                ));
            }
            let id = &bytes[at..at + 4];
            let size = u32_at(bytes, at + 4) as usize;
            let body_at = at + 8;
            if size > end - body_at {
                return Err(err_v(
                    "chunk of {} bytes runs past the end of the file ({} left)",
                    at + 4,
                    &[size as i64, (end - body_at) as i64],
                ));
            }
            let body = &bytes[body_at..body_at + size];
            match id {
                b"fmt " if fmt.is_some() => return Err(err("a second fmt chunk", at)),
                b"fmt " => fmt = Some(parse_fmt(body, body_at)?),
                b"data" if data.is_some() => return Err(err("a second data chunk", at)),
                b"data" => data = Some((body, body_at)),
                _ => {}
            }
            // Chunks are padded to an even size; a missing last pad byte is tolerated.
            at = (body_at + size).saturating_add(size & 1);
        }
        let Some(fmt) = fmt else {
            return Err(err("no fmt chunk", 12));
        };
        let Some((data, data_offset)) = data else {
            return Err(err("no data chunk", 12));
        };
        if data.len() % fmt.block_align as usize != 0 {
            return Err(err_v(
                "data chunk of {} bytes is not whole frames of {} bytes",
                data_offset - 4,
                &[data.len() as i64, fmt.block_align as i64],
            ));
        }
        Ok(Wav {
            format: fmt.format,
            channels: fmt.channels,
            sample_rate: fmt.rate,
            bits: fmt.bits,
            data,
            data_offset,
        })
    }

    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        // `parse` never gives a zero frame size; a hand-built `Wav` may.
        let frame = self.channels as usize * (self.bits as usize / 8);
        self.data.len().checked_div(frame).unwrap_or(0)
    }

    /// The samples if the file is what the frontend reads directly (16 kHz mono 16-bit PCM),
    /// else an error that says what it is instead.
    pub fn pcm16_mono_16k(&self) -> Result<Pcm16<'a>, Error> {
        // The fmt fields' offsets are not kept; errors point at the data chunk.
        let at = self.data_offset;
        if self.format == WavFormat::Float {
            return Err(err_v(
                "{}-bit float samples; firmware reads 16-bit PCM only (audio::load_wav converts on the host)",
                at,
                &[self.bits as i64],
            ));
        }
        if self.bits != 16 {
            return Err(err_v(
                "{}-bit integer samples; firmware reads 16-bit PCM only (audio::load_wav converts on the host)",
                at,
                &[self.bits as i64],
            ));
        }
        if self.channels != 1 {
            return Err(err_v(
                "{} channels; firmware reads mono only (audio::load_wav mixes down on the host)",
                at,
                &[self.channels as i64],
            ));
        }
        if self.sample_rate != super::SAMPLE_RATE {
            return Err(err_v(
                "sample rate {} Hz; firmware reads 16000 Hz only (audio::load_wav resamples on the host)",
                at,
                &[self.sample_rate as i64],
            ));
        }
        Ok(Pcm16 { bytes: self.data })
    }
}

/// 16-bit mono samples borrowed from a WAV file's data chunk (any alignment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pcm16<'a> {
    bytes: &'a [u8],
}

impl<'a> Pcm16<'a> {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.bytes.len() / 2
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.bytes.len() < 2
    }

    /// The samples in order.
    pub fn iter(&self) -> impl Iterator<Item = i16> + 'a {
        self.bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
    }

    /// The samples in place, without a copy, when they can be read as `i16`s: on a
    /// little-endian target, with the data 2-byte aligned (a WAV's data usually starts at
    /// byte 44, so a file in flash or memory aligned to 4 bytes gives this). `None` otherwise:
    /// use [`copy_from`](Self::copy_from).
    pub fn as_slice(&self) -> Option<&'a [i16]> {
        if cfg!(target_endian = "little") && self.bytes.as_ptr() as usize % 2 == 0 {
            // SAFETY: the pointer is 2-byte aligned (checked) and `len()` i16s are the first
            // 2·len() ≤ bytes.len() bytes, borrowed for 'a like `bytes`; every bit pattern is
            // an i16, and on a little-endian target its value is from_le_bytes of its bytes.
            Some(unsafe { core::slice::from_raw_parts(self.bytes.as_ptr().cast(), self.len()) })
        } else {
            None
        }
    }

    /// Copies the first `out.len()` samples (or all, if fewer) into `out`; returns how many.
    pub fn copy_to(&self, out: &mut [i16]) -> usize {
        self.copy_from(0, out)
    }

    /// Copies the samples from number `start` on into `out`, as many as fit or are left;
    /// returns how many (0 if `start` is past the end).
    pub fn copy_from(&self, start: usize, out: &mut [i16]) -> usize {
        let bytes = self.bytes.get(start.saturating_mul(2)..).unwrap_or(&[]);
        let mut n = 0;
        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            *o = i16::from_le_bytes([b[0], b[1]]);
            n += 1;
        }
        n
    }
}
