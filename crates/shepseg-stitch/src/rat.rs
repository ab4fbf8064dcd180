//! A small safe wrapper over GDAL's raster attribute table C API (the `gdal` crate has none).
//!
//! [`Rat`] owns a table built in memory; [`Rat::attach`] copies it onto a band (GDAL copies, so
//! the table is freed on drop either way). [`read_column`] reads a column of a band's table back.
//! Every `unsafe` block here calls GDAL with a handle this module owns or a band the caller holds.

use std::ffi::{CStr, CString};

use gdal::raster::RasterBand;
use gdal_sys::{CPLErr, GDALRATFieldType, GDALRATFieldUsage, GDALRWFlag};

use crate::error::StitchError;

/// Column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// GFT_Integer.
    Integer,
    /// GFT_Real.
    Real,
}

/// Column usage (the ones shepseg writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnUsage {
    /// GFU_Generic.
    Generic,
    /// GFU_PixelCount (the histogram).
    PixelCount,
    /// GFU_Red.
    Red,
    /// GFU_Green.
    Green,
    /// GFU_Blue.
    Blue,
    /// GFU_Alpha.
    Alpha,
}

impl ColumnUsage {
    fn raw(self) -> GDALRATFieldUsage::Type {
        match self {
            Self::Generic => GDALRATFieldUsage::GFU_Generic,
            Self::PixelCount => GDALRATFieldUsage::GFU_PixelCount,
            Self::Red => GDALRATFieldUsage::GFU_Red,
            Self::Green => GDALRATFieldUsage::GFU_Green,
            Self::Blue => GDALRATFieldUsage::GFU_Blue,
            Self::Alpha => GDALRATFieldUsage::GFU_Alpha,
        }
    }
}

/// An in-memory raster attribute table.
pub struct Rat {
    handle: gdal_sys::GDALRasterAttributeTableH,
    rows: usize,
}

fn check(err: CPLErr::Type, what: &str) -> Result<(), StitchError> {
    if err == CPLErr::CE_None {
        Ok(())
    } else {
        Err(StitchError::Output(format!(
            "raster attribute table: {what} failed"
        )))
    }
}

impl Rat {
    /// An empty table of `rows` rows.
    pub fn new(rows: usize) -> Result<Self, StitchError> {
        let rows_c = i32::try_from(rows)
            .map_err(|_| StitchError::Output(format!("{rows} table rows exceed GDAL's limit")))?;
        // SAFETY: creating a table has no preconditions; a null handle is checked below.
        let handle = unsafe { gdal_sys::GDALCreateRasterAttributeTable() };
        if handle.is_null() {
            return Err(StitchError::Output(
                "cannot create a raster attribute table".into(),
            ));
        }
        // SAFETY: `handle` is a valid table owned by this value.
        unsafe { gdal_sys::GDALRATSetRowCount(handle, rows_c) };
        Ok(Self { handle, rows })
    }

    /// Adds a column holding `values` (one per row).
    pub fn add_column(
        &mut self,
        name: &str,
        ty: ColumnType,
        usage: ColumnUsage,
        values: &[f64],
    ) -> Result<(), StitchError> {
        if values.len() != self.rows {
            return Err(StitchError::Output(format!(
                "column {name}: {} values for {} rows",
                values.len(),
                self.rows
            )));
        }
        let cname = CString::new(name).map_err(|e| StitchError::Output(e.to_string()))?;
        let raw_ty = match ty {
            ColumnType::Integer => GDALRATFieldType::GFT_Integer,
            ColumnType::Real => GDALRATFieldType::GFT_Real,
        };
        // SAFETY: valid table handle and NUL-terminated name.
        let err = unsafe {
            gdal_sys::GDALRATCreateColumn(self.handle, cname.as_ptr(), raw_ty, usage.raw())
        };
        check(err, "create column")?;
        // SAFETY: valid handle; the column just created is the last one.
        let col = unsafe { gdal_sys::GDALRATGetColumnCount(self.handle) } - 1;
        let mut data = values.to_vec();
        // SAFETY: `data` holds exactly `rows` values, which fits i32 (checked in `new`).
        let err = unsafe {
            gdal_sys::GDALRATValuesIOAsDouble(
                self.handle,
                GDALRWFlag::GF_Write,
                col,
                0,
                self.rows as i32,
                data.as_mut_ptr(),
            )
        };
        check(err, "write column")
    }

    /// Copies the table onto `band` as its default attribute table.
    pub fn attach(&self, band: &RasterBand) -> Result<(), StitchError> {
        // SAFETY: the band handle is valid while `band` is borrowed; GDAL copies the table.
        let err = unsafe { gdal_sys::GDALSetDefaultRAT(band.c_rasterband(), self.handle) };
        check(err, "attach to band")
    }
}

impl Drop for Rat {
    fn drop(&mut self) {
        // SAFETY: the handle was created by GDALCreateRasterAttributeTable and is freed once.
        unsafe { gdal_sys::GDALDestroyRasterAttributeTable(self.handle) };
    }
}

/// A column of `band`'s attribute table, by name, as `f64`, or `None` if the band has no table
/// or no such column.
pub fn read_column(band: &RasterBand, name: &str) -> Option<Vec<f64>> {
    // SAFETY: the band handle is valid while borrowed; the table belongs to the band.
    unsafe {
        let rat = gdal_sys::GDALGetDefaultRAT(band.c_rasterband());
        if rat.is_null() {
            return None;
        }
        let ncols = gdal_sys::GDALRATGetColumnCount(rat);
        let rows = gdal_sys::GDALRATGetRowCount(rat);
        for c in 0..ncols {
            let p = gdal_sys::GDALRATGetNameOfCol(rat, c);
            if !p.is_null() && CStr::from_ptr(p).to_str() == Ok(name) {
                let mut out = vec![0.0f64; rows.max(0) as usize];
                let err = gdal_sys::GDALRATValuesIOAsDouble(
                    rat,
                    GDALRWFlag::GF_Read,
                    c,
                    0,
                    rows,
                    out.as_mut_ptr(),
                );
                return (err == CPLErr::CE_None).then_some(out);
            }
        }
        None
    }
}
