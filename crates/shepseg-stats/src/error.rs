//! The statistics' error type.

/// What can go wrong computing statistics; each names the file, band or option at fault.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// A bad option value.
    #[error("{0}")]
    BadOption(String),
    /// The segmentation and the image do not line up, or a file is unusable.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Reading through GDAL failed.
    #[error(transparent)]
    Tiling(#[from] shepseg_tiling::TilingError),
    /// Writing the attribute table or an output failed.
    #[error(transparent)]
    Output(#[from] shepseg_stitch::StitchError),
    /// A GDAL call failed.
    #[error("{0}")]
    Gdal(String),
    /// The caller raised the request's cancel flag.
    #[error("cancelled")]
    Cancelled,
}

impl From<gdal::errors::GdalError> for StatsError {
    fn from(e: gdal::errors::GdalError) -> Self {
        StatsError::Gdal(e.to_string())
    }
}

/// A file-level error.
pub fn file_err(path: &std::path::Path, message: impl Into<String>) -> StatsError {
    StatsError::File {
        path: path.display().to_string(),
        message: message.into(),
    }
}
