//! Elimination: single pixels first, then small segments, each merged into a neighbour.
//!
//! Single-pixel elimination (Shepherd et al. 2019, section 2.3) gives each one-pixel segment
//! the segment of its spectrally nearest neighbouring *pixel*, in raster scans applied scan by
//! scan until nothing changes. Small-segment elimination then takes sizes 1, 2, ...,
//! `min_segment_size - 1` in turn and merges each segment of that size into the neighbour whose
//! mean spectrum is nearest, provided that neighbour is strictly larger and within
//! maxSpectralDiff, in up to 10 passes per size. Both end by relabelling the survivors to
//! contiguous IDs in their old order.
//!
//! The arithmetic and orders are pyshepseg's (see the crate docs): `float32` spectral sums in
//! raster order, ties to the first neighbour found in a segment's pixel list, a merged segment's
//! list being the target's followed by the merged one's. Only lists of segments below the minimum
//! size are kept, so a merge costs the size of the smaller segment, not the larger.

use crate::image::Img;
use crate::locations::SegmentLocations;
use crate::pixel::Pixel;

/// Calls `f(q)` for each neighbour `q` of pixel `(i, j)` that is connected to it, rows outer and
/// columns inner (the pixel itself included, as pyshepseg's loops include it).
#[inline(always)]
fn for_each_neighbour(
    rows: usize,
    cols: usize,
    i: usize,
    j: usize,
    four: bool,
    mut f: impl FnMut(usize),
) {
    let p = i * cols + j;
    if four {
        if i > 0 {
            f(p - cols);
        }
        if j > 0 {
            f(p - 1);
        }
        f(p);
        if j + 1 < cols {
            f(p + 1);
        }
        if i + 1 < rows {
            f(p + cols);
        }
        return;
    }
    let i0 = i.saturating_sub(1);
    let i1 = (i + 1).min(rows - 1);
    let j0 = j.saturating_sub(1);
    let j1 = (j + 1).min(cols - 1);
    for ii in i0..=i1 {
        for jj in j0..=j1 {
            f(ii * cols + jj);
        }
    }
}

/// How many segments ahead of the one being scanned [`Segments::prefetch`] works.
const PREFETCH_AHEAD: usize = 8;

/// A hint to load the cache line of `slice[i]` (nothing if `i` is out of range).
#[inline(always)]
fn prefetch<T>(slice: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(r) = slice.get(i) {
        // SAFETY: a prefetch only hints the cache; SSE is part of every x86_64 CPU, and the
        // pointer comes from a live reference.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (r as *const T).cast::<i8>(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slice, i);
}

/// Pixel counts per segment ID (index 0 counts the null pixels).
pub(crate) fn segment_sizes(seg: &[u32], max_id: u32) -> Vec<u32> {
    let mut size = vec![0u32; max_id as usize + 1];
    for &s in seg {
        size[s as usize] += 1;
    }
    size
}

/// Renumbers non-empty segments to 1..N in their old order; returns N.
pub(crate) fn relabel(seg: &mut [u32], size: &[u32]) -> u32 {
    let mut map = vec![0u32; size.len()];
    let mut next = 0u32;
    for id in 1..size.len() {
        if size[id] > 0 {
            next += 1;
            map[id] = next;
        }
    }
    for s in seg.iter_mut() {
        *s = map[*s as usize];
    }
    next
}

/// Single-pixel elimination as pyshepseg's; returns the largest ID after relabelling.
///
/// pyshepseg's first defect is kept here (see [`rescue_nulled_pixels`] for its fix): the null
/// segment counts as a neighbour larger than one pixel, so it can absorb a valid pixel. Its
/// second, a lone null pixel (an image with exactly one) joining a valid segment, happens only
/// with `null_may_join`; without it null pixels are never candidates.
pub(crate) fn eliminate_single_pixels<T: Pixel>(
    img: &Img<T>,
    seg: &mut [u32],
    max_id: u32,
    four: bool,
    null_may_join: bool,
) -> u32 {
    let (rows, cols) = (img.rows, img.cols);
    let mut size = segment_sizes(seg, max_id);
    // Single pixels only ever disappear, so the first scan finds every candidate.
    let mut candidates: Vec<u32> = (0..seg.len())
        .filter(|&p| size[seg[p] as usize] == 1 && (null_may_join || seg[p] != 0))
        .map(|p| p as u32)
        .collect();
    let mut merges: Vec<(u32, u32)> = Vec::new();
    loop {
        merges.clear();
        for &p in &candidates {
            let p = p as usize;
            if size[seg[p] as usize] != 1 {
                continue;
            }
            let (i, j) = (p / cols, p % cols);
            let mut min = T::DIST_UNSET;
            let mut found = None;
            for_each_neighbour(rows, cols, i, j, four, |q| {
                let nbr = seg[q];
                if size[nbr as usize] > 1 {
                    let mut d = T::DIST_ZERO;
                    for b in 0..img.bands {
                        d = T::add_sq_diff(d, img.band_value(b, p), img.band_value(b, q));
                    }
                    if min < T::DIST_ZERO || d < min {
                        min = d;
                        found = Some(nbr);
                    }
                }
            });
            if let Some(nbr) = found {
                merges.push((p as u32, nbr));
            }
        }
        if merges.is_empty() {
            break;
        }
        for &(p, new) in &merges {
            let old = seg[p as usize];
            seg[p as usize] = new;
            size[old as usize] = 0;
            size[new as usize] += 1;
        }
        candidates.retain(|&p| size[seg[p as usize] as usize] == 1);
    }
    relabel(seg, &size)
}

/// Undoes pyshepseg's null-merge defect after elimination: every valid pixel left at 0 joins the segment of its spectrally nearest labelled neighbouring pixel
/// (in raster scans applied scan by scan, as single-pixel elimination does). Valid pixels with no
/// labelled pixel reachable (islands enclosed by nulls) become new segments, one per connected
/// group, numbered after `num_segments`. Only the pixels pyshepseg nulled change, so the result
/// equals pyshepseg's everywhere else. Returns `(pixels rescued, new number of segments)`.
pub(crate) fn rescue_nulled_pixels<T: Pixel>(
    img: &Img<T>,
    null: Option<T>,
    seg: &mut [u32],
    num_segments: u32,
    four: bool,
) -> (usize, u32) {
    let (rows, cols) = (img.rows, img.cols);
    let is_null = |p: usize| (0..img.bands).any(|b| img.band_value(b, p).is_null(null));
    let mut lost = Vec::new();
    for (p, &s) in seg.iter().enumerate() {
        if s == 0 && !is_null(p) {
            lost.push(p as u32);
        }
    }
    let rescued = lost.len();
    let mut joins: Vec<(u32, u32)> = Vec::new();
    while !lost.is_empty() {
        joins.clear();
        for &p in &lost {
            let p = p as usize;
            let mut min = T::DIST_UNSET;
            let mut found = None;
            for_each_neighbour(rows, cols, p / cols, p % cols, four, |q| {
                if seg[q] != 0 {
                    let mut d = T::DIST_ZERO;
                    for b in 0..img.bands {
                        d = T::add_sq_diff(d, img.band_value(b, p), img.band_value(b, q));
                    }
                    if min < T::DIST_ZERO || d < min {
                        min = d;
                        found = Some(seg[q]);
                    }
                }
            });
            if let Some(s) = found {
                joins.push((p as u32, s));
            }
        }
        if joins.is_empty() {
            break;
        }
        for &(p, s) in &joins {
            seg[p as usize] = s;
        }
        lost.retain(|&p| seg[p as usize] == 0);
    }
    // Islands of valid pixels with no labelled neighbour: one new segment per connected group.
    let mut next = num_segments;
    let mut stack = Vec::new();
    for &start in &lost {
        if seg[start as usize] != 0 {
            continue;
        }
        next += 1;
        seg[start as usize] = next;
        stack.push(start as usize);
        while let Some(p) = stack.pop() {
            for_each_neighbour(rows, cols, p / cols, p % cols, four, |q| {
                if seg[q] == 0 && !is_null(q) {
                    seg[q] = next;
                    stack.push(q);
                }
            });
        }
    }
    (rescued, next)
}

/// Small-segment elimination state: sizes, `float32` spectral sums and means, and each small
/// segment's pixel list.
///
/// A list is the segment's own pixels in raster order (from a [`SegmentLocations`] index)
/// followed by the lists of the segments merged into it, in merge order, as pyshepseg keeps them.
/// Only segments smaller than the minimum size are ever scanned, so a segment that reaches it
/// drops its merged list.
struct Segments {
    size: Vec<u32>,
    sum: Vec<f32>,
    /// `sum / size` per segment, kept current on every merge (pyshepseg divides at each use;
    /// the quotient is the same).
    mean: Vec<f32>,
    own: SegmentLocations,
    /// Index into `pool` of each segment's merged list (0: none; `pool[0]` stays empty).
    merged: Vec<u32>,
    pool: Vec<Vec<u32>>,
    /// Pool slots free for reuse.
    free: Vec<u32>,
    min_size: u32,
    bands: usize,
}

impl Segments {
    fn new<T: Pixel>(img: &Img<T>, seg: &[u32], max_id: u32, min_size: usize) -> Self {
        let n = max_id as usize + 1;
        let nb = img.bands;
        let mut sum = vec![0.0f32; n * nb];
        for (p, &id) in seg.iter().enumerate() {
            if id == 0 {
                continue;
            }
            let id = id as usize;
            for b in 0..nb {
                let acc = &mut sum[id * nb + b];
                *acc = img.band_value(b, p).add_to_f32_sum(*acc);
            }
        }
        let own = SegmentLocations::from_slice(seg, img.cols, max_id);
        // Sizes from the index (the null count, unused here, is left 0).
        let size = (0..n as u32)
            .map(|id| if id == 0 { 0 } else { own.size(id) as u32 })
            .collect();
        let mut s = Segments {
            size,
            sum,
            mean: vec![0.0; n * nb],
            own,
            merged: vec![0; n],
            pool: vec![Vec::new()],
            free: Vec::new(),
            min_size: min_size.min(u32::MAX as usize) as u32,
            bands: nb,
        };
        for id in 1..n {
            s.update_mean(id);
        }
        s
    }

    /// The pixel list of segment `id` (linear indices).
    fn pixels(&self, id: u32) -> impl Iterator<Item = usize> + '_ {
        self.own
            .pixels(id)
            .iter()
            .chain(&self.pool[self.merged[id as usize] as usize])
            .map(|&p| p as usize)
    }

    /// Recomputes the mean of segment `id` as pyshepseg does: `float32` sum / `float32` count.
    fn update_mean(&mut self, id: usize) {
        let nb = self.bands;
        let n = self.size[id] as f32;
        for b in 0..nb {
            self.mean[id * nb + b] = self.sum[id * nb + b] / n;
        }
    }

    #[inline(always)]
    fn mean(&self, id: u32) -> &[f32] {
        let nb = self.bands;
        &self.mean[id as usize * nb..(id as usize + 1) * nb]
    }

    /// The neighbour segment `id` should merge into, or 0: the strictly larger neighbour with
    /// the nearest mean spectrum (`float32` arithmetic), the first found in `id`'s pixel list on
    /// ties, if within the threshold.
    fn find_merge(
        &self,
        id: u32,
        seg: &[u32],
        rows: usize,
        cols: usize,
        four: bool,
        thr: f64,
    ) -> u32 {
        let own = self.size[id as usize];
        let spect = self.mean(id);
        let mut best = 0u32;
        let mut best_dist = 0.0f64;
        // Neighbours already scored: scoring one again gives the same distance, which cannot
        // beat the best under the strict comparison, so it is skipped.
        let mut seen = [0u32; 8];
        let mut n_seen = 0usize;
        for p in self.pixels(id) {
            let i = p / cols;
            let j = p - i * cols;
            for_each_neighbour(rows, cols, i, j, four, |q| {
                let nbr = seg[q];
                if nbr == id || nbr == 0 || seen[..n_seen].contains(&nbr) {
                    return;
                }
                if self.size[nbr as usize] <= own {
                    return;
                }
                if n_seen < seen.len() {
                    seen[n_seen] = nbr;
                    n_seen += 1;
                }
                let mut dist = 0.0f32;
                for (s, m) in spect.iter().zip(self.mean(nbr)) {
                    let d = s - m;
                    dist += d * d;
                }
                if best == 0 || (dist as f64) < best_dist {
                    best_dist = dist as f64;
                    best = nbr;
                }
            });
        }
        if best_dist > thr {
            0
        } else {
            best
        }
    }

    /// Asks the CPU to start loading the segment-image rows that [`Segments::find_merge`] will
    /// read for `id` (each row of its pixels and the rows above and below). Small segments of
    /// one size lie far apart in a large image, so without this every scan waits on memory.
    fn prefetch(&self, id: u32, seg: &[u32], cols: usize) {
        let mut last_line = usize::MAX;
        for p in self.pixels(id) {
            // 16 IDs to a 64-byte cache line.
            if p >> 4 == last_line {
                continue;
            }
            last_line = p >> 4;
            prefetch(seg, p.wrapping_sub(cols));
            prefetch(seg, p);
            prefetch(seg, p + cols);
        }
    }

    fn merge(&mut self, id: u32, into: u32, seg: &mut [u32]) {
        let (i, t) = (id as usize, into as usize);
        for p in self.pixels(id) {
            seg[p] = into;
        }
        let moved = std::mem::take(&mut self.merged[i]);
        if self.size[t] + self.size[i] < self.min_size {
            // The target stays small enough to be scanned again: append this list to its own.
            if self.merged[t] == 0 {
                self.merged[t] = match self.free.pop() {
                    Some(slot) => slot,
                    None => {
                        self.pool.push(Vec::new());
                        (self.pool.len() - 1) as u32
                    }
                };
            }
            let mut list = std::mem::take(&mut self.pool[self.merged[t] as usize]);
            list.extend_from_slice(self.own.pixels(id));
            list.extend_from_slice(&self.pool[moved as usize]);
            self.pool[self.merged[t] as usize] = list;
        } else if self.merged[t] != 0 {
            let slot = std::mem::take(&mut self.merged[t]);
            self.pool[slot as usize].clear();
            self.free.push(slot);
        }
        if moved != 0 {
            self.pool[moved as usize].clear();
            self.free.push(moved);
        }
        for b in 0..self.bands {
            self.sum[t * self.bands + b] += self.sum[i * self.bands + b];
            self.sum[i * self.bands + b] = 0.0;
        }
        self.size[t] += self.size[i];
        self.size[i] = 0;
        self.update_mean(t);
    }
}

/// Small-segment elimination; returns `(merges done, largest ID after relabelling)`.
pub(crate) fn eliminate_small_segments<T: Pixel>(
    img: &Img<T>,
    seg: &mut [u32],
    max_id: u32,
    min_segment_size: usize,
    threshold_sq: f64,
    four: bool,
) -> (usize, u32) {
    const MAX_PASSES: usize = 10;
    let (rows, cols) = (img.rows, img.cols);
    let mut segs = Segments::new(img, seg, max_id, min_segment_size);
    let mut num_elim = 0;
    let mut merges: Vec<(u32, u32)> = Vec::new();
    for target in 1..min_segment_size {
        let target = target as u32;
        let mut ids: Vec<u32> = (1..=max_id)
            .filter(|&id| segs.size[id as usize] == target)
            .collect();
        let mut prev_count = None;
        let mut passes = 0;
        while prev_count != Some(ids.len()) && passes < MAX_PASSES {
            prev_count = Some(ids.len());
            merges.clear();
            for (k, &id) in ids.iter().enumerate() {
                if let Some(&ahead) = ids.get(k + PREFETCH_AHEAD) {
                    segs.prefetch(ahead, seg, cols);
                }
                let m = segs.find_merge(id, seg, rows, cols, four, threshold_sq);
                if m != 0 {
                    merges.push((id, m));
                }
            }
            for &(id, into) in &merges {
                segs.merge(id, into, seg);
            }
            num_elim += merges.len();
            ids.retain(|&id| segs.size[id as usize] == target);
            passes += 1;
        }
    }
    let n = relabel(seg, &segs.size);
    (num_elim, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relabel_is_contiguous_and_ordered() {
        let mut seg = vec![0, 3, 3, 5, 1];
        let size = segment_sizes(&seg, 5);
        assert_eq!(relabel(&mut seg, &size), 3);
        assert_eq!(seg, vec![0, 2, 2, 3, 1]);
    }

    #[test]
    fn single_pixel_joins_nearest_pixel_segment() {
        // One band, 1 x 3: [10, 12, 30]; segments [1, 2, 3] with 1 and 3 larger via row 2.
        let data = [10u8, 12, 30, 10, 50, 30];
        let img = Img {
            data: &data,
            bands: 1,
            rows: 2,
            cols: 3,
        };
        let mut seg = vec![1, 2, 3, 1, 4, 3];
        let n = eliminate_single_pixels(&img, &mut seg, 4, true, false);
        // Pixel of segment 2 (value 12) is nearest to 10 (segment 1); segment 4 (50) to 30.
        assert_eq!(seg, vec![1, 1, 2, 1, 2, 2]);
        assert_eq!(n, 2);
    }

    #[test]
    fn null_absorbs_a_pixel_and_rescue_gives_it_back() {
        // Pixel (0,1) is a single segment whose spectrally nearest neighbour is null.
        let data = [0u8, 1, 100, 0, 100, 100];
        let img = Img {
            data: &data,
            bands: 1,
            rows: 2,
            cols: 3,
        };
        let mut seg = vec![0, 1, 2, 0, 2, 2];
        let n = eliminate_single_pixels(&img, &mut seg, 2, true, false);
        assert_eq!(
            seg,
            vec![0, 0, 1, 0, 1, 1],
            "pyshepseg merges the valid pixel into null"
        );
        let (rescued, n) = rescue_nulled_pixels(&img, Some(0), &mut seg, n, true);
        assert_eq!((rescued, n), (1, 1));
        assert_eq!(seg, vec![0, 1, 1, 0, 1, 1]);
    }

    #[test]
    fn lone_null_pixel_joins_only_in_compat() {
        // One column [1, null, 1, 1]: pyshepseg lets the lone null pixel (segment 0 of size 1)
        // join segment 2, and then the single pixel above joins through it.
        let data = [1u8, 0, 1, 1];
        let img = Img {
            data: &data,
            bands: 1,
            rows: 4,
            cols: 1,
        };
        let mut compat = vec![1, 0, 2, 2];
        eliminate_single_pixels(&img, &mut compat, 2, true, true);
        assert_eq!(compat, vec![1, 1, 1, 1]);
        let mut fixed = vec![1, 0, 2, 2];
        eliminate_single_pixels(&img, &mut fixed, 2, true, false);
        assert_eq!(fixed, vec![1, 0, 2, 2]);
    }

    #[test]
    fn rescue_makes_islands_new_segments() {
        // A valid 2-pixel island (value 5) enclosed by nulls.
        let data = [0u8, 0, 0, 0, 5, 5, 0, 0, 0];
        let img = Img {
            data: &data,
            bands: 1,
            rows: 3,
            cols: 3,
        };
        let mut seg = vec![0; 9];
        let (rescued, n) = rescue_nulled_pixels(&img, Some(0), &mut seg, 4, true);
        assert_eq!((rescued, n), (2, 5));
        assert_eq!(seg, vec![0, 0, 0, 0, 5, 5, 0, 0, 0]);
    }
}
