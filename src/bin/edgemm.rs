//! The `edgemm` command: run, inspect and convert models (DESIGN.md, "CLI conventions").
//!
//! - `edgemm run MODEL [--input FILE]... [--output FILE]... [--repeat N] [--profile]`
//! - `edgemm inspect MODEL`
//! - `edgemm convert IN -o OUT [--target host|portable|cortex-m4] [--calibration DIR] [--rust FILE.rs] [--no-names]`
//!
//! A file is a blob by its magic number (`EGMB`), a `.tflite` by the flatbuffer identifier
//! `TFL3`, an `.onnx` by its extension or its first field (`ir_version`). Tensors are raw little-endian bytes of their own type and shape. Errors go to
//! stderr with a non-zero exit code; results go to stdout.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use edgemm::nn::transform::blob_writer::WriteOptions;
use edgemm::nn::transform::host::{is_blob, is_tflite};
use edgemm::nn::transform::import::import_tflite;
use edgemm::nn::transform::lower::unsupported;
use edgemm::nn::transform::onnx::{
    import_onnx, is_onnx, parse_onnx, unsupported_nodes, IoLayout, OnnxOptions,
};
use edgemm::nn::transform::passes::{self, Pipeline};
use edgemm::nn::transform::{convert_graph, Converted, LoadedModel, Packing};
use edgemm::nn::{DType, Model, Storage, TensorInfo};

const USAGE: &str = "\
edgemm: run, inspect and convert neural network models (TFLite, ONNX, edgemm blobs)

usage: edgemm <command> [options]

commands:
  run MODEL       run a model on raw input files or seeded random inputs; time and profile it
  inspect MODEL   list a model's tensors, operators, weights and arena plan
  convert IN      write a .tflite or .onnx model as an edgemm blob (-o OUT)

options:
  -h, --help      this help; `edgemm <command> --help` for a command's options
  -V, --version   the edgemm version

A MODEL is an edgemm blob (recognised by its magic number \"EGMB\"), a TFLite model
(flatbuffer identifier \"TFL3\") or a float32 ONNX model (.onnx, opsets 11-21).

ONNX options (run, inspect, convert):
  --input-shape NAME=D0,D1,..  the shape of input NAME (symbolic dimensions are 1 otherwise)
  --io-layout nhwc             4-D inputs and outputs NHWC (default: as the file declares, NCHW)";

const RUN_USAGE: &str = "\
usage: edgemm run MODEL [options]

Runs MODEL once (or --repeat N times after a warm-up) and summarizes each output on stdout.

options:
  --input FILE     raw bytes of the next model input, in order (one per input; without any, inputs get seeded random values)
  --output FILE    write the next model output's raw bytes to FILE, in order (others are summarized on stdout)
  --repeat N       time N runs after a warm-up run; prints `latency_us median=<x> min=<y>`
  --profile        print each operator's time, MACs, GMAC/s and share of the run (medians
                   over the --repeat runs)
  --threads N      threads to run the operators on (default 1; results do not depend on it)
  --seed N         seed of the random inputs (default 1)
  --portable       for a .tflite or .onnx: keep the weights portable instead of packing them for this CPU
  --input-shape NAME=D0,D1,..  for an .onnx: the shape of input NAME (symbolic dimensions are 1 otherwise)
  --io-layout nhwc for an .onnx: 4-D inputs and outputs NHWC (default: NCHW as the file declares)
  -h, --help       this help";

const INSPECT_USAGE: &str = "\
usage: edgemm inspect MODEL [options]

Prints MODEL's tensors (shape, type, quantization, storage), operators (tensors, parameters),
weight bytes, arena size and the greedy baseline. For a .tflite, first lists every operator
the runtime cannot run, then inspects the model as lowered.

options:
  --portable       for a .tflite or .onnx: lower with portable weights instead of packing them for this CPU
  --input-shape NAME=D0,D1,..  for an .onnx: the shape of input NAME (symbolic dimensions are 1 otherwise)
  --io-layout nhwc for an .onnx: 4-D inputs and outputs NHWC (default: NCHW as the file declares)
  -h, --help       this help";

const CONVERT_USAGE: &str = "\
usage: edgemm convert IN -o OUT [options]

Converts IN (a .tflite, an .onnx, or a blob to rewrite) into an edgemm blob written to OUT.

options:
  -o, --output OUT write the blob to OUT (required)
  --target T       for a .tflite or .onnx: the machine the blob is for: host (default: int8 weights
                   packed for this CPU), portable (plain weights, any build), cortex-m4
                   (packed for the Cortex-M4 DSP kernel, scratch sized for its build)
  --portable       the same as --target portable
  --calibration DIR  quantize to int8, calibrated on DIR's <sample>.in<j>.bin (raw f32 inputs)
  --rust FILE.rs   also write a Rust source for a firmware to include!: ARENA_SIZE, the
                   operator set OPERATORS, and BLOB (OUT embedded 16-byte aligned; OUT's
                   path relative to FILE.rs's directory)
  --no-names       leave tensor names out of the blob (smaller; errors name indices only)
  --transforms P   the graph passes to run before lowering, a pipeline such as
                   'strip_unused fold_constants fuse_activations summarize' (default: the
                   default pipeline below; '' runs none). --target sets its prepack step's
                   target (adding one if it has none); --calibration DIR its quantize step's
                   calibration (the default pipeline gets quantize(calibration=DIR) before
                   prepack). Naming a parameter both ways is an error. Passes:
{PASSES}
  --input-shape NAME=D0,D1,..  for an .onnx: the shape of input NAME (symbolic dimensions are 1 otherwise)
  --io-layout nhwc for an .onnx: 4-D inputs and outputs NHWC (default: NCHW as the file declares)
  -h, --help       this help";

/// The convert help with every pass of the registry and the default pipeline.
fn convert_usage() -> String {
    let mut list = String::new();
    for p in passes::PASSES {
        let args = if p.args.is_empty() {
            String::new()
        } else {
            format!("({}=…)", p.args.join("=…, "))
        };
        let _ = writeln!(list, "                     {}{args}: {}", p.name, p.doc);
    }
    let _ = write!(
        list,
        "                   default pipeline: {}",
        passes::DEFAULT_PIPELINE
    );
    CONVERT_USAGE.replace("{PASSES}", &list)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("edgemm: {msg}");
            ExitCode::FAILURE
        }
    }
}

type Res<T> = Result<T, String>;

/// Writes to stdout; a closed pipe (`edgemm inspect m | head`) ends the program quietly
/// rather than panicking as `println!` does.
fn out(s: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(s.as_bytes()).and_then(|()| o.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("edgemm: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` through [`out`].
macro_rules! outln {
    ($($arg:tt)*) => {
        out(&format!("{}\n", format_args!($($arg)*)))
    };
}

fn dispatch(args: &[String]) -> Res<()> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(format!("no command given\n\n{USAGE}"));
    };
    match cmd.as_str() {
        "run" => run(rest),
        "inspect" => inspect(rest),
        "convert" => convert(rest),
        "-h" | "--help" | "help" => {
            outln!("{USAGE}");
            Ok(())
        }
        "-V" | "--version" => {
            outln!("edgemm {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        other if other.starts_with('-') => Err(format!(
            "unknown option {other} (the command comes first; see edgemm --help)"
        )),
        other => Err(format!(
            "unknown command {other:?} (commands: run, inspect, convert; see edgemm --help)"
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Arguments

/// A command's arguments: options (each with its value, if it takes one) and positionals.
struct Args {
    cmd: &'static str,
    opts: Vec<(&'static str, Option<String>)>,
    positional: Vec<String>,
    help: bool,
}

/// An option a command knows: its names and whether it takes a value.
struct Opt {
    names: &'static [&'static str],
    value: bool,
}

fn parse(cmd: &'static str, args: &[String], known: &[Opt]) -> Res<Args> {
    let mut out = Args {
        cmd,
        opts: Vec::new(),
        positional: Vec::new(),
        help: false,
    };
    let mut it = args.iter();
    let mut only_positional = false;
    while let Some(a) = it.next() {
        if only_positional || a == "-" || !a.starts_with('-') {
            out.positional.push(a.clone());
            continue;
        }
        if a == "--" {
            only_positional = true;
            continue;
        }
        if a == "-h" || a == "--help" {
            out.help = true;
            continue;
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        // Every command loads a model, so every one takes the ONNX options.
        let Some(opt) = known
            .iter()
            .chain(&ONNX_OPTS)
            .find(|o| o.names.contains(&name))
        else {
            return Err(format!(
                "{cmd}: unknown option {name} (see edgemm {cmd} --help)"
            ));
        };
        let canonical = opt.names[opt.names.len() - 1];
        let value = if opt.value {
            match inline {
                Some(v) => Some(v),
                None => Some(
                    it.next()
                        .ok_or_else(|| format!("{cmd}: {name} needs a value"))?
                        .clone(),
                ),
            }
        } else {
            if inline.is_some() {
                return Err(format!("{cmd}: {name} takes no value"));
            }
            None
        };
        out.opts.push((canonical, value));
    }
    Ok(out)
}

impl Args {
    fn values(&self, name: &str) -> Vec<&str> {
        self.opts
            .iter()
            .filter(|(n, _)| *n == name)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }

    fn flag(&self, name: &str) -> bool {
        self.opts.iter().any(|(n, _)| *n == name)
    }

    /// The last value of a numeric option, at least `min`.
    fn number(&self, name: &str, min: u64) -> Res<Option<u64>> {
        let Some(v) = self.values(name).last().copied() else {
            return Ok(None);
        };
        match v.parse::<u64>() {
            Ok(n) if n >= min => Ok(Some(n)),
            _ => Err(format!(
                "{}: {name} needs a whole number of at least {min}, not {v:?}",
                self.cmd
            )),
        }
    }

    /// The one positional argument (the model).
    fn model(&self, what: &str) -> Res<&str> {
        match &self.positional[..] {
            [m] => Ok(m),
            [] => Err(format!(
                "{}: no {what} given (see edgemm {} --help)",
                self.cmd, self.cmd
            )),
            [_, extra, ..] => Err(format!(
                "{}: unexpected argument {extra:?} (one {what} only; see edgemm {} --help)",
                self.cmd, self.cmd
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Loading

fn read_file(path: &str) -> Res<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("{path}: {e}"))
}

/// What a model file is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Blob,
    Tflite,
    Onnx,
}

fn kind(path: &str, bytes: &[u8]) -> Res<Kind> {
    if is_blob(bytes) {
        Ok(Kind::Blob)
    } else if is_tflite(bytes) {
        Ok(Kind::Tflite)
    } else if path.to_ascii_lowercase().ends_with(".onnx") || is_onnx(bytes) {
        Ok(Kind::Onnx)
    } else {
        Err(format!(
            "{path}: neither an edgemm blob (magic \"EGMB\"), a TFLite model (identifier \"TFL3\") nor an ONNX model"
        ))
    }
}

/// Every operator of a .tflite the runtime cannot run, as lines (empty if all can run).
fn unsupported_report(path: &str, bytes: &[u8]) -> Res<Vec<String>> {
    let g = import_tflite(bytes).map_err(|e| format!("{path}: {e}"))?;
    Ok(unsupported(&g)
        .into_iter()
        .map(|(i, name)| format!("  operator {i}: {name}"))
        .collect())
}

/// Every node of an .onnx whose operator type the importer does not know, as lines.
fn onnx_unsupported_report(path: &str, bytes: &[u8]) -> Res<Vec<String>> {
    let m = parse_onnx(bytes).map_err(|e| format!("{path}: {e}"))?;
    Ok(m.graph
        .as_ref()
        .map(|g| unsupported_nodes(g))
        .unwrap_or_default()
        .into_iter()
        .map(|(i, op)| format!("  node {i}: {op}"))
        .collect())
}

fn unsupported_error(path: &str, lines: &[String]) -> String {
    let n = lines.len();
    format!(
        "{path}: {n} operator{} the runtime cannot run:\n{}",
        if n == 1 { "" } else { "s" },
        lines.join("\n")
    )
}

/// Loads a blob, a .tflite (every unsupported operator listed at once) or an .onnx.
fn load(path: &str, a: &Args) -> Res<(LoadedModel, Kind)> {
    let bytes = read_file(path)?;
    let k = kind(path, &bytes)?;
    let onnx = onnx_options(a)?;
    if k != Kind::Onnx && (!onnx.input_shapes.is_empty() || onnx.io_layout != IoLayout::AsDeclared)
    {
        eprintln!("edgemm: --input-shape and --io-layout apply to .onnx models only; ignored");
    }
    let packing = packing_of(a);
    let loaded = match k {
        Kind::Blob => LoadedModel::from_blob(&bytes),
        Kind::Tflite => {
            let missing = unsupported_report(path, &bytes)?;
            if !missing.is_empty() {
                return Err(unsupported_error(path, &missing));
            }
            LoadedModel::from_tflite(&bytes, packing)
        }
        Kind::Onnx => {
            let missing = onnx_unsupported_report(path, &bytes)?;
            if !missing.is_empty() {
                return Err(unsupported_error(path, &missing));
            }
            LoadedModel::from_onnx(&bytes, &onnx, packing)
        }
    };
    loaded.map(|m| (m, k)).map_err(|e| format!("{path}: {e}"))
}

/// The ONNX options every loading command takes.
const ONNX_OPTS: [Opt; 2] = [
    Opt {
        names: &["--input-shape"],
        value: true,
    },
    Opt {
        names: &["--io-layout"],
        value: true,
    },
];

/// `--input-shape NAME=1,3,96,96` (repeatable) and `--io-layout nhwc|nchw`.
fn onnx_options(a: &Args) -> Res<OnnxOptions> {
    let mut o = OnnxOptions::default();
    for v in a.values("--input-shape") {
        let bad = || {
            format!(
                "{}: --input-shape needs NAME=D0,D1,.. (whole numbers), not {v:?}",
                a.cmd
            )
        };
        let (name, dims) = v.rsplit_once('=').ok_or_else(bad)?;
        let dims: Vec<usize> = dims
            .split(',')
            .map(|d| d.trim().parse::<usize>().ok().filter(|&d| d > 0))
            .collect::<Option<_>>()
            .ok_or_else(bad)?;
        o.input_shapes.push((name.to_string(), dims));
    }
    if let Some(v) = a.values("--io-layout").last() {
        o.io_layout = match *v {
            "nhwc" => IoLayout::Nhwc,
            "nchw" | "declared" => IoLayout::AsDeclared,
            other => {
                return Err(format!(
                    "{}: --io-layout is nhwc or nchw (as declared), not {other:?}",
                    a.cmd
                ))
            }
        };
    }
    Ok(o)
}

fn packing_of(a: &Args) -> Packing {
    if a.flag("--portable") {
        Packing::Portable
    } else {
        Packing::Host
    }
}

fn warn_portable_on_blob(a: &Args, k: Kind) {
    if k == Kind::Blob && a.flag("--portable") {
        eprintln!(
            "edgemm: --portable has no effect on a blob (its weights layout is fixed when converted)"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Formatting

fn quoted(name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{n:?}"),
        None => "(unnamed)".into(),
    }
}

/// A scale with 6 significant digits (`0.0117647`, `4.80170e-5`).
fn sig(x: f32) -> String {
    let a = x.abs();
    if a == 0.0 || !a.is_finite() {
        return format!("{x}");
    }
    if !(1e-4..1e6).contains(&a) {
        return format!("{x:.5e}");
    }
    let digits = (5 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{x:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn quant_text(t: &TensorInfo) -> String {
    match t.quant {
        None => "-".into(),
        Some((s, zp)) if t.per_channel => {
            format!("per-channel (ch0 scale {} zp {zp})", sig(s))
        }
        Some((s, zp)) => format!("scale {} zp {zp}", sig(s)),
    }
}

fn storage_text(t: &TensorInfo) -> String {
    match t.storage {
        Storage::Arena => format!("arena @{} +{}", t.offset, t.bytes),
        Storage::Constant => format!("const @{} +{}", t.offset, t.bytes),
    }
}

fn tensor_ref(m: &Model, t: Option<usize>) -> String {
    match t {
        None => "-".into(),
        Some(t) => match m.tensor(t).and_then(|i| i.name) {
            Some(n) => format!("{t} {n:?}"),
            None => t.to_string(),
        },
    }
}

/// Element `i` of raw little-endian bytes as f64 (None past the end or for packed bytes).
fn value(dtype: DType, b: &[u8], i: usize) -> Option<f64> {
    let size = dtype.size();
    let c = b.get(i * size..(i + 1) * size)?;
    Some(match dtype {
        DType::F32 => f32::from_le_bytes(c.try_into().ok()?) as f64,
        DType::I8 => c[0] as i8 as f64,
        DType::U8 | DType::Bool => c[0] as f64,
        DType::I16 => i16::from_le_bytes(c.try_into().ok()?) as f64,
        DType::I32 => i32::from_le_bytes(c.try_into().ok()?) as f64,
        DType::I64 => i64::from_le_bytes(c.try_into().ok()?) as f64,
        _ => return None,
    })
}

fn fmt_value(dtype: DType, v: f64) -> String {
    if dtype == DType::F32 {
        format!("{v:.6}")
    } else {
        format!("{v}")
    }
}

// ---------------------------------------------------------------------------------------
// run

/// xorshift64*: seeded, reproducible random inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so small seeds give unrelated streams (never 0).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Random bytes for an input, and the range they were drawn from (for the message).
fn random_input(t: &TensorInfo, rng: &mut Rng) -> (Vec<u8>, String) {
    let n = t.elems();
    let mut out = Vec::with_capacity(t.bytes);
    let range = match t.dtype {
        DType::F32 => {
            for _ in 0..n {
                // Uniform in [-1, 1): 24 random bits.
                let v = (rng.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
                out.extend_from_slice(&v.to_le_bytes());
            }
            "[-1, 1)".to_string()
        }
        DType::Bool => {
            out.extend((0..n).map(|_| (rng.next() >> 63) as u8));
            "{0, 1}".to_string()
        }
        dt => {
            // Integers: the type's whole range (the bytes of uniform random words).
            for _ in 0..n {
                out.extend_from_slice(&rng.next().to_le_bytes()[..dt.size()]);
            }
            match dt {
                DType::I8 => "[-128, 127]".to_string(),
                DType::U8 => "[0, 255]".to_string(),
                DType::I16 => "[-32768, 32767]".to_string(),
                _ => format!("the whole {dt} range"),
            }
        }
    };
    out.resize(t.bytes, 0);
    (out, range)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The median of some durations, in microseconds (0 for none).
fn median_us(d: &mut [Duration]) -> f64 {
    d.sort();
    let n = d.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => micros(d[n / 2]),
        _ => (micros(d[n / 2 - 1]) + micros(d[n / 2])) / 2.0,
    }
}

fn run(args: &[String]) -> Res<()> {
    let a = parse(
        "run",
        args,
        &[
            Opt {
                names: &["--input"],
                value: true,
            },
            Opt {
                names: &["--output"],
                value: true,
            },
            Opt {
                names: &["--threads"],
                value: true,
            },
            Opt {
                names: &["--repeat"],
                value: true,
            },
            Opt {
                names: &["--profile"],
                value: false,
            },
            Opt {
                names: &["--seed"],
                value: true,
            },
            Opt {
                names: &["--portable"],
                value: false,
            },
        ],
    )?;
    if a.help {
        outln!("{RUN_USAGE}");
        return Ok(());
    }
    let path = a.model("MODEL")?;
    let threads = a.number("--threads", 1)?.unwrap_or(1);
    let repeat = a.number("--repeat", 1)?;
    let seed = a.number("--seed", 0)?.unwrap_or(1);
    let profile = a.flag("--profile");
    let input_files = a.values("--input");
    let output_files = a.values("--output");

    let (loaded, k) = load(path, &a)?;
    warn_portable_on_blob(&a, k);
    let model = loaded.model();
    let n_in = model.num_inputs();
    let n_out = model.num_outputs();
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    if !input_files.is_empty() && input_files.len() != n_in {
        return Err(format!(
            "{path} has {}, {} given (give one per input, in order, or none for random inputs)",
            plural(n_in, "input"),
            plural(input_files.len(), "--input file"),
        ));
    }
    if output_files.len() > n_out {
        return Err(format!(
            "{path} has {}, {} given",
            plural(n_out, "output"),
            plural(output_files.len(), "--output file"),
        ));
    }

    // The inputs' bytes, checked against their tensors.
    let mut inputs = Vec::with_capacity(n_in);
    let mut rng = Rng::new(seed);
    for i in 0..n_in {
        let info = model
            .input(i)
            .and_then(|t| model.tensor(t))
            .ok_or_else(|| format!("{path}: input {i} has no tensor"))?;
        let desc = format!(
            "input {i} {} ({} {:?})",
            quoted(info.name),
            info.dtype,
            info.shape()
        );
        let bytes = match input_files.get(i) {
            Some(file) => {
                let b = read_file(file)?;
                if b.len() != info.bytes {
                    return Err(format!(
                        "{desc} takes {} bytes, {file} has {}",
                        info.bytes,
                        b.len()
                    ));
                }
                b
            }
            None => {
                let (b, range) = random_input(&info, &mut rng);
                eprintln!(
                    "edgemm: no --input: {desc} gets seeded random values in {range} (seed {seed})"
                );
                b
            }
        };
        inputs.push(bytes);
    }

    let mut runner = loaded.runner();
    runner.set_threads(threads.max(1) as usize);
    let mut s = runner.session().map_err(|e| e.to_string())?;
    // The arena's bytes are reused once a tensor's last reader has run, inputs included:
    // write them before every run.
    let set_inputs = |s: &mut edgemm::nn::Session| -> Res<()> {
        for (i, b) in inputs.iter().enumerate() {
            s.set_input(i, b).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    set_inputs(&mut s)?;
    s.run().map_err(|e| format!("{path}: {e}"))?;
    let outputs: Vec<Vec<u8>> = (0..n_out)
        .map(|j| s.output(j).map(<[u8]>::to_vec))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;

    // Timing: `repeat` runs after the warm-up (the run above).
    let runs = repeat.unwrap_or(1) as usize;
    let mut latency = Vec::new();
    if repeat.is_some() {
        for _ in 0..runs {
            set_inputs(&mut s)?;
            let t0 = Instant::now();
            s.run().map_err(|e| e.to_string())?;
            latency.push(t0.elapsed());
        }
    }
    // Profile: each operator's time in each of `runs` more runs (op-major).
    let op_times = RefCell::new(vec![Vec::with_capacity(runs); model.num_ops()]);
    if profile {
        let started = Cell::new(Instant::now());
        for _ in 0..runs {
            set_inputs(&mut s)?;
            s.run_each(
                |_| started.set(Instant::now()),
                |i| {
                    let d = started.get().elapsed();
                    if let Some(t) = op_times.borrow_mut().get_mut(i) {
                        t.push(d);
                    }
                },
            )
            .map_err(|e| e.to_string())?;
        }
    }

    // Outputs: to their files, or summarized.
    for (j, bytes) in outputs.iter().enumerate() {
        if let Some(file) = output_files.get(j) {
            std::fs::write(file, bytes).map_err(|e| format!("{file}: {e}"))?;
            continue;
        }
        let info = model
            .output(j)
            .and_then(|t| model.tensor(t))
            .ok_or_else(|| format!("{path}: output {j} has no tensor"))?;
        outln!("{}", summarize(j, &info, bytes));
    }

    if repeat.is_some() {
        let median = median_us(&mut latency);
        outln!("runs {runs} after a warm-up, threads {}", s.threads());
        outln!(
            "latency_us median={median:.2} min={:.2}",
            micros(latency[0])
        );
    }
    if profile {
        // Each operator's median over the runs; shares of their sum.
        let times: Vec<f64> = op_times
            .into_inner()
            .iter_mut()
            .map(|t| median_us(t))
            .collect();
        let total: f64 = times.iter().sum();
        let width = (0..model.num_ops())
            .filter_map(|i| model.op(i))
            .map(|o| o.name().len())
            .max()
            .unwrap_or(8)
            .max(8);
        outln!(
            "profile: median of {runs} run{} per operator",
            if runs == 1 { "" } else { "s" }
        );
        outln!(
            "{:>5}  {:<width$}  {:>10}  {:>12}  {:>8}  {:>6}",
            "index",
            "operator",
            "time_us",
            "macs",
            "gmac_s",
            "share"
        );
        let rate = |macs: u64, us: f64| {
            if macs > 0 && us > 0.0 {
                format!("{:.2}", macs as f64 / us / 1e3)
            } else {
                "-".to_string()
            }
        };
        let mut total_macs = 0u64;
        for (i, &us) in times.iter().enumerate() {
            let op = model.op(i);
            let name = op.as_ref().map_or("?", |o| o.name());
            let macs = op.as_ref().map_or(0, |o| o.macs());
            total_macs += macs;
            let share = if total > 0.0 { 100.0 * us / total } else { 0.0 };
            outln!(
                "{i:>5}  {name:<width$}  {us:>10.2}  {macs:>12}  {:>8}  {share:>5.1}%",
                rate(macs, us)
            );
        }
        outln!(
            "{:>5}  {:<width$}  {total:>10.2}  {total_macs:>12}  {:>8}  {:>5.1}%",
            "",
            "total",
            rate(total_macs, total),
            100.0
        );
    }
    Ok(())
}

/// One output's summary: name, shape, dtype, quantization, first values, argmax.
fn summarize(j: usize, t: &TensorInfo, bytes: &[u8]) -> String {
    let mut s = format!("output {j} {}: {} {:?}", quoted(t.name), t.dtype, t.shape());
    if t.quant.is_some() {
        let _ = write!(s, ", {}", quant_text(t));
    }
    let n = t.elems();
    let shown = n.min(8);
    let vals: Vec<f64> = (0..shown)
        .filter_map(|i| value(t.dtype, bytes, i))
        .collect();
    if vals.len() < shown || t.dtype == DType::Packed {
        let _ = write!(s, "\n  {} bytes", bytes.len());
        return s;
    }
    let list =
        |f: &dyn Fn(f64) -> String| vals.iter().map(|&v| f(v)).collect::<Vec<_>>().join(", ");
    let _ = write!(
        s,
        "\n  first {shown} of {n}: [{}]",
        list(&|v| fmt_value(t.dtype, v))
    );
    if let Some((scale, zp)) = t.quant {
        let _ = write!(
            s,
            "\n  dequantized:   [{}]",
            list(&|v| format!("{:.6}", scale as f64 * (v - zp as f64)))
        );
    }
    let mut best: Option<(usize, f64)> = None;
    for i in 0..n {
        if let Some(v) = value(t.dtype, bytes, i) {
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((i, v));
            }
        }
    }
    if let Some((i, v)) = best {
        let _ = write!(s, "\n  argmax {i} (value {})", fmt_value(t.dtype, v));
    }
    s
}

// ---------------------------------------------------------------------------------------
// inspect

fn inspect(args: &[String]) -> Res<()> {
    let a = parse(
        "inspect",
        args,
        &[Opt {
            names: &["--portable"],
            value: false,
        }],
    )?;
    if a.help {
        outln!("{INSPECT_USAGE}");
        return Ok(());
    }
    let path = a.model("MODEL")?;
    let (loaded, k) = match load(path, &a) {
        Ok(done) => done,
        // A blob packed for another target is described all the same (what it holds does
        // not depend on where it runs), with a line saying it cannot run here.
        Err(e) => match foreign_blob(path) {
            Some(loaded) => (loaded, Kind::Blob),
            None => return Err(e),
        },
    };
    warn_portable_on_blob(&a, k);
    let model = loaded.model();
    out(&describe(path, k, &model));
    if let Err(e) = model.runnable() {
        outln!("\nthis build cannot run it: {e}");
    }
    Ok(())
}

/// The blob at `path` read for inspection, if it is one that this build refuses to run only
/// because it was packed for another target.
fn foreign_blob(path: &str) -> Option<LoadedModel> {
    let bytes = std::fs::read(path).ok()?;
    let loaded = LoadedModel::for_inspection(&bytes).ok()?;
    matches!(
        loaded.model().runnable(),
        Err(edgemm::Error::TargetMismatch { .. })
    )
    .then_some(loaded)
}

fn describe(path: &str, k: Kind, m: &Model) -> String {
    let mut s = String::new();
    let b = m.as_bytes();
    let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    match k {
        Kind::Blob => {
            let _ = writeln!(s, "{path}: edgemm blob");
        }
        Kind::Tflite => {
            let _ = writeln!(
                s,
                "{path}: TFLite model, every operator supported; as lowered to a blob:"
            );
        }
        Kind::Onnx => {
            let _ = writeln!(
                s,
                "{path}: ONNX model, imported (NHWC inside); as lowered to a blob:"
            );
        }
    }
    let _ = writeln!(
        s,
        "blob      {} bytes, layout version {}, CRC-32 {:#010x}",
        b.len(),
        word(4),
        word(12)
    );
    let _ = writeln!(s, "packing   {}", m.packing());
    let weights: usize = (0..m.num_tensors())
        .filter_map(|t| m.tensor(t))
        .filter(|t| t.storage == Storage::Constant)
        .map(|t| t.bytes)
        .sum();
    let n_const = (0..m.num_tensors())
        .filter_map(|t| m.tensor(t))
        .filter(|t| t.storage == Storage::Constant)
        .count();
    let _ = writeln!(s, "weights   {weights} bytes in {n_const} constant tensors");
    let macs: u64 = (0..m.num_ops())
        .filter_map(|i| m.op(i))
        .map(|o| o.macs())
        .sum();
    let _ = writeln!(s, "macs      {macs} multiply-accumulates per run");
    let base = m.baseline_arena_size();
    let _ = writeln!(
        s,
        "arena     {} bytes (greedy-by-size baseline, no shared bytes: {})",
        m.arena_size(),
        if base == 0 {
            "unknown".to_string()
        } else {
            format!("{base} bytes")
        }
    );
    let list = |n: usize, f: &dyn Fn(usize) -> Option<usize>| {
        (0..n)
            .map(|i| tensor_ref(m, f(i)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(s, "inputs    {}", list(m.num_inputs(), &|i| m.input(i)));
    let _ = writeln!(s, "outputs   {}", list(m.num_outputs(), &|i| m.output(i)));

    let _ = writeln!(s, "\ntensors ({}):", m.num_tensors());
    let rows: Vec<[String; 6]> = (0..m.num_tensors())
        .filter_map(|t| m.tensor(t).map(|i| (t, i)))
        .map(|(t, i)| {
            [
                t.to_string(),
                i.name.unwrap_or("-").to_string(),
                format!("{:?}", i.shape()),
                i.dtype.to_string(),
                quant_text(&i),
                storage_text(&i),
            ]
        })
        .collect();
    table(
        &mut s,
        ["index", "name", "shape", "dtype", "quantization", "storage"],
        &rows,
    );

    let _ = writeln!(s, "\noperators ({}):", m.num_ops());
    for i in 0..m.num_ops() {
        let Some(op) = m.op(i) else { continue };
        let macs = op.macs();
        let _ = if macs > 0 {
            writeln!(
                s,
                "  {i:>3}  {} (code {}), {macs} MACs",
                op.name(),
                op.code()
            )
        } else {
            writeln!(s, "  {i:>3}  {} (code {})", op.name(), op.code())
        };
        let _ = writeln!(
            s,
            "       inputs  {}",
            list(op.num_inputs(), &|k| op.input(k))
        );
        let _ = writeln!(
            s,
            "       outputs {}",
            list(op.num_outputs(), &|k| op.output(k))
        );
        if op.num_temps() > 0 {
            let _ = writeln!(
                s,
                "       temps   {}",
                list(op.num_temps(), &|k| op.temp(k))
            );
        }
        let params: Vec<String> = (0..op.num_params())
            .map(|p| op.param(p).to_string())
            .collect();
        let _ = writeln!(s, "       params  [{}]", params.join(", "));
    }
    s
}

/// A left-aligned table (the first column right-aligned).
fn table<const N: usize>(s: &mut String, head: [&str; N], rows: &[[String; N]]) {
    let mut w = head.map(str::len);
    for r in rows {
        for (k, c) in r.iter().enumerate() {
            w[k] = w[k].max(c.chars().count());
        }
    }
    let line = |s: &mut String, cells: &[&str]| {
        let mut l = String::from(" ");
        for (k, c) in cells.iter().enumerate() {
            if k == 0 {
                let _ = write!(l, " {c:>width$}", width = w[k]);
            } else {
                let _ = write!(l, "  {c:<width$}", width = w[k]);
            }
        }
        let _ = writeln!(s, "{}", l.trim_end());
    };
    line(s, &head);
    for r in rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(s, &cells);
    }
}

// ---------------------------------------------------------------------------------------
// convert

fn convert(args: &[String]) -> Res<()> {
    let a = parse(
        "convert",
        args,
        &[
            Opt {
                names: &["-o", "--output"],
                value: true,
            },
            Opt {
                names: &["--portable"],
                value: false,
            },
            Opt {
                names: &["--target"],
                value: true,
            },
            Opt {
                names: &["--rust"],
                value: true,
            },
            Opt {
                names: &["--no-names"],
                value: false,
            },
            Opt {
                names: &["--transforms"],
                value: true,
            },
            Opt {
                names: &["--calibration"],
                value: true,
            },
        ],
    )?;
    if a.help {
        outln!("{}", convert_usage());
        return Ok(());
    }
    let path = a.model("input model")?;
    let out = match a.values("--output")[..] {
        [o] => o,
        [] => return Err("convert: no output file given (-o OUT)".into()),
        _ => return Err("convert: more than one -o given".into()),
    };
    // --target (or --portable) and --calibration set the pipeline's prepack target and
    // quantize calibration (checked when the pipeline is built).
    let target = match (&a.values("--target")[..], a.flag("--portable")) {
        ([], false) => None,
        ([], true) => Some("portable"),
        ([t], false) => {
            if Packing::from_name(t).is_none() {
                let names: Vec<&str> = Packing::TARGETS.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "convert: unknown target {t:?} (targets: {})",
                    names.join(", ")
                ));
            }
            Some(*t)
        }
        ([_], true) => return Err("convert: --portable and --target both given".into()),
        _ => return Err("convert: more than one --target given".into()),
    };
    let calibration = match a.values("--calibration")[..] {
        [] => None,
        [c] => Some(c),
        _ => return Err("convert: more than one --calibration given".into()),
    };
    let rust = match a.values("--rust")[..] {
        [] => None,
        [r] => Some(r),
        _ => return Err("convert: more than one --rust given".into()),
    };
    let bytes = read_file(path)?;
    let converted = match kind(path, &bytes)? {
        Kind::Blob => {
            if !a.values("--transforms").is_empty() || calibration.is_some() {
                return Err(format!(
                    "{path}: --transforms and --calibration rewrite a model's graph; a blob has \
                     none left"
                ));
            }
            if !a.values("--target").is_empty() || a.flag("--portable") || a.flag("--no-names") {
                eprintln!(
                    "edgemm: --target, --portable and --no-names have no effect on a blob \
                     (its layout is fixed when converted)"
                );
            }
            let loaded = LoadedModel::from_blob(&bytes).map_err(|e| format!("{path}: {e}"))?;
            let m = loaded.model();
            let mut operators: Vec<u16> = (0..m.num_ops())
                .filter_map(|i| m.op(i).map(|o| o.code()))
                .collect();
            operators.sort_unstable();
            operators.dedup();
            let packing = Packing::from_name(m.packing()).unwrap_or(Packing::Host);
            Converted {
                blob: loaded.blob().to_vec(),
                packing,
                arena_size: m.arena_size(),
                operators,
                macs: edgemm::nn::transform::convert::blob_macs(&m),
                input_bytes: (0..m.num_inputs())
                    .filter_map(|i| m.input(i).and_then(|t| m.tensor(t)).map(|t| t.bytes))
                    .collect(),
                output_bytes: (0..m.num_outputs())
                    .filter_map(|i| m.output(i).and_then(|t| m.tensor(t)).map(|t| t.bytes))
                    .collect(),
                f32: (0..m.num_tensors())
                    .filter_map(|t| m.tensor(t))
                    .any(|t| t.dtype == edgemm::nn::DType::F32),
                forms: edgemm::nn::forms_of(&m),
            }
        }
        k @ (Kind::Tflite | Kind::Onnx) => {
            let onnx = onnx_options(&a)?;
            let missing = if k == Kind::Onnx {
                onnx_unsupported_report(path, &bytes)?
            } else {
                unsupported_report(path, &bytes)?
            };
            if !missing.is_empty() {
                return Err(unsupported_error(path, &missing));
            }
            let text = match a.values("--transforms")[..] {
                [t] => Some(t),
                [] => None,
                _ => return Err("convert: more than one --transforms given".into()),
            };
            let pipeline = Pipeline::with_options(text, target, calibration)
                .map_err(|e| format!("--transforms: {e}"))?;
            let imported = if k == Kind::Onnx {
                import_onnx(&bytes, &onnx)
            } else {
                import_tflite(&bytes)
            };
            let mut g = imported.map_err(|e| format!("{path}: {e}"))?;
            let report = pipeline
                .run(&mut g, |i, n, name, line| {
                    eprintln!("edgemm: [{}/{n}] {name}: {line}", i + 1);
                })
                .map_err(|e| format!("{path}: {e}"))?;
            let opts = WriteOptions {
                names: !a.flag("--no-names"),
            };
            // The pipeline's prepack decides the layout (--target sets it); host without one.
            let packing = report.target.packing.unwrap_or(Packing::Host);
            convert_graph(&g, packing, opts).map_err(|e| format!("{path}: {e}"))?
        }
    };
    std::fs::write(out, &converted.blob).map_err(|e| format!("{out}: {e}"))?;
    if let Some(r) = rust {
        let rel = relative_to(out, r);
        let src = converted.rust_source(path, &rel);
        std::fs::write(r, src).map_err(|e| format!("{r}: {e}"))?;
    }
    eprintln!(
        "edgemm: wrote {out}: {} bytes, {} operator kinds, packing {}, arena {} bytes",
        converted.blob.len(),
        converted.operators.len(),
        converted.packing.name(),
        converted.arena_size
    );
    Ok(())
}

/// `target`'s path as seen from the directory of `from` (both as given on the command
/// line): its file name when they share a directory, else made absolute.
fn relative_to(target: &str, from: &str) -> String {
    use std::path::Path;
    let dir = |p: &str| {
        Path::new(p)
            .parent()
            .map(|d| d.to_path_buf())
            .unwrap_or_default()
    };
    let t = Path::new(target);
    if dir(target) == dir(from) {
        if let Some(name) = t.file_name() {
            return name.to_string_lossy().into_owned();
        }
    }
    std::fs::canonicalize(t)
        .unwrap_or_else(|_| t.to_path_buf())
        .to_string_lossy()
        .into_owned()
}
