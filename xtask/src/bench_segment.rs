//! `cargo xtask bench-segment`: the whole `shepseg segment` job, timed as a user runs it.
//!
//! Runs the release `shepseg` binary as a child process several times and reports the median
//! wall time, throughput and the child's peak resident memory (from `wait4`'s rusage), by default
//! on a deterministic 10000x10000 4-band UInt16 land-cover-like image generated once into
//! `bench-out/`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::bench_core::{write_synth, SynthArgs};

/// Options of `bench-segment`.
#[derive(clap::Args)]
pub struct BenchSegmentArgs {
    /// Raster to segment (default: the generated 10000x10000 image).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Runs; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Tile size passed to shepseg.
    #[arg(long, default_value_t = 4096)]
    tile_size: usize,
    /// Overlap passed to shepseg.
    #[arg(long, default_value_t = 1024)]
    overlap_size: usize,
    /// Extra arguments for `shepseg segment` (e.g. `--fixed-kmeans-init`).
    #[arg(last = true)]
    extra: Vec<String>,
}

/// Exit status and peak RSS (KiB) of a child run.
pub fn run_child(cmd: &mut Command) -> anyhow::Result<(i32, u64)> {
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", cmd.get_program().to_string_lossy()))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child; `status` and `usage` are valid for writing.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r != pid {
        bail!("waiting for {} failed", cmd.get_program().to_string_lossy());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((code, usage.ru_maxrss as u64))
}

/// Runs a child to its end: its wall time in seconds and peak RSS (KiB); an error naming
/// `what` if it exits non-zero.
pub fn run_timed(cmd: &mut Command, what: &str) -> anyhow::Result<(f64, u64)> {
    let t = Instant::now();
    let (code, kib) = run_child(cmd)?;
    let wall = t.elapsed().as_secs_f64();
    if code != 0 {
        bail!("{what} exited with {code}");
    }
    Ok((wall, kib))
}

/// The deterministic 10000x10000 4-band UInt16 benchmark image, generated once.
pub fn default_input() -> anyhow::Result<PathBuf> {
    let p = PathBuf::from("bench-out/landcover10000.tif");
    if !p.exists() {
        std::fs::create_dir_all("bench-out")?;
        eprintln!("generating {} ...", p.display());
        write_synth(&SynthArgs {
            size: 10_000,
            seed: 1,
            output: p.clone(),
        })?;
    }
    Ok(p)
}

/// The input (given, or the generated default) and a freshly built release `shepseg`.
pub fn prepare(input: Option<&PathBuf>) -> anyhow::Result<(PathBuf, PathBuf)> {
    let input = match input {
        Some(p) => p.clone(),
        None => default_input()?,
    };
    let status = Command::new("cargo")
        .args(["build", "--release", "-q", "-p", "shepseg-cli"])
        .status()?;
    if !status.success() {
        bail!("building shepseg failed");
    }
    Ok((input, PathBuf::from("target/release/shepseg")))
}

/// Runs the benchmark.
pub fn bench(args: &BenchSegmentArgs) -> anyhow::Result<()> {
    let (input, exe) = prepare(args.input.as_ref())?;
    let out = PathBuf::from("bench-out/bench-segment-out.tif");
    let pixels = {
        let ds = gdal::Dataset::open(&input).with_context(|| input.display().to_string())?;
        let (c, r) = ds.raster_size();
        c * r
    };
    let mut walls = Vec::new();
    let mut rss = Vec::new();
    for run in 0..args.runs.max(1) {
        let mut cmd = Command::new(&exe);
        cmd.arg("segment")
            .arg(&input)
            .arg(&out)
            .args(["--overwrite", "-q"])
            .args([
                "-t",
                &args.tile_size.to_string(),
                "-l",
                &args.overlap_size.to_string(),
            ])
            .args(&args.extra);
        let (wall, kib) = run_timed(&mut cmd, "shepseg")?;
        eprintln!(
            "run {}: {wall:.2} s, peak RSS {:.0} MiB",
            run + 1,
            kib as f64 / 1024.0
        );
        walls.push(wall);
        rss.push(kib);
    }
    walls.sort_by(f64::total_cmp);
    rss.sort();
    let wall = walls[walls.len() / 2];
    println!(
        "\nshepseg segment {} ({:.1} Mpixel, tile {} overlap {}, {} runs)",
        input.display(),
        pixels as f64 / 1e6,
        args.tile_size,
        args.overlap_size,
        walls.len()
    );
    println!(
        "median wall {wall:.2} s (min {:.2}, max {:.2}); {:.2} Mpixel/s; peak RSS median {:.0} MiB (max {:.0})",
        walls[0],
        walls[walls.len() - 1],
        pixels as f64 / 1e6 / wall,
        rss[rss.len() / 2] as f64 / 1024.0,
        rss[rss.len() - 1] as f64 / 1024.0
    );
    Ok(())
}

/// Options of `bench-fit`.
#[derive(clap::Args)]
pub struct BenchFitArgs {
    /// Raster to sample (default: the generated 10000x10000 image of `bench-segment`).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Runs; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Threads for the sample read and the k-means fit.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seed of the k-means++ initialisation (the work a fit takes depends on its draws, so
    /// comparisons should span several seeds).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Times the whole-raster fit (about a million pixels sampled, 60 clusters, k-means++ with 5
/// restarts): the "spectral clusters" phase of a tiled run, on `--threads` threads.
pub fn bench_fit(args: &BenchFitArgs) -> anyhow::Result<()> {
    let input = match &args.input {
        Some(p) => p.clone(),
        None => default_input()?,
    };
    let threads = args.threads.max(1);
    let raster =
        shepseg_tiling::Raster::open(&input).with_context(|| input.display().to_string())?;
    // As `shepseg segment` does: a block cache sized to the reads (set before the first block
    // is read), so that every run decodes the raster again.
    if std::env::var_os("GDAL_CACHEMAX").is_none() {
        let mib = raster.block_cache_bytes(raster.size().0, threads) >> 20;
        gdal::config::set_config_option("GDAL_CACHEMAX", &mib.to_string())?;
    }
    let bands: Vec<usize> = (1..=raster.band_count()).collect();
    let params = shepseg_core::SegmentParams {
        seed: args.seed,
        ..Default::default()
    };
    let mut walls = Vec::new();
    for run in 0..args.runs.max(1) {
        let t = Instant::now();
        let fit = shepseg_tiling::fit_whole_raster_threads(
            &raster, &bands, None, None, &params, threads,
        )?;
        let wall = t.elapsed().as_secs_f64();
        eprintln!(
            "run {}: {wall:.2} s, of it {:.2} s reading the sample ({} samples, {} iterations in the best restart, inertia {:.6e})",
            run + 1,
            fit.sample_read.as_secs_f64(),
            fit.info.num_samples,
            fit.info.iterations,
            fit.info.inertia
        );
        walls.push(wall);
    }
    walls.sort_by(f64::total_cmp);
    println!(
        "whole-raster fit, {threads} thread(s): median {:.2} s (min {:.2}, max {:.2}) over {} runs",
        walls[walls.len() / 2],
        walls[0],
        walls[walls.len() - 1],
        walls.len()
    );
    Ok(())
}
