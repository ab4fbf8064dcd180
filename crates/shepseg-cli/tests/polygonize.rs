//! `shepseg polygonize` and `shepseg segment --vector` from the command line: outputs with the
//! attribute table's columns, a `.vrt` segmentation without a table, `/vsis3/` outputs
//! against moto's S3, and bad input: one line, nothing left at OUTPUT.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::moto::Moto;
use common::{one_line_error, rgbn, shepseg, tempdir};
use gdal::vector::LayerAccess;
use gdal::Dataset;

fn fixture_seg() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/reference/rgbn/rgbn_inmem_minseg50.tif")
}

/// Segments in a segmentation (IDs with pixels).
fn segments(seg: &Path) -> u64 {
    let ds = Dataset::open(seg).unwrap();
    let (c, r) = ds.raster_size();
    let band = ds.rasterband(1).unwrap();
    let buf = band.read_as::<u32>((0, 0), (c, r), (c, r), None).unwrap();
    let mut ids: Vec<u32> = buf.data().iter().copied().filter(|&v| v != 0).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len() as u64
}

/// The feature count and field names of a vector file's first layer.
fn layer_info(path: &str) -> (u64, Vec<String>) {
    let ds = Dataset::open(path).unwrap();
    let layer = ds.layer(0).unwrap();
    let names = layer.defn().fields().map(|f| f.name()).collect();
    (layer.feature_count(), names)
}

/// Nothing at `out`, and no hidden partial folder beside it.
fn nothing_at(out: &Path) {
    assert!(!out.exists(), "{} was left behind", out.display());
    let dir = out.parent().unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.contains("shepseg-partial"),
            "{name} left in {}",
            dir.display()
        );
    }
}

#[test]
fn polygonize_copies_the_attribute_table() {
    let dir = tempdir("poly-columns");
    let seg = dir.join("seg.tif");
    // A segmentation with statistics: every column goes to the features by default.
    let out = shepseg(&[
        "segment",
        rgbn().to_str().unwrap(),
        seg.to_str().unwrap(),
        "-q",
        "--stats-bands",
        "1,2",
        "--stat",
        "mean",
    ]);
    assert!(out.status.success(), "{out:?}");
    let gpkg = dir.join("segs.gpkg");
    let out = shepseg(&["polygonize", seg.to_str().unwrap(), gpkg.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        report.contains("features") && report.contains("total (wall)"),
        "{report}"
    );
    let (n, fields) = layer_info(gpkg.to_str().unwrap());
    assert_eq!(n, segments(&seg));
    for f in [
        "id",
        "pixels",
        "area",
        "Histogram",
        "Band_1_mean",
        "Band_2_mean",
    ] {
        assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
    }
    // --columns chooses; "" keeps none.
    let fgb = dir.join("segs.fgb");
    let out = shepseg(&[
        "polygonize",
        seg.to_str().unwrap(),
        fgb.to_str().unwrap(),
        "--columns",
        "Band_2_mean",
        "-w",
        "3",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        layer_info(fgb.to_str().unwrap()).1,
        ["id", "pixels", "area", "Band_2_mean"]
    );
    let out = shepseg(&[
        "polygonize",
        seg.to_str().unwrap(),
        fgb.to_str().unwrap(),
        "--columns",
        "",
        "--overwrite",
        "-q",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "-q: {out:?}");
    assert_eq!(
        layer_info(fgb.to_str().unwrap()).1,
        ["id", "pixels", "area"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn segment_writes_polygons_after_the_statistics() {
    let dir = tempdir("segment-vector");
    let seg = dir.join("seg.tif");
    let vec = dir.join("segs.fgb");
    let out = shepseg(&[
        "segment",
        rgbn().to_str().unwrap(),
        seg.to_str().unwrap(),
        "-q",
        "--stats-bands",
        "4",
        "--stat",
        "max",
        "--vector",
        vec.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let (n, fields) = layer_info(vec.to_str().unwrap());
    assert_eq!(n, segments(&seg));
    assert!(fields.iter().any(|f| f == "Band_4_max"), "{fields:?}");
    // A bad --vector is refused before segmenting: nothing written at all.
    let seg2 = dir.join("seg2.tif");
    let out = shepseg(&[
        "segment",
        rgbn().to_str().unwrap(),
        seg2.to_str().unwrap(),
        "--vector",
        dir.join("segs.nope").to_str().unwrap(),
    ]);
    let err = one_line_error(&out);
    assert!(err.contains("--vector"), "{err}");
    nothing_at(&seg2);
    // So is a bad simplification tolerance.
    let out = shepseg(&[
        "segment",
        rgbn().to_str().unwrap(),
        seg2.to_str().unwrap(),
        "--vector",
        dir.join("segs2.fgb").to_str().unwrap(),
        "--vector-simplify",
        "-2",
    ]);
    let err = one_line_error(&out);
    assert!(err.contains("--vector-simplify"), "{err}");
    nothing_at(&seg2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The vertex count in `shepseg polygonize`'s report.
fn reported_vertices(out: &std::process::Output) -> u64 {
    let report = String::from_utf8_lossy(&out.stderr);
    let line = report.lines().next().unwrap_or_default();
    let at = line
        .find(" vertices)")
        .unwrap_or_else(|| panic!("{report}"));
    let digits: String = line[..at]
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.chars().rev().collect::<String>().parse().unwrap()
}

#[test]
fn simplify_keeps_every_segment_with_fewer_vertices() {
    let dir = tempdir("poly-simplify");
    let seg = fixture_seg();
    let exact = dir.join("exact.gpkg");
    let simple = dir.join("simple.gpkg");
    let out = shepseg(&["polygonize", seg.to_str().unwrap(), exact.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let exact_vertices = reported_vertices(&out);
    // The fixture's pixels are 5 map units: 1.5 pixels of tolerance.
    let out = shepseg(&[
        "polygonize",
        seg.to_str().unwrap(),
        simple.to_str().unwrap(),
        "--simplify",
        "7.5",
    ]);
    assert!(out.status.success(), "{out:?}");
    let simple_vertices = reported_vertices(&out);
    assert!(
        simple_vertices * 2 < exact_vertices,
        "{simple_vertices} vertices simplified, {exact_vertices} exact"
    );
    assert_eq!(
        layer_info(simple.to_str().unwrap()).0,
        layer_info(exact.to_str().unwrap()).0
    );
    let ds = Dataset::open(&simple).unwrap();
    let mut layer = ds.layer(0).unwrap();
    for f in layer.features() {
        assert!(f.geometry().unwrap().is_valid());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_vrt_without_a_table_has_its_pixels_counted() {
    let dir = tempdir("poly-vrt");
    let vrt = dir.join("seg.vrt");
    let st = Command::new("gdal_translate")
        .args(["-q", "-of", "VRT"])
        .arg(fixture_seg())
        .arg(&vrt)
        .status()
        .unwrap();
    assert!(st.success());
    let out_path = dir.join("segs.gpkg");
    let out = shepseg(&[
        "polygonize",
        vrt.to_str().unwrap(),
        out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("counting pixels"), "{report}");
    assert_eq!(
        layer_info(out_path.to_str().unwrap()).0,
        segments(&fixture_seg())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_one_line_nothing_at_output() {
    let dir = tempdir("poly-bad");
    let seg = fixture_seg();
    // Not a segmentation: floating-point pixels.
    let float = dir.join("float.tif");
    let st = Command::new("gdal_translate")
        .args(["-q", "-ot", "Float32"])
        .arg(&seg)
        .arg(&float)
        .status()
        .unwrap();
    assert!(st.success());
    let out_path = dir.join("out.gpkg");
    let err = one_line_error(&shepseg(&[
        "polygonize",
        float.to_str().unwrap(),
        out_path.to_str().unwrap(),
    ]));
    assert!(
        err.contains("float.tif") && err.contains("not a segmentation"),
        "{err}"
    );
    nothing_at(&out_path);
    // An unknown driver, by name or by extension.
    let err = one_line_error(&shepseg(&[
        "polygonize",
        seg.to_str().unwrap(),
        out_path.to_str().unwrap(),
        "-f",
        "NoSuchDriver",
    ]));
    assert!(
        err.contains("--format") && err.contains("NoSuchDriver"),
        "{err}"
    );
    nothing_at(&out_path);
    let odd = dir.join("out.xyz");
    let err = one_line_error(&shepseg(&[
        "polygonize",
        seg.to_str().unwrap(),
        odd.to_str().unwrap(),
    ]));
    assert!(err.contains(".xyz"), "{err}");
    nothing_at(&odd);
    // A raster-only driver cannot hold polygons.
    let err = one_line_error(&shepseg(&[
        "polygonize",
        seg.to_str().unwrap(),
        out_path.to_str().unwrap(),
        "-f",
        "GTiff",
    ]));
    assert!(err.contains("GTiff"), "{err}");
    nothing_at(&out_path);
    // A column that does not exist.
    let err = one_line_error(&shepseg(&[
        "polygonize",
        seg.to_str().unwrap(),
        out_path.to_str().unwrap(),
        "--columns",
        "Nope",
    ]));
    assert!(err.contains("--columns") && err.contains("Nope"), "{err}");
    nothing_at(&out_path);
    // A tolerance that is not a positive number.
    for bad in ["0", "-1", "nan", "inf"] {
        let err = one_line_error(&shepseg(&[
            "polygonize",
            seg.to_str().unwrap(),
            out_path.to_str().unwrap(),
            "--simplify",
            bad,
        ]));
        assert!(
            err.contains("--simplify") && err.contains("tolerance"),
            "{err}"
        );
        nothing_at(&out_path);
    }
    // A missing segmentation.
    let err = one_line_error(&shepseg(&[
        "polygonize",
        dir.join("missing.tif").to_str().unwrap(),
        out_path.to_str().unwrap(),
    ]));
    assert!(err.contains("missing.tif"), "{err}");
    nothing_at(&out_path);
    // An existing OUTPUT is kept without --overwrite.
    std::fs::write(&out_path, b"keep me").unwrap();
    let err = one_line_error(&shepseg(&[
        "polygonize",
        seg.to_str().unwrap(),
        out_path.to_str().unwrap(),
    ]));
    assert!(
        err.contains("already exists") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(std::fs::read(&out_path).unwrap(), b"keep me");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn output_on_s3() {
    let moto = Moto::start();
    moto.create_bucket("polys");
    for name in ["segs.gpkg", "segs.fgb"] {
        let target = format!("/vsis3/polys/{name}");
        let out = Command::new(env!("CARGO_BIN_EXE_shepseg"))
            .args(["polygonize", fixture_seg().to_str().unwrap(), &target, "-q"])
            .envs(moto.s3_env())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        // Read back through GDAL from the same S3.
        for (k, v) in moto.s3_env() {
            gdal::config::set_config_option(k, &v).unwrap();
        }
        assert_eq!(layer_info(&target).0, segments(&fixture_seg()), "{target}");
        // Existing now: refused without --overwrite.
        let out = Command::new(env!("CARGO_BIN_EXE_shepseg"))
            .args(["polygonize", fixture_seg().to_str().unwrap(), &target])
            .envs(moto.s3_env())
            .output()
            .unwrap();
        let err = one_line_error(&out);
        assert!(err.contains("already exists"), "{err}");
    }
}
