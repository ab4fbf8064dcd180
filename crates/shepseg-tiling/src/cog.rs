//! One tile of a mosaic output written as a Cloud-Optimised GeoTIFF: tiled, compressed, with
//! its own overviews, georeferenced where it lies in the whole raster. Whoever segments a tile
//! can write it (a pipeline thread, or a remote worker), so that no pixel of a mosaic passes
//! through one process.

use std::path::PathBuf;

use gdal::cpl::CslStringList;
use gdal::raster::Buffer;
use gdal::{DriverManager, Metadata};

use crate::error::TilingError;
use crate::raster::Window;
use crate::vsi;

/// Where a mosaic's tiles lie in its raster: the raster's georeferencing and the folder the
/// tiles go to (any GDAL path, `/vsis3/` included).
#[derive(Debug, Clone, PartialEq)]
pub struct MosaicTiles {
    /// The folder of tiles.
    pub dir: PathBuf,
    /// The raster's projection (WKT; empty for none).
    pub projection: String,
    /// The raster's geotransform, if it has one.
    pub geo_transform: Option<[f64; 6]>,
}

impl MosaicTiles {
    /// The file name of the tile at `window`: its pixel offsets, so that anyone who knows the
    /// window knows the name.
    pub fn tile_name(window: Window) -> String {
        format!("x{}_y{}.tif", window.xoff, window.yoff)
    }

    /// The path of the tile at `window`.
    pub fn tile_path(&self, window: Window) -> PathBuf {
        self.dir.join(Self::tile_name(window))
    }

    /// Writes `labels` (row-major, `window.ysize x window.xsize`; 0 = null) as the tile at
    /// `window`: a COG compressed with ZSTD (DEFLATE where this GDAL has no ZSTD), 512-pixel
    /// blocks, overviews by nearest neighbour, nodata 0, thematic.
    pub fn write(&self, window: Window, labels: &[u32]) -> Result<PathBuf, TilingError> {
        let path = self.tile_path(window);
        let fail = |what: String| TilingError::Write {
            path: path.clone(),
            reason: what,
        };
        if labels.len() != window.xsize * window.ysize || labels.is_empty() {
            return Err(fail(format!(
                "{} labels for a {} x {} tile",
                labels.len(),
                window.xsize,
                window.ysize
            )));
        }
        let mem = DriverManager::get_driver_by_name("MEM").map_err(|e| fail(e.to_string()))?;
        let mut ds = mem
            .create_with_band_type::<u32, _>("", window.xsize, window.ysize, 1)
            .map_err(|e| fail(e.to_string()))?;
        if let Some(gt) = self.geo_transform {
            let (x, y) = (window.xoff as f64, window.yoff as f64);
            let shifted = [
                gt[0] + x * gt[1] + y * gt[2],
                gt[1],
                gt[2],
                gt[3] + x * gt[4] + y * gt[5],
                gt[4],
                gt[5],
            ];
            ds.set_geo_transform(&shifted)
                .map_err(|e| fail(e.to_string()))?;
        }
        if !self.projection.is_empty() {
            ds.set_projection(&self.projection)
                .map_err(|e| fail(e.to_string()))?;
        }
        {
            let mut band = ds.rasterband(1).map_err(|e| fail(e.to_string()))?;
            band.set_no_data_value(Some(0.0))
                .map_err(|e| fail(e.to_string()))?;
            band.set_metadata_item("LAYER_TYPE", "thematic", "")
                .map_err(|e| fail(e.to_string()))?;
            let mut buf = Buffer::new((window.xsize, window.ysize), labels.to_vec());
            band.write((0, 0), (window.xsize, window.ysize), &mut buf)
                .map_err(|e| fail(e.to_string()))?;
        }
        let cog = DriverManager::get_driver_by_name("COG").map_err(|e| fail(e.to_string()))?;
        let zstd = cog
            .metadata_item("DMD_CREATIONOPTIONLIST", "")
            .is_some_and(|list| list.contains("ZSTD"));
        let mut csl = CslStringList::new();
        let options: [(&str, &str); 5] = [
            ("COMPRESS", if zstd { "ZSTD" } else { "DEFLATE" }),
            ("LEVEL", "1"),
            ("BLOCKSIZE", "512"),
            ("OVERVIEW_RESAMPLING", "NEAREST"),
            ("BIGTIFF", "IF_SAFER"),
        ];
        for (k, v) in options {
            csl.set_name_value(k, v).map_err(|e| fail(e.to_string()))?;
        }
        // GDAL writes a COG with random access; object stores take it whole, so a tile bound
        // there is made locally and uploaded.
        if !vsi::is_virtual(&path) {
            let out = ds
                .create_copy(&cog, &path, &csl)
                .map_err(|e| fail(e.to_string()))?;
            out.close().map_err(|e| fail(e.to_string()))?;
            return Ok(path);
        }
        let local = std::env::temp_dir().join(format!(
            "shepseg-tile-{}-{:?}-{}",
            std::process::id(),
            std::thread::current().id(),
            Self::tile_name(window)
        ));
        let made = ds
            .create_copy(&cog, &local, &csl)
            .and_then(|out| out.close())
            .map_err(|e| fail(e.to_string()))
            .and_then(|()| vsi::upload(&local, &path).map_err(fail));
        let _ = std::fs::remove_file(&local);
        made.map(|()| path)
    }
}
