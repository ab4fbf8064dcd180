//! Per-segment statistics against pyshepseg's calcPerSegmentStatsTiled on the reference cases
//! (`testdata/reference/*/..._tiled_stats.csv`), and float images, alignment errors, spatial
//! statistics, colours and subsets, all through real GeoTIFFs.

#[path = "../../../testdata/reference_case.rs"]
mod reference_case;

use std::path::{Path, PathBuf};

use gdal::raster::Buffer;
use gdal::{Dataset, DriverManager};
use reference_case::{bands, case, case_dir};
use shepseg_stats::colour::colour_from_columns;
use shepseg_stats::subset::{subset, SubsetWindow};
use shepseg_stats::{compute_stats, parse_spatial, Stat, StatsRequest};
use shepseg_stitch::OutputOptions;
use shepseg_tiling::rat::read_column;

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shepseg-stats-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const STATS: [Stat; 6] = [
    Stat::Mean,
    Stat::Stddev,
    Stat::Min,
    Stat::Max,
    Stat::Median,
    Stat::Percentile(25),
];
const CSV_NAMES: [&str; 6] = ["mean", "stddev", "min", "max", "median", "p25"];

fn column(path: &Path, name: &str) -> Vec<f64> {
    read_column_opt(path, name).unwrap_or_else(|| panic!("no column {name}"))
}

fn read_column_opt(path: &Path, name: &str) -> Option<Vec<f64>> {
    let ds = Dataset::open(path).unwrap();
    let band = ds.rasterband(1).unwrap();
    read_column(&band, name)
}

/// The reference CSV as (header, rows).
fn csv(path: PathBuf) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap()).collect())
        .collect();
    (header, rows)
}

fn check_case(name: &str, workers: usize) {
    let c = case(name);
    let dir = case_dir(name);
    let tmp = tempdir(&format!("{name}-{workers}"));
    let seg = tmp.join("seg.tif");
    std::fs::copy(dir.join(c["stats"]["segmentation"].as_str().unwrap()), &seg).unwrap();
    let image = dir.join(c["stats"]["image"].as_str().unwrap());
    let bands = bands(&c);
    let report = compute_stats(
        &seg,
        &image,
        &StatsRequest {
            bands: bands.clone(),
            stats: STATS.to_vec(),
            workers,
            // Small strips, so many segments span strips and are merged.
            strip_rows: 61,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(report.histogram_computed, "the reference tif has no table");

    let (header, rows) = csv(dir.join(c["stats"]["table"].as_str().unwrap()));
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    let hist = column(&seg, "Histogram");
    assert_eq!(hist.len(), rows.len(), "{name}: rows");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(hist[i], r[col("Histogram")], "{name}: Histogram row {i}");
    }
    let mut compared = 0;
    for &b in &bands {
        for (s, csv_name) in STATS.iter().zip(CSV_NAMES) {
            let ours = column(&seg, &s.column_name(b));
            let theirs = col(&format!("b{b}_{csv_name}"));
            for (i, r) in rows.iter().enumerate() {
                let (a, e) = (ours[i], r[theirs]);
                if s.is_real(false) {
                    assert!(
                        (a - e).abs() <= 1e-9 * e.abs().max(1.0),
                        "{name}: band {b} {s} segment {i}: {a} vs pyshepseg {e}"
                    );
                } else {
                    assert_eq!(a, e, "{name}: band {b} {s} segment {i}");
                }
                compared += 1;
            }
        }
    }
    eprintln!("{name}: {compared} values equal to pyshepseg's ({workers} workers)");
}

#[test]
fn rgbn_statistics_equal_pyshepseg() {
    check_case("rgbn", 1);
    check_case("rgbn", 3);
}

#[test]
fn synth8000_statistics_equal_pyshepseg() {
    check_case("synth8000", 2);
}

/// Writes a small float image and a segmentation on the same grid.
fn float_fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let (cols, rows) = (6usize, 4usize);
    let img = dir.join("float.tif");
    let seg = dir.join("seg.tif");
    let gt = [500000.0, 10.0, 0.0, 4000000.0, 0.0, -10.0];
    let d = DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut ds = d
        .create_with_band_type::<f32, _>(&img, cols, rows, 1)
        .unwrap();
    ds.set_geo_transform(&gt).unwrap();
    let vals: Vec<f32> = (0..cols * rows)
        .map(|i| if i == 3 { f32::NAN } else { i as f32 * 0.5 })
        .collect();
    ds.rasterband(1)
        .unwrap()
        .write((0, 0), (cols, rows), &mut Buffer::new((cols, rows), vals))
        .unwrap();
    drop(ds);
    // Segment 1: left half; 2: right half; 3: pixel 3 only (all NaN).
    let ids: Vec<u32> = (0..cols * rows)
        .map(|i| {
            if i == 3 {
                3
            } else if i % cols < 3 {
                1
            } else {
                2
            }
        })
        .collect();
    let mut ds = d
        .create_with_band_type::<u32, _>(&seg, cols, rows, 1)
        .unwrap();
    ds.set_geo_transform(&gt).unwrap();
    ds.rasterband(1)
        .unwrap()
        .write((0, 0), (cols, rows), &mut Buffer::new((cols, rows), ids))
        .unwrap();
    (img, seg)
}

#[test]
fn float_images_with_nan_as_nodata() {
    let dir = tempdir("float");
    let (img, seg) = float_fixture(&dir);
    compute_stats(
        &seg,
        &img,
        &StatsRequest {
            bands: vec![1],
            stats: vec![Stat::Mean, Stat::Min, Stat::Max, Stat::Count, Stat::Median],
            workers: 2,
            ..Default::default()
        },
    )
    .unwrap();
    // Segment 1: columns 0..3 of 4 rows: values 0.5 * (r*6 + c).
    let seg1: Vec<f64> = (0..4)
        .flat_map(|r| (0..3).map(move |c| 0.5 * (r * 6 + c) as f64))
        .collect();
    let mean1 = seg1.iter().sum::<f64>() / seg1.len() as f64;
    assert_eq!(column(&seg, "Band_1_mean")[1], mean1);
    assert_eq!(column(&seg, "Band_1_min")[1], 0.0);
    assert_eq!(column(&seg, "Band_1_max")[1], 10.0);
    assert_eq!(column(&seg, "Band_1_count")[2], 11.0, "NaN pixel left out");
    // Segment 3 holds only the NaN pixel: missing value, count 0.
    assert_eq!(column(&seg, "Band_1_mean")[3], -9999.0);
    assert_eq!(column(&seg, "Band_1_count")[3], 0.0);
    // Float images get real columns: a fractional median survives.
    assert_eq!(column(&seg, "Band_1_median")[2], 7.5);
}

/// Infinities are no more values than NaN: a Float32 image with +inf and -inf pixels, over
/// several strips, gets the statistics of its finite pixels (finite means), and a segment of
/// infinities only gets the missing value.
#[test]
fn float_infinities_are_left_out() {
    let dir = tempdir("inf");
    let (cols, rows) = (20usize, 30usize);
    let (img, seg) = (dir.join("inf.tif"), dir.join("seg.tif"));
    let gt = [500000.0, 10.0, 0.0, 4000000.0, 0.0, -10.0];
    let d = DriverManager::get_driver_by_name("GTiff").unwrap();
    // Segment 10: the top-right 2 x 2 pixels, all infinite; the rest in 9 blocks.
    let id = |r: usize, c: usize| -> u32 {
        if r < 2 && c >= 18 {
            10
        } else {
            1 + (c / 7 + 3 * (r / 10)) as u32
        }
    };
    let value = |r: usize, c: usize| -> f32 {
        match (r * 3 + c) % 11 {
            _ if id(r, c) == 10 && (r + c).is_multiple_of(2) => f32::INFINITY,
            _ if id(r, c) == 10 => f32::NEG_INFINITY,
            0 => f32::INFINITY,
            5 => f32::NEG_INFINITY,
            _ => (r * cols + c) as f32 * 0.25,
        }
    };
    let mut ds = d
        .create_with_band_type::<f32, _>(&img, cols, rows, 1)
        .unwrap();
    ds.set_geo_transform(&gt).unwrap();
    let vals: Vec<f32> = (0..cols * rows)
        .map(|i| value(i / cols, i % cols))
        .collect();
    ds.rasterband(1)
        .unwrap()
        .write((0, 0), (cols, rows), &mut Buffer::new((cols, rows), vals))
        .unwrap();
    drop(ds);
    let mut ds = d
        .create_with_band_type::<u32, _>(&seg, cols, rows, 1)
        .unwrap();
    ds.set_geo_transform(&gt).unwrap();
    let ids: Vec<u32> = (0..cols * rows).map(|i| id(i / cols, i % cols)).collect();
    ds.rasterband(1)
        .unwrap()
        .write((0, 0), (cols, rows), &mut Buffer::new((cols, rows), ids))
        .unwrap();
    drop(ds);
    compute_stats(
        &seg,
        &img,
        &StatsRequest {
            bands: vec![1],
            stats: vec![Stat::Mean, Stat::Stddev, Stat::Min, Stat::Max, Stat::Count],
            workers: 2,
            strip_rows: 7,
            ..Default::default()
        },
    )
    .unwrap();
    let (mean, sd) = (column(&seg, "Band_1_mean"), column(&seg, "Band_1_stddev"));
    let (min, max) = (column(&seg, "Band_1_min"), column(&seg, "Band_1_max"));
    let count = column(&seg, "Band_1_count");
    for s in 1..=9u32 {
        let finite: Vec<f64> = (0..rows)
            .flat_map(|r| (0..cols).map(move |c| (r, c)))
            .filter(|&(r, c)| id(r, c) == s && value(r, c).is_finite())
            .map(|(r, c)| f64::from(value(r, c)))
            .collect();
        let n = finite.len() as f64;
        let m = finite.iter().sum::<f64>() / n;
        let (i, what) = (s as usize, format!("segment {s}"));
        assert!(mean[i].is_finite() && sd[i].is_finite(), "{what}");
        assert!(
            (mean[i] - m).abs() <= 1e-9 * m.abs().max(1.0),
            "{what}: {} vs {m}",
            mean[i]
        );
        assert_eq!(count[i], n, "{what}");
        assert_eq!(
            min[i],
            finite.iter().copied().fold(f64::INFINITY, f64::min),
            "{what}"
        );
        assert_eq!(
            max[i],
            finite.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            "{what}"
        );
    }
    assert_eq!((mean[10], count[10]), (-9999.0, 0.0), "infinities only");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn misaligned_inputs_are_refused() {
    let dir = tempdir("align");
    let (img, seg) = float_fixture(&dir);
    let d = DriverManager::get_driver_by_name("GTiff").unwrap();
    let moved = dir.join("moved.tif");
    let mut ds = d.create_with_band_type::<f32, _>(&moved, 6, 4, 1).unwrap();
    ds.set_geo_transform(&[500010.0, 10.0, 0.0, 4000000.0, 0.0, -10.0])
        .unwrap();
    drop(ds);
    let small = dir.join("small.tif");
    d.create_with_band_type::<f32, _>(&small, 5, 4, 1).unwrap();
    for (bad, what) in [(&moved, "geotransform"), (&small, "pixels")] {
        let err = compute_stats(&seg, bad, &StatsRequest::default()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(what) && msg.contains(bad.to_str().unwrap()),
            "{msg}"
        );
    }
    let err = compute_stats(
        &seg,
        &img,
        &StatsRequest {
            bands: vec![2],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("band 2"), "{err}");
}

#[test]
fn spatial_statistics_and_colours() {
    let dir = tempdir("spatial");
    let (img, seg) = float_fixture(&dir);
    let spatial = vec![
        parse_spatial("meancoord", 1, true).unwrap(),
        parse_spatial("edgepixels", 1, true).unwrap(),
        parse_spatial("variogram:2", 1, true).unwrap(),
    ];
    compute_stats(
        &seg,
        &img,
        &StatsRequest {
            bands: vec![1],
            stats: vec![Stat::Mean],
            spatial,
            strip_rows: 1,
            ..Default::default()
        },
    )
    .unwrap();
    // Segment 1: columns 0..3, rows 0..4: top-left corners average to x 1, y 1.5.
    assert_eq!(column(&seg, "Band_1_easting")[1], 500000.0 + 10.0);
    assert_eq!(column(&seg, "Band_1_northing")[1], 4000000.0 - 15.0);
    // A 3x4 block: 10 edge pixels (only (1,1) and (1,2) are interior).
    assert_eq!(column(&seg, "Band_1_edgepixels")[1], 10.0);
    // Lag 1 pairs are (y+1, x+1): value difference 0.5 * 7 = 3.5 everywhere.
    assert_eq!(column(&seg, "variogram1")[1], 3.5);
    // Segment 3 (only NaN) has no valid pixels: missing value.
    assert_eq!(column(&seg, "Band_1_easting")[3], -9999.0);

    // The spatial band need not be a statistics band: the same columns without any band stats.
    let (_, alone) = float_fixture(&tempdir("spatial-alone"));
    compute_stats(
        &alone,
        &img,
        &StatsRequest {
            bands: vec![],
            stats: vec![],
            spatial: vec![
                parse_spatial("meancoord", 1, true).unwrap(),
                parse_spatial("edgepixels", 1, true).unwrap(),
                parse_spatial("variogram:2", 1, true).unwrap(),
            ],
            spatial_band: Some(1),
            strip_rows: 3,
            ..Default::default()
        },
    )
    .unwrap();
    for name in [
        "Band_1_easting",
        "Band_1_northing",
        "Band_1_edgepixels",
        "variogram1",
        "variogram2",
    ] {
        assert_eq!(column(&alone, name), column(&seg, name), "{name}");
    }
    assert!(read_column_opt(&alone, "Band_1_mean").is_none());

    colour_from_columns(&seg, ["Band_1_mean", "Band_1_mean", "Band_1_mean"]).unwrap();
    let red = column(&seg, "Red");
    let alpha = column(&seg, "Alpha");
    assert!(red
        .iter()
        .all(|v| (0.0..=255.0).contains(v) && v.fract() == 0.0));
    assert_eq!(alpha, vec![255.0; red.len()]);
    assert_eq!(red, column(&seg, "Blue"));
}

#[test]
fn subset_renumbers_and_carries_the_table() {
    let c = case("rgbn");
    let dir = case_dir("rgbn");
    let tmp = tempdir("subset");
    let seg = tmp.join("seg.tif");
    std::fs::copy(dir.join(c["stats"]["segmentation"].as_str().unwrap()), &seg).unwrap();
    compute_stats(
        &seg,
        &dir.join("rgbn.tif"),
        &StatsRequest {
            bands: vec![1],
            stats: vec![Stat::Mean],
            ..Default::default()
        },
    )
    .unwrap();
    let out = tmp.join("sub.tif");
    let r = subset(
        &seg,
        &out,
        &SubsetWindow::SrcWin(100, 50, 200, 150),
        &OutputOptions::default(),
        Some("orig_id"),
    )
    .unwrap();
    let read = |p: &Path, x: usize, y: usize, w: usize, h: usize| -> Vec<u32> {
        let ds = Dataset::open(p).unwrap();
        ds.rasterband(1)
            .unwrap()
            .read_as::<u32>((x as isize, y as isize), (w, h), (w, h), None)
            .unwrap()
            .into_shape_and_vec()
            .1
    };
    let old = read(&seg, 100, 50, 200, 150);
    let new = read(&out, 0, 0, 200, 150);
    let orig = column(&out, "orig_id");
    let hist = column(&out, "Histogram");
    let old_mean = column(&seg, "Band_1_mean");
    let new_mean = column(&out, "Band_1_mean");
    assert_eq!(orig.len(), r.segments + 1);
    // Every pixel maps back to its original ID; IDs are 1..N in order of first appearance.
    let mut next = 1;
    let mut counts = vec![0.0; r.segments + 1];
    for (&o, &n) in old.iter().zip(&new) {
        assert_eq!(orig[n as usize], f64::from(o));
        if n as usize == next {
            next += 1;
        }
        assert!((n as usize) < next, "first appearance order");
        counts[n as usize] += 1.0;
        assert_eq!(
            new_mean[n as usize], old_mean[o as usize],
            "column carried over"
        );
    }
    assert_eq!(next, r.segments + 1);
    assert_eq!(&hist[1..], &counts[1..], "Histogram recomputed");
    let ds = Dataset::open(&out).unwrap();
    let gt = ds.geo_transform().unwrap();
    let gt0 = Dataset::open(&seg).unwrap().geo_transform().unwrap();
    assert_eq!(gt[0], gt0[0] + 100.0 * gt0[1]);
    assert_eq!(gt[3], gt0[3] + 50.0 * gt0[5]);

    // Outside the image: a clear error, nothing written.
    let bad = tmp.join("bad.tif");
    let err = subset(
        &seg,
        &bad,
        &SubsetWindow::SrcWin(500, 0, 100, 10),
        &OutputOptions::default(),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("not inside"), "{err}");
    assert!(!bad.exists());
}

#[test]
fn hfa_tables_are_written_through_and_exact() {
    // GDAL's .aux.xml keeps reals to 16 significant digits, so GTiff tables are compared with
    // a tolerance above; HFA keeps the f64 written, so here every value must equal pyshepseg's.
    let c = case("rgbn");
    let dir = case_dir("rgbn");
    let tmp = tempdir("hfa");
    let src = dir.join(c["stats"]["segmentation"].as_str().unwrap());
    let img = tmp.join("seg.img");
    let st = std::process::Command::new("gdal_translate")
        .args(["-q", "-of", "HFA"])
        .args([&src, &img])
        .status()
        .expect("gdal_translate (gdal-bin)");
    assert!(st.success());
    // The first run creates the table (the copy has none); the second edits the file's own
    // table in place, page by page.
    for _ in 0..2 {
        compute_stats(
            &img,
            &dir.join("rgbn.tif"),
            &StatsRequest {
                bands: vec![1, 2, 3, 4],
                stats: STATS.to_vec(),
                workers: 2,
                strip_rows: 37,
                ..Default::default()
            },
        )
        .unwrap();
    }
    // HFA keeps the table in the file, not in a sidecar.
    let aux = std::fs::read_to_string(tmp.join("seg.img.aux.xml")).unwrap_or_default();
    assert!(!aux.contains("GDALRasterAttributeTable"), "{aux}");
    let (header, rows) = csv(dir.join(c["stats"]["table"].as_str().unwrap()));
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    let mut compared = 0;
    for b in 1..=4 {
        for (s, csv_name) in STATS.iter().zip(CSV_NAMES) {
            let ours = column(&img, &s.column_name(b));
            let theirs = col(&format!("b{b}_{csv_name}"));
            for (i, r) in rows.iter().enumerate() {
                assert_eq!(ours[i], r[theirs], "band {b} {s} segment {i}");
                compared += 1;
            }
        }
    }
    eprintln!("rgbn (HFA): {compared} values exactly equal to pyshepseg's");
}
