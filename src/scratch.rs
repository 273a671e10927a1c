//! Packing workspace: 64-byte aligned f32 buffers. With `std` each thread keeps one and
//! reuses it across calls (no allocation, no page faults on the hot path); with only `alloc`
//! a call allocates what it needs; without `alloc` there is none (the drivers then use
//! strategies that need no workspace, or the caller's).

/// One cache line of f32, the unit of allocation (gives the alignment).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Line(pub [f32; 16]);

/// Runs `f` with a 64-byte aligned buffer of at least `len` elements.
#[cfg(feature = "alloc")]
pub(crate) fn with_workspace<R>(len: usize, f: impl FnOnce(*mut f32) -> R) -> R {
    let lines = len.div_ceil(16).max(1);
    #[cfg(feature = "std")]
    {
        use core::cell::RefCell;
        use std::vec::Vec;
        std::thread_local! {
            static WS: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
        }
        // A re-entrant call (not possible today, but cheap to survive) gets its own buffer.
        let f = core::cell::Cell::new(Some(f));
        let run = |buf: &mut Vec<Line>| {
            if buf.len() < lines {
                buf.clear();
                buf.resize(lines, Line([0.0; 16]));
            }
            (f.take().expect("called once"))(buf.as_mut_ptr() as *mut f32)
        };
        WS.with(|ws| match ws.try_borrow_mut() {
            Ok(mut buf) => run(&mut buf),
            Err(_) => run(&mut Vec::new()),
        })
    }
    #[cfg(not(feature = "std"))]
    {
        let mut buf = alloc::vec![Line([0.0; 16]); lines];
        f(buf.as_mut_ptr() as *mut f32)
    }
}
