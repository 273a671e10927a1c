//! Every fixture model of `tests/models/` (made by `scripts/make-test-models.py` with the real
//! TFLite converter; see the MANIFEST's header) through the host run path: `.tflite` →
//! import → lowering → memory plan → blob → validated model → session. Integer outputs must
//! equal TFLite's reference kernels byte for byte; float outputs must be within the
//! manifest's per-output tolerance (max(1e-5·max|ref|, twice the spread between TFLite's
//! reference, optimized and XNNPACK kernels on that fixture)).
//!
//! A model with an operator this build cannot run yet is reported as skipped, by name and
//! operator; every model that loads must match. The weights are run in both layouts:
//! packed for this machine's int8 kernel, and portable; on 1 and 3 threads, which must
//! give the same bytes; and once more after `edgemm convert`'s default pipeline of graph
//! passes (which must not change a single int8 output; float ones stay within the bound).
//!
//! The ONNX fixtures of `tests/models/onnx/` (PyTorch modules exported with torch.onnx, outputs
//! of onnxruntime without graph optimizations) must all import and match within their
//! manifest's bound (max(1e-5·max|ref|, twice the spread between that reference, onnxruntime
//! with every graph optimization, and PyTorch eager)), with the inputs and outputs in the
//! declared NCHW layout and again with `IoLayout::Nhwc` (4-D inputs and outputs transposed
//! here).

use edgemm::nn::transform::import::import_tflite;
use edgemm::nn::transform::onnx::{IoLayout, OnnxOptions};
use edgemm::nn::transform::passes::{Pipeline, DEFAULT_PIPELINE};
use edgemm::nn::transform::{LoadedModel, Packing};
use std::path::Path;

struct Fixture {
    name: String,
    inputs: usize,
    outputs: usize,
    tol: Vec<f64>,
}

fn manifest() -> Vec<Fixture> {
    manifest_in("tests/models/MANIFEST")
}

fn manifest_in(path: &str) -> Vec<Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(dir.join(path)).expect(path);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let name = words.next().unwrap().to_string();
        let (mut inputs, mut outputs, mut tol) = (0, 0, Vec::new());
        for w in words {
            let (k, v) = w.split_once('=').unwrap();
            match k {
                "inputs" => inputs = v.parse().unwrap(),
                "outputs" => outputs = v.parse().unwrap(),
                "tol" => tol = v.split(',').map(|t| t.parse().unwrap()).collect(),
                _ => {}
            }
        }
        out.push(Fixture {
            name,
            inputs,
            outputs,
            tol,
        });
    }
    out
}

fn read(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/models")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs one fixture; `Ok(None)` when it cannot load because of an unsupported operator.
fn run_fixture(f: &Fixture, packing: Packing, passes: bool) -> Result<Option<()>, String> {
    let bytes = read(&format!("{}.tflite", f.name));
    let loaded = if passes {
        import_tflite(&bytes).and_then(|mut g| {
            let pipeline = Pipeline::parse(DEFAULT_PIPELINE)?;
            pipeline.run(&mut g, |_, _, _, _| {})?;
            LoadedModel::from_graph(&g, packing)
        })
    } else {
        LoadedModel::from_tflite(&bytes, packing)
    };
    // A model with operators this build lacks is refused with an error naming one of them.
    if f.name.starts_with("unsupported") {
        return match loaded {
            Err(e) if e.to_string().contains("not supported") => Ok(Some(())),
            Err(e) => Err(format!("an unsupported model gave another error: {e}")),
            Ok(_) => Err("a model of unsupported operators loaded".into()),
        };
    }
    // Dynamic-range models are refused, with an error that says what they are.
    if f.name.starts_with("hybrid") {
        return match loaded {
            Err(e) if e.to_string().contains("hybrid") => Ok(Some(())),
            Err(e) => Err(format!("a hybrid model gave another error: {e}")),
            Ok(_) => Err("a hybrid model loaded".into()),
        };
    }
    let model = match loaded {
        Ok(m) => m,
        Err(e) if e.to_string().contains("not supported") => return Ok(None),
        Err(e) => return Err(format!("load: {e}")),
    };
    let mut runner = model.runner();
    for j in 0..f.inputs {
        runner
            .set_input(j, &read(&format!("{}.in{j}.bin", f.name)))
            .map_err(|e| format!("input {j}: {e}"))?;
    }
    runner.run().map_err(|e| format!("run: {e}"))?;
    // The same bytes on several threads.
    let mut threaded = model.runner();
    threaded.set_threads(3);
    for j in 0..f.inputs {
        threaded
            .set_input(j, &read(&format!("{}.in{j}.bin", f.name)))
            .map_err(|e| format!("input {j}: {e}"))?;
    }
    threaded
        .run()
        .map_err(|e| format!("run on 3 threads: {e}"))?;
    for j in 0..f.outputs {
        if threaded.output(j).ok() != runner.output(j).ok() {
            return Err(format!("output {j} differs on 3 threads"));
        }
    }
    for j in 0..f.outputs {
        let want = read(&format!("{}.out{j}.bin", f.name));
        let got = runner.output(j).map_err(|e| format!("output {j}: {e}"))?;
        if got.len() != want.len() {
            return Err(format!(
                "output {j}: {} bytes, want {}",
                got.len(),
                want.len()
            ));
        }
        let info = model
            .model()
            .tensor(model.model().output(j).unwrap())
            .unwrap();
        if info.dtype == edgemm::nn::DType::F32 {
            let tol = f.tol.get(j).copied().unwrap_or(0.0);
            let f32s = |b: &[u8]| -> Vec<f32> {
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect()
            };
            let (g, w) = (f32s(&got), f32s(&want));
            for (i, (a, b)) in g.iter().zip(&w).enumerate() {
                let d = (*a as f64 - *b as f64).abs();
                // NaN fails too.
                if d.is_nan() || d > tol {
                    return Err(format!(
                        "output {j}[{i}] = {a}, reference {b}, |diff| {d:e} > {tol:e}"
                    ));
                }
            }
        } else if got != want {
            let i = got.iter().zip(&want).position(|(a, b)| a != b).unwrap();
            let bad = got.iter().zip(&want).filter(|(a, b)| a != b).count();
            return Err(format!(
                "output {j}: {bad} of {} bytes differ; first at {i}: {} vs reference {}",
                got.len(),
                got[i],
                want[i]
            ));
        }
    }
    Ok(Some(()))
}

#[test]
fn every_fixture_matches_tflite_reference_kernels() {
    let fixtures = manifest();
    assert!(!fixtures.is_empty(), "no fixtures in tests/models/MANIFEST");
    let (mut ran, mut skipped, mut failed) = (0, Vec::new(), Vec::new());
    for f in &fixtures {
        let routes = [
            (Packing::Host, false, "host"),
            (Packing::Portable, false, "portable"),
            (Packing::Host, true, "host, default passes"),
        ];
        for (packing, passes, route) in routes {
            match run_fixture(f, packing, passes) {
                Ok(Some(())) => ran += 1,
                Ok(None) => {
                    if route == "host" {
                        skipped.push(f.name.clone());
                    }
                }
                Err(e) => failed.push(format!("{} ({route}): {e}", f.name)),
            }
        }
    }
    println!(
        "fixtures: {} runs matched, {} models SKIPPED (an operator not supported yet): {}",
        ran,
        skipped.len(),
        skipped.join(" ")
    );
    for f in &failed {
        println!("FAILED {f}");
    }
    assert!(failed.is_empty(), "{} fixture runs failed", failed.len());
    assert!(ran > 0, "no fixture ran");
}

/// Every fixture with a pointwise CONV_2D feeding a DEPTHWISE_CONV_2D, lowered with every
/// such pair fused (`lower_fusing` with no size bound: the fixtures' tensors are below the
/// default's) and without any: the same output bytes, on 1 and 3 threads, host and portable
/// blobs, and with `quantize_weights`' int8 weights (the default passes).
#[test]
fn fused_expand_depthwise_gives_the_bytes_of_the_pair() {
    use edgemm::nn::transform::blob_writer::{write_blob, WriteOptions};
    use edgemm::nn::transform::lower::lower_fusing;
    use edgemm::nn::transform::plan::plan;
    let (mut fused_models, mut pairs) = (0, 0);
    for f in manifest() {
        let bytes = read(&format!("{}.tflite", f.name));
        let Ok(graph) = import_tflite(&bytes) else {
            continue;
        };
        let mut passed = graph.clone();
        if Pipeline::parse(DEFAULT_PIPELINE)
            .and_then(|p| p.run(&mut passed, |_, _, _, _| {}))
            .is_err()
        {
            continue;
        }
        for (g, packing) in [
            (&graph, Packing::Host),
            (&graph, Packing::Portable),
            (&passed, Packing::Host),
        ] {
            let load = |min_bytes: usize| {
                let l = lower_fusing(g, packing, min_bytes).ok()?;
                let fused = l.ops.iter().filter(|o| o.code == 127).count();
                let blob = write_blob(&l, &plan(&l), WriteOptions::default()).ok()?;
                Some((LoadedModel::from_blob(&blob).unwrap(), fused))
            };
            let (Some((apart, 0)), Some((fused, n))) = (load(usize::MAX), load(0)) else {
                continue;
            };
            if n == 0 {
                continue;
            }
            fused_models += 1;
            pairs += n;
            let out = |m: &LoadedModel, threads: usize| {
                let mut r = m.runner();
                r.set_threads(threads);
                for j in 0..f.inputs {
                    r.set_input(j, &read(&format!("{}.in{j}.bin", f.name)))
                        .unwrap();
                }
                r.run().unwrap();
                (0..f.outputs)
                    .map(|j| r.output(j).unwrap())
                    .collect::<Vec<_>>()
            };
            let want = out(&apart, 1);
            for threads in [1, 3] {
                assert!(
                    out(&fused, threads) == want,
                    "{} ({packing:?}, {threads} threads): the fused model's output differs",
                    f.name
                );
            }
        }
    }
    println!("{fused_models} fixture conversions with {pairs} fused pairs gave the same bytes");
    assert!(
        fused_models >= 3,
        "only {fused_models} fixture conversions had a pair"
    );
}

/// Every float fixture after `quantize_weights(minimum_size=0)` (in the default pipeline,
/// after `fold_batch_norms`): each layer's output moves by at most `(s_c/2)·Σ|x|` (see the
/// pass), which later layers carry on. Where int8 weights are only in layers reading a model
/// input, that bound (with `max_c s_c`, k and max|x|) plus the float tolerance is what each
/// output must meet; deeper models (the quantized layers' inputs not known here) get their
/// float tolerance plus 2% of the output's range (max|ref|), an empirical margin. Prints the
/// worst |diff| relative to the range.
#[test]
fn every_float_fixture_stays_within_bound_after_quantize_weights() {
    let text = DEFAULT_PIPELINE.replace(
        "fold_batch_norms",
        "fold_batch_norms quantize_weights(minimum_size=0)",
    );
    let pipeline = Pipeline::parse(&text).unwrap();
    let (mut ran, mut quantized, mut worst, mut failed) = (0, 0, 0f64, Vec::new());
    for f in manifest() {
        if !f.name.ends_with("_f32") && !f.name.contains("f16w") {
            continue;
        }
        let bytes = read(&format!("{}.tflite", f.name));
        let Ok(mut g) = import_tflite(&bytes) else {
            continue; // hybrid: refused at import (see the first test)
        };
        let report = match pipeline.run(&mut g, |_, _, _, _| {}) {
            Ok(r) => r,
            Err(e) if e.to_string().contains("not supported") => continue,
            Err(e) => panic!("{}: {e}", f.name),
        };
        if report
            .lines
            .iter()
            .any(|(p, l)| p == "quantize_weights" && !l.starts_with("0 "))
        {
            quantized += 1;
        }
        let model = match LoadedModel::from_graph(&g, Packing::Host) {
            Ok(m) => m,
            Err(e) if e.to_string().contains("not supported") => continue,
            Err(e) => panic!("{}: {e}", f.name),
        };
        let mut r = model.runner();
        let mut max_in = 0f64;
        for j in 0..f.inputs {
            let x = read(&format!("{}.in{j}.bin", f.name));
            max_in = f32s(&x).iter().fold(max_in, |m, v| m.max(v.abs() as f64));
            r.set_input(j, &x).unwrap();
        }
        r.run().unwrap();
        ran += 1;
        // The derived bound where it applies directly: int8 weights only in layers that read
        // a model input, so an output moves by at most max_c(s_c)/2 · k · max|x| (a fused
        // clamp moves it no more).
        let mut direct = Some(0f64);
        for n in &g.nodes {
            let Some(Some(w)) = n.inputs.get(1) else {
                continue;
            };
            let w = &g.tensors[*w];
            let Some(q) = w
                .quant
                .as_ref()
                .filter(|_| w.dtype == edgemm::nn::DType::I8)
            else {
                continue;
            };
            let reads_input = n.inputs[0].is_some_and(|x| g.inputs.contains(&x));
            let k = (w.shape.iter().product::<usize>() / w.shape[0]) as f64;
            let s = q.scale.iter().fold(0f32, |m, &v| m.max(v)) as f64;
            direct = direct
                .filter(|_| reads_input)
                .map(|b| b + s / 2.0 * k * max_in);
        }
        for j in 0..f.outputs {
            let want = f32s(&read(&format!("{}.out{j}.bin", f.name)));
            let Ok(got) = r.output_f32(j) else { continue };
            let range = want.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
            let bound = f.tol.get(j).copied().unwrap_or(0.0) + direct.unwrap_or(0.02 * range);
            for (a, b) in got.iter().zip(&want) {
                let d = (*a as f64 - *b as f64).abs();
                if range > 0.0 {
                    worst = worst.max(d / range);
                }
                if d.is_nan() || d > bound {
                    failed.push(format!(
                        "{} output {j}: {a} vs {b} (bound {bound:e})",
                        f.name
                    ));
                    break;
                }
            }
        }
    }
    println!(
        "quantize_weights: {ran} float fixtures ran ({quantized} with int8 weights); worst |diff| {:.3}% of the output range",
        worst * 100.0
    );
    for f in &failed {
        println!("FAILED {f}");
    }
    assert!(failed.is_empty(), "{} fixtures out of bound", failed.len());
    assert!(quantized > 10, "too few fixtures had weights to quantize");
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// NCHW f32 values to NHWC (`to_nhwc`) or back.
fn permute_4d(v: &[f32], nchw: &[usize], to_nhwc: bool) -> Vec<f32> {
    let [n, c, h, w] = <[usize; 4]>::try_from(nchw).unwrap();
    let mut out = vec![0.0; v.len()];
    for (i0, (b, ch, y, x)) in (0..n)
        .flat_map(|b| {
            (0..c).flat_map(move |ch| (0..h).flat_map(move |y| (0..w).map(move |x| (b, ch, y, x))))
        })
        .enumerate()
    {
        let i1 = ((b * h + y) * w + x) * c + ch;
        if to_nhwc {
            out[i1] = v[i0];
        } else {
            out[i0] = v[i1];
        }
    }
    out
}

/// Runs one ONNX fixture; the worst |diff| / tol over its outputs.
fn run_onnx(f: &Fixture, packing: Packing, layout: IoLayout) -> Result<f64, String> {
    let bytes = read(&format!("onnx/{}.onnx", f.name));
    let opts = OnnxOptions {
        io_layout: layout,
        ..OnnxOptions::default()
    };
    let model = LoadedModel::from_onnx(&bytes, &opts, packing).map_err(|e| format!("load: {e}"))?;
    let m = model.model();
    let mut runner = model.runner();
    // Shapes as declared (NCHW) for the 4-D ones under Nhwc: [n, h, w, c] → [n, c, h, w].
    let nchw = |t: usize| {
        let s: Vec<usize> = m
            .tensor(t)
            .unwrap()
            .shape()
            .dims()
            .iter()
            .map(|&d| d as usize)
            .collect();
        match (layout, &s[..]) {
            (IoLayout::Nhwc, &[n, h, w, c]) => Some(vec![n, c, h, w]),
            _ => None,
        }
    };
    for j in 0..f.inputs {
        let x = f32s(&read(&format!("onnx/{}.in{j}.bin", f.name)));
        let x = match nchw(m.input(j).unwrap()) {
            Some(s) => permute_4d(&x, &s, true),
            None => x,
        };
        runner
            .set_input_f32(j, &x)
            .map_err(|e| format!("input {j}: {e}"))?;
    }
    runner.run().map_err(|e| format!("run: {e}"))?;
    let mut worst = 0f64;
    for j in 0..f.outputs {
        let want = f32s(&read(&format!("onnx/{}.out{j}.bin", f.name)));
        let got = runner
            .output_f32(j)
            .map_err(|e| format!("output {j}: {e}"))?;
        let got = match nchw(m.output(j).unwrap()) {
            Some(s) => permute_4d(&got, &s, false),
            None => got,
        };
        if got.len() != want.len() {
            return Err(format!(
                "output {j}: {} values, want {}",
                got.len(),
                want.len()
            ));
        }
        let tol = f.tol[j];
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            let d = (*a as f64 - *b as f64).abs();
            if d.is_nan() || d > tol {
                return Err(format!(
                    "output {j}[{i}] = {a}, onnxruntime {b}, |diff| {d:e} > {tol:e}"
                ));
            }
            worst = worst.max(d / tol);
        }
    }
    Ok(worst)
}

#[test]
fn every_onnx_fixture_matches_onnxruntime() {
    let fixtures = manifest_in("tests/models/onnx/MANIFEST");
    assert!(
        !fixtures.is_empty(),
        "no fixtures in tests/models/onnx/MANIFEST"
    );
    let (mut ran, mut failed, mut worst) = (0, Vec::new(), 0f64);
    for f in &fixtures {
        for packing in [Packing::Host, Packing::Portable] {
            for layout in [IoLayout::AsDeclared, IoLayout::Nhwc] {
                match run_onnx(f, packing, layout) {
                    Ok(w) => {
                        ran += 1;
                        worst = worst.max(w);
                    }
                    Err(e) => {
                        failed.push(format!("{} ({}, {layout:?}): {e}", f.name, packing.name()))
                    }
                }
            }
        }
    }
    println!(
        "onnx fixtures: {ran} runs matched; worst |diff| at {:.2} of its bound",
        worst
    );
    for f in &failed {
        println!("FAILED {f}");
    }
    assert!(
        failed.is_empty(),
        "{} ONNX fixture runs failed",
        failed.len()
    );
}

// ---- QDQ fixtures (tests/models/onnx/QDQ_MANIFEST): onnxruntime's quantizer output ----------

struct QdqFixture {
    name: String,
    inputs: usize,
    outputs: usize,
    /// Each output's quantized range (255 steps of its last DequantizeLinear's scale).
    range: Vec<f64>,
}

fn qdq_manifest() -> Vec<QdqFixture> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/onnx/QDQ_MANIFEST");
    let text = std::fs::read_to_string(&path).expect("QDQ_MANIFEST");
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut words = line.split_whitespace();
        let mut f = QdqFixture {
            name: words.next().unwrap().to_string(),
            inputs: 0,
            outputs: 0,
            range: Vec::new(),
        };
        for (k, v) in words.filter_map(|w| w.split_once('=')) {
            match k {
                "inputs" => f.inputs = v.parse().unwrap(),
                "outputs" => f.outputs = v.parse().unwrap(),
                "range" => f.range = v.split(',').map(|t| t.parse().unwrap()).collect(),
                _ => {}
            }
        }
        out.push(f);
    }
    out
}

/// Runs one QDQ fixture: it must import as int8 operators (float only at the QUANTIZE and
/// DEQUANTIZE edges); returns the worst |diff| as a fraction of each output's range, after
/// checking the bound (1%) and the top-1 of each row.
fn run_qdq(f: &QdqFixture, packing: Packing) -> Result<f64, String> {
    let bytes = read(&format!("onnx/{}.onnx", f.name));
    let model = LoadedModel::from_onnx(&bytes, &OnnxOptions::default(), packing)
        .map_err(|e| format!("load: {e}"))?;
    let m = model.model();
    for i in 0..m.num_ops() {
        let op = m.op(i).unwrap();
        let x = m.tensor(op.input(0).unwrap()).unwrap();
        let edge = matches!(op.name(), "QUANTIZE" | "DEQUANTIZE");
        if !edge && x.dtype != edgemm::nn::DType::I8 {
            return Err(format!(
                "operator {i} ({}) runs on {:?}",
                op.name(),
                x.dtype
            ));
        }
    }
    let mut runner = model.runner();
    for j in 0..f.inputs {
        let x = f32s(&read(&format!("onnx/{}.in{j}.bin", f.name)));
        runner
            .set_input_f32(j, &x)
            .map_err(|e| format!("input {j}: {e}"))?;
    }
    runner.run().map_err(|e| format!("run: {e}"))?;
    let mut worst = 0f64;
    for j in 0..f.outputs {
        let want = f32s(&read(&format!("onnx/{}.out{j}.bin", f.name)));
        let got = runner
            .output_f32(j)
            .map_err(|e| format!("output {j}: {e}"))?;
        if got.len() != want.len() {
            return Err(format!(
                "output {j}: {} values, want {}",
                got.len(),
                want.len()
            ));
        }
        let bound = 0.01 * f.range[j];
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            let d = (*a as f64 - *b as f64).abs();
            if d.is_nan() || d > bound {
                return Err(format!(
                    "output {j}[{i}] = {a}, onnxruntime {b}, |diff| {d:e} > 1% of {}",
                    f.range[j]
                ));
            }
            worst = worst.max(d / f.range[j]);
        }
        // Top-1 of each row of the last axis (a classifier's rows; ties count as agreeing).
        let shape = m.tensor(m.output(j).unwrap()).unwrap().shape();
        let row = shape.dim(shape.rank() - 1).max(1);
        for (r, (g, w)) in got.chunks(row).zip(want.chunks(row)).enumerate() {
            let top = |v: &[f32]| (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b });
            if w[top(g)] != w[top(w)] {
                return Err(format!(
                    "output {j} row {r}: top-1 {} vs onnxruntime {}",
                    top(g),
                    top(w)
                ));
            }
        }
    }
    Ok(worst)
}

#[test]
fn every_qdq_fixture_matches_onnxruntime_within_one_percent() {
    let fixtures = qdq_manifest();
    assert!(
        !fixtures.is_empty(),
        "no fixtures in tests/models/onnx/QDQ_MANIFEST"
    );
    let (mut ran, mut failed, mut worst) = (0, Vec::new(), 0f64);
    for f in &fixtures {
        for packing in [Packing::Host, Packing::Portable] {
            match run_qdq(f, packing) {
                Ok(w) => {
                    ran += 1;
                    worst = worst.max(w);
                }
                Err(e) => failed.push(format!("{} ({}): {e}", f.name, packing.name())),
            }
        }
    }
    println!("qdq fixtures: {ran} runs within 1% of the output range, same top-1; worst |diff| {:.3}% of the range", 100.0 * worst);
    for f in &failed {
        println!("FAILED {f}");
    }
    assert!(
        failed.is_empty(),
        "{} QDQ fixture runs failed",
        failed.len()
    );
}

// ---- Quantization quality (tests/models/quality/, scripts/quant-quality.py) -------------------

/// Mean |q − f| over every value and the share of rows whose argmax is f's.
fn mae_top1(q: &[f32], f: &[f32], row: usize) -> (f64, f64) {
    let mae = q
        .iter()
        .zip(f)
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .sum::<f64>()
        / f.len().max(1) as f64;
    let top = |v: &[f32]| (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b });
    let rows = f.len() / row;
    let agree = q
        .chunks(row)
        .zip(f.chunks(row))
        .filter(|(a, b)| top(a) == top(b))
        .count();
    (mae, agree as f64 / rows.max(1) as f64)
}

/// On every trained fixture model, edgemm's `quantize` (default pipeline, then quantize on
/// the committed calibration samples) is at least as close to the float model as the TFLite
/// converter's int8 model from the same samples: mean absolute error and top-1 agreement.
#[test]
fn quantize_is_at_least_as_close_to_float_as_the_tflite_converter() {
    use edgemm::nn::transform::passes::quantize::{quantize_graph, Io, QuantizeOptions, Range};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/quality");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/models/quality")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for name in &names {
        let file = |f: &str| read(&format!("quality/{name}/{f}"));
        let mut g = import_tflite(&file("float.tflite")).unwrap();
        Pipeline::parse(DEFAULT_PIPELINE)
            .unwrap()
            .run(&mut g, |_, _, _, _| {})
            .unwrap();
        let n_in = g.tensors[g.inputs[0]].elems();
        let n_out = g.tensors[g.outputs[0]].elems();
        let samples: Vec<Vec<Vec<f32>>> = f32s(&file("calib.bin"))
            .chunks(n_in)
            .map(|x| vec![x.to_vec()])
            .collect();
        let opt = QuantizeOptions {
            range: Range::MinMax,
            io: Io::Float,
        };
        quantize_graph(&mut g, &samples, &opt).unwrap();
        let model = LoadedModel::from_graph(&g, Packing::Host).unwrap();
        let mut runner = model.runner();
        let mut ours = Vec::new();
        for x in f32s(&file("test.bin")).chunks(n_in) {
            runner.set_input_f32(0, x).unwrap();
            runner.run().unwrap();
            ours.extend(runner.output_f32(0).unwrap());
        }
        let float = f32s(&file("float.bin"));
        let (me, te) = mae_top1(&ours, &float, n_out);
        let (mt, tt) = mae_top1(&f32s(&file("tflite_int8.bin")), &float, n_out);
        println!("{name}: edgemm MAE {me:.4e} top-1 {te:.4}; TFLite converter MAE {mt:.4e} top-1 {tt:.4}");
        assert!(
            me <= mt && te >= tt,
            "{name}: edgemm's int8 model is further from the float one"
        );
    }
}
