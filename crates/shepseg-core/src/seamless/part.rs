//! What one tile tells the join: where it lies ([`TileFrame`]) and its segment table
//! ([`TilePart`]).

use serde::{Deserialize, Serialize};

/// Pixels of context read on each side of a tile. Two is what the algorithm needs: whether a
/// pixel just outside the tile is a single pixel (a clump of one) depends on its own
/// neighbours, one pixel further out.
pub const HALO: usize = 2;

/// Where a tile lies in its raster: the raster's size and the tile's pixels (no overlap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileFrame {
    /// Rows of the whole raster.
    pub raster_rows: u64,
    /// Columns of the whole raster.
    pub raster_cols: u64,
    /// The tile's first row.
    pub row0: u64,
    /// The tile's first column.
    pub col0: u64,
    /// Rows in the tile.
    pub rows: u64,
    /// Columns in the tile.
    pub cols: u64,
}

impl TileFrame {
    /// The window to read for this tile, `(row, col, rows, cols)`: the tile and [`HALO`]
    /// pixels around it, cut at the raster's edges (empty for a frame outside its raster).
    pub fn read_window(&self) -> (u64, u64, u64, u64) {
        let halo = HALO as u64;
        let r0 = self.row0.saturating_sub(halo);
        let c0 = self.col0.saturating_sub(halo);
        let r1 = self
            .row0
            .saturating_add(self.rows)
            .saturating_add(halo)
            .min(self.raster_rows);
        let c1 = self
            .col0
            .saturating_add(self.cols)
            .saturating_add(halo)
            .min(self.raster_cols);
        (r0, c0, r1.saturating_sub(r0), c1.saturating_sub(c0))
    }

    /// The raster-order index of the tile's pixel `(i, j)` in the whole raster.
    #[inline]
    pub fn pixel(&self, i: usize, j: usize) -> u64 {
        (self.row0 + i as u64) * self.raster_cols + self.col0 + j as u64
    }

    /// Whether the frame lies inside its raster and holds at least one pixel.
    pub fn is_valid(&self) -> bool {
        self.rows > 0
            && self.cols > 0
            && self
                .row0
                .checked_add(self.rows)
                .is_some_and(|e| e <= self.raster_rows)
            && self
                .col0
                .checked_add(self.cols)
                .is_some_and(|e| e <= self.raster_cols)
            && self.raster_rows.checked_mul(self.raster_cols).is_some()
    }
}

/// Exact spectral sums ([`crate::Pixel::exact`]), `bands` per node: `i64` where the pixel
/// type's sums fit it ([`crate::Pixel::EXACT_FITS_I64`]), else `i128`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExactSums {
    /// Sums of 16-bit and smaller pixel types.
    I64(Vec<i64>),
    /// Sums of wider types.
    I128(Vec<i128>),
}

impl ExactSums {
    /// Number of sums.
    pub fn len(&self) -> usize {
        match self {
            ExactSums::I64(v) => v.len(),
            ExactSums::I128(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held.
    pub fn heap_bytes(&self) -> usize {
        match self {
            ExactSums::I64(v) => v.len() * 8,
            ExactSums::I128(v) => v.len() * 16,
        }
    }
}

/// A neighbour of a single pixel whose fate the tile cannot decide alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NbrRef {
    /// A single pixel (of this tile or the next), by raster index: it can take the pixel
    /// once it has itself joined a segment.
    Single(u64),
    /// A pixel of this tile's segment node (not a single pixel): it can take the pixel.
    Node(u32),
    /// A single pixel of this tile that the tile decided joins node `.0` in scan `.1`: it
    /// can take the pixel from the next scan on.
    Joined(u32, u32),
    /// A pixel just outside the tile (on the next tile's edge), not a single pixel, by
    /// raster index: it can take the pixel.
    Pixel(u64),
}

/// A single pixel in a run of single pixels that crosses the tile's edge. Where it goes can
/// depend on other tiles; the tile decides it when no path through them can reach it first
/// (`joined`), else the join decides it (`nbrs`). The tile sends its undecided pixels and
/// the decided ones on its edge, which the next tile's may neighbour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossingPixel {
    /// Its node in the tile's table: its own while undecided, the one it joined when decided.
    pub node: u32,
    /// Its raster index.
    pub pixel: u64,
    /// The scan it joined in, if the tile decided it.
    pub joined: Option<u32>,
    /// If undecided, its valid neighbours in the order single-pixel elimination looks at
    /// them, each with its spectral distance ([`crate::Pixel::dist_bits`]).
    pub nbrs: Vec<(NbrRef, i64)>,
}

/// One tile's segment table: its nodes (pieces of segments), how they touch, and what the join
/// needs at its edges. Serialised as [`PartWire`]: the same values with the ones that grow
/// with the node IDs or the pixel indices written as differences, which postcard's varints
/// then keep short.
///
/// Node IDs run from 1 (0 is null); per-node vectors have `nodes + 1` entries. A node is a
/// clump's part in the tile with the single pixels that joined it in the tile, or the single
/// pixels that joined a pixel of the next tile (an *external* node, [`TilePart::ext`]), or
/// one single pixel the join decides ([`TilePart::crossing`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "PartWire")]
pub struct TilePart {
    /// Where the tile lies.
    pub frame: TileFrame,
    /// Bands summed per node.
    pub bands: usize,
    /// What one unit of a sum is worth ([`crate::Pixel::EXACT_UNIT`]).
    pub unit: f64,
    /// Pixels per node.
    pub size: Vec<u32>,
    /// Exact spectral sums per node, `bands` each.
    pub sum: ExactSums,
    /// Each node's first pixel in raster order (raster index).
    pub first: Vec<u64>,
    /// The first pixel of the node's clump pixels (not counting single pixels that joined
    /// it), or `u64::MAX` for an external node: what orders segments for ties.
    pub key: Vec<u64>,
    /// The neighbouring nodes in the tile of each node smaller than the minimum segment size,
    /// `adj[adj_start[id]..adj_start[id + 1]]` (no repeats).
    pub adj_start: Vec<u32>,
    /// See [`TilePart::adj_start`].
    pub adj: Vec<u32>,
    /// The node of each pixel on the tile's top row, bottom row, left column and right column.
    pub edge_nodes: [Vec<u32>; 4],
    /// The cluster of each of those pixels (0: null).
    pub edge_clusters: [Vec<u32>; 4],
    /// External nodes and the raster index of the pixel (in the next tile) they joined.
    pub ext: Vec<(u32, u64)>,
    /// Single pixels for the join to decide.
    pub crossing: Vec<CrossingPixel>,
    /// Single pixels merged in the tile.
    pub singles_joined: u64,
}

impl TilePart {
    /// Nodes in the table.
    pub fn nodes(&self) -> usize {
        self.size.len().saturating_sub(1)
    }

    /// Bytes the table holds (its vectors' contents), for memory reports.
    pub fn heap_bytes(&self) -> usize {
        let edges: usize = self.edge_nodes.iter().map(|e| e.len() * 8).sum();
        let crossing: usize = self.crossing.iter().map(|c| 24 + c.nbrs.len() * 24).sum();
        self.size.len() * 4
            + self.sum.heap_bytes()
            + self.first.len() * 8
            + self.key.len() * 8
            + self.adj_start.len() * 4
            + self.adj.len() * 4
            + edges
            + self.ext.len() * 16
            + crossing
    }
}

/// [`TilePart`] as it travels and is stored: `first` as the difference from the previous
/// node's (nodes are numbered in the order of their first pixel), `key` as the difference from
/// the node's `first`, the neighbour lists as their lengths and each neighbour's difference from
/// its node. Differences wrap, so every value round-trips exactly; neighbour lists that do not
/// match their lengths are refused.
#[derive(Deserialize)]
struct PartWire {
    frame: TileFrame,
    bands: usize,
    unit: f64,
    size: Vec<u32>,
    sum: ExactSums,
    first: Vec<i64>,
    key: Vec<i64>,
    adj_len: Vec<u32>,
    adj: Vec<i32>,
    edge_nodes: [Vec<u32>; 4],
    edge_clusters: [Vec<u32>; 4],
    ext: Vec<(u32, u64)>,
    crossing: Vec<CrossingPixel>,
    singles_joined: u64,
}

/// [`PartWire`] borrowed from a [`TilePart`] being written (the same fields in the same order,
/// so the same encoding), so that writing a table copies only its differences.
#[derive(Serialize)]
struct PartWireRef<'a> {
    frame: TileFrame,
    bands: usize,
    unit: f64,
    size: &'a [u32],
    sum: &'a ExactSums,
    first: Vec<i64>,
    key: Vec<i64>,
    adj_len: Vec<u32>,
    adj: Vec<i32>,
    edge_nodes: &'a [Vec<u32>; 4],
    edge_clusters: &'a [Vec<u32>; 4],
    ext: &'a [(u32, u64)],
    crossing: &'a [CrossingPixel],
    singles_joined: u64,
}

impl<'a> From<&'a TilePart> for PartWireRef<'a> {
    fn from(p: &'a TilePart) -> Self {
        let mut prev = 0u64;
        let first = p
            .first
            .iter()
            .map(|&f| {
                let d = f.wrapping_sub(prev) as i64;
                prev = f;
                d
            })
            .collect();
        let key = p
            .key
            .iter()
            .zip(&p.first)
            .map(|(&k, &f)| k.wrapping_sub(f) as i64)
            .collect();
        let adj_len = p
            .adj_start
            .windows(2)
            .map(|w| w[1].wrapping_sub(w[0]))
            .collect();
        // Each list's entries less its owner, the node whose range holds them (entries outside
        // every range, in a malformed table, as they are).
        let mut adj: Vec<i32> = p.adj.iter().map(|&m| m as i32).collect();
        for (owner, range) in p.adj_start.windows(2).enumerate() {
            let (a, b) = (range[0] as usize, range[1] as usize);
            if a <= b && b <= adj.len() {
                for d in &mut adj[a..b] {
                    *d = d.wrapping_sub(owner as i32);
                }
            }
        }
        PartWireRef {
            frame: p.frame,
            bands: p.bands,
            unit: p.unit,
            size: &p.size,
            sum: &p.sum,
            first,
            key,
            adj_len,
            adj,
            edge_nodes: &p.edge_nodes,
            edge_clusters: &p.edge_clusters,
            ext: &p.ext,
            crossing: &p.crossing,
            singles_joined: p.singles_joined,
        }
    }
}

impl Serialize for TilePart {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PartWireRef::from(self).serialize(s)
    }
}

impl TryFrom<PartWire> for TilePart {
    type Error = String;
    fn try_from(w: PartWire) -> Result<Self, String> {
        // In place: the vectors of differences become the vectors of values.
        let mut prev = 0u64;
        let first: Vec<u64> = w
            .first
            .into_iter()
            .map(|d| {
                prev = prev.wrapping_add(d as u64);
                prev
            })
            .collect();
        if w.key.len() != first.len() {
            return Err("tile table: keys and first pixels differ in number".into());
        }
        let key = w
            .key
            .into_iter()
            .zip(&first)
            .map(|(d, &f)| f.wrapping_add(d as u64))
            .collect();
        let mut adj_start = Vec::with_capacity(w.adj_len.len() + 1);
        let mut at = 0u32;
        adj_start.push(0u32);
        for &len in &w.adj_len {
            at = at
                .checked_add(len)
                .ok_or("tile table: neighbour lists overflow")?;
            adj_start.push(at);
        }
        // The owners as the encoder saw them: only well-formed lists are accepted.
        if adj_start.windows(2).any(|p| p[0] > p[1])
            || adj_start.last().map(|&e| e as usize) != Some(w.adj.len())
        {
            return Err("tile table: neighbour lists do not match their lengths".into());
        }
        // In place, each difference becomes its neighbour, list by list.
        let mut adj = w.adj;
        for (owner, range) in adj_start.windows(2).enumerate() {
            for d in &mut adj[range[0] as usize..range[1] as usize] {
                *d = d.wrapping_add(owner as i32);
            }
        }
        let adj: Vec<u32> = adj.into_iter().map(|d| d as u32).collect();
        Ok(TilePart {
            frame: w.frame,
            bands: w.bands,
            unit: w.unit,
            size: w.size,
            sum: w.sum,
            first,
            key,
            adj_start,
            adj,
            edge_nodes: w.edge_nodes,
            edge_clusters: w.edge_clusters,
            ext: w.ext,
            crossing: w.crossing,
            singles_joined: w.singles_joined,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part() -> TilePart {
        TilePart {
            frame: TileFrame {
                raster_rows: 100,
                raster_cols: 100,
                row0: 10,
                col0: 20,
                rows: 5,
                cols: 5,
            },
            bands: 2,
            unit: 1.0,
            size: vec![0, 3, 1, 2, 4],
            sum: ExactSums::I64(vec![0, 0, 5, -7, 1, 2, 9, 9, i64::MIN, i64::MAX]),
            first: vec![u64::MAX, 1020, 1021, 1023, 1120],
            key: vec![u64::MAX, 1020, u64::MAX, 1024, 1121],
            adj_start: vec![0, 0, 2, 2, 5, 6],
            adj: vec![2, 4, 1, 2, 1, 3],
            edge_nodes: [vec![1, 1, 2], vec![4], vec![], vec![3, 3]],
            edge_clusters: [vec![7, 7, 8], vec![1], vec![], vec![2, 2]],
            ext: vec![(2, 1019)],
            crossing: vec![CrossingPixel {
                node: 2,
                pixel: 1021,
                joined: None,
                nbrs: vec![(NbrRef::Node(1), 5), (NbrRef::Pixel(1019), 9)],
            }],
            singles_joined: 3,
        }
    }

    /// What a reader decodes from `p` as written.
    fn as_read(p: &TilePart) -> PartWire {
        let r = PartWireRef::from(p);
        PartWire {
            frame: r.frame,
            bands: r.bands,
            unit: r.unit,
            size: r.size.to_vec(),
            sum: r.sum.clone(),
            first: r.first,
            key: r.key,
            adj_len: r.adj_len,
            adj: r.adj,
            edge_nodes: r.edge_nodes.clone(),
            edge_clusters: r.edge_clusters.clone(),
            ext: r.ext.to_vec(),
            crossing: r.crossing.to_vec(),
            singles_joined: r.singles_joined,
        }
    }

    #[test]
    fn a_table_travels_as_differences_and_comes_back_whole() {
        let p = part();
        let wire = as_read(&p);
        assert_eq!(wire.first[2], 1, "first pixels as differences");
        assert_eq!(wire.key[4], 1, "keys from their first pixels");
        assert_eq!(wire.adj, vec![1, 3, -2, -1, -2, -1]);
        assert_eq!(wire.adj_len, vec![0, 2, 0, 3, 1]);
        assert_eq!(TilePart::try_from(wire), Ok(p));
    }

    #[test]
    fn neighbour_lists_that_do_not_add_up_are_refused() {
        let mut wire = as_read(&part());
        wire.adj_len[1] += 1;
        assert!(TilePart::try_from(wire).is_err());
        let mut wire = as_read(&part());
        wire.key.pop();
        assert!(TilePart::try_from(wire).is_err());
    }
}
