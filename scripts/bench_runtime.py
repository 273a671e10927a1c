#!/usr/bin/env python3
"""Side-by-side latency of edgemm's runtime and the runtimes users would otherwise pick.

Run it through scripts/bench-runtime.sh (which makes the venv and installs
scripts/requirements-bench.txt); run by hand, never by CI.

    scripts/bench-runtime.sh                          # every model, int8 + float32, 1 thread, R=3
    scripts/bench-runtime.sh --threads 1,2            # a second table with 2 threads
    scripts/bench-runtime.sh --models kws,resnet8 --dtypes int8 --repeat 5
    scripts/bench-runtime.sh --quick                  # R=1, ~0.3 s per measurement (a smoke run)
    scripts/bench-runtime.sh --list                   # the models and exit

Models (Keras, random weights from fixed seeds; nothing is downloaded), each converted to
TFLite float32 and full-integer int8 (int8 input and output; representative dataset of seeded
random samples), and the float model to ONNX with tf2onnx. They are kept in --models-dir
(default $EDGEMM_BENCH_MODELS or /work/bench-models) and reused while the builder version and
the TensorFlow/tf2onnx versions are the same.

    kws          DS-CNN keyword spotter (MLPerf Tiny KWS): 49x10x1, conv 10x4/2 64 ch, four
                 depthwise-separable blocks of 64 ch (BN folded, ReLU), avg pool, FC 12, softmax
    mbv1         MobileNet-v1 alpha 0.25, 96x96x3, 2 classes (MLPerf Tiny VWW's model: 'same'
                 padding, BN, ReLU, avg pool, FC 2, softmax)
    resnet8      ResNet-8 (MLPerf Tiny image classification): 32x32x3, 16/32/64 ch, 3 stacks,
                 1x1/2 projection shortcuts, avg pool, FC 10, softmax
    ae           FC autoencoder (MLPerf Tiny anomaly detection, its real shape): 640 -> 128 x4 ->
                 8 -> 128 x4 -> 640, BN + ReLU after each hidden Dense
    mbv2         MobileNet-v2 alpha 1.0, 224x224x3, 1000 classes (keras.applications, weights=None)

Runtimes, all in this one process except edgemm, interleaved per model (for each repeat, each
model runs every runtime back to back; the runtime order rotates between repeats):

    tflite       TFLite interpreter, optimized builtin kernels
                 (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES), num_threads=T
    xnnpack      TFLite interpreter with the XNNPACK delegate (OpResolverType.AUTO), num_threads=T
    ort          onnxruntime, float32 models only: CPU provider, intra_op_num_threads=T,
                 inter_op_num_threads=1, sequential execution, all graph optimizations; the ONNX
                 model takes NCHW input (tf2onnx inputs_as_nchw), bound once with IO binding
    edgemm       `target/release/edgemm run MODEL.tflite --repeat N [--threads T]`, which prints
                 `latency_us median=<x> min=<y>`; a non-zero exit is shown as
                 "unsupported: <its error>" and the run goes on
    edgemm-onnx  float32 models only: the same command on the tf2onnx file ORT runs,
                 `edgemm run MODEL_float32.onnx --repeat N [--threads T]` (imported and lowered
                 at load, outside the timing). No --io-layout: like ORT, it takes the NCHW
                 input the file declares, so its NCHW -> NHWC TRANSPOSE (a RESHAPE when there
                 is one channel) is part of each timed run; its output is the file's [1, classes]

Each measurement: warm-up (at least 3 runs and 0.2 s), then N timed runs, median and min in
microseconds. N is chosen per model, dtype and runtime at the first repeat (from the warm-up;
for edgemm from a first `--repeat 5` call) so that one measurement takes about --target-s
seconds, and kept for the later repeats. The Python runtimes time each invoke() /
run_with_iobinding() with perf_counter_ns (inputs set once, outside the timed region; the
call's own Python overhead, about a microsecond, is included); edgemm times itself. The whole
comparison is repeated R times; the table shows the median of the R medians with the spread
(min..max of the medians), edgemm's ratio to the best runtime that is not edgemm
("edgemm/best", < 1: edgemm is faster), and for float32 edgemm-onnx's ratio to onnxruntime on
the same .onnx file ("onnx/ort"). A CSV with the summary and one with every measurement are
written (--csv); their `runtime` column is one of the names above.
"""

import argparse
import csv
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Bump when a model definition or its conversion changes: cached models are then rebuilt.
BUILDER_VERSION = "1"

MODEL_ORDER = ["kws", "mbv1", "resnet8", "ae", "mbv2"]
DTYPES = ["int8", "float32"]
RUNTIMES = ["tflite", "xnnpack", "ort", "edgemm", "edgemm-onnx"]
RUNTIME_TITLES = {"tflite": "TFLite builtin", "xnnpack": "TFLite XNNPACK", "ort": "onnxruntime",
                  "edgemm": "edgemm", "edgemm-onnx": "edgemm ONNX"}
EDGEMM_RUNTIMES = ("edgemm", "edgemm-onnx")

tf = None
np = None
keras = None


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--models", default=",".join(MODEL_ORDER),
                   help="comma-separated models (default: %(default)s)")
    p.add_argument("--dtypes", default=",".join(DTYPES),
                   help="comma-separated dtypes: int8, float32 (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=None,
                   help="repeats of the whole comparison (default 3; 1 with --quick)")
    p.add_argument("--threads", default="1",
                   help="comma-separated thread counts, one table each (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: R=1 and ~0.3 s per measurement (unless given)")
    p.add_argument("--target-s", type=float, default=None,
                   help="seconds one measurement should take (default 1.5; 0.3 with --quick)")
    p.add_argument("--runtimes", default=",".join(RUNTIMES),
                   help="comma-separated runtimes to time (default: %(default)s)")
    p.add_argument("--models-dir",
                   default=os.environ.get("EDGEMM_BENCH_MODELS", "/work/bench-models"),
                   help="model cache (default: $EDGEMM_BENCH_MODELS or %(default)s)")
    p.add_argument("--rebuild-models", action="store_true",
                   help="rebuild the selected models even if cached")
    p.add_argument("--edgemm", default=None,
                   help="edgemm binary (default: target/release/edgemm of this checkout, built "
                        "with `cargo build --release --bin edgemm` when src/bin/edgemm.rs exists)")
    p.add_argument("--no-build", action="store_true",
                   help="do not run cargo; use the edgemm binary as it is (or skip it)")
    p.add_argument("--csv", default=None,
                   help="summary CSV (default: bench-runtime-<date>.csv in the current folder); "
                        "every measurement goes to the same name with .raw.csv")
    p.add_argument("--list", action="store_true", help="list the models and exit")
    a = p.parse_args()
    a.models = [m.strip() for m in a.models.split(",") if m.strip()]
    a.dtypes = [d.strip() for d in a.dtypes.split(",") if d.strip()]
    a.runtimes = [r.strip() for r in a.runtimes.split(",") if r.strip()]
    a.threads = [int(t) for t in a.threads.split(",") if t.strip()]
    for m in a.models:
        if m not in MODEL_ORDER:
            p.error("unknown model %r (known: %s)" % (m, ", ".join(MODEL_ORDER)))
    for d in a.dtypes:
        if d not in DTYPES:
            p.error("unknown dtype %r (known: %s)" % (d, ", ".join(DTYPES)))
    for r in a.runtimes:
        if r not in RUNTIMES:
            p.error("unknown runtime %r (known: %s)" % (r, ", ".join(RUNTIMES)))
    if not a.threads or min(a.threads) < 1:
        p.error("--threads needs counts >= 1")
    if a.repeat is None:
        a.repeat = 1 if a.quick else 3
    if a.repeat < 1:
        p.error("--repeat needs R >= 1")
    if a.target_s is None:
        a.target_s = 0.3 if a.quick else 1.5
    return a


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def import_libs():
    global tf, np, keras
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    import warnings
    warnings.filterwarnings("ignore")
    import numpy as _np
    import tensorflow as _tf
    _tf.get_logger().setLevel("ERROR")
    import absl.logging
    absl.logging.set_verbosity(absl.logging.ERROR)
    tf, np = _tf, _np
    keras = _tf.keras
    # Model building and conversion: keep TensorFlow itself on one thread, like the other
    # engineers' builds on this machine would want; the timed runtimes set their own threads.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def seed_of(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------

def _bn(x):
    return keras.layers.BatchNormalization()(x)


def build_kws():
    """DS-CNN (MLPerf Tiny KWS, keras_model.py 'ds_cnn')."""
    L = keras.layers
    i = keras.Input((49, 10, 1), batch_size=1, name="input")
    x = L.Conv2D(64, (10, 4), strides=(2, 2), padding="same", use_bias=True)(i)
    x = L.ReLU()(_bn(x))
    for _ in range(4):
        x = L.DepthwiseConv2D((3, 3), padding="same")(x)
        x = L.ReLU()(_bn(x))
        x = L.Conv2D(64, (1, 1), padding="same")(x)
        x = L.ReLU()(_bn(x))
    x = L.AveragePooling2D(pool_size=(25, 5))(x)
    x = L.Flatten()(x)
    x = L.Dense(12, activation="softmax")(x)
    return keras.Model(i, x, name="ds_cnn_kws")


def build_mbv1():
    """MobileNet-v1 alpha 0.25 at 96x96x3 as MLPerf Tiny VWW writes it."""
    L = keras.layers
    i = keras.Input((96, 96, 3), batch_size=1, name="input")
    x = L.Conv2D(8, 3, strides=2, padding="same")(i)
    x = L.ReLU()(_bn(x))
    # (pointwise filters, depthwise stride) for the 13 depthwise-separable blocks, alpha 0.25
    blocks = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + \
             [(256, 2), (256, 1)]
    for f, s in blocks:
        x = L.DepthwiseConv2D(3, strides=s, padding="same")(x)
        x = L.ReLU()(_bn(x))
        x = L.Conv2D(f, 1, padding="same")(x)
        x = L.ReLU()(_bn(x))
    x = L.AveragePooling2D(pool_size=(x.shape[1], x.shape[2]))(x)
    x = L.Flatten()(x)
    x = L.Dense(2, activation="softmax")(x)
    return keras.Model(i, x, name="mobilenet_v1_025_96")


def build_resnet8():
    """ResNet-8 (MLPerf Tiny image classification, keras_model.py 'resnet_v1_eembc')."""
    L = keras.layers
    i = keras.Input((32, 32, 3), batch_size=1, name="input")
    x = L.Conv2D(16, 3, padding="same")(i)
    x = L.ReLU()(_bn(x))
    for f, s in ((16, 1), (32, 2), (64, 2)):
        y = L.Conv2D(f, 3, strides=s, padding="same")(x)
        y = L.ReLU()(_bn(y))
        y = _bn(L.Conv2D(f, 3, padding="same")(y))
        if s != 1:
            x = L.Conv2D(f, 1, strides=s, padding="same")(x)
        x = L.ReLU()(L.Add()([x, y]))
    x = L.AveragePooling2D(pool_size=(x.shape[1], x.shape[2]))(x)
    x = L.Flatten()(x)
    x = L.Dense(10, activation="softmax")(x)
    return keras.Model(i, x, name="resnet8")


def build_ae():
    """FC autoencoder (MLPerf Tiny anomaly detection, keras_model.py): 640-128x4-8-128x4-640."""
    L = keras.layers
    i = keras.Input((640,), batch_size=1, name="input")
    x = i
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = L.Dense(units)(x)
        x = L.ReLU()(_bn(x))
    x = L.Dense(640)(x)
    return keras.Model(i, x, name="fc_autoencoder")


def build_mbv2():
    return keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=1.0, weights=None,
                                          classes=1000)


# name -> (builder, input range (lo, hi), description)
MODELS = {
    "kws": (build_kws, (-1.0, 1.0), "DS-CNN KWS 49x10x1 (MLPerf Tiny)"),
    "mbv1": (build_mbv1, (0.0, 1.0), "MobileNet-v1 0.25 96x96x3 (MLPerf Tiny VWW)"),
    "resnet8": (build_resnet8, (0.0, 1.0), "ResNet-8 32x32x3 (MLPerf Tiny IC)"),
    "ae": (build_ae, (-1.0, 1.0), "FC autoencoder 640 (MLPerf Tiny AD)"),
    "mbv2": (build_mbv2, (-1.0, 1.0), "MobileNet-v2 1.0 224x224x3"),
}


def randomize_bn(model, rng):
    """Give every BatchNormalization seeded, non-trivial statistics (they fold into the
    convolutions either way; this keeps activations in a realistic spread)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = [w.numpy() for w in layer.weights]
            n = gamma.shape
            layer.set_weights([
                rng.uniform(0.5, 1.5, n).astype(np.float32),
                rng.normal(0.0, 0.1, n).astype(np.float32),
                rng.normal(0.0, 0.1, n).astype(np.float32),
                rng.uniform(0.5, 1.5, n).astype(np.float32),
            ])


def cache_key():
    import tf2onnx
    return "builder=%s tensorflow=%s tf2onnx=%s" % (BUILDER_VERSION, tf.__version__,
                                                     tf2onnx.__version__)


def model_paths(d, name):
    return {"int8": os.path.join(d, "%s_int8.tflite" % name),
            "float32": os.path.join(d, "%s_float32.tflite" % name),
            "onnx": os.path.join(d, "%s_float32.onnx" % name),
            "stamp": os.path.join(d, "%s.stamp" % name)}


class Quiet:
    """Sends this process's stdout and stderr (file descriptors 1 and 2, so the converter's C++
    logging too) to a temporary file; shows it only when the block raises."""

    def __enter__(self):
        import tempfile
        sys.stdout.flush()
        sys.stderr.flush()
        self.tmp = tempfile.TemporaryFile(mode="w+b")
        self.saved = (os.dup(1), os.dup(2))
        os.dup2(self.tmp.fileno(), 1)
        os.dup2(self.tmp.fileno(), 2)
        return self

    def __exit__(self, exc_type, exc, tb):
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in self.saved:
            os.close(fd)
        if exc_type is not None:
            self.tmp.seek(0)
            text = self.tmp.read().decode(errors="replace").strip().splitlines()
            log("\n".join(text[-40:]))
        self.tmp.close()
        return False


def quiet_call(fn, *a, **kw):
    with Quiet():
        return fn(*a, **kw)


def build_and_convert(name, d):
    import tf2onnx
    builder, (lo, hi), _ = MODELS[name]
    seed = seed_of(name)
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = builder()
    randomize_bn(model, rng)
    shape = (1,) + tuple(model.inputs[0].shape[1:])
    calib = [rng.uniform(lo, hi, size=shape).astype(np.float32) for _ in range(8)]
    calib[0].reshape(-1)[0], calib[0].reshape(-1)[-1] = lo, hi
    paths = model_paths(d, name)
    t0 = time.time()

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    f32 = quiet_call(conv.convert)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x] for x in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    i8 = quiet_call(conv.convert)

    spec = [tf.TensorSpec(shape, tf.float32, name="input")]
    nchw = ["input"] if len(shape) == 4 else None
    try:
        onnx_model, _ = quiet_call(tf2onnx.convert.from_keras, model, input_signature=spec,
                                   opset=17, inputs_as_nchw=nchw)
    except Exception as e:  # fall back to tracing the call as a tf.function
        log("  tf2onnx.convert.from_keras failed (%s); converting the traced function" % e)
        fn = tf.function(lambda x: model(x, training=False))
        onnx_model, _ = quiet_call(tf2onnx.convert.from_function, fn, input_signature=spec,
                                   opset=17, inputs_as_nchw=nchw)

    check_conversions(model, calib[1], f32, onnx_model.SerializeToString(), len(shape) == 4)

    for key, data in (("float32", f32), ("int8", i8), ("onnx", onnx_model.SerializeToString())):
        tmp = paths[key] + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, paths[key])
    with open(paths["stamp"], "w") as f:
        f.write(cache_key() + "\n")
    log("  built %s in %.1f s (%d params; tflite f32 %d KiB, int8 %d KiB, onnx %d KiB)"
        % (name, time.time() - t0, model.count_params(), len(f32) // 1024, len(i8) // 1024,
           os.path.getsize(paths["onnx"]) // 1024))
    keras.backend.clear_session()


def check_conversions(model, x, f32, onnx_bytes, nchw):
    """The float TFLite and ONNX models must compute what the Keras model does."""
    import onnxruntime as ort
    want = np.asarray(model(x, training=False))
    it = tf.lite.Interpreter(model_content=f32, num_threads=1)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    got_tfl = it.get_tensor(it.get_output_details()[0]["index"])
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    xo = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if nchw else x
    got_ort = sess.run(None, {sess.get_inputs()[0].name: xo})[0]
    scale = max(1e-6, float(np.abs(want).max()))
    for what, got in (("TFLite float32", got_tfl), ("ONNX", got_ort)):
        err = float(np.abs(got.reshape(want.shape) - want).max()) / scale
        if not err < 1e-3:
            raise RuntimeError("%s model of %s differs from Keras: max relative error %.2g"
                               % (what, model.name, err))


def ensure_models(args):
    os.makedirs(args.models_dir, exist_ok=True)
    key = cache_key()
    for name in args.models:
        p = model_paths(args.models_dir, name)
        have = open(p["stamp"]).read().strip() if os.path.exists(p["stamp"]) else ""
        complete = all(os.path.exists(p[k]) for k in ("int8", "float32", "onnx"))
        if args.rebuild_models or have != key or not complete:
            log("building %s (%s) into %s" % (name, MODELS[name][2], args.models_dir))
            build_and_convert(name, args.models_dir)


# --------------------------------------------------------------------------------------------
# runtimes
# --------------------------------------------------------------------------------------------

def seeded_input(shape, dtype, name):
    rng = np.random.default_rng(seed_of("input:" + name))
    if dtype == np.int8:
        return rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)
    lo, hi = MODELS[name][1]
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


class TfliteRunner:
    def __init__(self, path, name, threads, xnnpack):
        R = tf.lite.experimental.OpResolverType
        resolver = R.AUTO if xnnpack else R.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self.it = tf.lite.Interpreter(model_path=path, num_threads=threads,
                                      experimental_op_resolver_type=resolver)
        self.it.allocate_tensors()
        for d in self.it.get_input_details():
            self.it.set_tensor(d["index"], seeded_input(tuple(d["shape"]), d["dtype"], name))
        self.invoke = self.it.invoke


class OrtRunner:
    def __init__(self, path, name, threads):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
        self.binding = self.sess.io_binding()
        for i in self.sess.get_inputs():
            x = seeded_input(tuple(i.shape), np.float32, name)
            self.x = ort.OrtValue.ortvalue_from_numpy(x)
            self.binding.bind_ortvalue_input(i.name, self.x)
        for o in self.sess.get_outputs():
            self.binding.bind_output(o.name, "cpu")
        self.sess.run_with_iobinding(self.binding)
        run = self.sess.run_with_iobinding
        b = self.binding
        self.invoke = lambda: run(b)


def warmup(invoke, min_runs=3, min_s=0.2):
    """Warm up; returns the median seconds of one run seen during warm-up."""
    ts = []
    t_end = time.perf_counter() + min_s
    while len(ts) < min_runs or time.perf_counter() < t_end:
        t0 = time.perf_counter_ns()
        invoke()
        ts.append(time.perf_counter_ns() - t0)
        if len(ts) >= 10000:
            break
    return statistics.median(ts) / 1e9


def n_for(target_s, per_run_s):
    return max(10, min(100000, int(target_s / max(per_run_s, 1e-7))))


def timed(invoke, n):
    ts = [0] * n
    clock = time.perf_counter_ns
    for k in range(n):
        t0 = clock()
        invoke()
        ts[k] = clock() - t0
    return statistics.median(ts) / 1e3, min(ts) / 1e3


class Edgemm:
    """The edgemm command; `path` None means it is not available (`why` says why)."""

    def __init__(self, args):
        self.path, self.why, self.threads_flag, self.version = None, "", False, ""
        if not any(r in args.runtimes for r in EDGEMM_RUNTIMES):
            self.why = "not selected (--runtimes)"
            return
        path = args.edgemm or os.path.join(ROOT, "target", "release", "edgemm")
        src = os.path.join(ROOT, "src", "bin", "edgemm.rs")
        if args.edgemm is None and not args.no_build:
            if os.path.exists(src) or os.path.isdir(os.path.join(ROOT, "src", "bin", "edgemm")):
                if shutil.which("cargo") is None:
                    self.why = "cargo not found: cannot build target/release/edgemm"
                else:
                    log("building edgemm: cargo build --release --bin edgemm")
                    r = subprocess.run(["cargo", "build", "--release", "--bin", "edgemm"],
                                       cwd=ROOT, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
                    if r.returncode != 0:
                        tail = "\n".join(r.stdout.strip().splitlines()[-15:])
                        log(tail)
                        self.why = "cargo build --release --bin edgemm failed (see above)"
                        return
            elif not os.path.exists(path):
                self.why = ("no edgemm command in this checkout yet (%s missing)"
                            % os.path.relpath(src, ROOT))
                return
        if not os.path.exists(path):
            self.why = self.why or "%s does not exist" % path
            return
        self.path = path
        try:
            h = subprocess.run([path, "run", "--help"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=30).stdout
            self.threads_flag = "--threads" in h
            v = subprocess.run([path, "--version"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=30)
            self.version = v.stdout.strip().splitlines()[0] if v.returncode == 0 and v.stdout \
                else ""
        except (OSError, subprocess.SubprocessError) as e:
            self.path, self.why = None, "%s cannot run: %s" % (path, e)
        if not self.version:
            try:
                self.version = "git " + subprocess.run(
                    ["git", "describe", "--always", "--dirty"], cwd=ROOT, text=True,
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.strip()
            except OSError:
                self.version = "?"

    def measure(self, model_path, n, threads, expect_s):
        """-> (median_us, min_us, None) or (None, None, error text)."""
        cmd = [self.path, "run", model_path, "--repeat", str(n)]
        if self.threads_flag:
            cmd += ["--threads", str(threads)]
        elif threads != 1:
            return None, None, "unsupported: `edgemm run` has no --threads"
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=max(120.0, 20 * expect_s))
        except subprocess.TimeoutExpired:
            return None, None, "timeout"
        m = re.search(r"latency_us\s+median=([0-9.eE+-]+)\s+min=([0-9.eE+-]+)", r.stdout)
        if r.returncode != 0 or not m:
            msg = (r.stderr.strip() or r.stdout.strip() or "exit %d" % r.returncode)
            msg = " ".join(msg.splitlines()[-3:])
            msg = re.sub(r"^(error|Error):\s*", "", msg)
            if r.returncode == 0:
                msg = "no latency_us line in its output: " + msg
            return None, None, "unsupported: " + msg
        return float(m.group(1)), float(m.group(2)), None


# --------------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------------

def machine_info(args, edgemm):
    import onnxruntime
    import tf2onnx
    cpu = "?"
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu == "?":
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [x for x in ("sse4_1", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                       "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp")
           if x in flags]
    logical = os.cpu_count()
    try:
        avail = len(os.sched_getaffinity(0))
    except AttributeError:
        avail = logical
    lines = [
        "cpu:        %s (%d logical cores, %d available to this process)" % (cpu, logical, avail),
        "isa:        %s" % (" ".join(isa) or "?"),
        "os:         %s %s, python %s" % (platform.system(), platform.release(),
                                          platform.python_version()),
        "tensorflow: %s (TFLite interpreter and converter; XNNPACK built in)" % tf.__version__,
        "onnxrt:     %s (CPUExecutionProvider), tf2onnx %s, opset 17"
        % (onnxruntime.__version__, tf2onnx.__version__),
        "numpy:      %s" % np.__version__,
        "edgemm:     %s" % ((edgemm.path + " (" + edgemm.version + ")" +
                             ("" if edgemm.threads_flag else "; `run` has no --threads option: "
                              "1 thread means its default, more threads are not timed"))
                            if edgemm.path else "NOT TIMED: " + edgemm.why),
        "load:       %s (1/5/15 min load average at start)" % " ".join(
            "%.2f" % x for x in os.getloadavg()),
    ]
    return lines


def fmt_us(x):
    if x is None:
        return "-"
    if x >= 1000:
        return "%.0f" % x
    if x >= 100:
        return "%.1f" % x
    return "%.2f" % x


def summarize(vals):
    """vals: list of (median, min) over repeats -> (median of medians, lo, hi, min)."""
    meds = [v[0] for v in vals]
    return statistics.median(meds), min(meds), max(meds), min(v[1] for v in vals)


def main():
    args = parse_args()
    if args.list:
        for n in MODEL_ORDER:
            print("%-8s %s" % (n, MODELS[n][2]))
        return
    import_libs()
    ensure_models(args)
    edgemm = Edgemm(args)
    info = machine_info(args, edgemm)
    print("== edgemm runtime benchmark, %s" % datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))
    for line in info:
        print(line)
    if not edgemm.path and any(r in args.runtimes for r in EDGEMM_RUNTIMES):
        print("NOTE: the edgemm column is skipped: %s" % edgemm.why)
    if os.getloadavg()[0] > 0.5:
        print("NOTE: the machine is busy (load %.2f): other processes share these cores, "
              "expect noise; compare the spread columns" % os.getloadavg()[0])
    print("settings:   repeat R=%d, ~%.1f s per measurement, threads %s, models %s, dtypes %s"
          % (args.repeat, args.target_s, ",".join(map(str, args.threads)),
             ",".join(args.models), ",".join(args.dtypes)), flush=True)

    runtimes = [r for r in RUNTIMES if r in args.runtimes]
    cases = [(m, d) for m in args.models for d in args.dtypes]
    # results[(threads, model, dtype, runtime)] = list of (median, min) or an error string
    results = {}
    raw = []
    counts = {}  # (threads, model, dtype, runtime) -> N
    edgemm_us = {}  # same key -> edgemm's median in its calibration run
    t_start = time.time()
    for threads in args.threads:
        runners = {}
        for m, d in cases:
            p = model_paths(args.models_dir, m)
            runners[(m, d, "tflite")] = TfliteRunner(p[d], m, threads, xnnpack=False)
            runners[(m, d, "xnnpack")] = TfliteRunner(p[d], m, threads, xnnpack=True)
            if d == "float32":
                runners[(m, d, "ort")] = OrtRunner(p["onnx"], m, threads)
        for rep in range(args.repeat):
            for ci, (m, d) in enumerate(cases):
                present = [r for r in runtimes
                           if (m, d, r) in runners or (edgemm.path and (
                               r == "edgemm" or (r == "edgemm-onnx" and d == "float32")))]
                k = (rep + ci) % len(present) if present else 0
                order = present[k:] + present[:k]
                line = []
                for r in order:
                    key = (threads, m, d, r)
                    if isinstance(results.get(key), str):
                        continue  # failed before: do not retry every repeat
                    # N per runtime, fixed at the first repeat: ~target_s per measurement
                    if r in EDGEMM_RUNTIMES:
                        path = model_paths(args.models_dir, m)["onnx" if r == "edgemm-onnx"
                                                               else d]
                        if key not in counts:  # calibration run (also its warm-up)
                            med, mn, err = edgemm.measure(path, 5, threads, 5.0)
                            if err:
                                results[key] = err
                                line.append("%s: %s" % (r, err[:60]))
                                continue
                            counts[key] = n_for(args.target_s, med / 1e6)
                            edgemm_us[key] = med
                        n = counts[key]
                        med, mn, err = edgemm.measure(path, n, threads, n * edgemm_us[key] / 1e6)
                        if err:
                            results[key] = err
                            line.append("%s: %s" % (r, err[:60]))
                            continue
                    else:
                        invoke = runners[(m, d, r)].invoke
                        t1 = warmup(invoke)
                        if key not in counts:
                            counts[key] = n_for(args.target_s, t1)
                        n = counts[key]
                        med, mn = timed(invoke, n)
                    results.setdefault(key, []).append((med, mn))
                    raw.append((threads, m, d, r, rep + 1, n, med, mn))
                    line.append("%s %s (N=%d)" % (r, fmt_us(med), n))
                log("[T=%d rep %d/%d] %-8s %-7s %s" % (threads, rep + 1, args.repeat, m, d,
                                                       ", ".join(line)))
        del runners
    elapsed = time.time() - t_start

    # ---- tables -------------------------------------------------------------------------
    summary_rows = []
    for threads in args.threads:
        print()
        print("threads=%d  latency in us: median of %d repeat(s) [min..max of the medians]"
              % (threads, args.repeat))
        print("ratios (<1: edgemm faster): edgemm/best = edgemm (.tflite) / the best runtime "
              "that is not edgemm; onnx/ort = edgemm ONNX / onnxruntime (the same .onnx)")
        cols = [r for r in runtimes]
        head = ["model", "dtype"] + [RUNTIME_TITLES[r] for r in cols]
        if "edgemm" in cols:
            head.append("edgemm/best")
        onnx_ratio = "edgemm-onnx" in cols and "ort" in cols and "float32" in args.dtypes
        if onnx_ratio:
            head.append("onnx/ort")
        rows = []
        notes = []
        for m, d in cases:
            row = [m, d]
            best_other = None
            meds = {}
            for r in cols:
                key = (threads, m, d, r)
                v = results.get(key)
                if not edgemm.path and (r == "edgemm" or (r == "edgemm-onnx"
                                                          and d == "float32")):
                    row.append("skipped")
                    summary_rows.append([threads, m, d, r, "", "", "", "", "",
                                         "skipped: " + edgemm.why])
                    continue
                if v is None:
                    row.append("-")
                    continue
                if isinstance(v, str):
                    if len(v) > 48:
                        if v not in notes:
                            notes.append(v)
                        v = v[:40] + "... [%d]" % (notes.index(v) + 1)
                    row.append(v)
                    summary_rows.append([threads, m, d, r, "", "", "", "", "", results[key]])
                    continue
                med, lo, hi, mn = summarize(v)
                row.append("%s [%s..%s]" % (fmt_us(med), fmt_us(lo), fmt_us(hi))
                           if len(v) > 1 else fmt_us(med))
                summary_rows.append([threads, m, d, r, counts[key], "%.3f" % med, "%.3f" % lo,
                                     "%.3f" % hi, "%.3f" % mn, "ok"])
                meds[r] = med
                if r not in EDGEMM_RUNTIMES and (best_other is None or med < best_other[0]):
                    best_other = (med, r)
            if "edgemm" in cols:
                if "edgemm" in meds and best_other:
                    row.append("%.2f (vs %s)" % (meds["edgemm"] / best_other[0], best_other[1]))
                else:
                    row.append("-")
            if onnx_ratio:
                if "edgemm-onnx" in meds and "ort" in meds:
                    row.append("%.2f" % (meds["edgemm-onnx"] / meds["ort"]))
                else:
                    row.append("-")
            rows.append(row)
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        print("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
        print("  ".join("-" * w for w in widths))
        for row in rows:
            print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
        for i, note in enumerate(notes):
            print("[%d] %s" % (i + 1, note))

    csv_path = args.csv or "bench-runtime-%s.csv" % datetime.datetime.now().strftime(
        "%Y%m%d-%H%M%S")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["threads", "model", "dtype", "runtime", "n", "median_us", "spread_lo_us",
                    "spread_hi_us", "min_us", "status"])
        w.writerows(summary_rows)
    raw_path = re.sub(r"\.csv$", "", csv_path) + ".raw.csv"
    with open(raw_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["threads", "model", "dtype", "runtime", "repeat", "n", "median_us",
                    "min_us"])
        w.writerows([list(r[:6]) + ["%.3f" % r[6], "%.3f" % r[7]] for r in raw])
    print()
    print("timing took %.0f s; load average at the end %s" % (
        elapsed, " ".join("%.2f" % x for x in os.getloadavg())))
    print("csv: %s (summary), %s (every measurement)" % (csv_path, raw_path))


if __name__ == "__main__":
    main()
