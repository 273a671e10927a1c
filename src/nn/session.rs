//! A session: one model run over the caller's arena. No allocation, no re-validation.

use super::blob::{blob_err, Model, Place, Storage, ALIGN};
use super::error::{ModelError, ModelFormat};
use super::ops::{self, OpMem};
use crate::error::Error;

/// Runs a [`Model`] in an arena the caller owns (a `static` of [`Model::arena_size`] bytes on
/// a microcontroller). Inputs are written into the arena, [`Session::run`] runs every
/// operator in order, outputs are read from the arena. One session per thread; the model
/// itself is shared.
#[derive(Debug)]
pub struct Session<'m, 'a> {
    model: Model<'m>,
    arena: &'a mut [u8],
    threads: usize,
    /// Each operator's plan, made once here or lent by whoever made them for this arena (a
    /// host `Runner`, which keeps them across runs; feature `alloc`: without it every
    /// operator runs through its `run`).
    #[cfg(feature = "alloc")]
    plans: alloc::borrow::Cow<'a, [ops::Plan<'m>]>,
}

impl<'m, 'a> Session<'m, 'a> {
    /// A session over `arena`, which must be 16-byte aligned and hold at least
    /// [`Model::arena_size`] bytes (else [`Error::WorkspaceTooSmall`], or an error about the
    /// alignment).
    pub fn new(model: Model<'m>, arena: &'a mut [u8]) -> Result<Self, Error> {
        Self::check_arena(&model, arena)?;
        #[cfg(feature = "alloc")]
        let plans = alloc::borrow::Cow::Owned(ops::plans(&model, arena.len()));
        Ok(Session {
            model,
            arena,
            threads: 1,
            #[cfg(feature = "alloc")]
            plans,
        })
    }

    /// A session over `arena` with the operators' plans made by [`ops::plans`] for this
    /// model and an arena of this length (so a new session allocates nothing).
    #[cfg(feature = "alloc")]
    pub(crate) fn with_plans(
        model: Model<'m>,
        arena: &'a mut [u8],
        plans: &'a [ops::Plan<'m>],
    ) -> Result<Self, Error> {
        Self::check_arena(&model, arena)?;
        if plans.len() != model.num_ops() {
            return Err(blob_err("the operators' plans are not this model's"));
        }
        Ok(Session {
            model,
            arena,
            threads: 1,
            plans: alloc::borrow::Cow::Borrowed(plans),
        })
    }

    /// The model can run, and `arena` is large enough and aligned for it.
    fn check_arena(model: &Model<'m>, arena: &[u8]) -> Result<(), Error> {
        model.runnable()?;
        if arena.len() < model.arena_size() {
            return Err(Error::WorkspaceTooSmall {
                needed: model.arena_size(),
                got: arena.len(),
            });
        }
        if arena.as_ptr() as usize % ALIGN != 0 {
            return Err(blob_err("the arena does not start 16-byte aligned"));
        }
        Ok(())
    }

    /// Runs the operators on up to `n` threads, the calling one included (default 1; 0
    /// counts as 1). Results are the same for every thread count. Without the `std` feature
    /// this has no effect: everything runs on the calling thread.
    pub fn set_threads(&mut self, n: usize) {
        self.threads = n.max(1);
    }

    /// The thread count set by [`Session::set_threads`].
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The model.
    pub fn model(&self) -> &Model<'m> {
        &self.model
    }

    fn io_info(&self, t: Option<usize>, what: &'static str) -> Result<Place, Error> {
        // Where its bytes are, nothing else of its record (no name, no shape).
        t.and_then(|t| self.model.place(t))
            .filter(|p| p.storage == Storage::Arena)
            .ok_or_else(|| blob_err(what))
    }

    /// The bytes of model input `i` (its dtype, row-major), to fill before [`Session::run`].
    pub fn input_mut(&mut self, i: usize) -> Result<&mut [u8], Error> {
        let info = self.io_info(self.model.input(i), "no such model input")?;
        self.arena
            .get_mut(info.offset..info.offset + info.bytes)
            .ok_or_else(|| blob_err("an input lies outside the arena"))
    }

    /// Copies `bytes` into model input `i`; a length other than the input's is an error that
    /// names the input (its index, tensor and name) and both lengths.
    pub fn set_input(&mut self, i: usize, bytes: &[u8]) -> Result<(), Error> {
        let t = self.model.input(i);
        let name = t.and_then(|t| self.model.tensor(t)).and_then(|x| x.name);
        let dst = self.input_mut(i)?;
        if dst.len() != bytes.len() {
            return Err(input_size_error(
                i,
                t.unwrap_or(0),
                name,
                dst.len(),
                bytes.len(),
                "model input {} takes {} bytes, {} were given",
            ));
        }
        dst.copy_from_slice(bytes);
        Ok(())
    }

    /// The bytes of model output `i` (valid after [`Session::run`]).
    pub fn output(&self, i: usize) -> Result<&[u8], Error> {
        let info = self.io_info(self.model.output(i), "no such model output")?;
        self.arena
            .get(info.offset..info.offset + info.bytes)
            .ok_or_else(|| blob_err("an output lies outside the arena"))
    }

    /// Runs every operator in order.
    pub fn run(&mut self) -> Result<(), Error> {
        self.run_each(|_| {}, |_| {})
    }

    /// [`Session::run`] with the operators of `OPS` only (the set the model was loaded with,
    /// [`Model::from_bytes_with`]): with `OPS` a constant, the other operators are not linked.
    pub fn run_with<const OPS: u128>(&mut self) -> Result<(), Error> {
        self.run_each_with::<OPS>(|_| {}, |_| {})
    }

    /// [`Session::run_with`] with the operator forms of `FORMS` only too (the set the model
    /// was loaded with, [`Model::from_bytes_with_forms`]).
    pub fn run_with_forms<const OPS: u128, const FORMS: u32>(&mut self) -> Result<(), Error> {
        self.run_each_with_forms::<OPS, FORMS>(|_| {}, |_| {})
    }

    /// Runs every operator in order, calling `before(i)` and `after(i)` around operator `i`
    /// (for profiling).
    pub fn run_each(
        &mut self,
        before: impl FnMut(usize),
        after: impl FnMut(usize),
    ) -> Result<(), Error> {
        self.run_each_with::<{ ops::ALL_OPS }>(before, after)
    }

    /// [`Session::run_each`] with the operators of `OPS` only (see [`Session::run_with`]).
    pub fn run_each_with<const OPS: u128>(
        &mut self,
        before: impl FnMut(usize),
        after: impl FnMut(usize),
    ) -> Result<(), Error> {
        self.run_each_with_forms::<OPS, { ops::ALL_FORMS }>(before, after)
    }

    /// [`Session::run_each`] with the operators of `OPS` and forms of `FORMS` only (see
    /// [`Session::run_with_forms`]).
    pub fn run_each_with_forms<const OPS: u128, const FORMS: u32>(
        &mut self,
        mut before: impl FnMut(usize),
        mut after: impl FnMut(usize),
    ) -> Result<(), Error> {
        let (ptr, len) = (self.arena.as_mut_ptr(), self.arena.len());
        for i in 0..self.model.num_ops() {
            before(i);
            #[cfg(feature = "alloc")]
            if let Some(plan) = self.plans.get(i) {
                // SAFETY: the arena is ours (borrowed mutably for the session), of the
                // length the plans were made for, 16-byte aligned (checked in `new`).
                if unsafe { plan.run::<OPS, FORMS>(ptr, self.threads) } {
                    after(i);
                    continue;
                }
            }
            let Some(op) = self.model.op(i) else { break };
            // SAFETY: the arena is ours (borrowed mutably for the session) and at least the
            // model's arena size, 16-byte aligned (checked in `new`); OpMem lives for this
            // operator only.
            let mut mem = unsafe { OpMem::new(self.model, ptr, len) }.with_threads(self.threads);
            ops::run_in::<OPS, FORMS>(&op, &mut mem)
                .unwrap_or_else(|| Err(op.error("operator not in this runtime's operator set")))?;
            after(i);
        }
        Ok(())
    }
}

/// An error about the size of what was given for model input `i` (tensor `t`).
pub(crate) fn input_size_error(
    i: usize,
    t: usize,
    name: Option<&str>,
    expected: usize,
    got: usize,
    reason: &'static str,
) -> Error {
    let mut e = ModelError::new(ModelFormat::Blob, reason)
        .with_tensor(t)
        .with_values(&[i as i64, expected as i64, got as i64]);
    if let Some(name) = name {
        e = e.with_name(name);
    }
    Error::Model(e)
}
