//! `shepseg stats` and `shepseg subset`, and the statistics options `shepseg segment` shares.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use shepseg_stats::colour::colour_from_columns;
use shepseg_stats::subset::{subset, SubsetWindow};
use shepseg_stats::{compute_stats, parse_spatial, Stat, StatsRequest};
use shepseg_stitch::OutputOptions;

/// Which statistics to compute (shared by `stats` and `segment`).
#[derive(Args, Debug, Clone, Default)]
pub struct StatsOptions {
    /// Statistic of each band: mean, stddev, min, max, median, mode, count, percentile:P
    /// (repeatable).
    #[arg(long = "stat")]
    pub stat: Vec<String>,
    /// Spatial statistic: meancoord, edgepixels, variogram:MAXDIST (repeatable).
    #[arg(long = "spatial")]
    pub spatial: Vec<String>,
    /// Band whose values and nodata the spatial statistics use (default: the first stats band).
    #[arg(long, allow_negative_numbers = true)]
    pub spatial_band: Option<usize>,
    /// Value for segments with no valid pixels.
    #[arg(long, default_value_t = -9999.0, allow_negative_numbers = true)]
    pub missing_value: f64,
    /// Write Red/Green/Blue from these three bands' mean columns (needs --stat mean).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub colour_from_bands: Vec<usize>,
}

impl StatsOptions {
    /// The request, or `None` when nothing was asked for.
    pub fn request(
        &self,
        bands: &[usize],
        workers: usize,
        four_connected: bool,
    ) -> anyhow::Result<Option<StatsRequest>> {
        if bands.is_empty() && self.spatial.is_empty() {
            if !self.stat.is_empty() || !self.colour_from_bands.is_empty() {
                bail!("--stat and --colour-from-bands need bands (--stats-bands / --bands)");
            }
            return Ok(None);
        }
        let stats: Vec<Stat> = self
            .stat
            .iter()
            .map(|s| s.parse().with_context(|| format!("--stat {s}")))
            .collect::<Result<_, _>>()?;
        if !bands.is_empty() && stats.is_empty() {
            bail!("--stat: give at least one statistic for the bands");
        }
        if !self.colour_from_bands.is_empty() {
            if self.colour_from_bands.len() != 3 {
                bail!("--colour-from-bands: give three bands R,G,B");
            }
            if !stats.contains(&Stat::Mean) {
                bail!("--colour-from-bands needs --stat mean");
            }
            for b in &self.colour_from_bands {
                if !bands.contains(b) {
                    bail!("--colour-from-bands: band {b} is not among the statistics bands");
                }
            }
        }
        let spatial_band = self.spatial_band.or(bands.first().copied()).unwrap_or(1);
        let spatial = self
            .spatial
            .iter()
            .map(|s| {
                parse_spatial(s, spatial_band, four_connected)
                    .with_context(|| format!("--spatial {s}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(StatsRequest {
            bands: bands.to_vec(),
            stats,
            spatial,
            spatial_band: Some(spatial_band),
            missing_value: self.missing_value,
            workers,
            strip_rows: 0,
            column_names: Vec::new(),
            cancel: None,
        }))
    }

    /// The bands of `--colour-from-bands`, if given (checked by [`StatsOptions::request`]).
    pub fn colour_bands(&self) -> Option<[usize; 3]> {
        <[usize; 3]>::try_from(self.colour_from_bands.as_slice()).ok()
    }

    /// Checks the options before any work is done (a typo should not cost a segmentation).
    pub fn validate(&self, bands: &[usize]) -> anyhow::Result<()> {
        self.request(bands, 1, true).map(|_| ())
    }

    /// Computes the statistics (and colours) into `segfile`; prints a line unless quiet.
    pub fn run(
        &self,
        segfile: &Path,
        image: &Path,
        bands: &[usize],
        workers: usize,
        four_connected: bool,
        quiet: bool,
    ) -> anyhow::Result<()> {
        let Some(req) = self.request(bands, workers, four_connected)? else {
            return Ok(());
        };
        let t = Instant::now();
        // A segmentation on S3 is worked on in a local copy and its changes uploaded.
        let report = shepseg_stats::remote::on_local_copy(segfile, |seg| {
            let report = compute_stats(seg, image, &req)?;
            if !self.colour_from_bands.is_empty() {
                let names: Vec<String> = self
                    .colour_from_bands
                    .iter()
                    .map(|&b| Stat::Mean.column_name(b))
                    .collect();
                colour_from_columns(seg, [&names[0], &names[1], &names[2]])?;
            }
            Ok(report)
        })?;
        if !quiet {
            let secs = t.elapsed().as_secs_f64();
            eprintln!(
                "statistics: {} columns for {} segments in {:.2} s ({:.1} Mpixel/s; pass {:.2} s, writing {:.2} s{})",
                report.columns.len(),
                report.rows.saturating_sub(1),
                secs,
                report.pixels as f64 / secs / 1e6,
                report.pass_time.as_secs_f64(),
                report.write_time.as_secs_f64(),
                if report.histogram_computed {
                    format!(", Histogram computed in {:.2} s", report.histogram_time.as_secs_f64())
                } else {
                    String::new()
                }
            );
        }
        Ok(())
    }
}

/// Options of `shepseg stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The segmentation (its attribute table receives the columns).
    pub segfile: PathBuf,
    /// The image whose bands are summarised per segment.
    pub image: PathBuf,
    /// Bands of IMAGE, from 1, comma separated.
    #[arg(
        short = 'b',
        long,
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub bands: Vec<usize>,
    #[command(flatten)]
    pub stats: StatsOptions,
    /// Reader threads (default: the number of cores).
    #[arg(short = 'w', long, allow_negative_numbers = true)]
    pub workers: Option<usize>,
    /// 8-way neighbours for edgepixels (default 4-way).
    #[arg(long)]
    pub eight_way: bool,
    /// No summary line.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Runs `shepseg stats`.
pub fn run_stats(args: &StatsArgs) -> anyhow::Result<()> {
    let workers = workers(args.workers)?;
    // Each block is read once: a small cache keeps memory to the strips in flight.
    if std::env::var_os("GDAL_CACHEMAX").is_none() {
        gdal::config::set_config_option("GDAL_CACHEMAX", "256")?;
    }
    if args.bands.is_empty() && args.stats.spatial.is_empty() {
        bail!("--bands: give the bands to summarise (or --spatial)");
    }
    args.stats.run(
        &args.segfile,
        &args.image,
        &args.bands,
        workers,
        !args.eight_way,
        args.quiet,
    )
}

/// The worker count, defaulting to the number of cores.
pub fn workers(w: Option<usize>) -> anyhow::Result<usize> {
    match w {
        Some(0) => bail!("--workers must be at least 1"),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// Options of `shepseg subset`.
#[derive(Args, Debug)]
pub struct SubsetArgs {
    /// The segmentation to cut from.
    pub segfile: PathBuf,
    /// The new segmentation.
    pub output: PathBuf,
    /// Pixel window: XOFF YOFF XSIZE YSIZE.
    #[arg(long, num_args = 4, value_names = ["X", "Y", "W", "H"], conflicts_with_all = ["projwin", "mask"], allow_negative_numbers = true)]
    pub srcwin: Option<Vec<usize>>,
    /// Map window: ULX ULY LRX LRY.
    #[arg(long, num_args = 4, allow_negative_numbers = true, value_names = ["ULX", "ULY", "LRX", "LRY"], conflicts_with = "mask")]
    pub projwin: Option<Vec<f64>>,
    /// A mask raster on the same grid: its extent is the window, its zero pixels are left out.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Add a column holding each segment's original ID.
    #[arg(long)]
    pub orig_id_column: Option<String>,
    /// Output GDAL driver.
    #[arg(short = 'f', long = "of", default_value = "GTiff")]
    pub driver: String,
    /// Output creation option KEY=VALUE (repeatable).
    #[arg(long = "co")]
    pub creation_options: Vec<String>,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// No summary line.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Runs `shepseg subset`.
pub fn run_subset(args: &SubsetArgs) -> anyhow::Result<()> {
    let window = match (&args.srcwin, &args.projwin, &args.mask) {
        (Some(v), None, None) => SubsetWindow::SrcWin(v[0], v[1], v[2], v[3]),
        (None, Some(v), None) => SubsetWindow::ProjWin(v[0], v[1], v[2], v[3]),
        (None, None, Some(m)) => SubsetWindow::Mask(m.clone()),
        _ => bail!("give one of --srcwin, --projwin or --mask"),
    };
    let options = OutputOptions {
        driver: args.driver.clone(),
        creation_options: args.creation_options.clone(),
        overwrite: args.overwrite,
    };
    let r = subset(
        &args.segfile,
        &args.output,
        &window,
        &options,
        args.orig_id_column.as_deref(),
    )
    .with_context(|| match window {
        SubsetWindow::ProjWin(..) => "--projwin".to_string(),
        SubsetWindow::SrcWin(..) => "--srcwin".to_string(),
        SubsetWindow::Mask(_) => "--mask".to_string(),
    })
    .with_context(|| format!("subset of {}", args.segfile.display()))?;
    if !args.quiet {
        let (x, y, w, h) = r.window;
        eprintln!(
            "{} segments in window {x} {y} {w} {h} written to {}",
            r.segments,
            args.output.display()
        );
    }
    Ok(())
}
