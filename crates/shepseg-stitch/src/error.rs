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
    /// The output exists and may not be replaced.
    #[error("{}: already exists", .0.display())]
    Exists(std::path::PathBuf),
    /// The output driver is unknown or cannot create files.
    #[error("output driver {driver}: {reason}")]
    Driver {
        /// The driver asked for.
        driver: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A creation option GDAL does not take.
    #[error("creation option {option}: {reason}")]
    CreationOption {
        /// The option as given.
        option: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading the input or writing the attribute table failed.
    #[error(transparent)]
    Tiling(#[from] shepseg_tiling::TilingError),
    /// The output could not be written.
    #[error("{0}")]
    Output(String),
}
