//! `shepseg worker`: a tile worker for the `processes` and `fargate` executors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use shepseg_exec_fargate::{run_worker, Secret, WorkerOptions};

/// Options of `shepseg worker`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// HOST:PORT of the coordinator.
    #[arg(long)]
    pub connect: String,
    /// Name shown in the coordinator's log (default: host name and process ID).
    #[arg(long)]
    pub name: Option<String>,
    /// Seconds to keep trying to reach the coordinator.
    #[arg(long, default_value_t = 120.0, allow_negative_numbers = true)]
    pub connect_timeout: f64,
}

/// Runs the worker until the coordinator has no more tiles.
pub fn run(args: &WorkerArgs) -> anyhow::Result<()> {
    // GDAL's block cache is sized to the worker's reads once the job names the raster
    // (shepseg_exec_fargate::run_worker).
    if !(args.connect_timeout.is_finite() && args.connect_timeout >= 0.0) {
        anyhow::bail!(
            "--connect-timeout must be a non-negative number of seconds, got {}",
            args.connect_timeout
        );
    }
    let secret = Secret::from_env()?;
    let name = args.name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "worker".into());
        format!("{host}:{}", std::process::id())
    });
    // SIGTERM (ECS stopping the task: a Spot interruption, a scale-in), SIGINT and SIGHUP:
    // leave the job, handing the tile in hand back to the coordinator.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("cannot handle signals")?;
    }
    let summary = run_worker(&WorkerOptions {
        connect: args.connect.clone(),
        name: name.clone(),
        secret,
        connect_timeout: Duration::from_secs_f64(args.connect_timeout),
        stop: Some(stop),
    })
    .with_context(|| format!("worker for {}", args.connect))?;
    if let Some(tile) = summary.left {
        let what = match tile {
            Some(t) => format!("tile {t} handed back"),
            None => "no tile in hand".into(),
        };
        eprintln!("shepseg worker {name}: stopped by a signal; {what}");
        // The tile thread may be inside GDAL: end without its exit-time teardown.
        crate::interrupt::exit_now(0);
    }
    Ok(())
}
