//! The polygonizer's error type; each names the file, column or driver at fault.

use std::path::PathBuf;

/// What can go wrong polygonizing.
#[derive(Debug, thiserror::Error)]
pub enum PolygonizeError {
    /// The segment file cannot be polygonized as it is.
    #[error("{path}: {message}")]
    Segfile {
        /// The segment file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The simplification tolerance is not a positive number of map units.
    #[error("simplification tolerance {0}: must be a positive, finite number of map units")]
    Tolerance(f64),
    /// OUTPUT exists and may not be replaced.
    #[error("{0}: already exists")]
    Exists(PathBuf),
    /// No OGR driver of that name can create files.
    #[error("vector driver {driver}: {reason}")]
    Driver {
        /// The driver asked for (or guessed from the extension).
        driver: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A column asked for is not in the attribute table.
    #[error("{path}: no column {column} in its attribute table")]
    Column {
        /// The segment file.
        path: PathBuf,
        /// The missing column.
        column: String,
    },
    /// Writing the output failed.
    #[error("{path}: {message}")]
    Output {
        /// The output.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// Reading the segment file failed.
    #[error(transparent)]
    Read(#[from] shepseg_tiling::TilingError),
    /// The boundaries could not be assembled (a bug, or pixel counts that do not describe the
    /// image).
    #[error("{path}: {message}")]
    Assembly {
        /// The segment file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}
