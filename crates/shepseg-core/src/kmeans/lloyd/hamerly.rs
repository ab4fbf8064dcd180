//! Lloyd's assignment step with Hamerly's bounds: an upper bound on each point's distance to
//! its assigned centre and a lower bound on its distance to any other let most points skip the
//! scan of the centres without changing its result.
//!
//! A point that cannot skip is scanned against every centre with AVX-512 or AVX2 vectors where
//! the CPU has them (else by a pruned scalar scan). The passes run over fixed blocks of points
//! that threads take one at a time, so no result depends on the thread count. The vector
//! kernels are in `crate::arch::x86_64` (`avx512::lloyd`, `avx2::lloyd`, `fma`).

use super::super::centres::{by_distance, distance, half_gaps, sq_distance, PaddedCentres};
use super::super::screen::{F32Centres, Screened, LANES};
use super::super::sklearn_math::{score, sq_norm};
use super::super::Data;
use super::Simd;
#[cfg(target_arch = "x86_64")]
use crate::arch::x86_64::{avx2, avx512, fma};
use crate::mem::prefetch;
use crate::par::par_map;

/// Relative slack on Hamerly's skip test, so rounding never skips a point that scikit-learn's
/// score could assign elsewhere.
pub(crate) const SLACK: f64 = 1e-9;
/// How many points ahead of the one being bounded the assignment step prefetches the sample.
pub(crate) const X_AHEAD: usize = 24;

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
pub(crate) struct Geometry<'a> {
    pub(crate) centres: &'a [f64],
    nb: usize,
    /// `|c|^2` per centre, rounded as scikit-learn's.
    norms: Vec<f64>,
    /// For each centre, every centre sorted by distance from it (itself first).
    by_distance: Vec<Vec<(f64, u32)>>,
    /// Half the distance from each centre to its nearest other centre.
    pub(crate) half_gap: Vec<f64>,
    /// Largest absolute centre coordinate, for the pruning margin.
    max_abs: f64,
    /// The centres laid out for the vector scans, padded to a multiple of the scan's width.
    pub(crate) padded: PaddedCentres,
    /// Largest `|c|^2`, for the rounding margin of score-derived distances.
    pub(crate) max_sq_norm: f64,
    /// The centres for the AVX-512 scan's first, `f32`, pass.
    f32c: F32Centres,
}

impl<'a> Geometry<'a> {
    pub(super) fn new(centres: &'a [f64], nb: usize, scan: Simd) -> Self {
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
    pub(crate) fn centre<const NB: usize>(&self, j: usize) -> &[f64] {
        let nb = if NB > 0 { NB } else { self.nb };
        &self.centres[j * nb..(j + 1) * nb]
    }
}

/// Points per block of the assignment steps, which threads take one at a time: fixed, so
/// that neither the work split nor any result depends on the thread count.
const LLOYD_BLOCK: usize = 16384;

/// Per-point bookkeeping: label and Hamerly's bounds.
pub(super) struct Assignment {
    pub(super) labels: Vec<u32>,
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
pub(crate) struct Moved<'a> {
    pub(crate) d: &'a Data<'a>,
    pub(crate) geo: &'a Geometry<'a>,
    pub(crate) shift: &'a [f64],
    pub(crate) drop: &'a [f64],
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

/// [`Assignment`] for the points `start .. start + labels.len()`.
pub(crate) struct Block<'s> {
    pub(crate) start: usize,
    pub(crate) labels: &'s mut [u32],
    pub(crate) upper: &'s mut [f64],
    pub(crate) lower: &'s mut [f64],
    todo: &'s mut [u32],
    scan: Simd,
    fma: bool,
}

impl Assignment {
    /// The bookkeeping of `n` points (labels 0, bounds to be set by [`Assignment::all`]),
    /// scanning with `scan`.
    pub(super) fn new(n: usize, scan: Simd) -> Self {
        Assignment {
            labels: vec![0; n],
            upper: vec![0.0; n],
            lower: vec![0.0; n],
            todo: vec![0; n],
            scan,
            fma: crate::cpu::has_fma(),
        }
    }

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
    pub(super) fn step<const NB: usize>(
        &mut self,
        d: &Data,
        geo: &Geometry,
        shift: &[f64],
    ) -> bool {
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
    pub(super) fn all<const NB: usize>(&mut self, d: &Data, geo: &Geometry) {
        par_map(self.blocks(), |mut b| b.all_any::<NB>(d, geo));
    }
}

impl Block<'_> {
    /// [`Block::step`], compiled with FMA where the CPU has it.
    pub(crate) fn step_any<const NB: usize>(&mut self, moved: &Moved) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.fma {
            // SAFETY: `fma` is set only when the CPU supports FMA.
            return unsafe { fma::lloyd_step::<NB>(self, moved) };
        }
        self.step::<NB>(moved)
    }

    /// [`Block::all`], compiled with FMA where the CPU has it.
    pub(crate) fn all_any<const NB: usize>(&mut self, d: &Data, geo: &Geometry) {
        #[cfg(target_arch = "x86_64")]
        if self.fma {
            // SAFETY: `fma` is set only when the CPU supports FMA.
            return unsafe { fma::lloyd_all::<NB>(self, d, geo) };
        }
        self.all::<NB>(d, geo)
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
                        |xs| unsafe { avx512::screen::screen::<NB>(&geo.f32c, xs) },
                        // SAFETY: as above.
                        |block, i| unsafe { avx512::lloyd::full::<NB>(block, d, geo, i) },
                    );
                }
                Simd::Avx2 => {
                    return self.full_lanes::<NB>(
                        d,
                        geo,
                        idx,
                        // SAFETY: `Simd::Avx2` is chosen only when the CPU supports AVX2 and FMA.
                        |xs| unsafe { avx2::screen::screen::<NB>(&geo.f32c, xs) },
                        // SAFETY: as above.
                        |block, i| unsafe { avx2::lloyd::full::<NB>(block, d, geo, i) },
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
    /// [`super::super::screen`]). Where the lowest and second lowest scores are further apart than
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
    pub(crate) fn step<const NB: usize>(&mut self, moved: &Moved) -> bool {
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
                let m = avx512::lloyd::move_bounds::<NB>(self, moved, todo);
                avx512::lloyd::tighten::<NB>(self, moved, todo, m)
            };
        }
        let m = self.move_bounds(moved, todo, 0, 0);
        self.tighten::<NB>(moved, todo, 0, m, 0)
    }

    /// The first pass of [`Block::step`] from point `from` on, `m` points already listed:
    /// moves each point's bounds by the centres' shifts and lists (in `todo`) those whose
    /// bounds fail. Returns how many are listed.
    #[inline(always)]
    pub(crate) fn move_bounds(
        &mut self,
        moved: &Moved,
        todo: &mut [u32],
        from: usize,
        mut m: usize,
    ) -> usize {
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
    pub(crate) fn tighten<const NB: usize>(
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

    /// Assigns every point of the block from scratch, each starting from the previous
    /// point's label (the answer does not depend on that guess).
    #[inline(always)]
    pub(crate) fn all<const NB: usize>(&mut self, d: &Data, geo: &Geometry) {
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
