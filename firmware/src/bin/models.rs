//! The model battery on the (emulated) Cortex-M4: every blob of a list runs in one static
//! arena and its outputs are compared byte for byte with the expected ones (TFLite's
//! reference kernels). One firmware serves every fixture: the blobs, their inputs and the
//! expected outputs are read from the host through semihosting (scripts/cross/cortex-m4.sh
//! converts the int8 fixtures of tests/models/ with `edgemm convert --target cortex-m4` and
//! writes the list; build.rs sizes the buffers from it).
//!
//! edgemm is built without `alloc`: the runtime validates each blob in place
//! (`Model::from_bytes`, which refuses a blob packed for another target), runs it in the
//! arena (`Session`), and nothing is allocated. Prints one line per model and a summary
//! line; exits non-zero when any model fails (an error, a mismatch; a fault or panic ends
//! the run at once).
#![no_std]
#![no_main]

#[path = "../hostfile.rs"]
mod hostfile;
#[path = "../support.rs"]
mod support;

mod config {
    include!(concat!(env!("OUT_DIR"), "/models_config.rs"));
}

use config::{ARENA_SIZE, BLOB_CAP, LIST_CAP, MODELS_LIST, OUTPUT_CAP};
use core::cell::UnsafeCell;
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use edgemm::nn::{Model, Session};

/// A 16-byte aligned static buffer (blobs and arenas must start 16-byte aligned).
#[repr(C, align(16))]
struct Buf<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: one core, no interrupts use them; `main` takes each once (see `take`).
unsafe impl<const N: usize> Sync for Buf<N> {}

impl<const N: usize> Buf<N> {
    const fn new() -> Self {
        Buf(UnsafeCell::new([0; N]))
    }

    /// # Safety
    /// Called once per buffer (the only reference to it).
    #[allow(clippy::mut_from_ref)]
    unsafe fn take(&self) -> &mut [u8; N] {
        // SAFETY: the caller's promise.
        unsafe { &mut *self.0.get() }
    }
}

/// The arena: as large as the largest arena of the listed blobs.
static ARENA: Buf<ARENA_SIZE> = Buf::new();
static BLOB: Buf<BLOB_CAP> = Buf::new();
static EXPECTED: Buf<OUTPUT_CAP> = Buf::new();
/// The list file.
static LIST: Buf<LIST_CAP> = Buf::new();

/// Why a model failed.
enum Failure {
    File(&'static str, hostfile::FileError),
    Edgemm(&'static str, edgemm::Error),
    List,
    NotRefused,
    ArenaTooSmall(usize),
    Mismatch {
        output: usize,
        at: usize,
        got: i8,
        want: i8,
        differ: usize,
    },
    InputLength(usize, usize, usize),
    OutputLength(usize, usize, usize),
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Failure::File(what, e) => write!(f, "{what}: {e}"),
            Failure::Edgemm(what, e) => write!(f, "{what}: {e}"),
            Failure::List => f.write_str("malformed line in the model list"),
            Failure::NotRefused => f.write_str("a blob packed for another target loaded"),
            Failure::ArenaTooSmall(n) => {
                write!(
                    f,
                    "needs an arena of {n} bytes, the firmware has {ARENA_SIZE}"
                )
            }
            Failure::Mismatch {
                output,
                at,
                got,
                want,
                differ,
            } => write!(
                f,
                "output {output}: {differ} bytes differ; first at {at}: {got} vs reference {want}"
            ),
            Failure::InputLength(i, got, want) => {
                write!(
                    f,
                    "input {i}: the file has {got} bytes, the model takes {want}"
                )
            }
            Failure::OutputLength(j, got, want) => {
                write!(f, "output {j}: {got} bytes, the expected file has {want}")
            }
        }
    }
}

/// Runs the model of one list line: `<name> <blob> <n_in> <input>... <n_out> <output>...`,
/// or `<name> <blob> refused` for a blob that must be refused (packed for another target).
fn run_line<'w>(
    words: &mut impl Iterator<Item = &'w str>,
    blob: &mut [u8],
    arena: &mut [u8],
    expected: &mut [u8],
) -> Result<(usize, usize), Failure> {
    let mut next = || words.next().ok_or(Failure::List);
    let path = next()?;
    let len = hostfile::read(path, blob).map_err(|e| Failure::File("blob", e))?;
    let n_in = next()?;
    if n_in == "refused" {
        // Packed for another target: loading must fail, naming it and this build's target.
        return match Model::from_bytes(&blob[..len]) {
            Err(e @ edgemm::Error::TargetMismatch { this_build, .. })
                if this_build == "cortex-m4-dsp" =>
            {
                hprintln!("       refused as it should be: {}", e);
                Ok((len, 0))
            }
            Err(e) => Err(Failure::Edgemm("expected a target mismatch, got", e)),
            Ok(_) => Err(Failure::NotRefused),
        };
    }
    let model = Model::from_bytes(&blob[..len]).map_err(|e| Failure::Edgemm("load", e))?;
    if model.arena_size() > arena.len() {
        return Err(Failure::ArenaTooSmall(model.arena_size()));
    }
    let mut s = Session::new(model, arena).map_err(|e| Failure::Edgemm("session", e))?;
    let n_in: usize = n_in.parse().map_err(|_| Failure::List)?;
    for i in 0..n_in {
        let dst = s.input_mut(i).map_err(|e| Failure::Edgemm("input", e))?;
        let want = dst.len();
        let got = hostfile::read(next()?, dst).map_err(|e| Failure::File("input", e))?;
        if got != want {
            return Err(Failure::InputLength(i, got, want));
        }
    }
    s.run().map_err(|e| Failure::Edgemm("run", e))?;
    let n_out: usize = next()?.parse().map_err(|_| Failure::List)?;
    for j in 0..n_out {
        let want_len =
            hostfile::read(next()?, expected).map_err(|e| Failure::File("expected output", e))?;
        let got = s.output(j).map_err(|e| Failure::Edgemm("output", e))?;
        let want = &expected[..want_len];
        if got.len() != want.len() {
            return Err(Failure::OutputLength(j, got.len(), want.len()));
        }
        if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
            return Err(Failure::Mismatch {
                output: j,
                at,
                got: got[at] as i8,
                want: want[at] as i8,
                differ: got.iter().zip(want).filter(|(a, b)| a != b).count(),
            });
        }
    }
    Ok((len, model.arena_size()))
}

#[entry]
fn main() -> ! {
    // SAFETY: each buffer is taken once, here.
    let (arena, blob, expected, list) =
        unsafe { (ARENA.take(), BLOB.take(), EXPECTED.take(), LIST.take()) };
    if MODELS_LIST.is_empty() {
        hprintln!("FAILED: no model list (build with EDGEMM_FW_MODELS_LIST set)");
        support::exit(false);
    }
    let len = match hostfile::read(MODELS_LIST, list) {
        Ok(n) => n,
        Err(e) => {
            hprintln!("FAILED: {}: {}", MODELS_LIST, e);
            support::exit(false)
        }
    };
    let Ok(text) = core::str::from_utf8(&list[..len]) else {
        hprintln!("FAILED: {} is not UTF-8", MODELS_LIST);
        support::exit(false)
    };
    hprintln!(
        "model battery: arena {} bytes (the largest listed), blobs up to {} bytes",
        ARENA_SIZE,
        BLOB_CAP
    );
    let (mut passed, mut failed) = (0usize, 0usize);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or("?");
        match run_line(&mut words, blob, arena, expected) {
            Ok((blob_len, arena_len)) => {
                passed += 1;
                hprintln!(
                    "ok     {} (blob {} bytes, arena {})",
                    name,
                    blob_len,
                    arena_len
                );
            }
            Err(e) => {
                failed += 1;
                hprintln!("FAILED {}: {}", name, e);
            }
        }
    }
    hprintln!(
        "model battery: {} models passed, {} failed (edgemm without alloc, arena {} bytes)",
        passed,
        failed,
        ARENA_SIZE
    );
    support::exit(failed == 0 && passed > 0)
}
