//! One tile's share of a seamless segmentation: predict, clump, eliminate the single pixels
//! whose fate lies in the tile, and table the rest for the join.

use std::collections::HashMap;

use ndarray::ArrayView3;

use super::part::{CrossingPixel, ExactSums, NbrRef, TileFrame, TilePart, HALO};
use crate::clump::{clump_sized, find};
use crate::eliminate::{for_each_neighbour, ExactSum};
use crate::error::CoreError;
use crate::image::Img;
use crate::kmeans::KMeansModel;
use crate::mem::zeroed;
use crate::pixel::Pixel;
use crate::segment::SegmentParams;

/// A tile analysed: its pixels' node IDs and its table.
#[derive(Debug, Clone, PartialEq)]
pub struct TileAnalysis {
    /// The node of each pixel of the tile (row-major, `rows x cols` of its frame; 0 = null).
    pub labels: Vec<u32>,
    /// The tile's table for [`super::join_tiles`].
    pub part: TilePart,
}

/// A single pixel's state in the tile.
const NOT_SINGLE: u8 = 0;
/// A single pixel the tile decides, not yet joined.
const SINGLE: u8 = 1;
/// A single pixel that joined a segment.
const JOINED: u8 = 2;
/// A single pixel in a run that crosses the tile's edge: the join decides it.
const CROSSING: u8 = 3;

/// Where a single pixel goes: to the segment of a pixel of the tile, or of one just outside.
#[derive(Clone, Copy)]
enum Target {
    Tile(usize),
    Outside(u64),
}

/// The tile in a frame padded by [`HALO`] on every side: clusters (0 for null and for
/// pixels outside the raster) and the bands as read (the read window).
struct Padded<'a, T> {
    cl: Vec<u32>,
    /// Padded columns.
    pw: usize,
    /// Tile rows and columns.
    h: usize,
    w: usize,
    img: Img<'a, T>,
    /// Padded coordinates of the read window's first pixel.
    top: usize,
    left: usize,
    four: bool,
    frame: TileFrame,
}

impl<T: Pixel> Padded<'_, T> {
    /// Whether padded position `(pi, pj)` lies in the tile.
    #[inline]
    fn in_tile(&self, pi: usize, pj: usize) -> bool {
        (HALO..HALO + self.h).contains(&pi) && (HALO..HALO + self.w).contains(&pj)
    }

    /// Raster index of padded position `(pi, pj)` (which lies in the raster).
    #[inline]
    fn raster_index(&self, pi: usize, pj: usize) -> u64 {
        let r = self.frame.row0 + pi as u64 - HALO as u64;
        let c = self.frame.col0 + pj as u64 - HALO as u64;
        r * self.frame.raster_cols + c
    }

    /// Whether the valid pixel at padded `(pi, pj)` (in the tile or its first ring) has a
    /// neighbour of the same cluster, i.e. is not a single pixel.
    fn has_twin(&self, pi: usize, pj: usize) -> bool {
        let pw = self.pw;
        let p = pi * pw + pj;
        let c = self.cl[p];
        let mut twin = false;
        let rows = self.cl.len() / pw;
        for_each_neighbour(rows, pw, pi, pj, self.four, |q| {
            twin |= q != p && self.cl[q] == c;
        });
        twin
    }

    /// The single-pixel distance between two valid padded positions.
    #[inline]
    fn dist(&self, p: usize, q: usize) -> T::Dist {
        let pw = self.pw;
        let at = |x: usize| (x / pw - self.top, x % pw - self.left);
        let ((pi, pj), (qi, qj)) = (at(p), at(q));
        let (cols, n) = (self.img.cols, self.img.pixels());
        let (a, b) = (pi * cols + pj, qi * cols + qj);
        let mut d = T::DIST_ZERO;
        for band in 0..self.img.bands {
            let off = band * n;
            d = T::add_sq_diff(d, self.img.data[off + a], self.img.data[off + b]);
        }
        d
    }
}

/// Analyses one tile: `window` is the tile's [`TileFrame::read_window`] of the chosen bands,
/// `model` the job's k-means model. Returns the node of each tile pixel and the tile's table.
///
/// The pixels are predicted and clumped as the whole image would be; single pixels (clumps of
/// one, which the halo tells apart at the tile's edge) are eliminated as the whole image's
/// scans would, where every pixel of their run lies in the tile; the rest go to the join.
pub fn analyse_tile<T: Pixel>(
    window: &ArrayView3<T>,
    frame: TileFrame,
    null: Option<T>,
    params: &SegmentParams,
    model: &KMeansModel,
) -> Result<TileAnalysis, CoreError> {
    params.validate()?;
    let (r0, c0, rh, rw) = frame.read_window();
    let (bands, wr, wc) = window.dim();
    if !frame.is_valid() || (wr as u64, wc as u64) != (rh, rw) || bands == 0 {
        return Err(CoreError::InvalidParameter(format!(
            "tile window of {bands} x {wr} x {wc} does not match its frame {frame:?}"
        )));
    }
    if model.num_bands() != bands {
        return Err(CoreError::InvalidModel(format!(
            "model has {} bands, image has {bands}",
            model.num_bands()
        )));
    }
    let (h, w) = (frame.rows as usize, frame.cols as usize);
    if h.checked_mul(w).is_none_or(|n| n >= u32::MAX as usize) {
        return Err(CoreError::ImageTooLarge {
            pixels: h.saturating_mul(w),
        });
    }
    let standard = window.as_standard_layout();
    let img = Img::from_standard(&standard)?;
    let clusters = model.predictor().predict_image(&img, null);
    let (rh, rw) = (rh as usize, rw as usize);
    let top = HALO - (frame.row0 - r0) as usize;
    let left = HALO - (frame.col0 - c0) as usize;
    let (ph, pw) = (h + 2 * HALO, w + 2 * HALO);
    let mut cl = vec![0u32; ph * pw];
    for ri in 0..rh {
        let at = (ri + top) * pw + left;
        cl[at..at + rw].copy_from_slice(&clusters[ri * rw..(ri + 1) * rw]);
    }
    drop(clusters);
    let pad = Padded {
        cl,
        pw,
        h,
        w,
        img,
        top,
        left,
        four: params.four_connected,
        frame,
    };
    let mut buf = Vec::with_capacity(h * w);
    for i in 0..h {
        let at = (i + HALO) * pw + HALO;
        buf.extend_from_slice(&pad.cl[at..at + w]);
    }
    let (mut labels, clump_size) = clump_sized(buf, h, w, params.four_connected, false);
    let clump_labels = clump_size.len() as u32;

    let mut state = zeroed::<u8>(h * w);
    let singles = find_singles(&pad, &labels, &clump_size, &mut state);
    drop(clump_size);
    let (ext, next_label, joined, scan) =
        eliminate_local_singles(&pad, &mut labels, &mut state, &singles, clump_labels);
    let crossing = crossing_pixels(&pad, &labels, &state, &singles, &scan);
    drop((singles, scan));
    let part = table(
        &pad,
        &mut labels,
        &state,
        ext,
        crossing,
        next_label,
        params,
        joined,
    );
    Ok(TileAnalysis { labels, part })
}

/// The tile's single pixels (clumps of one pixel with no pixel of their cluster just outside
/// the tile either), in raster order, and for each: whether its run of single pixels crosses
/// the tile's edge (reaches a single pixel outside), and whether it is itself next to one.
struct Singles {
    pixels: Vec<u32>,
    crossing: Vec<bool>,
    entry: Vec<bool>,
    /// `index[p]`: position of pixel `p` in `pixels`, plus 1 (0: not a single pixel).
    index: Vec<u32>,
}

/// Finds the tile's single pixels and marks them in `state` ([`SINGLE`] or [`CROSSING`]).
fn find_singles<T: Pixel>(
    pad: &Padded<'_, T>,
    labels: &[u32],
    clump_size: &[u32],
    state: &mut [u8],
) -> Singles {
    let (h, w) = (pad.h, pad.w);
    let mut pixels = Vec::new();
    for (p, &l) in labels.iter().enumerate() {
        if l == 0 || clump_size[l as usize] != 1 {
            continue;
        }
        let (i, j) = (p / w, p % w);
        let edge = i == 0 || j == 0 || i + 1 == h || j + 1 == w;
        if edge && pad.has_twin(i + HALO, j + HALO) {
            continue;
        }
        pixels.push(p as u32);
    }
    // Runs of single pixels: a union-find over their positions in `pixels`.
    let mut index = zeroed::<u32>(h * w);
    for (k, &p) in pixels.iter().enumerate() {
        index[p as usize] = k as u32 + 1;
    }
    let mut parent: Vec<u32> = (0..pixels.len() as u32).collect();
    let mut entry = vec![false; pixels.len()];
    let pw = pad.pw;
    for (k, &p) in pixels.iter().enumerate() {
        let (i, j) = (p as usize / w, p as usize % w);
        let edge = i == 0 || j == 0 || i + 1 == h || j + 1 == w;
        let mut out_single = false;
        for_each_neighbour(h + 2 * HALO, pw, i + HALO, j + HALO, pad.four, |q| {
            let (qi, qj) = (q / pw, q % pw);
            if pad.in_tile(qi, qj) {
                let m = index[(qi - HALO) * w + qj - HALO];
                if m != 0 {
                    let (a, b) = (find(&mut parent, k as u32), find(&mut parent, m - 1));
                    parent[a.max(b) as usize] = a.min(b);
                }
            } else if edge && pad.cl[q] != 0 && !pad.has_twin(qi, qj) {
                out_single = true;
            }
        });
        entry[k] = out_single;
    }
    let mut crossing = entry.clone();
    for (k, &e) in entry.iter().enumerate() {
        let r = find(&mut parent, k as u32) as usize;
        crossing[r] |= e;
    }
    for (k, &p) in pixels.iter().enumerate() {
        let r = find(&mut parent, k as u32) as usize;
        crossing[k] = crossing[r];
        state[p as usize] = if crossing[k] { CROSSING } else { SINGLE };
    }
    Singles {
        pixels,
        crossing,
        entry,
        index,
    }
}

/// Single-pixel elimination as far as the tile can decide it, as the whole image's scans do
/// it: each scan, every single pixel takes the segment of its spectrally nearest neighbouring
/// pixel that is not (or no longer) a single pixel, decided from the previous scan's state.
/// Single pixels just outside the tile never qualify here (their scans are unknown); other
/// pixels there do, and single pixels that take one join an external node, one per pixel
/// taken.
///
/// A pixel of a crossing run is decided only when no path through other tiles could reach it
/// sooner: such a path enters the tile at a pixel next to a single pixel outside (an entry),
/// no sooner than scan 2, so it reaches a pixel `g` steps from the nearest entry no sooner than
/// scan `g + 2`. A pixel that joined by scan `g + 1` has its whole-image scan, and so its
/// choice, which only pixels decided sooner can win. The others are put back and left to the
/// join.
///
/// Returns the external nodes' labels and pixels, the next free label, the pixels joined and
/// the scan each single pixel joined in (`u32::MAX`: undecided).
fn eliminate_local_singles<T: Pixel>(
    pad: &Padded<'_, T>,
    labels: &mut [u32],
    state: &mut [u8],
    singles: &Singles,
    mut next_label: u32,
) -> (Vec<(u32, u64)>, u32, u64, Vec<u32>) {
    let (h, w, pw) = (pad.h, pad.w, pad.pw);
    let n = singles.pixels.len();
    let own: Vec<u32> = singles.pixels.iter().map(|&p| labels[p as usize]).collect();
    let mut scan = vec![u32::MAX; n];
    let mut candidates: Vec<u32> = (0..n as u32).collect();
    let mut ext: HashMap<u64, u32> = HashMap::new();
    let mut ext_list = Vec::new();
    let mut merges: Vec<(u32, Target)> = Vec::new();
    let mut round = 0u32;
    loop {
        round += 1;
        merges.clear();
        for &k in &candidates {
            let p = singles.pixels[k as usize] as usize;
            let entry = singles.entry[k as usize];
            let (i, j) = (p / w, p % w);
            let pp = (i + HALO) * pw + j + HALO;
            let mut min = T::DIST_UNSET;
            let mut best = None;
            for_each_neighbour(h + 2 * HALO, pw, i + HALO, j + HALO, pad.four, |q| {
                if q == pp || pad.cl[q] == 0 {
                    return;
                }
                let (qi, qj) = (q / pw, q % pw);
                let target = if pad.in_tile(qi, qj) {
                    let tq = (qi - HALO) * w + qj - HALO;
                    if state[tq] != NOT_SINGLE && state[tq] != JOINED {
                        return;
                    }
                    Target::Tile(tq)
                } else {
                    if entry && !pad.has_twin(qi, qj) {
                        return;
                    }
                    Target::Outside(pad.raster_index(qi, qj))
                };
                let d = pad.dist(pp, q);
                if min < T::DIST_ZERO || d < min {
                    min = d;
                    best = Some(target);
                }
            });
            if let Some(t) = best {
                merges.push((k, t));
            }
        }
        if merges.is_empty() {
            break;
        }
        for &(k, target) in &merges {
            let p = singles.pixels[k as usize] as usize;
            labels[p] = match target {
                Target::Tile(q) => labels[q],
                Target::Outside(g) => *ext.entry(g).or_insert_with(|| {
                    let l = next_label;
                    next_label += 1;
                    ext_list.push((l, g));
                    l
                }),
            };
            state[p] = JOINED;
            scan[k as usize] = round;
        }
        candidates.retain(|&k| scan[k as usize] == u32::MAX);
    }
    // Steps from the nearest entry, through the tile's single pixels of crossing runs.
    let mut steps = vec![u32::MAX; n];
    let mut queue = std::collections::VecDeque::new();
    for (k, (s, &e)) in steps.iter_mut().zip(&singles.entry).enumerate() {
        if e {
            *s = 0;
            queue.push_back(k);
        }
    }
    while let Some(k) = queue.pop_front() {
        let p = singles.pixels[k] as usize;
        let (i, j) = (p / w, p % w);
        for_each_neighbour(h, w, i, j, pad.four, |q| {
            let m = singles.index[q];
            if m != 0 && steps[m as usize - 1] == u32::MAX {
                steps[m as usize - 1] = steps[k] + 1;
                queue.push_back(m as usize - 1);
            }
        });
    }
    let mut joined = 0u64;
    for k in 0..n {
        if scan[k] == u32::MAX {
            continue;
        }
        if !singles.crossing[k] || u64::from(scan[k]) <= u64::from(steps[k]) + 1 {
            joined += 1;
        } else {
            let p = singles.pixels[k] as usize;
            labels[p] = own[k];
            state[p] = CROSSING;
            scan[k] = u32::MAX;
        }
    }
    (ext_list, next_label, joined, scan)
}

/// The records of the single pixels of crossing runs the join needs: the undecided ones, with
/// their valid neighbours in elimination order and distances, and the decided ones on the
/// tile's edge, with their scan. Nodes are labels for now.
fn crossing_pixels<T: Pixel>(
    pad: &Padded<'_, T>,
    labels: &[u32],
    state: &[u8],
    singles: &Singles,
    scan: &[u32],
) -> Vec<CrossingPixel> {
    let (h, w, pw) = (pad.h, pad.w, pad.pw);
    let mut out = Vec::new();
    for (k, &p) in singles.pixels.iter().enumerate() {
        if !singles.crossing[k] {
            continue;
        }
        let (i, j) = (p as usize / w, p as usize % w);
        let pixel = pad.frame.pixel(i, j);
        if scan[k] != u32::MAX {
            if i == 0 || j == 0 || i + 1 == h || j + 1 == w {
                out.push(CrossingPixel {
                    node: labels[p as usize],
                    pixel,
                    joined: Some(scan[k]),
                    nbrs: Vec::new(),
                });
            }
            continue;
        }
        let pp = (i + HALO) * pw + j + HALO;
        let mut nbrs = Vec::new();
        for_each_neighbour(h + 2 * HALO, pw, i + HALO, j + HALO, pad.four, |q| {
            if q == pp || pad.cl[q] == 0 {
                return;
            }
            let (qi, qj) = (q / pw, q % pw);
            let r = if pad.in_tile(qi, qj) {
                let tq = (qi - HALO) * w + qj - HALO;
                match state[tq] {
                    NOT_SINGLE => NbrRef::Node(labels[tq]),
                    JOINED => {
                        let m = singles.index[tq] as usize - 1;
                        NbrRef::Joined(labels[tq], scan[m])
                    }
                    _ => NbrRef::Single(pad.raster_index(qi, qj)),
                }
            } else if pad.has_twin(qi, qj) {
                NbrRef::Pixel(pad.raster_index(qi, qj))
            } else {
                NbrRef::Single(pad.raster_index(qi, qj))
            };
            nbrs.push((r, T::dist_bits(pad.dist(pp, q))));
        });
        out.push(CrossingPixel {
            node: labels[p as usize],
            pixel,
            joined: None,
            nbrs,
        });
    }
    out
}

/// Numbers the tile's nodes 1..n in label order (relabelling `labels`) and tables them:
/// sizes, sums, first pixels, keys, neighbours of the small ones, edges.
#[allow(clippy::too_many_arguments)]
fn table<T: Pixel>(
    pad: &Padded<'_, T>,
    labels: &mut [u32],
    state: &[u8],
    ext: Vec<(u32, u64)>,
    mut crossing: Vec<CrossingPixel>,
    next_label: u32,
    params: &SegmentParams,
    singles_joined: u64,
) -> TilePart {
    let (h, w) = (pad.h, pad.w);
    let frame = pad.frame;
    // Nodes are numbered as their first pixel is met, so each one's first pixel is where it
    // is created.
    let mut map = zeroed::<u32>(next_label as usize);
    // At most one node per label: room for all, so the vectors never grow by copying.
    let cap = next_label as usize;
    let mut size = Vec::with_capacity(cap);
    let mut first = Vec::with_capacity(cap);
    let mut key = Vec::with_capacity(cap);
    size.push(0u32);
    first.push(u64::MAX);
    key.push(u64::MAX);
    for i in 0..h {
        let row = &mut labels[i * w..(i + 1) * w];
        let st = &state[i * w..(i + 1) * w];
        for (j, (l, &s)) in row.iter_mut().zip(st).enumerate() {
            if *l == 0 {
                continue;
            }
            let mut nd = map[*l as usize] as usize;
            if nd == 0 {
                nd = size.len();
                map[*l as usize] = nd as u32;
                size.push(0);
                first.push(frame.pixel(i, j));
                key.push(u64::MAX);
            }
            *l = nd as u32;
            size[nd] += 1;
            if s != JOINED && key[nd] == u64::MAX {
                key[nd] = frame.pixel(i, j);
            }
        }
    }
    let nodes = size.len();
    let sum = if T::EXACT_FITS_I64 {
        ExactSums::I64(node_sums(pad, labels, nodes))
    } else {
        ExactSums::I128(node_sums(pad, labels, nodes))
    };
    let (adj_start, adj) = small_node_lists(labels, h, w, params, &size);
    let edge_nodes = [
        labels[..w].to_vec(),
        labels[(h - 1) * w..].to_vec(),
        (0..h).map(|i| labels[i * w]).collect(),
        (0..h).map(|i| labels[i * w + w - 1]).collect(),
    ];
    let pw = pad.pw;
    let cl = |i: usize, j: usize| pad.cl[(i + HALO) * pw + j + HALO];
    let edge_clusters = [
        (0..w).map(|j| cl(0, j)).collect(),
        (0..w).map(|j| cl(h - 1, j)).collect(),
        (0..h).map(|i| cl(i, 0)).collect(),
        (0..h).map(|i| cl(i, w - 1)).collect(),
    ];
    for c in &mut crossing {
        c.node = map[c.node as usize];
        for (r, _) in &mut c.nbrs {
            if let NbrRef::Node(l) | NbrRef::Joined(l, _) = r {
                *l = map[*l as usize];
            }
        }
    }
    TilePart {
        frame,
        bands: pad.img.bands,
        unit: T::EXACT_UNIT,
        size,
        sum,
        first,
        key,
        adj_start,
        adj,
        edge_nodes,
        edge_clusters,
        // External nodes whose pixels were all put back for the join are empty: dropped.
        ext: ext
            .into_iter()
            .map(|(l, g)| (map[l as usize], g))
            .filter(|&(node, _)| node != 0)
            .collect(),
        crossing,
        singles_joined,
    }
}

/// Each node's exact sums (`bands` per node), band by band, a run of one node added in a
/// register.
fn node_sums<T: Pixel, A: ExactSum>(pad: &Padded<'_, T>, labels: &[u32], nodes: usize) -> Vec<A> {
    let (h, w) = (pad.h, pad.w);
    let bands = pad.img.bands;
    let mut sum = vec![A::default(); nodes * bands];
    let (cols, npix) = (pad.img.cols, pad.img.pixels());
    for b in 0..bands {
        for i in 0..h {
            let at = b * npix + (i + HALO - pad.top) * cols + HALO - pad.left;
            let data = &pad.img.data[at..at + w];
            let row = &labels[i * w..(i + 1) * w];
            let (mut cur, mut acc) = (0u32, A::default());
            for (&l, &v) in row.iter().zip(data) {
                if l != cur {
                    if cur != 0 {
                        let at = cur as usize * bands + b;
                        sum[at] = sum[at] + acc;
                    }
                    cur = l;
                    acc = A::default();
                }
                acc = acc + A::of(v.exact());
            }
            if cur != 0 {
                let at = cur as usize * bands + b;
                sum[at] = sum[at] + acc;
            }
        }
    }
    sum
}

/// The neighbouring nodes, in the tile, of each node smaller than the minimum segment size
/// (the nodes of a segment smaller than that are all smaller than that too). Each list is
/// filled within a bound (a node's pixels have at most 4 or 8 neighbours each), then
/// compacted with its repeats dropped.
fn small_node_lists(
    labels: &[u32],
    h: usize,
    w: usize,
    params: &SegmentParams,
    size: &[u32],
) -> (Vec<u32>, Vec<u32>) {
    let min = params.min_segment_size.min(u32::MAX as usize) as u32;
    let per_pixel = if params.four_connected { 4 } else { 8 };
    let nodes = size.len();
    let mut start = zeroed::<usize>(nodes + 1);
    for id in 1..nodes {
        let cap = if size[id] < min {
            size[id] as usize * per_pixel
        } else {
            0
        };
        start[id + 1] = start[id] + cap;
    }
    let mut raw = zeroed::<u32>(start[nodes]);
    let mut len = zeroed::<u32>(nodes);
    let small = |n: u32| n != 0 && size[n as usize] < min;
    let mut push = |a: u32, b: u32, raw: &mut [u32]| {
        let k = start[a as usize] + len[a as usize] as usize;
        raw[k] = b;
        len[a as usize] += 1;
    };
    // Each pair of neighbouring pixels once (the neighbours after a pixel in raster order),
    // listed both ways.
    for i in 0..h {
        for j in 0..w {
            let a = labels[i * w + j];
            if a == 0 {
                continue;
            }
            let mut pair = |q: usize, raw: &mut [u32]| {
                let b = labels[q];
                if b != 0 && b != a {
                    if small(a) {
                        push(a, b, raw);
                    }
                    if small(b) {
                        push(b, a, raw);
                    }
                }
            };
            if j + 1 < w {
                pair(i * w + j + 1, &mut raw);
            }
            if i + 1 < h {
                let down = (i + 1) * w + j;
                pair(down, &mut raw);
                if !params.four_connected {
                    if j > 0 {
                        pair(down - 1, &mut raw);
                    }
                    if j + 1 < w {
                        pair(down + 1, &mut raw);
                    }
                }
            }
        }
    }
    let mut seen = zeroed::<u32>(nodes);
    let mut adj_start = Vec::with_capacity(nodes + 1);
    // Node 0 has no list: it starts and ends at 0.
    adj_start.extend([0u32, 0]);
    let mut end = 0usize;
    for id in 1..nodes {
        for r in start[id]..start[id] + len[id] as usize {
            let b = raw[r];
            if seen[b as usize] != id as u32 {
                seen[b as usize] = id as u32;
                raw[end] = b;
                end += 1;
            }
        }
        adj_start.push(end as u32);
    }
    raw.truncate(end);
    raw.shrink_to_fit();
    (adj_start, raw)
}
