//! Assembles the hand-written micro-kernels in `asm/<arch>/*.S` for the target, when the
//! target is one the assembly is written for (ELF, System V / AAPCS calling conventions).
//! Sets `cfg(edgemm_asm)` when it did, so the kernel table lists those kernels.
//!
//! Every symbol carries the crate version (`edgemm_0_1_0_<kernel>`), so two versions of the
//! crate can link into one binary.

use std::env;
use std::path::Path;

/// The compiler's minor version (1.x), if it says.
fn rustc_minor() -> Option<u32> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(edgemm_asm)");
    println!("cargo::rustc-check-cfg=cfg(edgemm_arm_dsp)");
    println!("cargo::rustc-check-cfg=cfg(edgemm_arm_vfp4)");
    println!("cargo::rustc-check-cfg=cfg(edgemm_avx512_intrinsics)");
    // AVX-512 intrinsics in core::arch are stable from Rust 1.89; the crate's MSRV is 1.85
    // (the Debian toolchain of the cross builds), so code using them is compiled only on
    // newer compilers, with a portable fallback otherwise.
    if rustc_minor().is_some_and(|m| m >= 89) {
        println!("cargo::rustc-cfg=edgemm_avx512_intrinsics");
    }
    println!("cargo::rerun-if-changed=asm");
    println!("cargo::rerun-if-env-changed=EDGEMM_NO_ASM");

    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let features = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let has = |f: &str| features.split(',').any(|x| x == f);
    let target = env::var("TARGET").unwrap_or_default();
    let elf = matches!(
        os.as_str(),
        "linux" | "android" | "freebsd" | "netbsd" | "openbsd" | "dragonfly" | "none"
    );

    // Arm M-profile. rustc's Arm target features are unstable: a stable compiler reports none
    // of them in cfg (only nightly, or RUSTC_BOOTSTRAP=1, does), so fall back to what the
    // target triple guarantees: ARMv7E-M always has the DSP extension, and its hard-float
    // triple an FPv4-SP (or FPv5) FPU, which has vfma. (`thumbv7em-none-eabihf` reports
    // `fpregs`, never `vfp4`.) The Rust code reads these cfgs, never `target_feature`.
    let arm_dsp = arch == "arm"
        && ((has("dsp") && has("thumb2") && has("mclass")) || target.starts_with("thumbv7em-"));
    let arm_vfp4 = arm_dsp
        && ((has("fpregs") && has("mclass") && !has("soft-float"))
            || (target.starts_with("thumbv7em-") && target.ends_with("eabihf")));
    if arm_dsp {
        println!("cargo::rustc-cfg=edgemm_arm_dsp");
    }
    if arm_vfp4 {
        println!("cargo::rustc-cfg=edgemm_arm_vfp4");
    }

    // Which directory of assembly serves this target, if any.
    let dir = match arch.as_str() {
        "x86_64" if elf && os != "none" => Some("x86_64"),
        "aarch64" if elf && os != "none" => Some("aarch64"),
        // Cortex-M4/M7 class: Thumb-2 with the DSP extension.
        "arm" if arm_dsp => Some("thumbv7em"),
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
