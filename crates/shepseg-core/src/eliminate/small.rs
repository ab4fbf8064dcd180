//! Small-segment elimination: segments smaller than the minimum size merge, size by size, into
//! their spectrally nearest strictly larger neighbour within the threshold, over neighbour
//! lists resolved through a union-find rather than scans of the segment image.
//!
//! Two arithmetics ([`Spectra`]): pyshepseg's (`float32` sums in raster order, ties to the
//! first neighbour met, survivors numbered by ID) in compatibility mode, and the default
//! mode's, which no visiting order can change (exact integer sums, `f64` means and distances,
//! ties to the smallest segment ID, survivors numbered by their first pixel in raster order),
//! so that a tiled run can reproduce it.

use super::neighbours::for_each_neighbour;
#[cfg(test)]
use super::segment_sizes;
use super::{relabel_map, Renumbering};
use crate::clump::find;
use crate::image::Img;
use crate::mem::{identity, prefetch, zeroed};
use crate::par::{par_chunks_mut, par_map};
use crate::pixel::Pixel;
use crate::seamless::ExactSums;

/// How many segments ahead of the one being scanned the neighbour data is prefetched (the
/// lists themselves twice as far ahead).
const PREFETCH_AHEAD: usize = 8;

/// How segment spectra are summed, averaged and compared.
pub(crate) trait Spectra {
    /// A segment's sum in one band.
    type Sum: Copy + Default + Send + Sync;
    /// A segment's mean in one band.
    type Mean: Copy + Default + Send + Sync;
    /// Whether ties go to the first neighbour listed (pyshepseg) rather than the smallest ID,
    /// and survivors are numbered by ID rather than by their first pixel.
    const PYSHEPSEG: bool;
    /// `sum` with pixel value `v` added.
    fn add<T: Pixel>(sum: Self::Sum, v: T) -> Self::Sum;
    /// Two segments' sums together.
    fn join(a: Self::Sum, b: Self::Sum) -> Self::Sum;
    /// The mean of `n` pixels summing to `sum` (`unit`: what one unit of the sum is worth).
    fn mean(sum: Self::Sum, n: u32, unit: f64) -> Self::Mean;
    /// The squared spectral distance between two means, bands added in order.
    fn dist(a: &[Self::Mean], b: &[Self::Mean]) -> f64;
}

/// pyshepseg's arithmetic: `float32` sums added in raster order, `float32` means and
/// distances.
pub(crate) struct Float32Spectra;

impl Spectra for Float32Spectra {
    type Sum = f32;
    type Mean = f32;
    const PYSHEPSEG: bool = true;
    #[inline(always)]
    fn add<T: Pixel>(sum: f32, v: T) -> f32 {
        v.add_to_f32_sum(sum)
    }
    #[inline(always)]
    fn join(a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn mean(sum: f32, n: u32, _unit: f64) -> f32 {
        sum / n as f32
    }
    #[inline(always)]
    fn dist(a: &[f32], b: &[f32]) -> f64 {
        let mut dist = 0.0f32;
        for (x, y) in a.iter().zip(b) {
            let d = x - y;
            dist += d * d;
        }
        dist as f64
    }
}

/// An exact sum's integer type: `i128` holds any pixel type's, `i64` those of 16-bit and
/// smaller types ([`Pixel::EXACT_FITS_I64`]) in half the memory; the values are the same.
pub(crate) trait ExactSum:
    Copy + Default + Send + Sync + std::ops::Add<Output = Self>
{
    /// A pixel's exact value ([`Pixel::exact`]) in this type.
    fn of(v: i128) -> Self;
    /// The sum as `f64`.
    fn to_f64(self) -> f64;
}

impl ExactSum for i64 {
    #[inline(always)]
    fn of(v: i128) -> Self {
        v as i64
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl ExactSum for i128 {
    #[inline(always)]
    fn of(v: i128) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

/// The default mode's arithmetic: exact integer sums ([`Pixel::exact`]) in `A`, which any
/// order of addition gives alike, and `f64` means and distances computed from them.
pub(crate) struct ExactSpectra<A>(std::marker::PhantomData<A>);

impl<A: ExactSum> Spectra for ExactSpectra<A> {
    type Sum = A;
    type Mean = f64;
    const PYSHEPSEG: bool = false;
    #[inline(always)]
    fn add<T: Pixel>(sum: A, v: T) -> A {
        sum + A::of(v.exact())
    }
    #[inline(always)]
    fn join(a: A, b: A) -> A {
        a + b
    }
    #[inline(always)]
    fn mean(sum: A, n: u32, unit: f64) -> f64 {
        sum.to_f64() * unit / n as f64
    }
    #[inline(always)]
    fn dist(a: &[f64], b: &[f64]) -> f64 {
        let mut dist = 0.0f64;
        for (x, y) in a.iter().zip(b) {
            let d = x - y;
            dist += d * d;
        }
        dist
    }
}

/// Small-segment elimination state: sizes, spectral sums and means, a union-find over
/// segment IDs, and each initially small segment's neighbours.
///
/// pyshepseg scans a segment's pixel list (its own pixels in raster order, then the lists of
/// the segments merged into it, in merge order) and looks at every pixel's neighbours in the
/// segment image. Merges relabel whole segments, so a neighbouring pixel's current label is
/// always the union-find root of the label it had when elimination began. Each small
/// segment's neighbours can therefore be listed once, by those initial labels, in the order a
/// raster scan of its pixels first meets them (repeats dropped: only a label's first
/// appearance can win a tie), and a scan resolves them through the union-find. A scan reads a
/// few list entries instead of every pixel's neighbourhood in the segment image, and the
/// image is relabelled once at the end through a lookup table.
struct Merger<S: Spectra> {
    size: Vec<u32>,
    sum: Vec<S::Sum>,
    /// `sum / size` per segment, kept current on every merge (pyshepseg divides at each use;
    /// the quotient is the same).
    mean: Vec<S::Mean>,
    /// What one unit of a sum is worth ([`Pixel::EXACT_UNIT`] for exact sums).
    unit: f64,
    /// The segment each one merged into (itself while it has not merged).
    parent: Vec<u32>,
    /// `adj[start[id]..start[id + 1]]`: the initial labels of segment `id`'s neighbours, for
    /// segments smaller than the minimum size when elimination began (empty for the others).
    start: Vec<usize>,
    adj: Vec<u32>,
    /// The segments merged into each one, in merge order, as a chain `id -> next[id] -> ...`
    /// ended by 0, whose last link is `tail[id]`. Kept only while the segment is small enough
    /// to be scanned again.
    next: Vec<u32>,
    tail: Vec<u32>,
    min_size: u32,
    bands: usize,
    /// Tie order when not empty: the lower rank wins a tie instead of the lower ID.
    rank: Vec<u64>,
}

/// Every segment's mean (`bands` each; 0 for ID 0 and empty entries), on the enclosing pool:
/// each from its own sum alone, as [`Merger::update_mean`] computes it.
fn means<S: Spectra>(sum: &[S::Sum], size: &[u32], bands: usize, unit: f64) -> Vec<S::Mean> {
    let mut mean = zeroed::<S::Mean>(size.len() * bands);
    par_chunks_mut(&mut mean, 65536 * bands, |first, chunk| {
        for (k, m) in chunk.iter_mut().enumerate() {
            let id = (first + k) / bands;
            if id > 0 && size[id] > 0 {
                *m = S::mean(sum[first + k], size[id], unit);
            }
        }
    });
    mean
}

/// The most neighbour slots a connected set of `size` pixels can have outside itself: each of
/// its pixels has 4 (8-way: 8), and each of the at least `size - 1` adjacent pairs that
/// connect it takes two of them. That bounds a segment's neighbour list before its repeats
/// are dropped.
fn max_boundary(size: u32, four: bool) -> usize {
    let s = size as usize;
    if four {
        2 * s + 2
    } else {
        6 * s + 2
    }
}

/// Each segment's spectral sums (`n x bands`) in `S`'s arithmetic, every segment's pixels
/// added in raster order (as pyshepseg adds its `float32` sums). A run of pixels of one segment is summed in registers,
/// all bands at once for up to 8 bands, so the additions do not wait on memory.
///
/// With `map`, each pixel's label is first replaced by `map[label]` (a pending
/// [`Renumbering`]), and the sums are of the new labels: one pass instead of two.
fn segment_sums<S: Spectra, T: Pixel>(
    img: &Img<T>,
    seg: &mut [u32],
    map: Option<&[u32]>,
    n: usize,
) -> Vec<S::Sum> {
    match (img.bands, map) {
        (1, m) => sums_fixed::<S, T, 1>(img, seg, m, n),
        (2, m) => sums_fixed::<S, T, 2>(img, seg, m, n),
        (3, m) => sums_fixed::<S, T, 3>(img, seg, m, n),
        (4, m) => sums_fixed::<S, T, 4>(img, seg, m, n),
        (5, m) => sums_fixed::<S, T, 5>(img, seg, m, n),
        (6, m) => sums_fixed::<S, T, 6>(img, seg, m, n),
        (7, m) => sums_fixed::<S, T, 7>(img, seg, m, n),
        (8, m) => sums_fixed::<S, T, 8>(img, seg, m, n),
        (_, Some(map)) => {
            for s in seg.iter_mut() {
                *s = map[*s as usize];
            }
            segment_sums::<S, T>(img, seg, None, n)
        }
        (_, None) => {
            let nb = img.bands;
            let mut out = vec![S::Sum::default(); n * nb];
            for b in 0..nb {
                let one = Img {
                    data: &img.data[b * img.pixels()..(b + 1) * img.pixels()],
                    bands: 1,
                    rows: img.rows,
                    cols: img.cols,
                };
                for (id, s) in sums_fixed::<S, T, 1>(&one, seg, None, n)
                    .into_iter()
                    .enumerate()
                {
                    out[id * nb + b] = s;
                }
            }
            out
        }
    }
}

/// [`segment_sums`] for `NB` bands.
fn sums_fixed<S: Spectra, T: Pixel, const NB: usize>(
    img: &Img<T>,
    seg: &mut [u32],
    map: Option<&[u32]>,
    n: usize,
) -> Vec<S::Sum> {
    match map {
        Some(map) => sums_loop::<S, T, NB, true>(img, seg, map, n),
        None => sums_loop::<S, T, NB, false>(img, seg, &[], n),
    }
}

/// [`sums_fixed`]'s loop, relabelling each pixel through `map` first if `MAP`.
#[inline(always)]
fn sums_loop<S: Spectra, T: Pixel, const NB: usize, const MAP: bool>(
    img: &Img<T>,
    seg: &mut [u32],
    map: &[u32],
    n: usize,
) -> Vec<S::Sum> {
    let pixels = img.pixels();
    let mut sum = zeroed::<S::Sum>(n * NB);
    let bands: [&[T]; NB] = std::array::from_fn(|b| &img.data[b * pixels..(b + 1) * pixels]);
    let mut cur = 0usize;
    let (mut old, mut new) = (0u32, map.first().copied().unwrap_or(0));
    let mut acc = [S::Sum::default(); NB];
    for (p, label) in seg.iter_mut().enumerate() {
        if MAP {
            // Runs of one label are common: look the map up once per run.
            if *label != old {
                old = *label;
                new = map[old as usize];
            }
            *label = new;
        }
        let id = *label as usize;
        if id != cur {
            if cur != 0 {
                sum[cur * NB..(cur + 1) * NB].copy_from_slice(&acc);
            }
            cur = id;
            if id != 0 {
                acc.copy_from_slice(&sum[id * NB..(id + 1) * NB]);
            }
        }
        if id != 0 {
            for (a, band) in acc.iter_mut().zip(&bands) {
                *a = S::add(*a, band[p]);
            }
        }
    }
    if cur != 0 {
        sum[cur * NB..(cur + 1) * NB].copy_from_slice(&acc);
    }
    sum
}

/// The neighbour lists of the small segments, before their repeats are dropped: for each
/// pixel of a segment smaller than `min_size`, in raster order, the segments of its
/// neighbours in pyshepseg's order ([`for_each_neighbour`]), other than its own and null,
/// appended to the segment's list (`adj[start[id]..]`, `len[id]` long) unless equal to the
/// entry before. Each entry is a distinct boundary slot of a connected segment, so a list
/// stays within [`max_boundary`]; the append is written without branches (the value is
/// stored in the next free slot and the length grows only if it is kept, hence the one slot
/// of room past the bound), as whether a neighbour is another segment is close to random.
#[allow(clippy::too_many_arguments)]
fn raw_lists(
    seg: &[u32],
    rows: usize,
    cols: usize,
    four: bool,
    size: &[u32],
    min_size: u32,
    start: &[usize],
    adj: &mut [u32],
    len: &mut [u32],
) {
    for i in 0..rows {
        for j in 0..cols {
            let id = seg[i * cols + j];
            if id == 0 || size[id as usize] >= min_size {
                continue;
            }
            let base = start[id as usize];
            // The last slot is the spare one (a guard only: the bound holds).
            let full = start[id as usize + 1] - base - 1;
            let mut k = len[id as usize] as usize;
            let mut last = if k > 0 { adj[base + k - 1] } else { 0 };
            for_each_neighbour(rows, cols, i, j, four, |q| {
                let m = seg[q];
                adj[base + k] = m;
                let keep = m != id && m != 0 && m != last && k < full;
                k += usize::from(keep);
                last = if keep { m } else { last };
            });
            len[id as usize] = k as u32;
        }
    }
}

/// The root of `a` in the union-find `parent`, without shortening paths (so that threads can
/// share the links): merges link a segment straight to a root, so paths stay short.
#[inline]
fn root(parent: &[u32], mut a: u32) -> u32 {
    while parent[a as usize] != a {
        a = parent[a as usize];
    }
    a
}

impl<S: Spectra> Merger<S> {
    /// The state for `seg` once it is relabelled through `renumbering` (done here, by the
    /// first pass over the image).
    fn new<T: Pixel>(
        img: &Img<T>,
        seg: &mut [u32],
        renumbering: Renumbering,
        min_size: usize,
        four: bool,
    ) -> Self {
        let Renumbering { map, size } = renumbering;
        let n = size.len();
        let nb = img.bands;
        let min_size = min_size.min(u32::MAX as usize) as u32;
        let sum = segment_sums::<S, T>(img, seg, Some(&map), n);
        // Room for each small segment's list, plus the slot `raw_lists` writes past its end.
        let mut start = zeroed::<usize>(n + 1);
        for id in 1..n {
            let cap = if size[id] < min_size {
                max_boundary(size[id], four) + 1
            } else {
                0
            };
            start[id + 1] = start[id] + cap;
        }
        let mut adj = zeroed::<u32>(start[n]);
        let mut len = zeroed::<u32>(n);
        let (rows, cols) = (img.rows, img.cols);
        raw_lists(
            seg, rows, cols, four, &size, min_size, &start, &mut adj, &mut len,
        );
        // Close the gaps the bounds left, so the lists take little memory and cache, keeping
        // only the first appearance of each neighbour (`seen[m] == id` once `m` is in `id`'s
        // list; neighbours are never 0, nor the segment itself).
        let mut end = 0;
        let mut seen = zeroed::<u32>(n);
        for id in 1..n {
            let from = start[id];
            start[id] = end;
            for r in from..from + len[id] as usize {
                let m = adj[r];
                let first = seen[m as usize] != id as u32;
                seen[m as usize] = id as u32;
                adj[end] = m;
                end += usize::from(first);
            }
        }
        start[n] = end;
        adj.truncate(end);
        adj.shrink_to_fit();
        let mut s = Merger {
            size,
            sum,
            mean: Vec::new(),
            unit: T::EXACT_UNIT,
            parent: identity(n),
            start,
            adj,
            next: zeroed(n),
            tail: identity(n),
            min_size,
            bands: nb,
            rank: Vec::new(),
        };
        s.mean = means::<S>(&s.sum, &s.size, nb, s.unit);
        s
    }

    /// Recomputes the mean of segment `id` (pyshepseg's: `float32` sum / `float32` count).
    fn update_mean(&mut self, id: usize) {
        let nb = self.bands;
        let n = self.size[id];
        for b in 0..nb {
            self.mean[id * nb + b] = S::mean(self.sum[id * nb + b], n, self.unit);
        }
    }

    /// The neighbour segment `id` should merge into, or 0: the strictly larger neighbour with
    /// the nearest mean spectrum, if within the threshold; on ties the first met
    /// (pyshepseg's rule) or the smallest ID (the default mode's: no visiting order decides).
    fn find_merge(&self, id: u32, thr: f64) -> u32 {
        let nb = self.bands;
        let own = self.size[id as usize];
        let i = id as usize;
        let mut best = 0u32;
        let mut best_dist = 0.0f64;
        let mut s = id as usize;
        loop {
            for k in self.start[s]..self.start[s + 1] {
                let c = root(&self.parent, self.adj[k]);
                if c == id || c == best || self.size[c as usize] <= own {
                    continue;
                }
                let c_mean = &self.mean[c as usize * nb..(c as usize + 1) * nb];
                let dist = S::dist(&self.mean[i * nb..(i + 1) * nb], c_mean);
                let tie_won = !S::PYSHEPSEG && dist == best_dist && self.before(c, best);
                if best == 0 || dist < best_dist || tie_won {
                    best_dist = dist;
                    best = c;
                }
            }
            s = self.next[s] as usize;
            if s == 0 {
                break;
            }
        }
        if best_dist > thr {
            0
        } else {
            best
        }
    }

    /// Whether segment `a` wins a tie with segment `b` (the default mode's rule).
    #[inline]
    fn before(&self, a: u32, b: u32) -> bool {
        if self.rank.is_empty() {
            a < b
        } else {
            self.rank[a as usize] < self.rank[b as usize]
        }
    }

    /// The merges of one pass over `ids` (the segments of one size), in their order: decided
    /// from the state as it stands, so any split of the work gives the same list. Split over
    /// the enclosing thread pool ([`crate::par`]) when the list is long.
    fn pass_merges(&self, ids: &[u32], threshold_sq: f64) -> Vec<(u32, u32)> {
        const CHUNK: usize = 8192;
        let decide = |ids: &[u32]| {
            let mut merges = Vec::new();
            for (k, &id) in ids.iter().enumerate() {
                if let Some(&ahead) = ids.get(k + 2 * PREFETCH_AHEAD) {
                    self.prefetch_list(ahead);
                }
                if let Some(&ahead) = ids.get(k + PREFETCH_AHEAD) {
                    self.prefetch_neighbours(ahead);
                }
                let m = self.find_merge(id, threshold_sq);
                if m != 0 {
                    merges.push((id, m));
                }
            }
            merges
        };
        if ids.len() <= CHUNK {
            return decide(ids);
        }
        par_map(ids.chunks(CHUNK).collect(), decide)
            .into_iter()
            .flatten()
            .collect()
    }

    /// Asks the CPU to start loading segment `id`'s neighbour list, which
    /// [`Merger::find_merge`] will soon read (the segments of one size are scattered, so the
    /// lists are not in cache).
    #[inline(always)]
    fn prefetch_list(&self, id: u32) {
        if let Some(&first) = self.start.get(id as usize) {
            prefetch(&self.adj, first);
        }
    }

    /// Asks the CPU to start loading what [`Merger::find_merge`] reads about segment `id`'s
    /// neighbours: their union-find links and sizes.
    #[inline(always)]
    fn prefetch_neighbours(&self, id: u32) {
        let id = id as usize;
        if id + 1 < self.start.len() {
            for &m in &self.adj[self.start[id]..self.start[id + 1]] {
                prefetch(&self.parent, m as usize);
                prefetch(&self.size, m as usize);
                prefetch(&self.mean, m as usize * self.bands);
            }
            prefetch(&self.next, id);
            prefetch(&self.mean, id * self.bands);
        }
    }

    /// Asks the CPU to start loading what [`Merger::merge`] will soon read and write about
    /// segments `id` and `into` (a pass's merges are scattered over the IDs).
    #[inline(always)]
    fn prefetch_merge(&self, id: u32, into: u32) {
        for s in [id as usize, into as usize] {
            prefetch(&self.size, s);
            prefetch(&self.sum, s * self.bands);
            prefetch(&self.tail, s);
        }
    }

    /// Merges segment `id` into segment `into` (a root).
    fn merge(&mut self, id: u32, into: u32) {
        let (i, t) = (id as usize, into as usize);
        self.parent[i] = into;
        if self.size[t] + self.size[i] < self.min_size {
            // The target stays small enough to be scanned again: its neighbours now include
            // those of `id` and of the segments merged into `id`, after its own.
            let last = self.tail[t] as usize;
            self.next[last] = id;
            self.tail[t] = self.tail[i];
        }
        for b in 0..self.bands {
            let (into, from) = (t * self.bands + b, i * self.bands + b);
            self.sum[into] = S::join(self.sum[into], self.sum[from]);
            self.sum[from] = S::Sum::default();
        }
        self.size[t] += self.size[i];
        self.size[i] = 0;
        self.update_mean(t);
    }

    /// Relabels `seg` (initial labels) to the surviving segments, numbered 1..N (merged
    /// segments have size 0): in ID order as [`relabel`] numbers them (pyshepseg's), or in the
    /// order of each survivor's first pixel in raster order (the default mode's, which depends
    /// on the partition alone); returns N.
    fn relabel(&mut self, seg: &mut [u32]) -> u32 {
        if S::PYSHEPSEG {
            let (mut map, n) = relabel_map(&self.size);
            for id in 1..map.len() {
                if self.parent[id] != id as u32 {
                    map[id] = map[find(&mut self.parent, id as u32) as usize];
                }
            }
            for s in seg.iter_mut() {
                *s = map[*s as usize];
            }
            return n;
        }
        let roots: Vec<u32> = (0..self.parent.len() as u32)
            .map(|id| find(&mut self.parent, id))
            .collect();
        let mut number = zeroed::<u32>(roots.len());
        let mut n = 0u32;
        for s in seg.iter_mut() {
            let root = roots[*s as usize] as usize;
            if *s != 0 && number[root] == 0 {
                n += 1;
                number[root] = n;
            }
            *s = number[root];
        }
        n
    }
}

/// Small-segment elimination; returns `(merges done, largest ID after relabelling)`.
#[cfg(test)]
pub(crate) fn eliminate_small_segments<T: Pixel>(
    img: &Img<T>,
    seg: &mut [u32],
    max_id: u32,
    min_segment_size: usize,
    threshold_sq: f64,
    four: bool,
) -> (usize, u32) {
    // Renumbering first drops empty IDs, which keeps the order, so the result is the same.
    let renumbering = Renumbering::of_sizes(&segment_sizes(seg, max_id));
    let args = (min_segment_size, threshold_sq, four);
    eliminate_small::<Float32Spectra, T>(img, seg, renumbering, args)
}

/// [`eliminate_small_segments`] of `seg` relabelled through a pending `renumbering` (applied
/// by the first pass over the image, so the caller needs no pass of its own), in pyshepseg's
/// arithmetic with `compat`, else in the default mode's.
pub(crate) fn eliminate_small_segments_renumbered<T: Pixel>(
    img: &Img<T>,
    seg: &mut [u32],
    renumbering: Renumbering,
    min_segment_size: usize,
    threshold_sq: f64,
    four: bool,
    compat: bool,
) -> (usize, u32) {
    let args = (min_segment_size, threshold_sq, four);
    if compat {
        eliminate_small::<Float32Spectra, T>(img, seg, renumbering, args)
    } else if T::EXACT_FITS_I64 {
        eliminate_small::<ExactSpectra<i64>, T>(img, seg, renumbering, args)
    } else {
        eliminate_small::<ExactSpectra<i128>, T>(img, seg, renumbering, args)
    }
}

/// Small-segment elimination in `S`'s arithmetic; `(min_segment_size, threshold_sq, four)`.
fn eliminate_small<S: Spectra, T: Pixel>(
    img: &Img<T>,
    seg: &mut [u32],
    renumbering: Renumbering,
    (min_segment_size, threshold_sq, four): (usize, f64, bool),
) -> (usize, u32) {
    let mut segs = Merger::<S>::new(img, seg, renumbering, min_segment_size, four);
    let limit = min_segment_size.min(seg.len() + 1);
    let num_elim = segs.run_passes(limit, threshold_sq);
    let n = segs.relabel(seg);
    (num_elim, n)
}

/// A segment graph for [`eliminate_small_graph`]: entries (index 0 unused) with their sizes,
/// exact sums (`bands` per entry) and neighbour lists (`adj[start[e]..start[e + 1]]`, by
/// entry). An entry is a segment (its own `parent`, size > 0), a piece of one (`parent`: the
/// segment; size 0), or only a further neighbour list of a segment (size 0). `links` puts
/// each such piece or list in its segment's chain, so that the segment's neighbours are its
/// list and theirs. Ties between equally near neighbours go to the lower `rank` (the
/// segment's first clump pixel in raster order).
pub(crate) struct SegmentGraph {
    pub size: Vec<u32>,
    pub sum: ExactSums,
    pub unit: f64,
    pub bands: usize,
    pub start: Vec<usize>,
    pub adj: Vec<u32>,
    pub parent: Vec<u32>,
    /// `(segment, entry)`: the entry's list is also the segment's.
    pub links: Vec<(u32, u32)>,
    pub rank: Vec<u64>,
}

/// What [`eliminate_small_graph`] did.
pub(crate) struct GraphElimination {
    /// Merges done.
    pub merged: usize,
    /// Each entry's surviving segment.
    pub roots: Vec<u32>,
    /// Each surviving segment's size (0 for the other entries).
    pub size: Vec<u32>,
}

/// The default mode's small-segment elimination on a segment graph rather than an image (the
/// tiled pipeline's, whose segments span tiles): the same passes as the whole-image
/// elimination, so the same merges when the graph is the image's (ranks in its ID order).
pub(crate) fn eliminate_small_graph(
    mut graph: SegmentGraph,
    min_segment_size: usize,
    threshold_sq: f64,
) -> GraphElimination {
    match std::mem::replace(&mut graph.sum, ExactSums::I64(Vec::new())) {
        ExactSums::I64(sum) => {
            graph_passes::<ExactSpectra<i64>>(sum, graph, min_segment_size, threshold_sq)
        }
        ExactSums::I128(sum) => {
            graph_passes::<ExactSpectra<i128>>(sum, graph, min_segment_size, threshold_sq)
        }
    }
}

/// [`eliminate_small_graph`] in `S`'s arithmetic, with the graph's sums taken out as `sum`.
fn graph_passes<S: Spectra<Mean = f64>>(
    sum: Vec<S::Sum>,
    graph: SegmentGraph,
    min_segment_size: usize,
    threshold_sq: f64,
) -> GraphElimination {
    let SegmentGraph {
        size,
        sum: _,
        unit,
        bands,
        start,
        adj,
        parent,
        links,
        rank,
    } = graph;
    let n = size.len();
    let pixels: u64 = size.iter().map(|&s| u64::from(s)).sum();
    let min_size = min_segment_size.min(u32::MAX as usize) as u32;
    let mean = means::<S>(&sum, &size, bands, unit);
    let mut next = zeroed::<u32>(n);
    let mut tail = identity(n);
    for &(seg, entry) in &links {
        let last = tail[seg as usize] as usize;
        next[last] = entry;
        tail[seg as usize] = tail[entry as usize];
    }
    drop(links);
    let mut segs = Merger::<S> {
        mean,
        unit,
        parent,
        next,
        tail,
        min_size,
        bands,
        size,
        sum,
        start,
        adj,
        rank,
    };
    let limit = (min_segment_size as u64).min(pixels + 1) as usize;
    let merged = segs.run_passes(limit, threshold_sq);
    let roots = (0..n as u32).map(|id| root(&segs.parent, id)).collect();
    GraphElimination {
        merged,
        roots,
        size: segs.size,
    }
}

impl<S: Spectra> Merger<S> {
    /// The passes: sizes 1 to `limit - 1` in turn, each in up to 10 passes; returns the merges
    /// done.
    fn run_passes(&mut self, limit: usize, threshold_sq: f64) -> usize {
        const MAX_PASSES: usize = 10;
        let segs = self;
        let max_id = segs.size.len() as u32 - 1;
        let mut num_elim = 0;
        // The segments of each size below the minimum, so that a size's turn does not scan
        // every ID: filled in ID order here, and given each segment that grows to a later
        // small size by a merge; stale entries are dropped, and the list sorted, at the turn.
        // No segment is larger than the image, so sizes beyond it need no turn (nor a list).
        let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); limit];
        for id in 1..=max_id {
            if let Some(b) = buckets.get_mut(segs.size[id as usize] as usize) {
                b.push(id);
            }
        }
        for target in 1..limit {
            let mut ids = std::mem::take(&mut buckets[target]);
            let target = target as u32;
            ids.retain(|&id| segs.size[id as usize] == target);
            // pyshepseg takes a size's segments in ID order. A segment reaches each size at
            // most once (sizes only grow), so the list has no repeats.
            ids.sort_unstable();
            let mut prev_count = None;
            let mut passes = 0;
            while prev_count != Some(ids.len()) && passes < MAX_PASSES {
                prev_count = Some(ids.len());
                let merges = segs.pass_merges(&ids, threshold_sq);
                for (k, &(id, into)) in merges.iter().enumerate() {
                    if let Some(&(a, b)) = merges.get(k + PREFETCH_AHEAD) {
                        segs.prefetch_merge(a, b);
                    }
                    segs.merge(id, into);
                    // `into` was larger than `target`, so its new size's turn is still to
                    // come.
                    if let Some(b) = buckets.get_mut(segs.size[into as usize] as usize) {
                        b.push(into);
                    }
                }
                num_elim += merges.len();
                ids.retain(|&id| segs.size[id as usize] == target);
                passes += 1;
            }
        }
        num_elim
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eliminate::scan_oracle;
    use crate::eliminate::single::eliminate_single_pixels;

    #[test]
    fn neighbour_lists_equal_the_pixel_scan() {
        use crate::clump::clump_vec;
        let mut rng = crate::rng::SplitMix64::new(7);
        for case in 0..3000 {
            let rows = 1 + rng.below(50);
            let cols = 1 + rng.below(50);
            let bands = 1 + rng.below(3);
            let levels = 2 + rng.below(5) as u8;
            let data: Vec<u8> = (0..bands * rows * cols)
                .map(|_| rng.below(levels as usize) as u8)
                .collect();
            let img = Img {
                data: &data,
                bands,
                rows,
                cols,
            };
            // Clusters from the first band, so segments of every size and many ties.
            let classes: Vec<u32> = data[..rows * cols].iter().map(|&v| v as u32 / 2).collect();
            let four = case % 2 == 0;
            let compat = case % 3 == 0;
            let (mut seg, max_id) = clump_vec(classes, rows, cols, four);
            let after = eliminate_single_pixels(&img, &mut seg, max_id, four, compat);
            let min_size = [2, 3, 5, 8, 13, 50][case % 6];
            let thr = [f64::INFINITY, 0.3, 2.0, 9.0][case / 6 % 4];
            let mut by_scan = seg.clone();
            let expect = scan_oracle::eliminate_small_segments_by_scan(
                &img,
                &mut by_scan,
                after,
                min_size,
                thr,
                four,
            );
            let got = eliminate_small_segments(&img, &mut seg, after, min_size, thr, four);
            assert_eq!(
                (got, &seg),
                (expect, &by_scan),
                "case {case}: {rows}x{cols}x{bands}, four {four}, min {min_size}, thr {thr}"
            );
        }
    }
}
