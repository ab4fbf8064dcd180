//! Statistics of a segmentation on object storage (`/vsis3/…`), which GDAL cannot open for
//! update: the segmentation and its sidecar are copied to a local temporary folder, the
//! statistics written there, and the files that changed uploaded back (the sidecar first),
//! only once everything succeeded. A VRT's sources named relative to it are named absolutely
//! in the local copy (so that it still reads them where they are) and relatively again in
//! what is uploaded.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use shepseg_tiling::vsi;

use crate::error::StatsError;

/// Runs `work` on `segfile` itself, or, for a `/vsi…` path, on a local copy whose changed
/// files are uploaded afterwards.
pub fn on_local_copy<T>(
    segfile: &Path,
    work: impl FnOnce(&Path) -> Result<T, StatsError>,
) -> Result<T, StatsError> {
    if !vsi::is_virtual(segfile) {
        return work(segfile);
    }
    let err = |message: String| StatsError::File {
        path: segfile.display().to_string(),
        message,
    };
    let name = segfile
        .file_name()
        .ok_or_else(|| err("is not a file name".into()))?;
    let dir = TempDir::new(name)?;
    let local = dir.0.join(name);
    vsi::download(segfile, &local).map_err(err)?;
    let vrt_dir = is_vrt(segfile).then(|| {
        segfile
            .parent()
            .map(|p| xml_escape(&p.to_string_lossy()))
            .unwrap_or_default()
    });
    if let Some(d) = &vrt_dir {
        rewrite(&local, RELATIVE, &format!("{ABSOLUTE}{d}/")).map_err(err)?;
    }
    let aux_remote = vsi::sidecar(segfile, ".aux.xml");
    let aux_local = vsi::sidecar(&local, ".aux.xml");
    if vsi::stat(&aux_remote).is_some() {
        vsi::download(&aux_remote, &aux_local).map_err(err)?;
    }
    let stamp = |p: &Path| -> Option<(u64, SystemTime)> {
        let m = std::fs::metadata(p).ok()?;
        Some((m.len(), m.modified().ok()?))
    };
    let (main_before, aux_before) = (stamp(&local), stamp(&aux_local));
    let out = work(&local)?;
    if stamp(&aux_local) != aux_before && aux_local.exists() {
        vsi::upload(&aux_local, &aux_remote).map_err(err)?;
    }
    if stamp(&local) != main_before {
        if let Some(d) = &vrt_dir {
            rewrite(&local, &format!("{ABSOLUTE}{d}/"), RELATIVE).map_err(err)?;
        }
        vsi::upload(&local, segfile).map_err(err)?;
    }
    Ok(out)
}

/// How a VRT names a source relative to itself, and absolutely (GDAL's serialisation).
const RELATIVE: &str = "relativeToVRT=\"1\">";
const ABSOLUTE: &str = "relativeToVRT=\"0\">";

fn is_vrt(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("vrt"))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Replaces `from` by `to` throughout the text file `path`.
fn rewrite(path: &Path, from: &str, to: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    std::fs::write(path, text.replace(from, to)).map_err(|e| e.to_string())
}

/// A local temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &std::ffi::OsStr) -> Result<Self, StatsError> {
        let mut dir = std::ffi::OsString::from(format!("shepseg-stats-{}-", std::process::id()));
        dir.push(name);
        let path = std::env::temp_dir().join(dir);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| StatsError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
