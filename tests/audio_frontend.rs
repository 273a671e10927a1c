//! The audio frontend against tf.signal (fixtures of scripts/make-audio-fixtures.py) and the
//! WAV reader and loader.

use edgemm::audio::{self, Wav, WavFormat};
use edgemm::Error;
use std::f64::consts::PI;

const CLIPS: [&str; 7] = [
    "tone440", "tones", "chirp", "noise", "bursts", "silence", "clipped",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/audio/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn read_f32(name: &str) -> Vec<f32> {
    fixture(name)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn pcm(name: &str) -> Vec<i16> {
    let bytes = fixture(&format!("{name}.wav"));
    let wav = Wav::parse(&bytes).unwrap();
    wav.pcm16_mono_16k().unwrap().iter().collect()
}

fn hz_to_mel(hz: f64) -> f64 {
    1127.0 * (1.0 + hz / 700.0).ln()
}

/// The f64 mel matrix of tf.signal.linear_to_mel_weight_matrix(40, 257, 16000, 20, 4000).
fn mel_matrix() -> Vec<[f64; 257]> {
    let (lo, hi) = (hz_to_mel(20.0), hz_to_mel(4000.0));
    let edge = |i: usize| lo + (hi - lo) * i as f64 / 41.0;
    (0..40)
        .map(|m| {
            let mut w = [0.0; 257];
            for (k, wk) in w.iter_mut().enumerate().skip(1) {
                let b = hz_to_mel(k as f64 * 31.25);
                let up = (b - edge(m)) / (edge(m + 1) - edge(m));
                let down = (edge(m + 2) - b) / (edge(m + 2) - edge(m + 1));
                *wk = up.min(down).max(0.0);
            }
            w
        })
        .collect()
}

/// Per frame, in f64: the mel energies E_m, the band weight sums W_m = Σₖ w_mk, the sums
/// S_m of |X[k]| over each band's bins widened by one bin each side, ‖X‖₂ over all 512 bins,
/// and the MFCCs.
struct Exact {
    mel: Vec<[f64; 40]>,
    wsum: [f64; 40],
    support: Vec<[f64; 40]>,
    norm: Vec<f64>,
    mfcc: Vec<[f64; 10]>,
}

fn exact(x: &[i16]) -> Exact {
    let w = mel_matrix();
    let wsum: [f64; 40] = std::array::from_fn(|m| w[m].iter().sum());
    let (mut mel, mut support, mut norm, mut mfcc) = (vec![], vec![], vec![], vec![]);
    for t in 0..audio::frame_count(x.len()) {
        let frame: Vec<f64> = (0..480)
            .map(|n| {
                let h = 0.5 - 0.5 * (2.0 * PI * n as f64 / 480.0).cos();
                x[t * 320 + n] as f64 / 32768.0 * h
            })
            .collect();
        let mag: Vec<f64> = (0..257)
            .map(|k| {
                let (mut re, mut im) = (0.0, 0.0);
                for (n, v) in frame.iter().enumerate() {
                    let a = -2.0 * PI * ((n * k) % 512) as f64 / 512.0;
                    re += v * a.cos();
                    im += v * a.sin();
                }
                (re * re + im * im).sqrt()
            })
            .collect();
        let e: [f64; 40] = std::array::from_fn(|m| (0..257).map(|k| w[m][k] * mag[k]).sum());
        let s: [f64; 40] = std::array::from_fn(|m| {
            let near = |k: usize| (k.saturating_sub(1)..=(k + 1).min(256)).any(|i| w[m][i] > 0.0);
            (0..257).filter(|&k| near(k)).map(|k| mag[k]).sum()
        });
        let c: [f64; 10] =
            std::array::from_fn(|j| (0..40).map(|m| (e[m] + 1e-6).ln() * dct(j, m)).sum::<f64>());
        mel.push(e);
        support.push(s);
        norm.push((512.0 * frame.iter().map(|v| v * v).sum::<f64>()).sqrt());
        mfcc.push(c);
    }
    Exact {
        mel,
        wsum,
        support,
        norm,
        mfcc,
    }
}

/// tf.signal.mfccs_from_log_mel_spectrograms' DCT-II entry: 2cos(πj(2m+1)/80)/√80.
fn dct(j: usize, m: usize) -> f64 {
    2.0 * (PI * j as f64 * (2 * m + 1) as f64 / 80.0).cos() / 80f64.sqrt()
}

/// The bound on |edgemm − tf.signal| for MFCC j of frame t (the README states it):
///
/// - Spectrum: each f32 FFT errs per bin by at most u·(24|X[k]| + 36‖X‖₂/√512) (u = 2⁻²⁴;
///   checked for edgemm's in src/audio/fft.rs; assumed for TensorFlow's), so through the mel
///   weights the two energies differ from E_m by at most
///   δ_m = 2u·(24 + 40)·E_m + 2·36u·‖X‖₂/√512·W_m + 2⁻¹⁷·S_m,
///   the last term for TensorFlow's mel weights, computed in f32 (mel values near 2000 carry
///   an absolute error near 2⁻¹³ over triangles 52 mel wide: 5e-6 per weight); the 40 covers
///   the weighted sums' and the + 1e-6's roundings.
/// - Log: both logs lie in [ln(max(E_m − δ_m, 0) + 1e-6), ln(E_m + δ_m + 1e-6)], so they differ
///   by at most L_m = ln((E_m + δ_m + 1e-6)/(max(E_m − δ_m, 0) + 1e-6)), plus 2⁻²³(1 + |ln|)
///   for each log's own error (edgemm's `math::ln` bound; TensorFlow's f32 log is within it).
///   This is where the offset 1e-6 matters: a band far above the floor gets L_m ≈ 2δ_m/E_m (a
///   relative error), a band near it a bound set by the f32 noise floor of the spectrum
///   relative to 1e-6 — large for pure tones, whose empty bands hold only rounding noise, and
///   exactly 0 for digital silence (E_m = δ_m = 0).
/// - DCT: Σ_m |D_jm|·L_m, plus 2·40u·Σ_m |D_jm|·|ln_m| for the two f32 sums.
fn bound(ex: &Exact, t: usize, j: usize) -> f64 {
    let u = 2f64.powi(-24);
    let mut b = 0.0;
    for m in 0..40 {
        let e = ex.mel[t][m];
        let delta = 2.0 * u * 64.0 * e
            + 72.0 * u * ex.norm[t] / 512f64.sqrt() * ex.wsum[m]
            + 2f64.powi(-17) * ex.support[t][m];
        let ln = (e + 1e-6).ln();
        let l = ((e + delta + 1e-6) / ((e - delta).max(0.0) + 1e-6)).ln()
            + 2.0 * 2f64.powi(-23) * (1.0 + ln.abs());
        b += dct(j, m).abs() * (l + 80.0 * u * ln.abs());
    }
    b
}

/// edgemm's MFCCs of every fixture are within `bound` of tf.signal's, and of the f64 exact
/// features (where only edgemm's half of the errors applies). Prints the largest errors and
/// bounds per clip.
#[test]
fn mfcc_matches_tf_signal() {
    for name in CLIPS {
        let x = pcm(name);
        let tf = read_f32(&format!("{name}.mfcc.f32"));
        assert_eq!(tf.len(), 490, "{name}");
        let mut ours = vec![f32::NAN; 500];
        assert_eq!(audio::mfcc(&x, &mut ours), Ok(49));
        assert!(
            ours[490..].iter().all(|v| v.is_nan()),
            "wrote past its frames"
        );
        let ex = exact(&x);
        let (mut worst_tf, mut worst_ex, mut worst_ratio, mut max_bound) =
            (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for t in 0..49 {
            for j in 0..10 {
                let (o, r, e) = (
                    ours[t * 10 + j] as f64,
                    tf[t * 10 + j] as f64,
                    ex.mfcc[t][j],
                );
                let b = bound(&ex, t, j);
                assert!(
                    (o - r).abs() <= b && (o - e).abs() <= b,
                    "{name} frame {t} mfcc {j}: edgemm {o}, tf.signal {r}, exact {e}, bound {b:e}"
                );
                worst_tf = worst_tf.max((o - r).abs());
                worst_ex = worst_ex.max((o - e).abs());
                worst_ratio = worst_ratio.max((o - r).abs() / b);
                max_bound = max_bound.max(b);
            }
        }
        println!(
            "{name:8} |edgemm - tf| <= {worst_tf:.2e}  |edgemm - f64| <= {worst_ex:.2e}  \
             largest error/bound {worst_ratio:.3}  largest bound {max_bound:.2e}"
        );
    }
}

/// A WAV file: `fmt` is the fmt chunk's body; `chunks` go between it and the data chunk.
fn wav_bytes(fmt: &[u8], chunks: &[(&[u8; 4], &[u8])], data: &[u8]) -> Vec<u8> {
    let mut body = b"WAVE".to_vec();
    let mut chunk = |id: &[u8], b: &[u8]| {
        body.extend_from_slice(id);
        body.extend_from_slice(&(b.len() as u32).to_le_bytes());
        body.extend_from_slice(b);
        if b.len() % 2 == 1 {
            body.push(0);
        }
    };
    chunk(b"fmt ", fmt);
    for (id, b) in chunks {
        chunk(*id, b);
    }
    chunk(b"data", data);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// A plain fmt chunk body (tag 1 PCM or 3 float).
fn fmt(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
    let align = channels * bits / 8;
    let mut f = Vec::new();
    f.extend_from_slice(&tag.to_le_bytes());
    f.extend_from_slice(&channels.to_le_bytes());
    f.extend_from_slice(&rate.to_le_bytes());
    f.extend_from_slice(&(rate * align as u32).to_le_bytes());
    f.extend_from_slice(&align.to_le_bytes());
    f.extend_from_slice(&bits.to_le_bytes());
    f
}

/// The WAVE_FORMAT_EXTENSIBLE form of `fmt(tag, ..)`.
fn fmt_extensible(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
    let mut f = fmt(0xfffe, channels, rate, bits);
    f.extend_from_slice(&22u16.to_le_bytes());
    f.extend_from_slice(&bits.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&tag.to_le_bytes());
    f.extend_from_slice(&[
        0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71,
    ]);
    f
}

fn audio_err(r: Result<impl std::fmt::Debug, Error>) -> String {
    match r {
        Err(e @ Error::Audio(_)) => e.to_string(),
        other => panic!("expected an audio error, got {other:?}"),
    }
}

#[test]
fn wav_reader_reads_fixtures() {
    for name in CLIPS {
        let bytes = fixture(&format!("{name}.wav"));
        let wav = Wav::parse(&bytes).unwrap();
        assert_eq!(
            (
                wav.format,
                wav.channels,
                wav.sample_rate,
                wav.bits,
                wav.frames()
            ),
            (WavFormat::Int, 1, 16000, 16, 16000)
        );
        let pcm = wav.pcm16_mono_16k().unwrap();
        assert_eq!(pcm.len(), 16000);
        let mut head = [0i16; 4];
        assert_eq!(pcm.copy_to(&mut head), 4);
        assert_eq!(head[..], pcm.iter().take(4).collect::<Vec<_>>()[..]);
        let mut tail = [7i16; 3];
        assert_eq!(pcm.copy_from(15998, &mut tail), 2);
        assert_eq!(tail[..2], pcm.iter().skip(15998).collect::<Vec<_>>()[..]);
        assert_eq!((tail[2], pcm.copy_from(16000, &mut tail)), (7, 0));
        assert_eq!(pcm.copy_from(usize::MAX, &mut tail), 0);
        // The host loader gives the same samples scaled by 1/32768.
        let f = audio::load_wav(&bytes).unwrap();
        assert!(f
            .iter()
            .zip(pcm.iter())
            .all(|(&a, b)| a == b as f32 / 32768.0));
        // And the f32 frontend the same features as the i16 one.
        let (mut a, mut b) = (vec![0.0; 490], vec![0.0; 490]);
        audio::mfcc(&f, &mut a).unwrap();
        audio::mfcc(&pcm.iter().collect::<Vec<_>>(), &mut b).unwrap();
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn firmware_format_errors_say_what_the_file_is() {
    let stereo = fixture("stereo44k.wav");
    let wav = Wav::parse(&stereo).unwrap();
    assert_eq!(
        (wav.channels, wav.sample_rate, wav.frames()),
        (2, 44100, 11025)
    );
    assert!(audio_err(wav.pcm16_mono_16k()).contains("2 channels"));
    let data = [0u8; 64];
    let mono44 = wav_bytes(&fmt(1, 1, 44100, 16), &[], &data);
    let e = audio_err(Wav::parse(&mono44).unwrap().pcm16_mono_16k());
    assert!(
        e.contains("sample rate 44100 Hz") && e.starts_with("WAV file (byte"),
        "{e}"
    );
    let f32wav = wav_bytes(&fmt(3, 1, 16000, 32), &[], &data);
    assert!(audio_err(Wav::parse(&f32wav).unwrap().pcm16_mono_16k()).contains("32-bit float"));
    let u8wav = wav_bytes(&fmt(1, 1, 16000, 8), &[], &data);
    assert!(audio_err(Wav::parse(&u8wav).unwrap().pcm16_mono_16k()).contains("8-bit integer"));
}

/// Every sample format, plain and extensible, with other chunks (odd-sized, padded) around,
/// loads to the same values.
#[test]
fn loader_converts_every_format() {
    let x: Vec<f64> = (0..800).map(|i| 0.6 * ((i as f64) * 0.05).sin()).collect();
    let enc = |bits: u16, float: bool| -> Vec<u8> {
        let mut d = Vec::new();
        for &v in &x {
            match (bits, float) {
                (32, true) => d.extend_from_slice(&(v as f32).to_le_bytes()),
                (8, _) => d.push((128.0 + (v * 128.0).round()) as u8),
                (16, _) => d.extend_from_slice(&((v * 32768.0).round() as i16).to_le_bytes()),
                (24, _) => {
                    d.extend_from_slice(&((v * 8388608.0).round() as i32).to_le_bytes()[..3])
                }
                _ => d.extend_from_slice(&((v * 2147483648.0).round() as i32).to_le_bytes()),
            }
        }
        d
    };
    let formats = [
        (8, false, 1.0 / 256.0),
        (16, false, 1e-4),
        (24, false, 1e-6),
        (32, false, 1e-6),
        (32, true, 1e-6),
    ];
    for (bits, float, tol) in formats {
        let tag = if float { 3 } else { 1 };
        let data = enc(bits, float);
        for f in [
            fmt(tag, 1, 16000, bits),
            fmt_extensible(tag, 1, 16000, bits),
        ] {
            let file = wav_bytes(&f, &[(b"LIST", b"odd"), (b"fact", &[0; 4])], &data);
            let y = audio::load_wav(&file).unwrap();
            assert_eq!(y.len(), x.len());
            for (a, b) in y.iter().zip(&x) {
                assert!(
                    (*a as f64 - b).abs() <= tol,
                    "{bits}-bit float={float}: {a} vs {b}"
                );
            }
        }
    }
    // Three channels average: (x, −x, 3x)/3 → x/3.
    let mut d = Vec::new();
    for &v in &x {
        for c in [v, -v, 3.0 * v] {
            d.extend_from_slice(&((c / 3.0) as f32).to_le_bytes());
        }
    }
    let y = audio::load_wav(&wav_bytes(&fmt(3, 3, 16000, 32), &[], &d)).unwrap();
    assert!(y
        .iter()
        .zip(&x)
        .all(|(a, b)| (*a as f64 - b / 3.0).abs() < 1e-6));
}

/// The 44.1 kHz stereo fixture: mean of 0.5 sin(1 kHz) and 0.1 sin(3 kHz), at 16 kHz.
#[test]
fn loader_resamples_and_mixes_down() {
    let y = audio::load_wav(&fixture("stereo44k.wav")).unwrap();
    assert_eq!(y.len(), 4000);
    let mut worst = 0.0f64;
    // Away from the ends, where the kernel reaches past the clip (half-width 27 outputs).
    for (j, &v) in y.iter().enumerate().take(3960).skip(40) {
        let t = j as f64 / 16000.0;
        let want = 0.25 * (2.0 * PI * 1000.0 * t).sin() + 0.05 * (2.0 * PI * 3000.0 * t).sin();
        worst = worst.max((v as f64 - want).abs());
    }
    println!("stereo44k: max |loaded - ideal| = {worst:.2e}");
    // int16 rounding of the inputs (2⁻¹⁶ each, halved by the mean) and the passband ripple.
    assert!(worst < 1e-4, "{worst}");
}

/// Gain of `resample` for a tone of `hz` at `from` Hz: in the passband by a least-squares fit
/// of the output's middle to sin and cos at `hz`; above the output's Nyquist frequency, the
/// peak amplitude of whatever is left (aliases), both relative to the input's amplitude 1.
fn gain(hz: f64, from: u32, to: u32) -> f64 {
    let n = from as usize / 2;
    let x: Vec<f32> = (0..n)
        .map(|i| (2.0 * PI * hz * i as f64 / from as f64).sin() as f32)
        .collect();
    let y = audio::resample(&x, from, to);
    let skip = y.len() / 8;
    let mid = &y[skip..y.len() - skip];
    if hz * 2.0 >= to as f64 {
        let rms = (mid.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / mid.len() as f64).sqrt();
        return rms * 2f64.sqrt();
    }
    let (mut ss, mut cc, mut sc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (j, &v) in mid.iter().enumerate() {
        let a = 2.0 * PI * hz * (j + skip) as f64 / to as f64;
        let (s, c) = (a.sin(), a.cos());
        ss += s * s;
        cc += c * c;
        sc += s * c;
        ys += v as f64 * s;
        yc += v as f64 * c;
    }
    let det = ss * cc - sc * sc;
    let (a, b) = ((ys * cc - yc * sc) / det, (yc * ss - ys * sc) / det);
    (a * a + b * b).sqrt()
}

/// The resampler's passband and stopband as the loader's doc states them.
#[test]
fn resampler_passband_and_stopband() {
    for from in [44100, 48000, 22050, 11025, 8000] {
        let mut pass = 0.0f64;
        for hz in [50.0, 1000.0, 3000.0, 4000.0, 5500.0, 6000.0] {
            // The passband: up to 3/4 of the lower Nyquist frequency.
            if hz <= 0.375 * from.min(16000) as f64 {
                pass = pass.max((20.0 * gain(hz, from, 16000).log10()).abs());
            }
        }
        // Tones the output cannot hold (above 8 kHz, below the input's Nyquist frequency).
        let mut stop = f64::NEG_INFINITY;
        for hz in [8300.0, 8500.0, 9000.0, 12000.0, 20000.0] {
            if hz * 2.0 < from as f64 {
                stop = stop.max(20.0 * gain(hz, from, 16000).log10());
            }
        }
        println!(
            "{from} Hz -> 16 kHz: passband max |gain| {pass:.4} dB, stopband max {stop:.1} dB"
        );
        assert!(pass <= 0.01, "{from}: passband {pass} dB");
        assert!(stop <= -80.0 || from <= 16000, "{from}: stopband {stop} dB");
    }
}

/// Malformed headers: each is an audio error naming the problem, never a panic.
#[test]
fn malformed_wav_is_an_error() {
    let data = [0u8; 32];
    let good = wav_bytes(&fmt(1, 1, 16000, 16), &[], &data);
    assert!(Wav::parse(&good).is_ok());
    let with = |at: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    let mut bad_guid = fmt_extensible(1, 1, 16000, 16);
    bad_guid[30] ^= 1;
    let mut stray = good.clone();
    stray.extend_from_slice(&[1, 2, 3]);
    let n = (stray.len() - 8) as u32;
    stray[4..8].copy_from_slice(&n.to_le_bytes());
    let pcm16 = fmt(1, 1, 16000, 16);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (good[..8].to_vec(), "shorter than a RIFF/WAVE header"),
        (with(0, b"RIFX"), "big-endian"),
        (with(0, b"RF64"), "RF64"),
        (with(0, b"OggS"), "not a RIFF file"),
        (with(8, b"AVI "), "not WAVE"),
        (with(4, &1000u32.to_le_bytes()), "RIFF size 1000"),
        (with(4, &2u32.to_le_bytes()), "RIFF size 2"),
        (
            with(16, &1000u32.to_le_bytes()),
            "chunk of 1000 bytes runs past",
        ),
        (with(40, &33u32.to_le_bytes()), "runs past the end"),
        (wav_bytes(&pcm16[..14], &[], &data), "fmt chunk of 14 bytes"),
        (wav_bytes(&fmt(2, 1, 16000, 16), &[], &data), "format tag 2"),
        (
            wav_bytes(&fmt(1, 0, 16000, 16), &[], &data),
            "zero channels",
        ),
        (wav_bytes(&fmt(1, 1, 0, 16), &[], &data), "sample rate 0"),
        (
            wav_bytes(&fmt(1, 1, 16000, 12), &[], &data),
            "12 bits per sample",
        ),
        (
            wav_bytes(&fmt(3, 1, 16000, 64), &[], &data),
            "64 bits per sample",
        ),
        (
            wav_bytes(&fmt(3, 1, 16000, 16), &[], &data),
            "16 bits per sample",
        ),
        (with(32, &3u16.to_le_bytes()), "block align 3"),
        (
            wav_bytes(&fmt(1, 2, 16000, 16), &[], &[0; 6]),
            "not whole frames of 4 bytes",
        ),
        (
            wav_bytes(&fmt_extensible(1, 1, 16000, 16)[..30], &[], &data),
            "extensible fmt chunk of 30",
        ),
        (wav_bytes(&bad_guid, &[], &data), "subformat GUID"),
        (wav_bytes(&pcm16, &[(b"fmt ", &pcm16)], &data), "second fmt"),
        (wav_bytes(&pcm16, &[(b"data", &data)], &data), "second data"),
        (with(36, b"junk"), "no data chunk"),
        (with(12, b"junk"), "no fmt chunk"),
        (stray, "3 stray bytes"),
    ];
    for (bytes, want) in &cases {
        let e = audio_err(Wav::parse(bytes));
        assert!(e.contains(want), "wanted {want:?}, got {e:?}");
        assert!(e.starts_with("WAV file (byte "), "{e}");
    }
    // The loader refuses rates it does not resample.
    let slow = wav_bytes(&fmt(1, 1, 999, 16), &[], &data);
    assert!(audio_err(audio::load_wav(&slow)).contains("999 Hz is outside"));

    // Every truncation, and every header byte set to a few values: Ok or Err, no panic.
    let file = wav_bytes(
        &fmt_extensible(1, 2, 44100, 24),
        &[(b"LIST", b"abc")],
        &[7; 60],
    );
    for len in 0..file.len() {
        assert!(
            Wav::parse(&file[..len]).is_err(),
            "truncated to {len} bytes parsed"
        );
        let _ = audio::load_wav(&file[..len]);
    }
    for at in 0..file.len() - 60 {
        for v in [0u8, 1, 2, 3, 0x7f, 0x80, 0xfe, 0xff] {
            let mut b = file.clone();
            b[at] = v;
            if let Ok(w) = Wav::parse(&b) {
                let _ = w.pcm16_mono_16k().map(|p| p.iter().count());
                let _ = w.frames();
            }
            let _ = audio::load_wav(&b);
        }
    }
}
