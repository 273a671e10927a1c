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

use super::driver::{layout_of, run_block, Geometry, QStrategy, Terms};
use super::{check_call, trivial_call, BOperand, Out, QuantInput};
use crate::error::Error;
use crate::gemm::raw::Raw;
use crate::kernels::int8::{QgemmKernel, QGEMM_KERNELS};
use crate::kernels::targets::{qshape, Kernels, QGEMM_SHAPES};

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
