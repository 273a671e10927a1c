//! int8 GEMM with a caller-provided workspace (a [`crate::Context`] with one): no
//! allocation, with or without `alloc`.
//!
//! The pattern of `sgemm`'s workspace path: a `const fn *_workspace_size(m, n, k)` in bytes
//! (alignment slack included, valid for every kernel compiled in), and a call that returns
//! [`Error::WorkspaceTooSmall`] before reading or writing anything when the buffer is short. One thread; k in one chunk (no block buffer
//! for the sums); A packed one row tile at a time, B (when not prepacked) 4·NR columns at a
//! time. So the workspace is about `MR·k` packed elements of A, plus `16·k` of B when B is
//! strided (16 columns, rounded up to NR), plus `4·n` bytes of column terms: on a Cortex-M4
//! (MR = 4, i16 elements) `8k + 4n` bytes and some alignment for prepacked weights,
//! `40k + 4n` for strided ones.

use super::driver::{flips_a, layout_of, run_block, run_block_in, Dest, Geometry, Layout};
use super::driver::{run_block_over_a, run_segmented, QStrategy, QbSource, Segments, Terms};
use super::requant::RqPlan;
use super::{check_call, trivial_call, BOperand, Out, QgemmB, QuantInput, Requantize};
use crate::error::Error;
use crate::gemm::raw::Raw;
use crate::kernels::int8::{QFormat, QgemmKernel, QGEMM_KERNELS};
use crate::kernels::targets::{qshape, Kernels, QGEMM_SHAPES};
use crate::matrix::{MatMut, MatRef};

/// Columns of a strided B packed at a time by the workspace path (rounded up to NR): A is
/// packed again for each such block, which costs about 2/16 instruction per
/// multiply-add on a Cortex-M4.
const WS_B_COLS: usize = 16;

/// The blocking of the workspace path for a kernel of geometry `geo`: k in one chunk, one
/// row tile of A at a time, B packed [`WS_B_COLS`] columns at a time (`packs_b`) or read
/// prepacked.
pub(crate) const fn ws_strategy(geo: Geometry, n: usize, k: usize, packs_b: bool) -> QStrategy {
    let kc = k.div_ceil(geo.g).saturating_mul(geo.g);
    QStrategy {
        kc: if kc < geo.g { geo.g } else { kc },
        mc: geo.mr,
        nc: if packs_b {
            WS_B_COLS.div_ceil(geo.nr) * geo.nr
        } else if n == 0 {
            1
        } else {
            n
        },
    }
}

/// Bytes (alignment slack included) of the workspace path for m×n×k, the most any kernel
/// compiled in needs.
const fn ws_bytes(m: usize, n: usize, k: usize, packs_b: bool) -> usize {
    if m == 0 || n == 0 || k == 0 {
        return 0;
    }
    let mut most = 0;
    let mut i = 0;
    while i < QGEMM_KERNELS.len() {
        let bytes = ws_bytes_of(Geometry::of(&QGEMM_KERNELS[i]), m, n, k, packs_b);
        if bytes > most {
            most = bytes;
        }
        i += 1;
    }
    crate::scratch::caller_workspace_size(most)
}

/// Bytes (without alignment slack) of the workspace path for one kernel geometry.
const fn ws_bytes_of(geo: Geometry, m: usize, n: usize, k: usize, packs_b: bool) -> usize {
    let s = ws_strategy(geo, n, k, packs_b);
    layout_of(geo, s, k, m, n, packs_b, false).total
}

/// [`qgemm_workspace_size`] (`packs_b`) or [`qgemm_packed_workspace_size`] as the build of
/// `kernels` computes them: what a blob converted for that build plans as GEMM scratch.
pub(crate) fn qgemm_workspace_size_for(
    kernels: Kernels,
    m: usize,
    n: usize,
    k: usize,
    packs_b: bool,
) -> usize {
    if m == 0 || n == 0 || k == 0 {
        return 0;
    }
    let most = |geos: &mut dyn Iterator<Item = Geometry>| {
        geos.map(|g| ws_bytes_of(g, m, n, k, packs_b))
            .max()
            .unwrap_or(0)
    };
    let most = match kernels {
        Kernels::Build => return ws_bytes(m, n, k, packs_b),
        Kernels::Target(t) => most(
            &mut t
                .qgemm
                .iter()
                .filter_map(|name| qshape(name))
                .map(Geometry::of_shape),
        ),
        Kernels::Any => most(&mut QGEMM_SHAPES.iter().map(Geometry::of_shape)),
    };
    crate::scratch::caller_workspace_size(most)
}

/// Bytes of workspace [`crate::qgemm`] needs in its [`crate::Context`] for an m×n×k product
/// with a strided B (A m×k, B k×n), whatever the layouts, the output stage and whichever
/// int8 kernel compiled in runs it. A `const fn`, so a buffer can be sized at compile time:
///
/// ```
/// use edgemm::{qgemm, qgemm_workspace_size, Context, MatMut, MatRef};
/// const WS: usize = qgemm_workspace_size(2, 2, 2);
/// let mut workspace = [0u8; WS];
/// let a: [u8; 4] = [130, 131, 132, 133]; // 2×2, zero point 128
/// let b: [i8; 4] = [1, -1, 2, 3];
/// let mut c = [0i32; 4];
/// qgemm(
///     MatRef::row_major(&a, 2, 2)?, 128,
///     MatRef::row_major(&b, 2, 2)?, 0,
///     MatMut::row_major(&mut c, 2, 2)?,
///     Context::new().workspace(&mut workspace),
/// )?;
/// assert_eq!(c, [2 * 1 + 3 * 2, 2 * -1 + 3 * 3, 4 * 1 + 5 * 2, 4 * -1 + 5 * 3]);
/// # Ok::<(), edgemm::Error>(())
/// ```
///
/// 0 when m, n or k is 0. Grows with k and n, not with m: one packed row tile of A and 16
/// packed columns of B (rounded up to NR), `MR·k + 16·k` elements, the column terms (about
/// `4n` bytes), alignment. On a Cortex-M4 build, `40k + 4n` bytes and some 400 more.
pub const fn qgemm_workspace_size(m: usize, n: usize, k: usize) -> usize {
    ws_bytes(m, n, k, true)
}

/// Bytes of workspace [`crate::qgemm`] needs in its [`crate::Context`] for an m×n×k product
/// with weights prepacked in caller memory ([`crate::PackedQBRef`]): one packed row tile of A (`MR·k` elements) and the column
/// terms (`8n` bytes), plus alignment. A `const fn`; 0 when m, n or k is 0.
pub const fn qgemm_packed_workspace_size(m: usize, n: usize, k: usize) -> usize {
    ws_bytes(m, n, k, false)
}

/// The workspace path: checks everything (the workspace size included) before touching
/// anything, then runs on the calling thread.
pub(super) fn ws_impl<A: QuantInput>(
    ker: &'static QgemmKernel,
    a: Raw<A>,
    za: i32,
    b: BOperand,
    out: Out,
    workspace: &mut [u8],
) -> Result<(), Error> {
    let (m, n, k, zb) = check_call(&a, za, &b, &out)?;
    let packs_b = matches!(b, BOperand::Strided(..));
    let geo = Geometry::of(ker);
    let (size, s) = match &b {
        // Weights packed with allocation keep the k chunks they were packed in.
        #[cfg(feature = "alloc")]
        BOperand::Packed(p, _) => (p.workspace_size(m), p.ws_strategy(m)),
        _ => (ws_bytes(m, n, k, packs_b), ws_strategy(geo, n, k, packs_b)),
    };
    let ws = crate::scratch::caller_workspace(workspace, size)?;
    if trivial_call(m, n, k, &out) {
        return Ok(());
    }
    let mut out = out;
    out.note_range::<A>(k, za, zb);
    debug_assert!(
        layout_of(geo, s, k, m, n, packs_b, false).total + crate::scratch::WS_ALIGN - 1 <= size
    );
    let terms = Terms {
        za: za + ker.format.a_shift(A::SIGNED),
        zb,
        bias: out.bias(),
    };
    let src = b.source();
    // SAFETY: a, the output and B (strided: a validated view; prepacked: a blob whose sizes
    // were checked against its k and n, which check_call matched to A and C) name only
    // in-bounds elements; C does not overlap the inputs (a MatMut borrows its slice
    // exclusively); `ws` is 64-byte aligned with at least the layout's bytes (the size
    // checked above is the largest over the kernels, this one included); ker runs here
    // (selection, Kernel::by_name or PackedQBRef checked it).
    unsafe { run_block(ker, &s, a, src, 0, &terms, out.dest(), ws) };
    Ok(())
}

/// The error of an int8 call without a workspace in a build without `alloc`: a workspace of
/// 0 bytes where the call's size is needed.
#[cfg(not(feature = "alloc"))]
pub(super) fn missing_workspace<A: QuantInput>(a: &Raw<A>, b: &BOperand) -> Error {
    let (_, n, _) = b.dims();
    let (m, k) = (a.rows, a.cols);
    Error::WorkspaceTooSmall {
        needed: ws_bytes(m, n, k, matches!(b, BOperand::Strided(..))),
        got: 0,
    }
}

/// A requantized int8 product on the workspace path with everything but A, the output and
/// the workspace fixed (B, zero points, requantization), checked once for calls of any
/// number of rows: the crate's GEMM operators call it once per block of rows (16 rows in a
/// pointwise convolution), where [`crate::qgemm`] would validate the requantization, scan
/// the bias and size the workspace over every kernel again on each call.
#[derive(Clone, Copy)]
pub(crate) struct WsPlan<'a> {
    ker: &'static QgemmKernel,
    s: QStrategy,
    /// The layout of a call of MR rows or more (one row tile of A at a time), made once
    /// where the plan runs over blocks of rows (`None`: made per call, as for fewer rows).
    lay_tile: Option<Layout>,
    src: QbSource<'a>,
    /// A's zero point as i8.
    za: i32,
    zb: i32,
    k: usize,
    n: usize,
    plan: RqPlan<'a>,
    bias: Option<&'a [i32]>,
}

impl<'a> WsPlan<'a> {
    /// The plan for `b` (k×n: a view, or packed in caller memory) with int8 A of zero point
    /// `za`, B's `zb`, and i8 output requantized by `rq`; `None` when k or n is 0 (nothing to
    /// multiply: [`crate::qgemm`] handles those calls). `blocks`: the caller runs it over
    /// blocks of rows ([`WsPlan::run`], [`WsPlan::run_over_input`]), so their layout is made
    /// here once; else (only [`WsPlan::run_segmented`], which has no workspace) not at all.
    pub(crate) fn new(
        b: QgemmB<'a>,
        za: i32,
        zb: i32,
        rq: &Requantize<'a>,
        blocks: bool,
    ) -> Result<Option<Self>, Error> {
        let (ker, b, src) = match b {
            QgemmB::View(v) => {
                let v = Raw::from_ref(&v);
                let ker = crate::kernels::qgemm_kernel()?;
                (ker, BOperand::Strided(v, zb), QbSource::Strided(v))
            }
            #[cfg(feature = "alloc")]
            QgemmB::Packed(_) => return Ok(None),
            QgemmB::PackedRef(p) => (p.kernel(), BOperand::PackedRef(p, zb), p.source()),
        };
        let (k, n, _) = b.dims();
        if k == 0 || n == 0 {
            return Ok(None);
        }
        // The checks of a call of one row (those of more rows are the same): shapes, zero
        // points, the exact-k limit; then the requantization for n columns and the
        // accumulator bound.
        let out = Out::Requant {
            out: Raw {
                ptr: core::ptr::null_mut(),
                rows: 1,
                cols: n,
                rs: 0,
                cs: 1,
            },
            plan: rq.plan_i8(n)?,
            bias: rq.bias,
        };
        let one = Raw {
            ptr: core::ptr::null_mut::<i8>(),
            rows: 1,
            cols: k,
            rs: 0,
            cs: 1,
        };
        check_call(&one, za, &b, &out)?;
        let mut out = out;
        // (The u8 form of A, each a + 128 with za + 128, has the same bound.)
        out.note_range::<i8>(k, za, zb);
        let Out::Requant { plan, bias, .. } = out else {
            return Ok(None);
        };
        let geo = Geometry::of(ker);
        let packs_b = matches!(b, BOperand::Strided(..));
        let s = ws_strategy(geo, n, k, packs_b);
        Ok(Some(WsPlan {
            ker,
            s,
            lay_tile: blocks.then(|| layout_of(geo, s, k, geo.mr, n, packs_b, false)),
            src,
            za,
            zb,
            k,
            n,
            plan,
            bias,
        }))
    }

    /// This kernel's workspace layout for m ≥ 1 rows (the one of MR rows serves any m ≥ MR:
    /// one row tile of A at a time).
    fn layout(&self, m: usize) -> Layout {
        match self.lay_tile {
            Some(lay) if m >= self.ker.mr => lay,
            _ => {
                let packs_b = matches!(self.src, QbSource::Strided(_));
                let geo = Geometry::of(self.ker);
                layout_of(geo, self.s, self.k, m.min(geo.mr), self.n, packs_b, false)
            }
        }
    }

    /// `out (m×n, row-major) = requantize(a (m×k, rows `a_stride` apart) · B)`: A as i8, or
    /// as u8 each `a ^ 0x80` (= a + 128, the zero point moved by 128: the same exact sums).
    pub(crate) fn run<A: QuantInput>(
        &self,
        a: &[A],
        a_stride: usize,
        m: usize,
        out: &mut [u8],
        ws: &mut [u8],
    ) -> Result<(), Error> {
        if m == 0 {
            return Ok(());
        }
        let a = self.a_view(a, a_stride, m)?;
        let out = MatMut::row_major(out, m, self.n)?;
        // SAFETY: the output is a validated m×n view that borrows its slice exclusively, so
        // it overlaps neither A, `ws` nor B, and nothing else touches it; b_col0 = 0.
        unsafe { self.run_block(a, Raw::from_mut(&out), 0, ws) }
    }

    #[cfg(feature = "std")]
    /// Columns of B a task of [`WsPlan::run_cols`] starts on a multiple of: the kernel's NR
    /// (a sliver of the packed weights); `None` when B is not prepacked (no column split).
    pub(crate) fn col_unit(&self) -> Option<usize> {
        matches!(self.src, QbSource::Packed { .. }).then_some(self.ker.nr)
    }

    #[cfg(feature = "std")]
    /// [`WsPlan::run`] for columns `j0..j1` of the output only: the sums of those columns
    /// are those of the whole call (exact i32), so tasks that split the columns write the
    /// bytes one call writes. `out` is the m×n output's first byte (rows n bytes apart).
    /// `j0` a multiple of [`WsPlan::col_unit`], `j0 ≤ j1 ≤ n`.
    ///
    /// # Safety
    /// `out` is valid for writes of m·n bytes and overlaps neither `a`, `ws` nor B;
    /// nothing else reads or writes columns `j0..j1` of its rows meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn run_cols<A: QuantInput>(
        &self,
        a: &[A],
        a_stride: usize,
        m: usize,
        out: *mut u8,
        (j0, j1): (usize, usize),
        ws: &mut [u8],
    ) -> Result<(), Error> {
        if self.col_unit().is_none_or(|u| j0 % u != 0) || j0 > j1 || j1 > self.n {
            return Err(Error::SizeOverflow);
        }
        if m == 0 || j0 == j1 {
            return Ok(());
        }
        let a = self.a_view(a, a_stride, m)?;
        let out = Raw {
            // (In bounds: j0 < n, checked above.)
            ptr: out.wrapping_add(j0),
            rows: m,
            cols: j1 - j0,
            rs: self.n as isize,
            cs: 1,
        };
        // SAFETY: columns j0..j1 of m rows n bytes apart lie in the caller's m·n bytes,
        // which no one else touches meanwhile and which overlap no input (caller); B is
        // prepacked (col_unit) with j0 a multiple of NR and j1 ≤ n (checked).
        unsafe { self.run_block(a, out, j0, ws) }
    }

    /// A as the m×k view the driver reads.
    fn a_view<'x, A>(&self, a: &'x [A], a_stride: usize, m: usize) -> Result<MatRef<'x, A>, Error> {
        let stride = isize::try_from(a_stride).map_err(|_| Error::SizeOverflow)?;
        MatRef::new(a, m, self.k, stride, 1)
    }

    /// The body of [`WsPlan::run`] and [`WsPlan::run_cols`]: `out` (m rows, `out.cols`
    /// columns) ← requantize(A · B's columns `b_col0..b_col0 + out.cols`).
    ///
    /// # Safety
    /// `out` names writable bytes that overlap neither A, `ws` nor B, untouched by anyone
    /// else meanwhile; `b_col0 + out.cols ≤ n`, and `b_col0` is 0 or a multiple of NR with
    /// B prepacked.
    unsafe fn run_block<A: QuantInput>(
        &self,
        a: MatRef<A>,
        out: Raw<u8>,
        b_col0: usize,
        ws: &mut [u8],
    ) -> Result<(), Error> {
        // The layout of m rows and all n columns: every piece at least that of a narrower
        // output.
        let lay = self.layout(a.rows());
        let ws =
            crate::scratch::caller_workspace(ws, crate::scratch::caller_workspace_size(lay.total))?;
        let za = if A::SIGNED { self.za } else { self.za + 128 };
        let terms = Terms {
            za: za + self.ker.format.a_shift(A::SIGNED),
            zb: self.zb,
            bias: self.bias,
        };
        let dest = Dest::Requant {
            out,
            plan: self.plan,
        };
        // SAFETY: A is a validated view of m×k (k is B's, checked with the zero points and
        // the exact-k limit in `new`; the requantization was validated for n columns there);
        // the output and B's columns are as the caller promises, and B (a view or a checked
        // packed blob of k×n) covers them, the bias and the requantization from column
        // b_col0; `ws` is 64-byte aligned with `lay.total` bytes (checked just above), `lay`
        // being this kernel's layout for m rows and n columns (a layout for MR rows is that
        // of any m ≥ MR: one row tile of A at a time); `ker` runs here (selected, or checked
        // when the blob was read).
        unsafe {
            run_block_in(
                self.ker,
                &self.s,
                &lay,
                Raw::from_ref(&a),
                self.src,
                b_col0,
                &terms,
                dest,
                ws,
            )
        };
        Ok(())
    }

    /// Whether [`WsPlan::run_over_input`] runs: B prepacked (one column block) and the
    /// driver reads i8 A through its own buffer (`driver::flips_a`).
    pub(crate) fn runs_over_input(&self) -> bool {
        matches!(self.src, QbSource::Packed { .. }) && flips_a(self.ker, &self.s, self.k, self.zb)
    }

    /// [`WsPlan::run`] for i8 A (m×k, row-major) that the output (m×n, row-major) overwrites:
    /// both in `buf` from its first byte (a pointwise convolution planned in place). One
    /// call for all rows, no copy of A besides the driver's own (`driver::run_block_over_a`).
    /// Only where [`WsPlan::runs_over_input`].
    pub(crate) fn run_over_input(
        &self,
        buf: &mut [u8],
        m: usize,
        ws: &mut [u8],
    ) -> Result<(), Error> {
        if !self.runs_over_input() {
            return Err(Error::OutputOverlapsInput {
                operand: crate::error::Operand::A,
            });
        }
        if m == 0 {
            return Ok(());
        }
        let need = m
            .checked_mul(self.k.max(self.n))
            .ok_or(Error::SizeOverflow)?;
        let buf = buf.get_mut(..need).ok_or(Error::SizeOverflow)?;
        let lay = self.layout(m);
        let ws =
            crate::scratch::caller_workspace(ws, crate::scratch::caller_workspace_size(lay.total))?;
        let terms = Terms {
            za: self.za + self.ker.format.a_shift(true),
            zb: self.zb,
            bias: self.bias,
        };
        // Both views from the one pointer (A is read only through it, before the rows it
        // reads are written).
        let p = buf.as_mut_ptr();
        let a = Raw {
            ptr: p as *mut i8,
            rows: m,
            cols: self.k,
            rs: self.k as isize,
            cs: 1,
        };
        let out = Raw {
            ptr: p,
            rows: m,
            cols: self.n,
            rs: self.n as isize,
            cs: 1,
        };
        let dest = Dest::Requant {
            out,
            plan: self.plan,
        };
        // SAFETY: `buf` holds m·max(k, n) bytes (checked), so both row-major views are in
        // bounds and this call's alone (borrowed exclusively); they start at the same byte as
        // run_block_over_a allows; B is packed for `ker` (k×n, checked in `new`), which runs
        // here; runs_over_input (checked) is flips_a with B packed (one column block: nc = n
        // for packed B, ws_strategy); `ws` is aligned with `lay.total` bytes (checked), `lay`
        // this kernel's layout for m rows (that of MR rows serves any m ≥ MR, as in `run`).
        unsafe { run_block_over_a(self.ker, &self.s, &lay, a, self.src, &terms, dest, ws) };
        Ok(())
    }
}

impl WsPlan<'_> {
    /// Whether [`WsPlan::run_segmented`] runs: the kernel reads A in segments (u8, the
    /// VNNI format), B is prepacked for it, and B's zero point is 0 (no row sums).
    pub(crate) fn segmented(&self) -> bool {
        self.ker.segments
            && self.zb == 0
            && self.ker.format == QFormat::U8x4
            && matches!(self.src, QbSource::Packed { .. })
    }

    /// Column offsets [`WsPlan::run_segmented`] reads: n rounded up to the kernel's NR.
    pub(crate) fn col_offsets_len(&self) -> usize {
        self.n.next_multiple_of(self.ker.nr)
    }

    /// Writes the column offsets of a product with u8 A (each `a ^ 0x80`, zero point
    /// `za + 128`) into `out[..col_offsets_len()]`: `k·za'·zb − za'·Σ_p B[p, j] + bias[j]`,
    /// wrapping, 0 past n. Once per call of [`WsPlan::run_segmented`]'s caller, not per
    /// row tile.
    pub(crate) fn col_offsets_u8(&self, out: &mut [i32]) -> Result<(), Error> {
        let out = out
            .get_mut(..self.col_offsets_len())
            .ok_or(Error::SizeOverflow)?;
        let QbSource::Packed { colsum, .. } = self.src else {
            return Err(Error::SizeOverflow);
        };
        // (U8x4 reads u8 A as it is: no format shift.)
        let za = self.za + 128;
        let kzz = (self.k as i32).wrapping_mul(za).wrapping_mul(self.zb);
        let (head, tail) = out.split_at_mut(self.n.min(out.len()));
        for (o, &cs) in head.iter_mut().zip(colsum) {
            *o = kzz.wrapping_sub(cs.wrapping_mul(za));
        }
        if let Some(bias) = self.bias {
            for (o, &b) in head.iter_mut().zip(bias) {
                *o = o.wrapping_add(b);
            }
        }
        tail.fill(0);
        Ok(())
    }

    /// `out (runs·m × n, row-major) = requantize(A · B)` with u8 A (each `a ^ 0x80`) read in
    /// place in segments from `a[at..]` ([`Segments`]: an implicit-GEMM convolution's
    /// patches over its padded input rows, `runs` output rows of m pixels), `col_off` from [`WsPlan::col_offsets_u8`]. Checks that
    /// the segments stay inside `a` and that they cover B's k; `segmented()` must hold.
    pub(crate) fn run_segmented(
        &self,
        a: &[u8],
        at: usize,
        m: usize,
        seg: Segments,
        col_off: &[i32],
        out: &mut [u8],
    ) -> Result<(), Error> {
        if m == 0 {
            return Ok(());
        }
        let QbSource::Packed { data, .. } = self.src else {
            return Err(Error::SizeOverflow);
        };
        let g = self.ker.format.k_group();
        let seg_bytes = seg.groups.checked_mul(g).ok_or(Error::SizeOverflow)?;
        // The last byte read: row m − 1, segment segs − 1, its last group.
        let runs = seg.runs.max(1);
        let end = (m - 1)
            .checked_mul(seg.a_rs)
            .and_then(|v| v.checked_add((runs - 1).checked_mul(seg.a_run)?))
            .and_then(|v| v.checked_add(seg.segs.checked_sub(1)?.checked_mul(seg.a_ss)?))
            .and_then(|v| v.checked_add(seg_bytes)?.checked_add(at));
        if !self.segmented()
            || seg.segs.checked_mul(seg_bytes) != Some(self.k)
            || end.is_none_or(|e| e > a.len())
            || col_off.len() < self.col_offsets_len()
            || isize::try_from(seg.a_rs.max(seg.a_ss).max(seg.a_run)).is_err()
        {
            return Err(Error::SizeOverflow);
        }
        let rows = runs.checked_mul(m).ok_or(Error::SizeOverflow)?;
        let out = MatMut::row_major(out, rows, self.n)?;
        let dest = Dest::Requant {
            out: Raw::from_mut(&out),
            plan: self.plan,
        };
        // SAFETY: the kernel reads segments (`segmented`); every A byte of rows 0..m of
        // every run lies in `a` (checked above: `end`, the last run's last row); B is this kernel's packed blob of k = segs·groups·g rows
        // and n columns (checked when the plan was made; the segments cover k, checked
        // above); col_off has n rounded up to NR values (checked); the output is a validated
        // runs·m × n view borrowed exclusively, so it overlaps neither A nor B; the kernel runs
        // here (checked when its blob was read).
        unsafe {
            run_segmented(
                self.ker,
                a.as_ptr().wrapping_add(at),
                m,
                seg,
                data,
                col_off,
                dest,
            )
        };
        Ok(())
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::WsPlan;
    use crate::quant::{
        qgemm, qgemm_packed_b_size, qgemm_packed_workspace_size, qgemm_workspace_size, PackedQBRef,
        QgemmB, Requantize, Requantized, Scale,
    };
    use crate::{Context, MatMut, MatRef};
    use alloc::vec;
    use alloc::vec::Vec;

    /// Per-channel bias, multipliers and shifts of n columns, the tests' requantization.
    struct Consts {
        bias: Vec<i32>,
        mults: Vec<i32>,
        shifts: Vec<i32>,
    }

    impl Consts {
        fn new(n: usize) -> Self {
            let n = n as i32;
            Consts {
                bias: (0..n).map(|j| j * 97 - 1000).collect(),
                mults: (0..n).map(|j| (1 << 30) + j * 12_345).collect(),
                shifts: (0..n).map(|j| -8 - j % 3).collect(),
            }
        }

        /// Per channel, output zero point −5, clamp [−100, 120].
        fn requantize(&self) -> Requantize<'_> {
            Requantize::new(
                Scale::PerChannel {
                    multipliers: &self.mults,
                    shifts: &self.shifts,
                },
                -5,
            )
            .with_bias(&self.bias)
            .with_clamp(-100, 120)
        }
    }

    /// A plan's calls (every m from 1 past a row tile, A as i8 and flipped to u8, B as a
    /// view and packed, rows of A padded) give `qgemm`'s bytes.
    #[test]
    fn ws_plan_matches_qgemm() {
        let (k, n) = (37, 21);
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 24) as u8
        };
        let w: Vec<i8> = (0..k * n).map(|_| next() as i8).collect();
        let consts = Consts::new(n);
        let rq = consts.requantize();
        let (za, zb) = (-3, 0);
        let mut packed_buf = vec![0u8; qgemm_packed_b_size(k, n)];
        let packed =
            PackedQBRef::pack(MatRef::row_major(&w, k, n).unwrap(), &mut packed_buf).unwrap();
        let view = QgemmB::View(MatRef::row_major(&w, k, n).unwrap());
        let stride = k + 3;
        for b in [view, QgemmB::PackedRef(packed)] {
            let plan = WsPlan::new(b, za, zb, &rq, true).unwrap().unwrap();
            for m in 1..40 {
                let a: Vec<i8> = (0..m * stride).map(|_| next() as i8).collect();
                let au: Vec<u8> = a.iter().map(|&v| v as u8 ^ 0x80).collect();
                let mut want = vec![0i8; m * n];
                let mut ws = vec![0u8; qgemm_workspace_size(m, n, k)];
                let a_view = MatRef::new(&a, m, k, stride as isize, 1).unwrap();
                let c = Requantized(&rq, MatMut::row_major(&mut want, m, n).unwrap());
                qgemm(a_view, za, b, zb, c, Context::new().workspace(&mut ws)).unwrap();
                let want: Vec<u8> = want.iter().map(|&v| v as u8).collect();
                let mut ws = vec![0u8; qgemm_packed_workspace_size(m, n, k).max(ws.len())];
                let mut got = vec![0u8; m * n];
                plan.run(&a, stride, m, &mut got, &mut ws).unwrap();
                assert_eq!(got, want, "i8, m {m}");
                let mut got = vec![0u8; m * n];
                plan.run(&au, stride, m, &mut got, &mut ws).unwrap();
                assert_eq!(got, want, "u8, m {m}");
            }
        }
    }

    /// A call over an input that the output overwrites (in place) gives the bytes of a call
    /// into separate memory: outputs shorter and longer than inputs (the two block orders),
    /// one or several column tiles, every m from 1 past three row tiles.
    #[test]
    fn run_over_input_matches_run() {
        let mut seed = 11u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 24) as u8
        };
        for (k, n) in [(16, 8), (24, 144), (40, 40), (64, 21), (32, 70), (96, 33)] {
            let w: Vec<i8> = (0..k * n).map(|_| next() as i8).collect();
            let consts = Consts::new(n);
            let rq = consts.requantize();
            let mut packed_buf = vec![0u8; qgemm_packed_b_size(k, n)];
            let packed =
                PackedQBRef::pack(MatRef::row_major(&w, k, n).unwrap(), &mut packed_buf).unwrap();
            let plan = WsPlan::new(QgemmB::PackedRef(packed), -3, 0, &rq, true)
                .unwrap()
                .unwrap();
            // (Every build whose kernel is the VNNI one takes it.)
            assert_eq!(
                plan.runs_over_input(),
                plan.ker.format == crate::kernels::int8::QFormat::U8x4
            );
            if !plan.runs_over_input() {
                continue;
            }
            for m in 1..45 {
                let a: Vec<i8> = (0..m * k).map(|_| next() as i8).collect();
                let mut ws = vec![0u8; qgemm_packed_workspace_size(m, n, k)];
                let mut want = vec![0u8; m * n];
                plan.run(&a, k, m, &mut want, &mut ws).unwrap();
                let mut buf: Vec<u8> = a.iter().map(|&v| v as u8).collect();
                buf.resize(m * k.max(n), 0x55);
                plan.run_over_input(&mut buf, m, &mut ws).unwrap();
                assert_eq!(&buf[..m * n], &want[..], "k {k}, n {n}, m {m}");
            }
        }
    }
}
