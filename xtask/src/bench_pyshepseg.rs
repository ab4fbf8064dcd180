//! `cargo xtask bench-pyshepseg`: pyshepseg and shepseg side by side on the same image.
//!
//! Runs pyshepseg's `tiling.doTiledShepherdSegmentation` (from a source checkout given with
//! `--pyshepseg`, imported through `PYTHONPATH`; nothing is installed or built) and
//! `shepseg segment`, both with the fixed k-means initialisation and the default 4096/1024
//! tiles, each as a child process, alternately, and reports the median wall time, the peak
//! RSS (from `wait4`) and the ratio pyshepseg/shepseg, by default on the generated
//! 10000x10000 4-band UInt16 image of `bench-segment`.
//!
//! pyshepseg runs with `CONC_NONE` (its tiles one after another in one process) and writes what
//! its `pyshepseg_tiling` command writes: the segments, overviews, `Histogram` column and
//! statistics, then a random colour table. Each tool writes its own default format: pyshepseg
//! KEA, or HFA with `COMPRESS=YES` (as `pyshepseg_tiling` does) where GDAL has no KEA driver (it
//! cannot write GTiff: GTiff gives it no attribute table to fill), and its temporary tile files
//! KEA, else uncompressed GTiff; shepseg a tiled, compressed GTiff unless told otherwise after
//! `--`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context};

use crate::bench_segment::{prepare, run_timed};

/// Options of `bench-pyshepseg`.
#[derive(clap::Args)]
pub struct BenchPyshepsegArgs {
    /// A checkout of pyshepseg (https://github.com/ubarsc/pyshepseg), imported via PYTHONPATH.
    #[arg(long)]
    pyshepseg: PathBuf,
    /// Python interpreter with numpy, numba, scikit-learn and GDAL's Python bindings.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Raster to segment (default: the generated 10000x10000 4-band UInt16 image).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Runs of each tool, alternating; the medians are reported.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Worker threads for `shepseg segment`.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Extra arguments for `shepseg segment` (e.g. `--of HFA --co COMPRESS=YES`).
    #[arg(last = true)]
    extra: Vec<String>,
}

/// Checks the interpreter's modules and where it imports pyshepseg from; prints one JSON line.
const PREFLIGHT: &str = r#"
import json, sys
versions, missing = {}, []
for name in ("numpy", "numba", "sklearn", "osgeo"):
    try:
        versions[name] = getattr(__import__(name), "__version__", "?")
    except Exception as e:
        missing.append(f"{name} ({type(e).__name__}: {e})")
if missing:
    sys.exit("cannot import " + "; ".join(missing))
try:
    import pyshepseg, pyshepseg.tiling
except Exception as e:
    sys.exit(f"cannot import pyshepseg.tiling ({type(e).__name__}: {e})")
from osgeo import gdal
print(json.dumps({
    "versions": versions,
    "pyshepseg": getattr(pyshepseg, "__version__", "?"),
    "file": pyshepseg.__file__,
    "kea": gdal.GetDriverByName("KEA") is not None,
}))
"#;

/// One pyshepseg run: argv is INPUT OUTPUT DRIVER CREATION_OPTIONS(,) TEMPFILES_DRIVER REPORT.
const RUN: &str = r#"
import json, sys, time, warnings
warnings.simplefilter("ignore", FutureWarning)  # scipy.stats.mode's keepdims notice, per tile
infile, outfile, drv, co, tmpdrv, report = sys.argv[1:7]
from osgeo import gdal
from pyshepseg import tiling, utils
t0 = time.time()
res = tiling.doTiledShepherdSegmentation(
    infile, outfile, fixedKMeansInit=True, outputDriver=drv,
    creationOptions=[c for c in co.split(",") if c], tempfilesDriver=tmpdrv,
    concurrencyCfg=tiling.SegmentationConcurrencyConfig(concurrencyType=tiling.CONC_NONE))
t1 = time.time()
# As pyshepseg_tiling does after segmenting.
ds = gdal.Open(outfile, gdal.GA_Update)
utils.writeRandomColourTable(ds.GetRasterBand(1), res.maxSegId + 1)
del ds
with open(report, "w") as f:
    json.dump({"segments": int(res.maxSegId), "segmentation_s": t1 - t0,
               "empty_segments": bool(res.hasEmptySegments),
               "timings": res.timings.makeSummaryDict()}, f)
"#;

/// What the preflight found.
struct Python {
    versions: String,
    pyshepseg: String,
    kea: bool,
}

/// Checks `--pyshepseg` is a checkout and `--python` imports everything pyshepseg needs (and
/// pyshepseg itself from that checkout).
fn preflight(args: &BenchPyshepsegArgs, pythonpath: &std::ffi::OsStr) -> anyhow::Result<Python> {
    let checkout = &args.pyshepseg;
    if !checkout.join("pyshepseg/tiling.py").is_file() {
        bail!(
            "--pyshepseg {}: not a pyshepseg checkout (no pyshepseg/tiling.py; clone https://github.com/ubarsc/pyshepseg)",
            checkout.display()
        );
    }
    let out = Command::new(&args.python)
        .args(["-c", PREFLIGHT])
        .env("PYTHONPATH", pythonpath)
        .output()
        .map_err(|e| anyhow!("--python {}: cannot run it ({e})", args.python))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        bail!(
            "--python {}: {last} (it needs numpy, numba, scikit-learn and GDAL's Python bindings, osgeo)",
            args.python
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("--python {}: unexpected preflight output", args.python))?;
    let file = PathBuf::from(v["file"].as_str().unwrap_or_default());
    let root = checkout.canonicalize()?;
    if !file.canonicalize().is_ok_and(|f| f.starts_with(&root)) {
        bail!(
            "--python {} imports pyshepseg from {}, not from the checkout {}",
            args.python,
            file.display(),
            root.display()
        );
    }
    let ver = |k: &str| v["versions"][k].as_str().unwrap_or("?").to_string();
    Ok(Python {
        versions: format!(
            "numpy {}, numba {}, scikit-learn {}, GDAL {}",
            ver("numpy"),
            ver("numba"),
            ver("sklearn"),
            ver("osgeo")
        ),
        pyshepseg: v["pyshepseg"].as_str().unwrap_or("?").to_string(),
        kea: v["kea"].as_bool().unwrap_or(false),
    })
}

/// The checkout's commit, if it is a git work tree.
fn checkout_commit(checkout: &Path) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(checkout)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The CPU's model name and whether it has AVX-512F, from /proc/cpuinfo.
fn cpu() -> (String, bool) {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let model = field("model name").unwrap_or_else(|| "unknown CPU".into());
    let avx512f = field("flags").is_some_and(|f| f.split_whitespace().any(|x| x == "avx512f"));
    (model, avx512f)
}

/// Median of `v` (the upper one for an even count, as `bench-segment` reports).
fn median<T: Copy + PartialOrd>(v: &[T]) -> T {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    s[s.len() / 2]
}

/// Runs the benchmark.
pub fn bench(args: &BenchPyshepsegArgs) -> anyhow::Result<()> {
    let mut pythonpath = args.pyshepseg.clone().into_os_string();
    if let Some(old) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
        pythonpath.push(":");
        pythonpath.push(old);
    }
    let py = preflight(args, &pythonpath)?;
    let (input, exe) = prepare(args.input.as_ref())?;
    let (cols, rows, bands) = {
        let ds = gdal::Dataset::open(&input).with_context(|| input.display().to_string())?;
        let (c, r) = ds.raster_size();
        (c, r, ds.raster_count())
    };
    // pyshepseg's defaults, or what pyshepseg_tiling offers besides where GDAL lacks KEA.
    let (driver, co, tmp_driver, ext) = if py.kea {
        ("KEA", "", "KEA", "kea")
    } else {
        ("HFA", "COMPRESS=YES", "GTiff", "img")
    };
    let py_out = PathBuf::from(format!("bench-out/bench-pyshepseg-py.{ext}"));
    let py_report = PathBuf::from("bench-out/bench-pyshepseg-py.json");
    let rs_out = PathBuf::from("bench-out/bench-pyshepseg-rs.tif");
    let rs_report = PathBuf::from("bench-out/bench-pyshepseg-rs.json");
    let workers = args.workers.max(1);
    eprintln!(
        "pyshepseg {} from {} ({}); output {driver}, temporary tiles {tmp_driver}",
        py.pyshepseg,
        args.pyshepseg.display(),
        py.versions
    );

    let (mut py_wall, mut py_rss, mut rs_wall, mut rs_rss) = (vec![], vec![], vec![], vec![]);
    let (mut py_segs, mut rs_segs) = (0u64, 0u64);
    for run in 1..=args.runs.max(1) {
        // pyshepseg does not replace an output: an HFA file left by the previous run (with
        // its colour table) made the next run fail with "Invalid number of colors".
        for p in [
            py_out.clone(),
            PathBuf::from(format!("{}.aux.xml", py_out.display())),
        ] {
            if p.exists() {
                std::fs::remove_file(&p).with_context(|| p.display().to_string())?;
            }
        }
        let mut cmd = Command::new(&args.python);
        cmd.args(["-c", RUN])
            .arg(&input)
            .arg(&py_out)
            .args([driver, co, tmp_driver])
            .arg(&py_report)
            .env("PYTHONPATH", &pythonpath);
        let (wall, kib) = run_timed(&mut cmd, "pyshepseg")?;
        let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&py_report)?)
            .with_context(|| py_report.display().to_string())?;
        py_segs = rep["segments"].as_u64().unwrap_or(0);
        eprintln!(
            "pyshepseg run {run}: {wall:.1} s (of it {:.1} s in doTiledShepherdSegmentation), peak RSS {:.2} GiB, {py_segs} segments",
            rep["segmentation_s"].as_f64().unwrap_or(f64::NAN),
            kib as f64 / (1 << 20) as f64
        );
        py_wall.push(wall);
        py_rss.push(kib);

        let mut cmd = Command::new(&exe);
        cmd.arg("segment")
            .arg(&input)
            .arg(&rs_out)
            .args(["--overwrite", "-q", "--fixed-kmeans-init", "-w"])
            .arg(workers.to_string())
            .arg("--json")
            .arg(&rs_report)
            .args(&args.extra);
        let (wall, kib) = run_timed(&mut cmd, "shepseg")?;
        let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&rs_report)?)
            .with_context(|| rs_report.display().to_string())?;
        rs_segs = rep["num_segments"].as_u64().unwrap_or(0);
        eprintln!(
            "shepseg run {run}: {wall:.1} s, peak RSS {:.2} GiB, {rs_segs} segments",
            kib as f64 / (1 << 20) as f64
        );
        rs_wall.push(wall);
        rs_rss.push(kib);
    }

    let (model, avx512f) = cpu();
    let gib = |kib: u64| kib as f64 / (1 << 20) as f64;
    let (pw, rw) = (median(&py_wall), median(&rs_wall));
    let (pm, rm) = (gib(median(&py_rss)), gib(median(&rs_rss)));
    let py_name = match checkout_commit(&args.pyshepseg) {
        Some(c) => format!("pyshepseg {} ({c}) CONC_NONE", py.pyshepseg),
        None => format!("pyshepseg {} CONC_NONE", py.pyshepseg),
    };
    println!(
        "\n{} ({cols}x{rows}, {bands} bands), fixed k-means init, pyshepseg tiles 4096/1024, shepseg default tiles, median of {} run(s)",
        input.display(),
        py_wall.len()
    );
    println!(
        "CPU: {model} ({} cores), avx512f: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if avx512f { "yes" } else { "no" }
    );
    let rs_name = format!("shepseg -w {workers} {}", args.extra.join(" "))
        .trim_end()
        .to_string();
    let w = py_name.len().max(rs_name.len()).max(4);
    println!(
        "{:<w$}  {:>8}  {:>12}  {:>9}",
        "tool", "wall s", "peak RSS GiB", "segments"
    );
    println!("{:<w$}  {pw:>8.1}  {pm:>12.2}  {py_segs:>9}", py_name);
    println!("{:<w$}  {rw:>8.1}  {rm:>12.2}  {rs_segs:>9}", rs_name);
    println!(
        "ratio pyshepseg/shepseg: {:.1}x wall time, {:.1}x peak RSS",
        pw / rw,
        pm / rm
    );
    if py_segs != rs_segs {
        println!("note: the segment counts differ");
    }
    Ok(())
}
