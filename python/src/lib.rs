//! # shepseg-python
//!
//! The native module `shepseg._shepseg` behind the Python package `shepseg` (in `shepseg/`
//! beside this crate): thin bindings from Python values to the library crates. Argument
//! defaults, result objects and pyshepseg's API live in the Python code; this crate converts
//! arrays, runs the work without the GIL on a thread of its own while the calling thread
//! watches for Ctrl-C ([`watch`]), and turns every error into `shepseg.ShepsegError`.

#![deny(missing_docs)]

mod error;
mod info;
mod inmem;
mod stats;
mod subset;
mod tiled;
mod vector;
mod watch;
mod worker;

use pyo3::prelude::*;

/// The module `shepseg._shepseg`.
#[pymodule]
fn _shepseg(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ShepsegError", m.py().get_type::<error::ShepsegError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(inmem::segment, m)?)?;
    m.add_function(wrap_pyfunction!(tiled::tiled_segment, m)?)?;
    m.add_function(wrap_pyfunction!(stats::stats, m)?)?;
    m.add_function(wrap_pyfunction!(subset::subset, m)?)?;
    m.add_function(wrap_pyfunction!(vector::polygonize, m)?)?;
    m.add_function(wrap_pyfunction!(info::raster_info, m)?)?;
    m.add_function(wrap_pyfunction!(info::gdal_driver_available, m)?)?;
    m.add_function(wrap_pyfunction!(info::read_raster, m)?)?;
    m.add_function(wrap_pyfunction!(info::read_table, m)?)?;
    m.add_function(wrap_pyfunction!(worker::run_worker, m)?)?;
    m.add_function(wrap_pyfunction!(shepseg_simd, m)?)?;
    Ok(())
}

/// The instruction set the core's kernels use on this machine (`AVX-512`, `AVX2`, `scalar`).
#[pyfunction]
fn shepseg_simd() -> &'static str {
    shepseg_core::simd_in_use()
}
