//! K-means seeding: fit cluster centres on a sample of pixels, and predict each pixel's cluster.
//!
//! The fit follows scikit-learn's `KMeans(algorithm="lloyd")` as pyshepseg calls it: data
//! centred on its mean, Lloyd iterations until the labels stop changing or the summed squared
//! centre shift falls to `tol` times the mean per-band variance, at most `max_iter` iterations,
//! empty clusters re-seeded from the points farthest from their centres. The assignment step uses
//! Hamerly's bounds, which skip distance computations without changing the result.
//!
//! Prediction reproduces scikit-learn's arithmetic (`|c|^2 - 2 x.c` in `float64`, lowest index on
//! ties), so centres fitted by scikit-learn give pyshepseg's cluster image exactly; a
//! triangle-inequality prune keeps it to a few centres a pixel.
//!
//! ```
//! use shepseg_core::KMeansModel;
//! let model = KMeansModel::from_json(r#"{"cluster_centers": [[0.0, 0.0], [10.0, 10.0]]}"#).unwrap();
//! let p = model.predictor();
//! assert_eq!(p.nearest(&[9.0, 8.0], 0), 1);
//! ```

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::numeric::round_half_even;
use crate::pixel::Pixel;
use crate::rng::SplitMix64;

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
    /// centres, no bands, rows of different lengths or non-finite values.
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
            if c.iter().any(|v| !v.is_finite()) {
                return Err(CoreError::InvalidModel(format!(
                    "centre {i} has a non-finite value"
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

/// Finds the nearest centre of a [`KMeansModel`] for pixel vectors, as scikit-learn's
/// `predict` does, pruning centres that the triangle inequality rules out.
#[derive(Debug, Clone)]
pub struct Predictor {
    centres: Vec<f64>,
    num_bands: usize,
    /// `|c|^2` per centre, as scikit-learn's score uses.
    norms: Vec<f64>,
    /// For each centre, every centre sorted by distance from it (itself first).
    by_distance: Vec<Vec<(f64, u32)>>,
    /// Largest absolute centre coordinate, for the pruning margin.
    max_abs: f64,
}

impl Predictor {
    fn new(model: &KMeansModel) -> Self {
        let k = model.num_clusters();
        let nb = model.num_bands;
        let norms = (0..k)
            .map(|j| model.centre(j).iter().fold(0.0, |s, v| s + v * v))
            .collect();
        let by_distance = (0..k)
            .map(|g| {
                let mut v: Vec<(f64, u32)> = (0..k)
                    .map(|j| (euclid(model.centre(g), model.centre(j)), j as u32))
                    .collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                v
            })
            .collect();
        let max_abs = model.centres.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        Self {
            centres: model.centres.clone(),
            num_bands: nb,
            norms,
            by_distance,
            max_abs,
        }
    }

    /// scikit-learn's assignment score for centre `j`: `|c_j|^2 - 2 x.c_j`.
    #[inline]
    fn score(&self, x: &[f64], j: usize) -> f64 {
        let c = &self.centres[j * self.num_bands..(j + 1) * self.num_bands];
        let dot = x.iter().zip(c).fold(0.0, |s, (a, b)| s + a * b);
        self.norms[j] - 2.0 * dot
    }

    /// The index (from 0) of the centre nearest to `x`, ties to the lowest index.
    ///
    /// `guess` is any centre index, ideally the previous pixel's answer: only centres within
    /// twice the distance to it (plus a rounding margin) are scored, which on real imagery is a
    /// handful of the k centres. The answer does not depend on `guess`.
    pub fn nearest(&self, x: &[f64], guess: usize) -> usize {
        let nb = self.num_bands;
        let g = guess.min(self.norms.len() - 1);
        let cg = &self.centres[g * nb..(g + 1) * nb];
        let dg = euclid(x, cg);
        // Margin so that every pruned centre's score is larger than the guess's by far more than
        // the rounding error of the scores themselves.
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
}

/// Euclidean distance between two vectors.
#[inline]
fn euclid(a: &[f64], b: &[f64]) -> f64 {
    sq_dist(a, b).sqrt()
}

#[inline]
fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |s, (x, y)| s + (x - y) * (x - y))
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
}

impl Default for KMeansParams {
    fn default() -> Self {
        Self {
            num_clusters: 60,
            init: KMeansInit::KMeansPlusPlus { runs: 5, seed: 0 },
            max_iter: 300,
            tol: 1e-4,
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
    if !(subsample_pcnt > 0.0 && subsample_pcnt <= 100.0) {
        return Err(CoreError::InvalidParameter(format!(
            "cluster subsample percent must be in (0, 100], got {subsample_pcnt}"
        )));
    }
    let skip = (round_half_even(100.0 / subsample_pcnt) as usize).max(1);
    let (nb, rows, cols) = img.dim();
    let mut out = Vec::new();
    let mut px: Vec<T> = Vec::with_capacity(nb);
    let mut count = 0usize;
    for r in 0..rows {
        for c in 0..cols {
            px.clear();
            px.extend((0..nb).map(|b| img[[b, r, c]]));
            if px.iter().any(|v| v.is_null(null)) {
                continue;
            }
            if count % skip == 0 {
                out.extend_from_slice(&px);
            }
            count += 1;
        }
    }
    Ok(out)
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
    // scikit-learn centres the data on its mean before iterating, for accuracy.
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
    let tol = params.tol * var.iter().sum::<f64>() / (n as f64 * num_bands as f64);

    let data = Data {
        x: &x,
        n,
        nb: num_bands,
    };
    let best = match params.init {
        KMeansInit::Diagonal => {
            let init = diagonal_init(sample, num_bands, k)
                .chunks_exact(num_bands)
                .flat_map(|c| c.iter().zip(&mean).map(|(v, m)| v.to_f64() - m))
                .collect();
            lloyd(&data, init, params.max_iter, tol)
        }
        KMeansInit::KMeansPlusPlus { runs, seed } => {
            let mut rng = SplitMix64::new(seed);
            let mut best: Option<LloydResult> = None;
            for _ in 0..runs.max(1) {
                let init = kmeans_plus_plus(&data, k, &mut rng);
                let res = lloyd(&data, init, params.max_iter, tol);
                if best.as_ref().is_none_or(|b| res.inertia < b.inertia) {
                    best = Some(res);
                }
            }
            // runs.max(1) >= 1, so a result exists.
            best.ok_or_else(|| CoreError::InvalidParameter("no k-means run".into()))?
        }
    };
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
/// (band-interleaved, `k x num_bands`). `sample` must hold at least one pixel.
pub fn diagonal_init<T: Pixel>(sample: &[T], num_bands: usize, k: usize) -> Vec<T> {
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

struct Data<'a> {
    x: &'a [f64],
    n: usize,
    nb: usize,
}

impl Data<'_> {
    #[inline]
    fn point(&self, i: usize) -> &[f64] {
        &self.x[i * self.nb..(i + 1) * self.nb]
    }
}

/// scikit-learn's greedy k-means++.
fn kmeans_plus_plus(d: &Data, k: usize, rng: &mut SplitMix64) -> Vec<f64> {
    let trials = 2 + (k as f64).ln() as usize;
    let mut centres = Vec::with_capacity(k * d.nb);
    let first = rng.below(d.n);
    centres.extend_from_slice(d.point(first));
    let mut closest: Vec<f64> = (0..d.n)
        .map(|i| sq_dist(d.point(i), d.point(first)))
        .collect();
    let mut pot: f64 = closest.iter().sum();
    let mut cand_dist = vec![0.0; d.n];
    let mut best_dist = vec![0.0; d.n];
    for _ in 1..k {
        let mut cumsum = Vec::with_capacity(d.n);
        let mut acc = 0.0;
        for v in &closest {
            acc += v;
            cumsum.push(acc);
        }
        let mut best_pot = f64::INFINITY;
        let mut best_id = 0;
        for _ in 0..trials {
            let r = rng.next_f64() * pot;
            let id = cumsum.partition_point(|&c| c < r).min(d.n - 1);
            let c = d.point(id);
            let mut cpot = 0.0;
            for (i, (cd, cl)) in cand_dist.iter_mut().zip(&closest).enumerate() {
                *cd = sq_dist(d.point(i), c).min(*cl);
                cpot += *cd;
            }
            if cpot < best_pot {
                best_pot = cpot;
                best_id = id;
                std::mem::swap(&mut best_dist, &mut cand_dist);
            }
        }
        pot = best_pot;
        std::mem::swap(&mut closest, &mut best_dist);
        centres.extend_from_slice(d.point(best_id));
    }
    centres
}

struct LloydResult {
    centres: Vec<f64>,
    iterations: usize,
    inertia: f64,
}

/// Lloyd's algorithm with Hamerly's bounds, stopping as scikit-learn does.
fn lloyd(d: &Data, mut centres: Vec<f64>, max_iter: usize, tol: f64) -> LloydResult {
    let nb = d.nb;
    let k = centres.len() / nb;
    let mut labels = vec![0u32; d.n];
    let mut upper = vec![0.0; d.n];
    let mut lower = vec![0.0; d.n];
    for i in 0..d.n {
        full_assign(d, &centres, i, &mut labels, &mut upper, &mut lower);
    }
    let mut labels_old: Option<Vec<u32>> = None;
    let mut iterations = 0;
    let mut new_centres = vec![0.0; k * nb];
    let mut counts = vec![0usize; k];
    let mut shift = vec![0.0; k];
    for it in 0..max_iter {
        iterations = it + 1;
        update_centres(d, &centres, &labels, &mut new_centres, &mut counts);
        for j in 0..k {
            shift[j] = euclid(
                &centres[j * nb..(j + 1) * nb],
                &new_centres[j * nb..(j + 1) * nb],
            );
        }
        std::mem::swap(&mut centres, &mut new_centres);
        if labels_old.as_ref() == Some(&labels) {
            break;
        }
        let shift_tot: f64 = shift.iter().map(|s| s * s).sum();
        if shift_tot <= tol || it + 1 == max_iter {
            break;
        }
        labels_old = Some(labels.clone());
        hamerly_step(d, &centres, &shift, &mut labels, &mut upper, &mut lower);
    }
    // Final assignment to the final centres, for the inertia.
    let mut inertia = 0.0;
    for i in 0..d.n {
        full_assign(d, &centres, i, &mut labels, &mut upper, &mut lower);
        inertia += upper[i] * upper[i];
    }
    LloydResult {
        centres,
        iterations,
        inertia,
    }
}

/// Assigns point `i` by scanning every centre; sets its upper bound (distance to the nearest)
/// and lower bound (distance to the second nearest).
fn full_assign(
    d: &Data,
    centres: &[f64],
    i: usize,
    labels: &mut [u32],
    upper: &mut [f64],
    lower: &mut [f64],
) {
    let x = d.point(i);
    let mut best = (f64::INFINITY, 0usize);
    let mut second = f64::INFINITY;
    for (j, c) in centres.chunks_exact(d.nb).enumerate() {
        let dist = sq_dist(x, c);
        if dist < best.0 {
            second = best.0;
            best = (dist, j);
        } else if dist < second {
            second = dist;
        }
    }
    labels[i] = best.1 as u32;
    upper[i] = best.0.sqrt();
    lower[i] = second.sqrt();
}

/// One assignment step with Hamerly's bounds after the centres moved by `shift`.
fn hamerly_step(
    d: &Data,
    centres: &[f64],
    shift: &[f64],
    labels: &mut [u32],
    upper: &mut [f64],
    lower: &mut [f64],
) {
    let nb = d.nb;
    let k = shift.len();
    // Largest and second-largest shift, so each point's lower bound drops by the largest shift
    // of any centre other than its own.
    let (mut m1, mut m1j, mut m2) = (0.0f64, usize::MAX, 0.0f64);
    for (j, &s) in shift.iter().enumerate() {
        if s > m1 {
            m2 = m1;
            m1 = s;
            m1j = j;
        } else if s > m2 {
            m2 = s;
        }
    }
    // Half the distance from each centre to its nearest other centre.
    let mut half = vec![f64::INFINITY; k];
    for a in 0..k {
        for b in (a + 1)..k {
            let dist = 0.5
                * euclid(
                    &centres[a * nb..(a + 1) * nb],
                    &centres[b * nb..(b + 1) * nb],
                );
            half[a] = half[a].min(dist);
            half[b] = half[b].min(dist);
        }
    }
    for i in 0..d.n {
        let a = labels[i] as usize;
        upper[i] += shift[a];
        lower[i] -= if a == m1j { m2 } else { m1 };
        // A tiny relative slack keeps rounding from ever skipping a needed check.
        let bound = half[a].max(lower[i]) * (1.0 - 1e-12);
        if upper[i] <= bound {
            continue;
        }
        upper[i] = euclid(d.point(i), &centres[a * nb..(a + 1) * nb]);
        if upper[i] <= bound {
            continue;
        }
        full_assign(d, centres, i, labels, upper, lower);
    }
}

/// New centres as the means of their points; empty clusters take the points farthest from
/// their centres (scikit-learn's relocation).
fn update_centres(
    d: &Data,
    centres: &[f64],
    labels: &[u32],
    new_centres: &mut [f64],
    counts: &mut [usize],
) {
    let nb = d.nb;
    new_centres.iter_mut().for_each(|v| *v = 0.0);
    counts.iter_mut().for_each(|v| *v = 0);
    for i in 0..d.n {
        let a = labels[i] as usize;
        counts[a] += 1;
        for (s, v) in new_centres[a * nb..(a + 1) * nb].iter_mut().zip(d.point(i)) {
            *s += v;
        }
    }
    let empty: Vec<usize> = (0..counts.len()).filter(|&j| counts[j] == 0).collect();
    if !empty.is_empty() {
        let mut far: Vec<(f64, usize)> = (0..d.n)
            .map(|i| {
                let a = labels[i] as usize;
                (sq_dist(d.point(i), &centres[a * nb..(a + 1) * nb]), i)
            })
            .collect();
        far.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        for (&j, &(_, i)) in empty.iter().zip(&far) {
            let old = labels[i] as usize;
            if counts[old] <= 1 {
                continue;
            }
            let p = d.point(i);
            for b in 0..nb {
                new_centres[old * nb + b] -= p[b];
                new_centres[j * nb + b] = p[b];
            }
            counts[old] -= 1;
            counts[j] = 1;
        }
    }
    for j in 0..counts.len() {
        if counts[j] == 0 {
            // Still empty (fewer distinct points than clusters): keep the old centre.
            new_centres[j * nb..(j + 1) * nb].copy_from_slice(&centres[j * nb..(j + 1) * nb]);
        } else {
            let c = counts[j] as f64;
            new_centres[j * nb..(j + 1) * nb]
                .iter_mut()
                .for_each(|v| *v /= c);
        }
    }
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
            assert_eq!(p.nearest(&x, guess), brute(&m, &x));
        }
    }

    #[test]
    fn ties_go_to_the_lowest_index() {
        let m = KMeansModel::new(vec![vec![2.0], vec![0.0], vec![2.0]]).unwrap();
        let p = m.predictor();
        assert_eq!(p.nearest(&[1.0], 2), 0);
        assert_eq!(p.nearest(&[2.0], 2), 0);
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

    #[test]
    fn too_few_samples_is_an_error() {
        let e = fit(&[1u8, 2, 3], 1, &KMeansParams::default());
        assert!(matches!(e, Err(CoreError::TooFewSamples { .. })));
    }
}
