//! qgemm (i32 and requantized output) on fuzzer-chosen shapes, strides, zero points, requantization
//! parameters and values: invalid input must come back as an Err (never a panic or an
//! out-of-bounds access); valid calls must equal `edgemm::reference` exactly.
#![no_main]

use edgemm::{MatMut, MatRef, Par, Requantize, Requantized, Scale};
use libfuzzer_sys::fuzz_target;

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
    fn stride(&mut self) -> isize {
        self.byte() as isize % 65 - 4
    }
    fn i32(&mut self) -> i32 {
        i32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let (m, n, k) = (inp.small(24), inp.small(40), inp.small(80));
    let (ars, acs, brs, bcs, crs, ccs) = (
        inp.stride(),
        inp.stride(),
        inp.stride(),
        inp.stride(),
        inp.stride(),
        inp.stride(),
    );
    let (alen, blen, clen) = (inp.small(3000), inp.small(3000), inp.small(2000));
    // Zero points mostly valid, sometimes not.
    let za = inp.byte() as i32 - if inp.byte() % 8 == 0 { 300 } else { 0 };
    let zb = inp.byte() as i8 as i32 + if inp.byte() % 8 == 0 { 200 } else { 0 };
    let requant = inp.byte() % 2 == 0;
    let (mult, shift, out_zp) = (inp.i32(), inp.byte() as i32 % 70 - 35, inp.byte() as i8 as i32);
    let (lo, hi) = (inp.byte() as i8 as i32, inp.byte() as i8 as i32);
    let threads = 1 + inp.small(2);
    let s = inp.byte();
    let a: Vec<u8> = (0..alen).map(|i| (i as u8).wrapping_mul(31) ^ s).collect();
    let b: Vec<i8> = (0..blen).map(|i| ((i as u8).wrapping_mul(73) ^ s.rotate_left(3)) as i8).collect();
    let (av, bv) = match (MatRef::new(&a, m, k, ars, acs), MatRef::new(&b, k, n, brs, bcs)) {
        (Ok(av), Ok(bv)) => (av, bv),
        _ => return,
    };
    let valid_zp = (0..=255).contains(&za) && (-128..=127).contains(&zb);
    let mut acc = vec![0i32; m * n];
    if valid_zp {
        edgemm::reference::qgemm(av, za, bv, zb, MatMut::row_major(&mut acc, m, n).unwrap()).unwrap();
    }
    if !requant {
        let mut c = vec![0i32; clen];
        let Ok(cv) = MatMut::new(&mut c, m, n, crs, ccs) else {
            return;
        };
        let (r0, c0) = (cv.row_stride(), cv.col_stride());
        let r = edgemm::qgemm(av, za, bv, zb, cv, Par::Threads(threads));
        assert_eq!(r.is_ok(), valid_zp, "{r:?}");
        if r.is_ok() {
            let got = MatRef::new(&c, m, n, r0, c0).unwrap();
            for i in 0..m {
                for j in 0..n {
                    assert_eq!(got.get(i, j).unwrap(), acc[i * n + j], "C[{i},{j}]");
                }
            }
        }
    } else {
        let mut c = vec![0i8; clen];
        let Ok(cv) = MatMut::new(&mut c, m, n, crs, ccs) else {
            return;
        };
        let (r0, c0) = (cv.row_stride(), cv.col_stride());
        let rq = Requantize::new(Scale::PerTensor { multiplier: mult, shift }, out_zp).with_clamp(lo, hi);
        let r = edgemm::qgemm(av, za, bv, zb, Requantized(&rq, cv), Par::Threads(threads));
        let valid = valid_zp && (-31..=30).contains(&shift) && lo <= hi;
        assert_eq!(r.is_ok(), valid, "{r:?}");
        if r.is_ok() {
            let got = MatRef::new(&c, m, n, r0, c0).unwrap();
            for i in 0..m {
                for j in 0..n {
                    let want = edgemm::reference::requantize(acc[i * n + j], 0, mult, shift, out_zp, lo, hi);
                    assert_eq!(got.get(i, j).unwrap() as i32, want, "out[{i},{j}]");
                }
            }
        }
    }
});
