//! Convolution benchmark: `cargo run --release --example conv_bench [-- options]`.
//!
//! VGG-16's 3×3 layers (batch 1, 224×224 input), ResNet-18's 3×3 layers and MobileNet-v1's
//! depthwise layers: for each layer and each applicable algorithm, one line with ms per
//! call (median), effective GFLOP/s (direct-convolution FLOPs, 2·N·Ho·Wo·Cout·Cin·Kh·Kw /
//! groups, whatever the algorithm computes), % of the core's measured FMA peak, and
//! `speedup_vs_im2col=<X>` (im2col + edgemm sgemm, same thread count, same run).
//! Depthwise lines add the bytes moved (input + output + filter), `pct_bw_bound`: the time
//! a streaming read of that many bytes takes on this machine (measured here, same working
//! set size, so L2-, L3- or DRAM-resident alike) as a % of the layer's time, and
//! `pct_roofline`: the larger of that and the time the layer's FLOPs take at the measured
//! FMA peak, as a % of the layer's time (layers that fit in L2 are compute-bound).
//!
//! Tensors are 64-byte aligned (as inference arenas are); misaligned tensors run
//! 10–20% slower on depthwise layers (every vector load then splits two cache lines).
//!
//! Options:
//!   --layers a,b     only layers whose name contains one of these (e.g. conv3,res4,dw)
//!   --algs a,b       only these algorithms (im2col is always run: it is the baseline)
//!   --threads N      threads per call (default 1)
//!   --quick          shorter measurements
//!   --direct         also run the f64 direct reference (slow; small layers only)
//!   --no-baseline    skip im2col unless listed in --algs (to profile one algorithm;
//!                    speedup_vs_im2col is then nan)
//!   --cpu-time       time by the thread's on-CPU time (Linux /proc/thread-self/schedstat)
//!                    instead of wall time: 1 thread only; for tuning on a busy machine,
//!                    where another process may take the core for part of a run (longer
//!                    repetitions: that clock ticks in milliseconds)
//!   --csv FILE       also write the lines as CSV
//!   --dtype D        f32 (default), int8, or all: int8 rows run the same layers with
//!                    i8 NHWC inputs and outputs, i8 OHWI filters, per-channel TFLite
//!                    requantization (`QConv2d`): im2col (the baseline) and depthwise
//!
//! Protocol: the layer is prepared once per algorithm (filter transformed and packed),
//! one untimed call, then repetitions of back-to-back calls (≥ 30 ms each, 10 ms with
//! --quick); the median repetition is reported. Machines are shared and noisy: compare the
//! ratios of one run.

use edgemm::conv::{Algorithm, Conv2d, ConvParams, Nhwc, Padding};
use edgemm::Par;
use std::io::Write;
use std::time::Instant;

struct Layer {
    name: &'static str,
    h: usize,
    w: usize,
    params: ConvParams,
}

fn conv(name: &'static str, hw: usize, cin: usize, cout: usize, stride: usize) -> Layer {
    Layer {
        name,
        h: hw,
        w: hw,
        params: ConvParams::new(cin, cout, 3, 3)
            .with_stride(stride, stride)
            .with_padding(Padding::Same),
    }
}

fn dw(name: &'static str, hw: usize, c: usize, stride: usize) -> Layer {
    Layer {
        name,
        h: hw,
        w: hw,
        params: ConvParams::depthwise(c, 1, 3, 3)
            .with_stride(stride, stride)
            .with_padding(Padding::Same),
    }
}

fn layers() -> Vec<Layer> {
    vec![
        // VGG-16 (conv1_1, with 3 input channels, is not a Winograd candidate; listed for
        // completeness). conv3_3, conv4_3, conv5_2/5_3 repeat conv3_2, conv4_2, conv5_1.
        conv("vgg16.conv1_1", 224, 3, 64, 1),
        conv("vgg16.conv1_2", 224, 64, 64, 1),
        conv("vgg16.conv2_1", 112, 64, 128, 1),
        conv("vgg16.conv2_2", 112, 128, 128, 1),
        conv("vgg16.conv3_1", 56, 128, 256, 1),
        conv("vgg16.conv3_2", 56, 256, 256, 1),
        conv("vgg16.conv4_1", 28, 256, 512, 1),
        conv("vgg16.conv4_2", 28, 512, 512, 1),
        conv("vgg16.conv5_1", 14, 512, 512, 1),
        // ResNet-18 3×3 layers (each stage's stride-2 first conv, then its stride-1 convs).
        conv("resnet18.conv2_x", 56, 64, 64, 1),
        conv("resnet18.conv3_1s2", 56, 64, 128, 2),
        conv("resnet18.conv3_x", 28, 128, 128, 1),
        conv("resnet18.conv4_1s2", 28, 128, 256, 2),
        conv("resnet18.conv4_x", 14, 256, 256, 1),
        conv("resnet18.conv5_1s2", 14, 256, 512, 2),
        conv("resnet18.conv5_x", 7, 512, 512, 1),
        // MobileNet-v1 (224) depthwise 3×3 layers; dw7 repeats five times in the net.
        dw("mobilenet_v1.dw1", 112, 32, 1),
        dw("mobilenet_v1.dw2s2", 112, 64, 2),
        dw("mobilenet_v1.dw3", 56, 128, 1),
        dw("mobilenet_v1.dw4s2", 56, 128, 2),
        dw("mobilenet_v1.dw5", 28, 256, 1),
        dw("mobilenet_v1.dw6s2", 28, 256, 2),
        dw("mobilenet_v1.dw7", 14, 512, 1),
        dw("mobilenet_v1.dw8s2", 14, 512, 2),
        dw("mobilenet_v1.dw9", 7, 1024, 1),
    ]
}

struct Opts {
    layers: Option<Vec<String>>,
    algs: Option<Vec<String>>,
    threads: usize,
    quick: bool,
    direct: bool,
    no_baseline: bool,
    cpu_time: bool,
    csv: Option<String>,
    f32: bool,
    int8: bool,
}

fn parse() -> Opts {
    let mut o = Opts {
        layers: None,
        algs: None,
        threads: 1,
        quick: false,
        direct: false,
        no_baseline: false,
        cpu_time: false,
        csv: None,
        f32: true,
        int8: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let val = |i: &mut usize| -> String {
        *i += 1;
        args.get(*i).cloned().unwrap_or_else(|| {
            eprintln!("missing value for {}", args[*i - 1]);
            std::process::exit(2)
        })
    };
    let list = |s: String| s.split(',').map(String::from).collect::<Vec<_>>();
    while i < args.len() {
        match args[i].as_str() {
            "--layers" => o.layers = Some(list(val(&mut i))),
            "--algs" => o.algs = Some(list(val(&mut i))),
            "--threads" => o.threads = val(&mut i).parse().expect("thread count"),
            "--quick" => o.quick = true,
            "--direct" => o.direct = true,
            "--no-baseline" => o.no_baseline = true,
            "--cpu-time" => o.cpu_time = true,
            "--csv" => o.csv = Some(val(&mut i)),
            "--dtype" => {
                let d = val(&mut i);
                (o.f32, o.int8) = match d.as_str() {
                    "f32" => (true, false),
                    "int8" => (false, true),
                    "all" => (true, true),
                    _ => {
                        eprintln!("--dtype takes f32, int8 or all");
                        std::process::exit(2)
                    }
                };
            }
            "-h" | "--help" => {
                let doc: Vec<&str> = include_str!("conv_bench.rs")
                    .lines()
                    .take_while(|l| l.starts_with("//!"))
                    .collect();
                println!("{}", doc.join("\n"));
                std::process::exit(0);
            }
            x => {
                eprintln!("unknown option {x} (try --help)");
                std::process::exit(2);
            }
        }
        i += 1;
    }
    o
}

/// A 64-byte aligned buffer of `len` elements (f32, i8).
struct Aligned<T> {
    buf: Vec<T>,
    off: usize,
    len: usize,
}

impl<T: Copy + Default> Aligned<T> {
    fn new(len: usize, mut fill: impl FnMut() -> T) -> Self {
        let size = std::mem::size_of::<T>();
        let per_line = 64 / size;
        let mut buf = vec![T::default(); len + per_line];
        let off = (per_line - (buf.as_ptr() as usize / size) % per_line) % per_line;
        for x in &mut buf[off..off + len] {
            *x = fill();
        }
        Aligned { buf, off, len }
    }
    fn get(&self) -> &[T] {
        &self.buf[self.off..self.off + self.len]
    }
    fn get_mut(&mut self) -> &mut [T] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// Seconds: wall time, or with `--cpu-time` this thread's on-CPU time.
fn now(cpu: bool) -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    if cpu {
        if let Ok(s) = std::fs::read_to_string("/proc/thread-self/schedstat") {
            if let Some(ns) = s
                .split_whitespace()
                .next()
                .and_then(|x| x.parse::<u64>().ok())
            {
                return ns as f64 * 1e-9;
            }
        }
    }
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Median seconds per call of `f` over repetitions of back-to-back calls.
fn measure(quick: bool, cpu: bool, mut f: impl FnMut()) -> f64 {
    f();
    let (rep_time, budget, reps_min) = match (cpu, quick) {
        // The on-CPU clock ticks in milliseconds: long repetitions keep its error small.
        (true, true) => (0.2, 0.6, 3),
        (true, false) => (0.4, 3.0, 5),
        (false, true) => (0.01, 0.12, 3),
        (false, false) => (0.03, 0.6, 5),
    };
    let t = Instant::now();
    f();
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let n = ((rep_time / once).ceil() as u64).max(1);
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < reps_min || (times.len() < 15 && start.elapsed().as_secs_f64() < budget) {
        let t = now(cpu);
        for _ in 0..n {
            f();
        }
        times.push((now(cpu) - t) / n as f64);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[times.len() / 2]
}

/// Seconds to stream-read `bytes` bytes (a buffer of that size, read repeatedly; median),
/// the bandwidth bound of a layer that must move that many bytes.
fn stream_read_seconds(bytes: usize, quick: bool, cpu: bool) -> f64 {
    let n = (bytes / 4).div_ceil(128).max(1) * 128;
    let buf = Aligned::new(n, || 1.0f32);
    let b = buf.get();
    measure(quick, cpu, || read_all(b))
}

/// Reads every element of `b` (a multiple of 128 elements, 64-byte aligned).
fn read_all(b: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if edgemm::cpu_info()
        .features
        .contains(edgemm::Features::AVX512F)
    {
        // SAFETY: AVX-512F checked; reads b[0..len] (len a multiple of 128, 64-byte
        // aligned) and touches only the named registers.
        unsafe {
            core::arch::asm!(
                "2:",
                "vaddps zmm0, zmm0, [{p}]",
                "vaddps zmm1, zmm1, [{p} + 64]",
                "vaddps zmm2, zmm2, [{p} + 128]",
                "vaddps zmm3, zmm3, [{p} + 192]",
                "vaddps zmm4, zmm4, [{p} + 256]",
                "vaddps zmm5, zmm5, [{p} + 320]",
                "vaddps zmm6, zmm6, [{p} + 384]",
                "vaddps zmm7, zmm7, [{p} + 448]",
                "add {p}, 512",
                "sub {n}, 128",
                "jnz 2b",
                "vzeroupper",
                p = inout(reg) b.as_ptr() => _,
                n = inout(reg) b.len() => _,
                out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _,
                out("zmm4") _, out("zmm5") _, out("zmm6") _, out("zmm7") _,
                options(nostack, readonly),
            );
        }
        return;
    }
    // 32 independent sums (vectorized) so the adds do not limit the read rate.
    let mut acc = [0f32; 32];
    for chunk in b.chunks_exact(32) {
        for (a, x) in acc.iter_mut().zip(chunk) {
            *a += *x;
        }
    }
    std::hint::black_box(acc);
}

fn main() {
    let o = parse();
    let cpu = edgemm::cpu_info();
    let mut brand = [0u8; 48];
    println!("edgemm conv_bench");
    println!("cpu:      {}", edgemm::arch::cpu_brand(&mut brand));
    println!("features: {}", cpu.features);
    println!(
        "caches:   L1d {} KiB, L2 {} KiB, L3 {} MiB",
        cpu.l1d >> 10,
        cpu.l2 >> 10,
        cpu.l3 >> 20
    );
    let kernel = edgemm::kernels()
        .find(|k| k.selected && k.kind == edgemm::KernelKind::F32)
        .map_or("?", |k| k.name);
    println!("kernel:   {kernel}");
    let peak = peak::f32_peak(o.quick);
    match peak {
        Some((p, what)) => println!("f32 peak, 1 core: {p:.1} GFLOP/s ({what})"),
        None => println!("f32 peak, 1 core: not measured on this architecture"),
    }
    let int8_peak = if o.int8 {
        peak::int8_vnni(o.quick).map(|p| (p, "vpdpbusd zmm"))
    } else {
        None
    };
    if o.int8 {
        let kernel = edgemm::kernels()
            .find(|k| k.selected && k.kind == edgemm::KernelKind::Int8)
            .map_or("?", |k| k.name);
        println!("int8 kernel: {kernel}");
        match int8_peak {
            Some((p, what)) => println!("int8 peak, 1 core: {p:.1} GOP/s ({what})"),
            None => println!("int8 peak, 1 core: not measured on this CPU"),
        }
    }
    println!("threads:  {}", o.threads);
    if o.cpu_time {
        println!("timing:   on-CPU time of the calling thread (--cpu-time)");
        if o.threads != 1 {
            eprintln!("--cpu-time measures the calling thread only: use --threads 1");
            std::process::exit(2);
        }
    }
    let par = if o.threads == 1 {
        Par::Seq
    } else {
        Par::Threads(o.threads)
    };
    let want_alg = |a: Algorithm| {
        o.algs
            .as_ref()
            .is_none_or(|l| l.iter().any(|s| s == a.name()))
    };
    let mut csv = Vec::new();
    for layer in layers() {
        if let Some(f) = &o.layers {
            if !f.iter().any(|s| layer.name.contains(s.as_str())) {
                continue;
            }
        }
        let p = layer.params;
        let shape = Nhwc::new(1, layer.h, layer.w, p.in_channels);
        let out_shape = p.output_shape(shape).expect("layer shape");
        let mut seed = 0x2545_F491_4F6C_DD1Du64 ^ layer.name.len() as u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        };
        if o.int8 && !o.f32 {
            int8_rows(&o, &layer, par, int8_peak, &want_alg, &mut csv);
            continue;
        }
        let input = Aligned::new(shape.len().unwrap(), &mut rnd);
        let input = input.get();
        let filter: Vec<f32> = (0..p.filter_len().unwrap()).map(|_| rnd() * 0.1).collect();
        let bias: Vec<f32> = (0..p.out_channels).map(|_| rnd()).collect();
        let mut output = Aligned::new(out_shape.len().unwrap(), || 0.0f32);
        let output = output.get_mut();
        let flops = 2.0
            * (out_shape.height * out_shape.width * p.out_channels) as f64
            * (p.in_channels / p.groups * p.kernel_h * p.kernel_w) as f64;
        let bytes = 4 * (input.len() + output.len() + filter.len() + bias.len());
        let auto = edgemm::conv::choose_algorithm(&p, Some(shape));
        let mut algs: Vec<Algorithm> = Vec::new();
        if !o.no_baseline || want_alg(Algorithm::Im2col) && o.algs.is_some() {
            algs.push(Algorithm::Im2col);
        }
        for a in [
            Algorithm::Depthwise,
            Algorithm::Winograd2x3,
            Algorithm::Winograd4x3,
            Algorithm::Winograd6x3,
        ] {
            // Winograd on a depthwise layer runs (groups of one channel) but is never
            // competitive: only when asked for.
            let asked = o
                .algs
                .as_ref()
                .is_some_and(|l| l.iter().any(|s| s == a.name()));
            let sensible = !(p.is_depthwise() && a != Algorithm::Depthwise) || asked;
            if a.check(&p).is_ok() && want_alg(a) && sensible {
                algs.push(a);
            }
        }
        if o.direct {
            algs.push(Algorithm::Direct);
        }
        let bw_bound = if p.is_depthwise() {
            Some(stream_read_seconds(bytes, o.quick, o.cpu_time))
        } else {
            None
        };
        let mut im2col_s = None;
        for alg in algs {
            let conv = Conv2d::new(&p, &filter, Some(&bias), alg).expect("prepare");
            let s = measure(o.quick, o.cpu_time, || {
                conv.run(input, shape, output, par).expect("run");
            });
            if alg == Algorithm::Im2col {
                im2col_s = Some(s);
            }
            let speedup = im2col_s.map_or(f64::NAN, |b| b / s);
            let row = Row {
                layer: &layer,
                out_shape,
                alg,
                auto: alg == auto,
                seconds: s,
                speedup,
                dtype: "f32",
            };
            report(
                &row,
                &o,
                flops,
                peak,
                bw_bound.map(|b| (b, bytes)),
                &mut csv,
            );
        }
        if o.int8 {
            int8_rows(&o, &layer, par, int8_peak, &want_alg, &mut csv);
        }
    }
    if let Some(path) = &o.csv {
        let mut f = std::fs::File::create(path).expect("create csv");
        writeln!(
            f,
            "layer,h,w,cin,ho,wo,cout,stride,alg,auto,ms,gflops,speedup_vs_im2col,pct_bw_bound,dtype"
        )
        .unwrap();
        for r in &csv {
            writeln!(f, "{r}").unwrap();
        }
        println!("wrote {path}");
    }
}

/// The int8 rows of one layer: i8 input and output, i8 filter, i32 bias, per-channel
/// requantization; im2col (the baseline), depthwise where it applies, direct on request.
fn int8_rows(
    o: &Opts,
    layer: &Layer,
    par: Par,
    peak: Option<(f64, &'static str)>,
    want_alg: &dyn Fn(Algorithm) -> bool,
    csv: &mut Vec<String>,
) {
    use edgemm::conv::{choose_algorithm_int8, quantize_conv_scales, ConvQuant, QConv2d};
    let p = layer.params;
    let shape = Nhwc::new(1, layer.h, layer.w, p.in_channels);
    let out_shape = p.output_shape(shape).expect("layer shape");
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ layer.name.len() as u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let input = Aligned::new(shape.len().unwrap(), || rnd() as i8);
    let input = input.get();
    let filter: Vec<i8> = (0..p.filter_len().unwrap()).map(|_| rnd() as i8).collect();
    let bias: Vec<i32> = (0..p.out_channels)
        .map(|_| (rnd() % 4001) as i32 - 2000)
        .collect();
    // Scales that spread the outputs over the int8 range: s_out ≈ s_in·s_w·64·√K.
    let k = p.in_channels / p.groups * p.kernel_h * p.kernel_w;
    let s_in = 0.02f32;
    let s_w: Vec<f32> = (0..p.out_channels)
        .map(|_| 0.002 + (rnd() % 1000) as f32 * 4e-6)
        .collect();
    let s_out = s_in * 0.004 * 64.0 * (k as f32).sqrt();
    let (mults, shifts) = quantize_conv_scales(s_in, &s_w, s_out).expect("scales");
    let quant = ConvQuant::new(
        -3,
        2,
        edgemm::Scale::PerChannel {
            multipliers: &mults,
            shifts: &shifts,
        },
    );
    let mut output = Aligned::new(out_shape.len().unwrap(), || 0i8);
    let output = output.get_mut();
    let ops = 2.0
        * (out_shape.height * out_shape.width * p.out_channels) as f64
        * (p.in_channels / p.groups * p.kernel_h * p.kernel_w) as f64;
    let bytes = input.len() + output.len() + filter.len() + 4 * bias.len();
    let auto = choose_algorithm_int8(&p);
    let mut algs = Vec::new();
    if !o.no_baseline || want_alg(Algorithm::Im2col) && o.algs.is_some() {
        algs.push(Algorithm::Im2col);
    }
    if p.is_depthwise() && want_alg(Algorithm::Depthwise) {
        algs.push(Algorithm::Depthwise);
    }
    if o.direct {
        algs.push(Algorithm::Direct);
    }
    let bw_bound = p
        .is_depthwise()
        .then(|| stream_read_seconds(bytes, o.quick, o.cpu_time));
    let mut im2col_s = None;
    for alg in algs {
        let conv: QConv2d<i8, i8> =
            QConv2d::new(&p, &quant, &filter, Some(&bias), alg).expect("prepare");
        let s = measure(o.quick, o.cpu_time, || {
            conv.run(input, shape, output, par).expect("run");
        });
        if alg == Algorithm::Im2col {
            im2col_s = Some(s);
        }
        let speedup = im2col_s.map_or(f64::NAN, |b| b / s);
        let row = Row {
            layer,
            out_shape,
            alg,
            auto: alg == auto,
            seconds: s,
            speedup,
            dtype: "int8",
        };
        report(&row, o, ops, peak, bw_bound.map(|b| (b, bytes)), csv);
    }
}

/// One measured (layer, algorithm) pair.
struct Row<'a> {
    layer: &'a Layer,
    out_shape: Nhwc,
    alg: Algorithm,
    auto: bool,
    seconds: f64,
    speedup: f64,
    dtype: &'static str,
}

/// Prints a row's line (GFLOP/s for f32, GOP/s for int8; `work` counts 2 per multiply-add)
/// with the bandwidth bound for depthwise layers (`bw`: seconds, bytes), and adds its CSV
/// record.
fn report(
    r: &Row,
    o: &Opts,
    work: f64,
    peak: Option<(f64, &'static str)>,
    bw: Option<(f64, usize)>,
    csv: &mut Vec<String>,
) {
    let (p, s) = (r.layer.params, r.seconds);
    let rate = work / s / 1e9;
    let peak_all = peak.map(|(pk, _)| pk * o.threads as f64);
    let (tag, unit) = if r.dtype == "f32" {
        ("", "gflops")
    } else {
        (" dtype=int8", "gops")
    };
    let mut line = format!(
        "layer={}{tag} in={}x{}x{} out={}x{}x{} k=3x3 s={} alg={}{} ms={:.3} {unit}={:.1} pct_peak={} speedup_vs_im2col={:.2}",
        r.layer.name,
        r.layer.h,
        r.layer.w,
        p.in_channels,
        r.out_shape.height,
        r.out_shape.width,
        p.out_channels,
        p.stride_h,
        r.alg.name(),
        if r.auto { "(auto)" } else { "" },
        s * 1e3,
        rate,
        peak_all.map_or("-".into(), |pk| format!("{:.1}%", 100.0 * rate / pk)),
        r.speedup
    );
    let mut bw_pct = String::new();
    if let (Some((b, bytes)), Algorithm::Depthwise) = (bw, r.alg) {
        bw_pct = format!("{:.1}", 100.0 * b / s);
        let compute_s = peak_all.map_or(0.0, |pk| work / (pk * 1e9));
        line += &format!(
            " bytes={:.2}MB bw_bound_ms={:.3} pct_bw_bound={}% pct_roofline={:.1}%",
            bytes as f64 / 1e6,
            b * 1e3,
            bw_pct,
            100.0 * b.max(compute_s) / s
        );
    }
    println!("{line}");
    csv.push(format!(
        "{},{},{},{},{},{},{},{},{},{},{:.4},{:.2},{:.3},{},{}",
        r.layer.name,
        r.layer.h,
        r.layer.w,
        p.in_channels,
        r.out_shape.height,
        r.out_shape.width,
        p.out_channels,
        p.stride_h,
        r.alg.name(),
        r.auto,
        s * 1e3,
        rate,
        r.speedup,
        bw_pct,
        r.dtype
    ));
}

#[path = "common/peak.rs"]
mod peak;
