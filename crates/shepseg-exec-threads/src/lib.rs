//! # shepseg-exec-threads
//!
//! A [`TileExecutor`] that segments tiles on local worker threads. Each worker opens its own GDAL
//! dataset (datasets are not `Sync`), takes the next tile in the order the stitcher needs them,
//! reads it holding one of at most `max_concurrent_reads` read permits, segments it, and sends it
//! back. The calling thread puts finished tiles in order and pushes them to the consumer, so
//! stitching starts with the first tile and overlaps segmentation. A worker may not start a tile
//! more than `workers + max_waiting` ahead of the last tile consumed: finished tiles waiting for
//! the consumer are capped, and memory grows with workers x tile size, not with the image. The
//! grid's lead tiles ([`shepseg_tiling::TileGrid::dispatch_order`]: the large corner tile) are
//! started first and held, outside that cap, until their turn.
//!
//! A tile that fails (read error, panic) or is not done within `tile_timeout` stops the job with
//! an error naming the tile; the other workers stop at their next tile.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use shepseg_tiling::{
    read_tile, segment_read, ExecError, Raster, SegmentedTile, TileConsumer, TileExecutor, TileJob,
    TilingError,
};

/// Local worker threads; see the crate docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadsExecutor {
    /// Worker threads (at least 1).
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

/// When a worker may start a tile: the `lead` tiles at the head of the dispatch order at once,
/// the others in turn with at most `window` of them started and not yet consumed. The lead
/// tiles are the grid's last ([`shepseg_tiling::TileGrid::dispatch_order`]), so until the end
/// the consumed tiles are all others, and at most `window + lead` tiles are ever held.
struct Gate {
    lead: usize,
    window: usize,
}

impl Gate {
    /// Whether the tile at position `next` of the dispatch order may start once `consumed`
    /// tiles have been consumed.
    fn may_start(&self, next: usize, consumed: usize) -> bool {
        next < self.lead || next - self.lead < consumed + self.window
    }
}

/// Locks the schedule, surviving a poisoned lock (a panicking worker is reported separately).
fn lock(m: &Mutex<Sched>) -> std::sync::MutexGuard<'_, Sched> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A counting semaphore for read permits.
struct Permits {
    free: Mutex<usize>,
    cond: Condvar,
}

impl Permits {
    /// Waits for a permit; it is given back when the guard drops, even if the read panics.
    fn acquire(&self) -> PermitGuard<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.cond.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        PermitGuard(self)
    }
}

/// A held read permit.
struct PermitGuard<'a>(&'a Permits);

impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.cond.notify_one();
    }
}

/// What a worker sends back for tile `index`.
enum Outcome {
    Done(Box<SegmentedTile>),
    Failed(TilingError),
    Panicked(String),
    Setup(TilingError),
}

impl TileExecutor for ThreadsExecutor {
    fn run<C: TileConsumer>(
        &self,
        job: &TileJob,
        consumer: &mut C,
    ) -> Result<(), ExecError<C::Error>> {
        let tiles = job.grid.tiles();
        let n = tiles.len();
        let workers = self.workers.max(1).min(n.max(1));
        let (order, lead) = job.grid.dispatch_order(workers);
        let gate = Gate {
            lead,
            window: workers + self.max_waiting,
        };
        let sched = (
            Mutex::new(Sched {
                next: 0,
                consumed: 0,
                stop: false,
            }),
            Condvar::new(),
        );
        let permits = Permits {
            free: Mutex::new(self.max_concurrent_reads.max(1)),
            cond: Condvar::new(),
        };
        let (tx, rx) = mpsc::channel::<(usize, Outcome)>();

        std::thread::scope(|scope| {
            for _ in 0..workers {
                let tx = tx.clone();
                let (sched, permits, order, gate) = (&sched, &permits, &order, &gate);
                scope.spawn(move || {
                    let raster = match Raster::open(&job.input) {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = tx.send((usize::MAX, Outcome::Setup(e)));
                            return;
                        }
                    };
                    loop {
                        let index = {
                            let mut s = lock(&sched.0);
                            while !s.stop && s.next < n && !gate.may_start(s.next, s.consumed) {
                                s = sched.1.wait(s).unwrap_or_else(|e| e.into_inner());
                            }
                            if s.stop || s.next >= n {
                                return;
                            }
                            s.next += 1;
                            order[s.next - 1]
                        };
                        let tile = tiles[index];
                        let outcome = catch_unwind(AssertUnwindSafe(|| {
                            let read = {
                                let _permit = permits.acquire();
                                read_tile(&raster, job, tile)
                            };
                            segment_read(job, tile, read?)
                        }));
                        let msg = match outcome {
                            Ok(Ok(done)) => Outcome::Done(Box::new(done)),
                            Ok(Err(e)) => Outcome::Failed(e),
                            Err(p) => Outcome::Panicked(
                                p.downcast_ref::<&str>()
                                    .map(|s| s.to_string())
                                    .or_else(|| p.downcast_ref::<String>().cloned())
                                    .unwrap_or_else(|| "unknown panic".into()),
                            ),
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
                let mut waiting: BTreeMap<usize, Box<SegmentedTile>> = BTreeMap::new();
                let mut consumed = 0;
                while consumed < n {
                    let received = match self.tile_timeout {
                        Some(t) => rx
                            .recv_timeout(t)
                            .map_err(|e| e == mpsc::RecvTimeoutError::Timeout),
                        None => rx.recv().map_err(|_| false),
                    };
                    let (index, outcome) = match received {
                        Ok(m) => m,
                        Err(timed_out) => {
                            let tile = tiles[consumed];
                            if timed_out {
                                return Err(ExecError::Timeout {
                                    col: tile.col,
                                    row: tile.row,
                                    seconds: self.tile_timeout.map_or(0, |t| t.as_secs()),
                                });
                            }
                            return Err(ExecError::Panic {
                                col: tile.col,
                                row: tile.row,
                                message: "all workers stopped".into(),
                            });
                        }
                    };
                    let tile = tiles.get(index).copied();
                    let (col, row) = tile.map_or((0, 0), |t| (t.col, t.row));
                    match outcome {
                        Outcome::Done(t) => {
                            waiting.insert(index, t);
                        }
                        Outcome::Failed(source) => {
                            return Err(ExecError::Tile { col, row, source })
                        }
                        Outcome::Panicked(message) => {
                            return Err(ExecError::Panic { col, row, message })
                        }
                        Outcome::Setup(e) => return Err(ExecError::Setup(e)),
                    }
                    while let Some(t) = waiting.remove(&consumed) {
                        consumer.consume(*t).map_err(ExecError::Consumer)?;
                        consumed += 1;
                        lock(&sched.0).consumed = consumed;
                        sched.1.notify_all();
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

#[cfg(test)]
mod tests {
    use super::*;
    use shepseg_tiling::TileGrid;

    /// Workers finishing tiles in a scrambled order, the consumer taking them in grid order:
    /// the gate never lets more than `window + lead` tiles be held, never stalls, and starts
    /// the lead tile first.
    #[test]
    fn the_gate_bounds_held_tiles_and_never_stalls() {
        let grid = TileGrid::new(1000, 700, 128, 32).unwrap();
        let n = grid.tiles().len();
        for (workers, max_waiting) in [(1, 0), (2, 2), (3, 1), (8, 2)] {
            let (order, lead) = grid.dispatch_order(workers);
            let gate = Gate {
                lead,
                window: workers + max_waiting,
            };
            let (mut next, mut consumed) = (0, 0);
            let mut running: Vec<usize> = Vec::new();
            let mut finished = vec![false; n];
            let mut step = 0u64;
            while consumed < n {
                while running.len() < workers && next < n && gate.may_start(next, consumed) {
                    running.push(order[next]);
                    next += 1;
                }
                assert!(!running.is_empty(), "stalled at {consumed} consumed");
                // A pseudo-random running tile finishes.
                step = step
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let t = running.swap_remove((step >> 33) as usize % running.len());
                finished[t] = true;
                while consumed < n && finished[consumed] {
                    consumed += 1;
                }
                let held = order[..next].iter().filter(|&&t| t >= consumed).count();
                assert!(held <= gate.window + lead, "{held} tiles held");
            }
            assert_eq!(order[0], if workers > 1 { n - 1 } else { 0 });
        }
    }
}
