//! Mosaic outputs: OUTPUT ending in `.vrt` is a folder of Cloud-Optimised GeoTIFF tiles
//! beside a VRT holding the attribute table, equal to the single-file output with every
//! executor, relative to where it lies, refused, replaced and cleaned up as other outputs are.

use std::path::{Path, PathBuf};

use gdal::{Dataset, Metadata};
use std::process::Output;

mod common;
use common::{one_line_error, pixels, rgbn, shepseg, tempdir};

fn model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/reference/rgbn/rgbn_tiled_kmeans.json")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `shepseg segment INPUT OUT -q` with the shared model and `extra`.
fn run(input: &Path, out: &Path, extra: &[&str]) -> Output {
    let model = model();
    let mut args = vec!["segment", s(input), s(out), "-q", "--kmeans-in", s(&model)];
    args.extend_from_slice(extra);
    shepseg(&args)
}

/// Segments rgbn into `out` at 128-pixel tiles, with band means and `extra`.
fn segment(out: &Path, extra: &[&str]) {
    let mut args = vec!["-t", "128", "--stat", "mean", "--stats-bands", "1,3"];
    args.extend_from_slice(extra);
    let o = run(&rgbn(), out, &args);
    assert!(
        o.status.success(),
        "{extra:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The attribute table's columns that both outputs have, by name.
fn columns(path: &Path) -> Vec<(String, Vec<f64>)> {
    let ds = Dataset::open(path).unwrap();
    let band = ds.rasterband(1).unwrap();
    ["Histogram", "Red", "Alpha", "Band_1_mean", "Band_3_mean"]
        .iter()
        .map(|c| {
            let col = shepseg_tiling::rat::read_column(&band, c)
                .unwrap_or_else(|| panic!("{}: no column {c}", path.display()));
            (c.to_string(), col)
        })
        .collect()
}

#[test]
fn a_vrt_output_equals_the_gtiff_output_with_every_executor() {
    let dir = tempdir("mosaic-equal");
    let tif = dir.join("seg.tif");
    segment(&tif, &["-w", "1"]);
    let (want_px, want_cols) = (pixels(&tif), columns(&tif));
    for (name, extra) in [
        ("threads", vec!["-w", "2"]),
        ("processes", vec!["-w", "2", "--executor", "processes"]),
    ] {
        let vrt = dir.join(format!("{name}.vrt"));
        segment(&vrt, &extra);
        assert!(pixels(&vrt) == want_px, "{name}: pixels differ");
        assert_eq!(columns(&vrt), want_cols, "{name}: attribute table differs");
        let ds = Dataset::open(&vrt).unwrap();
        assert_eq!(ds.driver().short_name(), "VRT");
        let band = ds.rasterband(1).unwrap();
        assert_eq!(
            band.metadata_item("LAYER_TYPE", "").as_deref(),
            Some("thematic")
        );
        assert!(band.metadata_item("STATISTICS_MAXIMUM", "").is_some());
        assert_eq!(
            ds.metadata_item("SHEPSEG_MODE", "").as_deref(),
            Some("default")
        );
        // Every tile is a COG of its own, georeferenced where it lies.
        let tiles: Vec<_> = std::fs::read_dir(dir.join(format!("{name}.tiles")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(tiles.len() > 4, "{name}: {} tiles", tiles.len());
        let gt = Dataset::open(&tif).unwrap().geo_transform().unwrap();
        for t in &tiles {
            let ds = Dataset::open(t).unwrap();
            assert_eq!(
                ds.metadata_item("LAYOUT", "IMAGE_STRUCTURE").as_deref(),
                Some("COG"),
                "{}",
                t.display()
            );
            let tgt = ds.geo_transform().unwrap();
            let stem = t.file_stem().unwrap().to_string_lossy().into_owned();
            let (x, y) = stem[1..].split_once("_y").unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert_eq!(tgt[0], gt[0] + x * gt[1]);
            assert_eq!(tgt[3], gt[3] + y * gt[5]);
        }
    }
    // The VRT names its tiles relative to itself: the pair can move.
    let moved = dir.with_extension("moved");
    let _ = std::fs::remove_dir_all(&moved);
    std::fs::rename(&dir, &moved).unwrap();
    assert!(pixels(&moved.join("threads.vrt")) == want_px);
    std::fs::remove_dir_all(&moved).unwrap();
}

#[test]
fn a_vrt_output_is_refused_replaced_and_cleaned_up_as_others_are() {
    let dir = tempdir("mosaic-refuse");
    let vrt = dir.join("seg.vrt");
    let tiles = dir.join("seg.tiles");
    segment(&vrt, &[]);
    let first = pixels(&vrt);
    // Another tile size from here on: it does not change the result.
    let input = rgbn();
    let again = |out: &Path, extra: &[&str]| {
        let mut args = vec!["-t", "200"];
        args.extend_from_slice(extra);
        run(&input, out, &args)
    };
    // An existing output, or its tile folder holding anything else, is refused without
    // --overwrite.
    let err = one_line_error(&again(&vrt, &[]));
    assert!(
        err.contains("seg.vrt") && err.contains("--overwrite"),
        "{err}"
    );
    std::fs::remove_file(&vrt).unwrap();
    std::fs::write(tiles.join("notes.txt"), b"mine").unwrap();
    let err = one_line_error(&again(&vrt, &[]));
    assert!(
        err.contains("seg.tiles") && err.contains("--overwrite"),
        "{err}"
    );
    assert!(!vrt.exists() && tiles.join("notes.txt").exists());
    std::fs::remove_file(tiles.join("notes.txt")).unwrap();
    // Tiles and node images without their VRT are what an interrupted job left: taken over,
    // and what the new tiling does not use is deleted.
    let strays = [tiles.join("x9999_y9999.tif"), tiles.join(".x9999_y0.nodes")];
    for f in &strays {
        std::fs::write(f, b"stale").unwrap();
    }
    let o = again(&vrt, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(strays.iter().all(|f| !f.exists()));
    assert!(
        pixels(&vrt) == first,
        "the tile size does not change the result"
    );
    // --overwrite replaces the mosaic, foreign files and all.
    std::fs::write(tiles.join("notes.txt"), b"mine").unwrap();
    let o = again(&vrt, &["--overwrite"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!tiles.join("notes.txt").exists());
    assert!(pixels(&vrt) == first);
    // A job that fails leaves neither the VRT nor its tiles.
    let broken = dir.join("broken.tif");
    let bytes = std::fs::read(rgbn()).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = dir.join("failed.vrt");
    let o = run(&broken, &out, &["-t", "128"]);
    let err = one_line_error(&o);
    assert!(err.contains("broken.tif"), "{err}");
    assert!(!out.exists() && !dir.join("failed.tiles").exists());
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.iter().all(|n| !n.starts_with(".failed")),
        "left behind: {left:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
