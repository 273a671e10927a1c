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

/// The audio frontend's tables (see `src/audio/frontend.rs` for what each stage computes),
/// from the definitions of TensorFlow's `tf.signal` evaluated in f64 and rounded once to f32.
fn write_audio_tables() {
    use std::f64::consts::PI;
    use std::fmt::Write;
    // Keep in step with the constants of src/audio/frontend.rs (checked there by const
    // asserts).
    const FRAME: usize = 480;
    const FFT: usize = 512;
    const BINS: usize = FFT / 2 + 1;
    const MELS: usize = 40;
    const MFCCS: usize = 10;
    const RATE: f64 = 16000.0;
    const LOW_HZ: f64 = 20.0;
    const HIGH_HZ: f64 = 4000.0;
    const LN_TABLE: usize = 32;

    let mut out = String::new();
    let f32s = |out: &mut String, name: &str, v: &[f64]| {
        write!(out, "pub(super) static {name}: [f32; {}] = [", v.len()).unwrap();
        for x in v {
            write!(out, "{:?},", *x as f32).unwrap();
        }
        out.push_str("];\n");
    };
    // Rows of `width` f32s, as `[[f32; width]; rows]`.
    let rows = |out: &mut String, name: &str, width: usize, v: &[f64]| {
        assert_eq!(v.len() % width, 0);
        write!(
            out,
            "pub(super) static {name}: [[f32; {width}]; {}] = [",
            v.len() / width
        )
        .unwrap();
        for row in v.chunks(width) {
            out.push('[');
            for x in row {
                write!(out, "{:?},", *x as f32).unwrap();
            }
            out.push_str("],");
        }
        out.push_str("];\n");
    };

    // tf.signal.hann_window(480, periodic=True): 0.5 - 0.5 cos(2 pi n / 480); and the same
    // divided by 32768 for i16 samples (a power of two: x·(h/32768) rounds as (x/32768)·h).
    let hann: Vec<f64> = (0..FRAME)
        .map(|n| 0.5 - 0.5 * (2.0 * PI * n as f64 / FRAME as f64).cos())
        .collect();
    f32s(&mut out, "HANN", &hann);
    let scaled: Vec<f64> = hann.iter().map(|h| (*h as f32 as f64) / 32768.0).collect();
    f32s(&mut out, "HANN_I16", &scaled);

    // The 256-point complex FFT's radix-4 stages after the first: for each combined length
    // L = 16, 64, 256 and k < L/4, the twiddles exp(-2 pi i q k / L) for q = 1, 2, 3 as
    // (re, im) pairs, in the order the butterflies use them.
    let mut tw = Vec::new();
    for len in [16usize, 64, 256] {
        for k in 0..len / 4 {
            for q in 1..4 {
                let a = -2.0 * PI * (q * k) as f64 / len as f64;
                tw.push(a.cos());
                tw.push(a.sin());
            }
        }
    }
    rows(&mut out, "FFT_TWIDDLES", 6, &tw);

    // The split step's exp(-2 pi i k / 512), k < 128, as (re, im) pairs.
    let split: Vec<f64> = (0..FFT / 4)
        .flat_map(|k| {
            let a = -2.0 * PI * k as f64 / FFT as f64;
            [a.cos(), a.sin()]
        })
        .collect();
    rows(&mut out, "SPLIT_TWIDDLES", 2, &split);

    // tf.signal.linear_to_mel_weight_matrix: HTK mel scale, triangles in mel space between
    // 42 equally spaced mel edges, bin 0 (DC) weighted zero. A bin whose mel value lies
    // between edges j and j + 1 is on the rising side of band j and the falling side of band
    // j - 1 and in no other band, so the bins come in 41 segments, stored as where each
    // starts (MEL_SEGMENTS[41] ends the last) and, per bin, the weights (falling, rising),
    // halved because the split step gives 2|X[k]|.
    let mel = |hz: f64| 1127.0 * (1.0 + hz / 700.0).ln();
    let (lo, hi) = (mel(LOW_HZ), mel(HIGH_HZ));
    let edge = |i: usize| lo + (hi - lo) * i as f64 / (MELS + 1) as f64;
    let weight = |m: usize, k: usize| {
        let (l, c, u) = (edge(m), edge(m + 1), edge(m + 2));
        let b = mel(k as f64 * RATE / FFT as f64);
        if k == 0 {
            0.0
        } else {
            ((b - l) / (c - l)).min((u - b) / (u - c)).max(0.0)
        }
    };
    let segment = |k: usize| {
        (1..=MELS)
            .filter(|&i| edge(i) < mel(k as f64 * RATE / FFT as f64))
            .count()
    };
    let used: Vec<usize> = (0..BINS)
        .filter(|&k| (0..MELS).any(|m| weight(m, k) > 0.0))
        .collect();
    let (first, last) = (used[0], *used.last().unwrap());
    assert!(
        first >= 1 && last < FFT / 4,
        "the split step serves bins 1..128"
    );
    let mut seg = vec![0usize; MELS + 2];
    let mut w = vec![0.0f64; 2 * (last + 1)];
    for k in first..=last {
        let j = segment(k);
        for m in 0..MELS {
            // Every nonzero weight is one of the two the bin's segment keeps.
            assert!(
                weight(m, k) == 0.0 || m == j || m + 1 == j,
                "bin {k} band {m}"
            );
        }
        if j >= 1 {
            w[2 * k] = weight(j - 1, k) / 2.0;
        }
        if j < MELS {
            w[2 * k + 1] = weight(j, k) / 2.0;
        }
    }
    for (j, s) in seg.iter_mut().enumerate() {
        *s = (first..=last + 1)
            .find(|&k| k > last || segment(k) >= j)
            .unwrap();
    }
    assert!(seg.windows(2).all(|p| p[0] <= p[1]) && seg[0] == first && seg[MELS + 1] == last + 1);
    writeln!(
        out,
        "pub(super) const MEL_SEGMENTS: [u8; {}] = {seg:?};",
        seg.len()
    )
    .unwrap();
    rows(&mut out, "MEL_WEIGHTS", 2, &w);

    // tf.signal.mfccs_from_log_mel_spectrograms: the unnormalized DCT-II
    // 2 sum_n x_n cos(pi k (2n + 1) / 2N) times 1/sqrt(2N), the first 10 rows. Row k is
    // symmetric (k even) or antisymmetric (k odd) about the middle, so only its first half
    // is stored.
    let mut dct = Vec::new();
    for k in 0..MFCCS {
        for n in 0..MELS / 2 {
            let c = (PI * k as f64 * (2 * n + 1) as f64 / (2 * MELS) as f64).cos();
            dct.push(2.0 * c / ((2 * MELS) as f64).sqrt());
        }
    }
    rows(&mut out, "DCT_HALF", MELS / 2, &dct);

    // ln (src/audio/math.rs): the mantissa m in [1, 2) in 32 equal intervals; for interval
    // i, c = 1/m at its middle rounded to 8 fraction bits (so m·c is near 1), ln(1/c) of that
    // c, and r0 = m0·c - 1 for the interval's first mantissa m0 = 1 + i/32 (15 significant
    // bits at most: exact in f32).
    let mut ln_rows = Vec::new();
    for i in 0..LN_TABLE {
        let m0 = 1.0 + i as f64 / LN_TABLE as f64;
        let c = (256.0 / (m0 + 0.5 / LN_TABLE as f64)).round() / 256.0;
        let r0 = m0 * c - 1.0;
        assert_eq!(r0 as f32 as f64, r0);
        ln_rows.extend([c, -c.ln(), r0]);
    }
    rows(&mut out, "LN_ROWS", 3, &ln_rows);

    let path = Path::new(&env::var_os("OUT_DIR").unwrap()).join("audio_tables.rs");
    std::fs::write(path, out).unwrap();
}
