//! A first nearest-centre search in `f32`, kept only where its answer is certain.
//!
//! scikit-learn ranks centres by `|c|^2 - 2 x.c` in `f64`. The same ranking scored in `f32`
//! (sixteen lanes a 512-bit vector instead of eight), in coordinates shifted to the centres'
//! mean so that the numbers stay small, agrees with it except where two centres' scores lie
//! within the rounding error of either computation. [`F32Centres::margin`] bounds that error
//! from above: a point whose lowest and second lowest `f32` scores are further apart than the
//! margin has the same nearest centre in scikit-learn's arithmetic, and no tie there. The
//! searches score everything in `f32` and search again in `f64`, exactly, only the points
//! that fail this test (a few percent on real imagery), so the labels are scikit-learn's.
//!
//! The bound. Write `u = 2^-24`, `x` and `c` for the shifted point and centre, and `s` for a
//! score. Rounding the shifted point and centre to `f32` moves a squared distance by at most
//! `2.02 u (|x| + |c|)^2`; the `f32` norm, the `NB`-term fused multiply-add chain of `x.c`
//! and the final fused multiply-add add at most `u (2 |c|^2 + (2.2 NB + 2) |x||c|)`. So each
//! `f32` score is within `u (4.6 + 0.55 NB) (|x| + |c|)^2 <= u (9.2 + 1.1 NB) (|x|^2 + C^2)`
//! of the exact shifted score (`C`: the largest shifted centre norm), and scikit-learn's `f64`
//! score, on the unshifted values, within `2^-53 (4.6 + 0.55 NB) (|x_u| + |c_u|)^2` of its
//! exact score, where `(|x_u| + |c_u|)^2 <= 3 (|x|^2 + |m|^2 + C_u^2)` (`m`: the shift, `C_u`:
//! the largest unshifted centre norm). Exact scores of two centres differ by the same amount
//! in both frames, so if the `f32` gap exceeds twice the sum of the two errors, scikit-learn
//! orders the two centres the same way, strictly. The margin is `16 (NB + 4)` times the unit
//! roundoffs times those norms: more than three times that requirement for every band count.
//!
//! The vector screens themselves are kernels of [`crate::arch`] (`avx512::screen` and
//! `avx2::screen`); this module holds the centres' layout, the margin and the result.

/// The centres for the `f32` search: shifted to their mean, rounded to `f32`, with the
/// constants of the certainty margin.
#[derive(Debug, Clone)]
pub(crate) struct F32Centres {
    /// The shift (the centres' mean), per band.
    mean: Vec<f64>,
    /// The shifted centres band by band (`soa[b * kp + j]`), padded with zeros to `kp`
    /// centres, a multiple of sixteen, for scans with sixteen centres a vector.
    pub soa: Vec<f32>,
    /// `|c - mean|^2` of the rounded shifted centres (infinity if it overflows), padded with
    /// infinity to `kp` centres, so padding never wins.
    pub norms: Vec<f32>,
    /// The centres, before padding.
    pub k: usize,
    /// The centres after padding.
    pub kp: usize,
    /// The margin is `slope * |x - mean|^2 + floor`.
    pub slope: f32,
    /// See `slope`.
    pub floor: f32,
}

impl F32Centres {
    /// The layout of `centres` (`k x nb`, row-major).
    pub fn new(centres: &[f64], nb: usize) -> Self {
        let k = centres.len() / nb.max(1);
        let mean: Vec<f64> = (0..nb)
            .map(|b| (0..k).map(|j| centres[j * nb + b]).sum::<f64>() / k.max(1) as f64)
            .collect();
        let kp = k.div_ceil(16) * 16;
        let mut soa = vec![0.0f32; nb * kp];
        for (i, &v) in centres.iter().enumerate() {
            soa[(i % nb) * kp + i / nb] = (v - mean[i % nb]) as f32;
        }
        let norms64: Vec<f64> = (0..k)
            .map(|j| (0..nb).map(|b| (soa[b * kp + j] as f64).powi(2)).sum())
            .collect();
        let mut norms = vec![f32::INFINITY; kp];
        for (n, &v) in norms.iter_mut().zip(&norms64) {
            *n = v as f32;
        }
        let c2 = norms64.iter().fold(0.0f64, |m, &v| m.max(v));
        let cu2 = centres
            .chunks_exact(nb.max(1))
            .map(|c| c.iter().map(|v| v * v).sum::<f64>())
            .fold(0.0f64, f64::max);
        let m2: f64 = mean.iter().map(|v| v * v).sum();
        let k_factor = 16.0 * (nb as f64 + 4.0);
        let (u32_, u64_) = (2f64.powi(-24), 2f64.powi(-53));
        // Rounded up to f32 by a factor comfortably above f32's own rounding; infinite if
        // the numbers are too large for f32, which makes every point take the exact search.
        let up = |v: f64| (v * 1.01) as f32;
        Self {
            mean,
            soa,
            norms,
            k,
            kp,
            slope: up(k_factor * (u32_ + u64_)),
            floor: up(k_factor * (u32_ * c2 + u64_ * (m2 + cu2))),
        }
    }

    /// Band `b` of a point, shifted and rounded to `f32`.
    #[inline(always)]
    pub fn shift(&self, b: usize, v: f64) -> f32 {
        (v - self.mean[b]) as f32
    }

    /// The shift of band `b`.
    #[inline(always)]
    pub fn mean(&self, b: usize) -> f64 {
        self.mean[b]
    }

    /// How far apart a point's two lowest `f32` scores must be for the lower one's centre to
    /// be scikit-learn's answer, given the point's shifted squared norm `x_sq`. It is also
    /// more than twice the error of any one `f32` score. The vector scans compute it lane by
    /// lane (`slope * x_sq + floor` in one fused multiply-add); the tests use this.
    #[cfg(test)]
    pub fn margin(&self, x_sq: f32) -> f32 {
        self.slope.mul_add(x_sq, self.floor)
    }
}

/// Points per call of a screen ([`crate::arch::x86_64::avx512::screen::screen`]): two 512-bit
/// vectors of sixteen lanes, whose chains of minima overlap.
pub(crate) const LANES: usize = 32;

/// What a screen finds for each of [`LANES`] points.
#[derive(Default)]
pub(crate) struct Screened {
    /// The centre with the lowest `f32` score (the first on ties), from 0.
    pub label: [u32; LANES],
    /// The lowest score.
    pub low: [f32; LANES],
    /// The second lowest score (over every centre but the one with the lowest).
    pub second: [f32; LANES],
    /// The point's margin ([`F32Centres`]'s `slope * |x|^2 + floor`).
    pub margin: [f32; LANES],
    /// Bit `i` set where point `i`'s two lowest scores are further apart than its margin, so
    /// that `label[i]` is scikit-learn's answer.
    pub sure: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmeans::sklearn_math::{score, sq_norm};
    use crate::rng::SplitMix64;

    /// Wherever the `f32` gap clears the margin, scikit-learn's `f64` scores pick the same
    /// centre, strictly; tested on points placed near the midpoints of centre pairs, with
    /// offsets from far below the margin to far above it, and values as large as UInt32's.
    #[test]
    fn a_gap_beyond_the_margin_is_scikit_learns_answer() {
        let mut rng = SplitMix64::new(11);
        let mut cleared = 0;
        let mut held = 0;
        for nb in 1..=8usize {
            for scale in [40.0, 65535.0, 4.0e9] {
                let k = 12;
                let centres: Vec<f64> = (0..k * nb)
                    .map(|_| (rng.next_f64() * scale).floor())
                    .collect();
                let f = F32Centres::new(&centres, nb);
                let c = |j: usize| &centres[j * nb..(j + 1) * nb];
                for _ in 0..4000 {
                    let (a, b) = (rng.below(k), rng.below(k));
                    let t = 0.5 + (rng.next_f64() - 0.5) * 10f64.powi(-(rng.below(9) as i32));
                    let x: Vec<f64> = (0..nb)
                        .map(|i| (c(a)[i] * t + c(b)[i] * (1.0 - t)).round())
                        .collect();
                    let xs: Vec<f32> = (0..nb).map(|i| f.shift(i, x[i])).collect();
                    let x_sq = xs.iter().map(|v| v * v).sum::<f32>();
                    let mut scores: Vec<(f32, usize)> = (0..k)
                        .map(|j| {
                            let cj = |i: usize| f.soa[i * f.kp + j];
                            let mut acc = xs[0] * cj(0);
                            for (i, x) in xs.iter().enumerate().skip(1) {
                                acc = x.mul_add(cj(i), acc);
                            }
                            (acc.mul_add(-2.0, f.norms[j]), j)
                        })
                        .collect();
                    scores.sort_by(|p, q| p.0.total_cmp(&q.0).then(p.1.cmp(&q.1)));
                    if scores[1].0 - scores[0].0 > f.margin(x_sq) {
                        cleared += 1;
                        let best = scores[0].1;
                        let sb = score(&x, c(best), sq_norm(c(best)));
                        for j in (0..k).filter(|&j| j != best) {
                            let sj = score(&x, c(j), sq_norm(c(j)));
                            assert!(sj > sb, "{nb} bands, scale {scale}: {j} vs {best}");
                        }
                    } else {
                        held += 1;
                    }
                }
            }
        }
        // Both outcomes occur, so the test exercises the margin from both sides.
        assert!(
            cleared > 1000 && held > 1000,
            "{cleared} cleared, {held} held"
        );
    }
}
