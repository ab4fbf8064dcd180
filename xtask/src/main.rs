//! Project tasks, run as `cargo xtask <task>`:
//!
//! * `demo`: segments a generated image with `shepseg-core` and writes a GeoTIFF;
//! * `bench-core`: times each phase of the in-memory segmentation (single thread), on a
//!   generated 4096x4096 4-band image and on the reference fixtures;
//! * `synth`: writes the generated benchmark image as a GeoTIFF;
//! * `bench-segment`: times `shepseg segment` end to end, with peak memory;
//! * `bench-fit`: times the whole-raster k-means fit (sample read and 5 k-means++ restarts);
//! * `bench-workers`: sweeps worker counts to show where stitching becomes the limit;
//! * `bench-stats`: per-segment statistics for each worker count;
//! * `bench-rat`: writing and reading a 1-million-row attribute table in GTiff and HFA;
//! * `bench-pyshepseg`: pyshepseg and `shepseg segment` side by side on the same image;
//! * `bench-polygonize`: `shepseg polygonize`, `gdal_polygonize.py` and an `ogr2ogr` copy;
//! * `bench-coordinator`: one coordinator serving simulated workers that replay a real tile's
//!   result, and how many real workers it would keep busy.

mod bench_coordinator;
mod bench_core;
mod bench_polygonize;
mod bench_pyshepseg;
mod bench_python;
mod bench_segment;
mod bench_stats;
mod bench_workers;
mod synth;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "shepseg project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Segment a generated land-cover-like image in memory and write the segments as GeoTIFF.
    Demo(bench_core::DemoArgs),
    /// Benchmark the in-memory segmentation phase by phase.
    BenchCore(bench_core::BenchArgs),
    /// Write the generated land-cover-like benchmark image as a GeoTIFF.
    Synth(bench_core::SynthArgs),
    /// Benchmark `shepseg segment` end to end (wall time, Mpixel/s, peak RSS).
    BenchSegment(bench_segment::BenchSegmentArgs),
    /// Sweep worker counts: wall time, speedup, segmentation, stitch and stitch-wait time, RSS.
    BenchWorkers(bench_workers::BenchWorkersArgs),
    /// Per-segment statistics (4 bands x 6 stats) for each worker count: wall, Mpixel/s, RSS.
    BenchStats(bench_stats::BenchStatsArgs),
    /// Write and read a large attribute table in GTiff and HFA.
    BenchRat(bench_stats::BenchRatArgs),
    /// Time the whole-raster k-means fit (sampling and 5 k-means++ restarts).
    BenchFit(bench_segment::BenchFitArgs),
    /// Run pyshepseg (from a checkout) and `shepseg segment` side by side: wall, peak RSS, ratio.
    BenchPyshepseg(bench_pyshepseg::BenchPyshepsegArgs),
    /// `shepseg polygonize` beside gdal_polygonize.py and an ogr2ogr copy, to FlatGeobuf.
    BenchPolygonize(bench_polygonize::BenchPolygonizeArgs),
    /// Benchmark the in-memory call from Python against the same call from Rust.
    BenchPython(bench_python::BenchPythonArgs),
    /// One coordinator and simulated workers replaying a real tile: tiles/s, CPU per tile,
    /// and the real workers it keeps busy.
    BenchCoordinator(bench_coordinator::BenchCoordinatorArgs),
    /// A simulated worker for bench-coordinator (started by it).
    #[command(hide = true)]
    Replay(bench_coordinator::ReplayArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Demo(a) => bench_core::demo(&a),
        Task::BenchCore(a) => bench_core::bench(&a),
        Task::Synth(a) => bench_core::write_synth(&a),
        Task::BenchSegment(a) => bench_segment::bench(&a),
        Task::BenchWorkers(a) => bench_workers::bench(&a),
        Task::BenchStats(a) => bench_stats::bench(&a),
        Task::BenchRat(a) => bench_stats::bench_rat(&a),
        Task::BenchFit(a) => bench_segment::bench_fit(&a),
        Task::BenchPyshepseg(a) => bench_pyshepseg::bench(&a),
        Task::BenchPolygonize(a) => bench_polygonize::bench(&a),
        Task::BenchPython(a) => bench_python::bench(&a),
        Task::BenchCoordinator(a) => bench_coordinator::bench(&a),
        Task::Replay(a) => bench_coordinator::replay(&a),
    }
}
