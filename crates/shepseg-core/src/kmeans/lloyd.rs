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
//! every centre with AVX-512 or AVX2 vectors where the CPU has them (else by a pruned scalar scan).
//!
//! Every pass over the sample (k-means++'s and Lloyd's) runs over fixed blocks of points that
//! threads take one at a time, their results combined in block order: the model is the same
//! for any thread count. k-means++ only weighs points to draw centres, so it reads an `f32` copy
//! of the sample; Lloyd's iterations keep scikit-learn's `f64` arithmetic.

use super::predict::{by_distance, distance, half_gaps, sq_distance, PaddedCentres};
#[cfg(target_arch = "x86_64")]
use super::predict::{lane_min, lowest_lane, lowest_lane_avx512};
use super::screen::{F32Centres, Screened, LANES};
use super::sklearn_math::{euclidean, score, sq_norm};
use crate::mem::prefetch;
use crate::numeric::numpy_sum;
use crate::par::par_map;
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

/// How long a Lloyd run goes on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Run {
    /// Iterations at most.
    pub max_iter: usize,
    /// Stop once the summed squared centre shift is at most this.
    pub tol: f64,
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
/// How many points ahead of the one being bounded the assignment step prefetches the sample.
const X_AHEAD: usize = 24;

/// The vector instructions a pass over the sample uses, chosen once per fit. For Lloyd's
/// assignment, how a point whose bounds fail is scanned: `Scalar` scans only the centres the
/// triangle inequality cannot rule out, one at a time; the vector choices score every centre,
/// one point a lane (exactly, four (AVX2) or eight (AVX-512) centres a vector, where that
/// leaves a point uncertain). For k-means++'s passes, eight or sixteen points a vector.
pub(super) use crate::cpu::Simd;

impl Simd {
    /// Centres a vector of Lloyd's scan holds, the padding the centres need.
    fn width(self) -> usize {
        match self {
            Simd::Avx512 => 8,
            Simd::Scalar | Simd::Avx2 => 4,
        }
    }
}

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
    /// The centres laid out for the vector scans, padded to a multiple of the scan's width.
    padded: PaddedCentres,
    /// Largest `|c|^2`, for the rounding margin of score-derived distances.
    max_sq_norm: f64,
    /// The centres for the AVX-512 scan's first, `f32`, pass.
    f32c: F32Centres,
}

impl<'a> Geometry<'a> {
    fn new(centres: &'a [f64], nb: usize, scan: Simd) -> Self {
        let by_distance = by_distance(centres, nb);
        let norms: Vec<f64> = centres.chunks_exact(nb).map(sq_norm).collect();
        Self {
            centres,
            nb,
            half_gap: half_gaps(&by_distance),
            by_distance,
            max_abs: centres.iter().fold(0.0f64, |m, v| m.max(v.abs())),
            padded: PaddedCentres::new(centres, nb, &norms, scan.width()),
            max_sq_norm: norms.iter().fold(0.0f64, |m, &v| m.max(v)),
            norms,
            f32c: F32Centres::new(centres, nb),
        }
    }

    #[inline(always)]
    fn centre<const NB: usize>(&self, j: usize) -> &[f64] {
        let nb = if NB > 0 { NB } else { self.nb };
        &self.centres[j * nb..(j + 1) * nb]
    }
}

/// Points per block of the assignment steps, which threads take one at a time: fixed, so
/// that neither the work split nor any result depends on the thread count.
const LLOYD_BLOCK: usize = 16384;

/// Per-point bookkeeping: label and Hamerly's bounds.
struct Assignment {
    labels: Vec<u32>,
    upper: Vec<f64>,
    lower: Vec<f64>,
    /// Room for the indices of the points a step has still to bound or scan.
    todo: Vec<u32>,
    /// How a point whose bounds fail is scanned.
    scan: Simd,
    /// Whether the CPU has FMA, so that the blocks' code (run in the threads' closures, which
    /// do not inherit the caller's target features) is compiled with it.
    fma: bool,
}

/// What an assignment step needs: the sample, the new centres, how far each moved (`shift`)
/// and what the lower bounds of each one's points lose (`drop`: the largest shift of any
/// other centre).
#[derive(Clone, Copy)]
struct Moved<'a> {
    d: &'a Data<'a>,
    geo: &'a Geometry<'a>,
    shift: &'a [f64],
    drop: &'a [f64],
}

/// Whether a point's bounds fail to rule out the centres other than its own, `a`
/// (`!(upper <= bound)`, so a NaN bound does not skip).
#[inline(always)]
fn fails(half_gap: &[f64], upper: f64, lower: f64, a: usize) -> bool {
    let bound = half_gap[a].max(lower) * (1.0 - SLACK);
    !matches!(
        upper.partial_cmp(&bound),
        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
    )
}

/// [`fails`] for eight points, labels `a`, as a mask. Where a half gap is NaN (never, with
/// finite centres) the bound is NaN and the point fails: a scan more, the same labels.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fails_avx512(
    geo: &Geometry,
    a: std::arch::x86_64::__m512i,
    upper: std::arch::x86_64::__m512d,
    lower: std::arch::x86_64::__m512d,
) -> u8 {
    use std::arch::x86_64::*;
    // SAFETY: the labels index `half_gap`, one entry per centre.
    let half_gap = unsafe { _mm512_i64gather_pd::<8>(a, geo.half_gap.as_ptr()) };
    // `max` returns its second operand where either is NaN: a NaN lower bound gives the half
    // gap, as `f64::max` does.
    let bound = _mm512_mul_pd(_mm512_max_pd(lower, half_gap), _mm512_set1_pd(1.0 - SLACK));
    _mm512_cmp_pd_mask::<_CMP_NLE_UQ>(upper, bound)
}

/// [`Assignment`] for the points `start .. start + labels.len()`.
struct Block<'s> {
    start: usize,
    labels: &'s mut [u32],
    upper: &'s mut [f64],
    lower: &'s mut [f64],
    todo: &'s mut [u32],
    scan: Simd,
    fma: bool,
}

impl Assignment {
    /// The bookkeeping cut into [`LLOYD_BLOCK`]-point blocks.
    fn blocks(&mut self) -> Vec<Block<'_>> {
        let (scan, fma) = (self.scan, self.fma);
        self.labels
            .chunks_mut(LLOYD_BLOCK)
            .zip(self.upper.chunks_mut(LLOYD_BLOCK))
            .zip(self.lower.chunks_mut(LLOYD_BLOCK))
            .zip(self.todo.chunks_mut(LLOYD_BLOCK))
            .enumerate()
            .map(|(b, (((labels, upper), lower), todo))| Block {
                start: b * LLOYD_BLOCK,
                labels,
                upper,
                lower,
                todo,
                scan,
                fma,
            })
            .collect()
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
        // centre).
        let drop: Vec<f64> = (0..shift.len())
            .map(|j| if j == m1j { m2 } else { m1 })
            .collect();
        let moved = Moved {
            d,
            geo,
            shift,
            drop: &drop,
        };
        par_map(self.blocks(), |mut b| b.step_any::<NB>(&moved))
            .into_iter()
            .any(|changed| changed)
    }

    /// Assigns every point from scratch.
    #[inline(always)]
    fn all<const NB: usize>(&mut self, d: &Data, geo: &Geometry) {
        par_map(self.blocks(), |mut b| b.all_any::<NB>(d, geo));
    }
}

impl Block<'_> {
    /// [`Block::step`], compiled with FMA where the CPU has it.
    fn step_any<const NB: usize>(&mut self, moved: &Moved) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.fma {
            // SAFETY: `fma` is set only when the CPU supports FMA.
            return unsafe { self.step_fma::<NB>(moved) };
        }
        self.step::<NB>(moved)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    unsafe fn step_fma<const NB: usize>(&mut self, moved: &Moved) -> bool {
        self.step::<NB>(moved)
    }

    /// [`Block::all`], compiled with FMA where the CPU has it.
    fn all_any<const NB: usize>(&mut self, d: &Data, geo: &Geometry) {
        #[cfg(target_arch = "x86_64")]
        if self.fma {
            // SAFETY: `fma` is set only when the CPU supports FMA.
            return unsafe { self.all_fma::<NB>(d, geo) };
        }
        self.all::<NB>(d, geo)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    unsafe fn all_fma<const NB: usize>(&mut self, d: &Data, geo: &Geometry) {
        self.all::<NB>(d, geo)
    }

    /// [`Block::full_each`] for point `i` in `f64`, exactly, scoring every centre, four a
    /// 256-bit vector, with scikit-learn's arithmetic per lane, keeping per lane the lowest score with
    /// its index and the second lowest score. A score is `d^2 - |x|^2` up to rounding, so the
    /// second lowest, plus `|x|^2`, less a margin well above that rounding, bounds the
    /// squared distance to every other centre from below.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn full_avx2<const NB: usize>(&mut self, d: &Data, geo: &Geometry, i: usize) {
        use std::arch::x86_64::*;
        let x = d.point::<NB>(self.start + i);
        let centres = geo.padded.view::<NB, 4>();
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

    /// [`Block::full_avx2`] with eight centres a 512-bit vector: the same scores, lane for
    /// lane, so the same labels and bounds.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn full_avx512<const NB: usize>(&mut self, d: &Data, geo: &Geometry, i: usize) {
        use std::arch::x86_64::*;
        let x = d.point::<NB>(self.start + i);
        let centres = geo.padded.view::<NB, 8>();
        let xs: [__m512d; NB] = std::array::from_fn(|b| _mm512_set1_pd(x[b]));
        let eight = _mm512_set1_pd(8.0);
        let inf = _mm512_set1_pd(f64::INFINITY);
        let (mut s1, mut s1_idx, mut s2) = (inf, _mm512_setzero_pd(), inf);
        let mut idx = _mm512_set_pd(7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0);
        for c in 0..centres.chunks() {
            let s = centres.scores(&xs, c);
            let lower = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(s, s1);
            s2 = _mm512_min_pd(s2, _mm512_max_pd(s1, s));
            s1_idx = _mm512_mask_blend_pd(lower, s1_idx, idx);
            s1 = _mm512_min_pd(s1, s);
            idx = _mm512_add_pd(idx, eight);
        }
        let best = lowest_lane_avx512(s1, s1_idx);
        // The second lowest score: the lowest once the winner's lane offers its runner-up.
        let winner = _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(s1_idx, _mm512_set1_pd(best as f64));
        let second = _mm512_reduce_min_pd(_mm512_mask_blend_pd(winner, s1, s2));
        let x_sq: f64 = x.iter().map(|v| v * v).sum();
        let margin = 1e-13 * (x_sq + geo.max_sq_norm + 1.0);
        self.labels[i] = best as u32;
        self.upper[i] = distance(x, geo.centre::<NB>(best));
        self.lower[i] = (x_sq + second - margin).max(0.0).sqrt();
    }

    /// Assigns each of the points `idx` (indices in the block) from scratch: label by
    /// scikit-learn's score, ties to the lowest index; upper bound the distance to that
    /// centre, lower bound one on the distance to any other. Whether any label changed. With
    /// AVX-512, or AVX2 and FMA, and at most 8 bands, the points are scored side by side
    /// ([`Block::full_lanes`]); otherwise one at a time by the pruned scan.
    #[inline(always)]
    fn full_each<const NB: usize>(&mut self, d: &Data, geo: &Geometry, idx: &[u32]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.scans_lanes::<NB>() {
            match self.scan {
                Simd::Avx512 => {
                    return self.full_lanes::<NB>(
                        d,
                        geo,
                        idx,
                        // SAFETY: `Simd::Avx512` is chosen only when the CPU supports AVX-512F.
                        |xs| unsafe { geo.f32c.screen_avx512::<NB>(xs) },
                        // SAFETY: as above.
                        |block, i| unsafe { block.full_avx512::<NB>(d, geo, i) },
                    );
                }
                Simd::Avx2 => {
                    return self.full_lanes::<NB>(
                        d,
                        geo,
                        idx,
                        // SAFETY: `Simd::Avx2` is chosen only when the CPU supports AVX2 and FMA.
                        |xs| unsafe { geo.f32c.screen_avx2::<NB>(xs) },
                        // SAFETY: as above.
                        |block, i| unsafe { block.full_avx2::<NB>(d, geo, i) },
                    );
                }
                Simd::Scalar => {}
            }
        }
        let mut changed = false;
        for &i in idx {
            let i = i as usize;
            let a = self.labels[i] as usize;
            self.full_pruned::<NB>(d, geo, i, a);
            changed |= self.labels[i] as usize != a;
        }
        changed
    }

    /// Whether [`Block::full_each`] scores the points side by side ([`Block::full_lanes`]):
    /// with a vector instruction set and at most 8 bands.
    #[inline(always)]
    fn scans_lanes<const NB: usize>(&self) -> bool {
        NB > 0 && NB <= 8 && self.scan != Simd::Scalar
    }

    /// [`Block::full_each`] for the points `idx`, scored first in `f32` one point a lane,
    /// [`LANES`] at a time, by `screen`, as the vector predictions score pixels (see
    /// [`super::screen`]). Where the lowest and second lowest scores are further apart than
    /// the margin, the lowest is scikit-learn's label and the second, less the margin, bounds
    /// the squared distance to every other centre from below; else the `f64` scan `exact`
    /// decides. Whether any label changed.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn full_lanes<const NB: usize>(
        &mut self,
        d: &Data,
        geo: &Geometry,
        idx: &[u32],
        screen: impl Fn(&[[f32; LANES]; NB]) -> Screened,
        exact: impl Fn(&mut Self, usize),
    ) -> bool {
        let f = &geo.f32c;
        let mut changed = false;
        for group in idx.chunks(LANES) {
            // The points' shifted values, band by band (a short last group repeats its last
            // point, whose extra lanes are not read back).
            let mut xs = [[0.0f32; LANES]; NB];
            for lane in 0..LANES {
                let i = group[lane.min(group.len() - 1)] as usize;
                let x = d.point::<NB>(self.start + i);
                for (b, row) in xs.iter_mut().enumerate() {
                    row[lane] = f.shift(b, x[b]);
                }
            }
            let screened = screen(&xs);
            for (lane, &i) in group.iter().enumerate() {
                let i = i as usize;
                let old = self.labels[i];
                if screened.sure & (1 << lane) == 0 {
                    exact(self, i);
                } else {
                    // Each exact shifted score lies within half the margin of its `f32` score;
                    // adding the point's exact shifted squared norm gives the squared
                    // distance. So the lowest score plus the margin bounds the distance to the
                    // winner from above, and the second lowest less the margin the distance
                    // to every other centre from below.
                    let x = d.point::<NB>(self.start + i);
                    let x_sq64: f64 = (0..NB).map(|b| (x[b] - f.mean(b)).powi(2)).sum();
                    let margin = screened.margin[lane] as f64;
                    self.labels[i] = screened.label[lane];
                    let (low, second) = (screened.low[lane] as f64, screened.second[lane] as f64);
                    self.upper[i] = (x_sq64 + low + margin).max(0.0).sqrt();
                    self.lower[i] = (x_sq64 + second - margin).max(0.0).sqrt();
                }
                changed |= self.labels[i] != old;
            }
        }
        changed
    }

    /// [`Block::full_each`] for point `i` by scanning the centres that could be nearest:
    /// those within twice its distance from centre `guess` (any other is farther than `guess`
    /// itself); the lower bound also covers the centres not scanned.
    #[inline(always)]
    fn full_pruned<const NB: usize>(&mut self, d: &Data, geo: &Geometry, i: usize, guess: usize) {
        let x = d.point::<NB>(self.start + i);
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

    /// [`Assignment::step`] on this block; whether any label changed.
    ///
    /// Three passes, each over the points the one before left: move every point's bounds by
    /// the centres' shifts; recompute the upper bound of those whose bounds no longer rule
    /// the other centres out; scan every centre for those still not ruled out. The first two
    /// append their survivors without branches, so the unpredictable skip tests cost no
    /// mispredictions, and the scans follow one another with nothing between them, so the CPU
    /// overlaps their long chains of latency. Each point's result does not depend on the
    /// others', so the order changes nothing.
    #[inline(always)]
    fn step<const NB: usize>(&mut self, moved: &Moved) -> bool {
        // Taken out of `self` for the step, so that the scans can borrow `self`.
        let todo = std::mem::take(&mut self.todo);
        let m2 = self.bound_passes::<NB>(moved, todo);
        let changed = self.full_each::<NB>(moved.d, moved.geo, &todo[..m2]);
        self.todo = todo;
        changed
    }

    /// The first two passes of [`Block::step`], eight points a vector with AVX-512; returns
    /// how many points they leave in `todo` for the scans.
    #[inline(always)]
    fn bound_passes<const NB: usize>(&mut self, moved: &Moved, todo: &mut [u32]) -> usize {
        #[cfg(target_arch = "x86_64")]
        if NB > 0 && NB <= 8 && self.scan == Simd::Avx512 {
            // SAFETY: `Simd::Avx512` is chosen only when the CPU supports AVX-512F.
            return unsafe {
                let m = self.move_bounds_avx512::<NB>(moved, todo);
                self.tighten_avx512::<NB>(moved, todo, m)
            };
        }
        let m = self.move_bounds(moved, todo, 0, 0);
        self.tighten::<NB>(moved, todo, 0, m, 0)
    }

    /// The first pass of [`Block::step`] from point `from` on, `m` points already listed:
    /// moves each point's bounds by the centres' shifts and lists (in `todo`) those whose
    /// bounds fail. Returns how many are listed.
    #[inline(always)]
    fn move_bounds(&mut self, moved: &Moved, todo: &mut [u32], from: usize, mut m: usize) -> usize {
        let Moved {
            geo, shift, drop, ..
        } = *moved;
        for i in from..self.labels.len() {
            let a = self.labels[i] as usize;
            self.upper[i] += shift[a];
            self.lower[i] -= drop[a];
            todo[m] = i as u32;
            m += usize::from(fails(&geo.half_gap, self.upper[i], self.lower[i], a));
        }
        m
    }

    /// The second pass of [`Block::step`] over the listed points `todo[from..m]`, `m2`
    /// already kept: recomputes each one's upper bound and keeps (at the front of `todo`)
    /// those whose bounds still fail. Returns how many are kept.
    #[inline(always)]
    fn tighten<const NB: usize>(
        &mut self,
        moved: &Moved,
        todo: &mut [u32],
        from: usize,
        m: usize,
        mut m2: usize,
    ) -> usize {
        let Moved { d, geo, .. } = *moved;
        let nb = d.nb::<NB>();
        for k in from..m {
            // The points are read only here and in the scans, too irregularly for the
            // hardware prefetcher, and the sample is far larger than the cache.
            if let Some(&ahead) = todo.get(k + X_AHEAD) {
                prefetch(d.x, (self.start + ahead as usize) * nb);
            }
            let i = todo[k] as usize;
            let a = self.labels[i] as usize;
            self.upper[i] = distance(d.point::<NB>(self.start + i), geo.centre::<NB>(a));
            todo[m2] = i as u32;
            m2 += usize::from(fails(&geo.half_gap, self.upper[i], self.lower[i], a));
        }
        m2
    }

    /// [`Block::move_bounds`] eight points a vector, the same arithmetic lane by lane, over
    /// the whole groups of eight (the scalar loop takes the rest); returns how many it listed.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn move_bounds_avx512<const NB: usize>(
        &mut self,
        moved: &Moved,
        todo: &mut [u32],
    ) -> usize {
        use std::arch::x86_64::*;
        let Moved {
            geo, shift, drop, ..
        } = *moved;
        let n = self.labels.len();
        let mut m = 0;
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: `i + 8 <= n`, the length of `labels`, `upper` and `lower`; the labels
            // index `shift`, `drop` and `half_gap` (one entry per centre).
            unsafe {
                let a =
                    _mm512_cvtepu32_epi64(_mm256_loadu_si256(self.labels.as_ptr().add(i).cast()));
                let up = _mm512_add_pd(
                    _mm512_loadu_pd(self.upper.as_ptr().add(i)),
                    _mm512_i64gather_pd::<8>(a, shift.as_ptr()),
                );
                let lo = _mm512_sub_pd(
                    _mm512_loadu_pd(self.lower.as_ptr().add(i)),
                    _mm512_i64gather_pd::<8>(a, drop.as_ptr()),
                );
                _mm512_storeu_pd(self.upper.as_mut_ptr().add(i), up);
                _mm512_storeu_pd(self.lower.as_mut_ptr().add(i), lo);
                let mask = fails_avx512(geo, a, up, lo);
                for lane in 0..8 {
                    todo[m] = (i + lane) as u32;
                    m += usize::from(mask >> lane & 1 == 1);
                }
            }
            i += 8;
        }
        self.move_bounds(moved, todo, i, m)
    }

    /// [`Block::tighten`] eight points a vector (gathered), the same arithmetic lane by lane,
    /// over the whole groups of eight of `todo[..m]` (the scalar loop takes the rest); returns
    /// how many it kept.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn tighten_avx512<const NB: usize>(
        &mut self,
        moved: &Moved,
        todo: &mut [u32],
        m: usize,
    ) -> usize {
        use std::arch::x86_64::*;
        let Moved { d, geo, .. } = *moved;
        let mut m2 = 0;
        let mut k = 0;
        let (start, nb) = (
            _mm512_set1_epi64(self.start as i64),
            _mm512_set1_epi64(NB as i64),
        );
        while k + 8 <= m {
            for &ahead in todo.iter().skip(k + X_AHEAD).take(8) {
                prefetch(d.x, (self.start + ahead as usize) * NB);
            }
            // SAFETY: `k + 8 <= m <= todo.len()`; the listed points are in the block, so
            // they index `labels`, `upper` and `lower`, and `start + i` the sample (`NB`
            // values a point); the labels index the centres (`NB` values each) and
            // `half_gap`.
            unsafe {
                let idx = _mm256_loadu_si256(todo.as_ptr().add(k).cast());
                let i = _mm512_cvtepu32_epi64(idx);
                let a = _mm512_cvtepu32_epi64(_mm512_i64gather_epi32::<4>(
                    i,
                    self.labels.as_ptr().cast(),
                ));
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
                _mm512_i64scatter_pd::<8>(self.upper.as_mut_ptr(), i, up);
                let lo = _mm512_i64gather_pd::<8>(i, self.lower.as_ptr());
                let mask = fails_avx512(geo, a, up, lo);
                let mut lanes = [0u32; 8];
                _mm256_storeu_si256(lanes.as_mut_ptr().cast(), idx);
                for (lane, &p) in lanes.iter().enumerate() {
                    todo[m2] = p;
                    m2 += usize::from(mask >> lane & 1 == 1);
                }
            }
            k += 8;
        }
        self.tighten::<NB>(moved, todo, k, m, m2)
    }

    /// Assigns every point of the block from scratch, each starting from the previous
    /// point's label (the answer does not depend on that guess).
    #[inline(always)]
    fn all<const NB: usize>(&mut self, d: &Data, geo: &Geometry) {
        if self.scans_lanes::<NB>() {
            let todo = std::mem::take(&mut self.todo);
            let n = self.labels.len();
            for (i, t) in todo[..n].iter_mut().enumerate() {
                *t = i as u32;
            }
            self.full_each::<NB>(d, geo, &todo[..n]);
            self.todo = todo;
            return;
        }
        let mut guess = 0;
        for i in 0..self.labels.len() {
            self.full_pruned::<NB>(d, geo, i, guess);
            guess = self.labels[i] as usize;
        }
    }
}

/// Runs Lloyd's algorithm from `centres` (centred like the data), scanning with the fastest
/// vectors the CPU has (measured: AVX-512 beats AVX2, which beats the pruned scan, on an
/// AVX-512 Xeon; AVX2 beats the pruned scan on an AVX2-only EPYC).
pub(super) fn lloyd(d: &Data, centres: Vec<f64>, run: Run) -> LloydResult {
    lloyd_with(d, centres, run, Simd::best())
}

/// [`lloyd`] with the given scan, which must be one the CPU supports (the result is the same
/// for every scan; tests compare them).
pub(super) fn lloyd_with(d: &Data, centres: Vec<f64>, run: Run, scan: Simd) -> LloydResult {
    // Each block of the passes picks its own instruction set ([`Block::step_any`]).
    lloyd_bands(d, centres, run, scan)
}

/// Dispatches on the band count, so the common counts get loops unrolled at compile time.
#[inline(always)]
fn lloyd_bands(d: &Data, centres: Vec<f64>, run: Run, scan: Simd) -> LloydResult {
    match d.nb {
        1 => lloyd_inline::<1>(d, centres, run, scan),
        2 => lloyd_inline::<2>(d, centres, run, scan),
        3 => lloyd_inline::<3>(d, centres, run, scan),
        4 => lloyd_inline::<4>(d, centres, run, scan),
        5 => lloyd_inline::<5>(d, centres, run, scan),
        6 => lloyd_inline::<6>(d, centres, run, scan),
        7 => lloyd_inline::<7>(d, centres, run, scan),
        8 => lloyd_inline::<8>(d, centres, run, scan),
        _ => lloyd_inline::<0>(d, centres, run, scan),
    }
}

#[inline(always)]
fn lloyd_inline<const NB: usize>(
    d: &Data,
    mut centres: Vec<f64>,
    run: Run,
    scan: Simd,
) -> LloydResult {
    let Run { max_iter, tol } = run;
    let nb = d.nb::<NB>();
    let k = centres.len() / nb;
    let mut asg = Assignment {
        labels: vec![0; d.n],
        upper: vec![0.0; d.n],
        lower: vec![0.0; d.n],
        todo: vec![0; d.n],
        scan,
        fma: crate::cpu::has_fma(),
    };
    asg.all::<NB>(d, &Geometry::new(&centres, nb, scan));
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
        unchanged = !asg.step::<NB>(d, &Geometry::new(&centres, nb, scan), &shift);
    }
    // Final assignment to the final centres, for the inertia that ranks restarts: a bounded
    // step from the last one (the bounds hold for the centres before the last update, which
    // moved them by `shift`), so only the points whose bounds fail are scanned.
    asg.step::<NB>(d, &Geometry::new(&centres, nb, scan), &shift);
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
/// The partial sums of scikit-learn's threads are added in its order, so the result does not
/// depend on how many threads compute them (with the band count fixed, one thread steps
/// through them side by side; otherwise they run in parallel).
fn update_centres<const NB: usize>(d: &Data, centres: &[f64], labels: &[u32], out: &mut [f64]) {
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

/// Greedy k-means++ as scikit-learn's `_kmeans_plusplus` (`2 + ln k` candidates a step), on
/// the sample `cols` holds (built once per fit and shared by its restarts), its passes over
/// the points run in parallel (the result does not depend on the threads), dispatched
/// on the band count so the distance loops unroll. The passes pick their instruction set
/// themselves ([`block_pass`]).
pub(super) fn kmeans_plus_plus(cols: &Columns, k: usize, rng: &mut SplitMix64) -> Vec<f64> {
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
/// Points per block of k-means++'s passes over the sample (a multiple of [`POT_LANES`]), which
/// threads take one at a time; fixed, so no result depends on the thread count.
const KPP_BLOCK: usize = 8192;

/// The sample for k-means++: band by band (`soa[b * np + i]`, `np` the point count rounded up
/// to a multiple of [`POT_LANES`], zeros after the last point), so distances to one centre
/// vectorise over points, and in `f32`.
///
/// k-means++ only weighs points by their distances to draw the next centre, so `f32` does:
/// it halves the memory each of its many passes reads (they are bound by memory, not
/// arithmetic) and doubles the points a vector holds. The centres it picks are sample points,
/// taken from the `f64` sample, and Lloyd's iterations start from those.
pub(super) struct Columns<'a> {
    soa: Vec<f32>,
    np: usize,
    d: &'a Data<'a>,
    /// The vector instructions of the passes over the points.
    simd: Simd,
}

impl<'a> Columns<'a> {
    /// The band-by-band copy of `d`.
    pub(super) fn new(d: &'a Data<'a>) -> Self {
        let np = d.n.div_ceil(POT_LANES) * POT_LANES;
        let mut soa = vec![0.0; np * d.nb];
        for (i, p) in d.x.chunks_exact(d.nb).enumerate() {
            for (b, v) in p.iter().enumerate() {
                soa[b * np + i] = *v as f32;
            }
        }
        Self {
            soa,
            np,
            d,
            simd: Simd::best(),
        }
    }

    /// Point `i` as the passes see it.
    fn point(&self, i: usize) -> Vec<f32> {
        (0..self.d.nb).map(|b| self.soa[b * self.np + i]).collect()
    }

    /// Squared distances from points `start..start + POT_LANES` to `c`, summed band by band
    /// from 0.
    #[inline(always)]
    fn lanes<const NB: usize>(&self, start: usize, c: &[f32]) -> [f32; POT_LANES] {
        let (np, nb) = (self.np, self.d.nb::<NB>());
        let mut e = [0.0f32; POT_LANES];
        for (b, cb) in c.iter().enumerate().take(nb) {
            let col = &self.soa[b * np + start..b * np + start + POT_LANES];
            for l in 0..POT_LANES {
                let v = col[l] - cb;
                e[l] += v * v;
            }
        }
        e
    }
}

/// The smaller of two distances (neither is NaN), in one vector instruction.
#[inline(always)]
fn min_dist(a: f32, b: f32) -> f32 {
    if a < b {
        a
    } else {
        b
    }
}

/// What one k-means++ initialisation knows of the points: each one's squared distance to the
/// nearest centre chosen so far, and sums of those to draw the next candidates from.
///
/// The points are summed (in `f64`) in a fixed order that vectorises: block by block, and
/// within a block lane by lane, lane `l` holding the points `l, l + 8, ...` of the block. A
/// point is drawn with probability proportional to its distance, as k-means++ asks, whatever
/// the order.
struct Potentials {
    /// Per point (padding included, at 0): squared distance to the nearest centre.
    closest: Vec<f32>,
    /// Where [`Potentials::add_centre`] writes the next `closest` (then the two swap).
    next: Vec<f32>,
    /// Per block: each lane's total.
    lanes: Vec<[f64; POT_LANES]>,
    /// Per block: the sum of the block totals up to it (the last is the potential).
    block_cum: Vec<f64>,
}

/// A block's total from its lane totals, lane 0 first (every potential is summed so).
#[inline(always)]
fn block_total(lanes: &[f64; POT_LANES]) -> f64 {
    lanes.iter().sum()
}

impl Potentials {
    /// The potential before any centre: infinite distances for the points, 0 for padding.
    fn new(cols: &Columns) -> Self {
        let mut closest = vec![f32::INFINITY; cols.np];
        closest[cols.d.n..].iter_mut().for_each(|v| *v = 0.0);
        Self {
            next: closest.clone(),
            closest,
            lanes: Vec::new(),
            block_cum: Vec::new(),
        }
    }

    /// The potential: the sum of every point's squared distance to its nearest centre.
    fn total(&self) -> f64 {
        self.block_cum.last().copied().unwrap_or(0.0)
    }

    /// Lowers each point's distance to its distance to the new centre `c` where that is
    /// nearer, and sums them again.
    #[inline(always)]
    fn add_centre<const NB: usize>(&mut self, cols: &Columns, c: &[f32]) {
        let items: Vec<_> = self
            .closest
            .chunks(KPP_BLOCK)
            .zip(self.next.chunks_mut(KPP_BLOCK))
            .enumerate()
            .collect();
        self.lanes = par_map(items, |(blk, (closest, next))| {
            let lanes = block_pass::<NB>(cols, c, blk * KPP_BLOCK, closest, Some(next));
            lanes.first().copied().unwrap_or_default()
        });
        std::mem::swap(&mut self.closest, &mut self.next);
        let mut run = 0.0;
        self.block_cum = self
            .lanes
            .iter()
            .map(|lanes| {
                run += block_total(lanes);
                run
            })
            .collect();
    }

    /// For each candidate centre, the potential if it were added, summed in the same order
    /// as [`Potentials::add_centre`] sums it (so the chosen candidate's potential is the one
    /// adding it gives). One pass over the points serves every candidate.
    #[inline(always)]
    fn with_candidates<const NB: usize>(&self, cols: &Columns, cands: &[f32]) -> Vec<f64> {
        let t = cands.len() / cols.d.nb::<NB>();
        let items: Vec<_> = self.closest.chunks(KPP_BLOCK).enumerate().collect();
        let per_block = par_map(items, |(blk, closest)| {
            block_pass::<NB>(cols, cands, blk * KPP_BLOCK, closest, None)
        });
        let mut pots = vec![0.0; t];
        for block in &per_block {
            for (p, lanes) in pots.iter_mut().zip(block) {
                *p += block_total(lanes);
            }
        }
        pots
    }

    /// The point whose stretch of the running sum holds `r` (0 <= r < the potential): the
    /// first block, then lane, then point at which the sum reaches `r`, as scikit-learn's
    /// `searchsorted` on its cumulative sum; rounding at the end clamps to the last point.
    fn draw(&self, r: f64, n: usize) -> usize {
        let blocks = self.block_cum.len();
        let blk = self.block_cum.partition_point(|&c| c < r).min(blocks - 1);
        let mut rem = r - if blk > 0 {
            self.block_cum[blk - 1]
        } else {
            0.0
        };
        let lanes = &self.lanes[blk];
        let mut lane = 0;
        let mut before = 0.0;
        while lane + 1 < POT_LANES && before + lanes[lane] < rem {
            before += lanes[lane];
            lane += 1;
        }
        rem -= before;
        let first = blk * KPP_BLOCK;
        let end = (first + KPP_BLOCK).min(self.closest.len());
        // The lane's running sum, added as its total was.
        let mut acc = 0.0f64;
        let mut last = first + lane;
        for i in (first + lane..end).step_by(POT_LANES) {
            acc += self.closest[i] as f64;
            last = i;
            if acc >= rem {
                break;
            }
        }
        last.min(n - 1)
    }
}

/// One pass over the block of points from `first`, whose distances `closest` holds: for
/// each candidate centre in `cands`, the lane totals of `min(distance to it, closest)`, the
/// distances it would leave; with `lowered`, those distances are written there as well (one
/// candidate: the centre being added). Compiled for AVX2 where the CPU has it (the same
/// arithmetic, lane by lane): the threads' closures are not.
#[inline(always)]
fn block_pass<const NB: usize>(
    cols: &Columns,
    cands: &[f32],
    first: usize,
    closest: &[f32],
    lowered: Option<&mut [f32]>,
) -> Vec<[f64; POT_LANES]> {
    #[cfg(target_arch = "x86_64")]
    if NB > 0 {
        match cols.simd {
            // SAFETY: `Simd::Avx512` is chosen only when the CPU supports AVX-512F.
            Simd::Avx512 => {
                return unsafe { block_pass_avx512::<NB>(cols, cands, first, closest, lowered) }
            }
            // SAFETY: `Simd::Avx2` is chosen only when the CPU supports AVX2 and FMA.
            Simd::Avx2 => {
                return unsafe { block_pass_avx2::<NB>(cols, cands, first, closest, lowered) }
            }
            Simd::Scalar => {}
        }
    }
    let nb = cols.d.nb::<NB>();
    let mut lowered = lowered;
    cands
        .chunks_exact(nb)
        .map(|c| {
            let mut acc = [0.0f64; POT_LANES];
            for (g, cl) in closest.chunks_exact(POT_LANES).enumerate() {
                let e = cols.lanes::<NB>(first + g * POT_LANES, c);
                let m: [f32; POT_LANES] = std::array::from_fn(|l| min_dist(e[l], cl[l]));
                for l in 0..POT_LANES {
                    acc[l] += m[l] as f64;
                }
                if let Some(out) = lowered.as_deref_mut() {
                    out[g * POT_LANES..(g + 1) * POT_LANES].copy_from_slice(&m);
                }
            }
            acc
        })
        .collect()
}

/// [`block_pass`] with 256-bit vectors, eight points a vector: the same arithmetic lane by
/// lane (squares added band by band from 0, no fused multiply-add; the minimum taken as
/// [`min_dist`] takes it; each lane summed in `f64`), one candidate after another over the
/// block, which stays in the cache between them. `NB` must be at least 1.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_pass_avx2<const NB: usize>(
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
                let m = group_min_avx2(&cols_at, &cb, closest, lowered.as_deref_mut(), at);
                lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(m)));
                hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(m)));
            }
            let mut out = [0.0f64; POT_LANES];
            // SAFETY: `out` holds eight values, four stored from each vector.
            unsafe {
                _mm256_storeu_pd(out.as_mut_ptr(), lo);
                _mm256_storeu_pd(out.as_mut_ptr().add(4), hi);
            }
            out
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
    let mut pot = Potentials::new(cols);
    pot.add_centre::<NB>(cols, &cols.point(first));
    let mut cands = Vec::with_capacity(trials * d.nb);
    let mut ids = Vec::with_capacity(trials);
    for _ in 1..k {
        cands.clear();
        ids.clear();
        let total = pot.total();
        for _ in 0..trials {
            let id = pot.draw(rng.next_f64() * total, d.n);
            ids.push(id);
            cands.extend(cols.point(id));
        }
        let pots = pot.with_candidates::<NB>(cols, &cands);
        // The lowest potential, ties to the earlier candidate.
        let mut best = 0;
        for (t, &p) in pots.iter().enumerate() {
            if p < pots[best] {
                best = t;
            }
        }
        let chosen = ids[best];
        pot.add_centre::<NB>(cols, &cols.point(chosen));
        centres.extend_from_slice(d.point::<NB>(chosen));
    }
    centres
}

/// One group of eight points (`at`, eight long) of a k-means++ pass against the candidate
/// whose bands `cb` holds: each point's squared distance (squares added band by band from 0,
/// no fused multiply-add), lowered to its `closest`, stored to `lowered` if given.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn group_min_avx2<const NB: usize>(
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

/// [`block_pass_avx2`] sixteen points a 512-bit vector: the same per-point arithmetic, and
/// the eight `f64` lanes take the first eight points of a vector, then the other eight, so
/// every lane sums the same values in the same order. `NB` must be at least 1.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_pass_avx512<const NB: usize>(
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
                let mut e = _mm512_setzero_ps();
                for b in 0..NB {
                    // SAFETY: every slice loaded from or stored to here holds sixteen values.
                    let v = _mm512_sub_ps(
                        unsafe { _mm512_loadu_ps(cols_at[b][at.clone()].as_ptr()) },
                        cb[b],
                    );
                    e = _mm512_add_ps(e, _mm512_mul_ps(v, v));
                }
                let m = _mm512_min_ps(e, unsafe { _mm512_loadu_ps(cl.as_ptr()) });
                if let Some(out) = lowered.as_deref_mut() {
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
                let m = group_min_avx2(&cols_at, &cb, closest, lowered.as_deref_mut(), wide..len);
                acc = _mm512_add_pd(acc, _mm512_cvtps_pd(m));
            }
            let mut out = [0.0f64; POT_LANES];
            // SAFETY: `out` holds eight values.
            unsafe { _mm512_storeu_pd(out.as_mut_ptr(), acc) };
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::par::with_threads;

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

    #[test]
    fn vector_passes_equal_the_scalar_ones() {
        let mut rng = SplitMix64::new(9);
        for nb in 1..=5 {
            let n = KPP_BLOCK + 1001;
            let x: Vec<f64> = (0..n * nb)
                .map(|_| rng.next_f64() * 3000.0 - 1500.0)
                .collect();
            let d = Data { x: &x, n, nb };
            let mut cols = Columns::new(&d);
            let cands: Vec<f32> = (0..3 * nb).map(|_| rng.next_f64() as f32 * 100.0).collect();
            let run = |cols: &Columns| {
                let mut pot = Potentials::new(cols);
                let mut out = Vec::new();
                for c in cands.chunks_exact(nb) {
                    match nb {
                        1 => pot.add_centre::<1>(cols, c),
                        2 => pot.add_centre::<2>(cols, c),
                        3 => pot.add_centre::<3>(cols, c),
                        4 => pot.add_centre::<4>(cols, c),
                        _ => pot.add_centre::<0>(cols, c),
                    }
                    out.push(pot.total());
                }
                out.extend(match nb {
                    1 => pot.with_candidates::<1>(cols, &cands),
                    2 => pot.with_candidates::<2>(cols, &cands),
                    3 => pot.with_candidates::<3>(cols, &cands),
                    4 => pot.with_candidates::<4>(cols, &cands),
                    _ => pot.with_candidates::<0>(cols, &cands),
                });
                (out, pot.closest)
            };
            let vector = with_threads(2, || run(&cols));
            for simd in Simd::supported() {
                cols.simd = simd;
                assert_eq!(run(&cols), vector, "{nb} bands, {simd:?}");
            }
        }
    }

    #[test]
    fn draws_follow_the_block_and_lane_order() {
        // Coordinates on a half-integer grid, so every squared distance and sum is exact and
        // the draw can be checked against a plain cumulative sum in the documented order.
        let mut rng = SplitMix64::new(3);
        let centre = [0.5f32, -0.5];
        for n in [
            1usize,
            7,
            8,
            9,
            KPP_BLOCK - 1,
            KPP_BLOCK + 37,
            3 * KPP_BLOCK,
        ] {
            let x: Vec<f64> = (0..n * 2).map(|_| rng.below(40) as f64 - 20.0).collect();
            let d = Data { x: &x, n, nb: 2 };
            let cols = Columns::new(&d);
            let mut pot = Potentials::new(&cols);
            pot.add_centre::<2>(&cols, &centre);
            let threaded = with_threads(3, || {
                let mut threaded = Potentials::new(&cols);
                threaded.add_centre::<2>(&cols, &centre);
                threaded
            });
            assert_eq!(
                (&threaded.closest, &threaded.block_cum),
                (&pot.closest, &pot.block_cum)
            );
            let order: Vec<usize> = (0..cols.np)
                .step_by(KPP_BLOCK)
                .flat_map(|lo| {
                    let hi = (lo + KPP_BLOCK).min(cols.np);
                    (0..POT_LANES).flat_map(move |l| (lo + l..hi).step_by(POT_LANES))
                })
                .filter(|&i| i < n)
                .collect();
            let dist = |i: usize| {
                let p = d.point::<2>(i);
                (p[0] - 0.5).powi(2) + (p[1] + 0.5).powi(2)
            };
            let mut run = 0.0;
            let cum: Vec<f64> = order
                .iter()
                .map(|&i| {
                    run += dist(i);
                    run
                })
                .collect();
            assert_eq!(pot.total(), run, "{n} points");
            for _ in 0..200 {
                let r = rng.next_f64() * pot.total();
                let want = order[cum.partition_point(|&c| c < r)];
                assert_eq!(pot.draw(r, n), want, "{n} points, r {r}");
            }
            // Every candidate potential is summed as adding the candidate sums it.
            let cands = [3.0f32, 4.0, -7.0, 1.0];
            let pots = with_threads(2, || pot.with_candidates::<2>(&cols, &cands));
            for (c, p) in cands.chunks_exact(2).zip(pots) {
                let mut after = Potentials::new(&cols);
                after.add_centre::<2>(&cols, &centre);
                after.add_centre::<2>(&cols, c);
                assert_eq!(after.total(), p);
            }
        }
    }
}
