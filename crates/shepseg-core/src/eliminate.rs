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
//! list being the target's followed by the merged one's. Small-segment elimination keeps, for
//! each segment small at the start, its neighbours in that order instead of its pixels, and
//! resolves them through a union-find of the merges (see `Merger`), so a scan reads a few
//! list entries and the segment image is relabelled once, at the end.

use crate::clump::find;
use crate::image::Img;
use crate::mem::{identity, zeroed};
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

/// How many segments ahead of the one being scanned the neighbour data is prefetched (the
/// lists themselves twice as far ahead).
const PREFETCH_AHEAD: usize = 8;

/// A hint to load the cache line of `slice[i]` (nothing if `i` is out of range).
#[inline(always)]
pub(crate) fn prefetch<T>(slice: &[T], i: usize) {
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
#[cfg(test)]
pub(crate) fn segment_sizes(seg: &[u32], max_id: u32) -> Vec<u32> {
    let mut size = vec![0u32; max_id as usize + 1];
    for &s in seg {
        size[s as usize] += 1;
    }
    size
}

/// Renumbers non-empty segments to 1..N in their old order; returns N.
#[cfg(test)]
pub(crate) fn relabel(seg: &mut [u32], size: &[u32]) -> u32 {
    Renumbering::of_sizes(size).apply(seg)
}

/// The new ID of each old one under [`relabel`] (0 for empty segments and for 0), and N.
fn relabel_map(size: &[u32]) -> (Vec<u32>, u32) {
    let mut map = zeroed::<u32>(size.len());
    let mut next = 0u32;
    // Without branches: which segments are empty is close to random after an elimination.
    for (m, &count) in map.iter_mut().zip(size).skip(1) {
        let kept = count > 0;
        next += u32::from(kept);
        *m = if kept { next } else { 0 };
    }
    (map, next)
}

/// A relabelling to contiguous IDs (as [`relabel`] does) worked out from the segment sizes but
/// not yet applied to the segment image, so that the next pass over the image can apply it on
/// the way (small-segment elimination's first pass does).
pub(crate) struct Renumbering {
    /// The new ID of each old one (0 for empty segments and for 0).
    pub(crate) map: Vec<u32>,
    /// Pixels per new ID (index 0: the null pixels).
    pub(crate) size: Vec<u32>,
}

impl Renumbering {
    /// The renumbering that drops the empty segments of `size` (pixels per old ID).
    fn of_sizes(size: &[u32]) -> Self {
        let (map, n) = relabel_map(size);
        let mut new_size = zeroed::<u32>(n as usize + 1);
        // Empty segments map to 0 and write their 0 there, without a branch; slot 0 (the
        // null pixels) is set last.
        for (&to, &count) in map.iter().zip(size).skip(1) {
            new_size[to as usize] = count;
        }
        new_size[0] = size.first().copied().unwrap_or(0);
        Self {
            map,
            size: new_size,
        }
    }

    /// The largest new ID.
    pub(crate) fn max_id(&self) -> u32 {
        self.size.len() as u32 - 1
    }

    /// Applies the renumbering to `seg`; returns the largest new ID.
    #[cfg(test)]
    fn apply(&self, seg: &mut [u32]) -> u32 {
        for s in seg.iter_mut() {
            *s = self.map[*s as usize];
        }
        self.max_id()
    }
}

/// Single-pixel elimination as pyshepseg's; returns the largest ID after relabelling.
///
/// pyshepseg's first defect is kept here (see [`rescue_nulled_pixels`] for its fix): the null
/// segment counts as a neighbour larger than one pixel, so it can absorb a valid pixel. Its
/// second, a lone null pixel (an image with exactly one) joining a valid segment, happens only
/// with `null_may_join`; without it null pixels are never candidates.
#[cfg(test)]
pub(crate) fn eliminate_single_pixels<T: Pixel>(
    img: &Img<T>,
    seg: &mut [u32],
    max_id: u32,
    four: bool,
    null_may_join: bool,
) -> u32 {
    let size = segment_sizes(seg, max_id);
    eliminate_single_pixels_sized(img, seg, size, four, null_may_join).apply(seg)
}

/// [`eliminate_single_pixels`] given the pixels per segment (`size`, index 0 the nulls), and
/// leaving the relabelling to contiguous IDs to be applied (so the caller can fuse it with its
/// next pass over the image).
pub(crate) fn eliminate_single_pixels_sized<T: Pixel>(
    img: &Img<T>,
    seg: &mut [u32],
    size: Vec<u32>,
    four: bool,
    null_may_join: bool,
) -> Renumbering {
    let args = (img, seg, size, four, null_may_join);
    match img.bands {
        1 => single_pixels::<T, 1>(args),
        2 => single_pixels::<T, 2>(args),
        3 => single_pixels::<T, 3>(args),
        4 => single_pixels::<T, 4>(args),
        5 => single_pixels::<T, 5>(args),
        6 => single_pixels::<T, 6>(args),
        7 => single_pixels::<T, 7>(args),
        8 => single_pixels::<T, 8>(args),
        _ => single_pixels::<T, 0>(args),
    }
}

/// [`eliminate_single_pixels`] with the band count fixed at `NB` (0: any count).
fn single_pixels<T: Pixel, const NB: usize>(
    (img, seg, mut size, four, null_may_join): (&Img<T>, &mut [u32], Vec<u32>, bool, bool),
) -> Renumbering {
    let pixels = PixelNeighbours::<T, NB>::new(img, four);
    let (rows, cols) = (img.rows, img.cols);
    let mut merges: Vec<(u32, u32)> = Vec::new();
    // Single pixels only ever disappear, so the first scan, over the whole image row by row
    // (no division per pixel), finds every candidate; those it cannot merge are the
    // candidates of the later scans.
    let mut candidates: Vec<u32> = Vec::new();
    for i in 0..rows {
        for j in 0..cols {
            let p = i * cols + j;
            let s = seg[p];
            if size[s as usize] != 1 || !(null_may_join || s != 0) {
                continue;
            }
            match pixels.nearest(seg, i, j, |nbr| size[nbr as usize] > 1) {
                Some(nbr) => merges.push((p as u32, nbr)),
                None => candidates.push(p as u32),
            }
        }
    }
    while !merges.is_empty() {
        for &(p, new) in &merges {
            let old = seg[p as usize];
            seg[p as usize] = new;
            size[old as usize] = 0;
            size[new as usize] += 1;
        }
        candidates.retain(|&p| size[seg[p as usize] as usize] == 1);
        merges.clear();
        for &p in &candidates {
            let p = p as usize;
            if let Some(nbr) = pixels.nearest(seg, p / cols, p % cols, |nbr| size[nbr as usize] > 1)
            {
                merges.push((p as u32, nbr));
            }
        }
    }
    Renumbering::of_sizes(&size)
}

/// An image's bands as slices (`NB` of them; 0: any count) and its shape and connectivity:
/// what the searches for a pixel's spectrally nearest neighbouring pixel read.
struct PixelNeighbours<'a, T, const NB: usize> {
    bands: Vec<&'a [T]>,
    rows: usize,
    cols: usize,
    four: bool,
}

impl<'a, T: Pixel, const NB: usize> PixelNeighbours<'a, T, NB> {
    fn new(img: &Img<'a, T>, four: bool) -> Self {
        let n = img.pixels();
        Self {
            bands: img.data.chunks_exact(n.max(1)).take(img.bands).collect(),
            rows: img.rows,
            cols: img.cols,
            four,
        }
    }

    /// The segment of pixel `(i, j)`'s spectrally nearest neighbouring pixel among those whose
    /// segment `qualifies`, in pyshepseg's distance arithmetic and order (rows outer, columns
    /// inner; the first met wins ties), or `None` if none qualifies. The pixel itself is not
    /// looked at: both callers' pixels never qualify. The running minimum is kept by
    /// conditional moves, as which neighbour wins is close to random.
    #[inline(always)]
    fn nearest(
        &self,
        seg: &[u32],
        i: usize,
        j: usize,
        qualifies: impl Fn(u32) -> bool,
    ) -> Option<u32> {
        let (rows, cols) = (self.rows, self.cols);
        let bands = if NB > 0 {
            &self.bands[..NB]
        } else {
            &self.bands[..]
        };
        let p = i * cols + j;
        let mut min = T::DIST_UNSET;
        let mut found = 0u32;
        let mut any = false;
        let mut consider = |q: usize| {
            let nbr = seg[q];
            let mut d = T::DIST_ZERO;
            for band in bands {
                d = T::add_sq_diff(d, band[p], band[q]);
            }
            let better = qualifies(nbr) && (min < T::DIST_ZERO || d < min);
            min = if better { d } else { min };
            found = if better { nbr } else { found };
            any |= better;
        };
        for_each_neighbour(rows, cols, i, j, self.four, |q| {
            if q != p {
                consider(q);
            }
        });
        any.then_some(found)
    }
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
    let pixels = PixelNeighbours::<T, 0>::new(img, four);
    let mut joins: Vec<(u32, u32)> = Vec::new();
    while !lost.is_empty() {
        joins.clear();
        for &p in &lost {
            let p = p as usize;
            if let Some(s) = pixels.nearest(seg, p / cols, p % cols, |s| s != 0) {
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

/// Small-segment elimination state: sizes, `float32` spectral sums and means, a union-find
/// over segment IDs, and each initially small segment's neighbours.
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
struct Merger {
    size: Vec<u32>,
    sum: Vec<f32>,
    /// `sum / size` per segment, kept current on every merge (pyshepseg divides at each use;
    /// the quotient is the same).
    mean: Vec<f32>,
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

/// Each segment's `float32` spectral sums (`n x bands`), every segment's pixels added in
/// raster order as pyshepseg adds them. A run of pixels of one segment is summed in registers,
/// all bands at once for up to 8 bands, so the additions do not wait on memory.
///
/// With `map`, each pixel's label is first replaced by `map[label]` (a pending
/// [`Renumbering`]), and the sums are of the new labels: one pass instead of two.
fn segment_sums<T: Pixel>(
    img: &Img<T>,
    seg: &mut [u32],
    map: Option<&[u32]>,
    n: usize,
) -> Vec<f32> {
    match (img.bands, map) {
        (1, m) => sums_fixed::<T, 1>(img, seg, m, n),
        (2, m) => sums_fixed::<T, 2>(img, seg, m, n),
        (3, m) => sums_fixed::<T, 3>(img, seg, m, n),
        (4, m) => sums_fixed::<T, 4>(img, seg, m, n),
        (5, m) => sums_fixed::<T, 5>(img, seg, m, n),
        (6, m) => sums_fixed::<T, 6>(img, seg, m, n),
        (7, m) => sums_fixed::<T, 7>(img, seg, m, n),
        (8, m) => sums_fixed::<T, 8>(img, seg, m, n),
        (_, Some(map)) => {
            for s in seg.iter_mut() {
                *s = map[*s as usize];
            }
            segment_sums(img, seg, None, n)
        }
        (_, None) => {
            let nb = img.bands;
            let mut out = vec![0.0f32; n * nb];
            for b in 0..nb {
                let one = Img {
                    data: &img.data[b * img.pixels()..(b + 1) * img.pixels()],
                    bands: 1,
                    rows: img.rows,
                    cols: img.cols,
                };
                for (id, s) in sums_fixed::<T, 1>(&one, seg, None, n)
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
fn sums_fixed<T: Pixel, const NB: usize>(
    img: &Img<T>,
    seg: &mut [u32],
    map: Option<&[u32]>,
    n: usize,
) -> Vec<f32> {
    match map {
        Some(map) => sums_loop::<T, NB, true>(img, seg, map, n),
        None => sums_loop::<T, NB, false>(img, seg, &[], n),
    }
}

/// [`sums_fixed`]'s loop, relabelling each pixel through `map` first if `MAP`.
#[inline(always)]
fn sums_loop<T: Pixel, const NB: usize, const MAP: bool>(
    img: &Img<T>,
    seg: &mut [u32],
    map: &[u32],
    n: usize,
) -> Vec<f32> {
    let pixels = img.pixels();
    let mut sum = zeroed::<f32>(n * NB);
    let bands: [&[T]; NB] = std::array::from_fn(|b| &img.data[b * pixels..(b + 1) * pixels]);
    let mut cur = 0usize;
    let (mut old, mut new) = (0u32, map.first().copied().unwrap_or(0));
    let mut acc = [0.0f32; NB];
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
                *a = band[p].add_to_f32_sum(*a);
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

impl Merger {
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
        let sum = segment_sums(img, seg, Some(&map), n);
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
            mean: zeroed(n * nb),
            parent: identity(n),
            start,
            adj,
            next: zeroed(n),
            tail: identity(n),
            min_size,
            bands: nb,
        };
        for id in 1..n {
            s.update_mean(id);
        }
        s
    }

    /// Recomputes the mean of segment `id` as pyshepseg does: `float32` sum / `float32` count.
    fn update_mean(&mut self, id: usize) {
        let nb = self.bands;
        let n = self.size[id] as f32;
        for b in 0..nb {
            self.mean[id * nb + b] = self.sum[id * nb + b] / n;
        }
    }

    /// The neighbour segment `id` should merge into, or 0: the strictly larger neighbour with
    /// the nearest mean spectrum (`float32` arithmetic), the first met on ties, if within the
    /// threshold.
    fn find_merge(&mut self, id: u32, thr: f64) -> u32 {
        let nb = self.bands;
        let own = self.size[id as usize];
        let i = id as usize;
        let mut best = 0u32;
        let mut best_dist = 0.0f64;
        let mut s = id as usize;
        loop {
            for k in self.start[s]..self.start[s + 1] {
                let c = find(&mut self.parent, self.adj[k]);
                if c == id || c == best || self.size[c as usize] <= own {
                    continue;
                }
                let c_mean = &self.mean[c as usize * nb..(c as usize + 1) * nb];
                let mut dist = 0.0f32;
                for (a, m) in self.mean[i * nb..(i + 1) * nb].iter().zip(c_mean) {
                    let d = a - m;
                    dist += d * d;
                }
                if best == 0 || (dist as f64) < best_dist {
                    best_dist = dist as f64;
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
            self.sum[t * self.bands + b] += self.sum[i * self.bands + b];
            self.sum[i * self.bands + b] = 0.0;
        }
        self.size[t] += self.size[i];
        self.size[i] = 0;
        self.update_mean(t);
    }

    /// Relabels `seg` (initial labels) to the surviving segments, numbered 1..N in ID order
    /// as [`relabel`] numbers them (merged segments have size 0); returns N.
    fn relabel(&mut self, seg: &mut [u32]) -> u32 {
        let (mut map, n) = relabel_map(&self.size);
        for id in 1..map.len() {
            if self.parent[id] != id as u32 {
                map[id] = map[find(&mut self.parent, id as u32) as usize];
            }
        }
        for s in seg.iter_mut() {
            *s = map[*s as usize];
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
    eliminate_small_segments_renumbered(img, seg, renumbering, min_segment_size, threshold_sq, four)
}

/// [`eliminate_small_segments`] of `seg` relabelled through a pending `renumbering` (applied
/// by the first pass over the image, so the caller needs no pass of its own).
pub(crate) fn eliminate_small_segments_renumbered<T: Pixel>(
    img: &Img<T>,
    seg: &mut [u32],
    renumbering: Renumbering,
    min_segment_size: usize,
    threshold_sq: f64,
    four: bool,
) -> (usize, u32) {
    const MAX_PASSES: usize = 10;
    let max_id = renumbering.max_id();
    let mut segs = Merger::new(img, seg, renumbering, min_segment_size, four);
    let mut num_elim = 0;
    let mut merges: Vec<(u32, u32)> = Vec::new();
    // The segments of each size below the minimum, so that a size's turn does not scan every
    // ID: filled in ID order here, and given each segment that grows to a later small size by a
    // merge; stale entries are dropped, and the list sorted, at the turn. No segment is larger
    // than the image, so sizes beyond it need no turn (nor a list).
    let limit = min_segment_size.min(seg.len() + 1);
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
        // pyshepseg takes a size's segments in ID order. A segment reaches each size at most
        // once (sizes only grow), so the list has no repeats.
        ids.sort_unstable();
        let mut prev_count = None;
        let mut passes = 0;
        while prev_count != Some(ids.len()) && passes < MAX_PASSES {
            prev_count = Some(ids.len());
            merges.clear();
            for (k, &id) in ids.iter().enumerate() {
                if let Some(&ahead) = ids.get(k + 2 * PREFETCH_AHEAD) {
                    segs.prefetch_list(ahead);
                }
                if let Some(&ahead) = ids.get(k + PREFETCH_AHEAD) {
                    segs.prefetch_neighbours(ahead);
                }
                let m = segs.find_merge(id, threshold_sq);
                if m != 0 {
                    merges.push((id, m));
                }
            }
            for (k, &(id, into)) in merges.iter().enumerate() {
                if let Some(&(a, b)) = merges.get(k + PREFETCH_AHEAD) {
                    segs.prefetch_merge(a, b);
                }
                segs.merge(id, into);
                // `into` was larger than `target`, so its new size's turn is still to come.
                if let Some(b) = buckets.get_mut(segs.size[into as usize] as usize) {
                    b.push(into);
                }
            }
            num_elim += merges.len();
            ids.retain(|&id| segs.size[id as usize] == target);
            passes += 1;
        }
    }
    let n = segs.relabel(seg);
    (num_elim, n)
}

#[cfg(test)]
mod scan_oracle;

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

    /// pyshepseg's single-pixel elimination as written: each scan visits every pixel, and the
    /// merges it finds (sizes as they stood when it began) are applied when it ends.
    fn single_pixels_by_full_scans<T: Pixel>(
        img: &Img<T>,
        seg: &mut [u32],
        max_id: u32,
        four: bool,
        null_may_join: bool,
    ) -> u32 {
        let (rows, cols) = (img.rows, img.cols);
        let mut size = segment_sizes(seg, max_id);
        loop {
            let mut merges = Vec::new();
            for p in 0..rows * cols {
                if size[seg[p] as usize] != 1 || !(null_may_join || seg[p] != 0) {
                    continue;
                }
                let mut best: Option<(T::Dist, u32)> = None;
                for_each_neighbour(rows, cols, p / cols, p % cols, four, |q| {
                    if size[seg[q] as usize] > 1 {
                        let mut d = T::DIST_ZERO;
                        for b in 0..img.bands {
                            d = T::add_sq_diff(d, img.band_value(b, p), img.band_value(b, q));
                        }
                        if best.is_none_or(|(m, _)| m < T::DIST_ZERO || d < m) {
                            best = Some((d, seg[q]));
                        }
                    }
                });
                if let Some((_, s)) = best {
                    merges.push((p, s));
                }
            }
            if merges.is_empty() {
                return relabel(seg, &size);
            }
            for (p, s) in merges {
                size[seg[p] as usize] = 0;
                size[s as usize] += 1;
                seg[p] = s;
            }
        }
    }

    /// The row-by-row first scan and the candidate scans after it equal full scans, on random
    /// images of every band count up to 9 (the fixed and the run-time band loops), `u16` and
    /// `f32`, with nulls, both connectivities, with and without the lone-null quirk.
    #[test]
    fn single_pixel_elimination_equals_full_scans() {
        use crate::clump::clump_vec;
        let mut rng = crate::rng::SplitMix64::new(11);
        for case in 0..2000 {
            let rows = 1 + rng.below(30);
            let cols = 1 + rng.below(30);
            let bands = 1 + case % 9;
            let levels = 2 + rng.below(4);
            let data: Vec<u16> = (0..bands * rows * cols)
                .map(|_| rng.below(levels) as u16 * 1000)
                .collect();
            let four = case % 2 == 0;
            let compat = case % 3 == 0;
            // Clusters from the first band, null where it is 0.
            let classes: Vec<u32> = data[..rows * cols].iter().map(|&v| v as u32).collect();
            let (seg0, max_id) = clump_vec(classes, rows, cols, four);
            let floats: Vec<f32> = data.iter().map(|&v| v as f32 / 7.0).collect();
            let ints = Img {
                data: &data,
                bands,
                rows,
                cols,
            };
            let reals = Img {
                data: &floats,
                bands,
                rows,
                cols,
            };
            let (mut a, mut b) = (seg0.clone(), seg0.clone());
            let na = eliminate_single_pixels(&ints, &mut a, max_id, four, compat);
            let nb = single_pixels_by_full_scans(&ints, &mut b, max_id, four, compat);
            assert_eq!((na, &a), (nb, &b), "u16 case {case}: {rows}x{cols}x{bands}");
            let (mut a, mut b) = (seg0.clone(), seg0);
            let na = eliminate_single_pixels(&reals, &mut a, max_id, four, compat);
            let nb = single_pixels_by_full_scans(&reals, &mut b, max_id, four, compat);
            assert_eq!((na, &a), (nb, &b), "f32 case {case}: {rows}x{cols}x{bands}");
        }
    }

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
