//! From protobuf messages to [`OnnxModel`]: `onnx.proto`'s field numbers and the file checks
//! (tensor data sized by its dims and type, external data refused).

use alloc::string::String;
use alloc::vec::Vec;

use super::proto::{err, Field, Message, Result};
use super::{
    AttrValue, Attribute, Dim, OnnxGraph, OnnxModel, OnnxNode, OnnxTensor, TensorData, ValueInfo,
};

/// `ModelProto`: ir_version 1, producer_name 2, graph 7, opset_import 8 (others skipped:
/// producer_version 3, domain 4, model_version 5, doc_string 6, metadata_props 14,
/// training_info 20, functions 25).
pub(super) fn model(buf: &[u8]) -> Result<OnnxModel<'_>> {
    let mut m = Message::new(buf, 0);
    let mut out = OnnxModel {
        ir_version: 0,
        producer: String::new(),
        opsets: Vec::new(),
        graph: None,
    };
    while let Some(f) = m.next_field()? {
        match f.number {
            1 => out.ir_version = f.i64()?,
            2 => out.producer = f.string()?,
            7 => out.graph = Some(graph(&f)?),
            8 => out.opsets.push(opset(&f)?),
            _ => {}
        }
    }
    Ok(out)
}

/// `OperatorSetIdProto`: domain 1, version 2.
fn opset(f: &Field<'_>) -> Result<(String, i64)> {
    let mut m = f.message()?;
    let (mut domain, mut version) = (String::new(), 0);
    while let Some(f) = m.next_field()? {
        match f.number {
            1 => domain = f.string()?,
            2 => version = f.i64()?,
            _ => {}
        }
    }
    Ok((domain, version))
}

/// `GraphProto`: node 1, name 2, initializer 5, input 11, output 12, value_info 13
/// (sparse_initializer 15 is refused; doc_string 10 and quantization_annotation 14 skipped).
fn graph<'a>(f: &Field<'a>) -> Result<OnnxGraph<'a>> {
    let mut m = f.message()?;
    let mut g = OnnxGraph::default();
    while let Some(f) = m.next_field()? {
        match f.number {
            1 => g.nodes.push(node(&f)?),
            2 => g.name = f.string()?,
            5 => g.initializers.push(tensor(&f)?),
            11 => g.inputs.push(value_info(&f)?),
            12 => g.outputs.push(value_info(&f)?),
            13 => g.value_info.push(value_info(&f)?),
            15 => return Err(err("sparse initializers are not supported", f.at)),
            _ => {}
        }
    }
    Ok(g)
}

/// `NodeProto`: input 1, output 2, name 3, op_type 4, attribute 5, domain 7.
fn node<'a>(f: &Field<'a>) -> Result<OnnxNode<'a>> {
    let mut m = f.message()?;
    let mut n = OnnxNode {
        name: String::new(),
        op_type: String::new(),
        domain: String::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        attributes: Vec::new(),
        at: f.at,
    };
    while let Some(f) = m.next_field()? {
        match f.number {
            1 => n.inputs.push(f.string()?),
            2 => n.outputs.push(f.string()?),
            3 => n.name = f.string()?,
            4 => n.op_type = f.string()?,
            5 => n.attributes.push(attribute(&f)?),
            7 => n.domain = f.string()?,
            _ => {}
        }
    }
    Ok(n)
}

/// `AttributeProto`: name 1, f 2, i 3, s 4, t 5, g 6, floats 7, ints 8, strings 9,
/// tensors 10, graphs 11, type 20 (`AttributeType`: FLOAT 1, INT 2, STRING 3, TENSOR 4,
/// GRAPH 5, FLOATS 6, INTS 7, STRINGS 8, TENSORS 9, GRAPHS 10, ...). When `type` is absent
/// (IR version 1) the field present says it.
fn attribute<'a>(f: &Field<'a>) -> Result<Attribute<'a>> {
    let mut m = f.message()?;
    let mut name = String::new();
    let mut ty: Option<i32> = None;
    let (mut fl, mut int, mut s, mut t) = (None, None, None, None);
    let (mut floats, mut ints, mut strings) = (Vec::new(), Vec::new(), Vec::new());
    let mut seen = 0i32; // the type implied by the last value field seen
    while let Some(f) = m.next_field()? {
        match f.number {
            1 => name = f.string()?,
            2 => (fl, seen) = (Some(f.f32()?), 1),
            3 => (int, seen) = (Some(f.i64()?), 2),
            4 => (s, seen) = (Some(f.bytes()?), 3),
            5 => (t, seen) = (Some(tensor(&f)?), 4),
            6 => seen = 5,
            7 => {
                f.push_f32s(&mut floats)?;
                seen = 6;
            }
            8 => {
                f.push_i64s(&mut ints)?;
                seen = 7;
            }
            9 => {
                strings.push(f.bytes()?);
                seen = 8;
            }
            10 => seen = 9,
            11 => seen = 10,
            20 => ty = Some(f.i32()?),
            _ => {}
        }
    }
    let ty = ty.unwrap_or(seen);
    let value = match ty {
        1 => AttrValue::Float(fl.unwrap_or(0.0)),
        2 => AttrValue::Int(int.unwrap_or(0)),
        3 => AttrValue::String(s.unwrap_or(&[])),
        4 => match t {
            Some(t) => AttrValue::Tensor(t),
            None => return Err(err("a TENSOR attribute has no tensor", f.at)),
        },
        6 => AttrValue::Floats(floats),
        7 => AttrValue::Ints(ints),
        8 => AttrValue::Strings(strings),
        other => AttrValue::Other(other),
    };
    Ok(Attribute { name, value })
}

/// `ValueInfoProto`: name 1, type 2 → `TypeProto`: tensor_type 1 → `TypeProto.Tensor`:
/// elem_type 1, shape 2 → `TensorShapeProto`: dim 1 → `Dimension`: dim_value 1,
/// dim_param 2. Other value types (sequences, maps) leave `elem_type` 0.
fn value_info(f: &Field<'_>) -> Result<ValueInfo> {
    let mut m = f.message()?;
    let mut v = ValueInfo {
        name: String::new(),
        elem_type: 0,
        shape: None,
    };
    while let Some(f) = m.next_field()? {
        match f.number {
            1 => v.name = f.string()?,
            2 => {
                let mut ty = f.message()?;
                while let Some(f) = ty.next_field()? {
                    if f.number != 1 {
                        continue;
                    }
                    let mut tt = f.message()?;
                    while let Some(f) = tt.next_field()? {
                        match f.number {
                            1 => v.elem_type = f.i32()?,
                            2 => v.shape = Some(shape(&f)?),
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(v)
}

fn shape(f: &Field<'_>) -> Result<Vec<Dim>> {
    let mut m = f.message()?;
    let mut dims = Vec::new();
    while let Some(f) = m.next_field()? {
        if f.number != 1 {
            continue;
        }
        let mut d = f.message()?;
        let mut dim = Dim::Unknown;
        while let Some(f) = d.next_field()? {
            match f.number {
                1 => dim = Dim::Value(f.i64()?),
                2 => dim = Dim::Param(f.string()?),
                _ => {}
            }
        }
        dims.push(dim);
    }
    Ok(dims)
}

/// `TensorProto`: dims 1, data_type 2, segment 3 (refused), float_data 4, int32_data 5,
/// string_data 6 (refused), int64_data 7, name 8, raw_data 9, double_data 10,
/// uint64_data 11, external_data 13, data_location 14 (EXTERNAL = 1).
pub(super) fn tensor<'a>(f: &Field<'a>) -> Result<OnnxTensor<'a>> {
    let mut m = f.message()?;
    let mut t = OnnxTensor {
        name: String::new(),
        data_type: 0,
        dims: Vec::new(),
        data: TensorData::None,
        at: f.at,
    };
    let (mut floats, mut ints, mut doubles) = (Vec::new(), Vec::new(), Vec::new());
    let mut raw = None;
    let mut typed = 0; // which typed field held data: 4, 5, 7, 10, 11
    while let Some(f) = m.next_field()? {
        match f.number {
            1 => f.push_i64s(&mut t.dims)?,
            2 => t.data_type = f.i32()?,
            3 => return Err(err("segmented tensors are not supported", f.at)),
            4 => {
                f.push_f32s(&mut floats)?;
                typed = 4;
            }
            5 | 7 | 11 => {
                f.push_i64s(&mut ints)?;
                typed = f.number;
            }
            6 => return Err(err("string tensors are not supported", f.at)),
            8 => t.name = f.string()?,
            9 => raw = Some(f.bytes()?),
            10 => {
                f.push_f64s(&mut doubles)?;
                typed = 10;
            }
            13 => {
                return Err(err(
                    "the tensor's data is external (in a separate file); save the model with \
                     its weights inside the .onnx file",
                    f.at,
                ))
            }
            14 if f.i64()? == 1 => {
                return Err(err(
                    "the tensor's data location is EXTERNAL (in a separate file); save the \
                     model with its weights inside the .onnx file",
                    f.at,
                ))
            }
            _ => {}
        }
    }
    t.data = match (raw, typed) {
        (Some(r), _) => TensorData::Raw(r),
        (None, 4) => TensorData::F32(floats),
        (None, 10) => TensorData::F64(doubles),
        (None, 5 | 7 | 11) => TensorData::Ints(ints),
        _ => TensorData::None,
    };
    Ok(t)
}
