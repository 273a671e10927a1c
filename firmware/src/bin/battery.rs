//! The kernel-vs-reference battery, on the (emulated) Cortex-M4 itself.
//!
//! Every kernel compiled in is forced in turn and checked against `edgemm::reference` with
//! the f32 error bound (tests/common/mod.rs, shared with the host battery): a sweep of
//! shapes around the kernel's MR, NR and the k unroll, every layout combination, α/β (β = 0
//! with NaN in C), k-chunk and blocking boundaries, random cases, determinism, and, with the
//! `alloc` feature, prepacked B. Each case goes through the plain entry point
//! (`sgemm` with the kernel forced in its `Context`: the no-allocation driver when edgemm is
//! built without `alloc`) and through a `Context` with the caller's workspace. int8 kernels
//! are checked exactly (see `int8_battery`) through the caller-provided workspace and with B
//! packed into caller memory (`PackedQBRef`) in both builds, and through the allocating
//! entry points too when edgemm has `alloc`.
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
    use edgemm::{Context, MatMut, MatRef, PackedB, Par};
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
            edgemm::sgemm(1.0, av, &packed, 0.0, c1v, Par::Seq).unwrap();
            let c2v = MatMut::row_major(&mut c2, m, n).unwrap();
            edgemm::sgemm(1.0, av, bv, 0.0, c2v, Context::new().kernel(*kernel)).unwrap();
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

/// The int8 entry points of this build: the plain ones need edgemm's `alloc`; the
/// caller-provided workspace and the weights prepacked in caller memory never allocate.
const QENTRIES: &[QEntry] = if cfg!(feature = "alloc") {
    &[QEntry::Plain, QEntry::Workspace, QEntry::Packed]
} else {
    &[QEntry::Workspace, QEntry::Packed]
};

/// Random int8 cases per kernel.
const QRANDOM_CASES: u64 = 600;

/// int8 against the exact reference, through every entry point of the build (plain with
/// `alloc`; caller workspace; B packed into caller memory and read back from its bytes):
/// shapes around MR, NR and the k groups, every layout, zero points at both ends of their
/// ranges, extreme data (all −128, all 127, u8 255), requantized i8/u8 output per tensor
/// and per channel, the largest exact k, random cases, the output stage alone over the
/// edges of its fast range, and packed bytes of another kernel refused.
fn int8_battery(info: &KernelInfo) -> usize {
    let kernel = Kernel::by_name(info.name)
        .unwrap_or_else(|e| fail(info.name, "lookup", format_args!("{e}")));
    let name = info.name;
    let (mr, nr) = (info.mr, info.nr);
    let rq = RQ_VARIANTS;
    let values = [
        QValues::Full,
        QValues::AllMin,
        QValues::AllMax,
        QValues::Extremes,
    ];
    let mut count = 0;
    let mut run = |what: &str, c: &QCase, entry: QEntry| {
        let mark = support::heap_mark();
        if let Err(msg) = run_qgemm_case_via(Some(&kernel), c, entry) {
            fail(name, what, format_args!("{entry:?}: {msg}\n  case: {c:?}"));
        }
        // SAFETY: everything the case allocated is dropped by now.
        unsafe { support::heap_reset(mark) };
        count += 1;
    };
    // 1. Shapes on every edge of the tile and the k group × layouts × zero points × values
    //    × output stages, each through every entry point.
    let ms = dims(&[1, 2, mr - 1, mr, mr + 1, 2 * mr + 3]);
    let ns = dims(&[1, 3, nr - 1, nr, nr + 1, 2 * nr + 5]);
    let ks = [1usize, 2, 3, 4, 5, 8, 17, 33, 64];
    let mut idx = 0usize;
    for &m in &ms {
        for &n in &ns {
            for &k in &ks {
                let a_signed = idx % 2 == 0;
                let za = if a_signed {
                    [0, -128, 127, 5][idx / 2 % 4]
                } else {
                    [0, 255, 128, 1][idx / 2 % 4]
                };
                let c = QCase {
                    m,
                    n,
                    k,
                    la: ALL_LAYOUTS[idx % 8],
                    lb: ALL_LAYOUTS[idx / 8 % 8],
                    lc: ALL_LAYOUTS[idx / 3 % 8],
                    a_signed,
                    za,
                    zb: [0, -128, 127, -3][idx / 8 % 4],
                    values: values[idx / 3 % 4],
                    threads: 1,
                    requant: rq[idx / 5 % 5],
                    seed: idx as u64,
                };
                for &entry in QENTRIES {
                    run("int8 sweep", &c, entry);
                }
                idx += 1;
            }
        }
    }
    // 2. Exactness at the largest k for extreme zero points and data (every −128·−128 or
    //    255·−128 product), and long k through the m = 1 and tile paths.
    for (i, &(m, a_signed, za, zb, v)) in [
        (2, true, 127, 127, QValues::AllMin),
        (1, false, 0, -128, QValues::AllMax),
        (5, true, -128, -128, QValues::AllMax),
    ]
    .iter()
    .enumerate()
    {
        let k = if a_signed {
            edgemm::max_exact_k::<i8>(za, zb)
        } else {
            edgemm::max_exact_k::<u8>(za, zb)
        };
        let c = QCase {
            m,
            n: 5,
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
        };
        for &entry in QENTRIES {
            // The strided workspace holds 4·NR packed columns of all of k: keep the heap
            // (3 MiB) for the larger cases to the prepacked path.
            if entry != QEntry::Workspace || edgemm::qgemm_workspace_size(m, 5, k) < (1 << 20) {
                run("largest exact k", &c, entry);
            }
        }
    }
    // 3. Random cases (the host runs these through proptest).
    let mut rng = Rng(0x1e8 ^ mr as u64 ^ ((nr as u64) << 8));
    for i in 0..QRANDOM_CASES {
        let mut pick = |n: u64| rng.below(n) as usize;
        let kmax = if i % 8 == 0 { 700 } else { 90 };
        let (m, n, k) = (pick(3 * mr as u64 + 3), pick(3 * nr as u64 + 3), pick(kmax));
        let (la, lb, lc) = (
            ALL_LAYOUTS[pick(8)],
            ALL_LAYOUTS[pick(8)],
            ALL_LAYOUTS[pick(8)],
        );
        let a_signed = rng.below(2) == 0;
        let za = if a_signed {
            rng.below(256) as i32 - 128
        } else {
            rng.below(256) as i32
        };
        let c = QCase {
            m,
            n,
            k,
            la,
            lb,
            lc,
            a_signed,
            za,
            zb: rng.below(256) as i32 - 128,
            values: values[rng.below(4) as usize],
            threads: 1 + rng.below(2) as usize,
            requant: rq[rng.below(5) as usize],
            seed: rng.next_u64(),
        };
        run("random", &c, QENTRIES[i as usize % QENTRIES.len()]);
    }
    // 4. The output stage alone: every shift, multiplier edges, accumulators around ±2^30
    //    and the i32 extremes (the Arm output stage's fast form and its exact fallback).
    for &entry in QENTRIES {
        let mark = support::heap_mark();
        match run_requant_sweep(Some(&kernel), entry, 120, 0x5eed ^ mr as u64) {
            Ok(_values) => count += 120,
            Err(msg) => fail(name, "requant sweep", format_args!("{entry:?}: {msg}")),
        }
        // SAFETY: the sweep's buffers are dropped.
        unsafe { support::heap_reset(mark) };
    }
    // 5. Bytes packed for this kernel, relabelled with the name of a kernel of another
    //    packing: refused, never misread.
    count += packed_mismatch(&kernel, name);
    count
}

/// A blob packed for `kernel`, read back intact (accepted) and with the kernel name of
/// another int8 kernel of this build with another tile width (refused).
fn packed_mismatch(kernel: &Kernel, name: &str) -> usize {
    use edgemm::{Error, MatRef, PackedQBRef};
    let other = edgemm::kernels()
        .find(|i| i.kind == KernelKind::Int8 && i.nr != kernel.info().nr && i.runnable);
    let Some(other) = other else { return 0 };
    let mark = support::heap_mark();
    {
        let (k, n) = (9, 7);
        let b: Vec<i8> = (0..k * n).map(|v| (v * 37) as i8).collect();
        let mut buf = alloc::vec![0u32; edgemm::qgemm_packed_b_size(k, n).div_ceil(4)];
        // SAFETY: viewing the u32 buffer as bytes.
        let bytes =
            unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, buf.len() * 4) };
        let packed =
            PackedQBRef::pack_with_kernel(kernel, MatRef::row_major(&b, k, n).unwrap(), bytes)
                .unwrap_or_else(|e| fail(name, "pack", format_args!("{e}")));
        let mut copy = alloc::vec![0u32; packed.as_bytes().len().div_ceil(4)];
        // SAFETY: viewing the u32 buffer as bytes.
        let cb = unsafe {
            core::slice::from_raw_parts_mut(copy.as_mut_ptr() as *mut u8, copy.len() * 4)
        };
        cb[..packed.as_bytes().len()].copy_from_slice(packed.as_bytes());
        if let Err(e) = PackedQBRef::from_bytes(cb) {
            fail(name, "packed bytes", format_args!("read back: {e}"));
        }
        cb[48..96].fill(0);
        cb[48..48 + other.name.len()].copy_from_slice(other.name.as_bytes());
        match PackedQBRef::from_bytes(cb) {
            Err(Error::InvalidPacked { .. }) => {}
            r => fail(
                name,
                "packed bytes",
                format_args!("relabelled for {}: {r:?}", other.name),
            ),
        }
        cb[48..96].fill(0);
        cb[48..48 + 9].copy_from_slice(b"qgemm_foo");
        match PackedQBRef::from_bytes(cb) {
            Err(Error::PackingMismatch { .. }) => {}
            r => fail(
                name,
                "packed bytes",
                format_args!("relabelled for an unknown kernel: {r:?}"),
            ),
        }
    }
    // SAFETY: everything allocated above is dropped.
    unsafe { support::heap_reset(mark) };
    1
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
            KernelKind::Int8 => int8_battery(&info),
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
    // The default int8 selection, through every entry point.
    let qcase = QCase {
        m: 13,
        n: 17,
        k: 300,
        la: Layout::RowMajor,
        lb: Layout::ColMajor,
        lc: Layout::RowPadded(1),
        a_signed: true,
        za: -5,
        zb: 0,
        values: QValues::Full,
        threads: 1,
        requant: Some(RqCase {
            per_channel: true,
            out_signed: true,
            bias: true,
            clamp: None,
            left_shifts: false,
        }),
        seed: 2,
    };
    for &entry in QENTRIES {
        if let Err(msg) = run_qgemm_case_via(None, &qcase, entry) {
            fail(
                "(default int8)",
                "default selection",
                format_args!("{entry:?}: {msg}"),
            );
        }
        cases += 1;
    }
    hprintln!(
        "sgemm_workspace_size(m, n, k >= 256) = {} bytes",
        edgemm::sgemm_workspace_size(1, 1, 256)
    );
    hprintln!(
        "int8 workspace bytes: qgemm_workspace_size(1, 256, 1024) = {}, \
         qgemm_packed_workspace_size(1, 256, 1024) = {}, (625, 64, 64) = {}; \
         qgemm_packed_b_size(1024, 256) = {}",
        edgemm::qgemm_workspace_size(1, 256, 1024),
        edgemm::qgemm_packed_workspace_size(1, 256, 1024),
        edgemm::qgemm_packed_workspace_size(625, 64, 64),
        edgemm::qgemm_packed_b_size(1024, 256)
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
