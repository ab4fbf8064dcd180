//! Tile executors: who segments the tiles of a job, and how finished tiles reach their consumer.
//!
//! A [`TileExecutor`] is a *producer that pushes*: given a [`TileJob`] (the input, its bands and
//! null value, the tile grid, the shared k-means model and the parameters) it segments every tile
//! and hands each [`SegmentedTile`] to a [`TileConsumer`] — the stitcher, in practice — *in the
//! grid's row-major order*, as soon as that tile and all tiles before it are done. The consumer
//! never pulls, and never sees tiles out of order, so it can stitch while later tiles are still
//! being segmented. An executor must not hold more than a bounded number of finished tiles that
//! the consumer has not taken yet (backpressure), so memory grows with the number of workers and
//! the tile size, never with the image. [`order`] is that contract as code ([`Gate`],
//! [`Reorder`]), shared by every executor.
//!
//! When `consume` returns an error the executor stops as soon as it can and returns that error
//! ([`ExecError::Consumer`]); when a tile fails (read error, panic, a remote worker's error,
//! timeout) the executor stops and returns an error naming the tile ([`ExecError::Tile`],
//! wherever the tile ran). Either way the consumer is not called again.
//! [`SequentialExecutor`] is the one-worker case: read, segment, consume, tile after tile.

pub mod order;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::Array2;
use shepseg_core::seamless::{TileFrame, TilePart};
use shepseg_core::{KMeansModel, SegmentParams};

use crate::cog::MosaicTiles;
use crate::error::TilingError;
use crate::grid::{Tile, TileGrid};
use crate::raster::{BandStack, Raster, Window};
use crate::shared_blocks::SharedBlocks;
pub use order::{Gate, Reorder};

/// Everything a worker needs to segment any tile of one job.
#[derive(Debug, Clone)]
pub struct TileJob {
    /// The input raster (any GDAL path).
    pub input: PathBuf,
    /// Bands to segment, from 1.
    pub bands: Vec<usize>,
    /// Null value of the input.
    pub null: Option<f64>,
    /// The tiles.
    pub grid: TileGrid,
    /// The k-means model shared by all tiles.
    pub model: KMeansModel,
    /// Segmentation parameters.
    pub params: SegmentParams,
    /// When set, the job is the whole-raster k-means sample's, not a segmentation: each tile
    /// is a row of [`crate::sample::SAMPLE_BLOCK`]-pixel blocks ([`TileGrid::block_rows`]),
    /// sampled every this many rows and columns into [`SegmentedTile::sample`]
    /// ([`crate::sample::sample_bytes`]); `model` is not used.
    pub sample_skip: Option<usize>,
    /// For a mosaic output whose tiles the workers write themselves
    /// ([`TileExecutor::writes_mosaic_tiles`]): what they do with them. `None` otherwise.
    pub mosaic: Option<MosaicJob>,
}

/// What the workers of a mosaic output do with its tiles, so that no pixel passes through
/// the process that joins the tables.
#[derive(Debug, Clone)]
pub enum MosaicJob {
    /// Segment as usual, but keep each tile's node image beside the mosaic's tiles
    /// ([`MosaicJob::nodes_path`]) and hand back an empty image with the tile's table.
    KeepNodes(MosaicTiles),
    /// Relabel each tile's node image (segmenting the tile again where it is missing) through
    /// its map, write it as the mosaic's tile, and hand back an empty image.
    Write {
        /// Where the tiles go.
        tiles: MosaicTiles,
        /// Each tile's map from node to final ID, by tile index in the grid.
        maps: Arc<Vec<Vec<u32>>>,
    },
}

impl MosaicJob {
    /// Where the node image of the tile at `window` waits between segmenting and writing.
    pub fn nodes_path(tiles: &MosaicTiles, window: Window) -> PathBuf {
        tiles
            .dir
            .join(format!(".x{}_y{}.nodes", window.xoff, window.yoff))
    }
}

/// One tile, segmented (local IDs from 1, 0 = null), with what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentedTile {
    /// Which tile.
    pub tile: Tile,
    /// Its segmentation, the size of its window: segment IDs from 1 (pyshepseg-compat), or
    /// the node IDs of `part` (seamless).
    pub segimg: Array2<u32>,
    /// The tile's table for the join, in the seamless (default) mode.
    pub part: Option<Box<TilePart>>,
    /// A sample job's share of the sample ([`TileJob::sample_skip`]); `segimg` is then empty.
    pub sample: Option<Vec<u8>>,
    /// The maxSpectralDiff used.
    pub max_spectral_diff: f64,
    /// Time reading the tile.
    pub read_time: Duration,
    /// Time segmenting it.
    pub segment_time: Duration,
}

/// Takes finished tiles in row-major order (the stitcher).
///
/// Implemented for `&mut C` (so a consumer can be lent to an executor and used afterwards) and,
/// through [`FnConsumer`], for closures.
pub trait TileConsumer {
    /// The error `consume` returns; it stops the job.
    type Error;
    /// Called once per tile, in the grid's row-major order.
    fn consume(&mut self, tile: SegmentedTile) -> Result<(), Self::Error>;
}

impl<C: TileConsumer + ?Sized> TileConsumer for &mut C {
    type Error = C::Error;
    fn consume(&mut self, tile: SegmentedTile) -> Result<(), Self::Error> {
        (**self).consume(tile)
    }
}

/// A closure as a [`TileConsumer`]:
/// `FnConsumer(|t: SegmentedTile| -> Result<(), E> { ... })`.
///
/// ```
/// use shepseg_tiling::{FnConsumer, SegmentedTile, TileConsumer};
/// let mut count = 0;
/// let mut consumer = FnConsumer(|_t: SegmentedTile| {
///     count += 1;
///     Ok::<(), std::convert::Infallible>(())
/// });
/// # let _ = &mut consumer;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FnConsumer<F>(pub F);

impl<F, E> TileConsumer for FnConsumer<F>
where
    F: FnMut(SegmentedTile) -> Result<(), E>,
{
    type Error = E;
    fn consume(&mut self, tile: SegmentedTile) -> Result<(), E> {
        (self.0)(tile)
    }
}

/// Why a tile failed, wherever it ran.
#[derive(Debug, thiserror::Error)]
pub enum TileFailure {
    /// Reading or segmenting it failed in this process.
    #[error(transparent)]
    Error(TilingError),
    /// The worker panicked on it.
    #[error("worker panicked: {0}")]
    Panicked(String),
    /// An error reported as text: by a remote worker, or by the coordinator when the tile's
    /// attempts ran out.
    #[error("{0}")]
    Reported(String),
}

/// Why a job stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExecError<E> {
    /// A tile failed (on a thread, a process or a remote worker alike).
    #[error("tile ({col}, {row}): {cause}")]
    Tile {
        /// Grid column.
        col: usize,
        /// Grid row.
        row: usize,
        /// What went wrong.
        cause: TileFailure,
    },
    /// The next tile the consumer needs was not done in time.
    #[error("tile ({col}, {row}) not done within {seconds} s")]
    Timeout {
        /// Grid column.
        col: usize,
        /// Grid row.
        row: usize,
        /// The time allowed.
        seconds: u64,
    },
    /// The coordinator could not listen for remote workers.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// No worker was connected for the time allowed (at the start, or after all were lost).
    #[error("no worker connected within {seconds} s")]
    NoWorkers {
        /// The time allowed.
        seconds: u64,
    },
    /// The executor's workers could not be started or cleaned up (e.g. an AWS API error), or
    /// the job was cancelled.
    #[error("{0}")]
    Workers(String),
    /// The consumer failed.
    #[error(transparent)]
    Consumer(E),
    /// The executor itself could not run (e.g. opening the input).
    #[error(transparent)]
    Setup(TilingError),
}

impl<E> ExecError<E> {
    /// A failure of `tile`.
    pub fn tile(tile: Tile, cause: TileFailure) -> Self {
        Self::Tile {
            col: tile.col,
            row: tile.row,
            cause,
        }
    }
}

/// Segments the tiles of a job and pushes them to a consumer; see the module docs.
pub trait TileExecutor {
    /// Runs the whole job.
    fn run<C: TileConsumer>(
        &self,
        job: &TileJob,
        consumer: &mut C,
    ) -> Result<(), ExecError<C::Error>>;

    /// Tiles this executor works on at once (to size read caches); 1 by default.
    fn concurrency(&self) -> usize {
        1
    }

    /// Whether this executor's workers write a mosaic's tiles themselves ([`MosaicJob`]): those
    /// of remote executors, so that the coordinator handles tables, not pixels. In-process
    /// executors leave it to the pipeline, which holds their tiles anyway.
    fn writes_mosaic_tiles(&self) -> bool {
        false
    }

    /// Whether the whole-raster k-means sample should be read by this executor's workers
    /// (a job with [`TileJob::sample_skip`]): those of remote executors, so that the
    /// coordinator does not read the whole input before the first tile starts. In-process
    /// executors leave it to the pipeline, which reads it on its own threads.
    fn samples_on_workers(&self) -> bool {
        false
    }
}

impl<X: TileExecutor + ?Sized> TileExecutor for &X {
    fn run<C: TileConsumer>(
        &self,
        job: &TileJob,
        consumer: &mut C,
    ) -> Result<(), ExecError<C::Error>> {
        (**self).run(job, consumer)
    }

    fn concurrency(&self) -> usize {
        (**self).concurrency()
    }

    fn writes_mosaic_tiles(&self) -> bool {
        (**self).writes_mosaic_tiles()
    }

    fn samples_on_workers(&self) -> bool {
        (**self).samples_on_workers()
    }
}

/// The seamless frame of the tile with `window` in a `(cols, rows)` raster.
pub fn tile_frame(window: Window, (cols, rows): (usize, usize)) -> TileFrame {
    TileFrame {
        raster_rows: rows as u64,
        raster_cols: cols as u64,
        row0: window.yoff as u64,
        col0: window.xoff as u64,
        rows: window.ysize as u64,
        cols: window.xsize as u64,
    }
}

/// The window a tile's work reads: the tile itself in compatibility mode, or the tile and
/// the halo the seamless analysis needs ([`TileFrame::read_window`]).
pub fn read_window(params: &SegmentParams, window: Window, raster_size: (usize, usize)) -> Window {
    if params.pyshepseg_compat {
        return window;
    }
    let (row, col, rows, cols) = tile_frame(window, raster_size).read_window();
    Window {
        xoff: col as usize,
        yoff: row as usize,
        xsize: cols as usize,
        ysize: rows as usize,
    }
}

/// What a tile's work produced: its segment (or node) image, its seamless table, and the
/// maxSpectralDiff used.
#[derive(Debug)]
pub struct TileWork {
    /// Segment IDs (compatibility mode) or node IDs (seamless), the size of the tile.
    pub segimg: Array2<u32>,
    /// The seamless table.
    pub part: Option<Box<TilePart>>,
    /// The maxSpectralDiff used.
    pub max_spectral_diff: f64,
}

/// A tile's work on the bands [`read_window`] read: segment it as pyshepseg does, or analyse
/// it for the seamless join.
pub fn work_on(
    stack: &BandStack,
    window: Window,
    raster_size: (usize, usize),
    null: Option<f64>,
    params: &SegmentParams,
    model: &KMeansModel,
) -> Result<TileWork, TilingError> {
    if params.pyshepseg_compat {
        let res = stack.segment(null, params, Some(model))?;
        return Ok(TileWork {
            segimg: res.segimg,
            part: None,
            max_spectral_diff: res.max_spectral_diff,
        });
    }
    let a = stack.analyse(tile_frame(window, raster_size), null, params, model)?;
    let segimg = Array2::from_shape_vec((window.ysize, window.xsize), a.labels)
        .map_err(|e| TilingError::TileGrid(e.to_string()))?;
    let threshold = params
        .max_spectral_diff
        .resolve(model, params.spect_dist_pcntile);
    Ok(TileWork {
        segimg,
        part: Some(Box::new(a.part)),
        max_spectral_diff: threshold.value(),
    })
}

/// Reads one tile's bands (with the halo the mode needs) with an open raster, through the
/// job's `shared` blocks if it has them; returns them and the time taken.
pub fn read_tile(
    raster: &Raster,
    job: &TileJob,
    tile: Tile,
    shared: Option<&SharedBlocks>,
) -> Result<(BandStack, Duration), TilingError> {
    let t = Instant::now();
    let window = read_window(&job.params, tile.window, raster.size());
    let stack = match shared {
        Some(s) => s.read_stack(raster, &job.bands, window)?,
        None => raster.read_stack(&job.bands, window)?,
    };
    Ok((stack, t.elapsed()))
}

/// The blocks the job's tile reads share (see [`SharedBlocks`]), for the threads of one
/// process that read them, each through its own dataset; `None` if they share none.
pub fn shared_blocks(raster: &Raster, job: &TileJob) -> Option<SharedBlocks> {
    let windows: Vec<Window> = job
        .grid
        .tiles()
        .iter()
        .map(|t| read_window(&job.params, t.window, raster.size()))
        .collect();
    SharedBlocks::for_windows(raster, &job.bands, &windows)
}

/// Segments (or analyses) a tile read by [`read_tile`] from a raster of `raster_size`
/// `(cols, rows)`.
pub fn segment_read(
    job: &TileJob,
    tile: Tile,
    raster_size: (usize, usize),
    (stack, read_time): (BandStack, Duration),
) -> Result<SegmentedTile, TilingError> {
    if job.sample_skip.is_some() {
        return Err(TilingError::TileGrid(
            "a sample job needs an executor that samples on its workers".into(),
        ));
    }
    let t = Instant::now();
    let w = work_on(
        &stack,
        tile.window,
        raster_size,
        job.null,
        &job.params,
        &job.model,
    )?;
    Ok(SegmentedTile {
        tile,
        segimg: w.segimg,
        part: w.part,
        sample: None,
        max_spectral_diff: w.max_spectral_diff,
        read_time,
        segment_time: t.elapsed(),
    })
}

/// One worker, in the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct SequentialExecutor;

impl TileExecutor for SequentialExecutor {
    fn run<C: TileConsumer>(
        &self,
        job: &TileJob,
        consumer: &mut C,
    ) -> Result<(), ExecError<C::Error>> {
        let raster = Raster::open(&job.input).map_err(ExecError::Setup)?;
        let shared = shared_blocks(&raster, job);
        for &tile in job.grid.tiles() {
            let done = read_tile(&raster, job, tile, shared.as_ref())
                .and_then(|read| segment_read(job, tile, raster.size(), read))
                .map_err(|e| ExecError::tile(tile, TileFailure::Error(e)))?;
            consumer.consume(done).map_err(ExecError::Consumer)?;
        }
        Ok(())
    }
}
