//! Ctrl-C: remove the output being built, so an interrupted job leaves nothing behind.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The folder to remove on interrupt, if any.
static PARTIAL: Mutex<Option<PathBuf>> = Mutex::new(None);

/// On Ctrl-C (or SIGTERM), remove `dir` and exit with status 130.
pub fn abandon_on_interrupt(dir: &Path) {
    if let Ok(mut p) = PARTIAL.lock() {
        *p = Some(dir.to_path_buf());
    }
    // A second registration fails harmlessly: the first handler reads the same slot.
    let _ = ctrlc::set_handler(|| {
        if let Some(dir) = PARTIAL.lock().ok().and_then(|mut p| p.take()) {
            let _ = std::fs::remove_dir_all(dir);
        }
        eprintln!("shepseg: interrupted; no output written");
        std::process::exit(130);
    });
}
