//! Tiled segmentation and stitching against pyshepseg's tiled reference outputs (fixtures copied
//! from `shared/reference`, see `testdata/README.md`).

use std::collections::HashMap;

use ndarray::Array2;
use shepseg_core::{KMeansModel, SegmentParams};
use shepseg_stitch::{MemorySink, StitchError, StitchReport, Stitcher, TileSink};
use shepseg_tiling::{Raster, TileGrid, Window};

#[path = "../../../testdata/reference_case.rs"]
mod reference_case;
use reference_case::{bands, case, case_dir, read_u32};

/// The whole output in memory.
/// Runs the tiled segmentation of a reference case with its centres; returns the output, the
/// report and the input's null mask.
fn run(name: &str, compat: bool) -> (Array2<u32>, StitchReport, Array2<bool>) {
    let c = case(name);
    let r = Raster::open(case_dir(name).join(c["input"].as_str().unwrap())).unwrap();
    let (cols, rows) = r.size();
    let mut sink = MemorySink::new(rows, cols);
    let (report, nulls) = run_into(name, compat, &mut sink);
    (sink.0, report, nulls)
}

/// A reference case's input, model, parameters and tile grid.
struct Setup {
    r: Raster,
    bands: Vec<usize>,
    null: Option<f64>,
    model: KMeansModel,
    params: SegmentParams,
    grid: TileGrid,
}

impl Setup {
    /// The segmentation (local IDs) of the tile at `window`, with the case's model.
    fn segment(&self, window: Window) -> Array2<u32> {
        let stack = self.r.read_stack(&self.bands, window).unwrap();
        let res = stack.segment(self.null, &self.params, Some(&self.model));
        res.unwrap().segimg
    }
}

fn setup(name: &str, compat: bool) -> Setup {
    let c = case(name);
    let t = &c["tiled"];
    let r = Raster::open(case_dir(name).join(c["input"].as_str().unwrap())).unwrap();
    let text =
        std::fs::read_to_string(case_dir(name).join(t["centres"].as_str().unwrap())).unwrap();
    let (cols, rows) = r.size();
    let grid = TileGrid::new(
        cols,
        rows,
        t["tile_size"].as_u64().unwrap() as usize,
        t["overlap_size"].as_u64().unwrap() as usize,
    )
    .unwrap();
    Setup {
        r,
        bands: bands(&c),
        null: c["null_value"].as_f64(),
        model: KMeansModel::from_json(&text).unwrap(),
        params: SegmentParams {
            num_clusters: c["num_clusters"].as_u64().unwrap() as usize,
            min_segment_size: t["min_segment_size"].as_u64().unwrap() as usize,
            four_connected: c["four_connected"].as_bool().unwrap(),
            pyshepseg_compat: compat,
            ..Default::default()
        },
        grid,
    }
}

/// Runs a reference case's tiled segmentation into `sink`.
fn run_into(name: &str, compat: bool, sink: &mut impl TileSink) -> (StitchReport, Array2<bool>) {
    let s = setup(name, compat);
    let mut stitcher = Stitcher::new(s.grid.clone(), compat);
    for tile in s.grid.tiles() {
        stitcher.push(s.segment(tile.window).view(), sink).unwrap();
    }
    let report = stitcher.finish().unwrap();
    let full = s.r.read::<f64>(&s.bands, s.r.full_window()).unwrap();
    let nulls = full.map_axis(ndarray::Axis(0), |px| {
        s.null.is_some_and(|n| px.iter().any(|&v| v == n))
    });
    (report, nulls)
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

/// Default mode: every valid pixel labelled, IDs 1..N, and the stitched partition close to the
/// whole image segmented at once (the overlap stitch matches segments at tile midlines, so it
/// cannot be exact; pyshepseg's partition is no reference here, as its clump cap cuts large
/// areas into 10,000-pixel pieces that the default mode keeps whole).
fn check_default(name: &str, min_share: f64) {
    let (out, report, nulls) = run(name, false);
    let s = setup(name, false);
    let whole = s.segment(s.r.full_window());
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
    // Partition equality: a stitched segment must have the same pixel set as the whole-image
    // segment under it.
    let mut ours_to_whole: HashMap<u32, Option<u32>> = HashMap::new();
    let mut size_ours: HashMap<u32, usize> = HashMap::new();
    let mut size_whole: HashMap<u32, usize> = HashMap::new();
    for (&a, &b) in out.iter().zip(whole.iter()) {
        if b == 0 {
            continue;
        }
        *size_ours.entry(a).or_default() += 1;
        *size_whole.entry(b).or_default() += 1;
        let e = ours_to_whole.entry(a).or_insert(Some(b));
        if *e != Some(b) {
            *e = None;
        }
    }
    let labelled: usize = size_whole.values().sum();
    let same: usize = size_ours
        .iter()
        .filter(|(a, n)| matches!(ours_to_whole[a], Some(b) if size_whole[&b] == **n))
        .map(|(_, n)| n)
        .sum();
    let share = same as f64 / labelled as f64;
    eprintln!(
        "{name}: default stitch: {wrong_null} valid pixels null, {empty} empty IDs, {} segments (whole image {}), {} seam fallbacks; partition equal to the whole image's on {:.4}% of {labelled} pixels",
        report.num_segments,
        whole.iter().copied().max().unwrap_or(0),
        report.fallbacks,
        share * 100.0
    );
    assert_eq!(wrong_null, 0);
    assert_eq!(empty, 0);
    assert_eq!(report.empty_ids, 0);
    assert!(share >= min_share, "{name}: {share}");
}

#[test]
fn default_stitch_fixes_seams_rgbn() {
    check_default("rgbn", 0.95);
}

#[test]
fn default_stitch_fixes_seams_synth8000() {
    check_default("synth8000", 0.98);
}

/// The GeoTIFF written through GDAL: pixels, nodata, metadata, attribute table, overviews, and
/// nothing left behind but the output and its sidecar.
fn check_gdal_output(name: &str, compat: bool) {
    use gdal::Metadata;
    use shepseg_stitch::{GdalOutput, OutputGeometry, OutputOptions};
    let c = case(name);
    let input = Raster::open(case_dir(name).join(c["input"].as_str().unwrap())).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "shepseg-test-{name}-{compat}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out_path = dir.join("seg.tif");
    let mut out = GdalOutput::create(
        &out_path,
        &OutputGeometry::of(input.dataset()),
        &OutputOptions::default(),
    )
    .unwrap();
    assert!(!out_path.exists(), "nothing at OUTPUT while writing");
    let (report, _) = run_into(name, compat, &mut out);
    out.finish(&report).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        vec!["seg.tif".to_string(), "seg.tif.aux.xml".to_string()]
    );

    let ds = gdal::Dataset::open(&out_path).unwrap();
    let band = ds.rasterband(1).unwrap();
    assert_eq!(band.band_type(), gdal::raster::GdalDataType::UInt32);
    assert_eq!(band.no_data_value(), Some(0.0));
    assert_eq!(
        band.metadata_item("LAYER_TYPE", "").as_deref(),
        Some("thematic")
    );
    assert_eq!(
        ds.geo_transform().ok(),
        input.dataset().geo_transform().ok()
    );
    assert_eq!(ds.projection(), input.dataset().projection());
    let pixels = read_u32(out_path.clone());
    if compat {
        let expected = read_u32(case_dir(name).join(c["tiled"]["output"].as_str().unwrap()));
        assert_eq!(pixels, expected);
    }
    let hist = shepseg_tiling::rat::read_column(&band, "Histogram").expect("Histogram column");
    let mut counted = vec![0f64; hist.len()];
    for &v in pixels.iter() {
        if v != 0 {
            counted[v as usize] += 1.0;
        }
    }
    assert_eq!(hist, counted);
    for col in ["Red", "Green", "Blue", "Alpha"] {
        let v = shepseg_tiling::rat::read_column(&band, col).expect(col);
        assert_eq!(v.len(), hist.len());
    }
    assert_eq!(
        shepseg_tiling::rat::read_column(&band, "Alpha").unwrap()[0],
        0.0
    );
    let max = pixels.iter().copied().max().unwrap();
    assert_eq!(
        band.metadata_item("STATISTICS_MAXIMUM", "").as_deref(),
        Some(max.to_string().as_str())
    );
    let (cols, rows) = input.size();
    let levels = shepseg_stitch::overview_levels(cols.max(rows));
    assert_eq!(band.overview_count().unwrap() as usize, levels.len());
    for (j, lvl) in levels.iter().enumerate() {
        let ov = band.overview(j).unwrap();
        let (oc, or) = ov.size();
        let data = ov.read_as::<u32>((0, 0), (oc, or), (oc, or), None).unwrap();
        // Every overview pixel holds an ID of the full-resolution image.
        assert!(
            data.data().iter().all(|&v| (v as usize) < hist.len()),
            "level {lvl}"
        );
        assert!(data.data().iter().any(|&v| v != 0), "level {lvl} written");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gdal_output_rgbn_compat() {
    check_gdal_output("rgbn", true);
}

#[test]
fn gdal_output_rgbn_default() {
    check_gdal_output("rgbn", false);
}

#[test]
fn gdal_output_synth8000_default_with_overviews() {
    check_gdal_output("synth8000", false);
}

#[test]
fn unfinished_output_leaves_nothing() {
    use shepseg_stitch::{GdalOutput, OutputGeometry, OutputOptions};
    let dir = std::env::temp_dir().join(format!("shepseg-test-unfinished-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("out.tif");
    let geom = OutputGeometry {
        cols: 64,
        rows: 64,
        projection: String::new(),
        geo_transform: None,
    };
    let mut out = GdalOutput::create(&path, &geom, &OutputOptions::default()).unwrap();
    let window = Window {
        xoff: 0,
        yoff: 0,
        xsize: 64,
        ysize: 32,
    };
    let block = out
        .block_prep()
        .prepare(window, Array2::from_elem((32, 64), 1u32))
        .unwrap();
    out.write(block).unwrap();
    drop(out);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    // An existing OUTPUT is refused without overwrite, and names the file.
    std::fs::write(&path, b"x").unwrap();
    let e = GdalOutput::create(&path, &geom, &OutputOptions::default())
        .err()
        .unwrap();
    // Library errors name no command-line option; the CLI adds them.
    assert!(
        matches!(&e, StitchError::Exists(p) if p == &path)
            && e.to_string().contains("out.tif: already exists")
            && !e.to_string().contains("--"),
        "{e}"
    );
    let bad = OutputOptions {
        driver: "NoSuchDriver".into(),
        overwrite: true,
        ..Default::default()
    };
    let e = GdalOutput::create(&path, &geom, &bad).err().unwrap();
    assert!(matches!(&e, StitchError::Driver { driver, .. } if driver == "NoSuchDriver"));
    assert!(
        e.to_string().contains("NoSuchDriver: no such GDAL driver"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// HFA keeps the table in the file; COG is a final copy. Both read back with the same pixels
/// and histogram as the in-memory stitch.
#[test]
fn other_output_formats() {
    use shepseg_stitch::{GdalOutput, OutputGeometry, OutputOptions};
    let c = case("rgbn");
    let input = Raster::open(case_dir("rgbn").join(c["input"].as_str().unwrap())).unwrap();
    let (expected, _, _) = run("rgbn", false);
    for (driver, file) in [("HFA", "seg.img"), ("COG", "seg.tif")] {
        let dir =
            std::env::temp_dir().join(format!("shepseg-test-{driver}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file);
        let opts = OutputOptions {
            driver: driver.into(),
            ..Default::default()
        };
        let mut out =
            GdalOutput::create(&path, &OutputGeometry::of(input.dataset()), &opts).unwrap();
        let (report, _) = run_into("rgbn", false, &mut out);
        out.finish(&report).unwrap();
        let leftovers: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{driver}: {leftovers:?}");
        let ds = gdal::Dataset::open(&path).unwrap();
        assert_eq!(
            ds.driver().short_name(),
            if driver == "COG" { "GTiff" } else { driver }
        );
        assert_eq!(read_u32(path.clone()), expected, "{driver}: pixels");
        let band = ds.rasterband(1).unwrap();
        let hist = shepseg_tiling::rat::read_column(&band, "Histogram").expect("Histogram");
        let h: Vec<f64> = report.histogram.iter().map(|&v| v as f64).collect();
        assert_eq!(hist, h, "{driver}: histogram");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// The parallel stitcher gives the sequential one's output and report, in both modes.
fn check_parallel(name: &str) {
    for compat in [true, false] {
        let s = setup(name, compat);
        let grid = &s.grid;
        let (cols, rows) = s.r.size();
        let tiles: Vec<Array2<u32>> = grid.tiles().iter().map(|t| s.segment(t.window)).collect();
        let mut seq = MemorySink::new(rows, cols);
        let mut stitcher = Stitcher::new(grid.clone(), compat);
        for seg in &tiles {
            stitcher.push(seg.view(), &mut seq).unwrap();
        }
        let seq_report = stitcher.finish().unwrap();
        for threads in [1, 3] {
            let mut par = MemorySink::new(rows, cols);
            let mut ps = shepseg_stitch::ParallelStitcher::new(grid.clone(), compat, threads);
            for seg in &tiles {
                ps.push(seg.clone(), &mut par).unwrap();
            }
            ps.flush(&mut par).unwrap();
            assert_eq!(ps.take_serial_times().len(), tiles.len());
            let report = ps.finish(&mut par).unwrap();
            assert_eq!(
                report, seq_report,
                "{name} compat={compat} threads={threads}"
            );
            assert!(
                par.0 == seq.0,
                "{name} compat={compat} threads={threads}: pixels differ"
            );
        }
        eprintln!(
            "{name}: parallel stitcher (1 and 3 threads) = sequential, compat={compat}, {} tiles",
            tiles.len()
        );
    }
}

#[test]
fn parallel_stitcher_equals_sequential_rgbn() {
    check_parallel("rgbn");
}

#[test]
fn parallel_stitcher_equals_sequential_synth8000() {
    check_parallel("synth8000");
}

/// Stitches `tiles` (default mode) into `sink`, with the parallel stitcher (3 threads) or the
/// sequential one.
fn stitch_tiles(
    grid: &TileGrid,
    tiles: &[Array2<u32>],
    parallel: bool,
    sink: &mut impl TileSink,
) -> StitchReport {
    if parallel {
        let mut ps = shepseg_stitch::ParallelStitcher::new(grid.clone(), false, 3);
        for seg in tiles {
            ps.push(seg.clone(), sink).unwrap();
        }
        ps.finish(sink).unwrap()
    } else {
        let mut st = Stitcher::new(grid.clone(), false);
        for seg in tiles {
            st.push(seg.view(), sink).unwrap();
        }
        st.finish().unwrap()
    }
}

/// Every overview of `path`, level by level.
fn read_overviews(path: &std::path::Path) -> Vec<Vec<u32>> {
    let ds = gdal::Dataset::open(path).unwrap();
    let band = ds.rasterband(1).unwrap();
    (0..band.overview_count().unwrap() as usize)
        .map(|j| {
            let ov = band.overview(j).unwrap();
            let (c, r) = ov.size();
            ov.read_as::<u32>((0, 0), (c, r), (c, r), None)
                .unwrap()
                .data()
                .to_vec()
        })
        .collect()
}

/// The parallel stitcher subsamples blocks for the overviews on its pool; what it writes must
/// be what the sequential stitcher's sink subsamples itself, and pyshepseg's subsampling of
/// the full-resolution result (every level-th pixel from level / 2 in, tile by tile).
#[test]
fn parallel_stitcher_writes_the_sequential_overviews() {
    use shepseg_stitch::{GdalOutput, OutputGeometry, OutputOptions};
    let s = setup("synth8000", false);
    let tiles: Vec<Array2<u32>> = s.grid.tiles().iter().map(|t| s.segment(t.window)).collect();
    let dir = std::env::temp_dir().join(format!("shepseg-test-ovr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let geometry = OutputGeometry::of(s.r.dataset());
    let (cols, rows) = s.r.size();
    let mut full = MemorySink::new(rows, cols);
    stitch_tiles(&s.grid, &tiles, false, &mut full);
    let mut outputs = Vec::new();
    for parallel in [false, true] {
        let path = dir.join(format!("seg-{parallel}.tif"));
        let mut out = GdalOutput::create(&path, &geometry, &OutputOptions::default()).unwrap();
        let report = stitch_tiles(&s.grid, &tiles, parallel, &mut out);
        out.finish(&report).unwrap();
        outputs.push(read_overviews(&path));
    }
    assert_eq!(outputs[0].len(), 2, "synth8000 has overviews at 4 and 8");
    assert_eq!(outputs[0], outputs[1], "parallel overviews = sequential");
    // The trimmed tiles start on multiples of 256 here (tile 2048, overlap 512), so the
    // tile-by-tile subsample is the whole image's.
    let levels = shepseg_stitch::overview_levels(cols.max(rows));
    for (lvl, ov) in levels.iter().zip(&outputs[0]) {
        let ocols = cols.div_ceil(*lvl);
        let mut checked = 0;
        for (y, row) in ov.chunks(ocols).enumerate() {
            for (x, &v) in row.iter().enumerate() {
                let (fy, fx) = (y * lvl + lvl / 2, x * lvl + lvl / 2);
                if fy < rows && fx < cols {
                    assert_eq!(v, full.0[[fy, fx]], "level {lvl} at ({x}, {y})");
                    checked += 1;
                }
            }
        }
        eprintln!("level {lvl}: {checked} overview pixels equal the full image's");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The raw tile writer (the default GTiff path: tiles compressed on the stitch pool and
/// appended through libtiff) writes what GDAL writes, pixels and overviews, on a grid whose
/// block edges are not on the 256-pixel TIFF tile grid (so tiles and overview tiles are
/// assembled from pieces of several blocks).
#[test]
fn raw_tiles_equal_gdal_writes_on_an_unaligned_grid() {
    use shepseg_stitch::{GdalOutput, OutputGeometry, OutputOptions};
    let mut s = setup("synth8000", false);
    let (cols, rows) = s.r.size();
    s.grid = TileGrid::new(cols, rows, 1500, 300).unwrap();
    let tiles: Vec<Array2<u32>> = s.grid.tiles().iter().map(|t| s.segment(t.window)).collect();
    let dir = std::env::temp_dir().join(format!("shepseg-test-raw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let geometry = OutputGeometry::of(s.r.dataset());
    let mut mem = MemorySink::new(rows, cols);
    stitch_tiles(&s.grid, &tiles, false, &mut mem);
    let mut written = Vec::new();
    for (raw, parallel) in [(true, true), (true, false), (false, true)] {
        let path = dir.join(format!("seg-{raw}-{parallel}.tif"));
        let options = OutputOptions {
            // Any creation option given takes the GDAL path.
            creation_options: if raw {
                vec![]
            } else {
                vec!["ZSTD_LEVEL=1".into()]
            },
            ..Default::default()
        };
        let mut out = GdalOutput::create(&path, &geometry, &options).unwrap();
        assert_eq!(out.writes_raw(), raw);
        let report = stitch_tiles(&s.grid, &tiles, parallel, &mut out);
        out.finish(&report).unwrap();
        let ds = gdal::Dataset::open(&path).unwrap();
        use gdal::Metadata;
        assert_eq!(
            ds.metadata_item("COMPRESSION", "IMAGE_STRUCTURE")
                .as_deref(),
            Some("ZSTD")
        );
        written.push((read_u32(path.clone()), read_overviews(&path)));
    }
    assert_eq!(written[0].1.len(), 2, "synth8000 has overviews at 4 and 8");
    assert!(written[0].0 == mem.0, "raw: the stitched pixels");
    assert!(written[0] == written[1], "raw: parallel = sequential");
    assert!(written[0] == written[2], "raw = GDAL");
    std::fs::remove_dir_all(&dir).unwrap();
}
