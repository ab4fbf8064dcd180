//! # shepseg-exec-threads
//!
//! A [`TileExecutor`] that segments tiles on local worker threads. Each worker opens its own GDAL
//! dataset (datasets are not `Sync`), takes the next tile in the order the stitcher needs them,
//! reads it holding one of at most `max_concurrent_reads` read permits, segments it, and sends it
//! back; blocks of the input that several tiles read are decoded once for all workers
//! ([`shepseg_tiling::SharedBlocks`]). The calling thread puts finished tiles in order and pushes them to the consumer, so
//! stitching starts with the first tile and overlaps segmentation. Which tile may start and the
//! hand-over in order are the executors' shared contract ([`Gate`], [`Reorder`]): a worker may
//! not start a tile more than `workers + max_waiting` ahead of the last tile consumed, so memory
//! grows with workers x tile size, not with the image; the grid's lead tiles (the large corner
//! tile) start first.
//!
//! A tile that fails (read error, panic) or is not done within `tile_timeout` stops the job with
//! an error naming the tile; the other workers stop at their next tile.
//!
//! [`ThreadsExecutor::map_in_order`] is the machinery without the segmentation: any per-tile
//! work, results handed over in tile order. The [`TileExecutor`] implementation is that with
//! "read and segment the tile" as the work.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use shepseg_tiling::{
    read_tile, segment_read, shared_blocks, ExecError, Gate, Raster, Reorder, Tile, TileConsumer,
    TileExecutor, TileFailure, TileJob, TilingError,
};

/// Local worker threads; see the crate docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadsExecutor {
    /// Worker threads (at least 1; at most one per tile is started).
    pub workers: usize,
    /// Tiles being read at once, at most.
    pub max_concurrent_reads: usize,
    /// Finished tiles allowed to wait for the consumer beyond one per worker.
    pub max_waiting: usize,
    /// Longest wait for the next tile the consumer needs.
    pub tile_timeout: Option<Duration>,
}

impl Default for ThreadsExecutor {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_concurrent_reads: 20,
            max_waiting: 2,
            tile_timeout: None,
        }
    }
}

/// Scheduling state shared by the workers and the consumer thread.
struct Sched {
    /// Next position in the dispatch order to hand out.
    next: usize,
    /// Tiles consumed so far.
    consumed: usize,
    /// Set when the job ends early.
    stop: bool,
}

/// Locks the schedule, surviving a poisoned lock (a panicking worker is reported separately).
fn lock(m: &Mutex<Sched>) -> std::sync::MutexGuard<'_, Sched> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A counting semaphore for read permits.
pub struct ReadPermits {
    free: Mutex<usize>,
    cond: Condvar,
}

impl ReadPermits {
    fn new(n: usize) -> Self {
        Self {
            free: Mutex::new(n.max(1)),
            cond: Condvar::new(),
        }
    }

    /// Waits for a permit; it is given back when the guard drops, even if the read panics.
    pub fn acquire(&self) -> ReadPermit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.cond.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        ReadPermit(self)
    }
}

/// A held read permit.
pub struct ReadPermit<'a>(&'a ReadPermits);

impl Drop for ReadPermit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.cond.notify_one();
    }
}

/// What a worker sends back for tile `index`.
enum Outcome<T> {
    Done(Box<T>),
    Failed(TilingError),
    Panicked(String),
    Setup(TilingError),
}

/// A panic's message.
fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl ThreadsExecutor {
    /// Runs `work` on every tile of `tiles` on the worker threads, each with its own dataset of
    /// `input`, and hands the results to `consume` on the calling thread in tile order, with
    /// the window, read permits and timeout of a segmentation job. `work` gets the open raster,
    /// the tile and the read permits (to hold one while reading).
    pub fn map_in_order<T, W, F, E>(
        &self,
        input: &std::path::Path,
        gate: &Gate,
        tiles: &[Tile],
        work: W,
        mut consume: F,
    ) -> Result<(), ExecError<E>>
    where
        T: Send,
        W: Fn(&Raster, Tile, &ReadPermits) -> Result<T, TilingError> + Sync,
        F: FnMut(T) -> Result<(), E>,
    {
        let n = tiles.len();
        let workers = self.workers.max(1).min(n.max(1));
        let order = gate.dispatch_order(n);
        let sched = (
            Mutex::new(Sched {
                next: 0,
                consumed: 0,
                stop: false,
            }),
            Condvar::new(),
        );
        let permits = ReadPermits::new(self.max_concurrent_reads);
        let (tx, rx) = mpsc::channel::<(usize, Outcome<T>)>();

        std::thread::scope(|scope| {
            for _ in 0..workers {
                let tx = tx.clone();
                let (sched, permits, order, work) = (&sched, &permits, &order, &work);
                scope.spawn(move || {
                    let raster = match Raster::open(input) {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = tx.send((usize::MAX, Outcome::Setup(e)));
                            return;
                        }
                    };
                    loop {
                        let index = {
                            let mut s = lock(&sched.0);
                            while !s.stop
                                && s.next < n
                                && !gate.may_start(order[s.next], s.consumed)
                            {
                                s = sched.1.wait(s).unwrap_or_else(|e| e.into_inner());
                            }
                            if s.stop || s.next >= n {
                                return;
                            }
                            s.next += 1;
                            order[s.next - 1]
                        };
                        let outcome =
                            catch_unwind(AssertUnwindSafe(|| work(&raster, tiles[index], permits)));
                        let msg = match outcome {
                            Ok(Ok(done)) => Outcome::Done(Box::new(done)),
                            Ok(Err(e)) => Outcome::Failed(e),
                            Err(p) => Outcome::Panicked(panic_message(p)),
                        };
                        let failed = !matches!(msg, Outcome::Done(_));
                        if tx.send((index, msg)).is_err() || failed {
                            return;
                        }
                    }
                });
            }
            drop(tx);

            let result = (|| {
                let mut reorder = Reorder::new(n);
                while !reorder.is_done() {
                    let received = match self.tile_timeout {
                        Some(t) => rx
                            .recv_timeout(t)
                            .map_err(|e| e == mpsc::RecvTimeoutError::Timeout),
                        None => rx.recv().map_err(|_| false),
                    };
                    let (index, outcome) = match received {
                        Ok(m) => m,
                        Err(timed_out) => {
                            let tile = tiles[reorder.consumed()];
                            if timed_out {
                                return Err(ExecError::Timeout {
                                    col: tile.col,
                                    row: tile.row,
                                    seconds: self.tile_timeout.map_or(0, |t| t.as_secs()),
                                });
                            }
                            return Err(ExecError::tile(
                                tile,
                                TileFailure::Panicked("all workers stopped".into()),
                            ));
                        }
                    };
                    let tile = tiles.get(index).copied();
                    let fail = |cause| match tile {
                        Some(t) => ExecError::tile(t, cause),
                        None => ExecError::Workers(cause.to_string()),
                    };
                    match outcome {
                        Outcome::Done(t) => {
                            let handed = reorder
                                .finished(index, *t, &mut consume)
                                .map_err(ExecError::Consumer)?;
                            if handed > 0 {
                                lock(&sched.0).consumed = reorder.consumed();
                                sched.1.notify_all();
                            }
                        }
                        Outcome::Failed(e) => return Err(fail(TileFailure::Error(e))),
                        Outcome::Panicked(m) => return Err(fail(TileFailure::Panicked(m))),
                        Outcome::Setup(e) => return Err(ExecError::Setup(e)),
                    }
                }
                Ok(())
            })();
            lock(&sched.0).stop = true;
            sched.1.notify_all();
            result
        })
    }
}

impl TileExecutor for ThreadsExecutor {
    fn run<C: TileConsumer>(
        &self,
        job: &TileJob,
        consumer: &mut C,
    ) -> Result<(), ExecError<C::Error>> {
        let gate = Gate::for_grid(&job.grid, self.workers, self.max_waiting);
        // Blocks that several tiles' windows touch are decoded once for all workers, not once
        // per worker's dataset; the first worker to read sets the sharing up with its own.
        let shared = OnceLock::new();
        self.map_in_order(
            &job.input,
            &gate,
            job.grid.tiles(),
            |raster, tile, permits| {
                let read = {
                    let _permit = permits.acquire();
                    let shared = shared.get_or_init(|| shared_blocks(raster, job));
                    read_tile(raster, job, tile, shared.as_ref())
                };
                segment_read(job, tile, raster.size(), read?)
            },
            |t| consumer.consume(t),
        )
    }

    fn concurrency(&self) -> usize {
        self.workers.max(1)
    }
}
