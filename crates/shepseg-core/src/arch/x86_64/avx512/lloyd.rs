//! Lloyd's assignment step eight points or centres a 512-bit vector: the bounds moved and
//! tightened eight points at a time (gathered), and the exact scan eight centres a vector.

use crate::kmeans::centres::{distance, CentreView};
use crate::kmeans::lloyd::hamerly::{Block, Geometry, Moved, SLACK, X_AHEAD};
use crate::kmeans::Data;
use crate::mem::prefetch;

/// [`Block`]'s skip test for eight points, labels `a`, as a mask. Where a half gap is NaN (never,
/// with finite centres) the bound is NaN and the point fails: a scan more, the same labels.
///
/// # Safety
/// The CPU must support AVX-512F, and every lane of `a` must be a centre's index (below
/// `geo.half_gap.len()`).
#[target_feature(enable = "avx512f")]
unsafe fn fails(
    geo: &Geometry,
    a: std::arch::x86_64::__m512i,
    upper: std::arch::x86_64::__m512d,
    lower: std::arch::x86_64::__m512d,
) -> u8 {
    use std::arch::x86_64::*;
    debug_assert!(lanes(a).iter().all(|&j| (j as usize) < geo.half_gap.len()));
    // SAFETY: the labels index `half_gap`, one entry per centre (the caller's promise).
    let half_gap = unsafe { _mm512_i64gather_pd::<8>(a, geo.half_gap.as_ptr()) };
    // `max` returns its second operand where either is NaN: a NaN lower bound gives the half
    // gap, as `f64::max` does.
    let bound = _mm512_mul_pd(_mm512_max_pd(lower, half_gap), _mm512_set1_pd(1.0 - SLACK));
    _mm512_cmp_pd_mask::<_CMP_NLE_UQ>(upper, bound)
}

/// [`Block::move_bounds`] eight points a vector, the same arithmetic lane by lane, over
/// the whole groups of eight (the scalar loop takes the rest); returns how many it listed.
///
/// # Safety
/// The CPU must support AVX-512F. The block's labels must index `moved`'s centres (`shift`,
/// `drop` and `half_gap`), and `todo` must be as long as the block.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn move_bounds<const NB: usize>(
    block: &mut Block,
    moved: &Moved,
    todo: &mut [u32],
) -> usize {
    use std::arch::x86_64::*;
    let Moved {
        geo, shift, drop, ..
    } = *moved;
    let n = block.labels.len();
    debug_assert!(block.upper.len() == n && block.lower.len() == n && todo.len() >= n);
    let mut m = 0;
    let mut i = 0;
    while i + 8 <= n {
        debug_assert!(block.labels[i..i + 8]
            .iter()
            .all(|&a| (a as usize) < shift.len() && (a as usize) < drop.len()));
        // SAFETY: `i + 8 <= n`, the length of `labels`, `upper` and `lower`; the labels
        // index `shift`, `drop` and `half_gap` (one entry per centre).
        unsafe {
            let a = _mm512_cvtepu32_epi64(_mm256_loadu_si256(block.labels.as_ptr().add(i).cast()));
            let up = _mm512_add_pd(
                _mm512_loadu_pd(block.upper.as_ptr().add(i)),
                _mm512_i64gather_pd::<8>(a, shift.as_ptr()),
            );
            let lo = _mm512_sub_pd(
                _mm512_loadu_pd(block.lower.as_ptr().add(i)),
                _mm512_i64gather_pd::<8>(a, drop.as_ptr()),
            );
            _mm512_storeu_pd(block.upper.as_mut_ptr().add(i), up);
            _mm512_storeu_pd(block.lower.as_mut_ptr().add(i), lo);
            let mask = fails(geo, a, up, lo);
            for lane in 0..8 {
                todo[m] = (i + lane) as u32;
                m += usize::from(mask >> lane & 1 == 1);
            }
        }
        i += 8;
    }
    block.move_bounds(moved, todo, i, m)
}

/// [`Block::tighten`] eight points a vector (gathered), the same arithmetic lane by lane,
/// over the whole groups of eight of `todo[..m]` (the scalar loop takes the rest); returns
/// how many it kept.
///
/// # Safety
/// The CPU must support AVX-512F. `todo[..m]` must list points of the block, whose labels
/// index `moved`'s centres; `NB` must be the sample's band count (at least 1).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn tighten<const NB: usize>(
    block: &mut Block,
    moved: &Moved,
    todo: &mut [u32],
    m: usize,
) -> usize {
    use std::arch::x86_64::*;
    let Moved { d, geo, .. } = *moved;
    let n = block.labels.len();
    debug_assert!(block.upper.len() == n && block.lower.len() == n && m <= todo.len());
    debug_assert!(NB > 0 && d.nb == NB && geo.centres.len() == geo.half_gap.len() * NB);
    let mut m2 = 0;
    let mut k = 0;
    let (start, nb) = (
        _mm512_set1_epi64(block.start as i64),
        _mm512_set1_epi64(NB as i64),
    );
    while k + 8 <= m {
        for &ahead in todo.iter().skip(k + X_AHEAD).take(8) {
            prefetch(d.x, (block.start + ahead as usize) * NB);
        }
        // The gathers' indices: each listed point `p` indexes the block's `labels`, `upper`
        // and `lower`, `(start + p) * NB + b` the sample (`start + p` within the 32 bits
        // `_mm512_mul_epu32` multiplies), and its label the centres and `half_gap`.
        debug_assert!(todo[k..k + 8].iter().all(|&p| {
            let p = p as usize;
            p < n
                && (block.start + p + 1) * NB <= d.x.len()
                && block.start + p <= u32::MAX as usize
                && (block.labels[p] as usize) < geo.half_gap.len()
        }));
        // SAFETY: `k + 8 <= m <= todo.len()`; the listed points are in the block, so
        // they index `labels`, `upper` and `lower`, and `start + i` the sample (`NB`
        // values a point); the labels index the centres (`NB` values each) and
        // `half_gap`.
        unsafe {
            let idx = _mm256_loadu_si256(todo.as_ptr().add(k).cast());
            let i = _mm512_cvtepu32_epi64(idx);
            let a =
                _mm512_cvtepu32_epi64(_mm512_i64gather_epi32::<4>(i, block.labels.as_ptr().cast()));
            let point = _mm512_mul_epu32(_mm512_add_epi64(i, start), nb);
            let centre = _mm512_mul_epu32(a, nb);
            // `distance`: the squared differences added in band order from 0, then the
            // square root.
            let mut acc = _mm512_setzero_pd();
            for b in 0..NB {
                let x = _mm512_i64gather_pd::<8>(point, d.x.as_ptr().add(b));
                let c = _mm512_i64gather_pd::<8>(centre, geo.centres.as_ptr().add(b));
                let diff = _mm512_sub_pd(x, c);
                acc = _mm512_add_pd(acc, _mm512_mul_pd(diff, diff));
            }
            let up = _mm512_sqrt_pd(acc);
            _mm512_i64scatter_pd::<8>(block.upper.as_mut_ptr(), i, up);
            let lo = _mm512_i64gather_pd::<8>(i, block.lower.as_ptr());
            let mask = fails(geo, a, up, lo);
            let mut lanes = [0u32; 8];
            _mm256_storeu_si256(lanes.as_mut_ptr().cast(), idx);
            for (lane, &p) in lanes.iter().enumerate() {
                todo[m2] = p;
                m2 += usize::from(mask >> lane & 1 == 1);
            }
        }
        k += 8;
    }
    block.tighten::<NB>(moved, todo, k, m, m2)
}

/// [`super::super::avx2::lloyd::full`] with eight centres a 512-bit vector: the same scores, lane
/// for lane, so the same labels and bounds.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) unsafe fn full<const NB: usize>(block: &mut Block, d: &Data, geo: &Geometry, i: usize) {
    use std::arch::x86_64::*;
    let x = d.point::<NB>(block.start + i);
    let centres = geo.padded.view::<NB, 8>();
    let xs: [__m512d; NB] = std::array::from_fn(|b| _mm512_set1_pd(x[b]));
    let eight = _mm512_set1_pd(8.0);
    let inf = _mm512_set1_pd(f64::INFINITY);
    let (mut s1, mut s1_idx, mut s2) = (inf, _mm512_setzero_pd(), inf);
    let mut idx = _mm512_set_pd(7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0);
    for c in 0..centres.chunks() {
        let s = scores(&centres, &xs, c);
        let lower = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(s, s1);
        s2 = _mm512_min_pd(s2, _mm512_max_pd(s1, s));
        s1_idx = _mm512_mask_blend_pd(lower, s1_idx, idx);
        s1 = _mm512_min_pd(s1, s);
        idx = _mm512_add_pd(idx, eight);
    }
    let best = lowest_lane(s1, s1_idx);
    // The second lowest score: the lowest once the winner's lane offers its runner-up.
    let winner = _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(s1_idx, _mm512_set1_pd(best as f64));
    let second = _mm512_reduce_min_pd(_mm512_mask_blend_pd(winner, s1, s2));
    let x_sq: f64 = x.iter().map(|v| v * v).sum();
    let margin = 1e-13 * (x_sq + geo.max_sq_norm + 1.0);
    block.labels[i] = best as u32;
    block.upper[i] = distance(x, geo.centre::<NB>(best));
    block.lower[i] = (x_sq + second - margin).max(0.0).sqrt();
}

/// The scores of centres `8c .. 8c + 8`, computed as the four-lane
/// [`super::super::avx2::lloyd::scores`] computes four. Panics if `c >= view.chunks()`.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn scores<const NB: usize>(
    view: &CentreView<'_, NB, 8>,
    xs: &[std::arch::x86_64::__m512d; NB],
    c: usize,
) -> std::arch::x86_64::__m512d {
    use std::arch::x86_64::*;
    let (at, soa, kp) = (view.checked(c), view.soa.as_ptr(), view.kp);
    let centre = |b: usize| {
        debug_assert!(b < NB && b * kp + at + 8 <= view.soa.len());
        // SAFETY: `b < NB` and `at` from `checked`, so the eight lanes at `b * kp + at` lie
        // inside `soa` (`NB * kp` values).
        unsafe { _mm512_loadu_pd(soa.add(b * kp + at)) }
    };
    let mut acc = _mm512_mul_pd(xs[0], centre(0));
    for (b, xb) in xs.iter().enumerate().skip(1) {
        acc = _mm512_fmadd_pd(*xb, centre(b), acc);
    }
    debug_assert!(at + 8 <= view.norms.len());
    // SAFETY: `at` from `checked`, so the eight lanes at `at` lie inside `norms` (`kp` values).
    let norm = unsafe { _mm512_loadu_pd(view.norms.as_ptr().add(at)) };
    _mm512_fmadd_pd(acc, _mm512_set1_pd(-2.0), norm)
}

/// [`super::super::avx2::lloyd::lowest_lane`] for eight lanes: the index in `idx` of the lowest
/// score in `score`, the lowest index on ties; 0 if no lane holds a number (NaN scores).
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn lowest_lane(
    score: std::arch::x86_64::__m512d,
    idx: std::arch::x86_64::__m512d,
) -> usize {
    use std::arch::x86_64::*;
    let low = _mm512_set1_pd(_mm512_reduce_min_pd(score));
    let at_low = _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(score, low);
    if at_low == 0 {
        0
    } else {
        _mm512_mask_reduce_min_pd(at_low, idx) as usize
    }
}

/// The eight 64-bit lanes of `v`, for the debug assertions on gather indices.
#[target_feature(enable = "avx512f")]
fn lanes(v: std::arch::x86_64::__m512i) -> [i64; 8] {
    let mut out = [0i64; 8];
    // SAFETY: `out` holds the eight 64-bit values stored.
    unsafe { std::arch::x86_64::_mm512_storeu_si512(out.as_mut_ptr().cast(), v) };
    out
}
