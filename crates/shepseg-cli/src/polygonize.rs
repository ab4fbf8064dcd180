//! `shepseg polygonize`, and the `--vector` options `shepseg segment` shares.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;
use shepseg_polygonize::{polygonize, PolygonizeError, PolygonizeJob, PolygonizeReport};

/// Options of `shepseg polygonize`.
#[derive(Args, Debug)]
pub struct PolygonizeArgs {
    /// The segmentation (band 1: segment IDs; 0 and nodata are null).
    pub segfile: PathBuf,
    /// The vector output (GeoPackage, FlatGeobuf, or any OGR format that can create files).
    pub output: PathBuf,
    /// OGR driver (default: chosen by OUTPUT's extension).
    #[arg(short = 'f', long = "format")]
    pub format: Option<String>,
    /// Attribute-table columns to copy, comma separated (default: all; "" for none).
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// Threads reading and tracing (default: all cores).
    #[arg(short = 'w', long, allow_negative_numbers = true)]
    pub workers: Option<usize>,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Simplify the polygons to this tolerance in map units (Douglas-Peucker on each edge
    /// that two segments share, once, so that they still share it and stay valid).
    #[arg(long, value_name = "TOLERANCE", allow_negative_numbers = true)]
    pub simplify: Option<f64>,
    /// No progress bar or report.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// What `shepseg segment --vector` passes on.
pub struct VectorRequest<'a> {
    pub segfile: &'a Path,
    pub output: &'a Path,
    pub format: Option<&'a str>,
    pub columns: Option<Vec<String>>,
    pub workers: usize,
    pub overwrite: bool,
    pub simplify: Option<f64>,
    pub quiet: bool,
}

/// The number of threads to use for `requested` (all cores when not given).
pub fn workers(requested: Option<usize>) -> anyhow::Result<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match requested {
        None => Ok(cores),
        Some(0) => anyhow::bail!("--workers must be at least 1"),
        Some(w) if w > 4096 => anyhow::bail!("--workers {w}: at most 4096"),
        Some(w) => Ok(w),
    }
}

/// Runs `shepseg polygonize`.
pub fn run(args: &PolygonizeArgs) -> anyhow::Result<()> {
    let r = VectorRequest {
        segfile: &args.segfile,
        output: &args.output,
        format: args.format.as_deref(),
        columns: args.columns.clone(),
        workers: workers(args.workers)?,
        overwrite: args.overwrite,
        simplify: args.simplify,
        quiet: args.quiet,
    };
    run_request(&r)
}

/// Polygonizes as `r` asks, with a progress bar and a report unless quiet.
pub fn run_request(r: &VectorRequest<'_>) -> anyhow::Result<()> {
    if let Some(dir) = shepseg_polygonize::partial_dir_for(r.output) {
        crate::interrupt::abandon_on_interrupt(&dir);
    }
    let job = PolygonizeJob {
        segfile: r.segfile.to_path_buf(),
        output: r.output.to_path_buf(),
        driver: r.format.map(str::to_string),
        columns: r.columns.clone(),
        workers: r.workers,
        overwrite: r.overwrite,
        strip_rows: 0,
        simplify: r.simplify,
    };
    let mut progress =
        crate::progress::progress_bar(!r.quiet && std::io::stderr().is_terminal(), "strips");
    let report = polygonize(&job, Some(&mut progress)).map_err(|e| flag_context(e, r))?;
    if !r.quiet {
        eprintln!("{}", summary(&report, r.output));
    }
    Ok(())
}

/// A library error with the option that governs it, where one does.
fn flag_context(e: PolygonizeError, r: &VectorRequest<'_>) -> anyhow::Error {
    match &e {
        PolygonizeError::Exists(p) => {
            anyhow::anyhow!(
                "{}: already exists (use --overwrite to replace it)",
                p.display()
            )
        }
        PolygonizeError::Driver { .. } if r.format.is_some() => {
            anyhow::Error::new(e).context("--format")
        }
        PolygonizeError::Column { .. } => anyhow::Error::new(e).context("--columns"),
        PolygonizeError::Tolerance(_) => anyhow::Error::new(e).context("--simplify"),
        _ => anyhow::Error::new(e),
    }
}

/// The closing report: counts, then one line per phase.
fn summary(r: &PolygonizeReport, output: &Path) -> String {
    let mut s = format!(
        "{} features ({} multipolygons, {} vertices) written to {}\n",
        r.features,
        r.multipolygons,
        r.vertices,
        output.display()
    );
    s.push_str("phase                total s\n");
    let mut line = |name: &str, d: std::time::Duration| {
        s.push_str(&format!("{name:<20} {:>7.3}\n", d.as_secs_f64()));
    };
    if r.counted {
        line("counting pixels", r.counting);
    }
    line("reading", r.reading);
    line("tracing", r.tracing);
    line("assembling", r.assembling);
    line("writing", r.writing);
    line("total (wall)", r.total);
    s.pop();
    s
}

/// Checks that `--vector`'s options make sense before a long segmentation starts.
pub fn check_vector_output(
    output: &Path,
    format: Option<&str>,
    overwrite: bool,
) -> anyhow::Result<()> {
    shepseg_polygonize::write::driver_for(output, format).map_err(|e| {
        let flag = if format.is_some() {
            "--vector-format"
        } else {
            "--vector"
        };
        anyhow::Error::new(e).context(flag)
    })?;
    if !overwrite && shepseg_tiling::vsi::exists(output) {
        anyhow::bail!(
            "{}: already exists (use --overwrite to replace it)",
            output.display()
        );
    }
    Ok(())
}
