//! The model blob reader (`Model::from_bytes`, `docs/blob-format.md`) against damaged blobs:
//! truncated at every length, bytes flipped at random with the CRC made right again (so the
//! checks after the CRC are what catches them), a wrong version, a misaligned start, set
//! flags, a bad packing name; and the session's own checks (arena size, input length). No
//! input may panic, and every error says what is wrong. Every fixture's blob, in both weight
//! layouts, must read back.

use edgemm::nn::blob::{crc32, VERSION};
use edgemm::nn::transform::{LoadedModel, Packing};
use edgemm::nn::{Model, Session};
use edgemm::Error;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

fn models_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models")
}

fn read(name: &str) -> Vec<u8> {
    let p = models_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The blob of a fixture, as the host writes it.
fn fixture_blob(name: &str, packing: Packing) -> Vec<u8> {
    LoadedModel::from_tflite(&read(&format!("{name}.tflite")), packing)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .blob()
        .to_vec()
}

/// Bytes at a 16-byte aligned address (or, with `skew`, that many bytes past one).
struct Aligned {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    fn new(bytes: &[u8], skew: usize) -> Self {
        let mut buf = vec![0u8; bytes.len() + 32];
        let start = buf.as_ptr().align_offset(16) + skew;
        buf[start..start + bytes.len()].copy_from_slice(bytes);
        Aligned {
            buf,
            start,
            len: bytes.len(),
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

/// A 16-byte aligned arena of `len` bytes.
fn arena(len: usize) -> Aligned {
    Aligned::new(&vec![0u8; len], 0)
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Makes the header's CRC right for the bytes as they are.
fn fix_crc(b: &mut [u8]) {
    let total = u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize;
    let end = total.clamp(16, b.len());
    let crc = crc32(&b[16..end]);
    put_u32(b, 12, crc);
}

fn message(r: Result<Model<'_>, Error>) -> String {
    match r {
        Ok(m) => panic!("accepted: {m:?}"),
        Err(e) => {
            let s = e.to_string();
            assert!(s.starts_with("model blob"), "{s}");
            s
        }
    }
}

/// Loads `bytes`; if they load, runs them over a fresh arena with zeroed inputs. Ok or Err,
/// never a panic. Returns the load error's message, if any.
fn load_and_run(bytes: &[u8]) -> Result<(), String> {
    let a = Aligned::new(bytes, 0);
    let model = Model::from_bytes(a.bytes()).map_err(|e| e.to_string())?;
    // A damaged arena size could ask for gigabytes: they are not worth running.
    if model.arena_size() > 64 << 20 {
        return Ok(());
    }
    let mut ar = arena(model.arena_size());
    let start = ar.start;
    let mut s = Session::new(model, &mut ar.buf[start..start + model.arena_size()])
        .map_err(|e| e.to_string())?;
    for i in 0..model.num_inputs() {
        if let Ok(x) = s.input_mut(i) {
            x.fill(0);
        }
    }
    let _ = s.run();
    for j in 0..model.num_outputs() {
        let _ = s.output(j);
    }
    // The accessors of a validated model stay in bounds too.
    for t in 0..model.num_tensors() + 2 {
        if let Some(info) = model.tensor(t) {
            let _ = (info.shape(), info.elems(), info.name, model.constant(t));
        }
    }
    for i in 0..model.num_ops() + 2 {
        if let Some(op) = model.op(i) {
            for k in 0..op.num_inputs() + op.num_outputs() + op.num_temps() + 2 {
                let _ = (op.input(k), op.output(k), op.temp(k), op.param(k));
            }
        }
    }
    let _ = (model.packing(), model.baseline_arena_size());
    Ok(())
}

/// zlib's CRC-32 (the blob's checksum; the table is four bits wide): its check value.
#[test]
fn crc32_is_zlibs() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn a_fixture_blob_round_trips_and_runs() {
    let blob = fixture_blob("fc_2d_relu_int8", Packing::Portable);
    let loaded = LoadedModel::from_blob(&blob).unwrap();
    let a = Aligned::new(&blob, 0);
    let m = Model::from_bytes(a.bytes()).unwrap();
    assert_eq!(&blob[..4], b"EGMB");
    assert_eq!(blob.len() % 16, 0);
    assert_eq!(m.as_bytes().len(), blob.len());
    assert_eq!(m.packing(), "portable");
    assert_eq!(m.num_inputs(), 1);
    assert_eq!(m.num_outputs(), 1);
    assert_eq!(m.arena_size(), loaded.model().arena_size());
    assert!(m.arena_size() % 16 == 0 && m.arena_size() > 0);
    assert!(m.baseline_arena_size() >= m.arena_size());
    assert_eq!(m.op(0).unwrap().name(), "FULLY_CONNECTED");
    // Written again from the loaded copy: the same bytes.
    assert_eq!(loaded.blob(), &blob[..]);

    let mut ar = arena(m.arena_size());
    let start = ar.start;
    let mut s = Session::new(m, &mut ar.buf[start..]).unwrap();
    s.set_input(0, &read("fc_2d_relu_int8.in0.bin")).unwrap();
    s.run().unwrap();
    assert_eq!(s.output(0).unwrap(), &read("fc_2d_relu_int8.out0.bin")[..]);
}

#[test]
fn truncation_at_every_length_is_an_error() {
    let blob = fixture_blob("fc_2d_relu_int8", Packing::Portable);
    for len in 0..blob.len() {
        let a = Aligned::new(&blob[..len], 0);
        let msg = message(Model::from_bytes(a.bytes()));
        if len < 64 {
            assert!(
                msg.contains("shorter than the 64-byte header"),
                "{len}: {msg}"
            );
        } else {
            assert!(
                msg.contains(&format!("says {} bytes, {len} are there", blob.len())),
                "{len}: {msg}"
            );
        }
    }
    // The same, with the length and CRC fields made to agree with the truncated bytes: now
    // the section and tensor checks must catch it (or, if only padding was cut, it loads).
    let mut errors = 0;
    for len in 64..blob.len() {
        let mut b = blob[..len].to_vec();
        put_u32(&mut b, 8, len as u32);
        fix_crc(&mut b);
        let r = catch_unwind(AssertUnwindSafe(|| load_and_run(&b)));
        match r {
            Ok(Ok(())) => {}
            Ok(Err(msg)) => {
                assert!(msg.starts_with("model blob"), "{len}: {msg}");
                errors += 1;
            }
            Err(_) => panic!("truncated to {len} bytes (length and CRC fixed): panicked"),
        }
    }
    assert!(errors > 0);
}

#[test]
fn random_byte_flips_with_the_crc_fixed_never_panic() {
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    let mut loaded = 0;
    for (fixture, packing) in [
        ("fc_2d_relu_int8", Packing::Portable),
        ("fc_2d_relu_int8", Packing::Host),
        ("fc_3d_keepdims_f32", Packing::Portable),
        ("reshape_int8", Packing::Portable),
    ] {
        let blob = fixture_blob(fixture, packing);
        let mut rng = SmallRng::seed_from_u64(0x5eed_b10b);
        for iter in 0..6000 {
            let mut b = blob.clone();
            let flips = rng.gen_range(1..=4);
            for _ in 0..flips {
                // Mostly the structure (header, records, lists, params), sometimes anywhere.
                let hot = (b.len() / 2).max(17);
                let at = if rng.gen_bool(0.8) {
                    rng.gen_range(16..hot)
                } else {
                    rng.gen_range(16..b.len())
                };
                match rng.gen_range(0..3) {
                    0 => b[at] ^= 1 << rng.gen_range(0..8),
                    1 => b[at] = rng.gen(),
                    _ => b[at] = [0, 0xff, 0x7f, 0x80, 1][rng.gen_range(0..5)],
                }
            }
            fix_crc(&mut b);
            match catch_unwind(AssertUnwindSafe(|| load_and_run(&b))) {
                Ok(Ok(())) => loaded += 1,
                Ok(Err(msg)) => {
                    // Errors of the blob's structure start "model blob"; an operator's check
                    // may pass on its kernel's own error (packed weights, say).
                    assert!(msg.len() > 10, "{msg}");
                    // The reason without numbers, to count kinds of errors.
                    let kind = msg
                        .rsplit(": ")
                        .next()
                        .unwrap()
                        .chars()
                        .filter(|c| !c.is_ascii_digit())
                        .collect::<String>();
                    *reasons.entry(kind).or_default() += 1;
                }
                Err(_) => panic!("{fixture} ({packing:?}), flip set {iter}: panicked"),
            }
        }
    }
    eprintln!("flipped blobs that still loaded: {loaded}; errors by kind:");
    for (r, n) in &reasons {
        eprintln!("{n:6}  {r}");
    }
    // The flips must have reached the checks past the CRC.
    assert!(reasons.len() >= 8, "{reasons:?}");
    assert!(reasons.keys().any(|r| r.contains("operator")));
}

#[test]
fn a_wrong_version_is_named() {
    let mut blob = fixture_blob("fc_2d_relu_int8", Packing::Portable);
    put_u32(&mut blob, 4, VERSION + 1);
    let a = Aligned::new(&blob, 0);
    let msg = message(Model::from_bytes(a.bytes()));
    assert!(
        msg.contains(&format!(
            "layout version {} is not the version {VERSION} this build reads",
            VERSION + 1
        )),
        "{msg}"
    );
}

#[test]
fn a_misaligned_start_is_refused() {
    let blob = fixture_blob("fc_2d_relu_int8", Packing::Portable);
    for skew in [1, 4, 8] {
        let a = Aligned::new(&blob, skew);
        let msg = message(Model::from_bytes(a.bytes()));
        assert!(msg.contains("16-byte aligned"), "{msg}");
    }
    // A loader that copies is fine with it.
    let a = Aligned::new(&blob, 1);
    assert!(LoadedModel::from_blob(a.bytes()).is_ok());
}

#[test]
fn header_damage_is_named() {
    let blob = fixture_blob("fc_2d_relu_int8", Packing::Portable);
    let check = |edit: &dyn Fn(&mut Vec<u8>), fix: bool, want: &str| {
        let mut b = blob.clone();
        edit(&mut b);
        if fix {
            fix_crc(&mut b);
        }
        let a = Aligned::new(&b, 0);
        let msg = message(Model::from_bytes(a.bytes()));
        assert!(msg.contains(want), "want {want:?}: {msg}");
    };
    check(&|b| b[0] = b'X', false, "magic number");
    check(&|b| b[100] ^= 1, false, "CRC-32 mismatch");
    check(&|b| put_u32(b, 20, 4), true, "header flags are 4");
    check(&|b| put_u32(b, 16, 8), true, "not a multiple of 16");
    check(&|b| put_u32(b, 56, 3), true, "packing name");
    check(&|b| put_u32(b, 28, 0), true, "tensor table");
    check(&|b| put_u32(b, 32, 1 << 28), true, "operator table");
    check(&|b| put_u32(b, 8, 40), false, "length field says 40");
}

#[test]
fn session_errors_name_what_is_wrong() {
    let blob = fixture_blob("fc_2d_relu_int8", Packing::Portable);
    let a = Aligned::new(&blob, 0);
    let m = Model::from_bytes(a.bytes()).unwrap();
    let need = m.arena_size();

    let mut small = arena(need - 16);
    let start = small.start;
    match Session::new(m, &mut small.buf[start..start + need - 16]) {
        Err(e @ Error::WorkspaceTooSmall { .. }) => {
            let s = e.to_string();
            assert!(s.contains(&need.to_string()) && s.contains(&(need - 16).to_string()));
        }
        other => panic!("{other:?}"),
    }
    let mut skewed = arena(need + 16);
    let start = skewed.start + 4;
    let e = Session::new(m, &mut skewed.buf[start..start + need]).unwrap_err();
    assert!(e.to_string().contains("16-byte aligned"), "{e}");

    let mut ar = arena(need);
    let start = ar.start;
    let mut s = Session::new(m, &mut ar.buf[start..]).unwrap();
    let input = m.tensor(m.input(0).unwrap()).unwrap();
    let name = input.name.unwrap();
    let want = input.bytes;
    for got in [0, want - 1, want + 1] {
        let msg = s.set_input(0, &vec![0u8; got]).unwrap_err().to_string();
        assert!(msg.contains(name), "{msg}");
        assert!(
            msg.contains(&format!(
                "model input 0 takes {want} bytes, {got} were given"
            )),
            "{msg}"
        );
    }
    assert!(s.set_input(1, &[]).is_err());
    assert!(s.output(1).is_err());
}

#[test]
fn every_fixture_blob_reads_back_in_both_layouts() {
    let mut names: Vec<String> = std::fs::read_dir(models_dir())
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_suffix(".tflite").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(!names.is_empty());
    let (mut read_back, mut skipped) = (0, 0);
    for name in &names {
        for packing in [Packing::Portable, Packing::Host] {
            let loaded = match LoadedModel::from_tflite(&read(&format!("{name}.tflite")), packing) {
                Ok(l) => l,
                Err(e) => {
                    let s = e.to_string();
                    assert!(
                        s.contains("not supported") || s.contains("hybrid"),
                        "{name}: {s}"
                    );
                    skipped += 1;
                    continue;
                }
            };
            let blob = loaded.blob();
            let a = Aligned::new(blob, 0);
            let m = Model::from_bytes(a.bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let l = loaded.model();
            assert_eq!(m.num_tensors(), l.num_tensors(), "{name}");
            assert_eq!(m.num_ops(), l.num_ops(), "{name}");
            assert_eq!(m.arena_size(), l.arena_size(), "{name}");
            assert_eq!(m.packing(), packing.name(), "{name}");
            assert_eq!(crc32(&blob[16..]).to_le_bytes(), blob[12..16], "{name}");
            load_and_run(blob).unwrap();
            read_back += 1;
        }
    }
    eprintln!("{read_back} blobs read back, {skipped} (model, layout) pairs not supported yet");
    assert!(read_back > 0);
}

/// A blob converted for another target (`--target cortex-m4` here) is written without this
/// build's validation and refused when this build loads it, by an error that names the target
/// it was made for and the one this build runs. Portable and host blobs of the same model
/// load, and the M4 blob records its packing and plans the M4's GEMM scratch.
#[test]
fn a_blob_for_another_target_is_refused_by_name() {
    use edgemm::nn::transform::blob_writer::WriteOptions;
    use edgemm::nn::transform::convert_tflite;
    let tflite = read("dscnn_int8.tflite");
    let m4 = convert_tflite(&tflite, Packing::CortexM4, WriteOptions::default()).unwrap();
    assert_eq!(Packing::CortexM4.name(), "cortex-m4-dsp");
    assert!(!Packing::CortexM4.runs_here());
    let a = Aligned::new(&m4.blob, 0);
    match Model::from_bytes(a.bytes()) {
        Err(
            e @ Error::TargetMismatch {
                made_for,
                this_build,
            },
        ) => {
            assert_eq!(made_for, "cortex-m4-dsp");
            assert_ne!(this_build, made_for);
            let msg = e.to_string();
            assert!(
                msg.contains("cortex-m4-dsp") && msg.contains(this_build),
                "{msg}"
            );
        }
        other => panic!("an M4 blob loaded on this host: {other:?}"),
    }
    assert!(LoadedModel::from_blob(&m4.blob).is_err());
    // Read for inspection, it lists what it holds; no session runs it.
    let seen = Model::for_inspection(a.bytes()).unwrap();
    assert_eq!(seen.packing(), "cortex-m4-dsp");
    let macs: u64 = (0..seen.num_ops())
        .map(|i| seen.op(i).unwrap().macs())
        .sum();
    assert!(macs > 200_000, "{macs}");
    assert!(matches!(seen.runnable(), Err(Error::TargetMismatch { .. })));
    let mut ar = arena(seen.arena_size());
    let start = ar.start;
    assert!(matches!(
        Session::new(seen, &mut ar.buf[start..]),
        Err(Error::TargetMismatch { .. })
    ));
    let host = LoadedModel::for_inspection(&m4.blob).unwrap();
    assert!(host.runner().session().is_err());
    for p in [Packing::Host, Packing::Portable] {
        let c = convert_tflite(&tflite, p, WriteOptions::default()).unwrap();
        let m = LoadedModel::from_blob(&c.blob).unwrap();
        assert_eq!(m.model().packing(), p.name());
        // The M4's FULLY_CONNECTED (9) lowers to CONV_2D's direct form (3); elsewhere it stays.
        assert_eq!(c.operators, [1, 3, 4, 9, 25]);
    }
    assert_eq!(m4.operators, [1, 3, 4, 25]);
    assert_eq!(Packing::from_name("cortex-m4"), Some(Packing::CortexM4));
    assert_eq!(Packing::from_name("cortex-m4-dsp"), Some(Packing::CortexM4));
    assert_eq!(Packing::from_name("portable"), Some(Packing::Portable));
    assert_eq!(Packing::from_name("nonsense"), None);
    // The emitted constants name the arena, the blob and the operator set.
    let src = m4.rust_source("dscnn_int8.tflite", "dscnn.egm");
    assert!(src.contains(&format!("pub const ARENA_SIZE: usize = {};", m4.arena_size)));
    assert!(src.contains("include_bytes!(\"dscnn.egm\")"));
    assert!(src.contains("edgemm::nn::op_set(&[1, 3, 4, 25])"), "{src}");
    assert_eq!(m4.op_set(), edgemm::nn::op_set(&[1, 3, 4, 25]));
}

/// An operator set: a runtime of the model's own operators loads and runs it with the same
/// output as the full runtime; one without an operator the model uses refuses it by name.
#[test]
fn operator_sets_load_only_what_they_hold() {
    use edgemm::nn::op_set;
    let blob = fixture_blob("dscnn_int8", Packing::Host);
    let a = Aligned::new(&blob, 0);
    const DSCNN: u128 = op_set(&[1, 3, 4, 9, 25]);
    const NO_SOFTMAX: u128 = op_set(&[1, 3, 4, 9]);
    let full = Model::from_bytes(a.bytes()).unwrap();
    let only = Model::from_bytes_with::<DSCNN>(a.bytes()).unwrap();
    let input = read("dscnn_int8.in0.bin");
    let mut outs = Vec::new();
    for (m, with_set) in [(full, false), (only, true)] {
        let mut ar = arena(m.arena_size());
        let mut s = Session::new(m, &mut ar.buf[ar.start..ar.start + ar.len]).unwrap();
        s.set_input(0, &input).unwrap();
        if with_set {
            s.run_with::<DSCNN>().unwrap();
        } else {
            s.run().unwrap();
        }
        outs.push(s.output(0).unwrap().to_vec());
    }
    assert_eq!(outs[0], read("dscnn_int8.out0.bin"));
    assert_eq!(outs[0], outs[1]);
    let e = Model::from_bytes_with::<NO_SOFTMAX>(a.bytes()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("SOFTMAX") && msg.contains("operator set"),
        "{msg}"
    );
    // Running with a smaller set than the model was loaded with is an error, not a skip.
    let mut ar = arena(full.arena_size());
    let mut s = Session::new(full, &mut ar.buf[ar.start..ar.start + ar.len]).unwrap();
    assert!(s.run_with::<NO_SOFTMAX>().is_err());
}

/// Validation at build time (`Model::validate_for_target`, what `edgemm convert --rust`
/// runs before it emits `VALIDATED_CRC`) accepts exactly what the loader accepts for a
/// target this build runs, also for damaged blobs (CRC fixed); it refuses another target's
/// packing. `Model::from_validated_bytes` then loads the blob with that CRC only: the same
/// model and outputs, and any other bytes (a flipped byte, a header CRC made to agree,
/// truncation, misalignment) are refused.
#[test]
fn build_time_validation_agrees_with_the_loader_and_its_crc_guards_the_blob() {
    use edgemm::nn::transform::blob_writer::WriteOptions;
    use edgemm::nn::transform::convert_tflite;
    let tflite = read("dscnn_int8.tflite");
    let m4 = convert_tflite(&tflite, Packing::CortexM4, WriteOptions::default()).unwrap();
    let crc = Model::validate_for_target(&m4.blob, "cortex-m4-dsp").unwrap();
    assert_eq!(crc.to_le_bytes(), m4.blob[12..16]);
    let src = m4.rust_source("dscnn_int8.tflite", "dscnn.egm");
    assert!(
        src.contains(&format!("VALIDATED_CRC: Option<u32> = Some({crc:#010x});")),
        "{src}"
    );
    assert!(Model::validate_for_target(&m4.blob, "x86_64-avx2").is_err());
    assert!(Model::validate_for_target(&m4.blob, "portable").is_err());
    // BATCH_MATMUL's check sizes its workspace for the build's GEMM kernels: validated on
    // the target, not here (the source says so with `None`).
    let bmm = read("batch_matmul_int8.tflite");
    let bmm = convert_tflite(&bmm, Packing::CortexM4, WriteOptions::default()).unwrap();
    assert!(Model::for_inspection(Aligned::new(&bmm.blob, 0).bytes()).is_ok());
    assert!(Model::validate_for_target(&bmm.blob, "cortex-m4-dsp").is_err());
    assert!(bmm
        .rust_source("bmm.tflite", "bmm.egm")
        .contains("VALIDATED_CRC: Option<u32> = None;"));

    // Damaged blobs: the same verdict as the loader's, for the target this build runs.
    // (A portable DS-CNN has GEMM forms, whose checks depend on the build's kernels: it is
    // validated at build time only for the build that runs it, the host here.)
    let host = Packing::Host.name();
    let portable = fixture_blob("dscnn_int8", Packing::Portable);
    assert!(Model::from_bytes(Aligned::new(&portable, 0).bytes()).is_ok());
    assert!(Model::validate_for_target(&portable, "portable").is_err());
    let blob = fixture_blob("dscnn_int8", Packing::Host);
    let mut rng = SmallRng::seed_from_u64(0xb17d_7133);
    let (mut both_ok, mut both_err) = (0, 0);
    for _ in 0..3000 {
        let mut b = blob.clone();
        for _ in 0..rng.gen_range(1..=3) {
            let at = rng.gen_range(16..b.len().min(4096));
            b[at] ^= 1 << rng.gen_range(0..8);
        }
        fix_crc(&mut b);
        let a = Aligned::new(&b, 0);
        let loader = Model::from_bytes(a.bytes()).is_ok();
        assert_eq!(Model::validate_for_target(a.bytes(), host).is_ok(), loader);
        if loader {
            both_ok += 1;
        } else {
            both_err += 1;
        }
    }
    assert!(both_ok > 0 && both_err > 0, "{both_ok} {both_err}");

    // Loading by CRC: the same model, the same outputs.
    let crc = Model::validate_for_target(&blob, host).unwrap();
    let a = Aligned::new(&blob, 0);
    // SAFETY: validate_for_target accepted these bytes for this build's target just above.
    let fast = unsafe { Model::from_validated_bytes(a.bytes(), crc) }.unwrap();
    let full = Model::from_bytes(a.bytes()).unwrap();
    assert_eq!(
        (fast.num_tensors(), fast.num_ops(), fast.arena_size()),
        (full.num_tensors(), full.num_ops(), full.arena_size())
    );
    let input = read("dscnn_int8.in0.bin");
    let run = |m: Model| {
        let mut ar = arena(m.arena_size());
        let start = ar.start;
        let mut s = Session::new(m, &mut ar.buf[start..]).unwrap();
        s.set_input(0, &input).unwrap();
        s.run().unwrap();
        s.output(0).unwrap().to_vec()
    };
    assert_eq!(run(fast), run(full));
    assert_eq!(run(fast), read("dscnn_int8.out0.bin"));

    // Any other bytes are refused, before anything reads them.
    let refused = |b: &[u8], skew: usize, crc: u32| {
        let a = Aligned::new(b, skew);
        // SAFETY: the call must refuse these bytes (their CRC is not `crc`, or the header is
        // wrong) before any operator reads them: nothing runs them.
        unsafe { Model::from_validated_bytes(a.bytes(), crc) }.is_err()
    };
    assert!(refused(&blob, 0, crc ^ 1));
    assert!(refused(&blob, 4, crc));
    assert!(refused(&blob[..blob.len() - 1], 0, crc));
    assert!(refused(&blob[..63], 0, crc));
    let mut flipped = blob.clone();
    flipped[blob.len() / 2] ^= 0x10;
    assert!(refused(&flipped, 0, crc));
    fix_crc(&mut flipped);
    assert!(refused(&flipped, 0, crc));
    let mut other_version = blob.clone();
    put_u32(&mut other_version, 4, VERSION + 1);
    assert!(refused(&other_version, 0, crc));
}

/// Every run of three 32-bit words of a DS-CNN blob (M4 and portable layouts) set to extreme values, the CRC
/// made right: the build-time check, the loader and `inspect`'s reader (MAC counts included)
/// return or refuse, never panic (an operator's form is asked before its geometry is
/// checked, and an inspected blob's geometry is never checked).
#[test]
fn extreme_words_never_panic_the_checks_or_inspect() {
    use edgemm::nn::transform::blob_writer::WriteOptions;
    use edgemm::nn::transform::convert_tflite;
    let tflite = read("dscnn_int8.tflite");
    for (packing, target) in [
        (Packing::CortexM4, "cortex-m4-dsp"),
        (Packing::Portable, "portable"),
    ] {
        let blob = convert_tflite(&tflite, packing, WriteOptions::default())
            .unwrap()
            .blob;
        // The records, lists and parameters come before the constants: the first 8 KiB.
        let end = blob.len().min(8192) / 4 * 4;
        for at in (16..end).step_by(4) {
            for v in [0x7fff_ffffu32, 0xffff_ffff, 0x8000_0000, 0x0001_0000] {
                // Three words at a time: an overflow needs two large factors (kh·kw·c_in).
                let mut b = blob.clone();
                for w in (at..(at + 12).min(end)).step_by(4) {
                    put_u32(&mut b, w, v);
                }
                fix_crc(&mut b);
                let b = Aligned::new(&b, 0);
                let r = catch_unwind(AssertUnwindSafe(|| {
                    let _ = Model::validate_for_target(b.bytes(), target);
                    let _ = load_and_run(b.bytes());
                    if let Ok(m) = Model::for_inspection(b.bytes()) {
                        for i in 0..m.num_ops() {
                            let _ = m.op(i).map(|op| (op.name(), op.macs()));
                        }
                    }
                }));
                assert!(r.is_ok(), "{target}: word at {at} = {v:#x} panicked");
            }
        }
    }
}
