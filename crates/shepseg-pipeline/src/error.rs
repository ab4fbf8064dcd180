//! The pipeline's error type: the failing stage's own error, with the file it concerns.

use std::path::PathBuf;

use shepseg_core::CoreError;
use shepseg_stats::StatsError;
use shepseg_stitch::StitchError;
use shepseg_tiling::{ExecError, TilingError};

/// Why a tiled segmentation stopped. Nothing is left at the output path when it does.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The parameters are invalid.
    #[error(transparent)]
    Params(CoreError),
    /// Reading the input, or laying out the tiles, failed.
    #[error(transparent)]
    Tiling(#[from] TilingError),
    /// The input has no pixels or no bands.
    #[error("{}: raster is empty ({cols} x {rows} pixels, {bands} bands)", path.display())]
    EmptyInput {
        /// The input.
        path: PathBuf,
        /// Its columns.
        cols: usize,
        /// Its rows.
        rows: usize,
        /// Its bands.
        bands: usize,
    },
    /// The given k-means model does not have one value per segmented band.
    #[error("k-means model has {model} bands, {bands} bands are segmented")]
    ModelBands {
        /// Bands of the model.
        model: usize,
        /// Bands segmented.
        bands: usize,
    },
    /// The seamless join of the tiles failed.
    #[error("joining the tiles: {0}")]
    Join(CoreError),
    /// Creating, writing or finishing the output failed.
    #[error(transparent)]
    Output(#[from] StitchError),
    /// A tile, a worker or the executor failed.
    #[error(transparent)]
    Exec(#[from] ExecError<StitchError>),
    /// The per-segment statistics failed (the segmentation itself is complete).
    #[error("statistics: {0}")]
    Stats(#[from] StatsError),
    /// The work directory cannot be used.
    #[error("work directory {}: {message}", path.display())]
    WorkDir {
        /// The work directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Resuming: the work directory belongs to a job with other settings or another input.
    #[error("cannot resume from {}: {what}", path.display())]
    ResumeMismatch {
        /// The work directory.
        path: PathBuf,
        /// What differs.
        what: String,
    },
    /// The work directory holds another job's state (another input or output), which is
    /// never cleared.
    #[error("work directory {} holds another job ({input} into {output}): remove it or choose another", path.display())]
    WorkDirOtherJob {
        /// The work directory.
        path: PathBuf,
        /// That job's input.
        input: String,
        /// That job's output.
        output: String,
    },
    /// Another coordinator is using the work directory.
    #[error("work directory {} is in use by process {pid} on {host}", path.display())]
    WorkDirLocked {
        /// The work directory.
        path: PathBuf,
        /// The process holding it.
        pid: String,
        /// Its host.
        host: String,
    },
    /// Resuming needs the default mode: compatibility mode stitches tiles as they come.
    #[error("resuming a job needs the default mode, not pyshepseg compatibility")]
    ResumeCompat,
    /// The caller raised the job's cancel flag ([`crate::TiledSegmentation::cancel_flag`]).
    #[error("cancelled")]
    Cancelled,
}

impl From<ExecError<crate::consumer::ConsumeError>> for PipelineError {
    /// An executor's error, with the consumer's cancellation lifted out.
    fn from(e: ExecError<crate::consumer::ConsumeError>) -> Self {
        use crate::consumer::ConsumeError;
        let e = match e {
            ExecError::Consumer(ConsumeError::Cancelled) => return PipelineError::Cancelled,
            ExecError::Consumer(ConsumeError::Stitch(s)) => ExecError::Consumer(s),
            ExecError::Tile { col, row, cause } => ExecError::Tile { col, row, cause },
            ExecError::Timeout { col, row, seconds } => ExecError::Timeout { col, row, seconds },
            ExecError::Listen { addr, reason } => ExecError::Listen { addr, reason },
            ExecError::NoWorkers { seconds } => ExecError::NoWorkers { seconds },
            ExecError::Workers(w) => ExecError::Workers(w),
            ExecError::Setup(s) => ExecError::Setup(s),
        };
        PipelineError::Exec(e)
    }
}
