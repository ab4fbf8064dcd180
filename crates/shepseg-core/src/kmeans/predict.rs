//! Nearest-centre prediction, as scikit-learn's `KMeans.predict` computes it.

use super::centres::{by_distance, distance, half_gaps};
use super::screen::F32Centres;
#[cfg(target_arch = "x86_64")]
use super::screen::{Screened, LANES};
use super::sklearn_math::{score, sq_norm};
use super::KMeansModel;
#[cfg(target_arch = "x86_64")]
use crate::arch::x86_64::{avx2, avx512, fma};
#[cfg(target_arch = "x86_64")]
use crate::cpu::Simd;
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
    /// Half the distance from each centre to its nearest other centre: a point closer than
    /// that (less a margin) to a centre has it as its unique nearest.
    half_gap: Vec<f64>,
    /// The centres for the vector searches' first, `f32`, pass.
    pub(crate) f32c: F32Centres,
}

impl Predictor {
    pub(super) fn new(model: &KMeansModel) -> Self {
        let k = model.num_clusters();
        let norms: Vec<f64> = (0..k).map(|j| sq_norm(model.centre(j))).collect();
        let nb = model.num_bands;
        let by_distance = by_distance(&model.centres, nb);
        let max_abs = model.centres.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let half_gap = half_gaps(&by_distance);
        let f32c = F32Centres::new(&model.centres, nb);
        Self {
            f32c,
            centres: model.centres.clone(),
            num_bands: model.num_bands,
            norms,
            by_distance,
            max_abs,
            half_gap,
        }
    }

    /// scikit-learn's score of centre `j` for `x`.
    #[inline(always)]
    #[cfg(test)]
    pub(super) fn score(&self, x: &[f64], j: usize) -> f64 {
        let nb = self.num_bands;
        score(x, &self.centres[j * nb..(j + 1) * nb], self.norms[j])
    }

    /// The index (from 0) of the centre nearest to `x`, ties to the lowest index.
    ///
    /// `guess` is any centre index, ideally the previous pixel's answer: only centres within
    /// twice the distance to it (plus a rounding margin) are scored, which on real imagery is a
    /// handful of the k centres. The answer does not depend on `guess`. `None` when `x` does
    /// not hold one finite value per band.
    pub fn nearest(&self, x: &[f64], guess: usize) -> Option<usize> {
        if x.len() != self.num_bands || !x.iter().all(|v| v.is_finite()) {
            return None;
        }
        Some(self.nearest_inline::<0>(x, guess))
    }

    /// [`Predictor::nearest`] with the band count `NB` fixed at compile time (0: at run time).
    #[inline(always)]
    fn nearest_inline<const NB: usize>(&self, x: &[f64], guess: usize) -> usize {
        let nb = if NB > 0 { NB } else { self.num_bands };
        let x = &x[..nb];
        let g = guess.min(self.norms.len() - 1);
        let dg = distance(x, &self.centres[g * nb..(g + 1) * nb]);
        // Margin so that every pruned centre's score exceeds the guess's by far more than the
        // rounding error of the scores themselves.
        let x_max = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let margin = 1e-5 * (x_max + self.max_abs + 1.0) * (nb as f64).sqrt();
        if dg + margin < self.half_gap[g] {
            // Every other centre is farther than 2 * half_gap - dg > dg + margin.
            return g;
        }
        let radius = 2.0 * dg + margin;
        let mut best = usize::MAX;
        let mut best_score = f64::INFINITY;
        for &(dist, j) in &self.by_distance[g] {
            if dist > radius {
                break;
            }
            let j = j as usize;
            let s = score(x, &self.centres[j * nb..(j + 1) * nb], self.norms[j]);
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
        {
            let simd = Simd::best();
            // SAFETY: `Simd::best` is an instruction set the CPU supports.
            if let Some(out) = unsafe { self.predict_image_vector(img, null, simd) } {
                return out;
            }
        }
        self.predict_image_pruned(img, null)
    }

    /// Every centre scored for every pixel in `f32`, with the vectors of `simd` (sixteen pixels
    /// a 512-bit vector with AVX-512, eight a 256-bit one with AVX2), and the pixels whose answer
    /// that leaves uncertain searched again in scikit-learn's `f64` arithmetic (see
    /// [`super::screen`]): the same labels as the exact searches. On noisy imagery this beats
    /// the pruned search, which rarely prunes enough to pay for its branches. `None` for
    /// [`Simd::Scalar`] and for band counts above 8 (the pruned search handles those).
    ///
    /// # Safety
    /// The CPU must support `simd`'s instructions.
    #[cfg(target_arch = "x86_64")]
    pub(crate) unsafe fn predict_image_vector<T: Pixel>(
        &self,
        img: &Img<T>,
        null: Option<T>,
        simd: Simd,
    ) -> Option<Vec<u32>> {
        // SAFETY: the caller vouches for `simd`.
        unsafe {
            match img.bands {
                1 => self.predict_vector::<T, 1>(img, null, simd),
                2 => self.predict_vector::<T, 2>(img, null, simd),
                3 => self.predict_vector::<T, 3>(img, null, simd),
                4 => self.predict_vector::<T, 4>(img, null, simd),
                5 => self.predict_vector::<T, 5>(img, null, simd),
                6 => self.predict_vector::<T, 6>(img, null, simd),
                7 => self.predict_vector::<T, 7>(img, null, simd),
                8 => self.predict_vector::<T, 8>(img, null, simd),
                _ => None,
            }
        }
    }

    /// [`Predictor::predict_image_vector`] for `NB` bands.
    ///
    /// # Safety
    /// The CPU must support `simd`'s instructions.
    #[cfg(target_arch = "x86_64")]
    unsafe fn predict_vector<T: Pixel, const NB: usize>(
        &self,
        img: &Img<T>,
        null: Option<T>,
        simd: Simd,
    ) -> Option<Vec<u32>> {
        match simd {
            // SAFETY: the caller vouches that the CPU supports AVX-512F.
            Simd::Avx512 => Some(unsafe { avx512::predict::predict::<T, NB>(self, img, null) }),
            // SAFETY: the caller vouches that the CPU supports AVX2 and FMA.
            Simd::Avx2 => Some(unsafe { avx2::predict::predict::<T, NB>(self, img, null) }),
            Simd::Scalar => None,
        }
    }

    /// [`Predictor::predict_image`] by the pruned scalar search (any CPU, any band count).
    pub(crate) fn predict_image_pruned<T: Pixel>(&self, img: &Img<T>, null: Option<T>) -> Vec<u32> {
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::has_fma() {
            // SAFETY: the CPU supports FMA, as checked on the line above.
            return unsafe { fma::predict_image_pruned(self, img, null) };
        }
        self.predict_image_bands(img, null)
    }

    /// The vector predictions for `NB` bands, one pixel a lane: blocks of [`LANES`]
    /// consecutive pixels are scored in `f32` against one centre at a time by `screen` (see
    /// [`crate::arch::x86_64::avx512::screen::screen`]). Where a pixel's two lowest scores are
    /// further apart than the margin, the lowest is scikit-learn's answer; the other pixels are
    /// searched again exactly (the pruned `f64` search, from the `f32` answer). Scoring pixels
    /// rather than centres side by side needs no reduction across lanes, so the vector units
    /// stay busy. A block whose every pixel equals the one before it takes that pixel's label
    /// without a search (large uniform areas cost almost nothing).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(crate) fn predict_lanes<T: Pixel, const NB: usize>(
        &self,
        img: &Img<T>,
        null: Option<T>,
        screen: impl Fn(&[[f32; LANES]; NB]) -> Screened,
    ) -> Vec<u32> {
        const BLOCK: usize = LANES;
        let n = img.pixels();
        let mut out = crate::mem::zeroed(n);
        let bands: [&[T]; NB] = std::array::from_fn(|b| &img.data[b * n..(b + 1) * n]);
        let f = &self.f32c;
        let mut p = 0;
        while p < n {
            let len = (n - p).min(BLOCK);
            let block = p..p + len;
            if p > 0
                && block
                    .clone()
                    .all(|q| bands.iter().all(|b| b[q] == b[p - 1]))
            {
                // Equal values, so equally null or not: the same label.
                let label = out[p - 1];
                out[block].fill(label);
                p += len;
                continue;
            }
            // The block's shifted values, band by band (a short last block repeats its last
            // pixel).
            let mut xs = [[0.0f32; BLOCK]; NB];
            for (b, (x, band)) in xs.iter_mut().zip(&bands).enumerate() {
                if len == BLOCK {
                    // A plain loop over a full block, which the compiler vectorises.
                    for (v, &y) in x.iter_mut().zip(&band[block.clone()]) {
                        *v = f.shift(b, y.to_f64());
                    }
                } else {
                    for (i, v) in x.iter_mut().enumerate() {
                        *v = f.shift(b, band[p + i.min(len - 1)].to_f64());
                    }
                }
            }
            let Screened {
                label: labels,
                sure,
                ..
            } = screen(&xs);
            // Which pixels are null, as a mask (a loop the compiler vectorises).
            let mut nulls = 0u32;
            for band in &bands {
                for (i, &v) in band[block.clone()].iter().enumerate() {
                    nulls |= u32::from(v.is_null(null)) << i;
                }
            }
            if len == BLOCK && nulls == 0 && sure == u32::MAX {
                // The common case: every pixel valid and certain.
                for (o, l) in out[block].iter_mut().zip(labels) {
                    *o = l + 1;
                }
                p += len;
                continue;
            }
            for (i, q) in block.enumerate() {
                out[q] = if nulls & (1 << i) != 0 {
                    0
                } else if sure & (1 << i) != 0 {
                    labels[i] + 1
                } else {
                    let x: [f64; NB] = std::array::from_fn(|b| bands[b][q].to_f64());
                    self.nearest_inline::<NB>(&x, labels[i] as usize) as u32 + 1
                };
            }
            p += len;
        }
        out
    }

    /// Dispatches on the band count, so the common counts get unrolled loops.
    #[inline(always)]
    pub(crate) fn predict_image_bands<T: Pixel>(&self, img: &Img<T>, null: Option<T>) -> Vec<u32> {
        match img.bands {
            1 => self.predict_image_inline::<T, 1>(img, null),
            2 => self.predict_image_inline::<T, 2>(img, null),
            3 => self.predict_image_inline::<T, 3>(img, null),
            4 => self.predict_image_inline::<T, 4>(img, null),
            5 => self.predict_image_inline::<T, 5>(img, null),
            6 => self.predict_image_inline::<T, 6>(img, null),
            8 => self.predict_image_inline::<T, 8>(img, null),
            _ => self.predict_image_inline::<T, 0>(img, null),
        }
    }

    #[inline(always)]
    fn predict_image_inline<T: Pixel, const NB: usize>(
        &self,
        img: &Img<T>,
        null: Option<T>,
    ) -> Vec<u32> {
        label_pixels::<T, NB>(img, null, |x, guess| self.nearest_inline::<NB>(x, guess))
    }
}

/// Each pixel's cluster, numbered from 1, and 0 for null pixels (raster order), from
/// `nearest(values, previous answer)`, which returns a centre index. A pixel equal to the one
/// before it takes its label without asking (large uniform areas cost almost nothing).
#[inline(always)]
fn label_pixels<T: Pixel, const NB: usize>(
    img: &Img<T>,
    null: Option<T>,
    nearest: impl FnMut(&[f64], usize) -> usize,
) -> Vec<u32> {
    if NB > 0 {
        label_pixels_fixed::<T, NB>(img, null, nearest)
    } else {
        label_pixels_any(img, null, nearest)
    }
}

/// [`label_pixels`] for a band count known only at run time.
#[inline(always)]
fn label_pixels_any<T: Pixel>(
    img: &Img<T>,
    null: Option<T>,
    mut nearest: impl FnMut(&[f64], usize) -> usize,
) -> Vec<u32> {
    let nb = img.bands;
    let n = img.pixels();
    let mut out = crate::mem::zeroed(n);
    let mut x = vec![0.0f64; nb];
    let mut prev = vec![f64::NAN; nb];
    let mut guess = 0usize;
    let mut prev_label = 0u32;
    let bands: Vec<&[T]> = img.data.chunks_exact(n).take(nb).collect();
    for (p, o) in out.iter_mut().enumerate() {
        let mut is_null = false;
        for (xv, band) in x.iter_mut().zip(&bands) {
            let v = band[p];
            is_null |= v.is_null(null);
            *xv = v.to_f64();
        }
        if is_null {
            continue;
        }
        if x == prev {
            *o = prev_label;
            continue;
        }
        guess = nearest(&x, guess);
        prev_label = guess as u32 + 1;
        *o = prev_label;
        prev.copy_from_slice(&x);
    }
    out
}

/// [`label_pixels`] for `NB` bands: the values compared with the previous pixel's in their own
/// type, in fixed arrays, and converted only when a search follows (half the cost per pixel of
/// the general loop).
#[inline(always)]
fn label_pixels_fixed<T: Pixel, const NB: usize>(
    img: &Img<T>,
    null: Option<T>,
    mut nearest: impl FnMut(&[f64], usize) -> usize,
) -> Vec<u32> {
    let n = img.pixels();
    let mut out = crate::mem::zeroed(n);
    let bands: [&[T]; NB] = std::array::from_fn(|b| &img.data[b * n..(b + 1) * n]);
    let mut prev: Option<[T; NB]> = None;
    let mut guess = 0usize;
    let mut prev_label = 0u32;
    for (p, o) in out.iter_mut().enumerate() {
        let v: [T; NB] = std::array::from_fn(|b| bands[b][p]);
        if prev == Some(v) {
            *o = prev_label;
            continue;
        }
        if v.iter().any(|v| v.is_null(null)) {
            continue;
        }
        let x: [f64; NB] = std::array::from_fn(|b| v[b].to_f64());
        guess = nearest(&x, guess);
        prev_label = guess as u32 + 1;
        *o = prev_label;
        prev = Some(v);
    }
    out
}
