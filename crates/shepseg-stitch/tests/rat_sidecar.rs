//! The attribute table sidecar shepseg writes itself must read back through GDAL exactly as
//! written, and have the layout of the one GDAL writes for the same table.

use std::path::{Path, PathBuf};

use gdal::raster::GdalDataType;
use shepseg_tiling::rat::{ColumnType, ColumnUsage, Rat, RatEditor};

/// A fresh folder holding a 4x3 UInt32 GTiff called `name`.
fn raster(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
    driver
        .create_with_band_type::<u32, _>(&path, 4, 3, 1)
        .unwrap()
        .close()
        .unwrap();
    path
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shepseg-rat-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn aux(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".aux.xml");
    PathBuf::from(s)
}

/// Sets `rat` on `path`'s band through GDAL (which writes the sidecar at close).
fn attach_with_gdal(path: &Path, rat: &Rat) {
    let ds = gdal::Dataset::open(path).unwrap();
    rat.attach(&ds.rasterband(1).unwrap()).unwrap();
    ds.close().unwrap();
}

/// Every column of `path`'s table as GDAL reads it: name, type, usage, values.
fn read_back(path: &Path) -> Vec<(String, ColumnType, ColumnUsage, Vec<f64>)> {
    let ds = gdal::Dataset::open(path).unwrap();
    let band = ds.rasterband(1).unwrap();
    assert_eq!(band.band_type(), GdalDataType::UInt32);
    let editor = RatEditor::open(&band, false).unwrap();
    editor
        .columns()
        .into_iter()
        .enumerate()
        .map(|(i, (name, ty, usage))| {
            let values = editor.read(i, 0, editor.rows()).unwrap();
            (name, ty, usage, values)
        })
        .collect()
}

#[test]
fn sidecar_has_gdal_layout_for_a_segmentation_table() {
    let dir = temp_dir("layout");
    let rows = 1000;
    let mut rat = Rat::new(rows).unwrap();
    let hist: Vec<u64> = (0..rows as u64).map(|i| (i * 7919) % 100_003).collect();
    rat.add_histogram(&hist).unwrap();
    for (name, usage, mult) in [
        ("Red", ColumnUsage::Red, 31),
        ("Green", ColumnUsage::Green, 57),
        ("Blue", ColumnUsage::Blue, 91),
    ] {
        let v: Vec<f64> = (0..rows).map(|i| ((i * mult) % 256) as f64).collect();
        rat.add_column(name, ColumnType::Integer, usage, &v)
            .unwrap();
    }
    let alpha: Vec<f64> = (0..rows)
        .map(|i| if i == 0 { 0.0 } else { 255.0 })
        .collect();
    rat.add_column("Alpha", ColumnType::Integer, ColumnUsage::Alpha, &alpha)
        .unwrap();
    let ours = raster(&dir, "ours.tif");
    let gdals = raster(&dir, "gdal.tif");
    rat.write_pam_sidecar(&aux(&ours)).unwrap();
    attach_with_gdal(&gdals, &rat);
    let (a, b) = (
        std::fs::read_to_string(aux(&ours)).unwrap(),
        std::fs::read_to_string(aux(&gdals)).unwrap(),
    );
    assert!(a.len() > 50 * rows, "a row per segment");
    assert_eq!(a, b, "the sidecar GDAL writes for the same table");
    assert_eq!(read_back(&ours), read_back(&gdals));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sidecar_reads_back_exactly() {
    let dir = temp_dir("exact");
    let reals = [
        0.0,
        0.1 + 0.2,
        1.0 / 3.0,
        -2.5,
        1e-7,
        1e300,
        -0.0,
        123_456_789.125,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE,
    ];
    let ints = [
        0.0, -1.0, 7.9, -7.9, 255.0, 2e9, -2e9, 42.0, 1.0, 0.0, 3.0, 9.0,
    ];
    let mut rat = Rat::new(reals.len()).unwrap();
    rat.add_column(
        "Band_1_mean & <\"odd\">",
        ColumnType::Real,
        ColumnUsage::Generic,
        &reals,
    )
    .unwrap();
    rat.add_column("Count", ColumnType::Integer, ColumnUsage::Generic, &ints)
        .unwrap();
    let ours = raster(&dir, "ours.tif");
    rat.write_pam_sidecar(&aux(&ours)).unwrap();
    let back = read_back(&ours);
    assert_eq!(back.len(), 2);
    assert_eq!(back[0].0, "Band_1_mean & <\"odd\">");
    assert_eq!(
        (back[0].1, back[0].2),
        (ColumnType::Real, ColumnUsage::Generic)
    );
    for (got, want) in back[0].3.iter().zip(&reals) {
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "{got} read back for {want}"
        );
    }
    assert_eq!(back[1].0, "Count");
    assert_eq!(back[1].1, ColumnType::Integer);
    // Integer columns hold what GDAL's own table would: the value truncated to an int.
    let truncated: Vec<f64> = ints.iter().map(|&v| (v as i32) as f64).collect();
    assert_eq!(back[1].3, truncated);
    let gdals = raster(&dir, "gdal.tif");
    attach_with_gdal(&gdals, &rat);
    assert_eq!(read_back(&gdals)[1].3, truncated);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A finished GdalOutput with `rat`, made with creation options `co`; its table read back.
fn finish_output(dir: &Path, co: &[&str], rat: &Rat, hist: &[u64]) -> PathBuf {
    use shepseg_stitch::{GdalOutput, OutputGeometry, OutputOptions};
    let path = dir.join(format!("out{}.tif", co.len()));
    let geometry = OutputGeometry {
        cols: 40,
        rows: 30,
        projection: String::new(),
        geo_transform: Some([500_000.0, 10.0, 0.0, 6_000_000.0, 0.0, -10.0]),
    };
    let options = OutputOptions {
        creation_options: co.iter().map(|s| s.to_string()).collect(),
        ..OutputOptions::default()
    };
    let out = GdalOutput::create(&path, &geometry, &options).unwrap();
    out.finish_with_rat(rat, hist).unwrap();
    path
}

#[test]
fn gdal_merges_the_table_when_it_writes_a_sidecar_of_its_own() {
    use gdal::Metadata;
    let dir = temp_dir("merge");
    let hist: Vec<u64> = vec![0, 5, 9, 1];
    let mut rat = Rat::new(hist.len()).unwrap();
    rat.add_histogram(&hist).unwrap();
    rat.add_column(
        "Band_1_mean",
        ColumnType::Real,
        ColumnUsage::Generic,
        &[0.0, 0.5, 1.0 / 3.0, 12.25],
    )
    .unwrap();
    // A baseline TIFF holds no GDAL metadata, so GDAL keeps it (and the nodata value) in the
    // sidecar; the default profile puts it in the TIFF, leaving the sidecar to the table.
    let baseline = finish_output(&dir, &["PROFILE=BASELINE"], &rat, &hist);
    let default = finish_output(&dir, &[], &rat, &hist);
    let text = std::fs::read_to_string(aux(&baseline)).unwrap();
    assert!(
        text.contains("LAYER_TYPE"),
        "GDAL's own sidecar content kept"
    );
    assert!(!std::fs::read_to_string(aux(&default))
        .unwrap()
        .contains("LAYER_TYPE"));
    for path in [&baseline, &default] {
        {
            let ds = gdal::Dataset::open(path).unwrap();
            let band = ds.rasterband(1).unwrap();
            assert_eq!(
                band.metadata_item("LAYER_TYPE", "").as_deref(),
                Some("thematic")
            );
            assert_eq!(band.no_data_value(), Some(0.0));
        }
        let back = read_back(path);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].3, vec![0.0, 5.0, 9.0, 1.0]);
        assert_eq!(back[1].3, vec![0.0, 0.5, 1.0 / 3.0, 12.25]);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
