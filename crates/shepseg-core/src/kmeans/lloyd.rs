//! Lloyd's algorithm as scikit-learn runs it, and greedy k-means++ initialisation.
//!
//! Each iteration assigns every point to its nearest centre (scikit-learn's score and
//! tie-breaking, see [`super::sklearn_math`]), moves each centre to the mean of its points
//! (partial sums over 256-point chunks split between two threads, as scikit-learn's OpenMP loop
//! does on two cores, then multiplied by the reciprocal of the count), re-seeds empty clusters from
//! the points farthest from their centres, and stops when the labels repeat or the summed squared
//! centre shift is within tolerance. Hamerly's bounds (an upper bound on the distance to the
//! assigned centre and a lower bound on the distance to any other) let most points skip the
//! assignment scan without changing its result; a point that cannot skip is scanned against
//! every centre with AVX2 vectors where the CPU has them (else by a pruned scalar scan).

use super::predict::{by_distance, distance, half_gaps, sq_distance, PaddedCentres};
#[cfg(target_arch = "x86_64")]
use super::predict::{lane_min, lowest_lane};
use super::sklearn_math::{euclidean, score, sq_norm};
use crate::numeric::numpy_sum;
use crate::rng::SplitMix64;

/// The sample, centred on its mean, `n x nb` row-major.
pub(super) struct Data<'a> {
    pub x: &'a [f64],
    pub n: usize,
    pub nb: usize,
}

impl Data<'_> {
    /// Bands per point: `NB` when the caller fixed it at compile time (so loops over the
    /// bands unroll and lose their bounds checks), else the runtime count.
    #[inline(always)]
    fn nb<const NB: usize>(&self) -> usize {
        if NB > 0 {
            NB
        } else {
            self.nb
        }
    }

    #[inline(always)]
    fn point<const NB: usize>(&self, i: usize) -> &[f64] {
        let nb = self.nb::<NB>();
        &self.x[i * nb..(i + 1) * nb]
    }
}

/// The outcome of one Lloyd run.
pub(super) struct LloydResult {
    pub centres: Vec<f64>,
    pub iterations: usize,
    pub inertia: f64,
}

/// Points per chunk in scikit-learn's Lloyd loop.
const CHUNK: usize = 256;
/// OpenMP threads whose partial sums are mirrored (scikit-learn uses one per core; the
/// reference results were made on two cores).
const THREADS: usize = 2;
/// Relative slack on Hamerly's skip test, so rounding never skips a point that scikit-learn's
/// score could assign elsewhere.
const SLACK: f64 = 1e-9;

/// What the assignment needs to know about the current centres.
struct Geometry<'a> {
    centres: &'a [f64],
    nb: usize,
    /// `|c|^2` per centre, rounded as scikit-learn's.
    norms: Vec<f64>,
    /// For each centre, every centre sorted by distance from it (itself first).
    by_distance: Vec<Vec<(f64, u32)>>,
    /// Half the distance from each centre to its nearest other centre.
    half_gap: Vec<f64>,
    /// Largest absolute centre coordinate, for the pruning margin.
    max_abs: f64,
    /// The centres laid out for the vector scan, padded to a multiple of 4.
    padded: PaddedCentres,
    /// Largest `|c|^2`, for the rounding margin of score-derived distances.
    max_sq_norm: f64,
}

impl<'a> Geometry<'a> {
    fn new(centres: &'a [f64], nb: usize) -> Self {
        let by_distance = by_distance(centres, nb);
        let norms: Vec<f64> = centres.chunks_exact(nb).map(sq_norm).collect();
        Self {
            centres,
            nb,
            half_gap: half_gaps(&by_distance),
            by_distance,
            max_abs: centres.iter().fold(0.0f64, |m, v| m.max(v.abs())),
            padded: PaddedCentres::new(centres, nb, &norms, 4),
            max_sq_norm: norms.iter().fold(0.0f64, |m, &v| m.max(v)),
            norms,
        }
    }

    #[inline(always)]
    fn centre<const NB: usize>(&self, j: usize) -> &[f64] {
        let nb = if NB > 0 { NB } else { self.nb };
        &self.centres[j * nb..(j + 1) * nb]
    }
}

/// Per-point bookkeeping: label and Hamerly's bounds.
struct Assignment {
    labels: Vec<u32>,
    upper: Vec<f64>,
    lower: Vec<f64>,
    /// Scan every centre with AVX2 vectors ([`Assignment::full_avx2`]); set only when the
    /// CPU has AVX2 and FMA.
    avx2: bool,
}

impl Assignment {
    /// Assigns point `i`: label by scikit-learn's score, ties to the lowest index; upper bound
    /// the distance to that centre, lower bound one on the distance to any other.
    #[inline(always)]
    fn full<const NB: usize>(&mut self, d: &Data, geo: &Geometry, i: usize, guess: usize) {
        #[cfg(target_arch = "x86_64")]
        if NB > 0 && NB <= 8 && self.avx2 {
            // SAFETY: `avx2` is set only when the CPU supports AVX2 and FMA.
            unsafe { self.full_avx2::<NB>(d, geo, i) };
            return;
        }
        self.full_pruned::<NB>(d, geo, i, guess);
    }

    /// [`Assignment::full`] scoring every centre, four a 256-bit vector, with scikit-learn's
    /// arithmetic per lane (as the AVX2 prediction), keeping per lane the lowest score with
    /// its index and the second lowest score. A score is `d^2 - |x|^2` up to rounding, so the
    /// second lowest, plus `|x|^2`, less a margin well above that rounding, bounds the
    /// squared distance to every other centre from below.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn full_avx2<const NB: usize>(&mut self, d: &Data, geo: &Geometry, i: usize) {
        use std::arch::x86_64::*;
        let x = d.point::<NB>(i);
        let centres = geo.padded.avx2::<NB>();
        let xs: [__m256d; NB] = std::array::from_fn(|b| _mm256_set1_pd(x[b]));
        let four = _mm256_set1_pd(4.0);
        let inf = _mm256_set1_pd(f64::INFINITY);
        let (mut s1, mut s1_idx, mut s2) = (inf, _mm256_setzero_pd(), inf);
        let mut idx = _mm256_set_pd(3.0, 2.0, 1.0, 0.0);
        for c in 0..centres.chunks() {
            let s = centres.scores(&xs, c);
            let lower = _mm256_cmp_pd::<_CMP_LT_OQ>(s, s1);
            s2 = _mm256_min_pd(s2, _mm256_max_pd(s1, s));
            s1_idx = _mm256_blendv_pd(s1_idx, idx, lower);
            s1 = _mm256_min_pd(s1, s);
            idx = _mm256_add_pd(idx, four);
        }
        let best = lowest_lane(s1, s1_idx);
        // The second lowest score: the lowest once the winner's lane offers its runner-up.
        let winner = _mm256_cmp_pd::<_CMP_EQ_OQ>(s1_idx, _mm256_set1_pd(best as f64));
        let second = _mm256_cvtsd_f64(lane_min(_mm256_blendv_pd(s1, s2, winner)));
        let x_sq: f64 = x.iter().map(|v| v * v).sum();
        let margin = 1e-13 * (x_sq + geo.max_sq_norm + 1.0);
        self.labels[i] = best as u32;
        self.upper[i] = distance(x, geo.centre::<NB>(best));
        self.lower[i] = (x_sq + second - margin).max(0.0).sqrt();
    }

    /// [`Assignment::full`] by scanning the centres that could be nearest: those within twice
    /// its distance from centre `guess` (any other is farther than `guess` itself); the lower
    /// bound also covers the centres not scanned.
    #[inline(always)]
    fn full_pruned<const NB: usize>(&mut self, d: &Data, geo: &Geometry, i: usize, guess: usize) {
        let x = d.point::<NB>(i);
        let dg = distance(x, geo.centre::<NB>(guess));
        let x_max = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let margin = 1e-5 * (x_max + geo.max_abs + 1.0) * (d.nb::<NB>() as f64).sqrt();
        let radius = 2.0 * dg + margin;
        let mut best = usize::MAX;
        let mut best_score = f64::INFINITY;
        let (mut d1, mut d1j, mut d2) = (f64::INFINITY, usize::MAX, f64::INFINITY);
        let mut unscanned = f64::INFINITY;
        for &(dist, j) in &geo.by_distance[guess] {
            if dist > radius {
                unscanned = dist - dg;
                break;
            }
            let j = j as usize;
            let c = geo.centre::<NB>(j);
            let s = score(x, c, geo.norms[j]);
            if s < best_score || (s == best_score && j < best) {
                best_score = s;
                best = j;
            }
            let e = sq_distance(x, c);
            if e < d1 {
                d2 = d1;
                d1 = e;
                d1j = j;
            } else if e < d2 {
                d2 = e;
            }
        }
        self.labels[i] = best as u32;
        self.upper[i] = if best == guess {
            dg
        } else {
            distance(x, geo.centre::<NB>(best))
        };
        let scanned_other = if d1j == best { d2 } else { d1 }.sqrt();
        self.lower[i] = scanned_other.min(unscanned);
    }

    /// One assignment step after the centres moved by `shift`; whether any label changed.
    #[inline(always)]
    fn step<const NB: usize>(&mut self, d: &Data, geo: &Geometry, shift: &[f64]) -> bool {
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
        // Per centre: what its points' lower bounds lose (the largest shift of any other
        // centre) and half the gap to its nearest other centre.
        let drop: Vec<f64> = (0..shift.len())
            .map(|j| if j == m1j { m2 } else { m1 })
            .collect();
        let half_gap = &geo.half_gap;
        let mut changed = false;
        for i in 0..d.n {
            let a = self.labels[i] as usize;
            self.upper[i] += shift[a];
            self.lower[i] -= drop[a];
            let bound = half_gap[a].max(self.lower[i]) * (1.0 - SLACK);
            if self.upper[i] <= bound {
                continue;
            }
            self.upper[i] = distance(d.point::<NB>(i), geo.centre::<NB>(a));
            if self.upper[i] <= bound {
                continue;
            }
            self.full::<NB>(d, geo, i, a);
            changed |= self.labels[i] as usize != a;
        }
        changed
    }

    /// Assigns every point from scratch, each starting from the previous point's label.
    #[inline(always)]
    fn all<const NB: usize>(&mut self, d: &Data, geo: &Geometry) {
        let mut guess = 0;
        for i in 0..d.n {
            self.full::<NB>(d, geo, i, guess);
            guess = self.labels[i] as usize;
        }
    }
}

/// Runs Lloyd's algorithm from `centres` (centred like the data).
///
/// The AVX2 scan is used on CPUs with AVX2 but not AVX-512: measured faster than the pruned
/// scan on an AVX2-only EPYC, while on the AVX-512 CPU of earlier measurements an all-centre
/// vector assignment lost to the pruned scan, so those keep it until measured otherwise.
pub(super) fn lloyd(d: &Data, centres: Vec<f64>, max_iter: usize, tol: f64) -> LloydResult {
    #[cfg(target_arch = "x86_64")]
    let vector = !std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let vector = false;
    lloyd_with(d, centres, max_iter, tol, vector)
}

/// [`lloyd`], with the AVX2 assignment scan allowed or not (the result is the same either
/// way; tests compare the two).
pub(super) fn lloyd_with(
    d: &Data,
    centres: Vec<f64>,
    max_iter: usize,
    tol: f64,
    allow_avx2: bool,
) -> LloydResult {
    #[cfg(target_arch = "x86_64")]
    if allow_avx2
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        // SAFETY: the CPU supports AVX2 and FMA, as checked on the lines above.
        return unsafe { lloyd_avx2(d, centres, max_iter, tol) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports FMA, as checked on the line above.
        return unsafe { lloyd_fma(d, centres, max_iter, tol) };
    }
    lloyd_bands(d, centres, max_iter, tol, false)
}

/// Dispatches on the band count, so the common counts get loops unrolled at compile time.
#[inline(always)]
fn lloyd_bands(d: &Data, centres: Vec<f64>, max_iter: usize, tol: f64, avx2: bool) -> LloydResult {
    match d.nb {
        1 => lloyd_inline::<1>(d, centres, max_iter, tol, avx2),
        2 => lloyd_inline::<2>(d, centres, max_iter, tol, avx2),
        3 => lloyd_inline::<3>(d, centres, max_iter, tol, avx2),
        4 => lloyd_inline::<4>(d, centres, max_iter, tol, avx2),
        5 => lloyd_inline::<5>(d, centres, max_iter, tol, avx2),
        6 => lloyd_inline::<6>(d, centres, max_iter, tol, avx2),
        7 => lloyd_inline::<7>(d, centres, max_iter, tol, avx2),
        8 => lloyd_inline::<8>(d, centres, max_iter, tol, avx2),
        _ => lloyd_inline::<0>(d, centres, max_iter, tol, avx2),
    }
}

/// [`lloyd`] compiled with hardware FMA (identical results, `mul_add` being exactly specified).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn lloyd_fma(d: &Data, centres: Vec<f64>, max_iter: usize, tol: f64) -> LloydResult {
    lloyd_bands(d, centres, max_iter, tol, false)
}

/// [`lloyd`] with AVX2 and FMA, scanning every centre with vectors when a point's bounds fail.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn lloyd_avx2(d: &Data, centres: Vec<f64>, max_iter: usize, tol: f64) -> LloydResult {
    lloyd_bands(d, centres, max_iter, tol, true)
}

#[inline(always)]
fn lloyd_inline<const NB: usize>(
    d: &Data,
    mut centres: Vec<f64>,
    max_iter: usize,
    tol: f64,
    avx2: bool,
) -> LloydResult {
    let nb = d.nb::<NB>();
    let k = centres.len() / nb;
    let mut asg = Assignment {
        labels: vec![0; d.n],
        upper: vec![0.0; d.n],
        lower: vec![0.0; d.n],
        avx2,
    };
    asg.all::<NB>(d, &Geometry::new(&centres, nb));
    // Whether the last assignment step left every label as it was (scikit-learn compares
    // the label arrays).
    let mut unchanged = false;
    let mut iterations = 0;
    let mut new_centres = vec![0.0; k * nb];
    let mut shift = vec![0.0; k];
    for it in 0..max_iter {
        iterations = it + 1;
        update_centres::<NB>(d, &centres, &asg.labels, &mut new_centres);
        for j in 0..k {
            shift[j] = euclidean(
                &new_centres[j * nb..(j + 1) * nb],
                &centres[j * nb..(j + 1) * nb],
            );
        }
        std::mem::swap(&mut centres, &mut new_centres);
        if unchanged {
            break;
        }
        let sq: Vec<f64> = shift.iter().map(|s| s * s).collect();
        if numpy_sum(&sq) <= tol || it + 1 == max_iter {
            break;
        }
        unchanged = !asg.step::<NB>(d, &Geometry::new(&centres, nb), &shift);
    }
    // Final assignment to the final centres, for the inertia that ranks restarts.
    asg.all::<NB>(d, &Geometry::new(&centres, nb));
    let mut inertia = 0.0;
    for i in 0..d.n {
        let a = asg.labels[i] as usize;
        let e = euclidean(d.point::<NB>(i), &centres[a * nb..(a + 1) * nb]);
        inertia += e * e;
    }
    LloydResult {
        centres,
        iterations,
        inertia,
    }
}

/// scikit-learn's update step: chunked partial sums, empty-cluster relocation, averaging.
fn update_centres<const NB: usize>(d: &Data, centres: &[f64], labels: &[u32], out: &mut [f64]) {
    let nb = d.nb::<NB>();
    let k = centres.len() / nb;
    // Chunks of 256 points, split between the threads as OpenMP's static schedule does.
    let chunk = CHUNK.min(d.n).max(1);
    let n_chunks = d.n.div_ceil(chunk);
    let (q, r) = (n_chunks / THREADS, n_chunks % THREADS);
    let mut weight = vec![0.0f64; k];
    out.iter_mut().for_each(|v| *v = 0.0);
    let mut local = vec![0.0f64; k * nb];
    let mut local_w = vec![0.0f64; k];
    let mut start_chunk = 0;
    for t in 0..THREADS {
        let count = q + usize::from(t < r);
        let (lo, hi) = (
            start_chunk * chunk,
            ((start_chunk + count) * chunk).min(d.n),
        );
        start_chunk += count;
        if lo >= hi {
            continue;
        }
        local.iter_mut().for_each(|v| *v = 0.0);
        local_w.iter_mut().for_each(|v| *v = 0.0);
        for (i, &label) in labels.iter().enumerate().take(hi).skip(lo) {
            let a = label as usize;
            local_w[a] += 1.0;
            for (s, v) in local[a * nb..(a + 1) * nb].iter_mut().zip(d.point::<NB>(i)) {
                *s += v;
            }
        }
        for (o, v) in out.iter_mut().zip(&local) {
            *o += v;
        }
        for (w, v) in weight.iter_mut().zip(&local_w) {
            *w += v;
        }
    }
    relocate_empty::<NB>(d, centres, labels, out, &mut weight);
    // Average in place, in cluster order; a cluster still empty takes the largest cluster's
    // centre as it stands at that moment (averaged already only if it comes earlier).
    let mut argmax = 0;
    for j in 1..k {
        if weight[j] > weight[argmax] {
            argmax = j;
        }
    }
    for j in 0..k {
        if weight[j] > 0.0 {
            let alpha = 1.0 / weight[j];
            out[j * nb..(j + 1) * nb]
                .iter_mut()
                .for_each(|v| *v *= alpha);
        } else {
            for b in 0..nb {
                out[j * nb + b] = out[argmax * nb + b];
            }
        }
    }
}

/// Gives each empty cluster one of the points farthest from their centres.
fn relocate_empty<const NB: usize>(
    d: &Data,
    centres: &[f64],
    labels: &[u32],
    sums: &mut [f64],
    weight: &mut [f64],
) {
    let nb = d.nb::<NB>();
    let empty: Vec<usize> = (0..weight.len()).filter(|&j| weight[j] == 0.0).collect();
    if empty.is_empty() {
        return;
    }
    let mut sq = vec![0.0; nb];
    let mut far: Vec<(f64, usize)> = (0..d.n)
        .map(|i| {
            let a = labels[i] as usize;
            for ((s, x), c) in sq
                .iter_mut()
                .zip(d.point::<NB>(i))
                .zip(&centres[a * nb..(a + 1) * nb])
            {
                *s = (x - c) * (x - c);
            }
            (numpy_sum(&sq), i)
        })
        .collect();
    if far.iter().all(|f| f.0 == 0.0) {
        // More clusters than distinct points: relocating is pointless.
        return;
    }
    // Only the farthest `empty.len()` points are needed, in order (distance down, index up).
    let order = |x: &(f64, usize), y: &(f64, usize)| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1));
    let take = empty.len().min(far.len());
    if take > 0 && take < far.len() {
        far.select_nth_unstable_by(take - 1, order);
    }
    far.truncate(take);
    far.sort_by(order);
    for (&j, &(_, i)) in empty.iter().zip(&far) {
        let old = labels[i] as usize;
        let p = d.point::<NB>(i);
        for b in 0..nb {
            sums[old * nb + b] -= p[b];
            sums[j * nb + b] = p[b];
        }
        weight[j] = 1.0;
        weight[old] -= 1.0;
    }
}

/// Random values one k-means++ initialisation draws: one for the first centre, then
/// `2 + ln k` candidates for each of the others.
pub(super) fn kmeans_plus_plus_draws(k: usize) -> u64 {
    1 + (k.saturating_sub(1) * (2 + (k as f64).ln() as usize)) as u64
}

/// Greedy k-means++ as scikit-learn's `_kmeans_plusplus` (`2 + ln k` candidates a step), on
/// the sample `cols` holds (built once per fit and shared by its restarts).
pub(super) fn kmeans_plus_plus(cols: &Columns, k: usize, rng: &mut SplitMix64) -> Vec<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, as checked on the line above.
        return unsafe { kmeans_plus_plus_avx2(cols, k, rng) };
    }
    kmeans_plus_plus_dispatch(cols, k, rng)
}

/// [`kmeans_plus_plus`] with 256-bit vectors (the same arithmetic, lane by lane).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn kmeans_plus_plus_avx2(cols: &Columns, k: usize, rng: &mut SplitMix64) -> Vec<f64> {
    kmeans_plus_plus_dispatch(cols, k, rng)
}

/// Dispatches on the band count.
#[inline(always)]
fn kmeans_plus_plus_dispatch(cols: &Columns, k: usize, rng: &mut SplitMix64) -> Vec<f64> {
    match cols.d.nb {
        1 => kmeans_plus_plus_bands::<1>(cols, k, rng),
        2 => kmeans_plus_plus_bands::<2>(cols, k, rng),
        3 => kmeans_plus_plus_bands::<3>(cols, k, rng),
        4 => kmeans_plus_plus_bands::<4>(cols, k, rng),
        _ => kmeans_plus_plus_bands::<0>(cols, k, rng),
    }
}

/// Points whose potentials are summed in separate lanes, so the sums vectorise.
const POT_LANES: usize = 8;

/// The sample band by band (`soa[b * n + i]`), so distances to one centre vectorise over
/// points, beside the sample itself.
pub(super) struct Columns<'a> {
    soa: Vec<f64>,
    d: &'a Data<'a>,
}

impl<'a> Columns<'a> {
    /// The band-by-band copy of `d`.
    pub(super) fn new(d: &'a Data<'a>) -> Self {
        let mut soa = vec![0.0; d.n * d.nb];
        for (i, p) in d.x.chunks_exact(d.nb).enumerate() {
            for (b, v) in p.iter().enumerate() {
                soa[b * d.n + i] = *v;
            }
        }
        Self { soa, d }
    }

    /// Squared distances from points `start..start + POT_LANES` to `c`, summed band by band
    /// from 0 (as [`sq_distance`] sums them).
    #[inline(always)]
    fn lanes<const NB: usize>(&self, start: usize, c: &[f64]) -> [f64; POT_LANES] {
        let (n, nb) = (self.d.n, self.d.nb::<NB>());
        let mut e = [0.0f64; POT_LANES];
        for (b, cb) in c.iter().enumerate().take(nb) {
            let col = &self.soa[b * n + start..b * n + start + POT_LANES];
            for l in 0..POT_LANES {
                let v = col[l] - cb;
                e[l] += v * v;
            }
        }
        e
    }
}

/// For each candidate centre, the potential if it were added: the sum over the points of the
/// squared distance to the nearest centre, accumulated in [`POT_LANES`] lanes (a fixed order,
/// so the result is the same on every run). One pass over the points serves every candidate.
#[inline(always)]
fn candidate_potentials<const NB: usize>(
    cols: &Columns,
    cands: &[f64],
    closest: &[f64],
) -> Vec<f64> {
    let d = cols.d;
    let nb = d.nb::<NB>();
    let t = cands.len() / nb;
    let mut lanes = vec![[0.0f64; POT_LANES]; t];
    let whole = d.n / POT_LANES * POT_LANES;
    for start in (0..whole).step_by(POT_LANES) {
        let cl = &closest[start..start + POT_LANES];
        for (c, acc) in cands.chunks_exact(nb).zip(lanes.iter_mut()) {
            let e = cols.lanes::<NB>(start, c);
            for l in 0..POT_LANES {
                acc[l] += e[l].min(cl[l]);
            }
        }
    }
    cands
        .chunks_exact(nb)
        .zip(&lanes)
        .map(|(c, acc)| {
            let mut tail = 0.0;
            for (i, cl) in closest.iter().enumerate().skip(whole) {
                tail += sq_distance(d.point::<NB>(i), c).min(*cl);
            }
            acc.iter().sum::<f64>() + tail
        })
        .collect()
}

/// [`kmeans_plus_plus`] with the band count fixed at compile time (0: at run time), so the
/// distance loop over every point unrolls.
#[inline(always)]
fn kmeans_plus_plus_bands<const NB: usize>(
    cols: &Columns,
    k: usize,
    rng: &mut SplitMix64,
) -> Vec<f64> {
    let d = cols.d;
    let trials = 2 + (k as f64).ln() as usize;
    let mut centres = Vec::with_capacity(k * d.nb);
    let first = rng.below(d.n);
    centres.extend_from_slice(d.point::<NB>(first));
    let mut closest = vec![f64::INFINITY; d.n];
    let mut cumsum = vec![0.0; d.n];
    closer_to::<NB>(cols, d.point::<NB>(first), &mut closest, &mut cumsum);
    let mut pot: f64 = closest.iter().sum();
    let mut cands = Vec::with_capacity(trials * d.nb);
    let mut ids = Vec::with_capacity(trials);
    for _ in 1..k {
        cands.clear();
        ids.clear();
        for _ in 0..trials {
            let r = rng.next_f64() * pot;
            let id = cumsum.partition_point(|&c| c < r).min(d.n - 1);
            ids.push(id);
            cands.extend_from_slice(d.point::<NB>(id));
        }
        let pots = candidate_potentials::<NB>(cols, &cands, &closest);
        // The lowest potential, ties to the earlier candidate.
        let mut best = 0;
        for (t, &p) in pots.iter().enumerate() {
            if p < pots[best] {
                best = t;
            }
        }
        pot = pots[best];
        let c = d.point::<NB>(ids[best]);
        closer_to::<NB>(cols, c, &mut closest, &mut cumsum);
        centres.extend_from_slice(c);
    }
    centres
}

/// Lowers each point's squared distance to the centres chosen so far (`closest`) to its
/// distance to the new centre `c` where that is nearer, and writes their running sum, for
/// the next draws, to `cumsum`: one pass over the band-by-band copy, which the candidate
/// potentials read as well, so the point-by-point sample stays out of the cache.
#[inline(always)]
fn closer_to<const NB: usize>(cols: &Columns, c: &[f64], closest: &mut [f64], cumsum: &mut [f64]) {
    let d = cols.d;
    let whole = d.n / POT_LANES * POT_LANES;
    let mut acc = 0.0;
    for start in (0..whole).step_by(POT_LANES) {
        let e = cols.lanes::<NB>(start, c);
        let cl = &mut closest[start..start + POT_LANES];
        let cs = &mut cumsum[start..start + POT_LANES];
        for l in 0..POT_LANES {
            cl[l] = e[l].min(cl[l]);
            acc += cl[l];
            cs[l] = acc;
        }
    }
    for i in whole..d.n {
        closest[i] = sq_distance(d.point::<NB>(i), c).min(closest[i]);
        acc += closest[i];
        cumsum[i] = acc;
    }
}
