//! f32 CONV_2D without im2col (the GEMM form of `conv`, same blob form and results within
//! f32 rounding): the patch matrix is read where the input lies.
//!
//! With dilation 1 along the width, the taps of one filter row of an output pixel are
//! kw·c_in adjacent input values, and those of the next output pixel of the row start
//! sw·c_in values further on. So for a run of output pixels of one row and one filter row
//! `fy`, the patch matrix is the input row read with a row stride of sw·c_in, and the
//! micro-kernel reads it in place (A with any strides, `SgemmArgs`) against rows
//! `fy·kw·c_in..` of the k×n weights (B, read in place: the weights are row-major), adding
//! it to what the filter rows before it summed (β = 1). Filter rows above or below the image
//! add nothing and are skipped. When a window crosses the left or right edge, the input rows
//! are first copied into a ring of zero-padded rows in the scratch (where im2col's patches
//! would go), one copy per input row instead of kw·kh copies per output pixel. Bias and
//! clamp follow, one pass over the block while it is in cache.
//!
//! With a kernel that has convolution variants (`SgemmKernel::conv`: AVX-512), one call
//! covers a tile's whole window instead: it walks the filter rows inside the image itself,
//! segments `dh` input rows apart, keeping the sums in registers, and adds bias and clamp in
//! its epilogue (no β = 1 passes over C, no second pass). The segments must then lie a
//! constant stride apart, so the ring holds 2·R − 1 rows (R = the rows one window spans):
//! input row iy at slot iy mod R and, below R − 1, again R slots later, so a window's rows
//! are always consecutive slots.
//!
//! The kernel reads whole panels of NR columns of B (NR/2 with a half-width variant). When n
//! is not made of such panels but has room for the last one, that panel ends at column n
//! and overlaps the one before it, whose overlapping columns it computes again (the same
//! sums; MobileNet-v2's 24 channels: two half-width panels, 0..16 and 8..24, as many
//! columns as one padded panel of 32). Else (n below a panel) each block first copies the
//! weights into the scratch with zero columns up to whole panels (k·NR values at most).
//!
//! CONV_2D's panel form (pointwise, [`Rows::pointwise`]) gives the weights as whole panels
//! of NR columns, k rows each, which the kernel reads as they lie (B rows NR apart). Over
//! weights that big, or over k×n weights of more than [`BIG_WEIGHTS_BYTES`], each panel runs
//! over all the tiles of a run rather than each tile over all the panels.
//!
//! [`Rows::new`] says whether a convolution runs so (else im2col): f32 weights, dilation 1
//! along the width, filter rows of at least [`MIN_SEG`] values ([`MIN_SEG_STRIDED`] with a
//! stride; [`MIN_SEG_CONV`] with convolution variants), and a ring and padded weights that
//! fit the patch scratch.

use super::conv::Geom;
use super::gemm_common;
use crate::error::Error;
use crate::gemm::pack::{row_tile, row_tiles};
use crate::kernels::f32::{ConvUkrs, SconvArgs, SgemmArgs, SgemmKernel, MAX_NR};

/// The fewest values of a filter row (kw·c_in) this form takes: shorter rows make each
/// kernel call too short for its fixed costs (a 1-channel input is cheap to im2col).
const MIN_SEG: usize = 8;
/// Below this many values a filter row is taken at stride 1 only, where im2col copies each
/// input value kh·kw times (ResNet-8's 3×3×3 first layer: 41 → 26 µs); at stride 2 it
/// copies them about kh·kw/4 times, and the short calls cost more than that (MobileNet-v1's
/// 3×3×3 stride-2 first layer: 79 → 87-96 µs).
const MIN_SEG_STRIDED: usize = 16;
/// The fewest with a kernel's convolution variants: one call per tile whatever the filter
/// rows, so short rows cost no more calls (KWS's 10×4×1 first layer: 4).
const MIN_SEG_CONV: usize = 4;

/// Weights read per tile above which [`Rows::run_conv`] runs each panel over every tile of
/// a run rather than each tile over every panel: a quarter of Zen 4's 1 MiB L2, which also
/// holds the run's A and the output.
const BIG_WEIGHTS_BYTES: usize = 256 * 1024;

/// The bias of a convolution without one (the kernels read one).
static ZERO_BIAS: [f32; MAX_NR] = [0.0; MAX_NR];

/// Values of the cache line the padded weights start on.
const ALIGN: usize = 16;

/// A checked f32 convolution ready to run without im2col.
pub(crate) struct Rows<'a> {
    g: Geom,
    /// k×n, row-major, or in panels (`panels`).
    w: &'a [f32],
    bias: Option<&'a [f32]>,
    lo: f32,
    hi: f32,
    ker: &'static SgemmKernel,
    /// Values between rows of the weights the kernel reads: n, or n up to whole panels
    /// (copied into the scratch after the ring), or NR when `w` is in panels.
    ldb: usize,
    /// Whether `w` holds the weights in panels of NR columns (n/NR panels of k rows, as
    /// CONV_2D's panel form stores them) rather than k×n.
    panels: bool,
    /// Values of a ring row ((ow − 1)·sw + kw pixels), or 0 when the input rows are read
    /// where they are (no window crosses the left or right edge).
    ring_row: usize,
    /// The kernel's convolution variants, when they run (see the file header).
    conv: Option<&'static ConvUkrs>,
    /// Rows of the ring: R, or 2·R − 1 with `conv`.
    slots: usize,
}

impl<'a> Rows<'a> {
    /// A pointwise convolution of `k` input and `n` output channels over `pixels` pixels,
    /// as one row of `pixels` (so a tile runs across the image's rows), if the kernel has
    /// convolution variants and reads the weights in place (no scratch: see
    /// [`in_place_panels`]); `panels`: the weights are in panels of the kernel's NR columns
    /// (n a multiple of NR), else k×n.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn pointwise(
        pixels: usize,
        k: usize,
        n: usize,
        w: &'a [f32],
        bias: Option<&'a [f32]>,
        clamp: (f32, f32),
        ker: &'static SgemmKernel,
        panels: bool,
    ) -> Option<Self> {
        ker.conv.as_ref()?;
        if panels && n % ker.nr != 0 {
            return None;
        }
        let g = Geom {
            batch: 1,
            ih: 1,
            iw: pixels,
            ic: k,
            oh: 1,
            ow: pixels,
            oc: n,
            kh: 1,
            kw: 1,
            sh: 1,
            sw: 1,
            dh: 1,
            dw: 1,
            pt: 0,
            pl: 0,
        };
        let rows = Self::new(&g, w, bias, clamp, 0, ker)?;
        // (A pointwise convolution has no ring: the variants always run it.)
        rows.conv?;
        Some(Rows {
            ldb: if panels { ker.nr } else { rows.ldb },
            panels,
            ..rows
        })
    }

    /// The convolution `g` over weights `w` (k×n), if it runs in this form with a patch
    /// scratch of `patch` f32 values, on micro-kernel `ker` (the selected one, or each in
    /// turn in the tests).
    pub(crate) fn new(
        g: &Geom,
        w: &'a [f32],
        bias: Option<&'a [f32]>,
        (lo, hi): (f32, f32),
        patch: usize,
        ker: &'static SgemmKernel,
    ) -> Option<Self> {
        let (n, nr, seg) = (g.oc, ker.nr, g.kw * g.ic);
        let strided = g.sh * g.sw > 1;
        let min_seg = match ker.conv {
            Some(_) => MIN_SEG_CONV,
            None if strided => MIN_SEG_STRIDED,
            None => MIN_SEG,
        };
        if g.dw != 1 || seg < min_seg || n == 0 {
            return None;
        }
        let k = g.kh.checked_mul(seg)?;
        if w.len() < k.checked_mul(n)? || bias.is_some_and(|b| b.len() < n) {
            return None;
        }
        // The columns the last panel's kernel reads, padded when n has no room for it.
        let (full, rest) = (n / nr * nr, n % nr);
        let ldb = match rest {
            _ if in_place_panels(n, nr, ker.half.is_some()) => n,
            _ if ker.half.is_some() && 2 * rest <= nr => full + nr / 2,
            _ => full + nr,
        };
        // (With room to start them on a cache line: a B row the kernel loads then never
        // straddles two.)
        let packed = if ldb == n {
            0
        } else {
            k.checked_mul(ldb)?.checked_add(ALIGN)?
        };
        // Padded columns needed: from −pl to (ow − 1)·sw + kw − 1 − pl.
        let span = (g.ow.max(1) - 1).checked_mul(g.sw)?.checked_add(g.kw)?;
        let ring_row = if g.pl == 0 && span <= g.iw {
            0
        } else {
            span.checked_mul(g.ic)?
        };
        let fits = |slots: usize| {
            slots
                .checked_mul(ring_row)
                .and_then(|r| r.checked_add(packed))
                .is_some_and(|r| r <= patch)
        };
        let r = ring_rows(g);
        let (conv, slots) = match &ker.conv {
            Some(c) if fits(2 * r - 1) => (Some(c), 2 * r - 1),
            // (Filter rows this short are left to im2col without the variants.)
            Some(_) if seg < MIN_SEG || (strided && seg < MIN_SEG_STRIDED) => return None,
            _ if fits(r) => (None, r),
            _ => return None,
        };
        Some(Rows {
            g: *g,
            w,
            bias,
            lo,
            hi,
            ker,
            ldb,
            panels: false,
            ring_row,
            conv,
            slots,
        })
    }

    #[cfg(feature = "std")]
    /// Columns a task of [`Rows::pointwise_cols`] starts and ends on a multiple of (the
    /// kernel's NR), when this is a pointwise form ([`Rows::pointwise`]) whose n is whole
    /// panels read where they lie; else `None` (its last panel would overlap the one before
    /// it, which another task may write).
    pub(crate) fn col_unit(&self) -> Option<usize> {
        let g = &self.g;
        let nr = self.ker.nr;
        let pointwise = g.ih == 1 && g.kh == 1 && g.kw == 1 && self.ring_row == 0;
        let whole = nr > 0 && g.oc % nr == 0 && (self.ldb == g.oc || self.panels);
        (pointwise && whole && self.conv.is_some()).then_some(nr)
    }

    #[cfg(feature = "std")]
    /// Columns `j0..j1` (multiples of [`Rows::col_unit`]) of a pointwise form's whole
    /// output: all its pixels of input `x`, into `y` (pixels·n f32, rows of n). Each output
    /// is the one [`Rows::block`] writes (a tile's sums over all of k, bias and clamp, in
    /// the kernel, whatever panels run beside it), so tasks that split the columns write
    /// what one call writes.
    ///
    /// # Safety
    /// `y` is valid for writes of pixels·n f32 and overlaps neither `x` nor the weights or
    /// bias; nothing else reads or writes its columns `j0..j1` meanwhile.
    pub(crate) unsafe fn pointwise_cols(
        &self,
        x: &[f32],
        y: *mut f32,
        (j0, j1): (usize, usize),
    ) -> Result<(), Error> {
        let bad = || Error::SizeOverflow;
        let (Some(conv), Some(unit)) = (self.conv, self.col_unit()) else {
            return Err(bad());
        };
        let (pixels, n) = (self.g.ow, self.g.oc);
        if j0 % unit != 0 || j1 % unit != 0 || j0 > j1 || j1 > n {
            return Err(bad());
        }
        let image = x.get(..pixels * self.g.ic).ok_or_else(bad)?;
        let out = Out {
            ptr: y,
            len: pixels * n,
            cols: (j0, j1),
        };
        // SAFETY: the caller's contract: `y` holds pixels·n f32 (out.len), apart from the
        // inputs, its columns j0..j1 this call's alone.
        unsafe { self.run_conv(conv, image, &[], self.w, 0, 0, pixels, out) }
    }

    /// Output pixels `p0..p0 + rows` (flat over batch, oh, ow) of input `x` into `y` (their
    /// rows of n values), with `patch` as the patch scratch.
    pub(crate) fn block(
        &self,
        x: &[f32],
        p0: usize,
        rows: usize,
        y: &mut [f32],
        patch: &mut [f32],
    ) -> Result<(), Error> {
        let g = &self.g;
        let bad = || Error::SizeOverflow;
        let n = g.oc;
        let (plane, ow) = ((g.oh * g.ow).max(1), g.ow.max(1));
        let (in_row, in_image) = (g.iw * g.ic, g.ih * g.iw * g.ic);
        let ring_len = self.slots * self.ring_row;
        let (ring, padded) = patch.split_at_mut(ring_len.min(patch.len()));
        if ring.len() < ring_len {
            return Err(bad());
        }
        let w = if self.ldb == n || self.panels {
            self.w
        } else {
            let k = g.kh * g.kw * g.ic;
            let skip = padded.as_ptr().align_offset(ALIGN * 4).min(ALIGN);
            let padded = padded.get_mut(skip..skip + k * self.ldb).ok_or_else(bad)?;
            for (d, s) in padded
                .chunks_exact_mut(self.ldb)
                .zip(self.w.chunks_exact(n))
            {
                d[..n].copy_from_slice(s);
                d[n..].fill(0.0);
            }
            &*padded
        };
        // The ring's pad columns stay 0.0; image columns are copied in as rows are needed.
        ring.fill(0.0);
        // (batch, input rows below this end are in the ring) of the rows copied so far.
        let mut loaded: Option<(usize, usize)> = None;
        let mut r = 0;
        while r < rows {
            let p = p0 + r;
            let (b, oy, ox0) = (p / plane, p % plane / ow, p % ow);
            let run = (ow - ox0).min(rows - r);
            let image = x.get(b * in_image..(b + 1) * in_image).ok_or_else(bad)?;
            // The window's input rows inside the image.
            let top = oy as i64 * g.sh as i64 - g.pt as i64;
            let first = top.max(0) as usize;
            let end = (top + ring_rows(g) as i64).clamp(0, g.ih as i64) as usize;
            if self.ring_row > 0 {
                let done = loaded.filter(|l| l.0 == b).map_or(0, |l| l.1);
                // Image columns 0..cols land at padded column pl on.
                let cols =
                    g.iw.min(self.ring_row / g.ic - g.pl.min(self.ring_row / g.ic));
                let r = ring_rows(g);
                for iy in done.max(first)..end {
                    let src = image
                        .get(iy * in_row..iy * in_row + cols * g.ic)
                        .ok_or_else(bad)?;
                    // At slot iy mod R, and again R slots on while within the ring.
                    let mut slot = iy % r;
                    while slot < self.slots {
                        let at = slot * self.ring_row + g.pl * g.ic;
                        let dst = ring.get_mut(at..at + cols * g.ic).ok_or_else(bad)?;
                        dst.copy_from_slice(src);
                        slot += r;
                    }
                }
                loaded = Some((b, done.max(end)));
            }
            let out = y.get_mut(r * n..(r + run) * n).ok_or_else(bad)?;
            self.run_of_pixels(image, ring, w, oy, ox0, run, out)?;
            r += run;
        }
        if self.conv.is_none() {
            gemm_common::bias_clamp(
                y.get_mut(..rows * n).ok_or_else(bad)?,
                n,
                self.bias,
                self.lo,
                self.hi,
            );
        }
        Ok(())
    }

    /// Output pixels ox0..ox0 + run of output row oy into `out` (before bias and clamp
    /// unless `conv`), with weights `w` (k rows of `ldb` values).
    #[allow(clippy::too_many_arguments)]
    fn run_of_pixels(
        &self,
        image: &[f32],
        ring: &[f32],
        w: &[f32],
        oy: usize,
        ox0: usize,
        run: usize,
        out: &mut [f32],
    ) -> Result<(), Error> {
        let g = &self.g;
        let bad = || Error::SizeOverflow;
        let (n, seg, step) = (g.oc, g.kw * g.ic, g.sw * g.ic);
        let (mr, nr) = (self.ker.mr, self.ker.nr);
        // Filter row fy's input row (padded or in place), if inside the image.
        let src_row = |fy: usize| -> Option<&[f32]> {
            let iy = usize::try_from(g.in_y(oy, fy))
                .ok()
                .filter(|&iy| iy < g.ih)?;
            Some(if self.ring_row > 0 {
                let at = (iy % ring_rows(g)) * self.ring_row;
                ring.get(at..at + self.ring_row).unwrap_or(&[])
            } else {
                let at = iy * g.iw * g.ic;
                image.get(at..at + g.iw * g.ic).unwrap_or(&[])
            })
        };
        if let Some(conv) = self.conv {
            let out = Out {
                ptr: out.as_mut_ptr(),
                len: out.len(),
                cols: (0, n),
            };
            // SAFETY: `out` is the borrowed slice itself, all of its columns.
            return unsafe { self.run_conv(conv, image, ring, w, oy, ox0, run, out) };
        }
        for t in 0..row_tiles(run, mr) {
            let (i0, h) = row_tile(run, mr, t);
            let half = self.ker.half.is_some();
            for (jr, cols, read) in panels(n, nr, (half, false), self.ldb != n) {
                // A panel of NR columns, or NR/2 with the half-width variant: the columns
                // the kernel reads (`ldb` has room for them).
                let ukr = match self.ker.half {
                    Some(ukr) if read < nr => ukr,
                    _ => self.ker.ukr,
                };
                let c_at = i0 * n + jr;
                let c = out
                    .get_mut(c_at..c_at + (h - 1) * n + cols)
                    .ok_or_else(bad)?;
                let mut beta = 0.0;
                for fy in 0..g.kh {
                    let Some(src) = src_row(fy) else { continue };
                    // In padded columns (ring) or image columns (pl = 0 then).
                    let a_at = (ox0 + i0) * step;
                    let a = src.get(a_at..a_at + (h - 1) * step + seg).ok_or_else(bad)?;
                    let b_at = fy * seg * self.ldb + jr;
                    let b = w
                        .get(b_at..b_at + (seg - 1) * self.ldb + read)
                        .ok_or_else(bad)?;
                    if cols > read {
                        return Err(bad());
                    }
                    let args = SgemmArgs {
                        a: a.as_ptr(),
                        b: b.as_ptr(),
                        c: c.as_mut_ptr(),
                        k: seg,
                        a_rs: (step * 4) as isize,
                        a_ks: 4,
                        b_ks: (self.ldb * 4) as isize,
                        c_rs: (n * 4) as isize,
                        m: h,
                        n: cols,
                        alpha: 1.0,
                        beta,
                        b_pf: (nr * 4) as isize,
                    };
                    // SAFETY: the kernel runs on this CPU (`sgemm_kernel` selected it);
                    // 1 ≤ h ≤ MR and 1 ≤ cols ≤ the columns it reads (`read`: NR, or NR/2
                    // for the half-width variant). A's h rows of seg values at `step` apart
                    // lie in `a`, B's seg rows of `read` columns at ldb apart in `b`, and C's
                    // h rows of `cols` values at n apart in `c` (all checked just above);
                    // C (the output) overlaps neither the input, the ring nor the weights.
                    unsafe { ukr(&args) };
                    beta = 1.0;
                }
                if beta == 0.0 {
                    // No filter row inside the image: the sums are empty.
                    for row in c.chunks_mut(n) {
                        row[..cols].fill(0.0);
                    }
                }
            }
        }
        Ok(())
    }

    /// [`Rows::run_of_pixels`] with the kernel's convolution variants: one call per tile
    /// over the filter rows inside the image, bias and clamp included; only the panels of
    /// columns `out.cols` (all n, or whole panels: see [`Rows::pointwise_cols`]).
    ///
    /// # Safety
    /// `out.ptr` is valid for writes of `out.len` f32, overlaps none of the inputs, and
    /// nothing else reads or writes its columns `out.cols` meanwhile.
    #[allow(clippy::too_many_arguments)]
    unsafe fn run_conv(
        &self,
        conv: &ConvUkrs,
        image: &[f32],
        ring: &[f32],
        w: &[f32],
        oy: usize,
        ox0: usize,
        run: usize,
        out: Out,
    ) -> Result<(), Error> {
        let g = &self.g;
        let bad = || Error::SizeOverflow;
        let (n, seg, step) = (g.oc, g.kw * g.ic, g.sw * g.ic);
        // The panels from column j0 over `cols` columns (all n: the panels of n).
        let (j0, cols_n) = (out.cols.0, out.cols.1 - out.cols.0);
        let (mr, nr) = (self.ker.mr, self.ker.nr);
        // The filter rows inside the image: fy0..fy0 + segs (in_y grows with fy).
        let inside = |fy: &usize| (0..g.ih as i64).contains(&g.in_y(oy, *fy));
        let fy0 = (0..g.kh).find(inside).unwrap_or(g.kh);
        let segs = (fy0..g.kh).take_while(inside).count();
        // The input rows of those filter rows: from `first` (the slot of row in_y(oy, fy0)
        // in the ring, whose window rows are consecutive slots; or the image row), rows of
        // `row` values, dh rows apart.
        let (src, row) = if self.ring_row > 0 {
            (ring, self.ring_row)
        } else {
            (image, g.iw * g.ic)
        };
        let first = if segs == 0 {
            0
        } else {
            let iy = g.in_y(oy, fy0) as usize;
            if self.ring_row > 0 {
                iy % ring_rows(g)
            } else {
                iy
            }
        };
        let rows_spanned = segs.saturating_sub(1) * g.dh + 1;
        let window = src
            .get(first * row..(first + rows_spanned) * row)
            .ok_or_else(bad)?;
        let widths = (true, conv.three_quarter.is_some());
        let all = || panels(cols_n, nr, widths, self.ldb != n || self.panels);
        let tiles = row_tiles(run, mr);
        // Tiles outer, panels inner: a tile's A stays in cache while every panel reads it.
        // Weights too big to stay in L2 would then be read from memory again for each tile,
        // so panels go outer there: a panel stays in cache while every tile of the run reads
        // it, and what is read again is the run's A, from L2.
        let big = self.panels || n * segs * seg * 4 > BIG_WEIGHTS_BYTES;
        // (One loop over (tile, panel) in either order, stepped by hand: iterator adapters
        // or a closure for the body cost small layers 10-35%: MobileNet-v1 0.25's 8 → 16
        // channels, 7.9 → 10-12.5 µs on Zen 4.)
        let (mut outer, mut inner) = (all(), all());
        let mut pan = if big { outer.next() } else { inner.next() };
        let mut t = 0;
        while t < tiles {
            let Some((jr, cols, read)) = pan else { break };
            let jr = j0 + jr;
            let tile = t;
            if big {
                t += 1;
                if t == tiles {
                    t = 0;
                    pan = outer.next();
                }
            } else {
                pan = inner.next();
                if pan.is_none() {
                    t += 1;
                    inner = all();
                    pan = inner.next();
                }
            }
            let (i0, h) = row_tile(run, mr, tile);
            let ukr = match conv.three_quarter {
                _ if read == nr => conv.full,
                Some(ukr) if read == nr / 4 * 3 => ukr,
                _ => conv.half,
            };
            let c_at = i0 * n + jr;
            if c_at + (h - 1) * n + cols > out.len || jr + cols > out.cols.1 {
                return Err(bad());
            }
            // (In bounds: checked just above.)
            let c = out.ptr.wrapping_add(c_at);
            let bias = match self.bias {
                Some(b) => b.get(jr..jr + cols).ok_or_else(bad)?,
                None => &ZERO_BIAS[..cols],
            };
            if segs == 0 {
                // No filter row inside the image: the sums are empty.
                for i in 0..h {
                    for (j, b) in bias.iter().enumerate() {
                        // SAFETY: row i, column jr + j of the tile lie in the output
                        // (checked above), in columns this call owns (caller).
                        unsafe { *c.add(i * n + j) = clamp(*b, self.lo, self.hi) };
                    }
                }
                continue;
            }
            // The last segment's h rows, the furthest A values read.
            let a_at = (ox0 + i0) * step;
            let last = (segs - 1) * g.dh * row + a_at;
            window
                .get(last..last + (h - 1) * step + seg)
                .ok_or_else(bad)?;
            // Column jr: in its panel (k rows of NR), or in each row of k×n.
            let b_at = if self.panels {
                jr / nr * (g.kh * seg * nr) + fy0 * seg * nr
            } else {
                fy0 * seg * self.ldb + jr
            };
            let b = w
                .get(b_at..b_at + (segs * seg - 1) * self.ldb + read)
                .ok_or_else(bad)?;
            if cols > read {
                return Err(bad());
            }
            let args = SconvArgs {
                a: window[a_at..].as_ptr(),
                b: b.as_ptr(),
                c,
                k: seg,
                a_rs: (step * 4) as isize,
                a_ks: 4,
                b_ks: (self.ldb * 4) as isize,
                c_rs: (n * 4) as isize,
                m: h,
                n: cols,
                segs,
                a_ss: (g.dh * row * 4) as isize,
                bias: bias.as_ptr(),
                b_pf: (nr * 4) as isize,
                lo: self.lo,
                hi: self.hi,
            };
            // SAFETY: the kernel runs on this CPU (`sgemm_kernel` selected the kernel
            // these variants belong to); 1 ≤ h ≤ MR, 1 ≤ cols ≤ the columns it reads
            // (`read`), segs ≥ 1. A's h rows of `segs` segments of seg values (rows
            // `step` apart, segments dh·row apart) lie in `window` (the first segment's
            // rows start at a_at; the last one's end is checked above, and every other
            // lies between), B's segs·seg rows of `read` columns at ldb apart in `b`, the
            // bias's cols values in `bias`, and C's h rows of `cols` values at n apart
            // from `c` in the output (checked above), in columns this call owns (caller);
            // C (the output) overlaps neither the input, the ring, the weights nor the
            // bias (caller).
            unsafe { ukr(&args) };
        }
        Ok(())
    }
}

/// Where [`Rows::run_conv`] writes: `len` f32 from `ptr` (rows of n), of which only the
/// columns `cols.0..cols.1` (all n, or whole panels of a column task).
struct Out {
    ptr: *mut f32,
    len: usize,
    cols: (usize, usize),
}

/// TFLite's clamp `min(max(v, lo), hi)`, as the kernels do it (NaN stays NaN).
fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v < lo { lo } else { v };
    if hi < v {
        hi
    } else {
        v
    }
}

/// Whether the weights (n columns) are read in place by panels of `nr` columns, or `nr`/2
/// with a half-width variant (`half`): n is made of such panels, or has room for the last
/// one ending at column n (see [`panels`]).
fn in_place_panels(n: usize, nr: usize, half: bool) -> bool {
    n % nr == 0 || n >= nr || (half && 2 * n >= nr)
}

/// The panels a tile runs over n columns, kernels of `nr` columns (`(half, three)`: and a
/// half-width variant of nr/2, a three-quarter one of 3·nr/4): (first column, columns
/// written, columns the kernel reads: nr, nr/2 or 3·nr/4). With `padded` weights (rows of
/// whole panels) they are the columns from 0 in steps of nr, the last one read by the
/// narrowest variant its columns fit. Else ([`in_place_panels`]) every panel is whole and
/// the last ends at column n, over columns of the one before it.
fn panels(
    n: usize,
    nr: usize,
    (half, three): (bool, bool),
    padded: bool,
) -> impl Iterator<Item = (usize, usize, usize)> {
    let (h, q) = (nr / 2, nr / 4 * 3);
    // The narrowest variant that reads `cols` columns.
    let read = move |cols: usize| match cols {
        _ if half && cols <= h => h,
        _ if three && half && cols <= q => q,
        _ => nr,
    };
    // Columns before this one are written.
    let mut jr = 0;
    core::iter::from_fn(move || {
        let rest = n.checked_sub(jr).filter(|&r| r > 0)?;
        let r = read(rest);
        let p = if rest >= nr {
            (jr, nr, nr)
        } else if padded {
            (jr, rest, r)
        } else if r < nr && n >= r {
            (n - r, r, r)
        } else if n >= nr {
            (n - nr, nr, nr)
        } else {
            // h < n < nr: the first of two half-width panels (the second ends at n).
            (jr, h, h)
        };
        jr = p.0 + p.1;
        Some(p)
    })
}

/// Input rows one window spans: (kh − 1)·dh + 1.
fn ring_rows(g: &Geom) -> usize {
    (g.kh.max(1) - 1) * g.dh + 1
}

#[cfg(test)]
mod tests {
    use super::{Geom, Rows};
    use crate::arch::cpu_info;
    use crate::kernels::f32::SGEMM_KERNELS;
    use alloc::vec;
    use alloc::vec::Vec;

    /// Reference sums in f64 (taps outside the image skipped), then bias and clamp.
    fn reference(g: &Geom, x: &[f32], w: &[f32], bias: &[f32], lo: f32, hi: f32) -> Vec<f32> {
        let mut y = vec![0f32; g.batch * g.oh * g.ow * g.oc];
        for b in 0..g.batch {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    for o in 0..g.oc {
                        let mut s = 0f64;
                        for fy in 0..g.kh {
                            for fx in 0..g.kw {
                                let Some(at) = g.in_pixel(b, g.in_y(oy, fy), g.in_x(ox, fx)) else {
                                    continue;
                                };
                                for c in 0..g.ic {
                                    let k = (fy * g.kw + fx) * g.ic + c;
                                    s += f64::from(x[at + c]) * f64::from(w[k * g.oc + o]);
                                }
                            }
                        }
                        let v = (s + f64::from(bias[o])) as f32;
                        y[((b * g.oh + oy) * g.ow + ox) * g.oc + o] = v.max(lo).min(hi);
                    }
                }
            }
        }
        y
    }

    /// The panels cover columns 0..n, each inside them, whole (NR, or NR/2 when half-width,
    /// 3·NR/4 when three-quarter) unless the weights are padded.
    #[test]
    fn panels_cover_the_columns() {
        for nr in [8, 12, 16, 32] {
            for (half, three) in [(false, false), (true, false), (true, true)] {
                for n in 1..3 * nr + 3 {
                    for padded in [false, true] {
                        if !padded && !super::in_place_panels(n, nr, half) {
                            continue;
                        }
                        let mut seen = vec![false; n];
                        let mut end = 0;
                        for (j, cols, read) in super::panels(n, nr, (half, three), padded) {
                            let q = if three { nr / 4 * 3 } else { nr };
                            let widths = [nr, if half { nr / 2 } else { nr }, q];
                            assert!(widths.contains(&read), "{nr} {half} {three} {n}");
                            assert!(j + cols <= n && cols >= 1 && cols <= read, "{nr} {n}");
                            assert!(padded || cols == read, "{nr} {half} {n}");
                            // Each panel ends past the one before it.
                            assert!(j + cols > end && j <= end, "{nr} {half} {n}");
                            end = j + cols;
                            seen[j..j + cols].fill(true);
                            // Padded: the narrowest variant reading them.
                            let fits = widths.iter().filter(|&&w| w >= cols).min();
                            assert!(!padded || fits == Some(&read), "{nr} {half} {three} {n}");
                        }
                        assert!(end == n && seen.iter().all(|&s| s), "{nr} {half} {n}");
                    }
                }
            }
        }
    }

    /// Every runnable kernel whose panels fit, over geometries with and without padding,
    /// strides, row dilation, batches and blocks that start and end inside output rows:
    /// the reference within f32 rounding of the sums.
    #[test]
    fn matches_the_reference_on_every_kernel() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 2001) as f32 / 1000.0 - 1.0
        };
        // (batch, ih, iw, ic, oc, kh, kw, sh, sw, dh, pt, pl, oh, ow)
        let cases = [
            (1, 9, 9, 3, 16, 3, 3, 1, 1, 1, 1, 1, 9, 9),
            (2, 8, 7, 4, 32, 3, 3, 1, 1, 1, 1, 1, 8, 7),
            (1, 10, 11, 6, 48, 3, 3, 2, 2, 1, 0, 0, 4, 5),
            (1, 9, 8, 8, 64, 3, 3, 2, 2, 1, 1, 1, 5, 4),
            (1, 11, 9, 3, 16, 3, 3, 1, 1, 2, 2, 1, 11, 9),
            (1, 6, 6, 16, 32, 1, 1, 2, 2, 1, 0, 0, 3, 3),
            (1, 7, 12, 4, 24, 5, 4, 1, 2, 1, 2, 1, 7, 6),
            (1, 1, 3, 8, 16, 2, 3, 1, 1, 2, 1, 1, 3, 3),
            (1, 12, 12, 6, 8, 3, 3, 2, 2, 1, 0, 1, 6, 6),
            (1, 5, 7, 4, 5, 3, 3, 1, 1, 1, 1, 1, 5, 7),
            // Short filter rows (convolution variants only): KWS's 10×4×1 first layer with
            // SAME padding, a 3×3×2 with windows above, below, beside and all outside the
            // image.
            (1, 13, 10, 1, 64, 10, 4, 2, 2, 1, 4, 1, 7, 5),
            (1, 2, 6, 2, 40, 3, 3, 1, 1, 2, 3, 1, 6, 6),
            // Pointwise, as `Rows::pointwise` flattens it (one row of pixels); output
            // channels not in whole panels (the last panel over the one before it).
            (1, 1, 37, 24, 48, 1, 1, 1, 1, 1, 0, 0, 1, 37),
            (1, 1, 31, 144, 24, 1, 1, 1, 1, 1, 0, 0, 1, 31),
            (1, 1, 29, 16, 56, 1, 1, 1, 1, 1, 0, 0, 1, 29),
            (1, 6, 5, 8, 17, 3, 3, 1, 1, 1, 1, 1, 6, 5),
        ];
        for (batch, ih, iw, ic, oc, kh, kw, sh, sw, dh, pt, pl, oh, ow) in cases {
            let g = Geom {
                batch,
                ih,
                iw,
                ic,
                oh,
                ow,
                oc,
                kh,
                kw,
                sh,
                sw,
                dh,
                dw: 1,
                pt,
                pl,
            };
            let x: Vec<f32> = (0..batch * ih * iw * ic).map(|_| rnd()).collect();
            let w: Vec<f32> = (0..kh * kw * ic * oc).map(|_| rnd()).collect();
            let bias: Vec<f32> = (0..oc).map(|_| rnd()).collect();
            let (lo, hi) = (-0.5, 1.5);
            let want = reference(&g, &x, &w, &bias, lo, hi);
            let m = batch * oh * ow;
            let k = kh * kw * ic;
            let mut ran = 0;
            for ker in SGEMM_KERNELS {
                if !cpu_info().features.contains(ker.requires) {
                    continue;
                }
                // (Room for any kernel's padded weights: NEON's NR = 12 pads 64 columns to 72.)
                let patch = 1 << 15;
                let Some(rows) = Rows::new(&g, &w, Some(&bias), (lo, hi), patch, ker) else {
                    continue;
                };
                ran += 1;
                for block in [1, 5, 16, m] {
                    let mut y = vec![f32::NAN; m * oc];
                    let mut ring = vec![f32::NAN; patch];
                    let mut p0 = 0;
                    while p0 < m {
                        let r = block.min(m - p0);
                        rows.block(&x, p0, r, &mut y[p0 * oc..(p0 + r) * oc], &mut ring)
                            .unwrap();
                        p0 += r;
                    }
                    for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                        // Each sum of k products of values below 1, in another order.
                        let tol = (k as f32 + 4.0) * f32::EPSILON * (k as f32 + 1.0);
                        assert!(
                            (a - b).abs() <= tol,
                            "{} {g:?} block {block} at {i}: {a} vs {b}",
                            ker.name
                        );
                    }
                }
            }
            // (Every kernel takes every case but for short filter rows without convolution
            // variants: the weights are padded to whole panels.)
            let runnable = SGEMM_KERNELS.iter().filter(|k| {
                cpu_info().features.contains(k.requires)
                    && (k.conv.is_some() || g.kw * g.ic >= super::MIN_SEG_STRIDED)
            });
            assert!(ran >= runnable.count(), "{g:?}");
        }
    }
}
