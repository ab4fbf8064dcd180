//! # shepseg-stitch
//!
//! Stitching of independently segmented, overlapping tiles into one output raster whose
//! segment IDs are globally unique and contiguous (1..N, 0 = null). Tiles are consumed in
//! row-major order as executors push them, so stitching runs while other tiles are still being
//! segmented.
//!
//! This crate is filled by the tiled-segmentation issue; for now it only fixes its place in the
//! dependency graph: `shepseg-core` <- `shepseg-tiling` <- `shepseg-stitch`.

#![forbid(unsafe_op_in_unsafe_fn)]
