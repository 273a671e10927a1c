//! Model::from_bytes on arbitrary bytes, and a session over every blob it accepts: loading
//! and running must come back as Ok or Err (never a panic, an out-of-bounds access or UB).
//! Model::for_inspection too (what `edgemm inspect` reads): every accessor over what it
//! accepts; and Model::validate_for_target, the build-time check of a Cortex-M4 blob.
//!
//! Almost every random input fails the magic, version, length or CRC check; the fuzzer also
//! tries each input with those four header fields made right (magic, version 1, length =
//! input length, CRC of bytes 16..), so mutations reach the structural checks and the
//! operators. Seed it with blobs written by `edgemm convert` from `tests/models/*.tflite`:
//!
//! ```text
//! mkdir -p corpus/blob && for f in ../tests/models/{fc_,reshape,squeeze}*.tflite; do
//!     edgemm convert $f -o corpus/blob/$(basename $f .tflite).egm; done
//! cargo +nightly fuzz run blob corpus/blob -- -max_len=8192
//! ```
#![no_main]

use edgemm::nn::blob::{crc32, VERSION};
use edgemm::nn::{Model, Session};
use libfuzzer_sys::fuzz_target;

/// A model's arena above this is not run (a damaged header can ask for 4 GiB).
const MAX_ARENA: usize = 16 << 20;

/// `bytes` copied to a 16-byte aligned buffer.
fn aligned(bytes: &[u8]) -> Vec<u128> {
    let mut words = vec![0u128; bytes.len().div_ceil(16)];
    for (w, c) in words.iter_mut().zip(bytes.chunks(16)) {
        let mut b = [0u8; 16];
        b[..c.len()].copy_from_slice(c);
        *w = u128::from_ne_bytes(b);
    }
    words
}

fn as_bytes(words: &[u128], len: usize) -> &[u8] {
    // SAFETY: a u128 buffer viewed as its bytes (u8 has no alignment or validity needs);
    // `len` is at most its byte length.
    unsafe { core::slice::from_raw_parts(words.as_ptr() as *const u8, len) }
}

fn as_bytes_mut(words: &mut [u128]) -> &mut [u8] {
    // SAFETY: as in `as_bytes`, borrowed mutably.
    unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, words.len() * 16) }
}

fn load_and_run(bytes: &[u8]) {
    let words = aligned(bytes);
    let Ok(model) = Model::from_bytes(as_bytes(&words, bytes.len())) else {
        return;
    };
    if model.arena_size() > MAX_ARENA {
        return;
    }
    let mut arena = vec![0u128; model.arena_size().div_ceil(16)];
    let Ok(mut s) = Session::new(model, as_bytes_mut(&mut arena)) else {
        return;
    };
    for i in 0..model.num_inputs() {
        if let Ok(x) = s.input_mut(i) {
            x.fill(0);
        }
    }
    let _ = s.run();
    for j in 0..model.num_outputs() {
        let _ = s.output(j);
    }
}

/// Reads what `edgemm inspect` prints from a blob accepted for inspection only.
fn inspect(bytes: &[u8]) {
    let words = aligned(bytes);
    let Ok(model) = Model::for_inspection(as_bytes(&words, bytes.len())) else {
        return;
    };
    let _ = (model.packing(), model.arena_size(), model.baseline_arena_size());
    for t in 0..model.num_tensors() {
        let _ = model.tensor(t).map(|t| (t.shape(), t.name));
    }
    for i in 0..model.num_ops() {
        if let Some(op) = model.op(i) {
            let _ = (op.name(), op.macs());
            for k in 0..op.num_inputs() + op.num_outputs() {
                let _ = (op.input(k), op.output(k));
            }
        }
    }
    assert!(model.runnable().is_err());
}

/// The build-time check a firmware's blob gets (`edgemm convert --rust`), for a target this
/// host does not run: never a panic, and what it accepts is a blob `for_inspection` reads.
fn validate_for_m4(bytes: &[u8]) {
    let words = aligned(bytes);
    let bytes = as_bytes(&words, bytes.len());
    if Model::validate_for_target(bytes, "cortex-m4-dsp").is_ok() {
        assert!(Model::for_inspection(bytes).is_ok());
    }
}

fn load_and_inspect(bytes: &[u8]) {
    load_and_run(bytes);
    inspect(bytes);
    validate_for_m4(bytes);
}

fuzz_target!(|data: &[u8]| {
    load_and_inspect(data);
    if data.len() >= 64 {
        let mut b = data.to_vec();
        b[..4].copy_from_slice(b"EGMB");
        b[4..8].copy_from_slice(&VERSION.to_le_bytes());
        let len = b.len() as u32;
        b[8..12].copy_from_slice(&len.to_le_bytes());
        let crc = crc32(&b[16..]);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        load_and_inspect(&b);
    }
});
