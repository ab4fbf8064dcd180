//! k-means++'s passes over the sample eight points a 256-bit vector: each point's squared
//! distance to a candidate centre, lowered to its distance to the nearest centre so far, summed
//! lane by lane in the scalar pass's order, so the same potentials.

use crate::kmeans::kmeanspp::{Columns, POT_LANES};

/// The scalar `block_pass` of [`crate::kmeans::kmeanspp`] with 256-bit vectors, eight points a
/// vector: the same arithmetic lane by lane (squares added band by band from 0, no fused
/// multiply-add; the minimum taken as `min_dist` takes it; each lane summed in `f64`), one
/// candidate after another over the block, which stays in the cache between them. `NB` must be
/// at least 1.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn block_pass<const NB: usize>(
    cols: &Columns,
    cands: &[f32],
    first: usize,
    closest: &[f32],
    mut lowered: Option<&mut [f32]>,
) -> Vec<[f64; POT_LANES]> {
    use std::arch::x86_64::*;
    let len = closest.len();
    let cols_at: [&[f32]; NB] =
        std::array::from_fn(|b| &cols.soa[b * cols.np + first..b * cols.np + first + len]);
    cands
        .chunks_exact(NB)
        .map(|c| {
            let cb: [__m256; NB] = std::array::from_fn(|b| _mm256_set1_ps(c[b]));
            let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
            for g in 0..len / POT_LANES {
                let at = g * POT_LANES..(g + 1) * POT_LANES;
                let m = group_min(&cols_at, &cb, closest, lowered.as_deref_mut(), at);
                lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(m)));
                hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(m)));
            }
            let mut out = [0.0f64; POT_LANES];
            debug_assert!(4 + 4 <= out.len());
            // SAFETY: `out` holds eight values, four stored from each vector.
            unsafe {
                _mm256_storeu_pd(out.as_mut_ptr(), lo);
                _mm256_storeu_pd(out.as_mut_ptr().add(4), hi);
            }
            out
        })
        .collect()
}

/// One group of eight points (`at`, eight long) of a k-means++ pass against the candidate
/// whose bands `cb` holds: each point's squared distance (squares added band by band from 0,
/// no fused multiply-add), lowered to its `closest`, stored to `lowered` if given.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn group_min<const NB: usize>(
    cols_at: &[&[f32]; NB],
    cb: &[std::arch::x86_64::__m256; NB],
    closest: &[f32],
    lowered: Option<&mut [f32]>,
    at: std::ops::Range<usize>,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let eight = |v: &[f32]| -> *const f32 {
        assert!(v.len() == POT_LANES);
        v.as_ptr()
    };
    let mut e = _mm256_setzero_ps();
    for b in 0..NB {
        // SAFETY: `eight` checked that the slice holds the eight values loaded.
        let v = _mm256_sub_ps(
            unsafe { _mm256_loadu_ps(eight(&cols_at[b][at.clone()])) },
            cb[b],
        );
        e = _mm256_add_ps(e, _mm256_mul_ps(v, v));
    }
    // SAFETY: as above.
    let m = _mm256_min_ps(e, unsafe { _mm256_loadu_ps(eight(&closest[at.clone()])) });
    if let Some(out) = lowered {
        let out = &mut out[at];
        assert!(out.len() == POT_LANES);
        // SAFETY: `out` holds the eight values stored (checked above).
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), m) };
    }
    m
}
