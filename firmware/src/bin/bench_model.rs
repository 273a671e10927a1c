//! One converted model on the (emulated) Cortex-M4, measured: scripts/bench-cortex-m4-model.sh
//! converts a model with `edgemm convert --target cortex-m4 --rust`, and build.rs includes the
//! Rust source it wrote (`EDGEMM_FW_MODEL_RS`): the blob embedded 16-byte aligned in flash,
//! the arena a `static` of the emitted `ARENA_SIZE`, and the operator set `OPERATORS` and
//! forms set `FORMS` passed to the runtime as constants, so the operators and operator forms
//! the model does not use are not linked.
//!
//! It reads the model's inputs through semihosting (`in<j>.bin` in QEMU's working
//! directory), paints the stack, runs one inference between `measure::bench_begin()` and
//! `measure::bench_end()` (the instruction counter's region), and prints `stack_bytes=<N>` (the
//! painted stack's high-water mark, main's own frame included), `weights_bytes=<N>` (the
//! blob's constant tensors), and each output as `output <j> <hex>` lines. When a file
//! `profile.flag` exists (the script's `--profile`), it runs a second inference with a region
//! per operator and prints `op <i> <code>` for each.
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
use cortex_m_semihosting::{hio, hprint, hprintln};
use edgemm::nn::{Model, Session};
use model::{ARENA_SIZE, BLOB, FORMS, OPERATORS};

/// The arena: a static of the size `edgemm convert` emitted, 16-byte aligned.
#[repr(C, align(16))]
struct Arena(UnsafeCell<[u8; ARENA_SIZE]>);

// SAFETY: one core; `main` borrows it once.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_SIZE]));

/// Writes `parts` and a newline to the host's stdout as bytes: formatting a `&str` with
/// `{}` would link core::fmt's padding code into the measured firmware (the empty firmware
/// formats integers only).
#[inline(never)]
fn say(parts: &[&[u8]]) {
    if let Ok(mut out) = hio::hstdout() {
        for p in parts {
            let _ = out.write_all(p);
        }
        let _ = out.write_all(b"\n");
    }
}

/// Reports a failure by stage only: formatting the error would link every error message and
/// its formatting code into the measured firmware (the host's `edgemm run` of the same model
/// names the error).
#[inline(never)]
fn fail(what: &str) -> ! {
    say(&[
        b"FAILED: ",
        what.as_bytes(),
        b" (run the model on the host for the error)",
    ]);
    support::exit(false)
}

fn read_inputs(s: &mut Session) {
    for i in 0..s.model().num_inputs() {
        let mut name = [0u8; 16];
        let path = fmt_path(&mut name, i);
        let dst = s.input_mut(i).unwrap_or_else(|_| fail("input"));
        let want = dst.len();
        match hostfile::read(path, dst) {
            Ok(n) if n == want => {}
            Ok(n) => {
                say(&[b"FAILED: ", path.as_bytes()]);
                hprintln!("{} bytes, the input takes {}", n, want);
                support::exit(false)
            }
            Err(_) => fail(path),
        }
    }
}

/// `in<i>.bin` in `buf`.
fn fmt_path(buf: &mut [u8; 16], i: usize) -> &str {
    let mut n = 0;
    for &b in b"in" {
        buf[n] = b;
        n += 1;
    }
    let mut digits = [0u8; 4];
    let (mut d, mut v) = (0, i);
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 || d == digits.len() {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        buf[n] = digits[d];
        n += 1;
    }
    for &b in b".bin" {
        buf[n] = b;
        n += 1;
    }
    // SAFETY: ASCII only (the bytes written above), so valid UTF-8 (without the check:
    // from_utf8 would be linked for this alone).
    unsafe { core::str::from_utf8_unchecked(&buf[..n]) }
}

fn print_hex(j: usize, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for chunk in bytes.chunks(64) {
        let mut line = [0u8; 128];
        for (k, &b) in chunk.iter().enumerate() {
            line[2 * k] = HEX[(b >> 4) as usize];
            line[2 * k + 1] = HEX[(b & 15) as usize];
        }
        hprint!("output {} ", j);
        say(&[&line[..2 * chunk.len()]]);
    }
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
    .unwrap_or_else(|_| fail("load"));
    // SAFETY: the only borrow of the arena.
    let arena = unsafe { &mut *ARENA.0.get() };
    let mut s = Session::new(model, arena).unwrap_or_else(|_| fail("session"));
    read_inputs(&mut s);
    measure::paint_stack();
    measure::bench_begin();
    let r = s.run_with_forms::<OPERATORS, FORMS>();
    measure::bench_end();
    r.unwrap_or_else(|_| fail("run"));
    hprintln!("stack_bytes={}", measure::stack_high_water());
    // The constant tensors' bytes (`constant` is empty for an arena tensor; it reads no
    // names, so their check is not linked for this alone).
    let weights: usize = (0..model.num_tensors())
        .map(|t| model.constant(t).len())
        .sum();
    hprintln!(
        "weights_bytes={} arena_bytes={} blob_bytes={}",
        weights,
        model.arena_size(),
        model.as_bytes().len()
    );
    for j in 0..model.num_outputs() {
        let out = s.output(j).unwrap_or_else(|_| fail("output"));
        print_hex(j, out);
    }
    let mut flag = [0u8; 4];
    if hostfile::read("profile.flag", &mut flag).is_ok() {
        // A second inference, one region per operator (inputs written again: the plan may
        // have reused their bytes).
        read_inputs(&mut s);
        s.run_each_with_forms::<OPERATORS, FORMS>(
            |_| measure::bench_begin(),
            |_| measure::bench_end(),
        )
        .unwrap_or_else(|_| fail("run"));
        // Operator codes, not names: naming them would link the name table (the script
        // names them from the host's `edgemm inspect`).
        for i in 0..model.num_ops() {
            if let Some(op) = model.op(i) {
                hprintln!("op {} {}", i, op.code());
            }
        }
    }
    hprintln!("bench done");
    support::exit(true)
}
