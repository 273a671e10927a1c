//! DEPTHWISE_CONV_2D's Cortex-M4 form (what `convert --target cortex-m4` lowers an int8 3×3
//! depthwise convolution with multiplier 1, c_out a multiple of 4 and the Arm output stage's
//! fast form to): one output row per call of `asm/thumbv7em/dw3x3_s8_m4dsp.S` (its header is
//! the contract), which keeps four channels' sums in registers through the nine taps and
//! writes the outputs itself. The driver (`depthwise_conv`: ring of padded rows, in place)
//! gives it the three input rows of the window, a row outside the image being the pad pixel
//! with steps 0. Sums, multiply and rounding are exact, as `depthwise_conv`'s: bit-exact
//! with TFLite's `DepthwiseConvPerChannel`.
//!
//! Blob form: the inputs are x and one i32 constant, the stream, 34 words per group of four
//! channels, read in order by the kernel: the four sums' start `2·(bias − z_x·Σ_taps w)`;
//! for each tap pair of [`ORDER`] (four pairs) four words, channel j's i16 pair
//! `(2·w_a, 2·w_b)`; the ninth tap as two words `(2·w[c0], 2·w[c1])`, `(2·w[c2], 2·w[c3])`;
//! then per channel the multiplier m ≥ 0, `h = 2^(e−1) + z_y·2^e` and e = −shift (1 ≤ e ≤
//! 22). Doubling the weights and starts gives the `smmulr` form its `2x` without an add;
//! the converter writes this form only when every |sum| stays below 2^30 (see
//! `depthwise_conv::fast_form`). The parameters are `depthwise_conv`'s int8 ones.

/// Words of the stream per group of four channels.
pub(crate) const GROUP_WORDS: usize = 34;

/// The taps (filter row, column) in the kernel's order, in pairs, the ninth alone: columns
/// 1 and 2 of each row (one column step loaded per row), then the columns 0 (their loads
/// advance the row pointers).
#[cfg_attr(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp), allow(dead_code))]
pub(crate) const ORDER: [(usize, usize); 9] = [
    (0, 1),
    (0, 2),
    (1, 1),
    (1, 2),
    (2, 1),
    (2, 2),
    (0, 0),
    (1, 0),
    (2, 0),
];

/// One filter row of the window for a call: `x` from pixel 0's window column 0 (channel
/// 0); pixel p's column kx at `p·step + kx·col`. A row outside the image is the pad pixel
/// with `step = col = 0`.
#[cfg(not(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp)))]
#[derive(Clone, Copy)]
struct Row<'a> {
    pub x: &'a [i8],
    pub step: usize,
    pub col: usize,
}

/// The stream of groups `oc / 4` (see the module docs), or `None` when this form cannot
/// compute the operator exactly (a channel count, a multiplier, a shift or a sum bound out
/// of its range). `w` is TFLite's `[3][3][oc]`, `init` the sums' start per channel.
#[cfg(feature = "alloc")]
pub(crate) fn pack(
    w: &[i8],
    init: &[i32],
    mults: &[i32],
    shifts: &[i32],
    zo: i32,
    oc: usize,
) -> Option<alloc::vec::Vec<i32>> {
    let ok = oc % 4 == 0
        && oc > 0
        && w.len() == 9 * oc
        && [init.len(), mults.len(), shifts.len()] == [oc; 3]
        && mults.iter().all(|&m| m >= 0)
        && super::depthwise_conv::fast_form(init, 9, mults, shifts);
    if !ok {
        return None;
    }
    let w2 = |s: usize, c: usize| {
        let (ky, kx) = ORDER[s];
        (2 * i32::from(w[(ky * 3 + kx) * oc + c])) & 0xffff
    };
    let mut out = alloc::vec::Vec::with_capacity(oc / 4 * GROUP_WORDS);
    for q in 0..oc / 4 {
        let cs = 4 * q..4 * q + 4;
        out.extend(cs.clone().map(|c| init[c].wrapping_mul(2)));
        for p in 0..4 {
            out.extend(cs.clone().map(|c| w2(2 * p, c) | (w2(2 * p + 1, c) << 16)));
        }
        let c = 4 * q;
        out.extend([
            w2(8, c) | (w2(8, c + 1) << 16),
            w2(8, c + 2) | (w2(8, c + 3) << 16),
        ]);
        for c in cs {
            let e = -shifts[c];
            out.extend([mults[c], (1 << (e - 1)) + (zo << e), e]);
        }
    }
    Some(out)
}

/// A layer's shape as the kernel reads it: `n` pixels of `oc` channels a row from the
/// stream `w`, image rows read with `step`/`col` (see [`Row`]), the clamp [lo, hi] (within
/// the i8 range).
pub(crate) struct Layer<'w> {
    pub w: &'w [i32],
    pub oc: usize,
    pub n: usize,
    pub step: usize,
    pub col: usize,
    pub lo: i32,
    pub hi: i32,
}

impl Layer<'_> {
    /// One output row into `y` (n·oc values): window row k's pixel 0, column 0 at
    /// `x[at[k]]`, or, for `None` (a row outside the image), the pad pixel `pad` (oc
    /// values) with steps 0. `None`: a tensor is smaller than its geometry.
    pub(crate) fn row(
        &self,
        x: &[i8],
        at: [Option<usize>; 3],
        pad: &[i8],
        y: &mut [i8],
    ) -> Option<()> {
        let (oc, n) = (self.oc, self.n);
        // What the kernel reads and writes (the contract of its header): each image row
        // up to `reach` bytes from its start, inside `x`.
        let reach = (n.max(1) - 1)
            .checked_mul(self.step)
            .and_then(|v| v.checked_add(self.col.checked_mul(2)?)?.checked_add(oc));
        let last = reach.and_then(|r| x.len().checked_sub(r));
        if oc % 4 != 0
            || oc == 0
            || n == 0
            || self.w.len() < oc / 4 * GROUP_WORDS
            || n.checked_mul(oc).is_none_or(|v| y.len() < v)
            || pad.len() < oc
            || !at
                .iter()
                .all(|a| a.is_none_or(|a| last.is_some_and(|l| a <= l)))
        {
            return None;
        }
        #[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp))]
        {
            let groups = oc / 4;
            // Start, column step and the step from the end of a pixel's channels to the
            // next pixel (the pointer moves by oc over its groups): step − oc.
            let r = |a: Option<usize>| match a {
                Some(a) => (
                    x.as_ptr().wrapping_add(a) as u32,
                    self.col as u32,
                    self.step.wrapping_sub(oc) as u32,
                ),
                None => (pad.as_ptr() as u32, 0, oc.wrapping_neg() as u32),
            };
            let [r0, r1, r2] = at.map(r);
            let args: [u32; 14] = [
                r0.0,
                r1.0,
                r2.0,
                y.as_mut_ptr() as u32,
                self.w.as_ptr() as u32,
                r0.1,
                r1.1,
                r2.1,
                r0.2,
                r1.2,
                r2.2,
                n as u32,
                self.w.as_ptr().wrapping_add(groups * GROUP_WORDS) as u32,
                (groups % 2) as u32,
            ];
            // SAFETY: the assembly's contract: n ≥ 1, groups ≥ 1 (checked); for each image
            // row, pixel p < n, column kx < 3 and channel c < oc it reads x[at + p·step +
            // kx·col + c], below at + reach ≤ x.len() (checked above), for the pad row
            // (steps 0) pad[c], c < oc ≤ pad.len(); it reads the stream's first 34·groups
            // words (checked; word-aligned, an i32 slice) and `args`, and writes y[0..n·oc)
            // (checked), which nothing else refers to meanwhile.
            unsafe { dw3x3_s8_m4dsp(args.as_ptr()) };
            if self.lo > -128 || self.hi < 127 {
                clamp(&mut y[..n * oc], self.lo, self.hi);
            }
        }
        #[cfg(not(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp)))]
        {
            let row = |a: Option<usize>| match a {
                Some(a) => Row {
                    x: &x[a..],
                    step: self.step,
                    col: self.col,
                },
                None => Row {
                    x: pad,
                    step: 0,
                    col: 0,
                },
            };
            portable(at.map(row), self.w, oc, n, y, self.lo, self.hi);
        }
        Some(())
    }
}

/// `dst.copy_from_slice(src)` (equal lengths); on the M4 whole 16-byte blocks of aligned
/// rows go through `ldm`/`stm` (a ring row in about a fifth of `memcpy`'s instructions).
pub(crate) fn copy<T: Copy>(dst: &mut [T], src: &[T]) {
    #[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp))]
    {
        let bytes = core::mem::size_of_val(src);
        let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
        if dst.len() == src.len()
            && bytes > 0
            && bytes % 16 == 0
            && (d as usize | s as usize) % 4 == 0
        {
            // SAFETY: reads `bytes` bytes at `s` and writes as many at `d` (the two slices,
            // equal lengths, word-aligned: ldm/stm), 16 at a time, `bytes` a multiple of 16
            // and not 0; `dst` is borrowed mutably, so the two do not overlap. Two blocks a
            // pass (one test and branch): n = ⌈bytes/32⌉ passes, an odd block count
            // entering at the second block.
            unsafe {
                core::arch::asm!(
                    "adds {n}, {n}, #16",
                    "lsrs {n}, {n}, #5",
                    "bcc 3f",
                    "2:",
                    "ldmia {s}!, {{r2, r3, r4, r5}}",
                    "stmia {d}!, {{r2, r3, r4, r5}}",
                    "3:",
                    "ldmia {s}!, {{r2, r3, r4, r5}}",
                    "stmia {d}!, {{r2, r3, r4, r5}}",
                    "subs {n}, {n}, #1",
                    "bne 2b",
                    s = inout(reg) s => _,
                    d = inout(reg) d => _,
                    n = inout(reg) bytes => _,
                    out("r2") _,
                    out("r3") _,
                    out("r4") _,
                    out("r5") _,
                    options(nostack),
                );
            }
            return;
        }
    }
    dst.copy_from_slice(src);
}

/// `y` clamped to [lo, hi] (within the i8 range): the M4 kernels (this one's and the direct
/// convolution's) saturate to i8 only, so a narrower clamp is one pass over the row, four
/// bytes at a time (the last `y.len() % 4` one at a time). Out of line: one copy for both.
#[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp))]
#[inline(never)]
pub(crate) fn clamp(y: &mut [i8], lo: i32, hi: i32) {
    let rep = |v: i32| u32::from_ne_bytes([v as u8; 4]);
    let words = y.len() / 4;
    for v in &mut y[4 * words..] {
        *v = i32::from(*v).clamp(lo, hi) as i8;
    }
    if words == 0 {
        return;
    }
    // SAFETY: reads and writes the `4·words` bytes of `y` (borrowed mutably), a word at a
    // time (unaligned ldr/str are allowed on the M4), `words` ≥ 1.
    unsafe {
        core::arch::asm!(
            "2:",
            "ldr {v}, [{p}]",
            "ssub8 {t}, {v}, {lo}",
            "sel {v}, {v}, {lo}",
            "ssub8 {t}, {hi}, {v}",
            "sel {v}, {v}, {hi}",
            "str {v}, [{p}], #4",
            "subs {n}, {n}, #1",
            "bne 2b",
            p = inout(reg) y.as_mut_ptr() => _,
            n = inout(reg) words => _,
            lo = in(reg) rep(lo),
            hi = in(reg) rep(hi),
            v = out(reg) _,
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// [`row`] in plain Rust, the assembly's arithmetic step for step (other targets, and what
/// the host's tests check the stream against).
#[cfg(not(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp)))]
fn portable(rows: [Row; 3], w: &[i32], oc: usize, n: usize, y: &mut [i8], lo: i32, hi: i32) {
    let half = |v: i32, h: usize| i32::from((v >> (16 * h)) as i16);
    for p in 0..n {
        for (q, g) in w.chunks_exact(GROUP_WORDS).take(oc / 4).enumerate() {
            for j in 0..4 {
                let c = 4 * q + j;
                let mut acc = g[j];
                for (s, &(ky, kx)) in ORDER.iter().enumerate() {
                    let r = &rows[ky];
                    let x = i32::from(r.x[p * r.step + kx * r.col + c]);
                    let wv = if s < 8 {
                        half(g[4 + 4 * (s / 2) + j], s % 2)
                    } else {
                        half(g[20 + j / 2], j % 2)
                    };
                    acc = acc.wrapping_add(x * wv);
                }
                let (m, h, e) = (g[22 + 3 * j], g[23 + 3 * j], g[24 + 3 * j]);
                let b = h.wrapping_add(acc >> 31);
                let prod = (i64::from(acc) * i64::from(m) + (1 << 31)) >> 32;
                let v = b.wrapping_add(prod as i32) >> (e & 31);
                y[p * oc + c] = v.clamp(-128, 127).clamp(lo, hi) as i8;
            }
        }
    }
}

#[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp))]
extern "C" {
    /// `asm/thumbv7em/dw3x3_s8_m4dsp.S` (its header is the contract).
    #[link_name = concat!(
        "edgemm_", env!("CARGO_PKG_VERSION_MAJOR"), "_",
        env!("CARGO_PKG_VERSION_MINOR"), "_", env!("CARGO_PKG_VERSION_PATCH"),
        "_dw3x3_s8_m4dsp"
    )]
    fn dw3x3_s8_m4dsp(args: *const u32);
}
