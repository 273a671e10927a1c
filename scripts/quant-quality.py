#!/usr/bin/env python3
"""Quantization quality: edgemm's `quantize` pass against the TFLite converter (run by hand).

Usage (from the repository; the venv is scripts/make-test-models.py's, with tensorflow-cpu):

    cargo build --release --bin edgemm
    python3 scripts/quant-quality.py [--edgemm target/release/edgemm] [--out tests/models/quality]

For each model of the table it trains a small Keras model a few epochs on seeded synthetic data
(random weights would make the comparison noise), converts it with the TFLite converter to
float32 and to int8 (full-integer, float input and output, the representative dataset = the
calibration samples), and quantizes the same float .tflite with edgemm (`edgemm convert` with
the default pipeline then `quantize(calibration=DIR, io=float)`, DIR = the same calibration
samples). Both int8 models run the same held-out test inputs; each is compared with the float
model (TFLite's reference kernels): mean absolute error over every output value, and top-1
agreement (the share of test inputs whose argmax is the float model's).

It writes, per model, under OUT/<model>/ (the committed fixtures `tests/models.rs` checks):
    float.tflite      the float model
    tflite_int8.tflite  the converter's int8 model
    calib.bin         the calibration inputs, raw little-endian f32, one after another
    test.bin          the test inputs, likewise
    float.bin         the float model's outputs on them (BUILTIN_REF)
    tflite_int8.bin   the converter's int8 model's outputs (BUILTIN_REF), dequantized
and OUT/RESULTS, the table (also printed) with edgemm's figures from the CLI.
Everything is seeded; rerunning gives the same files as far as TensorFlow is deterministic.
"""

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.environ.get("EDGEMM_MODELS_VENV", "/work/venv-models")

CALIBRATION = 32
TEST = 64
EPOCHS = 4


def reexec_in_venv():
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) != os.path.realpath(VENV):
        if not os.path.exists(py):
            sys.exit("no venv at %s: run scripts/make-test-models.py once to make it" % VENV)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0",
                   CUDA_VISIBLE_DEVICES="")
        os.execve(py, [py, os.path.abspath(__file__)] + sys.argv[1:], env)


def models(keras, np):
    """(name, input shape, build(), data(rng, n) -> (x, y), classes)."""
    L = keras.layers

    def images(shape, classes):
        # Class templates (seeded) plus noise: a learnable task with some confusion.
        t_rng = np.random.default_rng(7)
        templates = t_rng.normal(0, 1, size=(classes,) + shape).astype(np.float32)

        def data(rng, n):
            y = rng.integers(0, classes, size=n)
            x = templates[y] * 0.8 + rng.normal(0, 1.0, size=(n,) + shape)
            return x.astype(np.float32), y
        return data

    def cnn():
        return keras.Sequential([
            keras.Input((12, 12, 1)),
            L.Conv2D(8, 3, padding="same", activation="relu"),
            L.MaxPooling2D(2),
            L.Conv2D(16, 3, activation="relu"),
            L.GlobalAveragePooling2D(),
            L.Dense(4),
            L.Softmax(),
        ])

    def dscnn():
        return keras.Sequential([
            keras.Input((16, 10, 1)),
            L.Conv2D(12, (4, 3), strides=(2, 1), padding="same", activation="relu"),
            L.DepthwiseConv2D(3, padding="same", activation="relu"),
            L.Conv2D(16, 1, activation="relu"),
            L.DepthwiseConv2D(3, padding="same", activation="relu"),
            L.Conv2D(16, 1, activation="relu"),
            L.GlobalAveragePooling2D(),
            L.Dense(6),
            L.Softmax(),
        ])

    def mlp():
        return keras.Sequential([
            keras.Input((20,)),
            L.Dense(32, activation="relu"),
            L.Dense(16, activation="tanh"),
            L.Dense(3),
            L.Softmax(),
        ])

    return [
        ("cnn", (12, 12, 1), cnn, images((12, 12, 1), 4), 4),
        ("dscnn", (16, 10, 1), dscnn, images((16, 10, 1), 6), 6),
        ("mlp", (20,), mlp, images((20,), 3), 3),
    ]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--edgemm", default=os.path.join(ROOT, "target", "release", "edgemm"))
    p.add_argument("--out", default=os.path.join(ROOT, "tests", "models", "quality"))
    args = p.parse_args()
    reexec_in_venv()
    import warnings
    warnings.filterwarnings("ignore")
    import numpy as np
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
    keras = tf.keras
    ref = tf.lite.experimental.OpResolverType.BUILTIN_REF

    def run(tfl, xs):
        it = tf.lite.Interpreter(model_content=tfl, num_threads=1,
                                 experimental_op_resolver_type=ref)
        it.allocate_tensors()
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        out = []
        for x in xs:
            it.set_tensor(i["index"], x[None])
            it.invoke()
            out.append(np.array(it.get_tensor(o["index"]), dtype=np.float32).reshape(-1))
        return np.stack(out)

    def metrics(q, f):
        mae = float(np.mean(np.abs(q.astype(np.float64) - f.astype(np.float64))))
        top1 = float(np.mean(np.argmax(q, 1) == np.argmax(f, 1)))
        return mae, top1

    rows = []
    for name, shape, build, data, classes in models(keras, np):
        keras.utils.set_random_seed(1234)
        rng = np.random.default_rng(sum(map(ord, name)))
        xtr, ytr = data(rng, 2048)
        xcal, _ = data(rng, CALIBRATION)
        xte, _ = data(rng, TEST)
        m = build()
        m.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        with contextlib.redirect_stdout(io.StringIO()):
            hist = m.fit(xtr, ytr, epochs=EPOCHS, batch_size=64, verbose=0, shuffle=True)
        acc = hist.history["accuracy"][-1]
        with contextlib.redirect_stdout(io.StringIO()):  # Keras prints the signature
            f32 = tf.lite.TFLiteConverter.from_keras_model(m).convert()
            conv = tf.lite.TFLiteConverter.from_keras_model(m)
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ([x[None]] for x in xcal)
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            i8 = conv.convert()
        yf = run(f32, xte)
        yt = run(i8, xte)
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "float.tflite"), "wb").write(f32)
        open(os.path.join(d, "tflite_int8.tflite"), "wb").write(i8)
        for fname, a in [("calib.bin", xcal), ("test.bin", xte), ("float.bin", yf),
                         ("tflite_int8.bin", yt)]:
            open(os.path.join(d, fname), "wb").write(np.ascontiguousarray(a, "<f4").tobytes())
        # edgemm through its command line, on the same calibration samples.
        with tempfile.TemporaryDirectory() as tmp:
            cal = os.path.join(tmp, "cal")
            os.makedirs(cal)
            for k, x in enumerate(xcal):
                x.astype("<f4").tofile(os.path.join(cal, "%03d.in0.bin" % k))
            blob = os.path.join(tmp, "q.egm")
            subprocess.check_call(
                [args.edgemm, "convert", os.path.join(d, "float.tflite"), "-o", blob,
                 "--transforms", "strip_unused remove_nodes fold_constants fuse_activations "
                 "merge_duplicates sort_by_execution_order quantize(calibration=%s, io=float)" % cal],
                stderr=subprocess.DEVNULL)
            ye = []
            for k, x in enumerate(xte):
                xi, yo = os.path.join(tmp, "x.bin"), os.path.join(tmp, "y.bin")
                x.astype("<f4").tofile(xi)
                subprocess.check_call([args.edgemm, "run", blob, "--input", xi, "--output", yo],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                ye.append(np.fromfile(yo, dtype="<f4"))
            ye = np.stack(ye)
        (me, te), (mt, tt) = metrics(ye, yf), metrics(yt, yf)
        rows.append((name, acc, me, te, mt, tt))
        print("%-6s train acc %.2f  edgemm MAE %.3e top-1 %.3f  TFLite MAE %.3e top-1 %.3f"
              % (name, acc, me, te, mt, tt), flush=True)
    lines = [
        "# Quantization quality, made by scripts/quant-quality.py (do not edit by hand).",
        "# tensorflow-cpu %s; %d calibration samples, %d test inputs, %d epochs of training;"
        % (tf.__version__, CALIBRATION, TEST, EPOCHS),
        "# MAE: mean |int8 - float| over every output value (softmax probabilities); top-1: share",
        "# of test inputs whose argmax is the float model's. Both against TFLite's float model.",
        "# model train_acc edgemm_mae edgemm_top1 tflite_mae tflite_top1",
    ] + ["%s %.3f %.4e %.4f %.4e %.4f" % r for r in rows]
    open(os.path.join(args.out, "RESULTS"), "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
