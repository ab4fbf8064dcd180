//! Errors of the remote executors and the worker.

/// What can go wrong between a coordinator and its workers.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A socket failed or closed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// A peer sent something the protocol does not allow.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The job secret is missing, malformed or wrong.
    #[error("secret: {0}")]
    Secret(String),
    /// The coordinator refused this worker.
    #[error("refused by the coordinator: {0}")]
    Refused(String),
    /// Segmenting a tile failed in the worker.
    #[error(transparent)]
    Tiling(#[from] shepseg_tiling::TilingError),
    /// Starting, watching or cleaning up workers failed.
    #[error("{0}")]
    Launch(String),
    /// A configuration file is missing or wrong.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}
