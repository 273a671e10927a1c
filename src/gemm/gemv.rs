//! The m = 1 path (n = 1 arrives here transposed): y = α·xᵀB + βy without packing, bound by
//! the memory bandwidth of streaming B once. Threads split the columns of y.

use super::raw::Raw;
use crate::kernels::f32::SgemmKernel;
use crate::threads;

/// Columns per thread below which splitting does not pay.
const MIN_ELEMS_PER_THREAD: usize = 1 << 16;

/// Runs C (1×n) = α·A (1×k)·B (k×n) + βC when B has a unit stride in either direction.
/// Returns false (having done nothing) when this path does not apply.
pub(super) fn try_gemv(
    ker: &SgemmKernel,
    alpha: f32,
    a: Raw<f32>,
    b: Raw<f32>,
    beta: f32,
    c: Raw<f32>,
    threads: usize,
) -> bool {
    let (k, n) = (b.rows, b.cols);
    let (cols, ldb) = if b.cs == 1 {
        (false, b.rs)
    } else if b.rs == 1 {
        (true, b.cs)
    } else {
        return false;
    };
    // x and y must be contiguous here; strided ones take the blocked path (which packs).
    if a.cs != 1 || c.cs != 1 {
        return false;
    }
    let gemv = ker.gemv;
    let parts = threads.min((k * n / MIN_ELEMS_PER_THREAD).max(1));
    // Bands of whole cache lines of y (16 f32), so threads never share one.
    let tiles = n.div_ceil(16);
    let parts = parts.min(tiles);
    let job = |t: usize| {
        let j0 = (tiles * t / parts * 16).min(n);
        let j1 = (tiles * (t + 1) / parts * 16).min(n);
        if j0 == j1 {
            return;
        }
        let bp = b.at(0, j0);
        // SAFETY: x = A's row (k contiguous elements), y = C's columns j0..j1 (contiguous,
        // this thread's alone), B's columns j0..j1 for all k rows: all inside validated
        // views; the kernel's ISA was checked by selection.
        unsafe {
            gemv(
                k,
                j1 - j0,
                alpha,
                a.at(0, 0),
                bp,
                ldb,
                cols,
                beta,
                c.at(0, j0),
            )
        };
    };
    threads::run(parts, parts, &job);
    true
}
