//! TRANSPOSE, SLICE and STRIDED_SLICE: each output element is one input element, read as a
//! strided box of the input ([`super::strided`]): TRANSPOSE permutes the input's strides,
//! SLICE offsets them, STRIDED_SLICE also scales them (negative strides walk backwards).
//! Bytes are moved as they are (int8, f32 or any other element type), as TFLite's reference
//! `Transpose`, `Slice` and `StridedSlice` do.
//!
//! Blob form: one input, one output, no scratch; parameters: the box (rank, base element
//! offset, the output's dimensions, the input element strides per output dimension). All
//! index arithmetic (TFLite's `StridedSliceStartForAxis`/`StridedSliceEndForAxis` with the
//! masks and `offset`, `-1` sizes of SLICE) is done when lowering. STRIDED_SLICE's
//! ellipsis and new-axis masks are not supported (TFLite's kernel refuses them too; its
//! converter folds them into the other masks and a reshape).

use super::checks;
use super::strided::{copy_box, StridedBox};
use super::{OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::OpView;
use crate::nn::dtype::DType;

pub(crate) const TRANSPOSE: OpDef = OpDef {
    code: 39,
    name: "TRANSPOSE",
    in_place: false,
    macs: super::no_macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower: lower::transpose,
};

pub(crate) const SLICE: OpDef = OpDef {
    code: 65,
    name: "SLICE",
    #[cfg(feature = "alloc")]
    lower: lower::slice,
    ..TRANSPOSE
};

pub(crate) const STRIDED_SLICE: OpDef = OpDef {
    code: 45,
    name: "STRIDED_SLICE",
    #[cfg(feature = "alloc")]
    lower: lower::strided_slice,
    ..TRANSPOSE
};

fn check(op: &OpView) -> Result<(), Error> {
    let b = StridedBox::read(op, 0).ok_or_else(|| op.error("a malformed box"))?;
    checks::counts(op, 1, 1, 0, StridedBox::words(b.rank))?;
    let (x, y) = (checks::input(op, 0)?, checks::output(op, 0)?);
    if x.dtype != y.dtype || x.dtype == DType::Packed {
        return Err(op.error("input and output differ in type"));
    }
    if b.elems() != Some(y.elems()) {
        return Err(op.error("the output size does not match the box"));
    }
    if !b.fits(x.elems()) {
        return Err(op.error("the box reaches outside the input"));
    }
    Ok(())
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let b = StridedBox::read(op, 0).ok_or_else(|| op.error("a malformed box"))?;
    let (x, y) = match (op.input(0), op.output(0)) {
        (Some(x), Some(y)) => (x, y),
        _ => return Err(op.error("missing tensor")),
    };
    let esize = op.model().tensor(y).map_or(1, |t| t.dtype.size());
    let src = mem.input(x)?;
    if !copy_box(src, &b, esize, mem.output(y)?) {
        return Err(op.error("the box reaches outside the input"));
    }
    Ok(())
}

#[cfg(feature = "alloc")]
mod lower {
    use alloc::vec::Vec;

    use super::super::strided::{const_ints, row_major_strides, StridedBox};
    use crate::error::Error;
    use crate::nn::blob::MAX_RANK;
    use crate::nn::transform::ir::OpOptions;
    use crate::nn::transform::lower::Lowering;

    /// Pushes the box operator: input 0 of the node read through `dims`/`strides`/`base`.
    fn push(
        l: &mut Lowering,
        node: usize,
        dims: &[usize],
        strides: &[isize],
        base: usize,
    ) -> Result<(), Error> {
        let g = l.graph;
        let x = g.input(node, 0)?;
        let y = &g.tensors[g.output_index(node, 0)?];
        if x.dtype != y.dtype {
            return Err(g.node_error(node, "input and output differ in type"));
        }
        if dims.iter().product::<usize>() != y.elems() {
            return Err(g.node_error(node, "the output shape does not match the operands"));
        }
        let fits = |v: usize| i32::try_from(v).is_ok();
        let sfits = |v: isize| i32::try_from(v).is_ok();
        if !fits(base) || !dims.iter().all(|&d| fits(d)) || !strides.iter().all(|&s| sfits(s)) {
            return Err(g.node_error(node, "a tensor too large is not supported"));
        }
        let code = g.nodes[node].op.code() as u16;
        let mut op = l.op(node, code, StridedBox::to_params(dims, strides, base));
        op.inputs.truncate(1);
        l.push(op);
        Ok(())
    }

    fn input_shape(l: &Lowering, node: usize) -> Result<Vec<usize>, Error> {
        let g = l.graph;
        let shape = g.input(node, 0)?.shape.clone();
        if shape.len() > MAX_RANK {
            return Err(g.node_error(node, "more than 6 dimensions is not supported"));
        }
        Ok(shape)
    }

    pub(crate) fn transpose(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        let shape = input_shape(l, node)?;
        let perm = const_ints(g, node, 1)?;
        let r = shape.len();
        let mut seen = [false; MAX_RANK];
        if perm.len() != r {
            return Err(g.node_error(node, "the permutation does not match the rank"));
        }
        let st = row_major_strides(&shape);
        let (mut dims, mut strides) = (Vec::new(), Vec::new());
        for &p in &perm {
            let p = usize::try_from(p)
                .ok()
                .filter(|&p| p < r && !seen[p])
                .ok_or_else(|| g.node_error(node, "the permutation is not one"))?;
            seen[p] = true;
            dims.push(shape[p]);
            strides.push(st[p]);
        }
        push(l, node, &dims, &strides, 0)
    }

    pub(crate) fn slice(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        let shape = input_shape(l, node)?;
        let begin = const_ints(g, node, 1)?;
        let size = const_ints(g, node, 2)?;
        if begin.len() != shape.len() || size.len() != shape.len() {
            return Err(g.node_error(node, "begin or size does not match the rank"));
        }
        let st = row_major_strides(&shape);
        let (mut dims, mut base) = (Vec::new(), 0usize);
        for (d, &n) in shape.iter().enumerate() {
            let n = n as i64;
            let b = begin[d];
            // TFLite: size -1 takes the rest of the axis.
            let s = if size[d] == -1 { n - b } else { size[d] };
            if b < 0 || s < 0 || b + s > n {
                return Err(g.node_error(node, "begin or size outside the input"));
            }
            dims.push(s as usize);
            base += b as usize * st[d] as usize;
        }
        push(l, node, &dims, &st, base)
    }

    /// One axis of a strided slice: (first index, stride, count), as TFLite's
    /// `StridedSliceStartForAxis`, `StridedSliceEndForAxis` and the output size of its
    /// `ResizeOutputTensor` compute them.
    #[allow(clippy::too_many_arguments)]
    fn axis(
        size: i64,
        begin: i64,
        end: i64,
        stride: i64,
        begin_masked: bool,
        end_masked: bool,
        shrink: bool,
        offset: bool,
    ) -> Option<(i64, i64)> {
        if stride == 0 {
            return None;
        }
        let clamp = |v: i64| {
            if stride > 0 {
                v.clamp(0, size)
            } else {
                v.clamp(-1, size - 1)
            }
        };
        let mut start = begin;
        if start < 0 {
            start += size;
        }
        start = clamp(start);
        if begin_masked {
            start = if stride > 0 { 0 } else { size - 1 };
        }
        if shrink {
            // One element, which must exist.
            return (0..size).contains(&start).then_some((start, 1));
        }
        let mut stop = end;
        if offset {
            stop += start;
        }
        if stop < 0 {
            stop += size;
        }
        stop = clamp(stop);
        if end_masked {
            stop = if stride > 0 { size } else { -1 };
        }
        // ceil((stop - start) / stride), at least 0.
        let count = if stride > 0 {
            (stop - start + stride - 1).div_euclid(stride)
        } else {
            (start - stop - stride - 1).div_euclid(-stride)
        };
        Some((start, count.max(0)))
    }

    pub(crate) fn strided_slice(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        let err = |r| g.node_error(node, r);
        let (begin_mask, end_mask, ellipsis, new_axis, shrink_mask, offset) =
            match &g.nodes[node].options {
                OpOptions::StridedSlice {
                    begin_mask,
                    end_mask,
                    ellipsis_mask,
                    new_axis_mask,
                    shrink_axis_mask,
                    offset,
                } => (
                    *begin_mask,
                    *end_mask,
                    *ellipsis_mask,
                    *new_axis_mask,
                    *shrink_axis_mask,
                    *offset,
                ),
                _ => return Err(err("STRIDED_SLICE without its options")),
            };
        if ellipsis != 0 || new_axis != 0 {
            return Err(err(
                "STRIDED_SLICE ellipsis_mask and new_axis_mask are not supported",
            ));
        }
        let shape = input_shape(l, node)?;
        let begin = const_ints(g, node, 1)?;
        let end = const_ints(g, node, 2)?;
        let step = const_ints(g, node, 3)?;
        let r = shape.len();
        if begin.len() != r || end.len() != r || step.len() != r {
            return Err(err("begin, end or strides do not match the rank"));
        }
        let st = row_major_strides(&shape);
        let (mut dims, mut strides, mut base) = (Vec::new(), Vec::new(), 0i64);
        for d in 0..r {
            let bit = |m: i32| m & (1 << d) != 0;
            let (start, count) = axis(
                shape[d] as i64,
                begin[d],
                end[d],
                step[d],
                bit(begin_mask),
                bit(end_mask),
                bit(shrink_mask),
                offset,
            )
            .ok_or_else(|| err("a zero stride or a shrunk axis outside the input"))?;
            let s = st[d] as i64;
            if count > 0 {
                base += start * s;
            }
            dims.push(count as usize);
            strides.push((step[d] * s) as isize);
        }
        if dims.contains(&0) {
            base = 0;
        }
        push(l, node, &dims, &strides, base as usize)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn axes_like_tflite() {
            // 8 elements: [1:7:2] → 1,3,5; [::-1] → 7..0; [-3:] → 5,6,7; [6:2:-2] → 6,4.
            assert_eq!(
                super::axis(8, 1, 7, 2, false, false, false, false),
                Some((1, 3))
            );
            assert_eq!(
                super::axis(8, 0, 0, -1, true, true, false, false),
                Some((7, 8))
            );
            assert_eq!(
                super::axis(8, -3, 0, 1, false, true, false, false),
                Some((5, 3))
            );
            assert_eq!(
                super::axis(8, 6, 2, -2, false, false, false, false),
                Some((6, 2))
            );
            // offset: end is relative to begin.
            assert_eq!(
                super::axis(8, 2, 3, 1, false, false, false, true),
                Some((2, 3))
            );
            // shrink: one element at begin (negative counts from the end).
            assert_eq!(
                super::axis(8, -1, 0, 1, false, false, true, false),
                Some((7, 1))
            );
            assert_eq!(super::axis(8, 9, 0, 1, false, false, true, false), None);
            // empty
            assert_eq!(
                super::axis(8, 5, 2, 1, false, false, false, false),
                Some((5, 0))
            );
        }
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use alloc::string::String;
    use alloc::vec;
    use alloc::vec::Vec;

    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::{BuiltinOp, Graph, Node, OpOptions, Tensor};
    use crate::nn::transform::{LoadedModel, Packing};

    /// A 6-D TRANSPOSE of int8 against the definition out[i] = in[i permuted].
    #[test]
    fn transposes_six_dimensions() {
        let shape = [2usize, 3, 1, 4, 2, 3];
        let perm = [4usize, 0, 5, 2, 3, 1];
        let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        let n: usize = shape.iter().product();
        let tensor = |name: &str, dtype, shape: Vec<usize>, data| Tensor {
            name: String::from(name),
            dtype,
            shape,
            quant: None,
            data,
        };
        let perm_bytes = perm
            .iter()
            .flat_map(|&p| (p as i32).to_le_bytes())
            .collect();
        let g = Graph {
            tensors: vec![
                tensor("x", DType::I8, shape.to_vec(), None),
                tensor("perm", DType::I32, vec![6], Some(perm_bytes)),
                tensor("y", DType::I8, out_shape.clone(), None),
            ],
            nodes: vec![Node {
                op: BuiltinOp::Transpose,
                version: 2,
                options: OpOptions::None,
                inputs: vec![Some(0), Some(1)],
                outputs: vec![2],
            }],
            inputs: vec![0],
            outputs: vec![2],
        };
        let x: Vec<u8> = (0..n).map(|i| i as u8).collect();
        let m = LoadedModel::from_graph(&g, Packing::Portable).unwrap();
        let mut r = m.runner();
        r.set_input(0, &x).unwrap();
        r.run().unwrap();
        let got = r.output(0).unwrap();
        let strides = super::super::strided::row_major_strides(&shape);
        for (o, &v) in got.iter().enumerate() {
            // Output index o → its coordinates → the input element.
            let (mut rest, mut at) = (o, 0isize);
            for d in (0..6).rev() {
                let i = rest % out_shape[d];
                rest /= out_shape[d];
                at += i as isize * strides[perm[d]];
            }
            assert_eq!(v, x[at as usize], "output {o}");
        }
    }
}
