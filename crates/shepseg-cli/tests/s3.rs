//! `shepseg segment` with its input and a single-file output on S3 (moto's server on loopback,
//! through GDAL's `/vsis3/`): the same pixels and attribute table as the local run, statistics
//! included, or added afterwards by `shepseg stats` on the S3 segmentation; an existing output
//! refused; a failed job leaves no object at OUTPUT's key.

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::moto::Moto;
use common::{busy_work_dir, noisy_crop, one_line_error, rgbn, tempdir};

const BIN: &str = env!("CARGO_BIN_EXE_shepseg");

const ARGS: [&str; 8] = [
    "-t",
    "128",
    "--fixed-kmeans-init",
    "-q",
    "--stats-bands",
    "1,4",
    "--stat",
    "mean",
];

fn segment(moto: &Moto, input: &str, output: &str, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["segment", input, output])
        .args(ARGS)
        .args(extra)
        .envs(moto.s3_env())
        .output()
        .unwrap()
}

/// Band 1's pixels and its `Histogram` and `Band_1_mean` columns.
fn contents(path: &str) -> (Vec<u32>, Vec<f64>, Vec<f64>) {
    // Other processes wrote it: what this one's GDAL remembers of the folder is stale.
    shepseg_tiling::vsi::forget_cached(Path::new(path));
    let ds = gdal::Dataset::open(path).unwrap();
    let (c, r) = ds.raster_size();
    let band = ds.rasterband(1).unwrap();
    let px = band.read_as::<u32>((0, 0), (c, r), (c, r), None).unwrap();
    let col = |name: &str| shepseg_tiling::rat::read_column(&band, name).unwrap_or_default();
    (px.data().to_vec(), col("Histogram"), col("Band_1_mean"))
}

/// Segments `input` into `output` without statistics, then adds band 1 and 4 means with
/// `shepseg stats`.
fn segment_then_stats(moto: &Moto, input: &str, output: &str) {
    let out = Command::new(BIN)
        .args(["segment", input, output])
        .args(&ARGS[..4])
        .envs(moto.s3_env())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rgbn = rgbn();
    let stats = [
        "stats",
        output,
        rgbn.to_str().unwrap(),
        "-b",
        "1,4",
        "--stat",
        "mean",
    ];
    let out = Command::new(BIN)
        .args(stats)
        .envs(moto.s3_env())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn exists(path: &str) -> bool {
    shepseg_tiling::vsi::forget_cached(Path::new(path));
    shepseg_tiling::vsi::stat(Path::new(path)).is_some()
}

#[test]
fn input_and_output_on_s3_equal_the_local_run() {
    let moto = Moto::start();
    moto.create_bucket("data");
    // This thread reads and writes the same S3 (thread-local: the tests run side by side).
    for (k, v) in moto.s3_env() {
        gdal::config::set_thread_local_config_option(k, &v).unwrap();
    }
    let dir = tempdir("s3-segment");
    let input = "/vsis3/data/in/rgbn.tif";
    shepseg_tiling::vsi::upload(&rgbn(), Path::new(input)).unwrap();

    let local = dir.join("local.tif");
    let out = segment(
        &moto,
        rgbn().to_str().unwrap(),
        local.to_str().unwrap(),
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let target = "/vsis3/data/out/seg.tif";
    let out = segment(&moto, input, target, &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(exists(target) && exists(&format!("{target}.aux.xml")));
    let want = contents(local.to_str().unwrap());
    assert!(!want.2.is_empty());
    assert!(
        contents(target) == want,
        "S3 output differs from the local one"
    );

    // Statistics of an S3 segmentation, afterwards: the same columns.
    let plain = "/vsis3/data/out/plain.tif";
    segment_then_stats(&moto, input, plain);
    assert!(
        contents(plain) == want,
        "stats of the S3 segmentation differ"
    );

    // Existing now: refused without --overwrite, and replaced with it.
    let err = one_line_error(&segment(&moto, input, target, &[]));
    assert!(err.contains("already exists"), "{err}");
    let out = segment(&moto, input, target, &["--overwrite"]);
    assert!(out.status.success(), "{out:?}");
    assert!(contents(target) == want);

    // A job that fails after its output was begun leaves no object at OUTPUT's key (nor any
    // local temporary folder): here its work directory is held by a live process.
    let busy = busy_work_dir(&dir);
    let failed = "/vsis3/data/out/failed.tif";
    let err = one_line_error(&segment(
        &moto,
        input,
        failed,
        &["--work-dir", busy.to_str().unwrap()],
    ));
    assert!(err.contains("in use"), "{err}");
    assert!(!exists(failed) && !exists(&format!("{failed}.aux.xml")));
    let partial = std::env::temp_dir()
        .read_dir()
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("-failed.tif"))
        .count();
    assert_eq!(partial, 0, "a local temporary folder was left");
    // So does a missing input.
    let err = one_line_error(&segment(&moto, "/vsis3/data/in/none.tif", failed, &[]));
    assert!(err.contains("none.tif"), "{err}");
    assert!(!exists(failed));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_job_writing_to_s3_resumes_from_its_work_directory_there() {
    let moto = Moto::start();
    moto.create_bucket("jobs");
    for (k, v) in moto.s3_env() {
        gdal::config::set_thread_local_config_option(k, &v).unwrap();
    }
    let dir = tempdir("s3-resume");
    let input = dir.join("in.tif");
    noisy_crop(&input);
    let args = ["-t", "128", "--fixed-kmeans-init", "-q", "-w", "1"];
    let local = dir.join("local.tif");
    let out = Command::new(BIN)
        .args(["segment", input.to_str().unwrap(), local.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // The work directory defaults to a hidden prefix beside OUTPUT, on S3 too.
    let target = "/vsis3/jobs/out/seg.tif";
    let work = "/vsis3/jobs/out/.seg.tif.shepseg-work";
    let mut child = Command::new(BIN)
        .args(["segment", input.to_str().unwrap(), target])
        .args(args)
        .envs(moto.s3_env())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while shepseg_pipeline::finished_tiles(Path::new(work)) < 6 {
        assert!(t.elapsed().as_secs() < 120, "no tiles in {work}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: signalling our own child, not yet waited for.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    child.wait().unwrap();
    assert!(!exists(target), "killed, yet OUTPUT exists");
    let kept = shepseg_pipeline::finished_tiles(Path::new(work));

    let json = dir.join("resumed.json");
    let out = Command::new(BIN)
        .args([
            "segment",
            input.to_str().unwrap(),
            target,
            "--resume",
            "--json",
        ])
        .arg(&json)
        .args(args)
        .envs(moto.s3_env())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(r["tiles_resumed"].as_u64().unwrap() >= kept as u64, "{r}");
    let (a, b) = (contents(local.to_str().unwrap()), contents(target));
    assert!(
        a.0 == b.0 && a.1 == b.1,
        "resumed S3 output differs from the local run"
    );
    assert_eq!(
        shepseg_pipeline::finished_tiles(Path::new(work)),
        0,
        "work directory left on S3"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreachable_s3_and_missing_credentials_are_one_line_errors() {
    let dir = tempdir("s3-bad");
    let out = dir.join("out.tif");
    // No credentials anywhere.
    let no_creds = Command::new(BIN)
        .args([
            "segment",
            "/vsis3/no-such-bucket-xyz/in.tif",
            out.to_str().unwrap(),
        ])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("HOME", dir.join("nohome"))
        .output()
        .unwrap();
    // An endpoint nothing listens on.
    let unreachable = Command::new(BIN)
        .args(["segment", "/vsis3/bkt/in.tif", out.to_str().unwrap()])
        .envs([
            ("AWS_S3_ENDPOINT", "127.0.0.1:9"),
            ("AWS_HTTPS", "NO"),
            ("AWS_VIRTUAL_HOSTING", "FALSE"),
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_SECRET_ACCESS_KEY", "y"),
            ("GDAL_HTTP_MAX_RETRY", "0"),
        ])
        .output()
        .unwrap();
    for (what, run) in [("no credentials", no_creds), ("unreachable", unreachable)] {
        let err = one_line_error(&run);
        assert!(
            err.contains("in.tif") && err.contains("cannot be reached"),
            "{what}: {err}"
        );
        assert!(!out.exists(), "{what}: OUTPUT written");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_vrt_mosaic_on_s3_equals_the_local_run_with_every_executor() {
    let moto = Moto::start();
    moto.create_bucket("mosaic");
    for (k, v) in moto.s3_env() {
        gdal::config::set_thread_local_config_option(k, &v).unwrap();
    }
    let dir = tempdir("s3-mosaic");
    let input = "/vsis3/mosaic/in/rgbn.tif";
    shepseg_tiling::vsi::upload(&rgbn(), Path::new(input)).unwrap();
    let local = dir.join("local.tif");
    let out = segment(
        &moto,
        rgbn().to_str().unwrap(),
        local.to_str().unwrap(),
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let want = contents(local.to_str().unwrap());
    for (name, extra) in [
        ("threads", vec![]),
        ("procs", vec!["--executor", "processes", "-w", "2"]),
    ] {
        let target = format!("/vsis3/mosaic/out/{name}.vrt");
        let out = segment(&moto, input, &target, &extra);
        assert!(out.status.success(), "{name}: {out:?}");
        assert!(contents(&target) == want, "{name}: the S3 mosaic differs");
        // Its tiles are objects beside it, and no node image is left.
        let tiles = format!("/vsis3/mosaic/out/{name}.tiles");
        let names = shepseg_tiling::vsi::list(Path::new(&tiles));
        assert!(names.len() > 4, "{name}: {names:?}");
        assert!(
            names
                .iter()
                .all(|n| n.starts_with('x') && n.ends_with(".tif")),
            "{name}: {names:?}"
        );
    }
    // Statistics of an S3 mosaic, afterwards: its sources stay named relative to it.
    let plain = "/vsis3/mosaic/out/plain.vrt";
    segment_then_stats(&moto, input, plain);
    assert!(contents(plain) == want, "stats of the S3 mosaic differ");
    let xml = String::from_utf8(shepseg_tiling::vsi::read_all(Path::new(plain)).unwrap()).unwrap();
    assert!(
        xml.contains("relativeToVRT=\"1\">plain.tiles/") && !xml.contains("/vsis3/"),
        "{xml:.2000}"
    );
    // A job that fails leaves no VRT and no tile.
    let busy = busy_work_dir(&dir);
    let failed = "/vsis3/mosaic/out/failed.vrt";
    let err = one_line_error(&segment(
        &moto,
        input,
        failed,
        &["--work-dir", busy.to_str().unwrap()],
    ));
    assert!(err.contains("in use"), "{err}");
    assert!(!exists(failed));
    assert!(shepseg_tiling::vsi::list(Path::new("/vsis3/mosaic/out/failed.tiles")).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
