//! Work off the GIL, with Ctrl-C: the work runs on a thread of its own while the calling thread
//! sleeps without the GIL, waking ten times a second to let Python run its signal handlers. A
//! `KeyboardInterrupt` raises the job's cancel flag, waits for the job to clean up (a tiled job
//! removes its partial output) and is raised to the caller.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;

use crate::error::bad;

/// How often the waiting thread checks for signals.
const TICK: Duration = Duration::from_millis(100);

/// What to do with the work when Ctrl-C comes.
pub enum OnInterrupt {
    /// Raise this flag, which the work checks, and wait for it to stop.
    Cancel(Arc<AtomicBool>),
    /// Wait for the work to finish (it cannot be stopped); the caller then undoes it.
    Wait,
    /// Leave it to finish in the background and drop its result: for work with no effect
    /// but its result (it owns everything it uses, as the `'static` bound ensures).
    Abandon,
}

/// Runs `work` on a new thread and returns its result; on a signal's exception (Ctrl-C's
/// `KeyboardInterrupt`), deals with the work as `on_interrupt` says, then raises it.
pub fn run<T: Send + 'static>(
    py: Python<'_>,
    on_interrupt: OnInterrupt,
    work: impl FnOnce() -> T + Send + 'static,
) -> PyResult<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("shepseg".into())
        .spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(work));
            let _ = tx.send(r);
        })
        .map_err(|e| bad(format!("cannot start a thread: {e}")))?;
    let mut rx = rx;
    loop {
        let (r, back) = py.detach(move || (rx.recv_timeout(TICK), rx));
        rx = back;
        match r {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(panic)) => return Err(bad(panic_text(&panic))),
            Err(RecvTimeoutError::Disconnected) => return Err(bad("the worker thread vanished")),
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = py.check_signals() {
                    match &on_interrupt {
                        OnInterrupt::Cancel(flag) => {
                            flag.store(true, Ordering::SeqCst);
                            // The job stops at its next check and removes what it wrote.
                            let _ = py.detach(move || rx.recv());
                        }
                        OnInterrupt::Wait => {
                            let _ = py.detach(move || rx.recv());
                        }
                        OnInterrupt::Abandon => {}
                    }
                    return Err(e);
                }
            }
        }
    }
}

/// A panic's message.
fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into());
    format!("internal error (a panic): {what}")
}
