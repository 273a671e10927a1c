#!/usr/bin/env python3
"""Make the TFLite and ONNX test models under tests/models/ (run by hand, never by CI).

Usage (from anywhere; any Python 3.9-3.13 with `venv` starts it):

    python3 scripts/make-test-models.py                 # (re)build every model
    python3 scripts/make-test-models.py --only conv_*   # rebuild some (globs, comma-separated;
                                                        #   a base name matches all its dtypes)
    python3 scripts/make-test-models.py --list          # print the model table and exit
    options: --out DIR      (default: tests/models next to this script's scripts/ folder)
             --venv DIR     (default: $EDGEMM_MODELS_VENV, else /work/venv-models)

The script creates the venv if needed, installs the pinned packages of
scripts/requirements-models.txt into it (tensorflow-cpu==2.21.0 and its dependency closure;
again only when that file changes), and re-executes itself inside it. Nothing else is
downloaded: every weight, calibration sample and test input is made here from fixed seeds.

For every model it builds a small seeded graph (raw TF ops in a tf.function, or Keras layers),
converts it with the real TFLite converter (float32; int8 full-integer quantization with a
seeded representative dataset; a few float16-weight, float-I/O int8 and one dynamic-range
model), and writes, for model <name>:

    <name>.tflite         the converted model
    <name>.in<j>.bin      input j (interpreter order), raw little-endian, model dtype and shape
    <name>.out<j>.bin     output j of TFLite's reference kernels (OpResolverType.BUILTIN_REF)
    MANIFEST              one line per model:  <name> dtype=.. inputs=N outputs=M tol=a,b ops=X,Y
                          (`#` lines are comments; `#. <name> ...` lines describe each model's
                          operators and options as the converter emitted them)

`tol` (one per output) is 0 for integer outputs; for float outputs it is
max(1e-5 * max|ref|, 2 * spread) where spread is the largest absolute difference between the
reference output and the outputs of the optimized builtin kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES)
and of the default resolver with XNNPACK (AUTO) on the same input.

The script checks that each model holds the operators it was built to exercise (and the
options it asked for) and stops with an error when the converter emitted something else.
Rerunning it gives the same files as far as the converter is deterministic.

The ONNX fixtures (tests/models/onnx/, names onnx_*, selected by --only like the others) are
small seeded PyTorch modules exported with torch.onnx (the TorchScript exporter, weights inside
the file, BatchNormalization kept), stored the same way (<name>.onnx, .in<j>.bin, .out<j>.bin,
their own MANIFEST) with onnxruntime's outputs (graph optimizations off, 1 thread); `tol` is
max(1e-5 * max|ref|, 2 * spread) over onnxruntime with every graph optimization and PyTorch
eager.

The QDQ fixtures (tests/models/onnx/qdq_*, their own QDQ_MANIFEST) are some of those float ONNX
fixtures quantized by onnxruntime's quantizer (quant_pre_process, then quantize_static in QDQ
format calibrated on seeded inputs; per-tensor and per-channel int8 weights, uint8 and int8
activations), stored with onnxruntime's outputs (its int8 kernels) on the float fixture's input.
They are made after the float fixtures they start from (--only onnx_x,qdq_x_* works).
"""

import argparse
import fnmatch
import glob
import hashlib
import os
import re
import subprocess
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REQUIREMENTS = os.path.join(HERE, "requirements-models.txt")
DEFAULT_VENV = "/work/venv-models"
TF_VERSION = "2.21.0"


# --------------------------------------------------------------------------------------------
# venv bootstrap
# --------------------------------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--venv", default=os.environ.get("EDGEMM_MODELS_VENV", DEFAULT_VENV),
                   help="virtualenv to create/use (default: $EDGEMM_MODELS_VENV or %(default)s)")
    p.add_argument("--out", default=os.path.join(ROOT, "tests", "models"),
                   help="output folder (default: %(default)s)")
    p.add_argument("--only", default=None,
                   help="comma-separated model names or globs (full name or base name)")
    p.add_argument("--list", action="store_true", help="list the models and exit")
    p.add_argument("--no-venv", action="store_true",
                   help="run in the current interpreter (it must already have the pinned packages)")
    return p.parse_args()


def in_venv(venv):
    return os.path.realpath(sys.prefix) == os.path.realpath(venv)


def bootstrap(args):
    """Create the venv, install the pins, and re-exec this script inside it."""
    if args.no_venv or in_venv(args.venv):
        return
    if not (3, 9) <= sys.version_info[:2] <= (3, 13):
        sys.exit("tensorflow-cpu %s needs CPython 3.9-3.13 to make the venv; this is %s"
                 % (TF_VERSION, sys.version.split()[0]))
    py = os.path.join(args.venv, "bin", "python")
    if not os.path.exists(py):
        print("creating venv", args.venv, flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", args.venv])
    with open(REQUIREMENTS, "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(args.venv, ".edgemm-requirements.sha256")
    have = open(stamp).read().strip() if os.path.exists(stamp) else ""
    if have != want:
        print("installing", REQUIREMENTS, "into", args.venv, flush=True)
        subprocess.check_call([py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        subprocess.check_call([py, "-m", "pip", "install", "--quiet", "-r", REQUIREMENTS])
        with open(stamp, "w") as f:
            f.write(want + "\n")
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    os.execve(py, [py, os.path.abspath(__file__)] + sys.argv[1:], env)


# --------------------------------------------------------------------------------------------
# everything below runs inside the venv
# --------------------------------------------------------------------------------------------

tf = None
np = None
keras = None
schema = None


def import_tf():
    global tf, np, keras, schema
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import importlib
    import warnings
    warnings.filterwarnings("ignore")
    import numpy as _np
    import tensorflow as _tf
    _tf.get_logger().setLevel("ERROR")
    import absl.logging
    absl.logging.set_verbosity(absl.logging.ERROR)
    tf, np = _tf, _np
    keras = _tf.keras
    schema = importlib.import_module("tensorflow.lite.python.schema_py_generated")
    if tf.__version__ != TF_VERSION:
        print("WARNING: tensorflow %s, the fixtures were made with %s" % (tf.__version__, TF_VERSION))
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def seed_of(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


# ---- model description -----------------------------------------------------------------------

class Model:
    """One model family member.

    base      base name; the file name is <base>_<mode suffix>
    inputs    list of (shape, lo, hi): float range of each input (calibration and test data)
    build     build(rng) -> (callable taking len(inputs) float tensors, trackable or None)
    expect    operators that must be in the converted model
    checks    list of (OP_NAME, {option: value}) that at least one such operator must satisfy
              (options as named by the flatbuffer object API, e.g. fusedActivationFunction)
    modes     which conversions to make: f32, int8, int8fio, f16w, hybrid

    edit      None or edit(ModelT): a change made to the converted flatbuffer, for an operator
              option the converter never emits (stated in the model's note)
    flags     converter attributes to set, {name: value}
    """

    def __init__(self, base, inputs, build, expect, checks=(), modes=("f32", "int8"), note="",
                 edit=None, flags=None):
        self.base, self.inputs, self.build = base, inputs, build
        self.expect, self.checks, self.modes, self.note = expect, list(checks), modes, note
        self.edit, self.flags = edit, dict(flags or {})

    def name(self, mode):
        if mode == "hybrid":
            return self.base
        return "%s_%s" % (self.base, mode)


MODE_SUFFIX_DESC = {
    "f32": "float32 model",
    "int8": "full-integer int8 (int8 input and output)",
    "int8fio": "full-integer int8 inside, float32 input/output (QUANTIZE/DEQUANTIZE at the edges)",
    "f16w": "float32 model with float16 weights (DEQUANTIZE of the weights)",
    "hybrid": "dynamic-range (hybrid) quantized: int8 weights, float activations",
}


# ---- small helpers for building graphs ------------------------------------------------------

def wnorm(rng, shape, fan_in):
    return (rng.standard_normal(shape) * (1.5 / np.sqrt(fan_in))).astype(np.float32)


def bias(rng, n, scale=0.3):
    return (rng.standard_normal(n) * scale).astype(np.float32)


def act(x, a):
    if a == "none":
        return x
    if a == "relu":
        return tf.nn.relu(x)
    if a == "relu6":
        return tf.nn.relu6(x)
    if a == "relu1":
        return tf.minimum(tf.maximum(x, -1.0), 1.0)
    raise ValueError(a)


ACT_NAME = {"none": "NONE", "relu": "RELU", "relu6": "RELU6", "relu1": "RELU_N1_TO_1"}


# ---- conversion and running ------------------------------------------------------------------

def concrete(model, fn):
    specs = [tf.TensorSpec(shape, tf.float32, name="in%d" % i)
             for i, (shape, _, _) in enumerate(model.inputs)]
    return tf.function(fn, autograph=False).get_concrete_function(*specs)


def input_order(tfl_bytes, n):
    """Map interpreter input j -> function argument k (from the in<k> tensor names)."""
    it = tf.lite.Interpreter(model_content=tfl_bytes)
    order = []
    for d in it.get_input_details():
        m = re.findall(r"in(\d+)", d["name"])
        order.append(int(m[-1]) if m else len(order))
    if sorted(order) != list(range(n)):
        raise RuntimeError("cannot map inputs %s" % [d["name"] for d in it.get_input_details()])
    return order


def calib_samples(model, rng, order, count=48):
    """Seeded representative dataset, in interpreter input order; the first sample holds each
    input's exact lo and hi so that calibration sees the full range."""
    samples = []
    for s in range(count):
        sample = []
        for k in order:
            shape, lo, hi = model.inputs[k]
            x = rng.uniform(lo, hi, size=shape).astype(np.float32)
            if s == 0:
                x.reshape(-1)[0], x.reshape(-1)[-1] = lo, hi
            sample.append(x)
        samples.append(sample)
    return samples


def convert(cf, trackable, mode, calib, flags=None):
    if isinstance(trackable, keras.Model):
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):  # Keras prints the export signature
            conv = tf.lite.TFLiteConverter.from_keras_model(trackable)
            return _convert(conv, mode, calib, flags)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([cf], trackable)
    return _convert(conv, mode, calib, flags)


def _convert(conv, mode, calib, flags):
    for k, v in (flags or {}).items():
        setattr(conv, k, v)
    if mode in ("int8", "int8fio"):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: iter(calib)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if mode == "int8":
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    elif mode == "f16w":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif mode == "hybrid":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode != "f32":
        raise ValueError(mode)
    return conv.convert()


def run(tfl, inputs, resolver):
    it = tf.lite.Interpreter(model_content=tfl, num_threads=1,
                             experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [np.array(it.get_tensor(d["index"])) for d in it.get_output_details()]


def test_inputs(model, rng, details, order):
    """Seeded inputs in the model's own dtypes; int8 ones span -128..127 (both included)."""
    xs = []
    for d, k in zip(details, order):
        shape, lo, hi = model.inputs[k]
        dt = np.dtype(d["dtype"])
        if dt == np.int8:
            x = rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)
            x.reshape(-1)[0], x.reshape(-1)[-1] = -128, 127
        elif dt == np.float32:
            x = rng.uniform(lo, hi, size=shape).astype(np.float32)
            x.reshape(-1)[0], x.reshape(-1)[-1] = lo, hi
        else:
            raise RuntimeError("input dtype %s" % dt)
        if tuple(d["shape"]) != tuple(shape):
            raise RuntimeError("input shape %s != %s" % (d["shape"], shape))
        xs.append(x)
    return xs


def fmt_tol(x):
    if x == 0:
        return "0"
    s = "%.2e" % x
    while float(s) < x:
        x *= 1.001
        s = "%.2e" % x
    return s.replace("e-0", "e-").replace("e+0", "e+")


# ---- reading the converted flatbuffer ---------------------------------------------------------

def enum_names(cls):
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def describe(tfl):
    """Per-operator summary: (OP_NAME, options dict, text)."""
    op_names = enum_names(schema.BuiltinOperator)
    act_names = enum_names(schema.ActivationFunctionType)
    pad_names = enum_names(schema.Padding)
    type_names = enum_names(schema.TensorType)
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(tfl), 0))
    g = m.subgraphs[0]
    out = []
    for op in g.operators:
        oc = m.operatorCodes[op.opcodeIndex]
        code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        name = op_names.get(code, str(code))
        opts = {}
        if op.builtinOptions is not None:
            for k, v in sorted(vars(op.builtinOptions).items()):
                if k == "fusedActivationFunction":
                    v = act_names.get(v, v)
                elif k == "padding":
                    v = pad_names.get(v, v)
                elif isinstance(v, bytes):
                    v = v.decode()
                elif isinstance(v, (list, np.ndarray)):
                    v = "x".join(str(int(i)) for i in v)
                elif k in ("inDataType", "outDataType", "outputType", "idxOutType") and isinstance(v, int):
                    v = type_names.get(v, v)
                opts[k] = v
        def tdesc(i):
            if i < 0:
                return "-"
            t = g.tensors[i]
            s = "%s[%s]" % (type_names[t.type].lower(),
                            ",".join(str(int(d)) for d in (t.shape if t.shape is not None else [])))
            q = t.quantization
            if q is not None and q.scale is not None and len(q.scale) > 1:
                s += "/perchan%d" % len(q.scale)
            if m.buffers[t.buffer].data is not None and len(m.buffers[t.buffer].data):
                s += "c"  # constant
            elif q is not None and q.scale is not None and len(q.scale) == 1:
                s += "{%.6g,%d}" % (q.scale[0], q.zeroPoint[0])
            return s
        ins = [tdesc(i) for i in op.inputs]
        outs = [tdesc(i) for i in op.outputs]
        text = "%s v%d %s in=%s out=%s" % (
            name, oc.version, " ".join("%s=%s" % kv for kv in opts.items()),
            ";".join(ins), ";".join(outs))
        out.append((name, opts, ins, text))
    return out


# ---- editing the converted flatbuffer (only where the converter cannot emit an option) -------

def load_model(tfl):
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(tfl), 0))


def edit_model(tfl, fn):
    import flatbuffers
    m = load_model(tfl)
    fn(m)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def ops_named(m, name):
    code = getattr(schema.BuiltinOperator, name)
    return [op for op in m.subgraphs[0].operators
            if max(m.operatorCodes[op.opcodeIndex].builtinCode,
                   m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode) == code]


def edit_softmax_beta(beta):
    def f(m):
        for op in ops_named(m, "SOFTMAX"):
            op.builtinOptions.beta = beta
    return f


def edit_reshape_to_squeeze(dims):
    """Turn the (only) RESHAPE into SQUEEZE(squeeze_dims=dims) with one input."""
    def f(m):
        (op,) = ops_named(m, "RESHAPE")
        oc = m.operatorCodes[op.opcodeIndex]
        oc.builtinCode = oc.deprecatedBuiltinCode = schema.BuiltinOperator.SQUEEZE
        oc.version = 1  # the only version TFLite registers for SQUEEZE (int8 included)
        op.inputs = [int(op.inputs[0])]
        op.builtinOptionsType = schema.BuiltinOptions.SqueezeOptions
        op.builtinOptions = schema.SqueezeOptionsT()
        op.builtinOptions.squeezeDims = list(dims)
    return f


# ---- one model --------------------------------------------------------------------------------

def make(model, mode, out_dir):
    name = model.name(mode)
    keras.backend.clear_session()
    rng = np.random.default_rng(seed_of(model.base))          # weights: same for every mode
    keras.utils.set_random_seed(seed_of(model.base))
    fn, trackable = model.build(rng)
    cf = concrete(model, fn)
    f32 = convert(cf, trackable, "f32", None, model.flags)
    order = input_order(f32, len(model.inputs))
    calib = calib_samples(model, np.random.default_rng(seed_of(model.base) + 1), order)
    tfl = f32 if mode == "f32" else convert(cf, trackable, mode, calib, model.flags)
    if model.edit is not None:
        tfl = edit_model(tfl, model.edit)

    ops = describe(tfl)
    names = sorted(set(o[0] for o in ops))
    extra = {"int8fio": ["QUANTIZE", "DEQUANTIZE"], "f16w": ["DEQUANTIZE"]}.get(mode, [])
    missing = [o for o in list(model.expect) + extra if o not in names]
    problems = []
    if missing:
        problems.append("missing ops %s (got %s)" % (missing, names))
    for op_name, want in model.checks:
        if not any(o[0] == op_name and all(o[1].get(k) == v for k, v in want.items())
                   for o in ops):
            problems.append("no %s with %s" % (op_name, want))

    it = tf.lite.Interpreter(model_content=tfl)
    details = it.get_input_details()
    n_out = len(it.get_output_details())
    xs = test_inputs(model, np.random.default_rng(seed_of(name) + 2), details, order)
    R = tf.lite.experimental.OpResolverType
    ref = run(tfl, xs, R.BUILTIN_REF)
    others = {}
    for label, res in (("opt", R.BUILTIN_WITHOUT_DEFAULT_DELEGATES), ("xnnpack", R.AUTO)):
        try:
            others[label] = run(tfl, xs, res)
        except Exception as e:  # keep going; say so in the manifest
            others[label] = None
            problems.append("%s interpreter failed: %s" % (label, str(e).splitlines()[0]))
    tols, spreads = [], {label: [] for label in others}
    for j, r in enumerate(ref):
        sp = 0.0
        for label, o in others.items():
            d = (float(np.max(np.abs(o[j].astype(np.float64) - r.astype(np.float64))))
                 if o is not None and r.size else 0.0)
            spreads[label].append(d)
            sp = max(sp, d)
        if np.issubdtype(r.dtype, np.floating):
            mx = float(np.max(np.abs(r))) if r.size else 0.0
            tols.append(fmt_tol(max(1e-5 * mx, 2 * sp)))
        else:
            tols.append("0")

    for f in glob.glob(os.path.join(out_dir, glob.escape(name) + ".*")):
        if re.fullmatch(re.escape(name) + r"\.(tflite|(in|out)\d+\.bin)", os.path.basename(f)):
            os.remove(f)
    with open(os.path.join(out_dir, name + ".tflite"), "wb") as f:
        f.write(tfl)
    for j, x in enumerate(xs):
        with open(os.path.join(out_dir, "%s.in%d.bin" % (name, j)), "wb") as f:
            f.write(np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("<")).tobytes())
    for j, r in enumerate(ref):
        with open(os.path.join(out_dir, "%s.out%d.bin" % (name, j)), "wb") as f:
            f.write(np.ascontiguousarray(r, dtype=r.dtype.newbyteorder("<")).tobytes())

    dtype = np.dtype(details[0]["dtype"]).name
    line = "%s dtype=%s inputs=%d outputs=%d tol=%s ops=%s" % (
        name, dtype, len(xs), n_out, ",".join(tols), ",".join(names))
    comments = ["#. %s %s%s" % (name, MODE_SUFFIX_DESC[mode],
                                ("; " + model.note) if model.note else "")]
    comments.append("#. %s io: in=%s out=%s; max|ref-x| per output: %s" % (
        name, ";".join("%s%s" % (np.dtype(d["dtype"]).name, [int(i) for i in d["shape"]])
                 for d in details),
        ";".join("%s%s" % (r.dtype.name, [int(i) for i in r.shape]) for r in ref),
        " ".join("%s=%s" % (label, ",".join("%.3g" % v for v in vals))
                 for label, vals in spreads.items())))
    for o in ops:
        comments.append("#. %s   %s" % (name, o[3]))
    for p in problems:
        comments.append("#. %s   PROBLEM: %s" % (name, p))
    return line, comments, problems, names


# --------------------------------------------------------------------------------------------
# the model table
# --------------------------------------------------------------------------------------------


F2 = ("f32", "int8")        # the default pair
ALL4 = ("f32", "int8", "int8fio", "f16w")


def conv_family():
    def conv(base, shape, cout, k, stride=(1, 1), dil=(1, 1), padding="SAME", use_bias=True,
             a="none", note="", edit=None, flags=None, modes=F2):
        def build(rng):
            cin = shape[-1]
            w = wnorm(rng, (k[0], k[1], cin, cout), k[0] * k[1] * cin)
            b = bias(rng, cout) if use_bias else None

            def fn(x):
                y = tf.nn.conv2d(x, w, strides=[1, stride[0], stride[1], 1], padding=padding,
                                 dilations=[1, dil[0], dil[1], 1])
                if b is not None:
                    y = tf.nn.bias_add(y, b)
                return act(y, a)
            return fn, None
        chk = {"fusedActivationFunction": ACT_NAME[a], "padding": padding,
               "strideH": stride[0], "strideW": stride[1],
               "dilationHFactor": dil[0], "dilationWFactor": dil[1]}
        return Model(base, [(shape, -1.0, 2.0)], build, ["CONV_2D"], [("CONV_2D", chk)], modes, note,
                     edit, flags)

    return [
        conv("conv_k3s1_same_relu", (1, 9, 9, 3), 6, (3, 3), a="relu"),
        conv("conv_k3s2_valid", (1, 10, 11, 3), 5, (3, 3), stride=(2, 2), padding="VALID"),
        conv("conv_k3s2_same_relu6", (1, 9, 8, 4), 7, (3, 3), stride=(2, 2), a="relu6"),
        conv("conv_k3_dil2_same_relu1", (1, 11, 9, 3), 4, (3, 3), dil=(2, 2), a="relu1"),
        conv("conv_k3_dil2_valid", (1, 12, 10, 2), 5, (3, 3), dil=(2, 2), padding="VALID"),
        conv("conv_k1_nobias", (1, 7, 5, 8), 6, (1, 1), use_bias=False,
             note="graph without bias: the converter adds a zero bias (TFLite's CONV_2D needs one)"),
        conv("conv_k3_nobias_relu", (1, 8, 8, 3), 4, (3, 3), use_bias=False, a="relu",
             note="graph without bias: the converter adds a zero bias"),
        conv("conv_k3x5_s2x1_same", (1, 9, 11, 3), 6, (3, 5), stride=(2, 1), a="relu6",
             note="non-square kernel and strides"),
        conv("conv_k5s2_same_c1", (1, 13, 11, 1), 8, (5, 5), stride=(2, 2), a="relu",
             note="single input channel, odd sizes"),
        conv("conv_k3s2_pertensor", (1, 9, 9, 4), 6, (3, 3), stride=(2, 2), a="relu",
             flags={"_experimental_disable_per_channel": True}, modes=("int8",),
             note="per-tensor weight quantization (converter._experimental_disable_per_channel)"),
    ]


def dwconv_family():
    def dw(base, shape, mult, k, stride=(1, 1), dil=(1, 1), padding="SAME", use_bias=True,
           a="none", note="", edit=None):
        def build(rng):
            cin = shape[-1]
            w = wnorm(rng, (k[0], k[1], cin, mult), k[0] * k[1])
            b = bias(rng, cin * mult) if use_bias else None

            def fn(x):
                y = tf.raw_ops.DepthwiseConv2dNative(
                    input=x, filter=w, strides=[1, stride[0], stride[1], 1], padding=padding,
                    dilations=[1, dil[0], dil[1], 1])
                if b is not None:
                    y = tf.nn.bias_add(y, b)
                return act(y, a)
            return fn, None
        chk = {"fusedActivationFunction": ACT_NAME[a], "padding": padding,
               "strideH": stride[0], "strideW": stride[1], "depthMultiplier": mult,
               "dilationHFactor": dil[0], "dilationWFactor": dil[1]}
        return Model(base, [(shape, -1.0, 2.0)], build, ["DEPTHWISE_CONV_2D"],
                     [("DEPTHWISE_CONV_2D", chk)], F2, note, edit)

    return [
        dw("dw_m1_k3s1_same_relu6", (1, 9, 9, 4), 1, (3, 3), a="relu6"),
        dw("dw_m1_k3s2_valid_relu", (1, 10, 9, 5), 1, (3, 3), stride=(2, 2), padding="VALID",
           a="relu"),
        dw("dw_m2_k3s2_same", (1, 9, 11, 3), 2, (3, 3), stride=(2, 2)),
        dw("dw_m3_k3_dil2_same_relu1", (1, 11, 10, 2), 3, (3, 3), dil=(2, 2), a="relu1"),
        dw("dw_m1_k5_dil2_valid", (1, 12, 12, 4), 1, (5, 3), dil=(2, 2), padding="VALID",
           note="non-square kernel"),
        dw("dw_m4_k3s1_nobias_c1", (1, 8, 7, 1), 4, (3, 3), use_bias=False, a="relu",
           note="1 input channel, multiplier 4, no bias"),
    ]


def fc_family():
    def fc(base, shape, n, use_bias=True, a="none", form="matmul", keep=None, note="",
           flags=None, modes=F2):
        def build(rng):
            k = shape[-1]
            w = wnorm(rng, (k, n), k)
            b = bias(rng, n) if use_bias else None

            def fn(x):
                if form == "tensordot":
                    y = tf.tensordot(x, w, axes=[[len(shape) - 1], [0]])
                else:
                    y = tf.matmul(x, w)
                if b is not None:
                    y = y + b
                return act(y, a)
            return fn, None
        chk = {"fusedActivationFunction": ACT_NAME[a]}
        if keep is not None:
            chk["keepNumDims"] = keep
        return Model(base, [(shape, -1.0, 2.0)], build, ["FULLY_CONNECTED"],
                     [("FULLY_CONNECTED", chk)], modes, note, flags=flags)

    return [
        fc("fc_2d_relu", (2, 16), 8, a="relu", keep=False),
        fc("fc_2d_nobias", (1, 20), 6, use_bias=False, keep=False, note="no bias"),
        fc("fc_2d_relu6", (3, 12), 10, a="relu6"),
        fc("fc_2d_relu1", (1, 9), 7, a="relu1"),
        fc("fc_3d_keepdims", (1, 5, 12), 6, a="relu", keep=True,
           note="3D input via tf.matmul(3D, 2D)"),
        fc("fc_3d_tensordot", (2, 3, 8), 5, form="tensordot", keep=True,
           note="3D input via tf.tensordot (the converter also makes it keep_num_dims)"),
        fc("fc_2d_pertensor_relu", (2, 24), 9, a="relu", modes=("int8",),
           flags={"_experimental_disable_per_channel_quantization_for_dense_layers": True},
           note="per-tensor weight quantization (the converter's default for FC is per-channel)"),
    ]


def pool_family():
    def pool(base, kind, shape, k, s, padding, a="none", note=""):
        def build(rng):
            def fn(x):
                f = tf.nn.avg_pool2d if kind == "avg" else tf.nn.max_pool2d
                return act(f(x, ksize=[1, k[0], k[1], 1], strides=[1, s[0], s[1], 1],
                             padding=padding), a)
            return fn, None
        op = "AVERAGE_POOL_2D" if kind == "avg" else "MAX_POOL_2D"
        chk = {"padding": padding, "filterHeight": k[0], "filterWidth": k[1],
               "strideH": s[0], "strideW": s[1], "fusedActivationFunction": ACT_NAME[a]}
        return Model(base, [(shape, -1.0, 2.0)], build, [op], [(op, chk)], F2, note)

    return [
        pool("avgpool_k2s2_valid", "avg", (1, 8, 8, 3), (2, 2), (2, 2), "VALID"),
        pool("avgpool_k3s2_same", "avg", (1, 9, 11, 4), (3, 3), (2, 2), "SAME",
             note="SAME padding at odd sizes: border windows average fewer elements"),
        pool("avgpool_k3x2_s1_same_relu6", "avg", (1, 7, 6, 2), (3, 2), (1, 1), "SAME", a="relu6"),
        pool("avgpool_global", "avg", (1, 5, 7, 6), (5, 7), (1, 1), "VALID"),
        pool("maxpool_k2s2_valid", "max", (1, 8, 8, 3), (2, 2), (2, 2), "VALID"),
        pool("maxpool_k3s2_same", "max", (1, 9, 11, 4), (3, 3), (2, 2), "SAME"),
        pool("maxpool_k3x2_s1x2_valid_relu", "max", (1, 7, 9, 2), (3, 2), (1, 2), "VALID", a="relu"),
    ]


def binary_family():
    S = (1, 5, 6, 4)

    def bin_(base, op, shapes, const=None, a="none", ranges=None, note=""):
        """shapes: input shapes; const: None or (shape) of a constant second operand."""
        f = {"ADD": tf.add, "SUB": tf.subtract, "MUL": tf.multiply,
             "MAXIMUM": tf.maximum, "MINIMUM": tf.minimum}[op]
        ranges = ranges or [(-1.0, 2.0), (-1.5, 1.0)]

        def build(rng):
            c = None
            if const is not None:
                c = (rng.uniform(-1.0, 1.0, size=const).astype(np.float32) if const != ()
                     else np.float32(0.37))

            def fn(*xs):
                y = f(xs[0], xs[1]) if c is None else f(xs[0], c)
                return act(y, a)
            return fn, None
        ins = [(sh, *ranges[i]) for i, sh in enumerate(shapes)]
        chk = [(op, {"fusedActivationFunction": ACT_NAME[a]})] if op in ("ADD", "SUB", "MUL") else []
        return Model(base, ins, build, [op], chk, F2, note)

    return [
        bin_("add_same_relu", "ADD", [S, S], a="relu"),
        bin_("add_chan", "ADD", [S], const=(4,), note="per-channel constant vector"),
        bin_("add_scalar_relu6", "ADD", [S], const=(), a="relu6", note="scalar constant"),
        bin_("add_bcast4d_relu1", "ADD", [(1, 5, 1, 4), (1, 1, 6, 4)], a="relu1",
             note="4D broadcast of two inputs"),
        bin_("sub_same", "SUB", [S, S]),
        bin_("sub_chan_relu", "SUB", [S], const=(4,), a="relu"),
        bin_("sub_scalar_relu1", "SUB", [S], const=(), a="relu1"),
        bin_("sub_bcast4d_relu6", "SUB", [(1, 5, 6, 1), (1, 1, 6, 4)], a="relu6"),
        bin_("mul_same_relu6", "MUL", [S, S], a="relu6"),
        bin_("mul_chan", "MUL", [S], const=(4,)),
        bin_("mul_scalar_relu", "MUL", [S], const=(), a="relu"),
        bin_("mul_bcast4d_relu1", "MUL", [(2, 1, 6, 4), (1, 5, 1, 1)], a="relu1"),
        bin_("maximum_same", "MAXIMUM", [S, S]),
        bin_("maximum_bcast", "MAXIMUM", [S, (1, 1, 1, 4)]),
        bin_("minimum_same", "MINIMUM", [S, S]),
        bin_("minimum_scalar", "MINIMUM", [S], const=()),
    ]


def unary_family():
    def un(base, op, fn_, shape=(1, 4, 5, 6), lo=-4.0, hi=4.0, checks=(), note="", edit=None):
        def build(rng):
            return fn_, None
        return Model(base, [(shape, lo, hi)], build, [op], checks, F2, note, edit)

    def hswish(x):
        return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)

    return [
        un("logistic", "LOGISTIC", tf.math.sigmoid, lo=-6.0, hi=6.0),
        un("tanh", "TANH", tf.math.tanh, lo=-3.0, hi=3.0),
        un("relu", "RELU", tf.nn.relu, lo=-2.0, hi=3.0),
        un("relu6", "RELU6", tf.nn.relu6, lo=-2.0, hi=8.0),
        un("relu_n1_to_1", "RELU_N1_TO_1", lambda x: tf.minimum(tf.maximum(x, -1.0), 1.0),
           lo=-2.0, hi=2.0),
        un("leaky_relu", "LEAKY_RELU", lambda x: tf.nn.leaky_relu(x, alpha=0.2),
           lo=-3.0, hi=3.0, checks=[("LEAKY_RELU", {"alpha": np.float32(0.2)})]),
        un("hard_swish", "HARD_SWISH", hswish, lo=-5.0, hi=5.0,
           note="x*relu6(x+3)/6 fused by the converter"),
        un("softmax", "SOFTMAX", tf.nn.softmax, shape=(1, 10), lo=-4.0, hi=4.0,
           checks=[("SOFTMAX", {"beta": 1.0})]),
        un("softmax_beta", "SOFTMAX", tf.nn.softmax, shape=(2, 12), lo=-6.0, hi=6.0,
           checks=[("SOFTMAX", {"beta": 0.5})], edit=edit_softmax_beta(0.5),
           note="edited after conversion: SOFTMAX beta=0.5 (the converter always emits beta=1; "
                "softmax(0.5*x) stays MUL+SOFTMAX)"),
        un("softmax_beta2", "SOFTMAX", tf.nn.softmax, shape=(1, 2, 9), lo=-3.0, hi=3.0,
           checks=[("SOFTMAX", {"beta": 2.0})], edit=edit_softmax_beta(2.0),
           note="edited after conversion: SOFTMAX beta=2.0"),
        un("softmax_4d", "SOFTMAX", tf.nn.softmax, shape=(1, 3, 4, 7), lo=-3.0, hi=5.0),
    ]


def reduce_family():
    def mean(base, axes, keep, shape=(1, 6, 7, 5), note=""):
        def build(rng):
            return (lambda x: tf.reduce_mean(x, axis=axes, keepdims=keep)), None
        return Model(base, [(shape, -1.0, 2.0)], build, ["MEAN"],
                     [("MEAN", {"keepDims": keep})], F2, note)

    return [
        mean("mean_hw_keep", [1, 2], True),
        mean("mean_hw", [1, 2], False),
        mean("mean_c", [3], False),
        mean("mean_w_keep", [2], True, shape=(1, 4, 9, 3)),
    ]


def shape_family():
    def m(base, shapes, fn_, expect, checks=(), ranges=None, note="", edit=None):
        ranges = ranges or [(-1.0, 2.0)] * len(shapes)

        def build(rng):
            return fn_, None
        return Model(base, [(s, *r) for s, r in zip(shapes, ranges)], build, expect, checks,
                     F2, note, edit)

    x4 = (1, 4, 6, 5)
    return [
        m("reshape", [x4], lambda x: tf.reshape(x, (2, 60)) * 1.0, ["RESHAPE"]),
        m("reshape_4d", [(1, 6, 4, 2)], lambda x: tf.reshape(x, (1, 3, 8, 2)), ["RESHAPE"]),
        m("squeeze", [(1, 1, 5, 1, 3)], lambda x: tf.squeeze(x, axis=[1, 3]), ["SQUEEZE"],
          [("SQUEEZE", {"squeezeDims": "1x3"})], edit=edit_reshape_to_squeeze([1, 3]),
          note="edited after conversion: the converter turns every static tf.squeeze into RESHAPE;"
               " the RESHAPE was rewritten as SQUEEZE(squeeze_dims=[1,3])"),
        m("concat_last", [(1, 4, 4, 2), (1, 4, 4, 3), (1, 4, 4, 1)],
          lambda a, b, c: tf.concat([a, b, c], axis=-1), ["CONCATENATION"],
          [("CONCATENATION", {"axis": -1})], ranges=[(-1.0, 1.0), (-4.0, 4.0), (0.0, 2.0)],
          note="inputs at different ranges (different int8 scales)"),
        m("concat_axis1_relu", [(1, 2, 5, 3), (1, 3, 5, 3)],
          lambda a, b: tf.nn.relu(tf.concat([a, b], axis=1)), ["CONCATENATION"],
          [("CONCATENATION", {"axis": 1})], ranges=[(-1.0, 2.0), (-3.0, 0.5)],
          note="inputs at different ranges; relu after the concat"),
        m("concat_mixed_scales", [(1, 3, 4, 2), (1, 3, 4, 3), (1, 3, 4, 2)],
          lambda a, b, c: tf.concat([tf.math.tanh(a), b, tf.math.sigmoid(c)], axis=-1),
          ["CONCATENATION", "TANH", "LOGISTIC"], [("CONCATENATION", {"axis": -1})],
          ranges=[(-3.0, 3.0), (-5.0, 2.0), (-4.0, 4.0)],
          note="int8: TANH/LOGISTIC outputs have fixed scales unlike the middle input"),
        m("concat_2d_axis0", [(2, 6), (3, 6)], lambda a, b: tf.concat([a, b], axis=0),
          ["CONCATENATION"], [("CONCATENATION", {"axis": 0})]),
        m("pad", [(1, 5, 4, 3)], lambda x: tf.pad(x, [[0, 0], [1, 2], [2, 1], [0, 0]]), ["PAD"]),
        m("pad_chan", [(1, 3, 4, 3)], lambda x: tf.pad(x, [[0, 0], [0, 0], [1, 0], [1, 2]]),
          ["PAD"]),
        m("padv2", [(1, 5, 4, 3)],
          lambda x: tf.pad(x, [[0, 0], [2, 1], [0, 1], [0, 0]], constant_values=0.75),
          ["PADV2"], note="constant value 0.75"),
        m("padv2_neg", [(2, 3, 5)],
          lambda x: tf.pad(x, [[0, 0], [1, 1], [2, 0]], constant_values=-0.5), ["PADV2"],
          note="constant value -0.5, 3D"),
        m("transpose_0312", [(1, 3, 4, 5)], lambda x: tf.transpose(x, [0, 3, 1, 2]),
          ["TRANSPOSE"]),
        m("transpose_3d", [(2, 3, 7)], lambda x: tf.transpose(x, [2, 0, 1]), ["TRANSPOSE"]),
        m("strided_slice_masks", [(1, 7, 9, 6)], lambda x: x[:, 1:, ::2, :4:3],
          ["STRIDED_SLICE"], note="begin/end masks, strides 2 and 3"),
        m("strided_slice_shrink", [(2, 6, 8, 5)], lambda x: x[1, :, 2, 1:5:2],
          ["STRIDED_SLICE"], note="shrink axes 0 and 2"),
        m("strided_slice_neg", [(1, 6, 8, 3)], lambda x: x[:, -5:-1, ::-2, :],
          ["STRIDED_SLICE"], note="negative begin/end and negative stride"),
        m("slice", [(1, 6, 7, 5)], lambda x: tf.slice(x, [0, 1, 2, 0], [1, 3, -1, 2]), ["SLICE"]),
        m("split", [(1, 4, 5, 6)], lambda x: tuple(tf.split(x, 3, axis=-1)), ["SPLIT"]),
        m("split_axis1", [(1, 6, 5, 2)], lambda x: tuple(tf.split(x, 2, axis=1)), ["SPLIT"]),
        m("split_v", [(1, 4, 5, 6)], lambda x: tuple(tf.split(x, [1, 2, 3], axis=3)),
          ["SPLIT_V"]),
        m("split_v_axis2", [(1, 3, 7, 2)], lambda x: tuple(tf.split(x, [4, -1], axis=2)),
          ["SPLIT_V"]),
        m("pack", [(2, 5), (2, 5), (2, 5)], lambda a, b, c: tf.stack([a, b, c], axis=1),
          ["PACK"], [("PACK", {"axis": 1, "valuesCount": 3})]),
        m("pack_axis0", [(3, 4), (3, 4)], lambda a, b: tf.stack([a, b], axis=0), ["PACK"]),
        m("unpack", [(2, 3, 4)], lambda x: tuple(tf.unstack(x, axis=1)), ["UNPACK"],
          [("UNPACK", {"axis": 1, "num": 3})]),
        m("unpack_axis0", [(3, 5)], lambda x: tuple(tf.unstack(x, axis=0)), ["UNPACK"]),
        m("gather_axis1", [(1, 6, 4)], lambda x: tf.gather(x, [2, 0, 5, 5, 1], axis=1),
          ["GATHER"]),
        m("gather_axis0", [(5, 3)], lambda x: tf.gather(x, [[4, 0], [1, 1]], axis=0),
          ["GATHER"], note="2D indices"),
        m("gather_last", [(2, 3, 8)], lambda x: tf.gather(x, [7, 0, 3], axis=-1), ["GATHER"]),
    ]


def matmul_family():
    def bmm(base, sa, sb, adj_x=False, adj_y=False, note=""):
        def build(rng):
            return (lambda a, b: tf.matmul(a, b, transpose_a=adj_x, transpose_b=adj_y)), None
        return Model(base, [(sa, -1.0, 2.0), (sb, -1.5, 1.0)], build, ["BATCH_MATMUL"],
                     [("BATCH_MATMUL", {"adjX": adj_x, "adjY": adj_y})], F2, note)

    return [
        bmm("batch_matmul", (2, 3, 4), (2, 4, 5)),
        bmm("batch_matmul_adj_y", (1, 2, 5, 6), (1, 2, 3, 6), adj_y=True),
        bmm("batch_matmul_bcast", (2, 3, 4), (1, 4, 6), note="batch broadcast"),
    ]


def resize_family():
    def rs(base, kind, shape, size, align=False, half=False, note=""):
        def build(rng):
            def fn(x):
                if kind == "bilinear":
                    return tf.raw_ops.ResizeBilinear(images=x, size=size, align_corners=align,
                                                     half_pixel_centers=half)
                return tf.raw_ops.ResizeNearestNeighbor(images=x, size=size, align_corners=align,
                                                        half_pixel_centers=half)
            return fn, None
        op = "RESIZE_BILINEAR" if kind == "bilinear" else "RESIZE_NEAREST_NEIGHBOR"
        return Model(base, [(shape, -1.0, 2.0)], build, [op],
                     [(op, {"alignCorners": align, "halfPixelCenters": half})], F2, note)

    return [
        rs("resize_nearest", "nearest", (1, 4, 5, 3), [8, 10]),
        rs("resize_nearest_align", "nearest", (1, 5, 5, 2), [9, 7], align=True),
        rs("resize_nearest_half", "nearest", (1, 5, 4, 3), [7, 11], half=True),
        rs("resize_nearest_down", "nearest", (1, 9, 9, 2), [4, 5], half=True),
        rs("resize_bilinear", "bilinear", (1, 4, 5, 3), [8, 10]),
        rs("resize_bilinear_align", "bilinear", (1, 5, 5, 2), [9, 7], align=True),
        rs("resize_bilinear_half", "bilinear", (1, 5, 4, 3), [7, 11], half=True),
        rs("resize_bilinear_down", "bilinear", (1, 9, 9, 2), [4, 5], half=True),
    ]


def edge_family():
    """QUANTIZE/DEQUANTIZE at the edges (int8 with float I/O) and small float16-weight model."""
    def build(rng):
        c = rng.uniform(-1, 1, size=(6,)).astype(np.float32)
        return (lambda x: tf.nn.relu(x + c)), None
    return [Model("quant_add", [((1, 3, 4, 6), -1.0, 2.0)], build, ["ADD"], (),
                  ("int8fio",), "float in -> QUANTIZE -> ADD -> DEQUANTIZE -> float out")]


def cnn_family():
    """Small CNN block: conv -> dw conv -> 1x1 conv -> max pool -> reshape -> fc -> softmax."""
    def build(rng):
        w1 = wnorm(rng, (3, 3, 3, 8), 27); b1 = bias(rng, 8)
        w2 = wnorm(rng, (3, 3, 8, 1), 9); b2 = bias(rng, 8)
        w3 = wnorm(rng, (1, 1, 8, 12), 8); b3 = bias(rng, 12)
        w4 = wnorm(rng, (3 * 3 * 12, 10), 108); b4 = bias(rng, 10)

        def fn(x):
            y = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w1, [1, 2, 2, 1], "SAME"), b1))
            y = tf.nn.relu6(tf.nn.bias_add(tf.nn.depthwise_conv2d(y, w2, [1, 1, 1, 1], "SAME"), b2))
            y = tf.nn.bias_add(tf.nn.conv2d(y, w3, [1, 1, 1, 1], "VALID"), b3)
            y = tf.nn.max_pool2d(y, 2, 2, "VALID")
            y = tf.reshape(y, (1, -1))
            return tf.nn.softmax(tf.matmul(y, w4) + b4)
        return fn, None
    return [Model("cnn_block", [((1, 12, 12, 3), -1.0, 1.0)], build,
                  ["CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED",
                   "SOFTMAX"], (), ALL4)]


def dscnn_family():
    """DS-CNN-like keyword-spotting net in Keras: 49x10x1 -> conv 10x4/2 -> 3 depthwise-separable
    blocks (BN folded) -> global average pool -> FC -> softmax."""
    def build(rng):
        L = keras.layers
        inp = keras.Input((49, 10, 1), batch_size=1)
        y = L.Conv2D(16, (10, 4), strides=(2, 2), padding="same", use_bias=False)(inp)
        y = L.BatchNormalization()(y)
        y = L.ReLU()(y)
        for i in range(3):
            y = L.DepthwiseConv2D((3, 3), padding="same", use_bias=False)(y)
            y = L.BatchNormalization()(y)
            y = L.ReLU()(y)
            y = L.Conv2D(16, (1, 1), use_bias=False)(y)
            y = L.BatchNormalization()(y)
            y = L.ReLU()(y)
        y = L.AveragePooling2D(pool_size=(25, 5))(y)
        y = L.Flatten()(y)
        y = L.Dense(12)(y)
        y = L.Softmax()(y)
        model = keras.Model(inp, y)
        # seeded non-trivial batch-norm statistics
        for layer in model.layers:
            if isinstance(layer, L.BatchNormalization):
                n = layer.gamma.shape[0]
                layer.set_weights([rng.uniform(0.5, 1.5, n).astype(np.float32),
                                   rng.uniform(-0.3, 0.3, n).astype(np.float32),
                                   rng.uniform(-0.2, 0.2, n).astype(np.float32),
                                   rng.uniform(0.5, 2.0, n).astype(np.float32)])
        return (lambda x: model(x, training=False)), model
    return [Model("dscnn", [((1, 49, 10, 1), -2.0, 2.0)], build,
                  ["CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED",
                   "SOFTMAX"], (), F2 + ("int8fio",), "Keras layers")]


def hybrid_family():
    def build(rng):
        w1 = wnorm(rng, (40, 32), 40); b1 = bias(rng, 32)
        w2 = wnorm(rng, (32, 8), 32); b2 = bias(rng, 8)
        return (lambda x: tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2) + b2), None
    return [Model("hybrid_fc", [((2, 40), -1.0, 2.0)], build, ["FULLY_CONNECTED"], (),
                  ("hybrid",), "dynamic-range quantization: the runtime must reject it "
                  "(weights of >= 1024 elements get int8; smaller ones stay float)")]


def unsupported_family():
    """Operators the runtime does not have (EXP, SQRT): loading must list them, not run."""
    def build(rng):
        c = rng.uniform(0.5, 1.0, size=(6,)).astype(np.float32)
        return (lambda x: tf.sqrt(tf.exp(x) + c)), None
    return [Model("unsupported_ops", [((1, 4, 6), -1.0, 1.0)], build, ["EXP", "SQRT", "ADD"],
                  (), ("f32",), "operators edgemm cannot run: the tests expect an error "
                  "naming them")]


def catalog():
    fams = [conv_family, dwconv_family, fc_family, pool_family, binary_family, unary_family,
            reduce_family, shape_family, matmul_family, resize_family, edge_family, cnn_family,
            dscnn_family, hybrid_family, unsupported_family]
    out = []
    for f in fams:
        for m in f():
            for mode in m.modes:
                out.append((m, mode))
    names = [m.name(mode) for m, mode in out]
    assert len(names) == len(set(names)), "duplicate model names"
    for n in names:
        assert re.fullmatch(r"[a-z0-9_]+", n), n
    return out



# --------------------------------------------------------------------------------------------
# ONNX models (tests/models/onnx/): PyTorch modules exported with torch.onnx (the TorchScript
# exporter, weights inside the file), reference outputs from onnxruntime
# --------------------------------------------------------------------------------------------

torch = None
ort = None


def import_torch():
    global torch, ort
    import torch as _torch
    import onnxruntime as _ort
    torch, ort = _torch, _ort
    torch.set_num_threads(1)


class OnnxModel:
    """One ONNX fixture.

    base      the file name is onnx_<base>
    inputs    list of (shape, lo, hi) of each input (NCHW as PyTorch declares them)
    build     build() -> torch.nn.Module (weights from torch's seeded initializers; BatchNorm
              statistics set from the same seed)
    expect    ONNX op types that must be in the exported graph
    opset     the opset to export with
    dynamic   export input 0's dimension 0 as symbolic ("batch"; the importer fixes it to 1)
    """

    def __init__(self, base, inputs, build, expect, opset=13, dynamic=False, note=""):
        self.base, self.inputs, self.build, self.expect = base, inputs, build, expect
        self.opset, self.dynamic, self.note = opset, dynamic, note

    def name(self):
        return "onnx_" + self.base


def bn_stats(m, g):
    """Seeded running statistics and affine parameters for every BatchNorm of `m`."""
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d) or isinstance(mod, torch.nn.BatchNorm1d):
            n = mod.num_features
            mod.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
            mod.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            mod.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            mod.bias.data.copy_(torch.rand(n, generator=g) - 0.5)


def onnx_catalog():
    nn = torch.nn
    F = torch.nn.functional

    def seq(layers):
        return lambda: nn.Sequential(*layers())

    class Lambda(nn.Module):
        def __init__(self, fn, **mods):
            super().__init__()
            self.fn = fn
            for k, v in mods.items():
                setattr(self, k, v)

        def forward(self, *xs):
            return self.fn(self, *xs)

    out = [
        OnnxModel("conv_bn_relu", [((1, 3, 12, 12), -1, 1)],
                  seq(lambda: [nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()]),
                  ["Conv", "BatchNormalization", "Relu"], opset=11,
                  note="BatchNormalization and Relu fold into the conv"),
        OnnxModel("conv_stride_dil_relu6", [((1, 4, 11, 11), -1, 1)],
                  seq(lambda: [nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), nn.ReLU6(),
                               nn.Conv2d(6, 5, 3, dilation=2, padding=2), nn.Hardtanh(-1, 1)]),
                  ["Conv", "Clip"], opset=13,
                  note="pads that are not TFLite's SAME (an explicit PAD), dilation, Clip(0,6), Clip(-1,1)"),
        OnnxModel("conv_same_upper", [((1, 3, 10, 10), -1, 1)],
                  seq(lambda: [nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0)),
                               nn.Conv2d(4, 4, 1), nn.Tanh()]),
                  ["Conv", "Tanh"], opset=17),
        OnnxModel("dwconv_hardswish", [((1, 6, 9, 9), -2, 2)],
                  seq(lambda: [nn.Conv2d(6, 12, 3, padding=1, groups=6), nn.BatchNorm2d(12),
                               nn.Hardswish(), nn.Conv2d(12, 12, 3, stride=2, groups=12)]),
                  ["Conv", "BatchNormalization", "HardSwish"], opset=14,
                  note="depthwise (group = channels) with multiplier 2, BN folded into it"),
        OnnxModel("pools", [((1, 5, 12, 12), -1, 1)],
                  lambda: Lambda(lambda s, x: torch.cat([
                      F.max_pool2d(x, 3, 2, 1),
                      F.avg_pool2d(x, 2, 2),
                      F.avg_pool2d(F.avg_pool2d(x, 3, 1, 1, count_include_pad=True), 2, 2),
                      F.avg_pool2d(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False), 2, 2),
                  ], 1)),
                  ["MaxPool", "AveragePool", "Concat"], opset=13,
                  note="max pool with explicit pads, count_include_pad both ways, concat on channels"),
        OnnxModel("maxpool_ceil", [((1, 3, 11, 11), -1, 1)],
                  seq(lambda: [nn.Conv2d(3, 4, 1), nn.MaxPool2d(3, 2, ceil_mode=True),
                               nn.MaxPool2d(2, 2, 1, ceil_mode=True)]),
                  ["MaxPool"], opset=13,
                  note="ceil_mode: the last window padded with -inf"),
        OnnxModel("classifier", [((1, 3, 8, 8), -1, 1)],
                  lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                        nn.Flatten(), nn.Linear(8, 10), nn.Softmax(-1)),
                  ["Conv", "GlobalAveragePool", "Flatten", "Gemm", "Softmax"], opset=13),
        OnnxModel("mlp", [((2, 16), -2, 2)],
                  lambda: nn.Sequential(nn.Linear(16, 12), nn.LeakyReLU(0.1), nn.Linear(12, 12),
                                        nn.Sigmoid(), nn.Linear(12, 8, bias=False), nn.Tanh(),
                                        nn.BatchNorm1d(8), nn.Hardsigmoid(), nn.Linear(8, 4)),
                  ["Gemm", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid"], opset=13,
                  note="a batch of 2; BatchNorm1d after Tanh (MUL+ADD), HardSigmoid"),
        OnnxModel("matmul_attention", [((1, 6, 8), -1, 1)],
                  lambda: Lambda(lambda s, x: torch.softmax(
                      s.q(x) @ s.k(x).transpose(1, 2) / 4.0, dim=-1) @ x,
                      q=nn.Linear(8, 8), k=nn.Linear(8, 8, bias=False)),
                  ["MatMul", "Transpose", "Div", "Softmax"], opset=13,
                  note="MatMul by constants (FULLY_CONNECTED) and of two activations (BATCH_MATMUL)"),
        OnnxModel("elementwise", [((1, 4, 5, 6), -2, 2), ((1, 4, 5, 6), -2, 2)],
                  lambda: Lambda(lambda s, a, b: torch.minimum(
                      torch.maximum(a * b + a - b / 3.0, s.c(a) * s.w), (a + 1.0) - s.w) + s.v,
                      c=nn.Conv2d(4, 4, 1), w=nn.Parameter(torch.rand(4, 1, 1)),
                      v=nn.Parameter(torch.rand(6))),
                  ["Mul", "Add", "Sub", "Div", "Max", "Min"], opset=13,
                  note="two NCHW inputs; per-channel and last-axis broadcast constants"),
        OnnxModel("shapes", [((1, 4, 6, 6), -1, 1)],
                  lambda: Lambda(lambda s, x: torch.cat([
                      s.c(F.pad(x, (1, 0, 2, 1), value=0.5)).mean((2, 3)),
                      x.permute(0, 2, 3, 1).reshape(x.size(0), -1, 4).mean(1),
                      x.unsqueeze(1).squeeze(1).flatten(1) * 0.5 + x.view(x.size(0), -1),
                  ], 1), c=nn.Conv2d(4, 4, 3)),
                  ["Pad", "ReduceMean", "Transpose", "Reshape", "Concat"], opset=11, dynamic=True,
                  note="symbolic batch: Shape/Gather/Unsqueeze/Concat chains folded; Pad with a value, ReduceMean"),
        OnnxModel("mobile_block", [((1, 8, 10, 10), -1, 1)],
                  lambda: Lambda(lambda s, x: s.head(s.pw(s.dw(s.stem(x))) + s.stem(x)),
                      stem=nn.Sequential(nn.Conv2d(8, 16, 1), nn.BatchNorm2d(16), nn.ReLU6()),
                      dw=nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU6()),
                      pw=nn.Sequential(nn.Conv2d(16, 16, 1), nn.BatchNorm2d(16)),
                      head=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1),
                                         nn.Linear(16, 5))),
                  ["Conv", "Add", "GlobalAveragePool", "Gemm"], opset=17,
                  note="an inverted-residual block: conv-BN-relu6, depthwise, residual add, head"),
        OnnxModel("reduce_opset18", [((1, 3, 7, 5), -1, 1)],
                  lambda: Lambda(lambda s, x: torch.cat([x.mean(1, keepdim=True), s.c(x)], 1).mean(3),
                                 c=nn.Conv2d(3, 2, 1)),
                  ["ReduceMean", "Concat"], opset=18,
                  note="ReduceMean with axes as an input (opset 18), mixing NCHW and NHWC inputs of a Concat"),
    ]
    names = [m.name() for m in out]
    assert len(names) == len(set(names))
    return out


def onnx_make(model, out_dir):
    import io
    import onnx
    name = model.name()
    torch.manual_seed(seed_of(name))
    g = torch.Generator().manual_seed(seed_of(name) + 1)
    m = model.build().eval()
    with torch.no_grad():
        bn_stats(m, g)
    rng = np.random.default_rng(seed_of(name) + 2)
    xs = []
    for shape, lo, hi in model.inputs:
        x = rng.uniform(lo, hi, size=shape).astype(np.float32)
        x.reshape(-1)[0], x.reshape(-1)[-1] = lo, hi
        xs.append(x)
    names_in = ["in%d" % j for j in range(len(xs))]
    buf = io.BytesIO()
    with torch.no_grad():
        # PRESERVE (the module is in eval mode): keeps BatchNormalization nodes, which the
        # exporter's eval peephole would fold into the convs before edgemm sees them.
        torch.onnx.export(m, tuple(torch.from_numpy(x) for x in xs), buf, dynamo=False,
                          training=torch.onnx.TrainingMode.PRESERVE,
                          opset_version=model.opset, input_names=names_in, output_names=["out0"],
                          dynamic_axes={"in0": {0: "batch"}} if model.dynamic else None)
        eager = [m(*[torch.from_numpy(x) for x in xs]).numpy()]
    data = buf.getvalue()
    proto = onnx.load_from_string(data)
    onnx.checker.check_model(proto)
    ops = sorted(set(n.op_type for n in proto.graph.node))
    problems = ["missing ops %s (got %s)" % ([o for o in model.expect if o not in ops], ops)] \
        if any(o not in ops for o in model.expect) else []

    def session(level):
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])

    feed = dict(zip(names_in, xs))
    ref = session(ort.GraphOptimizationLevel.ORT_DISABLE_ALL).run(None, feed)
    others = {"ort_opt": session(ort.GraphOptimizationLevel.ORT_ENABLE_ALL).run(None, feed),
              "torch": eager}
    tols, spreads = [], {k: [] for k in others}
    for j, r in enumerate(ref):
        sp = 0.0
        for label, o in others.items():
            d = float(np.max(np.abs(o[j].astype(np.float64) - r.astype(np.float64))))
            spreads[label].append(d)
            sp = max(sp, d)
        tols.append(fmt_tol(max(1e-5 * float(np.max(np.abs(r))), 2 * sp)))

    for f in glob.glob(os.path.join(out_dir, glob.escape(name) + ".*")):
        os.remove(f)
    with open(os.path.join(out_dir, name + ".onnx"), "wb") as f:
        f.write(data)
    for j, x in enumerate(xs):
        with open(os.path.join(out_dir, "%s.in%d.bin" % (name, j)), "wb") as f:
            f.write(np.ascontiguousarray(x, dtype="<f4").tobytes())
    for j, r in enumerate(ref):
        with open(os.path.join(out_dir, "%s.out%d.bin" % (name, j)), "wb") as f:
            f.write(np.ascontiguousarray(r, dtype="<f4").tobytes())
    line = "%s dtype=float32 inputs=%d outputs=%d tol=%s ops=%s" % (
        name, len(xs), len(ref), ",".join(tols), ",".join(ops))
    comments = ["#. %s opset %d%s%s" % (name, model.opset, ", symbolic batch" if model.dynamic else "",
                                        ("; " + model.note) if model.note else ""),
                "#. %s io: in=%s out=%s; max|ref-x| per output: %s" % (
                    name, ";".join("float32%s" % list(x.shape) for x in xs),
                    ";".join("float32%s" % list(r.shape) for r in ref),
                    " ".join("%s=%s" % (k, ",".join("%.3g" % v for v in vals))
                             for k, vals in spreads.items()))]
    return line, comments, problems, ops


def onnx_header(n):
    import platform
    import onnx
    return [
        "# edgemm ONNX test models, made by scripts/make-test-models.py (do not edit by hand).",
        "# torch %s (torch.onnx TorchScript exporter), onnx %s, onnxruntime %s, numpy %s, Python %s."
        % (torch.__version__, onnx.__version__, ort.__version__, np.__version__,
           platform.python_version()),
        "# One line per model:  <name> dtype=float32 inputs=<N> outputs=<M> tol=<t0,..> ops=<ONNX op types>",
        "#   files: <name>.onnx, <name>.in<j>.bin, <name>.out<j>.bin: raw little-endian float32 in the",
        "#   model's declared shapes (NCHW); outputs are onnxruntime's with graph optimizations off",
        "#   (ORT_DISABLE_ALL, 1 thread) on those inputs.",
        "#   tol, one per output: max(1e-5*max|ref|, 2*spread), spread = max|ref - x| over",
        "#   x = onnxruntime with every graph optimization (ort_opt: BN folded, ops fused) and",
        "#   PyTorch eager (torch); both are listed per model in its '#. <name> io:' line.",
        "# %d models." % n,
    ]


def onnx_main(args):
    """Makes the ONNX fixtures selected by --only (all on a full run); returns failures."""
    table = onnx_catalog()
    todo = [m for m in table if not args.only or any(
        fnmatch.fnmatchcase(m.name(), p.strip()) for p in args.only.split(",") if p.strip())]
    if not todo:
        return []
    out_dir = os.path.join(args.out, "onnx")
    os.makedirs(out_dir, exist_ok=True)
    mpath = os.path.join(out_dir, "MANIFEST")
    blocks = read_manifest(mpath) if args.only else {}
    failures = []
    for i, m in enumerate(todo):
        try:
            line, comments, problems, ops = onnx_make(m, out_dir)
        except Exception as e:
            failures.append("%s: %s: %s" % (m.name(), type(e).__name__, str(e).splitlines()[:1]))
            print("[%d/%d] %-34s FAILED %s" % (i + 1, len(todo), m.name(), failures[-1]), flush=True)
            continue
        blocks[m.name()] = (line, comments)
        print("[%d/%d] %-34s %s%s" % (i + 1, len(todo), m.name(), ",".join(ops),
                                      "  PROBLEMS: " + "; ".join(problems) if problems else ""),
              flush=True)
        failures += ["%s: %s" % (m.name(), p) for p in problems]
    order = [m.name() for m in table]
    names_in = [n for n in order if n in blocks]
    with open(mpath, "w") as f:
        f.write("\n".join(onnx_header(len(names_in))) + "\n")
        for n in names_in:
            line_, com = blocks[n]
            f.write("\n".join(com + [line_]) + "\n")
    return failures

# --------------------------------------------------------------------------------------------
# QDQ models (tests/models/onnx/qdq_*): onnxruntime's quantizer (quantize_static, QDQ format)
# applied to some of the float ONNX fixtures above, calibrated on seeded inputs
# --------------------------------------------------------------------------------------------

class QdqModel:
    """One QDQ fixture: float fixture onnx_<base> quantized by onnxruntime.

    per_channel  per-channel weights (else per tensor); weights are always int8 (symmetric)
    act          "u8" or "s8" activations (QuantType.QUInt8 / QInt8)
    """

    def __init__(self, base, per_channel, act, note=""):
        self.base, self.per_channel, self.act, self.note = base, per_channel, act, note

    def name(self):
        return "qdq_%s_%s_%s" % (self.base, "pc" if self.per_channel else "pt", self.act)


def qdq_catalog():
    return [
        QdqModel("classifier", False, "u8", note="conv, GlobalAveragePool, Flatten, Gemm, Softmax"),
        QdqModel("classifier", True, "s8"),
        QdqModel("mobile_block", True, "u8",
                 note="BN folded by quant_pre_process, Clip removed by the quantizer, residual Add"),
        QdqModel("mobile_block", False, "s8"),
        QdqModel("conv_stride_dil_relu6", True, "s8", note="explicit pads (a PAD), dilation"),
    ]


QDQ_CALIBRATION_SAMPLES = 32


def qdq_make(model, out_dir):
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    import tempfile
    name = model.name()
    src = [m for m in onnx_catalog() if m.base == model.base][0]
    float_path = os.path.join(out_dir, src.name() + ".onnx")
    if not os.path.exists(float_path):
        raise RuntimeError("make %s first" % src.name())
    rng = np.random.default_rng(seed_of(name))
    feeds = []
    for _ in range(QDQ_CALIBRATION_SAMPLES):
        feeds.append({"in%d" % j: rng.uniform(lo, hi, size=shape).astype(np.float32)
                      for j, (shape, lo, hi) in enumerate(src.inputs)})

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    act = QuantType.QUInt8 if model.act == "u8" else QuantType.QInt8
    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        out = os.path.join(tmp, "q.onnx")
        # quant_pre_process: shape inference and onnxruntime's basic optimizations (BN folded
        # into the convs), as onnxruntime recommends before quantize_static.
        quant_pre_process(float_path, pre, skip_symbolic_shape=True)
        quantize_static(pre, out, Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=model.per_channel, activation_type=act,
                        weight_type=QuantType.QInt8)
        data = open(out, "rb").read()
    proto = onnx.load_from_string(data)
    onnx.checker.check_model(proto)
    ops = sorted(set(n.op_type for n in proto.graph.node))
    problems = [] if {"QuantizeLinear", "DequantizeLinear"} <= set(ops) else ["no Q/DQ nodes"]

    def session(level):
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])

    xs = [np.fromfile(os.path.join(out_dir, "%s.in%d.bin" % (src.name(), j)), dtype="<f4")
          .reshape(shape) for j, (shape, _, _) in enumerate(src.inputs)]
    feed = {"in%d" % j: x for j, x in enumerate(xs)}
    # The reference: onnxruntime as it runs a QDQ model (graph optimizations on: int8 kernels).
    ref = session(ort.GraphOptimizationLevel.ORT_ENABLE_ALL).run(None, feed)
    fake = session(ort.GraphOptimizationLevel.ORT_DISABLE_ALL).run(None, feed)
    flt = ort.InferenceSession(open(float_path, "rb").read(),
                                               providers=["CPUExecutionProvider"]).run(None, feed)
    for f in glob.glob(os.path.join(out_dir, glob.escape(name) + ".*")):
        os.remove(f)
    with open(os.path.join(out_dir, name + ".onnx"), "wb") as f:
        f.write(data)
    for j, x in enumerate(xs):
        with open(os.path.join(out_dir, "%s.in%d.bin" % (name, j)), "wb") as f:
            f.write(np.ascontiguousarray(x, dtype="<f4").tobytes())
    for j, r in enumerate(ref):
        with open(os.path.join(out_dir, "%s.out%d.bin" % (name, j)), "wb") as f:
            f.write(np.ascontiguousarray(r, dtype="<f4").tobytes())
    # Each output's quantized range: 255 steps of the scale of the QuantizeLinear before its
    # final DequantizeLinear (what calibration gave it; [0, 1] for a softmax).
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    writer = {o: n for n in proto.graph.node for o in n.output}
    ranges = []
    for o in proto.graph.output:
        dq = writer[o.name]
        assert dq.op_type == "DequantizeLinear", dq.op_type
        ranges.append(255.0 * float(inits[dq.input[1]].reshape(-1)[0]))
    d = lambda a, b: float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    line = "%s inputs=%d outputs=%d range=%s from=%s per_channel=%d activations=%s ops=%s" % (
        name, len(xs), len(ref), ",".join("%.6g" % r for r in ranges), src.name(),
        int(model.per_channel), model.act, ",".join(ops))
    comments = ["#. %s%s" % (name, ("; " + model.note) if model.note else ""),
                "#. %s max|ref-x| per output: ort_fake_quant=%s float=%s" % (
                    name, ",".join("%.3g" % d(a, b) for a, b in zip(ref, fake)),
                    ",".join("%.3g" % d(a, b) for a, b in zip(ref, flt)))]
    return line, comments, problems, ops


def qdq_header(n):
    import platform
    import onnx
    return [
        "# edgemm QDQ test models, made by scripts/make-test-models.py (do not edit by hand).",
        "# onnx %s, onnxruntime %s (onnxruntime.quantization: quant_pre_process, then quantize_static,"
        % (onnx.__version__, ort.__version__),
        "#   QDQ format, MinMax calibration on %d seeded samples), numpy %s, Python %s."
        % (QDQ_CALIBRATION_SAMPLES, np.__version__, platform.python_version()),
        "# One line per model:  <name> inputs=<N> outputs=<M> range=<r0,..> from=<float fixture>",
        "#   per_channel=0|1 activations=u8|s8 ops=<ONNX op types>",
        "#   files: <name>.onnx, <name>.in<j>.bin (the float fixture's input), <name>.out<j>.bin:",
        "#   raw little-endian float32 in the declared shapes; outputs are onnxruntime's with every",
        "#   graph optimization (its int8 kernels), 1 thread. range: each output's quantized range,",
        "#   255 * the scale of its last DequantizeLinear (the calibrated range; 1 for a softmax).",
        "#   '#. <name> max|ref-x|' lines: onnxruntime without optimizations (float ops between",
        "#   Q/DQ pairs) and the float model, against that reference.",
        "# %d models." % n,
    ]


def qdq_main(args):
    """Makes the QDQ fixtures selected by --only (all on a full run); returns failures."""
    table = qdq_catalog()
    todo = [m for m in table if not args.only or any(
        fnmatch.fnmatchcase(m.name(), p.strip()) for p in args.only.split(",") if p.strip())]
    if not todo:
        return []
    out_dir = os.path.join(args.out, "onnx")
    os.makedirs(out_dir, exist_ok=True)
    mpath = os.path.join(out_dir, "QDQ_MANIFEST")
    blocks = read_manifest(mpath) if args.only else {}
    failures = []
    for i, m in enumerate(todo):
        try:
            line, comments, problems, ops = qdq_make(m, out_dir)
        except Exception as e:
            failures.append("%s: %s: %s" % (m.name(), type(e).__name__, str(e).splitlines()[:1]))
            print("[%d/%d] %-34s FAILED %s" % (i + 1, len(todo), m.name(), failures[-1]), flush=True)
            continue
        blocks[m.name()] = (line, comments)
        print("[%d/%d] %-34s %s%s" % (i + 1, len(todo), m.name(), ",".join(ops),
                                      "  PROBLEMS: " + "; ".join(problems) if problems else ""),
              flush=True)
        failures += ["%s: %s" % (m.name(), p) for p in problems]
    names_in = [m.name() for m in table if m.name() in blocks]
    with open(mpath, "w") as f:
        f.write("\n".join(qdq_header(len(names_in))) + "\n")
        for n in names_in:
            line_, com = blocks[n]
            f.write("\n".join(com + [line_]) + "\n")
    return failures

# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------

def selected(table, only):
    if not only:
        return table
    pats = [p.strip() for p in only.split(",") if p.strip()]
    return [(m, mode) for m, mode in table
            if any(fnmatch.fnmatchcase(m.name(mode), p) or fnmatch.fnmatchcase(m.base, p)
                   for p in pats)]


def read_manifest(path):
    """Existing per-model blocks: name -> (line, [comment lines])."""
    blocks = {}
    if not os.path.exists(path):
        return blocks
    pending = {}
    for line in open(path).read().splitlines():
        if line.startswith("#. "):
            pending.setdefault(line.split()[1], []).append(line)
        elif line and not line.startswith("#"):
            name = line.split()[0]
            blocks[name] = (line, pending.pop(name, []))
    return blocks


def header(n):
    import platform
    return [
        "# edgemm TFLite test models, made by scripts/make-test-models.py (do not edit by hand).",
        "# tensorflow-cpu %s (TFLite converter and interpreter), numpy %s, keras %s, Python %s."
        % (tf.__version__, np.__version__, keras.__version__, platform.python_version()),
        "# One line per model:  <name> dtype=<dtype of input 0> inputs=<N> outputs=<M>"
        " tol=<t0,t1,..> ops=<OP,..>",
        "#   files: <name>.tflite, <name>.in<j>.bin (j < N), <name>.out<j>.bin (j < M): raw"
        " little-endian tensors",
        "#   in the model's own dtype and shape, in the interpreter's input/output order;"
        " outputs are those of",
        "#   TFLite's reference kernels (OpResolverType.BUILTIN_REF) on those inputs.",
        "#   tol, one per output: 0 for integer outputs; else max(1e-5*max|ref|, 2*spread),"
        " spread = max|ref - x|",
        "#   over x = the optimized builtin kernels (opt) and the default resolver with XNNPACK"
        " (xnnpack);",
        "#   both spreads are listed per model in its '#. <name> io:' line (for integer outputs"
        " too, in LSBs).",
        "#   ops: the distinct builtin operators of the model, sorted.",
        "# Lines '#. <name> ...' describe each model: its kind, its I/O, and each operator as"
        " emitted",
        "#   (version, builtin options, input/output tensors: dtype[shape], /perchanN = per-channel"
        " quantized,",
        "#   {scale,zero_point} of a per-tensor quantized activation, c = constant,"
        " - = absent optional input).",
        "# Converter facts behind some models (see each model's notes):",
        "#   - softmax_beta*, squeeze*: edited after conversion (the converter always emits"
        " SOFTMAX beta=1 and",
        "#     turns a static tf.squeeze into RESHAPE); every other model is the converter's"
        " output unchanged.",
        "#   - CONV_2D/DEPTHWISE_CONV_2D always get a bias tensor (zeros when the graph has none);"
        " FC may have none (-).",
        "#   - int8 CONCATENATION/PACK inputs always share the output scale: the quantizer inserts"
        " int8->int8",
        "#     QUANTIZE (requantize) ops where inputs come at other scales (concat_mixed_scales_int8).",
        "#   - int8 conv/depthwise/FC weights are per-channel by default; *_pertensor models use"
        " per-tensor.",
        "#   - XNNPACK's int8 BATCH_MATMUL disagrees with the reference (and optimized) kernels by"
        " up to 34 LSB",
        "#     here; the reference output matches float math rounded to the output scale.",
        "# %d models." % n,
    ]


def main():
    args = parse_args()
    bootstrap(args)
    import_tf()
    import_torch()
    table = catalog()
    todo = selected(table, args.only)
    if args.list:
        for m, mode in table:
            print("%-36s %s" % (m.name(mode), ",".join(m.expect)))
        for m in onnx_catalog():
            print("%-36s %s" % (m.name(), ",".join(m.expect)))
        for m in qdq_catalog():
            print("%-36s from onnx_%s" % (m.name(), m.base))
        return
    if args.only and all(not fnmatch.fnmatchcase(m.name(), p.strip())
                         for m in onnx_catalog() + qdq_catalog()
                         for p in args.only.split(",")) and not todo:
        sys.exit("no model matches --only %r" % args.only)
    os.makedirs(args.out, exist_ok=True)
    mpath = os.path.join(args.out, "MANIFEST")
    blocks = read_manifest(mpath) if args.only else {}
    if not args.only:  # full run: remove stale fixtures
        for f in glob.glob(os.path.join(args.out, "*")):
            if re.search(r"\.(tflite|(in|out)\d+\.bin)$", f):
                os.remove(f)
    failures = onnx_main(args)
    failures += qdq_main(args)
    for i, (m, mode) in enumerate(todo):
        name = m.name(mode)
        try:
            line, comments, problems, names = make(m, mode, args.out)
        except Exception as e:
            failures.append("%s: %s: %s" % (name, type(e).__name__, str(e).splitlines()[:1]))
            print("[%d/%d] %-34s FAILED %s" % (i + 1, len(todo), name, failures[-1]), flush=True)
            continue
        blocks[name] = (line, comments)
        print("[%d/%d] %-34s %s%s" % (i + 1, len(todo), name, ",".join(names),
                                      "  PROBLEMS: " + "; ".join(problems) if problems else ""),
              flush=True)
        if problems:
            failures.append("%s: %s" % (name, "; ".join(problems)))
        # write the manifest as we go, in table order
        order = [mm.name(md) for mm, md in table]
        names_in = [n for n in order if n in blocks] + sorted(set(blocks) - set(order))
        with open(mpath, "w") as f:
            f.write("\n".join(header(len(names_in))) + "\n")
            for n in names_in:
                line_, com = blocks[n]
                f.write("\n".join(com + [line_]) + "\n")
    total = sum(os.path.getsize(f) for f in glob.glob(os.path.join(args.out, "*")))
    print("total size of %s: %d bytes" % (args.out, total))
    if failures:
        print("\n%d problem(s):" % len(failures))
        for f in failures:
            print("  " + f)
        sys.exit(1)


if __name__ == "__main__":
    main()
