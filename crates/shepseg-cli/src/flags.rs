//! Library errors with the command-line option that governs them: the libraries never name a
//! flag, so the CLI adds it here.

use shepseg_pipeline::PipelineError;
use shepseg_stitch::StitchError;
use shepseg_tiling::TilingError;

/// A library error with the command-line option that governs it, where one does.
pub fn flag_context(e: PipelineError) -> anyhow::Error {
    let flag = match &e {
        PipelineError::Tiling(TilingError::TileGrid(_)) => "--tile-size/--overlap-size".into(),
        PipelineError::Tiling(TilingError::SubsamplePcnt(_)) => "--cluster-subsample-pcnt".into(),
        PipelineError::ModelBands { .. } => "--kmeans-in".into(),
        PipelineError::Tiling(
            TilingError::NullNotRepresentable { .. } | TilingError::NullMismatch { .. },
        ) => "--null-value".into(),
        PipelineError::Output(StitchError::Exists(path)) => {
            let msg = format!(
                "{}: already exists (use --overwrite to replace it)",
                path.display()
            );
            return anyhow::anyhow!(msg);
        }
        PipelineError::Output(StitchError::Driver { driver, .. }) => format!("--of {driver}"),
        PipelineError::Output(StitchError::CreationOption { option, .. }) => {
            format!("--co {option}")
        }
        _ => return e.into(),
    };
    anyhow::Error::new(e).context(flag)
}
