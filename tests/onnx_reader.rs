//! The ONNX reader and importer on hand-built and damaged files: malformed protobuf
//! (truncated, bad varints, wrong wire types, lengths out of range), external data, opsets
//! out of range and unsupported operators are errors that say what, never panics; every
//! prefix and many byte flips of a real fixture load or fail cleanly.

use edgemm::nn::transform::onnx::{import_onnx, is_onnx, parse_onnx, OnnxOptions};
use edgemm::nn::transform::{LoadedModel, Packing};

// ---- a tiny protobuf writer -----------------------------------------------------------

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn key(field: u32, wire: u8, out: &mut Vec<u8>) {
    varint(u64::from(field) << 3 | u64::from(wire), out);
}

fn int(field: u32, v: i64) -> Vec<u8> {
    let mut o = Vec::new();
    key(field, 0, &mut o);
    varint(v as u64, &mut o);
    o
}

fn bytes(field: u32, b: &[u8]) -> Vec<u8> {
    let mut o = Vec::new();
    key(field, 2, &mut o);
    varint(b.len() as u64, &mut o);
    o.extend_from_slice(b);
    o
}

fn float(field: u32, v: f32) -> Vec<u8> {
    let mut o = Vec::new();
    key(field, 5, &mut o);
    o.extend_from_slice(&v.to_le_bytes());
    o
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// `ValueInfoProto` of a float tensor with these dims (`-1` = symbolic "batch").
fn value_info(name: &str, dims: &[i64]) -> Vec<u8> {
    let shape: Vec<u8> = dims
        .iter()
        .flat_map(|&d| {
            let dim = if d < 0 { bytes(2, b"batch") } else { int(1, d) };
            bytes(1, &dim)
        })
        .collect();
    let tensor = cat(&[int(1, 1), bytes(2, &shape)]);
    cat(&[bytes(1, name.as_bytes()), bytes(2, &bytes(1, &tensor))])
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: &[Vec<u8>]) -> Vec<u8> {
    let mut n = Vec::new();
    for i in inputs {
        n.extend(bytes(1, i.as_bytes()));
    }
    for o in outputs {
        n.extend(bytes(2, o.as_bytes()));
    }
    n.extend(bytes(4, op.as_bytes()));
    for a in attrs {
        n.extend(bytes(5, a));
    }
    n
}

/// A float initializer with raw data.
fn initializer(name: &str, dims: &[i64], values: &[f32]) -> Vec<u8> {
    let mut t = Vec::new();
    for &d in dims {
        t.extend(int(1, d));
    }
    t.extend(int(2, 1));
    t.extend(bytes(8, name.as_bytes()));
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    t.extend(bytes(9, &raw));
    t
}

fn model(graph: &[u8], opset: i64) -> Vec<u8> {
    cat(&[
        int(1, 8),
        bytes(2, b"hand"),
        bytes(7, graph),
        bytes(8, &cat(&[bytes(1, b""), int(2, opset)])),
    ])
}

/// x[batch, 4] → Relu(x · 1.5 + b) with `b` an initializer: Mul, Add, Relu.
fn small_graph(extra_init: &[u8]) -> Vec<u8> {
    cat(&[
        bytes(1, &node("Mul", &["x", "s"], &["m"], &[])),
        bytes(1, &node("Add", &["m", "b"], &["a"], &[])),
        bytes(1, &node("Relu", &["a"], &["y"], &[])),
        bytes(2, b"g"),
        bytes(5, &initializer("s", &[], &[1.5])),
        bytes(5, &initializer("b", &[4], &[-1.0, 0.0, 1.0, 2.0])),
        extra_init.to_vec(),
        bytes(11, &value_info("x", &[-1, 4])),
        bytes(12, &value_info("y", &[-1, 4])),
    ])
}

fn load(bytes: &[u8]) -> Result<LoadedModel, String> {
    LoadedModel::from_onnx(bytes, &OnnxOptions::default(), Packing::Portable)
        .map_err(|e| e.to_string())
}

fn err_of(bytes: &[u8]) -> String {
    match load(bytes) {
        Ok(_) => panic!("loaded"),
        Err(e) => e,
    }
}

#[test]
fn a_hand_built_model_runs() {
    let m = model(&small_graph(&[]), 13);
    assert!(is_onnx(&m));
    let loaded = load(&m).unwrap();
    let mut r = loaded.runner();
    r.set_input_f32(0, &[1.0, -1.0, 0.0, 2.0]).unwrap();
    r.run().unwrap();
    assert_eq!(r.output_f32(0).unwrap(), [0.5, 0.0, 1.0, 5.0]);
    // The same through the sniffing loader.
    assert!(LoadedModel::load(&m).is_ok());
    // Batch fixed by an input shape instead of 1.
    let opts = OnnxOptions {
        input_shapes: vec![("x".into(), vec![3, 4])],
        ..OnnxOptions::default()
    };
    let g = import_onnx(&m, &opts).unwrap();
    assert_eq!(g.tensors[g.inputs[0]].shape, [3, 4]);
    let bad = OnnxOptions {
        input_shapes: vec![("nope".into(), vec![3, 4])],
        ..OnnxOptions::default()
    };
    assert!(import_onnx(&m, &bad).is_err());
}

#[test]
fn malformed_protobuf_is_an_error() {
    let good = model(&small_graph(&[]), 13);
    // Truncated anywhere.
    for n in 0..good.len() {
        let _ = parse_onnx(&good[..n]);
        let _ = load(&good[..n]);
    }
    assert!(err_of(&good[..good.len() - 3]).contains("past the end"));
    // A varint of 11 bytes.
    let mut v = vec![0x08];
    v.extend([0xff; 10]);
    v.push(0x01);
    assert!(err_of(&v).contains("varint"));
    // A tenth varint byte above 1.
    let mut v = vec![0x08];
    v.extend([0xff; 9]);
    v.push(0x02);
    assert!(err_of(&v).contains("64 bits"));
    // ir_version (field 1) sent as length-delimited.
    let e = err_of(&cat(&[bytes(1, b"xy"), bytes(7, &small_graph(&[]))]));
    assert!(e.contains("wire type 2, expected 0"), "{e}");
    // The graph (field 7) as a varint.
    assert!(err_of(&cat(&[int(1, 8), int(7, 3)])).contains("wire type 0, expected 2"));
    // A length past the end, and an absurd one.
    let mut v = int(1, 8);
    key(7, 2, &mut v);
    varint(1000, &mut v);
    v.extend([0; 10]);
    assert!(err_of(&v).contains("past the end"));
    let mut v = int(1, 8);
    key(7, 2, &mut v);
    varint(u64::MAX, &mut v);
    assert!(load(&v).is_err());
    // Groups and unknown wire types.
    assert!(err_of(&[0x08, 0x08, 0x0b]).contains("group"));
    assert!(err_of(&[0x08, 0x08, 0x0e]).contains("wire type"));
    // Packed floats not a multiple of 4 (float_data in an initializer).
    let t = cat(&[int(1, 1), int(2, 1), bytes(8, b"s"), bytes(4, &[0, 0, 128])]);
    let e = err_of(&model(&small_graph(&bytes(5, &t)), 13));
    assert!(e.contains("multiple of 4"), "{e}");
}

#[test]
fn tensor_data_is_checked() {
    // Raw data shorter than the dims say.
    let t = cat(&[int(1, 3), int(2, 1), bytes(8, b"t"), bytes(9, &[0; 8])]);
    let e = err_of(&model(&small_graph(&bytes(5, &t)), 13));
    assert!(e.contains("does not match its shape"), "{e}");
    // Typed float_data (packed, and unpacked) is read too.
    let packed: Vec<u8> = [1f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let t = cat(&[int(1, 2), int(2, 1), bytes(8, b"t"), bytes(4, &packed)]);
    assert!(load(&model(&small_graph(&bytes(5, &t)), 13)).is_ok());
    let t = cat(&[
        int(1, 2),
        int(2, 1),
        bytes(8, b"t"),
        float(4, 1.0),
        float(4, 2.0),
    ]);
    assert!(load(&model(&small_graph(&bytes(5, &t)), 13)).is_ok());
    // A negative dimension.
    let t = cat(&[int(1, -2), int(2, 1), bytes(8, b"t")]);
    assert!(err_of(&model(&small_graph(&bytes(5, &t)), 13)).contains("negative"));
    // Strings are refused.
    let t = cat(&[int(1, 1), int(2, 8), bytes(8, b"t"), bytes(6, b"hi")]);
    assert!(err_of(&model(&small_graph(&bytes(5, &t)), 13)).contains("string"));
}

#[test]
fn external_data_is_an_error_that_says_so() {
    let ext = cat(&[bytes(1, b"location"), bytes(2, b"weights.bin")]);
    let t = cat(&[
        int(1, 4),
        int(2, 1),
        bytes(8, b"w"),
        bytes(13, &ext),
        int(14, 1),
    ]);
    let e = err_of(&model(&small_graph(&bytes(5, &t)), 13));
    assert!(e.contains("external"), "{e}");
    let t = cat(&[int(1, 4), int(2, 1), bytes(8, b"w"), int(14, 1)]);
    let e = err_of(&model(&small_graph(&bytes(5, &t)), 13));
    assert!(e.contains("EXTERNAL"), "{e}");
}

#[test]
fn opsets_outside_11_to_21_are_refused() {
    for v in [10, 22] {
        let e = err_of(&model(&small_graph(&[]), v));
        assert!(e.contains(&format!("opset {v} is not supported")), "{e}");
    }
    for v in [11, 21] {
        assert!(load(&model(&small_graph(&[]), v)).is_ok());
    }
    let no_opset = cat(&[int(1, 8), bytes(7, &small_graph(&[]))]);
    assert!(err_of(&no_opset).contains("opset"));
}

#[test]
fn unsupported_operators_and_attributes_name_the_node() {
    let g = |n: Vec<u8>, w: Vec<u8>| {
        model(
            &cat(&[
                bytes(1, &n),
                w,
                bytes(11, &value_info("x", &[1, 4, 5, 5])),
                bytes(12, &value_info("y", &[1, 4, 5, 5])),
            ]),
            13,
        )
    };
    let e = err_of(&g(node("Einsum", &["x"], &["y"], &[]), vec![]));
    assert!(
        e.contains("\"Einsum\"") && e.contains("not supported"),
        "{e}"
    );
    // A grouped convolution (group 2 of 4 channels).
    let attr = cat(&[bytes(1, b"group"), int(3, 2), int(20, 2)]);
    let w = bytes(5, &initializer("w", &[4, 2, 1, 1], &[0.5; 8]));
    let e = err_of(&g(node("Conv", &["x", "w"], &["y"], &[attr]), w));
    assert!(
        e.contains("grouped convolution (group 2 of 4 channels)"),
        "{e}"
    );
    // Reflect padding.
    let attr = cat(&[bytes(1, b"mode"), bytes(4, b"reflect"), int(20, 3)]);
    let p = bytes(5, &{
        let mut t = int(1, 8);
        t.extend(int(2, 7));
        t.extend(bytes(8, b"p"));
        t.extend(bytes(9, &[0u8; 64]));
        t
    });
    let e = err_of(&g(node("Pad", &["x", "p"], &["y"], &[attr]), p));
    assert!(e.contains("reflect"), "{e}");
    // Another domain.
    let mut n = node("Relu", &["x"], &["y"], &[]);
    n.extend(bytes(7, b"com.microsoft"));
    assert!(err_of(&g(n, vec![])).contains("domain"));
    // An input read before it is written.
    let e = err_of(&g(node("Relu", &["z"], &["y"], &[]), vec![]));
    assert!(e.contains("not produced"), "{e}");
}

/// An int64 initializer (typed `int64_data`, packed).
fn ints(name: &str, values: &[i64]) -> Vec<u8> {
    let mut packed = Vec::new();
    for &v in values {
        varint(v as u64, &mut packed);
    }
    cat(&[
        int(1, values.len() as i64),
        int(2, 7),
        bytes(8, name.as_bytes()),
        bytes(7, &packed),
    ])
}

#[test]
fn hostile_constant_folding_is_an_error_not_an_overflow() {
    // Slice of a constant with step i64::MIN (found by the fuzzer: an overflow), and on an
    // empty axis.
    for (data, step) in [(&[1.0f32, 2.0, 3.0, 4.0][..], i64::MIN), (&[][..], -1)] {
        let g = cat(&[
            bytes(1, &node("Slice", &["d", "s", "e", "a", "st"], &["c"], &[])),
            bytes(1, &node("Add", &["x", "c"], &["y"], &[])),
            bytes(5, &initializer("d", &[data.len() as i64], data)),
            bytes(5, &ints("s", &[0])),
            bytes(5, &ints("e", &[4])),
            bytes(5, &ints("a", &[0])),
            bytes(5, &ints("st", &[step])),
            bytes(11, &value_info("x", &[1, 4])),
            bytes(12, &value_info("y", &[1, 4])),
        ]);
        let _ = load(&model(&g, 13));
    }
    // A Reshape to a shape with a zero and huge dimensions.
    let g = cat(&[
        bytes(1, &node("Reshape", &["x", "s"], &["y"], &[])),
        bytes(5, &ints("s", &[0, 1 << 40, 1 << 40])),
        bytes(11, &value_info("x", &[0, 4])),
        bytes(12, &value_info("y", &[1, 4])),
    ]);
    assert!(load(&model(&g, 13)).is_err());
}

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/models/onnx")
        .join(name);
    std::fs::read(p).unwrap()
}

#[test]
fn damaged_fixtures_never_panic() {
    let good = fixture("onnx_mobile_block.onnx");
    assert!(load(&good).is_ok());
    // Every prefix.
    for n in (0..good.len()).step_by(7) {
        let _ = load(&good[..n]);
    }
    // Byte flips, seeded.
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for _ in 0..3000 {
        let mut b = good.clone();
        for _ in 0..1 + next() % 3 {
            let i = (next() as usize) % b.len();
            b[i] = next() as u8;
        }
        if let Ok(m) = load(&b) {
            // Whatever loads also runs.
            let mut r = m.runner();
            let _ = r.run();
        }
    }
}

fn attr_ints(name: &str, v: &[i64]) -> Vec<u8> {
    let mut packed = Vec::new();
    for &x in v {
        varint(x as u64, &mut packed);
    }
    cat(&[bytes(1, name.as_bytes()), bytes(8, &packed), int(20, 7)])
}

fn count(g: &edgemm::nn::transform::ir::Graph, code: i32) -> usize {
    g.nodes.iter().filter(|n| n.op.code() == code).count()
}

const TRANSPOSE: i32 = 39;
const CONV_2D: i32 = 3;

#[test]
fn layout_converts_once_and_cancelling_transposes_vanish() {
    use edgemm::nn::transform::onnx::IoLayout;
    // NCHW x → Conv 3x3 (pads 1) → Relu → Conv 1x1 → y.
    let w1: Vec<f32> = (0..4 * 3 * 9).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
    let w2: Vec<f32> = (0..16).map(|i| (i % 5) as f32 * 0.2 - 0.4).collect();
    let convs = cat(&[
        bytes(
            1,
            &node(
                "Conv",
                &["x", "w1"],
                &["c"],
                &[attr_ints("pads", &[1, 1, 1, 1])],
            ),
        ),
        bytes(1, &node("Relu", &["c"], &["r"], &[])),
        bytes(1, &node("Conv", &["r", "w2"], &["y"], &[])),
        bytes(5, &initializer("w1", &[4, 3, 3, 3], &w1)),
        bytes(5, &initializer("w2", &[4, 4, 1, 1], &w2)),
        bytes(11, &value_info("x", &[-1, 3, 6, 6])),
        bytes(12, &value_info("y", &[-1, 4, 6, 6])),
    ]);
    let m = model(&convs, 13);
    let g = import_onnx(&m, &OnnxOptions::default()).unwrap();
    // One transpose in (NCHW → NHWC), one out; the Relu fused into the first conv.
    assert_eq!(
        (count(&g, TRANSPOSE), count(&g, CONV_2D), g.nodes.len()),
        (2, 2, 4)
    );
    assert_eq!(g.tensors[g.inputs[0]].shape, [1, 3, 6, 6]);
    let nhwc = OnnxOptions {
        io_layout: IoLayout::Nhwc,
        ..OnnxOptions::default()
    };
    let g = import_onnx(&m, &nhwc).unwrap();
    assert_eq!((count(&g, TRANSPOSE), g.nodes.len()), (0, 2));
    assert_eq!(g.tensors[g.inputs[0]].shape, [1, 6, 6, 3]);
    assert_eq!(g.tensors[g.outputs[0]].shape, [1, 6, 6, 4]);

    // A model that declares NHWC and transposes around its conv (what tf2onnx writes):
    // the transposes cancel against the conv's own layout, none is emitted.
    let wrapped = cat(&[
        bytes(
            1,
            &node(
                "Transpose",
                &["x"],
                &["t"],
                &[attr_ints("perm", &[0, 3, 1, 2])],
            ),
        ),
        bytes(
            1,
            &node(
                "Conv",
                &["t", "w1"],
                &["c"],
                &[attr_ints("pads", &[1, 1, 1, 1])],
            ),
        ),
        bytes(
            1,
            &node(
                "Transpose",
                &["c"],
                &["y"],
                &[attr_ints("perm", &[0, 2, 3, 1])],
            ),
        ),
        bytes(5, &initializer("w1", &[4, 3, 3, 3], &w1)),
        bytes(11, &value_info("x", &[1, 6, 6, 3])),
        bytes(12, &value_info("y", &[1, 6, 6, 4])),
    ]);
    let m2 = model(&wrapped, 13);
    let g = import_onnx(&m2, &OnnxOptions::default()).unwrap();
    assert_eq!((count(&g, TRANSPOSE), g.nodes.len()), (0, 1));

    // Both compute the same thing: run them on the same image.
    let img: Vec<f32> = (0..108)
        .map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0)
        .collect();
    let run = |bytes: &[u8], opts: &OnnxOptions, x: &[f32]| {
        let l = LoadedModel::from_onnx(bytes, opts, Packing::Portable).unwrap();
        let mut r = l.runner();
        r.set_input_f32(0, x).unwrap();
        r.run().unwrap();
        r.output_f32(0).unwrap()
    };
    // img is NHWC [1,6,6,3]; the NCHW model takes it transposed.
    let mut nchw = vec![0.0; 108];
    for y in 0..6 {
        for x in 0..6 {
            for c in 0..3 {
                nchw[(c * 6 + y) * 6 + x] = img[(y * 6 + x) * 3 + c];
            }
        }
    }
    let a = run(&m2, &OnnxOptions::default(), &img);
    let b = run(&m, &nhwc, &img);
    let c = run(&m, &OnnxOptions::default(), &nchw);
    // a is conv1 in NHWC: check it against a direct convolution (OIHW weights, pads 1).
    for y in 0..6i32 {
        for x in 0..6i32 {
            for o in 0..4 {
                let mut sum = 0.0;
                for c in 0..3 {
                    for ky in 0..3i32 {
                        for kx in 0..3i32 {
                            let (iy, ix) = (y + ky - 1, x + kx - 1);
                            if (0..6).contains(&iy) && (0..6).contains(&ix) {
                                let v = img[((iy * 6 + ix) * 3) as usize + c];
                                sum += v * w1[((o * 3 + c) * 3 + ky as usize) * 3 + kx as usize];
                            }
                        }
                    }
                }
                let got = a[((y * 6 + x) * 4) as usize + o];
                assert!((got - sum).abs() < 1e-5, "{got} vs {sum}");
            }
        }
    }
    // b (NHWC in and out) and c (NCHW in and out) are the same values.
    assert_eq!(b.len(), 144);
    for y in 0..6 {
        for x in 0..6 {
            for ch in 0..4 {
                let nhwc_v = b[(y * 6 + x) * 4 + ch];
                let nchw_v = c[(ch * 6 + y) * 6 + x];
                assert!((nhwc_v - nchw_v).abs() < 1e-5);
            }
        }
    }
}

/// BatchNormalization imports as a per-channel MUL and ADD (the importer does not fold it);
/// the default pipeline's `fold_batch_norms` takes both into the conv before them.
#[test]
fn batch_norm_imports_as_mul_add_and_the_default_pipeline_folds_it() {
    use edgemm::nn::transform::ir::BuiltinOp;
    use edgemm::nn::transform::passes::{Pipeline, DEFAULT_PIPELINE};
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/models/onnx/onnx_conv_bn_relu.onnx"
    );
    let bytes = std::fs::read(path).unwrap();
    let mut g = import_onnx(&bytes, &OnnxOptions::default()).unwrap();
    let ops = |g: &edgemm::nn::transform::ir::Graph| -> Vec<BuiltinOp> {
        g.nodes.iter().map(|n| n.op).collect()
    };
    let before = ops(&g);
    assert!(
        before.contains(&BuiltinOp::Mul) && before.contains(&BuiltinOp::Add),
        "{before:?}"
    );
    Pipeline::parse(DEFAULT_PIPELINE)
        .unwrap()
        .run(&mut g, |_, _, _, _| {})
        .unwrap();
    let after = ops(&g);
    assert!(
        !after.contains(&BuiltinOp::Mul) && !after.contains(&BuiltinOp::Add),
        "{after:?}"
    );
    assert_eq!(after.iter().filter(|&&o| o == BuiltinOp::Conv2d).count(), 1);
}
