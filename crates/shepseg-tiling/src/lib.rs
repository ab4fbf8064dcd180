//! # shepseg-tiling
//!
//! The GDAL side of tiled segmentation and the vocabulary every tiled crate shares: reading a
//! window of chosen bands into a `(bands, rows, cols)` ndarray for `shepseg-core` ([`Raster`],
//! [`BandStack`]), the tile grid of pyshepseg's `getTilesForFile` ([`TileGrid`]), the
//! whole-raster k-means sample ([`fit_whole_raster`]), the raster attribute table ([`rat`]),
//! and the executor contract ([`exec`]: [`TileExecutor`], [`TileConsumer`], [`Gate`],
//! [`Reorder`]). GDAL datasets are not `Sync`: open one [`Raster`] per thread.
//!
//! ```no_run
//! use shepseg_tiling::Raster;
//! use shepseg_core::SegmentParams;
//! let r = Raster::open("image.tif")?;
//! let bands = r.resolve_bands(&[])?;
//! let null = r.null_value(&bands)?;
//! let stack = r.read_stack(&bands, r.full_window())?;
//! let res = stack.segment(null, &SegmentParams::default(), None)?;
//! println!("{} segments", res.num_segments);
//! # Ok::<(), shepseg_tiling::TilingError>(())
//! ```

#![deny(missing_docs)]

pub mod cog;
pub mod error;
pub mod exec;
pub mod grid;
pub mod packed;
pub mod raster;
pub mod rat;
pub mod sample;
pub mod shared_blocks;
pub mod vsi;

pub use cog::MosaicTiles;
pub use error::TilingError;
pub use exec::{
    read_tile, read_window, segment_read, shared_blocks, tile_frame, work_on, ExecError,
    FnConsumer, Gate, MosaicJob, Reorder, SegmentedTile, SequentialExecutor, TileConsumer,
    TileExecutor, TileFailure, TileJob, TileWork,
};
pub use grid::{Tile, TileGrid};
pub use raster::{last_gdal_message, set_block_cache, BandStack, PixelType, Raster, Window};
pub use sample::{fit_whole_raster, fit_whole_raster_threads, WholeRasterFit};
pub use shared_blocks::SharedBlocks;
