//! The tiling crate's error type.

use std::path::PathBuf;

use shepseg_core::CoreError;

use crate::raster::Window;

/// Errors reading rasters and preparing tiles; each names the file and band at fault.
#[derive(Debug, thiserror::Error)]
pub enum TilingError {
    /// GDAL could not open the file.
    #[error("{}: cannot open: {reason}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// GDAL's message.
        reason: String,
    },
    /// A band number outside 1..=count.
    #[error("{}: band {band} does not exist (the file has {count} bands)", path.display())]
    NoSuchBand {
        /// The file.
        path: PathBuf,
        /// The band asked for.
        band: usize,
        /// Bands in the file.
        count: usize,
    },
    /// Reading a band failed.
    #[error("{}: band {band}: read failed: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The band.
        band: usize,
        /// GDAL's message.
        reason: String,
    },
    /// The chosen bands have different pixel types.
    #[error("{}: band {band} is {band_type} but band {first_band} is {first_type}; all bands must share one type", path.display())]
    MixedTypes {
        /// The file.
        path: PathBuf,
        /// The band that differs.
        band: usize,
        /// Its type.
        band_type: String,
        /// The first band chosen.
        first_band: usize,
        /// Its type.
        first_type: String,
    },
    /// A pixel type shepseg does not segment.
    #[error("{}: band {band} is {band_type}; shepseg segments real-valued bands (Byte, signed Byte, UInt16, Int16, UInt32, Int32, UInt64, Int64, Float32, Float64), not complex ones", path.display())]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// The band.
        band: usize,
        /// Its type.
        band_type: String,
    },
    /// The chosen bands have different nodata values.
    #[error("{}: band {band} has nodata {} but band {first_band} has {}; give one null value for all bands", path.display(), nodata_text(*value), nodata_text(*first_value))]
    NullMismatch {
        /// The file.
        path: PathBuf,
        /// The band that differs.
        band: usize,
        /// Its nodata value.
        value: Option<f64>,
        /// The first band chosen.
        first_band: usize,
        /// Its nodata value.
        first_value: Option<f64>,
    },
    /// The null value does not fit the pixel type.
    #[error("null value {value} cannot be represented in pixel type {pixel_type}")]
    NullNotRepresentable {
        /// The null value.
        value: f64,
        /// The pixel type.
        pixel_type: &'static str,
    },
    /// A window reaching beyond the raster.
    #[error("{}: window {window:?} lies outside the {cols} x {rows} raster", path.display())]
    WindowOutside {
        /// The file.
        path: PathBuf,
        /// The window.
        window: Window,
        /// Raster columns.
        cols: usize,
        /// Raster rows.
        rows: usize,
    },
    /// The raster has no non-null pixel to fit clusters on.
    #[error("{}: no non-null pixels to fit the k-means clusters on", path.display())]
    NoValidPixels {
        /// The file.
        path: PathBuf,
    },
    /// Tile size and overlap that make no grid.
    #[error("{0}")]
    TileGrid(String),

    /// A file could not be written.
    #[error("{}: cannot write: {reason}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What GDAL or the system said.
        reason: String,
    },
    /// Reading or writing a raster attribute table failed.
    #[error("attribute table: {0}")]
    Table(String),
    /// A k-means sample percentage outside (0, 100].
    #[error("the k-means sample percentage must be in (0, 100], got {0}")]
    SubsamplePcnt(f64),
    /// The segmentation itself failed.
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// A band's nodata value as a user reads it: the number, or "none".
fn nodata_text(v: Option<f64>) -> String {
    v.map_or_else(|| "none".to_string(), |v| v.to_string())
}
