//! Shared by the test suites that read `testdata/reference`: where a case lives, its
//! `case.json`, and reading a single-band UInt32 raster. Included with `#[path]` so that each
//! crate's tests use one copy.

#![allow(dead_code)]

use std::path::PathBuf;

use ndarray::Array2;
use serde_json::Value;
use shepseg_tiling::Raster;

/// The folder of reference case `name`.
pub fn case_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/reference")
        .join(name)
}

/// The case's `case.json`.
pub fn case(name: &str) -> Value {
    let text = std::fs::read_to_string(case_dir(name).join("case.json")).expect("case.json");
    serde_json::from_str(&text).expect("valid case.json")
}

/// The case's band list.
pub fn bands(c: &Value) -> Vec<usize> {
    c["bands"]
        .as_array()
        .expect("bands")
        .iter()
        .map(|b| b.as_u64().expect("band number") as usize)
        .collect()
}

/// Band 1 of a raster as UInt32.
pub fn read_u32(path: PathBuf) -> Array2<u32> {
    let r = Raster::open(&path).expect("open raster");
    r.read::<u32>(&[1], r.full_window())
        .expect("read raster")
        .index_axis_move(ndarray::Axis(0), 0)
}
