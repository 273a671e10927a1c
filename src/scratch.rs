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
    with_buffer(0, len, f)
}

/// [`with_workspace`] with a second buffer of the thread, for data that must outlive the
/// workspaces of the tasks a call runs meanwhile (an in-place operator's rows kept aside
/// while it runs on several threads, whose tasks take [`with_workspace`]'s buffer).
#[cfg(feature = "std")]
pub(crate) fn with_staging<R>(len: usize, f: impl FnOnce(*mut f32) -> R) -> R {
    with_buffer(1, len, f)
}

/// Buffer `slot` (0 or 1) of this thread, of at least `len` elements, for `f`.
#[cfg(feature = "alloc")]
fn with_buffer<R>(slot: usize, len: usize, f: impl FnOnce(*mut f32) -> R) -> R {
    let lines = len.div_ceil(16).max(1);
    #[cfg(feature = "std")]
    {
        use core::cell::RefCell;
        use std::vec::Vec;
        std::thread_local! {
            static WS: [RefCell<Vec<Line>>; 2] =
                const { [RefCell::new(Vec::new()), RefCell::new(Vec::new())] };
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
        WS.with(|ws| match ws[slot.min(1)].try_borrow_mut() {
            Ok(mut buf) => run(&mut buf),
            Err(_) => run(&mut Vec::new()),
        })
    }
    #[cfg(not(feature = "std"))]
    {
        let _ = slot;
        let mut buf = alloc::vec![Line([0.0; 16]); lines];
        f(buf.as_mut_ptr() as *mut f32)
    }
}

/// Alignment of the start of a caller-provided workspace, in bytes (a cache line).
pub(crate) const WS_ALIGN: usize = 64;

/// Bytes a caller must provide for `bytes` bytes of `WS_ALIGN`-aligned workspace, when the
/// buffer may start at any address (0 stays 0). Every `*_workspace_size` ends with this.
pub(crate) const fn caller_workspace_size(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        // Saturating: a size too large for the address space stays unsatisfiable.
        bytes.saturating_add(WS_ALIGN - 1)
    }
}

/// The `WS_ALIGN`-aligned start of a caller's workspace, after checking it has the `needed`
/// bytes (as computed by the operation's `*_workspace_size`, alignment slack included).
///
/// The pattern of every operation that takes a workspace (a `Context` with one): a `const fn
/// <op>_workspace_size(m, n, k) -> usize` in bytes, and the call's workspace path calls this
/// first, so a short buffer is an `Error::WorkspaceTooSmall` before anything is read or
/// written.
pub(crate) fn caller_workspace(
    workspace: &mut [u8],
    needed: usize,
) -> Result<*mut u8, crate::Error> {
    if workspace.len() < needed {
        return Err(crate::Error::WorkspaceTooSmall {
            needed,
            got: workspace.len(),
        });
    }
    let p = workspace.as_mut_ptr();
    let pad = (p as usize).wrapping_neg() & (WS_ALIGN - 1);
    // When needed > 0 the slack covers `pad`; when it is 0 nothing will be written.
    Ok(p.wrapping_add(pad))
}
