//! `run_worker`: a tile worker for the `processes` executor, started by the coordinator as
//! `python -m shepseg worker --connect HOST:PORT` (shepseg/__main__.py).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use shepseg_exec_fargate::{run_worker as run, Secret, WorkerOptions};

use crate::error::{bad, raise};

/// Works on the coordinator's tiles until it has no more; returns the tiles done.
#[pyfunction]
#[pyo3(signature = (connect, name, connect_timeout))]
pub fn run_worker(
    py: Python<'_>,
    connect: String,
    name: String,
    connect_timeout: f64,
) -> PyResult<usize> {
    if !(connect_timeout.is_finite() && connect_timeout >= 0.0) {
        return Err(bad(format!(
            "connect_timeout must be a non-negative number of seconds, got {connect_timeout}"
        )));
    }
    let secret = Secret::from_env().map_err(|e| raise("", &e))?;
    // A signal's exception (KeyboardInterrupt; `python -m shepseg worker` raises it on SIGTERM
    // and SIGHUP too) raises this flag: the worker hands its tile back and returns, and the
    // exception reaches the caller.
    let stop = Arc::new(AtomicBool::new(false));
    let opts = WorkerOptions {
        connect: connect.clone(),
        name,
        secret,
        connect_timeout: Duration::from_secs_f64(connect_timeout),
        stop: Some(Arc::clone(&stop)),
    };
    let summary = crate::watch::run(py, crate::watch::OnInterrupt::Cancel(stop), move || {
        run(&opts)
    })?
    .map_err(|e| raise(&format!("worker for {connect}"), &e))?;
    Ok(summary.tiles_done)
}
