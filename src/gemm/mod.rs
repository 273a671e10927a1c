//! f32 GEMM: the public entry points, validation, orientation, and the choice between the
//! vector-matrix path (m = 1 or n = 1) and the blocked driver.

mod driver;
mod gemv;
pub(crate) mod pack;
pub(crate) mod plan;
pub(crate) mod raw;

use crate::arch::cpu_info;
use crate::context::Context;
use crate::error::{Error, Operand};
use crate::kernels::f32::{SgemmKernel, SGEMM_KERNELS};
use crate::kernels::sgemm_kernel;
#[cfg(feature = "alloc")]
use crate::kernels::Kernel;
use crate::matrix::{MatMut, MatRef};
use crate::threads;
use driver::{run_block, workspace_len, BMode, BSource, Strategy};
use raw::Raw;

/// The right-hand operand B of [`sgemm`]: a strided view, or an operand packed once
/// ([`PackedB`]). Both convert into it, so `sgemm` takes either as it is.
#[derive(Clone, Copy, Debug)]
pub enum SgemmB<'a> {
    /// B read where it lies (packed per call when that pays).
    View(MatRef<'a, f32>),
    /// B packed once for a kernel; the call runs that kernel.
    #[cfg(feature = "alloc")]
    Packed(&'a PackedB),
}

impl<'a> From<MatRef<'a, f32>> for SgemmB<'a> {
    fn from(b: MatRef<'a, f32>) -> Self {
        SgemmB::View(b)
    }
}

#[cfg(feature = "alloc")]
impl<'a> From<&'a PackedB> for SgemmB<'a> {
    fn from(b: &'a PackedB) -> Self {
        SgemmB::Packed(b)
    }
}

/// C ← αAB + βC (BLAS semantics), for any strides.
///
/// - A is m×k, B is k×n (a view or a [`PackedB`]), C is m×n; other shapes are an
///   [`Error::DimensionMismatch`].
/// - β = 0 never reads C (it may hold NaN); α = 0 (or k = 0) does not read A or B.
/// - `ctx` says how it runs: a [`Par`](crate::Par), or a [`Context`] with a forced kernel or the
///   caller's workspace (then nothing is allocated; see [`sgemm_workspace_size`]).
/// - Results do not depend on the thread count (k is never split across threads) and are
///   identical run to run for a given kernel; the workspace path may differ from the
///   allocating one within the same error bound.
///
/// ```
/// use edgemm::{sgemm, MatMut, MatRef, Par};
/// let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2×3, row-major
/// let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]; // 3×2
/// let mut c = [0.0f32; 4];
/// sgemm(
///     1.0,
///     MatRef::row_major(&a, 2, 3)?,
///     MatRef::row_major(&b, 3, 2)?,
///     0.0,
///     MatMut::row_major(&mut c, 2, 2)?,
///     Par::Seq,
/// )?;
/// assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
/// # Ok::<(), edgemm::Error>(())
/// ```
pub fn sgemm<'b, 'w>(
    alpha: f32,
    a: MatRef<f32>,
    b: impl Into<SgemmB<'b>>,
    beta: f32,
    c: MatMut<f32>,
    ctx: impl Into<Context<'w>>,
) -> Result<(), Error> {
    let mut ctx = ctx.into();
    let threads = ctx.threads()?;
    let (a, c) = (Raw::from_ref(&a), Raw::from_mut(&c));
    match b.into() {
        SgemmB::View(b) => {
            let ker = match ctx.kernel {
                Some(k) => k.f32()?,
                None => sgemm_kernel()?,
            };
            let b = Raw::from_ref(&b);
            match ctx.workspace.as_deref_mut() {
                Some(ws) => sgemm_ws_impl(ker, alpha, a, b, beta, c, ws),
                None => sgemm_impl(ker, alpha, a, b, beta, c, threads),
            }
        }
        #[cfg(feature = "alloc")]
        SgemmB::Packed(b) => {
            ctx.check_packed_for(b.kernel.name)?;
            sgemm_packed_impl(alpha, a, b, beta, c, threads, ctx.workspace.is_some())
        }
    }
}

/// Bytes of workspace [`sgemm`] needs in its [`Context`] for an m×n×k product (A m×k, B
/// k×n), whatever the layouts and whichever compiled-in kernel runs it (a [`PackedB`] needs
/// none).
///
/// A `const fn`, so a buffer can be sized at compile time:
///
/// ```
/// use edgemm::{sgemm, sgemm_workspace_size, Context, MatMut, MatRef};
/// const WS: usize = sgemm_workspace_size(2, 2, 3);
/// let mut workspace = [0u8; WS];
/// let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2×3
/// let b = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]; // 3×2, column-major: packed into the workspace
/// let mut c = [0.0f32; 4];
/// sgemm(
///     1.0,
///     MatRef::row_major(&a, 2, 3)?,
///     MatRef::col_major(&b, 3, 2)?,
///     0.0,
///     MatMut::row_major(&mut c, 2, 2)?,
///     Context::new().workspace(&mut workspace),
/// )?;
/// assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
/// # Ok::<(), edgemm::Error>(())
/// ```
///
/// With a workspace, A is read in place and so is B when its columns are unit-stride
/// (row-major B needs no packing at all); k is split in chunks of at most 256. The size
/// depends only on k (it is 0 when m, n or k is 0): when B's columns are not unit-stride it
/// is packed one micro-panel at a time, at most 256 k steps × NR columns (NR the widest tile
/// compiled in), plus the packers' slack and up to 63 bytes to align the buffer's start to
/// 64: for k ≥ 256, 8319 bytes on a Cortex-M4F build (NR = 8, the portable kernel's), 32895
/// on x86-64 (NR = 32). With `alloc` and no workspace, `sgemm` may be faster for large
/// products on CPUs with caches (it packs both operands in cache-sized blocks).
pub const fn sgemm_workspace_size(m: usize, n: usize, k: usize) -> usize {
    sgemm_ws_bytes(max_nr(), m, n, k)
}

/// [`sgemm_workspace_size`] for kernels whose widest tile is `nr`.
const fn sgemm_ws_bytes(nr: usize, m: usize, n: usize, k: usize) -> usize {
    if m == 0 || n == 0 || k == 0 {
        return 0;
    }
    let kc = if k < WS_KC { k } else { WS_KC };
    let elems = driver::align16(kc * nr);
    crate::scratch::caller_workspace_size(elems * core::mem::size_of::<f32>())
}

/// [`sgemm_workspace_size`] as the build of `kernels` computes it: what a blob converted for
/// that build plans as GEMM scratch.
pub(crate) fn sgemm_workspace_size_for(
    kernels: crate::kernels::targets::Kernels,
    m: usize,
    n: usize,
    k: usize,
) -> usize {
    use crate::kernels::targets::{Kernels, SGEMM_MAX_NR_ANY};
    let nr = match kernels {
        Kernels::Build => max_nr(),
        Kernels::Target(t) => t.sgemm_nr,
        Kernels::Any => SGEMM_MAX_NR_ANY,
    };
    sgemm_ws_bytes(nr, m, n, k)
}

/// The longest k chunk of the workspace path (see [`sgemm_workspace_size`]).
const WS_KC: usize = 256;

/// The widest tile (NR) of any f32 kernel compiled in.
const fn max_nr() -> usize {
    let mut nr = 1;
    let mut i = 0;
    while i < SGEMM_KERNELS.len() {
        if SGEMM_KERNELS[i].nr > nr {
            nr = SGEMM_KERNELS[i].nr;
        }
        i += 1;
    }
    nr
}

fn sgemm_ws_impl(
    ker: &'static SgemmKernel,
    alpha: f32,
    a: Raw<f32>,
    b: Raw<f32>,
    beta: f32,
    c: Raw<f32>,
    workspace: &mut [u8],
) -> Result<(), Error> {
    check_dims(&a, &b, &c)?;
    let (m, n, k) = (c.rows, c.cols, a.cols);
    let ws = crate::scratch::caller_workspace(workspace, sgemm_workspace_size(m, n, k))?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 || alpha == 0.0 {
        // SAFETY: c is a validated view.
        unsafe { driver::scale(beta, c) };
        return Ok(());
    }
    let (mut a, mut b, mut c) = (a, b, c);
    // The same orientation as `sgemm_impl` (k is unchanged by it).
    if (n == 1 && m > 1) || (c.cs != 1 && c.rs == 1) {
        (a, b, c) = (b.t(), a.t(), c.t());
    }
    if c.rows == 1 && gemv::try_gemv(ker, alpha, a, b, beta, c, 1) {
        return Ok(());
    }
    let s = in_place_strategy(ker, &a, &b, WS_KC);
    debug_assert!(
        workspace_len(ker, &s, c.rows, c.cols) * 4 + crate::scratch::WS_ALIGN
            <= sgemm_workspace_size(m, n, k) + 1
    );
    // SAFETY: a, b, c are validated views (C does not overlap A or B: a MatMut borrows its
    // slice exclusively); `ws` is 64-byte aligned with room for one kc×NR panel plus slack
    // (kc ≤ WS_KC, NR ≤ max_nr(): the size checked above); ker runs here (selection or
    // Kernel::by_name checked it).
    unsafe {
        run_block(
            ker,
            &s,
            alpha,
            a,
            BSource::Strided(b),
            0,
            beta,
            c,
            ws as *mut f32,
        )
    };
    Ok(())
}

/// C ← A·B over the caller's workspace ([`sgemm_workspace_size`] bytes, as `sgemm` with a
/// workspace) for B given as int8 `q` (k×n, row-major) and a scale per column:
/// `B[p, j] = q[p, j] · scales[j]` (weights quantized per output channel). Each KC×NR
/// micro-panel of B is widened to f32 into the workspace as it is packed (the panel-by-panel
/// path of a strided B), so dequantized weights never need more memory than that panel;
/// the product is then the f32 kernel's on exactly the dequantized values.
pub(crate) fn sgemm_ws_widened(
    a: MatRef<f32>,
    q: MatRef<i8>,
    scales: &[f32],
    c: MatMut<f32>,
    workspace: &mut [u8],
) -> Result<(), Error> {
    let ker = sgemm_kernel()?;
    let (a, b, c) = (Raw::from_ref(&a), Raw::from_ref(&q), Raw::from_mut(&c));
    if a.cols != b.rows || c.rows != a.rows || c.cols != b.cols {
        return Err(Error::DimensionMismatch {
            a: (a.rows, a.cols),
            b: (b.rows, b.cols),
            c: (c.rows, c.cols),
        });
    }
    let (m, n, k) = (c.rows, c.cols, a.cols);
    if b.cs != 1 || scales.len() < n {
        return Err(Error::SizeOverflow);
    }
    let ws = crate::scratch::caller_workspace(workspace, sgemm_workspace_size(m, n, k))?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        // SAFETY: c is a validated view.
        unsafe { driver::scale(0.0, c) };
        return Ok(());
    }
    // Panel by panel whatever B's strides: every panel is widened.
    let mut s = in_place_strategy(ker, &a, &b, WS_KC);
    s.b_mode = BMode::PanelByPanel;
    // SAFETY: a, q, c are validated views (C borrows its slice exclusively), q row-major
    // with `scales` covering its n columns (checked above); `ws` is 64-byte aligned with
    // room for one kc×NR panel plus slack (the size checked above); ker runs here.
    unsafe {
        run_block(
            ker,
            &s,
            1.0,
            a,
            BSource::Widened {
                b,
                scales: scales.as_ptr(),
            },
            0,
            0.0,
            c,
            ws as *mut f32,
        )
    };
    Ok(())
}

/// [`sgemm`] over raw pointers and element strides (which may be negative), for FFI callers.
///
/// Returns an error for null pointers of non-empty matrices, aliasing strides in C, extents
/// that overflow, and a C whose memory range overlaps A's or B's.
///
/// # Safety
/// Every element `a + i*rsa + j*csa` (i < m, j < k), `b + i*rsb + j*csb` (i < k, j < n) must
/// be readable and `c + i*rsc + j*csc` (i < m, j < n) writable (and readable unless β = 0),
/// for the duration of the call, with no other thread writing any of them.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_raw<'w>(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
    ctx: impl Into<Context<'w>>,
) -> Result<(), Error> {
    let tag = |e: Error, op: Operand| match e {
        Error::OutOfBounds {
            rows,
            cols,
            row_stride,
            col_stride,
            len,
            ..
        } => Error::OutOfBounds {
            operand: op,
            rows,
            cols,
            row_stride,
            col_stride,
            len,
        },
        Error::Aliasing {
            rows,
            cols,
            row_stride,
            col_stride,
            ..
        } => Error::Aliasing {
            operand: op,
            rows,
            cols,
            row_stride,
            col_stride,
        },
        Error::NullPointer { .. } => Error::NullPointer { operand: op },
        e => e,
    };
    // SAFETY: the caller guarantees the elements are valid for the call (see above).
    let (av, bv, cv) = unsafe {
        (
            MatRef::from_raw_parts(a, m, k, rsa, csa).map_err(|e| tag(e, Operand::A))?,
            MatRef::from_raw_parts(b, k, n, rsb, csb).map_err(|e| tag(e, Operand::B))?,
            MatMut::from_raw_parts(c, m, n, rsc, csc).map_err(|e| tag(e, Operand::C))?,
        )
    };
    let overlaps = |x: (usize, usize), y: (usize, usize)| x.0 < y.1 && y.0 < x.1;
    if overlaps(cv.byte_span(), av.byte_span()) {
        return Err(Error::OutputOverlapsInput {
            operand: Operand::A,
        });
    }
    if overlaps(cv.byte_span(), bv.byte_span()) {
        return Err(Error::OutputOverlapsInput {
            operand: Operand::B,
        });
    }
    sgemm(alpha, av, bv, beta, cv, ctx)
}

fn check_dims(a: &Raw<f32>, b: &Raw<f32>, c: &Raw<f32>) -> Result<(), Error> {
    if a.cols != b.rows || c.rows != a.rows || c.cols != b.cols {
        return Err(Error::DimensionMismatch {
            a: (a.rows, a.cols),
            b: (b.rows, b.cols),
            c: (c.rows, c.cols),
        });
    }
    Ok(())
}

fn sgemm_impl(
    ker: &'static SgemmKernel,
    alpha: f32,
    a: Raw<f32>,
    b: Raw<f32>,
    beta: f32,
    c: Raw<f32>,
    threads: usize,
) -> Result<(), Error> {
    check_dims(&a, &b, &c)?;
    let (m, n, k) = (c.rows, c.cols, a.cols);
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 || alpha == 0.0 {
        // SAFETY: c is a validated view.
        unsafe { driver::scale(beta, c) };
        return Ok(());
    }
    let (mut a, mut b, mut c) = (a, b, c);
    // Orientation: a single column becomes a single row (Cᵀ = BᵀAᵀ), and a column-major C
    // becomes row-major, so the kernel's vectors run along C's unit stride.
    if (n == 1 && m > 1) || (c.cs != 1 && c.rs == 1) {
        (a, b, c) = (b.t(), a.t(), c.t());
    }
    if c.rows == 1 && gemv::try_gemv(ker, alpha, a, b, beta, c, threads) {
        return Ok(());
    }
    let strategy = strategy(ker, &a, &b);
    gemm_blocked(
        ker,
        &strategy,
        alpha,
        a,
        BSource::Strided(b),
        beta,
        c,
        threads,
    );
    Ok(())
}

#[cfg(feature = "alloc")]
/// Rows at this stride (in elements) collide in the caches: a multiple of 4 KiB puts every
/// row in the same few L1/L2 sets, so a block read in place keeps evicting itself.
fn cache_hostile(stride: isize) -> bool {
    (stride.unsigned_abs() * 4) % 4096 == 0
}

/// Packing and blocking for one call.
///
/// Packing costs a pass over the operand; it pays when the operand is reused many times
/// and reading it in place would be slow. Measured on Zen 5 (see README): reading A and B in
/// place wins for every shape of the benchmark list except where a row stride is a multiple
/// of 4 KiB and the operand is reused across many tiles (1024², 2048², k×1024 weights).
fn strategy(ker: &SgemmKernel, a: &Raw<f32>, b: &Raw<f32>) -> Strategy {
    #[cfg(feature = "alloc")]
    {
        let cpu = cpu_info();
        let (m, n, k) = (a.rows, b.cols, a.cols);
        let blk = plan::blocking(ker.mr, ker.nr, &cpu);
        let kc = plan::chunk(k, blk.kc, 4);
        // A is reused once per NR-column panel. Rows of A are read by broadcasts: any
        // stride works, but a hostile one thrashes once the block outgrows L2.
        let a_block_big = m * kc * 4 > cpu.l2 / 2;
        let pack_a = n > ker.nr
            && if a.cs == 1 {
                cache_hostile(a.rs) && a_block_big
            } else if a.rs == 1 {
                cache_hostile(a.cs) && a_block_big
            } else {
                true
            };
        // B is reused once per MR-row tile; in place it must have unit column stride. With
        // few row tiles packing cannot pay (the kernel prefetches the next panel instead);
        // with many, B in place needs a friendly stride and room in L3.
        let direct_b =
            b.cs == 1 && (m <= 4 * ker.mr || (!cache_hostile(b.rs) && k * n * 4 <= cpu.l3 / 2));
        let b_mode = if direct_b {
            BMode::Direct
        } else {
            BMode::PackBlock
        };
        Strategy {
            kc,
            mc: plan::chunk(m, blk.mc, ker.mr),
            nc: plan::chunk(n, blk.nc, ker.nr),
            pack_a,
            b_mode,
            // One short k chunk: C's traffic dominates, so write each row band of C left to
            // right (measured +3% at 1024×1024×64), if B's block stays in L2 meanwhile.
            rows_outer: k <= 128 && kc * n * 4 <= cpu.l2 / 2,
        }
    }
    #[cfg(not(feature = "alloc"))]
    {
        // No allocation: the panel buffer is on the stack (and also holds the packers' slack).
        let kc_room = ((NOALLOC_PANEL - 2 * pack::PACK_SLACK) / ker.nr) & !3;
        in_place_strategy(ker, a, b, kc_room)
    }
}

/// The strategy that needs no allocation: A read in place (the kernels take any strides), B
/// in place when its columns are unit-stride, else packed one KC×NR micro-panel at a time;
/// so the workspace is one panel, of at most `kc_room`·NR elements plus the packers' slack.
fn in_place_strategy<T>(ker: &SgemmKernel, a: &Raw<f32>, b: &Raw<T>, kc_room: usize) -> Strategy {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    let blk = plan::blocking(ker.mr, ker.nr, &cpu_info());
    let kc = plan::chunk(k, kc_room.min(blk.kc), 4).min(kc_room);
    Strategy {
        kc,
        mc: m.max(1),
        nc: n.max(1),
        pack_a: false,
        b_mode: if b.cs == 1 {
            BMode::Direct
        } else {
            BMode::PanelByPanel
        },
        rows_outer: false,
    }
}

/// Elements of the on-stack panel buffer used without `alloc`.
#[cfg(not(feature = "alloc"))]
const NOALLOC_PANEL: usize = 1024;

#[allow(clippy::too_many_arguments)]
fn gemm_blocked(
    ker: &'static SgemmKernel,
    s: &Strategy,
    alpha: f32,
    a: Raw<f32>,
    b: BSource,
    beta: f32,
    c: Raw<f32>,
    threads: usize,
) {
    let (m, n, k) = (c.rows, c.cols, a.cols);
    let grid = threads::partition(m, n, k, ker.mr, ker.nr, threads);
    let job = |t: usize| {
        let (r0, rows, c0, cols) = grid.block(t);
        if rows == 0 || cols == 0 {
            return;
        }
        let a_t = a.block(r0, 0, rows, k);
        let (b_t, col0) = match b {
            BSource::Strided(b) => (BSource::Strided(b.block(0, c0, k, cols)), 0),
            packed => (packed, c0),
        };
        let c_t = c.block(r0, c0, rows, cols);
        let len = workspace_len(ker, s, rows, cols);
        #[cfg(feature = "alloc")]
        crate::scratch::with_workspace(len, |ws| {
            // SAFETY: blocks of validated views; C's block is this thread's alone (the grid's
            // blocks are disjoint); ws has `len` aligned elements; ker runs here (selection
            // or Kernel::by_name checked it).
            unsafe { run_block(ker, s, alpha, a_t, b_t, col0, beta, c_t, ws) }
        });
        #[cfg(not(feature = "alloc"))]
        {
            let mut buf = [crate::scratch::Line([0.0; 16]); NOALLOC_PANEL / 16];
            debug_assert!(len <= NOALLOC_PANEL);
            let ws = buf.as_mut_ptr() as *mut f32;
            // SAFETY: as above; the stack buffer holds one KC×NR panel (kc was sized for it).
            unsafe { run_block(ker, s, alpha, a_t, b_t, col0, beta, c_t, ws) }
        }
    };
    threads::run(grid.count(), grid.count(), &job);
}

/// A right-hand operand B (k×n) packed once for a kernel, for weights reused across calls.
#[cfg(feature = "alloc")]
pub struct PackedB {
    kernel: &'static SgemmKernel,
    k: usize,
    n: usize,
    kc: usize,
    n_pad: usize,
    data: alloc::vec::Vec<crate::scratch::Line>,
}

#[cfg(feature = "alloc")]
impl core::fmt::Debug for PackedB {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "PackedB {{ {}x{}, kernel {} }}",
            self.k, self.n, self.kernel.name
        )
    }
}

#[cfg(feature = "alloc")]
impl PackedB {
    /// Packs `b` for the kernel `sgemm` selects.
    pub fn new(b: MatRef<f32>) -> Result<Self, Error> {
        Self::pack(sgemm_kernel()?, b)
    }

    /// Packs `b` for a chosen kernel.
    pub fn with_kernel(kernel: &Kernel, b: MatRef<f32>) -> Result<Self, Error> {
        Self::pack(kernel.f32()?, b)
    }

    fn pack(kernel: &'static SgemmKernel, b: MatRef<f32>) -> Result<Self, Error> {
        let raw = Raw::from_ref(&b);
        let (k, n) = (raw.rows, raw.cols);
        let cpu = cpu_info();
        let kc = plan::chunk(k, plan::blocking(kernel.mr, kernel.nr, &cpu).kc, 4);
        let n_pad = n.div_ceil(kernel.nr) * kernel.nr;
        let len = k.checked_mul(n_pad).ok_or(Error::SizeOverflow)?;
        let lines = (len + pack::PACK_SLACK).div_ceil(16);
        let mut data = alloc::vec![crate::scratch::Line([0.0; 16]); lines];
        let base = data.as_mut_ptr() as *mut f32;
        for (q, pc) in (0..k).step_by(kc.max(1)).enumerate() {
            let kcb = kc.min(k - pc);
            // SAFETY: the block lies inside B; block q starts at q*kc*n_pad and its
            // kcb*n_pad elements fit in `len` (= k*n_pad).
            unsafe {
                pack::pack_b(
                    raw.block(pc, 0, kcb, n),
                    kernel.nr,
                    base.add(q * kc * n_pad),
                )
            };
        }
        Ok(PackedB {
            kernel,
            k,
            n,
            kc,
            n_pad,
            data,
        })
    }

    /// Rows of B (the k of the product).
    pub fn rows(&self) -> usize {
        self.k
    }

    /// Columns of B.
    pub fn cols(&self) -> usize {
        self.n
    }

    /// The kernel it was packed for (and that [`sgemm`] runs with it).
    pub fn kernel_name(&self) -> &'static str {
        self.kernel.name
    }
}

/// [`sgemm`] with B prepacked: the kernel B was packed for. `in_place`: the caller's
/// workspace path, which reads A where it lies on one thread and needs no scratch.
#[cfg(feature = "alloc")]
fn sgemm_packed_impl(
    alpha: f32,
    a: Raw<f32>,
    b: &PackedB,
    beta: f32,
    c: Raw<f32>,
    threads: usize,
    in_place: bool,
) -> Result<(), Error> {
    if a.cols != b.k || c.rows != a.rows || c.cols != b.n {
        return Err(Error::DimensionMismatch {
            a: (a.rows, a.cols),
            b: (b.k, b.n),
            c: (c.rows, c.cols),
        });
    }
    let (m, n, k) = (c.rows, c.cols, a.cols);
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 || alpha == 0.0 {
        // SAFETY: c is a validated view.
        unsafe { driver::scale(beta, c) };
        return Ok(());
    }
    let ker = b.kernel;
    let cpu = cpu_info();
    let blk = plan::blocking(ker.mr, ker.nr, &cpu);
    let small = (m * k + k * n) * 4 <= cpu.l1d;
    let s = Strategy {
        kc: b.kc,
        mc: plan::chunk(m, blk.mc, ker.mr),
        nc: plan::chunk(n, blk.nc, ker.nr),
        pack_a: !(in_place || small || n <= ker.nr),
        b_mode: BMode::Prepacked,
        rows_outer: false,
    };
    let src = BSource::Packed {
        ptr: b.data.as_ptr() as *const f32,
        n_pad: b.n_pad,
    };
    if in_place {
        debug_assert_eq!(workspace_len(ker, &s, m, n), 0);
        // This strategy needs no workspace; the kernel still gets a valid aligned pointer.
        let mut ws = crate::scratch::Line([0.0; 16]);
        // SAFETY: validated views (C does not overlap A: a MatMut borrows its slice
        // exclusively); B's packed data matches its kernel, which this CPU runs (selected or
        // checked by Kernel::by_name when B was packed).
        unsafe { run_block(ker, &s, alpha, a, src, 0, beta, c, ws.0.as_mut_ptr()) };
    } else {
        gemm_blocked(ker, &s, alpha, a, src, beta, c, threads);
    }
    Ok(())
}

/// Crate-internal entry for layers built on the GEMM (convolution): C ← A·B + βC with B
/// prepacked, A read where it lies (the caller lays it out for the kernel: rows at any
/// stride, unit column stride), on the calling thread — no packing, no workspace, no
/// thread dispatch — so a caller can run many small products (one per Winograd position,
/// one per im2col block) from its own threads with its own buffers.
///
/// # Safety
/// `a` is m×k and `c` m×n with `k == b.rows()`, `n == b.cols()`, `c.cs == 1`; both name
/// only in-bounds elements (C writable, and readable unless β = 0); C overlaps neither A
/// nor B's packed data.
#[cfg(feature = "alloc")]
pub(crate) unsafe fn sgemm_prepacked_seq(a: Raw<f32>, b: &PackedB, beta: f32, c: Raw<f32>) {
    debug_assert!(a.cols == b.k && c.rows == a.rows && c.cols == b.n && c.cs == 1);
    let (m, n) = (c.rows, c.cols);
    if m == 0 || n == 0 || b.k == 0 {
        if m != 0 && n != 0 {
            // SAFETY: c is in bounds (caller).
            unsafe { driver::scale(beta, c) };
        }
        return;
    }
    let ker = b.kernel;
    let blk = plan::blocking(ker.mr, ker.nr, &cpu_info());
    let s = Strategy {
        kc: b.kc,
        mc: plan::chunk(m, blk.mc, ker.mr),
        nc: plan::chunk(n, blk.nc, ker.nr),
        pack_a: false,
        b_mode: BMode::Prepacked,
        rows_outer: false,
    };
    debug_assert_eq!(workspace_len(ker, &s, m, n), 0);
    let src = BSource::Packed {
        ptr: b.data.as_ptr() as *const f32,
        n_pad: b.n_pad,
    };
    // This strategy needs no workspace; the kernel still gets a valid aligned pointer.
    let mut ws = crate::scratch::Line([0.0; 16]);
    // SAFETY: A and C are in bounds and C has unit column stride (caller); B's packed data
    // matches its kernel, which the CPU runs (it was selected or checked when B was packed).
    unsafe { run_block(ker, &s, 1.0, a, src, 0, beta, c, ws.0.as_mut_ptr()) }
}

#[cfg(test)]
mod widened_tests {
    use super::pack::{pack_b_widened, pack_b_widened_body};
    use super::raw::Raw;
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2001)
            .map(|v| v as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// int8 B widened panel by panel gives what the f32 GEMM gives on the dequantized B
    /// (the same kernel, each sum in the same k order).
    #[test]
    fn widened_b_equals_the_gemm_on_dequantized_weights() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (5, 27, 8),
            (33, 300, 45),
            (64, 72, 32),
            (3, 513, 7),
        ] {
            let a = values(m * k, 1);
            let q: Vec<i8> = (0..k * n)
                .map(|i| ((i * 37 + 11) % 255) as i32 - 127)
                .map(|v| v as i8)
                .collect();
            let s: Vec<f32> = (0..n).map(|j| 0.001 + j as f32 * 1e-4).collect();
            let deq: Vec<f32> = (0..k * n).map(|i| f32::from(q[i]) * s[i % n]).collect();
            let mut ws = vec![0u8; sgemm_workspace_size(m, n, k)];
            let (mut got, mut want) = (vec![0f32; m * n], vec![0f32; m * n]);
            sgemm_ws_widened(
                MatRef::row_major(&a, m, k).unwrap(),
                MatRef::row_major(&q, k, n).unwrap(),
                &s,
                MatMut::row_major(&mut got, m, n).unwrap(),
                &mut ws,
            )
            .unwrap();
            sgemm(
                1.0,
                MatRef::row_major(&a, m, k).unwrap(),
                MatRef::row_major(&deq, k, n).unwrap(),
                0.0,
                MatMut::row_major(&mut want, m, n).unwrap(),
                Context::new().workspace(&mut ws),
            )
            .unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{m}×{k}×{n} [{i}]: {g} vs {w}"
                );
            }
        }
    }

    /// The vector builds of the widening packer write the portable loop's values.
    #[test]
    fn widening_packer_equals_the_portable_loop() {
        let (kc, nr) = (19, 32);
        for w in [1, 7, 16, 32] {
            let q: Vec<i8> = (0..kc * w).map(|i| (i as i32 % 255 - 127) as i8).collect();
            let s: Vec<f32> = (0..w).map(|j| 0.5 + j as f32).collect();
            let b = Raw::from_ref(&MatRef::row_major(&q, kc, w).unwrap());
            let (mut fast, mut portable) = (vec![1f32; kc * nr], vec![2f32; kc * nr]);
            // SAFETY: b is a validated row-major view, s has w scales, the buffers kc·nr.
            unsafe {
                pack_b_widened(b, s.as_ptr(), nr, fast.as_mut_ptr());
                pack_b_widened_body(b, s.as_ptr(), nr, portable.as_mut_ptr());
            }
            assert_eq!(fast, portable);
            for p in 0..kc {
                for j in 0..nr {
                    let want = if j < w {
                        f32::from(q[p * w + j]) * s[j]
                    } else {
                        0.0
                    };
                    assert_eq!(portable[p * nr + j], want, "w {w}, ({p}, {j})");
                }
            }
        }
    }
}
