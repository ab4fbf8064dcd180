//! The `f32` nearest-centre screen (see [`crate::kmeans::screen`]) sixteen points a 512-bit
//! vector: every centre scored for each point, and whether the lowest score is certain to be
//! scikit-learn's answer.

use crate::kmeans::screen::{F32Centres, Screened, LANES};

/// Scores [`LANES`] points (`xs[b][i]`: band `b` of point `i`, shifted) against every
/// centre, one point a lane and one centre at a time (the centre's bands and norm
/// broadcast): each lane keeps its lowest score with that centre's index and its second
/// lowest score, so no reduction across lanes is needed. A NaN score makes the second
/// lowest NaN, and ordered comparisons then leave the point unsure.
#[target_feature(enable = "avx512f")]
pub(crate) fn screen<const NB: usize>(centres: &F32Centres, xs: &[[f32; LANES]; NB]) -> Screened {
    use std::arch::x86_64::*;
    const V: usize = LANES / 16;
    let kp = centres.kp;
    let (soa, norms) = (&centres.soa[..NB * kp], &centres.norms[..centres.k]);
    let xv: [[__m512; NB]; V] = std::array::from_fn(|v| {
        debug_assert!(16 * v + 16 <= LANES);
        // SAFETY: `xs[b]` holds `16 V` values, so sixteen from `16 v` are inside it.
        std::array::from_fn(|b| unsafe { _mm512_loadu_ps(xs[b].as_ptr().add(16 * v)) })
    });
    let inf = _mm512_set1_ps(f32::INFINITY);
    let (mut low, mut second) = ([inf; V], [inf; V]);
    let mut at = [_mm512_setzero_si512(); V];
    for (j, &norm) in norms.iter().enumerate() {
        let cb: [__m512; NB] = std::array::from_fn(|b| _mm512_set1_ps(soa[b * kp + j]));
        let norm = _mm512_set1_ps(norm);
        let jv = _mm512_set1_epi32(j as i32);
        for v in 0..V {
            let mut acc = _mm512_mul_ps(xv[v][0], cb[0]);
            for b in 1..NB {
                acc = _mm512_fmadd_ps(xv[v][b], cb[b], acc);
            }
            let t = _mm512_fmadd_ps(acc, _mm512_set1_ps(-2.0), norm);
            second[v] = _mm512_min_ps(second[v], _mm512_max_ps(low[v], t));
            let lower = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(t, low[v]);
            at[v] = _mm512_mask_mov_epi32(at[v], lower, jv);
            low[v] = _mm512_min_ps(t, low[v]);
        }
    }
    let (slope, floor) = (_mm512_set1_ps(centres.slope), _mm512_set1_ps(centres.floor));
    let mut out = Screened::default();
    for v in 0..V {
        let mut x_sq = _mm512_mul_ps(xv[v][0], xv[v][0]);
        for xb in &xv[v][1..] {
            x_sq = _mm512_fmadd_ps(*xb, *xb, x_sq);
        }
        let margin = _mm512_fmadd_ps(slope, x_sq, floor);
        // Ordered comparison: a NaN gap or margin is not sure.
        let gap = _mm512_sub_ps(second[v], low[v]);
        let clear = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(gap, margin);
        out.sure |= u32::from(clear) << (16 * v);
        debug_assert!(16 * v + 16 <= LANES);
        // SAFETY: each array holds `16 V` values, so sixteen from `16 v` are inside it.
        unsafe {
            _mm512_storeu_si512(out.label.as_mut_ptr().add(16 * v).cast(), at[v]);
            _mm512_storeu_ps(out.low.as_mut_ptr().add(16 * v), low[v]);
            _mm512_storeu_ps(out.second.as_mut_ptr().add(16 * v), second[v]);
            _mm512_storeu_ps(out.margin.as_mut_ptr().add(16 * v), margin);
        }
    }
    out
}
