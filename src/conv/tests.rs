//! Every algorithm, at every ISA this CPU runs, against the f64 reference (the public
//! integration tests in `tests/conv.rs` cover the API with the detected ISA only).

use super::*;
use alloc::vec::Vec;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Runs `layer` at `isa` and returns the max over outputs of |y − ref| / (ε·(Σ|x·w| + |b|)).
fn err_units(p: &ConvParams, shape: Nhwc, alg: Algorithm, isa: Isa, seed: u64) -> f64 {
    let mut rng = Rng(seed);
    let input: Vec<f32> = (0..shape.len().unwrap()).map(|_| rng.f()).collect();
    let filter: Vec<f32> = (0..p.filter_len().unwrap()).map(|_| rng.f()).collect();
    let bias: Vec<f32> = (0..p.out_channels).map(|_| rng.f()).collect();
    let r = reference_conv2d(p, &input, shape, &filter, Some(&bias)).unwrap();
    let layer = Conv2d::new(p, &filter, Some(&bias), alg)
        .unwrap()
        .with_isa(isa);
    let mut out = vec![f32::NAN; r.value.len()];
    layer.run(&input, shape, &mut out, Par::Seq).unwrap();
    let (lo, hi) = p.activation.bounds();
    let mut worst = 0f64;
    for (i, &y) in out.iter().enumerate() {
        let want = r.value[i].max(lo as f64).min(hi as f64);
        let e = (y as f64 - want).abs() / (f32::EPSILON as f64 * r.abs[i]);
        assert!(e.is_finite(), "{alg:?} {isa:?} output {i}: {y} vs {want}");
        worst = worst.max(e);
    }
    worst
}

#[test]
fn every_algorithm_at_every_isa() {
    let layers = [
        (
            ConvParams::new(19, 21, 3, 3).with_padding(Padding::Same),
            Nhwc::new(2, 13, 11, 19),
        ),
        (
            ConvParams::new(8, 40, 3, 3).with_padding(Padding::Explicit {
                top: 0,
                bottom: 2,
                left: 1,
                right: 0,
            }),
            Nhwc::new(1, 9, 16, 8),
        ),
        (
            ConvParams::new(33, 17, 3, 3).with_activation(Activation::Relu6),
            Nhwc::new(1, 7, 15, 33),
        ),
        (
            ConvParams::new(16, 24, 3, 3)
                .with_groups(4)
                .with_padding(Padding::Same),
            Nhwc::new(1, 10, 10, 16),
        ),
    ];
    for isa in Isa::all_runnable() {
        for (p, shape) in layers {
            let k = (9 * p.in_channels / p.groups) as f64;
            for alg in [
                Algorithm::Im2col,
                Algorithm::Winograd2x3,
                Algorithm::Winograd4x3,
                Algorithm::Winograd6x3,
            ] {
                let e = err_units(&p, shape, alg, isa, 1);
                let bound = match alg {
                    Algorithm::Im2col => k + 4.0,
                    _ => 64.0 * (k + 4.0),
                };
                assert!(
                    e <= bound,
                    "{alg:?} {isa:?} {p:?}: error {e:.1} eps-units > {bound}"
                );
            }
        }
        let dw = [
            (
                ConvParams::depthwise(37, 1, 3, 3).with_padding(Padding::Same),
                Nhwc::new(2, 12, 19, 37),
            ),
            (
                ConvParams::depthwise(24, 1, 3, 3)
                    .with_stride(2, 2)
                    .with_padding(Padding::Same),
                Nhwc::new(1, 15, 16, 24),
            ),
            (
                ConvParams::depthwise(5, 3, 5, 3)
                    .with_dilation(2, 1)
                    .with_padding(Padding::Same),
                Nhwc::new(1, 11, 9, 5),
            ),
        ];
        for (p, shape) in dw {
            let k = (p.kernel_h * p.kernel_w) as f64;
            let e = err_units(&p, shape, Algorithm::Depthwise, isa, 2);
            assert!(e <= k + 4.0, "depthwise {isa:?} {p:?}: {e}");
        }
    }
}
