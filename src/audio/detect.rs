//! From frames to keywords in a stream: the last second of MFCCs as the model's input
//! ([`FeatureWindow`]), and decisions over the model's successive scores ([`Detector`], as
//! TensorFlow Lite Micro's micro_speech example makes them: scores averaged over a time
//! window, a detection when a keyword's average passes a threshold, then none for a while).
//!
//! RAM: a `FeatureWindow` is 49 × 10 f32 and a count (1964 bytes on a 32-bit target); a
//! `Detector<C, H>` keeps H score vectors of C classes with their times, 4·H·(C + 1) bytes
//! plus 28 (H = 25, C = 12: 1328 bytes). No heap, no_std.

use super::frontend::{FRAMES_PER_SECOND, NUM_MFCCS};

/// Floats in one second of features (49 frames × 10 MFCCs, oldest frame first).
pub const WINDOW_FLOATS: usize = FRAMES_PER_SECOND * NUM_MFCCS;

/// The last 49 frames of MFCCs, oldest first: what a keyword model reads.
#[derive(Clone, Debug)]
pub struct FeatureWindow {
    features: [f32; WINDOW_FLOATS],
    frames: usize,
}

impl Default for FeatureWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl FeatureWindow {
    /// An empty window (all zeros until 49 frames have come).
    pub const fn new() -> Self {
        FeatureWindow {
            features: [0.0; WINDOW_FLOATS],
            frames: 0,
        }
    }

    /// Appends a frame, dropping the oldest.
    pub fn push(&mut self, frame: &[f32; NUM_MFCCS]) {
        self.features.copy_within(NUM_MFCCS.., 0);
        self.features[WINDOW_FLOATS - NUM_MFCCS..].copy_from_slice(frame);
        self.frames = (self.frames + 1).min(FRAMES_PER_SECOND);
    }

    /// True once 49 frames have been pushed (the window holds one second of audio).
    pub fn is_full(&self) -> bool {
        self.frames == FRAMES_PER_SECOND
    }

    /// The features, `[49][10]` row-major, oldest frame first.
    pub fn features(&self) -> &[f32; WINDOW_FLOATS] {
        &self.features
    }
}

/// How a [`Detector`] decides.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Scores of the last `window_ms` milliseconds are averaged.
    pub window_ms: u32,
    /// At least this many scores must be in the window before anything is detected.
    pub min_count: usize,
    /// A keyword whose average score exceeds this is detected.
    pub threshold: f32,
    /// No detection for this long after one.
    pub suppression_ms: u32,
    /// Classes `0..background` (e.g. silence, unknown) are never reported.
    pub background: usize,
}

impl Default for DetectorConfig {
    /// 500 ms window, 3 results, threshold 0.6, 1.5 s suppression (a word stays in the
    /// one-second window for about a second), 2 background classes.
    fn default() -> Self {
        DetectorConfig {
            window_ms: 500,
            min_count: 3,
            threshold: 0.6,
            suppression_ms: 1500,
            background: 2,
        }
    }
}

/// A keyword found in a stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    /// The class index.
    pub class: usize,
    /// Its average score over the window.
    pub score: f32,
    /// The time of the result that completed the detection (as given to [`Detector::update`]).
    pub time_ms: u32,
}

/// Averages the last results of a classifier run over a sliding window of audio and reports
/// each keyword once. `C` classes, at most `H` results kept (the window should hold fewer
/// than `H` results at the rate they come; older ones beyond `H` are dropped).
#[derive(Clone, Debug)]
pub struct Detector<const C: usize, const H: usize> {
    config: DetectorConfig,
    scores: [[f32; C]; H],
    times: [u32; H],
    /// Results held, the newest at `(start + len − 1) % H`.
    start: usize,
    len: usize,
    last_detection: Option<u32>,
}

impl<const C: usize, const H: usize> Detector<C, H> {
    /// A detector with no results yet.
    pub const fn new(config: DetectorConfig) -> Self {
        Detector {
            config,
            scores: [[0.0; C]; H],
            times: [0; H],
            start: 0,
            len: 0,
            last_detection: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Takes the scores of the window ending at `time_ms` (non-decreasing from call to
    /// call); returns a detection if a keyword's average passes the threshold outside the
    /// suppression time of the previous detection.
    pub fn update(&mut self, scores: &[f32; C], time_ms: u32) -> Option<Detection> {
        if self.len == H {
            self.start = (self.start + 1) % H;
            self.len -= 1;
        }
        let end = (self.start + self.len) % H;
        self.scores[end] = *scores;
        self.times[end] = time_ms;
        self.len += 1;
        // Drop results older than the window.
        while self.len > 1 && time_ms.saturating_sub(self.times[self.start]) > self.config.window_ms
        {
            self.start = (self.start + 1) % H;
            self.len -= 1;
        }
        if self.len < self.config.min_count {
            return None;
        }
        let mut avg = [0.0f32; C];
        for k in 0..self.len {
            for (a, s) in avg.iter_mut().zip(&self.scores[(self.start + k) % H]) {
                *a += s;
            }
        }
        let (mut class, mut best) = (0, f32::NEG_INFINITY);
        for (c, a) in avg.iter().enumerate() {
            if *a > best {
                (class, best) = (c, *a);
            }
        }
        let score = best / self.len as f32;
        let quiet = self
            .last_detection
            .is_none_or(|t| time_ms.saturating_sub(t) >= self.config.suppression_ms);
        if class >= self.config.background && score > self.config.threshold && quiet {
            self.last_detection = Some(time_ms);
            return Some(Detection {
                class,
                score,
                time_ms,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn onehot(c: usize, s: f32) -> [f32; 3] {
        let mut v = [(1.0 - s) / 2.0; 3];
        v[c] = s;
        v
    }

    #[test]
    fn averages_thresholds_and_suppresses() {
        let config = DetectorConfig {
            window_ms: 100,
            min_count: 3,
            threshold: 0.6,
            suppression_ms: 200,
            background: 1,
        };
        let mut d = Detector::<3, 8>::new(config);
        // Background never reported; two results are too few.
        assert_eq!(d.update(&onehot(0, 1.0), 0), None);
        assert_eq!(d.update(&onehot(2, 1.0), 20), None);
        // Window (0, 20, 40): class 2 averages 0.667 > 0.6.
        let got = d.update(&onehot(2, 1.0), 40).unwrap();
        assert_eq!((got.class, got.time_ms), (2, 40));
        assert!((got.score - 2.0 / 3.0).abs() < 1e-6);
        // Suppressed for 200 ms, then reported again.
        for t in (60..240).step_by(20) {
            assert_eq!(d.update(&onehot(2, 1.0), t), None, "{t}");
        }
        assert_eq!(d.update(&onehot(2, 1.0), 240).map(|x| x.class), Some(2));
        // The window forgets: after 100 ms of class 1, class 1 wins.
        let mut last = None;
        for t in (460..=560).step_by(20) {
            last = d.update(&onehot(1, 0.9), t).or(last);
        }
        assert_eq!(last.map(|x| x.class), Some(1));
    }

    #[test]
    fn history_capacity_drops_oldest() {
        let config = DetectorConfig {
            window_ms: 10_000,
            min_count: 1,
            threshold: 0.5,
            suppression_ms: 0,
            background: 0,
        };
        let mut d = Detector::<3, 2>::new(config);
        d.update(&onehot(0, 0.8), 0);
        d.update(&onehot(0, 0.8), 1);
        // Only t = 1 and t = 2 remain: class 1 averages 0.55, class 0 0.4 (with t = 0 it
        // would be 0.4 against 0.53).
        let got = d.update(&onehot(1, 1.0), 2).unwrap();
        assert_eq!(got.class, 1);
    }

    #[test]
    fn window_slides() {
        let mut w = FeatureWindow::new();
        for i in 0..FRAMES_PER_SECOND + 2 {
            assert_eq!(w.is_full(), i >= FRAMES_PER_SECOND);
            w.push(&[i as f32; NUM_MFCCS]);
        }
        assert_eq!(w.features()[0], 2.0);
        assert_eq!(
            w.features()[WINDOW_FLOATS - 1],
            (FRAMES_PER_SECOND + 1) as f32
        );
    }
}
