//! # shepseg-exec-threads
//!
//! A tile executor that segments tiles on local worker threads, each with its own GDAL dataset,
//! and pushes finished tiles to the stitcher in the order it needs them.
//!
//! Filled by the concurrency issue; it depends on `shepseg-stitch` (the sink it feeds) and
//! `shepseg-tiling` (the job's tile grid and reader).
