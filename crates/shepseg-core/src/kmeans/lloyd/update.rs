//! Lloyd's update step as scikit-learn's: each centre moves to the mean of its points, from
//! partial sums over 256-point chunks split between two threads (as scikit-learn's OpenMP loop
//! does on two cores) then multiplied by the reciprocal of the count; empty clusters are
//! re-seeded from the points farthest from their centres.

use super::super::Data;
use crate::numeric::numpy_sum;
use crate::par::par_map;

/// Points per chunk in scikit-learn's Lloyd loop.
const CHUNK: usize = 256;
/// OpenMP threads whose partial sums are mirrored (scikit-learn uses one per core; the
/// reference results were made on two cores).
const THREADS: usize = 2;

/// scikit-learn's update step: chunked partial sums, empty-cluster relocation, averaging.
/// The partial sums of scikit-learn's threads are added in its order, so the result does not
/// depend on how many threads compute them (with the band count fixed, one thread steps
/// through them side by side; otherwise they run in parallel).
pub(super) fn update_centres<const NB: usize>(
    d: &Data,
    centres: &[f64],
    labels: &[u32],
    out: &mut [f64],
) {
    let nb = d.nb::<NB>();
    let k = centres.len() / nb;
    // Chunks of 256 points, split between the threads as OpenMP's static schedule does.
    let chunk = CHUNK.min(d.n).max(1);
    let n_chunks = d.n.div_ceil(chunk);
    let (q, r) = (n_chunks / THREADS, n_chunks % THREADS);
    let mut start_chunk = 0;
    let ranges: [(usize, usize); THREADS] = std::array::from_fn(|t| {
        let count = q + usize::from(t < r);
        let range = (
            start_chunk * chunk,
            ((start_chunk + count) * chunk).min(d.n),
        );
        start_chunk += count;
        range
    });
    let partials = if NB > 0 {
        interleaved_sums::<NB>(d, labels, k, &ranges)
    } else {
        par_map(ranges.to_vec(), |(lo, hi)| {
            let mut local = vec![0.0f64; k * nb];
            let mut local_w = vec![0.0f64; k];
            for (i, &label) in labels.iter().enumerate().take(hi).skip(lo) {
                let a = label as usize;
                local_w[a] += 1.0;
                for (s, v) in local[a * nb..(a + 1) * nb].iter_mut().zip(d.point::<NB>(i)) {
                    *s += v;
                }
            }
            (lo < hi).then_some((local, local_w))
        })
    };
    let mut weight = vec![0.0f64; k];
    out.iter_mut().for_each(|v| *v = 0.0);
    for (local, local_w) in partials.into_iter().flatten() {
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

/// The per-thread partial sums of [`update_centres`] (each range's points added in order into
/// its own sums, as scikit-learn's threads add them), for `NB > 0` bands, with the ranges
/// stepped through side by side on one thread. Consecutive points often share a label, so
/// one range's additions wait on each other through memory; the other range's, independent,
/// fill that wait. Weights are counted as integers, which the `f64` sums of ones equal
/// exactly.
fn interleaved_sums<const NB: usize>(
    d: &Data,
    labels: &[u32],
    k: usize,
    r: &[(usize, usize); THREADS],
) -> Vec<Option<(Vec<f64>, Vec<f64>)>> {
    let (x, _) = d.x[..d.n * NB].as_chunks::<NB>();
    let mut sums: [Vec<[f64; NB]>; THREADS] = std::array::from_fn(|_| vec![[0.0; NB]; k]);
    let mut counts: [Vec<u32>; THREADS] = std::array::from_fn(|_| vec![0; k]);
    #[inline(always)]
    fn add<const NB: usize>(sum: &mut [[f64; NB]], count: &mut [u32], a: u32, p: &[f64; NB]) {
        let a = a as usize;
        count[a] += 1;
        let s = &mut sum[a];
        for b in 0..NB {
            s[b] += p[b];
        }
    }
    let common = r.iter().map(|&(lo, hi)| hi - lo).min().unwrap_or(0);
    for i in 0..common {
        for t in 0..THREADS {
            let p = r[t].0 + i;
            add(&mut sums[t], &mut counts[t], labels[p], &x[p]);
        }
    }
    for t in 0..THREADS {
        for p in r[t].0 + common..r[t].1 {
            add(&mut sums[t], &mut counts[t], labels[p], &x[p]);
        }
    }
    r.iter()
        .zip(sums)
        .zip(counts)
        .map(|((&(lo, hi), sum), count)| {
            (lo < hi).then(|| {
                let flat = sum.into_iter().flatten().collect();
                (flat, count.into_iter().map(f64::from).collect())
            })
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn interleaved_update_equals_the_per_thread_sums() {
        // Labels in runs (as neighbouring sample points share them), values whose sums round:
        // the update with the band count fixed (interleaved ranges, integer counts) must give
        // the generic per-thread loop's centres bit for bit.
        let mut rng = SplitMix64::new(17);
        for n in [1usize, 255, 257, 5000, 70_001] {
            let nb = 4;
            let k = 7;
            let x: Vec<f64> = (0..n * nb)
                .map(|_| rng.next_f64() * 3000.0 - 1234.567)
                .collect();
            let mut labels = vec![0u32; n];
            let mut cur = 0u32;
            for l in labels.iter_mut() {
                if rng.next_f64() < 0.3 {
                    cur = (rng.next_f64() * (k - 1) as f64) as u32;
                }
                *l = cur;
            }
            let d = Data { x: &x, n, nb };
            let centres: Vec<f64> = (0..k * nb).map(|v| v as f64).collect();
            let (mut fixed, mut generic) = (vec![0.0; k * nb], vec![0.0; k * nb]);
            update_centres::<4>(&d, &centres, &labels, &mut fixed);
            update_centres::<0>(&d, &centres, &labels, &mut generic);
            let bits = |v: &[f64]| v.iter().map(|c| c.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fixed), bits(&generic), "n = {n}");
        }
    }
}
