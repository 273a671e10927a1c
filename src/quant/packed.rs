//! Weights packed once into caller memory, with no allocation: [`PackedQBRef`].
//!
//! A packed operand is one self-describing byte blob, so it can be packed at start-up into
//! a static buffer, or stored (in flash, say) and read in place later:
//!
//! ```text
//! offset  0  u32 × 12 (native byte order): magic "EGQB", layout version, format, k group,
//!            element bytes, NR, k, n, reserved (0), data offset, data bytes, total bytes
//!        48  the kernel's name (48 bytes, NUL-padded)
//!        96  column sums Σ_p B[p, j] (n × i32)
//!  data_off  B in the kernel's format (64-byte aligned from the blob's start): one k chunk,
//!            NR-column slivers, k in groups (see `quant::pack`), columns past n zero
//! ```
//!
//! The blob records the kernel it was packed for; calls with it run that kernel. Reading
//! one back ([`PackedQBRef::from_bytes`]) checks every field against the slice, so bad
//! bytes are an error, never an out-of-bounds read.

use super::driver::{Geometry, QbSource};
use super::pack::pack_b;
use crate::arch::cpu_info;
use crate::error::Error;
use crate::gemm::raw::Raw;
use crate::kernels::int8::{QFormat, QgemmKernel, QGEMM_KERNELS};
use crate::kernels::{qgemm_kernel, Kernel};
use crate::matrix::MatRef;

const MAGIC: u32 = u32::from_le_bytes(*b"EGQB");
/// Bumped whenever the blob or a kernel's packing changes (2: no zero point; calls give it).
const VERSION: u32 = 2;
const HEADER: usize = 96;
const NAME_AT: usize = 48;
const NAME_LEN: usize = 48;
/// Alignment of the blob's start inside a buffer being packed into, and of the data in it.
const BLOB_ALIGN: usize = 64;

// Header fields (u32 each), by index.
const F_MAGIC: usize = 0;
const F_VERSION: usize = 1;
const F_FORMAT: usize = 2;
const F_K_GROUP: usize = 3;
const F_ELEM: usize = 4;
const F_NR: usize = 5;
const F_K: usize = 6;
const F_N: usize = 7;
const F_RESERVED: usize = 8;
const F_DATA_OFF: usize = 9;
const F_DATA_LEN: usize = 10;
const F_TOTAL: usize = 11;

const fn format_code(f: QFormat) -> u32 {
    match f {
        QFormat::U8x4 => 1,
        QFormat::I8x4 => 2,
        QFormat::I16x2 => 3,
        QFormat::I8x8 => 4,
    }
}

const fn sat_align(x: usize, a: usize) -> usize {
    match x.checked_next_multiple_of(a) {
        Some(v) => v,
        None => usize::MAX,
    }
}

/// (data offset, data bytes) of a k×n blob for a kernel of geometry `geo`; saturating.
const fn blob_layout(geo: Geometry, k: usize, n: usize) -> (usize, usize) {
    let data_off = sat_align(HEADER.saturating_add(n.saturating_mul(4)), BLOB_ALIGN);
    let n_pad = n.div_ceil(geo.nr).saturating_mul(geo.nr);
    let k_pad = k.div_ceil(geo.g).saturating_mul(geo.g);
    let data_len = n_pad.saturating_mul(k_pad).saturating_mul(geo.e);
    (data_off, data_len)
}

/// Bytes a buffer needs to pack a k×n weight matrix into with [`PackedQBRef::pack`] (for
/// any int8 kernel compiled in, alignment slack included). A `const fn`, so the buffer can
/// be a static sized at compile time. The blob itself ([`PackedQBRef::as_bytes`]) is up to
/// 63 bytes shorter: header and column sums (`96 + 4n`, rounded up to 64) plus B in the
/// kernel's format (on a Cortex-M4: i16, `2·k·n` with k and n rounded up to 2 and 4).
pub const fn qgemm_packed_b_size(k: usize, n: usize) -> usize {
    let mut most = 0;
    let mut i = 0;
    while i < QGEMM_KERNELS.len() {
        let (off, len) = blob_layout(Geometry::of(&QGEMM_KERNELS[i]), k, n);
        let total = off.saturating_add(len);
        if total > most {
            most = total;
        }
        i += 1;
    }
    most.saturating_add(BLOB_ALIGN - 1)
}

/// A weight matrix B (k×n, i8) packed for an int8 kernel, with its column sums, in caller
/// memory: the no-allocation counterpart of [`crate::PackedQB`], a right-hand operand of
/// [`crate::qgemm`].
///
/// [`PackedQBRef::pack`] packs into a buffer of [`qgemm_packed_b_size`] bytes;
/// [`PackedQBRef::as_bytes`] is the packed blob, which [`PackedQBRef::from_bytes`] reads
/// back in place (from flash, say: a 4-byte aligned `&'static [u8]`). The blob records the
/// kernel and its packing; reading it in a build without that kernel is
/// [`Error::PackingMismatch`].
///
/// ```
/// use edgemm::{qgemm, qgemm_packed_b_size, qgemm_packed_workspace_size, Context, MatMut,
///              MatRef, PackedQBRef, Requantize, Requantized, Scale};
/// const K: usize = 3;
/// const N: usize = 2;
/// let w: [i8; K * N] = [1, -2, 3, 4, -5, 6]; // k×n, row-major
/// let mut buf = [0u8; qgemm_packed_b_size(K, N)];
/// let packed = PackedQBRef::pack(MatRef::row_major(&w, K, N)?, &mut buf)?;
/// // `packed.as_bytes()` could be stored and read back with PackedQBRef::from_bytes.
/// let x: [i8; K] = [10, 20, 30];
/// let rq = Requantize::new(Scale::PerTensor { multiplier: 1 << 30, shift: -1 }, 0);
/// let mut y = [0i8; N];
/// let mut ws = [0u8; qgemm_packed_workspace_size(1, N, K)];
/// qgemm(
///     MatRef::row_major(&x, 1, K)?, 0, packed, 0,
///     Requantized(&rq, MatMut::row_major(&mut y, 1, N)?),
///     Context::new().workspace(&mut ws),
/// )?;
/// // Σ = [10 + 60 − 150, −20 + 80 + 180] = [−80, 240], scaled by 2^30·2^(−1−31) = 1/4:
/// assert_eq!(y, [-20, 60]);
/// # Ok::<(), edgemm::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct PackedQBRef<'a> {
    bytes: &'a [u8],
    kernel: &'static QgemmKernel,
    k: usize,
    n: usize,
    data_off: usize,
    data_len: usize,
}

impl core::fmt::Debug for PackedQBRef<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "PackedQBRef {{ {}x{}, kernel {}, {} bytes }}",
            self.k,
            self.n,
            self.kernel.name,
            self.bytes.len()
        )
    }
}

fn field(bytes: &[u8], i: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&bytes[4 * i..4 * i + 4]);
    u32::from_ne_bytes(w)
}

fn bad(reason: &'static str) -> Error {
    Error::InvalidPacked { reason }
}

/// Writes the packed blob of `b` for a kernel (`name`, `format`, geometry `geo`) into `buf`
/// at its first 64-byte aligned byte, after checking `buf` has `needed` bytes (else
/// [`Error::WorkspaceTooSmall`], `buf` untouched): (start, total bytes) of the blob.
fn pack_into(
    name: &str,
    format: QFormat,
    geo: Geometry,
    b: MatRef<i8>,
    buf: &mut [u8],
    needed: usize,
) -> Result<(usize, usize), Error> {
    let raw = Raw::from_ref(&b);
    let (k, n) = (raw.rows, raw.cols);
    if buf.len() < needed {
        return Err(Error::WorkspaceTooSmall {
            needed,
            got: buf.len(),
        });
    }
    // Header fields are u32 (the blob must read the same on 32- and 64-bit targets).
    let (Ok(k32), Ok(n32)) = (u32::try_from(k), u32::try_from(n)) else {
        return Err(Error::SizeOverflow);
    };
    let (data_off, data_len) = blob_layout(geo, k, n);
    let total = data_off + data_len; // ≤ needed − 63 ≤ buf.len(): no overflow
    let (Ok(off32), Ok(len32), Ok(total32)) = (
        u32::try_from(data_off),
        u32::try_from(data_len),
        u32::try_from(total),
    ) else {
        return Err(Error::SizeOverflow);
    };
    let start = (buf.as_ptr() as usize).wrapping_neg() & (BLOB_ALIGN - 1);
    let blob = &mut buf[start..start + total];
    blob.fill(0);
    let fields = [
        (F_MAGIC, MAGIC),
        (F_VERSION, VERSION),
        (F_FORMAT, format_code(format)),
        (F_K_GROUP, geo.g as u32),
        (F_ELEM, geo.e as u32),
        (F_NR, geo.nr as u32),
        (F_K, k32),
        (F_N, n32),
        (F_RESERVED, 0),
        (F_DATA_OFF, off32),
        (F_DATA_LEN, len32),
        (F_TOTAL, total32),
    ];
    for (i, v) in fields {
        blob[4 * i..4 * i + 4].copy_from_slice(&v.to_ne_bytes());
    }
    let name = name.as_bytes();
    blob[NAME_AT..NAME_AT + name.len().min(NAME_LEN)]
        .copy_from_slice(&name[..name.len().min(NAME_LEN)]);
    if k > 0 && n > 0 {
        // SAFETY: the blob starts 64-byte aligned, so its column sums (at byte 96) are
        // 4-byte aligned; n i32 at 96.. and the data (data_len bytes at data_off) lie
        // inside it, disjoint (data_off ≥ 96 + 4n), and nothing else borrows them. `raw`
        // is a validated view; pack_b writes the ceil(n/NR)·NR·ceil(k/g)·g·e data bytes.
        unsafe {
            let base = blob.as_mut_ptr();
            let colsum = core::slice::from_raw_parts_mut(base.add(HEADER) as *mut i32, n);
            pack_b(raw, format, geo.nr, base.add(data_off), colsum);
        }
    }
    Ok((start, total))
}

/// The packed-operand bytes of `b` (k×n) for an int8 kernel of any build, compiled in here
/// or not (converting a model for another machine): what [`PackedQBRef::from_bytes`] reads
/// back in a build that has the kernel. The layout is byte-order native: little-endian
/// targets only read it as written.
#[cfg(feature = "alloc")]
pub(crate) fn pack_bytes_for(
    shape: &crate::kernels::targets::QShape,
    b: MatRef<i8>,
) -> Result<alloc::vec::Vec<u8>, Error> {
    let raw = Raw::from_ref(&b);
    let geo = Geometry::of_shape(shape);
    let (off, len) = blob_layout(geo, raw.rows, raw.cols);
    let needed = off.saturating_add(len).saturating_add(BLOB_ALIGN - 1);
    let mut buf = alloc::vec![0u8; needed];
    let (start, total) = pack_into(shape.name, shape.format, geo, b, &mut buf, needed)?;
    Ok(buf[start..start + total].to_vec())
}

/// What a kernel outside the GEMM driver (the runtime's one-row path) reads of a packed
/// operand: its format, sliver width, shape, data and column sums.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only x86 has such kernels
#[derive(Clone, Copy)]
pub(crate) struct PackedView<'a> {
    pub format: QFormat,
    pub nr: usize,
    pub k: usize,
    pub n: usize,
    /// One k chunk of NR-column slivers.
    pub data: &'a [u8],
    /// n column sums.
    pub colsum: &'a [i32],
}

impl<'a> PackedView<'a> {
    /// The view of a packed blob read straight from its header, without
    /// [`PackedQBRef::from_bytes`]'s checks (magic, version, kernel name, CPU, sizes): for
    /// bytes that passed them once at load, as a model's operators read their weights on
    /// every run. Only bounds are checked here (`None` when the slices do not fit), so
    /// other bytes give a wrong view, never an out-of-bounds read.
    pub(crate) fn from_checked_bytes(bytes: &'a [u8]) -> Option<Self> {
        let f = |i: usize| {
            bytes
                .get(4 * i..4 * i + 4)
                .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
        };
        let format = match f(F_FORMAT)? {
            1 => QFormat::U8x4,
            2 => QFormat::I8x4,
            3 => QFormat::I16x2,
            4 => QFormat::I8x8,
            _ => return None,
        };
        let (k, n) = (f(F_K)? as usize, f(F_N)? as usize);
        let (off, len) = (f(F_DATA_OFF)? as usize, f(F_DATA_LEN)? as usize);
        let data = bytes.get(off..off.checked_add(len)?)?;
        // SAFETY (align_to): i32 is a plain number type (every bit pattern a value).
        let (pre, sums, _) = unsafe { bytes.get(HEADER..)?.align_to::<i32>() };
        if !pre.is_empty() {
            return None;
        }
        Some(PackedView {
            format,
            nr: f(F_NR)? as usize,
            k,
            n,
            data,
            colsum: sums.get(..n)?,
        })
    }
}

impl<'a> PackedQBRef<'a> {
    /// Packs `b` (k×n) for the int8 kernel selected by default, into `buf`, which needs
    /// [`qgemm_packed_b_size`]`(k, n)` bytes (else [`Error::WorkspaceTooSmall`], `buf`
    /// untouched); any alignment. The packing does not depend on B's zero point: each call
    /// gives it.
    pub fn pack(b: MatRef<i8>, buf: &'a mut [u8]) -> Result<Self, Error> {
        Self::pack_for(qgemm_kernel()?, b, buf)
    }

    /// [`PackedQBRef::pack`] for a chosen int8 kernel.
    pub fn pack_with_kernel(
        kernel: &Kernel,
        b: MatRef<i8>,
        buf: &'a mut [u8],
    ) -> Result<Self, Error> {
        Self::pack_for(kernel.int8()?, b, buf)
    }

    fn pack_for(
        kernel: &'static QgemmKernel,
        b: MatRef<i8>,
        buf: &'a mut [u8],
    ) -> Result<Self, Error> {
        let raw = Raw::from_ref(&b);
        let needed = qgemm_packed_b_size(raw.rows, raw.cols);
        let geo = Geometry::of(kernel);
        let (start, total) = pack_into(kernel.name, kernel.format, geo, b, buf, needed)?;
        let (data_off, data_len) = blob_layout(geo, raw.rows, raw.cols);
        let buf: &'a [u8] = buf;
        Ok(PackedQBRef {
            bytes: &buf[start..start + total],
            kernel,
            k: raw.rows,
            n: raw.cols,
            data_off,
            data_len,
        })
    }

    /// Reads a packed operand back from its bytes ([`PackedQBRef::as_bytes`] of an earlier
    /// pack, stored anywhere), in place. The slice must start 4-byte aligned and may be
    /// longer than the blob. Every field is checked: [`Error::InvalidPacked`] for bytes
    /// that are not a packed operand of this layout version (or are truncated, misaligned,
    /// inconsistent); [`Error::PackingMismatch`] when the kernel it was packed for is not
    /// compiled into this build; [`Error::KernelNotSupported`] when this CPU cannot run it.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, Error> {
        if bytes.len() < HEADER {
            return Err(bad("shorter than the header"));
        }
        if bytes.as_ptr() as usize % 4 != 0 {
            return Err(bad("not 4-byte aligned"));
        }
        match field(bytes, F_MAGIC) {
            MAGIC => {}
            m if m == MAGIC.swap_bytes() => {
                return Err(bad("packed on a machine of the other byte order"))
            }
            _ => return Err(bad("no packed-operand magic number")),
        }
        if field(bytes, F_VERSION) != VERSION {
            return Err(bad(
                "another layout version (packed by another edgemm version)",
            ));
        }
        let raw_name = &bytes[NAME_AT..NAME_AT + NAME_LEN];
        let name_len = raw_name.iter().position(|&c| c == 0).unwrap_or(NAME_LEN);
        let raw_name = &raw_name[..name_len];
        // Compared as bytes (operators read their packed weights on every run): the UTF-8
        // check is needed only to name an unknown kernel.
        let found = QGEMM_KERNELS.iter().find(|k| k.name.as_bytes() == raw_name);
        let Some(kernel) = found else {
            let name =
                core::str::from_utf8(raw_name).map_err(|_| bad("the kernel name is not UTF-8"))?;
            return Err(Error::PackingMismatch {
                packed_for: crate::kernels::targets::qshape(name)
                    .map_or("(a kernel unknown to this edgemm version)", |s| s.name),
                kernel: qgemm_kernel().map_or("(none)", |k| k.name),
            });
        };
        if !cpu_info().features.contains(kernel.requires) {
            return Err(Error::KernelNotSupported {
                name: kernel.name,
                isa: kernel.isa,
            });
        }
        let geo = Geometry::of(kernel);
        if field(bytes, F_FORMAT) != format_code(kernel.format)
            || field(bytes, F_K_GROUP) as usize != geo.g
            || field(bytes, F_ELEM) as usize != geo.e
            || field(bytes, F_NR) as usize != geo.nr
        {
            return Err(bad("packed for another layout of its kernel"));
        }
        let (k, n) = (field(bytes, F_K) as usize, field(bytes, F_N) as usize);
        if field(bytes, F_RESERVED) != 0 {
            return Err(bad("a reserved header field is not 0"));
        }
        let (data_off, data_len) = blob_layout(geo, k, n);
        let total = data_off.saturating_add(data_len);
        if field(bytes, F_DATA_OFF) as usize != data_off
            || field(bytes, F_DATA_LEN) as usize != data_len
            || field(bytes, F_TOTAL) as usize != total
        {
            return Err(bad("sizes inconsistent with k and n"));
        }
        if bytes.len() < total {
            return Err(bad("truncated"));
        }
        Ok(PackedQBRef {
            bytes: &bytes[..total],
            kernel,
            k,
            n,
            data_off,
            data_len,
        })
    }

    /// The packed blob: header, column sums and data (what [`PackedQBRef::from_bytes`]
    /// reads back).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Rows of B (the k of the product).
    pub fn rows(&self) -> usize {
        self.k
    }

    /// Columns of B (output channels).
    pub fn cols(&self) -> usize {
        self.n
    }

    /// The kernel it was packed for (and that [`crate::qgemm`] runs with it).
    pub fn kernel_name(&self) -> &'static str {
        self.kernel.name
    }

    pub(crate) fn kernel(&self) -> &'static QgemmKernel {
        self.kernel
    }

    /// The k chunk it was packed in (all of k, rounded up to the k group).
    #[cfg(feature = "alloc")]
    pub(crate) fn kc(&self) -> usize {
        let g = self.kernel.format.k_group();
        self.k.div_ceil(g).max(1) * g
    }

    /// B as the driver reads it: one k chunk.
    pub(crate) fn source(&self) -> QbSource<'a> {
        let colsum = if self.n == 0 {
            &[][..]
        } else {
            // SAFETY: the blob starts 4-byte aligned (checked or made so) and holds n i32
            // column sums at byte 96 (its sizes were checked against its length).
            unsafe {
                core::slice::from_raw_parts(self.bytes.as_ptr().add(HEADER) as *const i32, self.n)
            }
        };
        QbSource::Packed {
            data: self.bytes[self.data_off..].as_ptr(),
            colsum,
            chunk_bytes: self.data_len,
        }
    }
}
