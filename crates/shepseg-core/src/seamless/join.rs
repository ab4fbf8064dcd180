//! The join: tile tables into the whole image's segments, by a union-find over the tiles'
//! nodes, then small-segment elimination on the segment graph and the final numbering.

use std::collections::HashMap;

use super::part::{ExactSums, NbrRef, TilePart};
use crate::clump::find;
use crate::eliminate::{eliminate_small_graph, SegmentGraph};
use crate::error::CoreError;
use crate::mem::{identity, zeroed};
use crate::par::{par_join, par_map, par_sort_by_key, with_threads};

/// What the join decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    /// For each part (in the order given), the final segment ID of each of its nodes (index
    /// 0, null, maps to 0): relabel the tile's pixels through it ([`super::relabel`]).
    pub maps: Vec<Vec<u32>>,
    /// Segments in the result (IDs 1..=N).
    pub num_segments: u32,
    /// Pixels per final ID (index 0: 0).
    pub histogram: Vec<u64>,
    /// Single pixels merged into a neighbouring segment.
    pub singles_joined: u64,
    /// Small segments merged away.
    pub small_merged: usize,
}

/// Where the tiles lie: the distinct first rows and columns, and which part is at each.
struct Layout {
    row_starts: Vec<u64>,
    col_starts: Vec<u64>,
    /// `cell[r * ncols + c]`: the part at grid row `r`, column `c`.
    cell: Vec<usize>,
    cols: u64,
}

impl Layout {
    /// The grid the parts form; an error unless they tile one raster exactly.
    fn of(parts: &[TilePart]) -> Result<Self, CoreError> {
        let bad = |m: &str| Err(CoreError::InvalidParameter(format!("tile parts: {m}")));
        let Some(p0) = parts.first() else {
            return bad("none given");
        };
        let (rows, cols) = (p0.frame.raster_rows, p0.frame.raster_cols);
        let mut row_starts: Vec<u64> = parts.iter().map(|p| p.frame.row0).collect();
        let mut col_starts: Vec<u64> = parts.iter().map(|p| p.frame.col0).collect();
        row_starts.sort_unstable();
        row_starts.dedup();
        col_starts.sort_unstable();
        col_starts.dedup();
        let (nr, nc) = (row_starts.len(), col_starts.len());
        if nr * nc != parts.len() {
            return bad("they do not form a grid");
        }
        let mut cell = vec![usize::MAX; nr * nc];
        for (k, p) in parts.iter().enumerate() {
            let f = p.frame;
            let r = row_starts.partition_point(|&s| s < f.row0);
            let c = col_starts.partition_point(|&s| s < f.col0);
            let row_end = row_starts.get(r + 1).copied().unwrap_or(rows);
            let col_end = col_starts.get(c + 1).copied().unwrap_or(cols);
            let fits = f.raster_rows == rows
                && f.raster_cols == cols
                && f.is_valid()
                && f.row0 + f.rows == row_end
                && f.col0 + f.cols == col_end
                && p.bands == p0.bands
                && p.size.len() == p.first.len()
                && p.size.len() == p.key.len()
                && p.sum.len() == p.size.len() * p.bands
                && p.adj_start.len() == p.size.len() + 1;
            if !fits || cell[r * nc + c] != usize::MAX {
                return bad(&format!(
                    "the tile at row {}, column {} does not fit",
                    f.row0, f.col0
                ));
            }
            cell[r * nc + c] = k;
        }
        if row_starts[0] != 0 || col_starts[0] != 0 {
            return bad("they do not start at the raster's corner");
        }
        Ok(Self {
            row_starts,
            col_starts,
            cell,
            cols,
        })
    }

    /// The part at grid row `r`, column `c`.
    fn at(&self, r: usize, c: usize) -> usize {
        self.cell[r * self.col_starts.len() + c]
    }
}

/// The tiles' nodes numbered as one: part `k`'s node `l` is `off[k] + l` (0 unused).
struct Nodes<'a> {
    parts: &'a [TilePart],
    off: Vec<u32>,
    layout: Layout,
}

impl Nodes<'_> {
    /// The node of the pixel with raster index `g`, which must lie on its tile's edge.
    fn at_pixel(&self, g: u64) -> Result<u32, CoreError> {
        let (y, x) = (g / self.layout.cols, g % self.layout.cols);
        let r = self.layout.row_starts.partition_point(|&s| s <= y) - 1;
        let c = self.layout.col_starts.partition_point(|&s| s <= x) - 1;
        let k = self.layout.at(r, c);
        let f = self.parts[k].frame;
        let (ly, lx) = ((y - f.row0) as usize, (x - f.col0) as usize);
        let e = &self.parts[k].edge_nodes;
        let local = if ly == 0 {
            e[0].get(lx)
        } else if ly as u64 + 1 == f.rows {
            e[1].get(lx)
        } else if lx == 0 {
            e[2].get(ly)
        } else if lx as u64 + 1 == f.cols {
            e[3].get(ly)
        } else {
            None
        };
        match local {
            Some(&l) if l != 0 => Ok(self.off[k] + l),
            _ => Err(CoreError::InvalidParameter(format!(
                "tile parts: pixel {g} is not on a tile's edge, or is null"
            ))),
        }
    }
}

/// Joins the tables of every tile of one raster (any order) into its segmentation: the
/// default mode's whole-image result, whatever the tiles. `min_segment_size`, `threshold_sq`
/// (maxSpectralDiff squared) and `four` are the job's; the steps that split over segments or
/// tiles run on `threads` threads (the result does not depend on how many).
pub fn join_tiles(
    parts: Vec<TilePart>,
    min_segment_size: usize,
    threshold_sq: f64,
    four: bool,
    threads: usize,
) -> Result<Joined, CoreError> {
    with_threads(threads, move || {
        join(parts, min_segment_size, threshold_sq, four)
    })
}

/// [`join_tiles`] on the enclosing pool.
fn join(
    mut parts: Vec<TilePart>,
    min_segment_size: usize,
    threshold_sq: f64,
    four: bool,
) -> Result<Joined, CoreError> {
    let layout = Layout::of(&parts)?;
    let mut off = Vec::with_capacity(parts.len());
    let mut total = 0u64;
    for p in &parts {
        off.push(total as u32);
        total += p.nodes() as u64;
        if total >= u32::MAX as u64 {
            return Err(CoreError::InvalidParameter(
                "tile parts: more than 4294967294 segment pieces in all; use larger tiles".into(),
            ));
        }
    }
    let nodes = Nodes {
        parts: &parts,
        off,
        layout,
    };
    let mut parent = identity(total as usize + 1);
    let mut seam_pairs: Vec<(u32, u32)> = Vec::new();
    seams(&nodes, four, &mut parent, &mut seam_pairs);
    for (k, p) in parts.iter().enumerate() {
        for &(l, g) in &p.ext {
            let target = nodes.at_pixel(g)?;
            union(&mut parent, nodes.off[k] + l, target);
        }
    }
    let crossing_joined = crossing_singles(&nodes, &mut parent)?;
    let singles_joined =
        parts.iter().map(|p| p.singles_joined).sum::<u64>() + crossing_joined.len() as u64;
    // The key of a single pixel that joined a segment does not count towards its order.
    let mut voided = vec![false; parent.len()];
    for &v in &crossing_joined {
        voided[v as usize] = true;
    }
    drop(crossing_joined);
    let Nodes { off, .. } = nodes;

    // Segments: one per union-find root (`slot`), ordered by key (the first pixel of its
    // clumps): IDs 1..n.
    for v in 0..parent.len() as u32 {
        parent[v as usize] = find(&mut parent, v);
    }
    let mut slot = zeroed::<u32>(parent.len());
    let mut count = 0u32;
    for &r in &parent[1..] {
        let r = r as usize;
        if slot[r] == 0 {
            count += 1;
            slot[r] = count;
        }
    }
    let n = count as usize + 1;
    let mut key = vec![u64::MAX; n];
    for (k, p) in parts.iter().enumerate() {
        let off = off[k] as usize;
        for (l, &node_key) in p.key.iter().enumerate().skip(1) {
            if !voided[off + l] {
                let s = slot[parent[off + l] as usize] as usize;
                key[s] = key[s].min(node_key);
            }
        }
    }
    drop(voided);
    let mut order: Vec<u32> = (1..n as u32).collect();
    par_sort_by_key(&mut order, |&s| key[s as usize]);
    if order.last().is_some_and(|&s| key[s as usize] == u64::MAX) {
        return Err(CoreError::InvalidParameter(
            "tile parts: a segment has no clump pixel".into(),
        ));
    }
    drop(key);
    let mut id_of = zeroed::<u32>(n);
    for (rank, &s) in order.iter().enumerate() {
        id_of[s as usize] = rank as u32 + 1;
    }
    drop(order);
    // From here on `parent[v]` is node `v`'s segment ID.
    for v in parent.iter_mut() {
        *v = id_of[slot[*v as usize] as usize];
    }
    drop((slot, id_of));

    // Sizes and first pixels by ID, and beside them the sums, each tile's freed once added.
    let bands = parts[0].bands;
    let tile_sums: Vec<ExactSums> = parts
        .iter_mut()
        .map(|p| std::mem::replace(&mut p.sum, ExactSums::I64(Vec::new())))
        .collect();
    let ids_of = |k: usize| &parent[off[k] as usize..off[k] as usize + parts[k].size.len()];
    let ((size, first), sum) = par_join(
        || {
            let mut size = zeroed::<u64>(n);
            let mut first = vec![u64::MAX; n];
            for (k, p) in parts.iter().enumerate() {
                for (l, &id) in ids_of(k).iter().enumerate().skip(1) {
                    let id = id as usize;
                    size[id] += u64::from(p.size[l]);
                    first[id] = first[id].min(p.first[l]);
                }
            }
            (size, first)
        },
        || {
            let mut sum = match tile_sums.first() {
                Some(ExactSums::I128(_)) => ExactSums::I128(zeroed(n * bands)),
                _ => ExactSums::I64(zeroed(n * bands)),
            };
            for (k, from) in tile_sums.into_iter().enumerate() {
                match (&mut sum, from) {
                    (ExactSums::I64(to), ExactSums::I64(from)) => {
                        add_sums(to, &from, ids_of(k), bands)
                    }
                    (ExactSums::I128(to), ExactSums::I128(from)) => {
                        add_sums(to, &from, ids_of(k), bands)
                    }
                    _ => {
                        return Err(CoreError::InvalidParameter(
                            "tile parts: sums of different widths".into(),
                        ))
                    }
                }
            }
            Ok(sum)
        },
    );
    let sum = sum?;
    for p in parts.iter_mut() {
        p.first = Vec::new();
        p.key = Vec::new();
    }
    let mut g_size = zeroed::<u32>(n);
    for (g, &s) in g_size.iter_mut().zip(&size) {
        *g = u32::try_from(s).map_err(|_| {
            CoreError::InvalidParameter(
                "a segment has more than 4294967295 pixels, more than elimination can count".into(),
            )
        })?;
    }
    drop(size);

    // The small segments' neighbours, by ID: the tiles' lists and the seams, each list
    // filled within its bound, then compacted with repeats dropped.
    let min = min_segment_size.min(u32::MAX as usize) as u32;
    let small = |id: u32| g_size[id as usize] < min;
    let mut start = zeroed::<usize>(n + 1);
    for (k, p) in parts.iter().enumerate() {
        let off = off[k] as usize;
        for l in 1..p.size.len() {
            let len = (p.adj_start[l + 1] - p.adj_start[l]) as usize;
            let s = parent[off + l];
            if len > 0 && small(s) {
                start[s as usize + 1] += len;
            }
        }
    }
    for &(a, b) in &seam_pairs {
        let (s, t) = (parent[a as usize], parent[b as usize]);
        if s != t {
            start[s as usize + 1] += usize::from(small(s));
            start[t as usize + 1] += usize::from(small(t));
        }
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut adj = zeroed::<u32>(start[n]);
    let mut fill = start.clone();
    for (k, p) in parts.iter_mut().enumerate() {
        let off = off[k] as usize;
        for l in 1..p.size.len() {
            let (a, b) = (p.adj_start[l] as usize, p.adj_start[l + 1] as usize);
            let s = parent[off + l];
            if a == b || !small(s) {
                continue;
            }
            for &m in &p.adj[a..b] {
                adj[fill[s as usize]] = parent[off + m as usize];
                fill[s as usize] += 1;
            }
        }
        p.adj = Vec::new();
        p.adj_start = Vec::new();
    }
    for &(a, b) in &seam_pairs {
        let (s, t) = (parent[a as usize], parent[b as usize]);
        if s != t {
            for (x, y) in [(s, t), (t, s)] {
                if small(x) {
                    adj[fill[x as usize]] = y;
                    fill[x as usize] += 1;
                }
            }
        }
    }
    drop(seam_pairs);
    let mut seen = zeroed::<u32>(n);
    let mut end = 0usize;
    for id in 1..n {
        let (a, b) = (start[id], fill[id]);
        start[id] = end;
        for r in a..b {
            let m = adj[r];
            if m != id as u32 && seen[m as usize] != id as u32 {
                seen[m as usize] = id as u32;
                adj[end] = m;
                end += 1;
            }
        }
    }
    start[n] = end;
    adj.truncate(end);
    drop((fill, seen));
    let graph = SegmentGraph {
        size: g_size.clone(),
        sum,
        unit: parts[0].unit,
        bands,
        start,
        adj,
    };
    let (small_merged, roots) = eliminate_small_graph(graph, min_segment_size, threshold_sq);

    // Final IDs: survivors in the order of their first pixel.
    let mut surv_first = vec![u64::MAX; n];
    let mut surv_size = zeroed::<u64>(n);
    for id in 1..n {
        let r = roots[id] as usize;
        surv_first[r] = surv_first[r].min(first[id]);
        surv_size[r] += u64::from(g_size[id]);
    }
    let mut survivors: Vec<u32> = (1..n as u32)
        .filter(|&id| roots[id as usize] == id)
        .collect();
    survivors.sort_unstable_by_key(|&r| surv_first[r as usize]);
    let mut final_id = zeroed::<u32>(n);
    let mut histogram = vec![0u64; survivors.len() + 1];
    for (rank, &r) in survivors.iter().enumerate() {
        final_id[r as usize] = rank as u32 + 1;
        histogram[rank + 1] = surv_size[r as usize];
    }
    let maps = par_map(parts.iter().enumerate().collect(), |(k, p)| {
        let mut m = zeroed::<u32>(p.size.len());
        for (l, slot_m) in m.iter_mut().enumerate().skip(1) {
            let id = parent[off[k] as usize + l];
            *slot_m = final_id[roots[id as usize] as usize];
        }
        m
    });
    Ok(Joined {
        maps,
        num_segments: survivors.len() as u32,
        histogram,
        singles_joined,
        small_merged,
    })
}

/// Adds each node's sums (`from`, `bands` per node) to its segment's (`ids[node]`).
fn add_sums<S: Copy + std::ops::AddAssign>(to: &mut [S], from: &[S], ids: &[u32], bands: usize) {
    for (l, &id) in ids.iter().enumerate().skip(1) {
        let id = id as usize;
        for b in 0..bands {
            to[id * bands + b] += from[l * bands + b];
        }
    }
}

/// Unites the sets of `a` and `b`.
fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        parent[ra.max(rb) as usize] = ra.min(rb);
    }
}

/// Walks every tile border: pixels of one cluster on both sides join their clumps; pixels of
/// different clusters make their nodes neighbours (`pairs`).
fn seams(nodes: &Nodes<'_>, four: bool, parent: &mut [u32], pairs: &mut Vec<(u32, u32)>) {
    let l = &nodes.layout;
    let (nr, nc) = (l.row_starts.len(), l.col_starts.len());
    let line =
        |ks: &mut dyn Iterator<Item = usize>, side: usize| -> (Vec<u32>, Vec<u32>) {
            let (mut ids, mut cls) = (Vec::new(), Vec::new());
            for k in ks {
                let p = &nodes.parts[k];
                ids.extend(p.edge_nodes[side].iter().map(|&v| {
                    if v == 0 {
                        0
                    } else {
                        nodes.off[k] + v
                    }
                }));
                cls.extend_from_slice(&p.edge_clusters[side]);
            }
            (ids, cls)
        };
    let mut walk = |(ai, ac): &(Vec<u32>, Vec<u32>), (bi, bc): &(Vec<u32>, Vec<u32>)| {
        let len = ai.len();
        for x in 0..len {
            let lo = if four { x } else { x.saturating_sub(1) };
            let hi = if four { x } else { (x + 1).min(len - 1) };
            for y in lo..=hi {
                let (ca, cb) = (ac[x], bc[y]);
                if ca == 0 || cb == 0 {
                    continue;
                }
                if ca == cb {
                    union(parent, ai[x], bi[y]);
                } else {
                    pairs.push((ai[x], bi[y]));
                }
            }
        }
    };
    for r in 1..nr {
        let above = line(&mut (0..nc).map(|c| l.at(r - 1, c)), 1);
        let below = line(&mut (0..nc).map(|c| l.at(r, c)), 0);
        walk(&above, &below);
    }
    for c in 1..nc {
        let left = line(&mut (0..nr).map(|r| l.at(r, c - 1)), 3);
        let right = line(&mut (0..nr).map(|r| l.at(r, c)), 2);
        walk(&left, &right);
    }
    pairs.sort_unstable();
    pairs.dedup();
}

/// A crossing single pixel's neighbour, resolved: an undecided single pixel (by position in
/// the list), a single pixel a tile decided (its node and scan), or a node that can take it.
#[derive(Clone, Copy)]
enum Resolved {
    Undecided(usize),
    Decided(u32, u32),
    Source(u32),
}

/// Single-pixel elimination of the pixels of crossing runs the tiles left undecided, as the
/// whole image's scans do it: in scan `k`, every such pixel not yet joined takes its
/// spectrally nearest neighbour that is not a single pixel, or joined before scan `k` (ties
/// to the first in elimination order). Returns the nodes of the pixels that joined.
fn crossing_singles(nodes: &Nodes<'_>, parent: &mut [u32]) -> Result<Vec<u32>, CoreError> {
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut records = Vec::new();
    for (k, p) in nodes.parts.iter().enumerate() {
        for c in &p.crossing {
            index.insert(c.pixel, records.len());
            records.push((nodes.off[k] + c.node, c));
        }
    }
    // The undecided pixels: their node and resolved neighbours.
    let mut undecided: Vec<(u32, Vec<(Resolved, i64)>)> = Vec::new();
    let mut position = vec![usize::MAX; records.len()];
    for (i, (node, c)) in records.iter().enumerate() {
        if c.joined.is_none() {
            position[i] = undecided.len();
            undecided.push((*node, Vec::new()));
        }
    }
    let mut last_decided = 0u32;
    for (k, p) in nodes.parts.iter().enumerate() {
        for c in p.crossing.iter().filter(|c| c.joined.is_none()) {
            let mut list = Vec::with_capacity(c.nbrs.len());
            for &(r, d) in &c.nbrs {
                let res = match r {
                    NbrRef::Single(g) => {
                        let i = *index.get(&g).ok_or_else(|| {
                            CoreError::InvalidParameter(format!(
                                "tile parts: single pixel {g} is not in any tile's table"
                            ))
                        })?;
                        match records[i].1.joined {
                            Some(scan) => Resolved::Decided(records[i].0, scan),
                            None => Resolved::Undecided(position[i]),
                        }
                    }
                    NbrRef::Node(l) => Resolved::Source(nodes.off[k] + l),
                    NbrRef::Joined(l, scan) => Resolved::Decided(nodes.off[k] + l, scan),
                    NbrRef::Pixel(g) => Resolved::Source(nodes.at_pixel(g)?),
                };
                if let Resolved::Decided(_, scan) = res {
                    last_decided = last_decided.max(scan);
                }
                list.push((res, d));
            }
            let i = index[&c.pixel];
            undecided[position[i]].1 = list;
        }
    }
    drop(records);
    let n = undecided.len();
    let mut joined_in = vec![u32::MAX; n];
    let mut candidates: Vec<usize> = (0..n).collect();
    let mut merges: Vec<(usize, u32)> = Vec::new();
    let mut scan = 0u32;
    while !candidates.is_empty() {
        scan += 1;
        merges.clear();
        for &i in &candidates {
            let (mut min, mut best) = (-1i64, None);
            for &(r, d) in &undecided[i].1 {
                let target = match r {
                    Resolved::Source(v) => v,
                    Resolved::Decided(v, s) if s < scan => v,
                    Resolved::Undecided(j) if joined_in[j] < scan => undecided[j].0,
                    _ => continue,
                };
                if min < 0 || d < min {
                    min = d;
                    best = Some(target);
                }
            }
            if let Some(t) = best {
                merges.push((i, t));
            }
        }
        // A scan with no merge ends the elimination, unless pixels the tiles decided have
        // yet to qualify.
        if merges.is_empty() && scan > last_decided {
            break;
        }
        for &(i, t) in &merges {
            union(parent, undecided[i].0, t);
            joined_in[i] = scan;
        }
        candidates.retain(|&i| joined_in[i] == u32::MAX);
    }
    Ok((0..n)
        .filter(|&i| joined_in[i] != u32::MAX)
        .map(|i| undecided[i].0)
        .collect())
}
