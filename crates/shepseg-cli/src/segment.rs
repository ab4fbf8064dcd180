//! `shepseg segment`: the tiled segmentation job, run tile by tile with stitching as it goes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

use crate::timings::Timings;
use indicatif::{ProgressBar, ProgressStyle};
use shepseg_core::{KMeansModel, MaxSpectralDiff, SegmentParams};
use shepseg_exec_fargate::{
    FargateConfig, FargateLauncher, ProcessLauncher, RemoteExecutor, RemoteOptions,
};
use shepseg_exec_threads::ThreadsExecutor;
use shepseg_stitch::{GdalOutput, OutputGeometry, OutputOptions, ParallelStitcher};
use shepseg_tiling::{
    fit_whole_raster_threads, Raster, SegmentedTile, SequentialExecutor, TileConsumer,
    TileExecutor, TileGrid, TileJob,
};

/// Options of `shepseg segment`, pyshepseg_tiling's under plain long names.
#[derive(Args, Debug)]
pub struct SegmentArgs {
    /// Input raster (any GDAL path).
    pub input: PathBuf,
    /// Output segmentation raster.
    pub output: PathBuf,
    /// Bands to use, from 1, comma separated (default: all).
    #[arg(short = 'b', long, value_delimiter = ',')]
    pub bands: Vec<usize>,
    /// Number of k-means clusters.
    #[arg(short = 'n', long, default_value_t = 60)]
    pub nclusters: usize,
    /// Smallest segment size kept after elimination, in pixels.
    #[arg(short = 's', long, default_value_t = 50)]
    pub min_segment_size: usize,
    /// Limit on merging spectrally different segments: auto, none or a value.
    #[arg(short = 'm', long, default_value = "auto")]
    pub max_spectral_diff: String,
    /// Percentile of centre distances used by `--max-spectral-diff auto`.
    #[arg(long, default_value_t = 50.0)]
    pub spect_dist_pcntile: f64,
    /// Null value of the input (default: the bands' nodata value).
    #[arg(long)]
    pub null_value: Option<f64>,
    /// 8-way connectivity (default 4-way).
    #[arg(long)]
    pub eight_way: bool,
    /// pyshepseg's fixed (diagonal) k-means initialisation instead of k-means++.
    #[arg(long)]
    pub fixed_kmeans_init: bool,
    /// Seed of the k-means++ initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Percentage of pixels sampled for k-means (default: about a million pixels).
    #[arg(short = 'c', long)]
    pub cluster_subsample_pcnt: Option<f64>,
    /// Tile size, in pixels.
    #[arg(short = 't', long, default_value_t = 4096)]
    pub tile_size: usize,
    /// Overlap between tiles, in pixels (even, smaller than the tile).
    #[arg(short = 'l', long, default_value_t = 1024)]
    pub overlap_size: usize,
    /// Read the k-means model from this JSON file instead of fitting one.
    #[arg(long)]
    pub kmeans_in: Option<PathBuf>,
    /// Write the k-means model used to this JSON file.
    #[arg(long)]
    pub kmeans_out: Option<PathBuf>,
    /// Output GDAL driver (GTiff, HFA, COG, ...).
    #[arg(short = 'f', long = "of", default_value = "GTiff")]
    pub driver: String,
    /// Output creation option KEY=VALUE (repeatable).
    #[arg(long = "co")]
    pub creation_options: Vec<String>,
    /// GDAL configuration option KEY=VALUE (repeatable).
    #[arg(long = "config")]
    pub config: Vec<String>,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bar or report.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write a JSON report (parameters, model, segments, timings) to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Reproduce pyshepseg exactly, defects included.
    #[arg(long)]
    pub pyshepseg_compat: bool,
    /// Who segments the tiles.
    #[arg(long, value_enum, default_value_t = Executor::Threads)]
    pub executor: Executor,
    /// Worker threads (default: the number of cores).
    #[arg(short = 'w', long)]
    pub workers: Option<usize>,
    /// Tiles read at once, at most.
    #[arg(long, default_value_t = 20)]
    pub max_concurrent_reads: usize,
    /// End the job if the next tile is not done within this many seconds.
    #[arg(long)]
    pub tile_timeout: Option<f64>,
    /// Fargate settings, JSON or TOML (`--executor fargate`).
    #[arg(long)]
    pub fargate_config: Option<PathBuf>,
    /// Address the coordinator listens on (`processes`, `fargate`); port 0 picks a free one.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// HOST:PORT remote workers dial (default: the listening address).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Attempts per tile on remote workers before the job fails.
    #[arg(long, default_value_t = 3)]
    pub tile_retries: usize,
    /// Seconds to wait for a remote worker to connect (at the start, or after all were lost).
    #[arg(long, default_value_t = 600.0)]
    pub barrier_timeout: f64,
    /// Seconds of silence after which a remote worker is lost and its tiles re-queued.
    #[arg(long, default_value_t = 30.0)]
    pub heartbeat_timeout: f64,
    /// After segmenting, per-segment statistics of these bands of INPUT (with --stat).
    #[arg(long, value_delimiter = ',')]
    pub stats_bands: Vec<usize>,
    #[command(flatten)]
    pub stats: crate::stats::StatsOptions,
}

/// Which executor segments the tiles.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executor {
    /// One tile after another in this thread.
    Sequential,
    /// Local worker threads (`--workers`).
    Threads,
    /// Local `shepseg worker` processes over TCP (`--workers`).
    Processes,
    /// AWS ECS Fargate tasks over TCP (`--workers`, `--fargate-config`).
    Fargate,
}

/// Pushes finished tiles into the stitcher and the output, with progress and timings.
struct StitchConsumer<'a> {
    stitcher: ParallelStitcher,
    output: &'a mut GdalOutput,
    bar: &'a ProgressBar,
    timings: &'a mut Timings,
    max_spectral_diff_used: f64,
    rescued: usize,
    /// When the previous tile was done with (or the tiles started).
    idle_since: Instant,
}

impl TileConsumer for StitchConsumer<'_> {
    type Error = shepseg_stitch::StitchError;
    fn consume(&mut self, t: SegmentedTile) -> Result<(), Self::Error> {
        let start = Instant::now();
        self.timings.stitch_wait.record(start - self.idle_since);
        self.timings.reading.record(t.read_time);
        self.timings.segmentation.record(t.segment_time);
        self.max_spectral_diff_used = t.max_spectral_diff;
        self.rescued += t.rescued_pixels;
        self.stitcher.push(t.segimg, self.output)?;
        // The stitcher's own serial time per tile (its per-pixel work runs on its pool).
        for d in self.stitcher.take_serial_times() {
            self.timings.stitching.record(d);
        }
        self.idle_since = Instant::now();
        self.bar.inc(1);
        Ok(())
    }
}

/// Runs the job.
pub fn run(args: &SegmentArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    for kv in &args.config {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--config {kv}: expected KEY=VALUE"))?;
        gdal::config::set_config_option(k, v).with_context(|| format!("--config {kv}"))?;
    }
    let max_spectral_diff: MaxSpectralDiff = args
        .max_spectral_diff
        .parse()
        .map_err(|e| anyhow::anyhow!("--max-spectral-diff: {e}"))?;
    let params = SegmentParams {
        num_clusters: args.nclusters,
        min_segment_size: args.min_segment_size,
        max_spectral_diff,
        spect_dist_pcntile: args.spect_dist_pcntile,
        four_connected: !args.eight_way,
        fixed_kmeans_init: args.fixed_kmeans_init,
        seed: args.seed,
        pyshepseg_compat: args.pyshepseg_compat,
        ..Default::default()
    };
    params.validate()?;
    if let Some(t) = args.tile_timeout {
        if !(t.is_finite() && t > 0.0) {
            bail!("--tile-timeout must be a positive number of seconds, got {t}");
        }
    }
    if args.workers == Some(0) {
        bail!("--workers must be at least 1");
    }
    if args.max_concurrent_reads == 0 {
        bail!("--max-concurrent-reads must be at least 1");
    }
    for (name, v) in [
        ("--barrier-timeout", args.barrier_timeout),
        ("--heartbeat-timeout", args.heartbeat_timeout),
    ] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{name} must be a positive number of seconds, got {v}");
        }
    }
    if args.tile_retries == 0 {
        bail!("--tile-retries must be at least 1");
    }
    args.stats.validate(&args.stats_bands)?;
    let fargate_config = match (args.executor, &args.fargate_config) {
        (Executor::Fargate, Some(p)) => Some(FargateConfig::load(p)?),
        (Executor::Fargate, None) => bail!("--executor fargate needs --fargate-config FILE"),
        _ => None,
    };

    let raster = Raster::open(&args.input)?;
    let (cols, rows) = raster.size();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = args.workers.unwrap_or(cores);
    if cols == 0 || rows == 0 || raster.band_count() == 0 {
        bail!(
            "{}: raster is empty ({cols} x {rows} pixels, {} bands)",
            args.input.display(),
            raster.band_count()
        );
    }
    let bands = raster.resolve_bands(&args.bands)?;
    raster.pixel_type(&bands)?;
    let null = match args.null_value {
        Some(v) => Some(v),
        None => raster.null_value(&bands)?,
    };
    let grid = TileGrid::new(cols, rows, args.tile_size, args.overlap_size)?;
    // GDAL's block cache defaults to 5% of physical memory; tiles are read once, so a cache
    // sized to the reads keeps peak memory to a few tiles (see Raster::block_cache_bytes).
    // GDAL_CACHEMAX, in the environment or with --config, overrides.
    let cache_given = std::env::var_os("GDAL_CACHEMAX").is_some()
        || args
            .config
            .iter()
            .any(|kv| kv.to_ascii_uppercase().starts_with("GDAL_CACHEMAX="));
    if !cache_given {
        let widest = grid.tiles().iter().map(|t| t.window.xsize).max();
        let bytes = raster.block_cache_bytes(widest.unwrap_or(cols), workers.max(cores));
        // SAFETY: sets a process-wide size; GDAL synchronises its cache.
        unsafe { gdal_sys::GDALSetCacheMax64(bytes as i64) };
    }
    let model_in = match &args.kmeans_in {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("--kmeans-in {}", p.display()))?;
            let m = KMeansModel::from_json(&text)
                .with_context(|| format!("--kmeans-in {}", p.display()))?;
            if m.num_bands() != bands.len() {
                bail!(
                    "--kmeans-in {}: model has {} bands, {} bands are segmented",
                    p.display(),
                    m.num_bands(),
                    bands.len()
                );
            }
            Some(m)
        }
        None => None,
    };
    let options = OutputOptions {
        driver: args.driver.clone(),
        creation_options: args.creation_options.clone(),
        overwrite: args.overwrite,
    };
    // Armed before the output is created: creating it (empty overviews included) takes a
    // while, and an interrupt then must not leave its folder behind.
    if let Some(dir) = GdalOutput::partial_dir_for(&args.output) {
        crate::interrupt::abandon_on_interrupt(&dir);
    }
    let mut output = GdalOutput::create(
        &args.output,
        &OutputGeometry::of(raster.dataset()),
        &options,
    )?;

    // Threads of this machine for the fit and the stitch's per-pixel work: the local
    // workers, or every core when the workers are remote. Results do not depend on it.
    let local_threads = match args.executor {
        Executor::Sequential => 1,
        Executor::Threads => workers,
        Executor::Processes | Executor::Fargate => cores,
    };

    let mut timings = Timings::default();
    let t = Instant::now();
    let (model, subsample_pcnt) = match model_in {
        Some(m) => (m, None),
        None => {
            let fit = fit_whole_raster_threads(
                &raster,
                &bands,
                null,
                args.cluster_subsample_pcnt,
                &params,
                local_threads,
            )?;
            timings.sample_read = fit.sample_read;
            (fit.model, Some(fit.subsample_pcnt))
        }
    };
    timings.spectral_clusters = t.elapsed();
    if let Some(p) = &args.kmeans_out {
        std::fs::write(p, model.to_json())
            .with_context(|| format!("--kmeans-out {}", p.display()))?;
    }

    let show = !args.quiet && std::io::stderr().is_terminal();
    let bar = if show {
        let b = ProgressBar::new(grid.tiles().len() as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} tiles  elapsed {elapsed}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let job = TileJob {
        input: args.input.clone(),
        bands: bands.clone(),
        null,
        grid: grid.clone(),
        model: model.clone(),
        params,
    };
    let mut consumer = StitchConsumer {
        stitcher: ParallelStitcher::new(grid.clone(), params.pyshepseg_compat, local_threads),
        output: &mut output,
        bar: &bar,
        timings: &mut timings,
        max_spectral_diff_used: 0.0,
        rescued: 0,
        idle_since: Instant::now(),
    };
    let remote_options = RemoteOptions {
        listen: args.listen.unwrap_or_else(|| match args.executor {
            Executor::Fargate => ([0, 0, 0, 0], 0).into(),
            _ => ([127, 0, 0, 1], 0).into(),
        }),
        advertise: args.advertise.clone(),
        workers,
        max_concurrent_reads: args.max_concurrent_reads,
        max_waiting: 2,
        tile_retries: args.tile_retries,
        heartbeat_timeout: Duration::from_secs_f64(args.heartbeat_timeout),
        tile_timeout: args.tile_timeout.map(Duration::from_secs_f64),
        barrier_timeout: Duration::from_secs_f64(args.barrier_timeout),
        max_replacements: workers.max(10),
        gdal_config: args
            .config
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let quiet = args.quiet;
    let log = move || -> Box<dyn Fn(&str) + Send + Sync> {
        Box::new(move |line: &str| {
            if !quiet {
                // One write per line, so worker processes sharing stderr cannot split it.
                let text = format!("shepseg: {line}\n");
                let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), text.as_bytes());
            }
        })
    };
    let mut remote_report = None;
    let result = match args.executor {
        Executor::Sequential => SequentialExecutor.run(&job, &mut consumer),
        Executor::Threads => ThreadsExecutor {
            workers,
            max_concurrent_reads: args.max_concurrent_reads,
            max_waiting: 2,
            tile_timeout: args.tile_timeout.map(Duration::from_secs_f64),
        }
        .run(&job, &mut consumer),
        Executor::Processes => {
            let program = std::env::current_exe().context("cannot find the shepseg binary")?;
            let ex = RemoteExecutor::new(remote_options, ProcessLauncher::new(program), log())
                .with_cancel(crate::interrupt::graceful());
            let r = ex.run(&job, &mut consumer);
            remote_report = Some(ex.report());
            r
        }
        Executor::Fargate => {
            let cfg = fargate_config.context("--fargate-config")?;
            let ex = RemoteExecutor::new(remote_options, FargateLauncher::new(cfg), log())
                .with_cancel(crate::interrupt::graceful());
            let r = ex.run(&job, &mut consumer);
            remote_report = Some(ex.report());
            r
        }
    };
    let (max_spectral_diff_used, rescued, stitcher) = (
        consumer.max_spectral_diff_used,
        consumer.rescued,
        consumer.stitcher,
    );
    result?;
    bar.finish_and_clear();
    let mut stitcher = stitcher;
    stitcher.flush(&mut output)?;
    for d in stitcher.take_serial_times() {
        timings.stitching.record(d);
    }
    let t = Instant::now();
    let report = stitcher.finish(&mut output)?;
    output.finish(&report)?;
    timings.finishing = t.elapsed();
    let t = Instant::now();
    let want_stats = !args.stats_bands.is_empty() || !args.stats.spatial.is_empty();
    args.stats
        .run(
            &args.output,
            &args.input,
            &args.stats_bands,
            workers,
            params.four_connected,
            true,
        )
        .context("statistics")?;
    if want_stats {
        timings.statistics = t.elapsed();
    }
    let total = start.elapsed();

    if !args.quiet {
        eprintln!(
            "{} segments in {} tiles ({} x {} pixels); {} seam fallbacks",
            report.num_segments,
            grid.tiles().len(),
            cols,
            rows,
            report.fallbacks
        );
        eprintln!("{}", timings.report(total));
    }
    if let Some(p) = &args.json {
        let j = serde_json::json!({
            "input": args.input,
            "output": args.output,
            "parameters": {
                "bands": bands,
                "num_clusters": params.num_clusters,
                "min_segment_size": params.min_segment_size,
                "max_spectral_diff": args.max_spectral_diff,
                "spect_dist_pcntile": params.spect_dist_pcntile,
                "four_connected": params.four_connected,
                "fixed_kmeans_init": params.fixed_kmeans_init,
                "seed": params.seed,
                "cluster_subsample_pcnt": subsample_pcnt,
                "tile_size": args.tile_size,
                "overlap_size": args.overlap_size,
                "null_value": null,
                "pyshepseg_compat": params.pyshepseg_compat,
            },
            "max_spectral_diff_used": max_spectral_diff_used,
            "kmeans": serde_json::from_str::<serde_json::Value>(&model.to_json())?,
            "num_segments": report.num_segments,
            "num_tiles": grid.tiles().len(),
            "executor": format!("{:?}", args.executor).to_lowercase(),
            "seam_fallbacks": report.fallbacks,
            "rescued_pixels": rescued,
            "timings_s": timings.json(total),
            "workers": remote_report.as_ref().map(|r| serde_json::json!({
                "joined": r.workers_joined,
                "lost": r.workers_lost,
                "connections_refused": r.connections_refused,
                "tiles_requeued": r.tiles_requeued,
                "replacements": r.replacements,
                "log": r.log,
            })),
        });
        std::fs::write(p, serde_json::to_string_pretty(&j)?)
            .with_context(|| format!("--json {}", p.display()))?;
    }
    Ok(())
}
