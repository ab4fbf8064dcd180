//! Ctrl-C, SIGTERM and SIGHUP (ctrlc's `termination` feature): remove the output being built,
//! so an interrupted job leaves nothing behind; with remote workers, first stop them and clean
//! up what was created for them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The folders to remove on interrupt.
static PARTIAL: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// What an interrupt keeps for `--resume`: the work directory and the command to continue.
static KEPT: Mutex<Option<(PathBuf, String)>> = Mutex::new(None);

/// Set on the first Ctrl-C when a job asked to stop gracefully (see [`graceful`]).
static CANCEL: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// On Ctrl-C (or SIGTERM or SIGHUP), remove `dir` (and any other folder registered so) and exit with status 130 — unless [`graceful`] was
/// called, in which case the first Ctrl-C only raises the cancel flag and the job cleans up
/// itself; a second one exits at once.
pub fn abandon_on_interrupt(dir: &Path) {
    if let Ok(mut p) = PARTIAL.lock() {
        p.push(dir.to_path_buf());
    }
    // A second registration fails harmlessly: the first handler reads the same slot.
    let _ = ctrlc::set_handler(|| {
        if let Some(flag) = CANCEL.get() {
            if !flag.swap(true, Ordering::SeqCst) {
                eprintln!("shepseg: interrupted; stopping workers and cleaning up (Ctrl-C again to quit now)");
                return;
            }
        }
        for dir in PARTIAL
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
        eprintln!("shepseg: interrupted; no output written{}", kept_note());
        exit_now(130);
    });
}

/// On an interrupt, `dir` (a job's work directory) is kept and the message gives `command`
/// to continue the job.
pub fn keep_on_interrupt(dir: &Path, command: &str) {
    if let Ok(mut k) = KEPT.lock() {
        *k = Some((dir.to_path_buf(), command.to_string()));
    }
}

/// "; work directory ... kept: continue with ...", if a work directory exists to continue
/// from, else nothing. Its lock is released: this process is about to end.
pub fn kept_note() -> String {
    let Some((dir, command)) = KEPT.lock().ok().and_then(|k| k.clone()) else {
        return String::new();
    };
    if !shepseg_pipeline::release_work_dir(&dir) {
        return String::new();
    }
    format!(
        "; work directory {} kept, continue with: {command}",
        dir.display()
    )
}

/// Ends the process at once with `code`, without the exit handlers: other threads may be inside
/// GDAL (workers, the threaded sample read), and GDAL's own teardown at exit must not race with
/// them.
pub fn exit_now(code: i32) -> ! {
    #[cfg(unix)]
    // SAFETY: `_exit` ends the process; nothing runs after it, so no state can be observed
    // half-updated. The partial output was removed and the message written (stderr is
    // unbuffered) before this call.
    unsafe {
        libc::_exit(code)
    }
    #[cfg(not(unix))]
    std::process::exit(code)
}

/// Asks for graceful interrupts; returns the flag the first Ctrl-C raises.
pub fn graceful() -> Arc<AtomicBool> {
    Arc::clone(CANCEL.get_or_init(|| Arc::new(AtomicBool::new(false))))
}

/// Whether a graceful interrupt happened.
pub fn interrupted() -> bool {
    CANCEL.get().is_some_and(|f| f.load(Ordering::SeqCst))
}
