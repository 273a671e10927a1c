//! Winograd minimal filtering F(m×m, 3×3) for 3×3 stride-1 undilated f32 layers (Lavin &
//! Gray 2015), m = 2, 4, 6 (tiles of α = m + 2 inputs):
//!
//! ```text
//! Y = Aᵀ [ Σ_cin (G g Gᵀ) ⊙ (Bᵀ d B) ] A        per m×m output tile, per output channel
//! ```
//!
//! - The filter transform `U = G g Gᵀ` is done once, in f64, when the layer is prepared;
//!   for each of the α² transform-domain positions ξ, `U_ξ` (Cin/g × Cout/g) is packed for
//!   the GEMM kernel ([`PackedB`]).
//! - A block of tiles at a time: the input transform writes `V_ξ` (tiles × Cin, one plane
//!   per ξ), the α² products `M_ξ = V_ξ · U_ξ` run through edgemm's packed micro-kernels
//!   ([`sgemm_prepacked_seq`], A read in place), and the output transform (with bias and
//!   activation) writes the block's output tiles. The block is sized so its planes stay in
//!   the outer caches while the GEMMs stream the filter.
//! - The transforms are vectorized across channels ([`Lanes`]): each 1-D transform is
//!   written out with its shared subexpressions (the matrices have many zeros and repeated
//!   coefficients; IEEE arithmetic would not let the compiler drop the zero terms).
//!
//! Interpolation points: 0, ±1, ∞ (F(2,3)); 0, ±1, ±2, ∞ (F(4,3)); 0, ±1, ±2, ±½, ∞
//! (F(6,3)), with the matrices of Lavin & Gray and NNPACK. The exactness of each set is a
//! unit test (in exact rational arithmetic on integers), as is the agreement of the
//! structured transforms with the matrices.

use super::params::Geometry;
use super::simd::{self, Isa, LaneFn, Lanes};
use super::{im2col::padded_ld, SyncPtr};
use crate::error::Error;
use crate::gemm::raw::Raw;
use crate::gemm::{sgemm_prepacked_seq, PackedB};
use crate::kernels::Kernel;
use crate::matrix::MatRef;
use alloc::vec;
use alloc::vec::Vec;

/// Which F(m×m, 3×3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    F2,
    F4,
    F6,
}

impl Variant {
    /// Output tile size m.
    pub(crate) const fn m(self) -> usize {
        match self {
            Variant::F2 => 2,
            Variant::F4 => 4,
            Variant::F6 => 6,
        }
    }

    /// Input tile size α = m + 2.
    pub(crate) const fn alpha(self) -> usize {
        self.m() + 2
    }

    /// The filter transform matrix G (α × 3), row-major.
    fn g(self) -> &'static [f64] {
        match self {
            Variant::F2 => &G2,
            Variant::F4 => &G4,
            Variant::F6 => &G6,
        }
    }
}

#[rustfmt::skip]
const G2: [f64; 12] = [
    1.0, 0.0, 0.0,
    0.5, 0.5, 0.5,
    0.5, -0.5, 0.5,
    0.0, 0.0, 1.0,
];

#[rustfmt::skip]
const G4: [f64; 18] = [
    1.0 / 4.0, 0.0, 0.0,
    -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0,
    -1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0,
    1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0,
    1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0,
    0.0, 0.0, 1.0,
];

#[rustfmt::skip]
const G6: [f64; 24] = [
    1.0, 0.0, 0.0,
    -2.0 / 9.0, -2.0 / 9.0, -2.0 / 9.0,
    -2.0 / 9.0, 2.0 / 9.0, -2.0 / 9.0,
    1.0 / 90.0, 1.0 / 45.0, 2.0 / 45.0,
    1.0 / 90.0, -1.0 / 45.0, 2.0 / 45.0,
    32.0 / 45.0, 16.0 / 45.0, 8.0 / 45.0,
    32.0 / 45.0, -16.0 / 45.0, 8.0 / 45.0,
    0.0, 0.0, 1.0,
];

/// A prepared Winograd layer: the transformed, packed filter and the bias.
pub(crate) struct Winograd {
    variant: Variant,
    /// `[group][ξ]`: U_ξ of the group, Cin/g × Cout/g, packed.
    u: Vec<PackedB>,
    bias: Vec<f32>,
}

impl Winograd {
    /// Transforms and packs an OHWI 3×3 filter (`groups` groups of `cout_g` outputs and
    /// `cin_g` inputs).
    pub(crate) fn new(
        kernel: Option<&Kernel>,
        variant: Variant,
        filter: &[f32],
        bias: &[f32],
        groups: usize,
        cin_g: usize,
        cout_g: usize,
    ) -> Result<Self, Error> {
        let a = variant.alpha();
        let plane = cin_g.checked_mul(cout_g).ok_or(Error::SizeOverflow)?;
        let mut u = Vec::with_capacity(groups * a * a);
        for grp in 0..groups {
            let buf = filter_planes(variant, cin_g, cout_g, |o, r, s, i| {
                filter[((grp * cout_g + o) * 9 + r * 3 + s) * cin_g + i]
            })?;
            for xi in 0..a * a {
                let b = MatRef::row_major(&buf[xi * plane..(xi + 1) * plane], cin_g, cout_g)?;
                u.push(match kernel {
                    Some(k) => PackedB::with_kernel(k, b)?,
                    None => PackedB::new(b)?,
                });
            }
        }
        Ok(Winograd {
            variant,
            u,
            bias: bias.to_vec(),
        })
    }

    /// Runs the layer (3×3, stride 1, dilation 1 checked by the caller, lengths too).
    ///
    /// Threads take blocks of tiles (one task each), running all three phases on a block in
    /// their own workspace. With fewer than [`MIN_TILES_PER_THREAD`] tiles per thread (late
    /// layers: few tiles, a large filter) that would make every thread stream the whole
    /// transformed filter for little work, so all tiles form one block and the threads
    /// split each phase instead: tiles for the transforms, (group, ξ) products for the
    /// GEMMs, which then read each U_ξ once.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        isa: Isa,
        g: &Geometry,
        input: &[f32],
        lo: f32,
        hi: f32,
        output: &mut [f32],
        threads: usize,
    ) {
        let (m, a) = (self.variant.m(), self.variant.alpha());
        let (ho, wo) = (g.output.height, g.output.width);
        let tiles = g.output.batch * ho.div_ceil(m) * wo.div_ceil(m);
        if tiles == 0 {
            return;
        }
        let (cin, cout) = (g.input.channels, g.output.channels);
        let work = tiles * a * a * cin * cout / g.groups;
        let threads = super::useful_threads(threads, tiles, work);
        let phased = threads > 1 && tiles < threads * MIN_TILES_PER_THREAD;
        let block = if phased {
            tiles
        } else {
            block_tiles(self.variant, cin, cout, tiles.div_ceil(threads))
        };
        // Plane strides: a whole number of 4 KiB pages plus one cache line, so the α² planes
        // a transform reads or writes at once fall in different L1 sets.
        let b = Buffers::new(block, cin, cout);
        let ws_len = b.floats(self.variant);
        let out = SyncPtr(output.as_mut_ptr());
        let inp = SyncPtr(input.as_ptr() as *mut f32);
        if phased {
            crate::scratch::with_workspace(ws_len, |ws| {
                let ws = SyncPtr(ws);
                let part = |n: usize, t: usize| n * t / threads..n * (t + 1) / threads;
                // `threads::run` returns only when every thread is done, so each phase sees
                // the previous one's results.
                crate::threads::run(threads, threads, &|t| {
                    let r = part(tiles, t);
                    // SAFETY: the caller's workspace holds the block's planes; this thread
                    // writes only rows r of each V plane.
                    unsafe {
                        input_phase(
                            self.variant,
                            isa,
                            g,
                            inp.get(),
                            ws.get(),
                            &b,
                            r.start,
                            r.len(),
                            0,
                        )
                    };
                });
                crate::threads::run(threads, threads, &|t| {
                    // SAFETY: all V rows are written; this thread writes only the M planes
                    // of its (group, ξ) pairs.
                    unsafe { self.gemm_phase(g, ws.get(), &b, tiles, part(g.groups * a * a, t)) };
                });
                crate::threads::run(threads, threads, &|t| {
                    let r = part(tiles, t);
                    // SAFETY: all M planes are written; this thread writes only the output
                    // pixels of tiles r.
                    unsafe {
                        output_phase(
                            self.variant,
                            self.bias.as_ptr(),
                            isa,
                            g,
                            ws.get(),
                            &b,
                            out.get(),
                            lo,
                            hi,
                            r.start,
                            r.len(),
                            0,
                        )
                    };
                });
            });
            return;
        }
        // One task per block: the pool hands blocks to whichever thread is free.
        let nblocks = tiles.div_ceil(block);
        let job = |blk: usize| {
            let t0 = blk * block;
            let cnt = block.min(tiles - t0);
            crate::scratch::with_workspace(ws_len, |ws| {
                // SAFETY: this thread's workspace holds the block's planes; the block's
                // output tiles are this task's alone (blocks are disjoint).
                unsafe {
                    input_phase(self.variant, isa, g, inp.get(), ws, &b, t0, cnt, t0);
                    self.gemm_phase(g, ws, &b, cnt, 0..g.groups * a * a);
                    let bias = self.bias.as_ptr();
                    output_phase(
                        self.variant,
                        bias,
                        isa,
                        g,
                        ws,
                        &b,
                        out.get(),
                        lo,
                        hi,
                        t0,
                        cnt,
                        t0,
                    );
                }
            });
        };
        crate::threads::run(nblocks, threads, &job);
    }

    /// The transform-domain products `M_ξ = V_ξ · U_ξ` for (group, ξ) pairs `pairs`
    /// (pair `grp·α² + ξ`), over the first `rows` rows of the planes.
    ///
    /// # Safety
    /// `ws` holds the planes of `b` with `rows` rows of V written.
    unsafe fn gemm_phase(
        &self,
        g: &Geometry,
        ws: *mut f32,
        b: &Buffers,
        rows: usize,
        pairs: core::ops::Range<usize>,
    ) {
        let a2 = self.variant.alpha() * self.variant.alpha();
        let mm = ws.wrapping_add(a2 * b.plane_v);
        for pair in pairs {
            let (grp, xi) = (pair / a2, pair % a2);
            let av = Raw {
                ptr: ws.wrapping_add(xi * b.plane_v + grp * g.cin_g),
                rows,
                cols: g.cin_g,
                rs: b.ldv as isize,
                cs: 1,
            };
            let cm = Raw {
                ptr: mm.wrapping_add(xi * b.plane_m + grp * g.cout_g),
                rows,
                cols: g.cout_g,
                rs: b.ldm as isize,
                cs: 1,
            };
            // SAFETY: both are blocks of the workspace planes (rows of ldv ≥ Cin / ldm ≥
            // Cout), disjoint from each other and from the packed filter.
            unsafe { sgemm_prepacked_seq(av, &self.u[pair], 0.0, cm) };
        }
    }
}

/// Input transform of tiles `t0..t0+cnt` into the V planes at rows `t0 − base..`.
///
/// # Safety
/// `input` is the geometry's input tensor; `ws` holds the planes of `b` with room for
/// rows up to `t0 + cnt − base`.
#[allow(clippy::too_many_arguments)]
unsafe fn input_phase(
    variant: Variant,
    isa: Isa,
    g: &Geometry,
    input: *const f32,
    ws: *mut f32,
    b: &Buffers,
    t0: usize,
    cnt: usize,
    base: usize,
) {
    let mut itx = InputTx {
        g: *g,
        variant,
        input,
        v: ws.wrapping_add((t0 - base) * b.ldv),
        ldv: b.ldv,
        plane: b.plane_v,
        t0,
        cnt,
    };
    // SAFETY: forwarded; rows t0 − base.. of each plane are in the workspace.
    unsafe { simd::run_split(isa, &mut itx, g.input.channels) };
}

/// Output transform (with bias and activation) of tiles `t0..t0+cnt` from the M planes
/// at rows `t0 − base..`.
///
/// # Safety
/// The M rows were written; `output` is the geometry's output tensor, and the tiles'
/// pixels are the caller's alone.
#[allow(clippy::too_many_arguments)]
unsafe fn output_phase(
    variant: Variant,
    bias: *const f32,
    isa: Isa,
    g: &Geometry,
    ws: *mut f32,
    b: &Buffers,
    output: *mut f32,
    lo: f32,
    hi: f32,
    t0: usize,
    cnt: usize,
    base: usize,
) {
    let a2 = variant.alpha() * variant.alpha();
    let mut otx = OutputTx {
        g: *g,
        variant,
        m: ws.wrapping_add(a2 * b.plane_v + (t0 - base) * b.ldm),
        ldm: b.ldm,
        plane: b.plane_m,
        bias,
        output,
        lo,
        hi,
        t0,
        cnt,
    };
    // SAFETY: forwarded.
    unsafe { simd::run_split(isa, &mut otx, g.output.channels) };
}

/// Fewer tiles per thread than this and the threads split the phases of one block instead
/// of taking blocks (see [`Winograd::run`]).
const MIN_TILES_PER_THREAD: usize = 28;

/// Row strides and plane strides of a thread's (or a phased call's) V and M planes.
struct Buffers {
    ldv: usize,
    ldm: usize,
    plane_v: usize,
    plane_m: usize,
}

impl Buffers {
    /// Planes for blocks of `block` tiles. Plane strides: a whole number of 4 KiB pages plus
    /// one cache line, so the α² planes a transform reads or writes at once fall in
    /// different L1 sets.
    fn new(block: usize, cin: usize, cout: usize) -> Self {
        let (ldv, ldm) = (padded_ld(cin), padded_ld(cout));
        Buffers {
            ldv,
            ldm,
            plane_v: (block * ldv).div_ceil(1024) * 1024 + 16,
            plane_m: (block * ldm).div_ceil(1024) * 1024 + 16,
        }
    }

    /// Floats of the α² V planes followed by the α² M planes.
    fn floats(&self, v: Variant) -> usize {
        v.alpha() * v.alpha() * (self.plane_v + self.plane_m)
    }
}

/// The transformed filter `U = G g Gᵀ` (computed in f64) of `cout` filters of `cin` channels,
/// as α² planes of `cin × cout` row-major (plane ξ at `ξ·cin·cout`); `w(o, r, s, i)` is
/// filter o's weight at row r, column s, channel i.
pub(crate) fn filter_planes(
    variant: Variant,
    cin: usize,
    cout: usize,
    w: impl Fn(usize, usize, usize, usize) -> f32,
) -> Result<Vec<f32>, Error> {
    let a = variant.alpha();
    let gm = variant.g();
    let plane = cin.checked_mul(cout).ok_or(Error::SizeOverflow)?;
    let mut buf = vec![0f32; plane.checked_mul(a * a).ok_or(Error::SizeOverflow)?];
    for o in 0..cout {
        for i in 0..cin {
            // t = G g (α × 3), then U = t Gᵀ (α × α).
            let mut t = [[0f64; 3]; 8];
            for (x, row) in t.iter_mut().enumerate().take(a) {
                for (s, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|r| gm[x * 3 + r] * w(o, r, s, i) as f64).sum();
                }
            }
            for x in 0..a {
                for y in 0..a {
                    let v: f64 = (0..3).map(|s| t[x][s] * gm[y * 3 + s]).sum();
                    buf[(x * a + y) * plane + i * cout + o] = v as f32;
                }
            }
        }
    }
    Ok(buf)
}

/// Floats of workspace [`run_unpacked`] takes for blocks of `block` tiles (before the GEMM
/// workspace).
pub(crate) fn unpacked_floats(variant: Variant, block: usize, cin: usize, cout: usize) -> usize {
    Buffers::new(block, cin, cout).floats(variant)
}

/// A layer of one group (3×3, stride 1, dilation 1) over a transformed filter that lies
/// unpacked ([`filter_planes`]: row-major planes, as a model blob holds it): for each block
/// of `block` tiles the three phases of [`Winograd::run`], the products through
/// [`sgemm`](crate::gemm::sgemm) with B read where it lies. `ws`: the planes
/// ([`unpacked_floats`]) followed by `gemm_ws`, the GEMM's workspace for `block` rows. With
/// `threads > 1` and several blocks, threads take blocks, each in a workspace of the same
/// size of its own (`scratch::with_workspace`). Lengths are checked here (an `Error`, no
/// panic).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_unpacked(
    variant: Variant,
    g: &Geometry,
    input: &[f32],
    u: &[f32],
    bias: &[f32],
    lo: f32,
    hi: f32,
    output: &mut [f32],
    block: usize,
    ws: &mut [f32],
    gemm_ws: &mut [u8],
    threads: usize,
) -> Result<(), Error> {
    let (m, a) = (variant.m(), variant.alpha());
    let (cin, cout) = (g.input.channels, g.output.channels);
    let ok = g.kh == 3
        && g.kw == 3
        && g.sh == 1
        && g.sw == 1
        && g.dh == 1
        && g.dw == 1
        && g.groups == 1
        && input.len() == g.input.len()?
        && output.len() == g.output.len()?
        && u.len() == a * a * cin * cout
        && bias.len() == cout
        && block > 0;
    let b = Buffers::new(block, cin, cout);
    let planes = b.floats(variant);
    if !ok || ws.len() < planes {
        return Err(Error::SizeOverflow);
    }
    let tiles = g.output.batch * g.output.height.div_ceil(m) * g.output.width.div_ceil(m);
    let isa = Isa::detect();
    let (inp, out) = (
        SyncPtr(input.as_ptr() as *mut f32),
        SyncPtr(output.as_mut_ptr()),
    );
    // Tiles t0..t0 + cnt (cnt ≤ block) in the planes at `ws` (`planes` floats).
    let run_block =
        |t0: usize, cnt: usize, ws: *mut f32, gemm_ws: &mut [u8]| -> Result<(), Error> {
            let mm = ws.wrapping_add(a * a * b.plane_v);
            // SAFETY: `ws` holds the planes of `b` for `cnt ≤ block` rows; the input has the
            // geometry's length (checked).
            unsafe { input_phase(variant, isa, g, inp.get(), ws, &b, t0, cnt, t0) };
            for xi in 0..a * a {
                // SAFETY: plane ξ of V (rows of ldv ≥ cin) and of M (ldm ≥ cout) hold `cnt`
                // rows inside the workspace; the two regions are disjoint.
                let (av, cm) = unsafe {
                    (
                        core::slice::from_raw_parts(ws.add(xi * b.plane_v), cnt * b.ldv),
                        core::slice::from_raw_parts_mut(mm.add(xi * b.plane_m), cnt * b.ldm),
                    )
                };
                let av = MatRef::new(av, cnt, cin, b.ldv as isize, 1)?;
                let cm = crate::matrix::MatMut::new(cm, cnt, cout, b.ldm as isize, 1)?;
                let uw = MatRef::row_major(&u[xi * cin * cout..(xi + 1) * cin * cout], cin, cout)?;
                let ctx = crate::context::Context::new().workspace(&mut *gemm_ws);
                crate::gemm::sgemm(1.0, av, uw, 0.0, cm, ctx)?;
            }
            let bias = bias.as_ptr();
            // SAFETY: the M rows were written; the block's output tiles lie in the output (its
            // length checked), and no other block writes them.
            unsafe {
                output_phase(
                    variant,
                    bias,
                    isa,
                    g,
                    ws,
                    &b,
                    out.get(),
                    lo,
                    hi,
                    t0,
                    cnt,
                    t0,
                )
            };
            Ok(())
        };
    let nblocks = tiles.div_ceil(block);
    #[cfg(feature = "std")]
    if threads > 1 && nblocks > 1 {
        use std::sync::Mutex;
        let gemm_len = gemm_ws.len();
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        let job = |blk: usize| {
            let t0 = blk * block;
            let cnt = block.min(tiles - t0);
            let r = crate::scratch::with_workspace(planes + gemm_len.div_ceil(4), |w| {
                // SAFETY: the thread's workspace holds `planes` floats and then `gemm_len`
                // bytes, used by nothing else meanwhile.
                let g_ws =
                    unsafe { core::slice::from_raw_parts_mut(w.add(planes) as *mut u8, gemm_len) };
                run_block(t0, cnt, w, g_ws)
            });
            if let Err(e) = r {
                if let Ok(mut slot) = failed.lock() {
                    slot.get_or_insert(e);
                }
            }
        };
        crate::threads::run(nblocks, threads, &job);
        return match failed.into_inner() {
            Ok(Some(e)) => Err(e),
            _ => Ok(()),
        };
    }
    let _ = threads;
    let ws = ws.as_mut_ptr();
    for blk in 0..nblocks {
        let t0 = blk * block;
        run_block(t0, block.min(tiles - t0), ws, &mut *gemm_ws)?;
    }
    Ok(())
}

/// Tiles per block. The block's V and M planes (α²·tiles·(Cin + Cout) floats) should stay
/// in the outer caches (half of L2 when that leaves enough rows), but every block streams
/// the whole transformed filter (α²·Cin·Cout), so a block also gets at least
/// Cin·Cout/(Cin + Cout) tiles: then the filter costs no more traffic per tile than the
/// planes do. Measured on Zen 5: 28 to 112 tiles within 5% of each other on VGG's layers;
/// one block for all 49 tiles of 28×28×512 (F(4,3)) 7% faster than two.
fn block_tiles(v: Variant, cin: usize, cout: usize, per_thread: usize) -> usize {
    let a2 = v.alpha() * v.alpha();
    let l2 = crate::arch::cpu_info().l2;
    let fit = l2 / 2 / (a2 * (cin + cout) * 4).max(1);
    let filter = cin * cout / (cin + cout).max(1);
    fit.max(filter).clamp(28, 448).min(per_thread).max(1)
}

/// One F(m, 3): its 1-D transforms, called directly (static methods, always inlined) so
/// every instantiation is compiled inside its ISA's function.
trait Tx<const A: usize, const M: usize> {
    /// w = Bᵀ d.
    fn input<L: Lanes>(d: [L; A]) -> [L; A];
    /// y = Aᵀ m.
    fn output<L: Lanes>(m: [L; A]) -> [L; M];
}

struct TxF2;
struct TxF4;
struct TxF6;

impl Tx<4, 2> for TxF2 {
    #[inline(always)]
    fn input<L: Lanes>(d: [L; 4]) -> [L; 4] {
        in_f2(d)
    }
    #[inline(always)]
    fn output<L: Lanes>(m: [L; 4]) -> [L; 2] {
        out_f2(m)
    }
}

impl Tx<6, 4> for TxF4 {
    #[inline(always)]
    fn input<L: Lanes>(d: [L; 6]) -> [L; 6] {
        in_f4(d)
    }
    #[inline(always)]
    fn output<L: Lanes>(m: [L; 6]) -> [L; 4] {
        out_f4(m)
    }
}

impl Tx<8, 6> for TxF6 {
    #[inline(always)]
    fn input<L: Lanes>(d: [L; 8]) -> [L; 8] {
        in_f6(d)
    }
    #[inline(always)]
    fn output<L: Lanes>(m: [L; 8]) -> [L; 6] {
        out_f6(m)
    }
}

/// Input transform of tiles t0..t0+cnt: `V_ξ[t][c] = (Bᵀ d B)_ξ`.
struct InputTx {
    g: Geometry,
    variant: Variant,
    input: *const f32,
    v: *mut f32,
    ldv: usize,
    plane: usize,
    t0: usize,
    cnt: usize,
}

impl LaneFn for InputTx {
    #[inline(always)]
    unsafe fn run<L: Lanes>(&mut self, c0: usize, c1: usize) {
        // SAFETY: forwarded (see `tiles`).
        unsafe {
            match self.variant {
                Variant::F2 => self.tiles::<L, TxF2, 4, 2>(c0, c1),
                Variant::F4 => self.tiles::<L, TxF4, 6, 4>(c0, c1),
                Variant::F6 => self.tiles::<L, TxF6, 8, 6>(c0, c1),
            }
        }
    }
}

/// Room for one zero-padded edge tile of one channel vector: α² × 16 lanes at most.
const PATCH: usize = 8 * 8 * 16;

impl InputTx {
    /// # Safety
    /// `input` is the geometry's input tensor; `v` has α² planes of `plane` elements with
    /// room for `cnt` rows of `ldv ≥ Cin`; `c0..c1` within the channels, a multiple of N.
    #[inline(always)]
    unsafe fn tiles<L: Lanes, T: Tx<A, M>, const A: usize, const M: usize>(
        &self,
        c0: usize,
        c1: usize,
    ) {
        let g = &self.g;
        let (h, w, ch) = (
            g.input.height as isize,
            g.input.width as isize,
            g.input.channels,
        );
        let (tw, th) = (g.output.width.div_ceil(M), g.output.height.div_ceil(M));
        let rs = w as usize * ch;
        let mut patch = [0f32; PATCH];
        for t in 0..self.cnt {
            let tile = self.t0 + t;
            let (n, rem) = (tile / (th * tw), tile % (th * tw));
            let (ty, tx) = (rem / tw, rem % tw);
            let ih0 = (ty * M) as isize - g.pads.top as isize;
            let iw0 = (tx * M) as isize - g.pads.left as isize;
            let interior = ih0 >= 0 && iw0 >= 0 && ih0 + A as isize <= h && iw0 + A as isize <= w;
            let img = self.input.wrapping_add(n * (h * w) as usize * ch);
            let mut c = c0;
            while c < c1 {
                let dst = self.v.wrapping_add(t * self.ldv + c);
                // SAFETY: interior tiles read A×A pixels inside the image, edge tiles the
                // patch (filled from in-bounds pixels only); channels c..c+N < Cin. Stores go
                // to row t, channels c..c+N of each of the α² planes.
                unsafe {
                    if interior {
                        let base = img.add(ih0 as usize * rs + iw0 as usize * ch + c);
                        input_tile::<L, T, A, M>(base, rs, ch, dst, self.plane);
                    } else {
                        let p = patch.as_mut_ptr();
                        for r in 0..A {
                            for s in 0..A {
                                let (y, x) = (ih0 + r as isize, iw0 + s as isize);
                                let v = if y >= 0 && y < h && x >= 0 && x < w {
                                    L::load(img.add(y as usize * rs + x as usize * ch + c))
                                } else {
                                    L::zero()
                                };
                                v.store(p.add((r * A + s) * L::N));
                            }
                        }
                        input_tile::<L, T, A, M>(p, A * L::N, L::N, dst, self.plane);
                    }
                }
                c += L::N;
            }
        }
    }
}

/// `Bᵀ d B` of one tile (d[r][s] at `src + r·rs + s·cs`): rows through the 1-D transform,
/// then columns; result ξ = (i, j) stored at `dst + (i·A + j)·plane`.
///
/// # Safety
/// The A×A vectors at `src` are readable; the α² stores are writable.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // j indexes columns of `rows` (a transpose)
unsafe fn input_tile<L: Lanes, T: Tx<A, M>, const A: usize, const M: usize>(
    src: *const f32,
    rs: usize,
    cs: usize,
    dst: *mut f32,
    plane: usize,
) {
    let mut rows = [[L::zero(); A]; A];
    for (r, row) in rows.iter_mut().enumerate() {
        let mut d = [L::zero(); A];
        for (s, x) in d.iter_mut().enumerate() {
            // SAFETY: (r, s) < A (caller).
            *x = unsafe { L::load(src.add(r * rs + s * cs)) };
        }
        *row = T::input(d);
    }
    for j in 0..A {
        let mut d = [L::zero(); A];
        for (r, x) in d.iter_mut().enumerate() {
            *x = rows[r][j];
        }
        let col = T::input(d);
        for (i, v) in col.iter().enumerate() {
            // SAFETY: plane (i·A + j) is writable at dst (caller).
            unsafe { v.store(dst.add((i * A + j) * plane)) };
        }
    }
}

/// Output transform of tiles t0..t0+cnt: `Y = Aᵀ M A`, plus bias, activation, stored to the
/// output where the tile is inside it.
struct OutputTx {
    g: Geometry,
    variant: Variant,
    m: *const f32,
    ldm: usize,
    plane: usize,
    bias: *const f32,
    output: *mut f32,
    lo: f32,
    hi: f32,
    t0: usize,
    cnt: usize,
}

impl LaneFn for OutputTx {
    #[inline(always)]
    unsafe fn run<L: Lanes>(&mut self, c0: usize, c1: usize) {
        // SAFETY: forwarded (see `tiles`).
        unsafe {
            match self.variant {
                Variant::F2 => self.tiles::<L, TxF2, 4, 2>(c0, c1),
                Variant::F4 => self.tiles::<L, TxF4, 6, 4>(c0, c1),
                Variant::F6 => self.tiles::<L, TxF6, 8, 6>(c0, c1),
            }
        }
    }
}

impl OutputTx {
    /// # Safety
    /// `m` holds α² planes with `cnt` rows of `ldm ≥ Cout` written; `output` is the
    /// geometry's output tensor; `c0..c1` within the channels, a multiple of N.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // j indexes columns of `rows` (a transpose)
    unsafe fn tiles<L: Lanes, T: Tx<A, M>, const A: usize, const M: usize>(
        &self,
        c0: usize,
        c1: usize,
    ) {
        let g = &self.g;
        let (ho, wo, co) = (g.output.height, g.output.width, g.output.channels);
        let (th, tw) = (ho.div_ceil(M), wo.div_ceil(M));
        let (lo, hi) = (L::splat(self.lo), L::splat(self.hi));
        for t in 0..self.cnt {
            let tile = self.t0 + t;
            let (n, rem) = (tile / (th * tw), tile % (th * tw));
            let (oh0, ow0) = (rem / tw * M, rem % tw * M);
            let (vr, vc) = ((ho - oh0).min(M), (wo - ow0).min(M));
            let mut c = c0;
            while c < c1 {
                // SAFETY: loads read row t, channels c..c+N of the α² planes; stores write
                // output pixels (oh0 + i, ow0 + j) with i < vr, j < vc (inside the output),
                // channels c..c+N < Cout; the bias has Cout elements.
                unsafe {
                    let src = self.m.add(t * self.ldm + c);
                    let mut rows = [[L::zero(); M]; A];
                    for (i, row) in rows.iter_mut().enumerate() {
                        let mut d = [L::zero(); A];
                        for (j, x) in d.iter_mut().enumerate() {
                            *x = L::load(src.add((i * A + j) * self.plane));
                        }
                        *row = T::output(d);
                    }
                    let b = L::load(self.bias.add(c));
                    let base = self.output.add(((n * ho + oh0) * wo + ow0) * co + c);
                    for j in 0..vc {
                        let mut d = [L::zero(); A];
                        for (i, x) in d.iter_mut().enumerate() {
                            *x = rows[i][j];
                        }
                        let col = T::output(d);
                        for (i, y) in col.iter().enumerate().take(vr) {
                            y.add(b).clamp(lo, hi).store(base.add((i * wo + j) * co));
                        }
                    }
                }
                c += L::N;
            }
        }
    }
}

// ---- 1-D transforms -------------------------------------------------------------------
// Input: w = Bᵀ d (α → α). Output: y = Aᵀ m (α → m). Coefficients as in the matrices of
// the unit tests below; shared subexpressions computed once.

#[inline(always)]
fn in_f2<L: Lanes>(d: [L; 4]) -> [L; 4] {
    [
        d[0].sub(d[2]),
        d[1].add(d[2]),
        d[2].sub(d[1]),
        d[1].sub(d[3]),
    ]
}

#[inline(always)]
fn out_f2<L: Lanes>(m: [L; 4]) -> [L; 2] {
    [m[0].add(m[1]).add(m[2]), m[1].sub(m[2]).sub(m[3])]
}

#[inline(always)]
fn in_f4<L: Lanes>(d: [L; 6]) -> [L; 6] {
    let a = d[4].mlac(d[2], -4.0);
    let b = d[3].mlac(d[1], -4.0);
    let c = d[4].sub(d[2]);
    let e = d[3].sub(d[1]).mulc(2.0);
    [
        d[4].mlac(d[0], 4.0).mlac(d[2], -5.0),
        a.add(b),
        a.sub(b),
        c.add(e),
        c.sub(e),
        d[5].mlac(d[1], 4.0).mlac(d[3], -5.0),
    ]
}

#[inline(always)]
fn out_f4<L: Lanes>(m: [L; 6]) -> [L; 4] {
    let (s1, d1) = (m[1].add(m[2]), m[1].sub(m[2]));
    let (s2, d2) = (m[3].add(m[4]), m[3].sub(m[4]));
    [
        m[0].add(s1).add(s2),
        d1.mlac(d2, 2.0),
        s1.mlac(s2, 4.0),
        d1.mlac(d2, 8.0).add(m[5]),
    ]
}

#[inline(always)]
fn in_f6<L: Lanes>(d: [L; 8]) -> [L; 8] {
    let t1 = d[2].add(d[6]).mlac(d[4], -4.25);
    let t2 = d[1].add(d[5]).mlac(d[3], -4.25);
    let t3 = d[6].mlac(d[2], 0.25).mlac(d[4], -1.25);
    let t4 = d[1].mulc(0.5).mlac(d[3], -2.5).mlac(d[5], 2.0);
    let t5 = d[6].mlac(d[2], 4.0).mlac(d[4], -5.0);
    let t6 = d[1].mulc(2.0).mlac(d[3], -2.5).mlac(d[5], 0.5);
    [
        d[0].sub(d[6]).mlac(d[4].sub(d[2]), 5.25),
        t1.add(t2),
        t1.sub(t2),
        t3.add(t4),
        t3.sub(t4),
        t5.add(t6),
        t5.sub(t6),
        d[7].sub(d[1]).mlac(d[3].sub(d[5]), 5.25),
    ]
}

#[inline(always)]
fn out_f6<L: Lanes>(m: [L; 8]) -> [L; 6] {
    let (s1, d1) = (m[1].add(m[2]), m[1].sub(m[2]));
    let (s2, d2) = (m[3].add(m[4]), m[3].sub(m[4]));
    let (s3, d3) = (m[5].add(m[6]), m[5].sub(m[6]));
    [
        m[0].add(s1).add(s2).add(s3),
        d1.mlac(d2, 2.0).mlac(d3, 0.5),
        s1.mlac(s2, 4.0).mlac(s3, 0.25),
        d1.mlac(d2, 8.0).mlac(d3, 0.125),
        s1.mlac(s2, 16.0).mlac(s3, 0.0625),
        d1.mlac(d2, 32.0).mlac(d3, 0.03125).add(m[7]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const BT2: [f64; 16] = [
        1.0, 0.0, -1.0, 0.0,
        0.0, 1.0, 1.0, 0.0,
        0.0, -1.0, 1.0, 0.0,
        0.0, 1.0, 0.0, -1.0,
    ];
    #[rustfmt::skip]
    const AT2: [f64; 8] = [
        1.0, 1.0, 1.0, 0.0,
        0.0, 1.0, -1.0, -1.0,
    ];
    #[rustfmt::skip]
    const BT4: [f64; 36] = [
        4.0, 0.0, -5.0, 0.0, 1.0, 0.0,
        0.0, -4.0, -4.0, 1.0, 1.0, 0.0,
        0.0, 4.0, -4.0, -1.0, 1.0, 0.0,
        0.0, -2.0, -1.0, 2.0, 1.0, 0.0,
        0.0, 2.0, -1.0, -2.0, 1.0, 0.0,
        0.0, 4.0, 0.0, -5.0, 0.0, 1.0,
    ];
    #[rustfmt::skip]
    const AT4: [f64; 24] = [
        1.0, 1.0, 1.0, 1.0, 1.0, 0.0,
        0.0, 1.0, -1.0, 2.0, -2.0, 0.0,
        0.0, 1.0, 1.0, 4.0, 4.0, 0.0,
        0.0, 1.0, -1.0, 8.0, -8.0, 1.0,
    ];
    #[rustfmt::skip]
    const BT6: [f64; 64] = [
        1.0, 0.0, -5.25, 0.0, 5.25, 0.0, -1.0, 0.0,
        0.0, 1.0, 1.0, -4.25, -4.25, 1.0, 1.0, 0.0,
        0.0, -1.0, 1.0, 4.25, -4.25, -1.0, 1.0, 0.0,
        0.0, 0.5, 0.25, -2.5, -1.25, 2.0, 1.0, 0.0,
        0.0, -0.5, 0.25, 2.5, -1.25, -2.0, 1.0, 0.0,
        0.0, 2.0, 4.0, -2.5, -5.0, 0.5, 1.0, 0.0,
        0.0, -2.0, 4.0, 2.5, -5.0, -0.5, 1.0, 0.0,
        0.0, -1.0, 0.0, 5.25, 0.0, -5.25, 0.0, 1.0,
    ];
    #[rustfmt::skip]
    const AT6: [f64; 48] = [
        1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0,
        0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 0.0,
        0.0, 1.0, 1.0, 4.0, 4.0, 0.25, 0.25, 0.0,
        0.0, 1.0, -1.0, 8.0, -8.0, 0.125, -0.125, 0.0,
        0.0, 1.0, 1.0, 16.0, 16.0, 0.0625, 0.0625, 0.0,
        0.0, 1.0, -1.0, 32.0, -32.0, 0.03125, -0.03125, 1.0,
    ];

    fn mats(v: Variant) -> (&'static [f64], &'static [f64]) {
        match v {
            Variant::F2 => (&BT2, &AT2),
            Variant::F4 => (&BT4, &AT4),
            Variant::F6 => (&BT6, &AT6),
        }
    }

    fn matvec(m: &[f64], rows: usize, x: &[f64]) -> Vec<f64> {
        let cols = x.len();
        (0..rows)
            .map(|i| (0..cols).map(|k| m[i * cols + k] * x[k]).sum())
            .collect()
    }

    /// Aᵀ[(G g) ⊙ (Bᵀ d)] is the correlation of d with g, for each variant. With integer d
    /// and g in -8..8 and every product and sum exact in f64 up to G's thirds/ninths (which
    /// round), the difference must be at rounding level, far below any wrong coefficient.
    #[test]
    fn matrices_compute_the_correlation() {
        let mut seed = 1u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) % 17) as f64 - 8.0
        };
        for v in [Variant::F2, Variant::F4, Variant::F6] {
            let (bt, at) = mats(v);
            let (m, a) = (v.m(), v.alpha());
            for _ in 0..50 {
                let d: Vec<f64> = (0..a).map(|_| rnd()).collect();
                let g: Vec<f64> = (0..3).map(|_| rnd()).collect();
                let u = matvec(v.g(), a, &g);
                let w = matvec(bt, a, &d);
                let prod: Vec<f64> = u.iter().zip(&w).map(|(x, y)| x * y).collect();
                let y = matvec(at, m, &prod);
                for i in 0..m {
                    let want: f64 = (0..3).map(|k| d[i + k] * g[k]).sum();
                    assert!(
                        (y[i] - want).abs() < 1e-9,
                        "{v:?} y[{i}] {} != {want}",
                        y[i]
                    );
                }
            }
        }
    }

    /// The structured 1-D transforms equal the matrices exactly (dyadic coefficients and
    /// small integers: every operation is exact in f32).
    #[test]
    fn structured_transforms_match_the_matrices() {
        let mut seed = 7u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) % 33) as f32 - 16.0
        };
        for v in [Variant::F2, Variant::F4, Variant::F6] {
            let (bt, at) = mats(v);
            let (m, a) = (v.m(), v.alpha());
            for _ in 0..50 {
                let d: Vec<f32> = (0..a).map(|_| rnd()).collect();
                let d64: Vec<f64> = d.iter().map(|&x| x as f64).collect();
                let (wi, yo): (Vec<f32>, Vec<f32>) = match v {
                    Variant::F2 => {
                        let x: [f32; 4] = core::array::from_fn(|i| d[i]);
                        (in_f2(x).to_vec(), out_f2(x).to_vec())
                    }
                    Variant::F4 => {
                        let x: [f32; 6] = core::array::from_fn(|i| d[i]);
                        (in_f4(x).to_vec(), out_f4(x).to_vec())
                    }
                    Variant::F6 => {
                        let x: [f32; 8] = core::array::from_fn(|i| d[i]);
                        (in_f6(x).to_vec(), out_f6(x).to_vec())
                    }
                };
                assert_eq!(
                    wi.iter().map(|&x| x as f64).collect::<Vec<_>>(),
                    matvec(bt, a, &d64),
                    "{v:?} input"
                );
                assert_eq!(
                    yo.iter().map(|&x| x as f64).collect::<Vec<_>>(),
                    matvec(at, m, &d64),
                    "{v:?} output"
                );
            }
        }
    }
}
