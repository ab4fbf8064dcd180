//! The whole-raster k-means fit, exactly as pyshepseg's `fitSpectralClustersWholeFile`.
//!
//! By default about a million pixels are sampled: the proportion `p = sqrt(1e6 / pixels)` (at
//! most 1) of rows and of columns, taking every `skip = round(1 / p)`-th row and column of each
//! full-resolution 1024x1024 block (the grid restarts in each block; overviews are never used).
//! Null pixels are dropped and the centres fitted on the rest, so every tile of the raster shares
//! one clustering.

use gdal::raster::GdalType;
use shepseg_core::{fit, FitInfo, KMeansModel, Pixel, SegmentParams};

use crate::error::TilingError;
use crate::raster::{null_as, NullCast, PixelType, Raster, Window};

/// Block size of the sampled reads (pyshepseg's `TILESIZE`).
const BLOCK: usize = 1024;

/// The outcome of [`fit_whole_raster`].
#[derive(Debug, Clone, PartialEq)]
pub struct WholeRasterFit {
    /// The fitted centres.
    pub model: KMeansModel,
    /// Percentage of pixels sampled (pyshepseg's `subsamplePcnt`).
    pub subsample_pcnt: f64,
    /// What the fit did.
    pub info: FitInfo,
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

/// [`fit_whole_raster`] with the k-means++ restarts spread over `threads` threads (the model
/// is the same for any number).
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
        Some(p) => {
            return Err(TilingError::BadOption(format!(
                "--cluster-subsample-pcnt must be in (0, 100], got {p}"
            )))
        }
    };
    let skip = ((1.0 / prop).round_ties_even() as usize).max(1);
    let (model, info) = match raster.pixel_type(bands)? {
        PixelType::U8 => fit_typed::<u8>(raster, bands, null, skip, params, threads)?,
        PixelType::U16 => fit_typed::<u16>(raster, bands, null, skip, params, threads)?,
        PixelType::I16 => fit_typed::<i16>(raster, bands, null, skip, params, threads)?,
        PixelType::U32 => fit_typed::<u32>(raster, bands, null, skip, params, threads)?,
        PixelType::I32 => fit_typed::<i32>(raster, bands, null, skip, params, threads)?,
        PixelType::F32 => fit_typed::<f32>(raster, bands, null, skip, params, threads)?,
    };
    Ok(WholeRasterFit {
        model,
        subsample_pcnt: pcnt,
        info,
    })
}

fn fit_typed<T: Pixel + NullCast + GdalType + Default>(
    raster: &Raster,
    bands: &[usize],
    null: Option<f64>,
    skip: usize,
    params: &SegmentParams,
    threads: usize,
) -> Result<(KMeansModel, FitInfo), TilingError> {
    let null = null_as::<T>(null)?;
    let sample = sample_threads::<T>(raster, bands, skip, threads)?;
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
    Ok(fit(&kept, nb, &kp)?)
}

/// [`sample_typed`] with the rows of blocks split into `threads` contiguous runs, each read
/// through its own dataset (GDAL datasets are not shared between threads) and the runs joined
/// in order: the same sample, with the decoding (on compressed inputs nearly all of the time,
/// since every block holds sampled rows) spread over the threads.
fn sample_threads<T: Pixel + GdalType + Default>(
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
fn sample_typed<T: Pixel + GdalType + Default>(
    raster: &Raster,
    bands: &[usize],
    skip: usize,
    block_rows: std::ops::Range<usize>,
) -> Result<Vec<T>, TilingError> {
    let (cols, rows) = raster.size();
    let nb = bands.len();
    let sub = |len: usize| len.div_ceil(skip);
    // Columns of the assembled sample image: each block contributes ceil(width / skip).
    let block_cols: Vec<(usize, usize)> = (0..cols.div_ceil(BLOCK))
        .map(|i| (i * BLOCK, BLOCK.min(cols - i * BLOCK)))
        .collect();
    let out_cols: usize = block_cols.iter().map(|&(_, w)| sub(w)).sum();
    let mut out = Vec::new();
    for by in block_rows {
        let (yoff, ysize) = (by * BLOCK, BLOCK.min(rows - by * BLOCK));
        let out_rows = sub(ysize);
        let mut strip = vec![T::default(); out_rows * out_cols * nb];
        let mut col0 = 0;
        for &(xoff, xsize) in &block_cols {
            let block = raster.read::<T>(
                bands,
                Window {
                    xoff,
                    yoff,
                    xsize,
                    ysize,
                },
            )?;
            for (r, y) in (0..ysize).step_by(skip).enumerate() {
                for (c, x) in (0..xsize).step_by(skip).enumerate() {
                    let at = ((r * out_cols) + col0 + c) * nb;
                    for b in 0..nb {
                        strip[at + b] = block[[b, y, x]];
                    }
                }
            }
            col0 += sub(xsize);
        }
        out.extend_from_slice(&strip);
    }
    Ok(out)
}
