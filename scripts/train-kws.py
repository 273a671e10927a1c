#!/usr/bin/env python3
"""Train the keyword model of tests/kws/ on synthetic speech (run by hand, never by CI).

Usage:  scripts/train-kws.sh [--out DIR] [--work DIR] [--epochs N] [--channels C] [--copies N]
        [--lr step|cosine] [--venv DIR]   (the defaults made tests/kws/kws_int8.tflite)
        (the wrapper installs espeak-ng; this script needs it on PATH)

Runs inside the models venv (default $EDGEMM_MODELS_VENV, else /work/venv-models; the pinned
scripts/requirements-models.txt, made/refreshed by scripts/make-test-models.py, which this
script calls if the venv is missing) and re-executes itself there. Nothing is downloaded: the
speech is espeak-ng's, the noise is synthesized, every random choice comes from fixed seeds.

1. Data set, Speech Commands style, 12 labels: silence, unknown, yes no up down left right on
   off stop go. A "voice" is an espeak-ng English accent (8) with a voice variant (~100:
   m1-m8, f1-f5, klatt*, whisper, croak, ...). The variants are split three ways by a seeded
   shuffle: training, validation (epoch selection), test. No test variant is ever heard in
   training, in any accent. Each clip: one word at a random speed (110-220 words/min), pitch
   (15-85), punctuation (intonation), resampled 22.05 -> 16 kHz by FFT, trimmed, placed at a
   random time in one second (now and then cut by up to 10%), peak level -30..-1 dBFS, a
   random microphone response (high-pass 50-400 Hz, low-pass 3.5-8 kHz, tilt), sometimes
   room reverberation, background noise (white, pink, brown, mains hum, babble of other
   words, or none) at 5-40 dB SNR, rounded to 16-bit PCM. "unknown" is one of 25 other
   Speech Commands words; "silence" is background noise alone (no babble; -90..-25 dBFS, or zero).
2. Features: exactly edgemm::audio's definition, computed by tf.signal as
   scripts/make-audio-fixtures.py computes the frontend's fixtures (tests/audio_frontend.rs
   checks the crate against that within its bound): 49 frames x 10 MFCCs of the int16
   samples / 32768.
3. Model: DS-CNN (MLPerf Tiny KWS): 49x10x1 -> conv 10x4 stride 2, C channels -> 4 x
   (depthwise 3x3, pointwise C), batch norm + ReLU after each -> average pool -> FC 12 ->
   softmax; dropout in training. Adam, seeded, the epoch with the best validation accuracy
   kept. Converted to full-integer int8 (int8 input and output) by the TFLite converter with
   a representative set of training features.
4. Evaluation on the test voices, by the int8 model in the TFLite interpreter's reference
   kernels: top-1 over the keyword clips, silence and unknown separately, the confusion
   matrix; with and without the noise/microphone augmentation.

Writes to --out (default tests/kws/): kws_int8.tflite, REPORT.md (settings, accuracies,
confusion matrix, timings), a few one-second 16-bit WAVs of test voices (<word>.wav, chosen
among the clips the int8 model classifies right with a margin), stream.wav (several words in
noise, for --stream), and expected.txt (per WAV: the label and TFLite's int8 scores).
"""

import argparse
import concurrent.futures
import io
import os
import shutil
import subprocess
import sys
import time
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RATE = 16000
KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
LABELS = ["silence", "unknown"] + KEYWORDS
# Speech Commands' other words (its "unknown" class).
UNKNOWN_WORDS = ["bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
                 "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                 "backward", "forward", "follow", "learn", "visual"]
ACCENTS = ["en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd",
           "en-029", "en-us-nyc"]
SEED = 20261203


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(ROOT, "tests", "kws"))
    p.add_argument("--work", default=os.environ.get("EDGEMM_KWS_WORK", "/tmp/edgemm-kws"),
                   help="cache of the synthesized clips and features (not committed; delete it after "
                        "changing the synthesis or augmentation)")
    p.add_argument("--venv", default=os.environ.get("EDGEMM_MODELS_VENV", "/work/venv-models"))
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--copies", type=int, default=2,
                   help="augmented training examples per synthesized keyword clip")
    p.add_argument("--lr", choices=["step", "cosine"], default="cosine",
                   help="learning rate: 2e-3, 5e-4 from 60%% of the epochs, 1e-4 from 85%% (step); "
                        "or one warm-up epoch to 2e-3, then a cosine decay to 1e-4 (cosine)")
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args()


def bootstrap(args):
    if os.path.realpath(sys.prefix) == os.path.realpath(args.venv):
        return
    py = os.path.join(args.venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, os.path.join(HERE, "make-test-models.py"),
                               "--venv", args.venv, "--list"])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0",
               CUDA_VISIBLE_DEVICES="")
    os.execve(py, [py, os.path.abspath(__file__)] + sys.argv[1:], env)


# ------------------------------------------------------------------------------------------
# synthesis
# ------------------------------------------------------------------------------------------

def variants():
    d = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    data = d.split("Data at:")[-1].strip() if "Data at:" in d else \
        "/usr/lib/x86_64-linux-gnu/espeak-ng-data"
    names = sorted(n for n in os.listdir(os.path.join(data, "voices", "!v")) if " " not in n)
    return names


def split_voices(np, names):
    order = list(names)
    np.random.default_rng(SEED).shuffle(order)
    n_test = max(1, len(order) * 15 // 100)
    n_val = max(1, len(order) * 10 // 100)
    return {"test": sorted(order[:n_test]), "val": sorted(order[n_test:n_test + n_val]),
            "train": sorted(order[n_test + n_val:])}


def espeak(job):
    """One espeak-ng clip as int16 samples at 22050 Hz (job: accent, variant, text, speed, pitch)."""
    accent, variant, text, speed, pitch = job
    out = subprocess.run(["espeak-ng", "-v", "%s+%s" % (accent, variant), "-s", str(speed),
                          "-p", str(pitch), "--stdout", text], capture_output=True, check=True)
    raw = out.stdout
    i = raw.find(b"data")
    return raw[i + 8:] if i >= 0 else b""


def synth_jobs(np, split, voices):
    """The clips of one split: (label, job) pairs, seeded per split."""
    rng = np.random.default_rng([SEED, ["train", "val", "test"].index(split)])
    jobs = []
    for accent in ACCENTS:
        for v in voices:
            words = [(w, w) for w in KEYWORDS]
            words += [("unknown", u) for u in rng.choice(UNKNOWN_WORDS, 4, replace=False)]
            for label, w in words:
                text = w + str(rng.choice([".", "!", "?", ""]))
                jobs.append((label, (accent, v, text, int(rng.integers(110, 221)),
                                     int(rng.integers(15, 86)))))
    return jobs


def resample(np, x):
    """22050 -> 16000 Hz by FFT (band-limited to 7.6 kHz), on a zero-padded copy."""
    pad = np.concatenate([np.zeros(1024), x, np.zeros(1024)])
    n_out = int(round(len(pad) * RATE / 22050))
    spec = np.fft.rfft(pad)[: n_out // 2 + 1]
    f = np.arange(len(spec)) * RATE / n_out
    spec *= np.clip((8000 - f) / 400, 0, 1)
    y = np.fft.irfft(spec, n_out) * (n_out / len(pad))
    return y


def trim(np, x):
    """The part of x above -40 dB of its loudest 10 ms, with 20 ms margins."""
    n = len(x) // 160
    if n == 0:
        return x
    e = np.sqrt((x[: n * 160].reshape(n, 160) ** 2).mean(1))
    on = np.nonzero(e > e.max() * 0.01)[0]
    if len(on) == 0:
        return x[:0]
    a, b = max(0, (on[0] - 2) * 160), min(len(x), (on[-1] + 3) * 160)
    return x[a:b]


def synthesize(np, work, threads):
    """Synthesizes (or loads from the cache) every split's clips, 16 kHz float, trimmed."""
    names = variants()
    split = split_voices(np, names)
    os.makedirs(work, exist_ok=True)
    data = {}
    for s in ("train", "val", "test"):
        path = os.path.join(work, "%s.npz" % s)
        jobs = synth_jobs(np, s, split[s])
        key = repr(jobs)
        if os.path.exists(path):
            z = np.load(path, allow_pickle=True)
            if str(z["key"]) == key:  # the same voices, words and settings
                data[s] = list(zip(z["labels"], z["voices"], z["clips"]))
                continue
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(threads + 1) as ex:
            raws = list(ex.map(espeak, [j for _, j in jobs]))
        clips = [trim(np, resample(np, np.frombuffer(r, "<i2").astype(np.float64) / 32768))
                 for r in raws]
        labels = [l for l, _ in jobs]
        vs = ["%s+%s" % (j[0], j[1]) for _, j in jobs]
        obj = np.empty(len(clips), object)
        obj[:] = clips
        np.savez(path, key=key, labels=labels, voices=vs, clips=obj)
        print("synthesized %s: %d clips in %.0f s" % (s, len(clips), time.time() - t0),
              flush=True)
        data[s] = list(zip(labels, vs, clips))
    return split, data


# ------------------------------------------------------------------------------------------
# augmentation
# ------------------------------------------------------------------------------------------

def colored_noise(np, rng, n, kind):
    if kind == "white":
        return rng.standard_normal(n)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.arange(len(spec)), 1.0)
    spec /= f ** (0.5 if kind == "pink" else 1.0)
    return np.fft.irfft(spec, n)


def background(np, rng, n, babble_pool):
    """Unit-RMS noise of a random kind; babble (other words) only if a pool is given."""
    kinds, p = ["white", "pink", "brown", "hum", "babble"], [.2, .3, .2, .1, .2]
    kind = rng.choice(kinds, p=p) if babble_pool else rng.choice(kinds[:4], p=[.25, .4, .2, .15])
    if kind == "hum":
        t = np.arange(n) / RATE
        f0 = rng.choice([50.0, 60.0])
        x = sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6))
                for k in range(1, 8)) + 0.05 * colored_noise(np, rng, n, "pink")
    elif kind == "babble":
        x = np.zeros(n)
        for _ in range(int(rng.integers(2, 6))):
            c = babble_pool[int(rng.integers(len(babble_pool)))][:n]
            o = int(rng.integers(0, n - len(c) + 1))
            x[o:o + len(c)] += c * rng.uniform(0.3, 1)
        x += 0.01 * colored_noise(np, rng, n, "pink")
    else:
        x = colored_noise(np, rng, n, kind)
    return x / (np.sqrt((x ** 2).mean()) + 1e-12)


def microphone(np, rng, x):
    """A random smooth frequency response (high-pass, low-pass, tilt) and maybe a room."""
    n = len(x)
    spec = np.fft.rfft(x, 2 * n)
    f = np.arange(len(spec)) * RATE / (2 * n)
    hp, lp = rng.uniform(50, 400), rng.uniform(3500, 8000)
    tilt = rng.uniform(-6, 6)  # dB from 0 to 8 kHz
    h = (f / hp) ** 2 / (1 + (f / hp) ** 2)
    h = h / (1 + (f / lp) ** 4)
    h = np.sqrt(h) * 10 ** (tilt * f / 8000 / 20)
    if rng.random() < 0.3:
        rt60 = rng.uniform(0.1, 0.5)
        m = int(rt60 * RATE)
        ir = rng.standard_normal(m) * np.exp(-6.9 * np.arange(m) / m)
        ir *= rng.uniform(0.1, 0.5) / np.sqrt((ir ** 2).sum())
        ir[0] += 1.0
        h = h * np.fft.rfft(ir, 2 * n)
    return np.fft.irfft(spec * h, 2 * n)[:n]


def augment(np, rng, label, clip, babble_pool, noisy=True):
    """One second of 16-bit PCM from a trimmed clip (or from nothing for silence)."""
    x = np.zeros(RATE)
    if label != "silence":
        c = clip[:RATE]
        lo = -int(0.1 * len(c)) if rng.random() < 0.2 else 0
        hi = RATE - len(c) + (int(0.1 * len(c)) if rng.random() < 0.2 else 0)
        o = int(rng.integers(lo, max(lo, hi) + 1))
        a, b = max(o, 0), min(o + len(c), RATE)
        x[a:b] = c[a - o:b - o]
        if noisy:
            x = microphone(np, rng, x)
        x *= 10 ** (rng.uniform(-30, -1) / 20) / (np.abs(x).max() + 1e-12)
        if noisy and rng.random() < 0.85:
            rms = np.sqrt((x[a:b] ** 2).mean()) if b > a else 0.0
            snr = rng.uniform(5, 40)
            x += background(np, rng, RATE, babble_pool) * rms * 10 ** (-snr / 20)
        else:
            x += rng.standard_normal(RATE) * 10 ** (-85 / 20)
    elif rng.random() > 0.03:
        # No babble: other words in the background would be "unknown", not silence.
        x = background(np, rng, RATE, None) * 10 ** (rng.uniform(-90, -25) / 20)
        if rng.random() < 0.5:
            x = microphone(np, rng, x)
    return np.clip(np.round(x * 32768), -32768, 32767).astype("<i2")


def make_set(np, rng, items, copies, silence_count, babble_pool, noisy=True):
    pcm, labels, voices = [], [], []
    for label, voice, clip in items:
        for _ in range(copies if label != "unknown" else 1):
            pcm.append(augment(np, rng, label, clip, babble_pool, noisy))
            labels.append(LABELS.index(label))
            voices.append(voice)
    for _ in range(silence_count):
        pcm.append(augment(np, rng, "silence", None, babble_pool, noisy))
        labels.append(0)
        voices.append("-")
    return np.stack(pcm), np.array(labels), voices


# ------------------------------------------------------------------------------------------
# features, model, evaluation
# ------------------------------------------------------------------------------------------

def mfcc(tf, np, pcm):
    """edgemm::audio's features of int16 clips [n, 16000] -> [n, 49, 10] (tf.signal)."""
    out = []
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=40, num_spectrogram_bins=257, sample_rate=16000,
        lower_edge_hertz=20.0, upper_edge_hertz=4000.0)
    for i in range(0, len(pcm), 512):
        x = tf.constant(pcm[i:i + 512].astype(np.float32) / 32768.0)
        stft = tf.signal.stft(x, frame_length=480, frame_step=320, fft_length=512,
                              window_fn=lambda n, dtype: tf.signal.hann_window(
                                  n, periodic=True, dtype=dtype))
        mel = tf.tensordot(tf.abs(stft), mel_matrix, 1)
        log_mel = tf.math.log(mel + 1e-6)
        out.append(tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :10].numpy())
    return np.concatenate(out)


def ds_cnn(keras, channels, batch_size=None, dropout=True):
    L = keras.layers
    i = keras.Input((49, 10, 1), batch_size=batch_size, name="input")
    x = L.Conv2D(channels, (10, 4), strides=(2, 2), padding="same")(i)
    x = L.ReLU()(L.BatchNormalization()(x))
    if dropout:
        x = L.Dropout(0.2)(x)
    for _ in range(4):
        x = L.DepthwiseConv2D((3, 3), padding="same")(x)
        x = L.ReLU()(L.BatchNormalization()(x))
        x = L.Conv2D(channels, (1, 1), padding="same")(x)
        x = L.ReLU()(L.BatchNormalization()(x))
    if dropout:
        x = L.Dropout(0.4)(x)
    x = L.AveragePooling2D(pool_size=(25, 5))(x)
    x = L.Flatten()(x)
    x = L.Dense(len(LABELS), activation="softmax")(x)
    return keras.Model(i, x, name="ds_cnn_kws")


def tflite_scores(tf, np, tfl, feats):
    it = tf.lite.Interpreter(model_content=tfl, experimental_op_resolver_type=(
        tf.lite.experimental.OpResolverType.BUILTIN_REF))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    s_in, z_in = inp["quantization"]
    s_out, z_out = out["quantization"]
    raw = np.zeros((len(feats), len(LABELS)), np.int8)
    for k, f in enumerate(feats):
        q = np.clip(np.round(f / s_in) + z_in, -128, 127).astype(np.int8)
        it.set_tensor(inp["index"], q.reshape(inp["shape"]))
        it.invoke()
        raw[k] = it.get_tensor(out["index"]).reshape(-1)
    return raw, (raw.astype(np.float32) - z_out) * s_out


def confusion(np, labels, pred):
    m = np.zeros((len(LABELS), len(LABELS)), int)
    for a, b in zip(labels, pred):
        m[a, b] += 1
    return m


def accuracy_lines(np, labels, pred):
    kw = labels >= 2
    lines = ["- keywords (%d clips): top-1 %.1f%%" % (kw.sum(), 100 * (pred[kw] == labels[kw]).mean())]
    for k, name in ((0, "silence"), (1, "unknown")):
        sel = labels == k
        lines.append("- %s (%d clips): %.1f%% classified %s" % (name, sel.sum(),
                     100 * (pred[sel] == k).mean(), name))
    fa = (pred[labels < 2] >= 2).mean()
    lines.append("- silence or unknown taken for a keyword: %.1f%%" % (100 * fa))
    return lines


def matrix_md(m):
    head = "| true \\ predicted | " + " | ".join(LABELS) + " |"
    rows = [head, "|" + "---|" * (len(LABELS) + 1)]
    for i, name in enumerate(LABELS):
        rows.append("| **%s** | " % name + " | ".join(str(v) for v in m[i]) + " |")
    return rows


def write_wav(path, pcm):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.astype("<i2").tobytes())


def main():
    args = parse_args()
    bootstrap(args)
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng not found: run scripts/train-kws.sh (it installs it)")
    import numpy as np
    import tensorflow as tf
    import keras
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    t_start = time.time()
    espeak_version = subprocess.run(["espeak-ng", "--version"], capture_output=True,
                                    text=True).stdout.strip()

    split, data = synthesize(np, args.work, args.threads)
    t_synth = time.time() - t_start
    babble = [c for l, _, c in data["train"] if l == "unknown"]
    babble_test = [c for l, _, c in data["test"] if l == "unknown"]
    cache = os.path.join(args.work, "features-%d.npz" % args.copies)
    if os.path.exists(cache):
        z = np.load(cache)
        tr_x, tr_y, va_x, va_y, te_x, te_y, te_pcm, cl_x, cl_y = (
            z[k] for k in "tr_x tr_y va_x va_y te_x te_y te_pcm cl_x cl_y".split())
    else:
        rng = np.random.default_rng([SEED, 1])
        n_kw = sum(1 for l, _, _ in data["train"] if l in KEYWORDS) // len(KEYWORDS)
        tr_pcm, tr_y, _ = make_set(np, rng, data["train"], args.copies, n_kw * args.copies,
                                   babble)
        n_val = sum(1 for l, _, _ in data["val"] if l == "yes")
        va_pcm, va_y, _ = make_set(np, np.random.default_rng([SEED, 2]), data["val"], 1, n_val,
                                   babble)
        n_test = sum(1 for l, _, _ in data["test"] if l == "yes")
        te_pcm, te_y, _ = make_set(np, np.random.default_rng([SEED, 3]), data["test"], 1,
                                   n_test, babble_test)
        cl_pcm, cl_y, _ = make_set(np, np.random.default_rng([SEED, 4]), data["test"], 1,
                                   n_test, babble_test, noisy=False)
        tr_x, va_x, te_x, cl_x = (mfcc(tf, np, p) for p in (tr_pcm, va_pcm, te_pcm, cl_pcm))
        np.savez(cache, tr_x=tr_x, tr_y=tr_y, va_x=va_x, va_y=va_y, te_x=te_x, te_y=te_y,
                 te_pcm=te_pcm, cl_x=cl_x, cl_y=cl_y)
    t_feat = time.time() - t_start - t_synth
    print("train %d, val %d, test %d examples; features in %.0f s"
          % (len(tr_y), len(va_y), len(te_y), t_feat), flush=True)

    keras.utils.set_random_seed(SEED)
    model = ds_cnn(keras, args.channels)
    steps = (len(tr_y) + 99) // 100
    if args.lr == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            0.0, steps * (args.epochs - 1), alpha=0.05, warmup_target=2e-3, warmup_steps=steps)
    else:
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(
            [steps * args.epochs * 6 // 10, steps * args.epochs * 85 // 100], [2e-3, 5e-4, 1e-4])
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    best, best_w, history = -1.0, None, []
    t0 = time.time()
    for epoch in range(args.epochs):
        h = model.fit(tr_x[..., None], tr_y, batch_size=100, epochs=1, verbose=0, shuffle=True)
        va = (model.predict(va_x[..., None], batch_size=500, verbose=0).argmax(1) == va_y).mean()
        history.append((epoch + 1, h.history["accuracy"][0], va))
        print("epoch %2d  train %.3f  val %.3f  (%.0f s)" % (epoch + 1, h.history["accuracy"][0],
              va, time.time() - t0), flush=True)
        if va > best:
            best, best_w = va, model.get_weights()
    t_train = time.time() - t0
    model.set_weights(best_w)
    f32_pred = model.predict(te_x[..., None], batch_size=500, verbose=0).argmax(1)

    infer = ds_cnn(keras, args.channels, batch_size=1, dropout=False)
    infer.set_weights(best_w)
    calib = tr_x[np.random.default_rng([SEED, 5]).choice(len(tr_x), 400, replace=False)]
    conv = tf.lite.TFLiteConverter.from_keras_model(infer)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([c[None, :, :, None].astype(np.float32)]
                                           for c in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    tfl = conv.convert()

    _, te_s = tflite_scores(tf, np, tfl, te_x)
    _, cl_s = tflite_scores(tf, np, tfl, cl_x)
    _, va_s = tflite_scores(tf, np, tfl, va_x)
    te_pred, cl_pred, va_pred = te_s.argmax(1), cl_s.argmax(1), va_s.argmax(1)

    # Fixtures.
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "kws_int8.tflite"), "wb") as f:
        f.write(tfl)
    pick_rng = np.random.default_rng([SEED, 6])
    chosen = []
    for want in ["yes", "no", "left", "stop", "go", "silence", "unknown"]:
        k = LABELS.index(want)
        ok = [i for i in range(len(te_y)) if te_y[i] == k and te_pred[i] == k
              and te_s[i, k] >= 0.8]
        if not ok:  # a weak model: its best clip of the class
            ok = [max((i for i in range(len(te_y)) if te_y[i] == k), key=lambda i: te_s[i, k])]
        chosen.append((want, int(pick_rng.choice(ok))))
    expected = ["# file label int8-scores(%s) -- TFLite reference kernels, features by tf.signal"
                % ",".join(LABELS)]
    for name, i in chosen:
        write_wav(os.path.join(args.out, name + ".wav"), te_pcm[i])
        expected.append("%s.wav %s %s" % (name, name, " ".join("%.6f" % s for s in te_s[i])))
    # stream.wav: eight seconds of pink noise at -55 dBFS with five words of test voices.
    srng = np.random.default_rng([SEED, 7])
    stream = colored_noise(np, srng, 8 * RATE, "pink")
    stream *= 10 ** (-55 / 20) / np.sqrt((stream ** 2).mean())
    script = [("yes", 0.5), ("unknown", 2.0), ("stop", 3.5), ("go", 5.0), ("right", 6.5)]
    placed = []
    for word, at in script:
        cands = [c for l, v, c in data["test"] if l == word and len(c) < 0.9 * RATE]
        c = cands[int(srng.integers(len(cands)))]
        c = c * 10 ** (srng.uniform(-14, -6) / 20) / np.abs(c).max()
        o = int(at * RATE)
        stream[o:o + len(c)] += c
        placed.append("%s@%.2f-%.2fs" % (word, at, at + len(c) / RATE))
    stream_pcm = np.clip(np.round(stream * 32768), -32768, 32767).astype("<i2")
    write_wav(os.path.join(args.out, "stream.wav"), stream_pcm)
    expected.append("# stream.wav: %s" % " ".join(placed))
    with open(os.path.join(args.out, "expected.txt"), "w") as f:
        f.write("\n".join(expected) + "\n")

    m = confusion(np, te_y, te_pred)
    params = model.count_params()
    rep = ["# Keyword model: accuracy on held-out synthetic voices", "",
           "Made by `scripts/train-kws.sh` (%s; TensorFlow %s; %s)." % (
               time.strftime("%Y-%m-%d", time.gmtime()), tf.__version__, espeak_version), "",
           "- Model: DS-CNN, %d channels, %d parameters, int8 TFLite %d bytes (`kws_int8.tflite`)"
           % (args.channels, params, len(tfl)),
           "- Voices: espeak-ng accents %s, each with the voice variants of its split:" %
           ", ".join(ACCENTS),
           "  - train (%d): %s" % (len(split["train"]), " ".join(split["train"])),
           "  - validation (%d, epoch selection): %s" % (len(split["val"]), " ".join(split["val"])),
           "  - **test (%d, never trained on)**: %s" % (len(split["test"]), " ".join(split["test"])),
           "- Examples: train %d (%d augmented copies per keyword clip), validation %d, test %d"
           % (len(tr_y), args.copies, len(va_y), len(te_y)),
           "- Training: %d epochs, %s learning rate, best validation accuracy %.1f%% (epoch %d); "
           "time: synthesis %.0f s, features %.0f s, training %.0f s (2 shared cores)"
           % (args.epochs, args.lr, 100 * best, max(history, key=lambda h: h[2])[0], t_synth,
              t_feat, t_train), "",
           "## Validation voices (model selection), int8 model", "",
           "- all clips (%d): %.1f%%" % (len(va_y), 100 * (va_pred == va_y).mean())] + \
        accuracy_lines(np, va_y, va_pred) + ["",
           "## Test voices, int8 model (TFLite reference kernels)", "",
           "With the training's augmentation (microphone response, reverberation, noise at "
           "5-40 dB SNR):", ""] + accuracy_lines(np, te_y, te_pred) + [
           "", "Clean (no microphone, no noise; level and timing still random):", ""] + \
        accuracy_lines(np, cl_y, cl_pred) + [
           "", "Float model, augmented test set: keywords top-1 %.1f%%." %
           (100 * (f32_pred[te_y >= 2] == te_y[te_y >= 2]).mean()), "",
           "Confusion matrix (augmented test set, int8; rows: true label, columns: predicted):",
           ""] + matrix_md(m) + ["", "Per epoch (train accuracy with dropout, validation):", "",
                                  "```"] + \
        ["%2d  %.3f  %.3f" % h for h in history] + ["```", ""]
    with open(os.path.join(args.out, "REPORT.md"), "w") as f:
        f.write("\n".join(rep))
    print("\n".join(rep))
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print("wrote %s (%d KB) in %.0f s" % (args.out, total // 1024, time.time() - t_start))


if __name__ == "__main__":
    main()
