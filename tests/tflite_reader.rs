//! The TFLite flatbuffer reader: hand-built models parsed field by field, every kind of
//! malformation reported as an error (never a panic), truncations and random byte flips, and
//! any real models found in `tests/models/*.tflite`.

use edgemm::nn::transform::import::import_tflite;
use edgemm::nn::transform::tflite::{
    parse_tflite, Activation, BuiltinOp, OpOptions, Padding, TfDtype, TfliteModel,
};
use edgemm::nn::ModelError;
use edgemm::Error;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

// ---------------------------------------------------------------------------------------------
// A tiny flatbuffer builder. It writes front to back (parents before children, which the
// format's forward-only offsets require), each vtable just before its table.

/// A field value.
#[derive(Clone, Debug)]
enum F {
    U8(u8),
    I8(i8),
    Bool(bool),
    I32(i32),
    U32(u32),
    U64(u64),
    F32(f32),
    Table(T),
    Tables(Vec<T>),
    /// A vector of `n` offsets to one table.
    SharedTables(T, usize),
    Bytes(Vec<u8>),
    I32s(Vec<i32>),
    I64s(Vec<i64>),
    F32s(Vec<f32>),
    Str(String),
}

/// A table: (field id, value) pairs.
#[derive(Clone, Debug, Default)]
struct T(Vec<(usize, F)>);

impl T {
    fn new() -> Self {
        T(Vec::new())
    }
    fn f(mut self, id: usize, v: F) -> Self {
        self.0.push((id, v));
        self
    }
}

struct W {
    buf: Vec<u8>,
}

impl W {
    fn align(&mut self, a: usize, offset: usize) {
        while (self.buf.len() + offset) % a != 0 {
            self.buf.push(0);
        }
    }
    fn patch_u32(&mut self, at: usize, v: u32) {
        self.buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    /// Points the u32 at `at` to `target` (relative, forward).
    fn link(&mut self, at: usize, target: usize) {
        self.patch_u32(at, (target - at) as u32);
    }

    fn table(&mut self, t: &T) -> usize {
        let n_fields = t.0.iter().map(|(id, _)| id + 1).max().unwrap_or(0);
        let vt_size = 4 + 2 * n_fields;
        self.align(2, 0);
        let vt = self.buf.len();
        self.buf.resize(vt + vt_size, 0);
        self.align(4, 0);
        let table = self.buf.len();
        self.buf
            .extend_from_slice(&((table - vt) as i32).to_le_bytes());
        let mut children = Vec::new();
        let mut offsets = vec![0u16; n_fields];
        for (id, v) in &t.0 {
            let bytes: Vec<u8> = match v {
                F::U8(x) => vec![*x],
                F::I8(x) => vec![*x as u8],
                F::Bool(x) => vec![*x as u8],
                F::I32(x) => x.to_le_bytes().to_vec(),
                F::U32(x) => x.to_le_bytes().to_vec(),
                F::U64(x) => x.to_le_bytes().to_vec(),
                F::F32(x) => x.to_le_bytes().to_vec(),
                _ => vec![0; 4],
            };
            self.align(bytes.len(), 0);
            let at = self.buf.len();
            offsets[*id] = (at - table) as u16;
            self.buf.extend_from_slice(&bytes);
            if bytes.len() == 4 && !matches!(v, F::I32(_) | F::U32(_) | F::F32(_)) {
                children.push((at, v));
            }
        }
        let table_size = self.buf.len() - table;
        self.buf[vt..vt + 2].copy_from_slice(&(vt_size as u16).to_le_bytes());
        self.buf[vt + 2..vt + 4].copy_from_slice(&(table_size as u16).to_le_bytes());
        for (i, o) in offsets.iter().enumerate() {
            self.buf[vt + 4 + 2 * i..vt + 6 + 2 * i].copy_from_slice(&o.to_le_bytes());
        }
        for (at, v) in children {
            let target = self.child(v);
            self.link(at, target);
        }
        table
    }

    fn vector(&mut self, elems: &[u8], count: usize, align: usize) -> usize {
        self.align(align.max(4), 4);
        let at = self.buf.len();
        self.buf.extend_from_slice(&(count as u32).to_le_bytes());
        self.buf.extend_from_slice(elems);
        at
    }

    fn child(&mut self, v: &F) -> usize {
        match v {
            F::Table(t) => self.table(t),
            F::Tables(ts) => {
                let at = self.vector(&vec![0; 4 * ts.len()], ts.len(), 4);
                for (i, t) in ts.iter().enumerate() {
                    let target = self.table(t);
                    self.link(at + 4 + 4 * i, target);
                }
                at
            }
            F::SharedTables(t, n) => {
                let at = self.vector(&vec![0; 4 * n], *n, 4);
                let target = self.table(t);
                for i in 0..*n {
                    self.link(at + 4 + 4 * i, target);
                }
                at
            }
            F::Bytes(b) => self.vector(b, b.len(), 16),
            F::I32s(v) => {
                let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                self.vector(&b, v.len(), 4)
            }
            F::I64s(v) => {
                let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                self.vector(&b, v.len(), 8)
            }
            F::F32s(v) => {
                let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                self.vector(&b, v.len(), 4)
            }
            F::Str(s) => {
                let at = self.vector(s.as_bytes(), s.len(), 4);
                self.buf.push(0);
                at
            }
            _ => unreachable!("scalars are inline"),
        }
    }
}

/// A finished flatbuffer with `root` as its root table.
fn finish(root: &T, ident: &[u8; 4]) -> Vec<u8> {
    let mut w = W { buf: vec![0; 8] };
    w.buf[4..8].copy_from_slice(ident);
    let at = w.table(root);
    w.patch_u32(0, at as u32);
    w.buf
}

// ---------------------------------------------------------------------------------------------
// TFLite tables (field ids from schema.fbs).

fn tensor(name: &str, dtype: i8, shape: &[i32], buffer: u32) -> T {
    T::new()
        .f(0, F::I32s(shape.to_vec()))
        .f(1, F::I8(dtype))
        .f(2, F::U32(buffer))
        .f(3, F::Str(name.into()))
}

fn quant(scale: &[f32], zero_point: &[i64], dim: i32) -> T {
    T::new()
        .f(2, F::F32s(scale.to_vec()))
        .f(3, F::I64s(zero_point.to_vec()))
        .f(6, F::I32(dim))
}

fn buffer(data: &[u8]) -> T {
    if data.is_empty() {
        T::new()
    } else {
        T::new().f(0, F::Bytes(data.to_vec()))
    }
}

fn opcode(deprecated: Option<i8>, builtin: Option<i32>, version: i32) -> T {
    let mut t = T::new().f(2, F::I32(version));
    if let Some(d) = deprecated {
        t = t.f(0, F::I8(d));
    }
    if let Some(b) = builtin {
        t = t.f(3, F::I32(b));
    }
    t
}

fn operator(opcode: u32, inputs: &[i32], outputs: &[i32], options: Option<(u8, T)>) -> T {
    let mut t = T::new()
        .f(0, F::U32(opcode))
        .f(1, F::I32s(inputs.to_vec()))
        .f(2, F::I32s(outputs.to_vec()));
    if let Some((ty, o)) = options {
        t = t.f(3, F::U8(ty)).f(4, F::Table(o));
    }
    t
}

struct Model {
    tensors: Vec<T>,
    operators: Vec<T>,
    opcodes: Vec<T>,
    buffers: Vec<T>,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    subgraphs: usize,
    version: u32,
}

impl Model {
    fn bytes(&self) -> Vec<u8> {
        let sg = T::new()
            .f(0, F::Tables(self.tensors.clone()))
            .f(1, F::I32s(self.inputs.clone()))
            .f(2, F::I32s(self.outputs.clone()))
            .f(3, F::Tables(self.operators.clone()))
            .f(4, F::Str("main".into()));
        let root = T::new()
            .f(0, F::U32(self.version))
            .f(1, F::Tables(self.opcodes.clone()))
            .f(2, F::Tables(vec![sg; self.subgraphs]))
            .f(3, F::Str("hand-built".into()))
            .f(4, F::Tables(self.buffers.clone()));
        finish(&root, b"TFL3")
    }
}

const FLOAT32: i8 = 0;
const INT32: i8 = 2;
const INT8: i8 = 9;

/// One CONV_2D: int8 input (per-tensor), int8 weights (per-channel, 3 channels), int32 bias.
fn conv_model() -> Model {
    let weights: Vec<u8> = (0..3 * 3 * 3 * 2).map(|i| i as u8).collect();
    let bias: Vec<u8> = [1i32, -2, 3].iter().flat_map(|x| x.to_le_bytes()).collect();
    Model {
        tensors: vec![
            tensor("input", INT8, &[1, 4, 4, 2], 0).f(4, F::Table(quant(&[0.5], &[-1], 0))),
            tensor("conv1/weights", INT8, &[3, 3, 3, 2], 1)
                .f(4, F::Table(quant(&[0.1, 0.2, 0.3], &[0, 0, 0], 0))),
            tensor("conv1/bias", INT32, &[3], 2),
            tensor("output", INT8, &[1, 2, 2, 3], 0)
                .f(4, F::Table(quant(&[0.25], &[5], 0)))
                .f(7, F::I32s(vec![-1, 2, 2, 3])),
        ],
        operators: vec![operator(
            0,
            &[0, 1, 2],
            &[3],
            // Conv2DOptions: padding VALID, stride_w 2, stride_h 1, RELU6, dilation_h 2.
            Some((
                1,
                T::new()
                    .f(0, F::I8(1))
                    .f(1, F::I32(2))
                    .f(2, F::I32(1))
                    .f(3, F::I8(3))
                    .f(5, F::I32(2)),
            )),
        )],
        opcodes: vec![opcode(Some(3), Some(3), 3)],
        buffers: vec![buffer(&[]), buffer(&weights), buffer(&bias)],
        inputs: vec![0],
        outputs: vec![3],
        subgraphs: 1,
        version: 3,
    }
}

/// FULLY_CONNECTED from a deprecated-only opcode, with an optional (-1) bias, then
/// BATCH_MATMUL (code 126 in both fields), GELU (code 150: the byte saturated at 127 as new
/// writers do; no variant here), and a custom op.
fn fc_model() -> Model {
    let w: Vec<u8> = (0..4 * 8).flat_map(|i| (i as f32).to_le_bytes()).collect();
    Model {
        tensors: vec![
            tensor("x", FLOAT32, &[1, 8], 0),
            tensor("w", FLOAT32, &[4, 8], 1),
            tensor("y", FLOAT32, &[1, 4], 0),
            tensor("z", FLOAT32, &[1, 4], 0),
        ],
        operators: vec![
            operator(
                0,
                &[0, 1, -1],
                &[2],
                Some((8, T::new().f(0, F::I8(1)).f(2, F::Bool(true)))),
            ),
            operator(1, &[2, 2], &[3], Some((101, T::new().f(1, F::Bool(true))))),
            operator(2, &[3], &[3], None),
            operator(3, &[3], &[3], None).f(5, F::Bytes(vec![1, 2, 3])),
        ],
        opcodes: vec![
            opcode(Some(9), None, 2),
            opcode(Some(126), Some(126), 1),
            opcode(Some(127), Some(150), 1),
            opcode(Some(32), None, 1).f(1, F::Str("MyCustomOp".into())),
        ],
        buffers: vec![buffer(&[]), buffer(&w)],
        inputs: vec![0],
        outputs: vec![3],
        subgraphs: 1,
        version: 3,
    }
}

fn model_err(bytes: &[u8]) -> ModelError {
    match parse_tflite(bytes) {
        Err(Error::Model(e)) => e,
        other => panic!("expected a model error, got {other:?}"),
    }
}

fn err_text(bytes: &[u8]) -> String {
    model_err(bytes).to_string()
}

// ---------------------------------------------------------------------------------------------
// Valid models, field by field.

#[test]
fn conv2d_model_fields() {
    let bytes = conv_model().bytes();
    let m = parse_tflite(&bytes).unwrap();
    assert_eq!(m.version, 3);
    assert_eq!(m.description.as_deref(), Some("hand-built"));
    assert_eq!(m.subgraph_name.as_deref(), Some("main"));
    assert_eq!(m.inputs, [0]);
    assert_eq!(m.outputs, [3]);
    assert_eq!(m.tensors.len(), 4);

    let input = &m.tensors[0];
    assert_eq!(input.name, "input");
    assert_eq!(input.dtype, TfDtype::Int8);
    assert_eq!(input.shape, [1, 4, 4, 2]);
    assert_eq!(input.data, None);
    let q = input.quant.as_ref().unwrap();
    assert_eq!(
        (q.scale.as_slice(), q.zero_point.as_slice()),
        (&[0.5][..], &[-1][..])
    );
    assert!(!input.is_variable);

    let w = &m.tensors[1];
    assert_eq!(w.name, "conv1/weights");
    let data = w.data.unwrap();
    assert_eq!(data.len(), 54);
    assert_eq!(data[53], 53);
    let q = w.quant.as_ref().unwrap();
    assert_eq!(q.scale, [0.1, 0.2, 0.3]);
    assert_eq!(q.zero_point, [0, 0, 0]);
    assert_eq!(q.quantized_dimension, 0);

    let b = &m.tensors[2];
    assert_eq!(b.dtype, TfDtype::Int32);
    assert_eq!(
        b.data.unwrap(),
        [1, 0, 0, 0, 254, 255, 255, 255, 3, 0, 0, 0]
    );
    assert_eq!(b.quant, None);

    assert_eq!(
        m.tensors[3].shape_signature.as_deref(),
        Some(&[-1, 2, 2, 3][..])
    );

    assert_eq!(m.operators.len(), 1);
    let op = &m.operators[0];
    assert_eq!(op.op, BuiltinOp::Conv2d);
    assert_eq!(op.op.name(), "CONV_2D");
    assert_eq!(op.name(), "CONV_2D");
    assert_eq!(op.version, 3);
    assert_eq!(op.inputs, [Some(0), Some(1), Some(2)]);
    assert_eq!(op.outputs, [3]);
    assert_eq!(
        op.options,
        OpOptions::Conv2d {
            padding: Padding::Valid,
            stride_w: 2,
            stride_h: 1,
            activation: Activation::Relu6,
            dilation_w_factor: 1,
            dilation_h_factor: 2,
        }
    );
    assert_eq!(op.custom_code, None);
    assert_eq!(op.custom_options, None);
}

#[test]
fn deprecated_code_optional_input_and_unknown_ops() {
    let bytes = fc_model().bytes();
    let m = parse_tflite(&bytes).unwrap();
    let ops = &m.operators;
    assert_eq!(ops.len(), 4);

    assert_eq!(ops[0].op, BuiltinOp::FullyConnected);
    assert_eq!(ops[0].version, 2);
    assert_eq!(ops[0].inputs, [Some(0), Some(1), None]);
    assert_eq!(
        ops[0].options,
        OpOptions::FullyConnected {
            activation: Activation::Relu,
            keep_num_dims: true,
            asymmetric_quantize_inputs: false,
        }
    );

    assert_eq!(ops[1].op, BuiltinOp::BatchMatMul);
    assert_eq!(
        ops[1].options,
        OpOptions::BatchMatMul {
            adj_x: false,
            adj_y: true,
            asymmetric_quantize_inputs: false,
        }
    );

    // Not rejected: named from the schema's table, decided on later.
    assert_eq!(ops[2].op, BuiltinOp::Other(150));
    assert_eq!(ops[2].op.name(), "GELU");
    assert_eq!(ops[2].options, OpOptions::None);

    assert_eq!(ops[3].op, BuiltinOp::Custom);
    assert_eq!(ops[3].custom_code.as_deref(), Some("MyCustomOp"));
    assert_eq!(ops[3].name(), "MyCustomOp");
    assert_eq!(ops[3].custom_options, Some(&[1u8, 2, 3][..]));

    let w = m.tensors[1].data.unwrap();
    assert_eq!(&w[4..8], &1.0f32.to_le_bytes());
}

/// `ModelError` lives inside `edgemm::Error`, which every GEMM call returns: keep it small.
#[test]
fn error_stays_small() {
    let (model, error) = (size_of::<ModelError>(), size_of::<Error>());
    println!("size_of ModelError = {model}, Error = {error}");
    assert!(model <= 88 && error <= 96);
}

#[test]
fn builtin_op_codes_and_names() {
    for code in -3..220 {
        let op = BuiltinOp::from_code(code);
        assert_eq!(op.code(), code);
        assert!(!op.name().is_empty());
    }
    assert_eq!(BuiltinOp::from_code(4), BuiltinOp::DepthwiseConv2d);
    assert_eq!(BuiltinOp::DepthwiseConv2d.name(), "DEPTHWISE_CONV_2D");
    assert_eq!(BuiltinOp::HardSwish.name(), "HARD_SWISH");
    assert_eq!(BuiltinOp::SplitV.name(), "SPLIT_V");
    assert_eq!(BuiltinOp::ResizeNearestNeighbor.code(), 97);
    assert_eq!(BuiltinOp::Other(207).name(), "COMPLEX");
    assert_eq!(BuiltinOp::Other(208).name(), "UNKNOWN");
    assert_eq!(BuiltinOp::Other(-1).name(), "UNKNOWN");
}

/// Every decoded options table, with its union index, against its fields.
#[test]
fn options_tables() {
    let cases: Vec<(i32, u8, T, OpOptions)> = vec![
        (
            4,
            2,
            T::new()
                .f(1, F::I32(1))
                .f(2, F::I32(2))
                .f(3, F::I32(4))
                .f(4, F::I8(1)),
            OpOptions::DepthwiseConv2d {
                padding: Padding::Same,
                stride_w: 1,
                stride_h: 2,
                depth_multiplier: 4,
                activation: Activation::Relu,
                dilation_w_factor: 1,
                dilation_h_factor: 1,
            },
        ),
        (
            17,
            5,
            T::new()
                .f(0, F::I8(1))
                .f(1, F::I32(2))
                .f(2, F::I32(2))
                .f(3, F::I32(3))
                .f(4, F::I32(3)),
            OpOptions::Pool2d {
                padding: Padding::Valid,
                stride_w: 2,
                stride_h: 2,
                filter_width: 3,
                filter_height: 3,
                activation: Activation::None,
            },
        ),
        (
            0,
            11,
            T::new().f(0, F::I8(1)).f(1, F::Bool(false)),
            OpOptions::Add {
                activation: Activation::Relu,
                pot_scale_int16: false,
            },
        ),
        (
            41,
            28,
            T::new(),
            OpOptions::Sub {
                activation: Activation::None,
                pot_scale_int16: true,
            },
        ),
        (
            18,
            21,
            T::new().f(0, F::I8(4)),
            OpOptions::Mul {
                activation: Activation::Tanh,
            },
        ),
        (
            40,
            27,
            T::new().f(0, F::Bool(true)),
            OpOptions::Reducer { keep_dims: true },
        ),
        (
            22,
            17,
            T::new().f(0, F::I32s(vec![1, -1])),
            OpOptions::Reshape {
                new_shape: Some(vec![1, -1]),
            },
        ),
        (
            43,
            30,
            T::new().f(0, F::I32s(vec![1, 2])),
            OpOptions::Squeeze {
                squeeze_dims: vec![1, 2],
            },
        ),
        (
            25,
            9,
            T::new().f(0, F::F32(1.0)),
            OpOptions::Softmax { beta: 1.0 },
        ),
        (
            98,
            75,
            T::new().f(0, F::F32(0.2)),
            OpOptions::LeakyRelu { alpha: 0.2 },
        ),
        (
            2,
            10,
            T::new().f(0, F::I32(-1)).f(1, F::I8(3)),
            OpOptions::Concatenation {
                axis: -1,
                activation: Activation::Relu6,
            },
        ),
        (
            45,
            32,
            T::new()
                .f(0, F::I32(1))
                .f(1, F::I32(2))
                .f(2, F::I32(4))
                .f(3, F::I32(8))
                .f(4, F::I32(16))
                .f(5, F::Bool(true)),
            OpOptions::StridedSlice {
                begin_mask: 1,
                end_mask: 2,
                ellipsis_mask: 4,
                new_axis_mask: 8,
                shrink_axis_mask: 16,
                offset: true,
            },
        ),
        (
            49,
            35,
            T::new().f(0, F::I32(3)),
            OpOptions::Split { num_splits: 3 },
        ),
        (
            102,
            79,
            T::new().f(0, F::I32(2)),
            OpOptions::Split { num_splits: 2 },
        ),
        (
            83,
            59,
            T::new().f(0, F::I32(2)).f(1, F::I32(1)),
            OpOptions::Pack {
                values_count: 2,
                axis: 1,
            },
        ),
        (
            88,
            64,
            T::new().f(0, F::I32(4)).f(1, F::I32(-1)),
            OpOptions::Unpack { num: 4, axis: -1 },
        ),
        (
            36,
            23,
            T::new().f(0, F::I32(1)).f(1, F::I32(1)),
            OpOptions::Gather {
                axis: 1,
                batch_dims: 1,
            },
        ),
        (
            23,
            15,
            T::new().f(2, F::Bool(true)).f(3, F::Bool(false)),
            OpOptions::Resize {
                align_corners: true,
                half_pixel_centers: false,
            },
        ),
        (
            97,
            74,
            T::new().f(1, F::Bool(true)),
            OpOptions::Resize {
                align_corners: false,
                half_pixel_centers: true,
            },
        ),
        // Field-less options tables and operators without options.
        (34, 22, T::new(), OpOptions::None),
        (60, 43, T::new(), OpOptions::None),
        (39, 26, T::new(), OpOptions::None),
        (65, 48, T::new(), OpOptions::None),
        (114, 89, T::new(), OpOptions::None),
        (6, 38, T::new(), OpOptions::None),
        (55, 39, T::new(), OpOptions::None),
        (57, 39, T::new(), OpOptions::None),
        (117, 91, T::new(), OpOptions::None),
        (14, 0, T::new(), OpOptions::None),
        (28, 0, T::new(), OpOptions::None),
        (19, 0, T::new(), OpOptions::None),
        (21, 0, T::new(), OpOptions::None),
    ];
    for (code, union_type, table, expected) in cases {
        let mut m = fc_model();
        m.opcodes = vec![opcode(Some(code.min(127) as i8), Some(code), 1)];
        let options = (union_type != 0).then_some((union_type, table));
        m.operators = vec![operator(0, &[0], &[2], options)];
        let bytes = m.bytes();
        let parsed = parse_tflite(&bytes).unwrap_or_else(|e| panic!("code {code}: {e}"));
        let op = &parsed.operators[0];
        assert_eq!(op.op.code(), code);
        assert_eq!(op.options, expected, "{}", op.op.name());
    }
}

#[test]
fn absent_options_read_as_defaults() {
    let mut m = conv_model();
    m.operators = vec![operator(0, &[0, 1, 2], &[3], None)];
    let bytes = m.bytes();
    let parsed = parse_tflite(&bytes).unwrap();
    assert_eq!(
        parsed.operators[0].options,
        OpOptions::Conv2d {
            padding: Padding::Same,
            stride_w: 0,
            stride_h: 0,
            activation: Activation::None,
            dilation_w_factor: 1,
            dilation_h_factor: 1,
        }
    );
}

#[test]
fn empty_quantization_table_is_none() {
    let mut m = fc_model();
    m.tensors[0] = tensor("x", FLOAT32, &[1, 8], 0).f(4, F::Table(T::new()));
    let bytes = m.bytes();
    assert_eq!(parse_tflite(&bytes).unwrap().tensors[0].quant, None);
}

// ---------------------------------------------------------------------------------------------
// Malformed or unsupported models: an error that says what and where.

#[test]
fn identifier_and_length() {
    let mut bytes = conv_model().bytes();
    assert!(err_text(&bytes[..7]).contains("7 bytes, too short"));
    bytes[4..8].copy_from_slice(b"TFL2");
    let e = model_err(&bytes);
    assert_eq!(e.offset(), Some(4));
    assert!(e.to_string().contains("no \"TFL3\" file identifier"), "{e}");
}

#[test]
fn constant_data_length_mismatch_names_the_tensor() {
    let mut m = conv_model();
    m.buffers[1] = buffer(&[0; 50]);
    let e = model_err(&m.bytes());
    assert_eq!(e.tensor(), Some(1));
    assert_eq!(e.name().unwrap().as_str(), "conv1/weights");
    assert_eq!(e.values(), [50, 54]);
    let text = e.to_string();
    assert!(
        text.starts_with("TFLite model: tensor 1 \"conv1/weights\" (byte ")
            && text.ends_with("): constant data is 50 bytes, shape needs 54"),
        "{text}"
    );
}

#[test]
fn int4_and_string_constants() {
    let mut m = fc_model();
    m.tensors.push(tensor("i4", 17, &[3, 3], 2));
    m.tensors.push(tensor("s", 5, &[2], 2));
    m.buffers.push(buffer(&[0; 5]));
    assert!(parse_tflite(&m.bytes()).is_ok());
    m.buffers[2] = buffer(&[0; 9]);
    assert!(err_text(&m.bytes()).contains("constant data is 9 bytes, shape needs 5"));
}

#[test]
fn negative_dimension_in_constant() {
    let mut m = conv_model();
    m.tensors[2] = tensor("conv1/bias", INT32, &[-3], 2);
    assert!(err_text(&m.bytes()).contains("negative dimension -3"));
}

#[test]
fn tensor_too_large_for_the_ir_names_the_tensor() {
    // The reader takes any non-negative shape; the importer bounds every tensor, so that no
    // size computed from a shape later overflows (these elements overflow a u64).
    let mut m = conv_model();
    m.tensors[3] = tensor("output", INT8, &[i32::MAX, i32::MAX, i32::MAX, 3], 0);
    assert!(parse_tflite(&m.bytes()).is_ok());
    let Err(Error::Model(e)) = import_tflite(&m.bytes()) else {
        panic!("a 2^94-element tensor imported")
    };
    assert_eq!(e.tensor(), Some(3));
    assert!(e.to_string().contains("\"output\""), "{e}");
    assert!(e.to_string().contains("over 2 GiB"), "{e}");
    // At the bound (2^31 bytes) a tensor imports; past it it does not, even with a zero
    // dimension (which counts as one for the bound).
    m.tensors[3] = tensor("output", INT8, &[1, 2, 1 << 30, 1], 0);
    assert!(import_tflite(&m.bytes()).is_ok());
    m.tensors[3] = tensor("output", INT8, &[0, 3, 1 << 30, 1], 0);
    assert!(import_tflite(&m.bytes()).is_err());
}

#[test]
fn zero_point_outside_its_type_names_the_tensor() {
    // Operators compute on zero points in i32 (an i32::MIN one overflowed a LOGISTIC table).
    let mut m = conv_model();
    m.tensors[0] = tensor("input", INT8, &[1, 4, 4, 2], 0).f(4, F::Table(quant(&[0.5], &[128], 0)));
    assert!(parse_tflite(&m.bytes()).is_ok());
    let Err(Error::Model(e)) = import_tflite(&m.bytes()) else {
        panic!("an int8 zero point of 128 imported")
    };
    assert_eq!(e.tensor(), Some(0));
    assert!(e.to_string().contains("zero point is outside"), "{e}");
    m.tensors[0] =
        tensor("input", INT8, &[1, 4, 4, 2], 0).f(4, F::Table(quant(&[0.5], &[-128], 0)));
    assert!(import_tflite(&m.bytes()).is_ok());
}

#[test]
fn index_out_of_range() {
    let mut m = conv_model();
    m.operators = vec![operator(0, &[0, 9, 2], &[3], None)];
    let e = model_err(&m.bytes());
    assert_eq!(e.operator(), Some(0));
    assert_eq!(e.name().unwrap().as_str(), "CONV_2D");
    assert!(
        e.to_string().contains("operator 0 \"CONV_2D\" (byte ")
            && e.to_string()
                .ends_with("input 1 is tensor 9, out of range (4 tensors)"),
        "{e}"
    );

    let mut m = conv_model();
    m.operators = vec![operator(0, &[0, -2, 2], &[3], None)];
    assert!(err_text(&m.bytes()).contains("input 1 is tensor -2"));

    let mut m = conv_model();
    m.operators = vec![operator(0, &[0, 1, 2], &[-1], None)];
    assert!(err_text(&m.bytes()).contains("output 0 is tensor -1"));

    let mut m = conv_model();
    m.operators = vec![operator(5, &[0, 1, 2], &[3], None)];
    assert!(err_text(&m.bytes()).contains("opcode index 5 is out of range (1 operator codes)"));

    let mut m = conv_model();
    m.tensors[1] = tensor("w", INT8, &[1], 7);
    let e = err_text(&m.bytes());
    assert!(
        e.contains("tensor 1 \"w\"") && e.contains("buffer index 7 is out of range (3 buffers)"),
        "{e}"
    );

    let mut m = conv_model();
    m.inputs = vec![0, 4];
    assert!(err_text(&m.bytes()).contains("subgraph input 1 is tensor 4, out of range (4 tensors)"));
    let mut m = conv_model();
    m.outputs = vec![-1];
    assert!(err_text(&m.bytes()).contains("subgraph output 0 is tensor -1"));
}

#[test]
fn unsupported_features() {
    let mut m = conv_model();
    m.subgraphs = 2;
    assert!(err_text(&m.bytes()).contains("the model has 2 subgraphs; only models with one"));
    m.subgraphs = 0;
    assert!(err_text(&m.bytes()).contains("no subgraph"));

    let mut m = conv_model();
    m.version = 2;
    assert!(err_text(&m.bytes()).contains("schema version 2 is not supported"));

    let mut m = conv_model();
    m.tensors[1] = m.tensors[1].clone().f(6, F::Table(T::new()));
    assert!(err_text(&m.bytes()).contains("sparse tensors are not supported"));

    let mut m = conv_model();
    m.tensors[0] = tensor("input", INT8, &[1, 4, 4, 2], 0).f(
        4,
        F::Table(
            quant(&[0.5], &[-1], 0)
                .f(4, F::U8(1))
                .f(5, F::Table(T::new())),
        ),
    );
    assert!(err_text(&m.bytes()).contains("custom quantization details"));

    let mut m = conv_model();
    m.buffers[1] = T::new().f(1, F::U64(1 << 32)).f(2, F::U64(54));
    let e = err_text(&m.bytes());
    assert!(
        e.contains("buffer 1 is stored outside the flatbuffer")
            && e.contains("buffers outside the flatbuffer are not supported"),
        "{e}"
    );

    let mut m = fc_model();
    m.operators[0] = operator(0, &[0, 1, -1], &[2], Some((8, T::new().f(1, F::I8(1)))));
    assert!(err_text(&m.bytes()).contains("weights_format 1 (SHUFFLED4x16INT8) is not supported"));
}

#[test]
fn inconsistent_options_and_quantization() {
    let mut m = conv_model();
    m.operators = vec![operator(0, &[0, 1, 2], &[3], Some((5, T::new())))];
    let e = err_text(&m.bytes());
    assert!(
        e.contains("builtin options have union type 5, this operator takes type 1"),
        "{e}"
    );

    let mut m = conv_model();
    m.operators = vec![operator(
        0,
        &[0, 1, 2],
        &[3],
        Some((1, T::new().f(3, F::I8(9)))),
    )];
    assert!(err_text(&m.bytes()).contains("unknown fused activation function 9"));
    m.operators = vec![operator(
        0,
        &[0, 1, 2],
        &[3],
        Some((1, T::new().f(0, F::I8(2)))),
    )];
    assert!(err_text(&m.bytes()).contains("unknown padding 2"));

    let mut m = conv_model();
    m.tensors[1] = tensor("conv1/weights", INT8, &[3, 3, 3, 2], 1)
        .f(4, F::Table(quant(&[0.1, 0.2, 0.3], &[0, 0], 0)));
    assert!(err_text(&m.bytes()).contains("3 scales but 2 zero points"));
    m.tensors[1] = tensor("conv1/weights", INT8, &[3, 3, 3, 2], 1)
        .f(4, F::Table(quant(&[0.1, 0.2, 0.3], &[0, 0, 0], 3)));
    assert!(
        err_text(&m.bytes()).contains("3 per-channel scales, but quantized dimension 3 has size 2")
    );
    m.tensors[1] = tensor("conv1/weights", INT8, &[3, 3, 3, 2], 1)
        .f(4, F::Table(quant(&[0.1, 0.2, 0.3], &[0, 0, 0], 4)));
    assert!(
        err_text(&m.bytes()).contains("quantized_dimension 4 is outside the tensor's 4 dimensions")
    );
    m.tensors[1] =
        tensor("conv1/weights", INT8, &[3, 3, 3, 2], 1).f(4, F::Table(quant(&[0.1], &[0], -1)));
    assert!(err_text(&m.bytes()).contains("quantized_dimension -1 is negative"));
}

#[test]
fn invalid_utf8_and_long_names() {
    let mut m = conv_model();
    let long = "model/very_long_scope_name/conv2d_17/Conv2D;bias_add";
    m.tensors[2] = tensor(long, INT32, &[4], 2);
    let e = model_err(&m.bytes());
    let name = e.name().unwrap();
    assert!(name.is_truncated() && long.starts_with(name.as_str()));
    assert!(e.to_string().contains("...\""), "{e}");

    let mut bytes = conv_model().bytes();
    let at = bytes.windows(5).position(|w| w == b"input").unwrap();
    bytes[at] = 0xff;
    let e = model_err(&bytes);
    assert!(
        e.to_string().contains("not valid UTF-8") && e.tensor() == Some(0),
        "{e}"
    );
}

/// Raw flatbuffer corruptions each give an error at the right place.
#[test]
fn flatbuffer_structure_errors() {
    let bytes = conv_model().bytes();
    // Root offset past the end.
    let mut b = bytes.clone();
    b[0..4].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
    assert!(err_text(&b).contains("an offset points past the end of the file"));
    // Root table's vtable offset pointing before the file.
    let root = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
    let mut b = bytes.clone();
    b[root..root + 4].copy_from_slice(&(root as i32 + 100).to_le_bytes());
    assert!(err_text(&b).contains("vtable offset points before the file"));
    // ...or after it.
    b[root..root + 4].copy_from_slice(&i32::MIN.to_le_bytes());
    assert!(err_text(&b).contains("vtable lies outside the file"));
    // A vtable with an odd size, then a table size running past the end.
    let vt = root - i32::from_le_bytes(bytes[root..root + 4].try_into().unwrap()) as usize;
    let mut b = bytes.clone();
    b[vt] = 5;
    assert!(err_text(&b).contains("vtable has an invalid size"));
    let mut b = bytes.clone();
    b[vt + 2..vt + 4].copy_from_slice(&0xfff0u16.to_le_bytes());
    let big = [b.clone(), vec![0; 16]].concat();
    assert!(err_text(&b).contains("table's size is below 4 or runs past"));
    // A field offset outside its table.
    let mut b = big;
    b[vt + 2..vt + 4].copy_from_slice(&8u16.to_le_bytes());
    assert!(err_text(&b).contains("field lies outside its table"));
    // A vector whose length runs past the end: the tensors' shape vectors are the only
    // 4-element [int] vectors [1, 4, 4, 2].
    let shape: Vec<u8> = [4i32, 1, 4, 4, 2]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let at = bytes.windows(20).position(|w| w == shape).unwrap();
    let mut b = bytes.clone();
    b[at..at + 4].copy_from_slice(&0x4000_0000u32.to_le_bytes());
    let e = model_err(&b);
    assert!(
        e.to_string().contains("vector runs past the end") && e.offset() == Some(at),
        "{e}"
    );
    b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(err_text(&b).contains("vector runs past the end"));
}

/// A small file whose tensors vector references one table many times must be refused
/// (decoding it would allocate a copy of the shape per reference), not decoded.
#[test]
fn shared_tables_are_bounded() {
    let mut m = conv_model();
    m.tensors = vec![];
    m.inputs = vec![];
    m.outputs = vec![];
    m.operators = vec![];
    let mut bytes = m.bytes();
    assert!(parse_tflite(&bytes).is_ok());
    m.tensors = vec![tensor("t", FLOAT32, &[1; 256], 0)];
    let sg = T::new().f(0, F::SharedTables(m.tensors[0].clone(), 100_000));
    let root = T::new()
        .f(0, F::U32(3))
        .f(2, F::Tables(vec![sg]))
        .f(4, F::Tables(vec![buffer(&[])]));
    bytes = finish(&root, b"TFL3");
    assert!(bytes.len() < 500_000);
    let e = err_text(&bytes);
    assert!(e.contains("references the same data too many times"), "{e}");
    // A few references are fine.
    let sg = T::new().f(0, F::SharedTables(m.tensors[0].clone(), 3));
    let root = T::new().f(0, F::U32(3)).f(2, F::Tables(vec![sg]));
    assert_eq!(
        parse_tflite(&finish(&root, b"TFL3")).unwrap().tensors.len(),
        3
    );
}

// ---------------------------------------------------------------------------------------------
// Robustness: truncations and random corruption never panic.

fn models() -> Vec<Vec<u8>> {
    vec![conv_model().bytes(), fc_model().bytes()]
}

#[test]
fn every_truncation_is_handled() {
    for bytes in models() {
        for n in 0..bytes.len() {
            // Ok is possible only if the cut falls in trailing padding; mostly an Err.
            if let Ok(m) = parse_tflite(&bytes[..n]) {
                check_invariants(&m);
            }
        }
        assert!(parse_tflite(&bytes[..bytes.len() / 2]).is_err());
    }
}

#[test]
fn random_byte_flips_are_handled() {
    let mut rng = SmallRng::seed_from_u64(0x7f1_17e);
    let (mut ok, mut err) = (0, 0);
    for bytes in models() {
        for _ in 0..20_000 {
            let mut b = bytes.clone();
            for _ in 0..rng.gen_range(1..=4) {
                let i = rng.gen_range(0..b.len());
                match rng.gen_range(0..3) {
                    0 => b[i] ^= 1 << rng.gen_range(0..8),
                    1 => b[i] = rng.gen(),
                    _ => b[i] = [0, 0xff, 0x7f, 0x80][rng.gen_range(0..4)],
                }
            }
            match parse_tflite(&b) {
                Ok(m) => {
                    check_invariants(&m);
                    ok += 1;
                }
                Err(e) => {
                    assert!(matches!(e, Error::Model(_)));
                    assert!(!e.to_string().is_empty());
                    err += 1;
                }
            }
        }
    }
    println!("random flips: {ok} parsed, {err} rejected");
    assert!(ok > 0 && err > 0);
}

/// What a parsed model guarantees, whatever the file.
fn check_invariants(m: &TfliteModel<'_>) {
    let n = m.tensors.len();
    assert!(m.inputs.iter().chain(&m.outputs).all(|&t| t < n));
    for op in &m.operators {
        assert!(!op.name().is_empty());
        assert!(op
            .inputs
            .iter()
            .flatten()
            .chain(&op.outputs)
            .all(|&t| t < n));
    }
    for t in &m.tensors {
        if let (Some(d), Some(bits)) = (t.data, t.dtype.bits()) {
            let elems: u64 = t.shape.iter().map(|&x| x as u64).product();
            assert_eq!(
                d.len() as u64,
                (elems * bits as u64).div_ceil(8),
                "{}",
                t.name
            );
        }
        if let Some(q) = &t.quant {
            assert!(!q.scale.is_empty());
            assert_eq!(q.scale.len(), q.zero_point.len());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Real models from the TensorFlow converter, when present.

#[test]
fn real_models_in_tests_models() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models");
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "tflite"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    if files.is_empty() {
        println!("note: no tests/models/*.tflite files; real-model check skipped");
        return;
    }
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let m = match parse_tflite(&bytes) {
            Ok(m) => m,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        check_invariants(&m);
        assert!(!m.operators.is_empty(), "{}", path.display());
        assert!(!m.inputs.is_empty() && !m.outputs.is_empty());
        let names: Vec<&str> = m.operators.iter().map(|o| o.name()).collect();
        assert!(
            names.iter().all(|n| *n != "UNKNOWN"),
            "{}: {names:?}",
            path.display()
        );
        println!(
            "{}: {} tensors, {} operators: {}",
            path.display(),
            m.tensors.len(),
            m.operators.len(),
            names.join(" ")
        );
        // Truncations and byte flips of a real model never panic either (sampled: real files
        // are larger and have the converter's metadata and signatures).
        let step = (bytes.len() / 300).max(1);
        for n in (0..bytes.len()).step_by(step) {
            let _ = parse_tflite(&bytes[..n]);
        }
        let mut rng = SmallRng::seed_from_u64(bytes.len() as u64);
        for _ in 0..300 {
            let mut b = bytes.clone();
            for _ in 0..rng.gen_range(1..=3) {
                let i = rng.gen_range(0..b.len());
                b[i] = rng.gen();
            }
            if let Ok(m) = parse_tflite(&b) {
                check_invariants(&m);
            }
        }
    }
}

/// The generator's MANIFEST describes each operator as the TensorFlow tooling sees it
/// (version, builtin options, tensors' dtype, shape, constness, quantization): the reader must
/// agree on every one of them. This pins the schema's field ids against the real converter.
#[test]
fn real_models_match_manifest() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models");
    let Ok(manifest) = std::fs::read_to_string(format!("{dir}/MANIFEST")) else {
        println!("note: no tests/models/MANIFEST; manifest check skipped");
        return;
    };
    // "#. <model>   <OP> v<version> key=value ... in=... out=..."
    let mut by_model: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for line in manifest.lines() {
        let Some(rest) = line.strip_prefix("#. ") else {
            continue;
        };
        let Some((model, desc)) = rest.split_once("   ") else {
            continue;
        };
        let mut words = desc.split_whitespace();
        let (Some(op), Some(v)) = (words.next(), words.next()) else {
            continue;
        };
        if op
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && v.starts_with('v')
        {
            by_model.entry(model).or_default().push(desc);
        }
    }
    let mut checked = 0;
    for (model, descs) in &by_model {
        let path = format!("{dir}/{model}.tflite");
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let m = parse_tflite(&bytes).unwrap_or_else(|e| panic!("{model}: {e}"));
        assert_eq!(m.operators.len(), descs.len(), "{model}: operator count");
        for (op, desc) in m.operators.iter().zip(descs) {
            let ctx = format!("{model}: {desc}");
            let mut words = desc.split_whitespace();
            assert_eq!(Some(op.name()), words.next(), "{ctx}");
            assert_eq!(
                Some(format!("v{}", op.version).as_str()),
                words.next(),
                "{ctx}"
            );
            let ours = option_pairs(&op.options);
            let mut seen = 0;
            for word in words {
                let (key, value) = word.split_once('=').unwrap();
                match key {
                    "in" => check_tensors(&m, &op.inputs, value, &ctx),
                    "out" => {
                        let outs: Vec<_> = op.outputs.iter().map(|&t| Some(t)).collect();
                        check_tensors(&m, &outs, value, &ctx)
                    }
                    // Not decoded: the bias/accumulator type override (0 = unset).
                    "quantizedBiasType" => assert_eq!(value, "0", "{ctx}"),
                    // Only the default format is accepted.
                    "weightsFormat" => assert_eq!(value, "0", "{ctx}"),
                    _ => {
                        let Some((_, v)) = ours.iter().find(|(k, _)| *k == key) else {
                            panic!("{ctx}: option {key} not decoded (have {ours:?})");
                        };
                        seen += 1;
                        match v {
                            Val::S(s) => assert_eq!(s, value, "{ctx}: {key}"),
                            Val::F(f) => {
                                assert_eq!(*f, value.parse::<f64>().unwrap(), "{ctx}: {key}")
                            }
                        }
                    }
                }
            }
            assert_eq!(seen, ours.len(), "{ctx}: decoded {ours:?}");
            checked += 1;
        }
    }
    println!(
        "manifest: {checked} operators checked in {} models",
        by_model.len()
    );
}

#[derive(Debug)]
enum Val {
    S(String),
    F(f64),
}

/// The decoded options with the manifest's (camelCase) keys and value spellings.
fn option_pairs(o: &OpOptions) -> Vec<(&'static str, Val)> {
    fn act(a: &Activation) -> Val {
        Val::S(
            match a {
                Activation::None => "NONE",
                Activation::Relu => "RELU",
                Activation::ReluN1To1 => "RELU_N1_TO_1",
                Activation::Relu6 => "RELU6",
                Activation::Tanh => "TANH",
                Activation::SignBit => "SIGN_BIT",
            }
            .into(),
        )
    }
    fn pad(p: &Padding) -> Val {
        Val::S(if *p == Padding::Same { "SAME" } else { "VALID" }.into())
    }
    fn b(x: &bool) -> Val {
        Val::S(if *x { "True" } else { "False" }.into())
    }
    fn i(x: &i32) -> Val {
        Val::S(x.to_string())
    }
    fn list(v: &[i32]) -> Val {
        Val::S(
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("x"),
        )
    }
    match o {
        OpOptions::None => vec![],
        OpOptions::Conv2d {
            padding,
            stride_w,
            stride_h,
            activation,
            dilation_w_factor,
            dilation_h_factor,
        } => vec![
            ("padding", pad(padding)),
            ("strideW", i(stride_w)),
            ("strideH", i(stride_h)),
            ("fusedActivationFunction", act(activation)),
            ("dilationWFactor", i(dilation_w_factor)),
            ("dilationHFactor", i(dilation_h_factor)),
        ],
        OpOptions::DepthwiseConv2d {
            padding,
            stride_w,
            stride_h,
            depth_multiplier,
            activation,
            dilation_w_factor,
            dilation_h_factor,
        } => vec![
            ("padding", pad(padding)),
            ("strideW", i(stride_w)),
            ("strideH", i(stride_h)),
            ("depthMultiplier", i(depth_multiplier)),
            ("fusedActivationFunction", act(activation)),
            ("dilationWFactor", i(dilation_w_factor)),
            ("dilationHFactor", i(dilation_h_factor)),
        ],
        OpOptions::Pool2d {
            padding,
            stride_w,
            stride_h,
            filter_width,
            filter_height,
            activation,
        } => vec![
            ("padding", pad(padding)),
            ("strideW", i(stride_w)),
            ("strideH", i(stride_h)),
            ("filterWidth", i(filter_width)),
            ("filterHeight", i(filter_height)),
            ("fusedActivationFunction", act(activation)),
        ],
        OpOptions::FullyConnected {
            activation,
            keep_num_dims,
            asymmetric_quantize_inputs,
        } => vec![
            ("fusedActivationFunction", act(activation)),
            ("keepNumDims", b(keep_num_dims)),
            ("asymmetricQuantizeInputs", b(asymmetric_quantize_inputs)),
        ],
        OpOptions::Softmax { beta } => vec![("beta", Val::F(f64::from(*beta)))],
        OpOptions::Concatenation { axis, activation } => vec![
            ("axis", i(axis)),
            ("fusedActivationFunction", act(activation)),
        ],
        OpOptions::Add {
            activation,
            pot_scale_int16,
        }
        | OpOptions::Sub {
            activation,
            pot_scale_int16,
        } => vec![
            ("fusedActivationFunction", act(activation)),
            ("potScaleInt16", b(pot_scale_int16)),
        ],
        OpOptions::Mul { activation } => vec![("fusedActivationFunction", act(activation))],
        OpOptions::Reducer { keep_dims } => vec![("keepDims", b(keep_dims))],
        OpOptions::Reshape { new_shape } => match new_shape {
            Some(s) => vec![("newShape", list(s))],
            None => vec![],
        },
        OpOptions::Squeeze { squeeze_dims } => vec![("squeezeDims", list(squeeze_dims))],
        OpOptions::LeakyRelu { alpha } => vec![("alpha", Val::F(f64::from(*alpha)))],
        OpOptions::StridedSlice {
            begin_mask,
            end_mask,
            ellipsis_mask,
            new_axis_mask,
            shrink_axis_mask,
            offset,
        } => vec![
            ("beginMask", i(begin_mask)),
            ("endMask", i(end_mask)),
            ("ellipsisMask", i(ellipsis_mask)),
            ("newAxisMask", i(new_axis_mask)),
            ("shrinkAxisMask", i(shrink_axis_mask)),
            ("offset", b(offset)),
        ],
        OpOptions::Split { num_splits } => vec![("numSplits", i(num_splits))],
        OpOptions::Pack { values_count, axis } => {
            vec![("valuesCount", i(values_count)), ("axis", i(axis))]
        }
        OpOptions::Unpack { num, axis } => vec![("num", i(num)), ("axis", i(axis))],
        OpOptions::Gather { axis, batch_dims } => {
            vec![("axis", i(axis)), ("batchDims", i(batch_dims))]
        }
        OpOptions::BatchMatMul {
            adj_x,
            adj_y,
            asymmetric_quantize_inputs,
        } => vec![
            ("adjX", b(adj_x)),
            ("adjY", b(adj_y)),
            ("asymmetricQuantizeInputs", b(asymmetric_quantize_inputs)),
        ],
        OpOptions::Resize {
            align_corners,
            half_pixel_centers,
        } => vec![
            ("alignCorners", b(align_corners)),
            ("halfPixelCenters", b(half_pixel_centers)),
        ],
        other => panic!("no manifest spelling for {other:?}"),
    }
}

/// Checks `dtype[shape]{scale,zp}` / `/perchanN` / `c` (constant) / `-` (absent) entries.
fn check_tensors(m: &TfliteModel<'_>, ids: &[Option<usize>], spec: &str, ctx: &str) {
    let specs: Vec<&str> = spec.split(';').collect();
    assert_eq!(specs.len(), ids.len(), "{ctx}: tensor count in {spec}");
    for (id, s) in ids.iter().zip(specs) {
        let Some(id) = id else {
            assert_eq!(s, "-", "{ctx}");
            continue;
        };
        assert_ne!(s, "-", "{ctx}: tensor {id} present, manifest says absent");
        let t = &m.tensors[*id];
        let (dtype, rest) = s.split_once('[').unwrap();
        assert_eq!(dtype, t.dtype.name().to_lowercase(), "{ctx}: tensor {id}");
        let (shape, mut rest) = rest.split_once(']').unwrap();
        let shape: Vec<i32> = shape
            .split(',')
            .filter(|x| !x.is_empty())
            .map(|x| x.parse().unwrap())
            .collect();
        assert_eq!(shape, t.shape, "{ctx}: tensor {id}");
        let constant = rest.ends_with('c');
        rest = rest.strip_suffix('c').unwrap_or(rest);
        assert_eq!(constant, t.data.is_some(), "{ctx}: tensor {id} constness");
        if let Some(n) = rest.strip_prefix("/perchan") {
            let q = t.quant.as_ref().unwrap();
            assert_eq!(
                q.scale.len(),
                n.parse::<usize>().unwrap(),
                "{ctx}: tensor {id}"
            );
        } else if let Some(q) = rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            let (scale, zp) = q.split_once(',').unwrap();
            let tq = t.quant.as_ref().unwrap();
            let want: f64 = scale.parse().unwrap();
            assert!(
                (f64::from(tq.scale[0]) - want).abs() <= want * 1e-5,
                "{ctx}: {id} scale"
            );
            assert_eq!(
                tq.zero_point,
                [zp.parse::<i64>().unwrap()],
                "{ctx}: {id} zero point"
            );
        } else {
            assert_eq!(rest, "", "{ctx}: unknown tensor suffix");
            assert!(
                t.quant.as_ref().is_none_or(|q| q.scale.len() == 1),
                "{ctx}: {id}"
            );
        }
    }
}
