//! A window of a segmentation as a new segmentation (pyshepseg's `subsetImage`): the segments
//! inside renumbered 1..N in order of first appearance (scanning 1024x1024 blocks in row-major
//! order, pixels in raster order within each, as pyshepseg does), every attribute-table column
//! carried over (row of the old ID to row of the new), the Histogram recomputed, and optionally
//! a column holding each segment's original ID. The window is given in pixels, in map
//! coordinates, or by a mask raster on the same grid (pixels where the mask is 0 are left out).
//!
//! Unlike pyshepseg, the output has nodata 0, `STATISTICS_*` metadata and overviews like any
//! shepseg output, keeps real columns in full precision (pyshepseg rounds them to f32), accepts
//! a map window that reaches the image's right or bottom edge, and is written under a temporary
//! name and renamed when complete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gdal::Dataset;
use ndarray::Array2;
use shepseg_stitch::{GdalOutput, OutputGeometry, OutputOptions, TileSink};
use shepseg_tiling::rat::{ColumnType, ColumnUsage, Rat, RatEditor};
use shepseg_tiling::Window;

use crate::error::{file_err, StatsError};

/// Which part of the segmentation to keep.
#[derive(Debug, Clone, PartialEq)]
pub enum SubsetWindow {
    /// Pixel window: first column, first row, columns, rows.
    SrcWin(usize, usize, usize, usize),
    /// Map window: upper-left x, upper-left y, lower-right x, lower-right y.
    ProjWin(f64, f64, f64, f64),
    /// A mask raster on the same grid: its extent is the window, its zero pixels are left out.
    Mask(PathBuf),
}

/// What a subset produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubsetReport {
    /// The window used.
    pub window: (usize, usize, usize, usize),
    /// Segments in the output.
    pub segments: usize,
}

const BLOCK: usize = 1024;

/// Attribute-table rows read at once.
const PAGE: usize = 100_000;

/// Writes the subset of `segfile` to `output`.
pub fn subset(
    segfile: &Path,
    output: &Path,
    window: &SubsetWindow,
    options: &OutputOptions,
    orig_id_column: Option<&str>,
) -> Result<SubsetReport, StatsError> {
    let raster = shepseg_tiling::Raster::open(segfile)?;
    let ds = raster.dataset();
    let (cols, rows) = ds.raster_size();
    let gt = ds.geo_transform().unwrap_or([0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    let mut mask_ds: Option<Dataset> = None;
    let (x0, y0, w, h) = match window {
        SubsetWindow::SrcWin(x, y, w, h) => (*x, *y, *w, *h),
        SubsetWindow::ProjWin(ulx, uly, lrx, lry) => {
            let inv =
                invert(&gt).ok_or_else(|| file_err(segfile, "geotransform cannot be inverted"))?;
            let px = |x: f64, y: f64| {
                (
                    inv[0] + inv[1] * x + inv[2] * y,
                    inv[3] + inv[4] * x + inv[5] * y,
                )
            };
            // Corners within a millionth of a pixel edge are on it (map coordinates printed
            // and parsed back rarely invert exactly).
            let snap = |v: f64| {
                if (v - v.round()).abs() < 1e-6 {
                    v.round()
                } else {
                    v
                }
            };
            let (a, b) = (px(*ulx, *uly), px(*lrx, *lry));
            let (a, b) = ((snap(a.0), snap(a.1)), (snap(b.0), snap(b.1)));
            let (tlx, tly) = (a.0.min(b.0).floor(), a.1.min(b.1).floor());
            let (brx, bry) = (a.0.max(b.0).ceil(), a.1.max(b.1).ceil());
            if tlx < 0.0 || tly < 0.0 || brx > cols as f64 || bry > rows as f64 {
                return Err(StatsError::BadOption(format!(
                    "map window {ulx} {uly} {lrx} {lry} is not inside {}",
                    segfile.display()
                )));
            }
            (
                tlx as usize,
                tly as usize,
                (brx - tlx) as usize,
                (bry - tly) as usize,
            )
        }
        SubsetWindow::Mask(p) => {
            let m = shepseg_tiling::Raster::open(p)?;
            let mgt = m
                .dataset()
                .geo_transform()
                .unwrap_or([0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
            if (mgt[1] - gt[1]).abs() > 1e-9 * gt[1].abs()
                || (mgt[5] - gt[5]).abs() > 1e-9 * gt[5].abs()
            {
                return Err(file_err(p, "pixel size differs from the segmentation's"));
            }
            let fx = (mgt[0] - gt[0]) / gt[1];
            let fy = (mgt[3] - gt[3]) / gt[5];
            if (fx - fx.round()).abs() > 1e-6 || (fy - fy.round()).abs() > 1e-6 {
                return Err(file_err(p, "is not on the segmentation's pixel grid"));
            }
            let (mw, mh) = m.dataset().raster_size();
            if fx < 0.0 || fy < 0.0 {
                return Err(file_err(p, format!("extends beyond {}", segfile.display())));
            }
            mask_ds = Some(Dataset::open(p).map_err(|e| file_err(p, e.to_string()))?);
            (fx.round() as usize, fy.round() as usize, mw, mh)
        }
    };
    if w == 0 || h == 0 || x0 + w > cols || y0 + h > rows {
        return Err(StatsError::BadOption(format!(
            "window {x0} {y0} {w} {h} is not inside {} ({cols} x {rows})",
            segfile.display()
        )));
    }
    let band = ds.rasterband(1)?;
    let read = |bx: usize, by: usize, bw: usize, bh: usize| -> Result<Vec<u32>, StatsError> {
        let mut v = band
            .read_as::<u32>(
                ((x0 + bx) as isize, (y0 + by) as isize),
                (bw, bh),
                (bw, bh),
                None,
            )?
            .into_shape_and_vec()
            .1;
        if let Some(m) = &mask_ds {
            let mb = m.rasterband(1)?;
            let mv = mb
                .read_as::<f64>((bx as isize, by as isize), (bw, bh), (bw, bh), None)?
                .into_shape_and_vec()
                .1;
            for (s, k) in v.iter_mut().zip(mv) {
                if k == 0.0 {
                    *s = 0;
                }
            }
        }
        Ok(v)
    };
    let blocks: Vec<(usize, usize, usize, usize)> = (0..h)
        .step_by(BLOCK)
        .flat_map(|by| {
            (0..w)
                .step_by(BLOCK)
                .map(move |bx| (bx, by, BLOCK.min(w - bx), BLOCK.min(h - by)))
        })
        .collect();
    // Pass 1: new IDs in order of first appearance.
    let mut recode: HashMap<u32, u32> = HashMap::new();
    let mut old_ids: Vec<u32> = vec![0];
    for &(bx, by, bw, bh) in &blocks {
        for s in read(bx, by, bw, bh)? {
            if s != 0 && !recode.contains_key(&s) {
                recode.insert(s, old_ids.len() as u32);
                old_ids.push(s);
            }
        }
    }
    if old_ids.len() == 1 {
        return Err(file_err(
            segfile,
            format!("no segments in window {x0} {y0} {w} {h}"),
        ));
    }
    // Pass 2: write the renumbered blocks.
    let mut out = GdalOutput::create(
        output,
        &OutputGeometry {
            cols: w,
            rows: h,
            projection: ds.projection(),
            geo_transform: Some([
                gt[0] + gt[1] * x0 as f64 + gt[2] * y0 as f64,
                gt[1],
                gt[2],
                gt[3] + gt[4] * x0 as f64 + gt[5] * y0 as f64,
                gt[4],
                gt[5],
            ]),
        },
        options,
    )?;
    let mut hist = vec![0u64; old_ids.len()];
    for &(bx, by, bw, bh) in &blocks {
        let v: Vec<u32> = read(bx, by, bw, bh)?
            .into_iter()
            .map(|s| if s == 0 { 0 } else { recode[&s] })
            .collect();
        for &n in &v {
            hist[n as usize] += 1;
        }
        let arr =
            Array2::from_shape_vec((bh, bw), v).map_err(|e| StatsError::Gdal(e.to_string()))?;
        let window = Window {
            xoff: bx,
            yoff: by,
            xsize: bw,
            ysize: bh,
        };
        out.write(out.block_prep().prepare(window, arr)?)?;
    }
    hist[0] = 0;
    // The table: every input column, rows moved to their new IDs.
    let n = old_ids.len();
    let mut rat = Rat::new(n)?;
    let mut has_hist = false;
    if let Ok(editor) = RatEditor::open(&band, false) {
        let in_rows = editor.rows();
        for (c, (name, ty, usage)) in editor.columns().into_iter().enumerate() {
            let values: Vec<f64> = if usage == ColumnUsage::PixelCount {
                has_hist = true;
                hist.iter().map(|&v| v as f64).collect()
            } else {
                // In pages, so a table of millions of rows is never read whole.
                let mut col = vec![0.0; n];
                let mut order: Vec<usize> = (1..n).collect();
                order.sort_unstable_by_key(|&i| old_ids[i]);
                let mut page: (usize, Vec<f64>) = (usize::MAX, Vec::new());
                for new in order {
                    let old = old_ids[new] as usize;
                    if old >= in_rows {
                        continue;
                    }
                    let p = old / PAGE;
                    if page.0 != p {
                        let start = p * PAGE;
                        page = (p, editor.read(c, start, PAGE.min(in_rows - start))?);
                    }
                    col[new] = page.1[old - p * PAGE];
                }
                col
            };
            rat.add_column(&name, ty, usage, &values)?;
        }
    }
    if !has_hist {
        rat.add_histogram(&hist)?;
    }
    if let Some(name) = orig_id_column {
        let ids: Vec<f64> = old_ids.iter().map(|&v| f64::from(v)).collect();
        rat.add_column(name, ColumnType::Integer, ColumnUsage::Generic, &ids)?;
    }
    out.finish_with_rat(&rat, &hist)?;
    Ok(SubsetReport {
        window: (x0, y0, w, h),
        segments: n - 1,
    })
}

/// The inverse of a geotransform.
fn invert(g: &[f64; 6]) -> Option<[f64; 6]> {
    let det = g[1] * g[5] - g[2] * g[4];
    if det.abs() < 1e-15 {
        return None;
    }
    let (a, b, c, d) = (g[5] / det, -g[2] / det, -g[4] / det, g[1] / det);
    Some([-(a * g[0] + b * g[3]), a, b, -(c * g[0] + d * g[3]), c, d])
}
