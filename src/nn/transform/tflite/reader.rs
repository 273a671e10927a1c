//! From flatbuffer tables to [`TfliteModel`]: the schema's field ids and the model checks.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::flatbuf::{self, err, Result, Table, Vector};
use super::{ops, BuiltinOp, TfDtype, TfOperator, TfQuant, TfTensor, TfliteModel};
use crate::nn::ModelError;

/// The only schema version this reader knows (`Model.version`).
const SCHEMA_VERSION: u32 = 3;

/// What decoding one table costs against the budget (a table takes at least 8 bytes of a
/// file: its 4-byte vtable offset and the 4-byte offset that reaches it).
const TABLE_COST: usize = 8;

/// The budget is this many times the file size. Flatbuffers may share tables and vectors, so
/// a small file can reference the same data millions of times; without a budget that would
/// decode (and allocate) quadratically. Files written by converters share almost nothing, so
/// they stay near 1x.
const BUDGET_FACTOR: usize = 8;

/// Reads tables and vectors while charging what it decodes against the budget.
pub(super) struct Parser<'a> {
    buf: &'a [u8],
    budget: usize,
}

impl<'a> Parser<'a> {
    fn charge(&mut self, n: usize, pos: usize) -> Result<()> {
        self.budget = self.budget.checked_sub(n).ok_or(err(
            "the file references the same data too many times (decoded size over 8x the file)",
            pos,
        ))?;
        Ok(())
    }

    pub(super) fn charge_table(&mut self, t: &Table<'a>) -> Result<()> {
        self.charge(TABLE_COST, t.pos())
    }

    fn charge_vector(&mut self, v: &Vector<'a>) -> Result<()> {
        self.charge(v.byte_len(), v.pos())
    }

    /// A sub-table, charged.
    fn table(&mut self, t: &Table<'a>, id: usize) -> Result<Option<Table<'a>>> {
        let sub = t.table(id)?;
        if let Some(s) = &sub {
            self.charge_table(s)?;
        }
        Ok(sub)
    }

    /// A vector of tables (charged for its offsets; each table is charged when read).
    fn tables(&mut self, t: &Table<'a>, id: usize) -> Result<Option<Vector<'a>>> {
        let v = t.vector(id, 4)?;
        if let Some(v) = &v {
            self.charge_vector(v)?;
        }
        Ok(v)
    }

    fn table_at(&mut self, v: &Vector<'a>, i: usize) -> Result<Table<'a>> {
        let t = v.table(i)?;
        self.charge_table(&t)?;
        Ok(t)
    }

    fn scalars<T>(
        &mut self,
        t: &Table<'a>,
        id: usize,
        size: usize,
        get: impl Fn(&Vector<'a>, usize) -> Option<T>,
    ) -> Result<Option<Vec<T>>> {
        let Some(v) = t.vector(id, size)? else {
            return Ok(None);
        };
        self.charge_vector(&v)?;
        // The vector's extent was checked, so every element is there.
        (0..v.len())
            .map(|i| get(&v, i))
            .collect::<Option<Vec<T>>>()
            .map(Some)
            .ok_or(err("a vector element is out of range", v.pos()))
    }

    /// An `[int]` field.
    pub(super) fn i32s(&mut self, t: &Table<'a>, id: usize) -> Result<Option<Vec<i32>>> {
        self.scalars(t, id, 4, Vector::i32)
    }

    fn i64s(&mut self, t: &Table<'a>, id: usize) -> Result<Option<Vec<i64>>> {
        self.scalars(t, id, 8, Vector::i64)
    }

    fn f32s(&mut self, t: &Table<'a>, id: usize) -> Result<Option<Vec<f32>>> {
        self.scalars(t, id, 4, Vector::f32)
    }

    /// A string field, copied.
    fn string(&mut self, t: &Table<'a>, id: usize) -> Result<Option<String>> {
        let Some(s) = t.str(id)? else {
            return Ok(None);
        };
        self.charge(s.len(), t.pos())?;
        Ok(Some(s.to_string()))
    }
}

/// One entry of `Model.operator_codes`.
struct OpCode {
    op: BuiltinOp,
    version: i32,
    custom_code: Option<String>,
}

pub(super) fn parse(bytes: &[u8]) -> Result<TfliteModel<'_>> {
    if bytes.len() < 8 {
        return Err(err(
            "the file is {} bytes, too short for a flatbuffer with the \"TFL3\" identifier",
            0,
        )
        .with_values(&[bytes.len() as i64]));
    }
    if bytes.get(4..8) != Some(b"TFL3".as_slice()) {
        return Err(err(
            "no \"TFL3\" file identifier at bytes 4..8: not a TFLite model",
            4,
        ));
    }
    let mut p = Parser {
        buf: bytes,
        budget: bytes
            .len()
            .saturating_mul(BUDGET_FACTOR)
            .saturating_add(4096),
    };
    let model = flatbuf::root(p.buf)?;
    p.charge_table(&model)?;

    // Model: version 0, operator_codes 1, subgraphs 2, description 3, buffers 4,
    // metadata_buffer 5, metadata 6, signature_defs 7.
    let version = model.u32(0, 0)?;
    if version != SCHEMA_VERSION {
        return Err(err(
            "schema version {} is not supported (this reader reads version 3)",
            model.pos(),
        )
        .with_values(&[version.into()]));
    }
    let buffers = buffers(&mut p, &model)?;
    let codes = op_codes(&mut p, &model)?;

    let subgraphs = p
        .tables(&model, 2)?
        .ok_or(err("the model has no subgraph", model.pos()))?;
    match subgraphs.len() {
        1 => {}
        0 => return Err(err("the model has no subgraph", subgraphs.pos())),
        n => {
            return Err(err(
                "the model has {} subgraphs; only models with one are supported",
                subgraphs.pos(),
            )
            .with_values(&[n as i64]))
        }
    }
    let sg = p.table_at(&subgraphs, 0)?;

    // SubGraph: tensors 0, inputs 1, outputs 2, operators 3, name 4.
    let mut tensors = Vec::new();
    if let Some(v) = p.tables(&sg, 0)? {
        for i in 0..v.len() {
            let t = p.table_at(&v, i).map_err(|e| e.with_tensor(i))?;
            tensors.push(tensor(&mut p, &t, i, &buffers)?);
        }
    }
    let n_tensors = tensors.len();
    let inputs = graph_io(
        &mut p,
        &sg,
        1,
        n_tensors,
        "subgraph input {} is tensor {}, out of range ({} tensors)",
    )?;
    let outputs = graph_io(
        &mut p,
        &sg,
        2,
        n_tensors,
        "subgraph output {} is tensor {}, out of range ({} tensors)",
    )?;
    let mut operators = Vec::new();
    if let Some(v) = p.tables(&sg, 3)? {
        for i in 0..v.len() {
            let t = p.table_at(&v, i).map_err(|e| e.with_operator(i))?;
            operators.push(operator(&mut p, &t, i, &codes, n_tensors)?);
        }
    }
    let subgraph_name = p.string(&sg, 4)?;
    let description = p.string(&model, 3)?;

    Ok(TfliteModel {
        version,
        description,
        subgraph_name,
        tensors,
        operators,
        inputs,
        outputs,
    })
}

/// `Model.buffers`: each buffer's data (`None` when empty, like the sentinel buffer 0).
fn buffers<'a>(p: &mut Parser<'a>, model: &Table<'a>) -> Result<Vec<Option<&'a [u8]>>> {
    let mut out = Vec::new();
    let Some(v) = p.tables(model, 4)? else {
        return Ok(out);
    };
    for i in 0..v.len() {
        // Buffer: data 0 ([ubyte]), offset 1 (ulong), size 2 (ulong).
        let b = p.table_at(&v, i)?;
        // The schema: offset "is only valid if > 1" and then points outside the flatbuffer.
        if b.u64(1, 0)? > 1 {
            return Err(err(
                "buffer {} is stored outside the flatbuffer (a model over 2 GB); \
                 buffers outside the flatbuffer are not supported",
                b.pos(),
            )
            .with_values(&[i as i64]));
        }
        out.push(b.bytes(0)?.filter(|d| !d.is_empty()));
    }
    Ok(out)
}

/// `Model.operator_codes`.
fn op_codes<'a>(p: &mut Parser<'a>, model: &Table<'a>) -> Result<Vec<OpCode>> {
    let mut out = Vec::new();
    let Some(v) = p.tables(model, 1)? else {
        return Ok(out);
    };
    for i in 0..v.len() {
        // OperatorCode: deprecated_builtin_code 0 (byte), custom_code 1, version 2 (= 1),
        // builtin_code 3 (int). The code is the larger of the two: old writers set only the
        // byte, new ones set both (the byte saturating at 127, PLACEHOLDER_FOR_GREATER_OP_CODES).
        let c = p.table_at(&v, i)?;
        let code = i32::from(c.i8(0, 0)?).max(c.i32(3, 0)?);
        out.push(OpCode {
            op: BuiltinOp::from_code(code),
            version: c.i32(2, 1)?,
            custom_code: p.string(&c, 1)?,
        });
    }
    Ok(out)
}

/// `SubGraph.inputs` or `.outputs`, checked against the tensor count.
fn graph_io<'a>(
    p: &mut Parser<'a>,
    sg: &Table<'a>,
    id: usize,
    n_tensors: usize,
    reason: &'static str,
) -> Result<Vec<usize>> {
    let list = p.i32s(sg, id)?.unwrap_or_default();
    list.iter()
        .enumerate()
        .map(|(i, &t)| {
            usize::try_from(t)
                .ok()
                .filter(|&t| t < n_tensors)
                .ok_or(err(reason, sg.pos()).with_values(&[i as i64, t.into(), n_tensors as i64]))
        })
        .collect()
}

fn tensor<'a>(
    p: &mut Parser<'a>,
    t: &Table<'a>,
    index: usize,
    buffers: &[Option<&'a [u8]>],
) -> Result<TfTensor<'a>> {
    // Tensor: shape 0, type 1, buffer 2, name 3, quantization 4, is_variable 5, sparsity 6,
    // shape_signature 7, has_rank 8, variant_tensors 9. The name is read first so that
    // every later error can name the tensor.
    let name = p
        .string(t, 3)
        .map_err(|e| e.with_tensor(index))?
        .unwrap_or_default();
    let mut tensor =
        tensor_fields(p, t, buffers).map_err(|e| e.with_tensor(index).with_name(&name))?;
    tensor.name = name;
    Ok(tensor)
}

/// The tensor's fields other than its name.
fn tensor_fields<'a>(
    p: &mut Parser<'a>,
    t: &Table<'a>,
    buffers: &[Option<&'a [u8]>],
) -> Result<TfTensor<'a>> {
    let shape = p.i32s(t, 0)?.unwrap_or_default();
    let dtype = TfDtype::from_code(t.i8(1, 0)?);
    let buffer = t.u32(2, 0)? as usize;
    if t.has(6)? {
        return Err(err("sparse tensors are not supported", t.pos()));
    }
    let shape_signature = p.i32s(t, 7)?;
    let is_variable = t.bool(5, false)?;
    // Buffer 0 is the schema's always-present empty sentinel: a file without buffers still
    // has tensors that refer to it.
    let data = match buffers.get(buffer) {
        Some(d) => *d,
        None if buffer == 0 => None,
        None => {
            return Err(err("buffer index {} is out of range ({} buffers)", t.pos())
                .with_values(&[buffer as i64, buffers.len() as i64]))
        }
    };
    if let Some(d) = data {
        check_data(&shape, dtype, d.len(), t.pos())?;
    }
    let quant = match p.table(t, 4)? {
        Some(q) => quantization(p, &q, &shape)?,
        None => None,
    };
    Ok(TfTensor {
        name: String::new(),
        dtype,
        shape,
        shape_signature,
        data,
        quant,
        is_variable,
    })
}

/// Constant data must be exactly as long as the shape and type say.
fn check_data(shape: &[i32], dtype: TfDtype, len: usize, at: usize) -> Result<()> {
    let mut elements: u64 = 1;
    for &d in shape {
        let d = u64::try_from(d).map_err(|_| {
            err("constant tensor has a negative dimension {}", at).with_values(&[d.into()])
        })?;
        elements = elements
            .checked_mul(d)
            .ok_or(err("the shape's element count overflows", at))?;
    }
    let Some(bits) = dtype.bits() else {
        // STRING and the like: variable-size elements, nothing to compare.
        return Ok(());
    };
    let needed = elements
        .checked_mul(bits as u64)
        .map(|b| b.div_ceil(8))
        .ok_or(err("the shape's byte size overflows", at))?;
    if needed != len as u64 {
        return Err(err("constant data is {} bytes, shape needs {}", at)
            .with_values(&[len as i64, needed as i64]));
    }
    Ok(())
}

/// `Tensor.quantization`: `None` when it has no scales (the converter writes an empty table
/// for float tensors).
fn quantization<'a>(p: &mut Parser<'a>, q: &Table<'a>, shape: &[i32]) -> Result<Option<TfQuant>> {
    // QuantizationParameters: min 0, max 1, scale 2, zero_point 3, details_type 4 (union
    // QuantizationDetails), details 5, quantized_dimension 6.
    if q.u8(4, 0)? != 0 || q.has(5)? {
        return Err(err(
            "custom quantization details are not supported",
            q.pos(),
        ));
    }
    let scale = p.f32s(q, 2)?.unwrap_or_default();
    if scale.is_empty() {
        return Ok(None);
    }
    let zero_point = p.i64s(q, 3)?.unwrap_or_default();
    if zero_point.len() != scale.len() {
        return Err(
            err("quantization has {} scales but {} zero points", q.pos())
                .with_values(&[scale.len() as i64, zero_point.len() as i64]),
        );
    }
    let qd = q.i32(6, 0)?;
    let dim = usize::try_from(qd).map_err(|_| {
        err("quantized_dimension {} is negative", q.pos()).with_values(&[qd.into()])
    })?;
    if scale.len() > 1 {
        let Some(&channels) = shape.get(dim) else {
            return Err(err(
                "quantized_dimension {} is outside the tensor's {} dimensions",
                q.pos(),
            )
            .with_values(&[qd.into(), shape.len() as i64]));
        };
        if i64::from(channels) != scale.len() as i64 {
            return Err(err(
                "{} per-channel scales, but quantized dimension {} has size {}",
                q.pos(),
            )
            .with_values(&[scale.len() as i64, qd.into(), channels.into()]));
        }
    }
    Ok(Some(TfQuant {
        scale,
        zero_point,
        quantized_dimension: dim,
        min: p.f32s(q, 0)?.unwrap_or_default(),
        max: p.f32s(q, 1)?.unwrap_or_default(),
    }))
}

fn operator<'a>(
    p: &mut Parser<'a>,
    t: &Table<'a>,
    index: usize,
    codes: &[OpCode],
    n_tensors: usize,
) -> Result<TfOperator<'a>> {
    // Operator: opcode_index 0, inputs 1, outputs 2, builtin_options_type 3,
    // builtin_options 4, custom_options 5, custom_options_format 6,
    // mutating_variable_inputs 7, intermediates 8, large_custom_options_offset 9,
    // large_custom_options_size 10, builtin_options_2_type 11, builtin_options_2 12.
    let ctx = |e: ModelError| e.with_operator(index);
    let opcode = t.u32(0, 0).map_err(ctx)? as usize;
    let code = codes.get(opcode).ok_or_else(|| {
        ctx(err(
            "opcode index {} is out of range ({} operator codes)",
            t.pos(),
        )
        .with_values(&[opcode as i64, codes.len() as i64]))
    })?;
    let name = match (code.op, &code.custom_code) {
        (BuiltinOp::Custom, Some(c)) if !c.is_empty() => c.as_str(),
        _ => code.op.name(),
    };
    let ctx = |e: ModelError| e.with_operator(index).with_name(name);
    let r = (|| -> Result<_> {
        let inputs = p
            .i32s(t, 1)?
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, &x)| match x {
                // kTfLiteOptionalTensor: an optional input left out.
                -1 => Ok(None),
                x => tensor_index(
                    x,
                    n_tensors,
                    t.pos(),
                    "input {} is tensor {}, out of range ({} tensors)",
                    i,
                )
                .map(Some),
            })
            .collect::<Result<Vec<_>>>()?;
        let outputs = p
            .i32s(t, 2)?
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                tensor_index(
                    x,
                    n_tensors,
                    t.pos(),
                    "output {} is tensor {}, out of range ({} tensors)",
                    i,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        if t.u64(9, 0)? > 1 {
            return Err(err(
                "custom options are stored outside the flatbuffer (a model over 2 GB); \
                 buffers outside the flatbuffer are not supported",
                t.pos(),
            ));
        }
        let custom_options = t.bytes(5)?;
        let union_type = t.u8(3, 0)?;
        let table = t.table(4)?;
        let options = ops::decode(p, code.op, union_type, table, t.pos())?;
        // Each operator gets its own copy of the custom code: charge it, or many operators
        // sharing one huge code would allocate quadratically.
        let custom_code = code.custom_code.clone();
        p.charge(custom_code.as_ref().map_or(0, String::len), t.pos())?;
        Ok(TfOperator {
            op: code.op,
            version: code.version,
            custom_code,
            inputs,
            outputs,
            options,
            custom_options,
        })
    })();
    r.map_err(ctx)
}

fn tensor_index(
    x: i32,
    n_tensors: usize,
    at: usize,
    reason: &'static str,
    position: usize,
) -> Result<usize> {
    usize::try_from(x)
        .ok()
        .filter(|&x| x < n_tensors)
        .ok_or(err(reason, at).with_values(&[position as i64, x.into(), n_tensors as i64]))
}
