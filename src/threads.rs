//! Threads: a partition of C into per-thread blocks, and (with `std`) a small persistent pool
//! that runs one closure per block.
//!
//! The pool's workers spin for a short while after each job before they park, so a run of
//! back-to-back calls (the common case in inference and benchmarks) does not pay an OS
//! wake-up per call. A call that finds the pool busy (another thread's call, or a nested
//! call) runs on freshly spawned scoped threads instead: slower, never wrong.

/// How C is cut among threads: `tm` row bands × `tn` column bands, each a multiple of the
/// kernel tile, as equal as the tile grid allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grid {
    pub tm: usize,
    pub tn: usize,
    m: usize,
    n: usize,
    mr: usize,
    nr: usize,
}

impl Grid {
    pub fn single(m: usize, n: usize) -> Self {
        Grid {
            tm: 1,
            tn: 1,
            m,
            n,
            mr: 1,
            nr: 1,
        }
    }

    pub fn count(&self) -> usize {
        self.tm * self.tn
    }

    /// (row0, rows, col0, cols) of block `t`.
    pub fn block(&self, t: usize) -> (usize, usize, usize, usize) {
        let (ti, tj) = (t / self.tn, t % self.tn);
        let (r0, r1) = band(self.m, self.mr, self.tm, ti);
        let (c0, c1) = band(self.n, self.nr, self.tn, tj);
        (r0, r1 - r0, c0, c1 - c0)
    }
}

/// Band `i` of `parts` over `len` elements in whole tiles of `unit`.
fn band(len: usize, unit: usize, parts: usize, i: usize) -> (usize, usize) {
    let tiles = len.div_ceil(unit);
    let lo = (tiles * i / parts * unit).min(len);
    let hi = (tiles * (i + 1) / parts * unit).min(len);
    (lo, hi)
}

/// Multiply-adds below which one more thread costs more than it saves (a pool dispatch and
/// the cache misses of a cold partner core are worth roughly this much work).
const MIN_MACS_PER_THREAD: usize = 48 * 48 * 48;

/// The cheapest grid of at most `threads` blocks for an m×n×k product with MR×NR tiles.
///
/// Cost of a block, in cycles-ish: its tiles' multiply-adds over the ~16 a core does per
/// cycle, plus packing its rows of A and its columns of B (about one element per cycle).
/// Splitting m duplicates B packing, splitting n duplicates A packing; the model picks the
/// split that loses least, so tall, wide and skinny-k shapes each get theirs.
pub(crate) fn partition(
    m: usize,
    n: usize,
    k: usize,
    mr: usize,
    nr: usize,
    threads: usize,
) -> Grid {
    let macs = m.saturating_mul(n).saturating_mul(k);
    let threads = threads.min((macs / MIN_MACS_PER_THREAD).max(1));
    let (tiles_m, tiles_n) = (m.div_ceil(mr), n.div_ceil(nr));
    let mut best = Grid::single(m, n);
    let mut best_cost = f64::INFINITY;
    for t in 1..=threads {
        for tm in 1..=t {
            if t % tm != 0 {
                continue;
            }
            let tn = t / tm;
            if tm > tiles_m || tn > tiles_n {
                continue;
            }
            let rows = tiles_m.div_ceil(tm) * mr;
            let cols = tiles_n.div_ceil(tn) * nr;
            let compute = (rows * cols * k) as f64 / 16.0;
            let packing = (rows * k + k * cols) as f64;
            // Prefer more threads only when they pay: a small fixed cost per thread.
            let cost = compute + packing + 2000.0 * t as f64;
            if cost < best_cost * 0.999 {
                best_cost = cost;
                best = Grid {
                    tm,
                    tn,
                    m,
                    n,
                    mr,
                    nr,
                };
            }
        }
    }
    best
}

/// Runs `f(0..count)`, `f(0)` on the calling thread, and returns when all have finished.
pub(crate) fn run(count: usize, f: &(dyn Fn(usize) + Sync)) {
    if count <= 1 {
        f(0);
        return;
    }
    #[cfg(feature = "std")]
    {
        pool::run(count, f)
    }
    #[cfg(not(feature = "std"))]
    {
        for t in 0..count {
            f(t);
        }
    }
}

/// How many threads the OS lets this process use (1 without `std`).
pub(crate) fn available() -> usize {
    #[cfg(feature = "std")]
    {
        static N: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
        let n = N.load(core::sync::atomic::Ordering::Relaxed);
        if n != 0 {
            return n;
        }
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        N.store(n, core::sync::atomic::Ordering::Relaxed);
        n
    }
    #[cfg(not(feature = "std"))]
    {
        1
    }
}

#[cfg(feature = "std")]
mod pool {
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
    use std::sync::{Mutex, OnceLock};
    use std::thread::{self, Thread};
    use std::time::{Duration, Instant};
    use std::vec::Vec;

    /// How long an idle worker spins before it parks.
    const SPIN: Duration = Duration::from_micros(200);

    /// The erased closure type the workers call (the caller's borrow is erased; see `run`).
    type Job = dyn Fn(usize) + Sync + 'static;

    /// The job being run: a pointer to the caller's closure (a fat pointer, boxed in the
    /// caller's stack frame as `JobRef`) plus the number of tasks.
    struct JobRef {
        f: *const Job,
        count: usize,
    }

    struct Shared {
        /// Incremented for every job; workers wait for it to change.
        epoch: AtomicUsize,
        job: AtomicPtr<JobRef>,
        /// Tasks 1.. finished in the current job.
        done: AtomicUsize,
        panicked: AtomicBool,
    }

    struct Worker {
        thread: Thread,
        sleeping: std::sync::Arc<AtomicBool>,
    }

    struct Pool {
        shared: &'static Shared,
        /// Held for the whole of a job: one job at a time.
        busy: Mutex<Vec<Worker>>,
    }

    fn pool() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| Pool {
            shared: Box::leak(Box::new(Shared {
                epoch: AtomicUsize::new(0),
                job: AtomicPtr::new(core::ptr::null_mut()),
                done: AtomicUsize::new(0),
                panicked: AtomicBool::new(false),
            })),
            busy: Mutex::new(Vec::new()),
        })
    }

    use std::boxed::Box;

    pub(super) fn run(count: usize, f: &(dyn Fn(usize) + Sync)) {
        let p = pool();
        let Ok(mut workers) = p.busy.try_lock() else {
            return scoped(count, f);
        };
        let s = p.shared;
        while workers.len() < count - 1 {
            let idx = workers.len() + 1;
            let sleeping = std::sync::Arc::new(AtomicBool::new(false));
            let flag = sleeping.clone();
            // The epoch before this job's bump: a worker spawned now must still run this job.
            let seen = s.epoch.load(Ordering::Acquire);
            let spawned = thread::Builder::new()
                .name(std::format!("edgemm-{idx}"))
                .spawn(move || worker(idx, s, seen, &flag));
            match spawned {
                Ok(h) => workers.push(Worker {
                    thread: h.thread().clone(),
                    sleeping,
                }),
                Err(_) => {
                    drop(workers);
                    return scoped(count, f);
                }
            }
        }
        // SAFETY: only the borrow's lifetime is erased. `job` and the closure outlive every
        // use: workers touch them only between reading the new epoch and incrementing
        // `done`, and this function waits for every worker's `done` before returning.
        let f_static: *const Job =
            unsafe { core::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const Job>(f) };
        let job = JobRef { f: f_static, count };
        s.done.store(0, Ordering::Relaxed);
        s.job
            .store(&job as *const JobRef as *mut JobRef, Ordering::Relaxed);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        for w in workers.iter() {
            if w.sleeping.swap(false, Ordering::SeqCst) {
                w.thread.unpark();
            }
        }
        f(0);
        // Every worker reports (those past `count` too), so `job` is unused afterwards.
        let expected = workers.len();
        let mut spins = 0u32;
        while s.done.load(Ordering::Acquire) < expected {
            spins += 1;
            if spins < 1 << 16 {
                core::hint::spin_loop();
            } else {
                thread::yield_now();
            }
        }
        s.job.store(core::ptr::null_mut(), Ordering::Relaxed);
        if s.panicked.swap(false, Ordering::Relaxed) {
            drop(workers);
            panic!("edgemm: a worker thread panicked");
        }
    }

    fn worker(idx: usize, s: &'static Shared, mut seen: usize, sleeping: &AtomicBool) {
        loop {
            // Wait for a new epoch: spin a while, then park.
            let start = Instant::now();
            let mut polls = 0u32;
            loop {
                let e = s.epoch.load(Ordering::Acquire);
                if e != seen {
                    seen = e;
                    break;
                }
                polls += 1;
                if polls % 64 == 0 && start.elapsed() > SPIN {
                    sleeping.store(true, Ordering::SeqCst);
                    if s.epoch.load(Ordering::SeqCst) == seen {
                        thread::park();
                    }
                    sleeping.store(false, Ordering::SeqCst);
                    polls = 0;
                    continue;
                }
                core::hint::spin_loop();
            }
            let job = s.job.load(Ordering::Acquire);
            // SAFETY: the caller published `job` before bumping the epoch and keeps it alive
            // until this worker increments `done`.
            let job = unsafe { &*job };
            if idx < job.count {
                // SAFETY: as above, the closure outlives this use.
                let f = unsafe { &*job.f };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(idx)));
                if r.is_err() {
                    s.panicked.store(true, Ordering::Relaxed);
                }
            }
            s.done.fetch_add(1, Ordering::Release);
        }
    }

    /// Fallback when the pool is busy: one scoped thread per task.
    fn scoped(count: usize, f: &(dyn Fn(usize) + Sync)) {
        thread::scope(|sc| {
            for t in 1..count {
                sc.spawn(move || f(t));
            }
            f(0);
        });
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn grids_cover_c_exactly() {
        for &(m, n, k) in &[
            (1000, 1000, 100),
            (7, 4000, 300),
            (4000, 9, 300),
            (64, 64, 64),
            (1, 1, 1),
        ] {
            for t in 1..=8 {
                let g = partition(m, n, k, 14, 32, t);
                let mut cover = 0;
                for b in 0..g.count() {
                    let (_, r, _, c) = g.block(b);
                    cover += r * c;
                }
                assert_eq!(cover, m * n, "{m}x{n} t={t} {g:?}");
            }
        }
    }

    #[test]
    fn pool_runs_every_task_once() {
        use core::sync::atomic::{AtomicUsize, Ordering};
        for count in 1..6 {
            let hits: std::vec::Vec<AtomicUsize> =
                (0..count).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..50 {
                run(count, &|t| {
                    hits[t].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 50));
        }
    }
}
