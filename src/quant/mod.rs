//! int8 GEMM: exact i32 products with zero points, and requantized i8/u8 output bit-exact
//! with TFLite's reference kernels.
//!
//! Semantics (TFLite's int8 scheme): `real = scale·(q − zero_point)`. [`qgemm`] computes
//! `C[i,j] = Σₚ (A[i,p] − za)·(B[p,j] − zb)` exactly in i32 for activations A of type i8 or
//! u8 and weights B of type i8. A [`Requantized`] output then applies, per element,
//! `acc + bias[j]` → `MultiplyByQuantizedMultiplier(·, multiplier, shift)` (the double
//! rounding reference form; see [`crate::reference::multiply_by_quantized_multiplier`]) →
//! `+ output_zero_point` → clamp → i8/u8, with the scale per tensor or per output channel
//! (= per column of C).
//!
//! Exactness: the i32 arithmetic wraps, so results are exact whenever the true value fits
//! i32, which is guaranteed for `k · max|a − za| · max|b − zb| < 2^31`: any values and zero
//! points up to k = 33 025, symmetric i8 (zero points 0) up to k = 131 071. A larger k is
//! an [`Error::KTooLarge`].
//!
//! Without `alloc`: a [`Context`] with the caller's workspace (sized by `const fn`s) and
//! weights prepacked into caller memory or read in place from flash ([`PackedQBRef`]).

mod driver;
#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics, feature = "alloc"))]
mod gemv;
mod pack;
mod packed;
pub(crate) mod requant;
mod workspace;

#[cfg(feature = "alloc")]
use crate::arch::cpu_info;
use crate::context::Context;
use crate::error::{Error, Operand};
#[cfg(feature = "alloc")]
use crate::gemm::plan::chunk;
use crate::gemm::raw::Raw;
#[cfg(feature = "alloc")]
use crate::kernels::int8::QgemmKernel;
use crate::kernels::qgemm_kernel;
#[cfg(feature = "alloc")]
use crate::kernels::Kernel;
use crate::matrix::{MatMut, MatRef};
#[cfg(feature = "alloc")]
use crate::threads;
pub(crate) use driver::Segments;
#[cfg(feature = "alloc")]
use driver::{run_block, workspace_bytes, QStrategy, Terms};
use driver::{Dest, QbSource};
#[cfg(feature = "alloc")]
pub(crate) use packed::pack_bytes_for;
pub(crate) use packed::PackedView;
pub use packed::{qgemm_packed_b_size, PackedQBRef};
use requant::{Mults, RqPlan};
pub use workspace::{qgemm_packed_workspace_size, qgemm_workspace_size};
pub(crate) use workspace::{qgemm_workspace_size_for, WsPlan};

mod sealed {
    pub trait Sealed {}
    impl Sealed for i8 {}
    impl Sealed for u8 {}
}

/// An 8-bit activation type: `i8` or `u8`.
pub trait QuantInput: sealed::Sealed + Copy + Send + Sync + Into<i32> + 'static {
    /// True for i8.
    const SIGNED: bool;
    /// The type's range, as i32.
    const MIN: i32;
    const MAX: i32;
}

impl QuantInput for i8 {
    const SIGNED: bool = true;
    const MIN: i32 = -128;
    const MAX: i32 = 127;
}

impl QuantInput for u8 {
    const SIGNED: bool = false;
    const MIN: i32 = 0;
    const MAX: i32 = 255;
}

/// An 8-bit output type of a requantized [`qgemm`] ([`Requantized`]): `i8` or `u8`.
pub trait QuantOutput: sealed::Sealed + Copy + Send + Sync + 'static {
    /// The type's range, as i32.
    const MIN: i32;
    const MAX: i32;
}

impl QuantOutput for i8 {
    const MIN: i32 = -128;
    const MAX: i32 = 127;
}

impl QuantOutput for u8 {
    const MIN: i32 = 0;
    const MAX: i32 = 255;
}

/// The fixed-point scale of [`Requantize`]: `real ≈ multiplier · 2^(shift − 31)` (see
/// [`quantize_multiplier`]), `shift` in −31..=30.
#[derive(Clone, Copy, Debug)]
pub enum Scale<'a> {
    /// One scale for the whole output.
    PerTensor { multiplier: i32, shift: i32 },
    /// One scale per output channel (column of C); both slices have n entries.
    PerChannel {
        multipliers: &'a [i32],
        shifts: &'a [i32],
    },
}

/// How a requantized [`qgemm`] ([`Requantized`]) turns i32 accumulators into 8-bit outputs.
#[derive(Clone, Copy, Debug)]
pub struct Requantize<'a> {
    /// Added to the accumulator of column j before scaling (n entries), as TFLite's bias.
    pub bias: Option<&'a [i32]>,
    pub scale: Scale<'a>,
    /// Added after scaling; within the output type's range.
    pub output_zero_point: i32,
    /// Output clamp (a fused ReLU/ReLU6 or the type's range), intersected with the output
    /// type's range.
    pub clamp_min: i32,
    pub clamp_max: i32,
}

impl<'a> Requantize<'a> {
    /// No bias, no clamp beyond the output type's range.
    pub fn new(scale: Scale<'a>, output_zero_point: i32) -> Self {
        Requantize {
            bias: None,
            scale,
            output_zero_point,
            clamp_min: i32::MIN,
            clamp_max: i32::MAX,
        }
    }

    /// With a per-column bias.
    pub fn with_bias(mut self, bias: &'a [i32]) -> Self {
        self.bias = Some(bias);
        self
    }

    /// With an output clamp (in output units, zero point included).
    pub fn with_clamp(mut self, min: i32, max: i32) -> Self {
        self.clamp_min = min;
        self.clamp_max = max;
        self
    }

    #[cfg(feature = "alloc")]
    pub(crate) fn plan<O: QuantOutput>(&self, n: usize) -> Result<RqPlan<'a>, Error> {
        self.plan_range(n, O::MIN, O::MAX)
    }

    /// The validated plan for n columns of int8 output.
    pub(crate) fn plan_i8(&self, n: usize) -> Result<RqPlan<'a>, Error> {
        self.plan_range(n, -128, 127)
    }

    /// The validated plan for n columns of an output type with range `o_min..=o_max`.
    fn plan_range(&self, n: usize, o_min: i32, o_max: i32) -> Result<RqPlan<'a>, Error> {
        let check_len = |what: &'static str, len: usize| {
            if len == n {
                Ok(())
            } else {
                Err(Error::LengthMismatch {
                    what,
                    expected: n,
                    got: len,
                })
            }
        };
        if let Some(b) = self.bias {
            check_len("bias", b.len())?;
        }
        let check_shift = |channel: usize, shift: i32| {
            if (-31..=30).contains(&shift) {
                Ok(())
            } else {
                Err(Error::ShiftOutOfRange { channel, shift })
            }
        };
        // One pass over the channels (this runs on every call): every shift in range, and
        // the forms an output stage may compute more cheaply (see `requant::arm`): no left
        // shift; every shift a right shift of at least 1 with no multiplier at −2^31 or
        // −2^31 + 1; no negative multiplier.
        let (mults, no_left_shift, right_shift_only, mults_nonneg, least) = match self.scale {
            Scale::PerTensor { multiplier, shift } => {
                check_shift(0, shift)?;
                (
                    Mults::PerTensor { multiplier, shift },
                    shift <= 0,
                    shift < 0 && multiplier > i32::MIN + 1,
                    multiplier >= 0,
                    shift,
                )
            }
            Scale::PerChannel {
                multipliers,
                shifts,
            } => {
                check_len("per-channel multipliers", multipliers.len())?;
                check_len("per-channel shifts", shifts.len())?;
                let (mut in_range, mut no_left, mut right_only) = (true, true, true);
                let (mut nonneg, mut least) = (true, 0);
                for (&m, &s) in multipliers.iter().zip(shifts) {
                    in_range &= (-31..=30).contains(&s);
                    no_left &= s <= 0;
                    right_only &= s < 0 && m > i32::MIN + 1;
                    nonneg &= m >= 0;
                    least = least.min(s);
                }
                if !in_range {
                    for (c, &s) in shifts.iter().enumerate() {
                        check_shift(c, s)?;
                    }
                }
                (
                    Mults::PerChannel {
                        multipliers,
                        shifts,
                    },
                    no_left,
                    right_only,
                    nonneg,
                    least,
                )
            }
        };
        if !(o_min..=o_max).contains(&self.output_zero_point) {
            return Err(Error::ZeroPointOutOfRange {
                operand: Operand::C,
                value: self.output_zero_point,
                min: o_min,
                max: o_max,
            });
        }
        let (lo, hi) = (self.clamp_min.max(o_min), self.clamp_max.min(o_max));
        if lo > hi {
            return Err(Error::EmptyClamp {
                min: self.clamp_min,
                max: self.clamp_max,
            });
        }
        Ok(RqPlan {
            mults,
            out_zp: self.output_zero_point,
            lo,
            hi,
            no_left_shift,
            zp_fits: requant::zp_fits(self.output_zero_point, least),
            right_shift_only,
            mults_nonneg,
            // Set by the call once k and the zero points are known (Out::note_range).
            acc_small: false,
        })
    }
}

/// TFLite's `QuantizeMultiplier`: `(multiplier, shift)` with `real ≈ multiplier ·
/// 2^(shift − 31)`, the multiplier in [2^30, 2^31) (or 0 for a zero scale). Scales below
/// 2^−31 flush to (0, 0), as TFLite does; an infinite, NaN or ≥ 2^30 scale is an error.
pub fn quantize_multiplier(real: f64) -> Result<(i32, i32), Error> {
    crate::reference::quantize_multiplier(real).ok_or(Error::InvalidScale)
}

/// The largest k for which `qgemm` is exact with these zero points, whatever the data.
pub fn max_exact_k<A: QuantInput>(a_zero_point: i32, b_zero_point: i32) -> usize {
    let ma = (a_zero_point - A::MIN).max(A::MAX - a_zero_point) as u64;
    let mb = (b_zero_point + 128).max(127 - b_zero_point) as u64;
    match ma * mb {
        0 => usize::MAX,
        p => usize::try_from((i32::MAX as u64) / p).unwrap_or(usize::MAX),
    }
}

fn check_zero_points<A: QuantInput>(za: i32, zb: i32) -> Result<(), Error> {
    if !(A::MIN..=A::MAX).contains(&za) {
        return Err(Error::ZeroPointOutOfRange {
            operand: Operand::A,
            value: za,
            min: A::MIN,
            max: A::MAX,
        });
    }
    if !(-128..=127).contains(&zb) {
        return Err(Error::ZeroPointOutOfRange {
            operand: Operand::B,
            value: zb,
            min: -128,
            max: 127,
        });
    }
    Ok(())
}

/// The right-hand operand B (k×n, i8) of [`qgemm`]: a strided view, or weights packed
/// once ([`PackedQB`] with `alloc`, [`PackedQBRef`] in caller memory or flash). Each
/// converts into it, so `qgemm` takes any of them as it is.
#[derive(Clone, Copy, Debug)]
pub enum QgemmB<'a> {
    /// B read where it lies (packed per call).
    View(MatRef<'a, i8>),
    /// B packed once for a kernel; the call runs that kernel.
    #[cfg(feature = "alloc")]
    Packed(&'a PackedQB),
    /// B packed into caller memory; the call runs the kernel it was packed for.
    PackedRef(PackedQBRef<'a>),
}

impl<'a> From<MatRef<'a, i8>> for QgemmB<'a> {
    fn from(b: MatRef<'a, i8>) -> Self {
        QgemmB::View(b)
    }
}

#[cfg(feature = "alloc")]
impl<'a> From<&'a PackedQB> for QgemmB<'a> {
    fn from(b: &'a PackedQB) -> Self {
        QgemmB::Packed(b)
    }
}

impl<'a> From<PackedQBRef<'a>> for QgemmB<'a> {
    fn from(b: PackedQBRef<'a>) -> Self {
        QgemmB::PackedRef(b)
    }
}

impl<'a> From<&PackedQBRef<'a>> for QgemmB<'a> {
    fn from(b: &PackedQBRef<'a>) -> Self {
        QgemmB::PackedRef(*b)
    }
}

/// The output of [`qgemm`] and its output stage: the raw i32 sums (from a `MatMut<i32>`),
/// or requantized 8-bit values (from [`Requantized`]).
pub struct QgemmC<'a> {
    stage: CStage<'a>,
    _borrow: core::marker::PhantomData<&'a mut [u8]>,
}

enum CStage<'a> {
    I32(Raw<i32>),
    Requant {
        out: Raw<u8>,
        requantize: Requantize<'a>,
        min: i32,
        max: i32,
    },
}

impl core::fmt::Debug for QgemmC<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (what, rows, cols) = match &self.stage {
            CStage::I32(c) => ("i32", c.rows, c.cols),
            CStage::Requant { out, .. } => ("requantized", out.rows, out.cols),
        };
        write!(f, "QgemmC {{ {rows}x{cols} {what} }}")
    }
}

impl<'a> From<MatMut<'a, i32>> for QgemmC<'a> {
    fn from(c: MatMut<'a, i32>) -> Self {
        QgemmC {
            stage: CStage::I32(Raw::from_mut(&c)),
            _borrow: core::marker::PhantomData,
        }
    }
}

/// A [`qgemm`] output requantized into i8 or u8 by a [`Requantize`] stage (TFLite
/// semantics; see the module docs): `qgemm(a, za, b, zb, Requantized(&rq, c), ctx)`.
#[derive(Debug)]
pub struct Requantized<'a, O: QuantOutput>(pub &'a Requantize<'a>, pub MatMut<'a, O>);

impl<'a, O: QuantOutput> From<Requantized<'a, O>> for QgemmC<'a> {
    fn from(Requantized(requantize, c): Requantized<'a, O>) -> Self {
        let (ptr, rows, cols, rs, cs) = c.raw();
        QgemmC {
            stage: CStage::Requant {
                // Both output types are one byte; the plan's clamp keeps values in O's range.
                out: Raw {
                    ptr: ptr as *mut u8,
                    rows,
                    cols,
                    rs,
                    cs,
                },
                requantize: *requantize,
                min: O::MIN,
                max: O::MAX,
            },
            _borrow: core::marker::PhantomData,
        }
    }
}

impl<'a> QgemmC<'a> {
    /// The driver's output, with the requantization validated for n columns.
    fn validate(self) -> Result<Out<'a>, Error> {
        Ok(match self.stage {
            CStage::I32(c) => Out::I32(c),
            CStage::Requant {
                out,
                requantize,
                min,
                max,
            } => Out::Requant {
                plan: requantize.plan_range(out.cols, min, max)?,
                out,
                bias: requantize.bias,
            },
        })
    }
}

/// Exact int8 GEMM: `C = Σₚ (A[i,p] − za)·(B[p,j] − zb)` in i32, or that sum requantized
/// into i8/u8 (see the module docs for the semantics and the k limit).
///
/// - A is m×k (i8 or u8) with zero point `a_zero_point`; B is k×n i8 with zero point
///   `b_zero_point`: a view or weights packed once ([`QgemmB`]).
/// - C is a `MatMut<i32>` for the raw sums, or [`Requantized`]`(&requantize, c)` for 8-bit
///   outputs with bias, per-tensor or per-channel scale, zero point and clamp.
/// - `ctx` says how it runs: a [`Par`], or a [`Context`] with a forced kernel or the
///   caller's workspace (no allocation; sized by [`qgemm_workspace_size`],
///   [`qgemm_packed_workspace_size`] or [`PackedQB::workspace_size`]). Without `alloc`
///   a workspace is required. Results are exact, whatever the path.
///
/// ```
/// use edgemm::{qgemm, MatMut, MatRef, Par, Requantize, Requantized, Scale};
/// let a: [u8; 4] = [130, 131, 132, 133]; // 2×2, zero point 128
/// let b: [i8; 4] = [1, -1, 2, 3];
/// let mut c = [0i32; 4];
/// qgemm(
///     MatRef::row_major(&a, 2, 2)?, 128,
///     MatRef::row_major(&b, 2, 2)?, 0,
///     MatMut::row_major(&mut c, 2, 2)?,
///     Par::Seq,
/// )?;
/// assert_eq!(c, [2 * 1 + 3 * 2, 2 * -1 + 3 * 3, 4 * 1 + 5 * 2, 4 * -1 + 5 * 3]);
/// // The same product requantized to i8 at a quarter of the scale (2^30 · 2^(−1−31)).
/// let rq = Requantize::new(Scale::PerTensor { multiplier: 1 << 30, shift: -1 }, 0);
/// let mut y = [0i8; 4];
/// qgemm(
///     MatRef::row_major(&a, 2, 2)?, 128,
///     MatRef::row_major(&b, 2, 2)?, 0,
///     Requantized(&rq, MatMut::row_major(&mut y, 2, 2)?),
///     Par::Seq,
/// )?;
/// assert_eq!(y, [2, 2, 4, 3]);
/// # Ok::<(), edgemm::Error>(())
/// ```
pub fn qgemm<'b, 'c, 'w, A: QuantInput>(
    a: MatRef<A>,
    a_zero_point: i32,
    b: impl Into<QgemmB<'b>>,
    b_zero_point: i32,
    c: impl Into<QgemmC<'c>>,
    ctx: impl Into<Context<'w>>,
) -> Result<(), Error> {
    let mut ctx = ctx.into();
    let threads = ctx.threads()?;
    let out = c.into().validate()?;
    let (ker, b) = match b.into() {
        QgemmB::View(b) => {
            let ker = match ctx.kernel {
                Some(k) => k.int8()?,
                None => qgemm_kernel()?,
            };
            (ker, BOperand::Strided(Raw::from_ref(&b), b_zero_point))
        }
        #[cfg(feature = "alloc")]
        QgemmB::Packed(p) => {
            ctx.check_packed_for(p.kernel.name)?;
            (p.kernel, BOperand::Packed(p, b_zero_point))
        }
        QgemmB::PackedRef(p) => {
            ctx.check_packed_for(p.kernel_name())?;
            (p.kernel(), BOperand::PackedRef(p, b_zero_point))
        }
    };
    let a = Raw::from_ref(&a);
    match ctx.workspace.as_deref_mut() {
        Some(ws) => workspace::ws_impl(ker, a, a_zero_point, b, out, ws),
        #[cfg(feature = "alloc")]
        None => qgemm_impl(ker, a, a_zero_point, b, out, threads),
        #[cfg(not(feature = "alloc"))]
        None => {
            let _ = (threads, out);
            Err(workspace::missing_workspace(&a, &b))
        }
    }
}

/// A weight matrix B (k×n, i8) packed once for an int8 kernel, with its column sums, for
/// reuse across calls. The packing does not depend on B's zero point: each call gives it.
#[cfg(feature = "alloc")]
pub struct PackedQB {
    kernel: &'static QgemmKernel,
    k: usize,
    n: usize,
    kc: usize,
    chunk_bytes: usize,
    colsum: alloc::vec::Vec<i32>,
    data: alloc::vec::Vec<crate::scratch::Line>,
}

#[cfg(feature = "alloc")]
impl core::fmt::Debug for PackedQB {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "PackedQB {{ {}x{}, kernel {} }}",
            self.k, self.n, self.kernel.name
        )
    }
}

#[cfg(feature = "alloc")]
impl PackedQB {
    /// Packs `b` for the int8 kernel selected by default.
    pub fn new(b: MatRef<i8>) -> Result<Self, Error> {
        Self::pack(qgemm_kernel()?, b)
    }

    /// Packs `b` for a chosen int8 kernel.
    pub fn with_kernel(kernel: &Kernel, b: MatRef<i8>) -> Result<Self, Error> {
        Self::pack(kernel.int8()?, b)
    }

    fn pack(kernel: &'static QgemmKernel, b: MatRef<i8>) -> Result<Self, Error> {
        let raw = Raw::from_ref(&b);
        let (k, n) = (raw.rows, raw.cols);
        // Blocking for the general case (any m); calls then use this KC.
        let kc = strategy(kernel, usize::MAX, n, k, None).kc;
        let (g, e) = (kernel.format.k_group(), kernel.format.elem_bytes());
        let n_pad = n.div_ceil(kernel.nr) * kernel.nr;
        let chunk_bytes = n_pad
            .checked_mul(kc.div_ceil(g) * g * e)
            .ok_or(Error::SizeOverflow)?;
        let total = chunk_bytes
            .checked_mul(k.div_ceil(kc.max(1)).max(1))
            .ok_or(Error::SizeOverflow)?;
        let mut data = alloc::vec![crate::scratch::Line([0.0; 16]); total.div_ceil(64).max(1)];
        let mut colsum = alloc::vec![0i32; n];
        let base = data.as_mut_ptr() as *mut u8;
        for (q, pc) in (0..k).step_by(kc.max(1)).enumerate() {
            let kcb = kc.min(k - pc);
            // SAFETY: the block lies inside B; chunk q starts at q·chunk_bytes and needs at
            // most chunk_bytes, within `total`.
            unsafe {
                pack::pack_b(
                    raw.block(pc, 0, kcb, n),
                    kernel.format,
                    kernel.nr,
                    base.add(q * chunk_bytes),
                    &mut colsum,
                )
            };
        }
        Ok(PackedQB {
            kernel,
            k,
            n,
            kc,
            chunk_bytes,
            colsum,
            data,
        })
    }

    /// Rows of B (the k of the product).
    pub fn rows(&self) -> usize {
        self.k
    }

    /// Columns of B (output channels).
    pub fn cols(&self) -> usize {
        self.n
    }

    /// The kernel it was packed for (and that [`qgemm`] runs with it).
    pub fn kernel_name(&self) -> &'static str {
        self.kernel.name
    }

    /// Bytes of workspace a [`qgemm`] call with these weights and at most `m` rows of A
    /// needs in its [`Context`] (the no-allocation path, on the calling thread).
    pub fn workspace_size(&self, m: usize) -> usize {
        let s = self.ws_strategy(m);
        let geo = driver::Geometry::of(self.kernel);
        // The larger layout: with i32 accumulators (k in several chunks).
        let bytes = driver::layout_of(geo, s, self.k, m, self.n, false, true).total;
        crate::scratch::caller_workspace_size(bytes)
    }

    /// The strategy of a workspace call of m rows (see [`PackedQB::workspace_size`]).
    fn ws_strategy(&self, m: usize) -> QStrategy {
        strategy(self.kernel, m.max(1), self.n, self.k, Some(self.kc))
    }

    fn source(&self) -> QbSource<'_> {
        QbSource::Packed {
            data: self.data.as_ptr() as *const u8,
            colsum: &self.colsum,
            chunk_bytes: self.chunk_bytes,
        }
    }
}

/// Blocking and workspace size for [`qgemm_requantize_prepacked_seq`] calls of at most
/// `max_rows` rows with one prepacked B (crate-internal: convolution).
#[cfg(feature = "alloc")]
#[derive(Clone, Copy, Debug)]
pub(crate) struct SeqPlan {
    s: QStrategy,
    max_rows: usize,
    /// Bytes of 64-byte aligned workspace one call needs.
    pub ws_bytes: usize,
}

#[cfg(feature = "alloc")]
impl PackedQB {
    /// The plan for sequential requantized calls of at most `max_rows` rows.
    pub(crate) fn seq_plan(&self, max_rows: usize) -> SeqPlan {
        let max_rows = max_rows.max(1);
        let s = strategy(self.kernel, max_rows, self.n, self.k, Some(self.kc));
        let src = self.source();
        // The layout only looks at the kind of destination (requantized) and its size: a
        // placeholder view and plan stand in for the real ones.
        let dest = Dest::Requant {
            out: Raw {
                ptr: core::ptr::null_mut(),
                rows: max_rows,
                cols: self.n,
                rs: 0,
                cs: 0,
            },
            plan: RqPlan {
                mults: Mults::PerTensor {
                    multiplier: 0,
                    shift: 0,
                },
                out_zp: 0,
                lo: 0,
                hi: 0,
                no_left_shift: true,
                zp_fits: true,
                right_shift_only: false,
                mults_nonneg: true,
                acc_small: false,
            },
        };
        // A block of fewer rows needs no more (the layout grows with the rows).
        let ws_bytes = workspace_bytes(self.kernel, &s, self.k, max_rows, self.n, &src, &dest);
        SeqPlan {
            s,
            max_rows,
            ws_bytes,
        }
    }
}

/// [`qgemm`] with prepacked weights and a requantized output on the calling thread, with the caller's workspace and a
/// validated requantization, for callers that split the work themselves (convolution,
/// like the f32 side's `sgemm_prepacked_seq`).
///
/// # Safety
/// `a` (m×k, m ≤ the plan's `max_rows`, k = B's rows) names only in-bounds elements and
/// `za` is in A's range; `out` (m×n, n = B's columns) names in-bounds bytes that do not
/// overlap A or B and that no other thread touches; `rq` and `bias` cover the n columns;
/// k is within [`max_exact_k`]; `ws` is 64-byte aligned with `plan.ws_bytes` bytes.
#[cfg(feature = "alloc")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn qgemm_requantize_prepacked_seq<A: QuantInput>(
    a: Raw<A>,
    za: i32,
    b: &PackedQB,
    zb: i32,
    plan: &SeqPlan,
    rq: RqPlan,
    bias: Option<&[i32]>,
    out: Raw<u8>,
    ws: *mut u8,
) {
    debug_assert!(a.cols == b.k && out.rows == a.rows && out.cols == b.n);
    debug_assert!(a.rows <= plan.max_rows && b.k > 0);
    if a.rows == 0 || b.n == 0 {
        return;
    }
    let terms = Terms {
        za: za + b.kernel.format.a_shift(A::SIGNED),
        zb,
        bias,
    };
    let src = b.source();
    // SAFETY: the caller's contract; B's packed data matches its kernel (packed for it), which
    // runs on this CPU (selected or checked by `Kernel::by_name` when B was packed).
    unsafe {
        run_block(
            b.kernel,
            &plan.s,
            a,
            src,
            0,
            &terms,
            Dest::Requant { out, plan: rq },
            ws,
        )
    }
}

/// B as a call sees it, with its zero point.
enum BOperand<'a> {
    Strided(Raw<i8>, i32),
    #[cfg(feature = "alloc")]
    Packed(&'a PackedQB, i32),
    /// Prepacked in caller memory (see [`PackedQBRef`]).
    PackedRef(PackedQBRef<'a>, i32),
}

impl BOperand<'_> {
    /// (rows, columns, zero point) of B.
    fn dims(&self) -> (usize, usize, i32) {
        match self {
            BOperand::Strided(b, zb) => (b.rows, b.cols, *zb),
            #[cfg(feature = "alloc")]
            BOperand::Packed(p, zb) => (p.k, p.n, *zb),
            BOperand::PackedRef(p, zb) => (p.rows(), p.cols(), *zb),
        }
    }

    /// B as the driver reads it.
    fn source(&self) -> QbSource<'_> {
        match self {
            BOperand::Strided(b, _) => QbSource::Strided(*b),
            #[cfg(feature = "alloc")]
            BOperand::Packed(p, _) => p.source(),
            BOperand::PackedRef(p, _) => p.source(),
        }
    }
}

enum Out<'a> {
    I32(Raw<i32>),
    Requant {
        out: Raw<u8>,
        plan: RqPlan<'a>,
        bias: Option<&'a [i32]>,
    },
}

impl<'a> Out<'a> {
    fn dims(&self) -> (usize, usize) {
        match self {
            Out::I32(c) => (c.rows, c.cols),
            Out::Requant { out, .. } => (out.rows, out.cols),
        }
    }

    fn bias(&self) -> Option<&'a [i32]> {
        match self {
            Out::Requant { bias, .. } => *bias,
            Out::I32(_) => None,
        }
    }

    /// Records in the plan whether every accumulator of the call (sum of products plus
    /// bias) is below 2^30 in magnitude whatever the data: `k·max|a − za|·max|b − zb| +
    /// max|bias| < 2^30`. An output stage may then skip per-value range checks.
    fn note_range<A: QuantInput>(&mut self, k: usize, za: i32, zb: i32) {
        if let Out::Requant { plan, bias, .. } = self {
            let ma = (za - A::MIN).max(A::MAX - za) as u64;
            let mb = (zb + 128).max(127 - zb) as u64;
            // (The max in u32, where |bias| fits: a u64 max has no SSE2 form.)
            let bmax = bias.map_or(0, |b| b.iter().fold(0, |m, v| v.unsigned_abs().max(m))) as u64;
            let bound = (k as u64).saturating_mul(ma * mb).saturating_add(bmax);
            plan.acc_small = bound < 1 << 30;
        }
    }

    fn dest(self) -> Dest<'a> {
        match self {
            Out::I32(c) => Dest::I32(c),
            Out::Requant { out, plan, .. } => Dest::Requant { out, plan },
        }
    }
}

/// Blocking, in bytes of the packed format:
/// - KC: the B micro-panel is a bit over L1 (it streams from L2, as for f32); but with few
///   row tiles (small m) and a B larger than L2, B is a streaming operand: then a block is a
///   few whole rows of B sized for half of L2, so packing reads DRAM sequentially and the
///   kernel reads the packed block from L2;
/// - MC: the A block takes a quarter of L2; NC: the B block a quarter of L3.
///
/// `packed_kc`: the KC a prepacked B was packed with (calls must use it).
#[cfg(feature = "alloc")]
fn strategy(
    ker: &QgemmKernel,
    m: usize,
    n: usize,
    k: usize,
    packed_kc: Option<usize>,
) -> QStrategy {
    let cpu = cpu_info();
    let (g, e) = (ker.format.k_group(), ker.format.elem_bytes());
    let n_pad = n.div_ceil(ker.nr) * ker.nr;
    let streaming_b = m <= 4 * ker.mr && k * n_pad * e > cpu.l2 / 2;
    let kc = match packed_kc {
        Some(kc) => kc,
        None if streaming_b => {
            let rows = (cpu.l2 / 2 / (n_pad * e).max(1)).clamp(64, 4096) / g * g;
            chunk(k, rows, g).div_ceil(g) * g
        }
        None => {
            let kc_max = ((cpu.l1d * 4 / 3 / (ker.nr * e)).clamp(256, 4096) / g) * g;
            chunk(k, kc_max, g).div_ceil(g) * g
        }
    }
    .max(g);
    let mc_max = (cpu.l2 / 4 / (kc * e)).clamp(ker.mr, 4096) / ker.mr * ker.mr;
    let nc_max = if streaming_b && packed_kc.is_none() {
        n_pad
    } else {
        (cpu.l3 / 4 / (kc * e)).clamp(ker.nr, 8192) / ker.nr * ker.nr
    };
    QStrategy {
        kc,
        mc: chunk(m, mc_max.max(ker.mr), ker.mr),
        nc: chunk(n, nc_max.max(ker.nr), ker.nr),
    }
}

/// Checks a call (shapes, zero points, the exact-k limit) without touching anything;
/// returns (m, n, k) and B's zero point.
fn check_call<A: QuantInput>(
    a: &Raw<A>,
    za: i32,
    b: &BOperand,
    out: &Out,
) -> Result<(usize, usize, usize, i32), Error> {
    let (bk, bn, zb) = b.dims();
    let (cm, cn) = out.dims();
    if a.cols != bk || cm != a.rows || cn != bn {
        return Err(Error::DimensionMismatch {
            a: (a.rows, a.cols),
            b: (bk, bn),
            c: (cm, cn),
        });
    }
    check_zero_points::<A>(za, zb)?;
    let k = a.cols;
    let k_max = max_exact_k::<A>(za, zb);
    if k > k_max {
        return Err(Error::KTooLarge { k, max: k_max });
    }
    Ok((cm, cn, k, zb))
}

/// The calls with nothing to multiply: an empty C, or k = 0 (every sum is empty: C is 0,
/// or the requantized bias). Returns true when it handled the call.
fn trivial_call(m: usize, n: usize, k: usize, out: &Out) -> bool {
    if m == 0 || n == 0 {
        return true;
    }
    if k != 0 {
        return false;
    }
    match out {
        Out::I32(c) => {
            for i in 0..m {
                for j in 0..n {
                    // SAFETY: (i, j) is inside the validated C.
                    unsafe { *c.at(i, j) = 0 };
                }
            }
        }
        Out::Requant { out, plan, bias } => {
            for i in 0..m {
                for j in 0..n {
                    let v = plan.one(bias.map_or(0, |b| b[j]), j);
                    // SAFETY: (i, j) is inside the validated output.
                    unsafe { *out.at(i, j) = v as u8 };
                }
            }
        }
    }
    true
}

#[cfg(feature = "alloc")]
fn qgemm_impl<A: QuantInput>(
    ker: &'static QgemmKernel,
    a: Raw<A>,
    za: i32,
    b: BOperand,
    out: Out,
    threads: usize,
) -> Result<(), Error> {
    let (m, n, k, zb) = check_call(&a, za, &b, &out)?;
    if trivial_call(m, n, k, &out) {
        return Ok(());
    }
    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
    if m == 1 && try_gemv(ker, &a, za, zb, &b, &out, threads) {
        return Ok(());
    }
    let mut out = out;
    out.note_range::<A>(k, za, zb);
    let packed_kc = match &b {
        BOperand::Strided(..) => None,
        BOperand::Packed(p, _) => Some(p.kc),
        // Packed in one k chunk (see `PackedQBRef`).
        BOperand::PackedRef(p, _) => Some(p.kc()),
    };
    let s = strategy(ker, m, n, k, packed_kc);
    let terms = Terms {
        za: za + ker.format.a_shift(A::SIGNED),
        zb,
        bias: out.bias(),
    };
    let src = b.source();
    let dest = out.dest();
    let grid = threads::partition(m, n, k / 4, ker.mr, ker.nr, threads);
    let job = |t: usize| {
        let (r0, rows, c0, cols) = grid.block(t);
        if rows == 0 || cols == 0 {
            return;
        }
        let a_t = a.block(r0, 0, rows, k);
        let b_t = match src {
            QbSource::Strided(b) => QbSource::Strided(b.block(0, c0, k, cols)),
            packed => packed,
        };
        let d_t = match dest {
            Dest::I32(c) => Dest::I32(c.block(r0, c0, rows, cols)),
            Dest::Requant { out, plan } => Dest::Requant {
                out: out.block(r0, c0, rows, cols),
                plan,
            },
        };
        let bytes = workspace_bytes(ker, &s, k, rows, cols, &b_t, &d_t);
        // SAFETY: blocks of validated views, C blocks disjoint across threads; the workspace
        // is 64-byte aligned with `bytes` bytes; ker runs here (selection or by_name).
        crate::scratch::with_workspace(bytes.div_ceil(4), |ws| unsafe {
            run_block(ker, &s, a_t, b_t, c0, &terms, d_t, ws as *mut u8)
        });
    };
    threads::run(grid.count(), grid.count(), &job);
    Ok(())
}

#[cfg(feature = "alloc")]
/// The m = 1 path with AVX-512 VNNI (see `gemv.rs`), for a row-major B and a contiguous
/// output row. Returns false (having done nothing) when it does not apply.
#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
fn try_gemv<A: QuantInput>(
    ker: &QgemmKernel,
    a: &Raw<A>,
    za: i32,
    zb: i32,
    b: &BOperand,
    out: &Out,
    threads: usize,
) -> bool {
    use crate::arch::Features;
    use crate::kernels::int8::QFormat;
    let BOperand::Strided(b, _) = b else {
        return false;
    };
    let contiguous = match out {
        Out::I32(c) => c.cs == 1,
        Out::Requant { out, .. } => out.cs == 1,
    };
    let vnni = Features::AVX512F
        .with(Features::AVX512BW)
        .with(Features::AVX512VNNI);
    if ker.format != QFormat::U8x4
        || b.cs != 1
        || !contiguous
        || !cpu_info().features.contains(vnni)
    {
        return false;
    }
    let (k, n) = (b.rows, b.cols);
    let shift = ker.format.a_shift(A::SIGNED);
    let za2 = za + shift;
    let job_parts = threads.min((k * n / (1 << 18)).max(1)).min(n.div_ceil(64));
    let bias = match out {
        Out::Requant { bias, .. } => *bias,
        Out::I32(_) => None,
    };
    // k bytes of a', then (from the next 64-byte boundary) n i32 offsets. (This counted
    // 2n bytes for the offsets, 4n being needed: a heap overflow that only the per-call
    // buffer of an alloc-without-std build exposed.)
    let off_at = k.div_ceil(64) * 64;
    crate::scratch::with_workspace((off_at + 4 * n).div_ceil(4), |ws| {
        // SAFETY: the workspace has k bytes for a' and n i32 for the offsets at off_at,
        // 64-byte aligned, used by this call only.
        let (abuf, off) = unsafe {
            let bytes = ws as *mut u8;
            (
                core::slice::from_raw_parts_mut(bytes, k),
                core::slice::from_raw_parts_mut(bytes.add(off_at) as *mut i32, n),
            )
        };
        let mut asum = 0i32;
        for (p, x) in abuf.iter_mut().enumerate() {
            // SAFETY: (0, p) is inside A.
            let v = unsafe { (*a.at(0, p)).into() } + shift;
            *x = v as u8;
            asum = asum.wrapping_add(v);
        }
        let kzz = (k as i32).wrapping_mul(za2).wrapping_mul(zb);
        let row_term = asum.wrapping_mul(zb).wrapping_neg().wrapping_add(kzz);
        for (j, o) in off.iter_mut().enumerate() {
            *o = row_term.wrapping_add(bias.map_or(0, |bs| bs[j]));
        }
        let (abuf, off) = (&*abuf, &*off);
        let job = |t: usize| {
            let tiles = n.div_ceil(64);
            let j0 = (tiles * t / job_parts * 64).min(n);
            let j1 = (tiles * (t + 1) / job_parts * 64).min(n);
            if j0 == j1 {
                return;
            }
            let bt = b.block(0, j0, k, j1 - j0);
            let o = match out {
                Out::I32(c) => gemv::GemvOut::I32(c.at(0, j0)),
                Out::Requant { out, plan, .. } => gemv::GemvOut::Requant {
                    out: out.at(0, j0),
                    plan: *plan,
                    col0: j0,
                },
            };
            // SAFETY: the CPU has AVX-512 VNNI (checked); a' has k bytes; B's block, the
            // offsets j0..j1 and the output columns j0..j1 (this thread's alone) are in
            // bounds.
            unsafe { gemv::qgemv_vnni(abuf, bt, za2, &off[j0..j1], o) };
        };
        threads::run(job_parts, job_parts, &job);
    });
    true
}
