//! The 512-point real FFT of the frontend, as its magnitude spectrum: a 256-point complex
//! radix-2 FFT of the even/odd samples taken as (re, im) pairs, then the split step that
//! separates the two real spectra (X[k] = E[k] + W⁵¹²ᵏ·O[k]). In place, f32, no scratch.
//!
//! Rounding: each of the 8 butterfly stages and the split step adds a few f32 roundings per
//! value (u = 2⁻²⁴ each), so ‖X̂ − X‖₂ ≤ c·9·u·‖X‖₂ with c ≈ 2. Per bin, the error has a
//! part relative to the bin (its own butterflies, the window, the √) and a floor spread from
//! the whole spectrum; the tests check |ΔX[k]| ≤ u·(24|X[k]| + 36‖X‖₂/√512) (the largest
//! measured is about a third of the floor term), which tests/audio_frontend.rs builds on.

use super::tables::TWIDDLES;

/// Complex points of the inner FFT.
const N: usize = 256;

/// `buf` holds 512 real samples; afterwards `buf[2k]` = |X[k]| for k in 0..256 and `buf[1]` =
/// |X[256]| (the odd entries other than 1 are left undefined).
pub(crate) fn magnitudes(buf: &mut [f32; 2 * N]) {
    complex_fft(buf);
    // DC and Nyquist come from Z[0] alone: X[0] = re + im, X[256] = re − im.
    let (r0, i0) = (buf[0], buf[1]);
    buf[0] = (r0 + i0).abs();
    buf[1] = (r0 - i0).abs();
    // Bins k and 256 − k from Z[k] and Z[256 − k]: with A = Z[k], B = conj(Z[256 − k]),
    // E = (A + B)/2 and O = (A − B)/(2i), X[k] = E + Wᵏ·O and X[256 − k] = conj(E − Wᵏ·O).
    // k = 128 pairs with itself and both formulas give the same value.
    for k in 1..=N / 2 {
        let (ar, ai) = (buf[2 * k], buf[2 * k + 1]);
        let (br, bi) = (buf[2 * (N - k)], -buf[2 * (N - k) + 1]);
        let (er, ei) = (0.5 * (ar + br), 0.5 * (ai + bi));
        // O = −i·(A − B)/2.
        let (or, oi) = (0.5 * (ai - bi), -0.5 * (ar - br));
        let (wr, wi) = (TWIDDLES[2 * k], TWIDDLES[2 * k + 1]);
        let (tr, ti) = (wr * or - wi * oi, wr * oi + wi * or);
        buf[2 * k] = super::math::sqrt((er + tr) * (er + tr) + (ei + ti) * (ei + ti));
        buf[2 * (N - k)] = super::math::sqrt((er - tr) * (er - tr) + (ei - ti) * (ei - ti));
    }
}

/// In-place forward FFT (exp(−2πi·jk/256)) of 256 interleaved (re, im) pairs: bit-reversed
/// order, then 8 radix-2 stages.
fn complex_fft(z: &mut [f32; 2 * N]) {
    for i in 0..N {
        // 256 points: the index reversed over 8 bits.
        let j = (i as u8).reverse_bits() as usize;
        if j > i {
            z.swap(2 * i, 2 * j);
            z.swap(2 * i + 1, 2 * j + 1);
        }
    }
    let mut len = 2;
    while len <= N {
        // exp(−2πij/len) = TWIDDLES[j·(512/len)] (the table is over 512 points).
        let step = 2 * N / len;
        // Blocks of `len` points: the first half (a) against the second (b). Iterators
        // rather than indices, so the loop has no bounds checks (a third of its
        // instructions on the Cortex-M4).
        for block in z.chunks_exact_mut(2 * len) {
            let (lo, hi) = block.split_at_mut(len);
            let w = TWIDDLES.chunks_exact(2 * step);
            for ((a, b), w) in lo.chunks_exact_mut(2).zip(hi.chunks_exact_mut(2)).zip(w) {
                let (wr, wi) = (w[0], w[1]);
                let (br, bi) = (b[0], b[1]);
                let (tr, ti) = (wr * br - wi * bi, wr * bi + wi * br);
                let (ar, ai) = (a[0], a[1]);
                a[0] = ar + tr;
                a[1] = ai + ti;
                b[0] = ar - tr;
                b[1] = ai - ti;
            }
        }
        len *= 2;
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// |X[k]| by the f64 DFT.
    fn dft_magnitudes(x: &[f32]) -> Vec<f64> {
        let n = x.len();
        (0..=n / 2)
            .map(|k| {
                let (mut re, mut im) = (0.0f64, 0.0f64);
                for (j, &v) in x.iter().enumerate() {
                    let a = -2.0 * std::f64::consts::PI * ((j * k) % n) as f64 / n as f64;
                    re += v as f64 * a.cos();
                    im += v as f64 * a.sin();
                }
                (re * re + im * im).sqrt()
            })
            .collect()
    }

    #[test]
    fn matches_dft() {
        let mut seed = 0x1234_5678u32;
        let mut rand = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed as f32 / u32::MAX as f32) * 2.0 - 1.0
        };
        for case in 0..6 {
            let mut x = [0.0f32; 512];
            for (i, v) in x.iter_mut().enumerate() {
                *v = match case {
                    0 => rand(),
                    1 => (i == 3) as u8 as f32,
                    2 => (0.3 * i as f32).sin(),
                    3 => (0.002 * (i * i) as f32).sin() + 1e-3 * rand(),
                    4 => 0.5 * (2.7 * i as f32).sin() + 1e-5 * rand(),
                    _ => 1.0,
                };
            }
            let exact = dft_magnitudes(&x);
            let norm = exact.iter().map(|m| m * m).sum::<f64>().sqrt() * 2f64.sqrt();
            let mut buf = x;
            magnitudes(&mut buf);
            for (k, &e) in exact.iter().enumerate() {
                let got = if k == 256 { buf[1] } else { buf[2 * k] } as f64;
                // The per-bin model of the header: u·(24|X[k]| + 36‖X‖₂/√512).
                let u = 2f64.powi(-24);
                assert!(
                    (got - e).abs() <= u * (24.0 * e + 36.0 * norm / 512f64.sqrt()),
                    "case {case} bin {k}: {got} vs {e}"
                );
            }
        }
    }
}
