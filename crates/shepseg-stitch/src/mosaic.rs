//! A mosaic output: OUTPUT ends in `.vrt`, and the segmentation is a folder of tiles beside it
//! (`out.vrt` → `out.tiles/`), each a Cloud-Optimised GeoTIFF written by whoever relabelled it
//! ([`MosaicTiles::write`]), and the VRT that assembles them with the attribute table and the
//! statistics metadata. No pixel has to pass through the process that writes the VRT.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::io::Write as _;

use shepseg_tiling::rat::Rat;
use shepseg_tiling::{vsi, MosaicTiles, Window};

use crate::error::StitchError;
use crate::output::OutputGeometry;

/// Whether `path` (with driver `driver`) is written as a mosaic: it ends in `.vrt`, or the
/// driver is VRT.
pub fn is_mosaic(path: &Path, driver: &str) -> bool {
    driver.eq_ignore_ascii_case("VRT")
        || path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("vrt"))
}

/// The folder of a mosaic's tiles: beside it, named after it (`out.vrt` → `out.tiles`).
pub fn tiles_dir_for(path: &Path) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default();
    let mut name = stem.to_owned();
    name.push(".tiles");
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(name),
        _ => PathBuf::from(name),
    }
}

/// Removes folder `dir` and everything in it (any GDAL path; on object stores, every key
/// under its prefix). Best effort: used to clean up.
pub fn remove_tree(dir: &Path) {
    if vsi::is_virtual(dir) {
        for name in vsi::list(dir) {
            vsi::unlink(&dir.join(name));
        }
        vsi::forget_cached(&dir.join("x"));
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A mosaic being written: its tile folder and the tiles written so far.
pub(crate) struct Mosaic {
    pub tiles: Arc<MosaicTiles>,
    pub written: Vec<Window>,
    geometry: OutputGeometry,
    /// The folder's name as the published VRT gives it (relative to the VRT).
    dir_name: String,
}

/// Whether `name` is one of the files a mosaic's folder holds: a tile (`x0_y512.tif`) or a
/// node image waiting to be written (`.x0_y512.nodes`).
fn ours(name: &str) -> bool {
    let offsets = |s: &str| {
        s.strip_prefix('x')
            .and_then(|s| s.split_once("_y"))
            .is_some_and(|(x, y)| {
                [x, y]
                    .iter()
                    .all(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
    };
    if let Some(s) = name.strip_suffix(".tif") {
        offsets(s)
    } else if let Some(s) = name
        .strip_prefix('.')
        .and_then(|s| s.strip_suffix(".nodes"))
    {
        offsets(s)
    } else {
        false
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Mosaic {
    /// Prepares the tile folder of mosaic `path`: refused if it exists unless `overwrite`, in
    /// which case the old mosaic (its VRT first, so that nothing finished-looking refers to
    /// tiles being replaced) is deleted. A folder without its VRT holding nothing but tiles
    /// and node images is what an interrupted job left: it is taken over (a resumed job's
    /// workers find the node images they kept there).
    pub fn create(
        path: &Path,
        geometry: &OutputGeometry,
        overwrite: bool,
    ) -> Result<Self, StitchError> {
        let dir = tiles_dir_for(path);
        let fail = |what: String| StitchError::Output(format!("{}: {what}", dir.display()));
        if vsi::exists(&dir) {
            let leftover = !vsi::exists(path) && vsi::list(&dir).iter().all(|n| ours(n));
            if !overwrite && !leftover {
                return Err(StitchError::Exists(dir));
            }
        }
        if overwrite && vsi::exists(&dir) {
            if vsi::exists(path) && !vsi::unlink(path) {
                return Err(StitchError::Output(format!(
                    "{}: cannot delete the old mosaic",
                    path.display()
                )));
            }
            remove_tree(&dir);
        }
        // A local folder is named absolutely in the VRT while it is built elsewhere (its
        // hidden folder), and relatively once published.
        let dir = if vsi::is_virtual(&dir) {
            dir
        } else {
            std::fs::create_dir_all(&dir).map_err(|e| fail(format!("cannot create: {e}")))?;
            std::path::absolute(&dir).map_err(|e| fail(e.to_string()))?
        };
        let dir_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            tiles: Arc::new(MosaicTiles {
                dir,
                projection: geometry.projection.clone(),
                geo_transform: geometry.geo_transform,
            }),
            written: Vec::new(),
            geometry: geometry.clone(),
            dir_name,
        })
    }

    /// Writes the VRT assembling the tiles written to `vrt` (sources named absolutely; see
    /// [`relativise`]), with the dataset's `metadata`, the band's `band_metadata` and its
    /// attribute table: the whole text written here, since GDAL's serialiser takes about a
    /// second per quarter of a million rows.
    pub fn write_vrt(
        &self,
        vrt: &Path,
        metadata: &[(String, String)],
        band_metadata: &[(&str, String)],
        rat: &Rat,
    ) -> Result<(), StitchError> {
        let geometry = &self.geometry;
        let mut tiles = self.written.clone();
        tiles.sort_by_key(|w| (w.yoff, w.xoff));
        let covered: usize = tiles.iter().map(|w| w.xsize * w.ysize).sum();
        if covered != geometry.cols * geometry.rows {
            return Err(StitchError::Output(format!(
                "{}: the tiles written cover {covered} of {} pixels",
                vrt.display(),
                geometry.cols * geometry.rows
            )));
        }
        let mdi = |x: &mut String, indent: &str, k: &str, v: &str| {
            x.push_str(&format!(
                "{indent}<MDI key=\"{}\">{}</MDI>\n",
                xml_escape(k),
                xml_escape(v)
            ));
        };
        let mut x = format!(
            "<VRTDataset rasterXSize=\"{}\" rasterYSize=\"{}\">\n",
            geometry.cols, geometry.rows
        );
        if !geometry.projection.is_empty() {
            x.push_str(&format!(
                "  <SRS>{}</SRS>\n",
                xml_escape(&geometry.projection)
            ));
        }
        if let Some(gt) = geometry.geo_transform {
            let gt: Vec<String> = gt.iter().map(|v| format!("{v:?}")).collect();
            x.push_str(&format!(
                "  <GeoTransform>{}</GeoTransform>\n",
                gt.join(", ")
            ));
        }
        if !metadata.is_empty() {
            x.push_str("  <Metadata>\n");
            for (k, v) in metadata {
                mdi(&mut x, "    ", k, v);
            }
            x.push_str("  </Metadata>\n");
        }
        x.push_str("  <VRTRasterBand dataType=\"UInt32\" band=\"1\">\n    <Metadata>\n");
        mdi(&mut x, "      ", "LAYER_TYPE", "thematic");
        for (k, v) in band_metadata {
            mdi(&mut x, "      ", k, v);
        }
        x.push_str("    </Metadata>\n    <NoDataValue>0</NoDataValue>\n");
        for w in &tiles {
            let file = xml_escape(&self.tiles.tile_path(*w).to_string_lossy());
            let (bx, by) = (w.xsize.min(512), w.ysize.min(512));
            x.push_str(&format!(
                "    <SimpleSource>\n      <SourceFilename relativeToVRT=\"0\">{file}</SourceFilename>\n      <SourceBand>1</SourceBand>\n      <SourceProperties RasterXSize=\"{xs}\" RasterYSize=\"{ys}\" DataType=\"UInt32\" BlockXSize=\"{bx}\" BlockYSize=\"{by}\" />\n      <SrcRect xOff=\"0\" yOff=\"0\" xSize=\"{xs}\" ySize=\"{ys}\" />\n      <DstRect xOff=\"{xo}\" yOff=\"{yo}\" xSize=\"{xs}\" ySize=\"{ys}\" />\n    </SimpleSource>\n",
                xs = w.xsize,
                ys = w.ysize,
                xo = w.xoff,
                yo = w.yoff,
            ));
        }
        let err = |e: std::io::Error| StitchError::Output(format!("{}: {e}", vrt.display()));
        let file = std::fs::File::create(vrt).map_err(err)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        out.write_all(x.as_bytes()).map_err(err)?;
        rat.write_xml(&mut out, "    ").map_err(err)?;
        out.write_all(b"  </VRTRasterBand>\n</VRTDataset>\n")
            .map_err(err)?;
        out.flush().map_err(err)
    }

    /// Deletes whatever the folder holds besides the tiles written (node images kept for
    /// writing, tiles of an interrupted job with another tiling).
    pub fn remove_strays(&self) {
        let keep: std::collections::HashSet<String> = self
            .written
            .iter()
            .map(|w| MosaicTiles::tile_name(*w))
            .collect();
        for name in vsi::list(&self.tiles.dir) {
            if !keep.contains(&name) && ours(&name) {
                vsi::unlink(&self.tiles.dir.join(name));
            }
        }
    }

    /// The folder's absolute name as written in the VRT's sources, and its name relative to
    /// the published VRT.
    pub fn names(&self) -> (String, String) {
        (
            xml_escape(&self.tiles.dir.to_string_lossy()),
            xml_escape(&self.dir_name),
        )
    }
}

/// The VRT text `xml` with the sources in folder `abs` named relative to the VRT, as folder
/// `rel` beside it.
pub(crate) fn relativise(xml: &str, abs: &str, rel: &str) -> String {
    xml.replace(
        &format!("relativeToVRT=\"0\">{abs}/"),
        &format!("relativeToVRT=\"1\">{rel}/"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mosaic_folder_holds_tiles_and_node_images_only() {
        for n in ["x0_y0.tif", "x4096_y512.tif", ".x0_y1024.nodes"] {
            assert!(ours(n), "{n}");
        }
        for n in [
            "notes.txt",
            "x_y0.tif",
            "x0_y0.tiff",
            "x0y0.tif",
            ".x0_y0.tif",
            "xa_y0.tif",
        ] {
            assert!(!ours(n), "{n}");
        }
    }
}
