//! The frontend's constant tables, computed in f64 by build.rs (`write_audio_tables`) and
//! rounded once to f32: the periodic Hann window, the FFT twiddles exp(−2πik/512), the mel
//! filterbank as one run of nonzero weights per band, and the scaled DCT-II rows.

include!(concat!(env!("OUT_DIR"), "/audio_tables.rs"));
