//! int8 convolution against the direct reference (`edgemm::conv::reference_qconv2d`, TFLite's
//! reference loops with i64 sums and the scalar reference requantization): every algorithm
//! must be exactly equal, element by element. Every output element starts as a value the
//! layer never writes by accident (two different fills), so all must be written.
//!
//! Also: one small layer checked against TFLite's semantics worked out by hand, the K limit
//! at its exact boundary, extremes, the pointwise path against a requantized `qgemm`, every
//! int8 kernel, threads, and the errors.

use edgemm::conv::{
    choose_algorithm_int8, qconv2d, quantize_conv_scales, quantized_activation_range,
    reference_qconv2d, Activation, Algorithm, ConvParams, ConvQuant, Nhwc, Padding, QConv2d,
};
use edgemm::{
    qgemm, Error, Kernel, KernelKind, MatMut, MatRef, Par, QuantInput, QuantOutput, Requantize,
    Requantized, Scale,
};
use proptest::prelude::*;

/// splitmix64 test data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next_u64() % (hi as i64 - lo as i64 + 1) as u64) as i32
    }
    /// A byte, often one of the extremes.
    fn byte(&mut self) -> u8 {
        match self.next_u64() % 8 {
            0 => 0x80,
            1 => 0x7f,
            2 => 0xff,
            3 => 0,
            _ => self.next_u64() as u8,
        }
    }
}

/// i8 or u8 from a bit pattern.
trait Byte: QuantInput + QuantOutput + Default + PartialEq + core::fmt::Debug {
    fn from_byte(b: u8) -> Self;
    const MIN_I: i32;
    const MAX_I: i32;
}

impl Byte for i8 {
    fn from_byte(b: u8) -> Self {
        b as i8
    }
    const MIN_I: i32 = -128;
    const MAX_I: i32 = 127;
}

impl Byte for u8 {
    fn from_byte(b: u8) -> Self {
        b
    }
    const MIN_I: i32 = 0;
    const MAX_I: i32 = 255;
}

/// One random int8 test layer; the data come from `seed`.
#[derive(Clone, Debug)]
struct Case {
    params: ConvParams,
    shape: Nhwc,
    seed: u64,
    per_channel: bool,
    bias: bool,
    /// 0: random zero points; 1: both at their type's minimum; 2: at the maximum.
    zp_mode: u8,
    /// The output scale for the activation (when it is not None).
    output_scale: f32,
}

/// Quantization and data of a case.
struct Data<A, O> {
    input: Vec<A>,
    filter: Vec<i8>,
    bias: Vec<i32>,
    mults: Vec<i32>,
    shifts: Vec<i32>,
    za: i32,
    zo: i32,
    _o: core::marker::PhantomData<O>,
}

fn data<A: Byte, O: Byte>(c: &Case) -> Data<A, O> {
    let mut rng = Rng(c.seed);
    let p = &c.params;
    let k = p.kernel_h * p.kernel_w * p.in_channels / p.groups;
    // Shifts that keep most outputs inside the range for this K, some anywhere in −31..=30.
    let typical = -(((k as f64).log2() / 2.0) as i32 + 8);
    let mults = (0..p.out_channels)
        .map(|_| match rng.next_u64() % 8 {
            0 => 1 << 30,
            1 => i32::MAX,
            _ => rng.range(1 << 30, i32::MAX),
        })
        .collect();
    let shifts = (0..p.out_channels)
        .map(|_| {
            if rng.next_u64() % 4 == 0 {
                rng.range(-31, 30)
            } else {
                (typical + rng.range(-2, 2)).clamp(-31, 30)
            }
        })
        .collect();
    let (za, zo) = match c.zp_mode {
        1 => (A::MIN_I, O::MIN_I),
        2 => (A::MAX_I, O::MAX_I),
        _ => (rng.range(A::MIN_I, A::MAX_I), rng.range(O::MIN_I, O::MAX_I)),
    };
    Data {
        input: (0..c.shape.len().unwrap())
            .map(|_| A::from_byte(rng.byte()))
            .collect(),
        filter: (0..p.filter_len().unwrap())
            .map(|_| rng.byte() as i8)
            .collect(),
        bias: (0..p.out_channels)
            .map(|_| rng.range(-100_000, 100_000))
            .collect(),
        mults,
        shifts,
        za,
        zo,
        _o: core::marker::PhantomData,
    }
}

impl<A, O> Data<A, O> {
    fn quant(&self, c: &Case) -> ConvQuant<'_> {
        let scale = if c.per_channel {
            Scale::PerChannel {
                multipliers: &self.mults,
                shifts: &self.shifts,
            }
        } else {
            Scale::PerTensor {
                multiplier: self.mults[0],
                shift: self.shifts[0],
            }
        };
        ConvQuant::new(self.za, self.zo, scale).with_output_scale(c.output_scale)
    }
    fn bias(&self, c: &Case) -> Option<&[i32]> {
        c.bias.then_some(&self.bias[..])
    }
}

/// The reference output of a case.
fn reference<A: Byte, O: Byte>(c: &Case, d: &Data<A, O>) -> Result<Vec<O>, Error> {
    let len = c.params.output_shape(c.shape)?.len()?;
    let mut want = vec![O::default(); len];
    reference_qconv2d(
        &c.params,
        &d.quant(c),
        &d.input,
        c.shape,
        &d.filter,
        d.bias(c),
        &mut want,
    )?;
    Ok(want)
}

/// Runs a prepared layer twice (outputs filled with two different values first) and checks
/// both results against `want`.
fn check_layer<A: Byte, O: Byte>(
    what: &str,
    layer: &QConv2d<A, O>,
    input: &[A],
    shape: Nhwc,
    want: &[O],
    par: Par,
) -> Result<(), String> {
    for fill in [0x5au8, 0xa5] {
        let mut got = vec![O::from_byte(fill); want.len()];
        layer
            .run(input, shape, &mut got, par)
            .map_err(|e| format!("{what}: {e}"))?;
        if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
            return Err(format!(
                "{what} ({}): output {i} of {} is {:?}, reference {:?}",
                layer.kernel_name(),
                want.len(),
                got[i],
                want[i]
            ));
        }
    }
    Ok(())
}

/// Every algorithm that can run the case, against the reference.
fn check_all<A: Byte, O: Byte>(c: &Case) -> Result<(), String> {
    let d = data::<A, O>(c);
    let want = reference(c, &d).map_err(|e| format!("reference: {e}"))?;
    let mut algs = vec![Algorithm::Auto, Algorithm::Direct, Algorithm::Im2col];
    if c.params.is_depthwise() {
        algs.push(Algorithm::Depthwise);
    }
    for alg in algs {
        let layer = QConv2d::<A, O>::new(&c.params, &d.quant(c), &d.filter, d.bias(c), alg)
            .map_err(|e| format!("{alg:?}: {e}"))?;
        check_layer(
            &format!("{alg:?}"),
            &layer,
            &d.input,
            c.shape,
            &want,
            Par::Seq,
        )?;
    }
    Ok(())
}

/// `check_all` for the input/output type pair `types` (i8/i8, u8/u8, i8/u8, u8/i8).
fn check_types(c: &Case, types: u8) -> Result<(), String> {
    match types % 4 {
        0 => check_all::<i8, i8>(c),
        1 => check_all::<u8, u8>(c),
        2 => check_all::<i8, u8>(c),
        _ => check_all::<u8, i8>(c),
    }
}

fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![
        Just(Padding::Valid),
        Just(Padding::Same),
        (0usize..4, 0usize..4, 0usize..4, 0usize..4).prop_map(|(t, b, l, r)| {
            Padding::Explicit {
                top: t,
                bottom: b,
                left: l,
                right: r,
            }
        }),
    ]
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::None),
        Just(Activation::Relu),
        Just(Activation::Relu6),
        (-3.0f32..0.0, 0.0f32..3.0).prop_map(|(min, max)| Activation::Clamp { min, max }),
    ]
}

prop_compose! {
    fn any_case()(
        groups in 1usize..4, cin_g in 1usize..7, cout_g in 1usize..7,
        kh in 1usize..5, kw in 1usize..5, sh in 1usize..4, sw in 1usize..4,
        dh in 1usize..3, dw in 1usize..3, padding in padding(), activation in activation(),
        n in 1usize..3, h in 1usize..11, w in 1usize..11, seed in any::<u64>(),
        per_channel in any::<bool>(), bias in any::<bool>(), zp_mode in 0u8..4,
        output_scale in 0.01f32..0.2,
    ) -> Case {
        Case {
            params: ConvParams::new(groups * cin_g, groups * cout_g, kh, kw)
                .with_groups(groups)
                .with_stride(sh, sw)
                .with_dilation(dh, dw)
                .with_padding(padding)
                .with_activation(activation),
            shape: Nhwc::new(n, h, w, groups * cin_g),
            seed, per_channel, bias, zp_mode: zp_mode % 3, output_scale,
        }
    }
}

prop_compose! {
    fn depthwise_case()(
        channels in 1usize..40, mult in 1usize..4, kh in 1usize..6, kw in 1usize..6,
        sh in 1usize..3, sw in 1usize..3, dh in 1usize..3, dw in 1usize..3,
        padding in padding(), activation in activation(),
        n in 1usize..3, h in 1usize..14, w in 1usize..24, seed in any::<u64>(),
        per_channel in any::<bool>(), bias in any::<bool>(), zp_mode in 0u8..4,
        output_scale in 0.01f32..0.2,
    ) -> Case {
        Case {
            params: ConvParams::depthwise(channels, mult, kh, kw)
                .with_stride(sh, sw)
                .with_dilation(dh, dw)
                .with_padding(padding)
                .with_activation(activation),
            shape: Nhwc::new(n, h, w, channels),
            seed, per_channel, bias, zp_mode: zp_mode % 3, output_scale,
        }
    }
}

/// Runs the case unless the input is smaller than the kernel (that error is tested apart).
fn check_or_too_small(c: &Case, types: u8) -> Result<(), TestCaseError> {
    match c.params.output_shape(c.shape) {
        Err(Error::ConvInputTooSmall { .. }) => return Ok(()),
        Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        Ok(_) => {}
    }
    check_types(c, types).map_err(TestCaseError::fail)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_layers_match_reference(c in any_case(), types in any::<u8>()) {
        check_or_too_small(&c, types)?;
    }

    #[test]
    fn random_depthwise_layers_match_reference(c in depthwise_case(), types in any::<u8>()) {
        check_or_too_small(&c, types)?;
    }
}

/// One small layer against TFLite's semantics, worked out by hand.
///
/// Input 1×3×3×2 (i8), za = −1 (TFLite's input_offset = +1), so x − za = x + 1:
///
/// ```text
///            x (c0, c1)                      x − za
/// row 0: (1, 2)   (3, −4)  (5, 6)      (2, 3)    (4, −3)  (6, 7)
/// row 1: (−7, 8)  (9, 10)  (−11, 12)   (−6, 9)   (10, 11) (−10, 13)
/// row 2: (13, −14)(15, 16) (−128, 127) (14, −13) (16, 17) (−127, 128)
/// ```
///
/// Filter 2×2, OHWI, two output channels, `[ky][kx] = (w_c0, w_c1)`:
/// o0 = [[(1, 0), (0, 1)], [(−1, 0), (2, −1)]], o1 = [[(1, 1), (−2, 0)], [(0, 3), (1, −1)]].
/// Bias (10, −20). SAME padding with a 2×2 kernel at stride 1 on 3×3: output 3×3, total
/// padding 1 per axis, all of it at the bottom/right (TFLite's odd element goes there), so
/// the last row and column of outputs see only the taps inside the image.
///
/// Per-channel scale: o0 multiplier 2^30 with shift −1 (0.5·2^−1 = 0.25), o1 multiplier
/// 1 610 612 736 = 0.75·2^31 with shift 0 (0.75). Output zero point 3. ReLU6 with output
/// scale 0.3: act_min = 3 + round(0 / 0.3) = 3, act_max = 3 + round(6 / 0.3) = 3 + 20 = 23
/// (6 / 0.3 in f32 is 20.0).
///
/// MultiplyByQuantizedMultiplier(x, M, s) = RoundingDivideByPOT(SRDHM(x·2^max(s,0), M),
/// max(−s, 0)), SRDHM(a, b) = (a·b + nudge) / 2^31 truncated, nudge 2^30 (or 1 − 2^30 when
/// a·b < 0); RoundingDivideByPOT rounds half away from zero.
///
/// ```text
/// out (0,0): taps (0,0),(0,1),(1,0),(1,1) all inside.
///   o0: 2·1 + 3·0 + 4·0 + (−3)·1 + (−6)·(−1) + 9·0 + 10·2 + 11·(−1) = 14; +10 = 24;
///       SRDHM(24, 2^30) = 12; RDBPOT(12, 1) = 6; +3 = 9.
///   o1: (2+3) + (4·(−2)) + (9·3) + (10 − 11) = 5 − 8 + 27 − 1 = 23; −20 = 3;
///       SRDHM(3, 0.75·2^31) = (4 831 838 208 + 2^30) / 2^31 = 2.75 → 2; +3 = 5.
/// out (0,2): column 3 is padding: taps (0,0) = x[0][2], (1,0) = x[1][2] only.
///   o0: 6·1 + 7·0 + (−10)·(−1) + 13·0 = 16; +10 = 26; SRDHM → 13; RDBPOT(13, 1) = 6.5
///       → 7; +3 = 10.
///   o1: (6 + 7) + (−10·0 + 13·3) = 52; −20 = 32; SRDHM(32, 0.75·2^31) = 24.5 → 24; +3 =
///       27 → clamped to 23.
/// out (2,2): only tap (0,0) = x[2][2] = (−127, 128) after the offset.
///   o0: −127; +10 = −117; SRDHM(−117, 2^30): (−117·2^30 + 1 − 2^30) / 2^31 = −58.99…
///       → −58; RDBPOT(−58, 1) = −29; +3 = −26 → clamped to 3.
///   o1: −127 + 128 = 1; −20 = −19; SRDHM(−19, 0.75·2^31) = −14.75 → −14; +3 = −11 → 3.
/// out (1,1): taps x[1][1], x[1][2], x[2][1], x[2][2].
///   o0: 10 + 13 − 16 + 2·(−127) − 128 = −375; +10 = −365; SRDHM → −182.5 → −182;
///       RDBPOT(−182, 1) = −91; +3 = −88 → 3.
/// ```
///
/// The other outputs, the same way (acc, acc + bias, MultiplyByQuantizedMultiplier, y):
///
/// ```text
///        o0                         o1
/// (0,1): −32, −22,  −6 → 3          −1,  −21,  −16 → 3
/// (1,0):   6,  16,   4 → 7         −57,  −77,  −58 → 3
/// (1,2): 117, 127,  32 → 23        387,  367,  275 → 23
/// (2,0):  31,  41,  11 → 14        −31,  −51,  −38 → 3
/// (2,1): 144, 154,  39 → 23        287,  267,  200 → 23
/// (1,1):                          −163, −183, −137 → 3
/// ```
#[test]
fn hand_checked_tflite_layer() {
    let input: [i8; 18] = [
        1, 2, 3, -4, 5, 6, //
        -7, 8, 9, 10, -11, 12, //
        13, -14, 15, 16, -128, 127,
    ];
    let filter: [i8; 16] = [
        1, 0, 0, 1, -1, 0, 2, -1, // o0
        1, 1, -2, 0, 0, 3, 1, -1, // o1
    ];
    let bias = [10, -20];
    let mults = [1 << 30, 1_610_612_736];
    let shifts = [-1, 0];
    let params = ConvParams::new(2, 2, 2, 2)
        .with_padding(Padding::Same)
        .with_activation(Activation::Relu6);
    let quant = ConvQuant::new(
        -1,
        3,
        Scale::PerChannel {
            multipliers: &mults,
            shifts: &shifts,
        },
    )
    .with_output_scale(0.3);
    let shape = Nhwc::new(1, 3, 3, 2);
    #[rustfmt::skip]
    let want: [i8; 18] = [
        9, 5,   3, 3,   10, 23,
        7, 3,   3, 3,   23, 23,
        14, 3,  23, 23, 3, 3,
    ];
    let mut out = [0i8; 18];
    reference_qconv2d(
        &params,
        &quant,
        &input,
        shape,
        &filter,
        Some(&bias),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, want, "reference");
    for alg in [Algorithm::Direct, Algorithm::Im2col, Algorithm::Auto] {
        let mut out = [0i8; 18];
        qconv2d(
            &params,
            &quant,
            &input,
            shape,
            &filter,
            Some(&bias),
            &mut out,
            alg,
            Par::Seq,
        )
        .unwrap();
        assert_eq!(out, want, "{alg:?}");
    }
    let layer: QConv2d =
        QConv2d::new(&params, &quant, &filter, Some(&bias), Algorithm::Auto).unwrap();
    assert_eq!(layer.output_clamp(), (3, 23));
}

/// A depthwise layer by hand: 1×2×3×2 input (u8, za = 128), multiplier 2, 1×2 kernel,
/// VALID, per-tensor scale 0.5 (2^30, shift 0), zo = 200, no activation, u8 output.
///
/// ```text
/// x − za: row 0: (0, 10) (−128, 127) (5, −5)     row 1: (1, 2) (3, 4) (−6, 8)
/// output channel o = c·2 + j reads input channel c; w[o] = [w at kx 0, w at kx 1]:
/// w0 = [1, 2], w1 = [−1, 3], w2 = [4, −128], w3 = [127, 0]; bias [0, 1, −2, 3]
/// out (0,0): c0 taps 0, −128: o0 = 0·1 + (−128)·2 = −256 → ·0.5 = −128 → +200 = 72
///                              o1 = 0·(−1) + (−128)·3 + 1 = −383 → −191.5 → −191 (SRDHM
///                              rounds the tie toward +∞) → 9
///            c1 taps 10, 127: o2 = 40 − 16 256 − 2 = −16 218 → −8 109 → −7 909 → 0 (u8)
///                              o3 = 1 270 + 0 + 3 = 1 273 → 636.5 → 637 → 837 → 255
/// ```
#[test]
fn hand_checked_depthwise() {
    let x: [u8; 12] = [128, 138, 0, 255, 133, 123, 129, 130, 131, 132, 122, 136];
    let filter: [i8; 8] = [1, 2, -1, 3, 4, -128, 127, 0];
    let bias = [0, 1, -2, 3];
    let params = ConvParams::depthwise(2, 2, 1, 2);
    let quant = ConvQuant::new(
        128,
        200,
        Scale::PerTensor {
            multiplier: 1 << 30,
            shift: 0,
        },
    );
    let shape = Nhwc::new(1, 2, 3, 2);
    for alg in [Algorithm::Direct, Algorithm::Im2col, Algorithm::Depthwise] {
        let mut out = [0u8; 16];
        qconv2d(
            &params,
            &quant,
            &x,
            shape,
            &filter,
            Some(&bias),
            &mut out,
            alg,
            Par::Seq,
        )
        .unwrap();
        assert_eq!(&out[..4], &[72, 9, 0, 255], "{alg:?}");
    }
}

/// Whole-tensor extremes: every input and weight at −128 or 127, zero points at the ends
/// of their ranges, all algorithms.
#[test]
fn extreme_data_and_zero_points() {
    let p = ConvParams::new(13, 9, 3, 3).with_padding(Padding::Same);
    let dw = ConvParams::depthwise(21, 2, 3, 3)
        .with_padding(Padding::Same)
        .with_stride(2, 1);
    for (params, shape) in [(p, Nhwc::new(2, 6, 7, 13)), (dw, Nhwc::new(1, 9, 18, 21))] {
        for x in [-128i8, 127] {
            for wv in [-128i8, 127] {
                for (za, zo) in [(-128, -128), (127, 127), (-128, 127), (0, 0)] {
                    let input = vec![x; shape.len().unwrap()];
                    let filter = vec![wv; params.filter_len().unwrap()];
                    let bias = vec![-7; params.out_channels];
                    let k = 9 * params.in_channels / params.groups;
                    let shift = -(((k as f64).log2() / 2.0) as i32 + 8);
                    let quant = ConvQuant::new(
                        za,
                        zo,
                        Scale::PerTensor {
                            multiplier: 1_500_000_000,
                            shift,
                        },
                    );
                    let len = params.output_shape(shape).unwrap().len().unwrap();
                    let mut want = vec![0i8; len];
                    reference_qconv2d(
                        &params,
                        &quant,
                        &input,
                        shape,
                        &filter,
                        Some(&bias),
                        &mut want,
                    )
                    .unwrap();
                    let mut algs = vec![Algorithm::Im2col];
                    if params.is_depthwise() {
                        algs.push(Algorithm::Depthwise);
                    }
                    for alg in algs {
                        let layer: QConv2d =
                            QConv2d::new(&params, &quant, &filter, Some(&bias), alg).unwrap();
                        check_layer(
                            &format!("{alg:?} x {x} w {wv} za {za} zo {zo}"),
                            &layer,
                            &input,
                            shape,
                            &want,
                            Par::Seq,
                        )
                        .unwrap();
                    }
                }
            }
        }
    }
}

/// K at the exactness limit: with za = 127 and inputs −128 (|x − za| = 255) and weights
/// −128, each product is 32 640 and K = 65 793 = ⌊(2^31 − 1) / 32 640⌋ products sum to
/// 2 147 483 520; the bias 127 takes the accumulator to exactly i32::MAX. One more input
/// channel is refused.
#[test]
fn k_at_the_exactness_limit() {
    // 3·7·3133 = 65 793.
    let params = ConvParams::new(3133, 2, 3, 7);
    let shape = Nhwc::new(1, 3, 7, 3133);
    let input = vec![-128i8; shape.len().unwrap()];
    let filter = vec![-128i8; params.filter_len().unwrap()];
    let bias = [127, -(1 << 30)];
    assert_eq!(edgemm::max_exact_k::<i8>(127, 0), 65_793);
    // Multiplier 2^30 with shift −30: 2^−31 per unit, so i32::MAX → 1, 2^31 − 2^30 − … → 0.
    let quant = ConvQuant::new(
        127,
        0,
        Scale::PerTensor {
            multiplier: 1 << 30,
            shift: -30,
        },
    );
    let mut want = [0i8; 2];
    reference_qconv2d(
        &params,
        &quant,
        &input,
        shape,
        &filter,
        Some(&bias),
        &mut want,
    )
    .unwrap();
    // i32::MAX · 2^−31 = 0.99999… → 1; (2^31 − 128 − 2^30) · 2^−31 = 0.49999… → 0.
    assert_eq!(want, [1, 0]);
    for alg in [Algorithm::Im2col, Algorithm::Direct] {
        let layer: QConv2d = QConv2d::new(&params, &quant, &filter, Some(&bias), alg).unwrap();
        check_layer(&format!("{alg:?}"), &layer, &input, shape, &want, Par::Seq).unwrap();
    }
    let params = ConvParams::new(3134, 2, 3, 7);
    let filter = vec![0i8; params.filter_len().unwrap()];
    let e = QConv2d::<i8, i8>::new(&params, &quant, &filter, None, Algorithm::Im2col).unwrap_err();
    assert!(
        matches!(
            e,
            Error::KTooLarge {
                k: 65_814,
                max: 65_793
            }
        ),
        "{e:?}"
    );
}

/// A 1×1 stride-1 layer is a plain GEMM: the same numbers as a requantized `qgemm` on the
/// input viewed as a (N·H·W) × C matrix and the filter as a C × Cout matrix.
#[test]
fn pointwise_equals_requantized_qgemm() {
    let (n, h, w, cin, cout) = (2, 5, 7, 19, 23);
    let mut rng = Rng(7);
    let input: Vec<u8> = (0..n * h * w * cin).map(|_| rng.byte()).collect();
    let filter: Vec<i8> = (0..cout * cin).map(|_| rng.byte() as i8).collect();
    let bias: Vec<i32> = (0..cout).map(|_| rng.range(-5000, 5000)).collect();
    let mults: Vec<i32> = (0..cout).map(|_| rng.range(1 << 30, i32::MAX)).collect();
    let shifts: Vec<i32> = (0..cout).map(|_| rng.range(-12, -6)).collect();
    let scale = Scale::PerChannel {
        multipliers: &mults,
        shifts: &shifts,
    };
    let (za, zo) = (131, -5);
    let mut conv = vec![0i8; n * h * w * cout];
    let params = ConvParams::new(cin, cout, 1, 1);
    qconv2d(
        &params,
        &ConvQuant::new(za, zo, scale),
        &input,
        Nhwc::new(n, h, w, cin),
        &filter,
        Some(&bias),
        &mut conv,
        Algorithm::Auto,
        Par::Seq,
    )
    .unwrap();
    let mut gemm = vec![0i8; n * h * w * cout];
    let rq = Requantize::new(scale, zo).with_bias(&bias);
    qgemm(
        MatRef::row_major(&input, n * h * w, cin).unwrap(),
        za,
        // B[i][o] = filter[o·cin + i]: the OHWI filter as a column-major cin × cout matrix.
        MatRef::new(&filter, cin, cout, 1, cin as isize).unwrap(),
        0,
        Requantized(&rq, MatMut::row_major(&mut gemm, n * h * w, cout).unwrap()),
        Par::Seq,
    )
    .unwrap();
    assert_eq!(conv, gemm);
}

/// Every int8 kernel this CPU runs computes im2col and depthwise layers exactly.
#[test]
fn every_int8_kernel() {
    let cases = [
        Case {
            params: ConvParams::new(17, 35, 3, 3)
                .with_padding(Padding::Same)
                .with_stride(2, 1),
            shape: Nhwc::new(2, 9, 10, 17),
            seed: 3,
            per_channel: true,
            bias: true,
            zp_mode: 0,
            output_scale: 0.1,
        },
        Case {
            params: ConvParams::depthwise(33, 1, 3, 3).with_padding(Padding::Same),
            shape: Nhwc::new(1, 8, 21, 33),
            seed: 4,
            per_channel: true,
            bias: true,
            zp_mode: 0,
            output_scale: 0.1,
        },
    ];
    let mut ran = 0;
    for info in edgemm::kernels() {
        if info.kind != KernelKind::Int8 {
            continue;
        }
        if !info.runnable {
            println!("SKIPPED {}: this CPU lacks {}", info.name, info.isa);
            continue;
        }
        let kernel = Kernel::by_name(info.name).unwrap();
        for c in &cases {
            let d = data::<i8, i8>(c);
            let want = reference(c, &d).unwrap();
            let mut algs = vec![Algorithm::Im2col];
            if c.params.is_depthwise() {
                algs.push(Algorithm::Depthwise);
            }
            for alg in algs {
                let layer = QConv2d::<i8, i8>::with_kernel(
                    &kernel,
                    &c.params,
                    &d.quant(c),
                    &d.filter,
                    d.bias(c),
                    alg,
                )
                .unwrap();
                assert_eq!(layer.kernel_name(), info.name);
                check_layer(
                    &format!("{alg:?}"),
                    &layer,
                    &d.input,
                    c.shape,
                    &want,
                    Par::Seq,
                )
                .unwrap();
            }
        }
        ran += 1;
    }
    assert!(ran > 0, "no int8 kernel ran");
    // An f32 kernel is refused.
    let f32_kernel = edgemm::kernels()
        .find(|k| k.kind == KernelKind::F32 && k.runnable)
        .unwrap();
    let e = QConv2d::<i8, i8>::with_kernel(
        &Kernel::by_name(f32_kernel.name).unwrap(),
        &cases[0].params,
        &ConvQuant::new(
            0,
            0,
            Scale::PerTensor {
                multiplier: 1 << 30,
                shift: -8,
            },
        ),
        &vec![0; cases[0].params.filter_len().unwrap()],
        None,
        Algorithm::Im2col,
    )
    .unwrap_err();
    assert!(matches!(e, Error::WrongKernelKind { .. }), "{e:?}");
}

/// Layers large enough to be split across threads give the same bytes as one thread.
#[test]
fn threads_give_the_same_result() {
    let cases = [
        Case {
            params: ConvParams::new(32, 64, 3, 3).with_padding(Padding::Same),
            shape: Nhwc::new(1, 40, 40, 32),
            seed: 11,
            per_channel: true,
            bias: true,
            zp_mode: 0,
            output_scale: 0.1,
        },
        Case {
            params: ConvParams::depthwise(64, 1, 3, 3).with_padding(Padding::Same),
            shape: Nhwc::new(1, 64, 64, 64),
            seed: 12,
            per_channel: true,
            bias: true,
            zp_mode: 0,
            output_scale: 0.1,
        },
        // 1×1: the plain-GEMM path, blocks of rows across threads.
        Case {
            params: ConvParams::new(64, 96, 1, 1),
            shape: Nhwc::new(2, 32, 40, 64),
            seed: 13,
            per_channel: false,
            bias: true,
            zp_mode: 0,
            output_scale: 0.1,
        },
    ];
    for c in &cases {
        let d = data::<i8, i8>(c);
        let want = reference(c, &d).unwrap();
        let layer = QConv2d::<i8, i8>::new(
            &c.params,
            &d.quant(c),
            &d.filter,
            d.bias(c),
            Algorithm::Auto,
        )
        .unwrap();
        for par in [Par::Seq, Par::Threads(2), Par::Threads(3)] {
            check_layer(&format!("{par:?}"), &layer, &d.input, c.shape, &want, par).unwrap();
        }
    }
}

/// One prepared layer serves inputs of several sizes and batches.
#[test]
fn a_prepared_layer_serves_many_shapes() {
    let base = Case {
        params: ConvParams::new(6, 10, 3, 3)
            .with_padding(Padding::Same)
            .with_stride(2, 2),
        shape: Nhwc::new(1, 1, 1, 6),
        seed: 21,
        per_channel: true,
        bias: true,
        zp_mode: 0,
        output_scale: 0.1,
    };
    let d = data::<i8, u8>(&base);
    let quant = d.quant(&base);
    for alg in [Algorithm::Im2col, Algorithm::Direct] {
        let layer =
            QConv2d::<i8, u8>::new(&base.params, &quant, &d.filter, d.bias(&base), alg).unwrap();
        for (n, h, w) in [(1, 1, 1), (3, 5, 4), (1, 17, 9), (2, 2, 30)] {
            let shape = Nhwc::new(n, h, w, 6);
            let mut rng = Rng(n as u64 * 100 + h as u64);
            let input: Vec<i8> = (0..shape.len().unwrap())
                .map(|_| rng.byte() as i8)
                .collect();
            let mut want = vec![0u8; layer.output_shape(shape).unwrap().len().unwrap()];
            reference_qconv2d(
                &base.params,
                &quant,
                &input,
                shape,
                &d.filter,
                d.bias(&base),
                &mut want,
            )
            .unwrap();
            check_layer(
                &format!("{alg:?} {shape:?}"),
                &layer,
                &input,
                shape,
                &want,
                Par::Seq,
            )
            .unwrap();
        }
    }
}

#[test]
fn scales_activation_and_auto() {
    // QuantizeMultiplier(0.5·0.25/0.125 = 1.0) = (2^30, 1). With 0.001 as f32
    // (0.0010000000475), 0.5·0.001/0.125 in f64 is 0.00400000019; frexp gives
    // 0.51200002432·2^−7, and 0.51200002432·2^31 = 1 099 511 680.0 exactly.
    let (m, s) = quantize_conv_scales(0.5, &[0.25, 0.001], 0.125).unwrap();
    assert_eq!(m, vec![1 << 30, 1_099_511_680]);
    assert_eq!(s, vec![1, -7]);
    assert!(quantize_conv_scales(0.5, &[-0.25], 0.125).is_err());
    assert_eq!(
        quantized_activation_range(Activation::Relu6, 0.05, -10).unwrap(),
        (-10, 110)
    );
    // Rounded, not truncated: 6 / 0.07 = 85.71 → 86; −1 / 0.07 = −14.29 → −14.
    assert_eq!(
        quantized_activation_range(Activation::Relu6, 0.07, 0).unwrap(),
        (0, 86)
    );
    assert_eq!(
        quantized_activation_range(
            Activation::Clamp {
                min: -1.0,
                max: 1.0
            },
            0.07,
            5
        )
        .unwrap(),
        (-9, 19)
    );
    // The activation's clamp and an explicit one intersect, then the output type's range.
    let params = ConvParams::new(1, 1, 1, 1).with_activation(Activation::Relu);
    let scale = Scale::PerTensor {
        multiplier: 1 << 30,
        shift: 0,
    };
    let quant = ConvQuant::new(0, -20, scale)
        .with_output_scale(1.0)
        .with_clamp(-100, 50);
    let layer: QConv2d = QConv2d::new(&params, &quant, &[1], None, Algorithm::Auto).unwrap();
    assert_eq!(layer.output_clamp(), (-20, 50));
    let layer: QConv2d<i8, u8> = QConv2d::new(
        &params,
        &ConvQuant::new(0, 20, scale).with_output_scale(1.0),
        &[1],
        None,
        Algorithm::Auto,
    )
    .unwrap();
    assert_eq!(layer.output_clamp(), (20, 255));
    assert_eq!(
        choose_algorithm_int8(&ConvParams::depthwise(8, 2, 3, 3)),
        Algorithm::Depthwise
    );
    assert_eq!(
        choose_algorithm_int8(&ConvParams::new(8, 8, 3, 3)),
        Algorithm::Im2col
    );
    // One input channel in one group is a depthwise layer.
    assert_eq!(layer.algorithm(), Algorithm::Depthwise);
}

#[test]
fn bad_parameters_are_errors() {
    let p = ConvParams::new(4, 6, 3, 3).with_padding(Padding::Same);
    let filter = vec![1i8; p.filter_len().unwrap()];
    let m = [1 << 30; 6];
    let s = [-8; 6];
    let pc = Scale::PerChannel {
        multipliers: &m,
        shifts: &s,
    };
    let q = ConvQuant::new(0, 0, pc);
    let new = |p: &ConvParams, q: &ConvQuant, f: &[i8], b: Option<&[i32]>, a: Algorithm| {
        QConv2d::<i8, i8>::new(p, q, f, b, a).map(|_| ())
    };
    new(&p, &q, &filter, None, Algorithm::Im2col).unwrap();
    // Zero points outside the types' ranges.
    let e = new(
        &p,
        &ConvQuant::new(128, 0, pc),
        &filter,
        None,
        Algorithm::Im2col,
    );
    assert!(
        matches!(e, Err(Error::ZeroPointOutOfRange { value: 128, .. })),
        "{e:?}"
    );
    let e = QConv2d::<u8, u8>::new(
        &p,
        &ConvQuant::new(-1, 0, pc),
        &filter,
        None,
        Algorithm::Auto,
    )
    .map(|_| ());
    assert!(
        matches!(e, Err(Error::ZeroPointOutOfRange { value: -1, .. })),
        "{e:?}"
    );
    let e = QConv2d::<i8, u8>::new(
        &p,
        &ConvQuant::new(0, 256, pc),
        &filter,
        None,
        Algorithm::Auto,
    )
    .map(|_| ());
    assert!(
        matches!(e, Err(Error::ZeroPointOutOfRange { value: 256, .. })),
        "{e:?}"
    );
    // Shifts outside −31..=30, per-channel arrays of the wrong length.
    let bad_s = [-8, -8, 31, -8, -8, -8];
    let e = new(
        &p,
        &ConvQuant::new(
            0,
            0,
            Scale::PerChannel {
                multipliers: &m,
                shifts: &bad_s,
            },
        ),
        &filter,
        None,
        Algorithm::Im2col,
    );
    assert!(
        matches!(
            e,
            Err(Error::ShiftOutOfRange {
                channel: 2,
                shift: 31
            })
        ),
        "{e:?}"
    );
    let e = new(
        &p,
        &ConvQuant::new(
            0,
            0,
            Scale::PerTensor {
                multiplier: 1 << 30,
                shift: -32,
            },
        ),
        &filter,
        None,
        Algorithm::Im2col,
    );
    assert!(matches!(e, Err(Error::ShiftOutOfRange { .. })), "{e:?}");
    let e = new(
        &p,
        &ConvQuant::new(
            0,
            0,
            Scale::PerChannel {
                multipliers: &m[..5],
                shifts: &s,
            },
        ),
        &filter,
        None,
        Algorithm::Im2col,
    );
    assert!(matches!(e, Err(Error::LengthMismatch { .. })), "{e:?}");
    // Filter and bias lengths.
    let e = new(&p, &q, &filter[1..], None, Algorithm::Im2col);
    assert!(
        matches!(
            e,
            Err(Error::ConvTensorLength {
                tensor: "filter",
                ..
            })
        ),
        "{e:?}"
    );
    let e = new(&p, &q, &filter, Some(&[0; 5]), Algorithm::Im2col);
    assert!(
        matches!(e, Err(Error::ConvTensorLength { tensor: "bias", .. })),
        "{e:?}"
    );
    // Winograd is f32-only; depthwise needs a depthwise layer.
    for a in [
        Algorithm::Winograd2x3,
        Algorithm::Winograd4x3,
        Algorithm::Winograd6x3,
    ] {
        let e = new(&p, &q, &filter, None, a);
        assert!(matches!(e, Err(Error::ConvAlgorithm { .. })), "{e:?}");
    }
    let e = new(&p, &q, &filter, None, Algorithm::Depthwise);
    assert!(matches!(e, Err(Error::ConvAlgorithm { .. })), "{e:?}");
    // An activation needs the output scale; a bad output scale; an empty clamp.
    let relu = p.with_activation(Activation::Relu);
    let e = new(&relu, &q, &filter, None, Algorithm::Im2col);
    assert!(matches!(e, Err(Error::ConvQuant { .. })), "{e:?}");
    let e = new(
        &relu,
        &q.with_output_scale(0.0),
        &filter,
        None,
        Algorithm::Im2col,
    );
    assert!(matches!(e, Err(Error::ConvQuant { .. })), "{e:?}");
    let e = new(
        &relu,
        &q.with_output_scale(f32::NAN),
        &filter,
        None,
        Algorithm::Im2col,
    );
    assert!(matches!(e, Err(Error::ConvQuant { .. })), "{e:?}");
    let e = new(&p, &q.with_clamp(10, 5), &filter, None, Algorithm::Im2col);
    assert!(matches!(e, Err(Error::EmptyClamp { .. })), "{e:?}");
    // ReLU with zo = 127 and an explicit max below it: nothing left.
    let e = new(
        &relu,
        &ConvQuant::new(0, 127, pc)
            .with_output_scale(0.1)
            .with_clamp(-128, 100),
        &filter,
        None,
        Algorithm::Im2col,
    );
    assert!(matches!(e, Err(Error::EmptyClamp { .. })), "{e:?}");
    // Parameters (as for f32).
    let e = new(&p.with_groups(3), &q, &filter, None, Algorithm::Im2col);
    assert!(matches!(e, Err(Error::ConvGroups { .. })), "{e:?}");
}

#[test]
fn tensors_that_do_not_fit_are_errors() {
    let p = ConvParams::new(3, 4, 3, 3);
    let filter = vec![1i8; p.filter_len().unwrap()];
    let q = ConvQuant::new(
        0,
        0,
        Scale::PerTensor {
            multiplier: 1 << 30,
            shift: -4,
        },
    );
    let shape = Nhwc::new(1, 5, 5, 3);
    let input = vec![0i8; shape.len().unwrap()];
    let mut out = vec![0i8; 36];
    for alg in [Algorithm::Im2col, Algorithm::Direct] {
        let layer: QConv2d = QConv2d::new(&p, &q, &filter, None, alg).unwrap();
        layer.run(&input, shape, &mut out, Par::Seq).unwrap();
        let e = layer
            .run(&input[1..], shape, &mut out, Par::Seq)
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::ConvTensorLength {
                    tensor: "input",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = layer
            .run(&input, shape, &mut out[1..], Par::Seq)
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::ConvTensorLength {
                    tensor: "output",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = layer
            .run(&input, Nhwc::new(1, 5, 5, 4), &mut out, Par::Seq)
            .unwrap_err();
        assert!(matches!(e, Error::ConvChannels { .. }), "{e:?}");
        let e = layer
            .run(&input[..12], Nhwc::new(1, 2, 2, 3), &mut out, Par::Seq)
            .unwrap_err();
        assert!(matches!(e, Error::ConvInputTooSmall { .. }), "{e:?}");
        let e = layer
            .run(&input, shape, &mut out, Par::Threads(0))
            .unwrap_err();
        assert!(matches!(e, Error::ZeroThreads), "{e:?}");
    }
    // The reference validates the same way.
    let e = reference_qconv2d(&p, &q, &input, shape, &filter, None, &mut out[1..]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ConvTensorLength {
                tensor: "output",
                ..
            }
        ),
        "{e:?}"
    );
    // Empty batch: nothing to write, no error.
    let layer: QConv2d = QConv2d::new(&p, &q, &filter, None, Algorithm::Im2col).unwrap();
    let mut none: [i8; 0] = [];
    assert_eq!(
        layer
            .run(&[], Nhwc::new(0, 5, 5, 3), &mut none, Par::Seq)
            .unwrap(),
        Nhwc::new(0, 3, 3, 4)
    );
}
