//! What a firmware binary that measures needs (include it with `#[path = "../measure.rs"] mod
//! measure;`): the region marks `bench_begin`/`bench_end` whose addresses the instruction
//! counter (../shared/tools/qemu-insncount) takes, and the painted stack whose high-water mark
//! the bench scripts report.

/// Start of a measured region (the plugin's `begin=` address).
#[no_mangle]
#[inline(never)]
pub extern "C" fn bench_begin() {
    // SAFETY: a volatile write to a static only these two functions use.
    unsafe { core::ptr::write_volatile(core::ptr::addr_of_mut!(MARK), 1) };
}

/// End of a measured region (the plugin's `end=` address).
#[no_mangle]
#[inline(never)]
pub extern "C" fn bench_end() {
    // SAFETY: as in bench_begin.
    unsafe { core::ptr::write_volatile(core::ptr::addr_of_mut!(MARK), 2) };
}

static mut MARK: u32 = 0;

const PAINT: u32 = 0x5AA5_C33C;

extern "C" {
    /// Bottom of the stack region (cortex-m-rt: the end of .bss and .uninit).
    static _stack_end: u32;
    /// Top of the stack (cortex-m-rt).
    static _stack_start: u32;
}

/// Paints the free stack below the current frame (less a margin for this function's own).
#[inline(never)]
pub fn paint_stack() {
    let sp: usize;
    // SAFETY: reads the stack pointer.
    unsafe { core::arch::asm!("mov {}, sp", out(reg) sp) };
    let mut p = core::ptr::addr_of!(_stack_end) as usize;
    while p + 256 < sp {
        paint(p);
        p += 4;
    }
}

/// Paints the stack word at `p`. Out of line, as [`painted`]: the loop above stays one copy.
#[inline(never)]
fn paint(p: usize) {
    // SAFETY: `p` lies between the end of the statics and the live stack less 256 bytes
    // (`paint_stack`'s bounds; this function's frame is within that margin): memory nothing
    // uses now.
    unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
}

/// Bytes of stack ever used: from the top down to the lowest word no longer painted.
pub fn stack_high_water() -> usize {
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut p = core::ptr::addr_of!(_stack_end) as usize;
    while p < top && painted(p) {
        p += 4;
    }
    top - p
}

/// Whether the stack word at `p` still holds the paint. Out of line: LLVM unrolls no loop
/// that calls, so the scan above stays one copy (code size; it runs outside the regions).
#[inline(never)]
fn painted(p: usize) -> bool {
    // SAFETY: `p` is a word of the stack region (`stack_high_water`'s bounds).
    unsafe { core::ptr::read_volatile(p as *const u32) == PAINT }
}
