//! x86-64: features (std's detection, which also checks that the OS saves the AVX/AVX-512
//! registers, or the build's target features without std) and cache sizes from CPUID.

use super::Features;
use core::arch::x86_64::{__cpuid, __cpuid_count, CpuidResult};

pub(super) fn features() -> Features {
    let mut f = Features::NONE;
    macro_rules! probe {
        ($($name:tt => $feat:ident),*) => {$(
            #[cfg(feature = "std")]
            let on = std::arch::is_x86_feature_detected!($name);
            #[cfg(not(feature = "std"))]
            let on = cfg!(target_feature = $name);
            if on {
                f = f.with(Features::$feat);
            }
        )*};
    }
    probe!("avx2" => AVX2, "fma" => FMA, "avx512f" => AVX512F, "avx512bw" => AVX512BW,
           "avx512vl" => AVX512VL, "avx512vnni" => AVX512VNNI, "avx512vbmi" => AVX512VBMI);
    f
}

#[allow(unused_unsafe)] // `__cpuid` is safe since Rust 1.89, unsafe before
fn cpuid(leaf: u32, sub: u32) -> CpuidResult {
    // SAFETY: CPUID exists on every x86-64 CPU; out-of-range leaves return zeros or the
    // highest basic leaf, which callers guard against by checking the maximum leaf first.
    unsafe { __cpuid_count(leaf, sub) }
}

/// (L1d, L2, L3) in bytes from the deterministic cache parameters leaf: 0x8000001D on AMD,
/// 4 on Intel (same register layout).
#[allow(unused_unsafe)]
pub(super) fn caches() -> Option<(usize, usize, usize)> {
    // SAFETY: leaves 0 and 0x80000000 always exist on x86-64.
    let (max_basic, max_ext) = unsafe { (__cpuid(0).eax, __cpuid(0x8000_0000).eax) };
    let topoext = max_ext >= 0x8000_0001 && cpuid(0x8000_0001, 0).ecx & (1 << 22) != 0;
    let leaf = if topoext && max_ext >= 0x8000_001D {
        0x8000_001D
    } else if max_basic >= 4 {
        4
    } else {
        return None;
    };
    let mut sizes = [0usize; 4];
    for sub in 0..16 {
        let r = cpuid(leaf, sub);
        let ty = r.eax & 0x1f;
        if ty == 0 {
            break;
        }
        let level = ((r.eax >> 5) & 7) as usize;
        if ty == 2 || !(1..=3).contains(&level) {
            continue; // instruction cache, or a level we do not use
        }
        let line = (r.ebx & 0xfff) as usize + 1;
        let parts = ((r.ebx >> 12) & 0x3ff) as usize + 1;
        let ways = ((r.ebx >> 22) & 0x3ff) as usize + 1;
        let sets = r.ecx as usize + 1;
        sizes[level] = line * parts * ways * sets;
    }
    if sizes[1] == 0 || sizes[2] == 0 {
        return None;
    }
    let l3 = if sizes[3] > 0 { sizes[3] } else { sizes[2] };
    Some((sizes[1], sizes[2], l3))
}

#[allow(unused_unsafe)]
pub(super) fn brand(buf: &mut [u8; 48]) -> &str {
    // SAFETY: leaf 0x80000000 always exists.
    let max_ext = unsafe { __cpuid(0x8000_0000).eax };
    if max_ext < 0x8000_0004 {
        return "x86-64";
    }
    for (i, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
        let r = cpuid(leaf, 0);
        for (j, reg) in [r.eax, r.ebx, r.ecx, r.edx].iter().enumerate() {
            buf[i * 16 + j * 4..i * 16 + j * 4 + 4].copy_from_slice(&reg.to_le_bytes());
        }
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(48);
    core::str::from_utf8(&buf[..end]).map_or("x86-64", |s| s.trim())
}
