//! `cargo xtask bench-stats`: per-segment statistics of 4 bands x (mean, stddev, min, max,
//! median, percentile:25) in one pass over a segmentation of the 10000x10000 benchmark image,
//! for each worker count, median of several runs; and `cargo xtask bench-rat`: writing and
//! reading a 1-million-row attribute table in GTiff (`.aux.xml` sidecar) and HFA.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::bench_segment::{prepare, run_child};

/// Options of `bench-stats`.
#[derive(clap::Args)]
pub struct BenchStatsArgs {
    /// Image (default: the generated 10000x10000 image).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Worker counts to time.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    workers: Vec<usize>,
    /// Runs per worker count; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Formats of the segmentation to time (GTiff keeps the table in an XML sidecar, HFA in
    /// the file).
    #[arg(long, value_delimiter = ',', default_value = "GTiff,HFA")]
    formats: Vec<String>,
}

const STATS: [&str; 6] = ["mean", "stddev", "min", "max", "median", "percentile:25"];

/// Copies a raster and its sidecar.
fn copy_with_sidecar(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)?;
    let (fa, ta) = (
        PathBuf::from(format!("{}.aux.xml", from.display())),
        PathBuf::from(format!("{}.aux.xml", to.display())),
    );
    let _ = std::fs::remove_file(&ta);
    if fa.exists() {
        std::fs::copy(fa, ta)?;
    }
    Ok(())
}

/// Runs the benchmark.
pub fn bench(args: &BenchStatsArgs) -> anyhow::Result<()> {
    let (input, exe) = prepare(args.input.as_ref())?;
    let (pixels, bands) = {
        let ds = gdal::Dataset::open(&input).with_context(|| input.display().to_string())?;
        let (c, r) = ds.raster_size();
        (c * r, ds.raster_count())
    };
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let seg = PathBuf::from(format!("bench-out/bench-stats-{stem}-seg.tif"));
    if !seg.exists() {
        eprintln!("segmenting {} into {} ...", input.display(), seg.display());
        let (code, _) = run_child(
            Command::new(&exe)
                .arg("segment")
                .arg(&input)
                .arg(&seg)
                .args(["-q", "--overwrite"]),
        )?;
        if code != 0 {
            bail!("shepseg segment exited with {code}");
        }
    }
    let segments = {
        let ds = gdal::Dataset::open(&seg)?;
        let band = ds.rasterband(1)?;
        shepseg_tiling::rat::read_column(&band, shepseg_tiling::rat::HISTOGRAM)
            .map_or(0, |h| h.len() - 1)
    };
    let band_list: Vec<String> = (1..=bands.min(4)).map(|b| b.to_string()).collect();
    println!(
        "\nshepseg stats: {} bands x {} stats, {} ({:.0} Mpixel, {} segments), {} runs each",
        band_list.len(),
        STATS.len(),
        input.display(),
        pixels as f64 / 1e6,
        segments,
        args.runs
    );
    println!(
        "{:>7} {:>8} {:>10} {:>10} {:>10} {:>12}",
        "format", "workers", "wall s", "Mpixel/s", "speedup", "peak RSS MiB"
    );
    for format in &args.formats {
        let ext = if format.eq_ignore_ascii_case("HFA") {
            "img"
        } else {
            "tif"
        };
        let source = seg.with_extension(ext);
        if !source.exists() {
            let st = Command::new("gdal_translate")
                .args(["-q", "-of", format])
                .args([&seg, &source])
                .status()
                .context("gdal_translate (gdal-bin)")?;
            if !st.success() {
                bail!("gdal_translate to {format} failed");
            }
        }
        let run_seg = PathBuf::from(format!("bench-out/bench-stats-run.{ext}"));
        let mut base = None;
        for &w in &args.workers {
            let mut walls = Vec::new();
            let mut rss = Vec::new();
            for _ in 0..args.runs.max(1) {
                copy_with_sidecar(&source, &run_seg)?;
                let mut cmd = Command::new(&exe);
                cmd.arg("stats").arg(&run_seg).arg(&input).args([
                    "-q",
                    "-w",
                    &w.to_string(),
                    "-b",
                    &band_list.join(","),
                ]);
                for s in STATS {
                    cmd.args(["--stat", s]);
                }
                let t = Instant::now();
                let (code, kib) = run_child(&mut cmd)?;
                if code != 0 {
                    bail!("shepseg stats exited with {code}");
                }
                walls.push(t.elapsed().as_secs_f64());
                rss.push(kib);
            }
            walls.sort_by(f64::total_cmp);
            rss.sort();
            let wall = walls[walls.len() / 2];
            let b = *base.get_or_insert(wall);
            println!(
                "{format:>7} {w:>8} {wall:>10.2} {:>10.1} {:>10.2} {:>12.0}",
                pixels as f64 / 1e6 / wall,
                b / wall,
                rss[rss.len() / 2] as f64 / 1024.0
            );
        }
    }
    Ok(())
}

/// Options of `bench-rat`.
#[derive(clap::Args)]
pub struct BenchRatArgs {
    /// Rows of the table.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Real columns besides the Histogram.
    #[arg(long, default_value_t = 8)]
    columns: usize,
}

/// Times writing and reading a large attribute table in GTiff and HFA.
pub fn bench_rat(args: &BenchRatArgs) -> anyhow::Result<()> {
    use shepseg_tiling::rat::{ColumnType, ColumnUsage, Rat};
    std::fs::create_dir_all("bench-out")?;
    println!(
        "\nattribute table of {} rows x {} columns",
        args.rows,
        args.columns + 1
    );
    println!(
        "{:>6} {:>10} {:>10} {:>14}",
        "format", "write s", "read s", "table bytes"
    );
    for (driver, ext) in [("GTiff", "tif"), ("HFA", "img")] {
        let path = PathBuf::from(format!("bench-out/bench-rat.{ext}"));
        let aux = PathBuf::from(format!("{}.aux.xml", path.display()));
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&aux);
        let t = Instant::now();
        {
            let d = gdal::DriverManager::get_driver_by_name(driver)?;
            let ds = d.create_with_band_type::<u32, _>(&path, 1000, 1000, 1)?;
            let band = ds.rasterband(1)?;
            let mut rat = Rat::new(args.rows)?;
            let hist: Vec<u64> = (0..args.rows).map(|i| (i % 997) as u64).collect();
            rat.add_histogram(&hist)?;
            for c in 0..args.columns {
                let v: Vec<f64> = (0..args.rows)
                    .map(|i| (i as f64 * 0.37 + c as f64).sin() * 1000.0)
                    .collect();
                rat.add_column(
                    &format!("col{c}"),
                    ColumnType::Real,
                    ColumnUsage::Generic,
                    &v,
                )?;
            }
            rat.attach(&band)?;
            ds.close()?;
        }
        let write = t.elapsed().as_secs_f64();
        let t = Instant::now();
        {
            let ds = gdal::Dataset::open(&path)?;
            let band = ds.rasterband(1)?;
            for c in 0..args.columns {
                let v = shepseg_tiling::rat::read_column(&band, &format!("col{c}"))
                    .context("column missing")?;
                if v.len() != args.rows {
                    bail!("{driver}: read {} rows", v.len());
                }
            }
        }
        let read = t.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(&path)?.len()
            + std::fs::metadata(&aux).map(|m| m.len()).unwrap_or(0)
            - 1000 * 1000 * 4 * u64::from(driver == "HFA");
        println!("{driver:>6} {write:>10.2} {read:>10.2} {bytes:>14}");
    }
    Ok(())
}
