//! Convolution against the f64 reference (`edgemm::conv::reference_conv2d`).
//!
//! Error bounds, element by element, with `A = Σ|x·w| + |b|` the error scale of an output
//! (from the reference) and `K = kh·kw·Cin/groups` its accumulation length:
//! - direct, im2col, depthwise: `|y − y_ref| ≤ (K + 4)·ε·A + 2·min_positive`, the GEMM
//!   battery's bound (a K-term dot product in any order, one more rounding for the bias);
//! - Winograd F(m×m, 3×3): `|y − y_ref| ≤ c_m·(K + 4)·ε·A_win + 2·min_positive` with
//!   `A_win = Σ_cin max|x|·Σ_taps|w| + |b|`, the max over the input window of every tile
//!   that can contain the output (outputs within m − 1 rows and columns, so a
//!   (2m + 1)-square of inputs): the transforms mix a whole input tile, so an output's error
//!   scales with its tile's largest inputs, not with its own Σ|x·w| (with one or two input
//!   channels the two differ a lot). `c_m` per variant is in [`WINOGRAD_FACTORS`], set from
//!   the measured errors (`winograd_error_survey`, printed with `--nocapture`) with a
//!   margin, and documented in the README.
//!
//! Activations are 1-Lipschitz, so the bound holds after them too (the reference applies
//! the same activation in f64). Every output element starts as NaN: all must be written.

use edgemm::conv::{
    conv2d, reference_conv2d, Activation, Algorithm, Conv2d, ConvParams, Nhwc, Padding,
};
use edgemm::{Error, Kernel, KernelKind, Par};
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
    /// Uniform in [-1, 1).
    fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Winograd error factor `c_m` of the bound (see the module doc).
fn winograd_factor(alg: Algorithm) -> Option<f64> {
    match alg {
        Algorithm::Winograd2x3 => Some(WINOGRAD_FACTORS[0]),
        Algorithm::Winograd4x3 => Some(WINOGRAD_FACTORS[1]),
        Algorithm::Winograd6x3 => Some(WINOGRAD_FACTORS[2]),
        _ => None,
    }
}

/// `c_m` for F(2,3), F(4,3), F(6,3). Measured maxima (README): 0.13, 3.2, 5.1 over 20 000
/// random layers with 1–4 input channels (the worst case: with many channels the
/// accumulation dominates and the measured factors fall to 0.02, 0.5, 0.4).
const WINOGRAD_FACTORS: [f64; 3] = [1.0, 12.0, 24.0];

fn tile_m(alg: Algorithm) -> usize {
    match alg {
        Algorithm::Winograd2x3 => 2,
        Algorithm::Winograd4x3 => 4,
        Algorithm::Winograd6x3 => 6,
        _ => 1,
    }
}

/// One test layer.
#[derive(Clone, Debug)]
struct Case {
    params: ConvParams,
    shape: Nhwc,
    bias: bool,
    seed: u64,
}

/// What a checked run measured.
#[derive(Clone, Copy, Debug, Default)]
struct Measured {
    /// max |y − y_ref| / ((K + 4)·ε·A) (A_win for Winograd): must be ≤ the algorithm's
    /// factor (1 for the others).
    bound_units: f64,
    /// max |y − y_ref| / max |y_ref| (normwise relative error, for the documentation).
    rel: f64,
}

struct Data {
    input: Vec<f32>,
    filter: Vec<f32>,
    bias: Option<Vec<f32>>,
}

fn data(c: &Case) -> Data {
    let mut rng = Rng(c.seed);
    let n_in = c.shape.len().unwrap();
    let input = (0..n_in).map(|_| rng.f32()).collect();
    let filter = (0..c.params.filter_len().unwrap())
        .map(|_| rng.f32())
        .collect();
    let bias = c
        .bias
        .then(|| (0..c.params.out_channels).map(|_| rng.f32()).collect());
    Data {
        input,
        filter,
        bias,
    }
}

/// Runs `layer` on the case's data and checks every output against the reference, with
/// the bound of the algorithm the layer runs (`Auto` resolved).
fn check_layer(c: &Case, layer: &Conv2d, par: Par) -> Result<Measured, String> {
    let alg = layer.algorithm();
    let d = data(c);
    let r = reference_conv2d(&c.params, &d.input, c.shape, &d.filter, d.bias.as_deref())
        .map_err(|e| format!("reference: {e}"))?;
    let mut out = vec![f32::NAN; r.value.len()];
    let got_shape = layer
        .run(&d.input, c.shape, &mut out, par)
        .map_err(|e| format!("{alg:?} returned an error: {e}"))?;
    if got_shape != r.shape {
        return Err(format!("shape {got_shape:?}, reference {:?}", r.shape));
    }
    compare(c, alg, &out, &r, &d)
}

fn compare(
    c: &Case,
    alg: Algorithm,
    out: &[f32],
    r: &edgemm::conv::ReferenceConv,
    d: &Data,
) -> Result<Measured, String> {
    let p = &c.params;
    let k = (p.kernel_h * p.kernel_w * p.in_channels / p.groups) as f64;
    let (lo, hi) = p.activation.bounds();
    let o = r.shape;
    let m = tile_m(alg);
    let factor = winograd_factor(alg).unwrap_or(1.0);
    let win = (m > 1).then(|| winograd_scale(c, d, m, o));
    let eps = f32::EPSILON as f64;
    let max_ref = r.value.iter().fold(0f64, |a, v| a.max(v.abs()));
    let mut meas = Measured::default();
    for n in 0..o.batch {
        for y in 0..o.height {
            for x in 0..o.width {
                for ch in 0..o.channels {
                    let i = ((n * o.height + y) * o.width + x) * o.channels + ch;
                    let a = win.as_ref().map_or(r.abs[i], |wsc| wsc[i]);
                    let want = r.value[i].max(lo as f64).min(hi as f64);
                    let got = out[i] as f64;
                    let diff = (got - want).abs();
                    let scale = (k + 4.0) * eps * a;
                    let bound = factor * scale + 2.0 * f32::MIN_POSITIVE as f64;
                    // NaN (an unwritten output) fails this comparison too.
                    let within = diff <= bound;
                    if !within {
                        return Err(format!(
                            "{alg:?} {p:?} {:?}: out[{n},{y},{x},{ch}] = {got:e}, reference \
                             {want:e}, |diff| {diff:e} > bound {bound:e}",
                            c.shape
                        ));
                    }
                    if scale > 0.0 {
                        meas.bound_units = meas.bound_units.max(diff / scale);
                    }
                    if max_ref > 0.0 {
                        meas.rel = meas.rel.max(diff / max_ref);
                    }
                }
            }
        }
    }
    Ok(meas)
}

/// `A_win` of every output (see the module doc) for a 3×3 stride-1 layer and tile size m.
fn winograd_scale(c: &Case, d: &Data, m: usize, o: Nhwc) -> Vec<f64> {
    let p = &c.params;
    let (h, w, cin) = (c.shape.height, c.shape.width, c.shape.channels);
    let (cin_g, cout_g) = (cin / p.groups, p.out_channels / p.groups);
    let pads = padding_of(p, c.shape);
    // Input window of output row y: rows y − (m − 1) − top ..= y + (m − 1) + 2 − top.
    let span = |y: usize, pad: usize, len: usize| {
        let lo = y as isize - (m as isize - 1) - pad as isize;
        let hi = y as isize + (m as isize - 1) + 2 - pad as isize;
        (lo.max(0) as usize, (hi + 1).clamp(0, len as isize) as usize)
    };
    // Separable box max of |x|: over the columns first, then the rows.
    let mut colmax = vec![0f64; c.shape.batch * h * o.width * cin];
    for n in 0..c.shape.batch {
        for iy in 0..h {
            for x in 0..o.width {
                let (x0, x1) = span(x, pads.2, w);
                for ci in 0..cin {
                    let mut mx = 0f64;
                    for ix in x0..x1 {
                        mx = mx.max((d.input[((n * h + iy) * w + ix) * cin + ci] as f64).abs());
                    }
                    colmax[((n * h + iy) * o.width + x) * cin + ci] = mx;
                }
            }
        }
    }
    // Σ_taps |w| per (output channel, input channel of its group).
    let wsum: Vec<f64> = (0..p.out_channels * cin_g)
        .map(|oi| {
            let (oc, i) = (oi / cin_g, oi % cin_g);
            (0..9)
                .map(|t| (d.filter[(oc * 9 + t) * cin_g + i] as f64).abs())
                .sum()
        })
        .collect();
    let mut out = vec![0f64; o.len().unwrap()];
    let mut boxmax = vec![0f64; cin];
    for n in 0..o.batch {
        for y in 0..o.height {
            let (y0, y1) = span(y, pads.0, h);
            for x in 0..o.width {
                for (ci, b) in boxmax.iter_mut().enumerate() {
                    *b = (y0..y1)
                        .map(|iy| colmax[((n * h + iy) * o.width + x) * cin + ci])
                        .fold(0.0, f64::max);
                }
                for oc in 0..o.channels {
                    let g = oc / cout_g;
                    let mut a: f64 = d.bias.as_ref().map_or(0.0, |b| (b[oc] as f64).abs());
                    for i in 0..cin_g {
                        a += boxmax[g * cin_g + i] * wsum[oc * cin_g + i];
                    }
                    out[((n * o.height + y) * o.width + x) * o.channels + oc] = a;
                }
            }
        }
    }
    out
}

/// (top, bottom, left, right) padding of a layer for an input shape (TensorFlow's SAME).
fn padding_of(p: &ConvParams, s: Nhwc) -> (usize, usize, usize, usize) {
    match p.padding {
        Padding::Valid => (0, 0, 0, 0),
        Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } => (top, bottom, left, right),
        Padding::Same => {
            let o = p.output_shape(s).unwrap();
            let eh = (p.kernel_h - 1) * p.dilation_h + 1;
            let ew = (p.kernel_w - 1) * p.dilation_w + 1;
            let th = ((o.height - 1) * p.stride_h + eh).saturating_sub(s.height);
            let tw = ((o.width - 1) * p.stride_w + ew).saturating_sub(s.width);
            (th / 2, th - th / 2, tw / 2, tw - tw / 2)
        }
    }
}

/// Prepares the layer for `alg` and checks it (also the one-shot `conv2d`).
fn check(c: &Case, alg: Algorithm) -> Result<Measured, String> {
    let d = data(c);
    let layer = Conv2d::new(&c.params, &d.filter, d.bias.as_deref(), alg)
        .map_err(|e| format!("{alg:?}: preparing {:?}: {e}", c.params))?;
    if alg != Algorithm::Auto && layer.algorithm() != alg {
        return Err(format!("asked for {alg:?}, got {:?}", layer.algorithm()));
    }
    check_layer(c, &layer, Par::Seq)
}

/// Every algorithm that can run the case (and Auto), against the reference.
fn check_all(c: &Case) -> Result<(), String> {
    for alg in Algorithm::CONCRETE.into_iter().chain([Algorithm::Auto]) {
        match alg.check(&c.params) {
            Ok(()) => {
                check(c, alg)?;
            }
            Err(Error::ConvAlgorithm { .. }) => {}
            Err(e) => return Err(format!("{alg:?}.check: {e}")),
        }
    }
    // The one-shot call, with Auto choosing for this input shape.
    let d = data(c);
    let r = reference_conv2d(&c.params, &d.input, c.shape, &d.filter, d.bias.as_deref())
        .map_err(|e| format!("reference: {e}"))?;
    let mut out = vec![f32::NAN; r.value.len()];
    let auto = edgemm::conv::choose_algorithm(&c.params, Some(c.shape));
    conv2d(
        &c.params,
        &d.input,
        c.shape,
        &d.filter,
        d.bias.as_deref(),
        &mut out,
        Algorithm::Auto,
        Par::Seq,
    )
    .map_err(|e| format!("conv2d: {e}"))?;
    compare(c, auto, &out, &r, &d)?;
    Ok(())
}

// ---- random layers ---------------------------------------------------------------------

fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![
        Just(Padding::Valid),
        Just(Padding::Same),
        (0usize..3, 0usize..3, 0usize..3, 0usize..3).prop_map(|(top, bottom, left, right)| {
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            }
        }),
    ]
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::None),
        Just(Activation::Relu),
        Just(Activation::Relu6),
        (-1.0f32..0.0, 0.0f32..1.0).prop_map(|(min, max)| Activation::Clamp { min, max }),
    ]
}

prop_compose! {
    /// Any layer: groups, kernel sizes, strides, dilations, paddings, batch 0..3.
    fn any_case()(
        groups in 1usize..4, cin_g in 1usize..11, cout_g in 1usize..11,
        kh in 1usize..5, kw in 1usize..5, sh in 1usize..4, sw in 1usize..4,
        dh in 1usize..3, dw in 1usize..3, pad in padding(), act in activation(),
        batch in 0usize..3, h in 1usize..14, w in 1usize..14, bias in any::<bool>(),
        seed in any::<u64>(),
    ) -> Case {
        let params = ConvParams::new(groups * cin_g, groups * cout_g, kh, kw)
            .with_groups(groups).with_stride(sh, sw).with_dilation(dh, dw)
            .with_padding(pad).with_activation(act);
        Case { params, shape: Nhwc::new(batch, h, w, groups * cin_g), bias, seed }
    }
}

prop_compose! {
    /// Layers Winograd can run: 3×3, stride 1, dilation 1; channel counts across the vector
    /// widths; odd sizes; maps smaller than a tile.
    fn winograd_case()(
        groups in 1usize..3, cin_g in 1usize..40, cout_g in 1usize..40,
        pad in padding(), act in activation(), batch in 1usize..3,
        h in 1usize..20, w in 1usize..20, bias in any::<bool>(), seed in any::<u64>(),
    ) -> Case {
        let params = ConvParams::new(groups * cin_g, groups * cout_g, 3, 3)
            .with_groups(groups).with_padding(pad).with_activation(act);
        Case { params, shape: Nhwc::new(batch, h, w, groups * cin_g), bias, seed }
    }
}

prop_compose! {
    /// Depthwise layers: depth multipliers, kernel sizes, strides, dilations, channel counts
    /// across the vector widths (the 3×3 path and the general one).
    fn depthwise_case()(
        ch in 1usize..70, mult in prop_oneof![Just(1usize), 1usize..4],
        k in prop_oneof![Just(3usize), 1usize..6], kw_extra in prop_oneof![Just(0usize), 0usize..2],
        s in prop_oneof![Just(1usize), Just(2usize), 1usize..4], d in prop_oneof![Just(1usize), 1usize..3],
        pad in padding(), act in activation(), batch in 1usize..3,
        h in 1usize..20, w in 1usize..20, bias in any::<bool>(), seed in any::<u64>(),
    ) -> Case {
        let params = ConvParams::depthwise(ch, mult, k, k + kw_extra)
            .with_stride(s, s).with_dilation(d, d).with_padding(pad).with_activation(act);
        Case { params, shape: Nhwc::new(batch, h, w, ch), bias, seed }
    }
}

/// Runs the case when its shape fits; otherwise the call must say the input is too small.
fn check_or_too_small(c: &Case) -> Result<(), TestCaseError> {
    match c.params.output_shape(c.shape) {
        Ok(_) => check_all(c).map_err(TestCaseError::fail),
        Err(Error::ConvInputTooSmall { .. }) => {
            let d = data(c);
            let mut out = vec![0f32; 1];
            let r = conv2d(
                &c.params,
                &d.input,
                c.shape,
                &d.filter,
                d.bias.as_deref(),
                &mut out,
                Algorithm::Auto,
                Par::Seq,
            );
            prop_assert!(matches!(r, Err(Error::ConvInputTooSmall { .. })), "{r:?}");
            Ok(())
        }
        Err(e) => Err(TestCaseError::fail(format!("{e}"))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn random_layers_match_reference(c in any_case()) {
        check_or_too_small(&c)?;
    }

    #[test]
    fn random_winograd_layers_match_reference(c in winograd_case()) {
        check_or_too_small(&c)?;
    }

    #[test]
    fn random_depthwise_layers_match_reference(c in depthwise_case()) {
        check_or_too_small(&c)?;
    }
}

// ---- named cases -------------------------------------------------------------------------

fn case(params: ConvParams, shape: Nhwc) -> Case {
    Case {
        params,
        shape,
        bias: true,
        seed: 42,
    }
}

#[test]
fn pointwise_layers_are_plain_gemms() {
    // 1×1 stride 1 unpadded: the GEMM on the input itself; with groups and batch.
    for (p, s) in [
        (ConvParams::new(37, 29, 1, 1), Nhwc::new(2, 7, 9, 37)),
        (
            ConvParams::new(32, 48, 1, 1).with_groups(4),
            Nhwc::new(1, 5, 5, 32),
        ),
        // Many rows: more than one row block.
        (
            ConvParams::new(16, 24, 1, 1).with_activation(Activation::Relu6),
            Nhwc::new(1, 40, 40, 16),
        ),
        // 1×1 with stride or padding: through the im2col path.
        (
            ConvParams::new(8, 12, 1, 1).with_stride(2, 3),
            Nhwc::new(1, 9, 10, 8),
        ),
        (
            ConvParams::new(8, 12, 1, 1).with_padding(Padding::Explicit {
                top: 1,
                bottom: 0,
                left: 0,
                right: 2,
            }),
            Nhwc::new(1, 4, 4, 8),
        ),
    ] {
        check(&case(p, s), Algorithm::Im2col).unwrap();
        check(&case(p, s), Algorithm::Direct).unwrap();
    }
}

#[test]
fn winograd_edges_odd_sizes_and_channel_tails() {
    let variants = [
        Algorithm::Winograd2x3,
        Algorithm::Winograd4x3,
        Algorithm::Winograd6x3,
    ];
    let shapes = [
        // Maps smaller than one tile, exactly one tile, one more than a tile.
        (1, 1),
        (2, 3),
        (4, 4),
        (6, 6),
        (7, 5),
        (8, 8),
        (13, 17),
    ];
    for alg in variants {
        for &(h, w) in &shapes {
            for &(cin, cout) in &[(1, 1), (3, 5), (8, 16), (17, 15), (33, 47)] {
                for pad in [
                    Padding::Same,
                    Padding::Valid,
                    Padding::Explicit {
                        top: 2,
                        bottom: 0,
                        left: 0,
                        right: 1,
                    },
                ] {
                    let p = ConvParams::new(cin, cout, 3, 3).with_padding(pad);
                    let s = Nhwc::new(2, h, w, cin);
                    if p.output_shape(s).is_err() {
                        continue;
                    }
                    check(&case(p, s), alg).unwrap();
                }
            }
        }
    }
}

#[test]
fn winograd_with_more_tiles_than_a_block_and_wide_channels() {
    // Enough tiles for several tile blocks (and threads), and Cin above the kernel's KC.
    for alg in [
        Algorithm::Winograd2x3,
        Algorithm::Winograd4x3,
        Algorithm::Winograd6x3,
    ] {
        let c = case(
            ConvParams::new(24, 40, 3, 3).with_padding(Padding::Same),
            Nhwc::new(1, 61, 59, 24),
        );
        check(&c, alg).unwrap();
        let c = case(
            ConvParams::new(600, 20, 3, 3).with_padding(Padding::Same),
            Nhwc::new(1, 9, 10, 600),
        );
        check(&c, alg).unwrap();
    }
}

#[test]
fn depthwise_paths() {
    for (p, s) in [
        // The 3×3 path: strides 1 and 2, SAME/VALID, batch 2, channel tails.
        (
            ConvParams::depthwise(37, 1, 3, 3).with_padding(Padding::Same),
            Nhwc::new(2, 13, 11, 37),
        ),
        (
            ConvParams::depthwise(24, 1, 3, 3)
                .with_stride(2, 2)
                .with_padding(Padding::Same),
            Nhwc::new(1, 15, 16, 24),
        ),
        (
            ConvParams::depthwise(9, 1, 3, 3).with_stride(2, 2),
            Nhwc::new(1, 8, 9, 9),
        ),
        // 512+ channels: the channel-blocked sweep; and 1×1 / 2×2 maps.
        (
            ConvParams::depthwise(1040, 1, 3, 3).with_padding(Padding::Same),
            Nhwc::new(1, 7, 6, 1040),
        ),
        (
            ConvParams::depthwise(520, 1, 3, 3)
                .with_stride(2, 2)
                .with_padding(Padding::Same),
            Nhwc::new(2, 5, 5, 520),
        ),
        (
            ConvParams::depthwise(40, 1, 3, 3).with_padding(Padding::Same),
            Nhwc::new(1, 1, 1, 40),
        ),
        (
            ConvParams::depthwise(40, 1, 3, 3).with_padding(Padding::Same),
            Nhwc::new(1, 2, 2, 40),
        ),
        // Asymmetric padding wider than the kernel reach.
        (
            ConvParams::depthwise(18, 1, 3, 3).with_padding(Padding::Explicit {
                top: 0,
                bottom: 3,
                left: 3,
                right: 0,
            }),
            Nhwc::new(1, 6, 7, 18),
        ),
        // The general path: multiplier > 1, 5×5, dilation, stride 3, non-square.
        (
            ConvParams::depthwise(19, 3, 5, 5).with_padding(Padding::Same),
            Nhwc::new(1, 9, 8, 19),
        ),
        (
            ConvParams::depthwise(16, 2, 3, 3)
                .with_dilation(2, 2)
                .with_padding(Padding::Same),
            Nhwc::new(2, 10, 10, 16),
        ),
        (
            ConvParams::depthwise(33, 1, 3, 2)
                .with_stride(3, 3)
                .with_activation(Activation::Relu6),
            Nhwc::new(1, 11, 10, 33),
        ),
    ] {
        check(&case(p, s), Algorithm::Depthwise).unwrap();
        check(&case(p, s), Algorithm::Im2col).unwrap();
    }
}

/// Shrunk by proptest: Auto chose Winograd for a 2-channel layer and the test compared it
/// with the exact-order bound of the algorithm it asked for; the bound must be the one of
/// the algorithm that ran.
#[test]
fn regression_auto_is_checked_with_the_bound_of_the_resolved_algorithm() {
    let c = Case {
        params: ConvParams::new(2, 2, 3, 3).with_padding(Padding::Explicit {
            top: 0,
            bottom: 2,
            left: 0,
            right: 2,
        }),
        shape: Nhwc::new(2, 12, 3, 2),
        bias: false,
        seed: 1674083688907508418,
    };
    check_all(&c).unwrap();
}

#[test]
fn empty_batch_and_large_padding() {
    // Batch 0: nothing to compute, nothing written.
    let p = ConvParams::new(4, 4, 3, 3).with_padding(Padding::Same);
    let d = data(&case(p, Nhwc::new(0, 5, 5, 4)));
    let mut out: Vec<f32> = Vec::new();
    for alg in [Algorithm::Im2col, Algorithm::Winograd4x3, Algorithm::Direct] {
        let l = Conv2d::new(&p, &d.filter, None, alg).unwrap();
        assert_eq!(
            l.run(&[], Nhwc::new(0, 5, 5, 4), &mut out, Par::Seq)
                .unwrap(),
            Nhwc::new(0, 5, 5, 4)
        );
    }
    // Padding wider than the kernel: border outputs see only padding (= bias).
    let p = ConvParams::new(3, 2, 3, 3).with_padding(Padding::Explicit {
        top: 4,
        bottom: 4,
        left: 4,
        right: 4,
    });
    for alg in [
        Algorithm::Im2col,
        Algorithm::Winograd2x3,
        Algorithm::Winograd6x3,
    ] {
        check(&case(p, Nhwc::new(1, 3, 4, 3)), alg).unwrap();
    }
}

#[test]
fn results_do_not_depend_on_threads() {
    let cases = [
        (
            case(
                ConvParams::new(32, 48, 3, 3).with_padding(Padding::Same),
                Nhwc::new(2, 30, 29, 32),
            ),
            Algorithm::Im2col,
        ),
        (
            case(
                ConvParams::new(32, 48, 3, 3).with_padding(Padding::Same),
                Nhwc::new(2, 30, 29, 32),
            ),
            Algorithm::Winograd4x3,
        ),
        (
            case(
                ConvParams::new(32, 48, 3, 3).with_padding(Padding::Same),
                Nhwc::new(1, 40, 37, 32),
            ),
            Algorithm::Winograd6x3,
        ),
        (
            case(
                ConvParams::depthwise(64, 1, 3, 3).with_padding(Padding::Same),
                Nhwc::new(2, 40, 40, 64),
            ),
            Algorithm::Depthwise,
        ),
    ];
    for (c, alg) in cases {
        let d = data(&c);
        let layer = Conv2d::new(&c.params, &d.filter, d.bias.as_deref(), alg).unwrap();
        let n = c.params.output_shape(c.shape).unwrap().len().unwrap();
        let mut outs = Vec::new();
        for par in [Par::Seq, Par::Threads(2), Par::Threads(3)] {
            let mut out = vec![f32::NAN; n];
            layer.run(&d.input, c.shape, &mut out, par).unwrap();
            outs.push(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
        assert!(
            outs[0] == outs[1] && outs[1] == outs[2],
            "{alg:?}: results differ"
        );
        check_layer(&c, &layer, Par::Threads(2)).unwrap();
    }
}

#[test]
fn a_prepared_layer_serves_many_shapes_and_threads() {
    let p = ConvParams::new(16, 24, 3, 3)
        .with_padding(Padding::Same)
        .with_activation(Activation::Relu);
    let d = data(&case(p, Nhwc::new(1, 12, 12, 16)));
    for alg in [
        Algorithm::Im2col,
        Algorithm::Winograd2x3,
        Algorithm::Winograd4x3,
        Algorithm::Winograd6x3,
        Algorithm::Auto,
    ] {
        // One prepared layer, shared by threads running it on different input shapes at
        // the same time (and twice each, so every call reuses the same prepared filter).
        let layer = Conv2d::new(&p, &d.filter, d.bias.as_deref(), alg).unwrap();
        std::thread::scope(|s| {
            for (n, h, w) in [(1, 12, 12), (2, 7, 9), (1, 25, 3)] {
                let (layer, d) = (&layer, &d);
                s.spawn(move || {
                    let shape = Nhwc::new(n, h, w, 16);
                    let mut rng = Rng(h as u64);
                    let input: Vec<f32> = (0..shape.len().unwrap()).map(|_| rng.f32()).collect();
                    let r =
                        reference_conv2d(&p, &input, shape, &d.filter, d.bias.as_deref()).unwrap();
                    for _ in 0..2 {
                        let mut out = vec![f32::NAN; r.value.len()];
                        layer.run(&input, shape, &mut out, Par::Seq).unwrap();
                        let c = Case {
                            params: p,
                            shape,
                            bias: true,
                            seed: 0,
                        };
                        let dd = Data {
                            input: input.clone(),
                            filter: d.filter.clone(),
                            bias: d.bias.clone(),
                        };
                        compare(&c, layer.algorithm(), &out, &r, &dd).unwrap();
                    }
                });
            }
        });
    }
}

#[test]
fn every_gemm_kernel_runs_the_gemm_based_algorithms() {
    let mut ran = 0;
    for info in edgemm::kernels() {
        if !info.runnable {
            eprintln!("skipped (this CPU lacks {}): {}", info.isa, info.name);
            continue;
        }
        let kernel = Kernel::by_name(info.name).unwrap();
        if info.kind != KernelKind::F32 {
            // An int8 kernel cannot run an f32 layer: a clear error, not a panic.
            let p = ConvParams::new(4, 4, 3, 3);
            let e =
                Conv2d::with_kernel(&kernel, &p, &[0.0; 144], None, Algorithm::Im2col).unwrap_err();
            assert!(matches!(e, Error::WrongKernelKind { .. }), "{e:?}");
            continue;
        }
        for alg in [
            Algorithm::Im2col,
            Algorithm::Winograd2x3,
            Algorithm::Winograd4x3,
            Algorithm::Winograd6x3,
        ] {
            for (p, s) in [
                (
                    ConvParams::new(21, 35, 3, 3).with_padding(Padding::Same),
                    Nhwc::new(2, 11, 13, 21),
                ),
                (
                    ConvParams::new(16, 32, 3, 3).with_groups(2),
                    Nhwc::new(1, 9, 9, 16),
                ),
            ] {
                let c = case(p, s);
                let d = data(&c);
                let layer =
                    Conv2d::with_kernel(&kernel, &p, &d.filter, d.bias.as_deref(), alg).unwrap();
                check_layer(&c, &layer, Par::Seq)
                    .unwrap_or_else(|e| panic!("kernel {}: {e}", info.name));
            }
        }
        ran += 1;
    }
    assert!(ran >= 1);
}

/// Measures the Winograd error per variant over random layers and checks it against the
/// bound; prints the figures the README documents (`--nocapture`): layers with realistic
/// channel counts (16–260 inputs), and layers with 1–4 input channels (where the transform
/// error is largest relative to the accumulation).
#[test]
fn winograd_error_survey() {
    let mut rng = Rng(2024);
    for alg in [
        Algorithm::Winograd2x3,
        Algorithm::Winograd4x3,
        Algorithm::Winograd6x3,
    ] {
        let mut wide = [Measured::default(); 2]; // [winograd, im2col]
        let mut narrow = Measured::default();
        let fold = |acc: &mut Measured, m: Measured| {
            acc.bound_units = acc.bound_units.max(m.bound_units);
            acc.rel = acc.rel.max(m.rel);
        };
        for i in 0..24 {
            let cin = [16, 32, 64, 128, 256][i % 5] + (rng.next_u64() % 5) as usize;
            let cout = 8 + (rng.next_u64() % 24) as usize;
            let hw = 6 + (rng.next_u64() % 14) as usize;
            let c = Case {
                params: ConvParams::new(cin, cout, 3, 3).with_padding(Padding::Same),
                shape: Nhwc::new(1, hw, hw + 1, cin),
                bias: true,
                seed: rng.next_u64(),
            };
            fold(&mut wide[0], check(&c, alg).unwrap());
            fold(&mut wide[1], check(&c, Algorithm::Im2col).unwrap());
        }
        for _ in 0..400 {
            let cin = 1 + (rng.next_u64() % 4) as usize;
            let (h, w) = (
                1 + (rng.next_u64() % 16) as usize,
                1 + (rng.next_u64() % 16) as usize,
            );
            let c = Case {
                params: ConvParams::new(cin, 1 + (rng.next_u64() % 8) as usize, 3, 3)
                    .with_padding(Padding::Same),
                shape: Nhwc::new(1, h, w, cin),
                bias: rng.next_u64() % 2 == 0,
                seed: rng.next_u64(),
            };
            fold(&mut narrow, check(&c, alg).unwrap());
        }
        println!(
            "{alg:?}: 16-260 input channels: max normwise relative error {:.2e} (im2col \
             {:.2e}), max error / ((K + 4)·ε·A_win) {:.3} (im2col {:.3}); 1-4 input channels: \
             {:.2e}, {:.3}; enforced bound {}",
            wide[0].rel,
            wide[1].rel,
            wide[0].bound_units,
            wide[1].bound_units,
            narrow.rel,
            narrow.bound_units,
            winograd_factor(alg).unwrap(),
        );
    }
}

// ---- errors ----------------------------------------------------------------------------

#[test]
fn bad_parameters_are_errors() {
    let filter = [0f32; 64];
    let ok = ConvParams::new(2, 2, 3, 3);
    for (p, what) in [
        (ConvParams::new(0, 2, 3, 3), "in_channels"),
        (ConvParams::new(2, 0, 3, 3), "out_channels"),
        (ConvParams::new(2, 2, 0, 3), "kernel_h"),
        (ConvParams::new(2, 2, 3, 0), "kernel_w"),
        (ok.with_stride(0, 1), "stride_h"),
        (ok.with_stride(1, 0), "stride_w"),
        (ok.with_dilation(0, 1), "dilation_h"),
        (ok.with_dilation(1, 0), "dilation_w"),
        (ok.with_groups(0), "groups"),
    ] {
        let e = Conv2d::new(&p, &filter, None, Algorithm::Auto).unwrap_err();
        assert!(
            matches!(e, Error::ConvParam { name, .. } if name == what),
            "{e:?}"
        );
        assert!(e.to_string().contains(what), "{e}");
    }
    let e = Conv2d::new(
        &ConvParams::new(4, 6, 1, 1).with_groups(4),
        &filter,
        None,
        Algorithm::Auto,
    )
    .unwrap_err();
    assert_eq!(
        e,
        Error::ConvGroups {
            groups: 4,
            in_channels: 4,
            out_channels: 6
        }
    );
    assert!(e.to_string().contains("groups = 4"), "{e}");
    for act in [
        Activation::Clamp { min: 1.0, max: 0.0 },
        Activation::Clamp {
            min: f32::NAN,
            max: 0.0,
        },
    ] {
        let e = Conv2d::new(
            &ok.with_activation(act),
            &filter[..36],
            None,
            Algorithm::Auto,
        )
        .unwrap_err();
        assert_eq!(e, Error::ConvClamp);
    }
    // Overflowing sizes.
    let huge = ConvParams::new(1 << 40, 1 << 40, 1 << 20, 1);
    assert!(matches!(
        Conv2d::new(&huge, &filter, None, Algorithm::Auto),
        Err(Error::SizeOverflow)
    ));
    let p = ConvParams::new(2, 2, 3, 3);
    assert!(matches!(
        p.output_shape(Nhwc::new(usize::MAX, 8, 8, 2)),
        Err(Error::SizeOverflow)
    ));
}

#[test]
fn algorithms_refuse_layers_they_cannot_run() {
    let filter = vec![0f32; 4 * 5 * 5 * 4];
    let cases = [
        (ConvParams::new(4, 4, 5, 5), Algorithm::Winograd2x3, "3x3"),
        (
            ConvParams::new(4, 4, 3, 3).with_stride(2, 2),
            Algorithm::Winograd4x3,
            "stride",
        ),
        (
            ConvParams::new(4, 4, 3, 3).with_dilation(2, 2),
            Algorithm::Winograd6x3,
            "dilation",
        ),
        (ConvParams::new(4, 4, 3, 3), Algorithm::Depthwise, "groups"),
    ];
    for (p, alg, what) in cases {
        let f = &filter[..p.filter_len().unwrap()];
        let e = Conv2d::new(&p, f, None, alg).unwrap_err();
        assert!(matches!(e, Error::ConvAlgorithm { .. }), "{e:?}");
        assert!(e.to_string().contains(what), "{alg:?}: {e}");
    }
}

#[test]
fn tensors_that_do_not_fit_are_errors() {
    let p = ConvParams::new(3, 4, 3, 3).with_padding(Padding::Same);
    let shape = Nhwc::new(1, 5, 5, 3);
    let input = vec![0f32; 75];
    let filter = vec![0f32; 4 * 9 * 3];
    let bias = vec![0f32; 4];
    let mut out = vec![0f32; 100];
    // Filter and bias lengths.
    assert_eq!(
        Conv2d::new(&p, &filter[1..], None, Algorithm::Im2col).unwrap_err(),
        Error::ConvTensorLength {
            tensor: "filter",
            expected: 108,
            got: 107
        }
    );
    assert_eq!(
        Conv2d::new(&p, &filter, Some(&bias[..3]), Algorithm::Im2col).unwrap_err(),
        Error::ConvTensorLength {
            tensor: "bias",
            expected: 4,
            got: 3
        }
    );
    for alg in [Algorithm::Direct, Algorithm::Im2col, Algorithm::Winograd4x3] {
        let l = Conv2d::new(&p, &filter, Some(&bias), alg).unwrap();
        // Input length, output length, channel count, input smaller than the kernel, threads.
        assert_eq!(
            l.run(&input[1..], shape, &mut out, Par::Seq).unwrap_err(),
            Error::ConvTensorLength {
                tensor: "input",
                expected: 75,
                got: 74
            }
        );
        assert_eq!(
            l.run(&input, shape, &mut out[1..], Par::Seq).unwrap_err(),
            Error::ConvTensorLength {
                tensor: "output",
                expected: 100,
                got: 99
            }
        );
        assert_eq!(
            l.run(&input, Nhwc::new(1, 5, 3, 5), &mut out, Par::Seq)
                .unwrap_err(),
            Error::ConvChannels {
                expected: 3,
                got: 5
            }
        );
        assert_eq!(
            l.run(&input, shape, &mut out, Par::Threads(0)).unwrap_err(),
            Error::ZeroThreads
        );
        let e = l.run(&input, shape, &mut out[..99], Par::Seq).unwrap_err();
        assert!(
            e.to_string().contains("output") && e.to_string().contains("99"),
            "{e}"
        );
    }
    let valid = ConvParams::new(3, 4, 3, 3);
    let l = Conv2d::new(&valid, &filter, None, Algorithm::Im2col).unwrap();
    let e = l
        .run(&input[..30], Nhwc::new(1, 2, 5, 3), &mut out, Par::Seq)
        .unwrap_err();
    assert_eq!(
        e,
        Error::ConvInputTooSmall {
            axis: "height",
            padded: 2,
            kernel_extent: 3
        }
    );
    assert!(e.to_string().contains("height"), "{e}");
    // Dilation makes the kernel reach farther.
    let dil = ConvParams::new(3, 4, 3, 3).with_dilation(1, 3);
    assert!(matches!(
        dil.output_shape(Nhwc::new(1, 9, 6, 3)),
        Err(Error::ConvInputTooSmall {
            axis: "width",
            padded: 6,
            kernel_extent: 7
        })
    ));
}
