//! The coordinator–worker wire protocol: typed messages in length-prefixed frames.
//!
//! A frame is a 4-byte big-endian payload length followed by the payload, one message encoded
//! with postcard (a compact, schema-driven serde format: it can only ever produce the message
//! types below, never arbitrary objects, unlike pyshepseg's pickle channel). Each reader sets a
//! maximum frame size and refuses a longer length prefix before allocating anything.
//!
//! A session, worker (W) and coordinator (C):
//!
//! ```text
//! W: Hello { version, name }        C: Challenge { nonce_c }     (or Refused, e.g. wrong version)
//! W: Proof { mac_w, nonce_w }       C: Welcome { mac_c, job, heartbeat_ms }   (or Refused)
//! then, repeatedly:
//! W: Ready                          C: Lease { tile, window }    (or NoMoreTiles: W exits)
//! W: ReadRequest { tile }           C: ReadGranted { tile }      (at most N reads at once)
//! W: ReadDone { tile }
//! W: TileDone { .. } | TileFailed { tile, error }
//! W: Heartbeat                      (any time, every heartbeat_ms / 3)
//! ```
//!
//! Both sides prove knowledge of the per-job secret without sending it: `mac_w` is
//! HMAC-SHA256(secret, "shepseg worker" ‖ nonce_c ‖ nonce_w) and `mac_c` the same with
//! "shepseg coordinator", so neither a stranger nor a replayed session gets in, and a worker
//! never takes a job from a coordinator that does not know the secret.

use std::io::{Read, Write};

use hmac::{Hmac, Mac};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use shepseg_core::{KMeansModel, SegmentParams};
use shepseg_tiling::Window;

use crate::error::RemoteError;

/// The protocol version; a peer speaking another is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame accepted before a peer has authenticated.
pub const MAX_HANDSHAKE_FRAME: usize = 64 * 1024;

/// Name of the environment variable that carries the job secret (hex) to workers.
pub const SECRET_ENV: &str = "SHEPSEG_WORKER_SECRET";

/// Length of the job secret and of each nonce, in bytes.
pub const SECRET_LEN: usize = 32;

/// A per-job secret shared by the coordinator and its workers.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; SECRET_LEN]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A fresh random secret from the operating system.
    pub fn generate() -> Result<Self, RemoteError> {
        Ok(Self(random_bytes()?))
    }

    /// Parses the hex form kept in [`SECRET_ENV`].
    pub fn from_hex(s: &str) -> Result<Self, RemoteError> {
        let s = s.trim();
        let bad = || {
            RemoteError::Secret(format!(
                "{SECRET_ENV} must be {} hex digits",
                2 * SECRET_LEN
            ))
        };
        if s.len() != 2 * SECRET_LEN {
            return Err(bad());
        }
        let mut out = [0u8; SECRET_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
                .map_err(|_| bad())?;
        }
        Ok(Self(out))
    }

    /// Reads the secret from [`SECRET_ENV`].
    pub fn from_env() -> Result<Self, RemoteError> {
        let v = std::env::var(SECRET_ENV)
            .map_err(|_| RemoteError::Secret(format!("{SECRET_ENV} is not set")))?;
        Self::from_hex(&v)
    }

    /// The hex form, for [`SECRET_ENV`].
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// HMAC-SHA256 of `role ‖ nonce_c ‖ nonce_w` under this secret.
    pub fn mac(&self, role: Role, nonce_c: &Nonce, nonce_w: &Nonce) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(role.tag());
        m.update(nonce_c);
        m.update(nonce_w);
        m.finalize().into_bytes().into()
    }

    /// Checks a MAC in constant time.
    pub fn verify(&self, role: Role, nonce_c: &Nonce, nonce_w: &Nonce, mac: &[u8; 32]) -> bool {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(role.tag());
        m.update(nonce_c);
        m.update(nonce_w);
        m.verify_slice(mac).is_ok()
    }
}

/// Which side a MAC speaks for (so one side's proof cannot be replayed as the other's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The worker's proof.
    Worker,
    /// The coordinator's proof.
    Coordinator,
}

impl Role {
    fn tag(self) -> &'static [u8] {
        match self {
            Role::Worker => b"shepseg worker",
            Role::Coordinator => b"shepseg coordinator",
        }
    }
}

/// A random challenge.
pub type Nonce = [u8; SECRET_LEN];

/// Random bytes from the operating system.
pub fn random_bytes() -> Result<[u8; SECRET_LEN], RemoteError> {
    let mut b = [0u8; SECRET_LEN];
    getrandom::fill(&mut b).map_err(|e| RemoteError::Secret(format!("no randomness: {e}")))?;
    Ok(b)
}

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
    /// maxSpectralDiff used.
    pub max_spectral_diff: f64,
    /// Pixels the core rescued from pyshepseg's null defect.
    pub rescued_pixels: u64,
    /// Reading time, microseconds.
    pub read_us: u64,
    /// Segmentation time, microseconds.
    pub segment_us: u64,
}

impl TileResult {
    /// Compresses a segment image.
    pub fn pack_image(img: &Array2<u32>) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(img.len() * 4);
        for v in img.iter() {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        lz4_flex::compress(&bytes)
    }

    /// Decompresses the segment image, checking it has `rows x cols` pixels.
    pub fn unpack_image(&self) -> Result<Array2<u32>, RemoteError> {
        let (rows, cols) = (self.rows as usize, self.cols as usize);
        let n = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(4))
            .ok_or_else(|| RemoteError::Protocol("tile size overflows".into()))?;
        let bytes = lz4_flex::decompress(&self.lz4, n)
            .map_err(|e| RemoteError::Protocol(format!("bad tile data: {e}")))?;
        if bytes.len() != n {
            return Err(RemoteError::Protocol("tile data has the wrong size".into()));
        }
        let values = bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
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
        job: JobSpec,
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
    },
    /// Permission to read.
    ReadGranted {
        /// Tile index.
        tile: u32,
    },
    /// The job is over; the worker exits.
    NoMoreTiles,
}

/// Encodes a message as one frame (length prefix included).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, RemoteError> {
    let mut out = postcard::to_extend(msg, vec![0u8; 4])
        .map_err(|e| RemoteError::Protocol(format!("cannot encode: {e}")))?;
    let len = u32::try_from(out.len() - 4)
        .map_err(|_| RemoteError::Protocol("message over 4 GiB".into()))?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// Decodes one frame's payload.
pub fn decode<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, RemoteError> {
    postcard::from_bytes(payload).map_err(|e| RemoteError::Protocol(format!("bad message: {e}")))
}

/// Checks a length prefix against the limit.
pub fn frame_len(prefix: [u8; 4], max: usize) -> Result<usize, RemoteError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(RemoteError::Protocol(format!(
            "frame of {len} bytes exceeds the limit of {max}"
        )));
    }
    Ok(len)
}

/// Reads one frame's payload from a blocking stream.
pub fn read_frame_blocking(r: &mut impl Read, max: usize) -> Result<Vec<u8>, RemoteError> {
    let mut prefix = [0u8; 4];
    r.read_exact(&mut prefix)?;
    let len = frame_len(prefix, max)?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Writes one message to a blocking stream.
pub fn write_msg_blocking<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), RemoteError> {
    w.write_all(&encode(msg)?)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame's payload from an async stream.
pub async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Vec<u8>, RemoteError> {
    use tokio::io::AsyncReadExt;
    let mut prefix = [0u8; 4];
    r.read_exact(&mut prefix).await?;
    let len = frame_len(prefix, max)?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Writes one message to an async stream.
pub async fn write_msg<W: tokio::io::AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<(), RemoteError> {
    use tokio::io::AsyncWriteExt;
    w.write_all(&encode(msg)?).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let msg = WorkerMsg::Hello {
            version: PROTOCOL_VERSION,
            name: "w".into(),
        };
        let frame = encode(&msg).unwrap();
        let payload = read_frame_blocking(&mut &frame[..], 1024).unwrap();
        assert_eq!(decode::<WorkerMsg>(&payload).unwrap(), msg);
    }

    #[test]
    fn oversized_frames_are_refused_before_reading() {
        let frame = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let err = read_frame_blocking(&mut &frame[..], 1024).unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
    }

    #[test]
    fn macs_bind_secret_role_and_nonces() {
        let s = Secret::generate().unwrap();
        let other = Secret::generate().unwrap();
        let (a, b) = (random_bytes().unwrap(), random_bytes().unwrap());
        let mac = s.mac(Role::Worker, &a, &b);
        assert!(s.verify(Role::Worker, &a, &b, &mac));
        assert!(!other.verify(Role::Worker, &a, &b, &mac));
        assert!(!s.verify(Role::Coordinator, &a, &b, &mac));
        assert!(!s.verify(Role::Worker, &b, &a, &mac));
        assert_eq!(Secret::from_hex(&s.to_hex()).unwrap(), s);
        assert!(Secret::from_hex("zz").is_err());
    }

    #[test]
    fn tiles_pack_and_unpack() {
        let img = Array2::from_shape_fn((7, 5), |(r, c)| (r * 5 + c) as u32 / 3);
        let t = TileResult {
            tile: 0,
            rows: 7,
            cols: 5,
            lz4: TileResult::pack_image(&img),
            max_spectral_diff: 1.0,
            rescued_pixels: 0,
            read_us: 0,
            segment_us: 0,
        };
        assert_eq!(t.unpack_image().unwrap(), img);
        let wrong = TileResult { rows: 8, ..t };
        assert!(wrong.unpack_image().is_err());
    }
}
