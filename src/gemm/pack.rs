//! Packing: copying a block of A into MR-row slivers and a block of B into NR-column
//! slivers, each k-major, so the micro-kernel reads both as sequential streams.
//!
//! A sliver s of an mc×kc block of A holds `A[s*MR + i, p]` at `s*MR*kc + p*MR + i`;
//! a sliver s of a kc×nc block of B holds `B[p, s*NR + j]` at `s*NR*kc + p*NR + j`.
//! The last B sliver is zero-padded to NR columns (the kernel reads all NR); rows past the
//! end of the last A sliver are left as they are (the kernel reads only m rows).

use super::raw::Raw;

/// Packs all of `a` (mc×kc) into MR-row slivers at `dst`.
///
/// # Safety
/// `a` names only in-bounds elements; `dst` has `ceil(mc/MR)*MR*kc` writable elements.
pub(crate) unsafe fn pack_a(a: Raw<f32>, mr: usize, dst: *mut f32) {
    let (mc, kc) = (a.rows, a.cols);
    let mut d = dst;
    for i0 in (0..mc).step_by(mr) {
        let h = mr.min(mc - i0);
        // SAFETY: rows i0..i0+h and columns 0..kc are inside `a`; the sliver's mr*kc
        // destination elements are inside `dst` (caller).
        unsafe {
            if a.rs == 1 {
                // Column-major A: each k step of the sliver is h contiguous elements.
                for p in 0..kc {
                    core::ptr::copy_nonoverlapping(a.at(i0, p), d.add(p * mr), h);
                }
            } else if a.cs == 1 {
                // Row-major A: a transpose of h rows; eight k steps at a time keep every
                // source row read sequentially.
                transpose_rows(a.at(i0, 0), a.rs, h, kc, mr, d);
            } else {
                for p in 0..kc {
                    for i in 0..h {
                        *d.add(p * mr + i) = *a.at(i0 + i, p);
                    }
                }
            }
            d = d.add(mr * kc);
        }
    }
}

/// dst[p*ld + i] = src[i*rs + p] for i < h, p < len.
///
/// # Safety
/// h rows of `len` contiguous readable elements at stride `rs`; `dst` has `len*ld` elements.
#[inline]
unsafe fn transpose_rows(
    src: *const f32,
    rs: isize,
    h: usize,
    len: usize,
    ld: usize,
    dst: *mut f32,
) {
    const W: usize = 8;
    let full = len - len % W;
    // SAFETY: every index below is within the bounds stated above.
    unsafe {
        let mut p = 0;
        while p < full {
            for i in 0..h {
                let row: [f32; W] = core::ptr::read_unaligned(
                    src.offset(i as isize * rs).add(p) as *const [f32; W]
                );
                for (q, v) in row.iter().enumerate() {
                    *dst.add((p + q) * ld + i) = *v;
                }
            }
            p += W;
        }
        for p in full..len {
            for i in 0..h {
                *dst.add(p * ld + i) = *src.offset(i as isize * rs).add(p);
            }
        }
    }
}

/// Packs all of `b` (kc×nc) into NR-column slivers at `dst`, zero-padding the last one.
///
/// # Safety
/// `b` names only in-bounds elements; `dst` has `ceil(nc/NR)*NR*kc` writable elements.
pub(crate) unsafe fn pack_b(b: Raw<f32>, nr: usize, dst: *mut f32) {
    let (kc, nc) = (b.rows, b.cols);
    let mut d = dst;
    for j0 in (0..nc).step_by(nr) {
        let w = nr.min(nc - j0);
        // SAFETY: columns j0..j0+w, rows 0..kc are inside `b`; nr*kc elements of `dst`.
        unsafe {
            if b.cs == 1 {
                for p in 0..kc {
                    let o = d.add(p * nr);
                    core::ptr::copy_nonoverlapping(b.at(p, j0), o, w);
                    core::ptr::write_bytes(o.add(w), 0, nr - w);
                }
            } else {
                if b.rs == 1 {
                    // Column-major B: each column is contiguous in p — a transpose.
                    transpose_rows(b.at(0, j0), b.cs, w, kc, nr, d);
                } else {
                    for p in 0..kc {
                        for j in 0..w {
                            *d.add(p * nr + j) = *b.at(p, j0 + j);
                        }
                    }
                }
                if w < nr {
                    for p in 0..kc {
                        core::ptr::write_bytes(d.add(p * nr + w), 0, nr - w);
                    }
                }
            }
            d = d.add(nr * kc);
        }
    }
}
