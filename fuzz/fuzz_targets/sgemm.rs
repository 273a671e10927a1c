//! sgemm on fuzzer-chosen shapes, strides, α/β and values: views the slice cannot hold
//! must be refused with an Err (never a panic or an out-of-bounds access); valid calls must
//! agree with `edgemm::reference` within the error bound.
#![no_main]

use edgemm::{MatMut, MatRef, Par};
use libfuzzer_sys::fuzz_target;

/// Reads small integers from the input, then the rest as data.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn small(&mut self, max: usize) -> usize {
        self.byte() as usize % (max + 1)
    }
    /// A stride in −4..=60, biased toward the usual layouts.
    fn stride(&mut self) -> isize {
        self.byte() as isize % 65 - 4
    }
    fn scalar(&mut self) -> f32 {
        [0.0, 1.0, -1.0, 0.5, 2.0, -0.25][self.byte() as usize % 6]
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let (m, n, k) = (inp.small(40), inp.small(40), inp.small(40));
    let (ars, acs, brs, bcs, crs, ccs) = (
        inp.stride(),
        inp.stride(),
        inp.stride(),
        inp.stride(),
        inp.stride(),
        inp.stride(),
    );
    let (alen, blen, clen) = (inp.small(2000), inp.small(2000), inp.small(2000));
    let (alpha, beta) = (inp.scalar(), inp.scalar());
    let threads = 1 + inp.small(2);
    let val = |i: usize, seed: u8| ((i * 37 + seed as usize) % 17) as f32 / 8.0 - 1.0;
    let s = inp.byte();
    let a: Vec<f32> = (0..alen).map(|i| val(i, s)).collect();
    let b: Vec<f32> = (0..blen).map(|i| val(i, s ^ 0x55)).collect();
    let mut c: Vec<f32> = (0..clen).map(|i| val(i, s ^ 0xaa)).collect();
    let c0 = c.clone();

    let (av, bv) = match (MatRef::new(&a, m, k, ars, acs), MatRef::new(&b, k, n, brs, bcs)) {
        (Ok(av), Ok(bv)) => (av, bv),
        _ => return, // refused: fine
    };
    let Ok(cv) = MatMut::new(&mut c, m, n, crs, ccs) else {
        return;
    };
    let (crs, ccs) = (cv.row_stride(), cv.col_stride());
    let r = edgemm::sgemm(alpha, av, bv, beta, cv, Par::Threads(threads));
    assert!(r.is_ok(), "valid call refused: {r:?}");

    // Oracle on a dense copy of C.
    let mut want = vec![0f32; m * n];
    let mut c0d = vec![0f32; m * n];
    let cv0 = MatRef::new(&c0, m, n, crs, ccs).unwrap();
    for i in 0..m {
        for j in 0..n {
            c0d[i * n + j] = cv0.get(i, j).unwrap();
        }
    }
    want.copy_from_slice(&c0d);
    edgemm::reference::sgemm(alpha, av, bv, beta, MatMut::row_major(&mut want, m, n).unwrap()).unwrap();
    let got = MatRef::new(&c, m, n, crs, ccs).unwrap();
    let c0v = MatRef::row_major(&c0d, m, n).unwrap();
    for i in 0..m {
        for j in 0..n {
            let bound = edgemm::reference::sgemm_error_bound(alpha, av, bv, beta, c0v, i, j);
            let g = got.get(i, j).unwrap() as f64;
            let w = want[i * n + j] as f64;
            assert!((g - w).abs() <= bound, "C[{i},{j}] = {g}, want {w} (bound {bound})");
        }
    }
});
