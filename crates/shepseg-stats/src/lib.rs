//! # shepseg-stats
//!
//! Per-segment statistics of image bands, and spatial statistics, computed in one parallel pass
//! and written into the segmentation's raster attribute table — pyshepseg's
//! `calcPerSegmentStatsTiled` and `calcPerSegmentSpatialStatsTiled`, for many bands at once,
//! with parallel block readers, for integer and float images.
//!
//! - [`compute_stats`]: the pass ([`StatsRequest`] in, [`StatsReport`] out).
//! - [`Stat`]: mean, stddev, min, max, median, mode, percentile, count; columns named as
//!   pyshepseg_tiling names them (`Band_1_mean`, `Band_1_pcnt25`).
//! - [`spatial`]: the [`SpatialStat`] trait and pyshepseg's built-ins.
//! - [`colour`]: Red/Green/Blue from three bands' mean columns.
//! - [`subset`]: a window of a segmentation, renumbered, with its table.
#![deny(missing_docs)]

pub mod colour;
pub mod error;
mod pass;
pub mod remote;
pub mod spatial;
pub mod stat;
pub mod subset;

use std::path::Path;
use std::time::{Duration, Instant};

use gdal::{Dataset, DatasetOptions, GdalOpenFlags};
use shepseg_tiling::rat::{ColumnType, ColumnUsage, RatEditor};

pub use error::StatsError;
pub use spatial::{parse_spatial, SegmentPixels, SpatialStat};
pub use stat::Stat;

use crate::error::file_err;

/// What to compute.
pub struct StatsRequest {
    /// Image bands, from 1.
    pub bands: Vec<usize>,
    /// Statistics of each band.
    pub stats: Vec<Stat>,
    /// Spatial statistics (of `spatial_band`).
    pub spatial: Vec<Box<dyn SpatialStat>>,
    /// The band spatial statistics use (values and nodata); default the first of `bands`,
    /// or band 1.
    pub spatial_band: Option<usize>,
    /// Value for segments with no valid pixels (`--missing-value`, -9999).
    pub missing_value: f64,
    /// Reader threads, each with its own datasets.
    pub workers: usize,
    /// Rows read per strip (0: 256).
    pub strip_rows: usize,
    /// Names of the band statistics' columns, one per band and statistic in that order
    /// (each band's statistics, band after band), as pyshepseg's callers name them; empty:
    /// `Band_{b}_{stat}` ([`Stat::column_name`]).
    pub column_names: Vec<String>,
    /// A flag the caller raises (from any thread) to stop the pass with
    /// [`StatsError::Cancelled`]; columns already created keep what was written.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Default for StatsRequest {
    fn default() -> Self {
        Self {
            bands: vec![1],
            stats: vec![Stat::Mean],
            spatial: Vec::new(),
            spatial_band: None,
            missing_value: -9999.0,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            strip_rows: 0,
            column_names: Vec::new(),
            cancel: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsReport {
    /// Rows of the attribute table (segments + 1).
    pub rows: usize,
    /// Pixels of the image.
    pub pixels: u64,
    /// Whether the Histogram column had to be computed.
    pub histogram_computed: bool,
    /// Columns written, in order.
    pub columns: Vec<String>,
    /// Time counting pixels for a missing Histogram.
    pub histogram_time: Duration,
    /// Time in the parallel pass.
    pub pass_time: Duration,
    /// Time saving the table.
    pub write_time: Duration,
}

/// Opens a raster for update, with a one-line error naming it.
pub(crate) fn open_update(path: &Path) -> Result<Dataset, StatsError> {
    if !path.exists() && !path.to_string_lossy().starts_with("/vsi") {
        return Err(file_err(path, "no such file"));
    }
    Dataset::open_ex(
        path,
        DatasetOptions {
            open_flags: GdalOpenFlags::GDAL_OF_UPDATE | GdalOpenFlags::GDAL_OF_RASTER,
            ..Default::default()
        },
    )
    .map_err(|e| file_err(path, format!("cannot open for update: {e}")))
}

/// Whether a band's data type is floating point.
fn is_float(ds: &Dataset, band: usize) -> Result<bool, StatsError> {
    use gdal::raster::GdalDataType as T;
    Ok(matches!(
        ds.rasterband(band)?.band_type(),
        T::Float32 | T::Float64
    ))
}

/// Checks that the segmentation and the image line up: size, geotransform, projection.
pub fn check_alignment(
    seg: &Dataset,
    seg_path: &Path,
    img: &Dataset,
    img_path: &Path,
) -> Result<(), StatsError> {
    if seg.raster_size() != img.raster_size() {
        return Err(file_err(
            img_path,
            format!(
                "is {:?} pixels, the segmentation {} is {:?}",
                img.raster_size(),
                seg_path.display(),
                seg.raster_size()
            ),
        ));
    }
    let gt = |d: &Dataset| d.geo_transform().unwrap_or([0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    let (a, b) = (gt(seg), gt(img));
    let close = a
        .iter()
        .zip(&b)
        .all(|(x, y)| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0));
    if !close {
        return Err(file_err(
            img_path,
            format!(
                "geotransform {b:?} differs from the segmentation's {a:?} ({})",
                seg_path.display()
            ),
        ));
    }
    let (pa, pb) = (seg.projection(), img.projection());
    if pa.trim().is_empty() != pb.trim().is_empty() {
        return Err(file_err(
            img_path,
            format!(
                "projection differs from the segmentation's ({})",
                seg_path.display()
            ),
        ));
    }
    if !pa.trim().is_empty() {
        let same = match (
            gdal::spatial_ref::SpatialRef::from_wkt(&pa),
            gdal::spatial_ref::SpatialRef::from_wkt(&pb),
        ) {
            (Ok(x), Ok(y)) => x == y,
            _ => pa == pb,
        };
        if !same {
            return Err(file_err(
                img_path,
                format!(
                    "projection differs from the segmentation's ({})",
                    seg_path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Whether the driver keeps the table in the file and writes it through (bounded memory).
fn writes_through(ds: &Dataset) -> bool {
    matches!(ds.driver().short_name().as_str(), "HFA" | "KEA")
}

/// Computes the requested statistics of `image` per segment of `segfile` and writes them into
/// the segmentation's attribute table (columns of the same name are overwritten, others kept).
/// A segmentation without a `Histogram` column gets one.
pub fn compute_stats(
    segfile: &Path,
    image: &Path,
    req: &StatsRequest,
) -> Result<StatsReport, StatsError> {
    if req.workers == 0 {
        return Err(StatsError::BadOption(
            "reader threads must be at least 1".into(),
        ));
    }
    if req.bands.is_empty() && req.spatial.is_empty() {
        return Err(StatsError::BadOption(
            "no bands and no spatial statistics asked for".into(),
        ));
    }
    if !req.bands.is_empty() && req.stats.is_empty() {
        return Err(StatsError::BadOption("no statistic given".into()));
    }
    let wanted = req.bands.len() * req.stats.len();
    if !req.column_names.is_empty() && req.column_names.len() != wanted {
        return Err(StatsError::BadOption(format!(
            "{} column names given for {wanted} statistics",
            req.column_names.len()
        )));
    }
    for (i, n) in req.column_names.iter().enumerate() {
        if n.trim().is_empty() {
            return Err(StatsError::BadOption(format!("column name {n:?} is empty")));
        }
        if req.column_names[..i].contains(n) {
            return Err(StatsError::BadOption(format!(
                "column name {n} is given twice"
            )));
        }
    }
    let mut seg = open_update(segfile)?;
    let raster = shepseg_tiling::Raster::open(image)?;
    let img = raster.dataset();
    if seg.raster_count() < 1 || is_float(&seg, 1)? {
        return Err(file_err(
            segfile,
            "is not a segmentation (band 1 must hold integer segment IDs)",
        ));
    }
    check_alignment(&seg, segfile, img, image)?;
    let bands = raster.resolve_bands(&req.bands)?;
    let spatial_band = match req.spatial_band {
        Some(b) => raster.resolve_bands(&[b])?[0],
        None => bands.first().copied().unwrap_or(1),
    };
    let mut float = false;
    for &b in bands.iter().chain(std::iter::once(&spatial_band)) {
        float |= is_float(img, b)?;
    }
    let nodata: Vec<Option<f64>> = bands
        .iter()
        .map(|&b| img.rasterband(b).map(|rb| rb.no_data_value()))
        .collect::<Result<_, _>>()?;
    let spatial_nodata = img.rasterband(spatial_band)?.no_data_value();
    let (cols, rows) = img.raster_size();
    let strip_rows = if req.strip_rows == 0 {
        256
    } else {
        req.strip_rows
    };

    let seg_band = seg.rasterband(1)?;
    let mut editor = RatEditor::open(&seg_band, writes_through(&seg))?;
    let t = Instant::now();
    let (hist, histogram_computed) = match editor.read_histogram()? {
        Some(h) => (h, false),
        None => (
            pass::count_pixels(segfile, cols, rows, strip_rows, req.workers)?,
            true,
        ),
    };
    let histogram_time = t.elapsed();
    let nrows = hist.len().max(1);
    editor.ensure_rows(nrows)?;
    if histogram_computed {
        editor.write_histogram(&hist)?;
    }

    // Columns: every stat of every band, then the spatial ones.
    let mut names: Vec<(String, ColumnType)> = Vec::new();
    for &b in &bands {
        for s in &req.stats {
            let ty = if s.is_real(float) {
                ColumnType::Real
            } else {
                ColumnType::Integer
            };
            let name = match req.column_names.get(names.len()) {
                Some(n) => n.clone(),
                None => s.column_name(b),
            };
            names.push((name, ty));
        }
    }
    for s in &req.spatial {
        names.extend(s.columns());
    }
    let mut col_idx = Vec::with_capacity(names.len());
    for (n, ty) in &names {
        col_idx.push(editor.column(n, *ty, ColumnUsage::Generic)?);
    }
    let row_len = names.len();
    let mut empty_row = Vec::with_capacity(row_len);
    for _ in &bands {
        stat::missing_row(&req.stats, req.missing_value, &mut empty_row);
    }
    empty_row.resize(row_len, req.missing_value);

    let geotransform = img
        .geo_transform()
        .unwrap_or([0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    let ctx = pass::Ctx {
        cancel: req.cancel.as_deref(),
        seg_path: segfile,
        img_path: image,
        bands: &bands,
        nodata: &nodata,
        stats: &req.stats,
        spatial: &req.spatial,
        spatial_widths: req.spatial.iter().map(|s| s.columns().len()).collect(),
        spatial_band: (!req.spatial.is_empty()).then_some((spatial_band, spatial_nodata)),
        geotransform,
        missing: req.missing_value,
        hist: &hist,
        cols,
        rows,
        strip_rows,
        workers: req.workers,
        row_len,
    };
    let mut pages = pass::Pages::new(nrows, row_len, &hist, empty_row);
    let t = Instant::now();
    let mut write_time = Duration::ZERO;
    {
        let mut write = |start: usize, values: Vec<Vec<f64>>| -> Result<(), StatsError> {
            let t = Instant::now();
            for (c, v) in col_idx.iter().zip(&values) {
                editor.write(*c, start, v)?;
            }
            write_time += t.elapsed();
            Ok(())
        };
        if float {
            pass::run_pass::<f64>(&ctx, &mut pages, &mut write)?;
        } else {
            pass::run_pass::<i64>(&ctx, &mut pages, &mut write)?;
        }
        for (start, values) in pages.rest(segfile)? {
            write(start, values)?;
        }
    }
    let pass_time = t.elapsed().saturating_sub(write_time);
    let t = Instant::now();
    editor.commit()?;
    seg.flush_cache()?;
    drop(seg);
    write_time += t.elapsed();
    Ok(StatsReport {
        rows: nrows,
        pixels: (cols * rows) as u64,
        histogram_computed,
        columns: names.into_iter().map(|(n, _)| n).collect(),
        histogram_time,
        pass_time,
        write_time,
    })
}
