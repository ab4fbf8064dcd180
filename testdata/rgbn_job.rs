//! The executor test suites' job: the shipped rgbn image in 128-pixel tiles with a 32-pixel
//! overlap, one model fitted with pyshepseg's fixed initialisation. Included with `#[path]` by
//! each crate's tests, so they all run the same job.

use std::path::PathBuf;

use shepseg_core::SegmentParams;
use shepseg_tiling::{fit_whole_raster, Raster, TileGrid, TileJob};

/// The rgbn tiled job.
pub fn rgbn_job() -> TileJob {
    let input =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/reference/rgbn/rgbn.tif");
    let r = Raster::open(&input).unwrap();
    let (cols, rows) = r.size();
    let bands = vec![1, 2, 3, 4];
    let params = SegmentParams {
        fixed_kmeans_init: true,
        ..Default::default()
    };
    let model = fit_whole_raster(&r, &bands, None, None, &params)
        .unwrap()
        .model;
    TileJob {
        input,
        bands,
        null: None,
        grid: TileGrid::new(cols, rows, 128, 32).unwrap(),
        model,
        params,
        sample_skip: None,
        mosaic: None,
    }
}
