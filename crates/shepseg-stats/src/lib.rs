//! # shepseg-stats
//!
//! Per-segment statistics (mean, stddev, min, max, median, mode, percentiles) and spatial
//! statistics of an image over a segmentation, computed in one pass with parallel block readers
//! and written into the segmentation's raster attribute table (`Band_1_mean`, ...).
//!
//! Filled by the statistics issue.
