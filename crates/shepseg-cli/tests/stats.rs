//! `shepseg stats`, `shepseg subset` and `shepseg segment --stats-bands` as a user runs them.

use std::path::{Path, PathBuf};
use std::process::Command;

use gdal::Dataset;
use shepseg_tiling::rat::read_column;

mod common;
use common::{rgbn, shepseg, tempdir};

fn ok(args: &[&str]) -> String {
    let out = shepseg(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {err}");
    err
}

fn column(path: &Path, name: &str) -> Option<Vec<f64>> {
    let ds = Dataset::open(path).unwrap();
    let band = ds.rasterband(1).unwrap();
    read_column(&band, name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Segments rgbn with statistics and colours in the same command.
fn segmented(dir: &Path) -> PathBuf {
    let seg = dir.join("seg.tif");
    ok(&[
        "segment",
        s(&rgbn()),
        s(&seg),
        "-t",
        "256",
        "-q",
        "--fixed-kmeans-init",
        "--stats-bands",
        "1,2,3",
        "--stat",
        "mean",
        "--stat",
        "percentile:25",
        "--colour-from-bands",
        "3,2,1",
    ]);
    seg
}

#[test]
fn segment_with_statistics_and_colours() {
    let dir = tempdir("stats-segment");
    let seg = segmented(&dir);
    let hist = column(&seg, "Histogram").unwrap();
    for b in 1..=3 {
        let mean = column(&seg, &format!("Band_{b}_mean")).unwrap();
        let p25 = column(&seg, &format!("Band_{b}_pcnt25")).unwrap();
        assert_eq!(mean.len(), hist.len());
        assert!(mean[1..].iter().all(|&m| (0.0..=255.0).contains(&m)));
        assert!(p25[1..]
            .iter()
            .zip(&mean[1..])
            .all(|(p, m)| p.fract() == 0.0 && *p <= m.ceil() + 255.0));
    }
    // Colours come from the means: a segment with a higher red mean is never less red.
    let (red, mean3) = (
        column(&seg, "Red").unwrap(),
        column(&seg, "Band_3_mean").unwrap(),
    );
    let mut pairs: Vec<(f64, f64)> = mean3.iter().copied().zip(red.iter().copied()).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        pairs.windows(2).all(|w| w[0].1 <= w[1].1),
        "red follows band 3's mean"
    );
    assert!(column(&seg, "Alpha").unwrap().iter().all(|&a| a == 255.0));
}

#[test]
fn stats_overwrites_its_columns_and_keeps_others() {
    let dir = tempdir("stats-rerun");
    let seg = segmented(&dir);
    let before = column(&seg, "Band_1_mean").unwrap();
    let err = ok(&[
        "stats",
        s(&seg),
        s(&rgbn()),
        "-b",
        "1,4",
        "--stat",
        "mean",
        "--stat",
        "mode",
        "--stat",
        "count",
        "-w",
        "2",
    ]);
    assert!(err.contains("statistics:"), "{err}");
    assert_eq!(
        column(&seg, "Band_1_mean").unwrap(),
        before,
        "same values rewritten"
    );
    assert!(
        column(&seg, "Band_3_pcnt25").is_some(),
        "other columns kept"
    );
    let count = column(&seg, "Band_4_count").unwrap();
    let hist = column(&seg, "Histogram").unwrap();
    assert_eq!(count, hist, "rgbn has no nodata: every pixel counts");
    assert!(column(&seg, "Band_4_mode").is_some());
}

#[test]
fn bad_statistics_input_gets_one_line() {
    let dir = tempdir("stats-bad");
    let seg = segmented(&dir);
    let small = dir.join("small.tif");
    let st = Command::new("gdal_translate")
        .args(["-q", "-srcwin", "0", "0", "100", "100"])
        .args([rgbn(), small.clone()])
        .status()
        .unwrap();
    assert!(st.success());
    let missing = dir.join("missing.tif");
    for (args, names) in [
        (
            vec![
                "stats",
                s(&missing),
                s(&rgbn()),
                "-b",
                "1",
                "--stat",
                "mean",
            ],
            vec!["missing.tif", "no such file"],
        ),
        (
            vec!["stats", s(&seg), s(&small), "-b", "1", "--stat", "mean"],
            vec!["small.tif", "pixels"],
        ),
        (
            vec!["stats", s(&seg), s(&rgbn()), "-b", "9", "--stat", "mean"],
            vec!["band 9"],
        ),
        (
            vec!["stats", s(&seg), s(&rgbn()), "-b", "1", "--stat", "average"],
            vec!["--stat average"],
        ),
        (
            vec![
                "stats",
                s(&seg),
                s(&rgbn()),
                "-b",
                "1,2,3",
                "--stat",
                "min",
                "--colour-from-bands",
                "1,2,3",
            ],
            vec!["--colour-from-bands", "mean"],
        ),
        (
            vec![
                "subset",
                s(&seg),
                s(&dir.join("out.tif")),
                "--srcwin",
                "500",
                "0",
                "100",
                "10",
            ],
            vec!["not inside"],
        ),
        // Checked before segmenting, not after.
        (
            vec![
                "segment",
                s(&rgbn()),
                s(&dir.join("out.tif")),
                "--stat",
                "mean",
            ],
            vec!["--stat"],
        ),
        (
            vec![
                "segment",
                s(&rgbn()),
                s(&dir.join("out.tif")),
                "--stats-bands",
                "1",
                "--stat",
                "percentile:200",
            ],
            vec!["percentile:200"],
        ),
    ] {
        let out = shepseg(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "should fail: {args:?}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        for n in names {
            assert!(err.contains(n), "{args:?}: error should name {n}: {err}");
        }
    }
    assert!(!dir.join("out.tif").exists());
}

#[test]
fn subset_by_pixels_map_window_and_mask_agree() {
    let dir = tempdir("stats-subset");
    let seg = segmented(&dir);
    let ds = Dataset::open(&seg).unwrap();
    let gt = ds.geo_transform().unwrap();
    let (a, b, c) = (dir.join("a.tif"), dir.join("b.tif"), dir.join("c.tif"));
    ok(&[
        "subset",
        s(&seg),
        s(&a),
        "--srcwin",
        "40",
        "30",
        "120",
        "90",
        "-q",
    ]);
    let (ulx, uly) = (gt[0] + 40.0 * gt[1], gt[3] + 30.0 * gt[5]);
    let (lrx, lry) = (gt[0] + 160.0 * gt[1], gt[3] + 120.0 * gt[5]);
    ok(&[
        "subset",
        s(&seg),
        s(&b),
        "--projwin",
        &ulx.to_string(),
        &uly.to_string(),
        &lrx.to_string(),
        &lry.to_string(),
        "--orig-id-column",
        "orig_id",
        "-q",
    ]);
    // A mask: the same window, all ones.
    let mask = dir.join("mask.tif");
    let st = Command::new("gdal_translate")
        .args([
            "-q", "-b", "1", "-scale", "0", "255", "1", "1", "-srcwin", "40", "30", "120", "90",
        ])
        .args([rgbn(), mask.clone()])
        .status()
        .unwrap();
    assert!(st.success());
    ok(&["subset", s(&seg), s(&c), "--mask", s(&mask), "-q"]);
    let read = |p: &Path| -> Vec<u32> {
        let ds = Dataset::open(p).unwrap();
        ds.rasterband(1)
            .unwrap()
            .read_as::<u32>((0, 0), (120, 90), (120, 90), None)
            .unwrap()
            .into_shape_and_vec()
            .1
    };
    assert_eq!(read(&a), read(&b));
    assert_eq!(read(&a), read(&c));
    assert!(column(&b, "orig_id").is_some());
    assert_eq!(
        column(&a, "Band_1_mean").unwrap(),
        column(&c, "Band_1_mean").unwrap()
    );
}

#[test]
fn spatial_statistics_from_the_command_line() {
    let dir = tempdir("stats-spatial");
    let seg = segmented(&dir);
    ok(&[
        "stats",
        s(&seg),
        s(&rgbn()),
        "-b",
        "2",
        "--stat",
        "mean",
        "--spatial",
        "meancoord",
        "--spatial",
        "edgepixels",
        "--spatial",
        "variogram:2",
        "--eight-way",
        "-q",
    ]);
    let ds = Dataset::open(&seg).unwrap();
    let gt = ds.geo_transform().unwrap();
    let (cols, rows) = ds.raster_size();
    let hist = column(&seg, "Histogram").unwrap();
    let east = column(&seg, "Band_2_easting").unwrap();
    let north = column(&seg, "Band_2_northing").unwrap();
    let edges = column(&seg, "Band_2_edgepixels").unwrap();
    for i in 1..hist.len() {
        assert!(
            east[i] >= gt[0] && east[i] <= gt[0] + gt[1] * cols as f64,
            "segment {i}"
        );
        assert!(
            north[i] <= gt[3] && north[i] >= gt[3] + gt[5] * rows as f64,
            "segment {i}"
        );
        assert!(
            edges[i] >= 1.0 && edges[i] <= hist[i],
            "segment {i}: {} of {}",
            edges[i],
            hist[i]
        );
    }
    assert!(column(&seg, "variogram1").is_some() && column(&seg, "variogram2").is_some());
    let bad = shepseg(&[
        "stats",
        s(&seg),
        s(&rgbn()),
        "-b",
        "1",
        "--stat",
        "mean",
        "--spatial",
        "variogram:x",
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--spatial") && err.contains("variogram:x"),
        "{err}"
    );
}
