//! Writing features through OGR: any driver that can create, built in a hidden folder beside
//! OUTPUT and moved into place only when complete (or, for `/vsi…` outputs such as `/vsis3/`,
//! built in a local temporary folder and copied up at the end).
//!
//! Every `unsafe` block calls OGR with the layer and feature handles this writer owns, valid
//! while its dataset is open.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use gdal::spatial_ref::SpatialRef;
use gdal::vector::{LayerAccess, LayerOptions};
use gdal::Metadata;
use gdal::{Dataset, DriverManager};
use gdal_sys::{OGRFieldType, OGRwkbGeometryType};

use shepseg_tiling::vsi;

use crate::error::PolygonizeError;

/// Features per transaction, for drivers that have them (GeoPackage: one commit per feature
/// would cost a disk sync each).
const FEATURES_PER_TRANSACTION: usize = 100_000;

/// An attribute's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A 64-bit integer.
    Integer,
    /// A double.
    Real,
}

/// An attribute field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    /// Its name.
    pub name: String,
    /// Its type.
    pub kind: FieldKind,
}

/// The OGR driver for writing `path`: `driver` if given, else the first vector driver that
/// can create files with `path`'s extension.
pub fn driver_for(path: &Path, driver: Option<&str>) -> Result<gdal::Driver, PolygonizeError> {
    let bad = |driver: &str, reason: &str| PolygonizeError::Driver {
        driver: driver.into(),
        reason: reason.into(),
    };
    let can_create = |d: &gdal::Driver| {
        d.metadata_item("DCAP_VECTOR", "").as_deref() == Some("YES")
            && d.metadata_item("DCAP_CREATE", "").as_deref() == Some("YES")
    };
    if let Some(name) = driver {
        let d = DriverManager::get_driver_by_name(name)
            .map_err(|_| bad(name, "no such GDAL driver"))?;
        if !can_create(&d) {
            return Err(bad(name, "this driver cannot create vector files"));
        }
        return Ok(d);
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if ext.is_empty() {
        return Err(bad(
            "(none)",
            "OUTPUT has no extension to choose a driver by",
        ));
    }
    for i in 0..DriverManager::count() {
        let Ok(d) = DriverManager::get_driver(i) else {
            continue;
        };
        let exts = [
            d.metadata_item("DMD_EXTENSIONS", ""),
            d.metadata_item("DMD_EXTENSION", ""),
        ];
        let matches = exts.iter().flatten().any(|list| {
            list.split_whitespace()
                .any(|e| e.eq_ignore_ascii_case(&ext))
        });
        if matches && can_create(&d) {
            return Ok(d);
        }
    }
    Err(bad(
        &format!(".{ext}"),
        "no vector driver writes files with this extension",
    ))
}

/// The folder a vector output is built in: beside OUTPUT, hidden (`.NAME.shepseg-partial`),
/// or for virtual outputs a fresh local temporary folder. Removing it abandons the output.
pub fn partial_dir_for(path: &Path) -> Option<PathBuf> {
    if vsi::is_virtual(path) {
        let name = path.file_name()?;
        let mut dir = std::ffi::OsString::from("shepseg-vector-");
        dir.push(std::process::id().to_string());
        dir.push("-");
        dir.push(name);
        return Some(std::env::temp_dir().join(dir));
    }
    shepseg_stitch::GdalOutput::partial_dir_for(path)
}

/// A vector output being written; dropped unfinished, it leaves nothing at OUTPUT.
pub struct VectorOutput {
    ds: Option<Dataset>,
    layer: gdal_sys::OGRLayerH,
    feature: gdal_sys::OGRFeatureH,
    fields: usize,
    temp_dir: PathBuf,
    temp_path: PathBuf,
    final_path: PathBuf,
    in_transaction: bool,
    since_commit: usize,
}

// SAFETY: the handles belong to `ds`, which moves with them; one thread uses them at a time.
unsafe impl Send for VectorOutput {}

fn out_err(path: &Path, message: impl std::fmt::Display) -> PolygonizeError {
    PolygonizeError::Output {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

impl VectorOutput {
    /// Creates OUTPUT's layer (named after the file) in `srs`, with the fields `id`, then
    /// `fields`. Fails, naming the file or driver, if OUTPUT exists and `overwrite` is not
    /// set, the driver cannot create files, or the folder is not writable.
    pub fn create(
        path: &Path,
        driver: Option<&str>,
        overwrite: bool,
        srs: Option<&SpatialRef>,
        fields: &[FieldSpec],
    ) -> Result<Self, PolygonizeError> {
        if vsi::exists(path) && !overwrite {
            return Err(PolygonizeError::Exists(path.to_path_buf()));
        }
        let drv = driver_for(path, driver)?;
        let (Some(name), Some(temp_dir)) = (path.file_name(), partial_dir_for(path)) else {
            return Err(out_err(path, "is not a file name"));
        };
        if temp_dir.exists() {
            std::fs::remove_dir_all(&temp_dir).map_err(|e| out_err(&temp_dir, e))?;
        }
        std::fs::create_dir(&temp_dir)
            .map_err(|e| out_err(path, format!("cannot write here: {e}")))?;
        let temp_path = temp_dir.join(name);
        let mut out = Self {
            ds: None,
            layer: std::ptr::null_mut(),
            feature: std::ptr::null_mut(),
            fields: fields.len(),
            temp_dir,
            temp_path,
            final_path: path.to_path_buf(),
            in_transaction: false,
            since_commit: 0,
        };
        let mut ds = drv
            .create_vector_only(&out.temp_path)
            .map_err(|e| out_err(path, e))?;
        let layer_name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "segments".into());
        let layer = ds
            .create_layer(LayerOptions {
                name: &layer_name,
                srs,
                ty: OGRwkbGeometryType::wkbUnknown,
                options: None,
            })
            .map_err(|e| out_err(path, e))?;
        // SAFETY: the handle stays valid while the dataset is open (it is kept in `out`).
        out.layer = unsafe { layer.c_layer() };
        for f in fields {
            let c = CString::new(f.name.as_bytes()).map_err(|e| out_err(path, e))?;
            let ty = match f.kind {
                FieldKind::Integer => OGRFieldType::OFTInteger64,
                FieldKind::Real => OGRFieldType::OFTReal,
            };
            // SAFETY: a fresh field definition, copied by the layer, then freed.
            let err = unsafe {
                let fd = gdal_sys::OGR_Fld_Create(c.as_ptr(), ty);
                let err = gdal_sys::OGR_L_CreateField(out.layer, fd, 1);
                gdal_sys::OGR_Fld_Destroy(fd);
                err
            };
            if err != gdal_sys::OGRErr::OGRERR_NONE {
                return Err(out_err(path, format!("cannot create field {}", f.name)));
            }
        }
        // SAFETY: the layer is valid; its definition outlives the feature (freed in Drop).
        out.feature = unsafe { gdal_sys::OGR_F_Create(gdal_sys::OGR_L_GetLayerDefn(out.layer)) };
        out.ds = Some(ds);
        out.begin();
        Ok(out)
    }

    fn begin(&mut self) {
        if let Some(ds) = &self.ds {
            // SAFETY: valid dataset; drivers without transactions just say so.
            let err = unsafe { gdal_sys::GDALDatasetStartTransaction(ds.c_dataset(), 0) };
            self.in_transaction = err == gdal_sys::OGRErr::OGRERR_NONE;
        }
    }

    fn commit(&mut self) -> Result<(), PolygonizeError> {
        if !self.in_transaction {
            return Ok(());
        }
        self.in_transaction = false;
        let Some(ds) = &self.ds else {
            return Ok(());
        };
        // SAFETY: valid dataset with a transaction open.
        let err = unsafe { gdal_sys::GDALDatasetCommitTransaction(ds.c_dataset()) };
        if err != gdal_sys::OGRErr::OGRERR_NONE {
            return Err(out_err(&self.final_path, last_ogr_message("commit failed")));
        }
        Ok(())
    }

    /// Writes one feature: `values` for the fields in order (integers as `f64`, exact up to
    /// 2^53), and a geometry as WKB.
    pub fn write(&mut self, values: &[Value], wkb: &[u8]) -> Result<(), PolygonizeError> {
        if values.len() != self.fields {
            return Err(out_err(&self.final_path, "wrong number of field values"));
        }
        // SAFETY: the feature and layer are valid; the geometry parsed from `wkb` is handed
        // to the feature, which frees it.
        unsafe {
            let f = self.feature;
            for (i, v) in values.iter().enumerate() {
                match *v {
                    Value::Integer(x) => gdal_sys::OGR_F_SetFieldInteger64(f, i as i32, x),
                    Value::Real(x) => gdal_sys::OGR_F_SetFieldDouble(f, i as i32, x),
                    Value::Null => gdal_sys::OGR_F_SetFieldNull(f, i as i32),
                }
            }
            let mut geom: gdal_sys::OGRGeometryH = std::ptr::null_mut();
            let err = gdal_sys::OGR_G_CreateFromWkb(
                wkb.as_ptr() as *const std::ffi::c_void,
                std::ptr::null_mut(),
                &mut geom,
                wkb.len() as i32,
            );
            if err != gdal_sys::OGRErr::OGRERR_NONE || geom.is_null() {
                return Err(out_err(&self.final_path, "OGR rejected a geometry"));
            }
            gdal_sys::OGR_F_SetGeometryDirectly(f, geom);
            gdal_sys::OGR_F_SetFID(f, -1);
            if gdal_sys::OGR_L_CreateFeature(self.layer, f) != gdal_sys::OGRErr::OGRERR_NONE {
                return Err(out_err(
                    &self.final_path,
                    last_ogr_message("writing a feature failed"),
                ));
            }
        }
        self.since_commit += 1;
        if self.since_commit >= FEATURES_PER_TRANSACTION && self.in_transaction {
            self.since_commit = 0;
            self.commit()?;
            self.begin();
        }
        Ok(())
    }

    /// Commits, closes, and moves the output into place (replacing an old one).
    pub fn finish(mut self) -> Result<(), PolygonizeError> {
        self.commit()?;
        // SAFETY: the feature is ours; the layer is closed with the dataset below.
        unsafe { gdal_sys::OGR_F_Destroy(self.feature) };
        self.feature = std::ptr::null_mut();
        if let Some(ds) = self.ds.take() {
            ds.close()
                .map_err(|e| out_err(&self.final_path, format!("closing: {e}")))?;
        }
        let path = self.final_path.clone();
        let entries: Vec<_> = std::fs::read_dir(&self.temp_dir)
            .map_err(|e| out_err(&path, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| out_err(&path, e))?;
        if vsi::is_virtual(&path) {
            let parent = path.parent().unwrap_or(Path::new("/"));
            for e in entries {
                let to = parent.join(e.file_name());
                vsi::upload(&e.path(), &to).map_err(|m| out_err(&to, m))?;
            }
        } else {
            if path.is_dir() {
                return Err(out_err(&path, "is a folder"));
            }
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let main = self.temp_path.file_name().unwrap_or_default().to_owned();
            let mut entries = entries;
            // OUTPUT itself last, so that it appears only when its sidecars are there.
            entries.sort_by_key(|e| e.file_name() == main);
            for e in entries {
                std::fs::rename(e.path(), parent.join(e.file_name()))
                    .map_err(|err| out_err(&path, err))?;
            }
        }
        std::fs::remove_dir_all(&self.temp_dir).map_err(|e| out_err(&path, e))?;
        Ok(())
    }
}

/// A field value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An integer.
    Integer(i64),
    /// A double.
    Real(f64),
    /// No value.
    Null,
}

impl Drop for VectorOutput {
    fn drop(&mut self) {
        if !self.feature.is_null() {
            // SAFETY: the feature is ours.
            unsafe { gdal_sys::OGR_F_Destroy(self.feature) };
        }
        self.ds.take();
        if self.temp_dir.exists() {
            let _ = std::fs::remove_dir_all(&self.temp_dir);
        }
    }
}

/// GDAL's last error message on this thread, or `fallback`.
fn last_ogr_message(fallback: &str) -> String {
    shepseg_tiling::last_gdal_message().unwrap_or_else(|| fallback.to_string())
}
