//! The `f32` nearest-centre screen (see [`crate::kmeans::screen`]) eight points a 256-bit
//! vector, for CPUs without AVX-512: the same operations lane by lane as the AVX-512 screen, so
//! the same results.

use crate::kmeans::screen::{F32Centres, Screened, LANES};

/// The AVX-512 screen ([`super::super::avx512::screen::screen`]) for CPUs with AVX2 and FMA
/// but not AVX-512: eight lanes a 256-bit vector, the same operations lane by lane, so the same
/// scores and results.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn screen<const NB: usize>(centres: &F32Centres, xs: &[[f32; LANES]; NB]) -> Screened {
    use std::arch::x86_64::*;
    const V: usize = LANES / 8;
    let kp = centres.kp;
    let (soa, norms) = (&centres.soa[..NB * kp], &centres.norms[..centres.k]);
    let xv: [[__m256; NB]; V] = std::array::from_fn(|v| {
        debug_assert!(8 * v + 8 <= LANES);
        // SAFETY: `xs[b]` holds `8 V` values, so eight from `8 v` are inside it.
        std::array::from_fn(|b| unsafe { _mm256_loadu_ps(xs[b].as_ptr().add(8 * v)) })
    });
    let inf = _mm256_set1_ps(f32::INFINITY);
    let (mut low, mut second) = ([inf; V], [inf; V]);
    // The index bits ride in float registers, for the blend.
    let mut at = [_mm256_setzero_ps(); V];
    for (j, &norm) in norms.iter().enumerate() {
        let cb: [__m256; NB] = std::array::from_fn(|b| _mm256_set1_ps(soa[b * kp + j]));
        let norm = _mm256_set1_ps(norm);
        let jv = _mm256_castsi256_ps(_mm256_set1_epi32(j as i32));
        for v in 0..V {
            let mut acc = _mm256_mul_ps(xv[v][0], cb[0]);
            for b in 1..NB {
                acc = _mm256_fmadd_ps(xv[v][b], cb[b], acc);
            }
            let t = _mm256_fmadd_ps(acc, _mm256_set1_ps(-2.0), norm);
            second[v] = _mm256_min_ps(second[v], _mm256_max_ps(low[v], t));
            let lower = _mm256_cmp_ps::<_CMP_LT_OQ>(t, low[v]);
            at[v] = _mm256_blendv_ps(at[v], jv, lower);
            low[v] = _mm256_min_ps(t, low[v]);
        }
    }
    let (slope, floor) = (_mm256_set1_ps(centres.slope), _mm256_set1_ps(centres.floor));
    let mut out = Screened::default();
    for v in 0..V {
        let mut x_sq = _mm256_mul_ps(xv[v][0], xv[v][0]);
        for xb in &xv[v][1..] {
            x_sq = _mm256_fmadd_ps(*xb, *xb, x_sq);
        }
        let margin = _mm256_fmadd_ps(slope, x_sq, floor);
        // Ordered comparison: a NaN gap or margin is not sure.
        let gap = _mm256_sub_ps(second[v], low[v]);
        let clear = _mm256_cmp_ps::<_CMP_GT_OQ>(gap, margin);
        out.sure |= (_mm256_movemask_ps(clear) as u32) << (8 * v);
        debug_assert!(8 * v + 8 <= LANES);
        // SAFETY: each array holds `8 V` values, so eight from `8 v` are inside it.
        unsafe {
            _mm256_storeu_si256(
                out.label.as_mut_ptr().add(8 * v).cast(),
                _mm256_castps_si256(at[v]),
            );
            _mm256_storeu_ps(out.low.as_mut_ptr().add(8 * v), low[v]);
            _mm256_storeu_ps(out.second.as_mut_ptr().add(8 * v), second[v]);
            _mm256_storeu_ps(out.margin.as_mut_ptr().add(8 * v), margin);
        }
    }
    out
}
