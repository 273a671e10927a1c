//! Packing for the int8 kernels: operands transformed to the kernel's format (see
//! `QFormat`), k in groups, with the row sums of A' and the column sums of B' that the zero
//! point terms need, computed in the same pass.
//!
//! A sliver s (rows of row tile s, see `gemm::pack::row_tile`) holds A'[i, g·q + t] at
//! byte `(s·MR·G + (q·MR + i)·g + t)·e` — per k-group q, MR rows of g elements — with
//! G = groups in the block and e the element size. A B sliver holds B'[g·q + t, j] at
//! `(s·NR·G + (q·NR + j)·g + t)·e`. Elements past k (and columns past n) are zero, so the
//! padded products vanish; the sums cover the real elements only.

use super::QuantInput;
use crate::gemm::pack::{row_tile, row_tiles};
use crate::gemm::raw::Raw;
use crate::kernels::int8::QFormat;

/// Packs `a` (mc×kc) for `fmt`, adding each row's sum of A' to `rowsum[i]`.
///
/// # Safety
/// `a` names only in-bounds elements; `dst` has `ceil(mc/MR)·MR·ceil(kc/g)·g·e` writable
/// bytes; `rowsum` has mc elements.
pub(crate) unsafe fn pack_a<A: QuantInput>(
    a: Raw<A>,
    fmt: QFormat,
    mr: usize,
    dst: *mut u8,
    rowsum: &mut [i32],
) {
    let (mc, kc) = (a.rows, a.cols);
    let g = fmt.k_group();
    let groups = kc.div_ceil(g);
    let shift = fmt.a_shift(A::SIGNED);
    for s in 0..row_tiles(mc, mr) {
        let (i0, h) = row_tile(mc, mr, s);
        let base = s * mr * groups * g;
        for i in 0..h {
            let mut sum = 0i32;
            // SAFETY: row i0+i, columns 0..kc are inside `a`; indices below stay inside the
            // sliver (q < groups, i < mr, t < g).
            unsafe {
                let row = a.at(i0 + i, 0);
                for q in 0..groups {
                    for t in 0..g {
                        let p = q * g + t;
                        let v = if p < kc {
                            (*row.offset(p as isize * a.cs)).into() + shift
                        } else {
                            0
                        };
                        sum = sum.wrapping_add(v);
                        let idx = base + (q * mr + i) * g + t;
                        match fmt {
                            QFormat::U8x4 | QFormat::I8x4 => *dst.add(idx) = v as u8,
                            QFormat::I16x2 => (dst as *mut i16).add(idx).write_unaligned(v as i16),
                        }
                    }
                }
            }
            rowsum[i0 + i] = rowsum[i0 + i].wrapping_add(sum);
        }
    }
}

/// Packs `b` (kc×nc) for `fmt`, adding each column's sum to `colsum[j]`.
///
/// # Safety
/// `b` names only in-bounds elements; `dst` has `ceil(nc/NR)·NR·ceil(kc/g)·g·e` writable
/// bytes; `colsum` has nc elements.
pub(crate) unsafe fn pack_b(b: Raw<i8>, fmt: QFormat, nr: usize, dst: *mut u8, colsum: &mut [i32]) {
    let (kc, nc) = (b.rows, b.cols);
    let g = fmt.k_group();
    let groups = kc.div_ceil(g);
    for j0 in (0..nc).step_by(nr) {
        let w = nr.min(nc - j0);
        let base = j0 / nr * nr * groups * g;
        for q in 0..groups {
            for j in 0..nr {
                for t in 0..g {
                    let p = q * g + t;
                    let v = if j < w && p < kc {
                        // SAFETY: (p, j0+j) is inside `b`.
                        unsafe { *b.at(p, j0 + j) as i32 }
                    } else {
                        0
                    };
                    if j < w {
                        colsum[j0 + j] = colsum[j0 + j].wrapping_add(v);
                    }
                    let idx = base + (q * nr + j) * g + t;
                    // SAFETY: idx is inside the sliver (q < groups, j < nr, t < g).
                    unsafe {
                        match fmt {
                            QFormat::U8x4 | QFormat::I8x4 => *dst.add(idx) = v as u8,
                            QFormat::I16x2 => (dst as *mut i16).add(idx).write_unaligned(v as i16),
                        }
                    }
                }
            }
        }
    }
}
