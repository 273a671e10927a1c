//! The frontend's constant tables, computed in f64 by build.rs (`write_audio_tables`) and
//! rounded once to f32: the periodic Hann window (also pre-scaled by 1/32768 for i16
//! samples), the radix-4 FFT's twiddles in the order its stages read them, the split step's
//! twiddles, the mel filterbank as 41 segments of bins with each bin's two weights, the
//! halves of the DCT-II rows, and `ln`'s table.

include!(concat!(env!("OUT_DIR"), "/audio_tables.rs"));
