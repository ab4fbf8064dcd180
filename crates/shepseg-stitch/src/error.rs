//! The stitch's error type.

/// Errors while stitching; each names the tile or output at fault.
#[derive(Debug, thiserror::Error)]
pub enum StitchError {
    /// A tile's segmentation has the wrong shape.
    #[error("tile ({col}, {row}): segmentation is {got:?} (rows, cols), expected {expected:?}")]
    TileShape {
        /// Grid column.
        col: usize,
        /// Grid row.
        row: usize,
        /// Expected (rows, cols).
        expected: (usize, usize),
        /// Received (rows, cols).
        got: (usize, usize),
    },
    /// More tiles pushed than the grid has.
    #[error("more tiles pushed than the grid has")]
    TooManyTiles,
    /// An overlap strip of an earlier tile is missing (tiles out of order).
    #[error("tile ({col}, {row}): the overlap of an earlier tile is missing")]
    MissingOverlap {
        /// Grid column.
        col: usize,
        /// Grid row.
        row: usize,
    },
    /// `finish` before every tile was pushed.
    #[error("stitch finished after {done} of {total} tiles")]
    Unfinished {
        /// Tiles stitched.
        done: usize,
        /// Tiles in the grid.
        total: usize,
    },
    /// The output could not be written.
    #[error("{0}")]
    Output(String),
}
