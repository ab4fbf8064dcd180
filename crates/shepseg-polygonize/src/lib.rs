//! # shepseg-polygonize
//!
//! A segmentation raster to polygons, one feature per segment ID, exactly on pixel edges.
//!
//! Strips of rows are read and traced on worker threads ([`trace`]); the boundaries that cross
//! strip edges are joined exactly, strip by strip, into rings ([`rings`]); a segment whose
//! rings enclose all its pixels is finished and becomes a Polygon or MultiPolygon with its
//! holes ([`geometry`]); features go to an OGR writer thread in ID order ([`write`]). Memory is
//! bounded by the strips in flight and the segments still open (plus finished segments
//! waiting for a lower ID to finish), not by the image.

pub mod error;
pub mod geometry;
pub mod labels;
pub mod rings;
pub mod simplify;
pub mod trace;
pub mod write;

mod run;

pub use error::PolygonizeError;
pub use run::{polygonize, PolygonizeJob, PolygonizeReport};
pub use write::partial_dir_for;
