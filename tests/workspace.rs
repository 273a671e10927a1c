//! The caller-provided workspace (`sgemm` with a workspace in its `Context`, sized by
//! `sgemm_workspace_size`): sized at compile time, a short buffer is an error that
//! touches nothing, it never allocates, and every kernel compiled in passes the
//! kernel-vs-reference cases through it. Runs with and without the crate's `alloc` feature
//! (scripts/test-all.sh).

mod common;

use common::*;
use edgemm::{sgemm, sgemm_workspace_size, Context, Error, Kernel, KernelKind, MatMut, MatRef};
use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;

/// Counts this thread's allocations, so a test can assert that a call made none (the test
/// harness runs tests on several threads at once).
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

/// Sized in a const context: a plain array on the stack or in a static.
const SMALL_WS: usize = sgemm_workspace_size(3, 5, 7);
static mut STATIC_WS: [u8; sgemm_workspace_size(16, 16, 1000)] =
    [0; sgemm_workspace_size(16, 16, 1000)];

#[test]
fn size_is_a_const_and_depends_only_on_k() {
    assert_eq!(sgemm_workspace_size(0, 5, 7), 0);
    assert_eq!(sgemm_workspace_size(5, 0, 7), 0);
    assert_eq!(sgemm_workspace_size(5, 7, 0), 0);
    const { assert!(SMALL_WS > 0) };
    // One panel of at most 256 k steps: the same for every k ≥ 256, and for any m, n.
    assert_eq!(
        sgemm_workspace_size(1, 1, 256),
        sgemm_workspace_size(999, 999, 1 << 20)
    );
    assert_eq!(
        sgemm_workspace_size(1, 1, 100),
        sgemm_workspace_size(50, 3, 100)
    );
    let mut prev = 0;
    for k in 1..600 {
        let s = sgemm_workspace_size(4, 4, k);
        assert!(s >= prev, "monotone in k");
        // k·NR floats for the widest tile compiled in, its slack, and the alignment slack.
        let widest = edgemm::kernels()
            .filter(|i| i.kind == KernelKind::F32)
            .map(|i| i.nr)
            .max()
            .unwrap();
        assert!(s >= k.min(256) * widest * 4, "k = {k}: {s}");
        assert!(s <= (k.min(256) * widest + 32) * 4 + 63, "k = {k}: {s}");
        prev = s;
    }
}

#[test]
fn too_small_is_an_error_before_anything_is_touched() {
    let (m, n, k) = (7, 9, 300);
    let a = vec![1.0f32; m * k];
    let b = vec![1.0f32; k * n];
    let mut c = vec![f32::NAN; m * n];
    let need = sgemm_workspace_size(m, n, k);
    let mut ws = vec![0x5au8; need];
    for got in [0, 1, need / 2, need - 1] {
        let r = sgemm(
            1.0,
            MatRef::row_major(&a, m, k).unwrap(),
            MatRef::col_major(&b, k, n).unwrap(),
            0.0,
            MatMut::row_major(&mut c, m, n).unwrap(),
            Context::new().workspace(&mut ws[..got]),
        );
        assert_eq!(r, Err(Error::WorkspaceTooSmall { needed: need, got }));
        let msg = r.unwrap_err().to_string();
        assert!(
            msg.contains(&format!("{got} bytes given, {need} needed")),
            "{msg}"
        );
    }
    assert!(c.iter().all(|x| x.is_nan()), "C was written");
    assert!(ws.iter().all(|&x| x == 0x5a), "the workspace was written");
    // A bad shape is reported as such, whatever the workspace.
    let r = sgemm(
        1.0,
        MatRef::row_major(&a, m, k).unwrap(),
        MatRef::row_major(&b, n, k).unwrap(),
        0.0,
        MatMut::row_major(&mut c, m, n).unwrap(),
        Context::new().workspace(&mut []),
    );
    assert!(matches!(r, Err(Error::DimensionMismatch { .. })), "{r:?}");
    // Exactly enough works, and so does a static buffer sized at compile time.
    sgemm(
        1.0,
        MatRef::row_major(&a, m, k).unwrap(),
        MatRef::col_major(&b, k, n).unwrap(),
        0.0,
        MatMut::row_major(&mut c, m, n).unwrap(),
        Context::new().workspace(&mut ws),
    )
    .unwrap();
    assert!(c.iter().all(|&x| x == k as f32));
    let (m, n, k) = (16, 16, 1000);
    let a = vec![0.5f32; m * k];
    let b = vec![2.0f32; k * n];
    let mut c = vec![0f32; m * n];
    // SAFETY: the only reference to STATIC_WS, on this test's thread, for this call.
    let ws: &mut [u8] = unsafe { &mut *core::ptr::addr_of_mut!(STATIC_WS) };
    sgemm(
        1.0,
        MatRef::row_major(&a, m, k).unwrap(),
        MatRef::new(&b, k, n, 1, k as isize).unwrap(),
        0.0,
        MatMut::row_major(&mut c, m, n).unwrap(),
        Context::new().workspace(ws),
    )
    .unwrap();
    assert!(c.iter().all(|&x| x == k as f32));
}

#[test]
fn never_allocates() {
    let (m, n, k) = (130, 70, 600);
    let mut rng = Rng(5);
    let a: Vec<f32> = (0..m * k).map(|_| rng.f32_pm1()).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.f32_pm1()).collect();
    let mut c = vec![0f32; m * n];
    let mut ws = vec![0u8; sgemm_workspace_size(m, n, k)];
    let kernels: Vec<Kernel> = edgemm::kernels()
        .filter(|i| i.kind == KernelKind::F32 && i.runnable)
        .map(|i| Kernel::by_name(i.name).unwrap())
        .collect();
    let (av, bvs) = (
        MatRef::row_major(&a, m, k).unwrap(),
        [
            MatRef::row_major(&b, k, n).unwrap(),
            MatRef::col_major(&b, k, n).unwrap(),
        ],
    );
    // Warm up whatever is lazily initialised (CPU detection, kernel selection).
    sgemm(
        1.0,
        av,
        bvs[0],
        0.0,
        MatMut::row_major(&mut c, m, n).unwrap(),
        Context::new().workspace(&mut ws),
    )
    .unwrap();
    let before = allocations();
    for bv in bvs {
        for kern in &kernels {
            let cv = MatMut::row_major(&mut c, m, n).unwrap();
            let ctx = Context::new().kernel(*kern).workspace(&mut ws);
            sgemm(1.0, av, bv, 0.5, cv, ctx).unwrap();
        }
        let cv = MatMut::col_major(&mut c, m, n).unwrap();
        sgemm(1.0, av, bv, 0.0, cv, Context::new().workspace(&mut ws)).unwrap();
    }
    assert_eq!(allocations() - before, 0, "the workspace path allocated");
}

#[test]
fn every_kernel_through_the_workspace() {
    let mut ran = 0;
    for info in edgemm::kernels().filter(|i| i.kind == KernelKind::F32) {
        if !info.runnable {
            println!("kernel {} SKIPPED: this CPU lacks {}", info.name, info.isa);
            continue;
        }
        let kernel = Kernel::by_name(info.name).unwrap();
        let (mr, nr) = (info.mr, info.nr);
        let mut idx = 0u64;
        let mut check = |m: usize, n: usize, k: usize, la, lb, lc| {
            let case = Case {
                m,
                n,
                k,
                la,
                lb,
                lc,
                alpha: [1.0, -0.5, 2.0][(idx % 3) as usize],
                beta: [0.0, 1.0, -0.0, 0.25][(idx % 4) as usize],
                values: [Values::Uniform, Values::Integers, Values::WideRange][(idx % 3) as usize],
                threads: 1,
                seed: idx,
            };
            idx += 1;
            if let Err(msg) = run_sgemm_case_via(Some(&kernel), &case, Entry::Workspace) {
                panic!("kernel {} (workspace): {msg}\n  case: {case:?}", info.name);
            }
        };
        let mut li = 0;
        for &m in &[1, 2, mr - 1, mr, mr + 1, 2 * mr + 3] {
            for &n in &[1, 3, nr - 1, nr, nr + 1, 2 * nr + 5] {
                for &k in &[1, 4, 17, 255, 256, 257, 700] {
                    let l = |s: usize| ALL_LAYOUTS[(li / s) % ALL_LAYOUTS.len()];
                    check(m.max(1), n.max(1), k, l(1), l(3), l(7));
                    li += 1;
                }
            }
        }
        for &la in &ALL_LAYOUTS {
            for &lb in &ALL_LAYOUTS {
                for &lc in &ALL_LAYOUTS {
                    check(mr + 2, nr + 3, 300, la, lb, lc);
                }
            }
        }
        ran += 1;
    }
    assert!(ran > 0, "the portable kernel always runs");
}
