//! The kernel-vs-reference battery, on the (emulated) Cortex-M4 itself.
//!
//! Every kernel compiled in is forced in turn and checked against `edgemm::reference` with
//! the f32 error bound (tests/common/mod.rs, shared with the host battery): a sweep of
//! shapes around the kernel's MR, NR and the k unroll, every layout combination, α/β (β = 0
//! with NaN in C), k-chunk and blocking boundaries, random cases, determinism, and, with the
//! `alloc` feature, prepacked B. Each case goes through the plain entry point
//! (`sgemm_with_kernel`: the no-allocation driver when edgemm is built without `alloc`) and
//! through the caller-provided workspace (`sgemm_with_kernel_and_workspace`).
//!
//! Kernels named at build time in `EDGEMM_FW_REQUIRE` (comma-separated) must be compiled in,
//! runnable and passing: a build that silently lost its assembly kernel fails.
//! Prints one line per kernel and a summary line, and exits non-zero on the first failure.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../../../tests/common/mod.rs"]
mod common;
#[path = "../support.rs"]
mod support;

use alloc::vec::Vec;
use common::*;
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use edgemm::{Kernel, KernelInfo, KernelKind};

const ALPHAS: [f32; 5] = [1.0, -1.0, 0.5, 0.0, 3.25];
const BETAS: [f32; 5] = [0.0, 1.0, -1.0, 0.25, -0.0];
const VALUES: [Values; 3] = [Values::Uniform, Values::Integers, Values::WideRange];

/// Random cases per kernel.
const RANDOM_CASES: u64 = 1500;

fn fail(kernel: &str, what: &str, detail: core::fmt::Arguments) -> ! {
    hprintln!("FAILED kernel {} ({}): {}", kernel, what, detail);
    support::exit(false)
}

/// Runs one case through one entry point, reclaiming its heap afterwards.
fn run(kernel: Option<&Kernel>, name: &str, what: &str, case: &Case, entry: Entry) {
    let mark = support::heap_mark();
    let failed = match run_sgemm_case_via(kernel, case, entry) {
        Ok(()) => false,
        Err(msg) => {
            hprintln!(
                "FAILED kernel {} ({}, {:?}): {}\n  case: {:?}",
                name,
                what,
                entry,
                msg,
                case
            );
            true
        }
    };
    // SAFETY: the case's matrices and message were dropped above; only a bool is left.
    unsafe { support::heap_reset(mark) };
    if failed {
        support::exit(false);
    }
}

/// Through both entry points.
fn run_both(kernel: Option<&Kernel>, name: &str, what: &str, case: &Case) -> usize {
    run(kernel, name, what, case, Entry::Plain);
    run(kernel, name, what, case, Entry::Workspace);
    2
}

fn f32_battery(info: &KernelInfo) -> usize {
    let kernel = Kernel::by_name(info.name)
        .unwrap_or_else(|e| fail(info.name, "by_name", format_args!("{e}")));
    let k = Some(&kernel);
    let (name, mr, nr) = (info.name, info.mr, info.nr);
    let mut count = 0;

    // 1. Shapes on every boundary of the tile and the k unroll × α/β × values, the layouts
    //    cycling through all combinations.
    let ms = dims(&[1, 2, 3, mr - 1, mr, mr + 1, 2 * mr + 3, 21]);
    let ns = dims(&[1, 2, 5, nr - 1, nr, nr + 1, 2 * nr + 5, 27]);
    let ks = [1, 2, 3, 4, 5, 8, 17, 64, 131, 255, 256, 257];
    let mut idx = 0u64;
    for &m in &ms {
        for &n in &ns {
            for &kk in &ks {
                let l = |s: u64| ALL_LAYOUTS[((idx / s) % ALL_LAYOUTS.len() as u64) as usize];
                let case = Case {
                    m,
                    n,
                    k: kk,
                    la: l(1),
                    lb: l(3),
                    lc: l(7),
                    alpha: ALPHAS[(idx % 5) as usize],
                    beta: BETAS[((idx / 5) % 5) as usize],
                    values: VALUES[(idx % 3) as usize],
                    threads: 1,
                    seed: idx,
                };
                count += run_both(k, name, "shape sweep", &case);
                idx += 1;
            }
        }
    }

    // 2. Every layout combination of A, B and C, on shapes with edges in m and n.
    for (s, &(m, n, kk)) in [(mr + 3, nr + 3, 13), (1, nr + 3, 9), (mr + 1, 1, 7)]
        .iter()
        .enumerate()
    {
        for (ia, &la) in ALL_LAYOUTS.iter().enumerate() {
            for (ib, &lb) in ALL_LAYOUTS.iter().enumerate() {
                for (ic, &lc) in ALL_LAYOUTS.iter().enumerate() {
                    let seed = (s * 1000 + ia * 100 + ib * 10 + ic) as u64;
                    let case = Case {
                        m,
                        n,
                        k: kk,
                        la,
                        lb,
                        lc,
                        alpha: 1.5,
                        beta: if seed % 2 == 0 { 0.0 } else { 0.5 },
                        values: Values::Uniform,
                        threads: 1,
                        seed,
                    };
                    count += run_both(k, name, "layouts", &case);
                }
            }
        }
    }

    // 3. k chunks (the no-allocation driver's stack panel holds ~1000 floats, the workspace
    //    path 256 k steps, the alloc driver's KC 512), blocking with `alloc` (MC, NC), the
    //    m = 1 / n = 1 paths at size, and Par::Threads (sequential without std).
    let big: &[(usize, usize, usize, usize)] = &[
        (mr + 1, nr + 1, 600, 1),
        (5, 3, 1030, 1),
        (2 * mr + 1, 2 * nr + 1, 257, 1),
        (70, 9, 40, 1),
        (3, 1100, 5, 1),
        (1, 300, 300, 1),
        (300, 1, 300, 1),
        (1, 100, 100, 2),
        (40, 33, 50, 2),
    ];
    for (i, &(m, n, kk, t)) in big.iter().enumerate() {
        for (j, &(la, lb, lc)) in [
            (Layout::RowMajor, Layout::RowMajor, Layout::RowMajor),
            (Layout::ColMajor, Layout::Transposed, Layout::ColMajor),
            (Layout::General, Layout::ColPadded(1), Layout::RowPadded(2)),
        ]
        .iter()
        .enumerate()
        {
            let case = Case {
                m,
                n,
                k: kk,
                la,
                lb,
                lc,
                alpha: 1.0,
                beta: if j == 1 { 0.75 } else { 0.0 },
                values: Values::Uniform,
                threads: t,
                seed: 7000 + (i * 3 + j) as u64,
            };
            count += run_both(k, name, "k chunks/blocking", &case);
        }
    }

    // 4. Random cases (the host runs these through proptest).
    let mut rng = Rng(0x5eed ^ mr as u64 ^ ((nr as u64) << 8));
    for i in 0..RANDOM_CASES {
        let mut pick = |n: u64| rng.below(n) as usize;
        let kmax = if i % 8 == 0 { 600 } else { 71 };
        let (m, n, kk) = (pick(3 * mr as u64 + 3), pick(3 * nr as u64 + 3), pick(kmax));
        let (la, lb, lc) = (
            ALL_LAYOUTS[pick(8)],
            ALL_LAYOUTS[pick(8)],
            ALL_LAYOUTS[pick(8)],
        );
        let alpha = [1.0, -1.0, 0.0, rng.f32_pm1() * 4.0][rng.below(4) as usize];
        let beta = [0.0, 1.0, -1.0, rng.f32_pm1() * 4.0][rng.below(4) as usize];
        let case = Case {
            m,
            n,
            k: kk,
            la,
            lb,
            lc,
            alpha,
            beta,
            values: VALUES[rng.below(3) as usize],
            threads: 1,
            seed: rng.next_u64(),
        };
        let entry = if i % 2 == 0 {
            Entry::Plain
        } else {
            Entry::Workspace
        };
        run(k, name, "random", &case, entry);
        count += 1;
    }

    // 5. The same call twice (and through Par::Threads) gives bit-identical results.
    for (i, &(m, n, kk)) in [(37, 41, 300), (1, 500, 70)].iter().enumerate() {
        let case = Case {
            m,
            n,
            k: kk,
            la: Layout::RowMajor,
            lb: Layout::RowMajor,
            lc: Layout::RowMajor,
            alpha: 1.0,
            beta: 0.5,
            values: Values::Uniform,
            threads: 2,
            seed: 9000 + i as u64,
        };
        let mark = support::heap_mark();
        let r = check_thread_determinism(&kernel, &case);
        if let Err(msg) = r {
            fail(name, "determinism", format_args!("{msg}\n  case: {case:?}"));
        }
        // SAFETY: the case's buffers were dropped inside check_thread_determinism.
        unsafe { support::heap_reset(mark) };
        count += 1;
    }

    #[cfg(feature = "alloc")]
    {
        count += prepacked(&kernel, name);
    }
    count
}

fn dims(v: &[usize]) -> Vec<usize> {
    let mut v: Vec<usize> = v.iter().copied().filter(|&x| x > 0).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Prepacked B against plain sgemm with the same kernel: bit-identical (same k blocking),
/// except on the m = 1 vector path, which plain sgemm may take (then within the bound).
#[cfg(feature = "alloc")]
fn prepacked(kernel: &Kernel, name: &str) -> usize {
    use alloc::vec;
    use edgemm::{MatMut, MatRef, PackedB, Par};
    let mut count = 0;
    for (i, &(m, n, k)) in [(1, 33, 17), (37, 30, 300), (20, 10, 600), (5, 3, 100)]
        .iter()
        .enumerate()
    {
        let mark = support::heap_mark();
        {
            let mut rng = Rng(100 + i as u64);
            let a: Vec<f32> = (0..m * k).map(|_| rng.f32_pm1()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.f32_pm1()).collect();
            let bv = MatRef::row_major(&b, k, n).unwrap();
            let av = MatRef::row_major(&a, m, k).unwrap();
            let packed = PackedB::with_kernel(kernel, bv).unwrap();
            let mut c1 = vec![0.5f32; m * n];
            let mut c2 = c1.clone();
            let c1v = MatMut::row_major(&mut c1, m, n).unwrap();
            edgemm::sgemm_packed(1.0, av, &packed, 0.0, c1v, Par::Seq).unwrap();
            let c2v = MatMut::row_major(&mut c2, m, n).unwrap();
            edgemm::sgemm_with_kernel(kernel, 1.0, av, bv, 0.0, c2v, Par::Seq).unwrap();
            for (x, y) in c1.iter().zip(&c2) {
                let ok = if m == 1 {
                    (x - y).abs() <= (k as f32 + 4.0) * f32::EPSILON * (k as f32)
                } else {
                    x.to_bits() == y.to_bits()
                };
                if !ok {
                    fail(name, "prepacked", format_args!("{m}x{n}x{k}: {x} vs {y}"));
                }
            }
        }
        // SAFETY: everything allocated in the block above is dropped.
        unsafe { support::heap_reset(mark) };
        count += 1;
    }
    count
}

/// int8 against the exact reference: shapes around MR, NR and the k groups, zero points at
/// both ends of their ranges, extreme data (all −128, all 127, u8 255), requantized i8/u8
/// output per tensor and per channel, and random cases.
#[cfg(feature = "alloc")]
fn int8_battery(info: &KernelInfo) -> usize {
    let kernel = Kernel::by_name(info.name).unwrap_or_else(|e| fail(info.name, "lookup", format_args!("{e}")));
    let name = info.name;
    let (mr, nr) = (info.mr, info.nr);
    let rq = [
        None,
        Some(RqCase { per_channel: false, out_signed: true, bias: false, clamp: None, left_shifts: false }),
        Some(RqCase { per_channel: true, out_signed: true, bias: true, clamp: Some((-20, 90)), left_shifts: false }),
        Some(RqCase { per_channel: true, out_signed: false, bias: true, clamp: None, left_shifts: true }),
    ];
    let values = [QValues::Full, QValues::AllMin, QValues::AllMax, QValues::Extremes];
    let layouts = [Layout::RowMajor, Layout::ColMajor, Layout::RowPadded(3), Layout::General];
    let mut count = 0;
    let mut run = |what: &str, c: QCase| {
        let mark = support::heap_mark();
        if let Err(msg) = run_qgemm_case(Some(&kernel), &c) {
            fail(name, what, format_args!("{msg}\n  case: {c:?}"));
        }
        // SAFETY: everything the case allocated is dropped by now.
        unsafe { support::heap_reset(mark) };
        count += 1;
    };
    let ms = dims(&[1, 2, mr - 1, mr, mr + 1, 2 * mr + 3]);
    let ns = dims(&[1, 3, nr - 1, nr, nr + 1, 2 * nr + 5]);
    let ks = [1usize, 2, 3, 4, 5, 8, 17, 64];
    let mut idx = 0usize;
    for &m in &ms {
        for &n in &ns {
            for &k in &ks {
                let a_signed = idx % 2 == 0;
                let za = if a_signed { [0, -128, 127, 5][idx / 2 % 4] } else { [0, 255, 128, 1][idx / 2 % 4] };
                let zb = [0, -128, 127, -3][idx / 8 % 4];
                run(
                    "int8 sweep",
                    QCase {
                        m,
                        n,
                        k,
                        la: layouts[idx % 4],
                        lb: layouts[idx / 4 % 4],
                        lc: layouts[idx / 16 % 4],
                        a_signed,
                        za,
                        zb,
                        values: values[idx / 3 % 4],
                        threads: 1,
                        requant: rq[idx / 5 % 4],
                        seed: idx as u64,
                    },
                );
                idx += 1;
            }
        }
    }
    // Exactness at the largest k for extreme zero points and data.
    for (i, &(a_signed, za, zb, v)) in
        [(true, 127, 127, QValues::AllMin), (false, 0, -128, QValues::AllMax)].iter().enumerate()
    {
        let k = if a_signed { edgemm::max_exact_k::<i8>(za, zb) } else { edgemm::max_exact_k::<u8>(za, zb) };
        run(
            "largest exact k",
            QCase {
                m: 2,
                n: 2,
                k,
                la: Layout::RowMajor,
                lb: Layout::ColMajor,
                lc: Layout::RowMajor,
                a_signed,
                za,
                zb,
                values: v,
                threads: 1,
                requant: rq[i],
                seed: 77 + i as u64,
            },
        );
    }
    count
}

#[entry]
fn main() -> ! {
    let cpu = edgemm::cpu_info();
    let built = if cfg!(feature = "alloc") {
        "with alloc"
    } else {
        "without alloc"
    };
    hprintln!(
        "firmware battery — Cortex-M4 (QEMU mps2-an386); CPU features: {}; edgemm built {}",
        cpu.features,
        built
    );
    let required = option_env!("EDGEMM_FW_REQUIRE").unwrap_or("");
    for want in required.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match edgemm::kernels().find(|i| i.name == want) {
            Some(i) if i.runnable => {}
            Some(i) => fail(
                want,
                "required",
                format_args!("compiled in but not runnable ({})", i.isa),
            ),
            None => fail(
                want,
                "required",
                format_args!("not compiled into this build"),
            ),
        }
    }
    let (mut ran, mut skipped, mut cases) = (0, 0, 0);
    for info in edgemm::kernels() {
        if !info.runnable {
            hprintln!(
                "kernel {:<28} SKIPPED: this CPU lacks {}",
                info.name,
                info.isa
            );
            skipped += 1;
            continue;
        }
        #[allow(unreachable_patterns)]
        let n = match info.kind {
            KernelKind::F32 => f32_battery(&info),
            #[cfg(feature = "alloc")]
            KernelKind::Int8 => int8_battery(&info),
            #[cfg(not(feature = "alloc"))]
            KernelKind::Int8 => {
                hprintln!(
                    "kernel {:<28} SKIPPED: int8 needs the alloc feature in this build",
                    info.name
                );
                skipped += 1;
                continue;
            }
            // A kernel family without a firmware battery yet must not pass unnoticed.
            _ => fail(
                info.name,
                "firmware battery",
                format_args!("none for {:?} kernels yet", info.kind),
            ),
        };
        hprintln!(
            "kernel {:<28} ok: {} cases{}",
            info.name,
            n,
            if info.selected {
                "  [selected by default]"
            } else {
                ""
            }
        );
        ran += 1;
        cases += n;
    }
    // The default selection, once, through both entry points.
    let case = Case {
        m: 13,
        n: 17,
        k: 300,
        la: Layout::RowMajor,
        lb: Layout::ColMajor,
        lc: Layout::RowPadded(1),
        alpha: 2.0,
        beta: -0.5,
        values: Values::Uniform,
        threads: 1,
        seed: 1,
    };
    cases += run_both(None, "(default)", "default selection", &case);
    hprintln!(
        "sgemm_workspace_size(m, n, k >= 256) = {} bytes",
        edgemm::sgemm_workspace_size(1, 1, 256)
    );
    hprintln!(
        "firmware battery: {} kernels run, {} skipped, {} cases passed (edgemm {}; heap peak {} KiB)",
        ran,
        skipped,
        cases,
        built,
        support::heap_peak().div_ceil(1024)
    );
    support::exit(true)
}
