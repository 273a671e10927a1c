//! Strided matrix views: a shape plus `isize` row and column strides (in elements) over a
//! slice. A view is validated once, when it is built; everything downstream trusts it.
//!
//! Invariants every `MatRef`/`MatMut` holds (the kernels rely on them):
//! - every element `(i, j)` with `i < rows`, `j < cols` lies inside the memory the view
//!   borrows (checked with overflow-checked arithmetic);
//! - for `MatMut`, two different `(i, j)` never map to the same location;
//! - the stride of a dimension of size ≤ 1 is normalized to 1 (it is never used to reach
//!   an element, and a fixed value keeps layout tests such as "row-major?" simple).

use crate::error::{Error, Operand};
use core::marker::PhantomData;

/// Offsets (in elements) of the lowest and highest element a view reaches, or `None` when
/// the computation overflows `isize`.
fn extent(rows: usize, cols: usize, rs: isize, cs: isize) -> Option<(isize, isize)> {
    debug_assert!(rows > 0 && cols > 0);
    let r = isize::try_from(rows - 1).ok()?.checked_mul(rs)?;
    let c = isize::try_from(cols - 1).ok()?.checked_mul(cs)?;
    let lo = r.min(0).checked_add(c.min(0))?;
    let hi = r.max(0).checked_add(c.max(0))?;
    Some((lo, hi))
}

fn normalize(rows: usize, cols: usize, rs: isize, cs: isize) -> (isize, isize) {
    (
        if rows <= 1 { 1 } else { rs },
        if cols <= 1 { 1 } else { cs },
    )
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// True when two different elements of a `rows`×`cols` view share a location.
///
/// `i·rs + j·cs = i'·rs + j'·cs` has a nonzero solution `(di, dj)` with `|di| < rows`,
/// `|dj| < cols` exactly when the smallest one, `(cs/g, rs/g)` with `g = gcd(rs, cs)`, fits.
pub(crate) fn strides_alias(rows: usize, cols: usize, rs: isize, cs: isize) -> bool {
    if rows == 0 || cols == 0 || rows * cols == 1 {
        return false;
    }
    if rows == 1 {
        return cs == 0;
    }
    if cols == 1 {
        return rs == 0;
    }
    let (ars, acs) = (rs.unsigned_abs(), cs.unsigned_abs());
    if ars == 0 || acs == 0 {
        return true;
    }
    let g = gcd(ars, acs);
    acs / g < rows && ars / g < cols
}

fn check_slice_view(
    len: usize,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
) -> Result<(isize, isize), Error> {
    let (rs, cs) = normalize(rows, cols, rs, cs);
    if rows == 0 || cols == 0 {
        return Ok((rs, cs));
    }
    let oob = Error::OutOfBounds {
        operand: Operand::View,
        rows,
        cols,
        row_stride: rs,
        col_stride: cs,
        len,
    };
    match extent(rows, cols, rs, cs) {
        Some((lo, hi)) if lo >= 0 && (hi as usize) < len => Ok((rs, cs)),
        _ => Err(oob),
    }
}

macro_rules! common_view_methods {
    () => {
        /// Number of rows.
        #[inline]
        pub fn rows(&self) -> usize {
            self.rows
        }
        /// Number of columns.
        #[inline]
        pub fn cols(&self) -> usize {
            self.cols
        }
        /// Distance in elements between rows (1 when there is at most one row).
        #[inline]
        pub fn row_stride(&self) -> isize {
            self.rs
        }
        /// Distance in elements between columns (1 when there is at most one column).
        #[inline]
        pub fn col_stride(&self) -> isize {
            self.cs
        }
        /// True when the view has no elements.
        #[inline]
        pub fn is_empty(&self) -> bool {
            self.rows == 0 || self.cols == 0
        }
        /// Pointer to element (0, 0) (dangling-but-aligned for an empty view).
        #[inline]
        pub fn as_ptr(&self) -> *const T {
            self.ptr as *const T
        }
        /// The element at (i, j), or `None` outside the view.
        #[inline]
        pub fn get(&self, i: usize, j: usize) -> Option<T>
        where
            T: Copy,
        {
            if i < self.rows && j < self.cols {
                // SAFETY: (i, j) is inside the view, and every element of a view is inside
                // the memory it borrows (checked at construction).
                Some(unsafe { *self.ptr.offset(i as isize * self.rs + j as isize * self.cs) })
            } else {
                None
            }
        }
    };
}

/// Start pointer and shape of a sub-view, checked against its parent.
fn subview<T>(
    ptr: *mut T,
    (prows, pcols, rs, cs): (usize, usize, isize, isize),
    (row, col, rows, cols): (usize, usize, usize, usize),
) -> Result<(*mut T, isize, isize), Error> {
    let fits = row.checked_add(rows).is_some_and(|e| e <= prows)
        && col.checked_add(cols).is_some_and(|e| e <= pcols);
    if !fits {
        return Err(Error::SubviewOutOfRange {
            row,
            col,
            rows,
            cols,
            parent_rows: prows,
            parent_cols: pcols,
        });
    }
    let (nrs, ncs) = normalize(rows, cols, rs, cs);
    if rows == 0 || cols == 0 {
        return Ok((ptr, nrs, ncs));
    }
    // (row, col) is an element of the parent, so this offset stays inside its memory.
    let p = ptr.wrapping_offset(row as isize * rs + col as isize * cs);
    Ok((p, nrs, ncs))
}

/// A read-only strided view of a matrix of `T`.
pub struct MatRef<'a, T> {
    ptr: *mut T,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
    _borrow: PhantomData<&'a [T]>,
}

impl<T> Clone for MatRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for MatRef<'_, T> {}

// SAFETY: a MatRef is a shared borrow of `[T]`; sharing it across threads is as safe as
// sharing `&[T]`, which needs `T: Sync`.
unsafe impl<T: Sync> Send for MatRef<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for MatRef<'_, T> {}

impl<T> core::fmt::Debug for MatRef<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "MatRef {{ {}x{}, strides ({}, {}) }}",
            self.rows, self.cols, self.rs, self.cs
        )
    }
}

impl<'a, T> MatRef<'a, T> {
    /// A view of `rows`×`cols` elements where element `(i, j)` is
    /// `data[i * row_stride + j * col_stride]`. Fails when any element falls outside `data`
    /// (negative strides reach below `data[0]`, so they need [`MatRef::from_raw_parts`]).
    pub fn new(
        data: &'a [T],
        rows: usize,
        cols: usize,
        row_stride: isize,
        col_stride: isize,
    ) -> Result<Self, Error> {
        let (rs, cs) = check_slice_view(data.len(), rows, cols, row_stride, col_stride)?;
        Ok(MatRef {
            ptr: data.as_ptr() as *mut T,
            rows,
            cols,
            rs,
            cs,
            _borrow: PhantomData,
        })
    }

    /// Row-major: `data[i * cols + j]`.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Result<Self, Error> {
        let rs = isize::try_from(cols).map_err(|_| Error::SizeOverflow)?;
        Self::new(data, rows, cols, rs, 1)
    }

    /// Column-major: `data[i + j * rows]`.
    pub fn col_major(data: &'a [T], rows: usize, cols: usize) -> Result<Self, Error> {
        let cs = isize::try_from(rows).map_err(|_| Error::SizeOverflow)?;
        Self::new(data, rows, cols, 1, cs)
    }

    /// A view over raw memory, for FFI callers; strides may be negative.
    ///
    /// # Safety
    /// For the lifetime `'a`, every element `ptr + i*row_stride + j*col_stride`
    /// (`i < rows`, `j < cols`) must be valid to read and must not be written through
    /// another pointer. `ptr` may be anything when the view is empty.
    pub unsafe fn from_raw_parts(
        ptr: *const T,
        rows: usize,
        cols: usize,
        row_stride: isize,
        col_stride: isize,
    ) -> Result<Self, Error> {
        let (rs, cs) = check_raw(ptr, rows, cols, row_stride, col_stride)?;
        Ok(MatRef {
            ptr: ptr as *mut T,
            rows,
            cols,
            rs,
            cs,
            _borrow: PhantomData,
        })
    }

    common_view_methods!();

    /// The transpose, as a view of the same memory.
    #[inline]
    pub fn t(self) -> MatRef<'a, T> {
        MatRef {
            ptr: self.ptr,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            _borrow: PhantomData,
        }
    }

    /// The `rows`×`cols` block whose top-left element is `(row, col)`.
    pub fn submatrix(
        self,
        row: usize,
        col: usize,
        rows: usize,
        cols: usize,
    ) -> Result<MatRef<'a, T>, Error> {
        let (ptr, rs, cs) = subview(
            self.ptr,
            (self.rows, self.cols, self.rs, self.cs),
            (row, col, rows, cols),
        )?;
        Ok(MatRef {
            ptr,
            rows,
            cols,
            rs,
            cs,
            _borrow: PhantomData,
        })
    }

    /// Row `i` as a 1×cols view.
    pub fn row(self, i: usize) -> Result<MatRef<'a, T>, Error> {
        let cols = self.cols;
        self.submatrix(i, 0, 1, cols)
    }

    /// Column `j` as a rows×1 view.
    pub fn col(self, j: usize) -> Result<MatRef<'a, T>, Error> {
        let rows = self.rows;
        self.submatrix(0, j, rows, 1)
    }

    /// Byte range `[lo, hi)` the view touches (empty range for an empty view).
    pub(crate) fn byte_span(&self) -> (usize, usize) {
        byte_span(self.ptr, self.rows, self.cols, self.rs, self.cs)
    }
}

/// A mutable strided view of a matrix of `T`, with no two elements sharing memory.
pub struct MatMut<'a, T> {
    ptr: *mut T,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: a MatMut is a unique borrow of `[T]`: sending it is as safe as sending `&mut [T]`.
unsafe impl<T: Send> Send for MatMut<'_, T> {}
// SAFETY: shared access to a MatMut only reads (through `get`/`as_ref`), as `&&mut [T]` does.
unsafe impl<T: Sync> Sync for MatMut<'_, T> {}

impl<T> core::fmt::Debug for MatMut<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "MatMut {{ {}x{}, strides ({}, {}) }}",
            self.rows, self.cols, self.rs, self.cs
        )
    }
}

impl<'a, T> MatMut<'a, T> {
    /// A mutable view of `rows`×`cols` elements where `(i, j)` is
    /// `data[i * row_stride + j * col_stride]`. Fails when an element falls outside `data`,
    /// or when two elements would share a location.
    pub fn new(
        data: &'a mut [T],
        rows: usize,
        cols: usize,
        row_stride: isize,
        col_stride: isize,
    ) -> Result<Self, Error> {
        let (rs, cs) = check_slice_view(data.len(), rows, cols, row_stride, col_stride)?;
        if strides_alias(rows, cols, rs, cs) {
            return Err(Error::Aliasing {
                operand: Operand::View,
                rows,
                cols,
                row_stride: rs,
                col_stride: cs,
            });
        }
        Ok(MatMut {
            ptr: data.as_mut_ptr(),
            rows,
            cols,
            rs,
            cs,
            _borrow: PhantomData,
        })
    }

    /// Row-major: `data[i * cols + j]`.
    pub fn row_major(data: &'a mut [T], rows: usize, cols: usize) -> Result<Self, Error> {
        let rs = isize::try_from(cols).map_err(|_| Error::SizeOverflow)?;
        Self::new(data, rows, cols, rs, 1)
    }

    /// Column-major: `data[i + j * rows]`.
    pub fn col_major(data: &'a mut [T], rows: usize, cols: usize) -> Result<Self, Error> {
        let cs = isize::try_from(rows).map_err(|_| Error::SizeOverflow)?;
        Self::new(data, rows, cols, 1, cs)
    }

    /// A mutable view over raw memory, for FFI callers; strides may be negative.
    /// Aliasing strides are still rejected.
    ///
    /// # Safety
    /// For the lifetime `'a`, every element `ptr + i*row_stride + j*col_stride` must be valid
    /// to read and write, and no other pointer may access it.
    pub unsafe fn from_raw_parts(
        ptr: *mut T,
        rows: usize,
        cols: usize,
        row_stride: isize,
        col_stride: isize,
    ) -> Result<Self, Error> {
        let (rs, cs) = check_raw(ptr, rows, cols, row_stride, col_stride)?;
        if strides_alias(rows, cols, rs, cs) {
            return Err(Error::Aliasing {
                operand: Operand::View,
                rows,
                cols,
                row_stride: rs,
                col_stride: cs,
            });
        }
        Ok(MatMut {
            ptr,
            rows,
            cols,
            rs,
            cs,
            _borrow: PhantomData,
        })
    }

    common_view_methods!();

    /// Pointer to element (0, 0).
    #[inline]
    pub fn as_mut_ptr(&mut self) -> *mut T {
        self.ptr
    }

    /// A read-only view of the same elements.
    #[inline]
    pub fn as_ref(&self) -> MatRef<'_, T> {
        MatRef {
            ptr: self.ptr,
            rows: self.rows,
            cols: self.cols,
            rs: self.rs,
            cs: self.cs,
            _borrow: PhantomData,
        }
    }

    /// A shorter-lived mutable view of the same elements (so `self` can be used again later).
    #[inline]
    pub fn rb_mut(&mut self) -> MatMut<'_, T> {
        MatMut {
            ptr: self.ptr,
            rows: self.rows,
            cols: self.cols,
            rs: self.rs,
            cs: self.cs,
            _borrow: PhantomData,
        }
    }

    /// The transpose, as a mutable view of the same memory.
    #[inline]
    pub fn t(self) -> MatMut<'a, T> {
        MatMut {
            ptr: self.ptr,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            _borrow: PhantomData,
        }
    }

    /// The `rows`×`cols` block whose top-left element is `(row, col)`.
    pub fn submatrix(
        self,
        row: usize,
        col: usize,
        rows: usize,
        cols: usize,
    ) -> Result<MatMut<'a, T>, Error> {
        let (ptr, rs, cs) = subview(
            self.ptr,
            (self.rows, self.cols, self.rs, self.cs),
            (row, col, rows, cols),
        )?;
        Ok(MatMut {
            ptr,
            rows,
            cols,
            rs,
            cs,
            _borrow: PhantomData,
        })
    }

    /// Splits into rows `[0, r)` and `[r, rows)`.
    pub fn split_at_row(self, r: usize) -> Result<(MatMut<'a, T>, MatMut<'a, T>), Error> {
        let (rows, cols) = (self.rows, self.cols);
        // The two halves cover disjoint rows of a non-aliasing view, so they never overlap.
        let alias = MatMut { ..self };
        let top = self.submatrix(0, 0, r, cols)?;
        let bottom = alias.submatrix(r, 0, rows - r, cols)?;
        Ok((top, bottom))
    }

    /// Sets element (i, j); returns false (and writes nothing) outside the view.
    #[inline]
    pub fn set(&mut self, i: usize, j: usize, value: T) -> bool {
        if i < self.rows && j < self.cols {
            // SAFETY: (i, j) is inside the view, whose elements lie in memory it borrows
            // uniquely (checked at construction).
            unsafe { *self.ptr.offset(i as isize * self.rs + j as isize * self.cs) = value };
            true
        } else {
            false
        }
    }

    pub(crate) fn byte_span(&self) -> (usize, usize) {
        byte_span(self.ptr, self.rows, self.cols, self.rs, self.cs)
    }

    /// The raw parts, for the drivers (which uphold the view's invariants).
    #[inline]
    pub(crate) fn raw(&self) -> (*mut T, usize, usize, isize, isize) {
        (self.ptr, self.rows, self.cols, self.rs, self.cs)
    }
}

impl<T> MatRef<'_, T> {
    /// The raw parts, for the drivers (which uphold the view's invariants).
    #[inline]
    pub(crate) fn raw(&self) -> (*const T, usize, usize, isize, isize) {
        (self.ptr as *const T, self.rows, self.cols, self.rs, self.cs)
    }
}

fn check_raw<T>(
    ptr: *const T,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
) -> Result<(isize, isize), Error> {
    let (rs, cs) = normalize(rows, cols, rs, cs);
    if rows == 0 || cols == 0 {
        return Ok((rs, cs));
    }
    if ptr.is_null() {
        return Err(Error::NullPointer {
            operand: Operand::View,
        });
    }
    // The extent in bytes must fit isize for pointer offsets to be defined.
    let fits = extent(rows, cols, rs, cs).and_then(|(lo, hi)| {
        let size = core::mem::size_of::<T>() as isize;
        lo.checked_mul(size)?;
        hi.checked_mul(size)
    });
    if fits.is_none() {
        return Err(Error::OutOfBounds {
            operand: Operand::View,
            rows,
            cols,
            row_stride: rs,
            col_stride: cs,
            len: 0,
        });
    }
    Ok((rs, cs))
}

fn byte_span<T>(ptr: *const T, rows: usize, cols: usize, rs: isize, cs: isize) -> (usize, usize) {
    if rows == 0 || cols == 0 {
        return (0, 0);
    }
    let (lo, hi) = extent(rows, cols, rs, cs).unwrap_or((0, 0));
    let size = core::mem::size_of::<T>() as isize;
    let base = ptr as isize;
    (
        base.wrapping_add(lo * size) as usize,
        base.wrapping_add((hi + 1) * size) as usize,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_check_is_exact() {
        // Brute force over small shapes and strides.
        for rows in 0..5usize {
            for cols in 0..5usize {
                for rs in -6..7isize {
                    for cs in -6..7isize {
                        let mut seen = [false; 256];
                        let mut alias = false;
                        for i in 0..rows {
                            for j in 0..cols {
                                let o = (i as isize * rs + j as isize * cs + 128) as usize;
                                alias |= seen[o];
                                seen[o] = true;
                            }
                        }
                        let (nrs, ncs) = normalize(rows, cols, rs, cs);
                        assert_eq!(
                            strides_alias(rows, cols, nrs, ncs),
                            alias,
                            "{rows}x{cols} ({rs},{cs})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn bounds() {
        let v = [0f32; 12];
        assert!(MatRef::new(&v, 3, 4, 4, 1).is_ok());
        assert!(MatRef::new(&v, 3, 5, 4, 1).is_err());
        assert!(MatRef::new(&v, 4, 3, 1, 4).is_ok());
        assert!(MatRef::new(&v, 2, 2, -1, 1).is_err());
        assert!(MatRef::new(&v, 2, 2, isize::MAX, 1).is_err());
        assert!(MatRef::new(&v, usize::MAX, 2, 1, 1).is_err());
        assert!(MatRef::new(&v[..0], 0, 7, 99, 99).is_ok());
        let s = MatRef::new(&v, 3, 4, 4, 1).unwrap();
        assert_eq!(s.submatrix(1, 1, 2, 3).unwrap().get(1, 2), Some(0.0));
        assert!(s.submatrix(2, 0, 2, 1).is_err());
        assert!(s.submatrix(usize::MAX, 0, 2, 1).is_err());
    }
}
