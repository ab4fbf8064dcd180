//! `polygonize`: a segmentation's segments as polygons with their attributes
//! ([`shepseg_polygonize::polygonize`]).

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use shepseg_polygonize::{polygonize as run_polygonize, PolygonizeError, PolygonizeJob};

use crate::error::{bad, raise};

/// Writes one feature per segment of `segfile` to `output`; returns counts and timings.
#[pyfunction]
#[pyo3(signature = (segfile, output, driver, columns, workers, overwrite, simplify))]
#[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments
pub fn polygonize<'py>(
    py: Python<'py>,
    segfile: PathBuf,
    output: PathBuf,
    driver: Option<String>,
    columns: Option<Vec<String>>,
    workers: Option<usize>,
    overwrite: bool,
    simplify: Option<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let workers = match workers {
        Some(0) => return Err(bad("workers must be at least 1")),
        Some(w) => w.min(4096),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let existed = shepseg_tiling::vsi::exists(&output);
    let job = PolygonizeJob {
        segfile,
        output: output.clone(),
        driver,
        columns,
        workers,
        overwrite,
        strip_rows: 0,
        simplify,
    };
    let r = crate::watch::run(py, crate::watch::OnInterrupt::Wait, move || {
        run_polygonize(&job, None)
    });
    if r.is_err() && !existed {
        // Interrupted: the job could not be stopped, so what it finished is removed.
        let _ = std::fs::remove_file(&output);
    }
    let report = r?.map_err(|e| match &e {
        PolygonizeError::Exists(p) => bad(format!(
            "{}: already exists (pass overwrite=True to replace it)",
            p.display()
        )),
        PolygonizeError::Driver { .. } => raise("driver", &e),
        PolygonizeError::Column { .. } => raise("columns", &e),
        PolygonizeError::Tolerance(_) => raise("simplify", &e),
        _ => raise("", &e),
    })?;
    let d = PyDict::new(py);
    d.set_item("features", report.features)?;
    d.set_item("multipolygons", report.multipolygons)?;
    d.set_item("vertices", report.vertices)?;
    d.set_item("seconds", report.total.as_secs_f64())?;
    Ok(d)
}
