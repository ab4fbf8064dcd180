//! # shepseg-pipeline
//!
//! The whole tiled segmentation job as a library: pyshepseg's `doTiledShepherdSegmentation`,
//! from an input raster to a finished output raster with its attribute table. One k-means
//! model is fitted on a sample of the whole raster (or given), the raster is cut into tiles, a
//! [`TileExecutor`] segments them (threads, processes, Fargate tasks, ...), they are joined into
//! one raster of unique IDs, the output is finished
//! (attribute table, overviews, statistics metadata) and, if asked for, per-segment statistics
//! are computed into its table. [`TiledSegmentation::run`] returns a [`SegmentationReport`]:
//! segments, the model, timings per phase.
//!
//! In the default mode the tiles do not overlap: each tile's table goes to the seamless join
//! ([`shepseg_core::seamless`]) and the result equals the whole-image segmentation for any
//! tile size. With `pyshepseg_compat` the tiles overlap and are stitched as pyshepseg does.
//!
//! This crate composes the others; it holds no algorithm of its own. The executor is chosen by
//! the caller (the `shepseg` command line chooses it at run time), so this crate depends on the
//! [`TileExecutor`] trait only.
//!
//! ```no_run
//! use shepseg_exec_threads::ThreadsExecutor;
//! use shepseg_pipeline::TiledSegmentation;
//!
//! let report = TiledSegmentation::new("image.tif", "segments.tif")
//!     .executor(ThreadsExecutor::default())
//!     .run()?;
//! println!("{} segments in {} tiles", report.num_segments, report.num_tiles);
//! # Ok::<(), shepseg_pipeline::PipelineError>(())
//! ```
//!
//! The defaults are `shepseg segment`'s: all bands, the bands' nodata value as null,
//! pyshepseg's parameters ([`shepseg_core::SegmentParams::default`]), 1024-pixel tiles
//! (pyshepseg-compat: 4096-pixel tiles with a 1024-pixel overlap, pyshepseg's), a GTiff output,
//! every core for the fit and the stitch.

#![deny(missing_docs)]

mod consumer;
pub mod error;
pub mod job;
mod seamless;
pub mod timings;
mod workdir;

pub use error::PipelineError;
pub use job::{
    SeamlessReport, SegmentationReport, Statistics, TiledSegmentation, DEFAULT_COMPAT_TILE,
    DEFAULT_TILE,
};
pub use shepseg_tiling::TileExecutor;
pub use timings::{PhaseTimer, Timings};
pub use workdir::{default_work_dir, finished_tiles, release as release_work_dir};
