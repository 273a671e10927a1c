//! What this CPU can run and how big its caches are. With `std`, features are detected at
//! run time; without it, they are what the build targets (`cfg!(target_feature)`). The answer
//! is computed once and cached in atomics (no `std` needed for the cache).

use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

#[cfg(target_arch = "x86_64")]
mod x86_64;

/// A set of instruction-set features, as bits.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Features(u32);

macro_rules! features {
    ($($(#[$doc:meta])* $name:ident = $bit:expr, $text:expr;)*) => {
        impl Features {
            $($(#[$doc])* pub const $name: Features = Features(1 << $bit);)*
            const NAMES: &'static [(Features, &'static str)] = &[$((Features::$name, $text)),*];
        }
    };
}

features! {
    /// x86-64 AVX2.
    AVX2 = 0, "avx2";
    /// x86-64 FMA3.
    FMA = 1, "fma";
    /// x86-64 AVX-512 Foundation.
    AVX512F = 2, "avx512f";
    /// x86-64 AVX-512 byte/word instructions.
    AVX512BW = 3, "avx512bw";
    /// x86-64 AVX-512 vector-length extensions.
    AVX512VL = 4, "avx512vl";
    /// x86-64 AVX-512 VNNI (`vpdpbusd`).
    AVX512VNNI = 5, "avx512vnni";
    /// x86-64 AVX-512 VBMI (`vpermb`, `vpermi2b`: byte tables).
    AVX512VBMI = 6, "avx512vbmi";
    /// AArch64 Advanced SIMD.
    NEON = 8, "neon";
    /// AArch64 dot product (`sdot`/`udot`).
    DOTPROD = 9, "dotprod";
    /// AArch64 int8 matrix multiply (`smmla`).
    I8MM = 10, "i8mm";
    /// Arm DSP extension (`smlad`, `sxtb16`): Cortex-M4/M7/M33.
    DSP = 16, "dsp";
    /// Arm single-precision FPU with fused multiply-add (FPv4-SP and later).
    VFP4 = 17, "vfp4";
}

impl Features {
    /// The empty set (portable code).
    pub const NONE: Features = Features(0);

    /// All bits of `other` are set here.
    pub const fn contains(self, other: Features) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union.
    pub const fn with(self, other: Features) -> Features {
        Features(self.0 | other.0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (feat, name) in Features::NAMES {
            if self.contains(*feat) {
                if !first {
                    f.write_str(" ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("(none)")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Features({self})")
    }
}

/// The CPU as edgemm sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuInfo {
    /// Instruction-set features usable here.
    pub features: Features,
    /// L1 data cache per core, bytes.
    pub l1d: usize,
    /// L2 cache per core, bytes.
    pub l2: usize,
    /// Last-level cache, bytes (shared by several cores on most CPUs).
    pub l3: usize,
    /// True when the cache sizes were read from the CPU or OS, false for defaults.
    pub caches_detected: bool,
}

/// Sizes assumed when the CPU does not tell (a typical desktop core).
const DEFAULT_CACHES: (usize, usize, usize) = (32 << 10, 512 << 10, 8 << 20);

fn detect() -> CpuInfo {
    #[cfg(target_arch = "x86_64")]
    {
        let caches = x86_64::caches();
        let (l1d, l2, l3) = caches.unwrap_or(DEFAULT_CACHES);
        CpuInfo {
            features: x86_64::features(),
            l1d,
            l2,
            l3,
            caches_detected: caches.is_some(),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let caches = os_caches();
        let (l1d, l2, l3) = caches.unwrap_or(DEFAULT_CACHES);
        CpuInfo {
            features: other_features(),
            l1d,
            l2,
            l3,
            caches_detected: caches.is_some(),
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn other_features() -> Features {
    #[allow(unused_mut)]
    let mut f = Features::NONE;
    #[cfg(target_arch = "aarch64")]
    {
        // NEON is part of the AArch64 base ABI.
        f = f.with(Features::NEON);
        #[cfg(feature = "std")]
        {
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                f = f.with(Features::DOTPROD);
            }
            if std::arch::is_aarch64_feature_detected!("i8mm") {
                f = f.with(Features::I8MM);
            }
        }
        #[cfg(not(feature = "std"))]
        {
            if cfg!(target_feature = "dotprod") {
                f = f.with(Features::DOTPROD);
            }
            if cfg!(target_feature = "i8mm") {
                f = f.with(Features::I8MM);
            }
        }
    }
    #[cfg(target_arch = "arm")]
    {
        // From build.rs: the target's features, or what its triple guarantees when the
        // compiler does not report Arm features (stable rustc).
        if cfg!(edgemm_arm_dsp) {
            f = f.with(Features::DSP);
        }
        if cfg!(edgemm_arm_vfp4) {
            f = f.with(Features::VFP4);
        }
    }
    f
}

/// Cache sizes from Linux sysfs (index0 = L1d, then the unified levels).
#[cfg(not(target_arch = "x86_64"))]
fn os_caches() -> Option<(usize, usize, usize)> {
    #[cfg(all(feature = "std", target_os = "linux"))]
    {
        let mut sizes = [0usize; 4];
        for idx in 0..8 {
            let base = std::format!("/sys/devices/system/cpu/cpu0/cache/index{idx}/");
            let read = |f: &str| std::fs::read_to_string(std::format!("{base}{f}")).ok();
            let (Some(level), Some(ty), Some(size)) = (read("level"), read("type"), read("size"))
            else {
                continue;
            };
            let level: usize = level.trim().parse().ok()?;
            if ty.trim() == "Instruction" || !(1..=3).contains(&level) {
                continue;
            }
            let size = size.trim();
            let bytes = if let Some(kb) = size.strip_suffix('K') {
                kb.parse::<usize>().ok()? << 10
            } else if let Some(mb) = size.strip_suffix('M') {
                mb.parse::<usize>().ok()? << 20
            } else {
                size.parse().ok()?
            };
            sizes[level] = bytes;
        }
        if sizes[1] > 0 && sizes[2] > 0 {
            let l3 = if sizes[3] > 0 { sizes[3] } else { sizes[2] };
            return Some((sizes[1], sizes[2], l3));
        }
        None
    }
    #[cfg(not(all(feature = "std", target_os = "linux")))]
    {
        None
    }
}

// Cache of `detect()`: FEATURES holds bits + 1 (0 = not yet detected).
static FEATURES: AtomicU32 = AtomicU32::new(0);
static L1D: AtomicUsize = AtomicUsize::new(0);
static L2: AtomicUsize = AtomicUsize::new(0);
static L3: AtomicUsize = AtomicUsize::new(0);
static DETECTED: AtomicUsize = AtomicUsize::new(0);

/// The CPU's features and caches, detected on first use and cached.
pub fn cpu_info() -> CpuInfo {
    let bits = FEATURES.load(Ordering::Acquire);
    if bits != 0 {
        return CpuInfo {
            features: Features(bits - 1),
            l1d: L1D.load(Ordering::Relaxed),
            l2: L2.load(Ordering::Relaxed),
            l3: L3.load(Ordering::Relaxed),
            caches_detected: DETECTED.load(Ordering::Relaxed) != 0,
        };
    }
    // Racing first calls compute the same answer; whichever stores last wins harmlessly.
    let info = detect();
    L1D.store(info.l1d, Ordering::Relaxed);
    L2.store(info.l2, Ordering::Relaxed);
    L3.store(info.l3, Ordering::Relaxed);
    DETECTED.store(info.caches_detected as usize, Ordering::Relaxed);
    FEATURES.store(info.features.0 + 1, Ordering::Release);
    info
}

/// The CPU's marketing name where the CPU reports one (x86 CPUID), written into `buf`.
pub fn cpu_brand(buf: &mut [u8; 48]) -> &str {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::brand(buf)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = buf;
        if cfg!(target_arch = "aarch64") {
            "aarch64"
        } else if cfg!(target_arch = "arm") {
            "arm"
        } else {
            "unknown"
        }
    }
}
