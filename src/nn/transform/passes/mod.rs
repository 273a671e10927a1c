//! Graph rewrite passes over the IR, composable in a pipeline string as TensorFlow's Graph
//! Transform Tool composes its transforms:
//!
//! ```text
//! strip_unused remove_nodes(op=RESHAPE) fold_constants fuse_activations merge_duplicates
//! ```
//!
//! A pipeline is whitespace-separated steps; a step is a pass name with optional
//! `(key=value, …)` arguments. Every pass is one file, registered in [`PASSES`] (the one
//! place that lists them), documented there and tested on its own. A pass keeps the graph's
//! meaning (outputs identical for every input: bit for bit for int8) and leaves a valid
//! graph (every node's inputs produced before it or constant). What a pass did is reported
//! in one line of the [`Report`] (progress for long pipelines, and the `summarize` table).
//!
//! Three kinds of step ([`Run`]): graph rewrites; `summarize`, which only reads; and the
//! lowering steps `prepack(target=…)` and `plan_memory`, which decide how the graph becomes a
//! blob (the [`Report`] carries the target for the conversion after the pipeline) and so come
//! after every rewrite. [`Pipeline::with_options`] applies `edgemm convert`'s `--target` and
//! `--calibration` to a pipeline's `prepack` and `quantize` steps.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::ir::Graph;
use super::lower::Packing;
use crate::error::Error;
use crate::nn::error::{ModelError, ModelFormat};

mod batchnorm;
mod dedup;
mod fold;
mod fuse;
mod lowering;
mod order;
mod pad;
pub mod quantize;
mod quantize_weights;
mod strip;
mod summarize;

/// One pass of the registry.
pub struct PassDef {
    /// The name a pipeline uses.
    pub name: &'static str,
    /// The arguments it takes (`key` of `key=value`).
    pub args: &'static [&'static str],
    /// One line: what it does.
    pub doc: &'static str,
    pub(crate) run: Run,
}

/// What a step does, by kind; each returns its report line.
#[derive(Clone, Copy)]
pub(crate) enum Run {
    /// Rewrites the graph.
    Graph(fn(&mut Graph, &Args) -> Result<String, Error>),
    /// Reads the graph only (may come anywhere).
    Inspect(fn(&Graph, &Args) -> Result<String, Error>),
    /// Decides how the graph is lowered (after every rewrite).
    Lowering(fn(&Graph, &Args, &mut Target) -> Result<String, Error>),
}

/// What the lowering steps decided, for the conversion after the pipeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// The weights layout `prepack` chose (`None`: the caller's default).
    pub packing: Option<Packing>,
}

/// Every pass, in the order `edgemm convert --help` lists them.
pub static PASSES: &[PassDef] = &[
    strip::STRIP_UNUSED,
    strip::REMOVE_NODES,
    fold::FOLD_CONSTANTS,
    batchnorm::FOLD_BATCH_NORMS,
    fuse::FUSE_ACTIVATIONS,
    pad::FUSE_PAD,
    dedup::MERGE_DUPLICATES,
    order::SORT_BY_EXECUTION_ORDER,
    quantize_weights::QUANTIZE_WEIGHTS,
    quantize::QUANTIZE,
    summarize::SUMMARIZE,
    lowering::PREPACK,
    lowering::PLAN_MEMORY,
];

/// The pipeline `edgemm convert` runs when none is given (`--target` sets its `prepack`
/// target, `--calibration` adds a `quantize` step before `prepack`). Every pass in it keeps
/// int8 bit for bit; `fold_batch_norms` changes float outputs by rounding only (the ONNX
/// importer leaves batch norms and MatMul biases to it), and comes before
/// `fuse_activations` (it folds only into a conv or FC without an activation).
pub const DEFAULT_PIPELINE: &str =
    "strip_unused remove_nodes fold_constants fold_batch_norms fuse_activations fuse_pad \
     merge_duplicates sort_by_execution_order strip_unused prepack plan_memory";

/// A step's arguments: `key=value` pairs, in the order written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Args {
    pairs: Vec<(String, String)>,
}

impl Args {
    /// Sets `key` to `value`; an error naming `option` when the step already gives `key`
    /// (a parameter named both in the pipeline and by an option).
    pub fn set(&mut self, key: &str, value: &str, option: &str) -> Result<(), Error> {
        if self.get(key).is_some() {
            return Err(Error::Model(
                ModelError::new(
                    ModelFormat::Graph,
                    "a parameter is named both in the pipeline and by an option; name it once",
                )
                .with_name(option),
            ));
        }
        self.pairs.push((key.to_string(), value.to_string()));
        Ok(())
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One step of a pipeline.
#[derive(Clone, Debug)]
pub struct Step {
    pub pass: &'static PassDef,
    pub args: Args,
}

impl core::fmt::Debug for PassDef {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name)
    }
}

/// What each step of a run did, one line per step, and the lowering steps' decisions.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub lines: Vec<(String, String)>,
    pub target: Target,
}

fn pipeline_error(reason: &'static str, name: &str) -> Error {
    Error::Model(ModelError::new(ModelFormat::Graph, reason).with_name(name))
}

/// A parsed pipeline.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub steps: Vec<Step>,
}

impl Pipeline {
    /// Parses `text` (see the module documentation). An unknown pass, an unknown argument
    /// or a malformed step is an error naming it.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut steps = Vec::new();
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            let name_end = rest
                .find(|c: char| c.is_whitespace() || c == '(')
                .unwrap_or(rest.len());
            let name = &rest[..name_end];
            rest = &rest[name_end..];
            let mut args = Args::default();
            if let Some(after) = rest.strip_prefix('(') {
                let close = after
                    .find(')')
                    .ok_or_else(|| pipeline_error("a pass's arguments lack their ')'", name))?;
                for pair in after[..close].split(',').map(str::trim) {
                    if pair.is_empty() {
                        continue;
                    }
                    let (k, v) = pair
                        .split_once('=')
                        .ok_or_else(|| pipeline_error("a pass argument is not key=value", pair))?;
                    args.pairs
                        .push((k.trim().to_string(), v.trim().to_string()));
                }
                rest = &after[close + 1..];
            }
            let pass = PASSES
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| pipeline_error("no pass of this name", name))?;
            for (k, _) in &args.pairs {
                if !pass.args.contains(&k.as_str()) {
                    return Err(pipeline_error(
                        "this pass takes no argument of this name",
                        k,
                    ));
                }
            }
            let lowered = steps
                .iter()
                .any(|s: &Step| matches!(s.pass.run, Run::Lowering(_)));
            if lowered && matches!(pass.run, Run::Graph(_)) {
                return Err(pipeline_error(
                    "a graph pass after prepack or plan_memory (those come after every rewrite)",
                    name,
                ));
            }
            steps.push(Step { pass, args });
            rest = rest.trim_start();
        }
        Ok(Pipeline { steps })
    }

    /// `transforms` (or [`DEFAULT_PIPELINE`] when `None`) with `edgemm convert`'s options
    /// applied: `target` becomes the `prepack` step's target (a step added before
    /// `plan_memory`, or last, when there is none), `calibration` the `quantize` step's
    /// calibration directory (the default pipeline gets a `quantize` before its lowering
    /// steps; an explicit pipeline without one is an error). Naming a parameter both in the
    /// pipeline and by an option is an error.
    pub fn with_options(
        transforms: Option<&str>,
        target: Option<&str>,
        calibration: Option<&str>,
    ) -> Result<Self, Error> {
        let mut p = Pipeline::parse(transforms.unwrap_or(DEFAULT_PIPELINE))?;
        let first_lowering = |p: &Pipeline| {
            p.steps
                .iter()
                .position(|s| matches!(s.pass.run, Run::Lowering(_)))
                .unwrap_or(p.steps.len())
        };
        let find = |name| PASSES.iter().find(|d| d.name == name);
        if let Some(dir) = calibration {
            match p.steps.iter_mut().find(|s| s.pass.name == "quantize") {
                Some(s) => s.args.set("calibration", dir, "--calibration")?,
                None if transforms.is_none() => {
                    let at = first_lowering(&p);
                    let mut args = Args::default();
                    args.set("calibration", dir, "--calibration")?;
                    if let Some(pass) = find("quantize") {
                        p.steps.insert(at, Step { pass, args });
                    }
                }
                None => {
                    return Err(pipeline_error(
                        "--calibration sets a quantize step's calibration; the pipeline has none",
                        dir,
                    ))
                }
            }
        }
        if let Some(t) = target {
            match p.steps.iter_mut().find(|s| s.pass.name == "prepack") {
                Some(s) => s.args.set("target", t, "--target")?,
                None => {
                    let at = p
                        .steps
                        .iter()
                        .position(|s| s.pass.name == "plan_memory")
                        .unwrap_or(p.steps.len());
                    let mut args = Args::default();
                    args.set("target", t, "--target")?;
                    if let Some(pass) = find("prepack") {
                        p.steps.insert(at, Step { pass, args });
                    }
                }
            }
        }
        Ok(p)
    }

    /// Runs every step on `g` in order, calling `done(step, total, name, line)` after each
    /// (progress, with what the step did).
    pub fn run(
        &self,
        g: &mut Graph,
        mut done: impl FnMut(usize, usize, &str, &str),
    ) -> Result<Report, Error> {
        let mut report = Report::default();
        for (i, step) in self.steps.iter().enumerate() {
            let line = match step.pass.run {
                Run::Graph(f) => f(g, &step.args)?,
                Run::Inspect(f) => f(g, &step.args)?,
                Run::Lowering(f) => f(g, &step.args, &mut report.target)?,
            };
            done(i, self.steps.len(), step.pass.name, &line);
            report.lines.push((step.pass.name.to_string(), line));
        }
        Ok(report)
    }
}

/// How many nodes read each tensor, plus one for each graph output.
pub(crate) fn readers(g: &Graph) -> Vec<usize> {
    let mut n = vec![0usize; g.tensors.len()];
    for node in &g.nodes {
        for &t in node.inputs.iter().flatten() {
            if let Some(c) = n.get_mut(t) {
                *c += 1;
            }
        }
    }
    for &t in &g.outputs {
        if let Some(c) = n.get_mut(t) {
            *c += 1;
        }
    }
    n
}

/// Replaces every read of tensor `from` (node inputs and graph outputs) by `to`.
pub(crate) fn rewire(g: &mut Graph, from: usize, to: usize) {
    for node in &mut g.nodes {
        for t in node.inputs.iter_mut().flatten() {
            if *t == from {
                *t = to;
            }
        }
    }
    for t in &mut g.outputs {
        if *t == from {
            *t = to;
        }
    }
}

/// Drops tensors nothing refers to and renumbers the rest (order kept).
pub(crate) fn compact(g: &mut Graph) -> usize {
    let mut used = vec![false; g.tensors.len()];
    let refs = g
        .nodes
        .iter()
        .flat_map(|n| n.inputs.iter().flatten().chain(&n.outputs))
        .chain(&g.inputs)
        .chain(&g.outputs);
    for &t in refs {
        if let Some(u) = used.get_mut(t) {
            *u = true;
        }
    }
    let mut new_index = vec![usize::MAX; g.tensors.len()];
    let mut kept = Vec::new();
    for (i, t) in core::mem::take(&mut g.tensors).into_iter().enumerate() {
        if used[i] {
            new_index[i] = kept.len();
            kept.push(t);
        }
    }
    let removed = used.len() - kept.len();
    g.tensors = kept;
    let map = |t: &mut usize| *t = new_index[*t];
    for node in &mut g.nodes {
        node.inputs.iter_mut().flatten().for_each(map);
        node.outputs.iter_mut().for_each(map);
    }
    g.inputs.iter_mut().for_each(map);
    g.outputs.iter_mut().for_each(map);
    removed
}

/// "n thing(s)".
pub(crate) fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
pub(crate) mod test_graphs;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steps_and_arguments() {
        let p = Pipeline::parse("  strip_unused remove_nodes(op=RESHAPE)\tsummarize() ").unwrap();
        let names: Vec<&str> = p.steps.iter().map(|s| s.pass.name).collect();
        assert_eq!(names, ["strip_unused", "remove_nodes", "summarize"]);
        assert_eq!(p.steps[1].args.get("op"), Some("RESHAPE"));
        assert!(Pipeline::parse(DEFAULT_PIPELINE).is_ok());
        assert!(Pipeline::parse("").unwrap().steps.is_empty());
    }

    #[test]
    fn refuses_unknown_passes_and_arguments() {
        for bad in [
            "no_such_pass",
            "remove_nodes(op=RESHAPE",
            "remove_nodes(opRESHAPE)",
            "strip_unused(x=1)",
        ] {
            let e = Pipeline::parse(bad).unwrap_err().to_string();
            assert!(!e.is_empty(), "{bad}");
        }
        let e = Pipeline::parse("strip_unused fold_constantz").unwrap_err();
        assert!(e.to_string().contains("fold_constantz"), "{e}");
    }
}
