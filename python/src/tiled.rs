//! `tiled_segment`: the tiled job of `shepseg segment` ([`TiledSegmentation`]) with any
//! executor, returning its report as JSON text.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use shepseg_core::{KMeansModel, SegmentParams};
use shepseg_exec_fargate::{
    FargateConfig, FargateLauncher, ProcessLauncher, RemoteExecutor, RemoteOptions, RemoteReport,
    WorkerLauncher,
};
use shepseg_exec_threads::ThreadsExecutor;
use shepseg_pipeline::{PipelineError, SegmentationReport, Statistics, TiledSegmentation};
use shepseg_stats::{Stat, StatsRequest};
use shepseg_stitch::OutputOptions;
use shepseg_tiling::{ExecError, SequentialExecutor};

use crate::error::{bad, raise, ShepsegError};
use crate::inmem::{model, params};
use crate::stats::colour_bands;

/// Who segments the tiles and how.
struct Exec {
    kind: String,
    workers: usize,
    max_concurrent_reads: usize,
    tile_timeout: Option<Duration>,
    fargate: Option<FargateConfig>,
    listen: Option<std::net::SocketAddr>,
    advertise: Option<String>,
    tile_retries: usize,
    barrier_timeout: Duration,
    heartbeat_timeout: Duration,
    worker_command: Vec<String>,
    gdal_config: Vec<(String, String)>,
    verbose: bool,
}

impl Exec {
    /// Threads of this machine for the fit and the stitch.
    fn local_threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        match self.kind.as_str() {
            "sequential" => 1,
            "threads" => self.workers,
            _ => cores,
        }
    }

    /// A remote executor over `launcher`.
    fn remote<L: WorkerLauncher>(
        &self,
        launcher: L,
        cancel: &Arc<AtomicBool>,
    ) -> RemoteExecutor<L> {
        let options = RemoteOptions {
            listen: self.listen.unwrap_or_else(|| {
                if self.kind == "fargate" {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    ([127, 0, 0, 1], 0).into()
                }
            }),
            advertise: self.advertise.clone(),
            workers: self.workers,
            max_concurrent_reads: self.max_concurrent_reads,
            max_waiting: 2,
            tile_retries: self.tile_retries,
            heartbeat_timeout: self.heartbeat_timeout,
            tile_timeout: self.tile_timeout,
            barrier_timeout: self.barrier_timeout,
            max_replacements: self.workers.max(10),
            gdal_config: self.gdal_config.clone(),
        };
        let verbose = self.verbose;
        let log = Box::new(move |line: &str| {
            if verbose {
                eprintln!("shepseg: {line}");
            }
        });
        RemoteExecutor::new(options, launcher, log).with_cancel(Arc::clone(cancel))
    }

    /// Runs the job on this executor.
    fn run(
        &self,
        job: TiledSegmentation,
        cancel: &Arc<AtomicBool>,
    ) -> Result<(SegmentationReport, Option<RemoteReport>), PipelineError> {
        let job = job.cancel_flag(Arc::clone(cancel));
        match self.kind.as_str() {
            "sequential" => Ok((job.executor(SequentialExecutor).run()?, None)),
            "processes" => {
                let (program, prefix) = match self.worker_command.split_first() {
                    Some((p, rest)) => (PathBuf::from(p), rest.to_vec()),
                    None => (PathBuf::from("shepseg"), Vec::new()),
                };
                let ex = self.remote(ProcessLauncher::with_prefix(program, prefix), cancel);
                let r = job.executor(&ex).run()?;
                Ok((r, Some(ex.report())))
            }
            "fargate" => {
                let cfg = self.fargate.clone().ok_or_else(|| {
                    PipelineError::Exec(ExecError::Workers("no Fargate configuration".into()))
                })?;
                let ex = self.remote(FargateLauncher::new(cfg), cancel);
                let r = job.executor(&ex).run()?;
                Ok((r, Some(ex.report())))
            }
            _ => Ok((
                job.executor(ThreadsExecutor {
                    workers: self.workers,
                    max_concurrent_reads: self.max_concurrent_reads,
                    max_waiting: 2,
                    tile_timeout: self.tile_timeout,
                })
                .run()?,
                None,
            )),
        }
    }
}

/// Everything the job needs, owned, so that it can run on its own thread.
struct Job {
    infile: PathBuf,
    outfile: PathBuf,
    bands: Vec<usize>,
    null_value: Option<f64>,
    params: SegmentParams,
    subsample_pcnt: Option<f64>,
    tile_size: Option<usize>,
    overlap_size: Option<usize>,
    model: Option<KMeansModel>,
    output: OutputOptions,
    statistics: Option<(StatsRequest, Option<[usize; 3]>)>,
    work_dir: Option<PathBuf>,
    resume: bool,
    exec: Exec,
}

impl Job {
    /// Runs the job; returns its report as JSON.
    fn run(self, cancel: Arc<AtomicBool>) -> Result<serde_json::Value, PipelineError> {
        let start = Instant::now();
        let mut job = TiledSegmentation::new(&self.infile, &self.outfile);
        if let Some(t) = self.tile_size {
            job = job.tile_size(t);
        }
        if let Some(l) = self.overlap_size {
            job = job.overlap_size(l);
        }
        let verbose = self.exec.verbose;
        let mut last = Instant::now();
        let job = job
            .bands(self.bands.clone())
            .null_value(self.null_value)
            .params(self.params)
            .subsample_pcnt(self.subsample_pcnt)
            .model(self.model)
            .output_options(self.output)
            .threads(self.exec.local_threads())
            .work_dir(self.work_dir)
            .resume(self.resume)
            .statistics(self.statistics.map(|(request, colour)| Statistics {
                request,
                colour_from_bands: colour,
            }))
            .on_progress(move |done, total| {
                if verbose && (done == total || last.elapsed() >= Duration::from_secs(1)) {
                    last = Instant::now();
                    eprintln!("shepseg: {done} of {total} tiles");
                }
            });
        let (report, workers) = self.exec.run(job, &cancel)?;
        let total = start.elapsed();
        if verbose {
            eprintln!("{}", report.timings.report(total));
        }
        Ok(report_json(
            &self.exec.kind,
            &report,
            workers.as_ref(),
            total,
        ))
    }
}

/// The report, with the keys of `shepseg segment --json`.
fn report_json(
    executor: &str,
    r: &SegmentationReport,
    workers: Option<&RemoteReport>,
    total: Duration,
) -> serde_json::Value {
    let kmeans: serde_json::Value =
        serde_json::from_str(&r.model.to_json()).unwrap_or(serde_json::Value::Null);
    // The grid's shape, as pyshepseg reports it.
    let (tile_cols, tile_rows) =
        shepseg_tiling::TileGrid::new(r.size.0, r.size.1, r.tile_size, r.overlap_size)
            .map(|g| (g.ncols(), g.nrows()))
            .unwrap_or((0, 0));
    serde_json::json!({
        "num_segments": r.num_segments,
        "tile_cols": tile_cols,
        "tile_rows": tile_rows,
        "num_tiles": r.num_tiles,
        "tiles_resumed": r.tiles_resumed,
        "tile_size": r.tile_size,
        "overlap_size": r.overlap_size,
        "size": [r.size.0, r.size.1],
        "bands": r.bands,
        "null_value": r.null_value,
        "subsample_pcnt": r.subsample_pcnt,
        "max_spectral_diff_used": r.max_spectral_diff_used,
        "kmeans": kmeans,
        "executor": executor,
        "seam_fallbacks": r.seam_fallbacks,
        "seamless": r.seamless.map(|s| serde_json::json!({
            "nodes": s.nodes,
            "table_bytes": s.table_bytes,
            "undecided_singles": s.undecided_singles,
            "singles_joined": s.singles_joined,
            "small_merged": s.small_merged,
        })),
        "stats_columns": r.stats.as_ref().map(|s| s.columns.clone()),
        "timings_s": r.timings.json(total),
        "workers": workers.map(|w| serde_json::json!({
            "joined": w.workers_joined,
            "lost": w.workers_lost,
            "left": w.workers_left,
            "connections_refused": w.connections_refused,
            "tiles_requeued": w.tiles_requeued,
            "replacements": w.replacements,
            "coordinator_bytes_in": w.coordinator_bytes_in,
            "coordinator_bytes_out": w.coordinator_bytes_out,
            "log": w.log,
        })),
    })
}

/// Positive seconds, or an error naming the argument.
fn seconds(name: &str, v: f64) -> PyResult<Duration> {
    if v.is_finite() && v > 0.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(bad(format!(
            "{name} must be a positive number of seconds, got {v}"
        )))
    }
}

/// The tiled segmentation of `infile` into `outfile`; returns the report as JSON text.
#[pyfunction]
#[pyo3(signature = (infile, outfile, bands, null_value, num_clusters, cluster_subsample_pcnt,
    min_segment_size, max_spectral_diff, spect_dist_pcntile, four_connected, fixed_kmeans_init,
    seed, pyshepseg_compat, subsample_pcnt, tile_size, overlap_size, centres, driver,
    creation_options, overwrite, executor, workers, max_concurrent_reads, tile_timeout,
    fargate_config, listen, advertise, tile_retries, barrier_timeout, heartbeat_timeout,
    stats_bands, stats, colour_from_bands, worker_command, gdal_config, verbose, work_dir,
    resume))]
#[allow(clippy::too_many_arguments)]
pub fn tiled_segment(
    py: Python<'_>,
    infile: PathBuf,
    outfile: PathBuf,
    bands: Vec<usize>,
    null_value: Option<f64>,
    num_clusters: usize,
    cluster_subsample_pcnt: f64,
    min_segment_size: usize,
    max_spectral_diff: &Bound<'_, PyAny>,
    spect_dist_pcntile: f64,
    four_connected: bool,
    fixed_kmeans_init: bool,
    seed: u64,
    pyshepseg_compat: bool,
    subsample_pcnt: Option<f64>,
    tile_size: Option<usize>,
    overlap_size: Option<usize>,
    centres: Option<&Bound<'_, PyAny>>,
    driver: String,
    creation_options: Vec<String>,
    overwrite: bool,
    executor: String,
    workers: Option<usize>,
    max_concurrent_reads: usize,
    tile_timeout: Option<f64>,
    fargate_config: Option<String>,
    listen: Option<String>,
    advertise: Option<String>,
    tile_retries: usize,
    barrier_timeout: f64,
    heartbeat_timeout: f64,
    stats_bands: Vec<usize>,
    stats: Vec<String>,
    colour_from_bands: Option<Vec<usize>>,
    worker_command: Vec<String>,
    gdal_config: Vec<(String, String)>,
    verbose: bool,
    work_dir: Option<PathBuf>,
    resume: bool,
) -> PyResult<String> {
    let params = params(
        num_clusters,
        cluster_subsample_pcnt,
        min_segment_size,
        max_spectral_diff,
        spect_dist_pcntile,
        four_connected,
        fixed_kmeans_init,
        seed,
        pyshepseg_compat,
    )?;
    let model = model(centres)?;
    if !matches!(
        executor.as_str(),
        "sequential" | "threads" | "processes" | "fargate"
    ) {
        return Err(bad(format!(
            "executor must be 'sequential', 'threads', 'processes' or 'fargate', got {executor:?}"
        )));
    }
    if workers == Some(0) {
        return Err(bad("workers must be at least 1"));
    }
    if max_concurrent_reads == 0 {
        return Err(bad("max_concurrent_reads must be at least 1"));
    }
    if tile_retries == 0 {
        return Err(bad("tile_retries must be at least 1"));
    }
    let tile_timeout = tile_timeout
        .map(|t| seconds("tile_timeout", t))
        .transpose()?;
    let barrier_timeout = seconds("barrier_timeout", barrier_timeout)?;
    let heartbeat_timeout = seconds("heartbeat_timeout", heartbeat_timeout)?;
    let fargate = match (executor.as_str(), fargate_config) {
        ("fargate", Some(text)) => {
            Some(FargateConfig::parse(&text, false, "fargate_config").map_err(|e| raise("", &e))?)
        }
        ("fargate", None) => return Err(bad("executor 'fargate' needs fargate_config")),
        _ => None,
    };
    let listen = listen
        .map(|l| {
            l.parse::<std::net::SocketAddr>()
                .map_err(|e| bad(format!("listen {l:?}: {e}")))
        })
        .transpose()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = workers.unwrap_or(cores);
    let cancel = Arc::new(AtomicBool::new(false));
    let statistics = if stats_bands.is_empty() && stats.is_empty() {
        None
    } else {
        if stats_bands.is_empty() || stats.is_empty() {
            return Err(bad("stats_bands and stats go together"));
        }
        let parsed = stats
            .iter()
            .map(|s| s.parse::<Stat>().map_err(|e| raise("stats", &e)))
            .collect::<PyResult<Vec<_>>>()?;
        let colour = colour_bands(colour_from_bands, &parsed, &stats_bands)?;
        Some((
            StatsRequest {
                bands: stats_bands,
                stats: parsed,
                cancel: Some(Arc::clone(&cancel)),
                workers: Exec::threads_for_stats(&executor, workers),
                ..Default::default()
            },
            colour,
        ))
    };
    let job = Job {
        infile,
        outfile,
        bands,
        null_value,
        params,
        subsample_pcnt,
        tile_size,
        overlap_size,
        model,
        output: OutputOptions {
            driver,
            creation_options,
            overwrite,
        },
        statistics,
        work_dir,
        resume,
        exec: Exec {
            kind: executor,
            workers,
            max_concurrent_reads,
            tile_timeout,
            fargate,
            listen,
            advertise,
            tile_retries,
            barrier_timeout,
            heartbeat_timeout,
            worker_command,
            gdal_config,
            verbose,
        },
    };
    let flag = Arc::clone(&cancel);
    let report = crate::watch::run(
        py,
        crate::watch::OnInterrupt::Cancel(Arc::clone(&cancel)),
        move || job.run(flag),
    )?
    .map_err(|e| match e {
        PipelineError::Cancelled => ShepsegError::new_err("cancelled"),
        e => raise(context(&e), &e),
    })?;
    Ok(report.to_string())
}

impl Exec {
    /// Reader threads for the statistics: the local workers, or every core.
    fn threads_for_stats(kind: &str, workers: usize) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if kind == "threads" {
            workers.min(cores).max(1)
        } else {
            cores
        }
    }
}

/// The argument that governs an executor's error, as the CLI names its flag.
fn context(e: &PipelineError) -> &'static str {
    match e {
        PipelineError::Exec(ExecError::Timeout { .. }) => "tile_timeout",
        PipelineError::Exec(ExecError::Listen { .. }) => "listen/advertise",
        PipelineError::Exec(ExecError::NoWorkers { .. }) => "barrier_timeout",
        _ => "",
    }
}
