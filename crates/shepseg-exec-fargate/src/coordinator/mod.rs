//! The coordinator: a [`TileExecutor`] whose workers connect over TCP.
//!
//! It listens, has a [`WorkerLauncher`] start the workers (local processes, Fargate tasks, ...),
//! authenticates each connection, and leases tiles: each tile to one worker at a time, the
//! grid's lead tiles first (the large corner tile, see
//! [`shepseg_tiling::TileGrid::dispatch_order`]), then lowest index first, never more than
//! `workers + max_waiting` tiles ahead of the stitcher (so finished tiles waiting for it stay
//! bounded). A worker that disconnects, crashes or misses heartbeats
//! loses its leases and their tiles go back in the queue; a tile that fails `tile_retries` times
//! fails the job with the last error. Finished tiles are put back in order on the calling thread
//! and pushed to the consumer exactly as the threads executor does, so the output is the same.
//!
//! Misbehaving connections (wrong secret, garbage, another protocol version, an oversized frame)
//! are dropped and logged; the job goes on.

mod leases;
mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shepseg_tiling::{
    ExecError, Gate, MosaicJob, Reorder, Tile, TileConsumer, TileExecutor, TileFailure, TileJob,
};
use tokio::runtime::Handle;
use tokio::sync::{Notify, Semaphore};

use crate::error::RemoteError;
use crate::protocol::{JobSpec, Secret, WireMosaic, SECRET_ENV};
use leases::{Event, Shared, State};
use session::accept_loop;

/// How a launched worker reaches the coordinator.
#[derive(Debug, Clone)]
pub struct WorkerInvocation {
    /// `HOST:PORT` to dial.
    pub connect: String,
    /// The job secret; it travels in [`SECRET_ENV`], never on a command line.
    pub secret: Secret,
}

impl WorkerInvocation {
    /// The worker's arguments after the program name: `worker --connect HOST:PORT`.
    pub fn args(&self) -> Vec<String> {
        vec!["worker".into(), "--connect".into(), self.connect.clone()]
    }

    /// The worker's environment: the secret.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![(SECRET_ENV.into(), self.secret.to_hex())]
    }
}

/// Starts, watches and cleans up workers; the coordinator judges them by their connections.
pub trait WorkerLauncher: Send {
    /// Starts `count` more workers.
    fn launch(
        &mut self,
        rt: &Handle,
        count: usize,
        inv: &WorkerInvocation,
    ) -> Result<(), RemoteError>;
    /// Reports workers that stopped since the last call (exit codes, reasons), for the log.
    fn poll(&mut self, rt: &Handle) -> Vec<String>;
    /// Workers seen stopped so far (by the last [`Self::poll`]), joined or not.
    fn stopped(&self) -> usize {
        0
    }
    /// When every worker launched so far has stopped (as the last [`Self::poll`] saw), why
    /// the last one did: while no worker has joined, the job fails at once with it rather
    /// than waiting out the barrier. `None` while any may still be running.
    fn all_stopped(&self) -> Option<String> {
        None
    }
    /// Stops every worker still running and frees what `launch` created. Called exactly once
    /// per job, on success and on failure.
    fn shutdown(&mut self, rt: &Handle) -> Result<(), RemoteError>;
}

/// Settings of a remote job.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Where to listen (`--listen`); port 0 picks a free one.
    pub listen: SocketAddr,
    /// The `HOST:PORT` workers dial (`--advertise`); default: the listening address.
    pub advertise: Option<String>,
    /// Workers to start (at most one per tile).
    pub workers: usize,
    /// Tiles read at once, at most, over all workers.
    pub max_concurrent_reads: usize,
    /// Finished tiles allowed to wait for the consumer beyond one per worker.
    pub max_waiting: usize,
    /// Attempts per tile before the job fails.
    pub tile_retries: usize,
    /// A worker silent this long is lost.
    pub heartbeat_timeout: Duration,
    /// Longest wait for the next tile the consumer needs.
    pub tile_timeout: Option<Duration>,
    /// Longest time with no worker connected (at the start, or after all were lost).
    pub barrier_timeout: Duration,
    /// Replacement workers launched at most, over the job, for lost ones.
    pub max_replacements: usize,
    /// GDAL configuration options for the workers (`--config`). Options whose name looks like a
    /// secret (`SECRET`, `TOKEN`, `PASSWORD`, `KEY` in it) are not sent: the job channel is
    /// authenticated, not encrypted. Give workers credentials through their environment or role.
    pub gdal_config: Vec<(String, String)>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            workers: 2,
            max_concurrent_reads: 20,
            max_waiting: 2,
            tile_retries: 3,
            heartbeat_timeout: Duration::from_secs(30),
            tile_timeout: None,
            barrier_timeout: Duration::from_secs(600),
            max_replacements: 10,
            gdal_config: Vec::new(),
        }
    }
}

/// What happened to the workers during a job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteReport {
    /// Workers that authenticated.
    pub workers_joined: usize,
    /// Workers lost mid-job (disconnected, crashed, silent).
    pub workers_lost: usize,
    /// Workers that left on a signal, handing back their tile.
    pub workers_left: usize,
    /// Connections refused (bad secret, garbage, wrong version, oversized frame).
    pub connections_refused: usize,
    /// Tiles taken back from lost, failing or leaving workers and queued again.
    pub tiles_requeued: usize,
    /// Replacement workers launched.
    pub replacements: usize,
    /// Bytes the coordinator received from workers (every frame, handshakes included).
    pub coordinator_bytes_in: u64,
    /// Bytes the coordinator sent to workers.
    pub coordinator_bytes_out: u64,
    /// Log lines (joins, losses, refusals, worker exits), in order.
    pub log: Vec<String>,
}

/// The counters of a [`RemoteReport`] the job loop reads as it goes.
struct Counts {
    workers_joined: usize,
    workers_lost: usize,
    workers_left: usize,
    replacements: usize,
}

/// A [`TileExecutor`] whose workers connect over TCP; see the module docs.
pub struct RemoteExecutor<L> {
    options: RemoteOptions,
    launcher: Mutex<L>,
    report: Mutex<RemoteReport>,
    log: Box<dyn Fn(&str) + Send + Sync>,
    cancel: Option<Arc<AtomicBool>>,
}

impl<L: WorkerLauncher> RemoteExecutor<L> {
    /// An executor that starts its workers with `launcher`; `log` receives one line per event.
    pub fn new(options: RemoteOptions, launcher: L, log: Box<dyn Fn(&str) + Send + Sync>) -> Self {
        Self {
            options,
            launcher: Mutex::new(launcher),
            report: Mutex::new(RemoteReport::default()),
            log,
            cancel: None,
        }
    }

    /// Stops the job (workers stopped, launcher cleaned up, an error returned) when `flag`
    /// becomes true, e.g. on Ctrl-C.
    pub fn with_cancel(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// What happened to the workers in the last job.
    pub fn report(&self) -> RemoteReport {
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The report's counters, without its log.
    fn counts(&self) -> Counts {
        let r = self.report.lock().unwrap_or_else(|e| e.into_inner());
        Counts {
            workers_joined: r.workers_joined,
            workers_lost: r.workers_lost,
            workers_left: r.workers_left,
            replacements: r.replacements,
        }
    }

    fn note(&self, line: String) {
        (self.log)(&line);
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .log
            .push(line);
    }
}

impl<L: WorkerLauncher> TileExecutor for RemoteExecutor<L> {
    fn run<C: TileConsumer>(
        &self,
        job: &TileJob,
        consumer: &mut C,
    ) -> Result<(), ExecError<C::Error>> {
        let setup = |e: String| ExecError::Workers(e);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("shepseg-coordinator")
            .build()
            .map_err(|e| setup(format!("cannot start the coordinator runtime: {e}")))?;
        let listen_err = |addr: SocketAddr, reason: String| ExecError::Listen {
            addr: addr.to_string(),
            reason,
        };
        let at = self.options.listen;
        let listener =
            std::net::TcpListener::bind(at).map_err(|e| listen_err(at, e.to_string()))?;
        let local = listener
            .local_addr()
            .map_err(|e| listen_err(at, e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| listen_err(at, e.to_string()))?;
        let listener = {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(|e| listen_err(at, e.to_string()))?
        };
        let connect = match &self.options.advertise {
            Some(a) => a.clone(),
            None if local.ip().is_unspecified() => {
                return Err(listen_err(
                    local,
                    "a wildcard address, which workers cannot dial: give the address they dial"
                        .into(),
                ))
            }
            None => local.to_string(),
        };
        let secret = Secret::generate().map_err(|e| setup(e.to_string()))?;
        let tiles = job.grid.tiles().to_vec();
        let n = tiles.len();
        // A worker without a tile to take would only join and leave.
        let workers = self.options.workers.clamp(1, n.max(1));
        let max_pixels = tiles
            .iter()
            .map(|t| t.window.xsize * t.window.ysize)
            .max()
            .unwrap_or(0);
        let (forwarded, withheld): (Vec<_>, Vec<_>) = self
            .options
            .gdal_config
            .iter()
            .cloned()
            .partition(|(k, _)| !looks_secret(k));
        for (k, _) in &withheld {
            self.note(format!(
                "GDAL option {k} not forwarded to workers (it looks like a secret; give workers credentials through their environment or role)"
            ));
        }
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: (0..n).collect(),
                leases: HashMap::new(),
                attempts: HashMap::new(),
                consumed: 0,
                stop: false,
            }),
            work: Notify::new(),
            reads: Arc::new(Semaphore::new(self.options.max_concurrent_reads.max(1))),
            secret: secret.clone(),
            job: JobSpec {
                input: job.input.to_string_lossy().into_owned(),
                bands: job.bands.clone(),
                null: job.null,
                model: job.model.clone(),
                params: job.params,
                gdal_config: forwarded.clone(),
                sample_skip: job.sample_skip.map(|s| s as u64),
                mosaic: job.mosaic.as_ref().map(|m| {
                    let (tiles, write) = match m {
                        MosaicJob::KeepNodes(t) => (t, false),
                        MosaicJob::Write { tiles, .. } => (tiles, true),
                    };
                    WireMosaic {
                        dir: tiles.dir.to_string_lossy().into_owned(),
                        projection: tiles.projection.clone(),
                        geo_transform: tiles.geo_transform,
                        write,
                    }
                }),
            },
            tiles: tiles.clone(),
            maps: match &job.mosaic {
                Some(MosaicJob::Write { maps, .. }) => Some(Arc::clone(maps)),
                _ => None,
            },
            gate: Gate::for_grid(&job.grid, workers, self.options.max_waiting),
            retries: self.options.tile_retries.max(1),
            heartbeat: self.options.heartbeat_timeout,
            // The segment image, and in the seamless mode the tile's table: at most one node
            // per pixel (size, first pixel, key, a few neighbours, a sum per band) plus the
            // crossing single pixels (up to 8 neighbours of at most 20 bytes each).
            max_frame: lz4_flex::block::get_maximum_output_size(max_pixels * 4)
                + max_pixels * (64 + 160 + 19 * job.bands.len())
                + (1 << 16),
            events: tx,
            connections: Default::default(),
            bytes_in: Default::default(),
            bytes_out: Default::default(),
        });
        rt.spawn(accept_loop(listener, Arc::clone(&shared)));

        let inv = WorkerInvocation {
            connect: connect.clone(),
            secret,
        };
        self.note(format!(
            "coordinator listening on {local}; workers dial {connect}"
        ));
        let mut launcher = self.launcher.lock().unwrap_or_else(|e| e.into_inner());
        let result = match launcher.launch(rt.handle(), workers, &inv) {
            Ok(()) => self.drive(&rt, &mut *launcher, &inv, &shared, &rx, &tiles, consumer),
            Err(e) => Err(ExecError::Workers(format!("cannot start workers: {e}"))),
        };
        {
            let mut st = shared.lock();
            st.stop = true;
        }
        shared.work.notify_waiters();
        // Let idle workers hear that there is no more work, so they exit cleanly.
        let t = Instant::now();
        while shared.connections.load(Ordering::SeqCst) > 0 && t.elapsed() < Duration::from_secs(2)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let cleanup = launcher.shutdown(rt.handle());
        for line in launcher.poll(rt.handle()) {
            self.note(line);
        }
        drop(launcher);
        rt.shutdown_timeout(Duration::from_secs(2));
        self.bump(|r| {
            // A job may run more than once (a mosaic's tiles are written by a second run):
            // the report covers them all.
            r.coordinator_bytes_in += shared.bytes_in.load(Ordering::SeqCst);
            r.coordinator_bytes_out += shared.bytes_out.load(Ordering::SeqCst);
        });
        match (result, cleanup) {
            (Err(e), _) => Err(e),
            (Ok(()), Err(e)) => Err(ExecError::Workers(format!("cleaning up workers: {e}"))),
            (Ok(()), Ok(())) => Ok(()),
        }
    }

    fn writes_mosaic_tiles(&self) -> bool {
        true
    }

    fn samples_on_workers(&self) -> bool {
        true
    }
}

impl<L: WorkerLauncher> RemoteExecutor<L> {
    /// The calling thread's loop: orders finished tiles for the consumer, replaces lost
    /// workers, enforces the timeouts.
    #[allow(clippy::too_many_arguments)]
    fn drive<C: TileConsumer>(
        &self,
        rt: &tokio::runtime::Runtime,
        launcher: &mut L,
        inv: &WorkerInvocation,
        shared: &Shared,
        rx: &mpsc::Receiver<Event>,
        tiles: &[Tile],
        consumer: &mut C,
    ) -> Result<(), ExecError<C::Error>> {
        let n = tiles.len();
        let mut reorder = Reorder::new(n);
        let mut live = 0usize;
        // Workers that stopped before joining, replaced so far.
        let mut replaced_unjoined = 0usize;
        let mut excess_since: Option<Instant> = None;
        // Workers seen stopped while none had joined.
        let mut stopped_unjoined = 0usize;
        let mut alone_since = Some(Instant::now());
        let mut last_progress = Instant::now();
        while !reorder.is_done() {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Event::Tile(index, tile)) => {
                    let handed = reorder
                        .finished(index, *tile, |t| consumer.consume(t))
                        .map_err(ExecError::Consumer)?;
                    if handed > 0 {
                        last_progress = Instant::now();
                        shared.lock().consumed = reorder.consumed();
                        shared.work.notify_waiters();
                    }
                }
                Ok(Event::Joined(name)) => {
                    live += 1;
                    alone_since = None;
                    self.bump(|r| r.workers_joined += 1);
                    self.note(format!("worker {name} joined"));
                }
                Ok(ev @ (Event::Lost { .. } | Event::Left { .. })) => {
                    live = live.saturating_sub(1);
                    if live == 0 {
                        alone_since = Some(Instant::now());
                    }
                    match ev {
                        Event::Lost { name, reason } => {
                            self.bump(|r| r.workers_lost += 1);
                            self.note(format!("worker {name} lost: {reason}"));
                        }
                        Event::Left { name, tile } => {
                            self.bump(|r| r.workers_left += 1);
                            self.note(match tile {
                                Some(i) => format!(
                                    "worker {name} left on a signal and handed back tile {i}"
                                ),
                                None => format!("worker {name} left on a signal"),
                            });
                        }
                        _ => {}
                    }
                    // A worker that left on a signal (a Spot interruption) is replaced as a
                    // lost one is: its task is going away.
                    self.replace_one(launcher, rt, inv, "");
                }
                Ok(Event::Refused(line)) => {
                    self.bump(|r| r.connections_refused += 1);
                    self.note(line);
                }
                Ok(Event::Requeued) => self.bump(|r| r.tiles_requeued += 1),
                Ok(Event::Fatal { index, message }) => {
                    return Err(ExecError::tile(
                        tiles[index],
                        TileFailure::Reported(message),
                    ));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(ExecError::Workers("the coordinator stopped".into()))
                }
            }
            for line in launcher.poll(rt.handle()) {
                self.note(line);
            }
            // The counters only: `report()` would clone the whole log every 100 ms.
            let r = self.counts();
            if live == 0 && r.workers_joined == 0 {
                if let Some(why) = launcher.all_stopped() {
                    return Err(ExecError::Workers(never_joined(&why, &inv.connect)));
                }
            }
            // Once a worker has joined (so the image, network and secret work), a task that
            // stopped before its worker joined is replaced too: those seen stopped while no
            // worker had joined at once; later ones as stops beyond the sessions that ended,
            // once that excess has lasted a heartbeat timeout (by then a joined worker's lost
            // connection has been noticed).
            if r.workers_joined == 0 {
                stopped_unjoined = launcher.stopped();
            }
            let never = launcher
                .stopped()
                .saturating_sub(r.workers_lost + r.workers_left)
                .max(stopped_unjoined);
            if r.workers_joined > 0 {
                while replaced_unjoined < stopped_unjoined {
                    replaced_unjoined += 1;
                    self.replace_one(launcher, rt, inv, " for one that stopped before joining");
                }
            }
            if r.workers_joined == 0 || never <= replaced_unjoined {
                excess_since = None;
            } else if excess_since.get_or_insert_with(Instant::now).elapsed()
                >= self.options.heartbeat_timeout
            {
                while replaced_unjoined < never {
                    replaced_unjoined += 1;
                    self.replace_one(launcher, rt, inv, " for one that stopped before joining");
                }
                excess_since = None;
            }
            if self
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::SeqCst))
            {
                return Err(ExecError::Workers("interrupted".into()));
            }
            if let Some(since) = alone_since {
                if since.elapsed() > self.options.barrier_timeout {
                    return Err(ExecError::NoWorkers {
                        seconds: self.options.barrier_timeout.as_secs(),
                    });
                }
            }
            if let Some(limit) = self.options.tile_timeout {
                if last_progress.elapsed() > limit {
                    let t = tiles[reorder.consumed()];
                    return Err(ExecError::Timeout {
                        col: t.col,
                        row: t.row,
                        seconds: limit.as_secs(),
                    });
                }
            }
        }
        Ok(())
    }

    fn bump(&self, f: impl FnOnce(&mut RemoteReport)) {
        f(&mut self.report.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Launches one replacement worker unless the limit is reached; `why` ends the log line.
    fn replace_one(
        &self,
        launcher: &mut L,
        rt: &tokio::runtime::Runtime,
        inv: &WorkerInvocation,
        why: &str,
    ) {
        if self.counts().replacements >= self.options.max_replacements {
            return;
        }
        match launcher.launch(rt.handle(), 1, inv) {
            Ok(()) => {
                self.bump(|r| r.replacements += 1);
                self.note(format!("launched a replacement worker{why}"));
            }
            Err(e) => self.note(format!("cannot launch a replacement worker: {e}")),
        }
    }
}

/// Whether a GDAL option's name looks like it holds a credential.
fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    ["SECRET", "TOKEN", "PASSWORD", "KEY"]
        .iter()
        .any(|w| k.contains(w))
}

/// The error for workers that all stopped before one joined: `why` is the last stop's reason,
/// with a hint when it looks like networking (workers dial `connect`).
fn never_joined(why: &str, connect: &str) -> String {
    let lower = why.to_ascii_lowercase();
    let networking = [
        "resourceinitializationerror",
        "timeout",
        "timed out",
        "connect",
        "network",
    ]
    .iter()
    .any(|k| lower.contains(k))
        || lower.contains("exit code 1");
    let hint = if networking {
        format!(
            " (if the workers cannot reach the coordinator: they dial {connect}; check that \
             address and that the security groups and subnet let TCP through to it)"
        )
    } else {
        String::new()
    };
    format!("every worker stopped before joining the job; the last: {why}{hint}")
}
