//! `cargo xtask bench-python`: the in-memory segmentation called from Python
//! (`shepseg.segment`) against the same call from Rust (`shepseg_core::segment`), on the same
//! 4096 x 4096 image, each in a fresh process, the side going first alternating. Only the call
//! is timed on each side (reading the image is not); the Python side's extra cost is converting
//! the arguments and the result (the array's data is used in place).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use shepseg_core::{segment, SegmentParams};
use shepseg_tiling::Raster;

use crate::bench_core::{write_synth, SynthArgs};

/// Options of `bench-python`.
#[derive(clap::Args)]
pub struct BenchPythonArgs {
    /// Side of the generated image, in pixels.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Rounds (one Rust and one Python run each); medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// A Python with the `shepseg` package installed (python/test.sh installs it here).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Internal: run the Rust side once on this image and print its time (each side runs in
    /// a fresh process, as a script calling it once would).
    #[arg(long, hide = true)]
    rust_child: Option<PathBuf>,
}

/// The Rust side, in its own process: reads the image, times one `segment` call, prints
/// seconds and segments.
fn rust_child(input: &std::path::Path) -> anyhow::Result<()> {
    let raster = Raster::open(input)?;
    let img = raster.read::<u16>(&[1, 2, 3, 4], raster.full_window())?;
    let params = SegmentParams {
        fixed_kmeans_init: true,
        ..Default::default()
    };
    let t = Instant::now();
    let r = segment(&img.view(), None, &params, None)?;
    println!("{} {}", t.elapsed().as_secs_f64(), r.num_segments);
    Ok(())
}

/// Runs `cmd`, returns the seconds and segments it printed.
fn timed(mut cmd: Command, what: &str) -> anyhow::Result<(f64, u32)> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let secs: f64 = words.next().unwrap_or("").parse().context("the time")?;
    let segs: u32 = words.next().unwrap_or("").parse().context("the segments")?;
    Ok((secs, segs))
}

/// The Python side: reads the image, times one `shepseg.segment` call, prints seconds and
/// segments.
const SCRIPT: &str = r#"
import sys, time
import shepseg
img = shepseg.read_raster(sys.argv[1])
t = time.perf_counter()
r = shepseg.segment(img, fixed_kmeans_init=True)
print(time.perf_counter() - t, r.num_segments)
"#;

/// Runs the benchmark.
pub fn bench(args: &BenchPythonArgs) -> anyhow::Result<()> {
    if let Some(input) = &args.rust_child {
        return rust_child(input);
    }
    let python = match &args.python {
        Some(p) => p.clone(),
        None => {
            let home = std::env::var("HOME").context("HOME")?;
            PathBuf::from(home).join(".cache/shepseg/py-system/bin/python")
        }
    };
    std::fs::create_dir_all("bench-out")?;
    let input = PathBuf::from(format!("bench-out/landcover{}.tif", args.size));
    if !input.exists() {
        write_synth(&SynthArgs {
            size: args.size,
            seed: 1,
            output: input.clone(),
        })?;
    }
    let exe = std::env::current_exe()?;
    let (mut rust, mut py) = (Vec::new(), Vec::new());
    for round in 0..args.runs.max(1) {
        let run_rust = || {
            let mut cmd = Command::new(&exe);
            cmd.arg("bench-python").arg("--rust-child").arg(&input);
            timed(cmd, "the Rust side")
        };
        let run_python = || {
            let mut cmd = Command::new(&python);
            cmd.args(["-c", SCRIPT]).arg(&input);
            timed(cmd, &python.display().to_string())
        };
        // Alternating which goes first, so that neither always runs on a warmer machine.
        let ((rs, rsegs), (ps, psegs)) = if round % 2 == 0 {
            let r = run_rust()?;
            (r, run_python()?)
        } else {
            let p = run_python()?;
            (run_rust()?, p)
        };
        if psegs != rsegs {
            bail!("Python gave {psegs} segments, Rust {rsegs}");
        }
        eprintln!("round {}: Rust {rs:.3} s, Python {ps:.3} s", round + 1);
        rust.push(rs);
        py.push(ps);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // Each round's two runs are taken side by side, so their ratio shares the round's load.
    let mut ratios: Vec<f64> = py.iter().zip(&rust).map(|(p, r)| p / r).collect();
    let paired = median(&mut ratios);
    let (r, p) = (median(&mut rust), median(&mut py));
    println!(
        "\nin-memory segmentation of {} ({} x {}, 4 bands UInt16), {} rounds (the side going first alternating), \
         each call the first in a fresh process, CPU {}",
        input.display(),
        args.size,
        args.size,
        rust.len(),
        shepseg_core::simd_in_use()
    );
    println!("Rust   median {r:.3} s");
    println!("Python median {p:.3} s ({:+.1}%)", (p / r - 1.0) * 100.0);
    println!(
        "Python / Rust within a round, median {paired:.3} ({:+.1}%)",
        (paired - 1.0) * 100.0
    );
    Ok(())
}
