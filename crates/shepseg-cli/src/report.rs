//! The `--json` report of `shepseg segment`; its schema is documented in the README.

use std::time::Duration;

use shepseg_exec_fargate::RemoteReport;
use shepseg_pipeline::SegmentationReport;

use crate::segment::SegmentArgs;

/// The report's schema version: raised when a key changes meaning or goes away (new keys do
/// not raise it).
pub const SCHEMA_VERSION: u32 = 1;

/// The report: parameters, model, segments, timings and, with remote workers, what happened
/// to them.
pub fn json(
    args: &SegmentArgs,
    report: &SegmentationReport,
    workers: Option<&RemoteReport>,
    total: Duration,
) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "input": args.input,
        "output": args.output,
        "parameters": {
            "bands": report.bands,
            "num_clusters": args.nclusters,
            "min_segment_size": args.min_segment_size,
            "max_spectral_diff": args.max_spectral_diff,
            "spect_dist_pcntile": args.spect_dist_pcntile,
            "four_connected": !args.eight_way,
            "fixed_kmeans_init": args.fixed_kmeans_init,
            "seed": args.seed,
            "cluster_subsample_pcnt": report.subsample_pcnt,
            "tile_size": report.tile_size,
            "overlap_size": report.overlap_size,
            "null_value": report.null_value,
            "pyshepseg_compat": args.pyshepseg_compat,
        },
        "max_spectral_diff_used": report.max_spectral_diff_used,
        "kmeans": serde_json::from_str::<serde_json::Value>(&report.model.to_json())?,
        "num_segments": report.num_segments,
        "num_tiles": report.num_tiles,
        "tiles_resumed": report.tiles_resumed,
        "executor": format!("{:?}", args.exec.executor).to_lowercase(),
        "seam_fallbacks": report.seam_fallbacks,
        "seamless": report.seamless.map(|s| serde_json::json!({
            "nodes": s.nodes,
            "table_bytes": s.table_bytes,
            "undecided_singles": s.undecided_singles,
            "singles_joined": s.singles_joined,
            "small_merged": s.small_merged,
        })),
        // Valid pixels pyshepseg's rule had made null and the old default gave back: none
        // since the default mode never makes a valid pixel null. Kept for scripts.
        "rescued_pixels": 0,
        "timings_s": report.timings.json(total),
        "workers": workers.map(|r| serde_json::json!({
            "joined": r.workers_joined,
            "lost": r.workers_lost,
            "left": r.workers_left,
            "connections_refused": r.connections_refused,
            "tiles_requeued": r.tiles_requeued,
            "replacements": r.replacements,
            "coordinator_bytes_in": r.coordinator_bytes_in,
            "coordinator_bytes_out": r.coordinator_bytes_out,
            "log": r.log,
        })),
    }))
}
