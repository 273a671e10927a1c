//! Block sizes from the cache sizes. BLIS's analytical rule keeps one KC×NR micro-panel of B
//! in L1; on Zen 4 and Zen 5 (32 and 48 KiB L1, 64 B/cycle from L2) a longer KC measured
//! faster, because it halves the C tile traffic while the B panel streams from L2 without
//! stalling the kernel:
//! - KC: the B micro-panel takes up to twice L1 (it streams from L2, prefetched
//!   sequentially), at most 512 deep. Zen 4's 14×32 kernel with a 32 KiB L1: KC 336 (4/3 of
//!   L1) → 512 measured +3–4% at 1024³ and 2048³ and level elsewhere; Zen 5 was at 512 already;
//! - MC: the MC×KC block of packed A takes a quarter of L2 (the B block and C share the rest);
//! - NC: the KC×NC block of packed B stays in a quarter of L3.

use crate::arch::CpuInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Blocking {
    pub kc: usize,
    pub mc: usize,
    pub nc: usize,
}

pub(crate) fn blocking(mr: usize, nr: usize, cpu: &CpuInfo) -> Blocking {
    let f = core::mem::size_of::<f32>();
    let kc = (cpu.l1d * 2 / (nr * f)).clamp(64, 512) & !7;
    let mc = round_down((cpu.l2 / 4 / (kc * f)).clamp(mr, 4096), mr);
    let nc = round_down((cpu.l3 / 4 / (kc * f)).clamp(nr, 8192), nr);
    Blocking { kc, mc, nc }
}

fn round_down(x: usize, unit: usize) -> usize {
    (x / unit * unit).max(unit)
}

/// The chunk length that splits `total` into the fewest pieces of at most `max`, as equal as
/// possible, rounded up to a multiple of `unit` (so only the last piece is short).
pub(crate) fn chunk(total: usize, max: usize, unit: usize) -> usize {
    if total <= max {
        return total.max(1);
    }
    let pieces = total.div_ceil(max);
    let len = total.div_ceil(pieces);
    len.div_ceil(unit) * unit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_and_respect_units() {
        for total in 1..2000 {
            for &(max, unit) in &[(192, 1), (256, 8), (672, 14), (4096, 32), (7, 7)] {
                let c = chunk(total, max, unit);
                assert!(c >= 1);
                if total > max {
                    assert_eq!(c % unit, 0);
                    assert!(c <= max + unit, "{total} {max} {unit} -> {c}");
                }
            }
        }
    }
}
