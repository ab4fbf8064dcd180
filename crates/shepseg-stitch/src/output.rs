//! The output raster: UInt32 segment IDs written as tiles are stitched, finished with the
//! attribute table, statistics and overviews, and moved into place only when complete.
//!
//! The file is built in a hidden folder beside OUTPUT (`.NAME.shepseg-partial/NAME`), so that
//! sidecars (a GTiff's `.aux.xml` holds its attribute table, written by
//! [`crate::rat::Rat::write_pam_sidecar`] after the raster is closed) carry the final name;
//! [`GdalOutput::finish`] moves every file out, the raster itself last. If the job fails or is
//! interrupted, dropping the [`GdalOutput`] removes the folder: nothing is ever left at OUTPUT
//! that looks finished but is not.
//!
//! What pyshepseg writes, shepseg writes: nodata 0, `LAYER_TYPE=thematic`, the input's
//! projection and geotransform, NEAREST overviews at levels 4, 8, ... while the image's larger
//! side divided by the level is at least 1024 (each tile's block subsampled from half a level in,
//! as pyshepseg does), a `Histogram` column (real, usage PixelCount), `Red`/`Green`/`Blue`/`Alpha`
//! colour columns (alpha 0 for segment 0; colours random but seeded, so runs are identical) and
//! `STATISTICS_*` metadata computed from the histogram.

use std::path::{Path, PathBuf};

use gdal::cpl::CslStringList;
use gdal::raster::Buffer;
use gdal::{Dataset, DatasetOptions, DriverManager, GdalOpenFlags, Metadata};
use ndarray::Array2;
use shepseg_core::rng::SplitMix64;
use shepseg_tiling::vsi;

use crate::encode::EncodedOverview;
use crate::error::StitchError;
use crate::mosaic::{is_mosaic, relativise, remove_tree, Mosaic};
use crate::overview::{overview_levels, Overview};
use crate::rawtiff::RawTiff;
use crate::sink::{BlockData, BlockPrep, OutputBlock, TileSink};
use crate::stitcher::StitchReport;
use shepseg_tiling::rat::{ColumnType, ColumnUsage, Rat};
use shepseg_tiling::Window;

/// How to write the output.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputOptions {
    /// GDAL driver short name (`GTiff`, `HFA`, `COG`, ...).
    pub driver: String,
    /// Creation options `KEY=VALUE`; for GTiff (and COG's intermediate GTiff), `TILED=YES`,
    /// `COMPRESS=ZSTD` with `ZSTD_LEVEL=1` (`COMPRESS=DEFLATE` with `ZLEVEL=1` where GDAL
    /// lacks ZSTD) and `BIGTIFF=IF_SAFER` are added unless given.
    pub creation_options: Vec<String>,
    /// Replace an existing OUTPUT.
    pub overwrite: bool,
}

impl Default for OutputOptions {
    fn default() -> Self {
        Self {
            driver: "GTiff".into(),
            creation_options: Vec::new(),
            overwrite: false,
        }
    }
}

/// The geometry the output copies from the input.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputGeometry {
    /// Columns.
    pub cols: usize,
    /// Rows.
    pub rows: usize,
    /// Projection (WKT), possibly empty.
    pub projection: String,
    /// Geotransform, if the input has one.
    pub geo_transform: Option<[f64; 6]>,
}

impl OutputGeometry {
    /// The geometry of an open dataset.
    pub fn of(ds: &Dataset) -> Self {
        let (cols, rows) = ds.raster_size();
        Self {
            cols,
            rows,
            projection: ds.projection(),
            geo_transform: ds.geo_transform().ok(),
        }
    }
}

/// Whether this GDAL's GTiff driver can write ZSTD.
fn gtiff_has_zstd() -> bool {
    DriverManager::get_driver_by_name("GTiff")
        .ok()
        .and_then(|d| d.metadata_item("DMD_CREATIONOPTIONLIST", ""))
        .is_some_and(|list| list.contains("ZSTD"))
}

/// The output raster being written; a [`TileSink`].
pub struct GdalOutput {
    ds: Option<Dataset>,
    final_path: PathBuf,
    temp_dir: PathBuf,
    temp_path: PathBuf,
    /// The overviews at pyshepseg's levels, in GDAL's order.
    overviews: Vec<Overview>,
    /// COG is written as a GTiff and copied at the end.
    cog: bool,
    options: OutputOptions,
    /// The GTiff's full-resolution tiles, written compressed by the stitch pool
    /// ([`crate::rawtiff`]) while `ds` is closed; `None` when the output goes through GDAL.
    raw: Option<RawTiff>,
    /// With `raw`: the overview parts, compressed on the pool (the overviews are written into
    /// their own directories at the end, and held compressed until then so that memory stays
    /// a small part of the output's size).
    raw_overviews: Vec<(usize, EncodedOverview)>,
    /// Dataset metadata written by `finish` (what made the output: version, mode, parameters).
    metadata: Vec<(String, String)>,
    /// A mosaic output (`.vrt`): its tiles are written by the block prep, and `ds` is the
    /// VRT, made at the end.
    mosaic: Option<Mosaic>,
}

/// Opens `path` through GDAL for update.
fn open_update(path: &Path) -> Result<Dataset, StitchError> {
    Dataset::open_ex(
        path,
        DatasetOptions {
            open_flags: GdalOpenFlags::GDAL_OF_UPDATE | GdalOpenFlags::GDAL_OF_RASTER,
            ..Default::default()
        },
    )
    .map_err(|e| out_err(path, e))
}

fn out_err(path: &Path, what: impl std::fmt::Display) -> StitchError {
    StitchError::Output(format!("{}: {what}", path.display()))
}

impl GdalOutput {
    /// The hidden folder [`GdalOutput::create`] builds `path` in (`None` if `path` names no
    /// file); removing it abandons the output. Known before the folder exists, so that an
    /// interrupt handler can be armed first: creating the output (its empty overviews
    /// included) takes long enough to be interrupted.
    pub fn partial_dir_for(path: &Path) -> Option<PathBuf> {
        let name = path.file_name()?;
        if vsi::is_virtual(path) {
            // Object stores have no folders to rename from: built in a local temporary
            // folder and uploaded when complete.
            let mut dir = std::ffi::OsString::from(format!("shepseg-out-{}-", std::process::id()));
            dir.push(name);
            return Some(std::env::temp_dir().join(dir));
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut temp_dir_name = std::ffi::OsString::from(".");
        temp_dir_name.push(name);
        temp_dir_name.push(".shepseg-partial");
        Some(parent.join(temp_dir_name))
    }

    /// Creates the output for `geometry` at a temporary name beside `path`. Errors (naming the
    /// file or option) if OUTPUT exists without `overwrite`, the driver is unknown or cannot
    /// create files, or the folder is not writable.
    pub fn create(
        path: &Path,
        geometry: &OutputGeometry,
        options: &OutputOptions,
    ) -> Result<Self, StitchError> {
        if vsi::exists(path) && !options.overwrite {
            return Err(StitchError::Exists(path.to_path_buf()));
        }
        let (Some(name), Some(temp_dir)) = (path.file_name(), Self::partial_dir_for(path)) else {
            return Err(out_err(path, "is not a file name"));
        };
        let cog = options.driver.eq_ignore_ascii_case("COG");
        let driver_name = if cog {
            "GTiff"
        } else {
            options.driver.as_str()
        };
        let bad_driver = |reason: &str| StitchError::Driver {
            driver: options.driver.clone(),
            reason: reason.into(),
        };
        let driver = DriverManager::get_driver_by_name(driver_name)
            .map_err(|_| bad_driver("no such GDAL driver"))?;
        if driver.metadata_item("DCAP_CREATE", "").as_deref() != Some("YES") {
            return Err(bad_driver("this GDAL driver cannot create files"));
        }
        if temp_dir.exists() {
            std::fs::remove_dir_all(&temp_dir).map_err(|e| out_err(&temp_dir, e))?;
        }
        std::fs::create_dir(&temp_dir)
            .map_err(|e| out_err(path, format!("cannot write here: {e}")))?;
        let temp_path = temp_dir.join(name);
        if is_mosaic(path, &options.driver) {
            let mosaic = Mosaic::create(path, geometry, options.overwrite);
            if mosaic.is_err() {
                let _ = std::fs::remove_dir_all(&temp_dir);
            }
            return Ok(Self {
                ds: None,
                final_path: path.to_path_buf(),
                temp_dir,
                temp_path,
                overviews: Vec::new(),
                cog: false,
                options: options.clone(),
                raw: None,
                raw_overviews: Vec::new(),
                metadata: Vec::new(),
                mosaic: Some(mosaic?),
            });
        }
        let mut co: Vec<String> = options.creation_options.clone();
        // With shepseg's own GTiff options (none given), the stitch pool compresses the tiles
        // and they are written raw (see `crate::rawtiff`): GDAL creates the file with no tile
        // written (sparse), and writes only the overviews.
        let raw_wanted = driver_name.eq_ignore_ascii_case("GTiff")
            && options.creation_options.is_empty()
            && gtiff_has_zstd();
        if raw_wanted {
            co.push("SPARSE_OK=TRUE".into());
        }
        if driver_name.eq_ignore_ascii_case("GTiff") {
            let given =
                |co: &[String], k: &str| co.iter().any(|o| o.to_ascii_uppercase().starts_with(k));
            if !given(&co, "COMPRESS") {
                // Segment IDs compress well at the fastest level. ZSTD level 1 (GDAL with
                // libzstd, as Debian's) compresses in about half DEFLATE's time, on the
                // stitcher's serial write path, and to a smaller file; DEFLATE level 1 otherwise.
                if gtiff_has_zstd() {
                    co.push("COMPRESS=ZSTD".into());
                    if !given(&co, "ZSTD_LEVEL") {
                        co.push("ZSTD_LEVEL=1".into());
                    }
                } else {
                    co.push("COMPRESS=DEFLATE".into());
                    if !given(&co, "ZLEVEL") {
                        co.push("ZLEVEL=1".into());
                    }
                }
            }
            for (k, v) in [("TILED", "TILED=YES"), ("BIGTIFF", "BIGTIFF=IF_SAFER")] {
                if !given(&co, k) {
                    co.push(v.into());
                }
            }
        }
        let mut csl = CslStringList::new();
        for o in &co {
            let bad = |reason: String| StitchError::CreationOption {
                option: o.clone(),
                reason,
            };
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| bad("expected KEY=VALUE".into()))?;
            csl.set_name_value(k, v).map_err(|e| bad(e.to_string()))?;
        }
        let result = (|| -> Result<Self, StitchError> {
            let mut ds = driver
                .create_with_band_type_with_options::<u32, _>(
                    &temp_path,
                    geometry.cols,
                    geometry.rows,
                    1,
                    &csl,
                )
                .map_err(|e| {
                    out_err(path, format!("cannot create with {}: {e}", options.driver))
                })?;
            if !geometry.projection.is_empty() {
                ds.set_projection(&geometry.projection)
                    .map_err(|e| out_err(path, e))?;
            }
            if let Some(gt) = geometry.geo_transform {
                ds.set_geo_transform(&gt).map_err(|e| out_err(path, e))?;
            }
            let levels = overview_levels(geometry.cols.max(geometry.rows));
            if !levels.is_empty() {
                let lv: Vec<i32> = levels.iter().map(|&l| l as i32).collect();
                // The overviews' pixels are written as tiles are stitched (NEAREST
                // subsampling); on the raw path "NONE" makes GDAL only lay out their
                // directories, instead of computing them from the empty image (0.2 s for
                // 10000 x 10000).
                let resampling = if raw_wanted { "NONE" } else { "NEAREST" };
                ds.build_overviews(resampling, &lv, &[])
                    .map_err(|e| out_err(path, format!("overviews: {e}")))?;
            }
            let overviews = {
                let band = ds.rasterband(1).map_err(|e| out_err(path, e))?;
                levels
                    .iter()
                    .enumerate()
                    .map(|(j, &level)| {
                        let (cols, rows) = band
                            .overview(j)
                            .map_err(|e| out_err(path, format!("overviews: {e}")))?
                            .size();
                        Ok(Overview { level, cols, rows })
                    })
                    .collect::<Result<Vec<_>, StitchError>>()?
            };
            {
                let mut band = ds.rasterband(1).map_err(|e| out_err(path, e))?;
                band.set_no_data_value(Some(0.0))
                    .map_err(|e| out_err(path, e))?;
                band.set_metadata_item("LAYER_TYPE", "thematic", "")
                    .map_err(|e| out_err(path, e))?;
            }
            let (ds, raw) = if raw_wanted {
                ds.close().map_err(|e| out_err(path, e))?;
                match RawTiff::open(&temp_path, 1) {
                    Some(raw) => (None, Some(raw)),
                    None => (Some(open_update(&temp_path)?), None),
                }
            } else {
                (Some(ds), None)
            };
            Ok(Self {
                ds,
                final_path: path.to_path_buf(),
                temp_dir: temp_dir.clone(),
                temp_path: temp_path.clone(),
                overviews,
                cog,
                options: options.clone(),
                raw,
                raw_overviews: Vec::new(),
                metadata: Vec::new(),
                mosaic: None,
            })
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&temp_dir);
        }
        result
    }

    /// Whether the full-resolution tiles are compressed by the stitch pool and written raw
    /// ([`crate::rawtiff`]) rather than through GDAL: with GTiff and shepseg's own creation
    /// options (none given), where this GDAL has ZSTD.
    pub fn writes_raw(&self) -> bool {
        self.raw.is_some()
    }

    fn dataset(&self) -> Result<&Dataset, StitchError> {
        self.ds
            .as_ref()
            .ok_or_else(|| out_err(&self.final_path, "already closed"))
    }

    /// Writes `rows x cols` row-major values at (`xoff`, `yoff`) of `band`.
    fn write_band(
        band: &mut gdal::raster::RasterBand,
        (xoff, yoff): (usize, usize),
        (rows, cols): (usize, usize),
        data: Vec<u32>,
    ) -> Result<(), gdal::errors::GdalError> {
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        let mut buf = Buffer::new((cols, rows), data);
        band.write((xoff as isize, yoff as isize), (cols, rows), &mut buf)
    }

    /// For a mosaic output: where its tiles go, for workers that write them
    /// ([`GdalOutput::mosaic_tile_written`]).
    pub fn mosaic_tiles(&self) -> Option<shepseg_tiling::MosaicTiles> {
        self.mosaic.as_ref().map(|m| (*m.tiles).clone())
    }

    /// Records that the mosaic's tile at `window` was written by a worker.
    pub fn mosaic_tile_written(&mut self, window: Window) {
        if let Some(m) = self.mosaic.as_mut() {
            m.written.push(window);
        }
    }

    /// Adds a dataset metadata item, written when the output is finished (e.g. how it was
    /// made, so a reader can tell a default-mode output from a pyshepseg-compatible one).
    pub fn add_metadata(&mut self, key: &str, value: &str) {
        self.metadata.push((key.to_string(), value.to_string()));
    }

    /// Like [`TileSink::finish`], with a table the caller built (for outputs that are not a
    /// stitch, such as a subset); `histogram` gives the `STATISTICS_*` metadata.
    pub fn finish_with_rat(mut self, rat: &Rat, histogram: &[u64]) -> Result<(), StitchError> {
        self.complete(rat, histogram)?;
        self.unpublished().publish()
    }

    /// Like [`TileSink::finish`], but the finished output stays in its temporary folder until
    /// [`Unpublished::publish`]: so that more can be written to it first (statistics into
    /// its table) where OUTPUT cannot be updated in place (`/vsis3/`).
    pub fn finish_unpublished(mut self, report: &StitchReport) -> Result<Unpublished, StitchError> {
        let rat = default_rat(report)?;
        self.complete(&rat, &report.histogram)?;
        Ok(self.unpublished())
    }

    /// The finished output, handed over (its temporary folder is then the `Unpublished`'s to
    /// remove).
    fn unpublished(&mut self) -> Unpublished {
        Unpublished {
            final_path: self.final_path.clone(),
            temp_dir: std::mem::take(&mut self.temp_dir),
            temp_path: self.temp_path.clone(),
            mosaic: self.mosaic.take().map(|m| {
                let (abs, rel) = m.names();
                (m.tiles.dir.clone(), abs, rel)
            }),
        }
    }

    /// Writes the overviews, table and metadata and closes the output in its temporary folder.
    fn complete(&mut self, rat: &Rat, histogram: &[u64]) -> Result<(), StitchError> {
        let path = self.final_path.clone();
        if let Some(m) = &self.mosaic {
            let metadata = std::mem::take(&mut self.metadata);
            m.write_vrt(&self.temp_path, &metadata, &statistics(histogram), rat)?;
            m.remove_strays();
            return Ok(());
        }
        if let Some(mut raw) = self.raw.take() {
            // The overviews, part by part in the order they were stitched, into their own
            // directories; then GDAL takes the file back.
            let mut parts = std::mem::take(&mut self.raw_overviews);
            parts.sort_by_key(|p| p.0);
            let mut current = None;
            for (j, part) in parts {
                let ov = self.overviews[j];
                if current != Some(j) {
                    raw.select((ov.cols, ov.rows))
                        .map_err(|e| out_err(&path, e))?;
                    current = Some(j);
                }
                let window = Window {
                    xoff: part.xoff,
                    yoff: part.yoff,
                    xsize: part.dim.1,
                    ysize: part.dim.0,
                };
                raw.write_overview(window, &part.decode()?)
                    .map_err(|e| out_err(&path, e))?;
            }
            raw.close().map_err(|e| out_err(&path, e))?;
            let ds = open_update(&self.temp_path)?;
            self.ds = Some(ds);
        }
        // GTiff (and so COG) keeps the table in its `.aux.xml`, which is written directly
        // once the raster is closed; other drivers take it through GDAL.
        let sidecar_rat = self.cog || self.options.driver.eq_ignore_ascii_case("GTiff");
        {
            let ds = self.dataset()?;
            let mut band = ds.rasterband(1).map_err(|e| out_err(&path, e))?;
            if !sidecar_rat {
                rat.attach(&band)?;
            }
            for (k, v) in statistics(histogram) {
                band.set_metadata_item(k, &v, "")
                    .map_err(|e| out_err(&path, e))?;
            }
        }
        let metadata = std::mem::take(&mut self.metadata);
        if let Some(ds) = self.ds.as_mut() {
            for (k, v) in &metadata {
                ds.set_metadata_item(k, v, "")
                    .map_err(|e| out_err(&path, e))?;
            }
        }
        let ds = self
            .ds
            .take()
            .ok_or_else(|| out_err(&path, "already closed"))?;
        ds.close()
            .map_err(|e| out_err(&path, format!("closing: {e}")))?;
        if self.cog {
            let gtiff = Dataset::open(&self.temp_path).map_err(|e| out_err(&path, e))?;
            let cog_path = self
                .temp_dir
                .join("cog")
                .join(self.temp_path.file_name().unwrap_or_default());
            std::fs::create_dir(self.temp_dir.join("cog")).map_err(|e| out_err(&path, e))?;
            let driver = DriverManager::get_driver_by_name("COG").map_err(|e| out_err(&path, e))?;
            let mut csl = CslStringList::new();
            for o in &self.options.creation_options {
                if let Some((k, v)) = o.split_once('=') {
                    csl.set_name_value(k, v).map_err(|e| out_err(&path, e))?;
                }
            }
            gtiff
                .create_copy(&driver, &cog_path, &csl)
                .map_err(|e| out_err(&path, format!("COG copy: {e}")))?
                .close()
                .map_err(|e| out_err(&path, e))?;
            drop(gtiff);
            std::fs::remove_file(&self.temp_path).map_err(|e| out_err(&path, e))?;
            let aux = vsi::sidecar(&self.temp_path, ".aux.xml");
            if aux.exists() {
                // Whatever GDAL kept in the source's sidecar, the copy carries in its own (the
                // table is added to the copy afterwards).
                std::fs::remove_file(&aux).map_err(|e| out_err(&path, e))?;
            }
            for entry in
                std::fs::read_dir(self.temp_dir.join("cog")).map_err(|e| out_err(&path, e))?
            {
                let entry = entry.map_err(|e| out_err(&path, e))?;
                std::fs::rename(entry.path(), self.temp_dir.join(entry.file_name()))
                    .map_err(|e| out_err(&path, e))?;
            }
            std::fs::remove_dir(self.temp_dir.join("cog")).map_err(|e| out_err(&path, e))?;
        }
        if sidecar_rat {
            self.write_rat_sidecar(rat)?;
        }
        Ok(())
    }

    /// Gives the closed GTiff (or COG) its attribute table: written as its `.aux.xml`
    /// directly, unless GDAL wrote a sidecar of its own at close (something the TIFF itself
    /// could not hold), into which GDAL then merges the table.
    fn write_rat_sidecar(&self, rat: &Rat) -> Result<(), StitchError> {
        let path = &self.final_path;
        let aux = vsi::sidecar(&self.temp_path, ".aux.xml");
        if aux.exists() {
            let ds = Dataset::open(&self.temp_path).map_err(|e| out_err(path, e))?;
            let band = ds.rasterband(1).map_err(|e| out_err(path, e))?;
            rat.attach(&band)?;
            ds.close()
                .map_err(|e| out_err(path, format!("closing: {e}")))?;
            return Ok(());
        }
        Ok(rat.write_pam_sidecar(&aux)?)
    }
}

/// A finished output not yet at OUTPUT ([`GdalOutput::finish_unpublished`]); dropped
/// unpublished, it is removed.
pub struct Unpublished {
    final_path: PathBuf,
    temp_dir: PathBuf,
    temp_path: PathBuf,
    /// A mosaic's tile folder, and its name in the VRT's sources now and once published.
    mosaic: Option<(PathBuf, String, String)>,
}

impl Unpublished {
    /// The finished file, in its temporary folder (sidecars beside it).
    pub fn path(&self) -> &Path {
        &self.temp_path
    }

    /// Puts every file of the temporary folder at OUTPUT, sidecars first, OUTPUT last: moved
    /// beside it, or for `/vsi…` outputs uploaded (a failed upload leaves no OUTPUT object,
    /// and the sidecars uploaded before it are deleted again).
    pub fn publish(mut self) -> Result<(), StitchError> {
        let path = self.final_path.clone();
        let virtual_out = vsi::is_virtual(&path);
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let main_name = self.temp_path.file_name().unwrap_or_default().to_owned();
        if let Some((_, abs, rel)) = &self.mosaic {
            // The VRT names its tiles relative to itself once it is beside them.
            let xml = std::fs::read_to_string(&self.temp_path).map_err(|e| out_err(&path, e))?;
            std::fs::write(&self.temp_path, relativise(&xml, abs, rel))
                .map_err(|e| out_err(&path, e))?;
        }
        // Old sidecars of a replaced OUTPUT would describe the old raster.
        for ext in [".aux.xml", ".ovr", ".rrd"] {
            let old = vsi::sidecar(&path, ext);
            if vsi::exists(&old) && !vsi::unlink(&old) {
                return Err(out_err(&old, "cannot delete the old sidecar"));
            }
        }
        let mut entries: Vec<_> = std::fs::read_dir(&self.temp_dir)
            .map_err(|e| out_err(&path, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| out_err(&path, e))?;
        entries.sort_by_key(|e| e.file_name() == main_name);
        let mut uploaded: Vec<PathBuf> = Vec::new();
        for e in entries {
            let to = parent.join(e.file_name());
            if virtual_out {
                if let Err(m) = vsi::upload(&e.path(), &to) {
                    for u in &uploaded {
                        vsi::unlink(u);
                    }
                    return Err(out_err(&to, format!("upload failed: {m}")));
                }
                uploaded.push(to);
            } else {
                std::fs::rename(e.path(), &to).map_err(|err| out_err(&path, err))?;
            }
        }
        std::fs::remove_dir_all(&self.temp_dir).map_err(|e| out_err(&path, e))?;
        self.temp_dir = PathBuf::new();
        self.mosaic = None;
        Ok(())
    }
}

impl Drop for Unpublished {
    fn drop(&mut self) {
        if !self.temp_dir.as_os_str().is_empty() && self.temp_dir.exists() {
            let _ = std::fs::remove_dir_all(&self.temp_dir);
        }
        if let Some((dir, _, _)) = self.mosaic.take() {
            remove_tree(&dir);
        }
    }
}

impl Drop for GdalOutput {
    fn drop(&mut self) {
        // Unfinished: close and remove everything, leaving nothing at OUTPUT.
        self.ds.take();
        self.raw.take();
        if !self.temp_dir.as_os_str().is_empty() && self.temp_dir.exists() {
            let _ = std::fs::remove_dir_all(&self.temp_dir);
        }
        if let Some(m) = self.mosaic.take() {
            remove_tree(&m.tiles.dir);
        }
    }
}

impl TileSink for GdalOutput {
    type Finished = ();

    fn block_prep(&self) -> BlockPrep {
        if let Some(m) = &self.mosaic {
            return BlockPrep::mosaic(std::sync::Arc::clone(&m.tiles));
        }
        match &self.raw {
            Some(raw) => BlockPrep::encoded(self.overviews.clone(), raw.encoder()),
            None => BlockPrep::with_overviews(self.overviews.clone()),
        }
    }

    fn write(&mut self, block: OutputBlock) -> Result<(), StitchError> {
        let path = self.final_path.clone();
        let w = block.window();
        match block.into_data() {
            BlockData::Encoded(block) => {
                let raw = self
                    .raw
                    .as_mut()
                    .ok_or_else(|| out_err(&path, format!("block {w:?}: not written raw")))?;
                raw.write(block.tiles).map_err(|e| out_err(&path, e))?;
                for (j, part) in block.overviews.into_iter().enumerate() {
                    if let Some(part) = part {
                        self.raw_overviews.push((j, part));
                    }
                }
                Ok(())
            }
            BlockData::Written => {
                let m = self
                    .mosaic
                    .as_mut()
                    .ok_or_else(|| out_err(&path, format!("block {w:?}: not a mosaic")))?;
                m.written.push(w);
                Ok(())
            }
            BlockData::Pixels { block, overviews } => {
                let ds = self.dataset()?;
                let mut band = ds.rasterband(1).map_err(|e| out_err(&path, e))?;
                for (j, sub) in overviews.into_iter().enumerate() {
                    let Some(sub) = sub else { continue };
                    let mut ov = band.overview(j).map_err(|e| out_err(&path, e))?;
                    let dim = sub.block.dim();
                    Self::write_band(&mut ov, (sub.xoff, sub.yoff), dim, row_major(sub.block))
                        .map_err(|e| out_err(&path, e))?;
                }
                let dim = block.dim();
                Self::write_band(&mut band, (w.xoff, w.yoff), dim, row_major(block))
                    .map_err(|e| out_err(&path, e))
            }
        }
    }

    /// Writes the attribute table and statistics, closes the file and moves it into place.
    fn finish(self, report: &StitchReport) -> Result<(), StitchError> {
        let rat = default_rat(report)?;
        self.finish_with_rat(&rat, &report.histogram)
    }
}

/// The table a stitched output gets: the histogram, random colours (pyshepseg's), and alpha
/// 0 for the null segment only.
fn default_rat(report: &StitchReport) -> Result<Rat, StitchError> {
    let rows = report.histogram.len();
    let mut rat = Rat::new(rows)?;
    rat.add_histogram(&report.histogram)?;
    let mut rng = SplitMix64::new(0x5E65_E6C0_1005);
    for (name, usage) in [
        ("Red", ColumnUsage::Red),
        ("Green", ColumnUsage::Green),
        ("Blue", ColumnUsage::Blue),
    ] {
        let col: Vec<f64> = (0..rows).map(|_| rng.below(256) as f64).collect();
        rat.add_column(name, ColumnType::Integer, usage, &col)?;
    }
    let alpha: Vec<f64> = (0..rows)
        .map(|i| if i == 0 { 0.0 } else { 255.0 })
        .collect();
    rat.add_column("Alpha", ColumnType::Integer, ColumnUsage::Alpha, &alpha)?;
    Ok(rat)
}

/// The block's pixels in row-major order: moved out, not copied, when already laid out so.
fn row_major(block: Array2<u32>) -> Vec<u32> {
    if block.is_standard_layout() {
        block.into_raw_vec_and_offset().0
    } else {
        block.iter().copied().collect()
    }
}

/// pyshepseg's `STATISTICS_*` metadata from the histogram (null excluded).
fn statistics(hist: &[u64]) -> Vec<(&'static str, String)> {
    let n: u64 = hist.iter().skip(1).sum();
    if n == 0 {
        return Vec::new();
    }
    let first = hist
        .iter()
        .skip(1)
        .position(|&c| c > 0)
        .map_or(0, |i| i + 1);
    let last = hist.iter().rposition(|&c| c > 0).unwrap_or(0);
    let mean = hist
        .iter()
        .enumerate()
        .map(|(i, &c)| i as f64 * c as f64)
        .sum::<f64>()
        / n as f64;
    let var = hist
        .iter()
        .enumerate()
        .map(|(i, &c)| c as f64 * (i as f64 - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    let mode = hist
        .iter()
        .enumerate()
        .skip(1)
        .fold(
            (0usize, 0u64),
            |b, (i, &c)| if c > b.1 { (i, c) } else { b },
        )
        .0;
    let half = n as f64 / 2.0;
    let mut cum = 0u64;
    let mut median = 0;
    for (i, &c) in hist.iter().enumerate().skip(1) {
        cum += c;
        if cum as f64 >= half {
            median = i;
            break;
        }
    }
    vec![
        ("STATISTICS_MINIMUM", first.to_string()),
        ("STATISTICS_MAXIMUM", last.to_string()),
        ("STATISTICS_MEAN", format!("{mean:?}")),
        ("STATISTICS_STDDEV", format!("{:?}", var.sqrt())),
        ("STATISTICS_MODE", mode.to_string()),
        ("STATISTICS_MEDIAN", median.to_string()),
        ("STATISTICS_SKIPFACTORX", "1".into()),
        ("STATISTICS_SKIPFACTORY", "1".into()),
        ("STATISTICS_HISTOBINFUNCTION", "direct".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overview_levels_match_pyshepseg() {
        assert_eq!(overview_levels(10000), vec![4, 8, 16]);
        assert_eq!(overview_levels(8000), vec![4, 8]);
        assert_eq!(overview_levels(2041), Vec::<usize>::new());
        // pyshepseg tests the level it just added, so one more level follows.
        assert_eq!(overview_levels(4096), vec![4, 8]);
        assert_eq!(overview_levels(4095), Vec::<usize>::new());
    }

    #[test]
    fn statistics_from_histogram() {
        let s = statistics(&[5, 2, 0, 6]);
        let get = |k: &str| {
            s.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("STATISTICS_MINIMUM"), "1");
        assert_eq!(get("STATISTICS_MAXIMUM"), "3");
        assert_eq!(get("STATISTICS_MODE"), "3");
        assert_eq!(get("STATISTICS_MEDIAN"), "3");
        assert_eq!(get("STATISTICS_MEAN"), "2.5");
    }
}
