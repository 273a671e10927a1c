//! Bounds-checked reading of flatbuffer tables, vectors and strings.
//!
//! The wire format (all little-endian): the file starts with a `u32` offset to the root table.
//! A table starts with an `i32` that, subtracted from the table's position, gives its vtable;
//! the vtable is `u16` vtable size in bytes, `u16` table size in bytes, then one `u16` per
//! field: the field's position relative to the table start, 0 when absent (then the field has
//! its schema default). Fields that reference tables, vectors or strings hold a `u32` offset
//! relative to the field's own position (so always forward). A vector is a `u32` element count
//! then the elements; a vector of tables holds `u32` offsets relative to each element's
//! position. A string is a byte vector (UTF-8, followed by a NUL that is not checked here).
//!
//! Every read checks its bounds and returns a [`ModelError`] with the byte offset on failure;
//! nothing here can panic or read outside the slice. Alignment is not required: values are
//! read byte-wise.

use crate::nn::{ModelError, ModelFormat};

pub(crate) type Result<T> = core::result::Result<T, ModelError>;

/// An error about the bytes at `offset`.
pub(crate) fn err(reason: &'static str, offset: usize) -> ModelError {
    ModelError::new(ModelFormat::Tflite, reason).with_offset(offset)
}

/// `N` bytes at `pos`, if they are inside `buf`.
fn bytes_at<const N: usize>(buf: &[u8], pos: usize) -> Option<[u8; N]> {
    let end = pos.checked_add(N)?;
    buf.get(pos..end)?.try_into().ok()
}

fn u16_at(buf: &[u8], pos: usize) -> Option<u16> {
    bytes_at(buf, pos).map(u16::from_le_bytes)
}

fn u32_at(buf: &[u8], pos: usize) -> Option<u32> {
    bytes_at(buf, pos).map(u32::from_le_bytes)
}

/// Follows the `u32` offset stored at `pos` (relative to `pos`).
fn follow(buf: &[u8], pos: usize) -> Result<usize> {
    let off = u32_at(buf, pos).ok_or(err("an offset runs past the end of the file", pos))?;
    pos.checked_add(off as usize)
        .filter(|&target| target < buf.len())
        .ok_or(err("an offset points past the end of the file", pos))
}

/// The root table of a flatbuffer.
pub(crate) fn root(buf: &[u8]) -> Result<Table<'_>> {
    let pos = follow(buf, 0)?;
    Table::at(buf, pos)
}

/// A table whose header and vtable have been checked to lie inside the buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
    vtable: usize,
    vtable_size: usize,
    size: usize,
}

impl<'a> Table<'a> {
    /// The table at `pos`, with its vtable checked.
    pub(crate) fn at(buf: &'a [u8], pos: usize) -> Result<Self> {
        let soffset = bytes_at(buf, pos)
            .map(i32::from_le_bytes)
            .ok_or(err("a table runs past the end of the file", pos))?;
        // vtable = pos - soffset, in i64 so that neither sign can overflow.
        let vtable = usize::try_from(pos as i64 - i64::from(soffset))
            .map_err(|_| err("a table's vtable offset points before the file", pos))?;
        let (vtable_size, size) = match (u16_at(buf, vtable), u16_at(buf, vtable.wrapping_add(2))) {
            (Some(v), Some(s)) if vtable <= usize::MAX - 4 => (v as usize, s as usize),
            _ => return Err(err("a table's vtable lies outside the file", pos)),
        };
        if vtable_size < 4 || vtable_size % 2 != 0 {
            return Err(err("a vtable has an invalid size (odd or below 4)", vtable));
        }
        if vtable + vtable_size > buf.len() {
            return Err(err("a vtable runs past the end of the file", vtable));
        }
        if size < 4 || pos.checked_add(size).is_none_or(|end| end > buf.len()) {
            return Err(err(
                "a table's size is below 4 or runs past the end of the file",
                pos,
            ));
        }
        Ok(Table {
            buf,
            pos,
            vtable,
            vtable_size,
            size,
        })
    }

    /// Byte position of the table in the file.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Absolute position of field `id` whose inline value is `width` bytes, or `None` when the
    /// field is absent (not in the vtable, or offset 0).
    fn field(&self, id: usize, width: usize) -> Result<Option<usize>> {
        let entry = 4 + 2 * id;
        if entry + 2 > self.vtable_size {
            return Ok(None);
        }
        let off = match u16_at(self.buf, self.vtable + entry) {
            Some(0) | None => return Ok(None),
            Some(off) => off as usize,
        };
        if off < 4 || off + width > self.size {
            return Err(err("a field lies outside its table", self.pos));
        }
        Ok(Some(self.pos + off))
    }

    fn scalar<const N: usize>(&self, id: usize) -> Result<Option<[u8; N]>> {
        match self.field(id, N)? {
            None => Ok(None),
            // In bounds: `Table::at` checked pos + size <= len and `field` checked off + N <= size.
            Some(p) => bytes_at(self.buf, p)
                .map(Some)
                .ok_or(err("a field lies outside the file", p)),
        }
    }

    pub(crate) fn u8(&self, id: usize, default: u8) -> Result<u8> {
        Ok(self.scalar::<1>(id)?.map_or(default, |b| b[0]))
    }

    pub(crate) fn i8(&self, id: usize, default: i8) -> Result<i8> {
        Ok(self.scalar::<1>(id)?.map_or(default, |b| b[0] as i8))
    }

    /// A `bool` field: any non-zero byte is true, as in the flatbuffers runtimes.
    pub(crate) fn bool(&self, id: usize, default: bool) -> Result<bool> {
        Ok(self.scalar::<1>(id)?.map_or(default, |b| b[0] != 0))
    }

    pub(crate) fn i32(&self, id: usize, default: i32) -> Result<i32> {
        Ok(self.scalar(id)?.map_or(default, i32::from_le_bytes))
    }

    pub(crate) fn u32(&self, id: usize, default: u32) -> Result<u32> {
        Ok(self.scalar(id)?.map_or(default, u32::from_le_bytes))
    }

    pub(crate) fn u64(&self, id: usize, default: u64) -> Result<u64> {
        Ok(self.scalar(id)?.map_or(default, u64::from_le_bytes))
    }

    pub(crate) fn f32(&self, id: usize, default: f32) -> Result<f32> {
        Ok(self.scalar(id)?.map_or(default, f32::from_le_bytes))
    }

    /// Whether field `id` is present (whatever its type).
    pub(crate) fn has(&self, id: usize) -> Result<bool> {
        Ok(self.field(id, 0)?.is_some())
    }

    /// The position an offset field points to.
    fn target(&self, id: usize) -> Result<Option<usize>> {
        match self.field(id, 4)? {
            None => Ok(None),
            Some(p) => follow(self.buf, p).map(Some),
        }
    }

    /// A sub-table field.
    pub(crate) fn table(&self, id: usize) -> Result<Option<Table<'a>>> {
        match self.target(id)? {
            None => Ok(None),
            Some(p) => Table::at(self.buf, p).map(Some),
        }
    }

    /// A vector field whose elements are `elem_size` bytes each (4 for tables and strings).
    pub(crate) fn vector(&self, id: usize, elem_size: usize) -> Result<Option<Vector<'a>>> {
        match self.target(id)? {
            None => Ok(None),
            Some(p) => Vector::at(self.buf, p, elem_size).map(Some),
        }
    }

    /// A `[ubyte]` field as a slice of the file.
    pub(crate) fn bytes(&self, id: usize) -> Result<Option<&'a [u8]>> {
        Ok(self.vector(id, 1)?.map(|v| v.bytes()))
    }

    /// A string field, checked to be UTF-8.
    pub(crate) fn str(&self, id: usize) -> Result<Option<&'a str>> {
        match self.vector(id, 1)? {
            None => Ok(None),
            Some(v) => v.as_str().map(Some),
        }
    }
}

/// A vector whose whole extent (count × element size) has been checked to lie in the buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vector<'a> {
    buf: &'a [u8],
    /// Position of the length prefix.
    pos: usize,
    /// The elements' bytes.
    data: &'a [u8],
    len: usize,
    elem_size: usize,
}

impl<'a> Vector<'a> {
    fn at(buf: &'a [u8], pos: usize, elem_size: usize) -> Result<Self> {
        let len =
            u32_at(buf, pos).ok_or(err("a vector runs past the end of the file", pos))? as usize;
        let data = len
            .checked_mul(elem_size)
            .and_then(|n| n.checked_add(pos + 4))
            .and_then(|end| buf.get(pos + 4..end))
            .ok_or(err("a vector runs past the end of the file", pos))?;
        Ok(Vector {
            buf,
            pos,
            data,
            len,
            elem_size,
        })
    }

    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Byte position of the vector in the file.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Number of bytes the elements take.
    pub(crate) fn byte_len(&self) -> usize {
        self.data.len()
    }

    /// The elements as raw bytes.
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.data
    }

    fn as_str(&self) -> Result<&'a str> {
        core::str::from_utf8(self.data).map_err(|_| err("a string is not valid UTF-8", self.pos))
    }

    fn elem<const N: usize>(&self, i: usize) -> Option<[u8; N]> {
        // The vector's extent is checked, so this only fails on a wrong `N` or index.
        bytes_at(self.data, i.checked_mul(N)?)
    }

    /// Element `i` of an `[int]` vector (`None` past the end).
    pub(crate) fn i32(&self, i: usize) -> Option<i32> {
        self.elem(i).map(i32::from_le_bytes)
    }

    /// Element `i` of a `[long]` vector.
    pub(crate) fn i64(&self, i: usize) -> Option<i64> {
        self.elem(i).map(i64::from_le_bytes)
    }

    /// Element `i` of a `[float]` vector.
    pub(crate) fn f32(&self, i: usize) -> Option<f32> {
        self.elem(i).map(f32::from_le_bytes)
    }

    /// Position of element `i` in the file.
    fn elem_pos(&self, i: usize) -> Result<usize> {
        if i >= self.len || self.elem_size != 4 {
            return Err(err("a vector element is out of range", self.pos));
        }
        Ok(self.pos + 4 + 4 * i)
    }

    /// Element `i` of a vector of tables.
    pub(crate) fn table(&self, i: usize) -> Result<Table<'a>> {
        let p = follow(self.buf, self.elem_pos(i)?)?;
        Table::at(self.buf, p)
    }
}
