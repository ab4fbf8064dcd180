//! `stats`: per-segment statistics into a segmentation's attribute table
//! ([`shepseg_stats::compute_stats`]), with spatial statistics written in Python.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use shepseg_stats::colour::colour_from_columns;
use shepseg_stats::StatsRequest;
use shepseg_stats::{compute_stats, parse_spatial, SegmentPixels, SpatialStat, Stat, StatsError};
use shepseg_tiling::rat::ColumnType;

use crate::error::{bad, raise, ShepsegError};

/// A spatial statistic computed by a Python function `func(xs, ys, values, out)`, called once
/// per segment with the segment's valid pixels (numpy arrays: columns, rows, values) and
/// `out`, a float64 array with one slot per column preset to the missing value, to fill.
struct PyStat {
    columns: Vec<(String, ColumnType)>,
    func: Py<PyAny>,
    /// The first exception the function raised; later segments are skipped.
    error: Arc<Mutex<Option<PyErr>>>,
    /// Raised with the first exception, to stop the pass.
    cancel: Arc<AtomicBool>,
}

impl SpatialStat for PyStat {
    fn columns(&self) -> Vec<(String, ColumnType)> {
        self.columns.clone()
    }

    fn compute(&self, p: &SegmentPixels<'_>, out: &mut [f64]) {
        if self.error.lock().map(|e| e.is_some()).unwrap_or(true) {
            return;
        }
        Python::attach(|py| {
            let o = PyArray1::from_slice(py, out);
            let r = self.func.call1(
                py,
                (
                    PyArray1::from_slice(py, p.xs),
                    PyArray1::from_slice(py, p.ys),
                    PyArray1::from_slice(py, p.values),
                    o.clone(),
                ),
            );
            match r {
                Ok(_) => {
                    if let Ok(v) = o.readonly().as_slice() {
                        out.copy_from_slice(v);
                    }
                }
                Err(e) => {
                    if let Ok(mut slot) = self.error.lock() {
                        slot.get_or_insert(e);
                    }
                    self.cancel.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
    }
}

/// Computes statistics of `imgfile`'s bands per segment of `segfile` into its table; returns
/// the columns written.
#[pyfunction]
#[pyo3(signature = (segfile, imgfile, bands, stats, column_names, spatial, spatial_band,
    missing_value, workers, four_connected, colour_from_bands, user_columns, user_func))]
#[allow(clippy::too_many_arguments)]
pub fn stats(
    py: Python<'_>,
    segfile: PathBuf,
    imgfile: PathBuf,
    bands: Vec<usize>,
    stats: Vec<String>,
    column_names: Vec<String>,
    spatial: Vec<String>,
    spatial_band: Option<usize>,
    missing_value: f64,
    workers: Option<usize>,
    four_connected: bool,
    colour_from_bands: Option<Vec<usize>>,
    user_columns: Vec<(String, bool)>,
    user_func: Option<Py<PyAny>>,
) -> PyResult<Vec<String>> {
    let parsed = stats
        .iter()
        .map(|s| s.parse::<Stat>().map_err(|e| raise("stats", &e)))
        .collect::<PyResult<Vec<_>>>()?;
    let workers = match workers {
        Some(0) => return Err(bad("workers must be at least 1")),
        Some(w) => w,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let sb = spatial_band.or(bands.first().copied()).unwrap_or(1);
    let mut spatial_stats: Vec<Box<dyn SpatialStat>> = spatial
        .iter()
        .map(|s| {
            parse_spatial(s, sb, four_connected).map_err(|e| raise(&format!("spatial {s}"), &e))
        })
        .collect::<PyResult<_>>()?;
    let cancel = Arc::new(AtomicBool::new(false));
    let error = Arc::new(Mutex::new(None));
    match (user_func, user_columns.is_empty()) {
        (Some(func), false) => spatial_stats.push(Box::new(PyStat {
            columns: user_columns
                .into_iter()
                .map(|(n, int)| {
                    (
                        n,
                        if int {
                            ColumnType::Integer
                        } else {
                            ColumnType::Real
                        },
                    )
                })
                .collect(),
            func,
            error: Arc::clone(&error),
            cancel: Arc::clone(&cancel),
        })),
        (Some(_), true) => return Err(bad("user_func needs user_columns")),
        (None, false) => return Err(bad("user_columns need user_func")),
        (None, true) => {}
    }
    let colour = colour_bands(colour_from_bands, &parsed, &bands)?;
    let request = StatsRequest {
        bands,
        stats: parsed,
        spatial: spatial_stats,
        spatial_band,
        missing_value,
        workers,
        strip_rows: 0,
        column_names,
        cancel: Some(Arc::clone(&cancel)),
    };
    let result = crate::watch::run(
        py,
        crate::watch::OnInterrupt::Cancel(Arc::clone(&cancel)),
        move || {
            // A segmentation on S3 is worked on in a local copy and its changes uploaded.
            shepseg_stats::remote::on_local_copy(&segfile, |seg| {
                let report = compute_stats(seg, &imgfile, &request)?;
                if let Some(rgb) = colour {
                    let names = rgb.map(|b| Stat::Mean.column_name(b));
                    colour_from_columns(seg, [&names[0], &names[1], &names[2]])?;
                }
                Ok::<_, StatsError>(report.columns)
            })
        },
    )?;
    if let Some(e) = error.lock().ok().and_then(|mut e| e.take()) {
        return Err(e);
    }
    result.map_err(|e| match e {
        StatsError::Cancelled => ShepsegError::new_err("cancelled"),
        e => raise("", &e),
    })
}

/// `colour_from_bands` checked: three bands, each among `bands` with `mean` among `stats`.
pub fn colour_bands(
    colour_from_bands: Option<Vec<usize>>,
    stats: &[Stat],
    bands: &[usize],
) -> PyResult<Option<[usize; 3]>> {
    let Some(c) = colour_from_bands else {
        return Ok(None);
    };
    let c = <[usize; 3]>::try_from(c.as_slice())
        .map_err(|_| bad("colour_from_bands must name three bands"))?;
    if !stats.contains(&Stat::Mean) || c.iter().any(|b| !bands.contains(b)) {
        return Err(bad(
            "colour_from_bands needs 'mean' of each of its bands among the statistics",
        ));
    }
    Ok(Some(c))
}
