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

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::ir::Graph;
use crate::error::Error;
use crate::nn::error::{ModelError, ModelFormat};

mod dedup;
mod fold;
mod fuse;
mod order;
pub mod quantize;
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
    run: fn(&mut Graph, &Args) -> Result<String, Error>,
}

/// Every pass, in the order `edgemm convert --help` lists them.
pub static PASSES: &[PassDef] = &[
    strip::STRIP_UNUSED,
    strip::REMOVE_NODES,
    fold::FOLD_CONSTANTS,
    fuse::FUSE_ACTIVATIONS,
    dedup::MERGE_DUPLICATES,
    order::SORT_BY_EXECUTION_ORDER,
    quantize::QUANTIZE,
    summarize::SUMMARIZE,
];

/// The pipeline `edgemm convert` runs when none is given.
pub const DEFAULT_PIPELINE: &str =
    "strip_unused remove_nodes fold_constants fuse_activations merge_duplicates \
     sort_by_execution_order strip_unused";

/// A step's arguments: `key=value` pairs, in the order written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Args {
    pairs: Vec<(String, String)>,
}

impl Args {
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

/// What each step of a run did, one line per step.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub lines: Vec<(String, String)>,
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
            steps.push(Step { pass, args });
            rest = rest.trim_start();
        }
        Ok(Pipeline { steps })
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
            let line = (step.pass.run)(g, &step.args)?;
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
