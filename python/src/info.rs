//! `raster_info`: what the Python layer needs to know of a raster (for pyshepseg's
//! arguments that depend on it), read through the same GDAL as everything else.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use shepseg_tiling::Raster;

use crate::error::raise;

/// Size, band count, and each band's nodata value and data type name.
#[pyfunction]
pub fn raster_info(py: Python<'_>, path: PathBuf) -> PyResult<Bound<'_, PyDict>> {
    let raster = Raster::open(&path).map_err(|e| raise("", &e))?;
    let ds = raster.dataset();
    let mut nodata = Vec::new();
    let mut types = Vec::new();
    for b in 1..=raster.band_count() {
        let band = ds
            .rasterband(b)
            .map_err(|e| raise(&path.display().to_string(), &e))?;
        nodata.push(band.no_data_value());
        types.push(band.band_type().name());
    }
    let d = PyDict::new(py);
    d.set_item("size", raster.size())?;
    d.set_item("bands", raster.band_count())?;
    d.set_item("nodata", nodata)?;
    d.set_item("types", types)?;
    d.set_item("geotransform", ds.geo_transform().ok())?;
    Ok(d)
}

/// Whether this GDAL has a raster driver of this short name (KEA is missing from many).
#[pyfunction]
pub fn gdal_driver_available(name: &str) -> bool {
    gdal::DriverManager::get_driver_by_name(name).is_ok()
}

/// Reads `bands` (from 1; empty: all) of a raster whole, as a `(bands, rows, cols)` array of
/// its own pixel type: for scripts without GDAL's Python bindings.
#[pyfunction]
pub fn read_raster<'py>(
    py: Python<'py>,
    path: PathBuf,
    bands: Vec<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    use numpy::IntoPyArray;
    use shepseg_tiling::BandStack;
    let stack = crate::watch::run(py, crate::watch::OnInterrupt::Abandon, move || {
        let raster = Raster::open(&path)?;
        let bands = raster.resolve_bands(&bands)?;
        raster.read_stack(&bands, raster.full_window())
    })?
    .map_err(|e| raise("", &e))?;
    Ok(match stack {
        BandStack::U8(a) => a.into_pyarray(py).into_any(),
        BandStack::I8(a) => a.into_pyarray(py).into_any(),
        BandStack::U16(a) => a.into_pyarray(py).into_any(),
        BandStack::I16(a) => a.into_pyarray(py).into_any(),
        BandStack::U32(a) => a.into_pyarray(py).into_any(),
        BandStack::I32(a) => a.into_pyarray(py).into_any(),
        BandStack::U64(a) => a.into_pyarray(py).into_any(),
        BandStack::I64(a) => a.into_pyarray(py).into_any(),
        BandStack::F32(a) => a.into_pyarray(py).into_any(),
        BandStack::F64(a) => a.into_pyarray(py).into_any(),
    })
}

/// The attribute table of band 1 of a segmentation: each column (all, or those named) as a
/// numpy array, int64 for integer columns and float64 for real ones; row `i` is segment `i`.
#[pyfunction]
#[pyo3(signature = (path, columns))]
pub fn read_table<'py>(
    py: Python<'py>,
    path: PathBuf,
    columns: Option<Vec<String>>,
) -> PyResult<Bound<'py, PyDict>> {
    use numpy::IntoPyArray;
    use shepseg_tiling::rat::{ColumnType, RatEditor};
    let raster = Raster::open(&path).map_err(|e| raise("", &e))?;
    let here = path.display().to_string();
    let band = raster
        .dataset()
        .rasterband(1)
        .map_err(|e| raise(&here, &e))?;
    let editor = RatEditor::open(&band, true).map_err(|e| raise(&here, &e))?;
    let all = editor.columns();
    let wanted: Vec<String> = match columns {
        Some(c) => c,
        None => all.iter().map(|(n, _, _)| n.clone()).collect(),
    };
    let d = PyDict::new(py);
    for name in wanted {
        let col = editor
            .find(&name)
            .ok_or_else(|| crate::error::bad(format!("{here}: no column {name:?} in its table")))?;
        let values = editor
            .read(col, 0, editor.rows())
            .map_err(|e| raise(&here, &e))?;
        if all.get(col).is_some_and(|c| c.1 == ColumnType::Integer) {
            let ints: Vec<i64> = values.iter().map(|&v| v as i64).collect();
            d.set_item(&name, ints.into_pyarray(py))?;
        } else {
            d.set_item(&name, values.into_pyarray(py))?;
        }
    }
    Ok(d)
}
