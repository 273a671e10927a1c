//! The public API's contract: bad input is an `Error` that says what was wrong, never a
//! panic; views reject out-of-bounds and aliasing layouts; kernel forcing is strict.

use edgemm::{Error, Kernel, MatMut, MatRef, Operand, Par};

#[test]
fn views_reject_out_of_bounds() {
    let v = [0f32; 12];
    assert!(matches!(
        MatRef::new(&v, 3, 5, 4, 1),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(
        MatRef::new(&v, 2, 2, -1, 1).is_err(),
        "negative strides need from_raw_parts"
    );
    assert!(
        MatRef::new(&v, 2, 2, isize::MAX, 1).is_err(),
        "overflowing extent"
    );
    assert!(MatRef::new(&v, usize::MAX, 1, 1, 1).is_err());
    assert!(MatRef::row_major(&v, 4, 4).is_err());
    assert!(MatRef::col_major(&v, 4, 3).is_ok());
    // Empty views are valid whatever the strides.
    assert!(MatRef::new(&v[..0], 0, 100, 7, 7).is_ok());
    let e = MatRef::new(&v, 3, 5, 4, 1).unwrap_err().to_string();
    assert!(e.contains("3x5") && e.contains("12 elements"), "{e}");
}

#[test]
fn mutable_views_reject_aliasing() {
    let mut v = [0f32; 64];
    assert!(matches!(
        MatMut::new(&mut v, 4, 4, 1, 1),
        Err(Error::Aliasing { .. })
    ));
    assert!(MatMut::new(&mut v, 4, 4, 0, 1).is_err());
    assert!(
        MatMut::new(&mut v, 3, 2, 2, 3).is_ok(),
        "interleaved but distinct"
    );
    assert!(
        MatMut::new(&mut v, 3, 3, 2, 3).is_ok(),
        "2i + 3j is distinct on 3x3"
    );
    assert!(
        MatMut::new(&mut v, 4, 3, 2, 3).is_err(),
        "(3,0) and (0,2) collide"
    );
    // A shared view may alias (a broadcast row, say).
    assert!(MatRef::new(&v, 4, 4, 0, 1).is_ok());
}

#[test]
fn subviews_and_transpose() {
    let data: Vec<f32> = (0..20).map(|x| x as f32).collect();
    let m = MatRef::row_major(&data, 4, 5).unwrap();
    let s = m.submatrix(1, 2, 2, 3).unwrap();
    assert_eq!(s.get(0, 0), Some(7.0));
    assert_eq!(s.get(1, 2), Some(14.0));
    assert_eq!(s.get(2, 0), None);
    assert_eq!(m.t().get(4, 3), Some(19.0));
    assert!(m.submatrix(3, 0, 2, 1).is_err());
    assert_eq!(m.row(2).unwrap().get(0, 4), Some(14.0));
    assert_eq!(m.col(1).unwrap().get(3, 0), Some(16.0));
    let mut d2 = data.clone();
    let mm = MatMut::row_major(&mut d2, 4, 5).unwrap();
    let (top, mut bottom) = mm.split_at_row(1).unwrap();
    assert_eq!((top.rows(), bottom.rows()), (1, 3));
    assert!(bottom.set(0, 0, -1.0));
    assert!(!bottom.set(3, 0, -1.0));
    assert_eq!(d2[5], -1.0);
}

#[test]
fn sgemm_rejects_mismatched_shapes() {
    let a = [0f32; 6];
    let b = [0f32; 6];
    let mut c = [0f32; 4];
    let r = edgemm::sgemm(
        1.0,
        MatRef::row_major(&a, 2, 3).unwrap(),
        MatRef::row_major(&b, 2, 3).unwrap(),
        0.0,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
        Par::Seq,
    );
    let e = r.unwrap_err();
    assert!(matches!(e, Error::DimensionMismatch { .. }));
    assert!(e.to_string().contains("A is 2x3, B is 2x3"), "{e}");
}

#[test]
fn zero_threads_is_an_error() {
    let a = [1f32; 4];
    let mut c = [0f32; 4];
    let r = edgemm::sgemm(
        1.0,
        MatRef::row_major(&a, 2, 2).unwrap(),
        MatRef::row_major(&a, 2, 2).unwrap(),
        0.0,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
        Par::Threads(0),
    );
    assert_eq!(r, Err(Error::ZeroThreads));
}

#[test]
fn beta_zero_never_reads_c_and_alpha_zero_never_reads_ab() {
    let a = [f32::NAN; 6];
    let mut c = [f32::NAN; 4];
    edgemm::sgemm(
        0.0,
        MatRef::row_major(&a, 2, 3).unwrap(),
        MatRef::row_major(&a, 3, 2).unwrap(),
        0.0,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
        Par::Seq,
    )
    .unwrap();
    assert_eq!(c, [0.0; 4]);
    let mut c = [1.0f32, 2.0, 3.0, 4.0];
    edgemm::sgemm(
        0.0,
        MatRef::row_major(&a, 2, 3).unwrap(),
        MatRef::row_major(&a, 3, 2).unwrap(),
        2.0,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
        Par::Seq,
    )
    .unwrap();
    assert_eq!(c, [2.0, 4.0, 6.0, 8.0]);
}

#[test]
fn raw_entry_point_checks_overlap_null_and_negative_strides() {
    let mut buf = [1f32; 16];
    let p = buf.as_mut_ptr();
    // C overlapping A.
    // SAFETY: all pointers address `buf`; the call must refuse before touching memory.
    let r = unsafe {
        edgemm::sgemm_raw(
            2,
            2,
            2,
            1.0,
            p,
            2,
            1,
            p.add(8),
            2,
            1,
            0.0,
            p.add(2),
            2,
            1,
            Par::Seq,
        )
    };
    assert_eq!(
        r,
        Err(Error::OutputOverlapsInput {
            operand: Operand::A
        })
    );
    // Null A with k > 0.
    // SAFETY: as above.
    let r = unsafe {
        edgemm::sgemm_raw(
            2,
            2,
            2,
            1.0,
            std::ptr::null(),
            2,
            1,
            p,
            2,
            1,
            0.0,
            p.add(8),
            2,
            1,
            Par::Seq,
        )
    };
    assert_eq!(
        r,
        Err(Error::NullPointer {
            operand: Operand::A
        })
    );
    // Aliasing C strides.
    // SAFETY: as above.
    let r = unsafe {
        edgemm::sgemm_raw(
            2,
            2,
            2,
            1.0,
            p,
            2,
            1,
            p.add(4),
            2,
            1,
            0.0,
            p.add(8),
            0,
            1,
            Par::Seq,
        )
    };
    assert!(matches!(
        r,
        Err(Error::Aliasing {
            operand: Operand::C,
            ..
        })
    ));
    // Negative strides: A stored with its rows reversed.
    let a = [3f32, 4.0, 1.0, 2.0]; // A = [[1, 2], [3, 4]] read bottom-up
    let b = [1f32, 0.0, 0.0, 1.0];
    let mut c = [0f32; 4];
    // SAFETY: A's rows at a+2 and a+0, B and C in their own arrays.
    unsafe {
        edgemm::sgemm_raw(
            2,
            2,
            2,
            1.0,
            a.as_ptr().add(2),
            -2,
            1,
            b.as_ptr(),
            2,
            1,
            0.0,
            c.as_mut_ptr(),
            2,
            1,
            Par::Seq,
        )
        .unwrap()
    };
    assert_eq!(c, [1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn kernel_forcing_is_strict() {
    let e = Kernel::by_name("sgemm_nonexistent_1x1").unwrap_err();
    assert!(matches!(e, Error::UnknownKernel { .. }));
    assert!(e.to_string().contains("sgemm_nonexistent_1x1"), "{e}");
    for info in edgemm::kernels() {
        let r = Kernel::by_name(info.name);
        assert_eq!(r.is_ok(), info.runnable, "{}", info.name);
        if !info.runnable {
            assert!(matches!(r, Err(Error::KernelNotSupported { .. })));
        }
    }
    assert_eq!(
        edgemm::kernels()
            .filter(|k| k.selected && k.kind == edgemm::KernelKind::F32)
            .count(),
        1,
        "exactly one f32 kernel is selected"
    );
}

/// `EDGEMM_KERNEL` is read once per process, so these run as child processes.
#[test]
fn edgemm_kernel_env_forces_or_fails() {
    if std::env::var_os("EDGEMM_API_CHILD").is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    // Under user-mode emulation (scripts/cross/*.sh) the host kernel cannot exec this
    // binary itself: EDGEMM_TEST_RUNNER names the emulator command to run it with.
    let runner = std::env::var("EDGEMM_TEST_RUNNER").unwrap_or_default();
    let runner = runner.split_whitespace();
    let run = |value: &str| {
        let mut cmd = match runner.clone().next() {
            Some(emu) => {
                let mut c = std::process::Command::new(emu);
                c.args(runner.clone().skip(1)).arg(&exe);
                c
            }
            None => std::process::Command::new(&exe),
        };
        cmd.args(["--exact", "env_child", "--nocapture"])
            .env("EDGEMM_KERNEL", value)
            .env("EDGEMM_API_CHILD", "1")
            .output()
            .unwrap()
    };
    let out = run("no_such_kernel");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ERR no kernel named \"no_such_kernel\""),
        "{text}"
    );
    let out = run("sgemm_generic_4x8");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("OK selected=sgemm_generic_4x8"), "{text}");
}

#[test]
fn env_child() {
    if std::env::var_os("EDGEMM_API_CHILD").is_none() {
        return;
    }
    let a = [1f32; 4];
    let mut c = [0f32; 4];
    let r = edgemm::sgemm(
        1.0,
        MatRef::row_major(&a, 2, 2).unwrap(),
        MatRef::row_major(&a, 2, 2).unwrap(),
        0.0,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
        Par::Seq,
    );
    match r {
        Ok(()) => {
            let sel = edgemm::kernels()
                .find(|k| k.selected && k.kind == edgemm::KernelKind::F32)
                .map(|k| k.name);
            println!("OK selected={}", sel.unwrap_or("?"));
        }
        Err(e) => println!("ERR {e}"),
    }
}

#[cfg(feature = "alloc")]
mod int8 {
    use edgemm::{
        Context, Error, Kernel, MatMut, MatRef, Operand, Par, Requantize, Requantized, Scale,
    };

    fn views<'a>(a: &'a [u8], b: &'a [i8]) -> (MatRef<'a, u8>, MatRef<'a, i8>) {
        (
            MatRef::row_major(a, 2, 3).unwrap(),
            MatRef::row_major(b, 3, 2).unwrap(),
        )
    }

    #[test]
    fn zero_points_must_fit_their_types() {
        let (a, b) = ([1u8; 6], [1i8; 6]);
        let (av, bv) = views(&a, &b);
        let mut c = [0i32; 4];
        let r = edgemm::qgemm(
            av,
            256,
            bv,
            0,
            MatMut::row_major(&mut c, 2, 2).unwrap(),
            Par::Seq,
        );
        assert_eq!(
            r,
            Err(Error::ZeroPointOutOfRange {
                operand: Operand::A,
                value: 256,
                min: 0,
                max: 255
            })
        );
        let r = edgemm::qgemm(
            av,
            0,
            bv,
            -129,
            MatMut::row_major(&mut c, 2, 2).unwrap(),
            Par::Seq,
        );
        assert!(matches!(
            r,
            Err(Error::ZeroPointOutOfRange {
                operand: Operand::B,
                ..
            })
        ));
        let ai = [1i8; 6];
        let r = edgemm::qgemm(
            MatRef::row_major(&ai, 2, 3).unwrap(),
            128,
            bv,
            0,
            MatMut::row_major(&mut c, 2, 2).unwrap(),
            Par::Seq,
        );
        assert!(r.unwrap_err().to_string().contains("-128..=127"));
    }

    #[test]
    fn k_beyond_exactness_is_an_error() {
        let kmax = edgemm::max_exact_k::<u8>(0, -128);
        assert_eq!(kmax, 33025);
        assert_eq!(edgemm::max_exact_k::<i8>(0, 0), 131071);
        let k = kmax + 1;
        let a = vec![0u8; k];
        let b = vec![0i8; k];
        let mut c = [0i32; 1];
        let r = edgemm::qgemm(
            MatRef::row_major(&a, 1, k).unwrap(),
            0,
            MatRef::row_major(&b, k, 1).unwrap(),
            -128,
            MatMut::row_major(&mut c, 1, 1).unwrap(),
            Par::Seq,
        );
        assert_eq!(r, Err(Error::KTooLarge { k, max: kmax }));
    }

    #[test]
    fn requantize_parameters_are_checked() {
        let (a, b) = ([1u8; 6], [1i8; 6]);
        let (av, bv) = views(&a, &b);
        let mut o = [0i8; 4];
        let mut run = |rq: &Requantize| {
            let o = Requantized(rq, MatMut::row_major(&mut o, 2, 2).unwrap());
            edgemm::qgemm(av, 0, bv, 0, o, Par::Seq)
        };
        let pt = |shift| Scale::PerTensor {
            multiplier: 1 << 30,
            shift,
        };
        assert_eq!(
            run(&Requantize::new(pt(31), 0)),
            Err(Error::ShiftOutOfRange {
                channel: 0,
                shift: 31
            })
        );
        assert!(run(&Requantize::new(pt(-32), 0)).is_err());
        assert!(matches!(
            run(&Requantize::new(pt(0), 128)),
            Err(Error::ZeroPointOutOfRange {
                operand: Operand::C,
                ..
            })
        ));
        assert_eq!(
            run(&Requantize::new(pt(0), 0).with_bias(&[1, 2, 3])),
            Err(Error::LengthMismatch {
                what: "bias",
                expected: 2,
                got: 3
            })
        );
        let (m, s) = ([1 << 30; 2], [0, 30]);
        assert!(run(&Requantize::new(
            Scale::PerChannel {
                multipliers: &m,
                shifts: &s
            },
            0
        ))
        .is_ok());
        let s3 = [0; 3];
        assert!(matches!(
            run(&Requantize::new(
                Scale::PerChannel {
                    multipliers: &m,
                    shifts: &s3
                },
                0
            )),
            Err(Error::LengthMismatch { .. })
        ));
        assert_eq!(
            run(&Requantize::new(pt(0), 0).with_clamp(200, 300)),
            Err(Error::EmptyClamp { min: 200, max: 300 })
        );
    }

    #[test]
    fn quantize_multiplier_matches_tflite_and_rejects_bad_scales() {
        assert_eq!(edgemm::quantize_multiplier(0.5), Ok((1 << 30, 0)));
        assert_eq!(edgemm::quantize_multiplier(0.0), Ok((0, 0)));
        assert_eq!(
            edgemm::quantize_multiplier(f64::INFINITY),
            Err(Error::InvalidScale)
        );
        assert_eq!(
            edgemm::quantize_multiplier(2f64.powi(31)),
            Err(Error::InvalidScale)
        );
    }

    #[test]
    fn kernels_of_the_wrong_kind_are_refused() {
        // The first kernel of each kind this CPU runs (the best may need an extension).
        let f = edgemm::kernels()
            .find(|k| k.kind == edgemm::KernelKind::F32 && k.runnable)
            .unwrap();
        let q = edgemm::kernels()
            .find(|k| k.kind == edgemm::KernelKind::Int8 && k.runnable)
            .unwrap();
        let fk = Kernel::by_name(f.name).unwrap();
        let qk = Kernel::by_name(q.name).unwrap();
        let (a, b) = ([1u8; 6], [1i8; 6]);
        let (av, bv) = views(&a, &b);
        let mut c = [0i32; 4];
        let cv = MatMut::row_major(&mut c, 2, 2).unwrap();
        let r = edgemm::qgemm(av, 0, bv, 0, cv, Context::new().kernel(fk));
        assert!(matches!(
            r,
            Err(Error::WrongKernelKind {
                expected: "int8",
                ..
            })
        ));
        let x = [1f32; 4];
        let mut y = [0f32; 4];
        let r = edgemm::sgemm(
            1.0,
            MatRef::row_major(&x, 2, 2).unwrap(),
            MatRef::row_major(&x, 2, 2).unwrap(),
            0.0,
            MatMut::row_major(&mut y, 2, 2).unwrap(),
            Context::new().kernel(qk),
        );
        assert!(matches!(
            r,
            Err(Error::WrongKernelKind {
                expected: "f32",
                ..
            })
        ));
        let q_selected = edgemm::kernels()
            .filter(|k| k.kind == edgemm::KernelKind::Int8 && k.selected)
            .count();
        assert_eq!(q_selected, 1, "exactly one int8 kernel is selected");
    }

    #[test]
    fn k_zero_gives_zeros_or_the_requantized_bias() {
        let (a, b) = ([0u8; 0], [0i8; 0]);
        let mut c = [7i32; 6];
        edgemm::qgemm(
            MatRef::row_major(&a, 2, 0).unwrap(),
            3,
            MatRef::row_major(&b, 0, 3).unwrap(),
            1,
            MatMut::row_major(&mut c, 2, 3).unwrap(),
            Par::Seq,
        )
        .unwrap();
        assert_eq!(c, [0; 6]);
        let mut o = [0u8; 6];
        let rq = Requantize::new(
            Scale::PerTensor {
                multiplier: 1 << 30,
                shift: 0,
            },
            10,
        )
        .with_bias(&[100, -100, 7]);
        edgemm::qgemm(
            MatRef::row_major(&a, 2, 0).unwrap(),
            3,
            MatRef::row_major(&b, 0, 3).unwrap(),
            1,
            Requantized(&rq, MatMut::row_major(&mut o, 2, 3).unwrap()),
            Par::Seq,
        )
        .unwrap();
        assert_eq!(o, [60, 0, 14, 60, 0, 14]);
    }
}
