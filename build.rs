//! Assembles the hand-written micro-kernels in `asm/<arch>/*.S` for the target, when the
//! target is one the assembly is written for (ELF, System V / AAPCS calling conventions).
//! Sets `cfg(edgemm_asm)` when it did, so the kernel table lists those kernels.
//!
//! Every symbol carries the crate version (`edgemm_0_1_0_<kernel>`), so two versions of the
//! crate can link into one binary.
//!
//! Also writes the audio frontend's constant tables (`OUT_DIR/audio_tables.rs`, included by
//! `src/audio/tables.rs`): `core` has no cos/ln, so they are computed here in f64.

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
    write_audio_tables();
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

/// The audio frontend's tables (see `src/audio/mod.rs` for what each stage computes), from the
/// definitions of TensorFlow's `tf.signal` evaluated in f64 and rounded once to f32.
fn write_audio_tables() {
    use std::f64::consts::PI;
    use std::fmt::Write;
    // Keep in step with the constants of src/audio/mod.rs (checked there by const asserts).
    const FRAME: usize = 480;
    const FFT: usize = 512;
    const BINS: usize = FFT / 2 + 1;
    const MELS: usize = 40;
    const MFCCS: usize = 10;
    const RATE: f64 = 16000.0;
    const LOW_HZ: f64 = 20.0;
    const HIGH_HZ: f64 = 4000.0;

    let mut out = String::new();
    let f32s = |out: &mut String, name: &str, v: &[f64]| {
        write!(out, "pub(super) static {name}: [f32; {}] = [", v.len()).unwrap();
        for x in v {
            write!(out, "{:?},", *x as f32).unwrap();
        }
        out.push_str("];\n");
    };
    let u16s = |out: &mut String, name: &str, v: &[usize]| {
        write!(out, "pub(super) static {name}: [u16; {}] = [", v.len()).unwrap();
        for x in v {
            write!(out, "{x},").unwrap();
        }
        out.push_str("];\n");
    };

    // tf.signal.hann_window(480, periodic=True): 0.5 - 0.5 cos(2 pi n / 480).
    let hann: Vec<f64> = (0..FRAME)
        .map(|n| 0.5 - 0.5 * (2.0 * PI * n as f64 / FRAME as f64).cos())
        .collect();
    f32s(&mut out, "HANN", &hann);

    // exp(-2 pi i k / 512), k = 0..256, as (re, im) pairs: the split step uses all of them,
    // the 256-point complex FFT every second one.
    let mut tw = Vec::new();
    for k in 0..FFT / 2 {
        let a = -2.0 * PI * k as f64 / FFT as f64;
        tw.push(a.cos());
        tw.push(a.sin());
    }
    f32s(&mut out, "TWIDDLES", &tw);

    // tf.signal.linear_to_mel_weight_matrix: HTK mel scale, triangles in mel space between
    // 42 equally spaced mel edges, bin 0 (DC) weighted zero. Stored per band as the run of
    // bins with a nonzero weight.
    let mel = |hz: f64| 1127.0 * (1.0 + hz / 700.0).ln();
    let (lo, hi) = (mel(LOW_HZ), mel(HIGH_HZ));
    let edge = |i: usize| lo + (hi - lo) * i as f64 / (MELS + 1) as f64;
    let (mut start, mut len, mut offset, mut weights) = (vec![], vec![], vec![], vec![]);
    for m in 0..MELS {
        let (l, c, u) = (edge(m), edge(m + 1), edge(m + 2));
        let w: Vec<(usize, f64)> = (1..BINS)
            .map(|k| {
                let b = mel(k as f64 * RATE / FFT as f64);
                (k, ((b - l) / (c - l)).min((u - b) / (u - c)).max(0.0))
            })
            .filter(|&(_, w)| w > 0.0)
            .collect();
        // A band's nonzero weights are one contiguous run (a triangle).
        assert!(w.windows(2).all(|p| p[1].0 == p[0].0 + 1));
        start.push(w.first().map_or(0, |p| p.0));
        len.push(w.len());
        offset.push(weights.len());
        weights.extend(w.iter().map(|p| p.1));
    }
    u16s(&mut out, "MEL_START", &start);
    u16s(&mut out, "MEL_LEN", &len);
    u16s(&mut out, "MEL_OFFSET", &offset);
    f32s(&mut out, "MEL_WEIGHTS", &weights);

    // tf.signal.mfccs_from_log_mel_spectrograms: the unnormalized DCT-II
    // 2 sum_n x_n cos(pi k (2n + 1) / 2N) times 1/sqrt(2N), the first 10 rows, row-major.
    let mut dct = Vec::new();
    for k in 0..MFCCS {
        for n in 0..MELS {
            let c = (PI * k as f64 * (2 * n + 1) as f64 / (2 * MELS) as f64).cos();
            dct.push(2.0 * c / ((2 * MELS) as f64).sqrt());
        }
    }
    f32s(&mut out, "DCT", &dct);

    let path = Path::new(&env::var_os("OUT_DIR").unwrap()).join("audio_tables.rs");
    std::fs::write(path, out).unwrap();
}
