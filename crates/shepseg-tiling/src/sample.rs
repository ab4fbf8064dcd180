//! The whole-raster k-means fit, exactly as pyshepseg's `fitSpectralClustersWholeFile`.
//!
//! By default about a million pixels are sampled: the proportion `p = sqrt(1e6 / pixels)` (at
//! most 1) of rows and of columns, taking every `skip = round(1 / p)`-th row and column of each
//! full-resolution 1024x1024 block (the grid restarts in each block; overviews are never used).
//! Null pixels are dropped and the centres fitted on the rest, so every tile of the raster shares
//! one clustering.

use std::time::{Duration, Instant};

use shepseg_core::{fit, FitInfo, KMeansModel, Pixel, SegmentParams};

use crate::error::TilingError;
use crate::raster::{null_as, NullCast, PixelType, Raster, ReadAs, Window};

/// Block size of the sampled reads (pyshepseg's `TILESIZE`).
const BLOCK: usize = 1024;

/// The outcome of [`fit_whole_raster`]. Two fits are equal when their results are (model,
/// sampling and fit information), whatever their timings.
#[derive(Debug, Clone)]
pub struct WholeRasterFit {
    /// The fitted centres.
    pub model: KMeansModel,
    /// Percentage of pixels sampled (pyshepseg's `subsamplePcnt`).
    pub subsample_pcnt: f64,
    /// What the fit did.
    pub info: FitInfo,
    /// Wall time spent reading the sample (the rest of the fit's time is k-means): on a
    /// compressed input nearly all of it is decoding, since every block holds sampled rows.
    pub sample_read: Duration,
}

impl PartialEq for WholeRasterFit {
    fn eq(&self, other: &Self) -> bool {
        self.model == other.model
            && self.subsample_pcnt == other.subsample_pcnt
            && self.info == other.info
    }
}

/// Samples `bands` of `raster` and fits the clusters `params` ask for (`num_clusters`,
/// `fixed_kmeans_init`, `seed`). `subsample_pcnt` overrides the one-million-pixel default;
/// `null` is the null value (pixels with it in any band are not sampled).
pub fn fit_whole_raster(
    raster: &Raster,
    bands: &[usize],
    null: Option<f64>,
    subsample_pcnt: Option<f64>,
    params: &SegmentParams,
) -> Result<WholeRasterFit, TilingError> {
    fit_whole_raster_threads(raster, bands, null, subsample_pcnt, params, 1)
}

/// [`fit_whole_raster`] with the sample read and the fit's passes over the sample spread over
/// `threads` threads (the model is the same for any number).
pub fn fit_whole_raster_threads(
    raster: &Raster,
    bands: &[usize],
    null: Option<f64>,
    subsample_pcnt: Option<f64>,
    params: &SegmentParams,
    threads: usize,
) -> Result<WholeRasterFit, TilingError> {
    let (cols, rows) = raster.size();
    let (prop, pcnt) = match subsample_pcnt {
        None => {
            let prop = (1e6 / (cols as f64 * rows as f64)).sqrt().min(1.0);
            (prop, 100.0 * prop * prop)
        }
        Some(p) if p > 0.0 && p <= 100.0 => ((p / 100.0).sqrt(), p),
        Some(p) => return Err(TilingError::SubsamplePcnt(p)),
    };
    let skip = ((1.0 / prop).round_ties_even() as usize).max(1);
    let (model, info, sample_read) = match raster.pixel_type(bands)? {
        PixelType::U8 => fit_typed::<u8>(raster, bands, null, skip, params, threads)?,
        PixelType::U16 => fit_typed::<u16>(raster, bands, null, skip, params, threads)?,
        PixelType::I16 => fit_typed::<i16>(raster, bands, null, skip, params, threads)?,
        PixelType::U32 => fit_typed::<u32>(raster, bands, null, skip, params, threads)?,
        PixelType::I32 => fit_typed::<i32>(raster, bands, null, skip, params, threads)?,
        PixelType::F32 => fit_typed::<f32>(raster, bands, null, skip, params, threads)?,
        PixelType::I8 => fit_typed::<i8>(raster, bands, null, skip, params, threads)?,
        PixelType::U64 => fit_typed::<u64>(raster, bands, null, skip, params, threads)?,
        PixelType::I64 => fit_typed::<i64>(raster, bands, null, skip, params, threads)?,
        PixelType::F64 => fit_typed::<f64>(raster, bands, null, skip, params, threads)?,
    };
    Ok(WholeRasterFit {
        model,
        subsample_pcnt: pcnt,
        info,
        sample_read,
    })
}

fn fit_typed<T: Pixel + NullCast + ReadAs>(
    raster: &Raster,
    bands: &[usize],
    null: Option<f64>,
    skip: usize,
    params: &SegmentParams,
    threads: usize,
) -> Result<(KMeansModel, FitInfo, Duration), TilingError> {
    let null = null_as::<T>(null)?;
    let t = Instant::now();
    let sample = sample_threads::<T>(raster, bands, skip, threads)?;
    let sample_read = t.elapsed();
    let nb = bands.len();
    let kept: Vec<T> = sample
        .chunks_exact(nb)
        .filter(|p| !p.iter().any(|v| v.is_null(null)))
        .flatten()
        .copied()
        .collect();
    let n = kept.len() / nb;
    if n == 0 {
        return Err(TilingError::NoValidPixels {
            path: raster.path().to_path_buf(),
        });
    }
    let k = params.num_clusters.min(n);
    let kp = shepseg_core::KMeansParams {
        threads,
        ..params.kmeans_params(k)
    };
    let (model, info) = fit(&kept, nb, &kp)?;
    Ok((model, info, sample_read))
}

/// [`sample_typed`] with the rows of blocks split into `threads` contiguous runs, each read
/// through its own dataset (GDAL datasets are not shared between threads) and the runs joined
/// in order: the same sample, with the decoding (on compressed inputs nearly all of the time,
/// since every block holds sampled rows) spread over the threads.
fn sample_threads<T: Pixel + ReadAs>(
    raster: &Raster,
    bands: &[usize],
    skip: usize,
    threads: usize,
) -> Result<Vec<T>, TilingError> {
    let block_rows = raster.size().1.div_ceil(BLOCK);
    let threads = threads.clamp(1, block_rows.max(1));
    let per = block_rows.div_ceil(threads);
    let range = |t: usize| (t * per).min(block_rows)..((t + 1) * per).min(block_rows);
    let path = raster.path();
    let parts: Vec<Result<Vec<T>, TilingError>> = std::thread::scope(|scope| {
        // The other runs (none for one thread) on threads of their own, the first on this one
        // with `raster`.
        let handles: Vec<_> = (1..threads)
            .map(|t| {
                let range = range(t);
                scope.spawn(move || sample_typed::<T>(&Raster::open(path)?, bands, skip, range))
            })
            .collect();
        let mut parts = vec![sample_typed::<T>(raster, bands, skip, range(0))];
        parts.extend(handles.into_iter().map(|h| {
            h.join().unwrap_or_else(|_| {
                Err(TilingError::Read {
                    path: path.to_path_buf(),
                    band: bands.first().copied().unwrap_or(0),
                    reason: "a sampling thread panicked".into(),
                })
            })
        }));
        parts
    });
    let mut out = Vec::new();
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

/// The subsampled raster, band-interleaved, in the row-major order of pyshepseg's
/// concatenated block samples, for the rows of blocks `block_rows`.
///
/// Only the sampled rows are read, each across the whole width in one call: the same pixels as
/// reading every 1024x1024 block and subsampling it, without copying the nine rows in ten (at the
/// default sampling) that are dropped, and on a file stored in strips without decoding them.
fn sample_typed<T: Pixel + ReadAs>(
    raster: &Raster,
    bands: &[usize],
    skip: usize,
    block_rows: std::ops::Range<usize>,
) -> Result<Vec<T>, TilingError> {
    let (cols, rows) = raster.size();
    let nb = bands.len();
    // The sampled columns: the grid restarts at each block's left edge.
    let sampled_cols: Vec<usize> = (0..cols.div_ceil(BLOCK))
        .flat_map(|i| {
            let x0 = i * BLOCK;
            (x0..(x0 + BLOCK).min(cols)).step_by(skip)
        })
        .collect();
    let mut out = Vec::new();
    for by in block_rows {
        let (yoff, ysize) = (by * BLOCK, BLOCK.min(rows - by * BLOCK));
        out.reserve(ysize.div_ceil(skip) * sampled_cols.len() * nb);
        for y in (yoff..yoff + ysize).step_by(skip) {
            let row = T::read_window(
                raster,
                bands,
                Window {
                    xoff: 0,
                    yoff: y,
                    xsize: cols,
                    ysize: 1,
                },
            )?;
            for &x in &sampled_cols {
                out.extend((0..nb).map(|b| row[[b, 0, x]]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gdal::DriverManager;

    /// The sample by its definition: every 1024x1024 block read whole, then every `skip`-th
    /// row and column of it, blocks concatenated as pyshepseg concatenates them.
    fn sample_by_blocks(raster: &Raster, bands: &[usize], skip: usize) -> Vec<u16> {
        let (cols, rows) = raster.size();
        let nb = bands.len();
        let mut out = Vec::new();
        for yoff in (0..rows).step_by(BLOCK) {
            let ysize = BLOCK.min(rows - yoff);
            let blocks: Vec<_> = (0..cols)
                .step_by(BLOCK)
                .map(|xoff| {
                    let xsize = BLOCK.min(cols - xoff);
                    let w = Window {
                        xoff,
                        yoff,
                        xsize,
                        ysize,
                    };
                    raster.read::<u16>(bands, w).unwrap()
                })
                .collect();
            for y in (0..ysize).step_by(skip) {
                for block in &blocks {
                    for x in (0..block.dim().2).step_by(skip) {
                        out.extend((0..nb).map(|b| block[[b, y, x]]));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn row_reads_give_the_block_sample() {
        let dir = std::env::temp_dir().join(format!("shepseg-sample-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cols, rows) = (2500usize, 2100usize);
        let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
        for (name, options) in [
            ("tiled.tif", vec!["TILED=YES", "COMPRESS=DEFLATE"]),
            ("strips.tif", vec!["COMPRESS=DEFLATE"]),
        ] {
            let path = dir.join(name);
            {
                let opts = gdal::cpl::CslStringList::from_iter(options);
                let ds = driver
                    .create_with_band_type_with_options::<u16, _>(&path, cols, rows, 3, &opts)
                    .unwrap();
                for b in 0..3 {
                    let data: Vec<u16> = (0..cols * rows)
                        .map(|p| ((p * 7919 + b * 104729) % 65521) as u16)
                        .collect();
                    let mut buf = gdal::raster::Buffer::new((cols, rows), data);
                    ds.rasterband(b + 1)
                        .unwrap()
                        .write((0, 0), (cols, rows), &mut buf)
                        .unwrap();
                }
            }
            let raster = Raster::open(&path).unwrap();
            for bands in [vec![1, 2, 3], vec![3, 1]] {
                for skip in [1, 3, 10, 37, 1100] {
                    let blocks = rows.div_ceil(BLOCK);
                    let got = sample_typed::<u16>(&raster, &bands, skip, 0..blocks).unwrap();
                    let want = sample_by_blocks(&raster, &bands, skip);
                    assert_eq!(
                        got.len(),
                        want.len(),
                        "{name}, bands {bands:?}, skip {skip}"
                    );
                    assert!(got == want, "{name}, bands {bands:?}, skip {skip}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
