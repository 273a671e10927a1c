//! TFLite operators: builtin codes, their names, and the builtin options tables this crate
//! reads (field ids and union indices from TFLite's `schema.fbs`, schema v3c).

use alloc::vec::Vec;

use super::flatbuf::{err, Result, Table};
use super::reader::Parser;

macro_rules! builtin_ops {
    ($($(#[$doc:meta])* $variant:ident = $code:literal,)*) => {
        /// A TFLite operator: the ones edgemm knows by name, and every other code as
        /// [`BuiltinOp::Other`] (the reader never rejects an operator; which ones can run is
        /// decided when lowering). Codes are `enum BuiltinOperator` in `schema.fbs`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum BuiltinOp {
            $($(#[$doc])* $variant,)*
            /// Any other builtin code (never one of the named variants' codes when built by
            /// [`BuiltinOp::from_code`]).
            Other(i32),
        }

        impl BuiltinOp {
            /// The operator for a `BuiltinOperator` code.
            pub fn from_code(code: i32) -> Self {
                match code {
                    $($code => BuiltinOp::$variant,)*
                    other => BuiltinOp::Other(other),
                }
            }

            /// The `BuiltinOperator` code.
            pub fn code(self) -> i32 {
                match self {
                    $(BuiltinOp::$variant => $code,)*
                    BuiltinOp::Other(code) => code,
                }
            }
        }
    };
}

builtin_ops! {
    /// `ADD` (0).
    Add = 0,
    /// `AVERAGE_POOL_2D` (1).
    AveragePool2d = 1,
    /// `CONCATENATION` (2).
    Concatenation = 2,
    /// `CONV_2D` (3).
    Conv2d = 3,
    /// `DEPTHWISE_CONV_2D` (4).
    DepthwiseConv2d = 4,
    /// `DEQUANTIZE` (6).
    Dequantize = 6,
    /// `FULLY_CONNECTED` (9).
    FullyConnected = 9,
    /// `LOGISTIC` (14).
    Logistic = 14,
    /// `MAX_POOL_2D` (17).
    MaxPool2d = 17,
    /// `MUL` (18).
    Mul = 18,
    /// `RELU` (19).
    Relu = 19,
    /// `RELU_N1_TO_1` (20).
    ReluN1To1 = 20,
    /// `RELU6` (21).
    Relu6 = 21,
    /// `RESHAPE` (22).
    Reshape = 22,
    /// `RESIZE_BILINEAR` (23).
    ResizeBilinear = 23,
    /// `SOFTMAX` (25).
    Softmax = 25,
    /// `TANH` (28).
    Tanh = 28,
    /// `CUSTOM` (32): the operator's `custom_code` names it.
    Custom = 32,
    /// `PAD` (34).
    Pad = 34,
    /// `GATHER` (36).
    Gather = 36,
    /// `TRANSPOSE` (39).
    Transpose = 39,
    /// `MEAN` (40).
    Mean = 40,
    /// `SUB` (41).
    Sub = 41,
    /// `SQUEEZE` (43).
    Squeeze = 43,
    /// `STRIDED_SLICE` (45).
    StridedSlice = 45,
    /// `SPLIT` (49).
    Split = 49,
    /// `MAXIMUM` (55).
    Maximum = 55,
    /// `MINIMUM` (57).
    Minimum = 57,
    /// `PADV2` (60).
    PadV2 = 60,
    /// `SLICE` (65).
    Slice = 65,
    /// `PACK` (83).
    Pack = 83,
    /// `UNPACK` (88).
    Unpack = 88,
    /// `RESIZE_NEAREST_NEIGHBOR` (97).
    ResizeNearestNeighbor = 97,
    /// `LEAKY_RELU` (98).
    LeakyRelu = 98,
    /// `SPLIT_V` (102).
    SplitV = 102,
    /// `QUANTIZE` (114).
    Quantize = 114,
    /// `HARD_SWISH` (117).
    HardSwish = 117,
    /// `BATCH_MATMUL` (126).
    BatchMatMul = 126,
}

impl BuiltinOp {
    /// TFLite's name for the operator (`"CONV_2D"`), for named and other codes alike;
    /// `"UNKNOWN"` for a code newer than this table (schema.fbs up to `COMPLEX` = 207).
    pub fn name(self) -> &'static str {
        usize::try_from(self.code())
            .ok()
            .and_then(|i| NAMES.get(i))
            .copied()
            .unwrap_or("UNKNOWN")
    }
}

impl core::fmt::Display for BuiltinOp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// `enum BuiltinOperator` names, indexed by code.
const NAMES: [&str; 208] = [
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE",
    "DEQUANTIZE",
    "EMBEDDING_LOOKUP",
    "FLOOR",
    "FULLY_CONNECTED",
    "HASHTABLE_LOOKUP",
    "L2_NORMALIZATION",
    "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION",
    "LOGISTIC",
    "LSH_PROJECTION",
    "LSTM",
    "MAX_POOL_2D",
    "MUL",
    "RELU",
    "RELU_N1_TO_1",
    "RELU6",
    "RESHAPE",
    "RESIZE_BILINEAR",
    "RNN",
    "SOFTMAX",
    "SPACE_TO_DEPTH",
    "SVDF",
    "TANH",
    "CONCAT_EMBEDDINGS",
    "SKIP_GRAM",
    "CALL",
    "CUSTOM",
    "EMBEDDING_LOOKUP_SPARSE",
    "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN",
    "GATHER",
    "BATCH_TO_SPACE_ND",
    "SPACE_TO_BATCH_ND",
    "TRANSPOSE",
    "MEAN",
    "SUB",
    "DIV",
    "SQUEEZE",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "STRIDED_SLICE",
    "BIDIRECTIONAL_SEQUENCE_RNN",
    "EXP",
    "TOPK_V2",
    "SPLIT",
    "LOG_SOFTMAX",
    "DELEGATE",
    "BIDIRECTIONAL_SEQUENCE_LSTM",
    "CAST",
    "PRELU",
    "MAXIMUM",
    "ARG_MAX",
    "MINIMUM",
    "LESS",
    "NEG",
    "PADV2",
    "GREATER",
    "GREATER_EQUAL",
    "LESS_EQUAL",
    "SELECT",
    "SLICE",
    "SIN",
    "TRANSPOSE_CONV",
    "SPARSE_TO_DENSE",
    "TILE",
    "EXPAND_DIMS",
    "EQUAL",
    "NOT_EQUAL",
    "LOG",
    "SUM",
    "SQRT",
    "RSQRT",
    "SHAPE",
    "POW",
    "ARG_MIN",
    "FAKE_QUANT",
    "REDUCE_PROD",
    "REDUCE_MAX",
    "PACK",
    "LOGICAL_OR",
    "ONE_HOT",
    "LOGICAL_AND",
    "LOGICAL_NOT",
    "UNPACK",
    "REDUCE_MIN",
    "FLOOR_DIV",
    "REDUCE_ANY",
    "SQUARE",
    "ZEROS_LIKE",
    "FILL",
    "FLOOR_MOD",
    "RANGE",
    "RESIZE_NEAREST_NEIGHBOR",
    "LEAKY_RELU",
    "SQUARED_DIFFERENCE",
    "MIRROR_PAD",
    "ABS",
    "SPLIT_V",
    "UNIQUE",
    "CEIL",
    "REVERSE_V2",
    "ADD_N",
    "GATHER_ND",
    "COS",
    "WHERE",
    "RANK",
    "ELU",
    "REVERSE_SEQUENCE",
    "MATRIX_DIAG",
    "QUANTIZE",
    "MATRIX_SET_DIAG",
    "ROUND",
    "HARD_SWISH",
    "IF",
    "WHILE",
    "NON_MAX_SUPPRESSION_V4",
    "NON_MAX_SUPPRESSION_V5",
    "SCATTER_ND",
    "SELECT_V2",
    "DENSIFY",
    "SEGMENT_SUM",
    "BATCH_MATMUL",
    "PLACEHOLDER_FOR_GREATER_OP_CODES",
    "CUMSUM",
    "CALL_ONCE",
    "BROADCAST_TO",
    "RFFT2D",
    "CONV_3D",
    "IMAG",
    "REAL",
    "COMPLEX_ABS",
    "HASHTABLE",
    "HASHTABLE_FIND",
    "HASHTABLE_IMPORT",
    "HASHTABLE_SIZE",
    "REDUCE_ALL",
    "CONV_3D_TRANSPOSE",
    "VAR_HANDLE",
    "READ_VARIABLE",
    "ASSIGN_VARIABLE",
    "BROADCAST_ARGS",
    "RANDOM_STANDARD_NORMAL",
    "BUCKETIZE",
    "RANDOM_UNIFORM",
    "MULTINOMIAL",
    "GELU",
    "DYNAMIC_UPDATE_SLICE",
    "RELU_0_TO_1",
    "UNSORTED_SEGMENT_PROD",
    "UNSORTED_SEGMENT_MAX",
    "UNSORTED_SEGMENT_SUM",
    "ATAN2",
    "UNSORTED_SEGMENT_MIN",
    "SIGN",
    "BITCAST",
    "BITWISE_XOR",
    "RIGHT_SHIFT",
    "STABLEHLO_LOGISTIC",
    "STABLEHLO_ADD",
    "STABLEHLO_DIVIDE",
    "STABLEHLO_MULTIPLY",
    "STABLEHLO_MAXIMUM",
    "STABLEHLO_RESHAPE",
    "STABLEHLO_CLAMP",
    "STABLEHLO_CONCATENATE",
    "STABLEHLO_BROADCAST_IN_DIM",
    "STABLEHLO_CONVOLUTION",
    "STABLEHLO_SLICE",
    "STABLEHLO_CUSTOM_CALL",
    "STABLEHLO_REDUCE",
    "STABLEHLO_ABS",
    "STABLEHLO_AND",
    "STABLEHLO_COSINE",
    "STABLEHLO_EXPONENTIAL",
    "STABLEHLO_FLOOR",
    "STABLEHLO_LOG",
    "STABLEHLO_MINIMUM",
    "STABLEHLO_NEGATE",
    "STABLEHLO_OR",
    "STABLEHLO_POWER",
    "STABLEHLO_REMAINDER",
    "STABLEHLO_RSQRT",
    "STABLEHLO_SELECT",
    "STABLEHLO_SUBTRACT",
    "STABLEHLO_TANH",
    "STABLEHLO_SCATTER",
    "STABLEHLO_COMPARE",
    "STABLEHLO_CONVERT",
    "STABLEHLO_DYNAMIC_SLICE",
    "STABLEHLO_DYNAMIC_UPDATE_SLICE",
    "STABLEHLO_PAD",
    "STABLEHLO_IOTA",
    "STABLEHLO_DOT_GENERAL",
    "STABLEHLO_REDUCE_WINDOW",
    "STABLEHLO_SORT",
    "STABLEHLO_WHILE",
    "STABLEHLO_GATHER",
    "STABLEHLO_TRANSPOSE",
    "DILATE",
    "STABLEHLO_RNG_BIT_GENERATOR",
    "REDUCE_WINDOW",
    "STABLEHLO_COMPOSITE",
    "COMPLEX",
];

/// `enum Padding : byte { SAME, VALID }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Output size = ceil(input / stride), zeros added around.
    Same,
    /// No padding.
    Valid,
}

/// `enum ActivationFunctionType : byte`, the activation fused into an operator's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `NONE` (0).
    None,
    /// `RELU` (1).
    Relu,
    /// `RELU_N1_TO_1` (2): clamp to [-1, 1].
    ReluN1To1,
    /// `RELU6` (3).
    Relu6,
    /// `TANH` (4).
    Tanh,
    /// `SIGN_BIT` (5).
    SignBit,
}

/// The builtin options of an operator, decoded for the operators edgemm knows (field names as
/// in `schema.fbs`; `fused_activation_function` is `activation`). Operators without options,
/// with options that have no fields (PAD, TRANSPOSE, QUANTIZE...), or not known here have
/// [`OpOptions::None`]. A known operator whose options table is absent gets the schema
/// defaults (so a CONV_2D without options has strides 0, which lowering rejects).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum OpOptions {
    /// No options (or none this reader decodes).
    None,
    /// `Conv2DOptions` (union index 1), for CONV_2D.
    Conv2d {
        padding: Padding,
        stride_w: i32,
        stride_h: i32,
        activation: Activation,
        dilation_w_factor: i32,
        dilation_h_factor: i32,
    },
    /// `DepthwiseConv2DOptions` (2), for DEPTHWISE_CONV_2D.
    DepthwiseConv2d {
        padding: Padding,
        stride_w: i32,
        stride_h: i32,
        depth_multiplier: i32,
        activation: Activation,
        dilation_w_factor: i32,
        dilation_h_factor: i32,
    },
    /// `Pool2DOptions` (5), for AVERAGE_POOL_2D and MAX_POOL_2D.
    Pool2d {
        padding: Padding,
        stride_w: i32,
        stride_h: i32,
        filter_width: i32,
        filter_height: i32,
        activation: Activation,
    },
    /// `FullyConnectedOptions` (8), for FULLY_CONNECTED (only the default weights format is
    /// accepted; the shuffled int8 format is an error).
    FullyConnected {
        activation: Activation,
        keep_num_dims: bool,
        asymmetric_quantize_inputs: bool,
    },
    /// `SoftmaxOptions` (9), for SOFTMAX.
    Softmax { beta: f32 },
    /// `ConcatenationOptions` (10), for CONCATENATION.
    Concatenation { axis: i32, activation: Activation },
    /// `AddOptions` (11), for ADD.
    Add {
        activation: Activation,
        pot_scale_int16: bool,
    },
    /// `SubOptions` (28), for SUB.
    Sub {
        activation: Activation,
        pot_scale_int16: bool,
    },
    /// `MulOptions` (21), for MUL.
    Mul { activation: Activation },
    /// `ReducerOptions` (27), for MEAN.
    Reducer { keep_dims: bool },
    /// `ReshapeOptions` (17), for RESHAPE: `None` when the new shape is only given by the
    /// second input.
    Reshape { new_shape: Option<Vec<i32>> },
    /// `SqueezeOptions` (30), for SQUEEZE (empty: squeeze every dimension of size 1).
    Squeeze { squeeze_dims: Vec<i32> },
    /// `LeakyReluOptions` (75), for LEAKY_RELU.
    LeakyRelu { alpha: f32 },
    /// `StridedSliceOptions` (32), for STRIDED_SLICE.
    StridedSlice {
        begin_mask: i32,
        end_mask: i32,
        ellipsis_mask: i32,
        new_axis_mask: i32,
        shrink_axis_mask: i32,
        offset: bool,
    },
    /// `SplitOptions` (35) for SPLIT, `SplitVOptions` (79) for SPLIT_V.
    Split { num_splits: i32 },
    /// `PackOptions` (59), for PACK.
    Pack { values_count: i32, axis: i32 },
    /// `UnpackOptions` (64), for UNPACK.
    Unpack { num: i32, axis: i32 },
    /// `GatherOptions` (23), for GATHER.
    Gather { axis: i32, batch_dims: i32 },
    /// `BatchMatMulOptions` (101), for BATCH_MATMUL.
    BatchMatMul {
        adj_x: bool,
        adj_y: bool,
        asymmetric_quantize_inputs: bool,
    },
    /// `ResizeBilinearOptions` (15) for RESIZE_BILINEAR, `ResizeNearestNeighborOptions` (74)
    /// for RESIZE_NEAREST_NEIGHBOR.
    Resize {
        align_corners: bool,
        half_pixel_centers: bool,
    },
}

/// The `BuiltinOptions` union index of the table whose fields are decoded for `op`.
fn options_type(op: BuiltinOp) -> Option<u8> {
    use BuiltinOp as B;
    Some(match op {
        B::Conv2d => 1,                       // Conv2DOptions
        B::DepthwiseConv2d => 2,              // DepthwiseConv2DOptions
        B::AveragePool2d | B::MaxPool2d => 5, // Pool2DOptions
        B::FullyConnected => 8,               // FullyConnectedOptions
        B::Softmax => 9,                      // SoftmaxOptions
        B::Concatenation => 10,               // ConcatenationOptions
        B::Add => 11,                         // AddOptions
        B::ResizeBilinear => 15,              // ResizeBilinearOptions
        B::Reshape => 17,                     // ReshapeOptions
        B::Mul => 21,                         // MulOptions
        B::Gather => 23,                      // GatherOptions
        B::Mean => 27,                        // ReducerOptions
        B::Sub => 28,                         // SubOptions
        B::Squeeze => 30,                     // SqueezeOptions
        B::StridedSlice => 32,                // StridedSliceOptions
        B::Split => 35,                       // SplitOptions
        B::Pack => 59,                        // PackOptions
        B::Unpack => 64,                      // UnpackOptions
        B::ResizeNearestNeighbor => 74,       // ResizeNearestNeighborOptions
        B::LeakyRelu => 75,                   // LeakyReluOptions
        B::SplitV => 79,                      // SplitVOptions
        B::BatchMatMul => 101,                // BatchMatMulOptions
        // PAD (PadOptions, 22), PADV2 (43), TRANSPOSE (26), SLICE (48), DEQUANTIZE (38),
        // MAXIMUM/MINIMUM (39), QUANTIZE (89), HARD_SWISH (91) have field-less options;
        // LOGISTIC, TANH, RELU, RELU6 have none.
        _ => return None,
    })
}

fn activation(t: &Table<'_>, id: usize) -> Result<Activation> {
    Ok(match t.i8(id, 0)? {
        0 => Activation::None,
        1 => Activation::Relu,
        2 => Activation::ReluN1To1,
        3 => Activation::Relu6,
        4 => Activation::Tanh,
        5 => Activation::SignBit,
        other => {
            return Err(
                err("unknown fused activation function {}", t.pos()).with_values(&[other.into()])
            )
        }
    })
}

fn padding(t: &Table<'_>, id: usize) -> Result<Padding> {
    Ok(match t.i8(id, 0)? {
        0 => Padding::Same,
        1 => Padding::Valid,
        other => return Err(err("unknown padding {}", t.pos()).with_values(&[other.into()])),
    })
}

/// Decodes the options of `op` from the union type and table of an `Operator`.
pub(super) fn decode<'a>(
    p: &mut Parser<'a>,
    op: BuiltinOp,
    union_type: u8,
    table: Option<Table<'a>>,
    at: usize,
) -> Result<OpOptions> {
    let Some(expected) = options_type(op) else {
        return Ok(OpOptions::None);
    };
    if union_type != 0 && union_type != expected {
        // The fields would be read from the wrong table: refuse rather than guess.
        return Err(err(
            "builtin options have union type {}, this operator takes type {}",
            at,
        )
        .with_values(&[union_type.into(), expected.into()]));
    }
    // An absent table (or union NONE) reads as all defaults, like an empty table. The
    // flatbuffers convention: a table with no fields set is what a writer emits for defaults.
    let table = if union_type == expected { table } else { None };
    let Some(t) = table else {
        return decode_table(p, op, None);
    };
    p.charge_table(&t)?;
    decode_table(p, op, Some(t))
}

fn decode_table<'a>(p: &mut Parser<'a>, op: BuiltinOp, t: Option<Table<'a>>) -> Result<OpOptions> {
    use BuiltinOp as B;
    // `Opt` reads defaults when there is no table.
    let o = Opt(t);
    Ok(match op {
        // Conv2DOptions: padding 0, stride_w 1, stride_h 2, fused_activation_function 3,
        // dilation_w_factor 4 (= 1), dilation_h_factor 5 (= 1).
        B::Conv2d => OpOptions::Conv2d {
            padding: o.padding(0)?,
            stride_w: o.i32(1, 0)?,
            stride_h: o.i32(2, 0)?,
            activation: o.activation(3)?,
            dilation_w_factor: o.i32(4, 1)?,
            dilation_h_factor: o.i32(5, 1)?,
        },
        // DepthwiseConv2DOptions: padding 0, stride_w 1, stride_h 2, depth_multiplier 3,
        // fused_activation_function 4, dilation_w_factor 5 (= 1), dilation_h_factor 6 (= 1).
        B::DepthwiseConv2d => OpOptions::DepthwiseConv2d {
            padding: o.padding(0)?,
            stride_w: o.i32(1, 0)?,
            stride_h: o.i32(2, 0)?,
            depth_multiplier: o.i32(3, 0)?,
            activation: o.activation(4)?,
            dilation_w_factor: o.i32(5, 1)?,
            dilation_h_factor: o.i32(6, 1)?,
        },
        // Pool2DOptions: padding 0, stride_w 1, stride_h 2, filter_width 3, filter_height 4,
        // fused_activation_function 5.
        B::AveragePool2d | B::MaxPool2d => OpOptions::Pool2d {
            padding: o.padding(0)?,
            stride_w: o.i32(1, 0)?,
            stride_h: o.i32(2, 0)?,
            filter_width: o.i32(3, 0)?,
            filter_height: o.i32(4, 0)?,
            activation: o.activation(5)?,
        },
        // FullyConnectedOptions: fused_activation_function 0, weights_format 1 (DEFAULT = 0,
        // SHUFFLED4x16INT8 = 1), keep_num_dims 2, asymmetric_quantize_inputs 3.
        B::FullyConnected => {
            let format = o.i8(1, 0)?;
            if format != 0 {
                return Err(err(
                    "FULLY_CONNECTED weights_format {} (SHUFFLED4x16INT8) is not supported",
                    o.pos(),
                )
                .with_values(&[format.into()]));
            }
            OpOptions::FullyConnected {
                activation: o.activation(0)?,
                keep_num_dims: o.bool(2)?,
                asymmetric_quantize_inputs: o.bool(3)?,
            }
        }
        // SoftmaxOptions: beta 0 (float, default 0.0 as written in the schema).
        B::Softmax => OpOptions::Softmax {
            beta: o.f32(0, 0.0)?,
        },
        // ConcatenationOptions: axis 0, fused_activation_function 1.
        B::Concatenation => OpOptions::Concatenation {
            axis: o.i32(0, 0)?,
            activation: o.activation(1)?,
        },
        // AddOptions / SubOptions: fused_activation_function 0, pot_scale_int16 1 (= true).
        B::Add => OpOptions::Add {
            activation: o.activation(0)?,
            pot_scale_int16: o.bool_or(1, true)?,
        },
        B::Sub => OpOptions::Sub {
            activation: o.activation(0)?,
            pot_scale_int16: o.bool_or(1, true)?,
        },
        // MulOptions: fused_activation_function 0.
        B::Mul => OpOptions::Mul {
            activation: o.activation(0)?,
        },
        // ReducerOptions: keep_dims 0.
        B::Mean => OpOptions::Reducer {
            keep_dims: o.bool(0)?,
        },
        // ReshapeOptions: new_shape 0 ([int]).
        B::Reshape => OpOptions::Reshape {
            new_shape: match t {
                Some(t) => p.i32s(&t, 0)?,
                None => None,
            },
        },
        // SqueezeOptions: squeeze_dims 0 ([int]).
        B::Squeeze => OpOptions::Squeeze {
            squeeze_dims: match t {
                Some(t) => p.i32s(&t, 0)?.unwrap_or_default(),
                None => Vec::new(),
            },
        },
        // LeakyReluOptions: alpha 0.
        B::LeakyRelu => OpOptions::LeakyRelu {
            alpha: o.f32(0, 0.0)?,
        },
        // StridedSliceOptions: begin_mask 0, end_mask 1, ellipsis_mask 2, new_axis_mask 3,
        // shrink_axis_mask 4, offset 5.
        B::StridedSlice => OpOptions::StridedSlice {
            begin_mask: o.i32(0, 0)?,
            end_mask: o.i32(1, 0)?,
            ellipsis_mask: o.i32(2, 0)?,
            new_axis_mask: o.i32(3, 0)?,
            shrink_axis_mask: o.i32(4, 0)?,
            offset: o.bool(5)?,
        },
        // SplitOptions / SplitVOptions: num_splits 0.
        B::Split | B::SplitV => OpOptions::Split {
            num_splits: o.i32(0, 0)?,
        },
        // PackOptions: values_count 0, axis 1.
        B::Pack => OpOptions::Pack {
            values_count: o.i32(0, 0)?,
            axis: o.i32(1, 0)?,
        },
        // UnpackOptions: num 0, axis 1.
        B::Unpack => OpOptions::Unpack {
            num: o.i32(0, 0)?,
            axis: o.i32(1, 0)?,
        },
        // GatherOptions: axis 0, batch_dims 1.
        B::Gather => OpOptions::Gather {
            axis: o.i32(0, 0)?,
            batch_dims: o.i32(1, 0)?,
        },
        // BatchMatMulOptions: adj_x 0, adj_y 1, asymmetric_quantize_inputs 2.
        B::BatchMatMul => OpOptions::BatchMatMul {
            adj_x: o.bool(0)?,
            adj_y: o.bool(1)?,
            asymmetric_quantize_inputs: o.bool(2)?,
        },
        // ResizeBilinearOptions: new_height 0 and new_width 1 (deprecated, still occupying
        // their ids), align_corners 2, half_pixel_centers 3.
        B::ResizeBilinear => OpOptions::Resize {
            align_corners: o.bool(2)?,
            half_pixel_centers: o.bool(3)?,
        },
        // ResizeNearestNeighborOptions: align_corners 0, half_pixel_centers 1.
        B::ResizeNearestNeighbor => OpOptions::Resize {
            align_corners: o.bool(0)?,
            half_pixel_centers: o.bool(1)?,
        },
        _ => OpOptions::None,
    })
}

/// An options table that may be absent: absent reads every field's default.
struct Opt<'a>(Option<Table<'a>>);

impl Opt<'_> {
    fn pos(&self) -> usize {
        self.0.map_or(0, |t| t.pos())
    }
    fn i32(&self, id: usize, default: i32) -> Result<i32> {
        self.0.map_or(Ok(default), |t| t.i32(id, default))
    }
    fn i8(&self, id: usize, default: i8) -> Result<i8> {
        self.0.map_or(Ok(default), |t| t.i8(id, default))
    }
    fn f32(&self, id: usize, default: f32) -> Result<f32> {
        self.0.map_or(Ok(default), |t| t.f32(id, default))
    }
    fn bool(&self, id: usize) -> Result<bool> {
        self.bool_or(id, false)
    }
    fn bool_or(&self, id: usize, default: bool) -> Result<bool> {
        self.0.map_or(Ok(default), |t| t.bool(id, default))
    }
    fn activation(&self, id: usize) -> Result<Activation> {
        self.0.map_or(Ok(Activation::None), |t| activation(&t, id))
    }
    fn padding(&self, id: usize) -> Result<Padding> {
        self.0.map_or(Ok(Padding::Same), |t| padding(&t, id))
    }
}
