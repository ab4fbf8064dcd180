//! `cargo xtask bench-workers`: how `shepseg segment` scales with worker threads, and where the
//! stitcher becomes the limit.
//!
//! The k-means model is fitted once beforehand (not timed) and passed with `--kmeans-in`, so each
//! run measures tile segmentation and stitching only. The release `shepseg` runs as a child
//! process `--runs` rounds of every worker count in turn (interleaved, so drift in the machine's
//! speed falls on all counts alike). The median run's `--json` report gives the summed
//! segmentation time, the stitcher's own time and the time it waited for tiles, and `wait4` the
//! peak RSS; the speedup is the median over rounds of the first count's wall over this count's in
//! the same round. The table is printed, and written as CSV and as a PNG chart (plotters) of wall
//! time and stitcher wait against workers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::bench_segment::{prepare, run_child};

/// Options of `bench-workers`.
#[derive(clap::Args)]
pub struct BenchWorkersArgs {
    /// Raster to segment (default: the generated 10000x10000 image).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Worker counts to sweep.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    workers: Vec<usize>,
    /// Tile size (default: shepseg's for the mode).
    #[arg(long)]
    tile_size: Option<usize>,
    /// Overlap (with --pyshepseg-compat; default: shepseg's).
    #[arg(long)]
    overlap_size: Option<usize>,
    /// Run pyshepseg's tiled mode (overlapping tiles, stitched) instead of the seamless one.
    #[arg(long)]
    pyshepseg_compat: bool,
    /// Runs per worker count; the median (by wall time) is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Where the CSV and PNG go.
    #[arg(long, default_value = "bench-out/bench-workers")]
    out: PathBuf,
}

struct Row {
    workers: usize,
    wall: f64,
    reading: f64,
    segmentation: f64,
    stitching: f64,
    wait: f64,
    join: f64,
    tiles: f64,
    rss_mib: f64,
    /// Median over rounds of the first worker count's wall over this one's.
    speedup: f64,
}

/// Runs the sweep.
pub fn bench(args: &BenchWorkersArgs) -> anyhow::Result<()> {
    if args.workers.is_empty() {
        bail!("--workers: give at least one worker count");
    }
    let (input, exe) = prepare(args.input.as_ref())?;
    std::fs::create_dir_all("bench-out")?;
    let model = PathBuf::from("bench-out/bench-workers-model.json");
    let out = PathBuf::from("bench-out/bench-workers-out.tif");
    let json = PathBuf::from("bench-out/bench-workers-report.json");
    let mut tile = Vec::new();
    if let Some(t) = args.tile_size {
        tile.extend(["-t".to_string(), t.to_string()]);
    }
    if let Some(l) = args.overlap_size {
        tile.extend(["-l".to_string(), l.to_string()]);
    }
    if args.pyshepseg_compat {
        tile.push("--pyshepseg-compat".to_string());
    }
    eprintln!("fitting the k-means model once ...");
    let (code, _) = run_child(
        Command::new(&exe)
            .arg("segment")
            .arg(&input)
            .arg(&out)
            .args(["-q", "--overwrite", "--kmeans-out"])
            .arg(&model)
            .args(&tile),
    )?;
    if code != 0 {
        bail!("shepseg exited with {code}");
    }
    // Rounds outer, worker counts inner: on a shared machine the speed drifts over minutes, and
    // interleaving puts every worker count under the same drift.
    let run_once = |w: usize| -> anyhow::Result<Row> {
        let t = Instant::now();
        let (code, kib) = run_child(
            Command::new(&exe)
                .arg("segment")
                .arg(&input)
                .arg(&out)
                .args(["-q", "--overwrite", "-w", &w.to_string(), "--kmeans-in"])
                .arg(&model)
                .arg("--json")
                .arg(&json)
                .args(&tile),
        )?;
        let wall = t.elapsed().as_secs_f64();
        if code != 0 {
            bail!("shepseg exited with {code}");
        }
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
        let total = |k: &str| report["timings_s"][k]["total"].as_f64().unwrap_or(f64::NAN);
        Ok(Row {
            workers: w,
            wall,
            reading: total("reading"),
            segmentation: total("segmentation"),
            stitching: total("stitching"),
            tiles: report["num_tiles"].as_f64().unwrap_or(f64::NAN),
            wait: total("stitch_wait"),
            join: report["timings_s"]["join"].as_f64().unwrap_or(0.0),
            rss_mib: kib as f64 / 1024.0,
            speedup: f64::NAN,
        })
    };
    let rounds = args.runs.max(1);
    let mut runs: Vec<Vec<Row>> = args.workers.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (i, &w) in args.workers.iter().enumerate() {
            let row = run_once(w)?;
            eprintln!("round {}: {w} workers: {:.2} s", round + 1, row.wall);
            runs[i].push(row);
        }
    }
    // Speedup: the median over rounds of the first worker count's wall over this one's, in the
    // same round (a ratio of neighbours in time, so drift cancels).
    let first: Vec<f64> = runs[0].iter().map(|r| r.wall).collect();
    let mut rows = Vec::new();
    for mut mine in runs {
        let mut ratios: Vec<f64> = first.iter().zip(&mine).map(|(a, r)| a / r.wall).collect();
        ratios.sort_by(f64::total_cmp);
        mine.sort_by(|a, b| a.wall.total_cmp(&b.wall));
        let mut median = mine.swap_remove(mine.len() / 2);
        median.speedup = ratios[ratios.len() / 2];
        rows.push(median);
    }
    let mut table = String::from(
        "workers,wall_s,speedup,segmentation_s,stitch_s,stitch_wait_s,join_s,peak_rss_mib\n",
    );
    println!(
        "\n{:>7} {:>8} {:>8} {:>15} {:>9} {:>14} {:>7} {:>13}",
        "workers",
        "wall s",
        "speedup",
        "segmentation s",
        "stitch s",
        "stitch-wait s",
        "join s",
        "peak RSS MiB"
    );
    for r in &rows {
        let v = [
            r.wall,
            r.speedup,
            r.segmentation,
            r.stitching,
            r.wait,
            r.join,
        ];
        println!(
            "{:>7} {:>8.2} {:>8.2} {:>15.2} {:>9.2} {:>14.2} {:>7.2} {:>13.0}",
            r.workers, v[0], v[1], v[2], v[3], v[4], v[5], r.rss_mib
        );
        let fields: Vec<String> = v.iter().map(|x| format!("{x:.3}")).collect();
        table += &format!("{},{},{:.0}\n", r.workers, fields.join(","), r.rss_mib);
    }
    // Where the stitcher would become the limit, from the one-worker run's per-tile costs: with
    // W workers on W free cores a tile arrives every (read + segment) / W seconds and keeps the
    // stitcher busy for its serial time.
    if let Some(one) = rows.first() {
        let worker = (one.reading + one.segmentation) / one.tiles;
        let serial = one.stitching / one.tiles;
        println!(
            "\nper tile: a worker reads and segments in {worker:.3} s, the stitcher's serial part takes {serial:.3} s"
        );
        println!(
            "projection: the stitcher stays off the critical path up to about {:.0} workers on as many free cores",
            worker / serial
        );
        for r in &rows {
            println!(
                "{} workers: the stitcher's serial time is {:.1}% of the wall",
                r.workers,
                100.0 * r.stitching / r.wall
            );
        }
    }
    let csv = args.out.with_extension("csv");
    std::fs::write(&csv, table).with_context(|| csv.display().to_string())?;
    println!("\nwrote {}", csv.display());
    let png = args.out.with_extension("png");
    match chart(&rows, &png) {
        Ok(()) => println!("wrote {}", png.display()),
        Err(e) => eprintln!("no chart: {e}"),
    }
    Ok(())
}

/// Wall time and stitcher wait against workers, as a PNG.
fn chart(rows: &[Row], path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    let bytes = std::fs::read(font)
        .with_context(|| format!("{font} (Debian package fonts-dejavu-core)"))?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(bytes.into_boxed_slice()),
    )
    .map_err(|_| anyhow::anyhow!("{font}: not a usable font"))?;
    let max_w = rows.iter().map(|r| r.workers).max().unwrap_or(1) as f64;
    let max_t = rows.iter().map(|r| r.wall).fold(0.0, f64::max) * 1.1;
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut c = ChartBuilder::on(&root)
        .caption(
            "shepseg segment: wall time and stitcher wait vs workers",
            ("sans-serif", 22),
        )
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5..max_w + 0.5, 0.0..max_t)?;
    c.configure_mesh()
        .x_desc("worker threads")
        .y_desc("seconds")
        .label_style(("sans-serif", 15))
        .draw()?;
    let series = |f: fn(&Row) -> f64| {
        rows.iter()
            .map(|r| (r.workers as f64, f(r)))
            .collect::<Vec<_>>()
    };
    for (name, color, pts) in [
        ("wall time", BLUE, series(|r| r.wall)),
        ("stitcher waited", RED, series(|r| r.wait)),
        ("stitcher busy", GREEN, series(|r| r.stitching)),
    ] {
        c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        c.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    root.present()?;
    Ok(())
}
