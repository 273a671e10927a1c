//! Puts memory.x where cortex-m-rt's link.x finds it, and writes the sizes and paths the
//! model firmwares are built with into `$OUT_DIR`:
//! - `models_config.rs` (src/bin/models.rs): from the list named by `EDGEMM_FW_MODELS_LIST`
//!   (scripts/cross/cortex-m4.sh writes it), the list's path, the largest arena of the listed
//!   blobs (`ARENA_SIZE`), the largest blob (`BLOB_CAP`), expected output (`OUTPUT_CAP`)
//!   and the list's length (`LIST_CAP`);
//! - `bench_model.rs` (src/bin/bench_model.rs): `include!` of the Rust source `edgemm convert
//!   --rust` wrote, named by `EDGEMM_FW_MODEL_RS` (scripts/bench-cortex-m4-model.sh).
//!
//! Without those variables both are placeholders (the binaries build, and say at run time
//! that they have nothing to run).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo::rustc-link-search={}", out.display());
    println!("cargo::rerun-if-changed=memory.x");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=EDGEMM_FW_MODELS_LIST");
    println!("cargo::rerun-if-env-changed=EDGEMM_FW_MODEL_RS");
    fs::write(out.join("models_config.rs"), models_config()).unwrap();
    fs::write(out.join("bench_model.rs"), bench_model()).unwrap();
}

/// The list's lines are `<name> <blob> <n_in> <input>... <n_out> <expected output>...`
/// (absolute paths), or `<name> <blob> refused`; the arena size is the blob header's u32 at
/// byte 16.
fn models_config() -> String {
    let (mut arena, mut blob_cap, mut out_cap, mut list_cap) = (16usize, 64usize, 16usize, 16);
    let list = env::var("EDGEMM_FW_MODELS_LIST").unwrap_or_default();
    if !list.is_empty() {
        println!("cargo::rerun-if-changed={list}");
        let text = fs::read_to_string(&list).unwrap_or_else(|e| panic!("{list}: {e}"));
        list_cap = text.len();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let w: Vec<&str> = line.split_whitespace().collect();
            let blob = fs::read(w[1]).unwrap_or_else(|e| panic!("{}: {e}", w[1]));
            println!("cargo::rerun-if-changed={}", w[1]);
            blob_cap = blob_cap.max(blob.len());
            if w[2] == "refused" {
                continue;
            }
            let header = u32::from_le_bytes(blob[16..20].try_into().unwrap()) as usize;
            arena = arena.max(header);
            let n_in: usize = w[2].parse().unwrap();
            let n_out: usize = w[3 + n_in].parse().unwrap();
            for p in &w[4 + n_in..4 + n_in + n_out] {
                let len = fs::metadata(p).unwrap_or_else(|e| panic!("{p}: {e}")).len();
                out_cap = out_cap.max(len as usize);
            }
        }
    }
    format!(
        "/// The list of models to run (see build.rs).\n\
         pub const MODELS_LIST: &str = {list:?};\n\
         /// The largest arena of the listed blobs.\n\
         pub const ARENA_SIZE: usize = {arena};\n\
         /// The largest listed blob.\n\
         pub const BLOB_CAP: usize = {blob_cap};\n\
         /// The largest expected output file.\n\
         pub const OUTPUT_CAP: usize = {out_cap};\n\
         /// Bytes of the list file.\n\
         pub const LIST_CAP: usize = {list_cap};\n"
    )
}

fn bench_model() -> String {
    match env::var("EDGEMM_FW_MODEL_RS") {
        Ok(rs) if !rs.is_empty() => {
            println!("cargo::rerun-if-changed={rs}");
            // The blob it embeds (its name is in the source, next to it) changes with it.
            format!("include!({rs:?});\n")
        }
        _ => "/// No model configured (EDGEMM_FW_MODEL_RS unset).\n\
              pub const ARENA_SIZE: usize = 16;\n\
              pub const BLOB_SIZE: usize = 0;\n\
              pub const PACKING: &str = \"none\";\n\
              pub const MACS: u64 = 0;\n\
              pub const INPUT_BYTES: &[usize] = &[];\n\
              pub const OUTPUT_BYTES: &[usize] = &[];\n\
              pub const OPERATORS: u128 = 0;\n\
              pub const F32: bool = false;\n\
              pub const FORMS: u32 = 0;\n\
              #[repr(C, align(16))]\n\
              pub struct Align16<T: ?Sized>(pub T);\n\
              pub static BLOB: &Align16<[u8; 0]> = &Align16([]);\n\
              pub const VALIDATED_CRC: Option<u32> = None;\n"
            .to_string(),
    }
}
