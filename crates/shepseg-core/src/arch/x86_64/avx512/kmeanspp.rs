//! k-means++'s passes over the sample sixteen points a 512-bit vector, summed lane by lane in
//! the scalar pass's order, so the same potentials.

use crate::arch::x86_64::avx2::kmeanspp::group_min;
use crate::kmeans::kmeanspp::{Columns, POT_LANES};

/// [`super::super::avx2::kmeanspp::block_pass`] sixteen points a 512-bit vector: the same per-point
/// arithmetic, and the eight `f64` lanes take the first eight points of a vector, then the other
/// eight, so every lane sums the same values in the same order. `NB` must be at least 1.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn block_pass<const NB: usize>(
    cols: &Columns,
    cands: &[f32],
    first: usize,
    closest: &[f32],
    mut lowered: Option<&mut [f32]>,
) -> Vec<[f64; POT_LANES]> {
    use std::arch::x86_64::*;
    const WIDE: usize = 2 * POT_LANES;
    let len = closest.len();
    let cols_at: [&[f32]; NB] =
        std::array::from_fn(|b| &cols.soa[b * cols.np + first..b * cols.np + first + len]);
    // Whole vectors of sixteen points, then at most one group of eight.
    let wide = len / WIDE * WIDE;
    cands
        .chunks_exact(NB)
        .map(|c| {
            let cb: [__m512; NB] = std::array::from_fn(|b| _mm512_set1_ps(c[b]));
            let mut acc = _mm512_setzero_pd();
            for (g, cl) in closest[..wide].chunks_exact(WIDE).enumerate() {
                let at = g * WIDE..(g + 1) * WIDE;
                debug_assert!(at.len() == WIDE && cl.len() == WIDE);
                let mut e = _mm512_setzero_ps();
                for b in 0..NB {
                    // SAFETY: every slice loaded from or stored to here holds sixteen values.
                    let v = _mm512_sub_ps(
                        unsafe { _mm512_loadu_ps(cols_at[b][at.clone()].as_ptr()) },
                        cb[b],
                    );
                    e = _mm512_add_ps(e, _mm512_mul_ps(v, v));
                }
                // SAFETY: `cl` holds sixteen values.
                let m = _mm512_min_ps(e, unsafe { _mm512_loadu_ps(cl.as_ptr()) });
                if let Some(out) = lowered.as_deref_mut() {
                    // SAFETY: `out[at]` holds sixteen values.
                    unsafe { _mm512_storeu_ps(out[at].as_mut_ptr(), m) };
                }
                let halves = _mm512_castps_pd(m);
                let low = _mm256_castpd_ps(_mm512_castpd512_pd256(halves));
                let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(halves));
                acc = _mm512_add_pd(acc, _mm512_cvtps_pd(low));
                acc = _mm512_add_pd(acc, _mm512_cvtps_pd(high));
            }
            if wide < len {
                // `len` is a multiple of eight: one group of eight is left.
                let cb: [__m256; NB] = std::array::from_fn(|b| _mm256_set1_ps(c[b]));
                let m = group_min(&cols_at, &cb, closest, lowered.as_deref_mut(), wide..len);
                acc = _mm512_add_pd(acc, _mm512_cvtps_pd(m));
            }
            let mut out = [0.0f64; POT_LANES];
            // SAFETY: `out` holds eight values.
            unsafe { _mm512_storeu_pd(out.as_mut_ptr(), acc) };
            out
        })
        .collect()
}
