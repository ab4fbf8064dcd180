//! Helpers shared by the CLI test suites.

#![allow(dead_code)]

pub mod moto;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A refusal as users see it: exit status 1 and one line, `shepseg: error: ...`; returns it.
pub fn one_line_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("shepseg: error: "), "{err}");
    err
}

/// The `--json` report a run wrote beside `output` (as `output` with the extension `.json`).
pub fn report(output: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(output.with_extension("json")).unwrap()).unwrap()
}

/// `output` (the raster and its attribute-table sidecar) equals `reference` byte for byte;
/// `what` names the reference in the message.
pub fn assert_same_files(reference: &Path, output: &Path, what: &str) {
    for ext in ["", ".aux.xml"] {
        let a = std::fs::read(format!("{}{ext}", reference.display())).unwrap();
        let b = std::fs::read(format!("{}{ext}", output.display())).unwrap();
        assert!(a == b, "{}{ext} differs from {what}", output.display());
    }
}

/// Band 1 of raster `path`, row-major.
pub fn pixels(path: &Path) -> Vec<u32> {
    let r = shepseg_tiling::Raster::open(path).unwrap();
    r.read::<u32>(&[1], r.full_window())
        .unwrap()
        .into_raw_vec_and_offset()
        .0
}

/// A work directory `dir/busy` locked by a live process (this test's).
pub fn busy_work_dir(dir: &Path) -> PathBuf {
    let busy = dir.join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(
        busy.join("lock"),
        format!("{} {}", std::process::id(), host.trim()),
    )
    .unwrap();
    busy
}

/// The shipped 4-band test image.
pub fn rgbn() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/reference/rgbn/rgbn.tif")
}

/// A fresh, empty temporary folder for test `name`.
pub fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shepseg-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the `shepseg` binary.
pub fn shepseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shepseg"))
        .args(args)
        .output()
        .expect("run shepseg")
}

/// Writes a 2000x2000 crop of pyshepseg's synthetic test image with deterministic noise
/// added (so that its tiles take a while to segment), 3 UInt16 bands, nodata 65535: a job
/// big enough to kill in the middle of.
pub fn noisy_crop(path: &Path) {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/reference/synth8000/synthetic_runtests_8000.tif");
    let ds = gdal::Dataset::open(&src).unwrap();
    let (n, off) = (2000usize, 3000isize);
    let out = gdal::DriverManager::get_driver_by_name("GTiff")
        .unwrap()
        .create_with_band_type::<u16, _>(path, n, n, 3)
        .unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for b in 1..=3 {
        let band = ds.rasterband(b).unwrap();
        let mut buf = band
            .read_as::<u16>((off, off), (n, n), (n, n), None)
            .unwrap();
        for v in buf.data_mut() {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if *v != 65535 {
                let noise = ((state >> 33) % 801) as i32 - 400;
                *v = (*v as i32 + noise).clamp(0, 65534) as u16;
            }
        }
        let mut ob = out.rasterband(b).unwrap();
        ob.set_no_data_value(Some(65535.0)).unwrap();
        ob.write((0, 0), (n, n), &mut buf).unwrap();
    }
}
