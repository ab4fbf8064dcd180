//! `shepseg segment`: options, progress bar and printing around the library's tiled job
//! ([`shepseg_pipeline::TiledSegmentation`]).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use shepseg_core::{KMeansModel, MaxSpectralDiff, SegmentParams};
use shepseg_pipeline::{Statistics, TiledSegmentation};
use shepseg_stitch::{GdalOutput, OutputOptions};

use crate::executor::ExecArgs;

/// Options of `shepseg segment`, pyshepseg_tiling's under plain long names.
#[derive(Args, Debug)]
pub struct SegmentArgs {
    /// Input raster (any GDAL path).
    pub input: PathBuf,
    /// Output segmentation raster.
    pub output: PathBuf,
    /// Bands to use, from 1, comma separated (default: all).
    #[arg(
        short = 'b',
        long,
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub bands: Vec<usize>,
    /// Number of k-means clusters.
    #[arg(short = 'n', long, default_value_t = 60, allow_negative_numbers = true)]
    pub nclusters: usize,
    /// Smallest segment size kept after elimination, in pixels.
    #[arg(short = 's', long, default_value_t = 50, allow_negative_numbers = true)]
    pub min_segment_size: usize,
    /// Limit on merging spectrally different segments: auto, none or a value.
    #[arg(
        short = 'm',
        long,
        default_value = "auto",
        allow_negative_numbers = true
    )]
    pub max_spectral_diff: String,
    /// Percentile of centre distances used by `--max-spectral-diff auto`.
    #[arg(long, default_value_t = 50.0, allow_negative_numbers = true)]
    pub spect_dist_pcntile: f64,
    /// Null value of the input (default: the bands' nodata value).
    #[arg(long, allow_negative_numbers = true)]
    pub null_value: Option<f64>,
    /// 8-way connectivity (default 4-way).
    #[arg(long)]
    pub eight_way: bool,
    /// pyshepseg's fixed (diagonal) k-means initialisation instead of k-means++.
    #[arg(long)]
    pub fixed_kmeans_init: bool,
    /// Seed of the k-means++ initialisation.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,
    /// Percentage of pixels sampled for k-means (default: about a million pixels).
    #[arg(short = 'c', long, allow_negative_numbers = true)]
    pub cluster_subsample_pcnt: Option<f64>,
    /// Tile size, in pixels [default: 1024; with --pyshepseg-compat 4096]. The default
    /// mode's result does not depend on it.
    #[arg(short = 't', long, allow_negative_numbers = true)]
    pub tile_size: Option<usize>,
    /// Overlap between tiles, in pixels, with --pyshepseg-compat only (even, smaller than
    /// the tile) [default: 1024]. The default mode's tiles need none: it is ignored there.
    #[arg(short = 'l', long, allow_negative_numbers = true)]
    pub overlap_size: Option<usize>,
    /// Read the k-means model from this JSON file instead of fitting one.
    #[arg(long)]
    pub kmeans_in: Option<PathBuf>,
    /// Write the k-means model used to this JSON file.
    #[arg(long)]
    pub kmeans_out: Option<PathBuf>,
    /// Output GDAL driver (GTiff, HFA, COG, ...).
    #[arg(short = 'f', long = "of", default_value = "GTiff")]
    pub driver: String,
    /// Output creation option KEY=VALUE (repeatable).
    #[arg(long = "co")]
    pub creation_options: Vec<String>,
    /// GDAL configuration option KEY=VALUE (repeatable).
    #[arg(long = "config")]
    pub config: Vec<String>,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bar or report.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Where the job keeps its model and finished tiles while it runs, so that `--resume` can
    /// continue it after a crash or an interrupt [default: .OUTPUT.shepseg-work beside
    /// OUTPUT]. Removed when OUTPUT is complete.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Continue the job the work directory holds (same INPUT, OUTPUT and parameters): its
    /// finished tiles are not segmented again.
    #[arg(long)]
    pub resume: bool,
    /// Write a JSON report (parameters, model, segments, timings) to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Reproduce pyshepseg exactly, defects included.
    #[arg(long)]
    pub pyshepseg_compat: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
    /// After segmenting, per-segment statistics of these bands of INPUT (with --stat).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub stats_bands: Vec<usize>,
    #[command(flatten)]
    pub stats: crate::stats::StatsOptions,
    /// After segmenting (and the statistics), write the segments as polygons to this vector
    /// file, with the attribute table's columns.
    #[arg(long)]
    pub vector: Option<PathBuf>,
    /// OGR driver of --vector (default: chosen by its extension).
    #[arg(long, requires = "vector")]
    pub vector_format: Option<String>,
    /// Simplify --vector's polygons to this tolerance in map units (as `polygonize
    /// --simplify`).
    #[arg(
        long,
        requires = "vector",
        value_name = "TOLERANCE",
        allow_negative_numbers = true
    )]
    pub vector_simplify: Option<f64>,
}

impl SegmentArgs {
    /// The segmentation parameters.
    fn params(&self) -> anyhow::Result<SegmentParams> {
        let max_spectral_diff: MaxSpectralDiff = self
            .max_spectral_diff
            .parse()
            .map_err(|e| anyhow::anyhow!("--max-spectral-diff: {e}"))?;
        // The core's check names the parameter, not the option.
        let p = self.spect_dist_pcntile;
        if !(0.0..=100.0).contains(&p) {
            anyhow::bail!("--spect-dist-pcntile must be in [0, 100], got {p}");
        }
        let params = SegmentParams {
            num_clusters: self.nclusters,
            min_segment_size: self.min_segment_size,
            max_spectral_diff,
            spect_dist_pcntile: self.spect_dist_pcntile,
            four_connected: !self.eight_way,
            fixed_kmeans_init: self.fixed_kmeans_init,
            seed: self.seed,
            pyshepseg_compat: self.pyshepseg_compat,
            ..Default::default()
        };
        params.validate()?;
        Ok(params)
    }

    /// The model of `--kmeans-in`, if given.
    fn model_in(&self) -> anyhow::Result<Option<KMeansModel>> {
        let Some(p) = &self.kmeans_in else {
            return Ok(None);
        };
        let ctx = || format!("--kmeans-in {}", p.display());
        let text = std::fs::read_to_string(p).with_context(ctx)?;
        Ok(Some(KMeansModel::from_json(&text).with_context(ctx)?))
    }
}

/// Runs the job.
pub fn run(args: &SegmentArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    for kv in &args.config {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--config {kv}: expected KEY=VALUE"))?;
        gdal::config::set_config_option(k, v).with_context(|| format!("--config {kv}"))?;
    }
    let params = args.params()?;
    let fargate = args.exec.validate()?;
    args.stats.validate(&args.stats_bands)?;
    let statistics = args
        .stats
        .request(
            &args.stats_bands,
            args.exec.workers(),
            params.four_connected,
        )?
        .map(|request| Statistics {
            request,
            colour_from_bands: args.stats.colour_bands(),
        });
    let model_in = args.model_in()?;
    if let Some(v) = &args.vector {
        crate::polygonize::check_vector_output(v, args.vector_format.as_deref(), args.overwrite)?;
    }
    if let Some(t) = args.vector_simplify {
        if !(t.is_finite() && t > 0.0) {
            anyhow::bail!("--vector-simplify {t}: must be a positive, finite number of map units");
        }
    }
    // Armed before the output is created: creating it (empty overviews included) takes a
    // while, and an interrupt then must not leave its folder behind.
    if let Some(dir) = GdalOutput::partial_dir_for(&args.output) {
        crate::interrupt::abandon_on_interrupt(&dir);
    }
    // A mosaic's tiles are written straight into their folder beside OUTPUT (a local one is
    // removed on interrupt; one on object storage when the job stops gracefully).
    let tiles = shepseg_stitch::tiles_dir_for(&args.output);
    if shepseg_stitch::is_mosaic(&args.output, &args.driver)
        && !shepseg_tiling::vsi::is_virtual(&tiles)
        && (args.overwrite || !tiles.exists())
    {
        crate::interrupt::abandon_on_interrupt(&tiles);
    }
    if params.pyshepseg_compat && (args.resume || args.work_dir.is_some()) {
        let flag = if args.resume {
            "--resume"
        } else {
            "--work-dir"
        };
        anyhow::bail!("{flag}: resuming needs the default mode, not --pyshepseg-compat");
    }
    if args.overlap_size.is_some() && !params.pyshepseg_compat && !args.quiet {
        eprintln!(
            "warning: --overlap-size is ignored: the default mode's tiles need no overlap \
             (it applies with --pyshepseg-compat)"
        );
    }
    let mut job = TiledSegmentation::new(&args.input, &args.output);
    if let Some(t) = args.tile_size {
        job = job.tile_size(t);
    }
    if let Some(l) = args.overlap_size {
        job = job.overlap_size(l);
    }
    let job = job
        .bands(args.bands.clone())
        .null_value(args.null_value)
        .params(params)
        .subsample_pcnt(args.cluster_subsample_pcnt)
        .model(model_in)
        .output_options(OutputOptions {
            driver: args.driver.clone(),
            creation_options: args.creation_options.clone(),
            overwrite: args.overwrite,
        })
        .threads(args.exec.local_threads())
        .work_dir(args.work_dir.clone())
        .resume(args.resume)
        .statistics(statistics)
        .on_progress(crate::progress::progress_bar(
            !args.quiet && std::io::stderr().is_terminal(),
            "tiles",
        ));
    let work_dir = job.work_dir_used();
    if let Some(dir) = &work_dir {
        crate::interrupt::keep_on_interrupt(dir, &resume_command());
    }
    let tiles_before = work_dir
        .as_deref()
        .map_or(0, shepseg_pipeline::finished_tiles);
    let (report, workers) = match args.exec.run(job, fargate, &args.config, args.quiet) {
        Ok(r) => r,
        Err(e) => {
            // Tiles finished by this run are kept: say how to continue, on the error's one
            // line (not when the run was refused before segmenting, e.g. by --resume).
            let kept = work_dir
                .as_deref()
                .filter(|d| shepseg_pipeline::finished_tiles(d) > tiles_before);
            return Err(match kept {
                Some(d) => e.context(format!(
                    "finished tiles kept in {}; continue with: {}",
                    d.display(),
                    resume_command()
                )),
                None => e,
            });
        }
    };
    if report.resume_started_afresh && !args.quiet {
        eprintln!("--resume: no job to resume in the work directory; started afresh");
    }
    if let Some(p) = &args.kmeans_out {
        std::fs::write(p, report.model.to_json())
            .with_context(|| format!("--kmeans-out {}", p.display()))?;
    }
    let total = start.elapsed();
    if !args.quiet {
        let (cols, rows) = report.size;
        match &report.seamless {
            Some(s) => eprintln!(
                "{} segments in {} tiles ({cols} x {rows} pixels, tiles of {}{}); join held \
                 {:.1} MiB of tile tables",
                report.num_segments,
                report.num_tiles,
                report.tile_size,
                if report.tiles_resumed > 0 {
                    format!(", {} resumed", report.tiles_resumed)
                } else {
                    String::new()
                },
                s.table_bytes as f64 / (1 << 20) as f64
            ),
            None => eprintln!(
                "{} segments in {} tiles ({cols} x {rows} pixels); {} seam fallbacks",
                report.num_segments, report.num_tiles, report.seam_fallbacks
            ),
        }
        eprintln!("{}", report.timings.report(total));
    }
    if let Some(p) = &args.json {
        let j = crate::report::json(args, &report, workers.as_ref(), total)?;
        std::fs::write(p, serde_json::to_string_pretty(&j)?)
            .with_context(|| format!("--json {}", p.display()))?;
    }
    if let Some(v) = &args.vector {
        crate::polygonize::run_request(&crate::polygonize::VectorRequest {
            segfile: &args.output,
            output: v,
            format: args.vector_format.as_deref(),
            columns: None,
            workers: args.exec.local_threads().max(1),
            overwrite: args.overwrite,
            simplify: args.vector_simplify,
            quiet: args.quiet,
        })
        .context("--vector")?;
    }
    Ok(())
}

/// This command line with `--resume` (once), for the messages that say how to continue.
fn resume_command() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--resume") {
        args.push("--resume".into());
    }
    if let Some(first) = args.first_mut() {
        *first = "shepseg".into();
    }
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@%+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
