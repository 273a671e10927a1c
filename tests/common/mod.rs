//! The kernel-vs-reference battery, shared by the host test binaries and the bare-metal test
//! firmware (it needs only `alloc`). A `Case` is one call: shape, layouts, α, β, values,
//! threads; `run_sgemm_case` builds it, runs it, and checks it against `edgemm::reference`.
#![allow(dead_code)]

extern crate alloc;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use edgemm::{Context, Kernel, MatMut, MatRef, Par};

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
    /// `sgemm` with a context of `c.threads` threads (and the kernel, if forced).
    Plain,
    /// `sgemm` with a context holding a workspace of exactly
    /// `sgemm_workspace_size(m, n, k)` bytes at an offset from 0 to 63 (any alignment),
    /// guarded on both sides; one byte less must be `WorkspaceTooSmall` and touch nothing.
    Workspace,
}

/// Bytes around a workspace that must stay as they are.
const WS_GUARD: usize = 64;
const WS_GUARD_BYTE: u8 = 0xa5;

/// A context that forces `kernel`, if one is given.
pub fn context(kernel: Option<&Kernel>) -> Context<'static> {
    match kernel {
        Some(k) => Context::new().kernel(*k),
        None => Context::new(),
    }
}

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
            let ctx = context(kernel).par(par);
            let r = edgemm::sgemm(c.alpha, a.view(), b.view(), c.beta, cm.view_mut(), ctx);
            r.map_err(|e| format!("sgemm returned an error: {e}"))?;
        }
        Entry::Workspace => {
            let size = edgemm::sgemm_workspace_size(c.m, c.n, c.k);
            let off = (c.seed % 64) as usize;
            let mut buf = vec![WS_GUARD_BYTE; off + size + 2 * WS_GUARD];
            let ws = WS_GUARD + off..WS_GUARD + off + size;
            // Threads asked for too: a workspace call runs on the calling thread anyway.
            let call = |cm: &mut Mat, ws: &mut [u8]| {
                let ctx = context(kernel).par(par).workspace(ws);
                edgemm::sgemm(c.alpha, a.view(), b.view(), c.beta, cm.view_mut(), ctx)
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
                .map_err(|e| format!("sgemm with a workspace returned an error: {e}"))?;
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
        let ctx = Context::new().kernel(*kernel).par(par);
        edgemm::sgemm(c.alpha, a.view(), b.view(), c.beta, cm.view_mut(), ctx)
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

/// One output stage of each kind: i32 out, per tensor, per channel with bias and clamp,
/// u8 out with left shifts, per tensor u8 with a clamp beyond the type's range.
pub const RQ_VARIANTS: [Option<RqCase>; 5] = [
    None,
    Some(RqCase {
        per_channel: false,
        out_signed: true,
        bias: false,
        clamp: None,
        left_shifts: false,
    }),
    Some(RqCase {
        per_channel: true,
        out_signed: true,
        bias: true,
        clamp: Some((-20, 90)),
        left_shifts: false,
    }),
    Some(RqCase {
        per_channel: true,
        out_signed: false,
        bias: true,
        clamp: None,
        left_shifts: true,
    }),
    Some(RqCase {
        per_channel: false,
        out_signed: false,
        bias: true,
        clamp: Some((3, 300)),
        left_shifts: true,
    }),
];

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
    run_qgemm_case_via(kernel, c, QEntry::Plain)
}

/// Which public int8 entry point a case goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QEntry {
    /// `qgemm` (i32 or requantized output) with a context of `c.threads` threads and the
    /// forced kernel, if any. Needs `alloc`.
    Plain,
    /// `qgemm` with a context holding a workspace of exactly `qgemm_workspace_size(m, n, k)`
    /// bytes at an offset from 0 to 63,
    /// guarded on both sides; one byte less must be `WorkspaceTooSmall` and touch nothing.
    Workspace,
    /// B packed into caller memory (`PackedQBRef::pack[_with_kernel]` into exactly
    /// `qgemm_packed_b_size(k, n)` bytes at an odd offset, guarded; one byte less must be
    /// `WorkspaceTooSmall`), its bytes copied elsewhere and read back with `from_bytes`
    /// (as from flash), then `qgemm` with it and a workspace of exactly
    /// `qgemm_packed_workspace_size(m, n, k)` bytes (one less must fail and touch nothing).
    Packed,
}

/// Runs an int8 case through `kernel` (or the default selection) and the chosen entry
/// point; checks every output for exact equality with `edgemm::reference`, and every guard
/// element (of C, the workspace and the packing buffer) untouched.
pub fn run_qgemm_case_via(kernel: Option<&Kernel>, c: &QCase, entry: QEntry) -> Result<(), String> {
    if c.a_signed {
        run_q::<i8>(kernel, c, entry)
    } else {
        run_q::<u8>(kernel, c, entry)
    }
}

/// A guarded buffer of `size` bytes at offset `off` from a 64-byte boundary.
struct Guarded {
    buf: Vec<u64>,
    start: usize,
    size: usize,
}

impl Guarded {
    fn new(size: usize, off: usize) -> Guarded {
        let words = (2 * WS_GUARD + off + size).div_ceil(8) + 8;
        let mut g = Guarded {
            buf: vec![0; words],
            start: 0,
            size,
        };
        let base = g.buf.as_ptr() as usize;
        let aligned = (base + WS_GUARD).next_multiple_of(64) - base;
        g.start = aligned + off;
        g.bytes_mut().fill(WS_GUARD_BYTE);
        g
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.buf.len() * 8;
        // SAFETY: the Vec<u64> owns len bytes; u8 has no alignment or validity requirement.
        unsafe { core::slice::from_raw_parts_mut(self.buf.as_mut_ptr() as *mut u8, len) }
    }
    /// The buffer, or `short` bytes less of it.
    fn region(&mut self, short: usize) -> &mut [u8] {
        let (s, e) = (self.start, self.start + self.size - short);
        &mut self.bytes_mut()[s..e]
    }
    fn guards_intact(&mut self) -> bool {
        let (s, e) = (self.start, self.start + self.size);
        let b = self.bytes_mut();
        b[..s].iter().chain(&b[e..]).all(|&x| x == WS_GUARD_BYTE)
    }
}

/// Checks that a call given one byte less than `needed` fails with exactly that error.
fn expect_too_small<T: core::fmt::Debug>(
    what: &str,
    needed: usize,
    r: Result<T, edgemm::Error>,
) -> Result<(), String> {
    match r {
        Err(edgemm::Error::WorkspaceTooSmall { needed: n, got })
            if n == needed && got == needed - 1 =>
        {
            Ok(())
        }
        r => Err(format!(
            "{what}: {} bytes (needs {needed}) gave {r:?}",
            needed - 1
        )),
    }
}

/// Packs `b` into caller memory as `QEntry::Packed` says, checks the packing buffer's
/// guards and a short buffer, and returns the blob's bytes copied to a fresh 4-byte
/// aligned place (`Vec<u32>`), which the caller reads back with `from_bytes`.
fn pack_in_caller_memory(
    kernel: Option<&Kernel>,
    b: &Mat<i8>,
    seed: u64,
) -> Result<Vec<u32>, String> {
    let (k, n) = (b.rows, b.cols);
    let size = edgemm::qgemm_packed_b_size(k, n);
    let mut g = Guarded::new(size, 1 + (seed % 63) as usize);
    let pack = |buf: &mut [u8]| -> Result<Vec<u32>, edgemm::Error> {
        let p = match kernel {
            Some(kern) => edgemm::PackedQBRef::pack_with_kernel(kern, b.view(), buf)?,
            None => edgemm::PackedQBRef::pack(b.view(), buf)?,
        };
        if p.rows() != k || p.cols() != n {
            panic!("packed operand reports {:?} for {k}x{n}", p);
        }
        if let Some(kern) = kernel {
            assert_eq!(p.kernel_name(), kern.name(), "packed for the wrong kernel");
        }
        let bytes = p.as_bytes();
        let mut copy = vec![0u32; bytes.len().div_ceil(4)];
        for (i, &x) in bytes.iter().enumerate() {
            copy[i / 4] |= (x as u32) << (8 * (i % 4));
        }
        // Little-endian targets only (every target of the crate): the u32 words hold the
        // bytes in order.
        Ok(copy)
    };
    expect_too_small("packing buffer", size, pack(g.region(1)))?;
    if !g.guards_intact() || g.region(0).iter().any(|&x| x != WS_GUARD_BYTE) {
        return Err(String::from("a too-small packing buffer was written"));
    }
    let copy = pack(g.region(0)).map_err(|e| format!("PackedQBRef::pack returned {e}"))?;
    if !g.guards_intact() {
        return Err(String::from(
            "bytes outside the packing buffer were written",
        ));
    }
    Ok(copy)
}

fn as_bytes(words: &[u32]) -> &[u8] {
    // SAFETY: a u32 slice viewed as its bytes (u8: no alignment or validity requirement).
    unsafe { core::slice::from_raw_parts(words.as_ptr() as *const u8, words.len() * 4) }
}

/// An 8-bit type as the tests see it.
pub trait Q8: Elem + PartialEq + Into<i32> {
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

fn run_q<A: Q8 + edgemm::QuantInput>(
    kernel: Option<&Kernel>,
    c: &QCase,
    entry: QEntry,
) -> Result<(), String> {
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
    let packed_bytes = match entry {
        QEntry::Packed => Some(pack_in_caller_memory(kernel, &b, c.seed)?),
        _ => None,
    };
    let packed = match &packed_bytes {
        Some(words) => Some(
            edgemm::PackedQBRef::from_bytes(as_bytes(words))
                .map_err(|e| format!("PackedQBRef::from_bytes returned {e}"))?,
        ),
        None => None,
    };
    let ctx = QCall {
        kernel,
        c,
        entry,
        packed: packed.as_ref(),
    };
    match c.requant {
        None => {
            let mut cm = Mat::<i32>::new(c.m, c.n, c.lc);
            ctx.run(&mut cm, |cm, ws| ctx.qgemm(&a, &b, cm.view_mut(), ws))?;
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
                check_requant::<A, i8>(&ctx, &a, &b, &spec, want)?;
            } else {
                check_requant::<A, u8>(&ctx, &a, &b, &spec, want)?;
            }
        }
    }
    Ok(())
}

/// One int8 call's context: the kernel, the case, the entry point, the packed B.
struct QCall<'a> {
    kernel: Option<&'a Kernel>,
    c: &'a QCase,
    entry: QEntry,
    packed: Option<&'a edgemm::PackedQBRef<'a>>,
}

impl QCall<'_> {
    /// `qgemm` with B as the entry point says (a view, or the packed operand), the case's
    /// threads, the forced kernel, and the workspace if there is one.
    fn qgemm<'c, A: Q8 + edgemm::QuantInput>(
        &self,
        a: &Mat<A>,
        b: &Mat<i8>,
        out: impl Into<edgemm::QgemmC<'c>>,
        ws: Option<&mut [u8]>,
    ) -> Result<(), edgemm::Error> {
        let b: edgemm::QgemmB = match self.packed {
            Some(p) => p.into(),
            None => b.view().into(),
        };
        let par = if self.c.threads > 1 {
            Par::Threads(self.c.threads)
        } else {
            Par::Seq
        };
        let ctx = context(self.kernel).par(par);
        match ws {
            Some(ws) => edgemm::qgemm(a.view(), self.c.za, b, self.c.zb, out, ctx.workspace(ws)),
            None => edgemm::qgemm(a.view(), self.c.za, b, self.c.zb, out, ctx),
        }
    }

    /// Runs `call` on C as the entry point says: plain (no workspace), or with exactly the
    /// workspace the size function gives (after checking that one byte less is refused and
    /// touches neither C nor the workspace), and checks the workspace's guards.
    fn run<T: Elem + PartialEq>(
        &self,
        cm: &mut Mat<T>,
        call: impl Fn(&mut Mat<T>, Option<&mut [u8]>) -> Result<(), edgemm::Error>,
    ) -> Result<(), String> {
        let (m, n, k) = (self.c.m, self.c.n, self.c.k);
        let size = match self.entry {
            QEntry::Plain => {
                return call(cm, None).map_err(|e| format!("the int8 call returned {e}"))
            }
            QEntry::Workspace => edgemm::qgemm_workspace_size(m, n, k),
            QEntry::Packed => edgemm::qgemm_packed_workspace_size(m, n, k),
        };
        let mut g = Guarded::new(size, (self.c.seed % 64) as usize);
        if size > 0 {
            let before: Vec<T> = cm.data.clone();
            expect_too_small("workspace", size, call(cm, Some(g.region(1))))?;
            let untouched = cm.data == before;
            if !untouched || !g.guards_intact() || g.region(0).iter().any(|&x| x != WS_GUARD_BYTE) {
                return Err(String::from(
                    "a too-small workspace call wrote C or the workspace",
                ));
            }
        }
        call(cm, Some(g.region(0))).map_err(|e| format!("the int8 workspace call returned {e}"))?;
        if !g.guards_intact() {
            return Err(String::from("bytes outside the workspace were written"));
        }
        Ok(())
    }
}

/// Multipliers as TFLite produces them (mostly [2^30, 2^31)), plus corner values.
fn random_multiplier(rng: &mut Rng) -> i32 {
    match rng.below(8) {
        0 => [0, 1, i32::MAX, 1 << 30, i32::MIN, -(1 << 30)][rng.below(6) as usize],
        1 => rng.next_u64() as i32,
        _ => (1 << 30) + (rng.next_u64() % (1 << 30)) as i32,
    }
}

fn check_requant<A: Q8 + edgemm::QuantInput, O: Q8 + edgemm::QuantOutput>(
    ctx: &QCall,
    a: &Mat<A>,
    b: &Mat<i8>,
    spec: &edgemm::Requantize,
    want: impl Fn(usize, usize) -> i32,
) -> Result<(), String> {
    let c = ctx.c;
    let mut cm = Mat::<O>::new(c.m, c.n, c.lc);
    ctx.run(&mut cm, |cm, ws| {
        ctx.qgemm(a, b, edgemm::Requantized(spec, cm.view_mut()), ws)
    })?;
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

/// The output stage alone, through the public API: every entry of A equals A's zero point,
/// so every sum is 0 and `out[i, j] = requantize(bias[j])`. The bias values cover the edges
/// of the Arm output stage's fast range (±2^30, the i32 extremes) and random magnitudes;
/// the multipliers and shifts (per channel, or per tensor) cover every shift −31..=30,
/// multipliers 0, ±1, 2^30, the extremes and random ones; calls alternate between plans
/// whose shifts are all right shifts (the fast form) and anything, and between biases small
/// enough for the call to prove every accumulator below 2^30 and any; i8 and u8 outputs
/// with the type's range, a ReLU or a narrower clamp. Returns how many output values were
/// checked.
pub fn run_requant_sweep(
    kernel: Option<&Kernel>,
    entry: QEntry,
    calls: usize,
    seed: u64,
) -> Result<usize, String> {
    const EDGES: [i32; 16] = [
        0,
        1,
        -1,
        2,
        -3,
        (1 << 30) - 1,
        1 << 30,
        -(1 << 30),
        -(1 << 30) + 1,
        -(1 << 30) - 1,
        i32::MAX,
        i32::MIN,
        i32::MIN + 1,
        (1 << 29) + 12345,
        -(1 << 29) - 12345,
        0x1234_5678,
    ];
    const MULTS: [i32; 9] = [
        0,
        1,
        -1,
        1 << 30,
        i32::MAX,
        i32::MIN,
        i32::MIN + 1,
        i32::MIN + 2,
        -(1 << 30),
    ];
    let mut rng = Rng(seed);
    let (m, k, n) = (2, 3, 24);
    let mut checked = 0;
    for call in 0..calls {
        let fast = call % 2 == 0;
        let per_channel = call % 3 != 2;
        let out_signed = call % 8 < 4;
        let za = rng.below(256) as i32 - 128;
        let a = vec![za as i8; m * k];
        let b: Vec<i8> = (0..k * n).map(|_| rng.next_u64() as i8).collect();
        let pick_mult = |rng: &mut Rng| -> i32 {
            match rng.below(4) {
                0 => MULTS[rng.below(MULTS.len() as u64) as usize],
                1 => rng.next_u64() as i32,
                _ => (1 << 30) + (rng.next_u64() % (1 << 30)) as i32,
            }
        };
        let mut mults = Vec::with_capacity(n);
        let mut shifts = Vec::with_capacity(n);
        for j in 0..n {
            let mut mlt = pick_mult(&mut rng);
            let shift = if fast {
                if mlt <= i32::MIN + 1 {
                    mlt = i32::MIN + 2;
                }
                -1 - ((call * n + j) % 31) as i32
            } else {
                -31 + ((call * 7 + j) % 62) as i32
            };
            mults.push(mlt);
            shifts.push(shift);
        }
        // Every other call keeps the bias below 2^24, so the call can prove every
        // accumulator small (the output stage's unchecked form); the others reach the
        // edges of the range and the i32 extremes.
        let small = call % 4 >= 2;
        let bias: Vec<i32> = (0..n)
            .map(|j| {
                if small {
                    (rng.next_u64() as i32) >> (8 + rng.below(24))
                } else if (call + j) % 3 == 0 {
                    EDGES[(call * 5 + j) % EDGES.len()]
                } else {
                    (rng.next_u64() as i32) >> rng.below(32)
                }
            })
            .collect();
        let (omin, omax) = if out_signed { (-128, 127) } else { (0, 255) };
        let out_zp = omin + rng.below((omax - omin + 1) as u64) as i32;
        let (lo, hi) = match call % 5 {
            0 => (out_zp, omax),         // ReLU
            1 => (omin + 20, omax - 30), // a narrower clamp
            _ => (omin, omax),
        };
        let scale = if per_channel {
            edgemm::Scale::PerChannel {
                multipliers: &mults,
                shifts: &shifts,
            }
        } else {
            edgemm::Scale::PerTensor {
                multiplier: mults[0],
                shift: shifts[0],
            }
        };
        let spec = edgemm::Requantize::new(scale, out_zp)
            .with_bias(&bias)
            .with_clamp(lo, hi);
        let want = |j: usize| {
            let ch = if per_channel { j } else { 0 };
            edgemm::reference::requantize(0, bias[j], mults[ch], shifts[ch], out_zp, lo, hi)
        };
        let bm = Mat::<i8> {
            data: b.clone(),
            base: 0,
            rows: k,
            cols: n,
            rs: n as isize,
            cs: 1,
            layout: Layout::RowMajor,
        };
        let packed_words = match entry {
            QEntry::Packed => Some(pack_in_caller_memory(kernel, &bm, seed ^ call as u64)?),
            _ => None,
        };
        let packed = match &packed_words {
            Some(w) => Some(
                edgemm::PackedQBRef::from_bytes(as_bytes(w))
                    .map_err(|e| format!("PackedQBRef::from_bytes returned {e}"))?,
            ),
            None => None,
        };
        let av = MatRef::row_major(&a, m, k).unwrap();
        let bv = MatRef::row_major(&b, k, n).unwrap();
        let got: Vec<i32> = if out_signed {
            sweep_call::<i8>(kernel, entry, av, za, bv, packed.as_ref(), &spec, m, n)?
        } else {
            sweep_call::<u8>(kernel, entry, av, za, bv, packed.as_ref(), &spec, m, n)?
        };
        for i in 0..m {
            for j in 0..n {
                if got[i * n + j] != want(j) {
                    return Err(format!(
                        "requant sweep call {call}: out[{i},{j}] = {}, reference {} \
                         (bias {}, multiplier {}, shift {}, zero point {out_zp}, clamp {lo}..={hi})",
                        got[i * n + j],
                        want(j),
                        bias[j],
                        mults[if per_channel { j } else { 0 }],
                        shifts[if per_channel { j } else { 0 }],
                    ));
                }
                checked += 1;
            }
        }
    }
    Ok(checked)
}

#[allow(clippy::too_many_arguments)]
fn sweep_call<O: Q8 + edgemm::QuantOutput>(
    kernel: Option<&Kernel>,
    entry: QEntry,
    a: MatRef<i8>,
    za: i32,
    b: MatRef<i8>,
    packed: Option<&edgemm::PackedQBRef>,
    spec: &edgemm::Requantize,
    m: usize,
    n: usize,
) -> Result<Vec<i32>, String> {
    let mut out = vec![O::GUARD; m * n];
    let k = a.cols();
    let ov = edgemm::Requantized(spec, MatMut::row_major(&mut out, m, n).unwrap());
    let ctx = context(kernel);
    let r = match entry {
        QEntry::Plain => edgemm::qgemm(a, za, b, 0, ov, ctx),
        QEntry::Workspace => {
            let mut ws = vec![0u8; edgemm::qgemm_workspace_size(m, n, k)];
            edgemm::qgemm(a, za, b, 0, ov, ctx.workspace(&mut ws))
        }
        QEntry::Packed => {
            let mut ws = vec![0u8; edgemm::qgemm_packed_workspace_size(m, n, k)];
            edgemm::qgemm(a, za, packed.unwrap(), 0, ov, ctx.workspace(&mut ws))
        }
    };
    r.map_err(|e| format!("requant sweep: the call returned {e}"))?;
    Ok(out.iter().map(|&v| v.into()).collect())
}
