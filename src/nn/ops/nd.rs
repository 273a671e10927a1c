//! N-D index walks shared by the shape operators (MEAN, PAD): a lexicographic "odometer"
//! over up to [`MAX_RANK`] dimensions that yields two linear offsets at once (one per
//! layout), so no operator needs scratch for index vectors.

use crate::nn::blob::{Shape, MAX_RANK};

/// Row-major strides (in elements) of a shape.
pub(crate) fn strides(shape: &Shape) -> [usize; MAX_RANK] {
    let mut s = [0usize; MAX_RANK];
    let mut acc = 1usize;
    for i in (0..shape.rank().min(MAX_RANK)).rev() {
        s[i] = acc;
        acc = acc.saturating_mul(shape.dim(i));
    }
    s
}

/// Calls `f(a, b)` for every index of the box `sizes` (lexicographic, last dimension
/// fastest), with `a = Σ idx·strides_a` and `b = Σ idx·strides_b`. An empty list of sizes
/// is one point (offsets 0); a zero size is no point.
pub(crate) fn walk(
    sizes: &[usize],
    strides_a: &[usize],
    strides_b: &[usize],
    mut f: impl FnMut(usize, usize),
) {
    let n = sizes.len().min(MAX_RANK);
    if sizes.contains(&0) {
        return;
    }
    let sa = |i: usize| strides_a.get(i).copied().unwrap_or(0);
    let sb = |i: usize| strides_b.get(i).copied().unwrap_or(0);
    let mut idx = [0usize; MAX_RANK];
    let (mut a, mut b) = (0usize, 0usize);
    loop {
        f(a, b);
        // Advance the odometer from the last dimension.
        let mut d = n;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            a += sa(d);
            b += sb(d);
            if idx[d] < sizes[d] {
                break;
            }
            a -= sa(d) * idx[d];
            b -= sb(d) * idx[d];
            idx[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::walk;

    #[test]
    fn walks_in_order() {
        let mut seen = std::vec::Vec::new();
        walk(&[2, 3], &[3, 1], &[10, 100], |a, b| seen.push((a, b)));
        assert_eq!(
            seen,
            [(0, 0), (1, 100), (2, 200), (3, 10), (4, 110), (5, 210)]
        );
        let mut n = 0;
        walk(&[], &[], &[], |_, _| n += 1);
        assert_eq!(n, 1);
        walk(&[2, 0], &[1, 1], &[1, 1], |_, _| n += 1);
        assert_eq!(n, 1);
    }
}
