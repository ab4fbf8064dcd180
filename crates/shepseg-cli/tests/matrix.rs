//! Every raster a user has: a matrix of generated inputs (every GDAL 3.6 numeric type; NaN,
//! infinities and the type's extremes; 1x1, one row, one column, 40 bands, constant images,
//! one-pixel stripes and checkerboards, an all-null image, a uniform lake far above
//! pyshepseg's 10,000-pixel clump cap, per-band nodata that disagree; empty, truncated and
//! random-byte files) through `segment` (sequential, threads, processes), `stats`, `subset`
//! and `polygonize`. Each run ends in a valid output (segment IDs 1..N) or in exit status 1
//! with exactly one line and nothing at OUTPUT: never a panic (101), never a hang (60 s).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gdal::raster::{Buffer, GdalType, RasterCreationOptions};
use gdal::{Dataset, DriverManager};

const LIMIT: Duration = Duration::from_secs(60);

/// How a run ended.
#[derive(Debug, PartialEq)]
enum End {
    Ok,
    Refused(String),
}

/// Runs the binary with a deadline; asserts the contract and returns how it ended.
fn run(args: &[&str], output: Option<&Path>, case: &str) -> End {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shepseg"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("{case}: {args:?} did not finish in {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    match status.code() {
        Some(0) => End::Ok,
        Some(1) => {
            let lines: Vec<&str> = err.trim_end().lines().collect();
            assert_eq!(lines.len(), 1, "{case}: {args:?}: one line, got {err}");
            assert!(lines[0].starts_with("shepseg: error: "), "{case}: {err}");
            if let Some(o) = output {
                assert!(
                    !o.exists(),
                    "{case}: {args:?} failed but left {}",
                    o.display()
                );
            }
            End::Refused(lines[0].to_string())
        }
        other => panic!("{case}: {args:?} ended with {other:?}: {err}"),
    }
}

/// Checks a segmentation: IDs 1..N all present, and some segment where the image has content.
fn check_segmentation(path: &Path, case: &str, some_valid: bool) {
    let ds = Dataset::open(path).unwrap();
    let (c, r) = ds.raster_size();
    let b = ds.rasterband(1).unwrap();
    let v = b.read_as::<u32>((0, 0), (c, r), (c, r), None).unwrap();
    let max = v.data().iter().copied().max().unwrap_or(0) as usize;
    let mut seen = vec![false; max + 1];
    for &x in v.data() {
        seen[x as usize] = true;
    }
    assert!(seen[1..].iter().all(|&s| s), "{case}: IDs are not 1..{max}");
    if some_valid {
        assert!(max > 0, "{case}: an image with content gave no segment");
    }
}

/// Checks that a default-mode segmentation of `input` labels exactly its valid pixels: those
/// whose every band is finite (and, in Float64, at most 1e100) and not its nodata value.
fn check_valid_pixels(seg: &Path, input: &Path, case: &str) {
    let ds = Dataset::open(input).unwrap();
    let (c, r) = ds.raster_size();
    let mut valid = vec![true; c * r];
    for b in 1..=ds.raster_count() {
        let band = ds.rasterband(b).unwrap();
        let signed = shepseg_tiling::raster::is_signed_byte(&band);
        let f64_band = band.band_type() == gdal::raster::GdalDataType::Float64;
        let nodata = band.no_data_value();
        let vals = band.read_as::<f64>((0, 0), (c, r), (c, r), None).unwrap();
        for (ok, &v) in valid.iter_mut().zip(vals.data()) {
            let v = if signed && v >= 128.0 { v - 256.0 } else { v };
            let null = !v.is_finite() || Some(v) == nodata || (f64_band && v.abs() > 1e100);
            *ok &= !null;
        }
    }
    let out = Dataset::open(seg).unwrap();
    let ids = out
        .rasterband(1)
        .unwrap()
        .read_as::<u32>((0, 0), (c, r), (c, r), None)
        .unwrap();
    for (i, (&id, &ok)) in ids.data().iter().zip(&valid).enumerate() {
        assert_eq!(
            id != 0,
            ok,
            "{case}: pixel {i} valid {ok} but labelled {id}"
        );
    }
}

/// The pixel types GDAL 3.6 has, by name.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    Byte,
    Int8,
    UInt16,
    Int16,
    UInt32,
    Int32,
    UInt64,
    Int64,
    Float32,
    Float64,
    CInt16,
    CFloat32,
}

impl Ty {
    /// Whether shepseg segments it (complex types get one line naming the band and type).
    fn supported(self) -> bool {
        !matches!(self, Ty::CInt16 | Ty::CFloat32)
    }
    fn float(self) -> bool {
        matches!(self, Ty::Float32 | Ty::Float64 | Ty::CFloat32)
    }
    /// The type's extremes (and a few ordinary values).
    fn extremes(self) -> Vec<f64> {
        let (lo, hi) = match self {
            Ty::Byte => (0.0, 255.0),
            Ty::Int8 => (-128.0, 127.0),
            Ty::UInt16 => (0.0, 65535.0),
            Ty::Int16 | Ty::CInt16 => (-32768.0, 32767.0),
            Ty::UInt32 => (0.0, 4294967295.0),
            Ty::Int32 => (-2147483648.0, 2147483647.0),
            Ty::UInt64 => (0.0, 1.8446744073709552e19),
            Ty::Int64 => (-9.223372036854776e18, 9.223372036854776e18),
            Ty::Float32 | Ty::CFloat32 => (f32::MIN as f64, f32::MAX as f64),
            Ty::Float64 => (f64::MIN, f64::MAX),
        };
        let mut v = vec![lo, hi, 0.0, 1.0, 2.0, 100.0];
        if self.float() {
            v.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.5, -0.0, 1e-40]);
        }
        v
    }
}

/// A generated image: bands of values (as f64, converted to the type when written).
struct Image {
    name: &'static str,
    cols: usize,
    rows: usize,
    bands: Vec<Vec<f64>>,
    nodata: Vec<Option<f64>>,
    /// Whether some pixel is valid (not null in any band).
    content: bool,
    /// Whether `segment` must refuse it (one line) rather than segment it.
    refused: bool,
}

fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

fn images(ty: Ty) -> Vec<Image> {
    let ext = ty.extremes();
    let mut rnd = xorshift(7);
    let blob = |cols: usize, rows: usize, rnd: &mut dyn FnMut() -> u64, vals: &[f64]| {
        let mut cur = vals[0];
        (0..cols * rows)
            .map(|_| {
                if rnd().is_multiple_of(5) {
                    cur = vals[(rnd() % vals.len() as u64) as usize];
                }
                cur
            })
            .collect::<Vec<f64>>()
    };
    let ordinary = [10.0, 20.0, 30.0, 40.0, 55.0];
    let mut v = vec![
        Image {
            name: "extremes",
            cols: 40,
            rows: 30,
            bands: (0..3).map(|_| blob(40, 30, &mut rnd, &ext)).collect(),
            nodata: vec![None; 3],
            content: true,
            refused: false,
        },
        Image {
            name: "1x1",
            cols: 1,
            rows: 1,
            bands: vec![vec![7.0]],
            nodata: vec![None],
            content: true,
            refused: false,
        },
        Image {
            name: "one-row",
            cols: 300,
            rows: 1,
            bands: vec![blob(300, 1, &mut rnd, &ordinary)],
            nodata: vec![None],
            content: true,
            refused: false,
        },
        Image {
            name: "one-column",
            cols: 1,
            rows: 300,
            bands: vec![blob(1, 300, &mut rnd, &ordinary)],
            nodata: vec![None],
            content: true,
            refused: false,
        },
        Image {
            name: "constant",
            cols: 50,
            rows: 40,
            bands: vec![vec![42.0; 2000]; 2],
            nodata: vec![None; 2],
            content: true,
            refused: false,
        },
        Image {
            name: "stripes",
            cols: 60,
            rows: 30,
            bands: vec![(0..1800)
                .map(|i| if (i / 60) % 2 == 0 { 10.0 } else { 50.0 })
                .collect()],
            nodata: vec![None],
            content: true,
            refused: false,
        },
        Image {
            name: "checkerboard",
            cols: 45,
            rows: 35,
            bands: vec![(0..45 * 35)
                .map(|i| {
                    if (i % 45 + i / 45) % 2 == 0 {
                        10.0
                    } else {
                        50.0
                    }
                })
                .collect()],
            nodata: vec![None],
            content: true,
            refused: false,
        },
        Image {
            name: "all-null",
            cols: 20,
            rows: 20,
            bands: vec![vec![5.0; 400]],
            nodata: vec![Some(5.0)],
            content: false,
            refused: false,
        },
        Image {
            // A lake of 40,000 pixels with a noisy shore.
            name: "lake",
            cols: 220,
            rows: 220,
            bands: vec![(0..220 * 220)
                .map(|i| {
                    let (r, c) = (i / 220, i % 220);
                    if (10..210).contains(&r) && (10..210).contains(&c) {
                        30.0
                    } else {
                        ordinary[(r * 7 + c * 13) % 5]
                    }
                })
                .collect()],
            nodata: vec![None],
            content: true,
            refused: false,
        },
        Image {
            name: "40-bands",
            cols: 12,
            rows: 10,
            bands: (0..40).map(|_| blob(12, 10, &mut rnd, &ordinary)).collect(),
            nodata: vec![None; 40],
            content: true,
            refused: false,
        },
        Image {
            // Band 1 says 10 is nodata, band 2 says 20 (HFA keeps both).
            name: "nodata-disagree",
            cols: 30,
            rows: 20,
            bands: vec![
                blob(30, 20, &mut rnd, &ordinary),
                blob(30, 20, &mut rnd, &ordinary),
            ],
            nodata: vec![Some(10.0), Some(20.0)],
            content: true,
            // Which null applies is the user's call: `--null-value` is asked for.
            refused: true,
        },
    ];
    if ty.float() {
        // NaN is null whatever the nodata; a float image with infinities still segments.
        v.push(Image {
            name: "ratio-with-infinities",
            cols: 30,
            rows: 30,
            bands: vec![blob(
                30,
                30,
                &mut rnd,
                &[0.25, 0.5, f64::INFINITY, f64::NEG_INFINITY, 0.75, f64::NAN],
            )],
            nodata: vec![None],
            content: true,
            refused: false,
        });
    }
    v
}

fn write_typed<T: GdalType + Copy>(
    path: &Path,
    img: &Image,
    conv: impl Fn(f64) -> T,
    options: &[&str],
) {
    let driver = if path.extension().is_some_and(|e| e == "img") {
        "HFA"
    } else {
        "GTiff"
    };
    let d = DriverManager::get_driver_by_name(driver).unwrap();
    let opts = RasterCreationOptions::from_iter(options.iter().copied());
    let ds = d
        .create_with_band_type_with_options::<T, _>(
            path,
            img.cols,
            img.rows,
            img.bands.len(),
            &opts,
        )
        .unwrap();
    for (i, data) in img.bands.iter().enumerate() {
        let mut b = ds.rasterband(i + 1).unwrap();
        b.set_no_data_value(img.nodata[i]).unwrap();
        let mut buf = Buffer::new(
            (img.cols, img.rows),
            data.iter().map(|&v| conv(v)).collect(),
        );
        b.write((0, 0), (img.cols, img.rows), &mut buf).unwrap();
    }
}

/// Writes `img` as `ty` (complex types through gdal_translate from Float32/Int16).
fn write(dir: &Path, ty: Ty, img: &Image) -> PathBuf {
    // Per-band nodata needs HFA; GTiff keeps one value for the file.
    let first = img.nodata[0];
    let ext = if img
        .nodata
        .iter()
        .any(|n| n.map(f64::to_bits) != first.map(f64::to_bits))
    {
        "img"
    } else {
        "tif"
    };
    let path = dir.join(format!("{:?}-{}.{ext}", ty, img.name));
    match ty {
        Ty::Byte => write_typed::<u8>(&path, img, |v| v as u8, &[]),
        Ty::Int8 => write_typed::<u8>(&path, img, |v| (v as i8) as u8, &["PIXELTYPE=SIGNEDBYTE"]),
        Ty::UInt16 => write_typed::<u16>(&path, img, |v| v as u16, &[]),
        Ty::Int16 => write_typed::<i16>(&path, img, |v| v as i16, &[]),
        Ty::UInt32 => write_typed::<u32>(&path, img, |v| v as u32, &[]),
        Ty::Int32 => write_typed::<i32>(&path, img, |v| v as i32, &[]),
        Ty::UInt64 => write_typed::<u64>(&path, img, |v| v as u64, &[]),
        Ty::Int64 => write_typed::<i64>(&path, img, |v| v as i64, &[]),
        Ty::Float32 => write_typed::<f32>(&path, img, |v| v as f32, &[]),
        Ty::Float64 => write_typed::<f64>(&path, img, |v| v, &[]),
        Ty::CInt16 | Ty::CFloat32 => {
            let src = dir.join(format!("src-{:?}-{}.{ext}", ty, img.name));
            write_typed::<f32>(&src, img, |v| v as f32, &[]);
            let ot = format!("{ty:?}");
            let st = Command::new("gdal_translate")
                .args(["-q", "-ot", &ot])
                .arg(&src)
                .arg(&path)
                .status()
                .unwrap();
            assert!(st.success());
        }
    }
    path
}

fn tempdir(name: &str) -> PathBuf {
    common::tempdir(&format!("matrix-{name}"))
}

/// Every command on one input; `expect_ok` when it has content of a supported type.
fn every_command(dir: &Path, input: &Path, case: &str, expect_ok: bool, content: bool, full: bool) {
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let seg = dir.join(format!("{case}-seg.tif"));
    let executors: &[&str] = if full {
        &["sequential", "threads", "processes"]
    } else {
        &["sequential"]
    };
    let mut first: Option<Vec<u8>> = None;
    for ex in executors {
        let _ = std::fs::remove_file(&seg);
        let _ = std::fs::remove_file(seg.with_extension("tif.aux.xml"));
        let args = [
            "segment",
            &s(input),
            &s(&seg),
            "-q",
            "-t",
            "64",
            "--executor",
            ex,
            "-w",
            "2",
        ];
        let end = run(&args, Some(&seg), case);
        if expect_ok {
            assert_eq!(end, End::Ok, "{case} with {ex}");
        }
        if end != End::Ok {
            let End::Refused(line) = &end else {
                unreachable!()
            };
            if content {
                assert!(
                    line.contains("band") || line.contains("--null-value"),
                    "{case}: the refusal names the band or option: {line}"
                );
            }
            return;
        }
        check_segmentation(&seg, case, content);
        check_valid_pixels(&seg, input, case);
        let bytes = std::fs::read(&seg).unwrap();
        if let Some(f) = &first {
            assert!(*f == bytes, "{case}: {ex} differs from sequential");
        }
        first = Some(bytes);
    }
    // Statistics of every band, subset, polygons.
    let end = run(
        &[
            "stats",
            &s(&seg),
            &s(input),
            "-q",
            "-b",
            "1",
            "--stat",
            "mean",
            "--stat",
            "max",
        ],
        None,
        case,
    );
    if expect_ok {
        match end {
            End::Ok => {}
            // 64-bit extremes are beyond what statistics through f64 hold exactly.
            End::Refused(line) => assert!(line.contains("2^53"), "{case}: stats: {line}"),
        }
    }
    let sub = dir.join(format!("{case}-sub.tif"));
    let end = run(
        &[
            "subset",
            &s(&seg),
            &s(&sub),
            "-q",
            "--srcwin",
            "0",
            "0",
            "1",
            "1",
        ],
        Some(&sub),
        case,
    );
    // A one-pixel window on a null pixel holds no segment: refused, in one line.
    match end {
        End::Ok => {}
        End::Refused(line) => assert!(line.contains("no segments"), "{case}: subset: {line}"),
    }
    let vec = dir.join(format!("{case}.gpkg"));
    let end = run(&["polygonize", &s(&seg), &s(&vec), "-q"], Some(&vec), case);
    assert_eq!(end, End::Ok, "{case}: polygonize");
}

#[test]
fn every_type_every_shape() {
    let dir = tempdir("types");
    for ty in [
        Ty::Byte,
        Ty::Int8,
        Ty::UInt16,
        Ty::Int16,
        Ty::UInt32,
        Ty::Int32,
        Ty::UInt64,
        Ty::Int64,
        Ty::Float32,
        Ty::Float64,
        Ty::CInt16,
        Ty::CFloat32,
    ] {
        for img in images(ty) {
            if img.refused && matches!(ty, Ty::UInt64 | Ty::Int64 | Ty::CInt16) {
                // HFA, the format with a nodata value per band, has no 64-bit integers or
                // complex integers.
                continue;
            }
            let case = format!("{ty:?}-{}", img.name);
            let input = write(&dir, ty, &img);
            let full = img.name == "extremes" || img.name == "lake";
            let expect_ok = ty.supported() && img.content && !img.refused;
            every_command(&dir, &input, &case, expect_ok, img.content, full);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn broken_files() {
    let dir = tempdir("files");
    let empty = dir.join("empty.tif");
    std::fs::write(&empty, b"").unwrap();
    let random = dir.join("random.tif");
    let mut rnd = xorshift(99);
    std::fs::write(&random, (0..5000).map(|_| rnd() as u8).collect::<Vec<u8>>()).unwrap();
    // A real GeoTIFF cut in half.
    let whole = dir.join("whole.tif");
    let img = &images(Ty::UInt16)[0];
    write_typed::<u16>(
        &whole,
        img,
        |v| v as u16,
        &["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"],
    );
    let bytes = std::fs::read(&whole).unwrap();
    let truncated = dir.join("truncated.tif");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let text = dir.join("notes.tif");
    std::fs::write(&text, b"these are my notes, not a raster\n").unwrap();
    for f in [&empty, &random, &truncated, &text] {
        let case = f.file_name().unwrap().to_string_lossy().into_owned();
        let out = dir.join("out.tif");
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let end = run(&["segment", &s(f), &s(&out), "-q"], Some(&out), &case);
        let End::Refused(line) = end else {
            panic!("{case}: segmented a broken file")
        };
        assert!(
            line.contains(&case),
            "{case}: the error names the file: {line}"
        );
        for cmd in [
            vec![
                "stats".to_string(),
                s(f),
                s(f),
                "-q".into(),
                "-b".into(),
                "1".into(),
                "--stat".into(),
                "mean".into(),
            ],
            vec![
                "subset".to_string(),
                s(f),
                s(&out),
                "-q".into(),
                "--srcwin".into(),
                "0".into(),
                "0".into(),
                "1".into(),
                "1".into(),
            ],
            vec![
                "polygonize".to_string(),
                s(f),
                s(&dir.join("out.gpkg")),
                "-q".into(),
            ],
        ] {
            let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
            assert!(
                matches!(run(&args, None, &case), End::Refused(_)),
                "{case}: {args:?}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads a segmentation's IDs and its `Band_1_mean` and `Band_1_min` columns.
fn result_of(seg: &Path) -> (Vec<u32>, Vec<f64>, Vec<f64>) {
    let ds = Dataset::open(seg).unwrap();
    let (c, r) = ds.raster_size();
    let b = ds.rasterband(1).unwrap();
    let ids = b
        .read_as::<u32>((0, 0), (c, r), (c, r), None)
        .unwrap()
        .into_shape_and_vec()
        .1;
    let col = |n: &str| shepseg_tiling::rat::read_column(&b, n).unwrap_or_default();
    (ids, col("Band_1_mean"), col("Band_1_min"))
}

/// The types GDAL 3.6 reads only with help (signed bytes) or that shepseg added (64-bit
/// integers, Float64) segment, and have statistics, exactly as the same values stored in a
/// type shepseg always had: signed bytes are not read as unsigned, Float64 is not rounded.
#[test]
fn new_types_equal_their_twins() {
    let dir = tempdir("twins");
    let (cols, rows) = (70, 50);
    let mut rnd = xorshift(3);
    let mut cur = 0i64;
    let base: Vec<i64> = (0..cols * rows)
        .map(|_| {
            if rnd().is_multiple_of(4) {
                cur = (rnd() % 9) as i64 * 25 - 100;
            }
            cur
        })
        .collect();
    let img = |vals: Vec<f64>| Image {
        name: "twin",
        cols,
        rows,
        bands: vec![vals.clone(), vals.iter().map(|v| v * 0.5).collect()],
        nodata: vec![None; 2],
        content: true,
        refused: false,
    };
    let signed = img(base.iter().map(|&v| v as f64).collect());
    let unsigned = img(base.iter().map(|&v| (v + 100) as f64 * 2.0).collect());
    let fractional = img(base.iter().map(|&v| v as f64 + 0.25).collect());
    let pairs: [(Ty, Ty, &Image); 4] = [
        (Ty::Int8, Ty::Int16, &signed),
        (Ty::Int64, Ty::Int32, &signed),
        (Ty::UInt64, Ty::UInt32, &unsigned),
        (Ty::Float64, Ty::Float32, &fractional),
    ];
    let s = |p: &Path| p.to_str().unwrap().to_string();
    for (new, old, image) in pairs {
        let mut results = Vec::new();
        for ty in [new, old] {
            let input = write(&dir, ty, image);
            let seg = dir.join(format!("{ty:?}-twin-seg.tif"));
            let args = [
                "segment",
                &s(&input),
                &s(&seg),
                "-q",
                "--overwrite",
                "-t",
                "64",
                "--stats-bands",
                "1",
                "--stat",
                "mean",
                "--stat",
                "min",
            ];
            assert_eq!(run(&args, Some(&seg), &format!("{ty:?}")), End::Ok);
            results.push(result_of(&seg));
        }
        let (a, b) = (&results[0], &results[1]);
        assert!(a.0 == b.0, "{new:?} segments differently from {old:?}");
        assert_eq!(a.1, b.1, "{new:?} means differ from {old:?}");
        assert_eq!(a.2, b.2, "{new:?} minima differ from {old:?}");
        assert!(a.1.len() > 2, "{new:?}: no statistics");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Extreme option values on an ordinary image: each run segments or is refused in one line.
#[test]
fn extreme_options() {
    let dir = tempdir("options");
    let img = &images(Ty::UInt16)[0];
    let input = write(&dir, Ty::UInt16, img);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let out = dir.join("out.tif");
    let sets: &[&[&str]] = &[
        &["-n", "1"],
        &["-n", "100000"],
        &["-n", "0"],
        &["-s", "0"],
        &["-s", "1000000000"],
        &["-m", "0"],
        &["-m", "1e300"],
        &["-m", "-1"],
        &["--spect-dist-pcntile", "0"],
        &["--spect-dist-pcntile", "100"],
        &["-c", "100"],
        &["-c", "1e-9"],
        &["-c", "0"],
        &["-t", "1"],
        &["-t", "64", "-w", "64"],
        &["--null-value", "-9999"],
        &["--null-value", "1e300"],
        &["--seed", "18446744073709551615"],
        &["--eight-way", "--pyshepseg-compat", "-t", "16", "-l", "4"],
        &["--pyshepseg-compat", "-t", "64", "-l", "63"],
    ];
    for extra in sets {
        let _ = std::fs::remove_file(&out);
        let mut args = vec!["segment".to_string(), s(&input), s(&out), "-q".into()];
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if run(&args, Some(&out), &format!("{extra:?}")) == End::Ok {
            check_segmentation(&out, &format!("{extra:?}"), true);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A VRT whose source is gone, through every command: one line naming the source.
#[test]
fn vrt_with_a_missing_source() {
    let dir = tempdir("vrt");
    let img = &images(Ty::Int16)[0];
    let src = write(&dir, Ty::Int16, img);
    let vrt = dir.join("in.vrt");
    let st = Command::new("gdal_translate")
        .args(["-q", "-of", "VRT"])
        .arg(&src)
        .arg(&vrt)
        .status()
        .unwrap();
    assert!(st.success());
    // A segmentation of it first, as a VRT too, for stats, subset and polygonize.
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let seg = dir.join("seg.tif");
    assert_eq!(
        run(&["segment", &s(&vrt), &s(&seg), "-q"], Some(&seg), "vrt"),
        End::Ok
    );
    let seg_vrt = dir.join("seg.vrt");
    let st = Command::new("gdal_translate")
        .args(["-q", "-of", "VRT"])
        .arg(&seg)
        .arg(&seg_vrt)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_file(&src).unwrap();
    let out = dir.join("out.tif");
    let End::Refused(line) = run(&["segment", &s(&vrt), &s(&out), "-q"], Some(&out), "vrt") else {
        panic!("segmented a VRT without its source")
    };
    let name = src.file_name().unwrap().to_string_lossy().into_owned();
    assert!(line.contains(&name), "names the missing source: {line}");
    let End::Refused(line) = run(
        &[
            "stats",
            &s(&seg),
            &s(&vrt),
            "-q",
            "-b",
            "1",
            "--stat",
            "mean",
        ],
        None,
        "vrt stats",
    ) else {
        panic!("stats of a VRT without its source")
    };
    assert!(
        line.contains(&name),
        "stats names the missing source: {line}"
    );
    std::fs::remove_file(&seg).unwrap();
    let _ = std::fs::remove_file(seg.with_extension("tif.aux.xml"));
    for args in [
        vec![
            "subset".to_string(),
            s(&seg_vrt),
            s(&out),
            "-q".into(),
            "--srcwin".into(),
            "0".into(),
            "0".into(),
            "5".into(),
            "5".into(),
        ],
        vec![
            "polygonize".to_string(),
            s(&seg_vrt),
            s(&dir.join("out.gpkg")),
            "-q".into(),
        ],
    ] {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let End::Refused(line) = run(&a, None, "vrt") else {
            panic!("{a:?} on a VRT without its source")
        };
        assert!(
            line.contains("seg.tif"),
            "{a:?} names the missing source: {line}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// 64-bit integers beyond 2^53 segment, but their statistics, which pass through f64, are
/// refused in one line rather than rounded.
#[test]
fn huge_64_bit_statistics_are_refused_not_rounded() {
    let dir = tempdir("huge64");
    let vals: Vec<f64> = (0..400).map(|i| if i < 200 { 1e17 } else { 5.0 }).collect();
    let img = Image {
        name: "huge",
        cols: 20,
        rows: 20,
        bands: vec![vals],
        nodata: vec![None],
        content: true,
        refused: false,
    };
    let input = write(&dir, Ty::Int64, &img);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let seg = dir.join("seg.tif");
    assert_eq!(
        run(&["segment", &s(&input), &s(&seg), "-q"], Some(&seg), "huge"),
        End::Ok
    );
    let End::Refused(line) = run(
        &[
            "stats",
            &s(&seg),
            &s(&input),
            "-q",
            "-b",
            "1",
            "--stat",
            "mean",
        ],
        None,
        "huge",
    ) else {
        panic!("statistics of values beyond 2^53 were rounded")
    };
    assert!(
        line.contains("2^53") && line.contains("Int64-huge"),
        "{line}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
