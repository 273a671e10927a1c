//! The blocked f32 GEMM of one thread over one block of C (BLIS's five loops):
//!
//! ```text
//! for jc in n by NC            B block columns
//!   for pc in k by KC          pack B[pc.., jc..] (KC×NC) into NR slivers      (L3)
//!     for ic in m by MC        pack A[ic.., pc..] (MC×KC) into MR slivers      (L2)
//!       for jr in NC by NR     one B micro-panel (KC×NR)                       (L1)
//!         for ir in MC by MR   micro-kernel: C[ir.., jr..] (MR×NR tile)
//! ```
//!
//! Either operand may instead be read where it lies (no packing) when that is faster: small
//! problems, or A when each of its elements is used only once. The first KC block applies the
//! caller's β; later ones accumulate (β = 1). The k split depends only on k, never on the
//! thread partition, so results do not depend on the thread count.

use super::pack::{pack_a, pack_b, pack_b_widened, row_tile, row_tiles, PACK_SLACK};
use super::raw::Raw;
use crate::kernels::f32::{SgemmArgs, SgemmKernel, MAX_MR, MAX_NR};

/// Where the kernel reads B from. (Which variants a build constructs depends on `alloc`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum BMode {
    /// Pack each KC×NC block into the workspace.
    PackBlock,
    /// Read B in place (its columns are unit-stride); only a last partial sliver is packed.
    Direct,
    /// Pack one KC×NR micro-panel at a time (smallest workspace: no allocation needed).
    PanelByPanel,
    /// B was packed ahead of time (`PackedB`).
    Prepacked,
}

/// How one call is carried out; the same for every thread of the call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strategy {
    /// Length of each k chunk (from the whole k: never depends on the partition).
    pub kc: usize,
    pub mc: usize,
    pub nc: usize,
    pub pack_a: bool,
    pub b_mode: BMode,
    /// Loop order inside an (ic, pc) block: row tiles outer and B panels inner (for short k,
    /// where C's traffic dominates), instead of B panels outer. Never with `PanelByPanel`.
    pub rows_outer: bool,
}

/// B as the driver sees it.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "alloc"), allow(dead_code))]
pub(crate) enum BSource {
    Strided(Raw<f32>),
    /// Prepacked: KC block `q` (rows `q*kc..`) holds all slivers; sliver `s` of it starts at
    /// `ptr + q*kc*n_pad + s*kc_q*NR` (`kc_q` the length of that block).
    Packed {
        ptr: *const f32,
        n_pad: usize,
    },
    /// int8, row-major, with a scale per column (`scales[j]` for column j): widened to f32
    /// one micro-panel at a time (`BMode::PanelByPanel` only).
    Widened {
        b: Raw<i8>,
        scales: *const f32,
    },
}

// SAFETY: BSource only carries read-only pointers into validated or packed memory that
// outlives the call; threads only read through it.
unsafe impl Send for BSource {}
// SAFETY: as above.
unsafe impl Sync for BSource {}

/// Elements of workspace one thread needs for an m×n block, 64-byte aligned pieces.
pub(crate) fn workspace_len(ker: &SgemmKernel, s: &Strategy, m: usize, n: usize) -> usize {
    let a = if s.pack_a {
        s.mc.min(m).div_ceil(ker.mr) * ker.mr * s.kc
    } else {
        0
    };
    let b = match s.b_mode {
        BMode::PackBlock => s.kc * s.nc.min(n).div_ceil(ker.nr) * ker.nr,
        BMode::Direct | BMode::PanelByPanel => s.kc * ker.nr,
        BMode::Prepacked => 0,
    };
    align16(a) + align16(b)
}

/// Room for a packed buffer of `x` elements plus the packers' slack, in whole cache lines.
pub(crate) const fn align16(x: usize) -> usize {
    let x = if x == 0 { 0 } else { x + PACK_SLACK };
    x.div_ceil(16) * 16
}

/// C ← αAB + βC over one block, sequentially.
///
/// # Safety
/// `a` (m×k), `b` (k×n) and `c` (m×n) name only in-bounds elements, C's columns are
/// unit-stride or it is handled through the scratch tile (`c.cs != 1`), C does not overlap A
/// or B, `ws` is 64-byte aligned with at least `workspace_len` elements, and `ker` runs on
/// this CPU.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn run_block(
    ker: &SgemmKernel,
    s: &Strategy,
    alpha: f32,
    a: Raw<f32>,
    b: BSource,
    b_col0: usize,
    beta: f32,
    c: Raw<f32>,
    ws: *mut f32,
) {
    let (m, n, k) = (c.rows, c.cols, a.cols);
    let (mr, nr) = (ker.mr, ker.nr);
    let abuf = ws;
    let a_len = if s.pack_a {
        align16(s.mc.min(m).div_ceil(mr) * mr * s.kc)
    } else {
        0
    };
    // SAFETY: a_len is within the workspace (workspace_len).
    let bbuf = unsafe { ws.add(a_len) };
    let general_c = c.cs != 1;
    let mut args = SgemmArgs {
        a: core::ptr::null(),
        b: core::ptr::null(),
        c: core::ptr::null_mut(),
        k: 0,
        a_rs: 0,
        a_ks: 0,
        b_ks: 0,
        c_rs: c.rs * 4,
        m: 0,
        n: 0,
        alpha,
        beta,
        b_pf: 0,
    };
    let mut tile = [0f32; MAX_MR * MAX_NR];

    for jc in (0..n).step_by(s.nc) {
        let ncb = s.nc.min(n - jc);
        for (q, pc) in (0..k).step_by(s.kc).enumerate() {
            let kcb = s.kc.min(k - pc);
            let beta_eff = if pc == 0 { beta } else { 1.0 };
            let edge = ncb % nr;
            // A last sliver the half-width kernel reads in place needs no packing.
            let edge_in_place = ker.half.is_some() && 2 * edge == nr;
            // SAFETY (B preparation): the blocks passed to pack_b lie inside B, and bbuf has
            // room for them (workspace_len covers the PackBlock block and one sliver).
            match (s.b_mode, b) {
                (BMode::PackBlock, BSource::Strided(b)) => unsafe {
                    pack_b(b.block(pc, jc, kcb, ncb), nr, bbuf)
                },
                (BMode::Direct, BSource::Strided(b)) if edge != 0 && !edge_in_place => unsafe {
                    pack_b(b.block(pc, jc + ncb - edge, kcb, edge), nr, bbuf)
                },
                _ => {}
            }
            for ic in (0..m).step_by(s.mc) {
                let mcb = s.mc.min(m - ic);
                if s.pack_a {
                    // SAFETY: the block lies inside A; abuf holds ceil(mc/MR)*MR*kc.
                    unsafe { pack_a(a.block(ic, pc, mcb, kcb), mr, abuf) };
                }
                // One tile: the B panel at column jr, the A row tile t.
                let mut tile_call = |jr: usize, t: usize, args: &mut SgemmArgs| {
                    let w = nr.min(ncb - jr);
                    let (bp, b_ks) = match (s.b_mode, b) {
                        (BMode::PackBlock, _) | (BMode::PanelByPanel, _) => (
                            bbuf.wrapping_add(if s.b_mode == BMode::PackBlock {
                                jr / nr * nr * kcb
                            } else {
                                0
                            }),
                            nr as isize * 4,
                        ),
                        (BMode::Direct, BSource::Strided(b)) if w == nr || edge_in_place => {
                            (b.at(pc, jc + jr), b.rs * 4)
                        }
                        (BMode::Direct, _) => (bbuf, nr as isize * 4),
                        (_, BSource::Packed { ptr, n_pad }) => {
                            let sliver = (b_col0 + jc + jr) / nr;
                            let off = q * s.kc * n_pad + sliver * kcb * nr;
                            (ptr.wrapping_add(off) as *mut f32, nr as isize * 4)
                        }
                        (BMode::Prepacked, _) => unreachable!("strategy/source mismatch"),
                    };
                    args.b = bp;
                    args.b_ks = b_ks;
                    // Prefetch the next micro-panel while this one is used: the next NR
                    // columns in place, or the next packed sliver.
                    args.b_pf = match s.b_mode {
                        BMode::Direct => (nr * 4) as isize,
                        _ => (nr * 4 * kcb) as isize,
                    };
                    args.k = kcb;
                    args.n = w;
                    // The half-width variant for a tile that fits it: half the FMAs of a
                    // 16-column tile of a 32-wide kernel.
                    let ukr = match ker.half {
                        Some(half) if 2 * w <= nr => half,
                        _ => ker.ukr,
                    };
                    let (ir, h) = row_tile(mcb, mr, t);
                    if s.pack_a {
                        args.a = abuf.wrapping_add(t * mr * kcb);
                        args.a_rs = 4;
                        args.a_ks = (mr * 4) as isize;
                    } else {
                        args.a = a.at(ic + ir, pc);
                        args.a_rs = a.rs * 4;
                        args.a_ks = a.cs * 4;
                    }
                    args.m = h;
                    if !general_c {
                        args.c = c.at(ic + ir, jc + jr);
                        args.beta = beta_eff;
                        // SAFETY: the tile (ic+ir.., jc+jr..) of h×w lies inside C; A rows and
                        // B columns are readable as the kernel contract asks.
                        unsafe { ukr(args) };
                    } else {
                        args.c = tile.as_mut_ptr();
                        args.c_rs = (nr * 4) as isize;
                        args.beta = 0.0;
                        // SAFETY: as above, with the h×w result going to the local tile.
                        unsafe { ukr(args) };
                        for i in 0..h {
                            for j in 0..w {
                                let p = c.at(ic + ir + i, jc + jr + j);
                                let t = tile[i * nr + j];
                                // SAFETY: (ic+ir+i, jc+jr+j) is inside C.
                                unsafe {
                                    *p = if beta_eff == 0.0 {
                                        t
                                    } else {
                                        t + beta_eff * *p
                                    };
                                }
                            }
                        }
                    }
                };
                let tiles = row_tiles(mcb, mr);
                if s.rows_outer {
                    // Each row band of C is written left to right (short k: C traffic
                    // dominates, and consecutive tiles then touch adjacent lines).
                    for t in 0..tiles {
                        for jr in (0..ncb).step_by(nr) {
                            tile_call(jr, t, &mut args);
                        }
                    }
                } else {
                    // One B micro-panel stays in L1 while the A block streams past it.
                    for jr in (0..ncb).step_by(nr) {
                        let w = nr.min(ncb - jr);
                        match (s.b_mode, b) {
                            // SAFETY: the panel lies inside B; bbuf holds kc*NR.
                            (BMode::PanelByPanel, BSource::Strided(b)) => unsafe {
                                pack_b(b.block(pc, jc + jr, kcb, w), nr, bbuf)
                            },
                            // SAFETY: as above; the panel's w scales are inside `scales`
                            // (one per column of B), and B is row-major (the source's
                            // contract).
                            (BMode::PanelByPanel, BSource::Widened { b, scales }) => unsafe {
                                pack_b_widened(
                                    b.block(pc, jc + jr, kcb, w),
                                    scales.wrapping_add(jc + jr),
                                    nr,
                                    bbuf,
                                )
                            },
                            _ => {}
                        }
                        for t in 0..tiles {
                            tile_call(jr, t, &mut args);
                        }
                    }
                }
            }
        }
    }
}

/// C ← βC (β = 0 writes zeros without reading C).
///
/// # Safety
/// `c` names only in-bounds, writable elements.
pub(crate) unsafe fn scale(beta: f32, c: Raw<f32>) {
    for i in 0..c.rows {
        for j in 0..c.cols {
            let p = c.at(i, j);
            // SAFETY: (i, j) is inside C.
            unsafe { *p = if beta == 0.0 { 0.0 } else { beta * *p } };
        }
    }
}
