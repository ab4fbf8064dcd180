//! The messages: what a worker and the coordinator say to each other (see the session in
//! [`crate::protocol`]), and how a finished tile is packed.

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use shepseg_core::seamless::TilePart;
use shepseg_core::{KMeansModel, SegmentParams};
use shepseg_tiling::packed::{pack_image, unpack_labels};
use shepseg_tiling::{MosaicTiles, Window};

use super::auth::Nonce;
use crate::error::RemoteError;

/// What a worker needs to segment any tile of the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The input raster, any GDAL path (workers open it themselves).
    pub input: String,
    /// Bands, from 1.
    pub bands: Vec<usize>,
    /// The input's null value.
    pub null: Option<f64>,
    /// The shared k-means model.
    pub model: KMeansModel,
    /// Segmentation parameters.
    pub params: SegmentParams,
    /// GDAL configuration options the worker sets before opening the input (`--config`),
    /// secrets excepted.
    pub gdal_config: Vec<(String, String)>,
    /// For a mosaic output, what the worker does with its tiles ([`shepseg_tiling::MosaicJob`]).
    pub mosaic: Option<WireMosaic>,
    /// For the k-means sample's job: every how many rows and columns to sample each leased row
    /// of blocks ([`shepseg_tiling::TileJob::sample_skip`]).
    pub sample_skip: Option<u64>,
}

/// A mosaic job on the wire: where the tiles go, and whether this run writes them (each
/// lease then carries the tile's map) or keeps their node images for a later run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireMosaic {
    /// The tiles' folder, any GDAL path.
    pub dir: String,
    /// The raster's projection (WKT).
    pub projection: String,
    /// The raster's geotransform.
    pub geo_transform: Option<[f64; 6]>,
    /// Whether this run writes the tiles (else it keeps node images).
    pub write: bool,
}

impl WireMosaic {
    /// The tiles' destination.
    pub fn tiles(&self) -> MosaicTiles {
        MosaicTiles {
            dir: self.dir.clone().into(),
            projection: self.projection.clone(),
            geo_transform: self.geo_transform,
        }
    }
}

/// A pixel window on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireWindow {
    /// First column.
    pub xoff: u64,
    /// First row.
    pub yoff: u64,
    /// Columns.
    pub xsize: u64,
    /// Rows.
    pub ysize: u64,
}

impl From<Window> for WireWindow {
    fn from(w: Window) -> Self {
        Self {
            xoff: w.xoff as u64,
            yoff: w.yoff as u64,
            xsize: w.xsize as u64,
            ysize: w.ysize as u64,
        }
    }
}

impl From<WireWindow> for Window {
    fn from(w: WireWindow) -> Self {
        Self {
            xoff: w.xoff as usize,
            yoff: w.yoff as usize,
            xsize: w.xsize as usize,
            ysize: w.ysize as usize,
        }
    }
}

/// A finished tile as a worker returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TileResult {
    /// Tile index in the grid's row-major order.
    pub tile: u32,
    /// Rows of the segment image.
    pub rows: u32,
    /// Columns of the segment image.
    pub cols: u32,
    /// The segment image, u32 little-endian, LZ4-compressed.
    pub lz4: Vec<u8>,
    /// The tile's seamless table (default mode).
    pub part: Option<Box<TilePart>>,
    /// A sample job's share of the sample ([`shepseg_tiling::sample::sample_bytes`]).
    pub sample: Option<Vec<u8>>,
    /// maxSpectralDiff used.
    pub max_spectral_diff: f64,
    /// Reading time, microseconds.
    pub read_us: u64,
    /// Segmentation time, microseconds.
    pub segment_us: u64,
}

impl TileResult {
    /// Compresses a segment image ([`pack_image`]).
    pub fn pack_image(img: &Array2<u32>) -> Vec<u8> {
        pack_image(img)
    }

    /// Decompresses the segment image, checking it has `rows x cols` pixels.
    pub fn unpack_image(&self) -> Result<Array2<u32>, RemoteError> {
        let (rows, cols) = (self.rows as usize, self.cols as usize);
        let n = rows
            .checked_mul(cols)
            .ok_or_else(|| RemoteError::Protocol("tile size overflows".into()))?;
        let values = unpack_labels(&self.lz4, n)
            .ok_or_else(|| RemoteError::Protocol("bad tile data".into()))?;
        Array2::from_shape_vec((rows, cols), values)
            .map_err(|e| RemoteError::Protocol(format!("bad tile shape: {e}")))
    }
}

/// Messages from a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WorkerMsg {
    /// First message: the worker's protocol version and a name for logs.
    Hello {
        /// [`PROTOCOL_VERSION`] of the worker.
        version: u32,
        /// Free-form name (host, task ID).
        name: String,
    },
    /// Answer to the challenge.
    Proof {
        /// HMAC proving the worker knows the secret.
        mac: [u8; 32],
        /// The worker's own challenge to the coordinator.
        nonce: Nonce,
    },
    /// Wants a tile.
    Ready,
    /// Wants to start reading its leased tile.
    ReadRequest {
        /// Tile index.
        tile: u32,
    },
    /// Finished reading.
    ReadDone {
        /// Tile index.
        tile: u32,
    },
    /// A segmented tile.
    TileDone(TileResult),
    /// Could not segment a tile.
    TileFailed {
        /// Tile index.
        tile: u32,
        /// The error.
        error: String,
    },
    /// Still alive.
    Heartbeat,
    /// Stopping on a signal (SIGTERM: a Spot interruption, a scale-in, `docker stop`): the
    /// leased tile, if any, goes back to the queue without counting as a failed attempt.
    /// The connection closes after it.
    Leaving {
        /// The tile the worker held.
        tile: Option<u32>,
    },
}

/// Messages from the coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CoordMsg {
    /// Asks the worker to prove it knows the secret.
    Challenge {
        /// The coordinator's challenge.
        nonce: Nonce,
    },
    /// Accepted: the job, and the coordinator's own proof.
    Welcome {
        /// HMAC proving the coordinator knows the secret.
        mac: [u8; 32],
        /// The job.
        job: Box<JobSpec>,
        /// The worker must send something at least this often (it sends a heartbeat every
        /// third of it).
        heartbeat_ms: u64,
        /// Largest frame the coordinator accepts from this worker.
        max_frame: u64,
    },
    /// Refused; the connection closes.
    Refused {
        /// Why.
        reason: String,
    },
    /// A tile for this worker.
    Lease {
        /// Tile index.
        tile: u32,
        /// Its window.
        window: WireWindow,
        /// When the job writes a mosaic's tiles: the tile's map from node to final ID,
        /// packed ([`shepseg_tiling::packed::pack_labels`]), with its length.
        map: Option<(u32, Vec<u8>)>,
    },
    /// Permission to read.
    ReadGranted {
        /// Tile index.
        tile: u32,
    },
    /// The job is over; the worker exits.
    NoMoreTiles,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_pack_and_unpack() {
        let img = Array2::from_shape_fn((7, 5), |(r, c)| (r * 5 + c) as u32 / 3);
        let t = TileResult {
            tile: 0,
            rows: 7,
            cols: 5,
            lz4: TileResult::pack_image(&img),
            part: None,
            sample: None,
            max_spectral_diff: 1.0,
            read_us: 0,
            segment_us: 0,
        };
        assert_eq!(t.unpack_image().unwrap(), img);
        let wrong = TileResult { rows: 8, ..t };
        assert!(wrong.unpack_image().is_err());
    }
}
