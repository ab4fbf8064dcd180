//! [`TiledSegmentation`]: one tiled job, configured by a builder, run by [`TiledSegmentation::run`].

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shepseg_core::{KMeansModel, SegmentParams};
use shepseg_stats::{colour::colour_from_columns, compute_stats, Stat, StatsReport, StatsRequest};
use shepseg_stitch::{GdalOutput, OutputGeometry, OutputOptions, ParallelStitcher};
use shepseg_tiling::packed::pack_image;
use shepseg_tiling::sample::{fit_sample_bytes, sample_skip, SAMPLE_BLOCK};
use shepseg_tiling::{
    fit_whole_raster_threads, set_block_cache, FnConsumer, MosaicJob, Raster, SegmentedTile,
    SequentialExecutor, TileExecutor, TileGrid, TileJob,
};

use crate::consumer::{is_cancelled, ConsumeError, Progress, StitchConsumer};
use crate::error::PipelineError;
use crate::seamless::{join_collected, write_joined, Collector, JoinedTiles};
use crate::timings::Timings;
use crate::workdir::{default_work_dir, JobSettings, WorkDir};

/// The default mode's tile size: small enough that two workers share a 10000 x 10000 image
/// evenly (81 tiles), large enough that the halo and the tables' edges stay a few percent.
pub const DEFAULT_TILE: usize = 1024;

/// pyshepseg's tile size (with a 1024-pixel overlap), compatibility mode's default.
pub const DEFAULT_COMPAT_TILE: usize = 4096;

/// Per-segment statistics computed into the output's attribute table once it is written.
pub struct Statistics {
    /// Which bands of the input and which statistics ([`StatsRequest`]).
    pub request: StatsRequest,
    /// Red, Green and Blue columns from these three bands' means (which `request` must
    /// compute), stretched as pyshepseg does.
    pub colour_from_bands: Option<[usize; 3]>,
}

/// A tiled segmentation of `input` into `output`; see the crate docs.
///
/// Built with [`TiledSegmentation::new`] and the setters below, which all have `shepseg
/// segment`'s defaults; [`TiledSegmentation::executor`] chooses who segments the tiles (by
/// default one after another in the calling thread).
pub struct TiledSegmentation<E = SequentialExecutor> {
    input: PathBuf,
    output: PathBuf,
    bands: Vec<usize>,
    null_value: Option<f64>,
    params: SegmentParams,
    subsample_pcnt: Option<f64>,
    tile_size: Option<usize>,
    overlap_size: usize,
    model: Option<KMeansModel>,
    output_options: OutputOptions,
    threads: Option<usize>,
    executor: E,
    statistics: Option<Statistics>,
    progress: Option<Progress>,
    cancel: Option<Arc<AtomicBool>>,
    work_dir: Option<PathBuf>,
    resume: bool,
}

/// What the default mode's seamless join did.
#[derive(Debug, Clone, Copy)]
pub struct SeamlessReport {
    /// Single pixels merged into a neighbouring segment.
    pub singles_joined: u64,
    /// Small segments merged away.
    pub small_merged: usize,
    /// Bytes of the tiles' tables the join held.
    pub table_bytes: usize,
    /// Pieces of segments (nodes) in the tables.
    pub nodes: usize,
    /// Single pixels the tiles left to the join (runs crossing tile edges).
    pub undecided_singles: usize,
}

/// What a finished job reports.
#[derive(Debug)]
pub struct SegmentationReport {
    /// Segments in the output (IDs 1..=N).
    pub num_segments: u32,
    /// Tiles in the grid.
    pub num_tiles: usize,
    /// Of which finished by an earlier run and taken from the work directory.
    pub tiles_resumed: usize,
    /// Resuming was asked for but the work directory held no job, so the job started afresh.
    pub resume_started_afresh: bool,
    /// The work directory used (removed once the output was complete).
    pub work_dir: Option<PathBuf>,
    /// The tile size used.
    pub tile_size: usize,
    /// The overlap used (0 in the default mode).
    pub overlap_size: usize,
    /// The input's `(columns, rows)`.
    pub size: (usize, usize),
    /// The bands segmented, from 1.
    pub bands: Vec<usize>,
    /// The null value used (given, or the bands' nodata value).
    pub null_value: Option<f64>,
    /// The k-means model every tile used.
    pub model: KMeansModel,
    /// The percentage of pixels the model was fitted on; `None` when it was given.
    pub subsample_pcnt: Option<f64>,
    /// The maxSpectralDiff the tiles used.
    pub max_spectral_diff_used: f64,
    /// Seam segments that took a new ID (see [`shepseg_stitch::StitchReport::fallbacks`]).
    pub seam_fallbacks: usize,
    /// What the seamless join did (default mode).
    pub seamless: Option<SeamlessReport>,
    /// The statistics written, if asked for.
    pub stats: Option<StatsReport>,
    /// Time per phase.
    pub timings: Timings,
    /// The whole run.
    pub wall: Duration,
}

impl TiledSegmentation<SequentialExecutor> {
    /// A job segmenting every band of `input` into `output` with the defaults.
    pub fn new(input: impl AsRef<Path>, output: impl AsRef<Path>) -> Self {
        Self {
            input: input.as_ref().to_path_buf(),
            output: output.as_ref().to_path_buf(),
            bands: Vec::new(),
            null_value: None,
            params: SegmentParams::default(),
            subsample_pcnt: None,
            tile_size: None,
            overlap_size: 1024,
            model: None,
            output_options: OutputOptions::default(),
            threads: None,
            executor: SequentialExecutor,
            statistics: None,
            progress: None,
            cancel: None,
            work_dir: None,
            resume: false,
        }
    }
}

impl<E: TileExecutor> TiledSegmentation<E> {
    /// Who segments the tiles. Any [`TileExecutor`], or a reference to one (to read its own
    /// report afterwards, as a remote executor's).
    pub fn executor<F: TileExecutor>(self, executor: F) -> TiledSegmentation<F> {
        TiledSegmentation {
            input: self.input,
            output: self.output,
            bands: self.bands,
            null_value: self.null_value,
            params: self.params,
            subsample_pcnt: self.subsample_pcnt,
            tile_size: self.tile_size,
            overlap_size: self.overlap_size,
            model: self.model,
            output_options: self.output_options,
            threads: self.threads,
            executor,
            statistics: self.statistics,
            progress: self.progress,
            cancel: self.cancel,
            work_dir: self.work_dir,
            resume: self.resume,
        }
    }

    /// Bands to segment, from 1 (default, or empty: all).
    pub fn bands(mut self, bands: Vec<usize>) -> Self {
        self.bands = bands;
        self
    }

    /// The input's null value (default: the bands' nodata value, if any).
    pub fn null_value(mut self, null: Option<f64>) -> Self {
        self.null_value = null;
        self
    }

    /// Segmentation parameters (default: pyshepseg's).
    pub fn params(mut self, params: SegmentParams) -> Self {
        self.params = params;
        self
    }

    /// Percentage of pixels sampled to fit the model (default: about a million pixels).
    pub fn subsample_pcnt(mut self, pcnt: Option<f64>) -> Self {
        self.subsample_pcnt = pcnt;
        self
    }

    /// Tile size and overlap, in pixels. The overlap is used in compatibility mode only
    /// (default 4096 and 1024 there, pyshepseg's; the overlap even and smaller than the
    /// tile); the default mode's tiles do not overlap (default 1024), and its result does
    /// not depend on their size.
    pub fn tiles(mut self, tile_size: usize, overlap_size: usize) -> Self {
        self.tile_size = Some(tile_size);
        self.overlap_size = overlap_size;
        self
    }

    /// The tile size, in pixels (default 1024; pyshepseg-compat: 4096).
    pub fn tile_size(mut self, tile_size: usize) -> Self {
        self.tile_size = Some(tile_size);
        self
    }

    /// The overlap between tiles, used in compatibility mode only (default 1024; even and
    /// smaller than the tile).
    pub fn overlap_size(mut self, overlap_size: usize) -> Self {
        self.overlap_size = overlap_size;
        self
    }

    /// The tile size the job uses.
    fn tile_size_used(&self) -> usize {
        match self.tile_size {
            Some(t) => t,
            None if self.params.pyshepseg_compat => DEFAULT_COMPAT_TILE,
            None => DEFAULT_TILE,
        }
    }

    /// The overlap the job uses (none in the default mode).
    fn overlap(&self) -> usize {
        if self.params.pyshepseg_compat {
            self.overlap_size
        } else {
            0
        }
    }

    /// Segments with this model instead of fitting one (one centre value per segmented band).
    pub fn model(mut self, model: Option<KMeansModel>) -> Self {
        self.model = model;
        self
    }

    /// The output's driver and creation options, and whether to replace an existing file.
    pub fn output_options(mut self, options: OutputOptions) -> Self {
        self.output_options = options;
        self
    }

    /// Threads of this machine for the k-means fit and the stitch's per-pixel work (default,
    /// and at most: every core). Results do not depend on it.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// Per-segment statistics to compute into the output's table after segmenting.
    pub fn statistics(mut self, statistics: Option<Statistics>) -> Self {
        self.statistics = statistics;
        self
    }

    /// Called with (tiles done, tiles in all) once the model is ready and after every tile,
    /// in the calling thread: for a progress bar.
    pub fn on_progress(mut self, progress: impl FnMut(usize, usize) + 'static) -> Self {
        self.progress = Some(Box::new(progress));
        self
    }

    /// A flag the caller raises (from any thread) to stop the job: it is checked before and
    /// after the model fit, as each tile arrives and before the statistics, and the job then
    /// ends with [`PipelineError::Cancelled`], leaving nothing at the output. Remote executors
    /// have their own flag (give them the same one) to stop their workers.
    pub fn cancel_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Where the job records its model and finished tiles (default mode), so that it can be
    /// resumed (default: a hidden folder beside the output, see [`default_work_dir`]; none for
    /// `/vsi…` outputs). It is removed once the output is complete, and kept, with its
    /// finished tiles, when the job fails or is killed.
    pub fn work_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.work_dir = dir;
        self
    }

    /// Continue the job the work directory holds: its model and finished tiles are used, and
    /// only the other tiles are segmented; the output is the same as an uninterrupted run's.
    /// Fails with [`PipelineError::ResumeMismatch`] if the input or a setting changed; starts
    /// afresh (and says so in the report) if there is no job to resume.
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// The work directory the job will use: the one given, else [`default_work_dir`] of the
    /// output; none in compatibility mode. Callers use it to find what a failed or
    /// interrupted job kept.
    pub fn work_dir_used(&self) -> Option<PathBuf> {
        if self.params.pyshepseg_compat {
            return None;
        }
        self.work_dir
            .clone()
            .or_else(|| default_work_dir(&self.output))
    }

    /// Fails with [`PipelineError::Cancelled`] once the cancel flag is raised.
    fn check_cancel(&self) -> Result<(), PipelineError> {
        if is_cancelled(self.cancel.as_ref()) {
            Err(PipelineError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// The executor, e.g. to read its own report after [`TiledSegmentation::run`].
    pub fn executor_ref(&self) -> &E {
        &self.executor
    }

    /// Runs the job: checks the input, fits the model (unless given), segments and stitches
    /// every tile into the output, finishes it (attribute table, overviews, statistics
    /// metadata), computes the statistics asked for. On error nothing is left at the output
    /// path.
    pub fn run(mut self) -> Result<SegmentationReport, PipelineError> {
        let start = Instant::now();
        let params = self.params;
        params.validate().map_err(PipelineError::Params)?;
        let raster = Raster::open(&self.input)?;
        let (cols, rows) = raster.size();
        if cols == 0 || rows == 0 || raster.band_count() == 0 {
            return Err(PipelineError::EmptyInput {
                path: self.input.clone(),
                cols,
                rows,
                bands: raster.band_count(),
            });
        }
        let bands = raster.resolve_bands(&self.bands)?;
        raster.pixel_type(&bands)?;
        let null = match self.null_value {
            Some(v) => Some(v),
            None => raster.null_value(&bands)?,
        };
        let tile_size = self.tile_size_used();
        let grid = TileGrid::new(cols, rows, tile_size, self.overlap())?;
        let num_tiles = grid.tiles().len();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // The fit and the stitch pool split their work per thread: threads beyond the cores
        // cannot run at once and only add overhead (1000 of them took a 1.2 s fit to 104 s).
        let threads = self.threads.unwrap_or(cores).min(cores);
        // GDAL's block cache defaults to 5% of physical memory; tiles are read once, so a
        // cache sized to the reads keeps peak memory to a few tiles (see
        // Raster::block_cache_bytes). GDAL_CACHEMAX, in the environment or as a GDAL
        // configuration option, overrides.
        if gdal::config::get_config_option("GDAL_CACHEMAX", "")
            .unwrap_or_default()
            .is_empty()
        {
            let widest = grid.tiles().iter().map(|t| t.window.xsize).max();
            // No more tiles are read at once than there are tiles.
            let readers = self.executor.concurrency().min(num_tiles).max(cores);
            // Blocks that several tiles read (a seamless tile's halo, compatibility mode's
            // overlaps) are kept by the executors' `SharedBlocks`, not by this cache.
            set_block_cache(raster.block_cache_bytes(widest.unwrap_or(cols), readers));
        }
        if let Some(m) = &self.model {
            if m.num_bands() != bands.len() {
                return Err(PipelineError::ModelBands {
                    model: m.num_bands(),
                    bands: bands.len(),
                });
            }
        }
        let mut output = GdalOutput::create(
            &self.output,
            &OutputGeometry::of(raster.dataset()),
            &self.output_options,
        )?;
        // The work directory (default mode only): its lock is taken, and with `resume` its
        // model and finished tiles read, once the output could be created (so a run refused for an existing output clears nothing).
        if params.pyshepseg_compat && (self.resume || self.work_dir.is_some()) {
            return Err(PipelineError::ResumeCompat);
        }
        let settings = JobSettings::new(
            &self.input,
            &self.output,
            &raster,
            &bands,
            null,
            tile_size,
            self.subsample_pcnt,
            &params,
        );
        let work_path = self.work_dir_used();
        let mut work = WorkGuard(None);
        let mut resumed_tiles = Vec::new();
        let mut resumed_model = None;
        let mut resume_started_afresh = false;
        if let Some(p) = &work_path {
            let opened = WorkDir::open(p, &settings, &grid, self.resume)?;
            work.0 = Some(opened.dir);
            resume_started_afresh = opened.started_afresh;
            if let Some((m, pcnt)) = opened.model {
                if let Some(given) = &self.model {
                    if *given != m {
                        return Err(PipelineError::ResumeMismatch {
                            path: p.clone(),
                            what: "the k-means model given differs from the one its tiles used"
                                .into(),
                        });
                    }
                }
                resumed_model = Some((m, pcnt));
                resumed_tiles = opened.tiles;
            }
        } else if self.resume {
            resume_started_afresh = true;
        }
        // How the output was made, so that a reader can tell the modes apart.
        output.add_metadata("SHEPSEG_VERSION", env!("CARGO_PKG_VERSION"));
        output.add_metadata(
            "SHEPSEG_MODE",
            if params.pyshepseg_compat {
                "pyshepseg-compat"
            } else {
                "default"
            },
        );
        let described = serde_json::json!({
            "params": params,
            "bands": bands,
            "null_value": null,
            "tile_size": tile_size,
            "overlap_size": self.overlap(),
        });
        output.add_metadata("SHEPSEG_PARAMETERS", &described.to_string());

        let mut timings = Timings::default();
        self.check_cancel()?;
        let t = Instant::now();
        let (model, subsample_pcnt) = match (resumed_model, self.model.take()) {
            (Some(resumed), _) => resumed,
            (None, Some(m)) => (m, None),
            (None, None) if self.executor.samples_on_workers() => {
                // Remote workers read the sample, each a share of the rows of blocks, so
                // that this process does not read the whole input first.
                let (skip, pcnt) = sample_skip((cols, rows), self.subsample_pcnt)?;
                let sample_job = TileJob {
                    input: self.input.clone(),
                    bands: bands.clone(),
                    null,
                    grid: TileGrid::block_rows(cols, rows, SAMPLE_BLOCK)?,
                    // Not used by a sample job.
                    model: KMeansModel::new(vec![vec![0.0; bands.len()]])
                        .map_err(|e| PipelineError::Tiling(e.into()))?,
                    params,
                    sample_skip: Some(skip),
                    mosaic: None,
                };
                let mut sample = Vec::new();
                self.executor.run(
                    &sample_job,
                    &mut FnConsumer(|t: SegmentedTile| -> Result<(), ConsumeError> {
                        sample.extend(t.sample.unwrap_or_default());
                        Ok(())
                    }),
                )?;
                timings.sample_read = t.elapsed();
                let (model, _) =
                    fit_sample_bytes(&raster, &bands, null, &sample, &params, threads)?;
                (model, Some(pcnt))
            }
            (None, None) => {
                let fit = fit_whole_raster_threads(
                    &raster,
                    &bands,
                    null,
                    self.subsample_pcnt,
                    &params,
                    threads,
                )?;
                timings.sample_read = fit.sample_read;
                (fit.model, Some(fit.subsample_pcnt))
            }
        };
        timings.spectral_clusters = t.elapsed();
        self.check_cancel()?;
        if let Some(w) = &work.0 {
            w.start(&settings, &model, subsample_pcnt)?;
        }

        // A resumed job segments only the tiles its work directory does not have.
        let mut done = vec![false; num_tiles];
        for t in &resumed_tiles {
            done[t.index] = true;
        }
        let tiles_resumed = resumed_tiles.len();
        // A mosaic's tiles are written by remote workers themselves, where the executor has
        // them: they keep each tile's pixels until the join has numbered its segments.
        let remote_mosaic = match output.mosaic_tiles() {
            Some(t) if !params.pyshepseg_compat && self.executor.writes_mosaic_tiles() => Some(t),
            _ => None,
        };
        let job = TileJob {
            input: self.input.clone(),
            bands: bands.clone(),
            null,
            grid: grid.subset(|i| !done[i]),
            model: model.clone(),
            params,
            sample_skip: None,
            mosaic: remote_mosaic.clone().map(MosaicJob::KeepNodes),
        };
        let (stitched, max_spectral_diff_used, seamless, staged) = if params.pyshepseg_compat {
            let stitcher = ParallelStitcher::new(grid, true, threads);
            let mut consumer = StitchConsumer::new(
                stitcher,
                &mut output,
                &mut timings,
                self.progress.as_mut(),
                num_tiles,
                self.cancel.clone(),
            );
            self.executor.run(&job, &mut consumer)?;
            let max_spectral_diff_used = consumer.log.max_spectral_diff_used;
            let (stitched, finishing) = consumer.finish()?;
            let staged = output.finish_unpublished(&stitched)?;
            timings.finishing = finishing.elapsed();
            (stitched, max_spectral_diff_used, None, staged)
        } else {
            let mut collector = Collector::new(
                &grid,
                &mut timings,
                self.progress.as_mut(),
                self.cancel.clone(),
            );
            collector.resume(resumed_tiles);
            if let Some(w) = &work.0 {
                collector.store_in(w);
            }
            if !job.grid.tiles().is_empty() {
                self.executor.run(&job, &mut collector)?;
            }
            let max_spectral_diff_used = collector.log.max_spectral_diff_used;
            let threshold = params
                .max_spectral_diff
                .resolve(&model, params.spect_dist_pcntile);
            let JoinedTiles {
                mut images,
                maps,
                written,
            } = join_collected(
                collector,
                params.min_segment_size,
                threshold.squared(),
                params.four_connected,
                threads,
            )?;
            if let Some(tiles) = remote_mosaic {
                // The workers relabel and write every tile (from the node images they kept,
                // or segmenting a tile again where one is gone).
                let write_job = TileJob {
                    grid: grid.clone(),
                    mosaic: Some(MosaicJob::Write {
                        tiles,
                        maps: Arc::new(maps),
                    }),
                    ..job
                };
                let timings = &mut timings;
                let output = &mut output;
                self.executor.run(
                    &write_job,
                    &mut FnConsumer(|t: SegmentedTile| -> Result<(), ConsumeError> {
                        output.mosaic_tile_written(t.tile.window);
                        timings.stitching.record(t.segment_time);
                        Ok(())
                    }),
                )?;
            } else {
                // Tiles whose pixels remote workers kept in an earlier run of a resumed job
                // are segmented again here (to the same nodes).
                let missing: Vec<bool> = images.iter().map(Vec::is_empty).collect();
                if missing.iter().any(|&m| m) {
                    let ncols = grid.ncols();
                    let index = |t: &SegmentedTile| t.tile.row * ncols + t.tile.col;
                    let again = TileJob {
                        grid: grid.subset(|i| missing[i]),
                        mosaic: None,
                        ..job
                    };
                    self.executor.run(
                        &again,
                        &mut FnConsumer(|t: SegmentedTile| -> Result<(), ConsumeError> {
                            images[index(&t)] = pack_image(&t.segimg);
                            Ok(())
                        }),
                    )?;
                }
                write_joined(images, maps, &grid, threads, &mut output, &mut timings)?;
            }
            let finishing = Instant::now();
            let staged = output.finish_unpublished(&written.report)?;
            timings.finishing = finishing.elapsed();
            (
                written.report,
                max_spectral_diff_used,
                Some(written.seamless),
                staged,
            )
        };
        // A local output goes in place now: the segmentation is complete even if the
        // statistics fail. One on object storage, which cannot be updated in place, gets its
        // statistics first and is uploaded complete.
        let t = Instant::now();
        let pending = if shepseg_tiling::vsi::is_virtual(&self.output) {
            Some(staged)
        } else {
            staged.publish()?;
            work.complete();
            None
        };
        timings.finishing += t.elapsed();

        let stats_path = pending
            .as_ref()
            .map_or(self.output.clone(), |p| p.path().to_path_buf());
        let stats = match &self.statistics {
            Some(s) => {
                self.check_cancel()?;
                let t = Instant::now();
                let report = compute_stats(&stats_path, &self.input, &s.request)?;
                if let Some(rgb) = s.colour_from_bands {
                    let names = rgb.map(|b| Stat::Mean.column_name(b));
                    colour_from_columns(&stats_path, [&names[0], &names[1], &names[2]])?;
                }
                timings.statistics = t.elapsed();
                Some(report)
            }
            None => None,
        };
        if let Some(p) = pending {
            let t = Instant::now();
            p.publish()?;
            work.complete();
            timings.finishing += t.elapsed();
        }
        Ok(SegmentationReport {
            num_segments: stitched.num_segments,
            num_tiles,
            tiles_resumed,
            resume_started_afresh,
            work_dir: work_path,
            tile_size,
            overlap_size: if params.pyshepseg_compat {
                self.overlap_size
            } else {
                0
            },
            size: (cols, rows),
            bands,
            null_value: null,
            model,
            subsample_pcnt,
            max_spectral_diff_used,
            seam_fallbacks: stitched.fallbacks,
            seamless,
            stats,
            timings,
            wall: start.elapsed(),
        })
    }
}

/// The job's work directory while it runs: on an early return it is kept (unlocked) if it
/// holds finished tiles, removed otherwise.
struct WorkGuard(Option<WorkDir>);

impl WorkGuard {
    /// The output is complete: nothing is left to resume, so the directory goes.
    fn complete(&mut self) {
        if let Some(w) = self.0.take() {
            w.remove();
        }
    }
}

impl Drop for WorkGuard {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.keep_or_remove();
        }
    }
}
