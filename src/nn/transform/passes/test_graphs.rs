//! Small f32 graphs for the passes' tests, and running them on the host runtime.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::Args;
use crate::nn::dtype::DType;
use crate::nn::transform::ir::{Activation, BuiltinOp, Graph, Node, OpOptions, Padding, Tensor};
use crate::nn::transform::{LoadedModel, Packing};

/// Builds a graph tensor by tensor, node by node.
#[derive(Default)]
pub(crate) struct Builder {
    g: Graph,
}

/// Seeded values in [-1, 1).
pub(crate) fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn args(pairs: &[(&str, &str)]) -> Args {
    Args {
        pairs: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

impl Builder {
    fn tensor(&mut self, shape: &[usize], data: Option<Vec<u8>>) -> usize {
        let name: String = alloc::format!("t{}", self.g.tensors.len());
        self.g.tensors.push(Tensor {
            name,
            dtype: DType::F32,
            shape: shape.to_vec(),
            quant: None,
            data,
        });
        self.g.tensors.len() - 1
    }

    /// An f32 activation.
    pub(crate) fn act(&mut self, shape: &[usize]) -> usize {
        self.tensor(shape, None)
    }

    /// An f32 constant of seeded values.
    pub(crate) fn constant(&mut self, shape: &[usize], seed: u64) -> usize {
        let n = shape.iter().product();
        self.tensor(shape, Some(f32_bytes(&values(n, seed))))
    }

    /// FULLY_CONNECTED weights, `[n, k]`.
    pub(crate) fn weights(&mut self, k: usize, n: usize, seed: u64) -> usize {
        self.constant(&[n, k], seed)
    }

    pub(crate) fn node(
        &mut self,
        op: BuiltinOp,
        options: OpOptions,
        inputs: &[usize],
        outputs: &[usize],
    ) {
        self.g.nodes.push(Node {
            op,
            version: 1,
            options,
            inputs: inputs.iter().map(|&t| Some(t)).collect(),
            outputs: outputs.to_vec(),
        });
    }

    /// `y = FULLY_CONNECTED(x, w)` with a fused activation.
    pub(crate) fn fc_act(&mut self, x: usize, w: usize, y: usize, activation: Activation) {
        self.g.nodes.push(Node {
            op: BuiltinOp::FullyConnected,
            version: 1,
            options: OpOptions::FullyConnected {
                activation,
                keep_num_dims: false,
                asymmetric_quantize_inputs: false,
            },
            inputs: vec![Some(x), Some(w), None],
            outputs: vec![y],
        });
    }

    pub(crate) fn fc(&mut self, x: usize, w: usize, y: usize) {
        self.fc_act(x, w, y, Activation::None);
    }

    /// A SAME-padded, undilated CONV_2D (`inputs`: x, weights and optionally bias).
    pub(crate) fn conv(&mut self, inputs: &[usize], y: usize, stride: i32, activation: Activation) {
        let options = OpOptions::Conv2d {
            padding: Padding::Same,
            stride_w: stride,
            stride_h: stride,
            activation,
            dilation_w_factor: 1,
            dilation_h_factor: 1,
        };
        self.node(BuiltinOp::Conv2d, options, inputs, &[y]);
    }

    /// A SAME-padded, undilated DEPTHWISE_CONV_2D of depth multiplier 1.
    pub(crate) fn depthwise(
        &mut self,
        inputs: &[usize],
        y: usize,
        stride: i32,
        activation: Activation,
    ) {
        let options = OpOptions::DepthwiseConv2d {
            padding: Padding::Same,
            stride_w: stride,
            stride_h: stride,
            depth_multiplier: 1,
            activation,
            dilation_w_factor: 1,
            dilation_h_factor: 1,
        };
        self.node(BuiltinOp::DepthwiseConv2d, options, inputs, &[y]);
    }

    pub(crate) fn finish(mut self, inputs: &[usize], outputs: &[usize]) -> Graph {
        self.g.inputs = inputs.to_vec();
        self.g.outputs = outputs.to_vec();
        self.g
    }
}

/// Runs `g` (lowered portably) on seeded inputs; every output's values.
pub(crate) fn run_f32(g: &Graph, seed: u64) -> Vec<Vec<f32>> {
    let m = LoadedModel::from_graph(g, Packing::Portable).expect("the graph lowers");
    let mut r = m.runner();
    for (i, &t) in g.inputs.iter().enumerate() {
        let n = g.tensors[t].elems();
        r.set_input_f32(i, &values(n, seed + i as u64)).unwrap();
    }
    r.run().unwrap();
    (0..g.outputs.len())
        .map(|i| r.output_f32(i).unwrap())
        .collect()
}

/// Output 0's bytes of one run of `m` on input 0 = `x`, on `threads` threads.
pub(crate) fn run_bytes(m: &LoadedModel, x: &[u8], threads: usize) -> Vec<u8> {
    let mut r = m.runner();
    r.set_threads(threads);
    r.set_input(0, x).unwrap();
    r.run().unwrap();
    r.output(0).unwrap()
}

/// The test binary's allocator: the system's, counting the allocations of each thread, so a
/// test can check that a run allocates nothing ([`allocations`]).
struct CountingAlloc;

std::thread_local! {
    static ALLOCS: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; the counter is a thread-local Cell
// with a const initializer and no destructor, so touching it never allocates or re-enters.
unsafe impl core::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        ALLOCS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's layout contract is forwarded.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// How many allocations `f` makes on the calling thread (where a run's caller builds
/// whatever it hands the pool's tasks).
pub(crate) fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(|n| n.get());
    f();
    ALLOCS.with(|n| n.get()) - before
}

/// Allocations of a run of `m` on `threads` threads, after a first run (which starts the
/// pool's workers and grows their buffers): the first run that allocates nothing, else the
/// fewest of 1000, since a run that finds the pool busy with another test's run spawns
/// threads of its own (which allocates), and tests run in parallel.
pub(crate) fn run_allocations(m: &LoadedModel, x: &[u8], threads: usize) -> usize {
    let mut r = m.runner();
    r.set_threads(threads);
    r.set_input(0, x).unwrap();
    r.run().unwrap();
    let mut fewest = usize::MAX;
    for _ in 0..1000 {
        fewest = fewest.min(allocations(|| r.run().unwrap()));
        if fewest == 0 {
            break;
        }
    }
    fewest
}
