//! The whole in-memory segmentation: pyshepseg's `doShepherdSegmentation`.
//!
//! ```
//! use ndarray::Array3;
//! use shepseg_core::{segment, SegmentParams};
//! // Two bands, 40 x 40: a bright square on a dark background.
//! let img = Array3::from_shape_fn((2, 40, 40), |(b, r, c)| {
//!     let inside = (10..30).contains(&r) && (10..30).contains(&c);
//!     (if inside { 200 } else { 20 }) + b as u16 + ((r * 7 + c * 3) % 5) as u16
//! });
//! let params = SegmentParams { num_clusters: 2, min_segment_size: 10, ..Default::default() };
//! let res = segment(&img.view(), None, &params, None).unwrap();
//! assert_eq!(res.num_segments, 2);
//! ```

use std::time::{Duration, Instant};

use ndarray::{Array2, ArrayView3};

use crate::clump::clump_sized;
use crate::eliminate::{eliminate_single_pixels_sized, eliminate_small_segments_renumbered};
use crate::error::CoreError;
use crate::image::Img;
use crate::kmeans::{fit, sample_image, subsample_skip, KMeansInit, KMeansModel, KMeansParams};
use crate::pixel::Pixel;
use crate::spectral_diff::MaxSpectralDiff;

/// Parameters of a segmentation; the defaults are pyshepseg's. Serialisable, so a coordinator
/// can send them to remote workers.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegmentParams {
    /// Number of k-means clusters (`numClusters`, 60).
    pub num_clusters: usize,
    /// Percentage of non-null pixels sampled for the k-means fit (`clusterSubsamplePcnt`, 1):
    /// every `round(100 / p)`-th pixel in raster order.
    pub cluster_subsample_pcnt: f64,
    /// Smallest segment size left after elimination (`minSegmentSize`, 50).
    pub min_segment_size: usize,
    /// Limit on merging spectrally different segments (`maxSpectralDiff`, auto).
    pub max_spectral_diff: MaxSpectralDiff,
    /// Percentile used by `auto` (`spectDistPcntile`, 50).
    pub spect_dist_pcntile: f64,
    /// 4-way connectivity if true, else 8-way (`fourConnected`, true).
    pub four_connected: bool,
    /// pyshepseg's deterministic diagonal k-means initialisation with one run
    /// (`fixedKMeansInit`, false: k-means++ with 5 runs).
    pub fixed_kmeans_init: bool,
    /// Seed of the k-means++ random generator (ignored with `fixed_kmeans_init`).
    pub seed: u64,
    /// Reproduce pyshepseg bit for bit, defects included: its 10,000-pixel clump cap,
    /// `float32` spectral sums added in raster order, ties to the first neighbour met, the null
    /// segment absorbing valid single pixels (which leaves them null), and the lone null pixel
    /// joining a segment.
    ///
    /// Off by default, and the result is then a function of the image alone, which a tiled
    /// run reproduces exactly whatever the tiles: clumps are whole connected components;
    /// single-pixel elimination never joins a pixel to the null segment; small-segment
    /// elimination sums spectra exactly ([`crate::Pixel::exact`]) and compares `f64` means,
    /// ties going to the smallest segment ID; segments are numbered by their first pixel in
    /// raster order. Every other rule is pyshepseg's.
    pub pyshepseg_compat: bool,
}

impl Default for SegmentParams {
    fn default() -> Self {
        Self {
            num_clusters: 60,
            cluster_subsample_pcnt: 1.0,
            min_segment_size: 50,
            max_spectral_diff: MaxSpectralDiff::Auto,
            spect_dist_pcntile: 50.0,
            four_connected: true,
            fixed_kmeans_init: false,
            seed: 0,
            pyshepseg_compat: false,
        }
    }
}

impl SegmentParams {
    /// Checks every parameter's range, naming the one at fault.
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |m: String| Err(CoreError::InvalidParameter(m));
        if self.num_clusters == 0 {
            return bad("number of clusters must be at least 1".into());
        }
        if !(self.cluster_subsample_pcnt > 0.0 && self.cluster_subsample_pcnt <= 100.0) {
            return bad(format!(
                "cluster subsample percent must be in (0, 100], got {}",
                self.cluster_subsample_pcnt
            ));
        }
        if self.min_segment_size == 0 {
            return bad("min segment size must be at least 1".into());
        }
        if !(0.0..=100.0).contains(&self.spect_dist_pcntile) {
            return bad(format!(
                "spectral distance percentile must be in [0, 100], got {}",
                self.spect_dist_pcntile
            ));
        }
        Ok(())
    }

    /// The k-means fit these parameters ask for, with `k` clusters.
    pub fn kmeans_params(&self, k: usize) -> KMeansParams {
        KMeansParams {
            num_clusters: k,
            init: if self.fixed_kmeans_init {
                KMeansInit::Diagonal
            } else {
                KMeansInit::KMeansPlusPlus {
                    runs: 5,
                    seed: self.seed,
                }
            },
            ..KMeansParams::default()
        }
    }
}

/// Wall time of each phase of a segmentation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhaseTimings {
    /// Sampling and k-means fit (zero when a model was given).
    pub fit: Duration,
    /// Predicting every pixel's cluster.
    pub predict: Duration,
    /// Clumping.
    pub clump: Duration,
    /// Single-pixel elimination.
    pub single_pixel: Duration,
    /// Small-segment elimination.
    pub small_segment: Duration,
}

impl PhaseTimings {
    /// Sum of all phases.
    pub fn total(&self) -> Duration {
        self.fit + self.predict + self.clump + self.single_pixel + self.small_segment
    }
}

/// The outcome of [`segment`].
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentationResult {
    /// Segment IDs, 1..=`num_segments`, 0 for null pixels.
    pub segimg: Array2<u32>,
    /// The k-means model used (given or fitted); `None` only when no model was given and the
    /// image has no non-null pixel to fit one on.
    pub model: Option<KMeansModel>,
    /// The maxSpectralDiff value used.
    pub max_spectral_diff: f64,
    /// Single-pixel segments merged away.
    pub single_pixels_eliminated: usize,
    /// Small segments merged away.
    pub small_segments_eliminated: usize,
    /// Number of segments in `segimg`.
    pub num_segments: u32,
    /// Time per phase.
    pub timings: PhaseTimings,
}

/// Segments a `(bands, rows, cols)` image: pyshepseg's `doShepherdSegmentation`.
///
/// A pixel is null when any band equals `null` (or, for `f32`, is NaN or infinite); null
/// pixels get segment 0. With `model` the k-means fit is skipped and its centres are used as they are (this is how
/// tiles of one raster share a clustering). Without it, the fit uses the sample
/// `params.cluster_subsample_pcnt` describes; if that sample has fewer pixels than clusters, the
/// number of clusters is reduced to the sample size.
pub fn segment<T: Pixel>(
    img: &ArrayView3<T>,
    null: Option<T>,
    params: &SegmentParams,
    model: Option<&KMeansModel>,
) -> Result<SegmentationResult, CoreError> {
    params.validate()?;
    let (bands, rows, cols) = img.dim();
    if bands == 0 || rows == 0 || cols == 0 {
        return Err(CoreError::EmptyImage { bands, rows, cols });
    }
    let pixels = rows * cols;
    if pixels >= u32::MAX as usize {
        return Err(CoreError::ImageTooLarge { pixels });
    }
    // One contiguous copy (none if the view is already in standard layout) for every phase,
    // the fit's sample included.
    let standard = img.as_standard_layout();
    let image = Img::from_standard(&standard)?;
    let mut timings = PhaseTimings::default();
    let t = Instant::now();
    let model = match model {
        Some(m) => {
            if m.num_bands() != bands {
                return Err(CoreError::InvalidModel(format!(
                    "model has {} bands, image has {bands}",
                    m.num_bands()
                )));
            }
            Some(m.clone())
        }
        None => {
            let skip = subsample_skip(params.cluster_subsample_pcnt)?;
            let sample = sample_image(&image, null, skip);
            let n = sample.len() / bands;
            if n == 0 {
                None
            } else {
                let k = params.num_clusters.min(n);
                Some(fit(&sample, bands, &params.kmeans_params(k))?.0)
            }
        }
    };
    timings.fit = t.elapsed();
    let Some(model) = model else {
        // Nothing but nulls: every pixel is segment 0.
        return Ok(SegmentationResult {
            segimg: Array2::zeros((rows, cols)),
            model: None,
            max_spectral_diff: 0.0,
            single_pixels_eliminated: 0,
            small_segments_eliminated: 0,
            num_segments: 0,
            timings,
        });
    };

    let t = Instant::now();
    let clusters = model.predictor().predict_image(&image, null);
    timings.predict = t.elapsed();

    let t = Instant::now();
    let compat = params.pyshepseg_compat;
    let (mut seg, size) = clump_sized(clusters, rows, cols, params.four_connected, compat);
    let max_id = size.len() as u32 - 1;
    timings.clump = t.elapsed();

    // The relabelling after single-pixel elimination is applied by small-segment
    // elimination's first pass over the image.
    let t = Instant::now();
    let renumbering =
        eliminate_single_pixels_sized(&image, &mut seg, size, params.four_connected, compat);
    let after_single = renumbering.max_id();
    timings.single_pixel = t.elapsed();

    let threshold = params
        .max_spectral_diff
        .resolve(&model, params.spect_dist_pcntile);
    let t = Instant::now();
    let (small, num_segments) = eliminate_small_segments_renumbered(
        &image,
        &mut seg,
        renumbering,
        params.min_segment_size,
        threshold.squared(),
        params.four_connected,
        compat,
    );
    timings.small_segment = t.elapsed();

    let segimg = Array2::from_shape_vec((rows, cols), seg)
        .map_err(|e| CoreError::InvalidParameter(e.to_string()))?;
    Ok(SegmentationResult {
        segimg,
        model: Some(model),
        max_spectral_diff: threshold.value(),
        single_pixels_eliminated: (max_id - after_single) as usize,
        small_segments_eliminated: small,
        num_segments,
        timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn zero_size_is_a_clear_error() {
        let img = Array3::<u8>::zeros((1, 0, 5));
        let e = segment(&img.view(), None, &SegmentParams::default(), None).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn model_band_mismatch_is_an_error() {
        let img = Array3::<u8>::zeros((2, 3, 3));
        let m = KMeansModel::new(vec![vec![1.0]]).unwrap();
        let e = segment(&img.view(), None, &SegmentParams::default(), Some(&m)).unwrap_err();
        assert!(e.to_string().contains("1 bands, image has 2"), "{e}");
    }

    #[test]
    fn all_null_gives_all_zero() {
        let img = Array3::<i16>::from_elem((2, 4, 4), -1);
        let r = segment(&img.view(), Some(-1), &SegmentParams::default(), None).unwrap();
        assert_eq!(r.num_segments, 0);
        assert!(r.segimg.iter().all(|&v| v == 0));
        assert!(r.model.is_none());
    }
}
