//! Seamless tiled segmentation: the default mode's whole-image result, exactly, from tiles
//! segmented apart, with no overlap to recompute.
//!
//! Three steps, the first and last per tile and in parallel anywhere (threads, processes,
//! other machines), the middle one on the segment tables alone:
//!
//! 1. [`analyse_tile`]: read the tile with [`HALO`] pixels around it, predict, clump, and
//!    eliminate the single pixels whose run of single pixels lies in the tile; table the
//!    tile's pieces of segments (*nodes*: sizes, exact sums, first pixels, the neighbours of
//!    the small ones, the nodes on its edges), the single pixels that joined a pixel of the
//!    next tile, and the runs of single pixels that cross its edge ([`TilePart`]).
//! 2. [`join_tiles`]: a union-find over every tile's nodes joins clumps cut by tile edges (the
//!    same cluster on both sides) and the single pixels joined across edges; the crossing runs
//!    are eliminated as the whole image's scans would; then small-segment elimination runs on
//!    the segment graph, with the whole image's IDs (each segment's first clump pixel in
//!    raster order) and rules, and the survivors are numbered by their first pixel.
//! 3. [`relabel`]: each tile's nodes through the join's map, into final IDs.
//!
//! Every decision of the default mode depends on the image alone (see
//! [`crate::SegmentParams::pyshepseg_compat`]), so the result is the same partition *and* the
//! same IDs as [`crate::segment`] on the whole image, for any tiling: the crate's tests check it
//! on random images and tilings.

mod analyse;
mod join;
mod part;

pub use analyse::{analyse_tile, TileAnalysis};
pub use join::{join_tiles, Joined};
pub use part::{CrossingPixel, ExactSums, NbrRef, TileFrame, TilePart, HALO};

/// Relabels a tile's pixels (node IDs from [`analyse_tile`]) to final segment IDs through its
/// map from [`join_tiles`]. A label beyond the map becomes 0.
pub fn relabel(labels: &mut [u32], map: &[u32]) {
    for l in labels {
        *l = map.get(*l as usize).copied().unwrap_or(0);
    }
}
