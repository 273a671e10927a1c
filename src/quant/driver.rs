//! The blocked int8 GEMM of one thread over one block of C, in the same loop order as the
//! f32 driver (jc → pc → ic → jr → row tiles). Zero-point and bias terms enter as per-row
//! and per-column offsets at the last k chunk (when the sums of A' and B' are complete), and
//! requantization runs on each finished i32 tile while it is hot in L1 — or, for a kernel
//! that takes `REQUANT` and a plan that allows it ([`Fused`]), inside the kernel's epilogue.
//!
//! Where the i32 sums of a tile go:
//! - straight into C when the output is i32 with unit column stride (later k chunks
//!   accumulate there);
//! - into a tile on the stack when k fits one chunk, then requantized (or scattered into a
//!   C of general strides), unless the kernel requantizes them itself (bytes straight to
//!   the output);
//! - into an i32 buffer for the thread's block when k spans several chunks, finished tile
//!   by tile at the last chunk.

// Without `alloc` nothing drives this module yet (the int8 entry points allocate).
#![cfg_attr(not(feature = "alloc"), allow(dead_code))]

use super::pack::{pack_a, pack_b};
use super::requant::{Fused, RqPlan};
use super::QuantInput;
use crate::gemm::pack::{row_tile, row_tiles, RowTiles};
use crate::gemm::raw::Raw;
use crate::kernels::int8::{QgemmArgs, QgemmKernel, RqArgs, ACCUMULATE, MAX_MR, MAX_NR};

/// Blocking of one int8 call (elements of k; kc is a multiple of the kernel's k group).
#[derive(Clone, Copy, Debug)]
pub(crate) struct QStrategy {
    pub kc: usize,
    pub mc: usize,
    pub nc: usize,
}

/// B as the int8 driver sees it.
#[derive(Clone, Copy)]
pub(crate) enum QbSource<'a> {
    Strided(Raw<i8>),
    /// Prepacked (see `PackedQB`): k chunk q at byte `q·chunk_bytes` (every chunk but the
    /// last holds kc rows), its sliver s at `s·NR·groups_q·g·e`; `colsum` over all of k.
    Packed {
        data: *const u8,
        colsum: &'a [i32],
        chunk_bytes: usize,
    },
}

// SAFETY: read-only pointers into memory that outlives the call; threads only read.
unsafe impl Send for QbSource<'_> {}
// SAFETY: as above.
unsafe impl Sync for QbSource<'_> {}

/// Where the results go.
#[derive(Clone, Copy)]
pub(crate) enum Dest<'a> {
    I32(Raw<i32>),
    /// One byte per element (i8 or u8 bit patterns).
    Requant {
        out: Raw<u8>,
        plan: RqPlan<'a>,
    },
}

// SAFETY: the Raw views are blocks of validated views; each thread writes a disjoint block.
unsafe impl Send for Dest<'_> {}
// SAFETY: as above.
unsafe impl Sync for Dest<'_> {}

/// The zero-point and bias terms of one call.
#[derive(Clone, Copy)]
pub(crate) struct Terms<'a> {
    /// A's zero point after the format's shift (za').
    pub za: i32,
    pub zb: i32,
    /// Per-column bias (absolute columns of C), requantized output only.
    pub bias: Option<&'a [i32]>,
}

/// `x` rounded up to a multiple of 64, saturating at `usize::MAX` (a size that can never be
/// provided, so an absurd request fails the size check instead of wrapping).
const fn align64(x: usize) -> usize {
    match x.checked_next_multiple_of(64) {
        Some(v) => v,
        None => usize::MAX,
    }
}

/// Byte offsets of the pieces of one thread's workspace.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    apack: usize,
    bpack: usize,
    rowsum: usize,
    rowoff: usize,
    colsum: usize,
    coloff: usize,
    acc: usize,
    pub total: usize,
}

/// Several k chunks and a destination that is not plain unit-stride i32 C: the sums live
/// in a block buffer until the last chunk.
fn uses_acc(s: &QStrategy, k: usize, dest: &Dest) -> bool {
    k > s.kc
        && match dest {
            Dest::I32(c) => c.cs != 1,
            Dest::Requant { .. } => true,
        }
}

/// The kernel's shape and packing, as plain numbers (so sizes can be computed in `const`
/// contexts, from the kernel table).
#[derive(Clone, Copy)]
pub(crate) struct Geometry {
    pub mr: usize,
    pub nr: usize,
    /// k steps per packed group.
    pub g: usize,
    /// Bytes per packed element.
    pub e: usize,
}

impl Geometry {
    pub const fn of(ker: &QgemmKernel) -> Geometry {
        Geometry {
            mr: ker.mr,
            nr: ker.nr,
            g: ker.format.k_group(),
            e: ker.format.elem_bytes(),
        }
    }

    /// The geometry of a kernel of any build (compiled in here or not).
    pub const fn of_shape(s: &crate::kernels::targets::QShape) -> Geometry {
        Geometry {
            mr: s.mr,
            nr: s.nr,
            g: s.format.k_group(),
            e: s.format.elem_bytes(),
        }
    }
}

/// The workspace layout of one thread's rows×cols block: `packs_b` when B is packed per
/// call (strided B), `acc` when the sums need the block buffer (see [`uses_acc`]). With a
/// single k chunk the row sums are only needed for the current MC block, so they take mc
/// rows, not all of them. A `const fn`: the caller-provided-workspace sizes use it too.
#[allow(clippy::too_many_arguments)]
pub(crate) const fn layout_of(
    geo: Geometry,
    s: QStrategy,
    k: usize,
    rows: usize,
    cols: usize,
    packs_b: bool,
    acc: bool,
) -> Layout {
    let Geometry { mr, nr, g, e } = geo;
    let kg = (if s.kc < k { s.kc } else { k })
        .div_ceil(g)
        .saturating_mul(g);
    let mcb = if s.mc < rows { s.mc } else { rows };
    let ncb = if s.nc < cols { s.nc } else { cols };
    // A block of one row is packed as one row (see run_block), not as a sliver of MR.
    let mc = if mcb == 1 {
        1
    } else {
        mcb.div_ceil(mr).saturating_mul(mr)
    };
    let nc = ncb.div_ceil(nr).saturating_mul(nr);
    let sum_rows = if k <= s.kc { mcb } else { rows };
    let slack = 4 * crate::gemm::pack::PACK_SLACK;
    let apack = 0;
    let bpack = align64(
        mc.saturating_mul(kg)
            .saturating_mul(e)
            .saturating_add(slack),
    );
    let b_bytes = if packs_b {
        align64(nc.saturating_mul(kg).saturating_mul(e))
    } else {
        0
    };
    let rowsum = bpack.saturating_add(b_bytes);
    let rowoff = rowsum.saturating_add(align64(sum_rows.saturating_mul(4)));
    let colsum = rowoff.saturating_add(align64(sum_rows.saturating_mul(4)));
    let colsum_bytes = if packs_b {
        align64(nc.saturating_mul(4))
    } else {
        0
    };
    let coloff = colsum.saturating_add(colsum_bytes);
    let accb = coloff.saturating_add(align64(nc.saturating_add(nr).saturating_mul(4)));
    let acc_bytes = if acc {
        align64(rows.saturating_mul(cols).saturating_mul(4))
    } else {
        0
    };
    let total = accb.saturating_add(acc_bytes);
    Layout {
        apack,
        bpack,
        rowsum,
        rowoff,
        colsum,
        coloff,
        acc: accb,
        total,
    }
}

fn layout(
    ker: &QgemmKernel,
    s: &QStrategy,
    k: usize,
    rows: usize,
    cols: usize,
    b: &QbSource,
    dest: &Dest,
) -> Layout {
    layout_of(
        Geometry::of(ker),
        *s,
        k,
        rows,
        cols,
        matches!(b, QbSource::Strided(_)),
        uses_acc(s, k, dest),
    )
}

/// Bytes of workspace one thread needs for a rows×cols block of C (64-byte aligned).
pub(crate) fn workspace_bytes(
    ker: &QgemmKernel,
    s: &QStrategy,
    k: usize,
    rows: usize,
    cols: usize,
    b: &QbSource,
    dest: &Dest,
) -> usize {
    layout(ker, s, k, rows, cols, b, dest).total
}

/// Zeros to point the offset arguments at when there is nothing to add.
static ZEROS: [i32; if MAX_MR > MAX_NR { MAX_MR } else { MAX_NR }] =
    [0; if MAX_MR > MAX_NR { MAX_MR } else { MAX_NR }];

/// The int8 product over one block: rows of `a`, columns `b_col0..` of B, into `dest`.
///
/// # Safety
/// `a` (m×k) and `dest` (m×n) name only in-bounds elements; `b` covers k rows and columns
/// `b_col0..b_col0+n` (strided: exactly k×n in bounds; packed: as its layout says); `dest`
/// does not overlap the inputs and is this thread's alone; `ws` is 64-byte aligned with
/// `workspace_bytes` bytes; `ker` runs on this CPU.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn run_block<A: QuantInput>(
    ker: &QgemmKernel,
    s: &QStrategy,
    a: Raw<A>,
    b: QbSource,
    b_col0: usize,
    t: &Terms,
    dest: Dest,
    ws: *mut u8,
) {
    let n = match dest {
        Dest::I32(c) => c.cols,
        Dest::Requant { out, .. } => out.cols,
    };
    let lay = layout(ker, s, a.cols, a.rows, n, &b, &dest);
    // SAFETY: the caller's contract; `lay` is this call's layout.
    unsafe { run_block_in(ker, s, &lay, a, b, b_col0, t, dest, ws) }
}

/// [`run_block`] with its workspace layout computed by the caller (once for many calls).
///
/// # Safety
/// As for [`run_block`], with `ws` holding `lay.total` bytes, and `lay` the layout of this
/// call (`layout_of` for this kernel, strategy, k, n and kind of B and destination) or
/// that of a call with more rows and otherwise the same (every piece is at least as large:
/// the layout grows with the rows).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn run_block_in<A: QuantInput>(
    ker: &QgemmKernel,
    s: &QStrategy,
    lay: &Layout,
    a: Raw<A>,
    b: QbSource,
    b_col0: usize,
    t: &Terms,
    dest: Dest,
    ws: *mut u8,
) {
    // SAFETY: the caller's contract.
    unsafe { run_block_ordered(ker, s, lay, a, b, b_col0, t, dest, ws, false) }
}

/// Whether a call with signed A reads it flipped through the A buffer, each MC block's rows
/// copied there before any of the block's outputs is written (see `a_flip` in
/// [`run_block_ordered`]), given A with unit column stride: the VNNI kernel's format, B's
/// zero point 0, k one chunk of whole groups and not a multiple of 4 KiB. (Only x86 has
/// that kernel: elsewhere the paths it opens compile out.)
pub(crate) fn flips_a(ker: &QgemmKernel, s: &QStrategy, k: usize, zb: i32) -> bool {
    cfg!(target_arch = "x86_64")
        && ker.format == crate::kernels::int8::QFormat::U8x4
        && ker.format.a_shift(true) == 128
        && k % ker.format.k_group() == 0
        && k <= s.kc
        && zb == 0
        && k % 4096 != 0
}

/// [`run_block_in`] for i8 A whose rows the output overwrites: A (m×k) and the output
/// (m×n) both row-major from the same address. Each MC block of A is copied (flipped) to
/// the workspace before the block's outputs are written, and the blocks run first to last
/// when n ≤ k (a block's outputs end where its own rows' inputs end), last to first
/// otherwise (they begin past the inputs of the rows before the block), so no row of A is
/// overwritten before it is read.
///
/// # Safety
/// As [`run_block_in`] except that `dest` (requantized, m×n, row stride n, unit column
/// stride) starts at `a`'s first byte (row stride k, unit column stride); `b` is packed
/// (one column block: `s.nc ≥ n`); [`flips_a`] holds for `ker`, `s`, k and `t.zb`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn run_block_over_a(
    ker: &QgemmKernel,
    s: &QStrategy,
    lay: &Layout,
    a: Raw<i8>,
    b: QbSource,
    t: &Terms,
    dest: Dest,
    ws: *mut u8,
) {
    let n = match dest {
        Dest::I32(c) => c.cols,
        Dest::Requant { out, .. } => out.cols,
    };
    debug_assert!(flips_a(ker, s, a.cols, t.zb) && a.cs == 1 && s.nc >= n);
    // SAFETY: the caller's contract; the order is the one that reads each row first.
    unsafe { run_block_ordered(ker, s, lay, a, b, 0, t, dest, ws, n > a.cols) }
}

/// [`run_block_in`], the MC blocks of rows last to first when `rev` (see
/// [`run_block_over_a`]).
///
/// # Safety
/// As [`run_block_in`], or [`run_block_over_a`]'s contract.
#[allow(clippy::too_many_arguments)]
unsafe fn run_block_ordered<A: QuantInput>(
    ker: &QgemmKernel,
    s: &QStrategy,
    lay: &Layout,
    a: Raw<A>,
    b: QbSource,
    b_col0: usize,
    t: &Terms,
    dest: Dest,
    ws: *mut u8,
    rev: bool,
) {
    let (m, k) = (a.rows, a.cols);
    let n = match dest {
        Dest::I32(c) => c.cols,
        Dest::Requant { out, .. } => out.cols,
    };
    let (mr, nr) = (ker.mr, ker.nr);
    let (g, e) = (ker.format.k_group(), ker.format.elem_bytes());
    let acc_mode = uses_acc(s, k, &dest);
    // One k chunk: the row sums are per MC block (indexed from the block's first row).
    let block_sums = k <= s.kc;
    // SAFETY (pointer setup): every offset is inside the workspace (layout).
    let (apack, bpack, acc) = unsafe {
        (
            ws.add(lay.apack),
            ws.add(lay.bpack),
            ws.add(lay.acc) as *mut i32,
        )
    };
    // SAFETY: the layout gives each array its own aligned, in-bounds range of i32.
    let sum_rows = (lay.rowoff - lay.rowsum) / 4;
    let (rowsum, rowoff, colsum, coloff) = unsafe {
        (
            core::slice::from_raw_parts_mut(ws.add(lay.rowsum) as *mut i32, sum_rows),
            core::slice::from_raw_parts_mut(ws.add(lay.rowoff) as *mut i32, sum_rows),
            core::slice::from_raw_parts_mut(
                ws.add(lay.colsum) as *mut i32,
                (lay.coloff - lay.colsum) / 4,
            ),
            core::slice::from_raw_parts_mut(
                ws.add(lay.coloff) as *mut i32,
                (lay.acc - lay.coloff) / 4,
            ),
        )
    };
    // The stack tile: the kernel writes each h×w tile (flags 0: C is not read) before the
    // output stage reads it, so it is never initialised (zeroing 2 KiB per call shows on
    // a Cortex-M4).
    let mut tile = core::mem::MaybeUninit::<[i32; MAX_MR * MAX_NR]>::uninit();
    let tile = tile.as_mut_ptr() as *mut i32;
    let mut args = QgemmArgs {
        a: core::ptr::null(),
        b: core::ptr::null(),
        c: core::ptr::null_mut(),
        k_groups: 0,
        a_rs: (g * e) as isize,
        a_ks: (mr * g * e) as isize,
        b_ks: (nr * g * e) as isize,
        c_rs: 0,
        m: 0,
        n: 0,
        row_off: ZEROS.as_ptr(),
        col_off: ZEROS.as_ptr(),
        flags: 0,
        a_segs: 1,
        a_ss: 0,
        rq: core::ptr::null(),
    };
    // (The fused stage does not add row offsets: only without them.)
    let fused = fused_stage(ker, &dest).filter(|_| t.zb == 0);
    // (Set with args.rq for each column tile, when fused.)
    let mut rqa: RqArgs;
    let chunks = k.div_ceil(s.kc);
    // A read where it lies, not packed: when its rows already are the kernel's format (the
    // VNNI kernel's u8 in 4-byte k groups, rows at any stride), k is whole groups (no
    // over-read past a row), no row sums are needed (B's zero point is 0), and the row
    // stride is not a multiple of 4 KiB (rows that would evict each other from L1). An
    // operator that writes A itself (im2col) writes it so; packing would be a second copy.
    // (The Arm byte format I8x4 could read signed A so too: not measured, so not taken.)
    let a_direct = ker.format == crate::kernels::int8::QFormat::U8x4
        && ker.format.a_shift(A::SIGNED) == 0
        && a.cs == 1
        && k % g == 0
        && t.zb == 0
        && a.rs.unsigned_abs() % 4096 != 0;
    // Signed A for that kernel, in one k chunk and otherwise as above: each MC block's rows
    // flipped to u8 (x ^ 0x80 = x + 128, which za' already counts) into the A buffer, k
    // bytes apart, and read there as in place. One pass over contiguous bytes instead of
    // the transpose into MR-row slivers (small-k pointwise layers spent as long packing a
    // 14-row tile as multiplying it). The buffer holds mc·kg ≥ mcb·k bytes (layout).
    let a_flip = !a_direct && A::SIGNED && a.cs == 1 && flips_a(ker, s, k, t.zb);

    for jc in (0..n).step_by(s.nc) {
        let ncb = s.nc.min(n - jc);
        if let QbSource::Strided(_) = b {
            // (Prepacked B brings its column sums; the layout has none for it.)
            colsum[..ncb].fill(0);
        }
        for (q, pc) in (0..k).step_by(s.kc).enumerate() {
            let kcb = s.kc.min(k - pc);
            let groups = kcb.div_ceil(g);
            let last = q + 1 == chunks;
            let (bbase, sliver_bytes) = match b {
                QbSource::Strided(b) => {
                    // SAFETY: the block lies inside B; bpack holds ceil(nc/NR)·NR·kc·e
                    // bytes (layout); colsum has ncb entries.
                    unsafe {
                        pack_b(
                            b.block(pc, jc, kcb, ncb),
                            ker.format,
                            nr,
                            bpack,
                            &mut colsum[..ncb],
                        )
                    };
                    (bpack as *const u8, nr * groups * g * e)
                }
                QbSource::Packed {
                    data, chunk_bytes, ..
                } => {
                    let first = (b_col0 + jc) / nr;
                    let sb = nr * groups * g * e;
                    (data.wrapping_add(q * chunk_bytes + first * sb), sb)
                }
            };
            if last {
                // col_off[j] = −za'·Σb + k·za'·zb (+ bias), all wrapping.
                let kzz = (k as i32).wrapping_mul(t.za).wrapping_mul(t.zb);
                // (The sources chosen once, so the loops vectorize: an m = 1 call spends
                // about as long here as in the kernel.)
                let sums = match b {
                    QbSource::Strided(_) => &colsum[..ncb],
                    QbSource::Packed { colsum, .. } => &colsum[b_col0 + jc..b_col0 + jc + ncb],
                };
                let off = &mut coloff[..ncb];
                for (o, &cs) in off.iter_mut().zip(sums) {
                    *o = kzz.wrapping_sub(cs.wrapping_mul(t.za));
                }
                if let Some(bs) = t.bias {
                    for (o, &bias) in off.iter_mut().zip(&bs[b_col0 + jc..b_col0 + jc + ncb]) {
                        *o = o.wrapping_add(bias);
                    }
                }
                coloff[ncb..].fill(0);
            }
            let blocks = m.div_ceil(s.mc);
            for bi in 0..blocks {
                let ic = s.mc * if rev { blocks - 1 - bi } else { bi };
                let mcb = s.mc.min(m - ic);
                // Index of row ic in the row sums.
                let r0 = if block_sums { 0 } else { ic };
                if pc == 0 {
                    rowsum[r0..r0 + mcb].fill(0);
                }
                // A block of one row is packed as a single contiguous row (a sliver of MR
                // rows would put its k-groups MR apart): the kernels read A' through a_ks.
                let mr_a = if mcb == 1 { 1 } else { mr };
                if a_direct {
                    // (Row sums stay 0: B's zero point is 0.)
                    args.a_rs = a.rs;
                    args.a_ks = g as isize;
                } else if a_flip {
                    // (Row sums stay 0 as above.)
                    args.a_rs = k as isize;
                    args.a_ks = g as isize;
                    // SAFETY: rows ic..ic+mcb, columns 0..k are inside A (one chunk: pc is
                    // 0 and kcb is k); apack holds at least mcb·k bytes (see a_flip).
                    unsafe { flip_rows(a.block(ic, 0, mcb, k), apack) };
                } else {
                    args.a_rs = (g * e) as isize;
                    args.a_ks = (mr_a * g * e) as isize;
                    // SAFETY: the block lies inside A; apack holds ceil(mc/MR)·MR·kc·e
                    // bytes.
                    unsafe {
                        pack_a(
                            a.block(ic, pc, mcb, kcb),
                            ker.format,
                            mr_a,
                            apack,
                            &mut rowsum[r0..r0 + mcb],
                            t.zb != 0,
                        )
                    };
                }
                if last {
                    for i in r0..r0 + mcb {
                        rowoff[i] = rowsum[i].wrapping_mul(t.zb).wrapping_neg();
                    }
                }
                for jr in (0..ncb).step_by(nr) {
                    let w = nr.min(ncb - jr);
                    let ukr = tile_kernel(ker, w);
                    if let (Some((_, f)), true) = (&fused, last) {
                        rqa = f.args(b_col0 + jc + jr);
                        args.rq = &rqa;
                    }
                    args.b = bbase.wrapping_add(jr / nr * sliver_bytes);
                    args.k_groups = groups;
                    args.n = w;
                    args.col_off = if last {
                        coloff[jr..].as_ptr()
                    } else {
                        ZEROS.as_ptr()
                    };
                    for tt in 0..row_tiles(mcb, mr) {
                        let (ir, h) = row_tile(mcb, mr, tt);
                        let (row, col) = (ic + ir, jc + jr);
                        args.a = if a_direct {
                            // Bytes (U8x4), k groups of this chunk from column pc.
                            a.at(row, pc) as *const u8
                        } else if a_flip {
                            apack.wrapping_add(ir * k)
                        } else {
                            apack.wrapping_add(tt * mr * groups * g * e)
                        };
                        args.m = h;
                        args.row_off = if last {
                            rowoff[row - (ic - r0)..].as_ptr()
                        } else {
                            ZEROS.as_ptr()
                        };
                        args.flags = if pc == 0 { 0 } else { ACCUMULATE };
                        match dest {
                            Dest::I32(c) if c.cs == 1 => {
                                args.c = c.at(row, col);
                                args.c_rs = c.rs * 4;
                                // SAFETY: the h×w tile lies inside C; A'/B' slivers and the
                                // offsets are readable as the kernel contract asks.
                                unsafe { ukr(&args) };
                            }
                            _ if acc_mode => {
                                args.c = acc.wrapping_add(row * n + col);
                                args.c_rs = (n * 4) as isize;
                                // SAFETY: as above, into the block buffer (m×n i32).
                                unsafe { ukr(&args) };
                                if last {
                                    // SAFETY: the tile is inside the buffer and dest.
                                    unsafe {
                                        finish_tile(
                                            acc.wrapping_add(row * n + col),
                                            n,
                                            h,
                                            w,
                                            &dest,
                                            row,
                                            col,
                                            b_col0,
                                            ker,
                                        )
                                    };
                                }
                            }
                            Dest::Requant { .. } if fused.is_some() => {
                                // (One k chunk here, so `last`: rqa is this column tile's.)
                                if let Some((out, f)) = &fused {
                                    args.c = out.at(row, col) as *mut i32;
                                    args.c_rs = out.rs;
                                    args.flags = f.flags;
                                    // SAFETY: as above; the kernel takes REQUANT
                                    // (fused_stage), the h×w bytes at (row, col) are inside
                                    // the output (unit column stride).
                                    unsafe { ukr(&args) };
                                }
                            }
                            _ => {
                                args.c = tile;
                                args.c_rs = (nr * 4) as isize;
                                args.flags = 0;
                                // SAFETY: as above, into the stack tile (MR×NR ≥ h×w).
                                unsafe { ukr(&args) };
                                // SAFETY: the tile's h×w values were just written by the
                                // kernel; the dest ranges are in bounds.
                                unsafe {
                                    finish_tile(tile, nr, h, w, &dest, row, col, b_col0, ker)
                                };
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Copies the rows of `a` (unit column stride) to `dst`, `a.cols` bytes apart, each byte
/// xor 0x80 (i8 → the u8 the VNNI kernel reads). Rows `a.cols` apart are one run of bytes.
///
/// # Safety
/// Every element of `a` is readable; `dst` has `a.rows·a.cols` writable bytes that do not
/// overlap `a`.
unsafe fn flip_rows<A: QuantInput>(a: Raw<A>, dst: *mut u8) {
    let (rows, k) = (a.rows, a.cols);
    let (runs, len) = if a.rs == k as isize {
        (1, rows * k)
    } else {
        (rows, k)
    };
    for r in 0..runs {
        // SAFETY: run r is row r (or all rows when contiguous), inside `a` (one byte per
        // element, unit column stride); its destination is inside `dst`, apart from `a`.
        let (src, d) = unsafe {
            (
                core::slice::from_raw_parts(a.at(r, 0) as *const u8, len),
                core::slice::from_raw_parts_mut(dst.add(r * len), len),
            )
        };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only the VNNI kernel's calls flip A (flips_a), that kernel runs on this
        // CPU (run_block_in's contract), and it requires AVX2.
        unsafe {
            flip_avx2(src, d)
        };
        #[cfg(not(target_arch = "x86_64"))]
        flip(src, d);
    }
}

/// `dst[i] = src[i] ^ 0x80` (the two the same length).
#[inline(always)]
fn flip(src: &[u8], dst: &mut [u8]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s ^ 0x80;
    }
}

/// [`flip`] 32 bytes an instruction.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn flip_avx2(src: &[u8], dst: &mut [u8]) {
    flip(src, dst)
}

/// Where an implicit-GEMM convolution's A lies (bytes): row i, segment s, k group q at
/// `a + i·a_rs + s·a_ss + 4q`, `groups` groups per segment (a filter row's taps, adjacent
/// input bytes), `segs` segments (filter rows). The rows come in `runs` runs (0 counts as
/// 1; an output row of pixels each), run r's first row at `a + r·a_run`: one call takes a
/// block of output rows, the driver's fixed costs paid once for all of them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segments {
    pub a_rs: usize,
    pub segs: usize,
    pub a_ss: usize,
    pub groups: usize,
    pub runs: usize,
    pub a_run: usize,
}

/// `dest (runs·m × n) = stage(A·B + col_off)` (run r's m rows at dest rows r·m..) with A
/// read where it lies, in segments (u8, the
/// format U8x4), B prepacked for `ker` as one k chunk at `b` (NR-column slivers of all
/// `segs·groups` k groups), no row offsets (B's zero point is 0). `col_off` holds the
/// column offsets (zero points and bias, see `run_block_in`) of n columns rounded up to NR,
/// computed once by the caller for all its calls.
///
/// # Safety
/// `ker.segments`; every A byte the segments name for rows `0..m` of each run is readable;
/// `b` is a packed B of `ker` with `segs·groups·4` rows and at least n columns; `col_off`
/// has `n.next_multiple_of(NR)` values; `dest` (runs·m × n) is in bounds, this thread's alone, and
/// overlaps neither A nor B; `ker` runs on this CPU.
pub(crate) unsafe fn run_segmented(
    ker: &QgemmKernel,
    a: *const u8,
    m: usize,
    seg: Segments,
    b: *const u8,
    col_off: &[i32],
    dest: Dest,
) {
    let n = match dest {
        Dest::I32(c) => c.cols,
        Dest::Requant { out, .. } => out.cols,
    };
    let (mr, nr, g) = (ker.mr, ker.nr, ker.format.k_group());
    let mut tile = core::mem::MaybeUninit::<[i32; MAX_MR * MAX_NR]>::uninit();
    let tile = tile.as_mut_ptr() as *mut i32;
    let sliver = nr * seg.segs * seg.groups * g;
    let mut args = QgemmArgs {
        a,
        b,
        c: tile,
        k_groups: seg.groups,
        a_rs: seg.a_rs as isize,
        a_ks: g as isize,
        b_ks: (nr * g) as isize,
        c_rs: (nr * 4) as isize,
        m: 0,
        n: 0,
        row_off: ZEROS.as_ptr(),
        col_off: col_off.as_ptr(),
        flags: 0,
        a_segs: seg.segs,
        a_ss: seg.a_ss as isize,
        rq: core::ptr::null(),
    };
    let fused = fused_stage(ker, &dest);
    // (Set with args.rq for each column tile, when fused.)
    let mut rqa: RqArgs;
    for jr in (0..n).step_by(nr) {
        let w = nr.min(n - jr);
        let ukr = tile_kernel(ker, w);
        args.b = b.wrapping_add(jr / nr * sliver);
        args.n = w;
        args.col_off = col_off[jr..].as_ptr();
        if let Some((_, f)) = &fused {
            rqa = f.args(jr);
            args.rq = &rqa;
        }
        for run in 0..seg.runs.max(1) {
            for (i, h) in RowTiles::new(m, mr) {
                // Row ir of dest: run `run`'s row i.
                let ir = run * m + i;
                args.a = a.wrapping_add(run * seg.a_run + i * seg.a_rs);
                args.m = h;
                if let Some((out, f)) = &fused {
                    args.c = out.at(ir, jr) as *mut i32;
                    args.c_rs = out.rs;
                    args.flags = f.flags;
                    // SAFETY: as below, with the output stage in the kernel (fused_stage): it
                    // writes the h×w bytes at (ir, jr), inside the output (unit column stride).
                    unsafe { ukr(&args) };
                    continue;
                }
                // SAFETY: the h rows' segments are readable, the sliver of B holds all k groups
                // of NR columns, col_off has NR values from jr (the caller's contract); the
                // kernel writes the h×w stack tile (MR×NR ≥ h×w), then the output stage reads
                // it into dest (in bounds).
                unsafe {
                    ukr(&args);
                    finish_tile(tile, nr, h, w, &dest, ir, jr, 0, ker);
                }
            }
        }
    }
}

/// The output and its fused output stage when the kernel's epilogue requantizes
/// (`REQUANT`): the kernel takes it, the output has unit column stride, and the plan
/// allows the fused form.
fn fused_stage<'a>(ker: &QgemmKernel, dest: &Dest<'a>) -> Option<(Raw<u8>, Fused<'a>)> {
    match dest {
        Dest::Requant { out, plan } if ker.fused_requant && out.cs == 1 => {
            Fused::new(plan).map(|f| (*out, f))
        }
        _ => None,
    }
}

/// The micro-kernel for a tile of `w` columns: the kernel's half-width variant when the
/// tile fits it (same contract and B' layout, half the multiply-adds of a 16-column tile
/// of a 32-wide kernel), else the kernel.
#[inline]
fn tile_kernel(ker: &QgemmKernel, w: usize) -> crate::kernels::int8::QgemmUkr {
    match ker.half {
        Some(half) if 2 * w <= ker.nr => half,
        _ => ker.ukr,
    }
}

/// Writes a finished i32 tile (row stride `ts`) to `dest` at (row, col): requantized, or
/// scattered into a C of general strides.
///
/// # Safety
/// The tile's h×w values readable; (row.., col..) h×w inside `dest`.
#[allow(clippy::too_many_arguments)]
unsafe fn finish_tile(
    tile: *const i32,
    ts: usize,
    h: usize,
    w: usize,
    dest: &Dest,
    row: usize,
    col: usize,
    b_col0: usize,
    ker: &QgemmKernel,
) {
    match *dest {
        Dest::I32(c) => {
            for i in 0..h {
                for j in 0..w {
                    // SAFETY: (i, j) inside the tile, (row+i, col+j) inside C.
                    unsafe { *c.at(row + i, col + j) = *tile.add(i * ts + j) };
                }
            }
        }
        Dest::Requant { out, plan } => {
            // SAFETY: forwarded; per-channel slices cover all columns of the call; the
            // kernel's output stage runs wherever the kernel does.
            unsafe {
                (ker.requant)(
                    tile,
                    ts,
                    h,
                    w,
                    &plan,
                    b_col0 + col,
                    out.at(row, col),
                    out.rs,
                    out.cs,
                )
            }
        }
    }
}
