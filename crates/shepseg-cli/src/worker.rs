//! `shepseg worker`: a tile worker for the `processes` and `fargate` executors.

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
    run_worker(&WorkerOptions {
        connect: args.connect.clone(),
        name,
        secret,
        connect_timeout: Duration::from_secs_f64(args.connect_timeout),
    })
    .with_context(|| format!("worker for {}", args.connect))?;
    Ok(())
}
