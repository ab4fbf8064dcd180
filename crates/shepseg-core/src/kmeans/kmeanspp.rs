//! Greedy k-means++ initialisation, as scikit-learn's `_kmeans_plusplus`: the centres Lloyd's
//! iterations start from, drawn from the sample with probability proportional to each point's
//! squared distance to the nearest centre chosen so far.
//!
//! Every pass over the sample runs over fixed blocks of points that threads take one at a time,
//! their results combined in block order: the centres are the same for any thread count.
//! k-means++ only weighs points to draw centres, so it reads an `f32` copy of the sample. The
//! vector passes are in `crate::arch::x86_64` (`avx512::kmeanspp`, `avx2::kmeanspp`).

use super::Data;
#[cfg(target_arch = "x86_64")]
use crate::arch::x86_64::{avx2, avx512};
use crate::cpu::Simd;
use crate::par::par_map;
use crate::rng::SplitMix64;

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
pub(crate) const POT_LANES: usize = 8;
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
pub(crate) struct Columns<'a> {
    pub(crate) soa: Vec<f32>,
    pub(crate) np: usize,
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
            Simd::Avx512 => {
                // SAFETY: `Simd::Avx512` is chosen only when the CPU supports AVX-512F.
                return unsafe {
                    avx512::kmeanspp::block_pass::<NB>(cols, cands, first, closest, lowered)
                };
            }
            Simd::Avx2 => {
                // SAFETY: `Simd::Avx2` is chosen only when the CPU supports AVX2 and FMA.
                return unsafe {
                    avx2::kmeanspp::block_pass::<NB>(cols, cands, first, closest, lowered)
                };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::par::with_threads;

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
