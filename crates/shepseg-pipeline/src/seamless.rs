//! The default mode's tiled job after the tiles: collect each tile's node image and table,
//! join the tables ([`shepseg_core::seamless::join_tiles`]), then relabel every tile to final
//! IDs, in parallel, and write it.

use std::time::{Duration, Instant};

use ndarray::Array2;
use shepseg_core::seamless::{join_tiles, relabel, Joined, TilePart};
use shepseg_stitch::{StitchError, StitchReport, TileSink};
use shepseg_tiling::packed::{pack_image, unpack_labels};
use shepseg_tiling::{SegmentedTile, TileConsumer, TileGrid};

use crate::consumer::{ConsumeError, Progress, TileLog};
use crate::error::PipelineError;
use crate::job::SeamlessReport;
use crate::timings::Timings;

/// Keeps every finished tile's node image and table until all are in.
pub(crate) struct Collector<'a> {
    /// Each tile's node image, packed while it waits for the join.
    images: Vec<Option<Vec<u8>>>,
    parts: Vec<Option<TilePart>>,
    grid: &'a TileGrid,
    pub log: TileLog<'a>,
}

impl<'a> Collector<'a> {
    /// A collector for `grid`'s tiles; reports progress 0 of all at once.
    pub fn new(
        grid: &'a TileGrid,
        timings: &'a mut Timings,
        progress: Option<&'a mut Progress>,
        cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    ) -> Self {
        let total = grid.tiles().len();
        Self {
            images: vec![None; total],
            parts: vec![None; total],
            grid,
            log: TileLog::new(timings, progress, total, cancel),
        }
    }
}

impl TileConsumer for Collector<'_> {
    type Error = ConsumeError;
    fn consume(&mut self, t: SegmentedTile) -> Result<(), ConsumeError> {
        let start = self.log.arrived(&t)?;
        let index = t.tile.row * self.grid.ncols() + t.tile.col;
        let part = t.part.ok_or_else(|| {
            StitchError::Output(format!(
                "tile ({}, {}) came without its seamless table",
                t.tile.col, t.tile.row
            ))
        })?;
        if index >= self.parts.len() {
            return Err(StitchError::Output(format!(
                "tile ({}, {}) is not in the grid",
                t.tile.col, t.tile.row
            ))
            .into());
        }
        self.images[index] = Some(pack_image(&t.segimg));
        self.parts[index] = Some(*part);
        self.log.timings.stitching.record(start.elapsed());
        self.log.done();
        Ok(())
    }
}

/// What the join and the write did.
pub(crate) struct Written {
    pub report: StitchReport,
    pub seamless: SeamlessReport,
}

/// Joins the collected tiles and writes them through `sink`'s block preparation, `threads`
/// tiles at a time; records the join's time and each tile's relabelling and writing.
pub(crate) fn join_and_write<S: TileSink>(
    collector: Collector<'_>,
    min_segment_size: usize,
    threshold_sq: f64,
    four: bool,
    threads: usize,
    sink: &mut S,
) -> Result<Written, PipelineError> {
    let Collector {
        images,
        parts,
        grid,
        log,
    } = collector;
    let timings = log.timings;
    let t = Instant::now();
    let missing =
        |k: usize| PipelineError::Output(StitchError::Output(format!("tile {k} never arrived")));
    let tiles = images
        .into_iter()
        .enumerate()
        .map(|(k, i)| i.ok_or_else(|| missing(k)))
        .collect::<Result<Vec<_>, _>>()?;
    let parts = parts
        .into_iter()
        .enumerate()
        .map(|(k, p)| p.ok_or_else(|| missing(k)))
        .collect::<Result<Vec<_>, _>>()?;
    let table_bytes = parts.iter().map(TilePart::heap_bytes).sum();
    let nodes = parts.iter().map(TilePart::nodes).sum();
    let undecided_singles = parts
        .iter()
        .map(|p| p.crossing.iter().filter(|c| c.joined.is_none()).count())
        .sum();
    let joined = join_tiles(parts, min_segment_size, threshold_sq, four, threads)
        .map_err(PipelineError::Join)?;
    timings.join = t.elapsed();
    let Joined {
        maps,
        num_segments,
        histogram,
        singles_joined,
        small_merged,
    } = joined;

    let prep = sink.block_prep();
    let windows: Vec<_> = grid.tiles().iter().map(|t| t.window).collect();
    let mut work: Vec<_> = tiles.into_iter().zip(maps).zip(windows).collect();
    let batch = threads.max(1);
    while !work.is_empty() {
        let rest = work.split_off(batch.min(work.len()));
        let prepared: Vec<Result<(_, Duration), StitchError>> = std::thread::scope(|s| {
            let handles: Vec<_> = work
                .drain(..)
                .map(|((lz4, map), window)| {
                    let prep = &prep;
                    s.spawn(move || {
                        let t = Instant::now();
                        let n = window.xsize * window.ysize;
                        let mut labels = unpack_labels(&lz4, n).ok_or_else(|| {
                            StitchError::Output(format!("held tile {window:?} is corrupt"))
                        })?;
                        relabel(&mut labels, &map);
                        let block = Array2::from_shape_vec((window.ysize, window.xsize), labels)
                            .map_err(|e| StitchError::Output(e.to_string()))?;
                        Ok((prep.prepare(window, block)?, t.elapsed()))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(StitchError::Output("a relabelling thread panicked".into()))
                    })
                })
                .collect()
        });
        for p in prepared {
            let (block, took) = p?;
            let t = Instant::now();
            sink.write(block)?;
            timings.stitching.record(took + t.elapsed());
        }
        work = rest;
    }
    Ok(Written {
        report: StitchReport {
            histogram,
            num_segments,
            fallbacks: 0,
            empty_ids: 0,
        },
        seamless: SeamlessReport {
            singles_joined,
            small_merged,
            table_bytes,
            nodes,
            undecided_singles,
        },
    })
}
