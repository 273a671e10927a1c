//! Keyword spotting on the (emulated) Cortex-M4F, end to end: the committed test WAVs of
//! `tests/kws/` in flash → `edgemm::audio`'s streaming frontend (i16 samples, f32 on the FPU)
//! → features quantized straight into the model's int8 input in the arena → the keyword
//! model → the keyword, printed over semihosting. Built and run by scripts/kws-cortex-m4.sh,
//! which converts `tests/kws/kws_int8.tflite` with `edgemm convert --target cortex-m4 --rust`
//! (build.rs includes the Rust source it wrote, `EDGEMM_FW_MODEL_RS`, as for bench_model.rs)
//! and compares every line with the host's (`examples/kws.rs --raw`).
//!
//! Per clip it prints `file=<name> keyword=<label> score=<s> output=<hex of the int8
//! scores> features=<hash of the MFCCs' bits>`, and marks two instruction-count regions
//! (`bench_begin`/`bench_end`): the frontend (one second of samples → 49 frames of MFCCs →
//! int8 input), then the network. At the end: `ram frontend_bytes=<N> arena_bytes=<N>
//! stack_bytes=<N>`. edgemm is built without `alloc`; no heap is used.
#![no_std]
#![no_main]

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
use cortex_m_semihosting::hprintln;
use edgemm::audio::{Frontend, Wav, HOP, NUM_MFCCS, SAMPLE_RATE};
use edgemm::nn::{Model, Session};
use model::{ARENA_SIZE, BLOB, OPERATORS};

/// A WAV file in flash, 4-byte aligned: its samples (from byte 44) are read in place.
#[repr(C, align(4))]
struct Aligned<T: ?Sized>(T);

macro_rules! clip {
    ($name:literal) => {{
        static BYTES: &Aligned<[u8]> =
            &Aligned(*include_bytes!(concat!("../../../tests/kws/", $name)));
        ($name, &BYTES.0)
    }};
}

/// The clips (16 kHz mono 16-bit, one second each), in flash.
static CLIPS: [(&str, &[u8]); 7] = [
    clip!("yes.wav"),
    clip!("no.wav"),
    clip!("left.wav"),
    clip!("stop.wav"),
    clip!("go.wav"),
    clip!("silence.wav"),
    clip!("unknown.wav"),
];

/// The model's classes, in its output order.
const LABELS: [&str; 12] = [
    "silence", "unknown", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
];


#[repr(C, align(16))]
struct Arena(UnsafeCell<[u8; ARENA_SIZE]>);

// SAFETY: one core; `main` borrows it once.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_SIZE]));


fn fail(what: &str, e: impl core::fmt::Display) -> ! {
    hprintln!("FAILED: {}: {}", what, e);
    support::exit(false)
}

/// TFLite's input quantization as the host's `Runner::set_input_f32` does it:
/// `round_half_away(v / scale) + zero_point`, saturated to i8.
fn quantize(v: f32, scale: f32, zero_point: i32) -> i8 {
    let x = (v / scale).clamp(-1024.0, 1024.0);
    // Exact: |x| ≤ 1024, so x − trunc(x) is computed without rounding.
    let t = x as i32;
    let frac = x - t as f32;
    let r = if frac >= 0.5 {
        t + 1
    } else if frac <= -0.5 {
        t - 1
    } else {
        t
    };
    (r + zero_point).clamp(-128, 127) as i8
}

/// One second of the clip (zero-padded) through the frontend into the int8 input; returns
/// the FNV-1a hash of the MFCCs' bits (examples/kws.rs `feature_hash`), which the host
/// compares with its own.
fn features(bytes: &[u8], input: &mut [u8], (scale, zp): (f32, i32)) -> u32 {
    let mut hash = 0x811c_9dc5u32;
    let wav = Wav::parse(bytes).unwrap_or_else(|e| fail("wav", e));
    let pcm = wav.pcm16_mono_16k().unwrap_or_else(|e| fail("wav", e));
    let mut frontend = Frontend::<i16>::new();
    let mut copy = [0i16; HOP];
    let mut rows = input.chunks_exact_mut(NUM_MFCCS);
    // The samples where they are in flash, if aligned; the frontend reads whole hops there
    // (as it would a microphone's DMA buffer). Otherwise, and for a short clip's last hop,
    // the hop is copied out (and zero-padded).
    let samples = pcm.as_slice().unwrap_or(&[]);
    for h in 0..SAMPLE_RATE as usize / HOP {
        let hop: &[i16; HOP] = match samples.get(h * HOP..(h + 1) * HOP) {
            Some(s) => s.try_into().unwrap_or_else(|_| fail("hop", "not 320 samples")),
            None => {
                let n = pcm.copy_from(h * HOP, &mut copy);
                copy[n..].fill(0);
                &copy
            }
        };
        // The first hop completes no frame; each later one completes the next row.
        if let Some(frame) = frontend.push_hop(hop) {
            if let Some(row) = rows.next() {
                for (q, &v) in row.iter_mut().zip(&frame) {
                    *q = quantize(v, scale, zp) as u8;
                    hash = (hash ^ v.to_bits()).wrapping_mul(0x0100_0193);
                }
            }
        }
    }
    hash
}

#[entry]
fn main() -> ! {
    let model =
        Model::from_bytes_with::<OPERATORS>(&BLOB.0[..]).unwrap_or_else(|e| fail("load", e));
    if model.num_inputs() != 1 || model.num_outputs() != 1 {
        fail("model", "not a keyword model (one input, one output)");
    }
    let quant = |t: Option<usize>| {
        t.and_then(|t| model.tensor(t))
            .and_then(|t| t.quant)
            .unwrap_or_else(|| fail("model", "input and output must be int8"))
    };
    let (in_q, (out_scale, out_zp)) = (quant(model.input(0)), quant(model.output(0)));
    // SAFETY: the only borrow of the arena.
    let arena = unsafe { &mut *ARENA.0.get() };
    let mut s = Session::new(model, arena).unwrap_or_else(|e| fail("session", e));
    measure::paint_stack();
    for (name, bytes) in CLIPS {
        let input = s.input_mut(0).unwrap_or_else(|e| fail("input", e));
        if input.len() != 49 * NUM_MFCCS {
            fail("model", "the input is not 49 x 10");
        }
        measure::bench_begin();
        let hash = features(bytes, input, in_q);
        measure::bench_end();
        measure::bench_begin();
        let r = s.run_with::<OPERATORS>();
        measure::bench_end();
        r.unwrap_or_else(|e| fail("run", e));
        let out = s.output(0).unwrap_or_else(|e| fail("output", e));
        if out.len() != LABELS.len() {
            fail("model", "not 12 classes");
        }
        let mut best = 0;
        for (i, &q) in out.iter().enumerate() {
            if (q as i8) > (out[best] as i8) {
                best = i;
            }
        }
        let score = (out[best] as i8 as i32 - out_zp) as f32 * out_scale;
        let mut hex = [0u8; 24];
        for (k, &b) in out.iter().enumerate() {
            hex[2 * k] = b"0123456789abcdef"[(b >> 4) as usize];
            hex[2 * k + 1] = b"0123456789abcdef"[(b & 15) as usize];
        }
        hprintln!(
            "file={} keyword={} score={:.3} output={} features={:08x}",
            name,
            LABELS[best],
            score,
            core::str::from_utf8(&hex).unwrap_or(""),
            hash
        );
    }
    hprintln!(
        "ram frontend_bytes={} arena_bytes={} stack_bytes={}",
        core::mem::size_of::<Frontend<i16>>(),
        model.arena_size(),
        measure::stack_high_water()
    );
    hprintln!("kws done");
    support::exit(true)
}
