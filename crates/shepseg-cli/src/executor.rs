//! The executor options of `shepseg segment`, and the executor they compose at run time.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use shepseg_exec_fargate::{
    FargateConfig, FargateLauncher, ProcessLauncher, RemoteExecutor, RemoteOptions, RemoteReport,
};
use shepseg_exec_threads::ThreadsExecutor;
use shepseg_pipeline::{PipelineError, SegmentationReport, TiledSegmentation};
use shepseg_tiling::SequentialExecutor;

/// Who segments the tiles, and how remote workers are run.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Who segments the tiles.
    #[arg(long, value_enum, default_value_t = Executor::Threads)]
    pub executor: Executor,
    /// Workers (default: the number of cores). Workers beyond the number of tiles are not
    /// started, and the k-means fit and the stitch use at most one thread per core.
    #[arg(short = 'w', long, allow_negative_numbers = true)]
    pub workers: Option<usize>,
    /// Tiles read at once, at most.
    #[arg(long, default_value_t = 20, allow_negative_numbers = true)]
    pub max_concurrent_reads: usize,
    /// End the job if the next tile is not done within this many seconds.
    #[arg(long, allow_negative_numbers = true)]
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
    #[arg(long, default_value_t = 3, allow_negative_numbers = true)]
    pub tile_retries: usize,
    /// Seconds to wait for a remote worker to connect (at the start, or after all were lost).
    #[arg(long, default_value_t = 600.0, allow_negative_numbers = true)]
    pub barrier_timeout: f64,
    /// Seconds of silence after which a remote worker is lost and its tiles re-queued.
    #[arg(long, default_value_t = 30.0, allow_negative_numbers = true)]
    pub heartbeat_timeout: f64,
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

impl ExecArgs {
    /// Checks the options before any work is done; loads the Fargate configuration.
    pub fn validate(&self) -> anyhow::Result<Option<FargateConfig>> {
        if let Some(t) = self.tile_timeout {
            if !(t.is_finite() && t > 0.0) {
                bail!("--tile-timeout must be a positive number of seconds, got {t}");
            }
        }
        if self.workers == Some(0) {
            bail!("--workers must be at least 1");
        }
        if self.max_concurrent_reads == 0 {
            bail!("--max-concurrent-reads must be at least 1");
        }
        for (name, v) in [
            ("--barrier-timeout", self.barrier_timeout),
            ("--heartbeat-timeout", self.heartbeat_timeout),
        ] {
            if !(v.is_finite() && v > 0.0) {
                bail!("{name} must be a positive number of seconds, got {v}");
            }
        }
        if self.tile_retries == 0 {
            bail!("--tile-retries must be at least 1");
        }
        match (self.executor, &self.fargate_config) {
            (Executor::Fargate, Some(p)) => Ok(Some(FargateConfig::load(p)?)),
            (Executor::Fargate, None) => bail!("--executor fargate needs --fargate-config FILE"),
            _ => Ok(None),
        }
    }

    /// Workers asked for, or one per core.
    pub fn workers(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.workers.unwrap_or(cores)
    }

    /// Threads of this machine for the fit and the stitch's per-pixel work: the local
    /// workers, or every core when the workers are remote. Results do not depend on it.
    pub fn local_threads(&self) -> usize {
        match self.executor {
            Executor::Sequential => 1,
            Executor::Threads => self.workers(),
            Executor::Processes | Executor::Fargate => {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            }
        }
    }

    /// Runs `job` on the chosen executor; with remote workers, also returns what happened to
    /// them. `gdal_config` reaches remote workers with the job.
    pub fn run(
        &self,
        job: TiledSegmentation,
        fargate: Option<FargateConfig>,
        gdal_config: &[String],
        quiet: bool,
    ) -> anyhow::Result<(SegmentationReport, Option<RemoteReport>)> {
        let tile_timeout = self.tile_timeout.map(Duration::from_secs_f64);
        let report = match self.executor {
            Executor::Sequential => job.executor(SequentialExecutor).run(),
            Executor::Threads => job
                .executor(ThreadsExecutor {
                    workers: self.workers(),
                    max_concurrent_reads: self.max_concurrent_reads,
                    max_waiting: 2,
                    tile_timeout,
                })
                .run(),
            Executor::Processes => {
                let program = std::env::current_exe().context("cannot find the shepseg binary")?;
                let ex = self.remote(ProcessLauncher::new(program), gdal_config, quiet);
                let r = job.executor(&ex).run();
                return Ok((r.map_err(|e| self.context(e))?, Some(ex.report())));
            }
            Executor::Fargate => {
                let cfg = fargate.context("--fargate-config")?;
                let ex = self.remote(FargateLauncher::new(cfg), gdal_config, quiet);
                let r = job.executor(&ex).run();
                return Ok((r.map_err(|e| self.context(e))?, Some(ex.report())));
            }
        };
        Ok((report.map_err(|e| self.context(e))?, None))
    }

    /// A remote executor with these options, logging to stderr unless quiet.
    fn remote<L: shepseg_exec_fargate::WorkerLauncher>(
        &self,
        launcher: L,
        gdal_config: &[String],
        quiet: bool,
    ) -> RemoteExecutor<L> {
        let workers = self.workers();
        let options = RemoteOptions {
            listen: self.listen.unwrap_or_else(|| match self.executor {
                Executor::Fargate => ([0, 0, 0, 0], 0).into(),
                _ => ([127, 0, 0, 1], 0).into(),
            }),
            advertise: self.advertise.clone(),
            workers,
            max_concurrent_reads: self.max_concurrent_reads,
            max_waiting: 2,
            tile_retries: self.tile_retries,
            heartbeat_timeout: Duration::from_secs_f64(self.heartbeat_timeout),
            tile_timeout: self.tile_timeout.map(Duration::from_secs_f64),
            barrier_timeout: Duration::from_secs_f64(self.barrier_timeout),
            max_replacements: workers.max(10),
            gdal_config: gdal_config
                .iter()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let log = Box::new(move |line: &str| {
            if !quiet {
                // One write per line, so worker processes sharing stderr cannot split it.
                let text = format!("shepseg: {line}\n");
                let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), text.as_bytes());
            }
        });
        RemoteExecutor::new(options, launcher, log).with_cancel(crate::interrupt::graceful())
    }

    /// The executor's errors with the option that governs them.
    fn context(&self, e: PipelineError) -> anyhow::Error {
        use shepseg_tiling::ExecError;
        let flag = match &e {
            PipelineError::Exec(ExecError::Timeout { .. }) => "--tile-timeout",
            PipelineError::Exec(ExecError::Listen { .. }) => "--listen/--advertise",
            PipelineError::Exec(ExecError::NoWorkers { .. }) => "--barrier-timeout",
            _ => return crate::flags::flag_context(e),
        };
        anyhow::Error::new(e).context(flag)
    }
}
