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
//!
//! One file per concern: [`auth`] (the secret and the MACs), [`messages`] (what each side
//! says), [`frame`] (how a message travels: length prefix, size limit, postcard).

pub mod auth;
pub mod frame;
pub mod messages;

pub use auth::{random_bytes, Nonce, Role, Secret};
pub use frame::{
    decode, encode, frame_len, read_frame, read_frame_blocking, write_msg, write_msg_blocking,
};
pub use messages::{CoordMsg, JobSpec, TileResult, WireMosaic, WireWindow, WorkerMsg};

/// The protocol version; a peer speaking another is refused.
pub const PROTOCOL_VERSION: u32 = 5;

/// Largest frame accepted before a peer has authenticated.
pub const MAX_HANDSHAKE_FRAME: usize = 64 * 1024;

/// Name of the environment variable that carries the job secret (hex) to workers.
pub const SECRET_ENV: &str = "SHEPSEG_WORKER_SECRET";

/// Length of the job secret and of each nonce, in bytes.
pub const SECRET_LEN: usize = 32;
