//! What every firmware binary here needs (include it with `#[path = "../support.rs"] mod
//! support;`): a heap (a bump allocator over a static arena), and panic and fault handlers
//! that report through semihosting and exit non-zero, so a crash can never pass for success.
//! Output goes through `cortex_m_semihosting::hprintln!`; [`exit`] ends the QEMU run with the
//! status as its exit code.
//!
//! A binary that measures instructions (scripts/bench-cortex-m4.sh, with
//! ../shared/tools/qemu-insncount) marks each region with two `#[no_mangle]
//! #[inline(never)]` empty functions, `bench_begin` and `bench_end`, called around it, and
//! builds with `--profile measure` (no debug assertions or overflow checks).
#![allow(dead_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicUsize, Ordering};
use cortex_m_rt::{exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};

/// Bytes of heap. RAM is 4 MiB (memory.x); the rest holds .data, .bss and the stack.
pub const HEAP_SIZE: usize = 3 << 20;

#[repr(C, align(8))]
struct Arena(UnsafeCell<MaybeUninit<[u8; HEAP_SIZE]>>);

// SAFETY: one core and no allocation from interrupt handlers: the allocator is the only user
// of the arena, and it hands out disjoint ranges of it.
unsafe impl Sync for Arena {}

/// Not zeroed at reset (cortex-m-rt's .uninit section): the allocator promises nothing about
/// the contents of fresh memory.
#[link_section = ".uninit.edgemm_heap"]
static ARENA: Arena = Arena(UnsafeCell::new(MaybeUninit::uninit()));

/// A bump allocator: allocation moves `top` up; freeing the most recent allocation moves it
/// back (and `realloc` of it grows in place), so stack-like use recycles memory; everything
/// else is reclaimed wholesale by [`heap_reset`] between test cases.
pub struct Bump {
    top: AtomicUsize,
    peak: AtomicUsize,
}

impl Bump {
    const fn new() -> Self {
        Bump {
            top: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    fn base() -> *mut u8 {
        ARENA.0.get() as *mut u8
    }

    fn set_top(&self, top: usize) {
        self.top.store(top, Ordering::Relaxed);
        if top > self.peak.load(Ordering::Relaxed) {
            self.peak.store(top, Ordering::Relaxed);
        }
    }
}

// SAFETY: `alloc` returns null or a range of `layout.size()` bytes at `layout.align()` inside
// the arena that no live allocation overlaps: ranges are handed out above `top`, which only
// moves down over memory that is no longer live (the top allocation being freed, or
// `heap_reset`, whose caller promises the same).
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = Self::base();
        let top = self.top.load(Ordering::Relaxed);
        let addr = base as usize + top;
        let start = (addr + layout.align() - 1) & !(layout.align() - 1);
        let off = start - base as usize;
        match off.checked_add(layout.size()) {
            Some(end) if end <= HEAP_SIZE => {
                self.set_top(end);
                base.wrapping_add(off)
            }
            _ => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let off = ptr as usize - Self::base() as usize;
        if off + layout.size() == self.top.load(Ordering::Relaxed) {
            self.top.store(off, Ordering::Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let off = ptr as usize - Self::base() as usize;
        if off + layout.size() == self.top.load(Ordering::Relaxed) && off + new_size <= HEAP_SIZE {
            // The top allocation: grow or shrink it where it is.
            self.set_top(off + new_size);
            return ptr;
        }
        // SAFETY: the GlobalAlloc contract, forwarded: a fresh block, the old contents copied
        // (the smaller of the two sizes), the old block freed.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = self.alloc(new_layout);
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[global_allocator]
static HEAP: Bump = Bump::new();

/// The current top of the heap, to [`heap_reset`] to later.
pub fn heap_mark() -> usize {
    HEAP.top.load(Ordering::Relaxed)
}

/// Frees everything allocated since `mark` was taken.
///
/// # Safety
/// No allocation made after `mark` was taken may still be live (used or dropped later).
pub unsafe fn heap_reset(mark: usize) {
    HEAP.top.store(mark, Ordering::Relaxed);
}

/// The most heap ever in use, in bytes.
pub fn heap_peak() -> usize {
    HEAP.peak.load(Ordering::Relaxed)
}

/// Ends the run: QEMU exits with status 0 when `ok`, 1 otherwise.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached without a semihosting host, which this firmware is never run without.
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("FAILED: panic: {}", info);
    exit(false)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!(
        "FAILED: HardFault at pc {:#010x} (lr {:#010x})",
        frame.pc(),
        frame.lr()
    );
    exit(false)
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    hprintln!("FAILED: unexpected exception or interrupt {}", irqn);
    exit(false)
}
