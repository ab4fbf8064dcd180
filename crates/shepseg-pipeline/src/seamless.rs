//! The default mode's tiled job after the tiles: collect each tile's node image and table,
//! join the tables ([`shepseg_core::seamless::join_tiles`]), then relabel every tile to final
//! IDs, in parallel, and write it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ndarray::Array2;
use shepseg_core::seamless::{join_tiles, relabel, Joined, TilePart};
use shepseg_stitch::{BlockPrep, OutputBlock, StitchError, StitchReport, TileSink};
use shepseg_tiling::packed::{pack_image, unpack_labels};
use shepseg_tiling::{Reorder, SegmentedTile, TileConsumer, TileGrid, Window};

use crate::consumer::{ConsumeError, Progress, TileLog};
use crate::error::PipelineError;
use crate::job::SeamlessReport;
use crate::timings::Timings;
use crate::workdir::{ResumedTile, WorkDir};

/// Keeps every finished tile's node image and table until all are in.
pub(crate) struct Collector<'a> {
    /// Each tile's node image, packed while it waits for the join.
    images: Vec<Option<Vec<u8>>>,
    parts: Vec<Option<TilePart>>,
    grid: &'a TileGrid,
    pub log: TileLog<'a>,
    /// Where each finished tile is recorded, for a resumed job to find it.
    store: Option<&'a WorkDir>,
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
            store: None,
        }
    }

    /// Records every tile that arrives in `store` from now on.
    pub fn store_in(&mut self, store: &'a WorkDir) {
        self.store = Some(store);
    }

    /// Takes tiles finished by an earlier run of the job, as if they had just arrived.
    pub fn resume(&mut self, tiles: Vec<ResumedTile>) {
        for t in tiles {
            if t.index < self.parts.len() {
                self.images[t.index] = Some(t.image);
                self.parts[t.index] = Some(t.part);
                self.log.max_spectral_diff_used = t.max_spectral_diff;
                self.log.done();
            }
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
        // Remote workers writing a mosaic keep their pixels: the image is empty.
        let image = if t.segimg.is_empty() {
            Vec::new()
        } else {
            pack_image(&t.segimg)
        };
        if let Some(store) = self.store {
            store
                .save_tile(index, t.tile.window, &image, &part, t.max_spectral_diff)
                .map_err(|e| StitchError::Output(e.to_string()))?;
        }
        self.images[index] = Some(image);
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

/// The collected tiles joined: each tile's node image (packed; empty where a remote worker
/// kept it) and map to final IDs, by tile index.
pub(crate) struct JoinedTiles {
    pub images: Vec<Vec<u8>>,
    pub maps: Vec<Vec<u32>>,
    pub written: Written,
}

/// Joins the collected tiles' tables; records the join's time.
pub(crate) fn join_collected(
    collector: Collector<'_>,
    min_segment_size: usize,
    threshold_sq: f64,
    four: bool,
    threads: usize,
) -> Result<JoinedTiles, PipelineError> {
    let Collector {
        images, parts, log, ..
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

    Ok(JoinedTiles {
        images: tiles,
        maps,
        written: Written {
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
        },
    })
}

/// Relabels the joined tiles of `grid` and writes them through `sink`'s block preparation on
/// `threads` threads; records each tile's relabelling and writing.
pub(crate) fn write_joined<S: TileSink>(
    images: Vec<Vec<u8>>,
    maps: Vec<Vec<u32>>,
    grid: &TileGrid,
    threads: usize,
    sink: &mut S,
    timings: &mut Timings,
) -> Result<(), PipelineError> {
    let prep = sink.block_prep();
    let windows: Vec<_> = grid.tiles().iter().map(|t| t.window).collect();
    relabel_and_write(images, maps, &windows, threads, &prep, sink, timings)
}

/// One tile relabelled and prepared for the sink, and the time it took.
type Prepared = Result<(OutputBlock, Duration), StitchError>;

/// Relabels every tile through its map and prepares its block on `threads` threads, while
/// this thread writes the blocks in tile order as they come: the writes overlap the
/// relabelling instead of waiting for a batch. At most a few blocks per thread wait to be
/// written.
fn relabel_and_write<S: TileSink>(
    tiles: Vec<Vec<u8>>,
    maps: Vec<Vec<u32>>,
    windows: &[Window],
    threads: usize,
    prep: &BlockPrep,
    sink: &mut S,
    timings: &mut Timings,
) -> Result<(), PipelineError> {
    let n = tiles.len();
    let threads = threads.max(1).min(n.max(1));
    let ahead = 4 * threads;
    // The tiles in order, each taken once.
    let queue = Mutex::new(tiles.into_iter().zip(maps).enumerate());
    // Blocks written so far, and whether the writer stopped (so the others stop too).
    let written = (Mutex::new((0usize, false)), Condvar::new());
    let (tx, rx) = mpsc::channel::<(usize, Prepared)>();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (queue, written) = (&queue, &written);
            s.spawn(move || loop {
                let Some((k, (lz4, map))) = queue.lock().unwrap_or_else(|e| e.into_inner()).next()
                else {
                    return;
                };
                {
                    let mut w = written.0.lock().unwrap_or_else(|e| e.into_inner());
                    while !w.1 && k >= w.0 + ahead {
                        w = written.1.wait(w).unwrap_or_else(|e| e.into_inner());
                    }
                    if w.1 {
                        return;
                    }
                }
                // Every tile is answered, even by a panic, so that the writer never waits for
                // one that cannot come.
                let prepared = catch_unwind(AssertUnwindSafe(|| {
                    relabel_one(&lz4, &map, windows[k], prep)
                }))
                .unwrap_or_else(|_| {
                    Err(StitchError::Output("a relabelling thread panicked".into()))
                });
                if tx.send((k, prepared)).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        let mut write = |p: Prepared| -> Result<(), StitchError> {
            let (block, took) = p?;
            let t = Instant::now();
            sink.write(block)?;
            timings.stitching.record(took + t.elapsed());
            Ok(())
        };
        let mut order = Reorder::new(n);
        let result = (|| -> Result<(), StitchError> {
            while !order.is_done() {
                let (k, p) = rx
                    .recv()
                    .map_err(|_| StitchError::Output("a relabelling thread stopped".into()))?;
                if order.finished(k, p, &mut write)? > 0 {
                    written.0.lock().unwrap_or_else(|e| e.into_inner()).0 = order.consumed();
                    written.1.notify_all();
                }
            }
            Ok(())
        })();
        written.0.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        written.1.notify_all();
        result
    })?;
    Ok(())
}

/// Tile `window`'s node image (packed) relabelled through `map` and prepared for the sink.
fn relabel_one(lz4: &[u8], map: &[u32], window: Window, prep: &BlockPrep) -> Prepared {
    let t = Instant::now();
    let n = window.xsize * window.ysize;
    let mut labels = unpack_labels(lz4, n)
        .ok_or_else(|| StitchError::Output(format!("held tile {window:?} is corrupt")))?;
    relabel(&mut labels, map);
    let block = Array2::from_shape_vec((window.ysize, window.xsize), labels)
        .map_err(|e| StitchError::Output(e.to_string()))?;
    Ok((prep.prepare(window, block)?, t.elapsed()))
}
