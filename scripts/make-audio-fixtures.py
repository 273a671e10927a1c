#!/usr/bin/env python3
"""Make the audio frontend's fixtures under tests/audio/ (run by hand, never by CI).

Usage:  python3 scripts/make-audio-fixtures.py [--out DIR] [--venv DIR]

Runs inside the models venv (default $EDGEMM_MODELS_VENV, else /work/venv-models; make it with
scripts/make-test-models.py, which installs the pinned tensorflow-cpu 2.21 and numpy) and
re-executes itself there. Every signal is synthesized from a fixed seed; nothing is downloaded.

Writes, for each 1-second test signal <name> (16 kHz mono, 16-bit PCM):

    <name>.wav         the signal
    <name>.mfcc.f32    tf.signal's MFCCs of the same int16 samples scaled by 1/32768:
                       49 frames x 10 coefficients, raw little-endian f32, frame-major

computed as the keyword model's training computes them: stft(frame_length=480,
frame_step=320, fft_length=512, window_fn=hann_window(periodic=True)), abs, tensordot with
linear_to_mel_weight_matrix(40, 257, 16000, 20, 4000), log(mel + 1e-6),
mfccs_from_log_mel_spectrograms, the first 10. And for the converter:

    stereo44k.wav      0.25 s, 44.1 kHz, 2 channels, 16-bit: left 0.5 sin(2 pi 1000 t),
                       right 0.1 sin(2 pi 3000 t) (the mix-down is their mean)
"""

import argparse
import os
import sys
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RATE = 16000


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(ROOT, "tests", "audio"))
    p.add_argument("--venv", default=os.environ.get("EDGEMM_MODELS_VENV", "/work/venv-models"))
    return p.parse_args()


def bootstrap(args):
    if os.path.realpath(sys.prefix) == os.path.realpath(args.venv):
        return
    py = os.path.join(args.venv, "bin", "python")
    if not os.path.exists(py):
        sys.exit("no venv at %s: run scripts/make-test-models.py once to make it" % args.venv)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0",
               CUDA_VISIBLE_DEVICES="")
    os.execve(py, [py, os.path.abspath(__file__)] + sys.argv[1:], env)


def signals(np):
    t = np.arange(RATE) / RATE
    rng = np.random.default_rng(20261203)
    sin = lambda f: np.sin(2 * np.pi * f * t)
    # Linear chirp 100 Hz -> 6 kHz over the second.
    chirp = np.sin(2 * np.pi * (100 * t + 0.5 * (6000 - 100) * t * t))
    # Speech-like: noise shaped by a slow syllable envelope.
    envelope = 0.5 - 0.5 * np.cos(2 * np.pi * 3 * t)
    return {
        "tone440": 0.5 * sin(440),
        "tones": 0.3 * sin(1000) + 0.2 * sin(2500) + 0.1 * sin(150),
        "chirp": 0.5 * chirp,
        "noise": 0.1 * rng.standard_normal(RATE),
        "bursts": 0.3 * envelope * rng.standard_normal(RATE),
        "silence": np.zeros(RATE),
        "clipped": np.clip(1.5 * sin(300), -1, 1),
    }


def to_int16(np, x):
    return np.clip(np.round(x * 32768), -32768, 32767).astype("<i2")


def write_wav(path, samples, rate, channels=1):
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def mfcc(tf, pcm):
    x = tf.constant(pcm)
    stft = tf.signal.stft(x, frame_length=480, frame_step=320, fft_length=512,
                          window_fn=lambda n, dtype: tf.signal.hann_window(n, periodic=True,
                                                                           dtype=dtype))
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=40, num_spectrogram_bins=257, sample_rate=16000,
        lower_edge_hertz=20.0, upper_edge_hertz=4000.0)
    mel = tf.tensordot(tf.abs(stft), mel_matrix, 1)
    log_mel = tf.math.log(mel + 1e-6)
    return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :10].numpy()


def main():
    args = parse_args()
    bootstrap(args)
    import numpy as np
    import tensorflow as tf

    os.makedirs(args.out, exist_ok=True)
    for name, x in signals(np).items():
        pcm16 = to_int16(np, x)
        write_wav(os.path.join(args.out, name + ".wav"), pcm16, RATE)
        feats = mfcc(tf, pcm16.astype(np.float32) / 32768.0)
        assert feats.shape == (49, 10), feats.shape
        feats.astype("<f4").tofile(os.path.join(args.out, name + ".mfcc.f32"))
        print("%-8s  mfcc[0] %8.3f .. %8.3f" % (name, feats[:, 0].min(), feats[:, 0].max()))

    n = 44100 // 4
    t = np.arange(n) / 44100
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 1000 * t), 0.1 * np.sin(2 * np.pi * 3000 * t)], 1)
    write_wav(os.path.join(args.out, "stereo44k.wav"), to_int16(np, stereo), 44100, channels=2)
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print("wrote %s (%d KB)" % (args.out, total // 1024))


if __name__ == "__main__":
    main()
