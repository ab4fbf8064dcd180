//! # shepseg-stitch
//!
//! Stitching of independently segmented, overlapping tiles into one output raster whose
//! segment IDs are globally unique and contiguous (1..N, 0 = null), as pyshepseg's
//! `stitchTiles` does, without its defects (or with them, in compatibility mode, for exact
//! comparison). Tiles are consumed in row-major order as executors push them, so stitching runs
//! while other tiles are still being segmented; where the pixels go is a [`TileSink`].
//! [`Stitcher`] does everything in the calling thread; [`ParallelStitcher`] does the per-pixel
//! work on a pool, leaving only per-segment bookkeeping and the write serial; with the default
//! GTiff output even the write's compression runs on the pool (behind the [`TileSink`] seam:
//! [`GdalOutput`] writes its tiles raw through libtiff where it can).
//!
//! Dependencies point one way: `shepseg-core` <- `shepseg-tiling` <- `shepseg-stitch`.

#![deny(missing_docs)]

mod encode;
pub mod error;
pub mod mosaic;
pub mod output;
pub mod overview;
pub mod parallel;
mod rawtiff;
pub mod recode;
pub mod sink;
pub mod stitcher;
#[cfg(test)]
mod test_util;

pub use error::StitchError;
pub use mosaic::{is_mosaic, tiles_dir_for};
pub use output::{GdalOutput, OutputGeometry, OutputOptions, Unpublished};
pub use overview::{overview_levels, Overview, OverviewBlock};
pub use parallel::ParallelStitcher;
pub use sink::{BlockPrep, MemorySink, OutputBlock, TileSink};
pub use stitcher::{StitchReport, Stitcher};
