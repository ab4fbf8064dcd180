//! Segments a raster tile by tile on local threads, with `shepseg segment`'s defaults.
//!
//! `cargo run --release -p shepseg-pipeline --example tiled_segmentation -- INPUT OUTPUT`

use shepseg_exec_threads::ThreadsExecutor;
use shepseg_pipeline::TiledSegmentation;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        return Err("usage: tiled_segmentation INPUT OUTPUT".into());
    };
    segment(input, output)
}

/// Segments `input` into `output` with the threads executor and the defaults.
pub fn segment(input: &str, output: &str) -> Result<(), Box<dyn std::error::Error>> {
    let report = TiledSegmentation::new(input, output)
        .executor(ThreadsExecutor::default())
        .run()?;
    println!(
        "{} segments in {} tiles",
        report.num_segments, report.num_tiles
    );
    Ok(())
}
