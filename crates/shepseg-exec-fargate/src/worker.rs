//! The worker: dials the coordinator, proves it knows the job secret, then pulls tiles, reads
//! them itself through GDAL (holding a read permit from the coordinator), segments them with the
//! job's model and parameters and sends them back compressed, until told there is no more work.
//!
//! The worker is plain blocking code: one thread speaks the protocol, a second sends heartbeats
//! so the coordinator can tell a busy worker from a lost one.

use std::net::TcpStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shepseg_tiling::{read_window, work_on, Raster, Window};

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
}

/// What a worker did, for its exit message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerSummary {
    /// Tiles segmented and returned.
    pub tiles_done: usize,
    /// Tiles that failed here.
    pub tiles_failed: usize,
}

/// Joins the coordinator and works until it has no more tiles.
pub fn run_worker(opts: &WorkerOptions) -> Result<WorkerSummary, RemoteError> {
    let stream = connect(&opts.connect, opts.connect_timeout)?;
    stream.set_nodelay(true)?;
    let mut reader = stream.try_clone()?;
    let writer = Arc::new(Mutex::new(stream));
    let send = |msg: &WorkerMsg| -> Result<(), RemoteError> {
        let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
        write_msg_blocking(&mut *w, msg)
    };
    let mut recv = || -> Result<CoordMsg, RemoteError> {
        let payload = read_frame_blocking(&mut reader, MAX_COORDINATOR_FRAME)?;
        match decode::<CoordMsg>(&payload)? {
            CoordMsg::Refused { reason } => Err(RemoteError::Refused(reason)),
            m => Ok(m),
        }
    };

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

    // Heartbeats, from their own thread, while this one reads and segments.
    let stop = Arc::new(AtomicBool::new(false));
    let beat = {
        let (writer, stop) = (Arc::clone(&writer), Arc::clone(&stop));
        let every = Duration::from_millis((heartbeat_ms / 3).max(10));
        std::thread::spawn(move || {
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10).min(every));
                if last.elapsed() >= every {
                    let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
                    if write_msg_blocking(&mut *w, &WorkerMsg::Heartbeat).is_err() {
                        return;
                    }
                    last = Instant::now();
                }
            }
        })
    };

    let result = work(&job, send, &mut recv);
    stop.store(true, Ordering::Relaxed);
    let _ = beat.join();
    result
}

/// The tile loop.
fn work(
    job: &JobSpec,
    send: impl Fn(&WorkerMsg) -> Result<(), RemoteError>,
    recv: &mut impl FnMut() -> Result<CoordMsg, RemoteError>,
) -> Result<WorkerSummary, RemoteError> {
    let mut summary = WorkerSummary::default();
    let mut raster: Option<Raster> = None;
    loop {
        send(&WorkerMsg::Ready)?;
        let (tile, window) = match recv()? {
            CoordMsg::Lease { tile, window } => (tile, Window::from(window)),
            CoordMsg::NoMoreTiles => return Ok(summary),
            other => {
                return Err(RemoteError::Protocol(format!(
                    "expected a lease, got {other:?}"
                )))
            }
        };
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
        let read = catch_unwind(AssertUnwindSafe(|| -> Result<_, RemoteError> {
            if raster.is_none() {
                let r = Raster::open(std::path::Path::new(&job.input))?;
                // Before the first block is read: GDAL's block cache sized to this worker's
                // reads (one tile at a time), unless GDAL_CACHEMAX came from the environment
                // or the coordinator.
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
                raster = Some(r);
            }
            let r = raster
                .as_ref()
                .ok_or_else(|| RemoteError::Protocol("no raster".into()))?;
            let read = read_window(&job.params, window, r.size());
            Ok((r.read_stack(&job.bands, read)?, r.size()))
        }));
        send(&WorkerMsg::ReadDone { tile })?;
        let read_us = t0.elapsed().as_micros() as u64;
        let t1 = Instant::now();
        let outcome = match read {
            Ok(Ok((stack, size))) => catch_unwind(AssertUnwindSafe(|| {
                work_on(&stack, window, size, job.null, &job.params, &job.model)
            }))
            .map_err(panic_message)
            .and_then(|r| r.map_err(|e| e.to_string())),
            Ok(Err(e)) => Err(e.to_string()),
            Err(p) => Err(panic_message(p)),
        };
        match outcome {
            Ok(res) => {
                let (rows, cols) = res.segimg.dim();
                send(&WorkerMsg::TileDone(TileResult {
                    tile,
                    rows: rows as u32,
                    cols: cols as u32,
                    lz4: TileResult::pack_image(&res.segimg),
                    part: res.part,
                    max_spectral_diff: res.max_spectral_diff,
                    read_us,
                    segment_us: t1.elapsed().as_micros() as u64,
                }))?;
                summary.tiles_done += 1;
            }
            Err(error) => {
                send(&WorkerMsg::TileFailed { tile, error })?;
                summary.tiles_failed += 1;
            }
        }
    }
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
