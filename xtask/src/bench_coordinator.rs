//! `cargo xtask bench-coordinator`: how many real workers one coordinator keeps busy.
//!
//! Real work first: a 2 x 2 grid of real tiles of the benchmark image is analysed (as a worker
//! would, one thread each: read with the halo, predict, clump, table) and joined, timing the
//! worker's seconds per tile and the join's CPU per tile. Then one coordinator (the real
//! `RemoteExecutor`, in this process) serves simulated workers on loopback: `xtask replay`
//! processes that authenticate as workers do and answer every lease at once with the real
//! tile's `TileDone` frame (a mosaic job's: its table, no pixels). The coordinator's CPU
//! (this process's, workers excluded) over the tiles it received gives its CPU per tile, and
//! the projection is the worker's seconds per tile over the coordinator's CPU per tile.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use shepseg_core::seamless::join_tiles;
use shepseg_core::{KMeansModel, SegmentParams};
use shepseg_exec_fargate::protocol::{
    decode, encode, random_bytes, read_frame_blocking, write_msg_blocking, CoordMsg, Role, Secret,
    TileResult, WorkerMsg, PROTOCOL_VERSION,
};
use shepseg_exec_fargate::{ProcessLauncher, RemoteExecutor, RemoteOptions};
use shepseg_tiling::{
    read_window, work_on, FnConsumer, MosaicJob, MosaicTiles, Raster, TileExecutor, TileGrid,
    TileJob, Window,
};

/// Options of `bench-coordinator`.
#[derive(Args)]
pub struct BenchCoordinatorArgs {
    /// Input raster (default: the bench-workers image, generated if missing).
    #[arg(long)]
    input: Option<PathBuf>,
    /// The k-means model (default: bench-workers' model, fitted if missing).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Tile size of the real tiles.
    #[arg(long, default_value_t = 4096)]
    tile_size: usize,
    /// Simulated worker counts to try.
    #[arg(long, value_delimiter = ',', default_value = "8,32")]
    workers: Vec<usize>,
    /// Tiles each run serves.
    #[arg(long, default_value_t = 96)]
    tiles: usize,
}

/// Options of `replay` (a simulated worker; started by the coordinator as
/// `xtask replay FRAME worker --connect HOST:PORT --name NAME`).
#[derive(Args)]
pub struct ReplayArgs {
    /// The `TileDone` payload to answer every lease with (tile index 0).
    frame: PathBuf,
    /// The worker command line the coordinator appends.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

/// This process's CPU time so far (user + system, every thread).
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid initial value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| Duration::new(v.tv_sec as u64, v.tv_usec as u32 * 1000);
    t(u.ru_utime) + t(u.ru_stime)
}

/// A `TileDone` payload for tile `tile`, from the payload for tile 0: the message tag, the
/// tile index as postcard's varint, then the rest unchanged.
fn payload_for(zero: &[u8], tile: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(zero.len() + 4);
    out.push(zero[0]);
    let mut v = tile;
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(&zero[2..]);
    out
}

/// A simulated worker: the handshake, then every lease answered with the replayed frame.
pub fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let connect = args
        .rest
        .iter()
        .position(|a| a == "--connect")
        .and_then(|i| args.rest.get(i + 1))
        .context("no --connect")?;
    let zero = std::fs::read(&args.frame)?;
    let secret = Secret::from_env()?;
    let mut s = TcpStream::connect(connect)?;
    s.set_nodelay(true)?;
    let recv = |s: &mut TcpStream| -> anyhow::Result<CoordMsg> {
        Ok(decode(&read_frame_blocking(s, 64 << 20)?)?)
    };
    write_msg_blocking(
        &mut s,
        &WorkerMsg::Hello {
            version: PROTOCOL_VERSION,
            name: "replay".into(),
        },
    )?;
    let CoordMsg::Challenge { nonce } = recv(&mut s)? else {
        bail!("expected a challenge");
    };
    let mine = random_bytes()?;
    write_msg_blocking(
        &mut s,
        &WorkerMsg::Proof {
            mac: secret.mac(Role::Worker, &nonce, &mine),
            nonce: mine,
        },
    )?;
    let CoordMsg::Welcome { .. } = recv(&mut s)? else {
        bail!("expected a welcome");
    };
    loop {
        write_msg_blocking(&mut s, &WorkerMsg::Ready)?;
        let tile = match recv(&mut s)? {
            CoordMsg::Lease { tile, .. } => tile,
            CoordMsg::NoMoreTiles => return Ok(()),
            other => bail!("unexpected {other:?}"),
        };
        write_msg_blocking(&mut s, &WorkerMsg::ReadRequest { tile })?;
        let CoordMsg::ReadGranted { .. } = recv(&mut s)? else {
            bail!("expected a read permit");
        };
        write_msg_blocking(&mut s, &WorkerMsg::ReadDone { tile })?;
        let payload = payload_for(&zero, tile);
        s.write_all(&(payload.len() as u32).to_be_bytes())?;
        s.write_all(&payload)?;
    }
}

/// Runs the benchmark.
pub fn bench(args: &BenchCoordinatorArgs) -> anyhow::Result<()> {
    let (input, _) = crate::bench_segment::prepare(args.input.as_ref())?;
    let model_path = args
        .model
        .clone()
        .unwrap_or_else(|| PathBuf::from("bench-out/bench-workers-model.json"));
    let model: KMeansModel = serde_json::from_str(
        &std::fs::read_to_string(&model_path)
            .with_context(|| format!("{} (run bench-workers once)", model_path.display()))?,
    )?;
    let params = SegmentParams::default();
    let raster = Raster::open(&input)?;
    let bands: Vec<usize> = (1..=raster.band_count()).collect();
    let null = raster.null_value(&bands)?;
    let t = args.tile_size;
    let (cols, rows) = raster.size();
    if cols < 2 * t || rows < 2 * t {
        bail!("--tile-size {t}: the input must hold 2 x 2 such tiles");
    }
    // The real work: a 2 x 2 grid of tiles, as if the raster were 2t x 2t.
    let size = (2 * t, 2 * t);
    let windows: Vec<Window> = (0..4)
        .map(|k| Window {
            xoff: (k % 2) * t,
            yoff: (k / 2) * t,
            xsize: t,
            ysize: t,
        })
        .collect();
    eprintln!("analysing 4 real {t}x{t} tiles, one thread each ...");
    let analysed: Vec<anyhow::Result<(shepseg_tiling::TileWork, Duration)>> =
        std::thread::scope(|sc| {
            let hs: Vec<_> = windows
                .chunks(2)
                .map(|ws| {
                    let (input, bands, model) = (&input, &bands, &model);
                    sc.spawn(move || {
                        let r = Raster::open(input)?;
                        ws.iter()
                            .map(|&w| {
                                let start = Instant::now();
                                let stack = r.read_stack(bands, read_window(&params, w, size))?;
                                let work = work_on(&stack, w, size, null, &params, model)?;
                                Ok((work, start.elapsed()))
                            })
                            .collect::<anyhow::Result<Vec<_>>>()
                    })
                })
                .collect();
            hs.into_iter()
                .flat_map(|h| match h.join() {
                    Ok(Ok(v)) => v.into_iter().map(Ok).collect::<Vec<_>>(),
                    Ok(Err(e)) => vec![Err(e)],
                    Err(_) => vec![Err(anyhow::anyhow!("an analysis thread panicked"))],
                })
                .collect()
        });
    let mut works = Vec::new();
    for a in analysed {
        works.push(a?);
    }
    let mut worker_s: Vec<f64> = works.iter().map(|(_, d)| d.as_secs_f64()).collect();
    worker_s.sort_by(f64::total_cmp);
    let worker_s = (worker_s[1] + worker_s[2]) / 2.0;
    let parts: Vec<_> = works
        .iter()
        .map(|(w, _)| w.part.as_deref().cloned().context("no table"))
        .collect::<anyhow::Result<_>>()?;
    let nodes: usize = parts.iter().map(|p| p.nodes()).sum::<usize>() / 4;
    let tile0 = TileResult {
        tile: 0,
        rows: t as u32,
        cols: t as u32,
        lz4: Vec::new(),
        part: Some(Box::new(parts[0].clone())),
        sample: None,
        max_spectral_diff: 0.0,
        read_us: 0,
        segment_us: 0,
    };
    let c0 = cpu_time();
    let threshold = params
        .max_spectral_diff
        .resolve(&model, params.spect_dist_pcntile)
        .squared();
    join_tiles(
        parts,
        params.min_segment_size,
        threshold,
        params.four_connected,
        1,
    )?;
    let join_cpu = (cpu_time() - c0).as_secs_f64() / 4.0;
    let frame = encode(&WorkerMsg::TileDone(tile0))?;
    let zero = frame[4..].to_vec();
    if zero.get(1) != Some(&0) {
        bail!("unexpected encoding of the tile index");
    }
    // The replayed frames decode to the tile they name.
    match decode::<WorkerMsg>(&payload_for(&zero, 300))? {
        WorkerMsg::TileDone(r) if r.tile == 300 => {}
        _ => bail!("replayed frames do not decode"),
    }
    let dir = PathBuf::from("bench-out");
    let frame_path = dir.join("bench-coordinator-frame.bin");
    std::fs::write(&frame_path, &zero)?;
    eprintln!(
        "real tile: {:.2} s per worker, {} nodes, table {:.1} MB on the wire ({:.3} bytes/pixel); join {:.3} s CPU per tile",
        worker_s,
        nodes,
        zero.len() as f64 / 1e6,
        zero.len() as f64 / (t * t) as f64,
        join_cpu
    );

    let exe = std::env::current_exe()?;
    let side = (args.tiles as f64).sqrt().ceil() as usize;
    let grid = TileGrid::new(side * t, args.tiles.div_ceil(side) * t, t, 0)?;
    let job = TileJob {
        input: input.clone(),
        bands: bands.clone(),
        null,
        grid,
        model: model.clone(),
        params,
        sample_skip: None,
        mosaic: Some(MosaicJob::KeepNodes(MosaicTiles {
            dir: Path::new("/nonexistent").to_path_buf(),
            projection: String::new(),
            geo_transform: None,
        })),
    };
    let n = job.grid.tiles().len();
    println!(
        "{:>8} {:>7} {:>9} {:>10} {:>12} {:>16} {:>16}",
        "workers", "tiles", "wall s", "tiles/s", "CPU ms/tile", "workers/core", "with join"
    );
    for &w in &args.workers {
        let options = RemoteOptions {
            workers: w,
            max_concurrent_reads: w,
            ..RemoteOptions::default()
        };
        let launcher = ProcessLauncher::with_prefix(
            exe.clone(),
            vec!["replay".into(), frame_path.to_string_lossy().into_owned()],
        );
        let exec = RemoteExecutor::new(options, launcher, Box::new(|_| {}));
        let mut got = 0usize;
        let (c0, t0) = (cpu_time(), Instant::now());
        exec.run(
            &job,
            &mut FnConsumer(|tile: shepseg_tiling::SegmentedTile| {
                got += usize::from(tile.part.is_some());
                Ok::<(), std::convert::Infallible>(())
            }),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let (cpu, wall) = ((cpu_time() - c0).as_secs_f64(), t0.elapsed().as_secs_f64());
        if got != n {
            bail!("{got} of {n} tiles arrived");
        }
        let per = cpu / n as f64;
        println!(
            "{:>8} {:>7} {:>9.2} {:>10.1} {:>12.1} {:>16.0} {:>16.0}",
            w,
            n,
            wall,
            n as f64 / wall,
            per * 1e3,
            worker_s / per,
            worker_s / (per + join_cpu)
        );
    }
    let _ = std::fs::remove_file(&frame_path);
    Ok(())
}
