//! The oracle: naive, obviously-correct implementations every test compares against.
//! Nothing here is fast, and nothing here is used by the fast paths.

use crate::error::Error;
use crate::matrix::{MatMut, MatRef};

fn check_dims<TA, TB, TC>(a: &MatRef<TA>, b: &MatRef<TB>, c: &MatMut<TC>) -> Result<(), Error> {
    if a.cols() != b.rows() || c.rows() != a.rows() || c.cols() != b.cols() {
        return Err(Error::DimensionMismatch {
            a: (a.rows(), a.cols()),
            b: (b.rows(), b.cols()),
            c: (c.rows(), c.cols()),
        });
    }
    Ok(())
}

/// C ← αAB + βC, accumulated in f64 and rounded once. β = 0 never reads C; α = 0 does not
/// read A or B (BLAS semantics).
pub fn sgemm(
    alpha: f32,
    a: MatRef<f32>,
    b: MatRef<f32>,
    beta: f32,
    mut c: MatMut<f32>,
) -> Result<(), Error> {
    check_dims(&a, &b, &c)?;
    for i in 0..c.rows() {
        for j in 0..c.cols() {
            let mut acc = 0f64;
            if alpha != 0.0 {
                for p in 0..a.cols() {
                    acc += a.get(i, p).unwrap_or(0.0) as f64 * b.get(p, j).unwrap_or(0.0) as f64;
                }
            }
            let mut v = alpha as f64 * acc;
            if beta != 0.0 {
                v += beta as f64 * c.get(i, j).unwrap_or(0.0) as f64;
            }
            c.set(i, j, v as f32);
        }
    }
    Ok(())
}

/// The error bound an f32 GEMM result must meet, element by element:
///
/// `|C − C_ref| ≤ (k + 4)·ε·(|α|·Σₚ|a_ip||b_pj| + |β|·|c_ij|) + 2·min_positive`
///
/// A k-term f32 dot product (FMA or separate multiply and add, any summation order) is within
/// `γ_k·Σ|a||b|` of the exact value, `γ_k ≈ k·u` with `u = ε/2`; scaling by α, adding βC and
/// the reference's own final rounding add a few `u` more, and the `min_positive` term
/// covers underflow. `(k + 4)·ε` is that bound with a factor-two margin.
pub fn sgemm_error_bound(
    alpha: f32,
    a: MatRef<f32>,
    b: MatRef<f32>,
    beta: f32,
    c_before: MatRef<f32>,
    i: usize,
    j: usize,
) -> f64 {
    let k = a.cols();
    let mut abs = 0f64;
    for p in 0..k {
        abs += (a.get(i, p).unwrap_or(0.0) as f64 * b.get(p, j).unwrap_or(0.0) as f64).abs();
    }
    let c0 = if beta != 0.0 {
        c_before.get(i, j).unwrap_or(0.0).abs() as f64
    } else {
        0.0
    };
    (k as f64 + 4.0) * f32::EPSILON as f64 * ((alpha as f64).abs() * abs + (beta as f64).abs() * c0)
        + 2.0 * f32::MIN_POSITIVE as f64
}
