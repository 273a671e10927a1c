//! Unchecked strided matrices for the drivers. They are made only from validated views (or
//! sub-blocks of them), so every element they name is in bounds: that is the invariant every
//! `unsafe` access in the drivers relies on.

use crate::matrix::{MatMut, MatRef};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Raw<T> {
    pub ptr: *mut T,
    pub rows: usize,
    pub cols: usize,
    /// Element strides.
    pub rs: isize,
    pub cs: isize,
}

// SAFETY: a Raw is a copy of a validated view's parts; the drivers hand disjoint C blocks to
// different threads and only read A and B, so sharing it is as safe as sharing the views.
unsafe impl<T> Send for Raw<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Raw<T> {}

impl<T> Raw<T> {
    pub fn from_ref(v: &MatRef<T>) -> Self {
        let (ptr, rows, cols, rs, cs) = v.raw();
        Raw {
            ptr: ptr as *mut T,
            rows,
            cols,
            rs,
            cs,
        }
    }

    pub fn from_mut(v: &MatMut<T>) -> Self {
        let (ptr, rows, cols, rs, cs) = v.raw();
        Raw {
            ptr,
            rows,
            cols,
            rs,
            cs,
        }
    }

    pub fn t(self) -> Self {
        Raw {
            ptr: self.ptr,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Pointer to (i, j). Wrapping arithmetic: callers only dereference elements inside the
    /// matrix, but may form the address of a block's start one past an edge.
    #[inline(always)]
    pub fn at(&self, i: usize, j: usize) -> *mut T {
        self.ptr
            .wrapping_offset(i as isize * self.rs + j as isize * self.cs)
    }

    /// The block of `rows`×`cols` at (i, j); the caller keeps it inside the matrix.
    #[inline(always)]
    pub fn block(&self, i: usize, j: usize, rows: usize, cols: usize) -> Self {
        debug_assert!(i + rows <= self.rows && j + cols <= self.cols);
        Raw {
            ptr: self.at(i, j),
            rows,
            cols,
            rs: self.rs,
            cs: self.cs,
        }
    }
}
