//! What an output records about how it was made.

use shepseg_tiling::Raster;

mod common;
use common::{rgbn, shepseg, tempdir};

/// The output says how it was made: version, mode and parameters in its metadata.
#[test]
fn the_output_records_its_mode_and_parameters() {
    let dir = tempdir("provenance");
    for (compat, mode) in [(false, "default"), (true, "pyshepseg-compat")] {
        let out = dir.join(format!("{mode}.tif"));
        let (input, output) = (rgbn(), out.to_str().unwrap().to_string());
        let mut args = vec![
            "segment",
            input.to_str().unwrap(),
            output.as_str(),
            "-q",
            "-t",
            "256",
            "-l",
            "64",
            "-s",
            "20",
        ];
        if compat {
            args.push("--pyshepseg-compat");
        }
        let o = shepseg(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r = Raster::open(&out).unwrap();
        let md = |k: &str| {
            use gdal::Metadata;
            r.dataset().metadata_item(k, "").unwrap_or_default()
        };
        assert_eq!(md("SHEPSEG_MODE"), mode);
        assert_eq!(md("SHEPSEG_VERSION"), env!("CARGO_PKG_VERSION"));
        let p: serde_json::Value = serde_json::from_str(&md("SHEPSEG_PARAMETERS")).unwrap();
        assert_eq!(p["params"]["min_segment_size"], 20);
        assert_eq!(p["params"]["pyshepseg_compat"], compat);
        assert_eq!(p["tile_size"], 256);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
