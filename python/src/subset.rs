//! `subset`: a window of a segmentation, renumbered, with its table
//! ([`shepseg_stats::subset::subset`]).

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use shepseg_stats::subset::{subset as run_subset, SubsetWindow};
use shepseg_stitch::OutputOptions;

use crate::error::{bad, raise};

/// Writes the part of `segfile` given by exactly one of `srcwin`, `projwin` or `mask` to
/// `outfile`; returns the window used and the segments kept.
#[pyfunction]
#[pyo3(signature = (segfile, outfile, srcwin, projwin, mask, orig_id_column, driver,
    creation_options, overwrite))]
#[allow(clippy::too_many_arguments)]
pub fn subset<'py>(
    py: Python<'py>,
    segfile: PathBuf,
    outfile: PathBuf,
    srcwin: Option<(usize, usize, usize, usize)>,
    projwin: Option<(f64, f64, f64, f64)>,
    mask: Option<PathBuf>,
    orig_id_column: Option<String>,
    driver: String,
    creation_options: Vec<String>,
    overwrite: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let window = match (srcwin, projwin, mask) {
        (Some((x, y, w, h)), None, None) => SubsetWindow::SrcWin(x, y, w, h),
        (None, Some((a, b, c, d)), None) => SubsetWindow::ProjWin(a, b, c, d),
        (None, None, Some(m)) => SubsetWindow::Mask(m),
        _ => return Err(bad("give exactly one of srcwin, projwin and mask")),
    };
    let options = OutputOptions {
        driver,
        creation_options,
        overwrite,
    };
    let out = outfile.clone();
    let existed = out.exists();
    let report = crate::watch::run(py, crate::watch::OnInterrupt::Wait, move || {
        run_subset(
            &segfile,
            &outfile,
            &window,
            &options,
            orig_id_column.as_deref(),
        )
    });
    if report.is_err() && !existed {
        // Interrupted: the subset could not be stopped, so what it finished is removed.
        let _ = std::fs::remove_file(&out);
    }
    let report = report?.map_err(|e| raise("", &e))?;
    let d = PyDict::new(py);
    d.set_item("window", report.window)?;
    d.set_item("segments", report.segments)?;
    Ok(d)
}
