//! K-means seeding: fit cluster centres on a sample of pixels, and predict each pixel's cluster.
//!
//! The fit follows scikit-learn's `KMeans(algorithm="lloyd")` as pyshepseg calls it (see
//! module `lloyd`): data centred on its mean, Lloyd iterations until the labels stop changing or the
//! summed squared centre shift falls to `tol` times the mean per-band variance, at most
//! `max_iter` iterations, empty clusters re-seeded from the points farthest from their centres.
//!
//! Prediction ([`Predictor`]) reproduces scikit-learn's arithmetic (module `sklearn_math`), so centres
//! fitted by scikit-learn give pyshepseg's cluster image exactly. On x86-64 CPUs with AVX-512 or
//! AVX2 every centre is scored with vectors (the same arithmetic per lane); elsewhere a
//! triangle-inequality prune keeps it to a few centres a pixel.
//!
//! ```
//! use shepseg_core::KMeansModel;
//! let model = KMeansModel::from_json(r#"{"cluster_centers": [[0.0, 0.0], [10.0, 10.0]]}"#).unwrap();
//! let p = model.predictor();
//! assert_eq!(p.nearest(&[9.0, 8.0], 0), Some(1));
//! ```

use serde::{Deserialize, Serialize};

pub(crate) mod centres;
pub(crate) mod kmeanspp;
pub(crate) mod lloyd;
mod predict;
pub(crate) mod screen;
mod sklearn_math;

pub use predict::Predictor;

use crate::error::CoreError;
use crate::image::Img;
use crate::numeric::{numpy_sum, round_half_even};
use crate::par::with_threads;
use crate::pixel::Pixel;
use crate::rng::SplitMix64;
use kmeanspp::{kmeans_plus_plus, Columns};
use lloyd::{lloyd, LloydResult, Run};

/// Fitted k-means cluster centres (`float64`), the seed of a segmentation.
///
/// Serialised as `{"cluster_centers": [[...], ...]}`; other keys are ignored on reading, so a
/// scikit-learn model's `cluster_centers_` can be saved and used unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawModel", into = "RawModel")]
pub struct KMeansModel {
    centres: Vec<f64>,
    num_bands: usize,
}

#[derive(Serialize, Deserialize)]
struct RawModel {
    cluster_centers: Vec<Vec<f64>>,
}

impl TryFrom<RawModel> for KMeansModel {
    type Error = CoreError;
    fn try_from(raw: RawModel) -> Result<Self, CoreError> {
        KMeansModel::new(raw.cluster_centers)
    }
}

impl From<KMeansModel> for RawModel {
    fn from(m: KMeansModel) -> Self {
        RawModel {
            cluster_centers: m.centres_vec(),
        }
    }
}

impl KMeansModel {
    /// A model from its centres, one `Vec` of band values per cluster. Errors if there are no
    /// centres, no bands, rows of different lengths, or values that are not finite or beyond
    /// ±1e100 ([`crate::pixel::F64_NULL_ABOVE`]: distances to them could not be squared).
    pub fn new(centres: Vec<Vec<f64>>) -> Result<Self, CoreError> {
        let num_bands = centres.first().map(Vec::len).unwrap_or(0);
        if centres.is_empty() || num_bands == 0 {
            return Err(CoreError::InvalidModel("no cluster centres".into()));
        }
        let mut flat = Vec::with_capacity(centres.len() * num_bands);
        for (i, c) in centres.iter().enumerate() {
            if c.len() != num_bands {
                return Err(CoreError::InvalidModel(format!(
                    "centre {i} has {} values, centre 0 has {num_bands}",
                    c.len()
                )));
            }
            if c.iter()
                .any(|v| !(v.is_finite() && v.abs() <= crate::pixel::F64_NULL_ABOVE))
            {
                return Err(CoreError::InvalidModel(format!(
                    "centre {i} has a value that is not finite or beyond ±1e100"
                )));
            }
            flat.extend_from_slice(c);
        }
        Ok(Self {
            centres: flat,
            num_bands,
        })
    }

    /// Reads a model from JSON (`{"cluster_centers": [[...], ...]}`, other keys ignored).
    pub fn from_json(text: &str) -> Result<Self, CoreError> {
        serde_json::from_str(text).map_err(|e| CoreError::InvalidModel(e.to_string()))
    }

    /// The model as JSON, `{"cluster_centers": [[...], ...]}`, with full `float64` precision.
    pub fn to_json(&self) -> String {
        // Serialising plain vectors of finite floats cannot fail.
        serde_json::to_string(&RawModel {
            cluster_centers: self.centres_vec(),
        })
        .unwrap_or_default()
    }

    /// Number of clusters (k).
    pub fn num_clusters(&self) -> usize {
        self.centres.len() / self.num_bands
    }

    /// Number of bands each centre has.
    pub fn num_bands(&self) -> usize {
        self.num_bands
    }

    /// Centre `i` (`i < num_clusters()`).
    pub fn centre(&self, i: usize) -> &[f64] {
        &self.centres[i * self.num_bands..(i + 1) * self.num_bands]
    }

    /// All centres, one `Vec` per cluster.
    pub fn centres_vec(&self) -> Vec<Vec<f64>> {
        self.centres
            .chunks(self.num_bands)
            .map(<[f64]>::to_vec)
            .collect()
    }

    /// A nearest-centre searcher for this model (precomputes centre norms and distances).
    pub fn predictor(&self) -> Predictor {
        Predictor::new(self)
    }
}

/// How to choose the initial centres of a k-means fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KMeansInit {
    /// pyshepseg's `fixedKMeansInit`: centres evenly spaced on the diagonal of the sample's
    /// bounding box, in the image's dtype; one run. Deterministic.
    Diagonal,
    /// k-means++ (greedy, `2 + ln k` candidates per step, as scikit-learn), `runs` restarts
    /// keeping the lowest inertia, reproducible from `seed`.
    KMeansPlusPlus {
        /// Number of restarts; pyshepseg uses 5.
        runs: usize,
        /// Seed of the random generator.
        seed: u64,
    },
}

/// Parameters of a k-means fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KMeansParams {
    /// Number of clusters (k); pyshepseg's default is 60.
    pub num_clusters: usize,
    /// Initialisation.
    pub init: KMeansInit,
    /// Maximum Lloyd iterations per run (scikit-learn: 300).
    pub max_iter: usize,
    /// Relative tolerance: stop when the summed squared centre shift is at most `tol` times the
    /// mean per-band variance of the sample (scikit-learn: 1e-4).
    pub tol: f64,
    /// Threads for the fit's passes over the sample (1: this thread). The result does not
    /// depend on it: the sample is cut into fixed blocks whose sums are added in block order.
    pub threads: usize,
}

impl Default for KMeansParams {
    fn default() -> Self {
        Self {
            num_clusters: 60,
            init: KMeansInit::KMeansPlusPlus { runs: 5, seed: 0 },
            max_iter: 300,
            tol: 1e-4,
            threads: 1,
        }
    }
}

/// What a fit did, for reports.
#[derive(Debug, Clone, PartialEq)]
pub struct FitInfo {
    /// Sample size (pixels).
    pub num_samples: usize,
    /// Lloyd iterations of the run kept.
    pub iterations: usize,
    /// Sum of squared distances of the samples to their centres, for the run kept.
    pub inertia: f64,
}

/// Every `skip`-th non-null pixel in row-major order, where `skip = round(100 / subsample_pcnt)`
/// (Python's rounding, half to even, at least 1), as pyshepseg's `fitSpectralClusters` samples.
/// Returns the pixels band-interleaved (`n x bands`).
pub fn sample_pixels<T: Pixel>(
    img: &ndarray::ArrayView3<T>,
    null: Option<T>,
    subsample_pcnt: f64,
) -> Result<Vec<T>, CoreError> {
    let skip = subsample_skip(subsample_pcnt)?;
    let standard = img.as_standard_layout();
    let img = Img::from_standard(&standard)?;
    Ok(sample_image(&img, null, skip))
}

/// The sampling step for `subsample_pcnt`: `round(100 / subsample_pcnt)`, Python's rounding
/// (half to even), at least 1. Errors unless the percentage is in (0, 100].
pub(crate) fn subsample_skip(subsample_pcnt: f64) -> Result<usize, CoreError> {
    if !(subsample_pcnt > 0.0 && subsample_pcnt <= 100.0) {
        return Err(CoreError::InvalidParameter(format!(
            "cluster subsample percent must be in (0, 100], got {subsample_pcnt}"
        )));
    }
    Ok((round_half_even(100.0 / subsample_pcnt) as usize).max(1))
}

/// [`sample_pixels`] on the core's contiguous image, every `skip`-th non-null pixel: a null
/// test and a countdown per pixel rather than strided indexing.
pub(crate) fn sample_image<T: Pixel>(img: &Img<T>, null: Option<T>, skip: usize) -> Vec<T> {
    if img.pixels() == 0 {
        return Vec::new();
    }
    let bands: Vec<&[T]> = img
        .data
        .chunks_exact(img.pixels())
        .take(img.bands)
        .collect();
    let n = img.pixels();
    let skip = skip.max(1);
    let mut out = Vec::with_capacity(img.bands * (n / skip + 1));
    // Non-null pixels still to pass before the next one sampled (the first is sampled).
    let mut until = 0usize;
    // Pixels are taken a run at a time: their null flags band by band (a loop that
    // vectorises), then, where the run has no null, the sampled ones by stepping `skip`.
    const RUN: usize = 4096;
    let mut null_at = vec![false; RUN.min(n)];
    for start in (0..n).step_by(RUN) {
        let len = RUN.min(n - start);
        let flags = &mut null_at[..len];
        flags.fill(false);
        for band in &bands {
            for (f, v) in flags.iter_mut().zip(&band[start..start + len]) {
                *f |= v.is_null(null);
            }
        }
        if !flags.contains(&true) {
            let mut o = until;
            while o < len {
                out.extend(bands.iter().map(|band| band[start + o]));
                o += skip;
            }
            // `until` falls by one a pixel, back to `skip - 1` after each sampled one.
            until = (until as isize - len as isize).rem_euclid(skip as isize) as usize;
            continue;
        }
        for (o, &is_null) in flags.iter().enumerate() {
            if is_null {
                continue;
            }
            if until == 0 {
                out.extend(bands.iter().map(|band| band[start + o]));
                until = skip;
            }
            until -= 1;
        }
    }
    out
}

/// The sample, centred on its mean, `n x nb` row-major.
pub(crate) struct Data<'a> {
    pub x: &'a [f64],
    pub n: usize,
    pub nb: usize,
}

impl Data<'_> {
    /// Bands per point: `NB` when the caller fixed it at compile time (so loops over the
    /// bands unroll and lose their bounds checks), else the runtime count.
    #[inline(always)]
    pub(crate) fn nb<const NB: usize>(&self) -> usize {
        if NB > 0 {
            NB
        } else {
            self.nb
        }
    }

    #[inline(always)]
    pub(crate) fn point<const NB: usize>(&self, i: usize) -> &[f64] {
        let nb = self.nb::<NB>();
        &self.x[i * nb..(i + 1) * nb]
    }
}

/// Fits k-means centres to `sample` (`n x num_bands`, band-interleaved pixel values).
///
/// Errors if the sample is empty or has fewer distinct points than could seed the clusters
/// sensibly (fewer samples than clusters).
pub fn fit<T: Pixel>(
    sample: &[T],
    num_bands: usize,
    params: &KMeansParams,
) -> Result<(KMeansModel, FitInfo), CoreError> {
    let k = params.num_clusters;
    if num_bands == 0 {
        return Err(CoreError::InvalidParameter("sample has no bands".into()));
    }
    if k == 0 {
        return Err(CoreError::InvalidParameter(
            "number of clusters must be at least 1".into(),
        ));
    }
    let n = sample.len() / num_bands;
    if n < k {
        return Err(CoreError::TooFewSamples {
            samples: n,
            clusters: k,
        });
    }
    // scikit-learn centres the data on its mean before iterating, for accuracy; numpy's
    // column mean and variance accumulate row by row.
    let mut mean = vec![0.0; num_bands];
    for p in sample.chunks_exact(num_bands) {
        for (m, v) in mean.iter_mut().zip(p) {
            *m += v.to_f64();
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let x: Vec<f64> = sample
        .chunks_exact(num_bands)
        .flat_map(|p| p.iter().zip(&mean).map(|(v, m)| v.to_f64() - m))
        .collect();
    let mut var = vec![0.0; num_bands];
    for p in x.chunks_exact(num_bands) {
        for (s, v) in var.iter_mut().zip(p) {
            *s += v * v;
        }
    }
    var.iter_mut().for_each(|v| *v /= n as f64);
    let tol = numpy_sum(&var) / num_bands as f64 * params.tol;

    let data = Data {
        x: &x,
        n,
        nb: num_bands,
    };
    let run = Run {
        max_iter: params.max_iter,
        tol,
    };
    let best = with_threads(params.threads, || match params.init {
        KMeansInit::Diagonal => {
            let init = diagonal_init(sample, num_bands, k)
                .chunks_exact(num_bands)
                .flat_map(|c| c.iter().zip(&mean).map(|(v, m)| v.to_f64() - m))
                .collect();
            Ok(lloyd(&data, init, run))
        }
        KMeansInit::KMeansPlusPlus { runs, seed } => {
            // The runs go one after another (each spreads its passes over the threads), drawing
            // from one random stream; the lowest inertia wins, ties to the earlier run.
            let cols = Columns::new(&data);
            let mut rng = SplitMix64::new(seed);
            let mut best: Option<LloydResult> = None;
            for _ in 0..runs.max(1) {
                let init = kmeans_plus_plus(&cols, k, &mut rng);
                let res = lloyd(&data, init, run);
                if best.as_ref().is_none_or(|b| res.inertia < b.inertia) {
                    best = Some(res);
                }
            }
            best.ok_or_else(|| CoreError::InvalidParameter("no k-means run".into()))
        }
    })?;
    let centres: Vec<Vec<f64>> = best
        .centres
        .chunks(num_bands)
        .map(|c| c.iter().zip(&mean).map(|(v, m)| v + m).collect())
        .collect();
    Ok((
        KMeansModel::new(centres)?,
        FitInfo {
            num_samples: n,
            iterations: best.iterations,
            inertia: best.inertia,
        },
    ))
}

/// pyshepseg's fixed initial centres (`diagonalClusterCentres`): `k` points evenly spaced on the
/// diagonal of the sample's bounding box, one step in from each corner, in the pixel type
/// (band-interleaved, `k x num_bands`). Empty when `sample` holds no whole pixel.
pub fn diagonal_init<T: Pixel>(sample: &[T], num_bands: usize, k: usize) -> Vec<T> {
    if num_bands == 0 || sample.len() < num_bands {
        return Vec::new();
    }
    let (lo, hi) = band_min_max(sample, num_bands);
    (0..k)
        .flat_map(|i| (0..num_bands).map(move |b| (i, b)))
        .map(|(i, b)| T::diagonal_centre(lo[b], hi[b], i, k))
        .collect()
}

fn band_min_max<T: Pixel>(sample: &[T], nb: usize) -> (Vec<T>, Vec<T>) {
    let mut lo = sample[..nb].to_vec();
    let mut hi = sample[..nb].to_vec();
    for p in sample.chunks_exact(nb) {
        for b in 0..nb {
            if p[b].to_f64() < lo[b].to_f64() {
                lo[b] = p[b];
            }
            if p[b].to_f64() > hi[b].to_f64() {
                hi[b] = p[b];
            }
        }
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(model: &KMeansModel, x: &[f64]) -> usize {
        let p = model.predictor();
        let mut best = (f64::INFINITY, 0);
        for j in 0..model.num_clusters() {
            let s = p.score(x, j);
            if s < best.0 {
                best = (s, j);
            }
        }
        best.1
    }

    #[test]
    fn json_round_trip_keeps_full_precision_and_ignores_other_keys() {
        let text = r#"{"n_iter": 3, "cluster_centers": [[0.1, 1e-17], [3.000000000000001, 2.5]]}"#;
        let m = KMeansModel::from_json(text).unwrap();
        assert_eq!(m.num_clusters(), 2);
        assert_eq!(m.centre(1)[0], 3.000000000000001);
        let back = KMeansModel::from_json(&m.to_json()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn bad_models_are_rejected() {
        assert!(KMeansModel::from_json(r#"{"cluster_centers": []}"#).is_err());
        assert!(KMeansModel::from_json(r#"{"cluster_centers": [[1.0], [1.0, 2.0]]}"#).is_err());
        assert!(KMeansModel::from_json(r#"{"centres": [[1.0]]}"#).is_err());
    }

    #[test]
    fn pruned_nearest_equals_brute_force() {
        let mut rng = SplitMix64::new(7);
        let centres: Vec<Vec<f64>> = (0..40)
            .map(|_| (0..4).map(|_| rng.next_f64() * 1000.0).collect())
            .collect();
        let m = KMeansModel::new(centres).unwrap();
        let p = m.predictor();
        for _ in 0..20_000 {
            let x: Vec<f64> = (0..4).map(|_| (rng.next_f64() * 1000.0).floor()).collect();
            let guess = rng.below(40);
            assert_eq!(p.nearest(&x, guess), Some(brute(&m, &x)));
        }
    }

    /// The image prediction (the vector search where the CPU has AVX-512) equals the pruned
    /// search and the scalar score, pixel by pixel, for every band count it covers and some it
    /// does not; integer centres and values make exact ties common.
    #[test]
    fn image_prediction_equals_scalar_scores() {
        let mut rng = SplitMix64::new(3);
        for bands in [1usize, 2, 3, 4, 5, 7, 8, 9] {
            for k in [1usize, 7, 8, 9, 60] {
                let centres: Vec<Vec<f64>> = (0..k)
                    .map(|_| (0..bands).map(|_| rng.below(40) as f64).collect())
                    .collect();
                let m = KMeansModel::new(centres).unwrap();
                let (rows, cols) = (30, 41);
                // Random pixels, then runs of one pixel repeated (long enough to fill the
                // vector searches' blocks, and starting anywhere in them).
                let mut pixels: Vec<Vec<u16>> = Vec::new();
                while pixels.len() < rows * cols {
                    let v: Vec<u16> = (0..bands).map(|_| rng.below(40) as u16).collect();
                    let run = if pixels.len() < rows * cols / 2 {
                        1
                    } else {
                        1 + rng.below(40)
                    };
                    pixels.extend(std::iter::repeat_n(v, run));
                }
                pixels.truncate(rows * cols);
                let data: Vec<u16> = (0..bands)
                    .flat_map(|b| pixels.iter().map(move |v| v[b]))
                    .collect();
                let img = crate::image::Img {
                    data: &data,
                    bands,
                    rows,
                    cols,
                };
                let p = m.predictor();
                let fast = p.predict_image(&img, Some(7));
                let pruned = p.predict_image_pruned(&img, Some(7));
                assert_eq!(fast, pruned, "{bands} bands, {k} centres");
                #[cfg(target_arch = "x86_64")]
                if crate::cpu::has_avx2_fma() {
                    let avx2 = crate::cpu::Simd::Avx2;
                    // SAFETY: the CPU supports AVX2 and FMA, as checked above.
                    if let Some(avx2) = unsafe { p.predict_image_vector(&img, Some(7), avx2) } {
                        assert_eq!(avx2, pruned, "AVX2: {bands} bands, {k} centres");
                    }
                }
                for (i, &label) in fast.iter().enumerate() {
                    let x: Vec<f64> = (0..bands)
                        .map(|b| data[b * rows * cols + i] as f64)
                        .collect();
                    if x.contains(&7.0) {
                        assert_eq!(label, 0);
                    } else {
                        assert_eq!(label as usize, brute(&m, &x) + 1, "pixel {i}");
                    }
                }
            }
        }
    }

    /// Pixels near the midpoints of pairs of full-range centres (so near ties, many inside
    /// the `f32` search's margin) get the exact searches' labels, in UInt16 and Float32.
    #[test]
    fn image_prediction_near_ties_equals_the_pruned_search() {
        let mut rng = SplitMix64::new(17);
        for bands in [1usize, 3, 4, 8] {
            let k = 60;
            let centres: Vec<Vec<f64>> = (0..k)
                .map(|_| (0..bands).map(|_| rng.next_f64() * 65535.0).collect())
                .collect();
            let m = KMeansModel::new(centres.clone()).unwrap();
            let (rows, cols) = (40, 50);
            let pixels: Vec<Vec<f64>> = (0..rows * cols)
                .map(|_| {
                    let (a, b) = (rng.below(k), rng.below(k));
                    let t = 0.5 + (rng.next_f64() - 0.5) * 10f64.powi(-(rng.below(6) as i32));
                    (0..bands)
                        .map(|i| (centres[a][i] * t + centres[b][i] * (1.0 - t)).round())
                        .collect()
                })
                .collect();
            let p = m.predictor();
            let as_u16: Vec<u16> = (0..bands)
                .flat_map(|b| pixels.iter().map(move |v| v[b] as u16))
                .collect();
            let as_f32: Vec<f32> = (0..bands)
                .flat_map(|b| pixels.iter().map(move |v| v[b] as f32 + 0.25))
                .collect();
            let a = crate::image::Img {
                data: &as_u16[..],
                bands,
                rows,
                cols,
            };
            let b = crate::image::Img {
                data: &as_f32[..],
                bands,
                rows,
                cols,
            };
            assert_eq!(p.predict_image(&a, None), p.predict_image_pruned(&a, None));
            assert_eq!(p.predict_image(&b, None), p.predict_image_pruned(&b, None));
        }
    }

    #[test]
    fn vector_lloyd_equals_threaded_pruned_lloyd() {
        let mut rng = SplitMix64::new(5);
        for (case, bands) in [1usize, 2, 3, 4, 5, 8, 9].into_iter().enumerate() {
            for k in [1usize, 3, 8, 21, 60] {
                // One case spans several of the blocks the threads take.
                let n = if bands == 3 { 40_003 } else { 500 + 300 * case };
                // Integer values on a coarse grid: many exact ties in score and distance.
                let x: Vec<f64> = (0..n * bands)
                    .map(|_| rng.below(25) as f64 - 12.0)
                    .collect();
                let d = Data {
                    x: &x,
                    n,
                    nb: bands,
                };
                let init: Vec<f64> = (0..k)
                    .flat_map(|j| x[(j * 7 % n) * bands..(j * 7 % n + 1) * bands].to_vec())
                    .collect();
                let run = lloyd::Run {
                    max_iter: 300,
                    tol: 1e-6,
                };
                let b = with_threads(3, || {
                    lloyd::lloyd_with(&d, init.clone(), run, lloyd::Simd::Scalar)
                });
                for scan in lloyd::Simd::supported() {
                    let a = lloyd::lloyd_with(&d, init.clone(), run, scan);
                    assert_eq!(a.centres, b.centres, "{bands} bands, {k} centres, {scan:?}");
                    assert_eq!((a.iterations, a.inertia), (b.iterations, b.inertia));
                }
            }
        }
    }

    #[test]
    fn inertia_is_that_of_the_nearest_final_centres() {
        use sklearn_math::{euclidean, score, sq_norm};
        let mut rng = SplitMix64::new(17);
        for (bands, k, n) in [
            (1usize, 5usize, 3000usize),
            (3, 21, 40_003),
            (4, 60, 20_000),
        ] {
            let x: Vec<f64> = (0..n * bands)
                .map(|_| (rng.next_f64() * 2000.0).round() - 1000.0)
                .collect();
            let d = Data {
                x: &x,
                n,
                nb: bands,
            };
            let init: Vec<f64> = x[..k * bands].to_vec();
            // Stopped early, the last update still moves the centres far.
            let (best, pruned) = (lloyd::Simd::best(), lloyd::Simd::Scalar);
            for (threads, scan, max_iter) in [
                (1, best, 300),
                (2, pruned, 300),
                (1, best, 2),
                (3, pruned, 3),
            ] {
                let run = Run {
                    max_iter,
                    tol: 1e-4,
                };
                let res = with_threads(threads, || lloyd::lloyd_with(&d, init.clone(), run, scan));
                // The final labels by scoring every centre, as scikit-learn's last E-step does.
                let centres: Vec<&[f64]> = res.centres.chunks_exact(bands).collect();
                let norms: Vec<f64> = centres.iter().map(|c| sq_norm(c)).collect();
                let mut inertia = 0.0;
                for p in x.chunks_exact(bands) {
                    let mut best = 0;
                    for j in 1..k {
                        if score(p, centres[j], norms[j]) < score(p, centres[best], norms[best]) {
                            best = j;
                        }
                    }
                    let e = euclidean(p, centres[best]);
                    inertia += e * e;
                }
                assert_eq!(
                    res.inertia, inertia,
                    "{bands} bands, {k} centres, {threads} threads, {max_iter} iterations"
                );
            }
        }
    }

    #[test]
    fn ties_go_to_the_lowest_index() {
        let m = KMeansModel::new(vec![vec![2.0], vec![0.0], vec![2.0]]).unwrap();
        let p = m.predictor();
        assert_eq!(p.nearest(&[1.0], 2), Some(0));
        assert_eq!(p.nearest(&[2.0], 2), Some(0));
    }

    #[test]
    fn threaded_fit_gives_the_sequential_model() {
        // Enough points for several blocks of both k-means++ and Lloyd's passes, and a
        // count that leaves the last blocks short.
        let mut rng = SplitMix64::new(11);
        let sample: Vec<u16> = (0..40_003 * 3).map(|_| rng.below(1000) as u16).collect();
        for init in [
            KMeansInit::KMeansPlusPlus { runs: 3, seed: 42 },
            KMeansInit::Diagonal,
        ] {
            let mut params = KMeansParams {
                num_clusters: 8,
                init,
                ..Default::default()
            };
            let (seq, info) = fit(&sample, 3, &params).unwrap();
            for threads in [2, 3, 8] {
                params.threads = threads;
                let (par, pinfo) = fit(&sample, 3, &params).unwrap();
                assert_eq!(par, seq, "{threads} threads, {init:?}");
                assert_eq!(
                    (pinfo.inertia, pinfo.iterations),
                    (info.inertia, info.iterations)
                );
            }
        }
    }

    #[test]
    fn fit_finds_separated_clusters() {
        let mut sample = Vec::new();
        for i in 0..300u16 {
            sample.push(10 + i % 3);
            sample.push(1000 + i % 5);
            sample.push(5000 + i % 4);
        }
        let params = KMeansParams {
            num_clusters: 3,
            init: KMeansInit::KMeansPlusPlus { runs: 5, seed: 1 },
            ..Default::default()
        };
        let (m, info) = fit(&sample, 1, &params).unwrap();
        let mut c: Vec<f64> = m.centres_vec().into_iter().map(|c| c[0]).collect();
        c.sort_by(f64::total_cmp);
        assert!((c[0] - 11.0).abs() < 1.0, "{c:?}");
        assert!((c[1] - 1002.0).abs() < 1.0, "{c:?}");
        assert!((c[2] - 5001.5).abs() < 1.0, "{c:?}");
        assert!(info.iterations >= 1);
    }

    #[test]
    fn diagonal_init_is_deterministic_and_converges() {
        // Three groups evenly spread along the diagonal, where the diagonal init is good.
        let mut sample = Vec::new();
        for i in 0..300u16 {
            let g = i % 3;
            sample.extend([100 * (g + 1) + i % 7, 200 * (g + 1) + i % 5]);
        }
        let params = KMeansParams {
            num_clusters: 3,
            init: KMeansInit::Diagonal,
            ..Default::default()
        };
        let (a, info) = fit(&sample, 2, &params).unwrap();
        assert_eq!(a, fit(&sample, 2, &params).unwrap().0);
        assert!(info.iterations < 300);
        let mut xs: Vec<f64> = a.centres_vec().iter().map(|c| c[0]).collect();
        xs.sort_by(f64::total_cmp);
        assert!(
            (xs[0] - 103.0).abs() < 1.0 && (xs[2] - 303.0).abs() < 1.0,
            "{xs:?}"
        );
    }

    #[test]
    fn seeded_fit_is_reproducible() {
        let mut rng = SplitMix64::new(3);
        let sample: Vec<u16> = (0..3000).map(|_| rng.below(4000) as u16).collect();
        let params = KMeansParams {
            num_clusters: 8,
            init: KMeansInit::KMeansPlusPlus { runs: 2, seed: 9 },
            ..Default::default()
        };
        let a = fit(&sample, 3, &params).unwrap().0;
        let b = fit(&sample, 3, &params).unwrap().0;
        assert_eq!(a, b);
    }

    /// Every `skip`-th non-null pixel, by the definition: pixel by pixel through the view.
    fn sample_by_definition<T: Pixel>(
        img: &ndarray::ArrayView3<T>,
        null: Option<T>,
        skip: usize,
    ) -> Vec<T> {
        let (nb, rows, cols) = img.dim();
        let mut out = Vec::new();
        let mut count = 0;
        for r in 0..rows {
            for c in 0..cols {
                let px: Vec<T> = (0..nb).map(|b| img[[b, r, c]]).collect();
                if px.iter().any(|v| v.is_null(null)) {
                    continue;
                }
                if count % skip == 0 {
                    out.extend(px);
                }
                count += 1;
            }
        }
        out
    }

    /// Images of several of the sampling's runs of pixels, some with no null at all, some
    /// with a few, for every kind of step.
    #[test]
    fn sampling_across_runs_with_and_without_nulls() {
        let mut rng = SplitMix64::new(8);
        for (case, pcnt) in [100.0, 50.0, 33.0, 10.0, 1.0, 0.7].into_iter().enumerate() {
            let skip = round_half_even(100.0 / pcnt) as usize;
            for (nulls_in, null) in [(0usize, None), (20_000, Some(0u16)), (300, Some(0))] {
                let (nb, rows, cols) = (1 + case % 3, 170, 97);
                let ints: Vec<u16> = (0..nb * rows * cols)
                    .map(|_| {
                        if nulls_in > 0 && rng.below(nulls_in) == 0 {
                            0
                        } else {
                            rng.below(9) as u16 + 1
                        }
                    })
                    .collect();
                let img = ndarray::Array3::from_shape_vec((nb, rows, cols), ints).unwrap();
                let got = sample_pixels(&img.view(), null, pcnt).unwrap();
                let want = sample_by_definition(&img.view(), null, skip);
                assert_eq!(got, want, "skip {skip}, nulls 1 in {nulls_in}");
            }
        }
    }

    #[test]
    fn sampling_takes_every_skipth_non_null_pixel() {
        let mut rng = SplitMix64::new(3);
        for case in 0..200 {
            let (nb, rows, cols) = (1 + rng.below(4), rng.below(30), rng.below(30));
            let pcnt = [100.0, 50.0, 10.0, 3.0, 1.0][case % 5];
            let skip = round_half_even(100.0 / pcnt) as usize;
            let ints: Vec<u16> = (0..nb * rows * cols).map(|_| rng.below(4) as u16).collect();
            let img = ndarray::Array3::from_shape_vec((nb, rows, cols), ints).unwrap();
            let null = [None, Some(0u16)][case % 2];
            let got = sample_pixels(&img.view(), null, pcnt).unwrap();
            assert_eq!(
                got,
                sample_by_definition(&img.view(), null, skip),
                "case {case}"
            );
            // A view that is not in standard layout (rows and columns swapped).
            let swapped = img.view().permuted_axes([0, 2, 1]);
            let got = sample_pixels(&swapped, null, pcnt).unwrap();
            assert_eq!(
                got,
                sample_by_definition(&swapped, null, skip),
                "case {case}"
            );
            // f32, where NaN is null as well.
            let floats = img.mapv(|v| if v == 1 { f32::NAN } else { v as f32 });
            let null = null.map(|v| v as f32);
            let got = sample_pixels(&floats.view(), null, pcnt).unwrap();
            let want = sample_by_definition(&floats.view(), null, skip);
            assert_eq!(got.len(), want.len(), "case {case}");
            assert!(got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    #[test]
    fn too_few_samples_is_an_error() {
        let e = fit(&[1u8, 2, 3], 1, &KMeansParams::default());
        assert!(matches!(e, Err(CoreError::TooFewSamples { .. })));
    }
}
