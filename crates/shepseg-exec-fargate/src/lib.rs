//! # shepseg-exec-fargate
//!
//! Tile executors whose workers are separate processes — on this machine or as AWS ECS Fargate
//! tasks — that connect back to a coordinator over TCP, pull tiles, segment them and return them.
//!
//! - [`protocol`]: the versioned, length-prefixed, authenticated wire protocol.
//! - [`coordinator`]: [`RemoteExecutor`], the [`shepseg_tiling::TileExecutor`] that serves tiles,
//!   leases them, survives lost workers, and hands finished tiles to the stitcher in order; and
//!   the [`WorkerLauncher`] trait for whatever starts the workers.
//! - [`worker`]: the worker's side (`shepseg worker --connect HOST:PORT`).
//! - [`processes`]: [`ProcessLauncher`], workers as local child processes.
//! - [`fargate`]: [`FargateLauncher`], workers as ECS Fargate tasks (aws-sdk-ecs).
//! - [`cleanup`]: [`cleanup_leftovers`], what killed Fargate jobs left behind.
#![deny(missing_docs)]

pub mod cleanup;
pub mod coordinator;
pub mod error;
pub mod fargate;
pub mod processes;
pub mod protocol;
pub mod worker;

pub use cleanup::{cleanup_leftovers, CleanupReport};
pub use coordinator::{
    RemoteExecutor, RemoteOptions, RemoteReport, WorkerInvocation, WorkerLauncher,
};
pub use error::RemoteError;
pub use fargate::{FargateConfig, FargateLauncher};
pub use processes::ProcessLauncher;
pub use protocol::{Secret, SECRET_ENV};
pub use worker::{run_worker, WorkerOptions, WorkerSummary};
