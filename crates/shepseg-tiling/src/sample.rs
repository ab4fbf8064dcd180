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

/// Block size of the sampled reads (pyshepseg's `TILESIZE`): the sample is defined per row of
/// blocks, so that rows of blocks can be sampled apart (by remote workers) and joined in order.
pub const SAMPLE_BLOCK: usize = 1024;
const BLOCK: usize = SAMPLE_BLOCK;

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

/// Dispatches `$f::<T>` on a [`PixelType`].
macro_rules! by_type {
    ($pt:expr, $f:ident, $($arg:expr),*) => {
        match $pt {
            PixelType::U8 => $f::<u8>($($arg),*),
            PixelType::U16 => $f::<u16>($($arg),*),
            PixelType::I16 => $f::<i16>($($arg),*),
            PixelType::U32 => $f::<u32>($($arg),*),
            PixelType::I32 => $f::<i32>($($arg),*),
            PixelType::F32 => $f::<f32>($($arg),*),
            PixelType::I8 => $f::<i8>($($arg),*),
            PixelType::U64 => $f::<u64>($($arg),*),
            PixelType::I64 => $f::<i64>($($arg),*),
            PixelType::F64 => $f::<f64>($($arg),*),
        }
    };
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
    let (skip, pcnt) = sample_skip(raster.size(), subsample_pcnt)?;
    let (model, info, sample_read) = by_type!(
        raster.pixel_type(bands)?,
        fit_typed,
        raster,
        bands,
        null,
        skip,
        params,
        threads
    )?;
    Ok(WholeRasterFit {
        model,
        subsample_pcnt: pcnt,
        info,
        sample_read,
    })
}

/// Every how many rows and columns of a `(cols, rows)` raster the sample takes a pixel, and the
/// percentage of pixels that is (`subsample_pcnt` if given, else about a million pixels).
pub fn sample_skip(
    (cols, rows): (usize, usize),
    subsample_pcnt: Option<f64>,
) -> Result<(usize, f64), TilingError> {
    let (prop, pcnt) = match subsample_pcnt {
        None => {
            let prop = (1e6 / (cols as f64 * rows as f64)).sqrt().min(1.0);
            (prop, 100.0 * prop * prop)
        }
        Some(p) if p > 0.0 && p <= 100.0 => ((p / 100.0).sqrt(), p),
        Some(p) => return Err(TilingError::SubsamplePcnt(p)),
    };
    Ok((((1.0 / prop).round_ties_even() as usize).max(1), pcnt))
}

/// A pixel value as little-endian bytes, for a sample read in one process and fitted in another.
trait WireValue: Sized + Copy {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(b: &[u8]) -> Self;
}

macro_rules! wire_value {
    ($($t:ty),*) => {$(
        impl WireValue for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
        }
    )*};
}
wire_value!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);

/// The whole-raster sample's share of `block_rows` (rows of [`SAMPLE_BLOCK`]-pixel blocks),
/// every `skip`-th row and column, as little-endian bytes of the bands' type: what a remote
/// worker sends. The shares of all rows of blocks, in order, are the sample
/// [`fit_whole_raster`] reads ([`fit_sample_bytes`] fits it).
pub fn sample_bytes(
    raster: &Raster,
    bands: &[usize],
    skip: usize,
    block_rows: std::ops::Range<usize>,
) -> Result<Vec<u8>, TilingError> {
    fn typed<T: Pixel + ReadAs + WireValue>(
        raster: &Raster,
        bands: &[usize],
        skip: usize,
        block_rows: std::ops::Range<usize>,
    ) -> Result<Vec<u8>, TilingError> {
        let sample = sample_typed::<T>(raster, bands, skip, block_rows)?;
        let mut out = Vec::with_capacity(sample.len() * T::SIZE);
        for v in sample {
            v.put(&mut out);
        }
        Ok(out)
    }
    by_type!(
        raster.pixel_type(bands)?,
        typed,
        raster,
        bands,
        skip,
        block_rows
    )
}

/// Fits the model `params` ask for on a whole-raster sample gathered as [`sample_bytes`]
/// (every share, in order) from `raster`'s `bands`; `null` pixels are dropped.
pub fn fit_sample_bytes(
    raster: &Raster,
    bands: &[usize],
    null: Option<f64>,
    sample: &[u8],
    params: &SegmentParams,
    threads: usize,
) -> Result<(KMeansModel, FitInfo), TilingError> {
    fn typed<T: Pixel + NullCast + WireValue>(
        raster: &Raster,
        bands: &[usize],
        null: Option<f64>,
        sample: &[u8],
        params: &SegmentParams,
        threads: usize,
    ) -> Result<(KMeansModel, FitInfo), TilingError> {
        if !sample.len().is_multiple_of(T::SIZE * bands.len().max(1)) {
            return Err(TilingError::Read {
                path: raster.path().to_path_buf(),
                band: bands.first().copied().unwrap_or(0),
                reason: "the sample gathered does not hold whole pixels".into(),
            });
        }
        let values = sample.chunks_exact(T::SIZE).map(T::get).collect();
        fit_sample(raster, bands, null, values, params, threads)
    }
    by_type!(
        raster.pixel_type(bands)?,
        typed,
        raster,
        bands,
        null,
        sample,
        params,
        threads
    )
}

fn fit_typed<T: Pixel + NullCast + ReadAs>(
    raster: &Raster,
    bands: &[usize],
    null: Option<f64>,
    skip: usize,
    params: &SegmentParams,
    threads: usize,
) -> Result<(KMeansModel, FitInfo, Duration), TilingError> {
    let t = Instant::now();
    let sample = sample_threads::<T>(raster, bands, skip, threads)?;
    let sample_read = t.elapsed();
    let (model, info) = fit_sample(raster, bands, null, sample, params, threads)?;
    Ok((model, info, sample_read))
}

/// The fit on a sample (band-interleaved pixels), null pixels dropped first.
fn fit_sample<T: Pixel + NullCast>(
    raster: &Raster,
    bands: &[usize],
    null: Option<f64>,
    sample: Vec<T>,
    params: &SegmentParams,
    threads: usize,
) -> Result<(KMeansModel, FitInfo), TilingError> {
    let null = null_as::<T>(null)?;
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
            // Rows of blocks sampled apart (as remote workers do) and joined in order fit
            // the same model.
            let bands = [3, 1];
            let params = SegmentParams {
                num_clusters: 8,
                ..Default::default()
            };
            for pcnt in [None, Some(4.0)] {
                let whole = fit_whole_raster(&raster, &bands, Some(7.0), pcnt, &params).unwrap();
                let (skip, got_pcnt) = sample_skip(raster.size(), pcnt).unwrap();
                assert_eq!(got_pcnt, whole.subsample_pcnt);
                let mut sample = Vec::new();
                for by in 0..rows.div_ceil(SAMPLE_BLOCK) {
                    sample.extend(sample_bytes(&raster, &bands, skip, by..by + 1).unwrap());
                }
                let (model, info) =
                    fit_sample_bytes(&raster, &bands, Some(7.0), &sample, &params, 2).unwrap();
                assert_eq!(model, whole.model, "{name}, {pcnt:?}");
                assert_eq!(info, whole.info, "{name}, {pcnt:?}");
                assert!(fit_sample_bytes(&raster, &bands, None, &sample[1..], &params, 1).is_err());
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
