//! The benchmark: `cargo run --release --example bench [-- options]`.
//!
//! Prints the CPU, its features and caches, the selected kernels, the measured peak of one
//! core (an inline-assembly loop of independent FMAs), then GFLOP/s and % of peak for the
//! shapes of `../shared/peerbench` with 1 thread and with all threads.
//!
//! Then the int8 rows: GOP/s (2 ops per multiply-add) of `qgemm` (u8 × i8 → i32) and % of
//! the measured VNNI peak, the AVX2 int8 kernel forced against the AVX2 int8 peak, and the
//! cost of requantized i8 output over i32 output.
//!
//! Options:
//!   --csv FILE          also write the table as CSV
//!   --kernel NAME       force the f32 kernel (as EDGEMM_KERNEL does; see edgemm::kernels())
//!   --kinds f32,int8    which tables (default both)
//!   --shapes a,b        only shapes whose label contains one of these
//!   --threads 1,2       thread counts to run (default: 1 and all cores)
//!   --quick             shorter measurements
//!
//! Protocol (as peerbench): C = A·B row-major, α = 1, β = 0, 2·m·n·k flops; one untimed
//! call, then repetitions of back-to-back calls (≥ 30 ms each, 0.1 s warm-up); the median
//! repetition is reported, with the best.

use edgemm::{Context, Kernel, KernelKind, MatMut, MatRef, Par, Requantized};
use std::io::Write;
use std::time::{Duration, Instant};

struct Opts {
    kinds: Vec<String>,
    csv: Option<String>,
    kernel: Option<String>,
    shapes: Option<Vec<String>>,
    threads: Vec<usize>,
    quick: bool,
}

fn parse() -> Opts {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut o = Opts {
        kinds: vec!["f32".into(), "int8".into()],
        csv: None,
        kernel: None,
        shapes: None,
        threads: if all > 1 { vec![1, all] } else { vec![1] },
        quick: false,
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
    while i < args.len() {
        match args[i].as_str() {
            "--csv" => o.csv = Some(val(&mut i)),
            "--kernel" => o.kernel = Some(val(&mut i)),
            "--kinds" => o.kinds = val(&mut i).split(',').map(String::from).collect(),
            "--shapes" => o.shapes = Some(val(&mut i).split(',').map(String::from).collect()),
            "--threads" => {
                o.threads = val(&mut i)
                    .split(',')
                    .map(|t| t.parse().expect("thread count"))
                    .collect()
            }
            "--quick" => o.quick = true,
            "-h" | "--help" => {
                println!(
                    "{}",
                    include_str!("bench.rs")
                        .lines()
                        .take(20)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
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

/// The shapes of ../shared/peerbench (label, m, n, k).
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("sq64", 64, 64, 64),
    ("sq128", 128, 128, 128),
    ("sq256", 256, 256, 256),
    ("sq512", 512, 512, 512),
    ("sq1024", 1024, 1024, 1024),
    ("sq2048", 2048, 2048, 2048),
    ("gemv_1x1000x1024", 1, 1000, 1024),
    ("conv_64x64x576", 64, 64, 576),
    ("im2col_196x256x2304", 196, 256, 2304),
    ("conv_3136x64x576", 3136, 64, 576),
    ("fc_49x1024x1024", 49, 1024, 1024),
    ("fc16_16x4096x4096", 16, 4096, 4096),
    ("skinnyk_1024x1024x64", 1024, 1024, 64),
];

/// Median and best rate (ops/s) of `f` over repetitions of back-to-back calls.
fn measure(quick: bool, ops: f64, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let (rep_time, budget, warm) = if quick {
        (0.01, 0.15, 0.02)
    } else {
        (0.03, 0.8, 0.1)
    };
    let t = Instant::now();
    let mut iters = 0u64;
    while t.elapsed().as_secs_f64() < warm {
        f();
        iters += 1;
    }
    let per_call = t.elapsed().as_secs_f64() / iters.max(1) as f64;
    let n = ((rep_time / per_call).ceil() as u64).max(1);
    let mut rates = Vec::new();
    let start = Instant::now();
    while rates.len() < 5 || (rates.len() < 15 && start.elapsed().as_secs_f64() < budget) {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        rates.push(ops * n as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (rates[rates.len() / 2], rates[rates.len() - 1])
}

fn main() {
    let o = parse();
    if let Some(k) = &o.kernel {
        // Validate early with a clear message.
        if let Err(e) = Kernel::by_name(k) {
            eprintln!("--kernel {k}: {e}");
            std::process::exit(2);
        }
    }
    let cpu = edgemm::cpu_info();
    let mut brand = [0u8; 48];
    println!("edgemm bench");
    println!("cpu:      {}", edgemm::arch::cpu_brand(&mut brand));
    println!("features: {}", cpu.features);
    println!(
        "caches:   L1d {} KiB, L2 {} KiB, L3 {} MiB{}",
        cpu.l1d >> 10,
        cpu.l2 >> 10,
        cpu.l3 >> 20,
        if cpu.caches_detected {
            ""
        } else {
            " (defaults: not detected)"
        }
    );
    println!(
        "threads:  {} available",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("kernels:");
    for k in edgemm::kernels() {
        println!(
            "  {:<28} {:<5} {:<10} {:>2}x{:<2} {}{}",
            k.name,
            match k.kind {
                KernelKind::F32 => "f32",
                KernelKind::Int8 => "int8",
            },
            k.isa,
            k.mr,
            k.nr,
            if k.runnable {
                "runs here"
            } else {
                "not runnable here"
            },
            if k.selected { "  <- selected" } else { "" }
        );
    }
    let forced = o.kernel.as_deref().map(|k| Kernel::by_name(k).unwrap());
    let f32_kernel = forced
        .map(|k| k.name())
        .or_else(|| {
            edgemm::kernels()
                .find(|k| k.kind == KernelKind::F32 && k.selected)
                .map(|k| k.name)
        })
        .unwrap_or("?");

    let peak = peak::f32_peak(o.quick);
    match peak {
        Some((p, what)) => println!("f32 peak, 1 core: {p:.1} GFLOP/s ({what})"),
        None => println!("f32 peak, 1 core: not measured on this architecture"),
    }
    let peak1 = peak.map(|p| p.0);

    let mut rows: Vec<String> = Vec::new();
    let want = |k: &str| o.kinds.iter().any(|x| x == k);
    let selected = |kind: KernelKind| {
        edgemm::kernels()
            .find(|k| k.kind == kind && k.selected)
            .map_or("?", |k| k.name)
    };
    let shape_ok = |label: &str| {
        o.shapes
            .as_ref()
            .is_none_or(|f| f.iter().any(|s| label.contains(s.as_str())))
    };
    let f32_threads = if want("f32") {
        o.threads.clone()
    } else {
        vec![]
    };
    for &threads in &f32_threads {
        println!(
            "\nf32 GEMM, {threads} thread{}, kernel {f32_kernel}: GFLOP/s median (best), % of {}",
            if threads == 1 { "" } else { "s" },
            if threads == 1 {
                "1-core peak"
            } else {
                "peak × threads"
            }
        );
        println!(
            "{:<24} {:>16} {:>8}",
            "shape m x n x k", "GFLOP/s", "% peak"
        );
        for &(label, m, n, k) in SHAPES {
            if !shape_ok(label) {
                continue;
            }
            let mut seed = 0x9E37_79B9u64 ^ (m * 1_000_003 + n * 1009 + k) as u64;
            let mut rnd = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            };
            let a: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
            let mut c = vec![0f32; m * n];
            let par = if threads == 1 {
                Par::Seq
            } else {
                Par::Threads(threads)
            };
            let ops = 2.0 * (m * n * k) as f64;
            let (med, best) = measure(o.quick, ops, || {
                let av = MatRef::row_major(&a, m, k).unwrap();
                let bv = MatRef::row_major(&b, k, n).unwrap();
                let cv = MatMut::row_major(&mut c, m, n).unwrap();
                let ctx = match forced {
                    Some(kern) => Context::new().kernel(kern).par(par),
                    None => Context::from(par),
                };
                edgemm::sgemm(1.0, av, bv, 0.0, cv, ctx).expect("sgemm");
            });
            let pct = peak1.map(|p| 100.0 * med / 1e9 / (p * threads as f64));
            println!(
                "{:<24} {:>7.1} ({:>6.1}) {:>8}",
                format!("{label}"),
                med / 1e9,
                best / 1e9,
                pct.map_or("-".into(), |p| format!("{p:.1}%"))
            );
            rows.push(format!(
                "f32,{f32_kernel},{label},{m},{n},{k},{threads},{:.3},{:.3},{}",
                med / 1e9,
                best / 1e9,
                pct.map_or(String::new(), |p| format!("{p:.2}"))
            ));
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if want("int8") {
        int8_tables(&o, &shape_ok, selected(KernelKind::Int8), &mut rows);
    }
    if let Some(path) = &o.csv {
        let mut f = std::fs::File::create(path).expect("create csv");
        writeln!(
            f,
            "kind,kernel,shape,m,n,k,threads,median_gops,best_gops,pct_peak"
        )
        .unwrap();
        for r in &rows {
            writeln!(f, "{r}").unwrap();
        }
        println!("\nwrote {path}");
    }
}

/// The int8 tables (see the module docs).
fn int8_tables(o: &Opts, shape_ok: &dyn Fn(&str) -> bool, selected: &str, rows: &mut Vec<String>) {
    let f = edgemm::cpu_info().features;
    let vnni_peak = peak::int8_vnni(o.quick);
    let avx2_peak = peak::int8_avx2(o.quick);
    match vnni_peak {
        Some(p) => println!("\nint8 peak, 1 core: {p:.1} GOP/s (vpdpbusd zmm)"),
        None => println!("\nint8 VNNI peak: not measured (no AVX-512 VNNI here)"),
    }
    if let Some(p) = avx2_peak {
        println!("int8 AVX2 peak, 1 core: {p:.1} GOP/s (vpmaddubsw + vpmaddwd + vpaddd)");
    }
    let run_table = |kernel: &str, threads: usize, peak: Option<f64>, rows: &mut Vec<String>| {
        let Ok(kern) = Kernel::by_name(kernel) else {
            println!("\n(int8 kernel {kernel}: not runnable here, skipped)");
            return;
        };
        println!(
            "\nint8 GEMM u8 x i8 -> i32, {threads} thread{}, kernel {kernel}: GOP/s median (best), % of peak{}",
            if threads == 1 { "" } else { "s" },
            if threads == 1 { "" } else { " × threads" }
        );
        println!("{:<24} {:>16} {:>8}", "shape m x n x k", "GOP/s", "% peak");
        for &(label, m, n, k) in SHAPES {
            if !shape_ok(label) {
                continue;
            }
            let a: Vec<u8> = (0..m * k).map(|i| (i * 7 % 128) as u8).collect();
            let b: Vec<i8> = (0..k * n).map(|i| (i * 13 % 255) as i32 as i8).collect();
            let mut c = vec![0i32; m * n];
            let par = if threads == 1 {
                Par::Seq
            } else {
                Par::Threads(threads)
            };
            let ops = 2.0 * (m * n * k) as f64;
            let (med, best) = measure(o.quick, ops, || {
                edgemm::qgemm(
                    MatRef::row_major(&a, m, k).unwrap(),
                    0,
                    MatRef::row_major(&b, k, n).unwrap(),
                    0,
                    MatMut::row_major(&mut c, m, n).unwrap(),
                    Context::new().kernel(kern).par(par),
                )
                .expect("qgemm");
            });
            let pct = peak.map(|p| 100.0 * med / 1e9 / (p * threads as f64));
            println!(
                "{:<24} {:>7.1} ({:>6.1}) {:>8}",
                label,
                med / 1e9,
                best / 1e9,
                pct.map_or("-".into(), |p| format!("{p:.1}%"))
            );
            rows.push(format!(
                "int8,{kernel},{label},{m},{n},{k},{threads},{:.3},{:.3},{}",
                med / 1e9,
                best / 1e9,
                pct.map_or(String::new(), |p| format!("{p:.2}"))
            ));
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    for &threads in &o.threads {
        run_table(
            selected,
            threads,
            vnni_peak.filter(|_| selected.contains("vnni")),
            rows,
        );
    }
    if f.contains(edgemm::Features::AVX2) && selected != "qgemm_i16_avx2_6x16" {
        run_table("qgemm_i16_avx2_6x16", 1, avx2_peak, rows);
    }
    // Requantized i8 output against i32 output, same kernel, 256³.
    if shape_ok("requant") || o.shapes.is_none() {
        let (m, n, k) = (256, 256, 256);
        let a: Vec<u8> = (0..m * k).map(|i| (i * 7 % 128) as u8).collect();
        let b: Vec<i8> = (0..k * n).map(|i| (i * 13 % 255) as i32 as i8).collect();
        let mut c = vec![0i32; m * n];
        let mut q = vec![0i8; m * n];
        let mults: Vec<i32> = (0..n).map(|j| (1 << 30) + j as i32 * 1000).collect();
        let shifts: Vec<i32> = (0..n).map(|j| -8 - (j % 3) as i32).collect();
        let bias: Vec<i32> = (0..n).map(|j| j as i32 * 17 - 2000).collect();
        let rq = edgemm::Requantize::new(
            edgemm::Scale::PerChannel {
                multipliers: &mults,
                shifts: &shifts,
            },
            -5,
        )
        .with_bias(&bias)
        .with_clamp(-128, 127);
        let ops = 2.0 * (m * n * k) as f64;
        // Interleave the two so drift hits both alike.
        let mut i32_rates = Vec::new();
        let mut rq_rates = Vec::new();
        for _ in 0..3 {
            i32_rates.push(
                measure(o.quick, ops, || {
                    edgemm::qgemm(
                        MatRef::row_major(&a, m, k).unwrap(),
                        3,
                        MatRef::row_major(&b, k, n).unwrap(),
                        0,
                        MatMut::row_major(&mut c, m, n).unwrap(),
                        Par::Seq,
                    )
                    .unwrap()
                })
                .0,
            );
            rq_rates.push(
                measure(o.quick, ops, || {
                    edgemm::qgemm(
                        MatRef::row_major(&a, m, k).unwrap(),
                        3,
                        MatRef::row_major(&b, k, n).unwrap(),
                        0,
                        Requantized(&rq, MatMut::row_major(&mut q, m, n).unwrap()),
                        Par::Seq,
                    )
                    .unwrap()
                })
                .0,
            );
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        let (ri, rr) = (med(&mut i32_rates), med(&mut rq_rates));
        println!(
            "\nrequantized i8 output (per-channel, bias, clamp) vs i32 output, 256x256x256, 1 thread, kernel {selected}:\n  i32 {:.1} GOP/s, requantized {:.1} GOP/s: cost {:+.1}%",
            ri / 1e9,
            rr / 1e9,
            100.0 * (ri / rr - 1.0)
        );
        rows.push(format!(
            "int8-requant,{selected},sq256_i32,256,256,256,1,{:.3},,",
            ri / 1e9
        ));
        rows.push(format!(
            "int8-requant,{selected},sq256_requant,256,256,256,1,{:.3},,",
            rr / 1e9
        ));
    }
}

#[path = "common/peak.rs"]
mod peak;
