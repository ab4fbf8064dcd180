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
/// needs at its edges.
///
/// Node IDs run from 1 (0 is null); per-node vectors have `nodes + 1` entries. A node is a
/// clump's part in the tile with the single pixels that joined it in the tile, or the single
/// pixels that joined a pixel of the next tile (an *external* node, [`TilePart::ext`]), or
/// one single pixel the join decides ([`TilePart::crossing`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
