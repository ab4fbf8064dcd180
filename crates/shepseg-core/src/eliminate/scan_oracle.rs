//! The small-segment elimination shepseg used before its neighbour lists: every scan reads
//! the segment's pixels and their neighbourhoods in the segment image, as pyshepseg does. Kept
//! as the oracle the faster version is tested against.

use super::neighbours::for_each_neighbour;
use super::relabel;
use crate::image::Img;
use crate::locations::SegmentLocations;
use crate::pixel::Pixel;

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
pub(super) fn eliminate_small_segments_by_scan<T: Pixel>(
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
            for &id in &ids {
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
