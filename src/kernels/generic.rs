//! Portable Rust kernels: the fallback on every target, and the model the assembly kernels
//! follow. Written so LLVM vectorizes the NR loop (fixed-size arrays, no early exits).

use super::f32::SgemmArgs;

const MR: usize = 4;
const NR: usize = 8;

/// The portable f32 micro-kernel, 4×8. Same contract as the assembly kernels (see
/// [`SgemmArgs`]).
///
/// # Safety
/// The [`super::f32::SgemmUkr`] contract.
pub(crate) unsafe extern "C" fn sgemm_generic_4x8(args: *const SgemmArgs) {
    // SAFETY: the caller passes a valid SgemmArgs.
    let g = unsafe { &*args };
    let m = g.m.min(MR);
    let mut acc = [[0f32; NR]; MR];
    let mut a = g.a as *const u8;
    let mut b = g.b as *const u8;
    for _ in 0..g.k {
        // SAFETY: all NR columns of B are readable at every k step (contract).
        let bv: [f32; NR] = unsafe { core::ptr::read_unaligned(b as *const [f32; NR]) };
        let mut av = [0f32; MR];
        for (i, x) in av.iter_mut().enumerate().take(m) {
            // SAFETY: rows 0..m of A are readable at every k step (contract).
            *x = unsafe { core::ptr::read_unaligned(a.offset(i as isize * g.a_rs) as *const f32) };
        }
        for i in 0..MR {
            for j in 0..NR {
                acc[i][j] += av[i] * bv[j];
            }
        }
        a = a.wrapping_offset(g.a_ks);
        b = b.wrapping_offset(g.b_ks);
    }
    let beta_zero = g.beta == 0.0;
    for (i, row) in acc.iter().enumerate().take(m) {
        let c = (g.c as *mut u8).wrapping_offset(i as isize * g.c_rs) as *mut f32;
        for (j, &v) in row.iter().enumerate().take(g.n.min(NR)) {
            // SAFETY: the m×n tile of C is writable, and readable unless beta == 0.
            unsafe {
                let p = c.add(j);
                let v = g.alpha * v;
                *p = if beta_zero { v } else { v + g.beta * *p };
            }
        }
    }
}

/// Portable y = α·xᵀB + β·y (see [`super::f32::GemvFn`]).
///
/// # Safety
/// The [`super::f32::GemvFn`] contract.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemv_generic(
    k: usize,
    n: usize,
    alpha: f32,
    x: *const f32,
    b: *const f32,
    ldb: isize,
    cols: bool,
    beta: f32,
    y: *mut f32,
) {
    // SAFETY (whole body): x has k elements, y n, B its k×n extent (contract).
    unsafe {
        let x = core::slice::from_raw_parts(x, k);
        for j0 in (0..n).step_by(NR) {
            let w = NR.min(n - j0);
            let mut acc = [0f32; NR];
            for (p, &xp) in x.iter().enumerate() {
                for (jj, a) in acc.iter_mut().enumerate().take(w) {
                    let (r, c) = (p as isize, (j0 + jj) as isize);
                    let off = if cols { r + c * ldb } else { r * ldb + c };
                    *a += xp * *b.offset(off);
                }
            }
            for (jj, &a) in acc.iter().enumerate().take(w) {
                let yp = y.add(j0 + jj);
                *yp = if beta == 0.0 {
                    alpha * a
                } else {
                    alpha * a + beta * *yp
                };
            }
        }
    }
}

/// The portable int8 micro-kernel, 4×8, on the `I16x2` format (k in pairs of i16). Same
/// contract as the assembly kernels (see [`super::int8::QgemmArgs`]); the sums wrap.
///
/// # Safety
/// The [`super::int8::QgemmUkr`] contract.
pub(crate) unsafe extern "C" fn qgemm_i16_generic_4x8(args: *const super::int8::QgemmArgs) {
    const MR: usize = 4;
    const NR: usize = 8;
    // SAFETY: the caller passes a valid QgemmArgs.
    let g = unsafe { &*args };
    let m = g.m.min(MR);
    let mut acc = [[0i32; NR]; MR];
    let mut a = g.a;
    let mut b = g.b;
    for _ in 0..g.k_groups {
        // SAFETY: all NR columns of B' (2 i16 each) are readable in every group (contract).
        let bv: [[i16; 2]; NR] = unsafe { core::ptr::read_unaligned(b as *const [[i16; 2]; NR]) };
        let mut av = [[0i16; 2]; MR];
        for (i, x) in av.iter_mut().enumerate().take(m) {
            // SAFETY: rows 0..m of A' are readable in every group (contract).
            *x = unsafe {
                core::ptr::read_unaligned(a.offset(i as isize * g.a_rs) as *const [i16; 2])
            };
        }
        for i in 0..MR {
            for j in 0..NR {
                let p0 = av[i][0] as i32 * bv[j][0] as i32;
                let p1 = av[i][1] as i32 * bv[j][1] as i32;
                acc[i][j] = acc[i][j].wrapping_add(p0).wrapping_add(p1);
            }
        }
        a = a.wrapping_offset(g.a_ks);
        b = b.wrapping_offset(g.b_ks);
    }
    let accumulate = g.flags & super::int8::ACCUMULATE != 0;
    for (i, row) in acc.iter().enumerate().take(m) {
        // SAFETY: row_off has m values when not null (contract).
        let r = if g.row_off.is_null() {
            0
        } else {
            unsafe { *g.row_off.add(i) }
        };
        let c = (g.c as *mut u8).wrapping_offset(i as isize * g.c_rs) as *mut i32;
        for (j, &v) in row.iter().enumerate().take(g.n.min(NR)) {
            // SAFETY: col_off has NR values when not null; the m×n tile of C is writable
            // (and readable with ACCUMULATE).
            unsafe {
                let co = if g.col_off.is_null() {
                    0
                } else {
                    *g.col_off.add(j)
                };
                let v = v.wrapping_add(r).wrapping_add(co);
                let p = c.add(j);
                *p = if accumulate { (*p).wrapping_add(v) } else { v };
            }
        }
    }
}
