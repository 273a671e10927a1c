//! The lowering steps, last in a pipeline (after every rewrite):
//!
//! - `prepack(target=host|portable|cortex-m4|cortex-m4-i16)`: the weights layout the blob
//!   gets — packed for this CPU's int8/f32 GEMM kernels (`host`, the default), plain
//!   (`portable`, any build), or for the Cortex-M4 DSP kernels with scratch sized for that
//!   build (`cortex-m4`; `cortex-m4-i16`: the direct convolutions' weights as i16 pairs,
//!   twice their flash, a faster kernel). It records
//!   the choice in the pipeline's [`Target`]; the conversion after the pipeline packs the
//!   weights (packing is part of lowering, done once).
//! - `plan_memory`: lowers the graph for that target and plans its arena (lifetimes,
//!   in-place operators, greedy placement; see `transform::plan`); reports the arena, the
//!   greedy baseline of the same lifetimes and the activations' bytes. The conversion writes
//!   exactly this plan (lowering and planning are deterministic).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{count, pipeline_error, Args, PassDef, Run, Target};
use crate::error::Error;
use crate::nn::transform::ir::{BuiltinOp, Graph};
use crate::nn::transform::lower::{lower, Packing};
use crate::nn::transform::plan::plan;

pub(super) const PREPACK: PassDef = PassDef {
    name: "prepack",
    args: &["target"],
    doc: "lay the weights out for a target's kernels: host (default), portable or cortex-m4",
    run: Run::Lowering(prepack),
};

pub(super) const PLAN_MEMORY: PassDef = PassDef {
    name: "plan_memory",
    args: &[],
    doc: "plan the arena for the target (in-place operators, greedy placement); report it",
    run: Run::Lowering(plan_memory),
};

fn prepack(g: &Graph, args: &Args, target: &mut Target) -> Result<String, Error> {
    let packing = match args.get("target") {
        None => Packing::Host,
        Some(t) => Packing::from_name(t).ok_or_else(|| {
            pipeline_error(
                "unknown target (targets: host, portable, cortex-m4, cortex-m4-i16)",
                t,
            )
        })?,
    };
    target.packing = Some(packing);
    let weights = g.nodes.iter().filter(|n| {
        matches!(
            n.op,
            BuiltinOp::Conv2d | BuiltinOp::DepthwiseConv2d | BuiltinOp::FullyConnected
        )
    });
    Ok(format!(
        "the weights of {} laid out for {} when lowered",
        count(weights.count(), "GEMM operator"),
        packing.name()
    ))
}

fn plan_memory(g: &Graph, _: &Args, target: &mut Target) -> Result<String, Error> {
    let packing = target.packing.unwrap_or(Packing::Host);
    let l = lower(g, packing)?;
    let p = plan(&l);
    let acts: Vec<usize> = p
        .offsets
        .iter()
        .zip(&l.tensors)
        .filter(|(o, _)| o.is_some())
        .map(|(_, t)| t.bytes)
        .collect();
    Ok(format!(
        "arena {} bytes for {}: {} tensors of {} bytes in all share it (greedy baseline {})",
        p.arena,
        packing.name(),
        acts.len(),
        acts.iter().sum::<usize>(),
        p.baseline
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::*;
    use super::super::{Pipeline, DEFAULT_PIPELINE};
    use super::*;
    use alloc::string::ToString;

    fn mlp() -> Graph {
        let mut b = Builder::default();
        let x = b.act(&[1, 8]);
        let w = b.weights(8, 16, 1);
        let h = b.act(&[1, 16]);
        b.fc(x, w, h);
        let w2 = b.weights(16, 4, 2);
        let y = b.act(&[1, 4]);
        b.fc(h, w2, y);
        b.finish(&[x], &[y])
    }

    #[test]
    fn prepack_records_the_target_and_plan_memory_reports_the_arena() {
        for (text, want) in [
            ("prepack(target=portable) plan_memory", Packing::Portable),
            ("prepack(target=cortex-m4) plan_memory", Packing::CortexM4),
            ("prepack plan_memory", Packing::Host),
        ] {
            let mut g = mlp();
            let before = run_f32(&g, 5);
            let r = Pipeline::parse(text)
                .unwrap()
                .run(&mut g, |_, _, _, _| {})
                .unwrap();
            assert_eq!(r.target.packing, Some(want), "{text}");
            assert!(r.lines[1].1.starts_with("arena "), "{:?}", r.lines);
            // The graph is unchanged.
            assert_eq!(run_f32(&g, 5), before);
        }
        let mut g = mlp();
        let r = Pipeline::parse("plan_memory")
            .unwrap()
            .run(&mut g, |_, _, _, _| {});
        assert!(r.unwrap().target.packing.is_none());
        let bad = Pipeline::parse("prepack(target=z80)").unwrap();
        let e = bad.run(&mut g, |_, _, _, _| {}).unwrap_err().to_string();
        assert!(e.contains("z80"), "{e}");
    }

    #[test]
    fn lowering_steps_come_after_every_rewrite() {
        assert!(Pipeline::parse("prepack fold_constants").is_err());
        assert!(Pipeline::parse("plan_memory strip_unused").is_err());
        assert!(Pipeline::parse("strip_unused prepack plan_memory summarize").is_ok());
    }

    #[test]
    fn target_and_calibration_options_set_the_pipeline_parameters() {
        let names = |p: &Pipeline| -> Vec<&str> { p.steps.iter().map(|s| s.pass.name).collect() };
        // The default pipeline: the options fill in its prepack and add a quantize.
        let p = Pipeline::with_options(None, Some("portable"), Some("cal")).unwrap();
        let n = names(&p);
        let q = n.iter().position(|&s| s == "quantize").unwrap();
        assert_eq!(&n[q..], ["quantize", "prepack", "plan_memory"]);
        assert_eq!(p.steps[q].args.get("calibration"), Some("cal"));
        assert_eq!(p.steps[q + 1].args.get("target"), Some("portable"));
        assert_eq!(
            names(&Pipeline::with_options(None, None, None).unwrap()),
            names(&Pipeline::parse(DEFAULT_PIPELINE).unwrap())
        );
        // An explicit pipeline: its steps get the values; a prepack is added if missing.
        let p =
            Pipeline::with_options(Some("quantize(io=float)"), Some("host"), Some("d")).unwrap();
        assert_eq!(names(&p), ["quantize", "prepack"]);
        assert_eq!(p.steps[0].args.get("io"), Some("float"));
        assert_eq!(p.steps[0].args.get("calibration"), Some("d"));
        // Named both ways, or --calibration without a quantize step: errors naming it.
        let e = Pipeline::with_options(Some("prepack(target=host)"), Some("portable"), None);
        assert!(e.unwrap_err().to_string().contains("--target"));
        let e = Pipeline::with_options(Some("quantize(calibration=a)"), None, Some("b"));
        assert!(e.unwrap_err().to_string().contains("--calibration"));
        assert!(Pipeline::with_options(Some("strip_unused"), None, Some("b")).is_err());
    }
}
