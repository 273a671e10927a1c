//! One converted model on the (emulated) Cortex-M4, measured: scripts/bench-cortex-m4-model.sh
//! converts a model with `edgemm convert --target cortex-m4 --rust`, and build.rs includes the
//! Rust source it wrote (`EDGEMM_FW_MODEL_RS`): the blob embedded 16-byte aligned in flash,
//! the arena a `static` of the emitted `ARENA_SIZE`, and the operator set `OPERATORS` and
//! forms set `FORMS` passed to the runtime as constants, so the operators and operator forms
//! the model does not use are not linked.
//!
//! It reads the model's inputs through semihosting (`in<j>.bin`, j as two hex digits, in
//! QEMU's working directory), paints the stack, runs one inference between `measure::bench_begin()` and
//! `measure::bench_end()` (the instruction counter's region), and prints `stack_bytes=<N>` (the
//! painted stack's high-water mark, main's own frame included) and each output as
//! `output <j> <hex>` lines (the script reads the blob's figures, weights and arena, from the
//! host's `edgemm inspect`). When a file `profile.flag` exists (the script's `--profile`), it
//! runs a second inference with a region per operator, in execution order.
//! edgemm is built without `alloc`. The model is loaded without the validator when
//! `edgemm convert` validated it for the target (`VALIDATED_CRC`: only its header and CRC
//! are checked here), unless the feature `device-validation` asks for the full validation
//! on the device (`--device-validation` of the script).
#![no_std]
#![no_main]

#[path = "../hostfile.rs"]
mod hostfile;
#[path = "../support.rs"]
mod support;

#[allow(dead_code)]
mod model {
    include!(concat!(env!("OUT_DIR"), "/bench_model.rs"));
}

#[path = "../measure.rs"]
mod measure;

use core::cell::UnsafeCell;
use cortex_m_rt::entry;
use core::fmt::Write;
use cortex_m_semihosting::hio;
use edgemm::nn::{Model, Session};
use model::{ARENA_SIZE, BLOB, FORMS, OPERATORS};

/// The arena: a static of the size `edgemm convert` emitted, 16-byte aligned.
#[repr(C, align(16))]
struct Arena(UnsafeCell<[u8; ARENA_SIZE]>);

// SAFETY: one core; `main` borrows it once.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_SIZE]));

/// Writes `bytes` to the host's stdout. Lines are written piece by piece with this and
/// [`put_num`], each one call: `hprintln!` would inline a copy of its semihosting setup at
/// each call site, and formatting a `&str` with `{}` would link core::fmt's padding code.
#[inline(never)]
fn put(bytes: &[u8]) {
    if let Ok(mut out) = hio::hstdout() {
        let _ = out.write_all(bytes);
    }
}

/// Writes `n` in decimal to the host's stdout, with the `usize` formatting the empty firmware
/// links too.
#[inline(never)]
fn put_num(n: usize) {
    if let Ok(mut out) = hio::hstdout() {
        let _ = write!(out, "{}", n);
    }
}

/// Reports a failure by stage only: formatting the error would link every error message and
/// its formatting code into the measured firmware (the host's `edgemm run` of the same model
/// names the error).
#[inline(never)]
fn fail(what: &[u8]) -> ! {
    put(b"FAILED: ");
    put(what);
    put(b" (run the model on the host for the error)\n");
    support::exit(false)
}

/// [`hostfile::read`], one copy for both of its callers.
#[inline(never)]
fn read(path: &str, dst: &mut [u8]) -> Result<usize, hostfile::FileError> {
    hostfile::read(path, dst)
}

fn read_inputs(s: &mut Session) {
    for i in 0..s.model().num_inputs() {
        let mut name = [0u8; 8];
        let path = in_path(&mut name, i);
        let dst = s.input_mut(i).unwrap_or_else(|_| fail(b"input"));
        let want = dst.len();
        match read(path, dst) {
            Ok(n) if n == want => {}
            Ok(n) => {
                put(b"FAILED: ");
                put(path.as_bytes());
                put(b": ");
                put_num(n);
                put(b" bytes, the input takes ");
                put_num(want);
                put(b"\n");
                support::exit(false)
            }
            Err(_) => fail(path.as_bytes()),
        }
    }
}

/// `in<i>.bin` in `buf`, i as two hex digits (the script's names; no decimal digit loop).
fn in_path(buf: &mut [u8; 8], i: usize) -> &str {
    if i > 0xff {
        fail(b"more than 256 inputs");
    }
    let [h, l] = hex(i as u8);
    *buf = [b'i', b'n', h, l, b'.', b'b', b'i', b'n'];
    // SAFETY: ASCII only (the bytes written above), so valid UTF-8 (without the check:
    // from_utf8 would be linked for this alone).
    unsafe { core::str::from_utf8_unchecked(buf) }
}

fn print_hex(j: usize, bytes: &[u8]) {
    for chunk in bytes.chunks(64) {
        let mut line = [0u8; 129];
        for (k, &b) in chunk.iter().enumerate() {
            [line[2 * k], line[2 * k + 1]] = hex(b);
        }
        line[2 * chunk.len()] = b'\n';
        put(b"output ");
        put_num(j);
        put(b" ");
        put(&line[..2 * chunk.len() + 1]);
    }
}

/// The two hex digits of `b`. Out of line: LLVM unrolls no loop that calls, so the loop
/// above stays one copy (code size).
#[inline(never)]
fn hex(b: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    [HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]
}

/// One inference; with `each`, one measured region per operator (one instance of the
/// session's run loop serves both runs: the profile's is the harness's, not the runtime's).
#[inline(never)]
fn run(s: &mut Session, each: bool) {
    s.run_each_with_forms::<OPERATORS, FORMS>(
        |_| {
            if each {
                measure::bench_begin()
            }
        },
        |_| {
            if each {
                measure::bench_end()
            }
        },
    )
    .unwrap_or_else(|_| fail(b"run"));
}

#[entry]
fn main() -> ! {
    let model = match model::VALIDATED_CRC {
        Some(crc) if !cfg!(feature = "device-validation") => {
            // SAFETY: `edgemm convert` emitted `crc` only for a blob that
            // `Model::validate_for_target` accepted for this target, in the source that
            // holds the same blob's OPERATORS and FORMS; bytes of another CRC are refused.
            unsafe { Model::from_validated_bytes(&BLOB.0[..], crc) }
        }
        _ => Model::from_bytes_with_forms::<OPERATORS, FORMS>(&BLOB.0[..]),
    }
    .unwrap_or_else(|_| fail(b"load"));
    // SAFETY: the only borrow of the arena.
    let arena = unsafe { &mut *ARENA.0.get() };
    let mut s = Session::new(model, arena).unwrap_or_else(|_| fail(b"session"));
    read_inputs(&mut s);
    measure::paint_stack();
    measure::bench_begin();
    run(&mut s, false);
    measure::bench_end();
    put(b"stack_bytes=");
    put_num(measure::stack_high_water());
    put(b"\n");
    for j in 0..model.num_outputs() {
        let out = s.output(j).unwrap_or_else(|_| fail(b"output"));
        print_hex(j, out);
    }
    let mut flag = [0u8; 4];
    if read("profile.flag", &mut flag).is_ok() {
        // A second inference, one region per operator (inputs written again: the plan may
        // have reused their bytes).
        read_inputs(&mut s);
        run(&mut s, true);
    }
    put(b"bench done\n");
    support::exit(true)
}
