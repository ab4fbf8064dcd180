//! The tile grid and the whole-raster k-means fit against pyshepseg's tiled reference runs
//! (fixtures copied from `shared/reference`, see `testdata/README.md`).

use serde_json::Value;
use shepseg_core::{KMeansModel, SegmentParams};
use shepseg_tiling::{fit_whole_raster, fit_whole_raster_threads, Raster, TileGrid};

#[path = "../../../testdata/reference_case.rs"]
mod reference_case;
use reference_case::{bands, case, case_dir};

fn check_grid(name: &str) {
    let c = case(name);
    let r = Raster::open(case_dir(name).join(c["input"].as_str().unwrap())).unwrap();
    let (cols, rows) = r.size();
    let t = &c["tiled"];
    let grid = TileGrid::new(
        cols,
        rows,
        t["tile_size"].as_u64().unwrap() as usize,
        t["overlap_size"].as_u64().unwrap() as usize,
    )
    .unwrap();
    let expected = t["tile_grid"].as_object().unwrap();
    assert_eq!(
        grid.tiles().len(),
        expected.len(),
        "{name}: number of tiles"
    );
    for tile in grid.tiles() {
        let key = format!("{},{}", tile.col, tile.row);
        let w: Vec<u64> = expected[&key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let got = tile.window;
        assert_eq!(
            vec![got.xoff, got.yoff, got.xsize, got.ysize]
                .into_iter()
                .map(|v| v as u64)
                .collect::<Vec<_>>(),
            w,
            "{name}: tile {key}"
        );
    }
}

#[test]
fn tile_grid_equals_pyshepseg_rgbn() {
    check_grid("rgbn");
}

#[test]
fn tile_grid_equals_pyshepseg_synth8000() {
    check_grid("synth8000");
}

fn check_fit(name: &str) {
    let c = case(name);
    let t = &c["tiled"];
    let r = Raster::open(case_dir(name).join(c["input"].as_str().unwrap())).unwrap();
    let b = bands(&c);
    let null = match c["null_value"].as_f64() {
        Some(v) => Some(v),
        None => r.null_value(&b).unwrap(),
    };
    let params = SegmentParams {
        num_clusters: c["num_clusters"].as_u64().unwrap() as usize,
        fixed_kmeans_init: true,
        ..Default::default()
    };
    let fit = fit_whole_raster(&r, &b, null, None, &params).unwrap();
    assert_eq!(
        fit.subsample_pcnt,
        t["cluster_subsample_pcnt_used"].as_f64().unwrap(),
        "{name}: subsample percent"
    );
    let text =
        std::fs::read_to_string(case_dir(name).join(t["centres"].as_str().unwrap())).unwrap();
    let theirs = KMeansModel::from_json(&text).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let mut worst = 0.0f64;
    for i in 0..theirs.num_clusters() {
        for (a, b) in fit.model.centre(i).iter().zip(theirs.centre(i)) {
            worst = worst.max((a - b).abs() / b.abs().max(1.0));
        }
    }
    eprintln!(
        "{name}: whole-raster fit: {} samples, {} iterations (pyshepseg {}), largest relative centre difference {worst:.2e}",
        fit.info.num_samples, fit.info.iterations, reference["n_iter"]
    );
    assert!(worst < 1e-9, "{name}: centres differ by {worst}");
}

#[test]
fn whole_raster_fit_equals_pyshepseg_rgbn() {
    check_fit("rgbn");
}

#[test]
fn whole_raster_fit_equals_pyshepseg_synth8000() {
    check_fit("synth8000");
}

/// Reading the sample on several threads (each with its own dataset, the runs of block rows
/// joined in order) gives the one-thread sample exactly: the k-means++ fit on it, which
/// depends on the order of the samples through its draws and chunked sums, is the same to
/// the last bit, for 2, 3 and 8 threads (synth8000 has 8 rows of sampling blocks).
#[test]
fn threaded_sampling_gives_the_one_thread_fit() {
    let c = case("synth8000");
    let r = Raster::open(case_dir("synth8000").join(c["input"].as_str().unwrap())).unwrap();
    let b = bands(&c);
    let null = r.null_value(&b).unwrap();
    let params = SegmentParams {
        num_clusters: 20,
        ..Default::default()
    };
    let one = fit_whole_raster(&r, &b, null, Some(2.0), &params).unwrap();
    for threads in [2, 3, 8] {
        let many = fit_whole_raster_threads(&r, &b, null, Some(2.0), &params, threads).unwrap();
        assert_eq!(many, one, "{threads} threads");
    }
}
