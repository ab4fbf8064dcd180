//! The default mode's seamless tiles on the fixtures: at 64, 128, 256 and 1024-pixel tiles,
//! with 1 and 2 workers (and remote worker processes), the output equals the one-tile output
//! pixel for pixel, IDs included, and no valid pixel is null.

use std::path::{Path, PathBuf};

use ndarray::{Array2, Axis};
use shepseg_tiling::Raster;

mod common;
use common::{rgbn, shepseg, tempdir};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/reference")
        .join(name)
}

/// Segments `input` into `out` with the shared model and `extra` arguments.
fn segment(input: &Path, model: &Path, out: &Path, bands: &str, extra: &[&str]) -> Array2<u32> {
    let mut args = vec![
        "segment",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "-q",
        "--overwrite",
        "-b",
        bands,
        "--kmeans-in",
        model.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = shepseg(&args);
    assert!(
        o.status.success(),
        "{extra:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = Raster::open(out).unwrap();
    r.read::<u32>(&[1], r.full_window())
        .unwrap()
        .index_axis_move(Axis(0), 0)
}

/// Every tiling and worker count equals one tile; valid pixels are never null.
fn check(name: &str, input: &Path, model: &Path, bands: &str, null: Option<f64>) {
    let dir = tempdir(name);
    let out = dir.join("seg.tif");
    let whole = segment(input, model, &out, bands, &["-t", "100000", "-w", "1"]);
    let r = Raster::open(input).unwrap();
    let band_list: Vec<usize> = bands.split(',').map(|b| b.parse().unwrap()).collect();
    let img = r.read::<f64>(&band_list, r.full_window()).unwrap();
    for ((row, col), &id) in whole.indexed_iter() {
        let valid = (0..band_list.len()).all(|b| Some(img[[b, row, col]]) != null);
        assert_eq!(valid, id != 0, "{name}: pixel ({row}, {col})");
    }
    for tile in ["64", "128", "256", "1024"] {
        for workers in ["1", "2"] {
            let got = segment(input, model, &out, bands, &["-t", tile, "-w", workers]);
            assert!(
                got == whole,
                "{name}: {tile}-pixel tiles, {workers} workers differ from one tile"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rgbn_tiled_equals_one_tile() {
    check(
        "seamless-rgbn",
        &rgbn(),
        &fixture("rgbn/rgbn_tiled_kmeans.json"),
        "1,2,3,4",
        None,
    );
}

#[test]
fn synth8000_tiled_equals_one_tile() {
    check(
        "seamless-synth8000",
        &fixture("synth8000/synthetic_runtests_8000.tif"),
        &fixture("synth8000/synth8000_tiled_kmeans.json"),
        "1,2,3",
        Some(65535.0),
    );
}

/// Remote worker processes run the same analysis: their output equals the threads'.
#[test]
fn worker_processes_equal_threads() {
    let dir = tempdir("seamless-processes");
    let model = fixture("rgbn/rgbn_tiled_kmeans.json");
    let threads = segment(
        &rgbn(),
        &model,
        &dir.join("a.tif"),
        "1,2,3,4",
        &["-t", "128"],
    );
    let remote = segment(
        &rgbn(),
        &model,
        &dir.join("b.tif"),
        "1,2,3,4",
        &["-t", "128", "--executor", "processes", "-w", "2"],
    );
    assert!(remote == threads, "processes differ from threads");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An overlap is accepted and ignored in the default mode, with one warning.
#[test]
fn an_overlap_is_ignored_with_a_warning() {
    let dir = tempdir("seamless-overlap");
    let out = dir.join("seg.tif");
    let o = shepseg(&[
        "segment",
        rgbn().to_str().unwrap(),
        out.to_str().unwrap(),
        "-t",
        "256",
        "-l",
        "63",
        "--fixed-kmeans-init",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("--overlap-size is ignored").count(), 1, "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The report says what the join held in the default mode, and nothing in compatibility mode.
#[test]
fn the_report_describes_the_join() {
    let dir = tempdir("seamless-report");
    for compat in [false, true] {
        let (out, json) = (dir.join("seg.tif"), dir.join("report.json"));
        let mut args: Vec<String> = vec![
            "segment".into(),
            rgbn().to_str().unwrap().into(),
            out.to_str().unwrap().into(),
            "-q".into(),
            "--overwrite".into(),
            "-t".into(),
            "128".into(),
            "--json".into(),
            json.to_str().unwrap().into(),
        ];
        if compat {
            args.extend(["--pyshepseg-compat".into(), "-l".into(), "32".into()]);
        }
        let all: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = shepseg(&all);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let s = &r["seamless"];
        if compat {
            assert!(s.is_null(), "{s}");
            assert_eq!(r["parameters"]["overlap_size"], 32);
        } else {
            let nodes = s["nodes"].as_u64().unwrap();
            assert!(nodes >= r["num_segments"].as_u64().unwrap(), "{s}");
            assert!(s["table_bytes"].as_u64().unwrap() > nodes * 20, "{s}");
            assert!(s["undecided_singles"].as_u64().unwrap() < nodes, "{s}");
            assert_eq!(r["parameters"]["overlap_size"], 0);
            assert_eq!(r["parameters"]["tile_size"], 128);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
