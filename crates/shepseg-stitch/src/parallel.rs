//! A stitcher whose per-pixel work runs on a pool of threads, so that only segment-level
//! bookkeeping and the write stay serial.
//!
//! Tiles are pushed in row-major order, as to [`Stitcher`]. Each one is [`prepare`]d on the
//! pool at once (bounding boxes, trimmed-area counts, and the pair counts across its top and
//! left overlaps against its neighbours' *local* IDs — none of which needs the stitch so far),
//! so several tiles are prepared while earlier ones are stitched. The calling thread then runs
//! [`Stitcher::stitch_prepared`] in order (per segment, not per pixel), the pool maps the
//! block through the resulting lookup table and prepares it as the sink asks
//! ([`TileSink::block_prep`]: overview parts, compression), and the calling thread writes
//! blocks in order.
//! The output is the [`Stitcher`]'s, pixel for pixel. At most `max_in_flight` tiles are held
//! between push and write, so memory stays bounded.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ndarray::Array2;
use shepseg_tiling::{Tile, TileGrid};

use crate::error::StitchError;
use crate::sink::{BlockPrep, OutputBlock, TileSink};
use crate::stitcher::{
    map_block, overlap_strips, prepare, KeptStrips, StitchReport, Stitched, Stitcher, TilePrep,
};

/// Work for the pool.
enum Job {
    Prepare {
        index: usize,
        tile: Tile,
        seg: Arc<Array2<u32>>,
        above: Option<Arc<Array2<u32>>>,
        before: Option<Arc<Array2<u32>>>,
    },
    Map {
        index: usize,
        seg: Arc<Array2<u32>>,
        done: Box<Stitched>,
        prep: BlockPrep,
    },
}

/// What the pool hands back.
enum Done {
    Prepared(usize, Box<TilePrep>),
    Mapped(usize, OutputBlock),
    Failed(StitchError),
    Panicked(String),
}

/// The parallel stitcher; see the module docs.
pub struct ParallelStitcher {
    stitcher: Stitcher,
    grid: TileGrid,
    jobs: Option<mpsc::Sender<Job>>,
    results: mpsc::Receiver<Done>,
    pool: Vec<std::thread::JoinHandle<()>>,
    max_in_flight: usize,
    /// Tiles pushed, stitched (serially) and written.
    pushed: usize,
    stitched: usize,
    written: usize,
    /// Segmentations waiting for their map job.
    segs: HashMap<usize, Arc<Array2<u32>>>,
    prepared: HashMap<usize, Box<TilePrep>>,
    mapped: HashMap<usize, OutputBlock>,
    /// Overlap strips (local IDs) kept for the tiles still to come.
    strips: KeptStrips<Arc<Array2<u32>>>,
    /// Serial stitch time of tiles stitched but not yet written.
    stitch_time: HashMap<usize, Duration>,
    /// Serial time (stitching and writing) per tile written, not yet taken.
    serial: Vec<Duration>,
}

impl ParallelStitcher {
    /// A stitcher for `grid` with `threads` pool threads (at least 1); `compat` reproduces
    /// pyshepseg exactly.
    pub fn new(grid: TileGrid, compat: bool, threads: usize) -> Self {
        let threads = threads.max(1);
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let pool = (0..threads)
            .map(|_| {
                let (rx, tx, grid) = (Arc::clone(&job_rx), done_tx.clone(), grid.clone());
                std::thread::spawn(move || loop {
                    let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                        Ok(j) => j,
                        Err(_) => return,
                    };
                    let done =
                        catch_unwind(AssertUnwindSafe(|| run(&grid, job))).unwrap_or_else(|p| {
                            Done::Panicked(
                                p.downcast_ref::<&str>()
                                    .map(|s| s.to_string())
                                    .or_else(|| p.downcast_ref::<String>().cloned())
                                    .unwrap_or_else(|| "unknown panic".into()),
                            )
                        });
                    if tx.send(done).is_err() {
                        return;
                    }
                })
            })
            .collect();
        let ncols = grid.ncols();
        Self {
            stitcher: Stitcher::new(grid.clone(), compat),
            grid,
            jobs: Some(job_tx),
            results: done_rx,
            pool,
            max_in_flight: 2 * threads + 2,
            pushed: 0,
            stitched: 0,
            written: 0,
            segs: HashMap::new(),
            prepared: HashMap::new(),
            mapped: HashMap::new(),
            strips: KeptStrips::new(ncols),
            stitch_time: HashMap::new(),
            serial: Vec::new(),
        }
    }

    fn send(&self, job: Job) -> Result<(), StitchError> {
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .ok_or_else(|| StitchError::Output("the stitch pool stopped".into()))
    }

    /// Pushes the next tile's segmentation (local IDs from 1, 0 = null); stitches and writes
    /// whatever earlier tiles are ready. Blocks while `max_in_flight` tiles are not yet written.
    pub fn push(&mut self, seg: Array2<u32>, sink: &mut impl TileSink) -> Result<(), StitchError> {
        let tile = *self
            .grid
            .tiles()
            .get(self.pushed)
            .ok_or(StitchError::TooManyTiles)?;
        Stitcher::check_shape(tile, seg.view())?;
        let (above, before) = self.strips.take(tile)?;
        let (right, bottom) = overlap_strips(&self.grid, tile, seg.view());
        self.strips
            .keep(tile, right.map(Arc::new), bottom.map(Arc::new));
        let seg = Arc::new(seg);
        self.segs.insert(self.pushed, Arc::clone(&seg));
        self.send(Job::Prepare {
            index: self.pushed,
            tile,
            seg,
            above,
            before,
        })?;
        self.pushed += 1;
        self.pump(sink, false)?;
        while self.pushed - self.written > self.max_in_flight {
            self.pump(sink, true)?;
        }
        Ok(())
    }

    /// Takes the serial time (stitching and writing) of each tile finished since the last call.
    pub fn take_serial_times(&mut self) -> Vec<Duration> {
        std::mem::take(&mut self.serial)
    }

    /// Handles finished pool work: stitches prepared tiles in order and writes mapped blocks in
    /// order. With `block`, waits for at least one result.
    fn pump(&mut self, sink: &mut impl TileSink, block: bool) -> Result<(), StitchError> {
        let mut wait = block;
        loop {
            let done = if wait {
                self.results
                    .recv()
                    .map_err(|_| StitchError::Output("the stitch pool stopped".into()))?
            } else {
                match self.results.try_recv() {
                    Ok(d) => d,
                    Err(_) => return Ok(()),
                }
            };
            wait = false;
            match done {
                Done::Prepared(i, prep) => {
                    self.prepared.insert(i, prep);
                }
                Done::Mapped(i, mapped) => {
                    self.mapped.insert(i, mapped);
                }
                Done::Failed(e) => return Err(e),
                Done::Panicked(msg) => {
                    return Err(StitchError::Output(format!(
                        "stitch thread panicked: {msg}"
                    )))
                }
            }
            while let Some(prep) = self.prepared.remove(&self.stitched) {
                let t = Instant::now();
                let done = self.stitcher.stitch_prepared(&prep)?;
                self.stitch_time.insert(self.stitched, t.elapsed());
                let seg = self
                    .segs
                    .remove(&self.stitched)
                    .ok_or_else(|| StitchError::Output("tile lost in the stitch pool".into()))?;
                self.send(Job::Map {
                    index: self.stitched,
                    seg,
                    done: Box::new(done),
                    prep: sink.block_prep(),
                })?;
                self.stitched += 1;
            }
            while let Some(block) = self.mapped.remove(&self.written) {
                let t = Instant::now();
                sink.write(block)?;
                let stitch = self.stitch_time.remove(&self.written).unwrap_or_default();
                self.serial.push(stitch + t.elapsed());
                self.written += 1;
            }
        }
    }

    /// Stitches and writes every tile still in flight.
    pub fn flush(&mut self, sink: &mut impl TileSink) -> Result<(), StitchError> {
        while self.written < self.pushed {
            self.pump(sink, true)?;
        }
        Ok(())
    }

    /// Stitches and writes every tile still in flight, then ends the stitch (every tile must
    /// have been pushed).
    pub fn finish(mut self, sink: &mut impl TileSink) -> Result<StitchReport, StitchError> {
        self.flush(sink)?;
        self.jobs = None;
        for h in self.pool.drain(..) {
            let _ = h.join();
        }
        let stitcher =
            std::mem::replace(&mut self.stitcher, Stitcher::new(self.grid.clone(), false));
        stitcher.finish()
    }
}

impl Drop for ParallelStitcher {
    fn drop(&mut self) {
        // Closing the job channel lets the pool threads end.
        self.jobs = None;
    }
}

/// One job on a pool thread.
fn run(grid: &TileGrid, job: Job) -> Done {
    match job {
        Job::Prepare {
            index,
            tile,
            seg,
            above,
            before,
        } => Done::Prepared(
            index,
            Box::new(prepare(
                grid,
                tile,
                seg.view(),
                above.as_ref().map(|a| a.view()),
                before.as_ref().map(|b| b.view()),
            )),
        ),
        Job::Map {
            index,
            seg,
            done,
            prep,
        } => {
            let block = map_block(seg.view(), done.trim, &done.out_lut);
            match prep.prepare(done.trim.window(done.tile), block) {
                Ok(block) => Done::Mapped(index, block),
                Err(e) => Done::Failed(e),
            }
        }
    }
}
