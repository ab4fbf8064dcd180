//! `cargo xtask bench-polygonize`: `shepseg polygonize` beside `gdal_polygonize.py` (GDAL's
//! single-threaded polygonizer) on a segmentation of the 10000x10000 benchmark image, both
//! writing FlatGeobuf with its spatial index, and beside `ogr2ogr` copying GDAL's features
//! into a new FlatGeobuf (the cost of writing them at all). Runs alternate; medians, peak RSS
//! and ratios are printed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::bench_segment::{prepare, run_timed};

/// Options of `bench-polygonize`.
#[derive(clap::Args)]
pub struct BenchPolygonizeArgs {
    /// Image to segment (default: the generated 10000x10000 image).
    #[arg(long)]
    input: Option<PathBuf>,
    /// A segmentation to polygonize instead of segmenting the image.
    #[arg(long)]
    segfile: Option<PathBuf>,
    /// Threads for `shepseg polygonize`.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Runs of shepseg and ogr2ogr; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Runs of gdal_polygonize.py (about a minute each on the default image).
    #[arg(long, default_value_t = 1)]
    gdal_runs: usize,
}

/// The median (NaN for no runs: `--gdal-runs 0` reuses an earlier GDAL output).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn remove(p: &Path) {
    let _ = std::fs::remove_file(p);
}

/// Runs the benchmark.
pub fn bench(args: &BenchPolygonizeArgs) -> anyhow::Result<()> {
    let (input, exe) = prepare(args.input.as_ref())?;
    let seg = match &args.segfile {
        Some(s) => s.clone(),
        None => {
            let seg = PathBuf::from("bench-out/bench-polygonize-seg.tif");
            if !seg.exists() {
                eprintln!("segmenting {} into {} ...", input.display(), seg.display());
                run_timed(
                    Command::new(&exe)
                        .arg("segment")
                        .arg(&input)
                        .arg(&seg)
                        .args(["-q", "--overwrite"]),
                    "shepseg segment",
                )?;
            }
            seg
        }
    };
    let segments = {
        let ds = gdal::Dataset::open(&seg).with_context(|| seg.display().to_string())?;
        let band = ds.rasterband(1)?;
        shepseg_tiling::rat::read_column(&band, shepseg_tiling::rat::HISTOGRAM)
            .map_or(0, |h| h.iter().skip(1).filter(|&&c| c > 0.0).count())
    };
    let gdal_out = PathBuf::from("bench-out/bench-polygonize-gdal.fgb");
    let ours = PathBuf::from("bench-out/bench-polygonize-shepseg.fgb");
    let copy = PathBuf::from("bench-out/bench-polygonize-copy.fgb");
    let (mut g_wall, mut g_rss) = (Vec::new(), Vec::new());
    let (mut s_wall, mut s_rss) = (Vec::new(), Vec::new());
    let (mut c_wall, mut c_rss) = (Vec::new(), Vec::new());
    for run in 0..args.runs.max(args.gdal_runs).max(1) {
        if run < args.gdal_runs || !gdal_out.exists() {
            remove(&gdal_out);
            let (w, k) = run_timed(
                Command::new("gdal_polygonize.py")
                    .args(["-q", "-f", "FlatGeobuf"])
                    .arg(&seg)
                    .arg(&gdal_out),
                "gdal_polygonize.py",
            )?;
            g_wall.push(w);
            g_rss.push(k as f64);
            eprintln!("gdal_polygonize.py: {w:.2} s");
        }
        if run < args.runs {
            remove(&ours);
            let (w, k) = run_timed(
                Command::new(&exe)
                    .arg("polygonize")
                    .arg(&seg)
                    .arg(&ours)
                    .args(["-q", "-w", &args.workers.to_string()]),
                "shepseg polygonize",
            )?;
            s_wall.push(w);
            s_rss.push(k as f64);
            eprintln!("shepseg polygonize -w {}: {w:.2} s", args.workers);
            remove(&copy);
            let (w, k) = run_timed(
                Command::new("ogr2ogr")
                    .args(["-f", "FlatGeobuf"])
                    .arg(&copy)
                    .arg(&gdal_out),
                "ogr2ogr",
            )?;
            c_wall.push(w);
            c_rss.push(k as f64);
            eprintln!("ogr2ogr copy: {w:.2} s");
        }
    }
    let count = |p: &Path| -> anyhow::Result<u64> {
        let ds = gdal::Dataset::open(p)?;
        let layer = ds.layer(0)?;
        use gdal::vector::LayerAccess;
        Ok(layer.feature_count())
    };
    let (gf, sf) = (count(&gdal_out)?, count(&ours)?);
    if sf != segments as u64 {
        bail!("shepseg wrote {sf} features for {segments} segments");
    }
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len()) as f64 / 1e6;
    let (g, s, c) = (
        median(&mut g_wall),
        median(&mut s_wall),
        median(&mut c_wall),
    );
    let mib = |v: &mut Vec<f64>| median(v) / 1024.0;
    println!(
        "\npolygonize {} ({segments} segments) to FlatGeobuf with its spatial index",
        seg.display()
    );
    println!(
        "{:<34} {:>8} {:>9} {:>12} {:>9}",
        "", "wall s", "features", "peak RSS MiB", "file MB"
    );
    println!(
        "{:<34} {g:>8.2} {gf:>9} {:>12.0} {:>9.0}",
        format!("gdal_polygonize.py ({} runs)", g_wall.len()),
        mib(&mut g_rss),
        size(&gdal_out)
    );
    println!(
        "{:<34} {s:>8.2} {sf:>9} {:>12.0} {:>9.0}",
        format!(
            "shepseg polygonize -w {} ({} runs)",
            args.workers,
            s_wall.len()
        ),
        mib(&mut s_rss),
        size(&ours)
    );
    println!(
        "{:<34} {c:>8.2} {gf:>9} {:>12.0} {:>9.0}",
        format!("ogr2ogr copy of GDAL's ({} runs)", c_wall.len()),
        mib(&mut c_rss),
        size(&copy)
    );
    println!(
        "shepseg is {:.1}x gdal_polygonize.py, and takes {:.2}x the ogr2ogr copy",
        g / s,
        s / c
    );
    Ok(())
}
