//! `quantize(calibration=DIR, range=minmax|percentile:P, io=int8|float)`: post-training
//! int8 quantization of a float32 graph, as TFLite's converter does it for full-integer
//! models.
//!
//! 1. Calibration: the float graph runs (on the host runtime, every activation kept as an
//!    output) over the samples of DIR — raw little-endian f32 files in the model's own
//!    layout, named `<sample>.in<j>.bin` for input j — and each activation's range is the
//!    min/max of its values (or, `percentile:P`, the P-th percentile of |v| on each side).
//! 2. Activations become int8 per tensor: the range widened to hold 0, scale
//!    `(max − min)/255`, zero point `−128 − min/scale` rounded (TFLite's
//!    `ChooseQuantizationParams`). TFLite's int8 spec then fixes some of them: SOFTMAX and
//!    LOGISTIC outputs 1/256 at −128, TANH 1/128 at 0, and the operators that move values
//!    without rescaling them (RESHAPE, SQUEEZE, MAX_POOL_2D, AVERAGE_POOL_2D, PAD, PADV2,
//!    TRANSPOSE, SLICE, STRIDED_SLICE, GATHER, SPLIT, SPLIT_V, UNPACK, MAXIMUM, MINIMUM,
//!    RESIZE_*) give their output their input's parameters.
//! 3. Weights of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED become symmetric int8 per
//!    output channel (`max|w|/127`, values in −127..=127), biases int32 at `s_in·s_w`; other
//!    float constants (an ADD operand, a MUL factor, …) int8 per tensor like activations.
//! 4. `io=int8` (default) makes the model's inputs and outputs int8 (what a firmware
//!    wants); `io=float` keeps them float with a QUANTIZE after each input and a DEQUANTIZE
//!    before each output.
//!
//! [`quantize_annotated`] runs steps 2–4 with parameters given instead of calibrated ones
//! (the ONNX importer's QDQ models): given weight scales are kept, and where the spec fixes
//! or shares an output's parameters and the file's differ, a QUANTIZE requantizes to the
//! file's.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{count, pipeline_error, Args, PassDef, Run};
use crate::error::Error;
use crate::nn::dtype::DType;
use crate::nn::error::{ModelError, ModelFormat};
use crate::nn::transform::ir::{BuiltinOp, Graph, Node, OpOptions, Quant, Tensor};
use crate::nn::transform::lower::round_half_away;
use crate::nn::transform::{LoadedModel, Packing};

pub(super) const QUANTIZE: PassDef = PassDef {
    name: "quantize",
    args: &["calibration", "range", "io"],
    doc: "post-training int8 quantization from calibration inputs in DIR (<sample>.in<j>.bin, f32)",
    run: Run::Graph(run),
};

/// How an activation's range is taken from its calibration values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Range {
    /// Smallest and largest value seen.
    MinMax,
    /// The given percentile (e.g. 99.99) of the values above 0 and of those below 0.
    Percentile(f64),
}

/// The type of the quantized model's inputs and outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    Int8,
    Float,
}

/// Options of [`quantize_graph`].
#[derive(Clone, Copy, Debug)]
pub struct QuantizeOptions {
    pub range: Range,
    pub io: Io,
}

fn err(reason: &'static str) -> Error {
    Error::Model(ModelError::new(ModelFormat::Graph, reason))
}

fn run(g: &mut Graph, args: &Args) -> Result<String, Error> {
    let range = match args.get("range") {
        None | Some("minmax") => Range::MinMax,
        Some(p) => match p.strip_prefix("percentile:").map(str::parse::<f64>) {
            Some(Ok(v)) if v > 50.0 && v <= 100.0 => Range::Percentile(v),
            _ => {
                return Err(pipeline_error(
                    "range is minmax or percentile:P with 50 < P <= 100",
                    p,
                ))
            }
        },
    };
    let io = match args.get("io") {
        None | Some("int8") => Io::Int8,
        Some("float") => Io::Float,
        Some(other) => return Err(pipeline_error("io is int8 or float", other)),
    };
    let dir = args
        .get("calibration")
        .ok_or_else(|| err("quantize needs calibration=DIR (the calibration inputs)"))?;
    let samples = read_samples(g, dir)?;
    quantize_graph(g, &samples, &QuantizeOptions { range, io })
}

/// Reads `<sample>.in<j>.bin` files of DIR: one sample per name, every input present.
#[cfg(feature = "std")]
fn read_samples(g: &Graph, dir: &str) -> Result<Vec<Vec<Vec<f32>>>, Error> {
    extern crate std;
    use std::collections::BTreeMap;
    let entries = std::fs::read_dir(dir)
        .map_err(|_| pipeline_error("cannot read the calibration directory", dir))?;
    let mut by_sample: BTreeMap<String, Vec<Option<Vec<f32>>>> = BTreeMap::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".bin") else {
            continue;
        };
        let Some((sample, j)) = stem.rsplit_once(".in") else {
            continue;
        };
        let Ok(j) = j.parse::<usize>() else { continue };
        let Some(&t) = g.inputs.get(j) else {
            return Err(pipeline_error(
                "a calibration file names an input the model lacks",
                &name,
            ));
        };
        let bytes = std::fs::read(e.path())
            .map_err(|_| pipeline_error("cannot read a calibration file", &name))?;
        if bytes.len() != g.tensors[t].elems() * 4 {
            return Err(pipeline_error(
                "a calibration file's size is not its input's element count × 4 (f32)",
                &name,
            ));
        }
        let values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let slots = by_sample
            .entry(String::from(sample))
            .or_insert_with(|| vec![None; g.inputs.len()]);
        slots[j] = Some(values);
    }
    let mut samples = Vec::new();
    for (name, slots) in by_sample {
        let inputs: Option<Vec<Vec<f32>>> = slots.into_iter().collect();
        samples.push(inputs.ok_or_else(|| {
            pipeline_error(
                "a calibration sample lacks one of the model's inputs",
                &name,
            )
        })?);
    }
    if samples.is_empty() {
        return Err(pipeline_error(
            "the calibration directory has no <sample>.in<j>.bin files",
            dir,
        ));
    }
    Ok(samples)
}

#[cfg(not(feature = "std"))]
fn read_samples(_: &Graph, _: &str) -> Result<Vec<Vec<Vec<f32>>>, Error> {
    Err(err(
        "reading a calibration directory needs the std feature; call quantize_graph",
    ))
}

/// Observed values of one tensor.
#[derive(Clone, Default)]
struct Observed {
    min: f32,
    max: f32,
    /// Every value, kept only for a percentile range.
    values: Vec<f32>,
    seen: bool,
}

impl Observed {
    fn add(&mut self, v: &[f32], keep: bool) {
        for &x in v.iter().filter(|x| x.is_finite()) {
            if !self.seen {
                (self.min, self.max, self.seen) = (x, x, true);
            }
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        if keep {
            self.values.extend(v.iter().filter(|x| x.is_finite()));
        }
    }

    fn range(&mut self, r: Range) -> (f32, f32) {
        match r {
            Range::MinMax => (self.min, self.max),
            Range::Percentile(p) => {
                let pick = |side: &mut Vec<f32>| {
                    if side.is_empty() {
                        return 0.0;
                    }
                    side.sort_by(f32::total_cmp);
                    let k = round_half_away((p / 100.0) * (side.len() - 1) as f64) as usize;
                    side[k.min(side.len() - 1)]
                };
                let mut pos: Vec<f32> = self.values.iter().copied().filter(|&x| x > 0.0).collect();
                let mut neg: Vec<f32> = self
                    .values
                    .iter()
                    .map(|x| -x)
                    .filter(|&x| x > 0.0)
                    .collect();
                (-pick(&mut neg), pick(&mut pos))
            }
        }
    }
}

/// TFLite's `ChooseQuantizationParams` for int8: the range widened to hold 0.
fn choose(min: f32, max: f32) -> (f32, i64) {
    let (min, max) = (min.min(0.0), max.max(0.0));
    if max - min <= f32::MIN_POSITIVE {
        return (1.0, 0);
    }
    let scale = (max - min) / 255.0;
    let zp = round_half_away(-128.0 - f64::from(min) / f64::from(scale)).clamp(-128, 127);
    (scale, zp)
}

fn per_tensor(scale: f32, zp: i64) -> Quant {
    Quant {
        scale: vec![scale],
        zero_point: vec![zp],
        axis: 0,
    }
}

fn f32_values(t: &Tensor) -> Vec<f32> {
    t.data
        .as_deref()
        .unwrap_or(&[])
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Whether `op` moves its first input's values without rescaling (TFLite's int8 kernels
/// require the output to share the input's parameters).
fn passes_through(op: BuiltinOp) -> bool {
    use BuiltinOp as B;
    matches!(
        op,
        B::Reshape
            | B::Squeeze
            | B::MaxPool2d
            | B::AveragePool2d
            | B::Pad
            | B::PadV2
            | B::Transpose
            | B::Slice
            | B::StridedSlice
            | B::Gather
            | B::Split
            | B::SplitV
            | B::Unpack
            | B::Maximum
            | B::Minimum
            | B::ResizeBilinear
            | B::ResizeNearestNeighbor
    )
}

/// Quantizes float32 graph `g` to int8, calibrated on `samples` (one value vector per graph
/// input each). Returns the report line.
pub fn quantize_graph(
    g: &mut Graph,
    samples: &[Vec<Vec<f32>>],
    opt: &QuantizeOptions,
) -> Result<String, Error> {
    let is_act = |t: &Tensor| t.data.is_none();
    if g.tensors.iter().any(|t| is_act(t) && t.dtype != DType::F32) {
        return Err(err(
            "quantize takes a float32 model; this one has non-float activations",
        ));
    }
    if g.tensors
        .iter()
        .any(|t| !is_act(t) && t.dtype == DType::I8 && t.quant.is_some())
    {
        return Err(err(
            "quantize takes float weights; run it instead of quantize_weights, not after it",
        ));
    }
    if samples.is_empty() {
        return Err(err("quantize needs at least one calibration sample"));
    }
    // 1. Calibration: every activation made an output of a copy of the graph.
    let acts: Vec<usize> = (0..g.tensors.len())
        .filter(|&t| is_act(&g.tensors[t]) && !g.inputs.contains(&t))
        .filter(|&t| g.nodes.iter().any(|n| n.outputs.contains(&t)))
        .collect();
    let mut probe = g.clone();
    probe.outputs = acts.clone();
    let model = LoadedModel::from_graph(&probe, Packing::Portable)?;
    let mut runner = model.runner();
    let keep = matches!(opt.range, Range::Percentile(_));
    let mut seen = vec![Observed::default(); g.tensors.len()];
    for sample in samples {
        if sample.len() != g.inputs.len() {
            return Err(err("a calibration sample has the wrong number of inputs"));
        }
        for (j, values) in sample.iter().enumerate() {
            runner.set_input_f32(j, values)?;
            seen[g.inputs[j]].add(values, keep);
        }
        runner.run()?;
        for (k, &t) in acts.iter().enumerate() {
            seen[t].add(&runner.output_f32(k)?, keep);
        }
    }
    // 2. Activation parameters from the observed ranges.
    let mut quant: Vec<Option<Quant>> = vec![None; g.tensors.len()];
    for (t, o) in seen.iter_mut().enumerate() {
        if o.seen {
            let (lo, hi) = o.range(opt.range);
            let (s, z) = choose(lo, hi);
            quant[t] = Some(per_tensor(s, z));
        }
    }
    for t in g.tensors.iter_mut().filter(|t| t.dtype == DType::F32) {
        t.quant = None; // no weight quantization is given: chosen here
    }
    let (weights, _) = to_int8(g, quant, opt.io, false)?;
    Ok(alloc::format!(
        "int8 from {} ({} activations, {} weight tensors per channel)",
        count(samples.len(), "calibration sample"),
        acts.len() + g.inputs.len(),
        weights
    ))
}

/// Makes float graph `g` int8 with the quantization its float tensors carry, as an
/// importer of a quantized format (ONNX QDQ) sets it: every activation's per-tensor
/// parameters; the weights' of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (symmetric,
/// per tensor or per output channel; chosen here where not given) and other constants'
/// (chosen where not given). Where TFLite's int8 kernels fix or share an output's
/// parameters and the given ones differ, the operator writes its own and a QUANTIZE
/// requantizes to the given ones. Biases are int32 at `s_in·s_w`. An activation without
/// parameters is an error naming it.
pub fn quantize_annotated(g: &mut Graph, io: Io) -> Result<String, Error> {
    let quant: Vec<Option<Quant>> = g
        .tensors
        .iter()
        .map(|t| t.data.is_none().then(|| t.quant.clone()).flatten())
        .collect();
    let (weights, requants) = to_int8(g, quant, io, true)?;
    Ok(alloc::format!(
        "int8 as the file quantized it ({} with the given scales, {} inserted)",
        count(weights, "weight tensor"),
        count(requants, "requantization")
    ))
}

/// Steps 2–4 of the module documentation over activation parameters `quant` (per tensor
/// index): the spec's fixed and shared parameters (with `requantize`, a QUANTIZE to the
/// parameters `quant` gave where they differ), weights, biases and other constants, the
/// float edges. Returns how many weight tensors kept a given quantization (`requantize`) or
/// were quantized per channel, and how many QUANTIZE were inserted.
fn to_int8(
    g: &mut Graph,
    mut quant: Vec<Option<Quant>>,
    io: Io,
    requantize: bool,
) -> Result<(usize, usize), Error> {
    let mut requants = 0;
    // 2. TFLite's fixed and shared parameters, in execution order.
    let mut i = 0;
    while i < g.nodes.len() {
        let node = &g.nodes[i];
        let fixed = match node.op {
            BuiltinOp::Softmax | BuiltinOp::Logistic => Some(per_tensor(1.0 / 256.0, -128)),
            BuiltinOp::Tanh => Some(per_tensor(1.0 / 128.0, 0)),
            op if passes_through(op) => node
                .inputs
                .first()
                .copied()
                .flatten()
                .and_then(|x| quant[x].clone()),
            _ => None,
        };
        i += 1;
        let Some(q) = fixed else { continue };
        for out in g.nodes[i - 1].outputs.clone() {
            let wanted = quant[out].replace(q.clone());
            match wanted {
                Some(w) if requantize && w != q => {
                    // The operator writes `q`; its readers get `w` through a QUANTIZE.
                    let mut t = g.tensors[out].clone();
                    t.name.push_str("/requantized");
                    g.tensors.push(t);
                    let to = g.tensors.len() - 1;
                    quant.push(Some(w));
                    super::rewire(g, out, to);
                    g.nodes.insert(
                        i,
                        Node {
                            op: BuiltinOp::Quantize,
                            version: 1,
                            options: OpOptions::None,
                            inputs: vec![Some(out)],
                            outputs: vec![to],
                        },
                    );
                    i += 1;
                    requants += 1;
                }
                _ => {}
            }
        }
    }
    if requantize {
        // Given parameters must cover every activation (the shared ones are now set).
        let missing = (0..g.tensors.len()).find(|&t| {
            g.tensors[t].data.is_none()
                && quant[t].is_none()
                && g.nodes.iter().any(|n| n.outputs.contains(&t))
        });
        if let Some(t) = missing {
            return Err(g.tensor_error(
                t,
                "a tensor of a quantized (QDQ) model has no quantization: a float operator \
                 between a DequantizeLinear and a QuantizeLinear is not supported",
            ));
        }
    }
    // 3. Weights and biases of the GEMM operators; other float constants per tensor.
    let mut weights = 0;
    for i in 0..g.nodes.len() {
        let node = g.nodes[i].clone();
        let axis = match node.op {
            BuiltinOp::Conv2d | BuiltinOp::FullyConnected => Some(0),
            BuiltinOp::DepthwiseConv2d => Some(3),
            _ => None,
        };
        let (Some(axis), Some(Some(x)), Some(Some(w))) =
            (axis, node.inputs.first(), node.inputs.get(1))
        else {
            continue;
        };
        let (x, w) = (*x, *w);
        if g.tensors[w].data.is_none() || g.tensors[w].dtype != DType::F32 {
            continue;
        }
        let s_in = quant[x].as_ref().map_or(1.0, |q| q.scale[0]);
        let (scales, given) = quantize_weights(&mut g.tensors[w], axis);
        if let Some(Some(b)) = node.inputs.get(2) {
            quantize_bias(&mut g.tensors[*b], s_in, &scales);
        }
        weights += usize::from(given || !requantize);
    }
    for t in 0..g.tensors.len() {
        let tensor = &g.tensors[t];
        if tensor.data.is_some() && tensor.dtype == DType::F32 {
            let v = f32_values(tensor);
            let (s, z) = match &tensor.quant {
                Some(q) if !q.per_channel() && !q.scale.is_empty() => q.first(),
                _ => {
                    let (lo, hi) = v
                        .iter()
                        .fold((0f32, 0f32), |(a, b), &x| (a.min(x), b.max(x)));
                    let (s, z) = choose(lo, hi);
                    (s, z as i32)
                }
            };
            let q: Vec<u8> = v
                .iter()
                .map(|&x| {
                    (round_half_away(f64::from(x / s)) + i64::from(z)).clamp(-128, 127) as i8 as u8
                })
                .collect();
            let tensor = &mut g.tensors[t];
            tensor.data = Some(q);
            tensor.dtype = DType::I8;
            tensor.quant = Some(per_tensor(s, z.into()));
        }
    }
    for (t, q) in quant.into_iter().enumerate() {
        if let Some(q) = q {
            g.tensors[t].dtype = DType::I8;
            g.tensors[t].quant = Some(q);
        }
    }
    // Graph inputs never observed through a node keep their sample ranges (set above);
    // an input no sample covered cannot be quantized.
    if g.inputs.iter().any(|&t| g.tensors[t].dtype != DType::I8) {
        return Err(err("a model input got no calibration values"));
    }
    // 4. Float edges.
    if io == Io::Float {
        float_edges(g);
    }
    Ok((weights, requants))
}

/// Symmetric int8 along `axis`: with the scales `w.quant` gives (one, or one per channel;
/// values on that grid, as a QDQ file's, are kept exactly), else per channel at
/// `max|w|/127` (values in −127..=127). Returns the scales and whether they were given.
fn quantize_weights(w: &mut Tensor, axis: usize) -> (Vec<f32>, bool) {
    let v = f32_values(w);
    let channels = w.shape.get(axis).copied().unwrap_or(1).max(1);
    let inner: usize = w.shape.iter().skip(axis + 1).product();
    let given = w
        .quant
        .take()
        .map(|q| q.scale)
        .filter(|s| s.len() == 1 || s.len() == channels);
    let (scales, lo) = match &given {
        Some(s) => (s.clone(), -128),
        None => {
            let mut max = vec![0f32; channels];
            for (i, &x) in v.iter().enumerate() {
                let c = (i / inner.max(1)) % channels;
                max[c] = max[c].max(x.abs());
            }
            let s = max
                .iter()
                .map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 })
                .collect();
            (s, -127)
        }
    };
    let channel_of = |i: usize| (i / inner.max(1)) % scales.len();
    let q: Vec<u8> = v
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let s = scales[channel_of(i)];
            round_half_away(f64::from(x / s)).clamp(lo, 127) as i8 as u8
        })
        .collect();
    w.data = Some(q);
    w.dtype = DType::I8;
    w.quant = Some(Quant {
        scale: scales.clone(),
        zero_point: vec![0; scales.len()],
        axis,
    });
    (scales, given.is_some())
}

/// int32 bias at `s_in·s_w` per channel.
fn quantize_bias(b: &mut Tensor, s_in: f32, s_w: &[f32]) {
    if b.dtype != DType::F32 {
        return;
    }
    let v = f32_values(b);
    let scales: Vec<f32> = (0..v.len())
        .map(|c| s_in * s_w.get(c).or(s_w.first()).copied().unwrap_or(1.0))
        .collect();
    let q: Vec<u8> = v
        .iter()
        .zip(&scales)
        .flat_map(|(&x, &s)| {
            let q = round_half_away(f64::from(x) / f64::from(s));
            (q.clamp(i32::MIN.into(), i32::MAX.into()) as i32).to_le_bytes()
        })
        .collect();
    b.data = Some(q);
    b.dtype = DType::I32;
    b.quant = Some(Quant {
        zero_point: vec![0; scales.len()],
        scale: scales,
        axis: 0,
    });
}

/// Float inputs and outputs around the int8 graph: QUANTIZE after each input, DEQUANTIZE
/// before each output.
fn float_edges(g: &mut Graph) {
    let float_twin = |g: &mut Graph, t: usize| {
        let mut f = g.tensors[t].clone();
        f.dtype = DType::F32;
        f.quant = None;
        f.data = None;
        g.tensors[t].name.push_str("/int8");
        g.tensors.push(f);
        g.tensors.len() - 1
    };
    for k in 0..g.inputs.len() {
        let q = g.inputs[k];
        let f = float_twin(g, q);
        g.inputs[k] = f;
        g.nodes.insert(
            0,
            Node {
                op: BuiltinOp::Quantize,
                version: 1,
                options: OpOptions::None,
                inputs: vec![Some(f)],
                outputs: vec![q],
            },
        );
    }
    for k in 0..g.outputs.len() {
        let q = g.outputs[k];
        let f = float_twin(g, q);
        g.outputs[k] = f;
        g.nodes.push(Node {
            op: BuiltinOp::Dequantize,
            version: 1,
            options: OpOptions::None,
            inputs: vec![Some(q)],
            outputs: vec![f],
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::*;
    use super::*;
    use crate::nn::transform::ir::{Activation, Padding};

    /// conv 3×3 → relu6 (fused) → depthwise → avg pool → reshape → FC → softmax.
    fn small_cnn() -> Graph {
        let mut b = Builder::default();
        let x = b.act(&[1, 8, 8, 3]);
        let w = b.constant(&[4, 3, 3, 3], 1);
        let bias = b.constant(&[4], 2);
        let h1 = b.act(&[1, 8, 8, 4]);
        b.conv(&[x, w, bias], h1, 1, Activation::Relu6);
        let dw = b.constant(&[1, 3, 3, 4], 3);
        let dbias = b.constant(&[4], 4);
        let h2 = b.act(&[1, 4, 4, 4]);
        b.depthwise(&[h1, dw, dbias], h2, 2, Activation::Relu);
        let p = b.act(&[1, 1, 1, 4]);
        b.node(
            BuiltinOp::AveragePool2d,
            OpOptions::Pool2d {
                padding: Padding::Valid,
                stride_w: 4,
                stride_h: 4,
                filter_width: 4,
                filter_height: 4,
                activation: Activation::None,
            },
            &[h2],
            &[p],
        );
        let flat = b.act(&[1, 4]);
        b.node(
            BuiltinOp::Reshape,
            OpOptions::Reshape {
                new_shape: Some(vec![1, 4]),
            },
            &[p],
            &[flat],
        );
        let fw = b.weights(4, 5, 5);
        let logits = b.act(&[1, 5]);
        b.fc(flat, fw, logits);
        let probs = b.act(&[1, 5]);
        b.node(
            BuiltinOp::Softmax,
            OpOptions::Softmax { beta: 1.0 },
            &[logits],
            &[probs],
        );
        b.finish(&[x], &[probs])
    }

    fn samples(n: usize) -> Vec<Vec<Vec<f32>>> {
        (0..n).map(|s| vec![values(192, 100 + s as u64)]).collect()
    }

    #[test]
    fn the_int8_model_follows_the_float_one() {
        let float = small_cnn();
        for io in [Io::Int8, Io::Float] {
            let mut g = float.clone();
            let opt = QuantizeOptions {
                range: Range::MinMax,
                io,
            };
            let line = quantize_graph(&mut g, &samples(16), &opt).unwrap();
            assert!(line.contains("16 calibration samples"), "{line}");
            // Every activation between the edges is int8, weights per channel, the softmax
            // output at TFLite's fixed 1/256.
            let conv_w = &g.tensors[g
                .nodes
                .iter()
                .find(|n| n.op == BuiltinOp::Conv2d)
                .unwrap()
                .inputs[1]
                .unwrap()];
            assert_eq!(conv_w.dtype, DType::I8);
            assert_eq!(conv_w.quant.as_ref().unwrap().scale.len(), 4);
            let sm = g.nodes.iter().find(|n| n.op == BuiltinOp::Softmax).unwrap();
            assert_eq!(
                g.tensors[sm.outputs[0]].quant,
                Some(per_tensor(1.0 / 256.0, -128))
            );
            let edge = if io == Io::Int8 {
                DType::I8
            } else {
                DType::F32
            };
            assert_eq!(g.tensors[g.inputs[0]].dtype, edge);
            assert_eq!(g.tensors[g.outputs[0]].dtype, edge);
            // On inputs it was not calibrated on, the probabilities stay close to the float
            // model's (softmax output step 1/256; a few steps of accumulated rounding).
            let model = LoadedModel::from_graph(&g, Packing::Portable).unwrap();
            let float_model = LoadedModel::from_graph(&float, Packing::Portable).unwrap();
            for s in 0..4u64 {
                let input = values(192, 900 + s);
                let run = |m: &LoadedModel| {
                    let mut r = m.runner();
                    r.set_input_f32(0, &input).unwrap();
                    r.run().unwrap();
                    r.output_f32(0).unwrap()
                };
                let (q, f) = (run(&model), run(&float_model));
                for (a, b) in q.iter().zip(&f) {
                    assert!((a - b).abs() <= 6.0 / 256.0, "io {io:?}: {q:?} vs {f:?}");
                }
            }
        }
    }

    #[test]
    fn percentile_ranges_are_narrower_and_bad_options_fail() {
        let mut seen = Observed::default();
        let v: Vec<f32> = (0..1000).map(|i| i as f32 / 10.0 - 20.0).collect();
        seen.add(&v, true);
        seen.add(&[500.0], true); // one outlier
        assert_eq!(seen.range(Range::MinMax), (-20.0, 500.0));
        let (lo, hi) = seen.range(Range::Percentile(99.0));
        assert!(lo > -20.5 && hi < 100.0, "{lo} {hi}");
        let mut g = small_cnn();
        for bad in [
            "quantize",
            "quantize(calibration=/nonexistent/dir)",
            "quantize(calibration=x, range=percentile:20)",
            "quantize(calibration=x, io=u8)",
        ] {
            let p = super::super::Pipeline::parse(bad).unwrap();
            assert!(p.run(&mut g, |_, _, _, _| {}).is_err(), "{bad}");
        }
    }
}
