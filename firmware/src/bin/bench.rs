//! The int8 instruction-count benchmark (run by scripts/bench-cortex-m4.sh under QEMU with
//! the ../shared/tools/qemu-insncount plugin).
//!
//! Each case is one int8 layer as an embedded network runs it: weights packed once, before
//! the measurement, into caller memory (`PackedQBRef`, as CMSIS-NN keeps its weights in
//! their final layout in flash and precomputes its kernel sums), then ONE call of
//! `qgemm` (prepacked B, requantized output, the caller's workspace) between `bench_begin()` and `bench_end()`. The
//! counted region is that whole call: argument checks, the column terms (zero point × column
//! sums + bias), packing the activations (A) to i16, the micro-kernel, and requantization
//! to i8 (bias, multiplier and shift, zero point, clamp), with the output written. Not
//! counted: packing the weights, generating data, checking the result.
//!
//! Prints `case <name> m=<m> n=<n> k=<k> macs=<N>` before each measured call and
//! `check <name> ok` after it (the output is compared with `edgemm::reference`; a single
//! mismatch ends the run with a non-zero status).
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../support.rs"]
mod support;

use alloc::vec;
use alloc::vec::Vec;
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use edgemm::{Context, MatMut, MatRef, PackedQBRef, Requantize, Requantized, Scale};

// The region marks shared with the other measuring firmwares (this one reports no stack, so
// the painted-stack half of the module goes unused here).
#[path = "../measure.rs"]
#[allow(dead_code)]
mod measure;
use measure::{bench_begin, bench_end};

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

struct Case {
    name: &'static str,
    m: usize,
    n: usize,
    k: usize,
    /// Per-channel scales (as TFLite's convolutions have), or one per tensor (its fully
    /// connected layers).
    per_channel: bool,
}

const CASES: [Case; 3] = [
    Case {
        name: "fc_1x1024x256",
        m: 1,
        n: 256,
        k: 1024,
        per_channel: false,
    },
    Case {
        name: "fc_1x640x64",
        m: 1,
        n: 64,
        k: 640,
        per_channel: false,
    },
    Case {
        name: "gemm_625x64x64",
        m: 625,
        n: 64,
        k: 64,
        per_channel: true,
    },
];

fn fail(what: core::fmt::Arguments) -> ! {
    hprintln!("FAILED: {}", what);
    support::exit(false)
}

fn run(case: &Case, rng: &mut Rng) {
    let (m, n, k) = (case.m, case.n, case.k);
    // TFLite int8: asymmetric activations (zero point −3 here), symmetric weights.
    let za = -3;
    let a: Vec<i8> = (0..m * k).map(|_| rng.next() as i8).collect();
    let b: Vec<i8> = (0..k * n).map(|_| rng.next() as i8).collect();
    let bias: Vec<i32> = (0..n)
        .map(|_| (rng.next() % 20001) as i32 - 10000)
        .collect();
    let mults: Vec<i32> = (0..n)
        .map(|_| (1 << 30) + (rng.next() % (1 << 30)) as i32)
        .collect();
    let shifts: Vec<i32> = (0..n).map(|_| -7 - (rng.next() % 3) as i32).collect();
    let scale = if case.per_channel {
        Scale::PerChannel {
            multipliers: &mults,
            shifts: &shifts,
        }
    } else {
        Scale::PerTensor {
            multiplier: mults[0],
            shift: shifts[0],
        }
    };
    let rq = Requantize::new(scale, 5).with_bias(&bias);

    // Weights packed once, outside the measurement.
    let mut packed_buf = vec![0u8; edgemm::qgemm_packed_b_size(k, n)];
    let packed = PackedQBRef::pack(MatRef::row_major(&b, k, n).unwrap(), &mut packed_buf)
        .unwrap_or_else(|e| fail(format_args!("{}: pack: {e}", case.name)));
    let mut ws = vec![0u8; edgemm::qgemm_packed_workspace_size(m, n, k)];
    let mut out = vec![0i8; m * n];
    let av = MatRef::row_major(&a, m, k).unwrap();

    hprintln!(
        "case {} m={} n={} k={} macs={} kernel={}",
        case.name,
        m,
        n,
        k,
        m * n * k,
        packed.kernel_name()
    );
    let ov = Requantized(&rq, MatMut::row_major(&mut out, m, n).unwrap());
    let ctx = Context::new().workspace(&mut ws);
    bench_begin();
    let r = edgemm::qgemm(av, za, packed, 0, ov, ctx);
    bench_end();
    if let Err(e) = r {
        fail(format_args!("{}: {e}", case.name));
    }

    // Bit-exact against the reference.
    let mut acc = vec![0i32; m * n];
    edgemm::reference::qgemm(
        av,
        za,
        MatRef::row_major(&b, k, n).unwrap(),
        0,
        MatMut::row_major(&mut acc, m, n).unwrap(),
    )
    .unwrap();
    for i in 0..m {
        for j in 0..n {
            let ch = if case.per_channel { j } else { 0 };
            let want = edgemm::reference::requantize(
                acc[i * n + j],
                bias[j],
                mults[ch],
                shifts[ch],
                5,
                -128,
                127,
            );
            if out[i * n + j] as i32 != want {
                fail(format_args!(
                    "{}: out[{i},{j}] = {}, reference {want}",
                    case.name,
                    out[i * n + j]
                ));
            }
        }
    }
    hprintln!("check {} ok", case.name);
}

#[entry]
fn main() -> ! {
    let mut rng = Rng(2024);
    for case in &CASES {
        let mark = support::heap_mark();
        run(case, &mut rng);
        // SAFETY: everything `run` allocated is dropped.
        unsafe { support::heap_reset(mark) };
    }
    hprintln!("bench done");
    support::exit(true)
}
