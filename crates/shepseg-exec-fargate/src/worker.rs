//! The worker: dials the coordinator, proves it knows the job secret, then pulls tiles, reads
//! them itself through GDAL (holding a read permit from the coordinator), segments them with the
//! job's model and parameters and sends them back compressed, until told there is no more work.
//!
//! The worker is plain blocking code: one thread speaks the protocol and segments, a second
//! sends heartbeats so the coordinator can tell a busy worker from a lost one, and watches the
//! stop flag a signal raises: then it tells the coordinator it is leaving (its tile goes back
//! to the queue, not counted as a failed attempt) and the worker returns at once, whatever the
//! first thread is doing.

use std::net::TcpStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shepseg_core::seamless::relabel;
use shepseg_tiling::packed::{pack_image, unpack_labels};
use shepseg_tiling::sample::{sample_bytes, SAMPLE_BLOCK};
use shepseg_tiling::{
    read_window, vsi, work_on, BandStack, MosaicJob, MosaicTiles, Raster, Window,
};

use crate::error::RemoteError;
use crate::protocol::{
    decode, random_bytes, read_frame_blocking, write_msg_blocking, CoordMsg, JobSpec, Role, Secret,
    TileResult, WorkerMsg, PROTOCOL_VERSION,
};

/// Largest frame a worker accepts from its coordinator (they only send small messages).
const MAX_COORDINATOR_FRAME: usize = 64 << 20;

/// How a worker finds and joins its coordinator.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// `HOST:PORT` of the coordinator.
    pub connect: String,
    /// A name for the coordinator's logs.
    pub name: String,
    /// The job secret (from [`crate::protocol::SECRET_ENV`]).
    pub secret: Secret,
    /// How long to keep trying to connect (the coordinator may not be reachable at once).
    pub connect_timeout: Duration,
    /// Raised (by a SIGTERM handler, say) to leave the job: the tile in hand is handed back.
    pub stop: Option<Arc<AtomicBool>>,
}

/// What a worker did, for its exit message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerSummary {
    /// Tiles segmented and returned.
    pub tiles_done: usize,
    /// Tiles that failed here.
    pub tiles_failed: usize,
    /// The worker left on its stop flag; the tile it held, if any, was handed back.
    pub left: Option<Option<u32>>,
}

/// Joins the coordinator and works until it has no more tiles.
pub fn run_worker(opts: &WorkerOptions) -> Result<WorkerSummary, RemoteError> {
    let stream = connect(&opts.connect, opts.connect_timeout)?;
    stream.set_nodelay(true)?;
    let reader = stream.try_clone()?;
    let writer = Arc::new(Mutex::new(stream));
    let send = sender(Arc::clone(&writer));
    let mut recv = receiver(reader);

    send(&WorkerMsg::Hello {
        version: PROTOCOL_VERSION,
        name: opts.name.clone(),
    })?;
    let CoordMsg::Challenge { nonce: nonce_c } = recv()? else {
        return Err(RemoteError::Protocol("expected a challenge".into()));
    };
    let nonce_w = random_bytes()?;
    send(&WorkerMsg::Proof {
        mac: opts.secret.mac(Role::Worker, &nonce_c, &nonce_w),
        nonce: nonce_w,
    })?;
    let CoordMsg::Welcome {
        mac,
        job,
        heartbeat_ms,
        ..
    } = recv()?
    else {
        return Err(RemoteError::Protocol("expected a welcome".into()));
    };
    if !opts
        .secret
        .verify(Role::Coordinator, &nonce_c, &nonce_w, &mac)
    {
        return Err(RemoteError::Secret(
            "the coordinator could not prove it knows the job secret".into(),
        ));
    }
    for (k, v) in &job.gdal_config {
        gdal::config::set_config_option(k, v)
            .map_err(|e| RemoteError::Protocol(format!("GDAL option {k}: {e}")))?;
    }
    if !job.gdal_config.is_empty() {
        let keys: Vec<&str> = job.gdal_config.iter().map(|(k, _)| k.as_str()).collect();
        // One write for the whole line: worker processes share the coordinator's stderr, and
        // `eprintln!` writes piece by piece, so lines from several processes could interleave.
        let line = format!(
            "shepseg worker {}: GDAL options from the coordinator: {}\n",
            opts.name,
            keys.join(", ")
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    }

    // The tile loop on a thread of its own, so that a signal need not wait for a segmentation
    // to end; this thread sends heartbeats and watches the stop flag.
    let held = Arc::new(Mutex::new(None::<u32>));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    {
        let held = Arc::clone(&held);
        std::thread::Builder::new()
            .name("shepseg-tiles".into())
            .spawn(move || {
                let _ = done_tx.send(work(&job, send, &mut recv, &held));
            })?;
    }
    let every = Duration::from_millis((heartbeat_ms / 3).max(10));
    let mut last = Instant::now();
    loop {
        match done_rx.recv_timeout(Duration::from_millis(10).min(every)) {
            Ok(result) => return result,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(RemoteError::Protocol("the tile thread vanished".into()))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if opts.stop.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)) {
            let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
            let tile = *held.lock().unwrap_or_else(|e| e.into_inner());
            write_msg_blocking(&mut *w, &WorkerMsg::Leaving { tile })?;
            // The tile thread's next read or write fails; its work is abandoned.
            let _ = w.shutdown(std::net::Shutdown::Both);
            return Ok(WorkerSummary {
                left: Some(tile),
                ..WorkerSummary::default()
            });
        }
        if last.elapsed() >= every {
            let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
            // A failed heartbeat means the connection is gone: the tile thread finds out too.
            let _ = write_msg_blocking(&mut *w, &WorkerMsg::Heartbeat);
            last = Instant::now();
        }
    }
}

/// Sends a message on the shared connection.
fn sender(
    writer: Arc<Mutex<std::net::TcpStream>>,
) -> impl Fn(&WorkerMsg) -> Result<(), RemoteError> + Send + 'static {
    move |msg: &WorkerMsg| {
        let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
        write_msg_blocking(&mut *w, msg)
    }
}

/// Receives the coordinator's next message; a refusal is an error.
fn receiver(
    mut reader: std::net::TcpStream,
) -> impl FnMut() -> Result<CoordMsg, RemoteError> + Send + 'static {
    move || {
        let payload = read_frame_blocking(&mut reader, MAX_COORDINATOR_FRAME)?;
        match decode::<CoordMsg>(&payload)? {
            CoordMsg::Refused { reason } => Err(RemoteError::Refused(reason)),
            m => Ok(m),
        }
    }
}

/// The tile loop; `held` is the tile in hand, for a worker that leaves.
fn work(
    job: &JobSpec,
    send: impl Fn(&WorkerMsg) -> Result<(), RemoteError>,
    recv: &mut impl FnMut() -> Result<CoordMsg, RemoteError>,
    held: &Mutex<Option<u32>>,
) -> Result<WorkerSummary, RemoteError> {
    let hold = |t: Option<u32>| *held.lock().unwrap_or_else(|e| e.into_inner()) = t;
    let mut summary = WorkerSummary::default();
    let mut raster: Option<Raster> = None;
    let mosaic = job.mosaic.as_ref().map(|m| (m.tiles(), m.write));
    loop {
        send(&WorkerMsg::Ready)?;
        let (tile, window, map) = match recv()? {
            CoordMsg::Lease { tile, window, map } => {
                hold(Some(tile));
                (tile, Window::from(window), map)
            }
            CoordMsg::NoMoreTiles => return Ok(summary),
            other => {
                return Err(RemoteError::Protocol(format!(
                    "expected a lease, got {other:?}"
                )))
            }
        };
        let lease = Leased {
            tile,
            window,
            map: map.as_ref(),
        };
        match do_tile(job, mosaic.as_ref(), &mut raster, &lease, &send, recv)? {
            Ok(result) => {
                send(&WorkerMsg::TileDone(result))?;
                summary.tiles_done += 1;
            }
            Err(error) => {
                send(&WorkerMsg::TileFailed { tile, error })?;
                summary.tiles_failed += 1;
            }
        }
        hold(None);
    }
}

/// A tile leased to this worker.
struct Leased<'a> {
    tile: u32,
    window: Window,
    /// A mosaic writing job's map for the tile, packed, with its length.
    map: Option<&'a (u32, Vec<u8>)>,
}

/// What a tile's read gave: a share of the k-means sample, or the bands to segment.
enum Read {
    Sample(Vec<u8>),
    Stack(BandStack, (usize, usize)),
}

/// Does one leased tile: the result to send, or why the tile failed (`Err` outside: the
/// connection failed). Segments it (or samples it, or writes a mosaic's tile from the node
/// image kept for it), holding a read permit while it reads.
fn do_tile(
    job: &JobSpec,
    mosaic: Option<&(MosaicTiles, bool)>,
    raster: &mut Option<Raster>,
    lease: &Leased<'_>,
    send: &impl Fn(&WorkerMsg) -> Result<(), RemoteError>,
    recv: &mut impl FnMut() -> Result<CoordMsg, RemoteError>,
) -> Result<Result<TileResult, String>, RemoteError> {
    let (tile, window, map) = (lease.tile, lease.window, lease.map);
    let us = |t: Instant| t.elapsed().as_micros() as u64;
    let bare = TileResult {
        tile,
        rows: window.ysize as u32,
        cols: window.xsize as u32,
        lz4: Vec::new(),
        part: None,
        sample: None,
        max_spectral_diff: 0.0,
        read_us: 0,
        segment_us: 0,
    };
    // Writing a mosaic's tile: from the node image kept when it was segmented, if it is still
    // there (else the tile is segmented again below, to the same nodes).
    if let Some((tiles, true)) = mosaic {
        let t = Instant::now();
        let kept = vsi::read_all(&MosaicJob::nodes_path(tiles, window))
            .ok()
            .and_then(|b| unpack_labels(&b, window.xsize * window.ysize));
        if let Some(nodes) = kept {
            return Ok(write_tile(tiles, window, nodes, map).map(|()| TileResult {
                segment_us: us(t),
                ..bare
            }));
        }
    }
    send(&WorkerMsg::ReadRequest { tile })?;
    match recv()? {
        CoordMsg::ReadGranted { tile: t } if t == tile => {}
        other => {
            return Err(RemoteError::Protocol(format!(
                "expected a read permit, got {other:?}"
            )))
        }
    }
    let t0 = Instant::now();
    let read = catch_unwind(AssertUnwindSafe(|| -> Result<Read, RemoteError> {
        let r = open_raster(raster, job, window)?;
        if let Some(skip) = job.sample_skip {
            // The k-means sample's job: this row of blocks' share of the sample.
            let by = window.yoff / SAMPLE_BLOCK;
            return Ok(Read::Sample(sample_bytes(
                r,
                &job.bands,
                skip as usize,
                by..by + 1,
            )?));
        }
        let read = read_window(&job.params, window, r.size());
        Ok(Read::Stack(r.read_stack(&job.bands, read)?, r.size()))
    }));
    send(&WorkerMsg::ReadDone { tile })?;
    let read_us = us(t0);
    let (stack, size) = match read.map_err(panic_message) {
        Ok(Ok(Read::Sample(bytes))) => {
            return Ok(Ok(TileResult {
                sample: Some(bytes),
                read_us,
                ..bare
            }))
        }
        Ok(Ok(Read::Stack(stack, size))) => (stack, size),
        Ok(Err(e)) => return Ok(Err(e.to_string())),
        Err(e) => return Ok(Err(e)),
    };
    let t1 = Instant::now();
    let res = match catch_unwind(AssertUnwindSafe(|| {
        work_on(&stack, window, size, job.null, &job.params, &job.model)
    }))
    .map_err(panic_message)
    .and_then(|r| r.map_err(|e| e.to_string()))
    {
        Ok(res) => res,
        Err(e) => return Ok(Err(e)),
    };
    let (segimg, part, max_spectral_diff) = (res.segimg, res.part, res.max_spectral_diff);
    let done = |part| TileResult {
        part,
        max_spectral_diff,
        read_us,
        segment_us: us(t1),
        ..bare.clone()
    };
    Ok(match mosaic {
        None => Ok(TileResult {
            lz4: TileResult::pack_image(&segimg),
            ..done(part)
        }),
        Some((tiles, true)) => {
            let labels = segimg.iter().copied().collect();
            write_tile(tiles, window, labels, map).map(|()| done(None))
        }
        Some((tiles, false)) => {
            let nodes = MosaicJob::nodes_path(tiles, window);
            vsi::write_all(&nodes, &pack_image(&segimg))
                .map(|()| done(part))
                .map_err(|e| format!("{}: cannot write: {e}", nodes.display()))
        }
    })
}

/// The job's input, opened on first use. Before its first block is read, GDAL's block cache
/// is sized to this worker's reads (one `window` at a time), unless GDAL_CACHEMAX came from the
/// environment or the coordinator.
fn open_raster<'a>(
    raster: &'a mut Option<Raster>,
    job: &JobSpec,
    window: Window,
) -> Result<&'a Raster, RemoteError> {
    if raster.is_none() {
        let r = Raster::open(std::path::Path::new(&job.input))?;
        let given = std::env::var_os("GDAL_CACHEMAX").is_some()
            || job
                .gdal_config
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("GDAL_CACHEMAX"));
        if !given {
            let bytes = r.block_cache_bytes(2 * window.xsize, 1);
            // SAFETY: sets a process-wide size; GDAL synchronises its cache.
            unsafe { gdal_sys::GDALSetCacheMax64(bytes as i64) };
        }
        *raster = Some(r);
    }
    raster
        .as_ref()
        .ok_or_else(|| RemoteError::Protocol("no raster".into()))
}

/// Relabels a tile's node image through its packed map and writes it as the mosaic's tile;
/// the node image kept for it is then deleted.
fn write_tile(
    tiles: &MosaicTiles,
    window: Window,
    mut labels: Vec<u32>,
    map: Option<&(u32, Vec<u8>)>,
) -> Result<(), String> {
    let (len, packed) = map.ok_or("the lease came without the tile's map")?;
    let map = unpack_labels(packed, *len as usize).ok_or("the tile's map is corrupt")?;
    relabel(&mut labels, &map);
    tiles.write(window, &labels).map_err(|e| e.to_string())?;
    vsi::unlink(&MosaicJob::nodes_path(tiles, window));
    Ok(())
}

/// A panic's message.
fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("worker panicked: {msg}")
}

/// Connects, retrying until `timeout` (a new Fargate task's network may take a moment).
fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, RemoteError> {
    let start = Instant::now();
    let mut wait = Duration::from_millis(100);
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return Ok(s),
            Err(e) if start.elapsed() + wait > timeout => {
                return Err(RemoteError::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot connect to coordinator {addr}: {e}"),
                )))
            }
            Err(_) => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}
