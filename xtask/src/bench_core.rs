//! `cargo xtask bench-core` and `cargo xtask demo`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use ndarray::Array3;
use shepseg_core::{segment, PhaseTimings, SegmentParams};
use shepseg_tiling::{BandStack, Raster};

use crate::synth::landcover;

/// Options of `bench-core`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Side of the generated image, in pixels.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Runs per case; medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Folder of the reference fixtures (skipped if absent).
    #[arg(long, default_value = "testdata/reference")]
    fixtures: PathBuf,
    /// Run only the cases whose name contains this text (for profiling one case).
    #[arg(long)]
    only: Option<String>,
}

impl BenchArgs {
    /// Whether the case called `name` is to be run.
    fn wants(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|o| name.contains(o))
    }
}

/// Options of `demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Side of the generated image, in pixels.
    #[arg(long, default_value_t = 2048)]
    size: usize,
    /// Where to write the segment image.
    #[arg(long, default_value = "demo-out/segments.tif")]
    output: PathBuf,
    /// Segment this GeoTIFF (all bands, its nodata as null) instead of a generated image.
    #[arg(long)]
    input: Option<PathBuf>,
    /// pyshepseg's fixed (diagonal) k-means initialisation instead of k-means++.
    #[arg(long)]
    fixed_init: bool,
}

/// Options of `synth`.
#[derive(clap::Args)]
pub struct SynthArgs {
    /// Side of the image, in pixels.
    #[arg(long, default_value_t = 4096)]
    pub size: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output GeoTIFF.
    #[arg(long)]
    pub output: PathBuf,
}

/// Writes the synthetic image (4 bands, UInt16, tiled, deflate).
pub fn write_synth(args: &SynthArgs) -> anyhow::Result<()> {
    use gdal::raster::Buffer;
    use gdal::DriverManager;
    let img = landcover(args.size, args.seed);
    let (bands, rows, cols) = img.dim();
    let tmp = args.output.with_extension("tif.partial");
    let driver = DriverManager::get_driver_by_name("GTiff")?;
    {
        let ds = driver.create_with_band_type_with_options::<u16, _>(
            &tmp,
            cols,
            rows,
            bands,
            &gdal::cpl::CslStringList::from_iter([
                "COMPRESS=DEFLATE",
                "TILED=YES",
                "BIGTIFF=IF_SAFER",
            ]),
        )?;
        for b in 0..bands {
            let mut band = ds.rasterband(b + 1)?;
            let data: Vec<u16> = img
                .index_axis(ndarray::Axis(0), b)
                .iter()
                .copied()
                .collect();
            let mut buf = Buffer::new((cols, rows), data);
            band.write((0, 0), (cols, rows), &mut buf)?;
        }
    }
    std::fs::rename(&tmp, &args.output)
        .with_context(|| format!("renaming to {}", args.output.display()))?;
    println!("wrote {}", args.output.display());
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Row {
    name: String,
    pixels: usize,
    phases: [Duration; 6],
    segments: u32,
}

fn run_case<T: shepseg_core::Pixel>(
    name: &str,
    img: &Array3<T>,
    null: Option<T>,
    params: &SegmentParams,
    runs: usize,
) -> anyhow::Result<Row> {
    let mut times: Vec<PhaseTimings> = Vec::new();
    let mut segments = 0;
    for _ in 0..runs.max(1) {
        let r = segment(&img.view(), null, params, None)?;
        segments = r.num_segments;
        times.push(r.timings);
    }
    let pick = |f: fn(&PhaseTimings) -> Duration| median(times.iter().map(f).collect());
    let (_, rows, cols) = img.dim();
    Ok(Row {
        name: name.to_string(),
        pixels: rows * cols,
        phases: [
            pick(|t| t.fit),
            pick(|t| t.predict),
            pick(|t| t.clump),
            pick(|t| t.single_pixel),
            pick(|t| t.small_segment),
            pick(|t| t.total()),
        ],
        segments,
    })
}

fn print_table(rows: &[Row], runs: usize) {
    println!(
        "\nIn-memory segmentation, one thread, Mpixel/s (median of {runs} runs; higher is better)"
    );
    println!(
        "k-means vector instructions: {} ({} caps them)\n",
        shepseg_core::simd_in_use(),
        shepseg_core::MAX_SIMD_ENV
    );
    println!(
        "{:<36} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "case",
        "Mpix",
        "fit",
        "predict",
        "clump",
        "single",
        "small",
        "TOTAL",
        "total s",
        "segments"
    );
    for r in rows {
        let mp = r.pixels as f64 / 1e6;
        let rate = |d: Duration| mp / d.as_secs_f64().max(1e-9);
        println!(
            "{:<36} {:>7.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.3} {:>9}",
            r.name,
            mp,
            rate(r.phases[0]),
            rate(r.phases[1]),
            rate(r.phases[2]),
            rate(r.phases[3]),
            rate(r.phases[4]),
            rate(r.phases[5]),
            r.phases[5].as_secs_f64(),
            r.segments
        );
    }
}

fn fixture(path: &std::path::Path) -> anyhow::Result<(BandStack, Option<f64>)> {
    let r = Raster::open(path)?;
    let bands = r.resolve_bands(&[])?;
    let null = r.null_value(&bands)?;
    Ok((r.read_stack(&bands, r.full_window())?, null))
}

/// Runs the benchmark and prints the table.
pub fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    eprintln!(
        "generating a {0}x{0} 4-band UInt16 land-cover-like image ...",
        args.size
    );
    let img = landcover(args.size, 1);
    let mut rows = Vec::new();
    let name = format!("synthetic {} (fixed init)", args.size);
    let fixed = SegmentParams {
        fixed_kmeans_init: true,
        ..Default::default()
    };
    if args.wants(&name) {
        rows.push(run_case(&name, &img, None, &fixed, args.runs)?);
    }
    let name = format!("synthetic {} (k-means++, 5 runs)", args.size);
    if args.wants(&name) {
        rows.push(run_case(
            &name,
            &img,
            None,
            &SegmentParams::default(),
            args.runs,
        )?);
    }
    drop(img);
    for (label, file) in [
        ("rgbn (fixed init)", "rgbn/rgbn.tif"),
        (
            "synth8000 (fixed init)",
            "synth8000/synthetic_runtests_8000.tif",
        ),
    ] {
        let path = args.fixtures.join(file);
        if !args.wants(label) {
            continue;
        }
        if !path.exists() {
            eprintln!("skipping {label}: {} not found", path.display());
            continue;
        }
        let (stack, null) = fixture(&path)?;
        let row = match &stack {
            BandStack::U8(a) => run_case(label, a, null.map(|v| v as u8), &fixed, args.runs)?,
            BandStack::U16(a) => run_case(label, a, null.map(|v| v as u16), &fixed, args.runs)?,
            _ => anyhow::bail!("{}: unexpected pixel type", path.display()),
        };
        rows.push(row);
    }
    print_table(&rows, args.runs);
    Ok(())
}

/// Segments a generated image (or `--input`) and writes the result.
pub fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    let params = SegmentParams {
        fixed_kmeans_init: args.fixed_init,
        ..Default::default()
    };
    let t = Instant::now();
    let (res, pixels) = match &args.input {
        Some(path) => {
            let (stack, null) = fixture(path)?;
            let (_, rows, cols) = stack.dim();
            (stack.segment(null, &params, None)?, rows * cols)
        }
        None => {
            eprintln!(
                "generating a {0}x{0} 4-band UInt16 land-cover-like image ...",
                args.size
            );
            let img = landcover(args.size, 1);
            let t = Instant::now();
            let res = segment(&img.view(), None, &params, None)?;
            eprintln!("segmented in {:.2} s", t.elapsed().as_secs_f64());
            (res, args.size * args.size)
        }
    };
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{} segments from {:.1} Mpixel in {secs:.2} s; maxSpectralDiff {:.2}; {} single pixels and {} small segments eliminated",
        res.num_segments,
        pixels as f64 / 1e6,
        res.max_spectral_diff,
        res.single_pixels_eliminated,
        res.small_segments_eliminated
    );
    if let Some(dir) = args.output.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_segments(&args.output, &res.segimg)?;
    println!("wrote {}", args.output.display());
    Ok(())
}

/// Writes a segmentation as shepseg's output (attribute table, statistics, overviews) through
/// the stitcher, as one tile.
fn write_segments(path: &std::path::Path, seg: &ndarray::Array2<u32>) -> anyhow::Result<()> {
    use shepseg_stitch::{GdalOutput, OutputGeometry, OutputOptions, Stitcher, TileSink};
    let (rows, cols) = seg.dim();
    let geometry = OutputGeometry {
        cols,
        rows,
        projection: String::new(),
        geo_transform: None,
    };
    let options = OutputOptions {
        overwrite: true,
        ..Default::default()
    };
    let mut out = GdalOutput::create(path, &geometry, &options)?;
    let grid = shepseg_tiling::TileGrid::new(cols, rows, cols.max(rows), 0)?;
    let mut stitcher = Stitcher::new(grid, false);
    stitcher.push(seg.view(), &mut out)?;
    out.finish(&stitcher.finish()?)?;
    Ok(())
}
