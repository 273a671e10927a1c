//! Bounds-checked reading of the protobuf wire format (proto2/proto3 encoding), no
//! dependencies.
//!
//! A message is a sequence of fields, each a varint key `field_number << 3 | wire_type`
//! followed by its value: wire type 0 a varint (7 bits a byte, low first, at most 10 bytes),
//! 1 eight little-endian bytes, 2 a varint length then that many bytes (strings, bytes,
//! sub-messages, packed repeated scalars), 5 four little-endian bytes. Groups (3, 4) are
//! deprecated and refused. A repeated scalar may arrive unpacked (one field per element) or
//! packed (one length-delimited field); [`Field`]'s helpers accept both.
//!
//! Every length and offset is checked against the slice; errors carry the absolute byte
//! offset in the file. Nothing here can panic or read outside the slice.

use alloc::string::String;
use alloc::vec::Vec;

use crate::nn::{ModelError, ModelFormat};

pub(crate) type Result<T> = core::result::Result<T, ModelError>;

/// An error about the bytes at `offset`.
pub(crate) fn err(reason: &'static str, offset: usize) -> ModelError {
    ModelError::new(ModelFormat::Onnx, reason).with_offset(offset)
}

/// The value of one field, as its wire type delivers it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wire<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    /// Length-delimited bytes.
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

impl Wire<'_> {
    fn type_code(&self) -> i64 {
        match self {
            Wire::Varint(_) => 0,
            Wire::Fixed64(_) => 1,
            Wire::Bytes(_) => 2,
            Wire::Fixed32(_) => 5,
        }
    }
}

/// One field of a message: its number, value and the file offset of its value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Field<'a> {
    pub number: u32,
    pub wire: Wire<'a>,
    /// Absolute offset of the value in the file.
    pub at: usize,
}

/// Reads the fields of one message (`buf` is the message's bytes; `base` their offset in
/// the file).
#[derive(Clone, Debug)]
pub(crate) struct Message<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

/// Reads a varint at `*pos`, advancing it.
fn varint(buf: &[u8], pos: &mut usize, base: usize) -> Result<u64> {
    let start = *pos;
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(*pos).ok_or(err(
            "a varint runs past the end of its message",
            base + start,
        ))?;
        *pos += 1;
        // The tenth byte may only hold bit 63.
        if i == 9 && b > 1 {
            return Err(err("a varint is longer than 64 bits", base + start));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(err("a varint is longer than 10 bytes", base + start))
}

impl<'a> Message<'a> {
    /// The message at `base` in the file.
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Message { buf, pos: 0, base }
    }

    /// The next field, or `None` at the end of the message.
    pub(crate) fn next_field(&mut self) -> Result<Option<Field<'a>>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key_at = self.base + self.pos;
        let key = varint(self.buf, &mut self.pos, self.base)?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|&n| n != 0 && n < (1 << 29))
            .ok_or(err("a field number is 0 or out of range", key_at))?;
        let at = self.base + self.pos;
        let take = |pos: &mut usize, n: usize| -> Result<&'a [u8]> {
            let end = pos
                .checked_add(n)
                .filter(|&e| e <= self.buf.len())
                .ok_or(err("a field runs past the end of its message", at))?;
            let s = &self.buf[*pos..end];
            *pos = end;
            Ok(s)
        };
        let wire = match key & 7 {
            0 => Wire::Varint(varint(self.buf, &mut self.pos, self.base)?),
            1 => Wire::Fixed64(take(&mut self.pos, 8)?.try_into().unwrap_or([0; 8])),
            2 => {
                let len = varint(self.buf, &mut self.pos, self.base)?;
                let len = usize::try_from(len)
                    .map_err(|_| err("a length-delimited field is longer than the file", at))?;
                let at = self.base + self.pos;
                let bytes = take(&mut self.pos, len)?;
                return Ok(Some(Field {
                    number,
                    wire: Wire::Bytes(bytes),
                    at,
                }));
            }
            5 => Wire::Fixed32(take(&mut self.pos, 4)?.try_into().unwrap_or([0; 4])),
            3 | 4 => {
                return Err(err(
                    "protobuf groups (wire types 3, 4) are not supported",
                    key_at,
                ))
            }
            _ => return Err(err("unknown wire type {}", key_at).with_values(&[(key & 7) as i64])),
        };
        Ok(Some(Field { number, wire, at }))
    }
}

impl<'a> Field<'a> {
    fn wrong(&self, expected: i64) -> ModelError {
        err("field {} has wire type {}, expected {}", self.at).with_values(&[
            self.number.into(),
            self.wire.type_code(),
            expected,
        ])
    }

    /// A varint field (int32, int64, uint64, bool, enum).
    pub(crate) fn u64(&self) -> Result<u64> {
        match self.wire {
            Wire::Varint(v) => Ok(v),
            _ => Err(self.wrong(0)),
        }
    }

    /// An int64 (or int32, sign-extended on the wire) field.
    pub(crate) fn i64(&self) -> Result<i64> {
        self.u64().map(|v| v as i64)
    }

    /// An int32 field (a varint whose value must fit).
    pub(crate) fn i32(&self) -> Result<i32> {
        let v = self.i64()?;
        i32::try_from(v).map_err(|_| err("an int32 field is out of range", self.at))
    }

    /// A float field.
    pub(crate) fn f32(&self) -> Result<f32> {
        match self.wire {
            Wire::Fixed32(b) => Ok(f32::from_le_bytes(b)),
            _ => Err(self.wrong(5)),
        }
    }

    /// A bytes, string or sub-message field.
    pub(crate) fn bytes(&self) -> Result<&'a [u8]> {
        match self.wire {
            Wire::Bytes(b) => Ok(b),
            _ => Err(self.wrong(2)),
        }
    }

    /// A string field (UTF-8 checked).
    pub(crate) fn string(&self) -> Result<String> {
        let b = self.bytes()?;
        core::str::from_utf8(b)
            .map(String::from)
            .map_err(|_| err("a string is not valid UTF-8", self.at))
    }

    /// A sub-message.
    pub(crate) fn message(&self) -> Result<Message<'a>> {
        Ok(Message::new(self.bytes()?, self.at))
    }

    /// Appends the elements of a repeated varint field (packed or not).
    pub(crate) fn push_i64s(&self, out: &mut Vec<i64>) -> Result<()> {
        match self.wire {
            Wire::Varint(v) => out.push(v as i64),
            Wire::Bytes(b) => {
                let mut pos = 0;
                while pos < b.len() {
                    out.push(varint(b, &mut pos, self.at)? as i64);
                }
            }
            _ => return Err(self.wrong(0)),
        }
        Ok(())
    }

    /// Appends the elements of a repeated float field (packed or not).
    pub(crate) fn push_f32s(&self, out: &mut Vec<f32>) -> Result<()> {
        match self.wire {
            Wire::Fixed32(b) => out.push(f32::from_le_bytes(b)),
            Wire::Bytes(b) => {
                if b.len() % 4 != 0 {
                    return Err(err("packed floats are not a multiple of 4 bytes", self.at));
                }
                out.extend(
                    b.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
            }
            _ => return Err(self.wrong(5)),
        }
        Ok(())
    }

    /// Appends the elements of a repeated double field (packed or not).
    pub(crate) fn push_f64s(&self, out: &mut Vec<f64>) -> Result<()> {
        let mut one = |c: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            out.push(f64::from_le_bytes(a));
        };
        match self.wire {
            Wire::Fixed64(b) => one(&b),
            Wire::Bytes(b) => {
                if b.len() % 8 != 0 {
                    return Err(err("packed doubles are not a multiple of 8 bytes", self.at));
                }
                b.chunks_exact(8).for_each(one);
            }
            _ => return Err(self.wrong(1)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(b: &[u8]) -> Result<Vec<(u32, i64)>> {
        let mut m = Message::new(b, 0);
        let mut out = Vec::new();
        while let Some(f) = m.next_field()? {
            let v = match f.wire {
                Wire::Varint(v) => v as i64,
                Wire::Bytes(b) => b.len() as i64,
                _ => -1,
            };
            out.push((f.number, v));
        }
        Ok(out)
    }

    #[test]
    fn reads_varints_and_lengths() {
        // field 1 = 150 (varint 0x96 0x01), field 2 = "ab", field 3 = -1 (ten bytes).
        let b = [
            0x08, 0x96, 0x01, 0x12, 2, b'a', b'b', 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0x01,
        ];
        assert_eq!(fields(&b).unwrap(), [(1, 150), (2, 2), (3, -1)]);
    }

    #[test]
    fn refuses_bad_input() {
        assert!(fields(&[0x08]).is_err()); // truncated varint
        assert!(
            fields(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).is_err()
        );
        assert!(fields(&[0x12, 5, 1]).is_err()); // length past the end
        assert!(
            fields(&[0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err()
        );
        assert!(fields(&[0x0b]).is_err()); // group
        assert!(fields(&[0x0f]).is_err()); // wire type 7
        assert!(fields(&[0x00, 0x00]).is_err()); // field 0
        assert!(fields(&[0x0d, 1, 2]).is_err()); // fixed32 truncated
    }

    #[test]
    fn packed_and_unpacked_repeated() {
        let mut out = Vec::new();
        let mut m = Message::new(&[0x0a, 3, 1, 0x96, 0x01, 0x08, 7], 0);
        while let Some(f) = m.next_field().unwrap() {
            f.push_i64s(&mut out).unwrap();
        }
        assert_eq!(out, [1, 150, 7]);
        let mut fl = Vec::new();
        let one = 1f32.to_le_bytes();
        let b = [
            0x22, 4, one[0], one[1], one[2], one[3], 0x25, one[0], one[1], one[2], one[3],
        ];
        let mut m = Message::new(&b, 0);
        while let Some(f) = m.next_field().unwrap() {
            f.push_f32s(&mut fl).unwrap();
        }
        assert_eq!(fl, [1.0, 1.0]);
        let mut m = Message::new(&[0x22, 3, 0, 0, 0], 0);
        let f = m.next_field().unwrap().unwrap();
        assert!(f.push_f32s(&mut fl).is_err());
    }
}
