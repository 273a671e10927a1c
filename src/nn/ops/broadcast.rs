//! NumPy/TFLite broadcasting of `N` inputs against one output, without allocation: shapes
//! are right-aligned (a missing leading dimension is 1), and an input dimension of 1 is
//! repeated along the output's. The plan drops output dimensions of 1 and merges adjacent
//! dimensions that every input walks contiguously (same shapes collapse to one run, a
//! per-channel vector to rows of channels), then visits the output one innermost row at a
//! time, row-major, in the order of TFLite's `Broadcast*Slow` loops.

use crate::nn::blob::{Shape, MAX_RANK};

/// A broadcast of `N` inputs to an output of at most [`MAX_RANK`] dimensions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Broadcast<const N: usize> {
    /// Compressed dimensions in use (0 for an empty output).
    rank: usize,
    /// Output extents of the compressed dimensions, outermost first.
    dims: [usize; MAX_RANK],
    /// Each input's element stride along each compressed dimension (0 where broadcast).
    strides: [[usize; MAX_RANK]; N],
    /// Elements of each input (what its flat index can reach).
    input_elems: [usize; N],
    /// Elements of the output.
    out_elems: usize,
}

/// One innermost row: `len` outputs from `out`, input `k` starting at `start[k]` and
/// stepping by `step[k]` (1, or 0 for a repeated value).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Row<const N: usize> {
    pub out: usize,
    pub len: usize,
    pub start: [usize; N],
    pub step: [usize; N],
}

impl<const N: usize> Broadcast<N> {
    /// The plan for `inputs` broadcast to `out`, or `None` when they do not broadcast to
    /// exactly that shape (an input of higher rank, or a dimension neither 1 nor the
    /// output's).
    pub(crate) fn new(out: &[usize], inputs: [&[usize]; N]) -> Option<Self> {
        if out.len() > MAX_RANK {
            return None;
        }
        let r = out.len();
        // Right-aligned, padded to the output's rank; row-major element strides.
        let mut strides = [[0usize; MAX_RANK]; N];
        let mut input_elems = [1usize; N];
        for (k, shape) in inputs.iter().enumerate() {
            if shape.len() > r {
                return None;
            }
            let pad = r - shape.len();
            let mut stride = 1usize;
            for i in (0..r).rev() {
                let d = if i < pad { 1 } else { shape[i - pad] };
                if d != out[i] && d != 1 {
                    return None;
                }
                strides[k][i] = if d == 1 { 0 } else { stride };
                stride = stride.checked_mul(d)?;
            }
            input_elems[k] = stride;
        }
        let mut out_elems = 1usize;
        for &d in out {
            out_elems = out_elems.checked_mul(d)?;
        }
        // Compress: drop dimensions of extent 1, merge a dimension into the next inner one
        // when every input's stride there equals its inner stride times the inner extent.
        let mut plan = Broadcast {
            rank: 0,
            dims: [1; MAX_RANK],
            strides: [[0; MAX_RANK]; N],
            input_elems,
            out_elems,
        };
        if out_elems == 0 {
            return Some(plan);
        }
        // Walk from the innermost dimension outwards, building the compressed list reversed.
        let mut n = 0usize;
        for i in (0..r).rev() {
            if out[i] == 1 {
                continue;
            }
            let mergeable = n > 0
                && (0..N).all(|k| {
                    strides[k][i] == plan.strides[k][n - 1].saturating_mul(plan.dims[n - 1])
                });
            if mergeable {
                plan.dims[n - 1] *= out[i];
            } else {
                plan.dims[n] = out[i];
                for (p, s) in plan.strides.iter_mut().zip(&strides) {
                    p[n] = s[i];
                }
                n += 1;
            }
        }
        if n == 0 {
            // A single element.
            n = 1;
            plan.dims[0] = 1;
        }
        plan.dims[..n].reverse();
        for s in plan.strides.iter_mut() {
            s[..n].reverse();
        }
        plan.rank = n;
        Some(plan)
    }

    /// [`Broadcast::new`] over blob shapes.
    pub(crate) fn from_shapes(out: Shape, inputs: [Shape; N]) -> Option<Self> {
        let mut buf = [[0usize; MAX_RANK]; N];
        let mut out_buf = [0usize; MAX_RANK];
        for (o, &d) in out_buf.iter_mut().zip(out.dims()) {
            *o = d as usize;
        }
        for (b, s) in buf.iter_mut().zip(inputs.iter()) {
            for (o, &d) in b.iter_mut().zip(s.dims()) {
                *o = d as usize;
            }
        }
        let mut shapes: [&[usize]; N] = [&[]; N];
        for (k, sh) in shapes.iter_mut().enumerate() {
            *sh = &buf[k][..inputs[k].rank()];
        }
        Self::new(&out_buf[..out.rank()], shapes)
    }

    /// Elements of the output.
    pub(crate) fn out_elems(&self) -> usize {
        self.out_elems
    }

    /// Elements each input must have.
    pub(crate) fn input_elems(&self) -> [usize; N] {
        self.input_elems
    }

    /// Calls `f` on every innermost row, in output order; stops at the first error.
    pub(crate) fn try_for_each_row<E>(
        &self,
        mut f: impl FnMut(Row<N>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.rank == 0 {
            return Ok(());
        }
        let inner = self.rank - 1;
        let len = self.dims[inner];
        let mut step = [0usize; N];
        for (s, st) in step.iter_mut().zip(self.strides.iter()) {
            *s = st[inner];
        }
        let mut idx = [0usize; MAX_RANK];
        let mut start = [0usize; N];
        let mut out = 0usize;
        loop {
            f(Row {
                out,
                len,
                start,
                step,
            })?;
            out += len;
            // Advance the odometer over the outer dimensions.
            let mut d = inner;
            loop {
                if d == 0 {
                    return Ok(());
                }
                d -= 1;
                idx[d] += 1;
                for (s, st) in start.iter_mut().zip(self.strides.iter()) {
                    *s += st[d];
                }
                if idx[d] < self.dims[d] {
                    break;
                }
                for (s, st) in start.iter_mut().zip(self.strides.iter()) {
                    *s -= st[d] * self.dims[d];
                }
                idx[d] = 0;
            }
        }
    }
}

/// `out[i] = f(a[ia], b[ib])` over a two-input broadcast. `Err(())` when a slice is shorter
/// than the plan says (callers check sizes at load, so that does not happen).
pub(crate) fn binary<A: Copy, B: Copy, O>(
    plan: &Broadcast<2>,
    a: &[A],
    b: &[B],
    out: &mut [O],
    f: impl Fn(A, B) -> O,
) -> Result<(), ()> {
    plan.try_for_each_row(|r| {
        let o = out.get_mut(r.out..r.out + r.len).ok_or(())?;
        let span = |start: usize, step: usize| start..start + if step == 0 { 1 } else { r.len };
        let x = a.get(span(r.start[0], r.step[0])).ok_or(())?;
        let y = b.get(span(r.start[1], r.step[1])).ok_or(())?;
        match (x, y) {
            ([x], [y]) if r.len != 1 => o.iter_mut().for_each(|v| *v = f(*x, *y)),
            ([x], _) if r.step[0] == 0 => {
                for (v, &y) in o.iter_mut().zip(y) {
                    *v = f(*x, y);
                }
            }
            (_, [y]) if r.step[1] == 0 => {
                for (v, &x) in o.iter_mut().zip(x) {
                    *v = f(x, *y);
                }
            }
            _ => {
                for ((v, &x), &y) in o.iter_mut().zip(x).zip(y) {
                    *v = f(x, y);
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    /// The plain definition: every output index mapped to each input's index.
    fn naive(out: &[usize], a: &[usize], b: &[usize]) -> Vec<(usize, usize)> {
        let r = out.len();
        let total: usize = out.iter().product();
        let pad = |s: &[usize]| -> Vec<usize> {
            let mut v = vec![1; r - s.len()];
            v.extend_from_slice(s);
            v
        };
        let (pa, pb) = (pad(a), pad(b));
        let mut res = Vec::new();
        for flat in 0..total {
            let mut rem = flat;
            let mut idx = vec![0; r];
            for i in (0..r).rev() {
                idx[i] = rem % out[i];
                rem /= out[i];
            }
            let at = |p: &[usize]| {
                let mut o = 0;
                for i in 0..r {
                    o = o * p[i] + if p[i] == 1 { 0 } else { idx[i] };
                }
                o
            };
            res.push((at(&pa), at(&pb)));
        }
        res
    }

    #[test]
    fn matches_the_definition() {
        let cases: &[(&[usize], &[usize], &[usize])] = &[
            (&[1, 5, 6, 4], &[1, 5, 6, 4], &[1, 5, 6, 4]),
            (&[1, 5, 6, 4], &[1, 5, 6, 4], &[4]),
            (&[1, 5, 6, 4], &[1, 5, 6, 4], &[]),
            (&[1, 5, 6, 4], &[], &[1, 5, 6, 4]),
            (&[1, 5, 6, 4], &[1, 5, 1, 4], &[1, 1, 6, 4]),
            (&[1, 5, 6, 4], &[1, 5, 6, 1], &[1, 1, 6, 4]),
            (&[2, 5, 6, 4], &[2, 1, 6, 4], &[1, 5, 1, 1]),
            (&[2, 3, 1, 4, 5, 2], &[2, 1, 1, 4, 1, 2], &[3, 1, 1, 5, 1]),
            (&[3, 0, 2], &[3, 1, 2], &[0, 1]),
            (&[], &[], &[]),
            (&[1, 1, 1], &[1], &[1, 1, 1]),
        ];
        for &(out, a, b) in cases {
            let plan = Broadcast::new(out, [a, b]).unwrap();
            let mut got = Vec::new();
            plan.try_for_each_row(|r| {
                assert_eq!(r.out, got.len());
                for i in 0..r.len {
                    got.push((r.start[0] + i * r.step[0], r.start[1] + i * r.step[1]));
                }
                Ok::<(), ()>(())
            })
            .unwrap();
            assert_eq!(got, naive(out, a, b), "{out:?} {a:?} {b:?}");
            assert_eq!(plan.out_elems(), got.len());
        }
    }

    #[test]
    fn refuses_shapes_that_do_not_broadcast() {
        assert!(Broadcast::new(&[2, 3], [&[3, 3][..], &[3][..]]).is_none());
        assert!(Broadcast::new(&[3], [&[1, 3][..], &[3][..]]).is_none());
        assert!(Broadcast::new(&[1, 2, 3, 4, 5, 6, 7], [&[][..], &[][..]]).is_none());
    }

    #[test]
    fn binary_applies_f() {
        let plan = Broadcast::new(&[2, 3], [&[2, 1][..], &[3][..]]).unwrap();
        let mut out = [0i32; 6];
        binary(&plan, &[10, 20], &[1, 2, 3], &mut out, |x, y| x + y).unwrap();
        assert_eq!(out, [11, 12, 13, 21, 22, 23]);
        assert!(binary(&plan, &[10], &[1, 2, 3], &mut out, |x, y| x + y).is_err());
    }
}
