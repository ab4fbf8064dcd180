//! Tiled segmentation and stitching against pyshepseg's tiled reference outputs (fixtures copied
//! from `shared/reference`, see `testdata/README.md`).

use std::collections::HashMap;
use std::path::PathBuf;

use ndarray::{s, Array2, ArrayView2};
use serde_json::Value;
use shepseg_core::{KMeansModel, SegmentParams};
use shepseg_stitch::{StitchError, StitchReport, Stitcher, TileSink};
use shepseg_tiling::{Raster, TileGrid, Window};

fn case_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/reference")
        .join(name)
}

fn case(name: &str) -> Value {
    let text = std::fs::read_to_string(case_dir(name).join("case.json")).expect("case.json");
    serde_json::from_str(&text).expect("valid case.json")
}

/// The whole output in memory.
struct MemSink(Array2<u32>);

impl TileSink for MemSink {
    fn write(&mut self, w: Window, block: ArrayView2<u32>) -> Result<(), StitchError> {
        self.0
            .slice_mut(s![w.yoff..w.yoff + w.ysize, w.xoff..w.xoff + w.xsize])
            .assign(&block);
        Ok(())
    }
    fn relabel(&mut self, lut: &[u32]) -> Result<(), StitchError> {
        self.0.mapv_inplace(|v| lut[v as usize]);
        Ok(())
    }
}

fn read_u32(path: PathBuf) -> Array2<u32> {
    let r = Raster::open(&path).unwrap();
    r.read::<u32>(&[1], r.full_window())
        .unwrap()
        .index_axis_move(ndarray::Axis(0), 0)
}

/// Runs the tiled segmentation of a reference case with its centres; returns the output, the
/// report and the input's null mask.
fn run(name: &str, compat: bool) -> (Array2<u32>, StitchReport, Array2<bool>) {
    let c = case(name);
    let t = &c["tiled"];
    let r = Raster::open(case_dir(name).join(c["input"].as_str().unwrap())).unwrap();
    let bands: Vec<usize> = c["bands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as usize)
        .collect();
    let null = c["null_value"].as_f64();
    let text =
        std::fs::read_to_string(case_dir(name).join(t["centres"].as_str().unwrap())).unwrap();
    let model = KMeansModel::from_json(&text).unwrap();
    let params = SegmentParams {
        num_clusters: c["num_clusters"].as_u64().unwrap() as usize,
        min_segment_size: t["min_segment_size"].as_u64().unwrap() as usize,
        four_connected: c["four_connected"].as_bool().unwrap(),
        pyshepseg_compat: compat,
        ..Default::default()
    };
    let (cols, rows) = r.size();
    let grid = TileGrid::new(
        cols,
        rows,
        t["tile_size"].as_u64().unwrap() as usize,
        t["overlap_size"].as_u64().unwrap() as usize,
    )
    .unwrap();
    let mut stitcher = Stitcher::new(grid.clone(), compat);
    let mut sink = MemSink(Array2::zeros((rows, cols)));
    for tile in grid.tiles() {
        let stack = r.read_stack(&bands, tile.window).unwrap();
        let res = stack.segment(null, &params, Some(&model)).unwrap();
        stitcher.push(res.segimg.view(), &mut sink).unwrap();
    }
    let report = stitcher.finish(&mut sink).unwrap();
    let full = r.read::<f64>(&bands, r.full_window()).unwrap();
    let nulls = full.map_axis(ndarray::Axis(0), |px| {
        null.is_some_and(|n| px.iter().any(|&v| v == n))
    });
    (sink.0, report, nulls)
}

fn check_compat(name: &str) {
    let c = case(name);
    let (out, report, _) = run(name, true);
    let expected = read_u32(case_dir(name).join(c["tiled"]["output"].as_str().unwrap()));
    let differ = out
        .iter()
        .zip(expected.iter())
        .filter(|(a, b)| a != b)
        .count();
    eprintln!(
        "{name}: compat stitch: {differ} of {} pixels differ from pyshepseg; {} segments (pyshepseg {})",
        out.len(),
        report.num_segments,
        c["tiled"]["num_segments"]
    );
    assert_eq!(differ, 0);
    assert_eq!(
        out.iter().filter(|&&v| v == 0).count() as u64,
        c["tiled"]["null_pixels_in_output"].as_u64().unwrap()
    );
}

#[test]
fn compat_stitch_equals_pyshepseg_rgbn() {
    check_compat("rgbn");
}

#[test]
fn compat_stitch_equals_pyshepseg_synth8000() {
    check_compat("synth8000");
}

fn check_default(name: &str) {
    let c = case(name);
    let (out, report, nulls) = run(name, false);
    let expected = read_u32(case_dir(name).join(c["tiled"]["output"].as_str().unwrap()));
    // Every valid pixel labelled, nulls null.
    let wrong_null = out
        .iter()
        .zip(nulls.iter())
        .filter(|(&v, &n)| (v == 0) != n)
        .count();
    // IDs exactly 1..N, each used.
    let mut hist = vec![0u64; report.num_segments as usize + 1];
    for &v in out.iter() {
        hist[v as usize] += 1;
    }
    let empty = hist[1..].iter().filter(|&&n| n == 0).count();
    // Partition equality on the pixels pyshepseg labelled: a segment of ours, restricted to
    // those pixels, must have the same pixel set as pyshepseg's segment there.
    let mut ours_to_theirs: HashMap<u32, Option<u32>> = HashMap::new();
    let mut size_ours: HashMap<u32, usize> = HashMap::new();
    let mut size_theirs: HashMap<u32, usize> = HashMap::new();
    for (&a, &b) in out.iter().zip(expected.iter()) {
        if b == 0 {
            continue;
        }
        *size_ours.entry(a).or_default() += 1;
        *size_theirs.entry(b).or_default() += 1;
        let e = ours_to_theirs.entry(a).or_insert(Some(b));
        if *e != Some(b) {
            *e = None;
        }
    }
    let labelled: usize = size_theirs.values().sum();
    let same: usize = size_ours
        .iter()
        .filter(|(a, n)| matches!(ours_to_theirs[a], Some(b) if size_theirs[&b] == **n))
        .map(|(_, n)| n)
        .sum();
    let share = same as f64 / labelled as f64;
    eprintln!(
        "{name}: default stitch: {wrong_null} valid pixels null, {empty} empty IDs, {} segments (pyshepseg {}), {} seam fallbacks, {} IDs closed up; partition equal to pyshepseg's on {:.4}% of the {labelled} pixels it labelled",
        report.num_segments,
        c["tiled"]["num_segments"],
        report.fallbacks,
        report.empty_ids,
        share * 100.0
    );
    assert_eq!(wrong_null, 0);
    assert_eq!(empty, 0);
    assert!(share >= 0.999, "{name}: {share}");
}

#[test]
fn default_stitch_fixes_seams_rgbn() {
    check_default("rgbn");
}

#[test]
fn default_stitch_fixes_seams_synth8000() {
    check_default("synth8000");
}
