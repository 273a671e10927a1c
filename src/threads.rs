//! Threads: a partition of C into per-thread blocks, and (with `std`) a small persistent pool
//! that runs the blocks.
//!
//! Blocks are tasks claimed from an atomic counter by whichever thread is free — the caller
//! included — so a call never waits for a worker that has not started: when another process
//! holds the other core, the caller simply does all the blocks itself (the speed of one
//! thread, not a scheduler time slice per call). Workers spin for a short while after each
//! job before they park, so a run of back-to-back calls (the common case in inference and
//! benchmarks) does not pay an OS wake-up per call. A call that finds the pool busy (another
//! thread's call, or a nested one) runs on freshly spawned scoped threads instead: slower,
//! never wrong.

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

/// Runs `f(0..tasks)` on up to `threads` threads (the caller included) and returns when all
/// have finished. Which thread runs which task varies; results must not depend on it.
pub(crate) fn run(tasks: usize, threads: usize, f: &(dyn Fn(usize) + Sync)) {
    if tasks == 0 {
        return;
    }
    #[cfg(feature = "std")]
    if tasks > 1 && threads > 1 {
        return pool::run(tasks, threads, f);
    }
    let _ = threads;
    for t in 0..tasks {
        f(t);
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
    use std::boxed::Box;
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};
    use std::thread::{self, Thread};
    use std::time::{Duration, Instant};
    use std::vec::Vec;

    /// How long an idle worker spins before it parks (and the caller waits for a claimed
    /// task before it yields its core).
    ///
    /// The spin loops poll without `PAUSE` (`spin_loop`): under a hypervisor with
    /// pause-loop exiting (KVM's default), a loop of PAUSEs makes the host take the vCPU
    /// away as if it spun on a lock, so the worker came late to the next job and the caller
    /// ran most tasks itself: MobileNet-v2 int8 on two threads 2500 µs with PAUSE, 1955
    /// µs without (one thread: 2900; AMD EPYC Zen 4, 2 vCPUs, Firecracker/KVM). A poll is
    /// one load of a line that stays in this core's cache until a job is published.
    const SPIN: Duration = Duration::from_micros(200);

    /// The erased closure type the workers call (the caller's borrow is erased; see `run`).
    type Job = dyn Fn(usize) + Sync + 'static;

    /// `state` packs the job's epoch, its task count and the next unclaimed task, so one
    /// compare-and-swap both checks that a job is still the current one and claims a task.
    const FIELD: u32 = 20;
    const MASK: u64 = (1 << FIELD) - 1;
    fn pack(epoch: u64, count: usize, next: usize) -> u64 {
        (epoch << (2 * FIELD)) | ((count as u64) << FIELD) | next as u64
    }
    fn epoch(s: u64) -> u64 {
        s >> (2 * FIELD)
    }
    fn count(s: u64) -> usize {
        ((s >> FIELD) & MASK) as usize
    }
    fn next(s: u64) -> usize {
        (s & MASK) as usize
    }

    struct Shared {
        state: AtomicU64,
        /// The current job's closure. Valid while any claimed task is unfinished.
        job: AtomicPtr<JobRef>,
        /// Tasks finished in the current job.
        done: AtomicUsize,
        /// Workers 1..=helpers may claim tasks of the current job.
        helpers: AtomicUsize,
        panicked: AtomicBool,
    }

    struct JobRef {
        f: *const Job,
    }

    struct Worker {
        thread: Thread,
        sleeping: Arc<AtomicBool>,
    }

    struct Pool {
        shared: &'static Shared,
        /// Held for the whole of a job: one job at a time.
        workers: Mutex<Vec<Worker>>,
    }

    fn pool() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| Pool {
            shared: Box::leak(Box::new(Shared {
                state: AtomicU64::new(0),
                job: AtomicPtr::new(core::ptr::null_mut()),
                done: AtomicUsize::new(0),
                helpers: AtomicUsize::new(0),
                panicked: AtomicBool::new(false),
            })),
            workers: Mutex::new(Vec::new()),
        })
    }

    /// Runs tasks `0..tasks` on the caller and up to `threads − 1` pool workers.
    pub(super) fn run(tasks: usize, threads: usize, f: &(dyn Fn(usize) + Sync)) {
        assert!(tasks < (1 << FIELD), "task count fits the state word");
        let p = pool();
        let Ok(mut workers) = p.workers.try_lock() else {
            return scoped(tasks, threads, f);
        };
        let s = p.shared;
        let helpers = threads.saturating_sub(1).min(tasks - 1);
        while workers.len() < helpers {
            let idx = workers.len() + 1;
            let sleeping = Arc::new(AtomicBool::new(false));
            let flag = sleeping.clone();
            // The epoch before this job: a worker spawned now must see this job as new.
            let seen = epoch(s.state.load(Ordering::Acquire));
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
                    return scoped(tasks, threads, f);
                }
            }
        }
        // SAFETY: only the borrow's lifetime is erased. Workers dereference the job only
        // after claiming an unfinished task, and this function returns only when every
        // task is finished, so the closure outlives every use.
        let f_static: *const Job =
            unsafe { core::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const Job>(f) };
        let job = JobRef { f: f_static };
        let e = epoch(s.state.load(Ordering::Relaxed)) + 1;
        s.done.store(0, Ordering::Relaxed);
        s.helpers.store(helpers, Ordering::Relaxed);
        s.job
            .store(&job as *const JobRef as *mut JobRef, Ordering::Relaxed);
        s.state.store(pack(e, tasks, 0), Ordering::SeqCst);
        for w in workers.iter().take(helpers) {
            if w.sleeping.swap(false, Ordering::SeqCst) {
                w.thread.unpark();
            }
        }
        claim_all(s, e);
        // Wait only for tasks already claimed by workers (usually finishing right now): a
        // while polling (see `SPIN`), then yielding the core to a worker the OS holds back.
        let mut spins = 0u32;
        let mut since: Option<Instant> = None;
        while s.done.load(Ordering::Acquire) < tasks {
            spins = spins.wrapping_add(1);
            if spins % 64 == 0 && since.get_or_insert_with(Instant::now).elapsed() > SPIN {
                thread::yield_now();
            }
        }
        s.job.store(core::ptr::null_mut(), Ordering::Relaxed);
        if s.panicked.swap(false, Ordering::Relaxed) {
            drop(workers);
            panic!("edgemm: a worker thread panicked");
        }
    }

    /// Claims and runs tasks of job `e` until none is left.
    fn claim_all(s: &Shared, e: u64) {
        loop {
            let st = s.state.load(Ordering::Acquire);
            if epoch(st) != e || next(st) >= count(st) {
                return;
            }
            if s.state
                .compare_exchange_weak(st, st + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let job = s.job.load(Ordering::Acquire);
            // SAFETY: this thread holds the unfinished task next(st) of job e, so the caller
            // of job e is still waiting and `job` (published before the epoch) is alive.
            let f = unsafe { &*(*job).f };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(next(st))));
            if r.is_err() {
                s.panicked.store(true, Ordering::Relaxed);
            }
            s.done.fetch_add(1, Ordering::Release);
        }
    }

    fn worker(idx: usize, s: &'static Shared, mut seen: u64, sleeping: &AtomicBool) {
        loop {
            // Wait for a new job: spin a while, then park.
            let start = Instant::now();
            let mut polls = 0u32;
            let e = loop {
                let e = epoch(s.state.load(Ordering::Acquire));
                if e != seen {
                    break e;
                }
                polls += 1;
                if polls % 64 == 0 && start.elapsed() > SPIN {
                    sleeping.store(true, Ordering::SeqCst);
                    if epoch(s.state.load(Ordering::SeqCst)) == seen {
                        thread::park();
                    }
                    sleeping.store(false, Ordering::SeqCst);
                    polls = 0;
                    continue;
                }
            };
            seen = e;
            if idx <= s.helpers.load(Ordering::Acquire) {
                claim_all(s, e);
            }
        }
    }

    /// Fallback when the pool is busy: scoped threads claiming from a local counter.
    fn scoped(tasks: usize, threads: usize, f: &(dyn Fn(usize) + Sync)) {
        let next = AtomicUsize::new(0);
        let work = || loop {
            let t = next.fetch_add(1, Ordering::Relaxed);
            if t >= tasks {
                return;
            }
            f(t);
        };
        thread::scope(|sc| {
            for _ in 1..threads.min(tasks) {
                sc.spawn(work);
            }
            work();
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
        for count in 1..9 {
            for threads in 1..4 {
                let hits: std::vec::Vec<AtomicUsize> =
                    (0..count).map(|_| AtomicUsize::new(0)).collect();
                for _ in 0..50 {
                    run(count, threads, &|t| {
                        hits[t].fetch_add(1, Ordering::Relaxed);
                    });
                }
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 50));
            }
        }
    }

    /// A call never waits for a worker that has not started: with the other core taken by
    /// a busy thread, a call still completes (the caller runs every task).
    #[test]
    fn caller_finishes_without_a_starved_worker() {
        use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let stop = AtomicBool::new(false);
        std::thread::scope(|sc| {
            for _ in 0..available() {
                sc.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        core::hint::spin_loop();
                    }
                });
            }
            let n = AtomicUsize::new(0);
            for _ in 0..200 {
                run(2, 2, &|_| {
                    n.fetch_add(1, Ordering::Relaxed);
                });
            }
            stop.store(true, Ordering::Relaxed);
            assert_eq!(n.load(Ordering::Relaxed), 400);
        });
    }
}
