//! Peak probes shared by the benchmark examples: inline-assembly loops of independent
//! instructions measuring what one core can do (the denominators of "% of peak").
//! Each example uses the probes it needs.
#![allow(dead_code)]

/// GFLOP/s of one core running independent FMAs, and which probe gave it.
#[cfg(target_arch = "x86_64")]
pub fn f32_peak(quick: bool) -> Option<(f64, &'static str)> {
    let f = edgemm::cpu_info().features;
    let mut best: Option<(f64, &'static str)> = None;
    let mut consider = |g: f64, what| {
        if best.is_none_or(|b| g > b.0) {
            best = Some((g, what));
        }
    };
    let reps = if quick { 3 } else { 7 };
    if f.contains(edgemm::Features::AVX512F) {
        consider(best_of(reps, || fma512(2_000_000)), "vfmadd231ps zmm");
    }
    if f.contains(edgemm::Features::AVX2.with(edgemm::Features::FMA)) {
        consider(best_of(reps, || fma256(2_000_000)), "vfmadd231ps ymm");
    }
    best
}

#[cfg(not(target_arch = "x86_64"))]
pub fn f32_peak(_quick: bool) -> Option<(f64, &'static str)> {
    None
}

/// GOP/s (2 per multiply-add) of 24 independent vpdpbusd zmm chains.
#[cfg(target_arch = "x86_64")]
pub fn int8_vnni(quick: bool) -> Option<f64> {
    if !edgemm::cpu_info()
        .features
        .contains(edgemm::Features::AVX512VNNI)
    {
        return None;
    }
    let reps = if quick { 3 } else { 7 };
    Some(best_of(reps, || {
        let iters = 2_000_000u64;
        let t = std::time::Instant::now();
        // SAFETY: the CPU has AVX-512 VNNI (checked above); registers only.
        unsafe {
            core::arch::asm!(
                "vpxord zmm0, zmm0, zmm0",
                "2:",
                ".irp r,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23",
                "vpdpbusd zmm\\r, zmm30, zmm31",
                ".endr",
                "dec {n}",
                "jnz 2b",
                "vzeroupper",
                n = inout(reg) iters => _,
                out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _,
                out("zmm5") _, out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _,
                out("zmm10") _, out("zmm11") _, out("zmm12") _, out("zmm13") _, out("zmm14") _,
                out("zmm15") _, out("zmm16") _, out("zmm17") _, out("zmm18") _, out("zmm19") _,
                out("zmm20") _, out("zmm21") _, out("zmm22") _, out("zmm23") _,
                out("zmm30") _, out("zmm31") _,
                options(nostack, nomem),
            );
        }
        (iters * 24 * 64 * 2) as f64 / t.elapsed().as_secs_f64() / 1e9
    }))
}

/// GOP/s of the AVX2 int8 idiom: vpmaddubsw + vpmaddwd + vpaddd, 6 independent chains.
#[cfg(target_arch = "x86_64")]
pub fn int8_avx2(quick: bool) -> Option<f64> {
    if !edgemm::cpu_info().features.contains(edgemm::Features::AVX2) {
        return None;
    }
    let reps = if quick { 3 } else { 7 };
    Some(best_of(reps, || {
        let iters = 2_000_000u64;
        let t = std::time::Instant::now();
        // SAFETY: the CPU has AVX2 (checked above); registers only.
        unsafe {
            core::arch::asm!(
                "vpxor ymm0, ymm0, ymm0",
                "2:",
                ".irp r,0,1,2,3,4,5",
                "vpmaddubsw ymm\\r, ymm12, ymm13",
                "vpmaddwd ymm\\r, ymm\\r, ymm14",
                "vpaddd ymm\\r, ymm\\r, ymm15",
                ".endr",
                "dec {n}",
                "jnz 2b",
                "vzeroupper",
                n = inout(reg) iters => _,
                out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _,
                out("ymm5") _, out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                options(nostack, nomem),
            );
        }
        (iters * 6 * 32 * 2) as f64 / t.elapsed().as_secs_f64() / 1e9
    }))
}

#[cfg(not(target_arch = "x86_64"))]
pub fn int8_vnni(_quick: bool) -> Option<f64> {
    None
}

#[cfg(not(target_arch = "x86_64"))]
pub fn int8_avx2(_quick: bool) -> Option<f64> {
    None
}

#[cfg(target_arch = "x86_64")]
fn best_of(reps: usize, f: impl Fn() -> f64) -> f64 {
    (0..reps).map(|_| f()).fold(0.0, f64::max)
}

/// 24 independent zmm FMA chains (more than latency × throughput on any core).
#[cfg(target_arch = "x86_64")]
fn fma512(iters: u64) -> f64 {
    let t = std::time::Instant::now();
    // SAFETY: only run when the CPU has AVX-512F (checked by the caller); touches only
    // the named vector registers and the counter.
    unsafe {
        core::arch::asm!(
            "vxorps xmm0, xmm0, xmm0",
            "2:",
            "vfmadd231ps zmm0, zmm30, zmm31", "vfmadd231ps zmm1, zmm30, zmm31",
            "vfmadd231ps zmm2, zmm30, zmm31", "vfmadd231ps zmm3, zmm30, zmm31",
            "vfmadd231ps zmm4, zmm30, zmm31", "vfmadd231ps zmm5, zmm30, zmm31",
            "vfmadd231ps zmm6, zmm30, zmm31", "vfmadd231ps zmm7, zmm30, zmm31",
            "vfmadd231ps zmm8, zmm30, zmm31", "vfmadd231ps zmm9, zmm30, zmm31",
            "vfmadd231ps zmm10, zmm30, zmm31", "vfmadd231ps zmm11, zmm30, zmm31",
            "vfmadd231ps zmm12, zmm30, zmm31", "vfmadd231ps zmm13, zmm30, zmm31",
            "vfmadd231ps zmm14, zmm30, zmm31", "vfmadd231ps zmm15, zmm30, zmm31",
            "vfmadd231ps zmm16, zmm30, zmm31", "vfmadd231ps zmm17, zmm30, zmm31",
            "vfmadd231ps zmm18, zmm30, zmm31", "vfmadd231ps zmm19, zmm30, zmm31",
            "vfmadd231ps zmm20, zmm30, zmm31", "vfmadd231ps zmm21, zmm30, zmm31",
            "vfmadd231ps zmm22, zmm30, zmm31", "vfmadd231ps zmm23, zmm30, zmm31",
            "dec {n}",
            "jnz 2b",
            "vzeroupper",
            n = inout(reg) iters => _,
            out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _,
            out("zmm5") _, out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _,
            out("zmm10") _, out("zmm11") _, out("zmm12") _, out("zmm13") _, out("zmm14") _,
            out("zmm15") _, out("zmm16") _, out("zmm17") _, out("zmm18") _, out("zmm19") _,
            out("zmm20") _, out("zmm21") _, out("zmm22") _, out("zmm23") _,
            out("zmm30") _, out("zmm31") _,
            options(nostack, nomem),
        );
    }
    (iters * 24 * 32) as f64 / t.elapsed().as_secs_f64() / 1e9
}

/// 12 independent ymm FMA chains.
#[cfg(target_arch = "x86_64")]
fn fma256(iters: u64) -> f64 {
    let t = std::time::Instant::now();
    // SAFETY: only run when the CPU has AVX2+FMA (checked by the caller).
    unsafe {
        core::arch::asm!(
            "vxorps xmm0, xmm0, xmm0",
            "2:",
            "vfmadd231ps ymm0, ymm14, ymm15", "vfmadd231ps ymm1, ymm14, ymm15",
            "vfmadd231ps ymm2, ymm14, ymm15", "vfmadd231ps ymm3, ymm14, ymm15",
            "vfmadd231ps ymm4, ymm14, ymm15", "vfmadd231ps ymm5, ymm14, ymm15",
            "vfmadd231ps ymm6, ymm14, ymm15", "vfmadd231ps ymm7, ymm14, ymm15",
            "vfmadd231ps ymm8, ymm14, ymm15", "vfmadd231ps ymm9, ymm14, ymm15",
            "vfmadd231ps ymm10, ymm14, ymm15", "vfmadd231ps ymm11, ymm14, ymm15",
            "dec {n}",
            "jnz 2b",
            "vzeroupper",
            n = inout(reg) iters => _,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _,
            out("ymm5") _, out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _,
            out("ymm10") _, out("ymm11") _, out("ymm14") _, out("ymm15") _,
            options(nostack, nomem),
        );
    }
    (iters * 12 * 16) as f64 / t.elapsed().as_secs_f64() / 1e9
}
