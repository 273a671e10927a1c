//! How a call runs: threads, a forced kernel, caller memory for scratch. One value, so the
//! operations keep one signature each whatever the combination (the role of ruy's
//! `Context`).

use crate::error::Error;
use crate::kernels::Kernel;
use crate::par::Par;

/// The execution context of a GEMM call: how many threads, which kernel, and whether the
/// caller provides the scratch memory.
///
/// Every operation takes `impl Into<Context>`, so a [`Par`] alone is a context (the default
/// kernel, scratch from the allocator), and `&mut Context` reuses one across calls:
///
/// ```
/// use edgemm::{sgemm, sgemm_workspace_size, Context, MatMut, MatRef, Par};
/// let a = [1.0, 2.0, 3.0, 4.0]; // 2×2
/// let b = [1.0, 0.0, 0.0, 1.0];
/// let mut c = [0.0f32; 4];
/// // Threads only.
/// sgemm(1.0, MatRef::row_major(&a, 2, 2)?, MatRef::row_major(&b, 2, 2)?, 0.0,
///       MatMut::row_major(&mut c, 2, 2)?, Par::Threads(2))?;
/// // No allocation: scratch in the caller's buffer, on the calling thread.
/// let mut ws = [0u8; sgemm_workspace_size(2, 2, 2)];
/// let mut ctx = Context::new().workspace(&mut ws);
/// sgemm(1.0, MatRef::row_major(&a, 2, 2)?, MatRef::col_major(&b, 2, 2)?, 0.0,
///       MatMut::row_major(&mut c, 2, 2)?, &mut ctx)?;
/// assert_eq!(c, [1.0, 2.0, 3.0, 4.0]);
/// # Ok::<(), edgemm::Error>(())
/// ```
///
/// - **Threads** ([`Context::par`], default [`Par::Seq`]): results do not depend on them.
/// - **Kernel** ([`Context::kernel`], default: the best this CPU runs, or `EDGEMM_KERNEL`):
///   a kernel of the wrong family is [`Error::WrongKernelKind`]; with a prepacked operand,
///   a kernel other than the one it was packed for is [`Error::PackingMismatch`].
/// - **Workspace** ([`Context::workspace`]): the call then allocates nothing and runs on the
///   calling thread, its scratch in this buffer (any alignment, any contents), which must
///   hold the operation's `*_workspace_size` bytes (else [`Error::WorkspaceTooSmall`] before
///   anything is read or written). Without the `alloc` feature an int8 call needs one.
#[derive(Default)]
pub struct Context<'w> {
    pub(crate) par: Par,
    pub(crate) kernel: Option<Kernel>,
    pub(crate) workspace: Option<&'w mut [u8]>,
}

impl core::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Context")
            .field("par", &self.par)
            .field("kernel", &self.kernel)
            .field("workspace_bytes", &self.workspace.as_ref().map(|w| w.len()))
            .finish()
    }
}

impl<'w> Context<'w> {
    /// One thread, the default kernel, scratch from the allocator.
    pub const fn new() -> Self {
        Context {
            par: Par::Seq,
            kernel: None,
            workspace: None,
        }
    }

    /// With this parallelism.
    pub fn par(mut self, par: Par) -> Self {
        self.par = par;
        self
    }

    /// With this kernel (from [`Kernel::by_name`]) instead of the default one.
    pub fn kernel(mut self, kernel: Kernel) -> Self {
        self.kernel = Some(kernel);
        self
    }

    /// With the caller's scratch memory: no allocation, the calling thread only.
    pub fn workspace<'v>(self, workspace: &'v mut [u8]) -> Context<'v>
    where
        'w: 'v,
    {
        Context {
            par: self.par,
            kernel: self.kernel,
            workspace: Some(workspace),
        }
    }

    /// The thread count to run with: `Par::Threads(0)` is an error; a workspace means one.
    pub(crate) fn threads(&self) -> Result<usize, Error> {
        match self.par {
            Par::Threads(0) => Err(Error::ZeroThreads),
            _ if self.workspace.is_some() => Ok(1),
            Par::Seq => Ok(1),
            Par::Threads(n) => Ok(n.min(crate::threads::available())),
        }
    }

    /// The forced kernel must be the one a prepacked operand was packed for.
    pub(crate) fn check_packed_for(&self, packed_for: &'static str) -> Result<(), Error> {
        match self.kernel {
            Some(k) if k.name() != packed_for => Err(Error::PackingMismatch {
                packed_for,
                kernel: k.name(),
            }),
            _ => Ok(()),
        }
    }
}

impl From<Par> for Context<'_> {
    fn from(par: Par) -> Self {
        Context::new().par(par)
    }
}

/// Reuses a context (and its workspace) for another call.
impl<'a, 'w: 'a> From<&'a mut Context<'w>> for Context<'a> {
    fn from(ctx: &'a mut Context<'w>) -> Self {
        Context {
            par: ctx.par,
            kernel: ctx.kernel,
            workspace: ctx.workspace.as_deref_mut(),
        }
    }
}
