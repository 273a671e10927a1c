//! Every kernel compiled in (f32 and int8), forced one by one, against `edgemm::reference`:
//! a deterministic sweep over shapes around each kernel's MR, NR and k unroll, every layout
//! combination, α/β (β = 0 with NaN in C), blocking boundaries (k > KC, m > MC, n > NC),
//! threads, prepacked B, then proptest over random cases; int8 kernels likewise, exactly,
//! with zero points and extreme data (all −128, all 127, u8 255) up to the largest exact k,
//! and requantization (per tensor / per channel, i8 / u8 out, bias, clamps, shifts −31..30).
//! Without `alloc` the int8 cases go through the workspace entry points and weights packed
//! into caller memory.
//! Kernels this CPU cannot run are reported as SKIPPED. Exits non-zero on the first failure,
//! printing the case.
//!
//! `cargo test --test kernel_battery -- <substring>` runs only kernels whose name contains it.

mod common;

use common::*;
#[cfg(feature = "alloc")]
use edgemm::{Context, MatMut, MatRef, PackedB, Par, Requantized};
use edgemm::{Kernel, KernelKind};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::process::exit;

fn fail(kernel: &str, what: &str, case: &Case, msg: &str) -> ! {
    eprintln!("FAILED kernel {kernel} ({what}): {msg}\n  case: {case:?}");
    exit(1);
}

/// Shapes that sit on every boundary of the kernel's tile and the k unroll (4).
fn sweep_dims(mr: usize, nr: usize) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut ms = vec![1, 2, 3, mr - 1, mr, mr + 1, 2 * mr + 3, 37];
    // nr/2 and nr + nr/2: tiles and last slivers a half-width kernel variant takes.
    let mut ns = vec![
        1,
        2,
        5,
        nr / 2,
        nr - 1,
        nr,
        nr + 1,
        nr + nr / 2,
        2 * nr + 5,
        67,
    ];
    let ks = vec![1, 2, 3, 4, 5, 8, 17, 64, 131];
    for v in [&mut ms, &mut ns] {
        v.retain(|&x| x > 0);
        v.sort_unstable();
        v.dedup();
    }
    (ms, ns, ks)
}

const ALPHAS: [f32; 5] = [1.0, -1.0, 0.5, 0.0, 3.25];
const BETAS: [f32; 5] = [0.0, 1.0, -1.0, 0.25, -0.0];

fn sweep(kernel: &Kernel, name: &str, mr: usize, nr: usize) -> usize {
    let mut count = 0;
    let mut run = |what: &str, c: Case| {
        if let Err(msg) = run_sgemm_case(Some(kernel), &c) {
            fail(name, what, &c, &msg);
        }
        count += 1;
    };
    let (ms, ns, ks) = sweep_dims(mr, nr);
    // 1. Shapes × α/β, layouts cycling through all combinations.
    let mut idx = 0u64;
    for &m in &ms {
        for &n in &ns {
            for &k in &ks {
                let l = |s: u64| ALL_LAYOUTS[((idx / s) % ALL_LAYOUTS.len() as u64) as usize];
                run(
                    "shape sweep",
                    Case {
                        m,
                        n,
                        k,
                        la: l(1),
                        lb: l(3),
                        lc: l(7),
                        alpha: ALPHAS[(idx % 5) as usize],
                        beta: BETAS[((idx / 5) % 5) as usize],
                        values: [Values::Uniform, Values::Integers, Values::WideRange]
                            [(idx % 3) as usize],
                        threads: 1,
                        seed: idx,
                    },
                );
                idx += 1;
            }
        }
    }
    // 2. Every layout combination on shapes with edges in m and n.
    for (s, &(m, n, k)) in [(mr + 3, nr + 5, 33), (1, nr + 3, 20), (mr + 1, 1, 19)]
        .iter()
        .enumerate()
    {
        for (ia, &la) in ALL_LAYOUTS.iter().enumerate() {
            for (ib, &lb) in ALL_LAYOUTS.iter().enumerate() {
                for (ic, &lc) in ALL_LAYOUTS.iter().enumerate() {
                    let seed = (s * 1000 + ia * 100 + ib * 10 + ic) as u64;
                    run(
                        "layouts",
                        Case {
                            m,
                            n,
                            k,
                            la,
                            lb,
                            lc,
                            alpha: 1.5,
                            beta: if seed % 2 == 0 { 0.0 } else { 0.5 },
                            values: Values::Uniform,
                            threads: 1,
                            seed,
                        },
                    );
                }
            }
        }
    }
    // 3. Blocking boundaries, the m = 1 / n = 1 paths at size, and threads.
    let big: &[(usize, usize, usize, usize)] = &[
        (2 * mr + 1, 2 * nr + 1, 700, 1), // several KC blocks
        (1500, 40, 200, 1),               // several MC blocks
        (3, 8500, 10, 1),                 // several NC blocks
        (1, 1000, 1024, 1),               // vector × matrix
        (1000, 1, 1024, 1),               // matrix × vector
        (1, 1000, 1024, 2),
        (300, 300, 100, 2),
        (301, 257, 129, 3),
        (16, 1500, 300, 2),
        (1200, 20, 64, 2),
        (64, 64, 64, 1),
        (128, 128, 128, 2),
    ];
    for (i, &(m, n, k, t)) in big.iter().enumerate() {
        for (j, &(la, lb, lc)) in [
            (Layout::RowMajor, Layout::RowMajor, Layout::RowMajor),
            (Layout::ColMajor, Layout::Transposed, Layout::ColMajor),
            (Layout::General, Layout::ColPadded(1), Layout::RowPadded(2)),
        ]
        .iter()
        .enumerate()
        {
            run(
                "blocking/threads",
                Case {
                    m,
                    n,
                    k,
                    la,
                    lb,
                    lc,
                    alpha: 1.0,
                    beta: if j == 1 { 0.75 } else { 0.0 },
                    values: Values::Uniform,
                    threads: t,
                    seed: 7000 + (i * 3 + j) as u64,
                },
            );
        }
    }
    // 4. Determinism across thread counts and runs.
    for (i, &(m, n, k)) in [
        (300, 300, 300),
        (1, 4000, 300),
        (700, 50, 500),
        (64, 2000, 40),
    ]
    .iter()
    .enumerate()
    {
        let c = Case {
            m,
            n,
            k,
            la: Layout::RowMajor,
            lb: Layout::RowMajor,
            lc: Layout::RowMajor,
            alpha: 1.0,
            beta: 0.5,
            values: Values::Uniform,
            threads: 2,
            seed: 9000 + i as u64,
        };
        if let Err(msg) = check_thread_determinism(kernel, &c) {
            fail(name, "determinism", &c, &msg);
        }
        count += 1;
    }
    count
}

#[cfg(feature = "alloc")]
/// Prepacked B against plain sgemm (bit-identical: same kernel, same k blocking).
fn prepacked(kernel: &Kernel, name: &str) -> usize {
    let mut count = 0;
    for (i, &(m, n, k)) in [(1, 33, 17), (37, 70, 300), (200, 100, 513), (5, 3, 1000)]
        .iter()
        .enumerate()
    {
        let mut rng = Rng(100 + i as u64);
        let a: Vec<f32> = (0..m * k).map(|_| rng.f32_pm1()).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.f32_pm1()).collect();
        let bv = MatRef::row_major(&b, k, n).unwrap();
        let packed = PackedB::with_kernel(kernel, bv).unwrap();
        let mut c1 = vec![0.5f32; m * n];
        let mut c2 = c1.clone();
        let mut c3 = c1.clone();
        let av = MatRef::row_major(&a, m, k).unwrap();
        let c1v = MatMut::row_major(&mut c1, m, n).unwrap();
        edgemm::sgemm(1.0, av, &packed, 0.0, c1v, Par::Threads(2)).unwrap();
        let ctx = Context::new().kernel(*kernel);
        let c2v = MatMut::row_major(&mut c2, m, n).unwrap();
        edgemm::sgemm(1.0, av, bv, 0.0, c2v, ctx).unwrap();
        // Packed B with a workspace: A read in place, on the calling thread, no scratch.
        let ctx = Context::new().par(Par::Threads(2)).workspace(&mut []);
        let c3v = MatMut::row_major(&mut c3, m, n).unwrap();
        edgemm::sgemm(1.0, av, &packed, 0.0, c3v, ctx).unwrap();
        // Same kernel and k split, but m = 1 may take the vector path in plain sgemm, and
        // A is read in place on the workspace path: compare within the bound there,
        // bitwise otherwise.
        let bound = (k as f32 + 4.0) * f32::EPSILON * (k as f32);
        for (x, y) in c3.iter().zip(&c2) {
            if (x - y).abs() > bound {
                eprintln!("FAILED kernel {name} (prepacked, workspace {m}x{n}x{k}): {x} vs {y}");
                exit(1);
            }
        }
        for (x, y) in c1.iter().zip(&c2) {
            let ok = if m == 1 {
                (x - y).abs() <= bound
            } else {
                x.to_bits() == y.to_bits()
            };
            if !ok {
                eprintln!("FAILED kernel {name} (prepacked {m}x{n}x{k}): {x} vs {y}");
                exit(1);
            }
        }
        count += 1;
    }
    count
}

fn layout_strategy() -> impl Strategy<Value = Layout> {
    prop::sample::select(ALL_LAYOUTS.to_vec())
}

fn case_strategy(mr: usize, nr: usize) -> impl Strategy<Value = Case> {
    (
        (0..=3 * mr + 2, 0..=3 * nr + 2, 0usize..=70),
        (layout_strategy(), layout_strategy(), layout_strategy()),
        (
            prop_oneof![Just(1.0f32), Just(-1.0), Just(0.0), -4.0f32..4.0],
            prop_oneof![Just(0.0f32), Just(1.0), Just(-1.0), -4.0f32..4.0],
        ),
        prop::sample::select(vec![Values::Uniform, Values::Integers, Values::WideRange]),
        prop::sample::select(vec![1usize, 1, 1, 2]),
        any::<u64>(),
    )
        .prop_map(
            |((m, n, k), (la, lb, lc), (alpha, beta), values, threads, seed)| Case {
                m,
                n,
                k,
                la,
                lb,
                lc,
                alpha,
                beta,
                values,
                threads,
                seed,
            },
        )
}

fn random(kernel: &Kernel, name: &str, mr: usize, nr: usize, cases: u32) -> usize {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case_strategy(mr, nr), |c| {
        run_sgemm_case(Some(kernel), &c).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        eprintln!("FAILED kernel {name} (proptest, shrunk): {e}");
        exit(1);
    }
    cases as usize
}

// ---- int8 ------------------------------------------------------------------------------

/// The int8 entry point of the `idx`-th case: the plain API with `alloc`; without it the
/// two no-allocation ones in turn (caller workspace; weights packed into caller memory).
fn qentry(idx: usize) -> QEntry {
    if cfg!(feature = "alloc") {
        QEntry::Plain
    } else if idx % 2 == 0 {
        QEntry::Workspace
    } else {
        QEntry::Packed
    }
}

fn qfail(kernel: &str, what: &str, case: &QCase, msg: &str) -> ! {
    eprintln!("FAILED kernel {kernel} ({what}): {msg}\n  case: {case:?}");
    exit(1);
}

fn zero_points(idx: u64, a_signed: bool) -> (i32, i32) {
    let za = if a_signed {
        [0, -128, 127, 5, -77][(idx % 5) as usize]
    } else {
        [0, 255, 128, 1, 200][(idx % 5) as usize]
    };
    let zb = [0, -128, 127, -3, 0][((idx / 5) % 5) as usize];
    (za, zb)
}

fn qsweep(kernel: &Kernel, name: &str, mr: usize, nr: usize) -> usize {
    let mut count = 0;
    let mut run = |what: &str, c: QCase| {
        if let Err(msg) = run_qgemm_case_via(Some(kernel), &c, qentry(count)) {
            qfail(name, what, &c, &msg);
        }
        count += 1;
    };
    let (ms, ns, _) = sweep_dims(mr, nr);
    let ks = [1usize, 2, 3, 4, 5, 7, 8, 9, 17, 64, 131];
    let values = [
        QValues::Full,
        QValues::AllMin,
        QValues::AllMax,
        QValues::Extremes,
    ];
    let mut idx = 0u64;
    for &m in &ms {
        for &n in &ns {
            for &k in &ks {
                let l = |s: u64| ALL_LAYOUTS[((idx / s) % ALL_LAYOUTS.len() as u64) as usize];
                let a_signed = idx % 2 == 0;
                let (za, zb) = zero_points(idx / 2, a_signed);
                run(
                    "shape sweep",
                    QCase {
                        m,
                        n,
                        k,
                        la: l(1),
                        lb: l(3),
                        lc: l(7),
                        a_signed,
                        za,
                        zb,
                        values: values[((idx / 3) % 4) as usize],
                        threads: 1,
                        requant: RQ_VARIANTS[((idx / 11) % 5) as usize],
                        seed: idx,
                    },
                );
                idx += 1;
            }
        }
    }
    // Every layout combination, i32 and requantized.
    for (ia, &la) in ALL_LAYOUTS.iter().enumerate() {
        for (ib, &lb) in ALL_LAYOUTS.iter().enumerate() {
            for (ic, &lc) in ALL_LAYOUTS.iter().enumerate() {
                let seed = (ia * 100 + ib * 10 + ic) as u64;
                run(
                    "layouts",
                    QCase {
                        m: mr + 3,
                        n: nr + 5,
                        k: 37,
                        la,
                        lb,
                        lc,
                        a_signed: seed % 2 == 1,
                        za: 3,
                        zb: -2,
                        values: QValues::Full,
                        threads: 1,
                        requant: RQ_VARIANTS[(seed % 5) as usize],
                        seed,
                    },
                );
            }
        }
    }
    // Exactness at the largest k the zero points allow, with extreme data everywhere.
    for (i, &(a_signed, za, zb, values)) in [
        (true, 127, 127, QValues::AllMin), // (−128−127)·(−128−127) = 65025 every term
        (true, -128, -128, QValues::AllMax), // (127+128)·(127+128)
        (false, 0, -128, QValues::AllMax), // (255−0)·(127+128)
        (false, 255, 127, QValues::AllMin), // (0−255)·(−128−127)
        (true, 0, 0, QValues::AllMin),     // −128·−128 = 16384, k up to 131071
        (true, 0, 0, QValues::Extremes),
    ]
    .iter()
    .enumerate()
    {
        let k = if a_signed {
            edgemm::max_exact_k::<i8>(za, zb)
        } else {
            edgemm::max_exact_k::<u8>(za, zb)
        };
        for &requant in &RQ_VARIANTS[..2] {
            run(
                "largest exact k",
                QCase {
                    m: 2,
                    n: 3,
                    k,
                    la: Layout::RowMajor,
                    lb: Layout::ColMajor,
                    lc: Layout::RowMajor,
                    a_signed,
                    za,
                    zb,
                    values,
                    threads: 1,
                    requant,
                    seed: 500 + i as u64,
                },
            );
        }
    }
    // Blocking boundaries (k over one chunk, m over MC, n over NC) and threads.
    let big: &[(usize, usize, usize, usize)] = &[
        (2 * mr + 1, 2 * nr + 1, 5000, 1),
        (700, 40, 300, 1),
        (2, 9000, 8, 1),
        (1, 1000, 1024, 2),
        (300, 300, 100, 2),
        (301, 257, 129, 3),
        (33, 70, 9000, 2),
    ];
    for (i, &(m, n, k, t)) in big.iter().enumerate() {
        for (j, &requant) in RQ_VARIANTS.iter().enumerate().step_by(2) {
            run(
                "blocking/threads",
                QCase {
                    m,
                    n,
                    k,
                    la: Layout::RowMajor,
                    lb: if j == 2 {
                        Layout::ColMajor
                    } else {
                        Layout::RowMajor
                    },
                    lc: if j == 4 {
                        Layout::ColPadded(2)
                    } else {
                        Layout::RowMajor
                    },
                    a_signed: i % 2 == 0,
                    za: 7,
                    zb: if j == 0 { 0 } else { -5 },
                    values: QValues::Full,
                    threads: t,
                    requant,
                    seed: 9000 + (i * 10 + j) as u64,
                },
            );
        }
    }
    count
}

/// Prepacked weights against plain calls: identical results.
#[cfg(feature = "alloc")]
fn qprepacked(kernel: &Kernel, name: &str) -> usize {
    let mut count = 0;
    for (i, &(m, n, k, zb)) in [
        (1, 33, 17, 0),
        (37, 70, 300, -3),
        (20, 100, 5000, 9),
        (5, 3, 1, 127),
    ]
    .iter()
    .enumerate()
    {
        let mut rng = Rng(300 + i as u64);
        let a: Vec<u8> = (0..m * k).map(|_| rng.next_u64() as u8).collect();
        let b: Vec<i8> = (0..k * n).map(|_| rng.next_u64() as i8).collect();
        let bv = MatRef::row_major(&b, k, n).unwrap();
        let packed = edgemm::PackedQB::with_kernel(kernel, bv).unwrap();
        let av = MatRef::row_major(&a, m, k).unwrap();
        let mut c1 = vec![0i32; m * n];
        let mut c2 = vec![1i32; m * n];
        let mut c3 = vec![2i32; m * n];
        let c1v = MatMut::row_major(&mut c1, m, n).unwrap();
        edgemm::qgemm(av, 17, &packed, zb, c1v, Par::Threads(2)).unwrap();
        let ctx = Context::new().kernel(*kernel);
        edgemm::qgemm(
            av,
            17,
            bv,
            zb,
            MatMut::row_major(&mut c2, m, n).unwrap(),
            ctx,
        )
        .unwrap();
        // Packed weights with the caller's workspace (exactly the size asked for).
        let mut ws = vec![0u8; packed.workspace_size(m)];
        let ctx = Context::new().workspace(&mut ws);
        let c3v = MatMut::row_major(&mut c3, m, n).unwrap();
        edgemm::qgemm(av, 17, &packed, zb, c3v, ctx).unwrap();
        let spec = edgemm::Requantize::new(
            edgemm::Scale::PerTensor {
                multiplier: 1 << 30,
                shift: -9,
            },
            -3,
        );
        let mut o1 = vec![0i8; m * n];
        let mut o2 = vec![1i8; m * n];
        let mut o3 = vec![2i8; m * n];
        let o1v = Requantized(&spec, MatMut::row_major(&mut o1, m, n).unwrap());
        edgemm::qgemm(av, 17, &packed, zb, o1v, Par::Seq).unwrap();
        let ctx = Context::new().kernel(*kernel).par(Par::Threads(2));
        let o2v = Requantized(&spec, MatMut::row_major(&mut o2, m, n).unwrap());
        edgemm::qgemm(av, 17, bv, zb, o2v, ctx).unwrap();
        let ctx = Context::new().workspace(&mut ws);
        let o3v = Requantized(&spec, MatMut::row_major(&mut o3, m, n).unwrap());
        edgemm::qgemm(av, 17, &packed, zb, o3v, ctx).unwrap();
        if c1 != c2 || o1 != o2 || c3 != c2 || o3 != o2 {
            eprintln!(
                "FAILED kernel {name} (prepacked {m}x{n}x{k}): packed and plain results differ"
            );
            exit(1);
        }
        count += 1;
    }
    count
}

fn qcase_strategy(mr: usize, nr: usize) -> impl Strategy<Value = QCase> {
    let rq = prop::option::of((
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::option::of((-130i32..60, 0i32..300)),
    ))
    .prop_map(|o| {
        o.map(
            |(per_channel, out_signed, bias, left_shifts, clamp)| RqCase {
                per_channel,
                out_signed,
                bias,
                clamp,
                left_shifts,
            },
        )
    });
    (
        (0..=3 * mr + 2, 0..=3 * nr + 2, 0usize..=70),
        (layout_strategy(), layout_strategy(), layout_strategy()),
        (any::<bool>(), any::<u8>(), -128i32..=127),
        prop::sample::select(vec![
            QValues::Full,
            QValues::Full,
            QValues::AllMin,
            QValues::AllMax,
            QValues::Extremes,
        ]),
        prop::sample::select(vec![1usize, 1, 1, 2]),
        rq,
        any::<u64>(),
    )
        .prop_map(
            |((m, n, k), (la, lb, lc), (a_signed, zaraw, zb), values, threads, requant, seed)| {
                QCase {
                    m,
                    n,
                    k,
                    la,
                    lb,
                    lc,
                    a_signed,
                    za: if a_signed {
                        zaraw as i8 as i32
                    } else {
                        zaraw as i32
                    },
                    zb,
                    values,
                    threads,
                    requant,
                    seed,
                }
            },
        )
}

fn qrandom(kernel: &Kernel, name: &str, mr: usize, nr: usize, cases: u32) -> usize {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&qcase_strategy(mr, nr), |c| {
        run_qgemm_case_via(Some(kernel), &c, qentry(c.seed as usize)).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        eprintln!("FAILED kernel {name} (proptest, shrunk): {e}");
        exit(1);
    }
    cases as usize
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let cases: u32 = std::env::var("EDGEMM_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let cpu = edgemm::cpu_info();
    println!(
        "kernel battery — CPU features: {}; edgemm built {}",
        cpu.features,
        if cfg!(feature = "std") {
            "with std"
        } else if cfg!(feature = "alloc") {
            "with alloc, without std"
        } else {
            "without alloc (no-allocation driver path)"
        }
    );
    let (mut ran, mut skipped) = (0, 0);
    for info in edgemm::kernels() {
        if filter.as_deref().is_some_and(|f| !info.name.contains(f)) {
            continue;
        }
        if !info.runnable {
            println!(
                "kernel {:<28} SKIPPED: this CPU lacks {}",
                info.name, info.isa
            );
            skipped += 1;
            continue;
        }
        let kernel = Kernel::by_name(info.name).expect("runnable kernel");
        let t = std::time::Instant::now();
        let n = match info.kind {
            KernelKind::F32 => {
                #[cfg(feature = "alloc")]
                let packed = prepacked(&kernel, info.name);
                #[cfg(not(feature = "alloc"))]
                let packed = 0;
                sweep(&kernel, info.name, info.mr, info.nr)
                    + packed
                    + random(&kernel, info.name, info.mr, info.nr, cases)
            }
            KernelKind::Int8 => {
                #[cfg(feature = "alloc")]
                let packed = qprepacked(&kernel, info.name);
                #[cfg(not(feature = "alloc"))]
                let packed = 0;
                qsweep(&kernel, info.name, info.mr, info.nr)
                    + packed
                    + qrandom(&kernel, info.name, info.mr, info.nr, cases)
            }
        };
        println!(
            "kernel {:<28} ok: {n} cases ({:.1} s){}",
            info.name,
            t.elapsed().as_secs_f64(),
            if info.selected {
                "  [selected by default]"
            } else {
                ""
            }
        );
        ran += 1;
    }
    // The default selection path (no kernel forced) once more.
    let c = Case {
        m: 50,
        n: 70,
        k: 90,
        la: Layout::RowMajor,
        lb: Layout::ColMajor,
        lc: Layout::RowPadded(1),
        alpha: 2.0,
        beta: -0.5,
        values: Values::Uniform,
        threads: 2,
        seed: 1,
    };
    if let Err(msg) = run_sgemm_case(None, &c) {
        fail("(default)", "default selection", &c, &msg);
    }
    println!("kernel battery: {ran} kernels passed, {skipped} skipped");
}
