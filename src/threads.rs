//! Threads: a partition of C into per-thread blocks, and (with `std`) a small persistent pool
//! that runs the blocks.
//!
//! Blocks are tasks dealt in one contiguous lane per thread, the caller's included; a thread
//! that finishes its lane takes the tasks left in the others', so a call never waits for a
//! worker that has not started: when another process holds the other core, the caller
//! simply does all the blocks itself (the speed of one thread, not a scheduler time slice
//! per call). Workers spin for a short while after each
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

/// [`run`] for tasks that can fail: the first error a task returns (the others still run).
#[cfg(feature = "std")]
pub(crate) fn try_run<E: Send>(
    tasks: usize,
    threads: usize,
    f: &(dyn Fn(usize) -> Result<(), E> + Sync),
) -> Result<(), E> {
    let failed = std::sync::Mutex::new(None);
    run(tasks, threads, &|t| {
        if let Err(e) = f(t) {
            if let Ok(mut slot) = failed.lock() {
                slot.get_or_insert(e);
            }
        }
    });
    failed.into_inner().ok().flatten().map_or(Ok(()), Err)
}

/// The pieces a split operator hands its tasks (task `i` takes piece `i`: its rows of the
/// output, its part of a buffer), each behind a lock so a task can take its own through the
/// shared reference the pool gives it. Up to [`PARTS_INLINE`] live on the stack, so a run
/// on several threads allocates nothing (more tasks than that spill to the heap).
#[cfg(feature = "std")]
pub(crate) struct Parts<T> {
    len: usize,
    inline: [Option<std::sync::Mutex<T>>; PARTS_INLINE],
    spill: std::vec::Vec<std::sync::Mutex<T>>,
}

/// Pieces a [`Parts`] keeps without allocating: a split makes a task or a few a thread, so
/// this covers thread counts up to a few dozen.
#[cfg(feature = "std")]
const PARTS_INLINE: usize = 64;

#[cfg(feature = "std")]
impl<T> Parts<T> {
    pub fn new() -> Self {
        Parts {
            len: 0,
            inline: core::array::from_fn(|_| None),
            spill: std::vec::Vec::new(),
        }
    }

    /// Adds the next task's piece.
    pub fn push(&mut self, piece: T) {
        let piece = std::sync::Mutex::new(piece);
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = Some(piece),
            None => self.spill.push(piece),
        }
        self.len += 1;
    }

    /// Task `i`'s piece, or `None` when there is none or a task that held it panicked (the
    /// pool then reports the panic).
    pub fn lock(&self, i: usize) -> Option<std::sync::MutexGuard<'_, T>> {
        let piece = match self.inline.get(i) {
            Some(slot) => slot.as_ref()?,
            None => self.spill.get(i - PARTS_INLINE)?,
        };
        piece.lock().ok()
    }
}

#[cfg(feature = "std")]
impl<'a, T> Parts<&'a mut [T]> {
    /// `buf` cut into consecutive pieces of `lens` elements, task `i` taking piece `i`.
    /// Panics if the lengths add up to more than `buf` holds (callers size them from it).
    pub fn split(mut buf: &'a mut [T], lens: impl IntoIterator<Item = usize>) -> Self {
        let mut parts = Parts::new();
        for len in lens {
            let (piece, rest) = core::mem::take(&mut buf).split_at_mut(len);
            parts.push(piece);
            buf = rest;
        }
        parts
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

    /// A job's tasks are dealt in contiguous lanes, one per thread (lane 0 the caller's). A
    /// thread runs its own lane first to last, then takes what is left of the others' from
    /// their ends. So a thread gets the same rows of every operator's output run after run
    /// (the rows the next operator reads are in its core's cache, not the other core's),
    /// and claiming a task of its own touches no line another thread polls.
    ///
    /// A lane is one word: the job's epoch tag, the lane's next task and its end, so one
    /// compare-and-swap both checks that the job is still the current one and claims.
    const FIELD: u32 = 20;
    const MASK: u64 = (1 << FIELD) - 1;
    const EPOCHS: u64 = 1 << (64 - 2 * FIELD);
    fn pack(epoch: u64, next: usize, end: usize) -> u64 {
        (epoch << (2 * FIELD)) | ((next as u64) << FIELD) | end as u64
    }
    fn epoch(s: u64) -> u64 {
        s >> (2 * FIELD)
    }
    fn next(s: u64) -> usize {
        ((s >> FIELD) & MASK) as usize
    }
    fn end(s: u64) -> usize {
        (s & MASK) as usize
    }

    /// Lanes; threads past this many share them (thread `i` owns lane `i % LANES`).
    const LANES: usize = 64;

    /// A value on cache lines of its own (two: x86 cores fetch adjacent lines in pairs), so
    /// a thread polling it does not slow another's writes to its neighbours.
    #[repr(align(128))]
    struct Own<T>(T);

    struct Shared {
        head: Own<Head>,
        /// Tasks finished in the current job (each thread adds its count once, when it
        /// finds none left to claim).
        done: Own<AtomicUsize>,
        panicked: Own<AtomicBool>,
        lanes: [Own<AtomicU64>; LANES],
    }

    /// The current job, written by the caller before it publishes `epoch`.
    struct Head {
        /// The current job's epoch (below `EPOCHS`), published last.
        epoch: AtomicU64,
        /// The closure. Valid while any claimed task is unfinished.
        job: AtomicPtr<JobRef>,
        /// Threads of the current job, the caller included: workers `1..threads` help.
        threads: AtomicUsize,
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
                head: Own(Head {
                    epoch: AtomicU64::new(0),
                    job: AtomicPtr::new(core::ptr::null_mut()),
                    threads: AtomicUsize::new(0),
                }),
                done: Own(AtomicUsize::new(0)),
                panicked: Own(AtomicBool::new(false)),
                lanes: [const { Own(AtomicU64::new(0)) }; LANES],
            })),
            workers: Mutex::new(Vec::new()),
        })
    }

    /// Runs tasks `0..tasks` on the caller and up to `threads − 1` pool workers.
    pub(super) fn run(tasks: usize, threads: usize, f: &(dyn Fn(usize) + Sync)) {
        assert!(tasks < (1 << FIELD), "task count fits a lane word");
        let p = pool();
        let Ok(mut workers) = p.workers.try_lock() else {
            return scoped(tasks, threads, f);
        };
        let s = p.shared;
        let threads = threads.min(tasks);
        let helpers = threads - 1;
        while workers.len() < helpers {
            let idx = workers.len() + 1;
            let sleeping = Arc::new(AtomicBool::new(false));
            let flag = sleeping.clone();
            // The epoch before this job: a worker spawned now must see this job as new.
            let seen = s.head.0.epoch.load(Ordering::Acquire);
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
        let head = &s.head.0;
        let e = (head.epoch.load(Ordering::Relaxed) + 1) % EPOCHS;
        s.done.0.store(0, Ordering::Relaxed);
        head.job
            .store(&job as *const JobRef as *mut JobRef, Ordering::Relaxed);
        head.threads.store(threads, Ordering::Relaxed);
        let lanes = threads.min(LANES);
        for (i, lane) in s.lanes.iter().take(lanes).enumerate() {
            let (lo, hi) = (tasks * i / lanes, tasks * (i + 1) / lanes);
            lane.0.store(pack(e, lo, hi), Ordering::Release);
        }
        head.epoch.store(e, Ordering::SeqCst);
        for w in workers.iter().take(helpers) {
            // SeqCst load, then the swap only for a worker about to park (see `worker`).
            if w.sleeping.load(Ordering::SeqCst) && w.sleeping.swap(false, Ordering::SeqCst) {
                w.thread.unpark();
            }
        }
        let mine = claim_all(s, e, 0, lanes);
        // Wait only for tasks already claimed by workers (usually finishing right now): a
        // while polling (see `SPIN`), then yielding the core to a worker the OS holds back.
        let mut spins = 0u32;
        let mut since: Option<Instant> = None;
        while s.done.0.load(Ordering::Acquire) < tasks - mine {
            spins = spins.wrapping_add(1);
            if spins % 64 == 0 && since.get_or_insert_with(Instant::now).elapsed() > SPIN {
                thread::yield_now();
            }
        }
        head.job.store(core::ptr::null_mut(), Ordering::Relaxed);
        if s.panicked.0.swap(false, Ordering::Relaxed) {
            drop(workers);
            panic!("edgemm: a worker thread panicked");
        }
    }

    /// Runs tasks of job `e` until none is left, as thread `me` of `lanes` lanes: its own
    /// lane from the front, then the others from their ends. Returns the tasks it ran.
    fn claim_all(s: &Shared, e: u64, me: usize, lanes: usize) -> usize {
        let home = me % lanes;
        let mut ran = 0;
        for l in 0..lanes {
            let own = l == 0;
            let lane = &s.lanes[(home + l) % lanes].0;
            loop {
                let st = lane.load(Ordering::Acquire);
                if epoch(st) != e || next(st) >= end(st) {
                    break;
                }
                let (claimed, task) = if own {
                    (st + (1 << FIELD), next(st))
                } else {
                    (st - 1, end(st) - 1)
                };
                if lane
                    .compare_exchange_weak(st, claimed, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                let job = s.head.0.job.load(Ordering::Acquire);
                // SAFETY: this thread holds the unfinished task `task` of job e, so the
                // caller of job e is still waiting and `job` (published before the epoch)
                // is alive.
                let f = unsafe { &*(*job).f };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(task)));
                if r.is_err() {
                    s.panicked.0.store(true, Ordering::Relaxed);
                }
                ran += 1;
            }
        }
        ran
    }

    fn worker(idx: usize, s: &'static Shared, mut seen: u64, sleeping: &AtomicBool) {
        let head = &s.head.0;
        loop {
            // Wait for a new job: spin a while, then park.
            let start = Instant::now();
            let mut polls = 0u32;
            let e = loop {
                let e = head.epoch.load(Ordering::Acquire);
                if e != seen {
                    break e;
                }
                polls += 1;
                if polls % 64 == 0 && start.elapsed() > SPIN {
                    sleeping.store(true, Ordering::SeqCst);
                    if head.epoch.load(Ordering::SeqCst) == seen {
                        thread::park();
                    }
                    sleeping.store(false, Ordering::SeqCst);
                    polls = 0;
                    continue;
                }
            };
            seen = e;
            let threads = head.threads.load(Ordering::Relaxed);
            if idx < threads {
                // Counted once per job (the caller polls this line).
                let ran = claim_all(s, e, idx, threads.min(LANES));
                if ran > 0 {
                    s.done.0.fetch_add(ran, Ordering::Release);
                }
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

    /// More threads than lanes share them (and a thread count over the tasks takes one
    /// task each): every task still runs once.
    #[test]
    fn threads_past_the_lanes_run_every_task_once() {
        use core::sync::atomic::{AtomicUsize, Ordering};
        for (count, threads) in [(100, 70), (5, 70), (131, 3)] {
            let hits: std::vec::Vec<AtomicUsize> =
                (0..count).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..20 {
                run(count, threads, &|t| {
                    hits[t].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 20),
                "{count} {threads}"
            );
        }
    }

    /// A task that panics, on whichever thread, makes the call panic once every task is
    /// done, and the pool runs the next call normally.
    #[test]
    fn a_panicking_task_panics_the_call_and_the_pool_recovers() {
        use core::sync::atomic::{AtomicUsize, Ordering};
        for bad in [0, 7] {
            let ran = AtomicUsize::new(0);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run(8, 2, &|t| {
                    ran.fetch_add(1, Ordering::Relaxed);
                    assert!(t != bad, "task {t} fails");
                });
            }));
            assert!(r.is_err(), "task {bad}");
            assert_eq!(ran.load(Ordering::Relaxed), 8);
            let n = AtomicUsize::new(0);
            run(8, 2, &|_| {
                n.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(n.load(Ordering::Relaxed), 8);
        }
    }

    /// What one dispatch costs: `run` of 2 and 8 tasks of a fixed busy loop on one and two
    /// threads, back to back, in ns per call, and the share of tasks the worker ran
    /// (printed, not asserted: timing is the benchmark's business). Two threads' overhead is
    /// their time minus half of one thread's.
    /// `cargo test --release --lib dispatch_cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn dispatch_cost() {
        use core::sync::atomic::{AtomicUsize, Ordering};
        let caller = std::thread::current().id();
        let helped = AtomicUsize::new(0);
        for spin in [0usize, 1000] {
            for &(tasks, threads) in &[(2, 1), (2, 2), (8, 1), (8, 2)] {
                let calls = 100_000;
                helped.store(0, Ordering::Relaxed);
                let t0 = std::time::Instant::now();
                for _ in 0..calls {
                    run(tasks, threads, &|_| {
                        for i in 0..spin {
                            core::hint::black_box(i);
                        }
                        if std::thread::current().id() != caller {
                            helped.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
                let ns = t0.elapsed().as_nanos() as f64 / calls as f64;
                let share = helped.load(Ordering::Relaxed) as f64 / (calls * tasks) as f64;
                std::println!(
                    "dispatch: {tasks} tasks of {spin} iterations on {threads} threads: \
                     {ns:.0} ns/call, {:.0}% of tasks on workers",
                    share * 100.0
                );
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
