//! The int8 API without allocation: `qgemm` with a workspace in its `Context`, with B strided
//! or packed into caller memory (`PackedQBRef`), i32 or requantized output. Sizes are
//! `const`, a short buffer is an error that touches nothing, nothing allocates, packed
//! bytes are validated when read back, and every int8 kernel compiled in is exact through
//! these entry points. Runs with and without the crate's `alloc` feature
//! (scripts/test-all.sh).

mod common;

use common::*;
use edgemm::{
    qgemm, qgemm_packed_b_size, qgemm_packed_workspace_size, qgemm_workspace_size, Context, Error,
    Kernel, KernelKind, MatMut, MatRef, PackedQBRef, Requantize, Requantized, Scale,
};
use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;

/// Counts this thread's allocations (the harness runs tests on several threads at once).
struct CountingAlloc;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; the counter is a thread-local Cell
// with a const initializer and no destructor, so touching it never allocates or re-enters.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        ALLOCS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's layout contract is forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> usize {
    ALLOCS.with(|n| n.get())
}

/// Sized in const contexts: arrays on the stack or in statics.
const K: usize = 100;
const N: usize = 24;
const WS_PACKED: usize = qgemm_packed_workspace_size(5, N, K);
static mut PACKED_BUF: [u8; qgemm_packed_b_size(K, N)] = [0; qgemm_packed_b_size(K, N)];

fn int8_kernels() -> Vec<Kernel> {
    edgemm::kernels()
        .filter(|i| i.kind == KernelKind::Int8)
        .filter_map(|i| {
            if i.runnable {
                Some(Kernel::by_name(i.name).unwrap())
            } else {
                println!("kernel {} SKIPPED: this CPU lacks {}", i.name, i.isa);
                None
            }
        })
        .collect()
}

#[test]
fn sizes_are_const_and_bounded() {
    for f in [qgemm_workspace_size, qgemm_packed_workspace_size] {
        assert_eq!(f(0, 5, 7), 0);
        assert_eq!(f(5, 0, 7), 0);
        assert_eq!(f(5, 7, 0), 0);
        // One row tile of A at a time: the same for any m beyond the widest MR.
        assert_eq!(f(16, 9, 300), f(5000, 9, 300));
        let mut prev = 0;
        for k in 1..300 {
            let s = f(7, 9, k);
            assert!(s >= prev, "monotone in k");
            prev = s;
        }
        // Absurd sizes saturate (never wrap to something small).
        assert_eq!(f(1, usize::MAX / 2, usize::MAX / 2), usize::MAX);
    }
    const { assert!(WS_PACKED > 0) };
    // The prepacked path needs no room for B.
    assert!(qgemm_packed_workspace_size(5, N, K) < qgemm_workspace_size(5, N, K));
    // The packed blob: 96 header bytes + 4n of column sums + the data, plus slack.
    assert!(qgemm_packed_b_size(K, N) >= 96 + 4 * N + K * N);
    assert_eq!(qgemm_packed_b_size(usize::MAX / 2, 7), usize::MAX);
}

#[test]
fn too_small_is_an_error_before_anything_is_touched() {
    let (m, n, k) = (7, 9, 30);
    let a = vec![3i8; m * k];
    let b = vec![-2i8; k * n];
    let mut c = vec![0x5eed_i32; m * n];
    let need = qgemm_workspace_size(m, n, k);
    let mut ws = vec![0x5au8; need];
    for got in [0, 1, need / 2, need - 1] {
        let r = qgemm(
            MatRef::row_major(&a, m, k).unwrap(),
            1,
            MatRef::row_major(&b, k, n).unwrap(),
            0,
            MatMut::row_major(&mut c, m, n).unwrap(),
            Context::new().workspace(&mut ws[..got]),
        );
        assert_eq!(r, Err(Error::WorkspaceTooSmall { needed: need, got }));
    }
    assert!(c.iter().all(|&x| x == 0x5eed), "C was written");
    assert!(ws.iter().all(|&x| x == 0x5a), "the workspace was written");
    // Packing into a short buffer: an error, the buffer untouched.
    let mut buf = vec![0x5au8; qgemm_packed_b_size(k, n)];
    let short = buf.len() - 1;
    let r = PackedQBRef::pack(MatRef::row_major(&b, k, n).unwrap(), &mut buf[..short]);
    assert!(
        matches!(r, Err(Error::WorkspaceTooSmall { got, .. }) if got == short),
        "{r:?}"
    );
    assert!(
        buf.iter().all(|&x| x == 0x5a),
        "the packing buffer was written"
    );
    // Requantized with prepacked weights: a short workspace fails, exactly enough works.
    let packed = PackedQBRef::pack(MatRef::row_major(&b, k, n).unwrap(), &mut buf).unwrap();
    let rq = Requantize::new(
        Scale::PerTensor {
            multiplier: 1 << 30,
            shift: -5,
        },
        3,
    );
    let mut out = vec![0x11i8; m * n];
    let need = qgemm_packed_workspace_size(m, n, k);
    let mut ws = vec![0x5au8; need];
    let r = qgemm(
        MatRef::row_major(&a, m, k).unwrap(),
        1,
        packed,
        0,
        Requantized(&rq, MatMut::row_major(&mut out, m, n).unwrap()),
        Context::new().workspace(&mut ws[..need - 1]),
    );
    assert_eq!(
        r,
        Err(Error::WorkspaceTooSmall {
            needed: need,
            got: need - 1
        })
    );
    assert!(out.iter().all(|&x| x == 0x11) && ws.iter().all(|&x| x == 0x5a));
    // A bad zero point of the weights is an error, before anything is touched.
    let r = qgemm(
        MatRef::row_major(&a, m, k).unwrap(),
        1,
        packed,
        128,
        Requantized(&rq, MatMut::row_major(&mut out, m, n).unwrap()),
        Context::new().workspace(&mut ws),
    );
    assert!(matches!(r, Err(Error::ZeroPointOutOfRange { .. })), "{r:?}");
    assert!(out.iter().all(|&x| x == 0x11) && ws.iter().all(|&x| x == 0x5a));
    qgemm(
        MatRef::row_major(&a, m, k).unwrap(),
        1,
        packed,
        0,
        Requantized(&rq, MatMut::row_major(&mut out, m, n).unwrap()),
        Context::new().workspace(&mut ws),
    )
    .unwrap();
    // (3 − 1)·(−2)·30 = −120, halved by the multiplier, / 2^5, + 3: −2 + 3 = 1.
    assert!(out.iter().all(|&x| x == 1), "{out:?}");
    // A bad shape is reported as such, whatever the workspace.
    let r = qgemm(
        MatRef::row_major(&a[..m * (k - 1)], m, k - 1).unwrap(),
        1,
        packed,
        0,
        MatMut::row_major(&mut c, m, n).unwrap(),
        Context::new().workspace(&mut []),
    );
    assert!(matches!(r, Err(Error::DimensionMismatch { .. })), "{r:?}");
}

#[test]
fn never_allocates() {
    let (m, n) = (5, N);
    let mut rng = Rng(5);
    let a: Vec<u8> = (0..m * K).map(|_| rng.next_u64() as u8).collect();
    let b: Vec<i8> = (0..K * N).map(|_| rng.next_u64() as i8).collect();
    let mut c = vec![0i32; m * n];
    let mut out = vec![0u8; m * n];
    let mut ws = [0u8; WS_PACKED];
    let mut ws_strided = vec![0u8; qgemm_workspace_size(m, n, K)];
    let rq = Requantize::new(
        Scale::PerTensor {
            multiplier: 1_500_000_000,
            shift: -9,
        },
        7,
    );
    let kernels = int8_kernels();
    // Warm up what is initialised lazily (CPU detection, kernel selection).
    qgemm(
        MatRef::row_major(&a, m, K).unwrap(),
        128,
        MatRef::row_major(&b, K, N).unwrap(),
        0,
        MatMut::row_major(&mut c, m, n).unwrap(),
        Context::new().workspace(&mut ws_strided),
    )
    .unwrap();
    let before = allocations();
    for kern in &kernels {
        // SAFETY: the only reference to PACKED_BUF, on this test's thread.
        let buf: &mut [u8] = unsafe { &mut *core::ptr::addr_of_mut!(PACKED_BUF) };
        let packed =
            PackedQBRef::pack_with_kernel(kern, MatRef::row_major(&b, K, N).unwrap(), buf).unwrap();
        let again = PackedQBRef::from_bytes(packed.as_bytes()).unwrap();
        qgemm(
            MatRef::row_major(&a, m, K).unwrap(),
            128,
            again,
            -3,
            Requantized(&rq, MatMut::row_major(&mut out, m, n).unwrap()),
            Context::new().workspace(&mut ws),
        )
        .unwrap();
        qgemm(
            MatRef::row_major(&a, m, K).unwrap(),
            128,
            packed,
            -3,
            MatMut::col_major(&mut c, m, n).unwrap(),
            Context::new().workspace(&mut ws),
        )
        .unwrap();
        qgemm(
            MatRef::row_major(&a, m, K).unwrap(),
            128,
            MatRef::col_major(&b, K, N).unwrap(),
            -3,
            Requantized(&rq, MatMut::row_major(&mut out, m, n).unwrap()),
            Context::new().kernel(*kern).workspace(&mut ws_strided),
        )
        .unwrap();
    }
    assert_eq!(
        allocations() - before,
        0,
        "the no-allocation paths allocated"
    );
}

/// Every int8 kernel, exact against the reference through both no-allocation entry points:
/// shapes around MR, NR and the k group, every layout, zero points at the ends of their
/// ranges, extreme data, requantized i8/u8 output, and random cases.
#[test]
fn every_kernel_exact_through_workspace_and_prepacked() {
    let rq = [
        None,
        Some(RqCase {
            per_channel: false,
            out_signed: true,
            bias: false,
            clamp: None,
            left_shifts: false,
        }),
        Some(RqCase {
            per_channel: true,
            out_signed: true,
            bias: true,
            clamp: Some((-20, 90)),
            left_shifts: false,
        }),
        Some(RqCase {
            per_channel: true,
            out_signed: false,
            bias: true,
            clamp: None,
            left_shifts: true,
        }),
    ];
    let values = [
        QValues::Full,
        QValues::AllMin,
        QValues::AllMax,
        QValues::Extremes,
    ];
    for kernel in int8_kernels() {
        let info = kernel.info();
        let (mr, nr) = (info.mr, info.nr);
        let mut cases = 0;
        let mut idx = 0usize;
        for &m in &[1, 2, mr - 1, mr, mr + 1, 2 * mr + 3] {
            for &n in &[1, 3, nr - 1, nr, nr + 1, 2 * nr + 5] {
                for &k in &[1usize, 2, 3, 5, 16, 17, 64, 131] {
                    let a_signed = idx % 2 == 0;
                    let za = if a_signed {
                        [0, -128, 127, 5][idx / 2 % 4]
                    } else {
                        [0, 255, 128, 1][idx / 2 % 4]
                    };
                    let case = QCase {
                        m: m.max(1),
                        n: n.max(1),
                        k,
                        la: ALL_LAYOUTS[idx % 8],
                        lb: ALL_LAYOUTS[idx / 8 % 8],
                        lc: ALL_LAYOUTS[(idx / 3) % 8],
                        a_signed,
                        za,
                        zb: [0, -128, 127, -3][idx / 8 % 4],
                        values: values[idx / 3 % 4],
                        threads: 1,
                        requant: rq[idx / 5 % 4],
                        seed: idx as u64,
                    };
                    for entry in [QEntry::Workspace, QEntry::Packed] {
                        if let Err(msg) = run_qgemm_case_via(Some(&kernel), &case, entry) {
                            panic!("kernel {} ({entry:?}): {msg}\n  case: {case:?}", info.name);
                        }
                        cases += 1;
                    }
                    idx += 1;
                }
            }
        }
        let mut rng = Rng(0xfeed ^ idx as u64);
        for i in 0..400u64 {
            let mut pick = |n: u64| rng.below(n) as usize;
            let (m, n, k) = (pick(3 * mr as u64 + 3), pick(3 * nr as u64 + 3), pick(90));
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
            let case = QCase {
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
                threads: 1,
                requant: rq[rng.below(4) as usize],
                seed: rng.next_u64(),
            };
            let entry = if i % 2 == 0 {
                QEntry::Workspace
            } else {
                QEntry::Packed
            };
            if let Err(msg) = run_qgemm_case_via(Some(&kernel), &case, entry) {
                panic!("kernel {} ({entry:?}): {msg}\n  case: {case:?}", info.name);
            }
            cases += 1;
        }
        for entry in [QEntry::Workspace, QEntry::Packed] {
            match run_requant_sweep(Some(&kernel), entry, 60, 77) {
                Ok(n) => cases += n / 100,
                Err(msg) => panic!("kernel {} ({entry:?}): {msg}", info.name),
            }
        }
        println!("kernel {} ok: {cases} cases", info.name);
    }
    // The default selection, through both entry points.
    let case = QCase {
        m: 13,
        n: 17,
        k: 300,
        la: Layout::RowMajor,
        lb: Layout::ColMajor,
        lc: Layout::RowPadded(1),
        a_signed: false,
        za: 131,
        zb: 0,
        values: QValues::Full,
        threads: 1,
        requant: rq[2],
        seed: 1,
    };
    for entry in [QEntry::Workspace, QEntry::Packed] {
        if let Err(msg) = run_qgemm_case_via(None, &case, entry) {
            panic!("default kernel ({entry:?}): {msg}");
        }
    }
}

/// Bytes read back as a packed operand are checked field by field.
#[test]
fn packed_bytes_are_validated() {
    let (k, n) = (10, 6);
    let b: Vec<i8> = (0..k * n).map(|v| v as i8).collect();
    let mut buf = vec![0u8; qgemm_packed_b_size(k, n) + 8];
    let packed = PackedQBRef::pack(MatRef::row_major(&b, k, n).unwrap(), &mut buf).unwrap();
    assert_eq!((packed.rows(), packed.cols()), (k, n));
    let good: Vec<u32> = {
        let bytes = packed.as_bytes();
        let mut w = vec![0u32; bytes.len().div_ceil(4) + 2];
        // SAFETY: viewing the u32 vector as bytes.
        let wb = unsafe { core::slice::from_raw_parts_mut(w.as_mut_ptr() as *mut u8, w.len() * 4) };
        wb[..bytes.len()].copy_from_slice(bytes);
        w
    };
    let len = packed.as_bytes().len();
    let with = |f: &dyn Fn(&mut [u8])| -> Result<(), Error> {
        let mut w = good.clone();
        // SAFETY: viewing the u32 vector as bytes.
        let wb = unsafe { core::slice::from_raw_parts_mut(w.as_mut_ptr() as *mut u8, w.len() * 4) };
        f(wb);
        PackedQBRef::from_bytes(&wb[..]).map(|p| {
            assert_eq!(p.as_bytes().len(), len);
        })
    };
    // Intact (and longer than the blob): accepted, the same operand.
    with(&|_| {}).unwrap();
    let again = PackedQBRef::from_bytes(packed.as_bytes()).unwrap();
    assert_eq!(again.kernel_name(), packed.kernel_name());
    let reason = |r: Result<(), Error>| match r {
        Err(Error::InvalidPacked { reason }) => reason,
        other => panic!("expected InvalidPacked, got {other:?}"),
    };
    let set = |i: usize, v: u32| {
        move |b: &mut [u8]| b[4 * i..4 * i + 4].copy_from_slice(&v.to_ne_bytes())
    };
    assert!(reason(with(&set(0, 0x1234))).contains("magic"));
    assert!(
        reason(with(&set(0, u32::from_le_bytes(*b"EGQB").swap_bytes()))).contains("byte order")
    );
    assert!(reason(with(&set(1, 99))).contains("version"));
    assert!(reason(with(&set(5, 3))).contains("layout"));
    // (A k whose padding to any k group differs: 10 and 14 both pad to 16 for k groups of 8.)
    assert!(reason(with(&set(6, 10 * k as u32))).contains("inconsistent"));
    assert!(reason(with(&set(8, 300))).contains("reserved"));
    assert!(reason(with(&|b: &mut [u8]| b[48] = 0xff)).contains("UTF-8"));
    // Truncated, too short for a header, misaligned.
    // SAFETY: viewing the u32 vector as bytes.
    let gb = unsafe { core::slice::from_raw_parts(good.as_ptr() as *const u8, good.len() * 4) };
    assert!(reason(PackedQBRef::from_bytes(&gb[..len - 1]).map(|_| ())).contains("truncated"));
    assert!(reason(PackedQBRef::from_bytes(&gb[..50]).map(|_| ())).contains("header"));
    assert!(reason(PackedQBRef::from_bytes(&gb[1..]).map(|_| ())).contains("aligned"));
    // Packed for a kernel this build lacks: a packing mismatch naming it.
    let rename = |name: &str| {
        let name = name.to_owned();
        move |b: &mut [u8]| {
            b[48..96].fill(0);
            b[48..48 + name.len()].copy_from_slice(name.as_bytes());
        }
    };
    let absent = ["qgemm_s16_m4dsp_16x4", "qgemm_u8i8_avx512vnni_14x32"]
        .into_iter()
        .find(|name| edgemm::kernels().all(|i| i.name != *name))
        .expect("an x86 or Arm build lacks one of them");
    match with(&rename(absent)) {
        Err(Error::PackingMismatch { packed_for, .. }) => assert_eq!(packed_for, absent),
        other => panic!("expected PackingMismatch, got {other:?}"),
    }
    match with(&rename("qgemm_future_9x9")) {
        Err(Error::PackingMismatch { packed_for, .. }) => assert!(packed_for.contains("unknown")),
        other => panic!("expected PackingMismatch, got {other:?}"),
    }
    // The name of another compiled kernel with another packing: refused, not misread.
    if let Some(other) = edgemm::kernels().find(|i| {
        i.kind == KernelKind::Int8
            && i.runnable
            && i.nr != Kernel::by_name(packed.kernel_name()).unwrap().info().nr
    }) {
        assert!(reason(with(&rename(other.name))).contains("layout"));
    }
}
