//! The polygons are the segmentation: rasterised back onto the raster's grid with
//! `gdal_rasterize` they give it pixel for pixel, every geometry is valid (GEOS, through OGR),
//! there is one feature per segment, and each area is its pixel count times the pixel area.
//! On crafted images (holes, islands in holes, corner touches, one-pixel segments, segments in
//! pieces), on random ones, and on the shipped fixtures; for any strip height and thread count.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use gdal::raster::Buffer;
use gdal::spatial_ref::SpatialRef;
use gdal::vector::LayerAccess;
use gdal::{Dataset, DriverManager};
use shepseg_polygonize::{polygonize, PolygonizeJob};

const GT: [f64; 6] = [500_000.0, 30.0, 0.0, 4_000_000.0, 0.0, -30.0];

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shepseg-poly-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `labels` as a UInt32 GeoTIFF on the UTM grid `GT`.
fn write_seg(path: &Path, labels: &[u32], cols: usize, rows: usize, nodata: Option<f64>) {
    let drv = DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut ds = drv
        .create_with_band_type::<u32, _>(path, cols, rows, 1)
        .unwrap();
    ds.set_geo_transform(&GT).unwrap();
    ds.set_spatial_ref(&SpatialRef::from_epsg(32618).unwrap())
        .unwrap();
    let mut band = ds.rasterband(1).unwrap();
    if let Some(v) = nodata {
        band.set_no_data_value(Some(v)).unwrap();
    }
    let mut buf = Buffer::new((cols, rows), labels.to_vec());
    band.write((0, 0), (cols, rows), &mut buf).unwrap();
}

fn read_u32(path: &Path) -> (Vec<u32>, usize, usize, [f64; 6]) {
    let ds = Dataset::open(path).unwrap();
    let (cols, rows) = ds.raster_size();
    let band = ds.rasterband(1).unwrap();
    let buf = band
        .read_as::<u32>((0, 0), (cols, rows), (cols, rows), None)
        .unwrap();
    (buf.data().to_vec(), cols, rows, ds.geo_transform().unwrap())
}

fn run(seg: &Path, out: &Path, strip_rows: usize, workers: usize) {
    run_simplified(seg, out, strip_rows, workers, None);
}

fn run_simplified(
    seg: &Path,
    out: &Path,
    strip_rows: usize,
    workers: usize,
    simplify: Option<f64>,
) -> u64 {
    polygonize(
        &PolygonizeJob {
            segfile: seg.to_path_buf(),
            output: out.to_path_buf(),
            driver: None,
            columns: None,
            workers,
            overwrite: true,
            strip_rows,
            simplify,
        },
        None,
    )
    .unwrap_or_else(|e| panic!("polygonize {}: {e}", seg.display()))
    .vertices
}

/// `gdal_rasterize` of `vector`'s `id` onto `seg`'s grid.
fn rasterize_back(vector: &Path, seg: &Path, dir: &Path) -> Vec<u32> {
    let (_, cols, rows, gt) = read_u32(seg);
    let back = dir.join("back.tif");
    let _ = std::fs::remove_file(&back);
    let (xmin, ymax) = (gt[0], gt[3]);
    let (xmax, ymin) = (gt[0] + cols as f64 * gt[1], gt[3] + rows as f64 * gt[5]);
    let status = Command::new("gdal_rasterize")
        .args(["-q", "-a", "id", "-ot", "UInt32", "-init", "0", "-te"])
        .args([xmin, ymin, xmax, ymax].map(|v| v.to_string()))
        .args(["-ts", &cols.to_string(), &rows.to_string()])
        .arg(vector)
        .arg(&back)
        .status()
        .expect("run gdal_rasterize (gdal-bin)");
    assert!(status.success());
    read_u32(&back).0
}

/// Checks every feature of `vector` against `labels` (0 and `null` are null).
fn check_features(vector: &Path, labels: &[u32], null: Option<u32>, pixel_area: f64) {
    // FlatGeobuf's spatial index stores features in its own (Hilbert) order.
    let in_id_order = vector.extension().is_some_and(|e| e == "gpkg");
    let mut counts: HashMap<u32, u64> = HashMap::new();
    for &v in labels {
        if v != 0 && Some(v) != null {
            *counts.entry(v).or_default() += 1;
        }
    }
    let ds = Dataset::open(vector).unwrap();
    let mut layer = ds.layer(0).unwrap();
    let mut seen = 0usize;
    let mut last_id = 0i64;
    for f in layer.features() {
        let id = f.field_as_integer64(0).unwrap().unwrap();
        let pixels = f.field_as_integer64(1).unwrap().unwrap();
        let area = f.field_as_double(2).unwrap().unwrap();
        if in_id_order {
            assert!(id > last_id, "features in ID order: {id} after {last_id}");
        }
        last_id = id;
        let want = counts.get(&(id as u32)).copied().unwrap_or(0);
        assert_eq!(pixels as u64, want, "pixel count of segment {id}");
        assert_eq!(area, want as f64 * pixel_area, "area of segment {id}");
        let g = f.geometry().unwrap();
        assert!(
            g.is_valid(),
            "segment {id}: invalid geometry {}",
            g.wkt().unwrap()
        );
        let rel = (g.area() - area).abs() / area;
        assert!(
            rel < 1e-9,
            "segment {id}: geometry area {} vs {area}",
            g.area()
        );
        seen += 1;
    }
    assert_eq!(seen, counts.len(), "one feature per segment");
}

/// Each feature's `id` and WKB, by ID.
fn features_by_id(vector: &Path) -> std::collections::BTreeMap<i64, Vec<u8>> {
    let ds = Dataset::open(vector).unwrap();
    let mut layer = ds.layer(0).unwrap();
    layer
        .features()
        .map(|f| {
            let id = f.field_as_integer64(0).unwrap().unwrap();
            (id, f.geometry().unwrap().wkb().unwrap())
        })
        .collect()
}

/// The union of `geoms` (pairwise, as a balanced tree), its area and its ring count.
fn union_of(mut geoms: Vec<gdal::vector::Geometry>) -> (f64, usize) {
    while geoms.len() > 1 {
        let mut next = Vec::with_capacity(geoms.len().div_ceil(2));
        let mut it = geoms.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => a.union(&b).expect("union"),
                None => a,
            });
        }
        geoms = next;
    }
    let Some(u) = geoms.pop() else {
        return (0.0, 0);
    };
    let polygon_rings = |g: &gdal::vector::GeometryRef<'_>| g.geometry_count();
    let rings = match gdal::vector::geometry_type_flatten(u.geometry_type()) {
        gdal::vector::OGRwkbGeometryType::wkbPolygon => u.geometry_count(),
        _ => (0..u.geometry_count())
            .map(|i| polygon_rings(&u.get_geometry(i)))
            .sum(),
    };
    (u.area(), rings)
}

/// Checks a simplified output against the exact one: one valid feature per segment, no
/// overlaps (the union's area is the sum of the areas), no gaps (the union has the same rings
/// as the exact polygons' union), and no more vertices.
fn check_simplified(simplified: &Path, exact: &Path, vertices: (u64, u64), what: &str) {
    let read = |p: &Path| -> Vec<gdal::vector::Geometry> {
        let ds = Dataset::open(p).unwrap();
        let mut layer = ds.layer(0).unwrap();
        layer
            .features()
            .map(|f| f.geometry().unwrap().clone())
            .collect()
    };
    let (simple, full) = (read(simplified), read(exact));
    assert_eq!(simple.len(), full.len(), "{what}: one feature per segment");
    let mut sum = 0.0;
    for g in &simple {
        assert!(g.is_valid(), "{what}: invalid {}", g.wkt().unwrap());
        assert!(g.area() > 0.0, "{what}: empty {}", g.wkt().unwrap());
        sum += g.area();
    }
    let (area, rings) = union_of(simple);
    let (_, full_rings) = union_of(full);
    assert!(
        (area - sum).abs() <= 1e-9 * sum,
        "{what}: union {area} against a sum of {sum}: polygons overlap"
    );
    assert_eq!(rings, full_rings, "{what}: the union's rings changed");
    assert!(
        vertices.0 <= vertices.1,
        "{what}: {} vertices simplified, {} exact",
        vertices.0,
        vertices.1
    );
}

/// Simplified at a few tolerances: valid, sharing edges (see [`check_simplified`]), and the
/// same features for any strip height and thread count. Returns the vertices written at each
/// tolerance, and exactly.
fn check_simplify(
    name: &str,
    seg: &Path,
    strips: &[(usize, usize)],
    tolerances: &[f64],
) -> (Vec<u64>, u64) {
    let mut counts = Vec::new();
    let dir = tempdir(&format!("{name}-simplify"));
    let exact = dir.join("exact.fgb");
    let exact_vertices = run_simplified(seg, &exact, 0, 1, None);
    for &tol in tolerances {
        let mut first: Option<std::collections::BTreeMap<i64, Vec<u8>>> = None;
        for &(strip_rows, workers) in strips {
            let out = dir.join(format!("simple-{tol}-{strip_rows}-{workers}.gpkg"));
            let v = run_simplified(seg, &out, strip_rows, workers, Some(tol));
            let what =
                format!("{name}: tolerance {tol}, strips of {strip_rows}, {workers} threads");
            let got = features_by_id(&out);
            match &first {
                None => {
                    check_simplified(&out, &exact, (v, exact_vertices), &what);
                    counts.push(v);
                    first = Some(got);
                }
                Some(f) => assert!(f == &got, "{what}: differs from the first run"),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    (counts, exact_vertices)
}

fn check_image(name: &str, labels: &[u32], cols: usize, rows: usize, null: Option<u32>) {
    let dir = tempdir(name);
    let seg = dir.join("seg.tif");
    write_seg(&seg, labels, cols, rows, null.map(f64::from));
    let expect: Vec<u32> = labels
        .iter()
        .map(|&v| if Some(v) == null { 0 } else { v })
        .collect();
    for (strip_rows, workers, ext) in [(0, 1, "gpkg"), (1, 2, "fgb"), (3, 3, "fgb"), (7, 2, "gpkg")]
    {
        let out = dir.join(format!("poly-{strip_rows}-{workers}.{ext}"));
        run(&seg, &out, strip_rows, workers);
        let back = rasterize_back(&out, &seg, &dir);
        assert_eq!(
            back, expect,
            "{name}: strips of {strip_rows}, {workers} threads, {ext}"
        );
        check_features(&out, labels, null, 900.0);
    }
    let (simple, exact) = check_simplify(name, &seg, &[(0, 1), (1, 2), (3, 3)], &[45.0, 200.0]);
    assert!(simple.iter().all(|&v| v <= exact));
    let _ = std::fs::remove_dir_all(&dir);
}

fn parse(rows: &[&str]) -> (Vec<u32>, usize, usize) {
    let cols = rows[0].len();
    let labels = rows
        .iter()
        .flat_map(|r| {
            r.chars().map(|c| match c {
                '.' => 0,
                c => c.to_digit(36).unwrap(),
            })
        })
        .collect();
    (labels, cols, rows.len())
}

#[test]
fn holes_islands_corners_and_pieces() {
    #[rustfmt::skip]
    let (labels, cols, rows) = parse(&[
        "1111111112",
        "1333333312",
        "1344444312",
        "1345554312",
        "1345154312",
        "1345554312",
        "1344444312",
        "1333333312",
        "1111111122",
        "6.6.7a7a8b",
        ".6.67a7a8b",
        "6.6.7a7ab8",
        "9999999999",
        "9.9.9.9.99",
        "99.9.9.9.9",
        "c999999999",
    ]);
    check_image("crafted", &labels, cols, rows, None);
}

#[test]
fn a_segment_touching_its_own_hole_at_a_corner() {
    // 1 surrounds 2, and 2's hole corner touches 1's outer ring diagonally; 3 is a piece of
    // segment 1 inside 2 (an island of 1 touching 2's hole's corner).
    #[rustfmt::skip]
    let (labels, cols, rows) = parse(&[
        ".11111",
        "1.2221",
        "12.121",
        "122221",
        "111111",
    ]);
    check_image("selftouch", &labels, cols, rows, None);
}

#[test]
fn nodata_that_is_not_zero_is_null() {
    #[rustfmt::skip]
    let (labels, cols, rows) = parse(&[
        "11zz22",
        "1zz122",
        "zz1122",
    ]);
    check_image("nodata", &labels, cols, rows, Some(35));
}

/// A small deterministic generator (xorshift) for the random images.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_images_any_strips_and_threads() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..24 {
        let cols = 1 + rng.below(40) as usize;
        let rows = 1 + rng.below(40) as usize;
        let k = 1 + rng.below(6) as u32;
        // Blobs: each pixel copies its left or upper neighbour most of the time, so that
        // segments have holes, islands and corner touches, and IDs repeat in pieces.
        let mut labels = vec![0u32; cols * rows];
        for r in 0..rows {
            for c in 0..cols {
                let v = match rng.below(10) {
                    0..=3 if c > 0 => labels[r * cols + c - 1],
                    4..=6 if r > 0 => labels[(r - 1) * cols + c],
                    _ => rng.below(u64::from(k) + 1) as u32,
                };
                labels[r * cols + c] = v;
            }
        }
        let dir = tempdir(&format!("random{case}"));
        let seg = dir.join("seg.tif");
        write_seg(&seg, &labels, cols, rows, None);
        let strip_rows = 1 + rng.below(rows as u64 + 2) as usize;
        let workers = 1 + rng.below(4) as usize;
        let out = dir.join("poly.fgb");
        run(&seg, &out, strip_rows, workers);
        assert_eq!(
            rasterize_back(&out, &seg, &dir),
            labels,
            "case {case}: {cols}x{rows}, strips of {strip_rows}, {workers} threads"
        );
        check_features(&out, &labels, None, 900.0);
        let tol = 15.0 + rng.below(100) as f64;
        check_simplify(
            &format!("random{case}"),
            &seg,
            &[(0, 1), (strip_rows, workers)],
            &[tol],
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/reference")
        .join(rel)
}

#[test]
fn every_fixture_segmentation() {
    for rel in [
        "rgbn/rgbn_inmem_minseg50.tif",
        "rgbn/rgbn_inmem_minseg100.tif",
        "rgbn/rgbn_tiled_ts128_ov32_minseg50.tif",
        "synth8000/synth8000_tiled_ts2048_ov512_minseg50.tif",
    ] {
        let seg = fixture(rel);
        let dir = tempdir("fixture");
        let out = dir.join("poly.fgb");
        run(&seg, &out, 0, 2);
        let (labels, _, _, gt) = read_u32(&seg);
        assert_eq!(rasterize_back(&out, &seg, &dir), labels, "{rel}");
        let pixel_area = (gt[1] * gt[5] - gt[2] * gt[4]).abs();
        check_features(&out, &labels, None, pixel_area);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn simplified_fixture_polygons_stay_valid_and_shared() {
    // The real aerial image's segmentation (515x403, 0.5 m pixels... in its own units):
    // one and a half and four pixels of tolerance.
    let seg = fixture("rgbn/rgbn_inmem_minseg50.tif");
    let (_, _, _, gt) = read_u32(&seg);
    let px = gt[1].abs();
    let (simple, exact) = check_simplify(
        "rgbn",
        &seg,
        &[(0, 1), (37, 2), (5, 3)],
        &[1.5 * px, 4.0 * px],
    );
    assert!(
        simple[0] < exact && simple[1] < simple[0],
        "vertices {simple:?} against {exact} exact"
    );
}
