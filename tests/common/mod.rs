//! The kernel-vs-reference battery, shared by the host test binaries and the bare-metal test
//! firmware (it needs only `alloc`). A `Case` is one call: shape, layouts, α, β, values,
//! threads; `run_sgemm_case` builds it, runs it, and checks it against `edgemm::reference`.
#![allow(dead_code)]

extern crate alloc;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use edgemm::{Kernel, MatMut, MatRef, Par};

/// splitmix64: small, deterministic, good enough for test data.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Uniform in [-1, 1).
    pub fn f32_pm1(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// How a matrix is laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    RowMajor,
    ColMajor,
    /// Row-major with `pad` unused elements after each row.
    RowPadded(usize),
    ColPadded(usize),
    /// Neither stride is 1: (i, j) at i*(2*cols+1) + 2*j.
    General,
    /// Built as the transpose (`.t()`) of a row-major view of the transposed matrix.
    Transposed,
    /// Row-major with the rows in reverse order (negative row stride; raw-pointer API).
    NegRows,
    /// Column-major with the columns in reverse order (negative column stride).
    NegCols,
}

pub const ALL_LAYOUTS: [Layout; 8] = [
    Layout::RowMajor,
    Layout::ColMajor,
    Layout::RowPadded(3),
    Layout::ColPadded(5),
    Layout::General,
    Layout::Transposed,
    Layout::NegRows,
    Layout::NegCols,
];

/// An element type of test matrices, with the value that fills unused storage (a write
/// there is a bug).
pub trait Elem: Copy + Default + core::fmt::Debug {
    const GUARD: Self;
    fn is_guard(&self) -> bool;
}

impl Elem for f32 {
    const GUARD: f32 = f32::from_bits(GUARD);
    fn is_guard(&self) -> bool {
        self.to_bits() == GUARD
    }
}

impl Elem for i32 {
    const GUARD: i32 = 0x5eed_dead;
    fn is_guard(&self) -> bool {
        *self == Self::GUARD
    }
}

impl Elem for i8 {
    const GUARD: i8 = 0x5a;
    fn is_guard(&self) -> bool {
        *self == Self::GUARD
    }
}

impl Elem for u8 {
    const GUARD: u8 = 0xa5;
    fn is_guard(&self) -> bool {
        *self == Self::GUARD
    }
}

/// A matrix in its storage: element (i, j) at `data[base + i*rs + j*cs]`.
#[derive(Clone, Debug)]
pub struct Mat<T = f32> {
    pub data: Vec<T>,
    pub base: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: isize,
    pub cs: isize,
    pub layout: Layout,
}

/// Bits of the value storage padding holds; a write there is a bug.
pub const GUARD: u32 = 0x7fc0_dead;
/// Extra guard elements around every matrix.
const GUARD_PAD: usize = 64;

impl<T: Elem> Mat<T> {
    pub fn new(rows: usize, cols: usize, layout: Layout) -> Mat<T> {
        let (r, c) = (rows as isize, cols as isize);
        let (rs, cs, span_rows, span_cols, neg_base) = match layout {
            Layout::RowMajor | Layout::Transposed => (c, 1, r, c, 0),
            Layout::ColMajor => (1, r, r, c, 0),
            Layout::RowPadded(p) => (c + p as isize, 1, r, c + p as isize, 0),
            Layout::ColPadded(p) => (1, r + p as isize, r + p as isize, c, 0),
            Layout::General => (2 * c + 1, 2, r, 2 * c + 1, 0),
            Layout::NegRows => (-c, 1, r, c, (r - 1).max(0) * c),
            Layout::NegCols => (1, -r, r, c, (c - 1).max(0) * r),
        };
        let len = (span_rows.max(1) * span_cols.max(1)) as usize + 2 * GUARD_PAD;
        Mat {
            data: vec![T::GUARD; len],
            base: GUARD_PAD + neg_base as usize,
            rows,
            cols,
            rs,
            cs,
            layout,
        }
    }

    pub fn idx(&self, i: usize, j: usize) -> usize {
        (self.base as isize + i as isize * self.rs + j as isize * self.cs) as usize
    }
    pub fn get(&self, i: usize, j: usize) -> T {
        self.data[self.idx(i, j)]
    }
    pub fn set(&mut self, i: usize, j: usize, v: T) {
        let k = self.idx(i, j);
        self.data[k] = v;
    }

    /// A view through the API the layout exercises.
    pub fn view(&self) -> MatRef<'_, T> {
        match self.layout {
            Layout::Transposed => {
                // Storage is row-major rows×cols; as the transpose of a cols×rows col-major view.
                MatRef::new(&self.data[self.base..], self.cols, self.rows, 1, self.rs)
                    .expect("view")
                    .t()
            }
            Layout::NegRows | Layout::NegCols => {
                // SAFETY: every element (i, j) is inside `data` by construction.
                unsafe {
                    MatRef::from_raw_parts(
                        self.data.as_ptr().add(self.base),
                        self.rows,
                        self.cols,
                        self.rs,
                        self.cs,
                    )
                }
                .expect("raw view")
            }
            _ => MatRef::new(
                &self.data[self.base..],
                self.rows,
                self.cols,
                self.rs,
                self.cs,
            )
            .expect("view"),
        }
    }

    pub fn view_mut(&mut self) -> MatMut<'_, T> {
        let (rows, cols, rs, cs, base) = (self.rows, self.cols, self.rs, self.cs, self.base);
        match self.layout {
            Layout::Transposed => MatMut::new(&mut self.data[base..], cols, rows, 1, rs)
                .expect("view")
                .t(),
            Layout::NegRows | Layout::NegCols => {
                // SAFETY: as in `view`; the MatMut is the only access during its use.
                unsafe {
                    MatMut::from_raw_parts(self.data.as_mut_ptr().add(base), rows, cols, rs, cs)
                }
                .expect("raw view")
            }
            _ => MatMut::new(&mut self.data[base..], rows, cols, rs, cs).expect("view"),
        }
    }

    /// Guard elements (storage not part of the view) that no longer hold GUARD.
    pub fn guard_violations(&self) -> usize {
        let mut inside = vec![false; self.data.len()];
        for i in 0..self.rows {
            for j in 0..self.cols {
                inside[self.idx(i, j)] = true;
            }
        }
        self.data
            .iter()
            .zip(&inside)
            .filter(|(v, &ins)| !ins && !v.is_guard())
            .count()
    }
}

/// What values the operands hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Values {
    /// Uniform in [-1, 1).
    Uniform,
    /// Small integers (exact products and sums).
    Integers,
    /// Magnitudes spread over 2^-20 .. 2^20, mixed signs (cancellation).
    WideRange,
}

#[derive(Clone, Debug)]
pub struct Case {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub la: Layout,
    pub lb: Layout,
    pub lc: Layout,
    pub alpha: f32,
    pub beta: f32,
    pub values: Values,
    pub threads: usize,
    pub seed: u64,
}

fn value(rng: &mut Rng, v: Values) -> f32 {
    match v {
        Values::Uniform => rng.f32_pm1(),
        Values::Integers => rng.below(9) as f32 - 4.0,
        Values::WideRange => {
            let e = rng.below(41) as i32 - 20;
            // 2^e, built from its bits (`powi` is not in `core`, and the firmware has no std).
            rng.f32_pm1() * f32::from_bits(((e + 127) as u32) << 23)
        }
    }
}

pub fn fill(m: &mut Mat<f32>, rng: &mut Rng, v: Values) {
    for i in 0..m.rows {
        for j in 0..m.cols {
            let x = value(rng, v);
            m.set(i, j, x);
        }
    }
}

/// Which public entry point a case goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// `sgemm` / `sgemm_with_kernel` (`c.threads` threads).
    Plain,
    /// `sgemm_with_workspace` / `sgemm_with_kernel_and_workspace` with exactly
    /// `sgemm_workspace_size(m, n, k)` bytes at an offset from 0 to 63 (any alignment),
    /// guarded on both sides; one byte less must be `WorkspaceTooSmall` and touch nothing.
    Workspace,
}

/// Bytes around a workspace that must stay as they are.
const WS_GUARD: usize = 64;
const WS_GUARD_BYTE: u8 = 0xa5;

/// Runs the case through `kernel` (or the default selection) and checks every element of C
/// against the reference within the error bound, and every guard element of C untouched.
pub fn run_sgemm_case(kernel: Option<&Kernel>, c: &Case) -> Result<(), String> {
    run_sgemm_case_via(kernel, c, Entry::Plain)
}

/// [`run_sgemm_case`] through the chosen entry point.
pub fn run_sgemm_case_via(kernel: Option<&Kernel>, c: &Case, entry: Entry) -> Result<(), String> {
    let mut rng = Rng(c.seed);
    let mut a = Mat::<f32>::new(c.m, c.k, c.la);
    let mut b = Mat::<f32>::new(c.k, c.n, c.lb);
    let mut cm = Mat::<f32>::new(c.m, c.n, c.lc);
    fill(&mut a, &mut rng, c.values);
    fill(&mut b, &mut rng, c.values);
    if c.beta == 0.0 {
        // beta = 0 must not read C: poison it.
        for i in 0..c.m {
            for j in 0..c.n {
                cm.set(i, j, f32::NAN);
            }
        }
    } else {
        fill(&mut cm, &mut rng, c.values);
    }
    let c0 = cm.clone();

    // Oracle: C_ref = αAB + βC0 (f64 accumulation), and |α||A||B| + |β||C0| for the bound.
    let mut c0_dense = vec![0f32; c.m * c.n];
    if c.beta != 0.0 {
        for i in 0..c.m {
            for j in 0..c.n {
                c0_dense[i * c.n + j] = c0.get(i, j);
            }
        }
    }
    let mut want = c0_dense.clone();
    edgemm::reference::sgemm(
        c.alpha,
        a.view(),
        b.view(),
        c.beta,
        MatMut::row_major(&mut want, c.m, c.n).unwrap(),
    )
    .map_err(|e| format!("{e}"))?;
    let abs_of = |x: &Mat<f32>| {
        let mut y = Mat::<f32>::new(x.rows, x.cols, Layout::RowMajor);
        for i in 0..x.rows {
            for j in 0..x.cols {
                y.set(i, j, x.get(i, j).abs());
            }
        }
        y
    };
    let (aa, ba) = (abs_of(&a), abs_of(&b));
    let mut absprod: Vec<f32> = c0_dense.iter().map(|v| v.abs()).collect();
    edgemm::reference::sgemm(
        c.alpha.abs(),
        aa.view(),
        ba.view(),
        c.beta.abs(),
        MatMut::row_major(&mut absprod, c.m, c.n).unwrap(),
    )
    .map_err(|e| format!("{e}"))?;

    let par = if c.threads > 1 {
        Par::Threads(c.threads)
    } else {
        Par::Seq
    };
    match entry {
        Entry::Plain => {
            let r = match kernel {
                Some(kern) => edgemm::sgemm_with_kernel(
                    kern,
                    c.alpha,
                    a.view(),
                    b.view(),
                    c.beta,
                    cm.view_mut(),
                    par,
                ),
                None => edgemm::sgemm(c.alpha, a.view(), b.view(), c.beta, cm.view_mut(), par),
            };
            r.map_err(|e| format!("sgemm returned an error: {e}"))?;
        }
        Entry::Workspace => {
            let size = edgemm::sgemm_workspace_size(c.m, c.n, c.k);
            let off = (c.seed % 64) as usize;
            let mut buf = vec![WS_GUARD_BYTE; off + size + 2 * WS_GUARD];
            let ws = WS_GUARD + off..WS_GUARD + off + size;
            let call = |cm: &mut Mat, ws: &mut [u8]| match kernel {
                Some(kern) => edgemm::sgemm_with_kernel_and_workspace(
                    kern,
                    c.alpha,
                    a.view(),
                    b.view(),
                    c.beta,
                    cm.view_mut(),
                    ws,
                ),
                None => edgemm::sgemm_with_workspace(
                    c.alpha,
                    a.view(),
                    b.view(),
                    c.beta,
                    cm.view_mut(),
                    ws,
                ),
            };
            if size > 0 {
                let short = ws.start..ws.end - 1;
                match call(&mut cm, &mut buf[short]) {
                    Err(edgemm::Error::WorkspaceTooSmall { needed, got })
                        if needed == size && got == size - 1 => {}
                    r => {
                        return Err(format!(
                            "a workspace of {} bytes (needs {size}) gave {r:?}",
                            size - 1
                        ))
                    }
                }
                let untouched = cm
                    .data
                    .iter()
                    .zip(&c0.data)
                    .all(|(x, y)| x.to_bits() == y.to_bits());
                if !untouched {
                    return Err(String::from("a too-small workspace call wrote C"));
                }
            }
            call(&mut cm, &mut buf[ws.clone()])
                .map_err(|e| format!("sgemm_with_workspace returned an error: {e}"))?;
            let outside = buf[..ws.start].iter().chain(&buf[ws.end..]);
            if outside.into_iter().any(|&x| x != WS_GUARD_BYTE) {
                return Err(String::from("bytes outside the workspace were written"));
            }
        }
    }

    let eps = f32::EPSILON as f64;
    for i in 0..c.m {
        for j in 0..c.n {
            let got = cm.get(i, j) as f64;
            let w = want[i * c.n + j] as f64;
            let bound = (c.k as f64 + 4.0) * eps * absprod[i * c.n + j] as f64
                + 2.0 * f32::MIN_POSITIVE as f64;
            // NaN must fail too: compare so that an unordered result is an error.
            let within = (got - w).abs() <= bound;
            if !within {
                return Err(format!(
                    "C[{i},{j}] = {got:e}, reference {w:e}, |diff| {:e} > bound {bound:e}",
                    (got - w).abs()
                ));
            }
        }
    }
    let bad = cm.guard_violations();
    if bad != 0 {
        return Err(format!("{bad} elements outside C's view were written"));
    }
    Ok(())
}

/// Runs the case twice with 1 and `threads` threads and requires bit-identical C.
pub fn check_thread_determinism(kernel: &Kernel, c: &Case) -> Result<(), String> {
    let mut rng = Rng(c.seed);
    let mut a = Mat::<f32>::new(c.m, c.k, c.la);
    let mut b = Mat::<f32>::new(c.k, c.n, c.lb);
    fill(&mut a, &mut rng, c.values);
    fill(&mut b, &mut rng, c.values);
    let mut outs = Vec::new();
    for par in [Par::Seq, Par::Threads(c.threads), Par::Threads(c.threads)] {
        let mut cm = Mat::<f32>::new(c.m, c.n, c.lc);
        let mut r2 = Rng(c.seed ^ 1);
        fill(&mut cm, &mut r2, c.values);
        edgemm::sgemm_with_kernel(
            kernel,
            c.alpha,
            a.view(),
            b.view(),
            c.beta,
            cm.view_mut(),
            par,
        )
        .map_err(|e| format!("{e}"))?;
        outs.push(cm.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }
    if outs[0] != outs[1] || outs[1] != outs[2] {
        return Err(String::from("results differ between thread counts or runs"));
    }
    Ok(())
}

// ---- int8 -----------------------------------------------------------------------------

/// What values the int8 operands hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QValues {
    /// Uniform over the type's whole range.
    Full,
    /// Every element the type's minimum (−128 for i8: −128·−128 everywhere).
    AllMin,
    /// Every element the type's maximum.
    AllMax,
    /// Each element the minimum or the maximum.
    Extremes,
}

/// Requantized output of an int8 case.
#[derive(Clone, Copy, Debug)]
pub struct RqCase {
    pub per_channel: bool,
    pub out_signed: bool,
    pub bias: bool,
    pub clamp: Option<(i32, i32)>,
    /// Allow positive shifts (left shifts before the multiply).
    pub left_shifts: bool,
}

#[derive(Clone, Debug)]
pub struct QCase {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub la: Layout,
    pub lb: Layout,
    pub lc: Layout,
    /// A is i8 (true) or u8.
    pub a_signed: bool,
    pub za: i32,
    pub zb: i32,
    pub values: QValues,
    pub threads: usize,
    pub requant: Option<RqCase>,
    pub seed: u64,
}

fn qvalue(rng: &mut Rng, v: QValues, min: i32, max: i32) -> i32 {
    match v {
        QValues::Full => min + rng.below((max - min + 1) as u64) as i32,
        QValues::AllMin => min,
        QValues::AllMax => max,
        QValues::Extremes => {
            if rng.below(2) == 0 {
                min
            } else {
                max
            }
        }
    }
}

/// Runs an int8 case through `kernel` (or the default selection) and checks every output
/// for exact equality with `edgemm::reference`, and every guard element untouched.
#[cfg(feature = "alloc")]
pub fn run_qgemm_case(kernel: Option<&Kernel>, c: &QCase) -> Result<(), String> {
    if c.a_signed {
        run_q::<i8>(kernel, c)
    } else {
        run_q::<u8>(kernel, c)
    }
}

/// An 8-bit type as the tests see it.
pub trait Q8: Elem + Into<i32> {
    const MIN: i32;
    const MAX: i32;
    fn from_i32(v: i32) -> Self;
}

impl Q8 for i8 {
    const MIN: i32 = -128;
    const MAX: i32 = 127;
    fn from_i32(v: i32) -> Self {
        v as i8
    }
}

impl Q8 for u8 {
    const MIN: i32 = 0;
    const MAX: i32 = 255;
    fn from_i32(v: i32) -> Self {
        v as u8
    }
}

#[cfg(feature = "alloc")]
fn run_q<A: Q8 + edgemm::QuantInput>(kernel: Option<&Kernel>, c: &QCase) -> Result<(), String> {
    let mut rng = Rng(c.seed);
    let mut a = Mat::<A>::new(c.m, c.k, c.la);
    let mut b = Mat::<i8>::new(c.k, c.n, c.lb);
    for i in 0..c.m {
        for p in 0..c.k {
            let v = qvalue(&mut rng, c.values, <A as Q8>::MIN, <A as Q8>::MAX);
            a.set(i, p, A::from_i32(v));
        }
    }
    for p in 0..c.k {
        for j in 0..c.n {
            let v = qvalue(&mut rng, c.values, -128, 127);
            b.set(p, j, v as i8);
        }
    }
    // Exact reference sums.
    let mut acc = vec![0i32; c.m * c.n];
    edgemm::reference::qgemm(
        a.view(),
        c.za,
        b.view(),
        c.zb,
        MatMut::row_major(&mut acc, c.m, c.n).unwrap(),
    )
    .map_err(|e| format!("{e}"))?;
    let par = if c.threads > 1 {
        Par::Threads(c.threads)
    } else {
        Par::Seq
    };
    match c.requant {
        None => {
            let mut cm = Mat::<i32>::new(c.m, c.n, c.lc);
            let r = match kernel {
                Some(kern) => edgemm::qgemm_with_kernel(
                    kern,
                    a.view(),
                    c.za,
                    b.view(),
                    c.zb,
                    cm.view_mut(),
                    par,
                ),
                None => edgemm::qgemm(a.view(), c.za, b.view(), c.zb, cm.view_mut(), par),
            };
            r.map_err(|e| format!("qgemm returned an error: {e}"))?;
            for i in 0..c.m {
                for j in 0..c.n {
                    let (got, want) = (cm.get(i, j), acc[i * c.n + j]);
                    if got != want {
                        return Err(format!("C[{i},{j}] = {got}, reference {want}"));
                    }
                }
            }
            let bad = cm.guard_violations();
            if bad != 0 {
                return Err(format!("{bad} elements outside C's view were written"));
            }
        }
        Some(rq) => {
            let n = c.n;
            let mults: Vec<i32> = (0..n.max(1)).map(|_| random_multiplier(&mut rng)).collect();
            let shifts: Vec<i32> = (0..n.max(1))
                .map(|_| {
                    let hi = if rq.left_shifts { 30 } else { 0 };
                    -31 + rng.below((hi + 32) as u64) as i32
                })
                .collect();
            let bias: Vec<i32> = (0..n)
                .map(|_| (rng.next_u64() as i32) >> rng.below(32))
                .collect();
            let (omin, omax) = if rq.out_signed { (-128, 127) } else { (0, 255) };
            let out_zp = omin + rng.below((omax - omin + 1) as u64) as i32;
            let scale = if rq.per_channel {
                edgemm::Scale::PerChannel {
                    multipliers: &mults[..n],
                    shifts: &shifts[..n],
                }
            } else {
                edgemm::Scale::PerTensor {
                    multiplier: mults[0],
                    shift: shifts[0],
                }
            };
            let mut spec = edgemm::Requantize::new(scale, out_zp);
            if rq.bias {
                spec = spec.with_bias(&bias);
            }
            // A clamp that leaves no output value is an API error (tested in tests/api.rs).
            let clamp = rq.clamp.filter(|&(lo, hi)| lo.max(omin) <= hi.min(omax));
            let (lo, hi) = match clamp {
                Some((lo, hi)) => {
                    spec = spec.with_clamp(lo, hi);
                    (lo.max(omin), hi.min(omax))
                }
                None => (omin, omax),
            };
            let want = |i: usize, j: usize| {
                let ch = if rq.per_channel { j } else { 0 };
                edgemm::reference::requantize(
                    acc[i * n + j],
                    if rq.bias { bias[j] } else { 0 },
                    mults[ch],
                    shifts[ch],
                    out_zp,
                    lo,
                    hi,
                )
            };
            if rq.out_signed {
                check_requant::<A, i8>(kernel, c, &a, &b, &spec, par, want)?;
            } else {
                check_requant::<A, u8>(kernel, c, &a, &b, &spec, par, want)?;
            }
        }
    }
    Ok(())
}

/// Multipliers as TFLite produces them (mostly [2^30, 2^31)), plus corner values.
fn random_multiplier(rng: &mut Rng) -> i32 {
    match rng.below(8) {
        0 => [0, 1, i32::MAX, 1 << 30, i32::MIN, -(1 << 30)][rng.below(6) as usize],
        1 => rng.next_u64() as i32,
        _ => (1 << 30) + (rng.next_u64() % (1 << 30)) as i32,
    }
}

#[cfg(feature = "alloc")]
fn check_requant<A: Q8 + edgemm::QuantInput, O: Q8 + edgemm::QuantOutput>(
    kernel: Option<&Kernel>,
    c: &QCase,
    a: &Mat<A>,
    b: &Mat<i8>,
    spec: &edgemm::Requantize,
    par: Par,
    want: impl Fn(usize, usize) -> i32,
) -> Result<(), String> {
    let mut cm = Mat::<O>::new(c.m, c.n, c.lc);
    let r = match kernel {
        Some(kern) => edgemm::qgemm_requantize_with_kernel(
            kern,
            a.view(),
            c.za,
            b.view(),
            c.zb,
            spec,
            cm.view_mut(),
            par,
        ),
        None => edgemm::qgemm_requantize(a.view(), c.za, b.view(), c.zb, spec, cm.view_mut(), par),
    };
    r.map_err(|e| format!("qgemm_requantize returned an error: {e}"))?;
    for i in 0..c.m {
        for j in 0..c.n {
            let (got, w) = (cm.get(i, j).into(), want(i, j));
            if got != w {
                return Err(format!("out[{i},{j}] = {got}, reference {w}"));
            }
        }
    }
    let bad = cm.guard_violations();
    if bad != 0 {
        return Err(format!(
            "{bad} elements outside the output view were written"
        ));
    }
    Ok(())
}
