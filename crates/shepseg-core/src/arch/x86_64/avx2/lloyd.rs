//! Lloyd's exact assignment scan four centres a 256-bit vector: scikit-learn's score of every
//! centre for a point whose bounds fail, with the lowest and second lowest per lane.

use crate::kmeans::centres::{distance, CentreView};
use crate::kmeans::lloyd::hamerly::{Block, Geometry};
use crate::kmeans::Data;

/// [`Block::full_each`] for point `i` in `f64`, exactly, scoring every centre, four a
/// 256-bit vector, with scikit-learn's arithmetic per lane, keeping per lane the lowest score with
/// its index and the second lowest score. A score is `d^2 - |x|^2` up to rounding, so the
/// second lowest, plus `|x|^2`, less a margin well above that rounding, bounds the
/// squared distance to every other centre from below.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn full<const NB: usize>(block: &mut Block, d: &Data, geo: &Geometry, i: usize) {
    use std::arch::x86_64::*;
    let x = d.point::<NB>(block.start + i);
    let centres = geo.padded.view::<NB, 4>();
    let xs: [__m256d; NB] = std::array::from_fn(|b| _mm256_set1_pd(x[b]));
    let four = _mm256_set1_pd(4.0);
    let inf = _mm256_set1_pd(f64::INFINITY);
    let (mut s1, mut s1_idx, mut s2) = (inf, _mm256_setzero_pd(), inf);
    let mut idx = _mm256_set_pd(3.0, 2.0, 1.0, 0.0);
    for c in 0..centres.chunks() {
        let s = scores(&centres, &xs, c);
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
    block.labels[i] = best as u32;
    block.upper[i] = distance(x, geo.centre::<NB>(best));
    block.lower[i] = (x_sq + second - margin).max(0.0).sqrt();
}

/// scikit-learn's scores `|c|^2 - 2 x.c` of centres `4c .. 4c + 4` for the point whose
/// bands `xs` holds (each broadcast to four lanes): `x.c` a chain of fused multiply-adds
/// from `x[0] * c[0]` as BLAS computes it, then one more fused multiply-add, which rounds
/// as the separate add does because `-2 x.c` is exact. Padding centres score infinity.
/// Panics if `c >= view.chunks()`.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) fn scores<const NB: usize>(
    view: &CentreView<'_, NB, 4>,
    xs: &[std::arch::x86_64::__m256d; NB],
    c: usize,
) -> std::arch::x86_64::__m256d {
    use std::arch::x86_64::*;
    let (at, soa, kp) = (view.checked(c), view.soa.as_ptr(), view.kp);
    let centre = |b: usize| {
        debug_assert!(b < NB && b * kp + at + 4 <= view.soa.len());
        // SAFETY: `b < NB` and `at` from `checked`, so the four lanes at `b * kp + at` lie
        // inside `soa` (`NB * kp` values).
        unsafe { _mm256_loadu_pd(soa.add(b * kp + at)) }
    };
    let mut acc = _mm256_mul_pd(xs[0], centre(0));
    for (b, xb) in xs.iter().enumerate().skip(1) {
        acc = _mm256_fmadd_pd(*xb, centre(b), acc);
    }
    debug_assert!(at + 4 <= view.norms.len());
    // SAFETY: `at` from `checked`, so the four lanes at `at` lie inside `norms` (`kp` values).
    let norm = unsafe { _mm256_loadu_pd(view.norms.as_ptr().add(at)) };
    _mm256_fmadd_pd(acc, _mm256_set1_pd(-2.0), norm)
}

/// The index in `idx` of the lowest score in `score`, the lowest index on ties: lane minima
/// found with swaps and `min`, no branches (a scalar loop over the lanes mispredicts often).
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn lowest_lane(
    score: std::arch::x86_64::__m256d,
    idx: std::arch::x86_64::__m256d,
) -> usize {
    use std::arch::x86_64::*;
    let low = lane_min(score);
    let at_low = _mm256_cmp_pd::<_CMP_EQ_OQ>(score, low);
    let cand = _mm256_blendv_pd(_mm256_set1_pd(f64::INFINITY), idx, at_low);
    _mm256_cvtsd_f64(lane_min(cand)) as usize
}

/// The minimum of the four lanes of `v`, in every lane.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn lane_min(v: std::arch::x86_64::__m256d) -> std::arch::x86_64::__m256d {
    use std::arch::x86_64::*;
    let m = _mm256_min_pd(v, _mm256_permute2f128_pd::<1>(v, v));
    _mm256_min_pd(m, _mm256_permute_pd::<0b0101>(m))
}
