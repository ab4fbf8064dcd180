//! Nearest-centre prediction, as scikit-learn's `KMeans.predict` computes it.

use super::sklearn_math::{score, sq_norm};
use super::KMeansModel;
use crate::image::Img;
use crate::pixel::Pixel;

/// Finds the nearest centre of a [`KMeansModel`] for pixel vectors exactly as scikit-learn's
/// `predict` does (smallest `|c|^2 - 2 x.c` in its rounding, lowest index on ties), scoring only
/// the centres the triangle inequality cannot rule out.
#[derive(Debug, Clone)]
pub struct Predictor {
    centres: Vec<f64>,
    num_bands: usize,
    /// `|c|^2` per centre, rounded as scikit-learn's.
    norms: Vec<f64>,
    /// For each centre, every centre sorted by distance from it (itself first).
    by_distance: Vec<Vec<(f64, u32)>>,
    /// Largest absolute centre coordinate, for the pruning margin.
    max_abs: f64,
}

impl Predictor {
    pub(super) fn new(model: &KMeansModel) -> Self {
        let k = model.num_clusters();
        let norms = (0..k).map(|j| sq_norm(model.centre(j))).collect();
        let by_distance = (0..k)
            .map(|g| {
                let mut v: Vec<(f64, u32)> = (0..k)
                    .map(|j| (distance(model.centre(g), model.centre(j)), j as u32))
                    .collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                v
            })
            .collect();
        let max_abs = model.centres.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        Self {
            centres: model.centres.clone(),
            num_bands: model.num_bands,
            norms,
            by_distance,
            max_abs,
        }
    }

    /// scikit-learn's score of centre `j` for `x`.
    #[inline(always)]
    pub(super) fn score(&self, x: &[f64], j: usize) -> f64 {
        let nb = self.num_bands;
        score(x, &self.centres[j * nb..(j + 1) * nb], self.norms[j])
    }

    /// The index (from 0) of the centre nearest to `x`, ties to the lowest index.
    ///
    /// `guess` is any centre index, ideally the previous pixel's answer: only centres within
    /// twice the distance to it (plus a rounding margin) are scored, which on real imagery is a
    /// handful of the k centres. The answer does not depend on `guess`.
    pub fn nearest(&self, x: &[f64], guess: usize) -> usize {
        self.nearest_inline(x, guess)
    }

    #[inline(always)]
    fn nearest_inline(&self, x: &[f64], guess: usize) -> usize {
        let nb = self.num_bands;
        let g = guess.min(self.norms.len() - 1);
        let dg = distance(x, &self.centres[g * nb..(g + 1) * nb]);
        // Margin so that every pruned centre's score exceeds the guess's by far more than the
        // rounding error of the scores themselves.
        let x_max = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let margin = 1e-5 * (x_max + self.max_abs + 1.0) * (nb as f64).sqrt();
        let radius = 2.0 * dg + margin;
        let mut best = usize::MAX;
        let mut best_score = f64::INFINITY;
        for &(dist, j) in &self.by_distance[g] {
            if dist > radius {
                break;
            }
            let j = j as usize;
            let s = self.score(x, j);
            if s < best_score || (s == best_score && j < best) {
                best_score = s;
                best = j;
            }
        }
        best
    }

    /// Each pixel's cluster, numbered from 1, and 0 for null pixels (raster order).
    pub(crate) fn predict_image<T: Pixel>(&self, img: &Img<T>, null: Option<T>) -> Vec<u32> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports FMA, as checked on the line above.
            return unsafe { self.predict_image_fma(img, null) };
        }
        self.predict_image_inline(img, null)
    }

    /// The same loop compiled with hardware FMA, so `mul_add` is one instruction rather than a
    /// call into libm; the results are identical (FMA is exactly specified).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    unsafe fn predict_image_fma<T: Pixel>(&self, img: &Img<T>, null: Option<T>) -> Vec<u32> {
        self.predict_image_inline(img, null)
    }

    #[inline(always)]
    fn predict_image_inline<T: Pixel>(&self, img: &Img<T>, null: Option<T>) -> Vec<u32> {
        let nb = img.bands;
        let n = img.pixels();
        let mut out = vec![0u32; n];
        let mut x = vec![0.0f64; nb];
        let mut prev: Vec<T> = Vec::with_capacity(nb);
        let mut cur: Vec<T> = Vec::with_capacity(nb);
        let mut guess = 0usize;
        let mut prev_label = 0u32;
        for (p, o) in out.iter_mut().enumerate() {
            cur.clear();
            cur.extend((0..nb).map(|b| img.band_value(b, p)));
            if cur.iter().any(|v| v.is_null(null)) {
                continue;
            }
            if prev_label != 0 && cur == prev {
                *o = prev_label;
                continue;
            }
            for (xv, v) in x.iter_mut().zip(&cur) {
                *xv = v.to_f64();
            }
            guess = self.nearest_inline(&x, guess);
            prev_label = guess as u32 + 1;
            *o = prev_label;
            std::mem::swap(&mut prev, &mut cur);
        }
        out
    }
}

/// Plain Euclidean distance (for pruning bounds, not for decisions).
#[inline(always)]
pub(super) fn distance(a: &[f64], b: &[f64]) -> f64 {
    sq_distance(a, b).sqrt()
}

/// Plain squared Euclidean distance.
#[inline(always)]
pub(super) fn sq_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |s, (x, y)| s + (x - y) * (x - y))
}
