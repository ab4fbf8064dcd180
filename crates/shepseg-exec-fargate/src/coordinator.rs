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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shepseg_tiling::{ExecError, SegmentedTile, Tile, TileConsumer, TileExecutor, TileJob};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::error::RemoteError;
use crate::protocol::{
    decode, random_bytes, read_frame, write_msg, CoordMsg, JobSpec, Role, Secret, WorkerMsg,
    MAX_HANDSHAKE_FRAME, PROTOCOL_VERSION, SECRET_ENV,
};

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
    /// Workers to start.
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
    /// Connections refused (bad secret, garbage, wrong version, oversized frame).
    pub connections_refused: usize,
    /// Tiles taken back from lost or failing workers and queued again.
    pub tiles_requeued: usize,
    /// Replacement workers launched.
    pub replacements: usize,
    /// Log lines (joins, losses, refusals, worker exits), in order.
    pub log: Vec<String>,
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

    fn note(&self, line: String) {
        (self.log)(&line);
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .log
            .push(line);
    }
}

/// Events from the connection tasks to the calling thread.
enum Event {
    Joined(String),
    Lost { name: String, reason: String },
    Refused(String),
    Requeued,
    Tile(usize, Box<SegmentedTile>),
    Fatal { index: usize, message: String },
}

/// Lease bookkeeping shared by the connection tasks.
struct State {
    /// Tiles waiting for a worker.
    pending: BTreeSet<usize>,
    /// Tile -> connection holding it.
    leases: HashMap<usize, u64>,
    /// Failed attempts per tile, with the last error.
    attempts: HashMap<usize, (usize, String)>,
    /// Tiles consumed by the stitcher (leases stay below `consumed + window`).
    consumed: usize,
    /// The job is over.
    stop: bool,
}

/// What every connection task shares.
struct Shared {
    state: Mutex<State>,
    work: Notify,
    reads: Arc<Semaphore>,
    secret: Secret,
    job: JobSpec,
    tiles: Vec<Tile>,
    /// Tiles leased before any other whenever they wait (the grid's last, so outside the
    /// window until the end).
    lead: Vec<usize>,
    window: usize,
    retries: usize,
    heartbeat: Duration,
    max_frame: usize,
    events: mpsc::Sender<Event>,
    /// Authenticated connections still open.
    connections: std::sync::atomic::AtomicUsize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a failed attempt on a tile; re-queues it or fails the job.
    fn fail_attempt(&self, st: &mut State, index: usize, message: String) {
        st.leases.remove(&index);
        let entry = st.attempts.entry(index).or_insert((0, String::new()));
        entry.0 += 1;
        entry.1 = message.clone();
        if entry.0 >= self.retries {
            let attempts = entry.0;
            let _ = self.events.send(Event::Fatal {
                index,
                message: format!("failed on {attempts} attempts; last error: {message}"),
            });
        } else {
            st.pending.insert(index);
            let _ = self.events.send(Event::Requeued);
        }
        self.work.notify_waiters();
    }

    /// Gives a waiting lead tile, else the lowest waiting tile inside the window, to
    /// connection `conn`.
    fn try_lease(&self, conn: u64) -> Lease {
        let mut st = self.lock();
        if st.stop {
            return Lease::Over;
        }
        if let Some(&i) = self.lead.iter().find(|i| st.pending.contains(i)) {
            st.pending.remove(&i);
            st.leases.insert(i, conn);
            return Lease::Tile(i);
        }
        let limit = st.consumed + self.window;
        match st.pending.first().copied() {
            Some(i) if i < limit => {
                st.pending.remove(&i);
                st.leases.insert(i, conn);
                Lease::Tile(i)
            }
            _ if st.pending.is_empty()
                && st.leases.is_empty()
                && st.consumed >= self.tiles.len() =>
            {
                Lease::Over
            }
            _ => Lease::Wait,
        }
    }
}

enum Lease {
    Tile(usize),
    Wait,
    Over,
}

impl<L: WorkerLauncher> TileExecutor for RemoteExecutor<L> {
    fn run<C: TileConsumer>(
        &self,
        job: &TileJob,
        consumer: &mut C,
    ) -> Result<(), ExecError<C::Error>> {
        *self.report.lock().unwrap_or_else(|e| e.into_inner()) = RemoteReport::default();
        let setup = |e: String| ExecError::Workers(e);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("shepseg-coordinator")
            .build()
            .map_err(|e| setup(format!("cannot start the coordinator runtime: {e}")))?;
        let listener = std::net::TcpListener::bind(self.options.listen).map_err(|e| {
            setup(format!(
                "--listen {}: cannot listen: {e}",
                self.options.listen
            ))
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| setup(format!("--listen: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| setup(format!("--listen: {e}")))?;
        let listener = {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(|e| setup(format!("--listen: {e}")))?
        };
        let connect = match &self.options.advertise {
            Some(a) => a.clone(),
            None if local.ip().is_unspecified() => {
                return Err(setup(format!(
                    "--listen {local} is a wildcard address: give --advertise HOST:PORT for workers to dial"
                )))
            }
            None => local.to_string(),
        };
        let secret = Secret::generate().map_err(|e| setup(e.to_string()))?;
        let tiles = job.grid.tiles().to_vec();
        let n = tiles.len();
        let workers = self.options.workers.max(1);
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
            },
            tiles: tiles.clone(),
            lead: {
                let (order, lead) = job.grid.dispatch_order(workers);
                order[..lead].to_vec()
            },
            window: workers + self.options.max_waiting,
            retries: self.options.tile_retries.max(1),
            heartbeat: self.options.heartbeat_timeout,
            max_frame: lz4_flex::block::get_maximum_output_size(max_pixels * 4) + (1 << 16),
            events: tx,
            connections: Default::default(),
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
        match (result, cleanup) {
            (Err(e), _) => Err(e),
            (Ok(()), Err(e)) => Err(ExecError::Workers(format!("cleaning up workers: {e}"))),
            (Ok(()), Ok(())) => Ok(()),
        }
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
        let mut waiting: BTreeMap<usize, Box<SegmentedTile>> = BTreeMap::new();
        let mut consumed = 0;
        let mut live = 0usize;
        let mut alone_since = Some(Instant::now());
        let mut last_progress = Instant::now();
        while consumed < n {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Event::Tile(index, tile)) => {
                    waiting.insert(index, tile);
                }
                Ok(Event::Joined(name)) => {
                    live += 1;
                    alone_since = None;
                    self.bump(|r| r.workers_joined += 1);
                    self.note(format!("worker {name} joined"));
                }
                Ok(Event::Lost { name, reason }) => {
                    live = live.saturating_sub(1);
                    if live == 0 {
                        alone_since = Some(Instant::now());
                    }
                    self.bump(|r| r.workers_lost += 1);
                    self.note(format!("worker {name} lost: {reason}"));
                    let replacements = self
                        .report
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .replacements;
                    if replacements < self.options.max_replacements {
                        match launcher.launch(rt.handle(), 1, inv) {
                            Ok(()) => {
                                self.bump(|r| r.replacements += 1);
                                self.note("launched a replacement worker".into());
                            }
                            Err(e) => self.note(format!("cannot launch a replacement worker: {e}")),
                        }
                    }
                }
                Ok(Event::Refused(line)) => {
                    self.bump(|r| r.connections_refused += 1);
                    self.note(line);
                }
                Ok(Event::Requeued) => self.bump(|r| r.tiles_requeued += 1),
                Ok(Event::Fatal { index, message }) => {
                    let t = tiles[index];
                    return Err(ExecError::Remote {
                        col: t.col,
                        row: t.row,
                        message,
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(ExecError::Workers("the coordinator stopped".into()))
                }
            }
            let mut progressed = false;
            while let Some(t) = waiting.remove(&consumed) {
                consumer.consume(*t).map_err(ExecError::Consumer)?;
                consumed += 1;
                progressed = true;
                shared.lock().consumed = consumed;
                shared.work.notify_waiters();
            }
            if progressed {
                last_progress = Instant::now();
            }
            for line in launcher.poll(rt.handle()) {
                self.note(line);
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
                    return Err(ExecError::Workers(format!(
                        "no worker connected within {} s (--barrier-timeout)",
                        self.options.barrier_timeout.as_secs()
                    )));
                }
            }
            if let Some(limit) = self.options.tile_timeout {
                if consumed < n && last_progress.elapsed() > limit {
                    let t = tiles[consumed];
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
}

/// Accepts connections and gives each its own task.
async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    loop {
        let Ok((socket, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        next_id += 1;
        let shared = Arc::clone(&shared);
        tokio::spawn(connection(socket, peer, next_id, shared));
    }
}

/// One connection, from handshake to end.
async fn connection(socket: TcpStream, peer: SocketAddr, id: u64, shared: Arc<Shared>) {
    let _ = socket.set_nodelay(true);
    let (mut reader, mut writer) = socket.into_split();
    let name = match tokio::time::timeout(
        Duration::from_secs(10),
        handshake(&mut reader, &mut writer, &shared),
    )
    .await
    {
        Ok(Ok(name)) => format!("{name} ({peer})"),
        Ok(Err(e)) => {
            let _ = shared.events.send(Event::Refused(format!(
                "refused connection from {peer}: {e}"
            )));
            return;
        }
        Err(_) => {
            let _ = shared.events.send(Event::Refused(format!(
                "refused connection from {peer}: no handshake within 10 s"
            )));
            return;
        }
    };
    let _ = shared.events.send(Event::Joined(name.clone()));
    shared.connections.fetch_add(1, Ordering::SeqCst);

    // Frames are read by their own task, so a worker that dies while waiting for work or a
    // permit is noticed.
    let (ftx, mut frx) = tokio::sync::mpsc::channel::<Result<WorkerMsg, RemoteError>>(4);
    let max_frame = shared.max_frame;
    let read_task = tokio::spawn(async move {
        loop {
            let msg = match read_frame(&mut reader, max_frame).await {
                Ok(p) => decode::<WorkerMsg>(&p),
                Err(e) => Err(e),
            };
            let end = msg.is_err();
            if ftx.send(msg).await.is_err() || end {
                return;
            }
        }
    });

    let mut permit: Option<OwnedSemaphorePermit> = None;
    let outcome = serve(id, &shared, &mut writer, &mut frx, &mut permit).await;
    read_task.abort();
    drop(permit);
    // Whatever happened, this connection's leases go back in the queue.
    let held: Vec<usize> = {
        let st = shared.lock();
        st.leases
            .iter()
            .filter(|(_, &c)| c == id)
            .map(|(&t, _)| t)
            .collect()
    };
    if let Err(reason) = outcome {
        let mut st = shared.lock();
        for t in held {
            shared.fail_attempt(&mut st, t, format!("worker {name} lost: {reason}"));
        }
        drop(st);
        let _ = shared.events.send(Event::Lost { name, reason });
    }
    shared.connections.fetch_sub(1, Ordering::SeqCst);
}

/// Authenticates a worker; returns its name.
async fn handshake(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    shared: &Shared,
) -> Result<String, RemoteError> {
    let hello = decode::<WorkerMsg>(&read_frame(reader, MAX_HANDSHAKE_FRAME).await?)?;
    let WorkerMsg::Hello { version, name } = hello else {
        return Err(RemoteError::Protocol("expected hello".into()));
    };
    if version != PROTOCOL_VERSION {
        let reason =
            format!("protocol version {version}, this coordinator speaks {PROTOCOL_VERSION}");
        let _ = write_msg(
            writer,
            &CoordMsg::Refused {
                reason: reason.clone(),
            },
        )
        .await;
        return Err(RemoteError::Protocol(reason));
    }
    let nonce_c = random_bytes()?;
    write_msg(writer, &CoordMsg::Challenge { nonce: nonce_c }).await?;
    let proof = decode::<WorkerMsg>(&read_frame(reader, MAX_HANDSHAKE_FRAME).await?)?;
    let WorkerMsg::Proof {
        mac,
        nonce: nonce_w,
    } = proof
    else {
        return Err(RemoteError::Protocol("expected proof".into()));
    };
    if !shared.secret.verify(Role::Worker, &nonce_c, &nonce_w, &mac) {
        let _ = write_msg(
            writer,
            &CoordMsg::Refused {
                reason: "authentication failed".into(),
            },
        )
        .await;
        return Err(RemoteError::Secret(format!(
            "worker {name:?} failed authentication"
        )));
    }
    write_msg(
        writer,
        &CoordMsg::Welcome {
            mac: shared.secret.mac(Role::Coordinator, &nonce_c, &nonce_w),
            job: shared.job.clone(),
            heartbeat_ms: shared.heartbeat.as_millis() as u64,
            max_frame: shared.max_frame as u64,
        },
    )
    .await?;
    Ok(name.chars().take(100).collect())
}

/// Serves an authenticated worker. `Ok` when it was told there is no more work; `Err` with a
/// reason when it was lost or misbehaved.
async fn serve(
    id: u64,
    shared: &Shared,
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    frames: &mut tokio::sync::mpsc::Receiver<Result<WorkerMsg, RemoteError>>,
    permit: &mut Option<OwnedSemaphorePermit>,
) -> Result<(), String> {
    let hb = shared.heartbeat;
    let owns = |tile: u32| shared.lock().leases.get(&(tile as usize)) == Some(&id);
    loop {
        match next_msg(frames, hb).await? {
            WorkerMsg::Heartbeat => {}
            WorkerMsg::Ready => loop {
                let notified = shared.work.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                match shared.try_lease(id) {
                    Lease::Tile(i) => {
                        let window = shared.tiles[i].window.into();
                        send_msg(
                            writer,
                            CoordMsg::Lease {
                                tile: i as u32,
                                window,
                            },
                        )
                        .await?;
                        break;
                    }
                    Lease::Over => {
                        let _ = send_msg(writer, CoordMsg::NoMoreTiles).await;
                        return Ok(());
                    }
                    Lease::Wait => {}
                }
                tokio::select! {
                    _ = &mut notified => {}
                    m = next_msg(frames, hb) => match m? {
                        WorkerMsg::Heartbeat => {}
                        other => return Err(format!("unexpected {} while waiting", kind(&other))),
                    },
                }
            },
            WorkerMsg::ReadRequest { tile } => {
                if !owns(tile) {
                    return Err(format!("read request for tile {tile} it does not hold"));
                }
                let p = loop {
                    tokio::select! {
                        p = Arc::clone(&shared.reads).acquire_owned() => {
                            break p.map_err(|e| e.to_string())?;
                        }
                        m = next_msg(frames, hb) => match m? {
                            WorkerMsg::Heartbeat => {}
                            other => return Err(format!("unexpected {} while waiting to read", kind(&other))),
                        },
                    }
                };
                *permit = Some(p);
                send_msg(writer, CoordMsg::ReadGranted { tile }).await?;
            }
            WorkerMsg::ReadDone { .. } => {
                *permit = None;
            }
            WorkerMsg::TileDone(result) => {
                *permit = None;
                if !owns(result.tile) {
                    return Err(format!("result for tile {} it does not hold", result.tile));
                }
                let index = result.tile as usize;
                let tile = shared.tiles[index];
                if (result.rows as usize, result.cols as usize)
                    != (tile.window.ysize, tile.window.xsize)
                {
                    return Err(format!(
                        "tile {index} came back {}x{}, expected {}x{}",
                        result.cols, result.rows, tile.window.xsize, tile.window.ysize
                    ));
                }
                let segimg = tokio::task::spawn_blocking(move || {
                    result.unpack_image().map(|img| (img, result))
                })
                .await
                .map_err(|e| e.to_string())?;
                let (segimg, result) = segimg.map_err(|e| e.to_string())?;
                let done = SegmentedTile {
                    tile,
                    segimg,
                    max_spectral_diff: result.max_spectral_diff,
                    rescued_pixels: result.rescued_pixels as usize,
                    read_time: Duration::from_micros(result.read_us),
                    segment_time: Duration::from_micros(result.segment_us),
                };
                shared.lock().leases.remove(&index);
                let _ = shared.events.send(Event::Tile(index, Box::new(done)));
            }
            WorkerMsg::TileFailed { tile, error } => {
                *permit = None;
                if !owns(tile) {
                    return Err(format!("failure for tile {tile} it does not hold"));
                }
                let mut st = shared.lock();
                shared.fail_attempt(&mut st, tile as usize, error);
            }
            other @ (WorkerMsg::Hello { .. } | WorkerMsg::Proof { .. }) => {
                return Err(format!("unexpected {} after the handshake", kind(&other)))
            }
        }
    }
}

/// The next message from a worker, or why there is none.
async fn next_msg(
    frames: &mut tokio::sync::mpsc::Receiver<Result<WorkerMsg, RemoteError>>,
    hb: Duration,
) -> Result<WorkerMsg, String> {
    match tokio::time::timeout(hb, frames.recv()).await {
        Err(_) => Err(format!("no heartbeat for {} s", hb.as_secs_f64())),
        Ok(None) => Err("disconnected".to_string()),
        Ok(Some(Err(e))) => Err(e.to_string()),
        Ok(Some(Ok(m))) => Ok(m),
    }
}

/// Sends a message to a worker.
async fn send_msg(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    msg: CoordMsg,
) -> Result<(), String> {
    write_msg(writer, &msg).await.map_err(|e| e.to_string())
}

/// Whether a GDAL option's name looks like it holds a credential.
fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    ["SECRET", "TOKEN", "PASSWORD", "KEY"]
        .iter()
        .any(|w| k.contains(w))
}

/// A message's name, for errors.
fn kind(m: &WorkerMsg) -> &'static str {
    match m {
        WorkerMsg::Hello { .. } => "hello",
        WorkerMsg::Proof { .. } => "proof",
        WorkerMsg::Ready => "ready",
        WorkerMsg::ReadRequest { .. } => "read request",
        WorkerMsg::ReadDone { .. } => "read done",
        WorkerMsg::TileDone(_) => "tile result",
        WorkerMsg::TileFailed { .. } => "tile failure",
        WorkerMsg::Heartbeat => "heartbeat",
    }
}
