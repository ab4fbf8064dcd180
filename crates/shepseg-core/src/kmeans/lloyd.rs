//! Lloyd's algorithm as scikit-learn runs it, and greedy k-means++ initialisation.
//!
//! Each iteration assigns every point to its nearest centre (scikit-learn's score and
//! tie-breaking, see [`super::sklearn_math`]), moves each centre to the mean of its points
//! (partial sums over 256-point chunks split between two threads, as scikit-learn's OpenMP loop
//! does on two cores, then multiplied by the reciprocal of the count), re-seeds empty clusters from
//! the points farthest from their centres, and stops when the labels repeat or the summed squared
//! centre shift is within tolerance. Hamerly's bounds (an upper bound on the distance to the
//! assigned centre and a lower bound on the distance to any other) let most points skip the
//! assignment scan without changing its result.

use super::predict::distance;
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
    #[inline(always)]
    fn point(&self, i: usize) -> &[f64] {
        &self.x[i * self.nb..(i + 1) * self.nb]
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

/// Per-point bookkeeping: label and Hamerly's bounds.
struct Assignment {
    labels: Vec<u32>,
    upper: Vec<f64>,
    lower: Vec<f64>,
}

impl Assignment {
    /// Scans every centre for point `i`: label by score, bounds by distance.
    fn full(&mut self, d: &Data, centres: &[f64], norms: &[f64], i: usize) {
        let x = d.point(i);
        let nb = d.nb;
        let mut best = 0usize;
        let mut best_score = f64::INFINITY;
        for (j, c) in centres.chunks_exact(nb).enumerate() {
            let s = score(x, c, norms[j]);
            if s < best_score {
                best_score = s;
                best = j;
            }
        }
        let mut lower = f64::INFINITY;
        for (j, c) in centres.chunks_exact(nb).enumerate() {
            if j != best {
                lower = lower.min(distance(x, c));
            }
        }
        self.labels[i] = best as u32;
        self.upper[i] = distance(x, &centres[best * nb..(best + 1) * nb]);
        self.lower[i] = lower;
    }

    /// One assignment step after the centres moved by `shift`.
    fn step(&mut self, d: &Data, centres: &[f64], norms: &[f64], shift: &[f64]) {
        let nb = d.nb;
        let k = shift.len();
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
                let h = 0.5
                    * distance(
                        &centres[a * nb..(a + 1) * nb],
                        &centres[b * nb..(b + 1) * nb],
                    );
                half[a] = half[a].min(h);
                half[b] = half[b].min(h);
            }
        }
        for i in 0..d.n {
            let a = self.labels[i] as usize;
            self.upper[i] += shift[a];
            self.lower[i] -= if a == m1j { m2 } else { m1 };
            let bound = half[a].max(self.lower[i]) * (1.0 - SLACK);
            if self.upper[i] <= bound {
                continue;
            }
            self.upper[i] = distance(d.point(i), &centres[a * nb..(a + 1) * nb]);
            if self.upper[i] <= bound {
                continue;
            }
            self.full(d, centres, norms, i);
        }
    }
}

/// Runs Lloyd's algorithm from `centres` (centred like the data).
pub(super) fn lloyd(d: &Data, mut centres: Vec<f64>, max_iter: usize, tol: f64) -> LloydResult {
    let nb = d.nb;
    let k = centres.len() / nb;
    let mut norms: Vec<f64> = centres.chunks_exact(nb).map(sq_norm).collect();
    let mut asg = Assignment {
        labels: vec![0; d.n],
        upper: vec![0.0; d.n],
        lower: vec![0.0; d.n],
    };
    for i in 0..d.n {
        asg.full(d, &centres, &norms, i);
    }
    let mut labels_old: Option<Vec<u32>> = None;
    let mut iterations = 0;
    let mut new_centres = vec![0.0; k * nb];
    let mut shift = vec![0.0; k];
    for it in 0..max_iter {
        iterations = it + 1;
        update_centres(d, &centres, &asg.labels, &mut new_centres);
        for j in 0..k {
            shift[j] = euclidean(
                &new_centres[j * nb..(j + 1) * nb],
                &centres[j * nb..(j + 1) * nb],
            );
        }
        std::mem::swap(&mut centres, &mut new_centres);
        if labels_old.as_ref() == Some(&asg.labels) {
            break;
        }
        let sq: Vec<f64> = shift.iter().map(|s| s * s).collect();
        if numpy_sum(&sq) <= tol || it + 1 == max_iter {
            break;
        }
        labels_old = Some(asg.labels.clone());
        norms = centres.chunks_exact(nb).map(sq_norm).collect();
        asg.step(d, &centres, &norms, &shift);
    }
    // Final assignment to the final centres, for the inertia that ranks restarts.
    norms = centres.chunks_exact(nb).map(sq_norm).collect();
    let mut inertia = 0.0;
    for i in 0..d.n {
        asg.full(d, &centres, &norms, i);
        let a = asg.labels[i] as usize;
        let e = euclidean(d.point(i), &centres[a * nb..(a + 1) * nb]);
        inertia += e * e;
    }
    LloydResult {
        centres,
        iterations,
        inertia,
    }
}

/// scikit-learn's update step: chunked partial sums, empty-cluster relocation, averaging.
fn update_centres(d: &Data, centres: &[f64], labels: &[u32], out: &mut [f64]) {
    let nb = d.nb;
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
        for i in lo..hi {
            let a = labels[i] as usize;
            local_w[a] += 1.0;
            for (s, v) in local[a * nb..(a + 1) * nb].iter_mut().zip(d.point(i)) {
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
    relocate_empty(d, centres, labels, out, &mut weight);
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
fn relocate_empty(d: &Data, centres: &[f64], labels: &[u32], sums: &mut [f64], weight: &mut [f64]) {
    let nb = d.nb;
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
                .zip(d.point(i))
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
    far.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
    for (&j, &(_, i)) in empty.iter().zip(&far) {
        let old = labels[i] as usize;
        let p = d.point(i);
        for b in 0..nb {
            sums[old * nb + b] -= p[b];
            sums[j * nb + b] = p[b];
        }
        weight[j] = 1.0;
        weight[old] -= 1.0;
    }
}

/// Greedy k-means++ as scikit-learn's `_kmeans_plusplus` (`2 + ln k` candidates a step).
pub(super) fn kmeans_plus_plus(d: &Data, k: usize, rng: &mut SplitMix64) -> Vec<f64> {
    let sq = |a: &[f64], b: &[f64]| {
        let e = distance(a, b);
        e * e
    };
    let trials = 2 + (k as f64).ln() as usize;
    let mut centres = Vec::with_capacity(k * d.nb);
    let first = rng.below(d.n);
    centres.extend_from_slice(d.point(first));
    let mut closest: Vec<f64> = (0..d.n).map(|i| sq(d.point(i), d.point(first))).collect();
    let mut pot: f64 = closest.iter().sum();
    let mut cand = vec![0.0; d.n];
    let mut best_dist = vec![0.0; d.n];
    let mut cumsum = Vec::with_capacity(d.n);
    for _ in 1..k {
        cumsum.clear();
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
            for (i, (cd, cl)) in cand.iter_mut().zip(&closest).enumerate() {
                *cd = sq(d.point(i), c).min(*cl);
                cpot += *cd;
            }
            if cpot < best_pot {
                best_pot = cpot;
                best_id = id;
                std::mem::swap(&mut best_dist, &mut cand);
            }
        }
        pot = best_pot;
        std::mem::swap(&mut closest, &mut best_dist);
        centres.extend_from_slice(d.point(best_id));
    }
    centres
}
