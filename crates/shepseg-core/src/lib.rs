//! # shepseg-core
//!
//! The Shepherd segmentation algorithm (Shepherd, Bunting and Dymond, 2019, *Remote Sensing*
//! 11(6):658) on an in-memory `(bands, rows, cols)` ndarray, as pyshepseg's
//! `doShepherdSegmentation` implements it:
//!
//! 1. **k-means seeding** ([`kmeans`]): cluster centres fitted on a subsample of the non-null
//!    pixels, then each pixel labelled with its nearest centre;
//! 2. **clumping** ([`clump()`]): connected runs of one cluster become segments;
//! 3. **single-pixel elimination** and **small-segment elimination**: segments smaller than
//!    `min_segment_size` merge into their spectrally nearest larger neighbour, bounded by
//!    [`MaxSpectralDiff`];
//! 4. IDs relabelled to 1..N, 0 being null.
//!
//! This crate does no I/O and depends on neither GDAL nor AWS nor an async runtime: a user who
//! only wants the algorithm on an array depends on this crate alone. Reading rasters, tiling and
//! stitching live in `shepseg-tiling` and `shepseg-stitch`.
//!
//! ## Equality with pyshepseg
//! With [`SegmentParams::pyshepseg_compat`] set and the same k-means centres, the segment image
//! equals pyshepseg's pixel for pixel, IDs included. That depends on details this crate keeps:
//! scikit-learn's assignment arithmetic, the clump search order, `float32` segment spectra,
//! numpy's percentile of `float32` centre distances, and every tie-break. By default shepseg fixes
//! pyshepseg's defect of merging valid single pixels into the null segment (and lone null
//! pixels into valid ones): no valid pixel ever comes out null.
//!
//! ```
//! use ndarray::Array3;
//! use shepseg_core::{segment, SegmentLocations, SegmentParams};
//! let img = Array3::from_shape_fn((1, 30, 30), |(_, r, c)| if c < 15 { 10u8 } else { 90 } + (r % 3) as u8);
//! let params = SegmentParams { num_clusters: 2, min_segment_size: 5, fixed_kmeans_init: true, ..Default::default() };
//! let res = segment(&img.view(), None, &params, None).unwrap();
//! let loc = SegmentLocations::new(&res.segimg.view());
//! assert_eq!(loc.size(1) + loc.size(2), 900);
//! ```

#![deny(missing_docs)]

mod arch;
pub mod clump;
mod cpu;
mod eliminate;
pub mod error;
mod image;
pub mod kmeans;
pub mod locations;
mod mem;
mod numeric;
mod par;
pub mod pixel;
pub mod rng;
pub mod seamless;
pub mod segment;
pub mod spectral_diff;

pub use clump::clump;
pub use cpu::{simd_in_use, MAX_SIMD_ENV};
pub use error::CoreError;
pub use kmeans::{
    diagonal_init, fit, sample_pixels, FitInfo, KMeansInit, KMeansModel, KMeansParams, Predictor,
};
pub use locations::SegmentLocations;
pub use pixel::Pixel;
pub use segment::{segment, PhaseTimings, SegmentParams, SegmentationResult};
pub use spectral_diff::{MaxSpectralDiff, SpectralThreshold};

/// The segment ID of null pixels.
pub const SEG_NULL: u32 = 0;
