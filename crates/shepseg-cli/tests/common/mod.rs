//! Helpers shared by the CLI test suites.

#![allow(dead_code)]

pub mod moto;

use std::path::PathBuf;
use std::process::{Command, Output};

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
