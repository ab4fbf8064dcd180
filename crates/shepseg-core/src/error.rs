//! The core's error type.

/// Everything that can go wrong in the in-memory segmentation. Each message names the parameter
/// or input at fault.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum CoreError {
    /// The image has zero rows, columns or bands.
    #[error("image is empty: {bands} bands x {rows} rows x {cols} columns")]
    EmptyImage {
        /// Bands in the image.
        bands: usize,
        /// Rows in the image.
        rows: usize,
        /// Columns in the image.
        cols: usize,
    },
    /// The image has more pixels than segment bookkeeping can index (2^32 - 1).
    #[error("image has {pixels} pixels, more than the in-memory limit of 4294967295; segment it in tiles")]
    ImageTooLarge {
        /// Pixels in the image.
        pixels: usize,
    },
    /// A parameter is out of range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// A k-means model is malformed or does not fit the image.
    #[error("invalid k-means model: {0}")]
    InvalidModel(String),
    /// The k-means sample has fewer pixels than clusters.
    #[error("k-means sample has {samples} pixels, fewer than the {clusters} clusters asked for")]
    TooFewSamples {
        /// Pixels in the sample.
        samples: usize,
        /// Clusters asked for.
        clusters: usize,
    },
}
