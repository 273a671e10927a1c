//! The `edgemm` command, run as a process on the fixture models: `run` with input and output
//! files matches TFLite's reference outputs, `inspect` shows the arena plan, `convert` writes
//! a blob that runs to the same bytes, and bad arguments fail with a message that says what
//! is wrong.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models")
}

fn model(name: &str) -> String {
    models().join(name).to_str().unwrap().to_string()
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{test}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn edgemm(args: &[&str]) -> Output {
    // Under user-mode emulation (scripts/cross/*.sh) the host cannot exec the binary itself:
    // EDGEMM_TEST_RUNNER names the emulator command to run it with.
    let runner = std::env::var("EDGEMM_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    let mut cmd = match words.next() {
        Some(emu) => {
            let mut c = Command::new(emu);
            c.args(words).arg(env!("CARGO_BIN_EXE_edgemm"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_edgemm")),
    };
    cmd.args(args).output().expect("runs edgemm")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs edgemm and requires success; returns (stdout, stderr).
fn ok(args: &[&str]) -> (String, String) {
    let o = edgemm(args);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(
        o.status.success(),
        "edgemm {args:?} failed\nstdout:\n{out}\nstderr:\n{err}"
    );
    (out, err)
}

/// Runs edgemm and requires failure with a message on stderr; returns it.
fn fails(args: &[&str]) -> String {
    let o = edgemm(args);
    let err = text(&o.stderr);
    assert!(!o.status.success(), "edgemm {args:?} succeeded");
    assert!(err.starts_with("edgemm: "), "edgemm {args:?}: {err}");
    err
}

#[test]
fn run_with_input_and_output_files_matches_the_reference() {
    let dir = scratch("run");
    let out = dir.join("out0.bin");
    let (stdout, _) = ok(&[
        "run",
        &model("fc_2d_relu_int8.tflite"),
        "--input",
        &model("fc_2d_relu_int8.in0.bin"),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(model("fc_2d_relu_int8.out0.bin")).unwrap()
    );
    // The one output went to its file: nothing to summarize.
    assert!(!stdout.contains("output 0"), "{stdout}");
    // Portable weights give the same bytes.
    let out2 = dir.join("out0-portable.bin");
    ok(&[
        "run",
        &model("fc_2d_relu_int8.tflite"),
        "--portable",
        &format!("--input={}", model("fc_2d_relu_int8.in0.bin")),
        &format!("--output={}", out2.to_str().unwrap()),
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&out2).unwrap());
}

#[test]
fn run_without_inputs_uses_seeded_random_values_and_summarizes() {
    let m = model("fc_3d_keepdims_int8.tflite");
    let (out, err) = ok(&["run", &m, "--repeat", "5", "--profile", "--threads", "2"]);
    assert!(err.contains("seeded random values"), "{err}");
    assert!(out.contains("threads 2"), "{out}");
    for want in [
        "output 0 \"Identity\": int8 [1, 5, 6]",
        "first 8 of 30",
        "argmax",
        "latency_us median=",
        " min=",
        "FULLY_CONNECTED",
        "gmac_s",
        "100.0%",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
    // Seeded: the same values every time, other values with another seed.
    let (again, _) = ok(&["run", &m]);
    let (again2, _) = ok(&["run", &m]);
    assert_eq!(again, again2);
    let (other, _) = ok(&["run", &m, "--seed", "7"]);
    assert_ne!(again, other);
}

#[test]
fn inspect_prints_tensors_operators_and_the_arena() {
    let (out, _) = ok(&["inspect", &model("fc_2d_relu_int8.tflite"), "--portable"]);
    for want in [
        "arena ",
        "greedy-by-size baseline",
        "packing   portable",
        "weights ",
        "FULLY_CONNECTED",
        "params  [",
        "per-channel",
        "const @",
        "arena @",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
    // MACs: a 3×3 convolution of 3 channels to 9×9×6 outputs is 81·6·27.
    let (conv, _) = ok(&["inspect", &model("conv_k3s1_same_relu_int8.tflite")]);
    let macs = 81 * 6 * 27;
    for want in [
        format!("CONV_2D (code 3), {macs} MACs"),
        format!("macs      {macs} multiply-accumulates"),
    ] {
        assert!(conv.contains(&want), "{want:?} missing from\n{conv}");
    }
    // Every unsupported operator at once.
    let err = fails(&["inspect", &model("unsupported_ops_f32.tflite")]);
    for want in ["operators the runtime cannot run", "EXP", "SQRT"] {
        assert!(err.contains(want), "{want:?} missing from\n{err}");
    }
}

#[test]
fn convert_then_run_the_blob_gives_the_same_bytes() {
    let dir = scratch("convert");
    for (name, extra) in [
        ("fc_2d_relu_int8", None),
        ("fc_3d_keepdims_f32", Some("--portable")),
    ] {
        let blob = dir.join(format!("{name}.egm"));
        let mut args = vec![
            "convert".to_string(),
            model(&format!("{name}.tflite")),
            "-o".into(),
            blob.to_str().unwrap().into(),
        ];
        args.extend(extra.map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&args);
        assert_eq!(&std::fs::read(&blob).unwrap()[..4], b"EGMB");
        let (from_tflite, from_blob) = (dir.join("a.bin"), dir.join("b.bin"));
        for (m, out) in [
            (model(&format!("{name}.tflite")), &from_tflite),
            (blob.to_str().unwrap().to_string(), &from_blob),
        ] {
            ok(&[
                "run",
                &m,
                "--input",
                &model(&format!("{name}.in0.bin")),
                "--output",
                out.to_str().unwrap(),
            ]);
        }
        let a = std::fs::read(&from_tflite).unwrap();
        assert_eq!(a, std::fs::read(&from_blob).unwrap(), "{name}");
        if name.ends_with("int8") {
            assert_eq!(
                a,
                std::fs::read(model(&format!("{name}.out0.bin"))).unwrap()
            );
        }
        // The blob inspects too, with the same arena.
        let (blob_info, _) = ok(&["inspect", blob.to_str().unwrap()]);
        assert!(blob_info.contains("edgemm blob"), "{blob_info}");
        assert!(blob_info.contains("layout version 1"), "{blob_info}");
    }
}

#[test]
fn bad_arguments_fail_with_a_clear_message() {
    let m = model("fc_2d_relu_int8.tflite");
    let cases: &[(&[&str], &str)] = &[
        (&[], "no command"),
        (&["frobnicate"], "unknown command \"frobnicate\""),
        (&["run"], "no MODEL given"),
        (&["run", &m, "--bogus"], "unknown option --bogus"),
        (&["inspect", &m, "--repeat", "3"], "unknown option --repeat"),
        (&["run", &m, "--repeat"], "--repeat needs a value"),
        (&["run", &m, "--repeat", "0"], "at least 1"),
        (&["run", &m, "--threads", "two"], "\"two\""),
        (&["run", &m, "--profile=yes"], "--profile takes no value"),
        (&["run", &m, &m], "unexpected argument"),
        (&["convert", &m], "no output file given"),
        (
            &["run", "/nonexistent/model.tflite"],
            "/nonexistent/model.tflite",
        ),
        (&["run", &model("MANIFEST")], "neither an edgemm blob"),
        (
            &["run", &m, "--input", &model("fc_3d_keepdims_int8.in0.bin")],
            "input 0 \"in0\" (int8 [2, 16]) takes 32 bytes",
        ),
        (
            &["run", &m, "--input", &m, "--input", &m],
            "has 1 input, 2 --input files given",
        ),
        (
            &["run", &model("unsupported_ops_f32.tflite")],
            "operators the runtime cannot run",
        ),
    ];
    for (args, want) in cases {
        let err = fails(args);
        assert!(
            err.contains(want),
            "edgemm {args:?}: {want:?} missing from {err}"
        );
    }
    // The wrong-size message names both sizes.
    let err = fails(&["run", &m, "--input", &model("fc_3d_keepdims_int8.in0.bin")]);
    assert!(err.contains("has 60"), "{err}");
}

#[test]
fn every_command_has_help() {
    let (top, _) = ok(&["--help"]);
    for cmd in ["run", "inspect", "convert"] {
        assert!(top.contains(cmd), "{top}");
        let (h, _) = ok(&[cmd, "--help"]);
        assert!(h.starts_with(&format!("usage: edgemm {cmd}")), "{h}");
        assert!(h.contains("--help"), "{h}");
    }
    let (run, _) = ok(&["run", "-h"]);
    for opt in [
        "--input",
        "--output",
        "--repeat",
        "--profile",
        "--threads",
        "--seed",
    ] {
        assert!(run.contains(opt), "{opt} missing from\n{run}");
    }
}

#[test]
fn convert_runs_a_pipeline_with_post_training_quantization() {
    let dir = scratch("quantize");
    let cal = dir.join("calibration");
    std::fs::create_dir_all(&cal).unwrap();
    let name = "conv_k3s1_same_relu_f32";
    std::fs::copy(
        model(&format!("{name}.in0.bin")),
        cal.join("sample0.in0.bin"),
    )
    .unwrap();
    let blob = dir.join("q.egm");
    let pipeline = format!(
        "summarize quantize(calibration={}, io=int8) summarize",
        cal.display()
    );
    let (_, err) = ok(&[
        "convert",
        &model(&format!("{name}.tflite")),
        "-o",
        blob.to_str().unwrap(),
        "--transforms",
        &pipeline,
    ]);
    for want in [
        "[1/3] summarize: 1 nodes (CONV_2D 1)",
        "[2/3] quantize: int8 from 1 calibration sample",
        "[3/3] summarize",
    ] {
        assert!(err.contains(want), "{want:?} missing from\n{err}");
    }
    let (out, _) = ok(&["inspect", blob.to_str().unwrap()]);
    assert!(
        out.lines()
            .any(|l| l.contains("[1, 9, 9, 6]") && l.contains("int8")),
        "{out}"
    );
    // A pipeline error names what is wrong.
    let e = fails(&[
        "convert",
        &model(&format!("{name}.tflite")),
        "-o",
        blob.to_str().unwrap(),
        "--transforms",
        "strip_unused quantise",
    ]);
    assert!(e.contains("quantise"), "{e}");
}

/// `convert --target cortex-m4 --rust` writes a blob this host refuses to run (naming both
/// targets) and the Rust constants a firmware includes; `--target portable` runs here; an
/// unknown target is an error that lists the targets.
#[test]
fn convert_for_another_target_writes_the_blob_and_its_constants() {
    let dir = scratch("convert-target");
    let (blob, rs) = (dir.join("m4.egm"), dir.join("m4.rs"));
    let (blob, rs) = (blob.to_str().unwrap(), rs.to_str().unwrap());
    let src = model("dscnn_int8.tflite");
    let (_, err) = ok(&[
        "convert",
        &src,
        "--target",
        "cortex-m4",
        "-o",
        blob,
        "--rust",
        rs,
    ]);
    assert!(err.contains("packing cortex-m4-dsp"), "{err}");
    let consts = std::fs::read_to_string(rs).unwrap();
    for want in [
        "pub const ARENA_SIZE: usize = ",
        "pub const OPERATORS: u128 = edgemm::nn::op_set(&[1, 3, 4, 25]);",
        "include_bytes!(\"m4.egm\")",
    ] {
        assert!(consts.contains(want), "{want} not in\n{consts}");
    }
    let err = fails(&["run", blob]);
    assert!(
        err.contains("cortex-m4-dsp") && err.contains("this build runs"),
        "{err}"
    );
    // `inspect` describes it all the same, and says it cannot run here.
    let (listing, _) = ok(&["inspect", blob]);
    for want in [
        "packing   cortex-m4-dsp",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "this build cannot run it",
    ] {
        assert!(listing.contains(want), "{want} not in\n{listing}");
    }
    let portable = dir.join("p.egm");
    ok(&[
        "convert",
        &src,
        "--target",
        "portable",
        "-o",
        portable.to_str().unwrap(),
    ]);
    ok(&["run", portable.to_str().unwrap()]);
    let err = fails(&["convert", &src, "--target", "z80", "-o", blob]);
    assert!(
        err.contains("cortex-m4") && err.contains("portable"),
        "{err}"
    );
}

#[test]
fn onnx_models_run_inspect_and_convert() {
    let d = scratch("onnx");
    let m = model("onnx/onnx_classifier.onnx");
    let input = model("onnx/onnx_classifier.in0.bin");
    let want = std::fs::read(model("onnx/onnx_classifier.out0.bin")).unwrap();
    let f32s = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let close = |got: &[u8]| {
        let (g, w) = (f32s(got), f32s(&want));
        assert_eq!(g.len(), w.len());
        assert!(
            g.iter().zip(&w).all(|(a, b)| (a - b).abs() < 1e-5),
            "{g:?} vs {w:?}"
        );
    };
    let out = d.join("out.bin");
    ok(&[
        "run",
        &m,
        "--input",
        &input,
        "--output",
        out.to_str().unwrap(),
    ]);
    close(&std::fs::read(&out).unwrap());
    // inspect names the format and shows the layout conversion of the NCHW input.
    let (text, _) = ok(&["inspect", &m]);
    assert!(text.contains("ONNX model"), "{text}");
    assert!(text.contains("TRANSPOSE"), "{text}");
    // With NHWC inputs there is no transpose at the input.
    let (text, _) = ok(&["inspect", &m, "--io-layout", "nhwc"]);
    assert!(!text.contains("TRANSPOSE"), "{text}");
    // convert → blob → run gives the same output.
    let blob = d.join("m.egmb");
    ok(&["convert", &m, "-o", blob.to_str().unwrap()]);
    let out2 = d.join("out2.bin");
    ok(&[
        "run",
        blob.to_str().unwrap(),
        "--input",
        &input,
        "--output",
        out2.to_str().unwrap(),
    ]);
    close(&std::fs::read(&out2).unwrap());
    // --input-shape: a batch of 2 for the symbolic batch of onnx_shapes.
    let s = model("onnx/onnx_shapes.onnx");
    let (text, _) = ok(&["inspect", &s, "--input-shape", "in0=2,4,6,6"]);
    assert!(text.contains("[2, 4, 6, 6]"), "{text}");
    let e = fails(&["inspect", &s, "--input-shape", "nope=1,4,6,6"]);
    assert!(e.contains("names no model input"), "{e}");
    let e = fails(&["inspect", &s, "--input-shape", "in0=1,x"]);
    assert!(e.contains("--input-shape needs"), "{e}");
    let e = fails(&["inspect", &s, "--io-layout", "nchwc"]);
    assert!(e.contains("--io-layout"), "{e}");
    // A truncated file is an error about the ONNX model, not a panic.
    let bytes = std::fs::read(&m).unwrap();
    let cut = d.join("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = fails(&["run", cut.to_str().unwrap()]);
    assert!(e.contains("ONNX model"), "{e}");
}

/// `--target` and `--calibration` set the default pipeline's `prepack` target and add its
/// `quantize` step; with `--transforms` they fill in its steps, and naming a parameter both
/// ways is an error that names the option.
#[test]
fn convert_target_and_calibration_set_the_pipeline_parameters() {
    let dir = scratch("convert-options");
    let cal = dir.join("calibration");
    std::fs::create_dir_all(&cal).unwrap();
    let name = "conv_k3s1_same_relu_f32";
    std::fs::copy(model(&format!("{name}.in0.bin")), cal.join("s0.in0.bin")).unwrap();
    let (src, blob) = (model(&format!("{name}.tflite")), dir.join("q.egm"));
    let (cal, blob) = (cal.to_str().unwrap(), blob.to_str().unwrap());
    let (_, err) = ok(&[
        "convert",
        &src,
        "-o",
        blob,
        "--calibration",
        cal,
        "--target",
        "portable",
    ]);
    for want in [
        "quantize: int8 from 1 calibration sample",
        "prepack: the weights of 1 GEMM operator laid out for portable",
        "plan_memory: arena ",
        "packing portable",
    ] {
        assert!(err.contains(want), "{want:?} missing from\n{err}");
    }
    let (out, _) = ok(&["inspect", blob]);
    assert!(
        out.lines()
            .any(|l| l.contains("[1, 9, 9, 6]") && l.contains("int8")),
        "{out}"
    );
    // With --transforms: the option fills in the step's parameter.
    let (_, err) = ok(&[
        "convert",
        &src,
        "-o",
        blob,
        "--transforms",
        "quantize(io=float) plan_memory",
        "--calibration",
        cal,
    ]);
    assert!(
        err.contains("[2/2] plan_memory") && err.contains("packing "),
        "{err}"
    );
    for (transforms, option, value) in [
        ("prepack(target=host)", "--target", "portable"),
        ("quantize(calibration=x)", "--calibration", cal),
    ] {
        let e = fails(&[
            "convert",
            &src,
            "-o",
            blob,
            "--transforms",
            transforms,
            option,
            value,
        ]);
        assert!(e.contains(option) && e.contains("both"), "{e}");
    }
    let e = fails(&[
        "convert",
        &src,
        "-o",
        blob,
        "--transforms",
        "strip_unused",
        "--calibration",
        cal,
    ]);
    assert!(e.contains("quantize"), "{e}");
}

/// `convert --transforms` with `quantize_weights`: the blob's weights become int8 (fewer
/// bytes), the step says what it did, and the blob runs.
#[test]
fn convert_quantize_weights_makes_a_smaller_blob_that_runs() {
    let dir = scratch("quantize_weights");
    let src = model("cnn_block_f16w.tflite");
    let (f, q) = (dir.join("f.egm"), dir.join("q.egm"));
    ok(&["convert", &src, "-o", f.to_str().unwrap()]);
    let (_, err) = ok(&[
        "convert",
        &src,
        "-o",
        q.to_str().unwrap(),
        "--transforms",
        "fold_batch_norms quantize_weights(minimum_size=64) plan_memory",
    ]);
    assert!(
        err.contains("quantize_weights: 3 layers to int8 per channel"),
        "{err}"
    );
    let size = |p: &PathBuf| std::fs::metadata(p).unwrap().len();
    assert!(size(&q) < size(&f), "{} !< {}", size(&q), size(&f));
    let (out, _) = ok(&["run", q.to_str().unwrap()]);
    assert!(out.contains("argmax"), "{out}");
}
