//! Assembles the hand-written micro-kernels in `asm/<arch>/*.S` for the target, when the
//! target is one the assembly is written for (ELF, System V / AAPCS calling conventions).
//! Sets `cfg(edgemm_asm)` when it did, so the kernel table lists those kernels.
//!
//! Every symbol carries the crate version (`edgemm_0_1_0_<kernel>`), so two versions of the
//! crate can link into one binary.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(edgemm_asm)");
    println!("cargo::rustc-check-cfg=cfg(edgemm_avx512_intrinsics)");
    // AVX-512 intrinsics and `target_feature(enable = "avx512f")` are stable from Rust 1.89;
    // older compilers (rust-version is 1.85) build without the AVX-512 Rust code paths.
    if rustc_minor().is_some_and(|m| m >= 89) {
        println!("cargo::rustc-cfg=edgemm_avx512_intrinsics");
    }
    println!("cargo::rerun-if-changed=asm");
    println!("cargo::rerun-if-env-changed=EDGEMM_NO_ASM");

    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let features = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let has = |f: &str| features.split(',').any(|x| x == f);
    let elf = matches!(
        os.as_str(),
        "linux" | "android" | "freebsd" | "netbsd" | "openbsd" | "dragonfly" | "none"
    );

    // Which directory of assembly serves this target, if any.
    let dir = match arch.as_str() {
        "x86_64" if elf && os != "none" => Some("x86_64"),
        "aarch64" if elf && os != "none" => Some("aarch64"),
        // Cortex-M4/M7 class: Thumb-2 with the DSP extension.
        "arm" if has("dsp") && has("thumb2") => Some("thumbv7em"),
        _ => None,
    };
    let Some(dir) = dir else { return };
    if env::var_os("EDGEMM_NO_ASM").is_some() {
        return;
    }
    let path = Path::new("asm").join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&path)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "S"))
                .collect()
        })
        .unwrap_or_default();
    if files.is_empty() {
        return;
    }
    files.sort();
    let prefix = format!(
        "edgemm_{}_{}_{}_",
        env::var("CARGO_PKG_VERSION_MAJOR").unwrap(),
        env::var("CARGO_PKG_VERSION_MINOR").unwrap(),
        env::var("CARGO_PKG_VERSION_PATCH").unwrap()
    );
    let mut build = cc::Build::new();
    build
        .files(&files)
        .include("asm")
        .define("EDGEMM_PREFIX", prefix.as_str())
        .warnings(true);
    if dir == "thumbv7em" {
        build.flag("-mcpu=cortex-m4").flag("-mthumb");
    }
    build.compile("edgemm_kernels");
    println!("cargo::rustc-cfg=edgemm_asm");
}

/// The minor version of the compiler building the crate (`rustc 1.89.0 ...` gives 89).
fn rustc_minor() -> Option<u32> {
    let rustc = env::var_os("RUSTC")?;
    let out = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    if parts.next()? != "1" {
        return None;
    }
    parts.next()?.parse().ok()
}
