//! The micro-kernel table and kernel selection.
//!
//! Each family (f32, int8) has a `static` table ordered best first. Selection intersects
//! "compiled in" (the table) with "runs on this CPU" (`arch::cpu_info()`), takes the first,
//! and caches the answer in an atomic (no `std` needed). `EDGEMM_KERNEL=<name>[,<name>…]`
//! (with `std`) forces a kernel per family; forcing one this CPU cannot run, or naming no
//! compiled kernel, is an error on every call, never a silent fallback.

#[cfg(all(target_arch = "aarch64", edgemm_asm))]
pub(crate) mod aarch64;
#[cfg(all(target_arch = "arm", edgemm_asm))]
pub(crate) mod arm;
pub(crate) mod f32;
pub(crate) mod generic;
pub(crate) mod int8;
pub(crate) mod targets;
#[cfg(all(target_arch = "x86_64", edgemm_asm))]
pub(crate) mod x86_64;

use crate::arch::{cpu_info, Features};
use crate::error::{Error, KernelName};
use core::sync::atomic::{AtomicUsize, Ordering};
use f32::{SgemmKernel, SGEMM_KERNELS};
use int8::{QgemmKernel, QGEMM_KERNELS};

/// The kind of arithmetic a kernel does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelKind {
    /// f32 GEMM (`sgemm`).
    F32,
    /// int8 GEMM with i32 accumulation (`qgemm`).
    Int8,
}

/// A compiled-in micro-kernel, as `edgemm::kernels()` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelInfo {
    /// Unique name, `<family>_<isa>_<MR>x<NR>`; what `EDGEMM_KERNEL` takes.
    pub name: &'static str,
    pub kind: KernelKind,
    /// The instruction set it needs.
    pub isa: &'static str,
    /// Rows of the register tile.
    pub mr: usize,
    /// Columns of the register tile.
    pub nr: usize,
    /// How many k steps one packed group holds (1 for f32; the instruction's depth for int8).
    pub k_group: usize,
    /// This CPU can run it.
    pub runnable: bool,
    /// The default selection uses it for its family.
    pub selected: bool,
}

/// A kernel chosen by name, to force it for a call (`Context::kernel`). Obtained only for
/// kernels this CPU can run.
#[derive(Clone, Copy)]
pub struct Kernel(pub(crate) KernelRef);

#[derive(Clone, Copy)]
pub(crate) enum KernelRef {
    F32(&'static SgemmKernel),
    Int8(&'static QgemmKernel),
}

impl core::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Kernel({})", self.name())
    }
}

impl Kernel {
    /// The compiled kernel called `name`, if this CPU can run it.
    pub fn by_name(name: &str) -> Result<Kernel, Error> {
        let r = find(name).ok_or(Error::UnknownKernel {
            name: KernelName::new(name),
        })?;
        let (requires, kname, isa) = match r {
            KernelRef::F32(k) => (k.requires, k.name, k.isa),
            KernelRef::Int8(k) => (k.requires, k.name, k.isa),
        };
        if !cpu_info().features.contains(requires) {
            return Err(Error::KernelNotSupported { name: kname, isa });
        }
        Ok(Kernel(r))
    }

    /// The kernel's name.
    pub fn name(&self) -> &'static str {
        match self.0 {
            KernelRef::F32(k) => k.name,
            KernelRef::Int8(k) => k.name,
        }
    }

    /// Its description.
    pub fn info(&self) -> KernelInfo {
        match self.0 {
            KernelRef::F32(k) => info_f32(k),
            KernelRef::Int8(k) => info_int8(k),
        }
    }

    pub(crate) fn f32(&self) -> Result<&'static SgemmKernel, Error> {
        match self.0 {
            KernelRef::F32(k) => Ok(k),
            KernelRef::Int8(k) => Err(Error::WrongKernelKind {
                name: k.name,
                expected: "f32",
            }),
        }
    }

    #[cfg_attr(not(feature = "alloc"), allow(dead_code))]
    pub(crate) fn int8(&self) -> Result<&'static QgemmKernel, Error> {
        match self.0 {
            KernelRef::Int8(k) => Ok(k),
            KernelRef::F32(k) => Err(Error::WrongKernelKind {
                name: k.name,
                expected: "int8",
            }),
        }
    }
}

fn find(name: &str) -> Option<KernelRef> {
    SGEMM_KERNELS
        .iter()
        .find(|k| k.name == name)
        .map(KernelRef::F32)
        .or_else(|| {
            QGEMM_KERNELS
                .iter()
                .find(|k| k.name == name)
                .map(KernelRef::Int8)
        })
}

fn info_f32(k: &'static SgemmKernel) -> KernelInfo {
    KernelInfo {
        name: k.name,
        kind: KernelKind::F32,
        isa: k.isa,
        mr: k.mr,
        nr: k.nr,
        k_group: 1,
        runnable: cpu_info().features.contains(k.requires),
        selected: sgemm_kernel().is_ok_and(|s| core::ptr::eq(s, k)),
    }
}

fn info_int8(k: &'static QgemmKernel) -> KernelInfo {
    KernelInfo {
        name: k.name,
        kind: KernelKind::Int8,
        isa: k.isa,
        mr: k.mr,
        nr: k.nr,
        k_group: k.format.k_group(),
        runnable: cpu_info().features.contains(k.requires),
        selected: qgemm_kernel().is_ok_and(|s| core::ptr::eq(s, k)),
    }
}

/// Every micro-kernel compiled into this build, whether this CPU can run it, and which one
/// each family selects.
pub fn kernels() -> impl Iterator<Item = KernelInfo> {
    SGEMM_KERNELS
        .iter()
        .map(info_f32)
        .chain(QGEMM_KERNELS.iter().map(info_int8))
}

// ---- selection -------------------------------------------------------------------------

/// Cached selection of one family: 0 = not yet resolved; `i + 1` = table index `i`;
/// ERR | (i + 1) = forced kernel `i` cannot run here; ERR alone = unknown forced name.
struct Selection(AtomicUsize);
const ERR: usize = 1 << (usize::BITS - 1);

impl Selection {
    const fn new() -> Self {
        Selection(AtomicUsize::new(0))
    }

    fn get(
        &self,
        names: &dyn Fn(usize) -> Option<(&'static str, Features, &'static str)>,
    ) -> Result<usize, Error> {
        let mut v = self.0.load(Ordering::Acquire);
        if v == 0 {
            v = resolve(names);
            self.0.store(v, Ordering::Release);
        }
        decode(v, names)
    }
}

fn decode(
    v: usize,
    names: &dyn Fn(usize) -> Option<(&'static str, Features, &'static str)>,
) -> Result<usize, Error> {
    if v & ERR == 0 {
        return Ok(v - 1);
    }
    let idx = v & !ERR;
    if idx == 0 {
        return Err(Error::UnknownKernel {
            name: KernelName::new(forced_names_raw()),
        });
    }
    let (name, _, isa) = names(idx - 1).unwrap_or(("?", Features::NONE, "?"));
    Err(Error::KernelNotSupported { name, isa })
}

/// The raw `EDGEMM_KERNEL` value (empty without `std`), leaked once so it can be borrowed
/// for `'static` error messages without allocation on later calls.
fn forced_names_raw() -> &'static str {
    #[cfg(feature = "std")]
    {
        static RAW: std::sync::OnceLock<std::string::String> = std::sync::OnceLock::new();
        RAW.get_or_init(|| std::env::var("EDGEMM_KERNEL").unwrap_or_default())
    }
    #[cfg(not(feature = "std"))]
    {
        ""
    }
}

fn resolve(names: &dyn Fn(usize) -> Option<(&'static str, Features, &'static str)>) -> usize {
    let features = cpu_info().features;
    for forced in forced_names_raw()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let mut i = 0;
        while let Some((name, requires, _)) = names(i) {
            if name == forced {
                return if features.contains(requires) {
                    i + 1
                } else {
                    ERR | (i + 1)
                };
            }
            i += 1;
        }
        if find(forced).is_none() {
            return ERR; // names no kernel of any family
        }
    }
    let mut i = 0;
    while let Some((_, requires, _)) = names(i) {
        if features.contains(requires) {
            return i + 1;
        }
        i += 1;
    }
    // The portable kernel has no requirements, so this is unreachable with a sane table.
    ERR
}

static SGEMM_SELECTION: Selection = Selection::new();

/// The f32 kernel calls use by default.
pub(crate) fn sgemm_kernel() -> Result<&'static SgemmKernel, Error> {
    let names = |i: usize| SGEMM_KERNELS.get(i).map(|k| (k.name, k.requires, k.isa));
    SGEMM_SELECTION.get(&names).map(|i| &SGEMM_KERNELS[i])
}

static QGEMM_SELECTION: Selection = Selection::new();

/// The int8 kernel calls use by default.
pub(crate) fn qgemm_kernel() -> Result<&'static QgemmKernel, Error> {
    let names = |i: usize| QGEMM_KERNELS.get(i).map(|k| (k.name, k.requires, k.isa));
    QGEMM_SELECTION.get(&names).map(|i| &QGEMM_KERNELS[i])
}
