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
