//! # shepseg-tiling
//!
//! The GDAL side of tiled segmentation: the tile grid (pyshepseg's `getTilesForFile`), the
//! whole-raster k-means sample, and reading a window of chosen bands into a `(bands, rows, cols)`
//! ndarray for `shepseg-core`. GDAL datasets are not `Sync`: open one per thread.
//!
//! This part: reading whole rasters and windows. The tile grid and sampling arrive with
//! the tiled-segmentation issue.
