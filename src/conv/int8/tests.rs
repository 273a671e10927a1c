//! Every int8 algorithm, at every depthwise ISA and with every int8 GEMM kernel this CPU
//! runs, against the direct reference: exactly equal (the public integration tests in
//! `tests/conv_int8.rs` cover the API with the detected ISA and kernel).

use super::*;
use crate::conv::Padding;
use crate::kernels::{kernels, KernelKind};
use alloc::vec;
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
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next() % (hi - lo + 1) as u64) as i32
    }
}

/// Random data for a layer: bytes (i8 or u8 bit patterns) with runs of the extremes.
fn bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| match rng.next() % 8 {
            0 => 0x80,
            1 => 0x7f,
            2 => 0xff,
            3 => 0,
            _ => rng.next() as u8,
        })
        .collect()
}

struct Layer {
    mults: Vec<i32>,
    shifts: Vec<i32>,
    bias: Vec<i32>,
    filter: Vec<i8>,
    za: i32,
    zo: i32,
}

fn layer<A: QuantInput, O: QuantOutput>(p: &ConvParams, rng: &mut Rng) -> Layer {
    let k = p.kernel_h * p.kernel_w * p.in_channels / p.groups;
    let mults = (0..p.out_channels)
        .map(|_| rng.range(1 << 30, i32::MAX))
        .collect();
    // Mostly the shifts that keep outputs inside the range for this K, some anywhere.
    let typical = -(((k as f64).log2() / 2.0) as i32 + 8);
    let shifts = (0..p.out_channels)
        .map(|_| {
            if rng.next() % 4 == 0 {
                rng.range(-31, 30)
            } else {
                typical + rng.range(-2, 2)
            }
        })
        .collect();
    let bias = (0..p.out_channels)
        .map(|_| rng.range(-40_000, 40_000))
        .collect();
    let filter = bytes(rng, p.filter_len().unwrap())
        .into_iter()
        .map(|b| b as i8)
        .collect();
    Layer {
        mults,
        shifts,
        bias,
        filter,
        za: rng.range(A::MIN, A::MAX),
        zo: rng.range(O::MIN, O::MAX),
    }
}

/// Runs `alg` with every kernel at every ISA and compares with the reference.
fn check<A: QuantInput, O: QuantOutput>(p: &ConvParams, shape: Nhwc, alg: Algorithm, seed: u64) {
    let mut rng = Rng(seed);
    let l = layer::<A, O>(p, &mut rng);
    let input: Vec<A> = bytes(&mut rng, shape.len().unwrap())
        .into_iter()
        // SAFETY: A is i8 or u8, one byte; every bit pattern is a value.
        .map(|b| unsafe { core::mem::transmute_copy::<u8, A>(&b) })
        .collect();
    let per_channel = seed % 3 != 0;
    let scale = if per_channel {
        Scale::PerChannel {
            multipliers: &l.mults,
            shifts: &l.shifts,
        }
    } else {
        Scale::PerTensor {
            multiplier: l.mults[0],
            shift: l.shifts[0],
        }
    };
    let quant = ConvQuant::new(l.za, l.zo, scale).with_output_scale(0.05);
    let bias = (seed % 5 != 0).then_some(&l.bias[..]);
    let out_len = p.output_shape(shape).unwrap().len().unwrap();
    let mut want = vec![O::MIN as u8; out_len];
    let want_o: &mut [O] =
        // SAFETY: O is one byte, every bit pattern a value; same memory, exclusive borrow.
        unsafe { core::slice::from_raw_parts_mut(want.as_mut_ptr() as *mut O, out_len) };
    reference_qconv2d(p, &quant, &input, shape, &l.filter, bias, want_o).unwrap();
    let inside = want
        .iter()
        .filter(|&&v| {
            let v = if O::MIN < 0 { v as i8 as i32 } else { v as i32 };
            v > O::MIN && v < O::MAX
        })
        .count();
    // The data exercise the arithmetic, not only the clamp.
    assert!(
        inside >= out_len / 4,
        "{p:?} seed {seed}: only {inside} of {out_len} outputs inside the range"
    );
    for info in kernels().filter(|k| k.kind == KernelKind::Int8 && k.runnable) {
        let kern = Kernel::by_name(info.name).unwrap();
        for isa in QIsa::all_runnable() {
            let layer = QConv2d::<A, O>::with_kernel(&kern, p, &quant, &l.filter, bias, alg)
                .unwrap()
                .with_isa(isa);
            let mut got = vec![0u8; out_len];
            // Poison: a value the output never has unless written (checked below).
            got.fill(0x5a);
            let got_o: &mut [O] =
                // SAFETY: as above.
                unsafe { core::slice::from_raw_parts_mut(got.as_mut_ptr() as *mut O, out_len) };
            layer.run(&input, shape, got_o, Par::Seq).unwrap();
            if let Some(i) = (0..out_len).find(|&i| got[i] != want[i]) {
                panic!(
                    "{alg:?} {} {isa:?} {p:?} {shape:?} seed {seed}: output {i} is {} \
                     (reference {})",
                    info.name, got[i], want[i]
                );
            }
            // A second pass with another poison value: every element is written.
            got.fill(0xa5);
            let got_o: &mut [O] =
                // SAFETY: as above.
                unsafe { core::slice::from_raw_parts_mut(got.as_mut_ptr() as *mut O, out_len) };
            layer.run(&input, shape, got_o, Par::Seq).unwrap();
            assert_eq!(
                got, want,
                "{alg:?} {} {isa:?} {p:?}: unwritten outputs",
                info.name
            );
            if alg != Algorithm::Depthwise {
                break; // only the depthwise path has ISA variants
            }
        }
    }
}

#[test]
fn im2col_every_kernel() {
    let layers = [
        (
            ConvParams::new(19, 21, 3, 3).with_padding(Padding::Same),
            Nhwc::new(2, 9, 11, 19),
        ),
        (
            ConvParams::new(8, 40, 3, 2)
                .with_padding(Padding::Explicit {
                    top: 0,
                    bottom: 2,
                    left: 1,
                    right: 0,
                })
                .with_stride(2, 1),
            Nhwc::new(1, 9, 16, 8),
        ),
        (
            ConvParams::new(33, 17, 3, 3)
                .with_dilation(2, 1)
                .with_activation(Activation::Relu6),
            Nhwc::new(1, 11, 15, 33),
        ),
        (
            ConvParams::new(16, 24, 3, 3)
                .with_groups(4)
                .with_padding(Padding::Same)
                .with_activation(Activation::Relu),
            Nhwc::new(1, 10, 10, 16),
        ),
        // 1×1 stride 1: the plain-GEMM path (groups too).
        (ConvParams::new(37, 45, 1, 1), Nhwc::new(2, 7, 9, 37)),
        (
            ConvParams::new(12, 10, 1, 1).with_groups(2),
            Nhwc::new(1, 5, 6, 12),
        ),
        // 1×1 with stride 2 or padding: patches.
        (
            ConvParams::new(6, 7, 1, 1).with_stride(2, 2),
            Nhwc::new(1, 9, 8, 6),
        ),
    ];
    for (i, (p, shape)) in layers.into_iter().enumerate() {
        check::<i8, i8>(&p, shape, Algorithm::Im2col, 10 + i as u64);
        check::<u8, u8>(&p, shape, Algorithm::Im2col, 20 + i as u64);
        check::<u8, i8>(&p, shape, Algorithm::Im2col, 30 + i as u64);
    }
}

#[test]
fn depthwise_every_isa_and_kernel() {
    let layers = [
        // 3×3 multiplier 1, channel counts around the 16/8/1 lane splits.
        (
            ConvParams::depthwise(37, 1, 3, 3).with_padding(Padding::Same),
            Nhwc::new(2, 12, 19, 37),
        ),
        (
            ConvParams::depthwise(24, 1, 3, 3)
                .with_stride(2, 2)
                .with_padding(Padding::Same)
                .with_activation(Activation::Relu6),
            Nhwc::new(1, 15, 16, 24),
        ),
        (
            ConvParams::depthwise(16, 1, 3, 3).with_padding(Padding::Valid),
            Nhwc::new(1, 6, 7, 16),
        ),
        // Multiplier 3, dilation, a 5×3 kernel.
        (
            ConvParams::depthwise(5, 3, 5, 3)
                .with_dilation(2, 1)
                .with_padding(Padding::Same),
            Nhwc::new(1, 11, 9, 5),
        ),
        // Multiplier 2 over 17 channels (a 16-lane vector and a scalar tail).
        (
            ConvParams::depthwise(17, 2, 3, 3)
                .with_stride(1, 2)
                .with_padding(Padding::Explicit {
                    top: 2,
                    bottom: 0,
                    left: 0,
                    right: 3,
                }),
            Nhwc::new(1, 7, 13, 17),
        ),
        // No interior column (the image is narrower than the kernel's window + padding).
        (
            ConvParams::depthwise(9, 1, 3, 5).with_padding(Padding::Same),
            Nhwc::new(1, 4, 3, 9),
        ),
        // One channel, a wide row of interior pixels.
        (
            ConvParams::depthwise(1, 1, 3, 3).with_padding(Padding::Same),
            Nhwc::new(1, 3, 23, 1),
        ),
    ];
    for (i, (p, shape)) in layers.into_iter().enumerate() {
        check::<i8, i8>(&p, shape, Algorithm::Depthwise, 40 + i as u64);
        check::<u8, u8>(&p, shape, Algorithm::Depthwise, 50 + i as u64);
        check::<i8, u8>(&p, shape, Algorithm::Depthwise, 60 + i as u64);
    }
}

#[test]
fn activation_ranges_match_tflite() {
    // CalculateActivationRangeQuantized: zo + round(f / s) with f32 division.
    assert_eq!(
        quantized_activation_range(Activation::None, 0.1, 3).unwrap(),
        (i32::MIN, i32::MAX)
    );
    assert_eq!(
        quantized_activation_range(Activation::Relu, 0.1, -128).unwrap(),
        (-128, i32::MAX)
    );
    // 6 / 0.0235 = 255.3… → 255; zo −128 → 127.
    assert_eq!(
        quantized_activation_range(Activation::Relu6, 0.0235, -128).unwrap(),
        (-128, 127)
    );
    // 6 / 0.048 = 125.00000… in f32 (0.048f32 is 0.04800000041…): 124.99999 → 125.
    assert_eq!(
        quantized_activation_range(Activation::Relu6, 0.048, 0).unwrap(),
        (0, 125)
    );
    // Half away from zero: −1 / 0.4 = −2.5 → −3, 1 / 0.4 = 2.5 → 3.
    assert_eq!(
        quantized_activation_range(
            Activation::Clamp {
                min: -1.0,
                max: 1.0
            },
            0.4,
            10
        )
        .unwrap(),
        (7, 13)
    );
    assert_eq!(
        quantized_activation_range(
            Activation::Clamp {
                min: f32::NEG_INFINITY,
                max: 0.0
            },
            1.0,
            0
        )
        .unwrap(),
        (i32::MIN, 0)
    );
    assert!(quantized_activation_range(Activation::Relu, 0.0, 0).is_err());
    assert!(quantized_activation_range(Activation::Relu6, 1e-30, 0).is_err());
    assert_eq!(round_half_away(2.5), 3.0);
    assert_eq!(round_half_away(-2.5), -3.0);
    assert_eq!(round_half_away(2.499_999_8), 2.0);
    assert_eq!(round_half_away(-0.4), 0.0);
    assert_eq!(round_half_away(1e10), 1e10);
}
