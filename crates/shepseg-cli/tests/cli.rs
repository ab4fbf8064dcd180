//! `shepseg segment` as a user runs it: the real binary on real GeoTIFFs.

use std::path::{Path, PathBuf};
use std::process::Command;

use gdal::raster::Buffer;
use gdal::DriverManager;
use shepseg_core::SegmentParams;
use shepseg_tiling::Raster;

mod common;
use common::{rgbn, shepseg, tempdir};

/// Runs `shepseg segment` expecting failure: non-zero exit, one line naming `names`, and
/// nothing at OUTPUT (nor any leftover beside it).
fn fails(dir: &Path, args: &[&str], names: &[&str]) {
    let out = shepseg(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {args:?}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    for n in names {
        assert!(err.contains(n), "error should name {n}: {err}");
    }
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("out") || n.starts_with(".out"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn write_tif<T: gdal::raster::GdalType + Copy>(
    path: &Path,
    bands: &[Vec<T>],
    cols: usize,
    rows: usize,
    nodata: &[Option<f64>],
) {
    // HFA keeps a nodata value per band; GTiff only one per file.
    let driver = if path.extension().is_some_and(|e| e == "img") {
        "HFA"
    } else {
        "GTiff"
    };
    let d = DriverManager::get_driver_by_name(driver).unwrap();
    let ds = d
        .create_with_band_type::<T, _>(path, cols, rows, bands.len())
        .unwrap();
    for (i, data) in bands.iter().enumerate() {
        let mut b = ds.rasterband(i + 1).unwrap();
        b.set_no_data_value(nodata[i]).unwrap();
        let mut buf = Buffer::new((cols, rows), data.clone());
        b.write((0, 0), (cols, rows), &mut buf).unwrap();
    }
}

#[test]
fn bad_input_gets_one_clear_line_and_no_output() {
    let dir = tempdir("bad");
    let out = dir.join("out.tif");
    let out_s = out.to_str().unwrap();
    let input = rgbn();
    let inp = input.to_str().unwrap();
    fails(
        &dir,
        &["segment", "/no/such/file.tif", out_s],
        &["/no/such/file.tif", "no such file"],
    );
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a raster").unwrap();
    fails(
        &dir,
        &["segment", text.to_str().unwrap(), out_s],
        &["notes.txt", "not a raster"],
    );
    fails(
        &dir,
        &["segment", inp, out_s, "-b", "1,5"],
        &["rgbn.tif", "band 5"],
    );
    fails(
        &dir,
        &["segment", inp, out_s, "-l", "33", "--pyshepseg-compat"],
        &["--overlap-size"],
    );
    fails(
        &dir,
        &[
            "segment",
            inp,
            out_s,
            "-t",
            "64",
            "-l",
            "64",
            "--pyshepseg-compat",
        ],
        &["--overlap-size", "--tile-size"],
    );
    // The default mode's tiles: any size from 1 up to what GDAL can address.
    fails(
        &dir,
        &["segment", inp, out_s, "-t", "0"],
        &["--tile-size", "at least 1"],
    );
    // clap's own errors too come on one line: a negative size, an unknown flag.
    fails(
        &dir,
        &["segment", inp, out_s, "-t", "-5"],
        &["--tile-size", "-5"],
    );
    fails(&dir, &["segment", inp, out_s, "--bogus"], &["--bogus"]);
    fails(
        &dir,
        &["segment", inp, out_s, "-t", "3000000000"],
        &["--tile-size", "at most 2147483647"],
    );
    fails(
        &dir,
        &["segment", inp, out_s, "--of", "NoSuchDriver"],
        &["--of NoSuchDriver"],
    );
    fails(
        &dir,
        &["segment", inp, "/no/such/dir/out.tif"],
        &["/no/such/dir/out.tif"],
    );
    fails(
        &dir,
        &["segment", inp, out_s, "-m", "lots"],
        &["--max-spectral-diff"],
    );
    // Different nodata in the chosen bands.
    let mixed = dir.join("mixed.img");
    write_tif::<u16>(
        &mixed,
        &[vec![1; 100], vec![2; 100]],
        10,
        10,
        &[Some(0.0), Some(9.0)],
    );
    fails(
        &dir,
        &["segment", mixed.to_str().unwrap(), out_s],
        &["mixed.img", "band 2", "nodata"],
    );
    // An unsupported pixel type: complex numbers.
    let f64img = dir.join("double.tif");
    write_tif::<f64>(&f64img, &[vec![1.0; 100]], 10, 10, &[None]);
    let complex = dir.join("complex.tif");
    let st = Command::new("gdal_translate")
        .args(["-q", "-ot", "CFloat32"])
        .arg(&f64img)
        .arg(&complex)
        .status()
        .unwrap();
    assert!(st.success());
    fails(
        &dir,
        &["segment", complex.to_str().unwrap(), out_s],
        &["complex.tif", "band 1", "CFloat32"],
    );
    // An empty raster.
    let empty = dir.join("empty.vrt");
    std::fs::write(
        &empty,
        r#"<VRTDataset rasterXSize="0" rasterYSize="0"></VRTDataset>"#,
    )
    .unwrap();
    fails(
        &dir,
        &["segment", empty.to_str().unwrap(), out_s],
        &["empty.vrt"],
    );
    // Remote executors: options checked before any worker starts.
    fails(
        &dir,
        &["segment", inp, out_s, "-q", "--executor", "fargate"],
        &["--fargate-config"],
    );
    let cfg = dir.join("fargate.json");
    std::fs::write(&cfg, r#"{"containerImage": "i", "subnet": "s", "cpus": 2}"#).unwrap();
    fails(
        &dir,
        &[
            "segment",
            inp,
            out_s,
            "-q",
            "--executor",
            "fargate",
            "--fargate-config",
            cfg.to_str().unwrap(),
        ],
        &["fargate.json", "cpus"],
    );
    std::fs::remove_file(&cfg).unwrap();
    fails(
        &dir,
        &[
            "segment",
            inp,
            out_s,
            "-q",
            "--executor",
            "processes",
            "--listen",
            "0.0.0.0:0",
        ],
        &["--advertise"],
    );
    fails(
        &dir,
        &["segment", inp, out_s, "-q", "--tile-retries", "0"],
        &["--tile-retries"],
    );
    // An existing OUTPUT is kept unless --overwrite.
    std::fs::write(&out, "precious").unwrap();
    let o = shepseg(&["segment", inp, out_s, "-q"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--overwrite"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious");
    let o = shepseg(&["segment", inp, out_s, "-q", "--overwrite", "-t", "256"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(Raster::open(&out).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn one_tile_equals_the_in_memory_core() {
    let dir = tempdir("onetile");
    let out = dir.join("seg.tif");
    let model = dir.join("model.json");
    let o = shepseg(&[
        "segment",
        rgbn().to_str().unwrap(),
        out.to_str().unwrap(),
        "-q",
        "--fixed-kmeans-init",
        "-t",
        "1024",
        "--kmeans-out",
        model.to_str().unwrap(),
        "--json",
        dir.join("report.json").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The report splits the fit's time: reading the sample is part of it.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let t = &report["timings_s"];
    let (read, fit) = (t["sample_read"].as_f64(), t["spectral_clusters"].as_f64());
    assert!(
        matches!((read, fit), (Some(r), Some(f)) if r > 0.0 && r <= f),
        "{t}"
    );
    let m =
        shepseg_core::KMeansModel::from_json(&std::fs::read_to_string(&model).unwrap()).unwrap();
    let r = Raster::open(rgbn()).unwrap();
    let stack = r.read_stack(&[1, 2, 3, 4], r.full_window()).unwrap();
    let core = stack
        .segment(None, &SegmentParams::default(), Some(&m))
        .unwrap();
    let written = Raster::open(&out).unwrap();
    let seg = written
        .read::<u32>(&[1], written.full_window())
        .unwrap()
        .index_axis_move(ndarray::Axis(0), 0);
    assert_eq!(seg, core.segimg);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn float_nan_pixels_are_null() {
    let dir = tempdir("nan");
    let input = dir.join("float.tif");
    let (cols, rows) = (60, 50);
    let band = |k: f32| -> Vec<f32> {
        (0..cols * rows)
            .map(|i| {
                let (r, c) = (i / cols, i % cols);
                if (r * 7 + c) % 23 == 0 {
                    f32::NAN
                } else {
                    (r / 10 + c / 15) as f32 * 10.0 + k
                }
            })
            .collect()
    };
    write_tif::<f32>(&input, &[band(0.0), band(3.0)], cols, rows, &[None, None]);
    let out = dir.join("seg.tif");
    let o = shepseg(&[
        "segment",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "-q",
        "-n",
        "8",
        "-s",
        "5",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let w = Raster::open(&out).unwrap();
    let seg = w.read::<u32>(&[1], w.full_window()).unwrap();
    for (i, &v) in seg.iter().enumerate() {
        let (r, c) = (i / cols, i % cols);
        assert_eq!(v == 0, (r * 7 + c) % 23 == 0, "pixel ({r}, {c})");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn interrupted_job_leaves_nothing() {
    for (sig, name) in [
        (libc::SIGINT, "sigint"),
        (libc::SIGTERM, "sigterm"),
        (libc::SIGHUP, "sighup"),
    ] {
        interrupted_by(sig, name);
    }
}

/// A job sent `sig` mid-run exits 130, saying so, and leaves nothing behind.
fn interrupted_by(sig: libc::c_int, name: &str) {
    let dir = tempdir(name);
    let out = dir.join("out.tif");
    let input = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/reference/synth8000/synthetic_runtests_8000.tif");
    let child = Command::new(env!("CARGO_BIN_EXE_shepseg"))
        .args([
            "segment",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "-q",
        ])
        .args(["-t", "512", "--executor", "sequential"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the job is under way (its partial folder exists), then interrupt it. Small
    // tiles on one worker keep it busy for seconds; with large tiles and the threaded sample
    // read the whole job could end within the wait.
    let start = std::time::Instant::now();
    while std::fs::read_dir(&dir).unwrap().count() == 0 {
        assert!(start.elapsed().as_secs() < 60, "job never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{name}: {err} signal {:?}",
        std::os::unix::process::ExitStatusExt::signal(&out.status)
    );
    assert!(err.contains("interrupted"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}; {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The library example: a user's fifteen lines, included as they are.
#[allow(dead_code)]
#[path = "../../shepseg-pipeline/examples/tiled_segmentation.rs"]
mod example;

/// The pipeline crate's example, run on a multi-tile image, writes exactly what `shepseg
/// segment INPUT OUTPUT` writes with the same defaults: pixels, overviews and table.
#[test]
fn the_library_example_equals_the_command_line() {
    let dir = tempdir("example");
    let input = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/reference/synth8000/synthetic_runtests_8000.tif");
    let (lib, cli) = (dir.join("lib.tif"), dir.join("cli.tif"));
    example::segment(input.to_str().unwrap(), lib.to_str().unwrap()).unwrap();
    let o = shepseg(&[
        "segment",
        input.to_str().unwrap(),
        cli.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (a, b) in [
        (lib.clone(), cli.clone()),
        (dir.join("lib.tif.aux.xml"), dir.join("cli.tif.aux.xml")),
    ] {
        let (a, b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert!(a == b, "{} bytes against {}", a.len(), b.len());
    }
    // Four tiles, stitched, with overviews: not the one-tile case.
    let r = Raster::open(&lib).unwrap();
    assert!(r.dataset().rasterband(1).unwrap().overview_count().unwrap() > 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Negative numbers are option values as users type them (`--null-value -9999`, not only
/// `--null-value=-9999`); a negative value where none is valid is refused naming the option.
#[test]
fn negative_numbers_are_option_values() {
    let dir = tempdir("negative");
    // rgbn as Int16 (its Byte pixels cannot hold -9999), a block of it -9999 in every band.
    let r = Raster::open(rgbn()).unwrap();
    let (cols, rows) = r.size();
    let img = r.read::<i16>(&[1, 2, 3, 4], r.full_window()).unwrap();
    let is_null = |row: usize, col: usize| (100..180).contains(&row) && (200..330).contains(&col);
    let bands: Vec<Vec<i16>> = img
        .outer_iter()
        .map(|b| {
            b.indexed_iter()
                .map(|((row, col), &v)| if is_null(row, col) { -9999 } else { v })
                .collect()
        })
        .collect();
    let input = dir.join("rgbn16.tif");
    write_tif::<i16>(&input, &bands, cols, rows, &[None; 4]);
    let out = dir.join("seg.tif");
    let report = dir.join("report.json");
    let o = shepseg(&[
        "segment",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "-q",
        "-t",
        "256",
        "--null-value",
        "-9999",
        "--json",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(j["parameters"]["null_value"].as_f64(), Some(-9999.0), "{j}");
    let w = Raster::open(&out).unwrap();
    let seg = w.read::<u32>(&[1], w.full_window()).unwrap();
    for ((_, row, col), &v) in seg.indexed_iter() {
        assert_eq!(v == 0, is_null(row, col), "pixel ({row}, {col})");
    }
    std::fs::remove_dir_all(&dir).unwrap();

    // Where a negative number is invalid: the usual one line naming the option.
    let dir = tempdir("negative-bad");
    let out = dir.join("out.tif");
    let (inp, out_s) = (rgbn(), out.to_str().unwrap());
    let inp = inp.to_str().unwrap();
    for (args, name) in [
        (&["--tile-timeout", "-1"][..], "--tile-timeout"),
        (&["--barrier-timeout", "-600"], "--barrier-timeout"),
        (&["--heartbeat-timeout", "-30"], "--heartbeat-timeout"),
        (&["-m", "-5"], "--max-spectral-diff"),
        (&["--spect-dist-pcntile", "-1"], "--spect-dist-pcntile"),
        (&["-c", "-1"], "--cluster-subsample-pcnt"),
        // rgbn is Byte.
        (&["--null-value", "-9999"], "--null-value"),
    ] {
        let mut all = vec!["segment", inp, out_s, "-q"];
        all.extend_from_slice(args);
        fails(&dir, &all, &[name]);
    }
    let o = shepseg(&[
        "worker",
        "--connect",
        "127.0.0.1:9",
        "--connect-timeout",
        "-1",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--connect-timeout"), "{err}");
    // Integer options: the argument parser's own refusal, naming the option.
    let seg = dir.join("seg.tif");
    let seg = seg.to_str().unwrap();
    for (args, name) in [
        (vec!["segment", inp, out_s, "-w", "-2"], "--workers"),
        (vec!["segment", inp, out_s, "-n", "-60"], "--nclusters"),
        (vec!["segment", inp, out_s, "-t", "-256"], "--tile-size"),
        (vec!["segment", inp, out_s, "--seed", "-1"], "--seed"),
        (vec!["segment", inp, out_s, "-b", "-1"], "--bands"),
        (
            vec!["stats", seg, inp, "-b", "1", "--stat", "mean", "-w", "-1"],
            "--workers",
        ),
        (
            vec!["subset", seg, out_s, "--srcwin", "0", "0", "-5", "5"],
            "--srcwin",
        ),
    ] {
        let o = shepseg(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "should fail: {args:?}");
        assert!(
            err.contains("invalid value '-") && err.contains(name),
            "{args:?}: {err}"
        );
        assert!(!out.exists());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Workers beyond the tiles and cores are not started: `-w 1000` on a 12-tile job costs about
/// what `-w 2` does (it took over 100 s when the fit and the stitch pool started 1000 threads
/// each), and writes the same output.
#[test]
fn a_thousand_workers_cost_what_two_do() {
    let dir = tempdir("many-workers");
    let run = |w: &str| {
        let out = dir.join(format!("w{w}.tif"));
        let t = std::time::Instant::now();
        let o = shepseg(&[
            "segment",
            rgbn().to_str().unwrap(),
            out.to_str().unwrap(),
            "-q",
            "-t",
            "128",
            "-w",
            w,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (t.elapsed(), std::fs::read(&out).unwrap())
    };
    let (two, a) = run("2");
    let (thousand, b) = run("1000");
    assert!(a == b, "the output depends on the workers");
    assert!(
        thousand < two * 5 + std::time::Duration::from_secs(5),
        "-w 1000 took {thousand:?}, -w 2 {two:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A VRT whose source file is gone: one line naming the missing source, the input and the
/// band, where GDAL's own report was "CPL error class: '3', error number: '0', error msg:
/// 'read failed'".
#[test]
fn a_missing_vrt_source_is_named() {
    let dir = tempdir("vrt-source");
    let out = dir.join("out.tif");
    // A real source, the VRT written over it, then the source deleted.
    let r = Raster::open(rgbn()).unwrap();
    let (cols, rows) = r.size();
    let img = r.read::<u8>(&[1, 2], r.full_window()).unwrap();
    let bands: Vec<Vec<u8>> = img
        .outer_iter()
        .map(|b| b.iter().copied().collect())
        .collect();
    let source = dir.join("source-gone.tif");
    write_tif::<u8>(&source, &bands, cols, rows, &[None, None]);
    let band = |b: usize| {
        format!(
            r#"<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource>
<SourceFilename relativeToVRT="0">{}</SourceFilename><SourceBand>{b}</SourceBand>
<SourceProperties RasterXSize="{cols}" RasterYSize="{rows}" DataType="Byte" BlockXSize="{cols}" BlockYSize="1"/>
</SimpleSource></VRTRasterBand>"#,
            source.display()
        )
    };
    let vrt = dir.join("in.vrt");
    std::fs::write(
        &vrt,
        format!(
            r#"<VRTDataset rasterXSize="{cols}" rasterYSize="{rows}">{}{}</VRTDataset>"#,
            band(1),
            band(2)
        ),
    )
    .unwrap();
    let (vrt_s, out_s) = (vrt.to_str().unwrap(), out.to_str().unwrap());
    // The VRT reads while its source is there.
    let ok = dir.join("ok.tif");
    let o = shepseg(&["segment", vrt_s, ok.to_str().unwrap(), "-q", "-t", "256"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_file(&source).unwrap();
    let source_s = source.to_str().unwrap();
    fails(
        &dir,
        &["segment", vrt_s, out_s],
        &[source_s, vrt_s, "band 1"],
    );
    // With the model given, the first read is a tile's, on a worker thread.
    let model = dir.join("model.json");
    std::fs::write(
        &model,
        r#"{"cluster_centers": [[10.0, 20.0], [100.0, 120.0]]}"#,
    )
    .unwrap();
    fails(
        &dir,
        &[
            "segment",
            vrt_s,
            out_s,
            "--kmeans-in",
            model.to_str().unwrap(),
            "-t",
            "256",
        ],
        &[source_s, vrt_s, "band 1"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
