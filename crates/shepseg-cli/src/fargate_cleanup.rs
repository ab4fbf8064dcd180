//! `shepseg fargate-cleanup`: removes what Fargate jobs killed without their cleanup (SIGKILL,
//! a lost machine) left in the account: tasks, task definitions, secret parameters, clusters.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use shepseg_exec_fargate::cleanup_leftovers;

/// Options of `shepseg fargate-cleanup`.
#[derive(Args, Debug)]
pub struct CleanupArgs {
    /// Only what jobs started at least this many hours ago left (default 0: everything, so
    /// run it when no job is running or give the age of the oldest running one).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub older_than: f64,
}

/// Runs the cleanup and prints what it removed.
pub fn run(args: &CleanupArgs) -> anyhow::Result<()> {
    if !(args.older_than.is_finite() && args.older_than >= 0.0) {
        anyhow::bail!(
            "--older-than must be a non-negative number of hours, got {}",
            args.older_than
        );
    }
    let age = Duration::from_secs_f64(args.older_than * 3600.0);
    let r = cleanup_leftovers(age).context("fargate-cleanup")?;
    for (what, items) in [
        ("stopped task", &r.tasks),
        ("deregistered task definition", &r.task_definitions),
        ("deleted parameter", &r.parameters),
        ("deleted cluster", &r.clusters),
    ] {
        for i in items {
            println!("{what} {i}");
        }
    }
    println!(
        "shepseg fargate-cleanup: {} tasks, {} task definitions, {} parameters, {} clusters",
        r.tasks.len(),
        r.task_definitions.len(),
        r.parameters.len(),
        r.clusters.len()
    );
    Ok(())
}
