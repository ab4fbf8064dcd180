//! Writing a GTiff's full-resolution tiles compressed off the serial path.
//!
//! GDAL datasets have one writer, and a GTiff compresses each block in the thread that writes
//! or evicts it: with the output written through GDAL, compression (most of the stitcher's
//! serial time) runs one tile at a time, whatever the number of workers. Here the output
//! file is created by GDAL (tags, georeferencing, empty overviews), and its full-resolution
//! tiles are then compressed with ZSTD on the stitch pool ([`TileEncoder::encode`], any thread,
//! any order) and appended in order through libtiff's `TIFFWriteRawTile`, which only copies
//! bytes into the file ([`RawTiff::write`]). libtiff decodes such a tile as it decodes its own:
//! its ZSTD codec writes one standard ZSTD frame of the tile's bytes per tile, and that is what
//! `ZSTD_compress` makes. The overviews are written through GDAL at the end.
//!
//! A TIFF tile that a stitched block covers only in part (block edges not on the tile grid) is
//! assembled from its pieces in the serial part and compressed there once complete.
//!
//! Only a layout this module fully understands is taken: one 32-bit unsigned sample per pixel,
//! tiled, ZSTD, no predictor, in the CPU's byte order. [`RawTiff::open`] checks the file's tags
//! and declines anything else, and the caller writes through GDAL instead.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint, c_void, CString};
use std::path::Path;

use ndarray::{Array2, ArrayView2};
use shepseg_tiling::Window;

use crate::error::StitchError;

#[allow(non_camel_case_types)]
type tmsize_t = isize;

/// libtiff's opaque handle.
#[repr(C)]
struct Tiff {
    _private: [u8; 0],
}

#[link(name = "tiff")]
extern "C" {
    fn TIFFOpen(name: *const c_char, mode: *const c_char) -> *mut Tiff;
    fn TIFFClose(tif: *mut Tiff);
    fn TIFFFlush(tif: *mut Tiff) -> c_int;
    fn TIFFGetField(tif: *mut Tiff, tag: u32, ...) -> c_int;
    fn TIFFGetFieldDefaulted(tif: *mut Tiff, tag: u32, ...) -> c_int;
    fn TIFFIsTiled(tif: *mut Tiff) -> c_int;
    fn TIFFIsByteSwapped(tif: *mut Tiff) -> c_int;
    fn TIFFNumberOfDirectories(tif: *mut Tiff) -> u16;
    fn TIFFSetDirectory(tif: *mut Tiff, dir: u16) -> c_int;
    fn TIFFWriteRawTile(tif: *mut Tiff, tile: u32, data: *mut c_void, cc: tmsize_t) -> tmsize_t;
}

#[link(name = "zstd")]
extern "C" {
    fn ZSTD_compressBound(src_size: usize) -> usize;
    fn ZSTD_compress(
        dst: *mut c_void,
        dst_capacity: usize,
        src: *const c_void,
        src_size: usize,
        level: c_int,
    ) -> usize;
    fn ZSTD_decompress(
        dst: *mut c_void,
        dst_capacity: usize,
        src: *const c_void,
        compressed_size: usize,
    ) -> usize;
    fn ZSTD_isError(code: usize) -> c_uint;
}

const TIFFTAG_IMAGEWIDTH: u32 = 256;
const TIFFTAG_IMAGELENGTH: u32 = 257;
const TIFFTAG_BITSPERSAMPLE: u32 = 258;
const TIFFTAG_COMPRESSION: u32 = 259;
const TIFFTAG_SAMPLESPERPIXEL: u32 = 277;
const TIFFTAG_PLANARCONFIG: u32 = 284;
const TIFFTAG_PREDICTOR: u32 = 317;
const TIFFTAG_TILEWIDTH: u32 = 322;
const TIFFTAG_TILELENGTH: u32 = 323;
const TIFFTAG_SAMPLEFORMAT: u32 = 339;
const COMPRESSION_ZSTD: u16 = 50000;
const SAMPLEFORMAT_UINT: u16 = 1;

/// `values` as one ZSTD frame at `level`.
pub(crate) fn zstd_compress(values: &[u32], level: i32) -> Result<Vec<u8>, StitchError> {
    let src = values.as_ptr() as *const c_void;
    let len = std::mem::size_of_val(values);
    // SAFETY: a pure function of its argument.
    let cap = unsafe { ZSTD_compressBound(len) };
    let mut out = vec![0u8; cap];
    // SAFETY: `out` has `cap` writable bytes and `src` `len` readable ones.
    let n = unsafe { ZSTD_compress(out.as_mut_ptr() as *mut c_void, cap, src, len, level) };
    // SAFETY: a pure function of its argument.
    if unsafe { ZSTD_isError(n) } != 0 {
        return Err(StitchError::Output("ZSTD compression failed".into()));
    }
    out.truncate(n);
    Ok(out)
}

/// The `count` values of a frame [`zstd_compress`] made.
pub(crate) fn zstd_decompress(frame: &[u8], count: usize) -> Result<Vec<u32>, StitchError> {
    let mut out = vec![0u32; count];
    let cap = std::mem::size_of_val(out.as_slice());
    // SAFETY: `out` has `cap` writable bytes and `frame` its length readable.
    let n = unsafe {
        ZSTD_decompress(
            out.as_mut_ptr() as *mut c_void,
            cap,
            frame.as_ptr() as *const c_void,
            frame.len(),
        )
    };
    // SAFETY: a pure function of its argument.
    if unsafe { ZSTD_isError(n) } != 0 || n != cap {
        return Err(StitchError::Output("ZSTD frame does not decode".into()));
    }
    Ok(out)
}

/// The output's tile grid and compression level: what the pool needs to encode blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileEncoder {
    /// Tile width and height in pixels.
    pub tile: (usize, usize),
    /// Image columns and rows.
    pub size: (usize, usize),
    /// ZSTD level.
    pub level: i32,
}

/// A part of one TIFF tile, from a block that covers the tile only in part.
#[derive(Debug, Clone, PartialEq)]
pub struct TilePiece {
    /// Tile index (row-major over the tile grid).
    pub tile: u32,
    /// The piece's pixels, placed at `(row, col)` of the tile.
    pub at: (usize, usize),
    /// The pixels.
    pub pixels: Array2<u32>,
}

/// A block's tiles: the ones it covers whole, compressed; pieces of the others.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EncodedTiles {
    /// `(tile index, ZSTD frame)`.
    pub whole: Vec<(u32, Vec<u8>)>,
    /// Pieces of tiles that other blocks complete.
    pub pieces: Vec<TilePiece>,
}

impl TileEncoder {
    fn tiles_across(&self) -> usize {
        self.size.0.div_ceil(self.tile.0)
    }

    /// Image pixels of tile `(tx, ty)`: `(x0, y0, x1, y1)`, clipped to the image.
    fn extent(&self, tx: usize, ty: usize) -> (usize, usize, usize, usize) {
        let (tw, th) = self.tile;
        let (x0, y0) = (tx * tw, ty * th);
        (
            x0,
            y0,
            (x0 + tw).min(self.size.0),
            (y0 + th).min(self.size.1),
        )
    }

    /// Cuts `block` (the output pixels at `window`) into TIFF tiles: every tile the block
    /// covers whole (within the image) compressed, pieces of the rest.
    pub fn encode(&self, window: Window, block: &Array2<u32>) -> Result<EncodedTiles, StitchError> {
        self.cut(window, block, true)
    }

    /// [`TileEncoder::encode`], with every tile a piece unless `whole` is set.
    fn cut(
        &self,
        window: Window,
        block: &Array2<u32>,
        whole: bool,
    ) -> Result<EncodedTiles, StitchError> {
        let (tw, th) = self.tile;
        let mut out = EncodedTiles::default();
        if window.xsize == 0 || window.ysize == 0 {
            return Ok(out);
        }
        let (wx1, wy1) = (window.xoff + window.xsize, window.yoff + window.ysize);
        let mut buf = vec![0u32; tw * th];
        for ty in window.yoff / th..wy1.div_ceil(th) {
            for tx in window.xoff / tw..wx1.div_ceil(tw) {
                let index = (ty * self.tiles_across() + tx) as u32;
                let (x0, y0, x1, y1) = self.extent(tx, ty);
                let (cx0, cy0) = (x0.max(window.xoff), y0.max(window.yoff));
                let (cx1, cy1) = (x1.min(wx1), y1.min(wy1));
                let part = block.slice(ndarray::s![
                    cy0 - window.yoff..cy1 - window.yoff,
                    cx0 - window.xoff..cx1 - window.xoff
                ]);
                if whole && (cx0, cy0, cx1, cy1) == (x0, y0, x1, y1) {
                    buf.fill(0);
                    place(&mut buf, tw, (0, 0), part);
                    out.whole.push((index, zstd_compress(&buf, self.level)?));
                } else {
                    out.pieces.push(TilePiece {
                        tile: index,
                        at: (cy0 - y0, cx0 - x0),
                        pixels: part.to_owned(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Image pixels of tile `index`.
    fn pixels_of(&self, index: u32) -> usize {
        let across = self.tiles_across();
        let (x0, y0, x1, y1) = self.extent(index as usize % across, index as usize / across);
        (x1 - x0) * (y1 - y0)
    }
}

/// A tile being assembled from pieces.
struct Partial {
    pixels: Vec<u32>,
    filled: usize,
}

/// Copies `pixels` into a tile's row-major pixels `tile` (`tw` wide) at `(row, col)`.
fn place(tile: &mut [u32], tw: usize, (r0, c0): (usize, usize), pixels: ArrayView2<u32>) {
    for (r, row) in pixels.outer_iter().enumerate() {
        let start = (r0 + r) * tw + c0;
        for (d, s) in tile[start..start + row.len()].iter_mut().zip(row) {
            *d = *s;
        }
    }
}

/// An open GTiff whose full-resolution tiles are written raw; see the module docs.
pub struct RawTiff {
    tif: *mut Tiff,
    encoder: TileEncoder,
    partial: HashMap<u32, Partial>,
    /// Whether the current directory is an overview: written by [`RawTiff::write_overview`],
    /// its tiles complete when no later part can reach them.
    overview: bool,
    /// Set once a write failed: the file is abandoned.
    failed: bool,
}

// SAFETY: the handle is used by one thread at a time (the owner's `&mut self` methods).
unsafe impl Send for RawTiff {}

impl RawTiff {
    /// Opens `path` (closed by GDAL, full-resolution tiles not yet written) for raw tile
    /// writes at ZSTD `level`; `None` if the file's layout is not the one this module writes
    /// (then nothing was changed).
    pub fn open(path: &Path, level: i32) -> Option<Self> {
        let name = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: both strings are NUL-terminated; a null result is handled.
        let tif = unsafe { TIFFOpen(name.as_ptr(), c"r+".as_ptr()) };
        if tif.is_null() {
            return None;
        }
        // Owned from here, so that every early return closes the file.
        let mut raw = Self {
            tif,
            encoder: TileEncoder {
                tile: (0, 0),
                size: (0, 0),
                level,
            },
            partial: HashMap::new(),
            overview: false,
            failed: false,
        };
        let (size, tile) = raw.layout()?;
        raw.encoder = TileEncoder { tile, size, level };
        Some(raw)
    }

    /// The current directory's `(width, height)` and `(tile width, tile height)`, if its
    /// layout is the one this module writes.
    fn layout(&self) -> Option<((usize, usize), (usize, usize))> {
        let tif = self.tif;
        let (mut w, mut h, mut tw, mut th) = (0u32, 0u32, 0u32, 0u32);
        let (mut bps, mut spp, mut comp, mut planar, mut pred, mut fmt) =
            (0u16, 0u16, 0u16, 0u16, 0u16, 0u16);
        // SAFETY: each tag's value type is the one libtiff documents (uint32 for the sizes,
        // uint16 for the rest); `tif` is open.
        let ok = unsafe {
            TIFFIsTiled(tif) != 0
                && TIFFIsByteSwapped(tif) == 0
                && TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &mut w as *mut u32) == 1
                && TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &mut h as *mut u32) == 1
                && TIFFGetField(tif, TIFFTAG_TILEWIDTH, &mut tw as *mut u32) == 1
                && TIFFGetField(tif, TIFFTAG_TILELENGTH, &mut th as *mut u32) == 1
                && TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &mut bps as *mut u16) == 1
                && TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &mut spp as *mut u16) == 1
                && TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &mut comp as *mut u16) == 1
                && TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &mut planar as *mut u16) == 1
                && TIFFGetFieldDefaulted(tif, TIFFTAG_PREDICTOR, &mut pred as *mut u16) == 1
                && TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &mut fmt as *mut u16) == 1
        };
        let fits = ok
            && cfg!(target_endian = "little")
            && bps == 32
            && spp == 1
            && comp == COMPRESSION_ZSTD
            && planar == 1
            && pred == 1
            && fmt == SAMPLEFORMAT_UINT
            && tw > 0
            && th > 0;
        fits.then_some(((w as usize, h as usize), (tw as usize, th as usize)))
    }

    /// Moves to the directory (overview) of `size`, after writing the current one's tile
    /// index: later [`RawTiff::write`]s go there. Errors if there is none of that size in the
    /// layout this module writes, or a tile of the current one is incomplete.
    pub fn select(&mut self, size: (usize, usize)) -> Result<(), StitchError> {
        self.finish_directory()?;
        // SAFETY: `tif` is open.
        let count = unsafe { TIFFNumberOfDirectories(self.tif) };
        for dir in 0..count {
            // SAFETY: `dir` is below the directory count.
            if unsafe { TIFFSetDirectory(self.tif, dir) } != 1 {
                break;
            }
            if let Some((s, tile)) = self.layout() {
                if s == size {
                    self.overview = dir > 0;
                    self.encoder = TileEncoder {
                        tile,
                        size,
                        level: self.encoder.level,
                    };
                    return Ok(());
                }
            }
        }
        self.failed = true;
        Err(StitchError::Output(format!(
            "no {} x {} directory to write",
            size.0, size.1
        )))
    }

    /// Writes the current directory's tile index; errors if one of its full-resolution tiles
    /// is incomplete (an overview's are written as they stand).
    fn finish_directory(&mut self) -> Result<(), StitchError> {
        if self.overview {
            self.flush_partial(usize::MAX)?;
        }
        if !self.partial.is_empty() {
            self.failed = true;
            return Err(StitchError::Output(format!(
                "{} output tiles were never completed",
                self.partial.len()
            )));
        }
        // SAFETY: `tif` is open.
        if unsafe { TIFFFlush(self.tif) } != 1 {
            self.failed = true;
            return Err(StitchError::Output(
                "writing the TIFF directory failed".into(),
            ));
        }
        Ok(())
    }

    /// The tile grid, for encoding blocks on other threads.
    pub fn encoder(&self) -> TileEncoder {
        self.encoder
    }

    fn write_tile(&mut self, index: u32, frame: &mut [u8]) -> Result<(), StitchError> {
        // SAFETY: `tif` is open for update and `frame` holds `len` readable bytes; libtiff
        // copies them into the file.
        let n = unsafe {
            TIFFWriteRawTile(
                self.tif,
                index,
                frame.as_mut_ptr() as *mut c_void,
                frame.len() as tmsize_t,
            )
        };
        if n != frame.len() as tmsize_t {
            self.failed = true;
            return Err(StitchError::Output(format!("writing tile {index} failed")));
        }
        Ok(())
    }

    /// Writes one part of the current overview directory (selected by [`RawTiff::select`]):
    /// `block` at `window`. Parts come in the order they were stitched, so row by row of
    /// blocks: the tiles above the part's first row are final, and are compressed and
    /// written. Parts of neighbouring blocks may overlap by a pixel, the later one winning,
    /// as when GDAL writes them one after another.
    pub fn write_overview(
        &mut self,
        window: Window,
        block: &Array2<u32>,
    ) -> Result<(), StitchError> {
        self.flush_partial(window.yoff)?;
        for piece in self.encoder.cut(window, block, false)?.pieces {
            self.add_piece(&piece);
        }
        Ok(())
    }

    /// Copies `piece` into its tile's partial pixels (started if new); the tile's pixels
    /// filled so far.
    fn add_piece(&mut self, piece: &TilePiece) -> usize {
        let (tw, th) = self.encoder.tile;
        let p = self.partial.entry(piece.tile).or_insert_with(|| Partial {
            pixels: vec![0; tw * th],
            filled: 0,
        });
        place(&mut p.pixels, tw, piece.at, piece.pixels.view());
        p.filled += piece.pixels.len();
        p.filled
    }

    /// Compresses and writes the partial tile `index`, if started.
    fn write_partial(&mut self, index: u32) -> Result<(), StitchError> {
        match self.partial.remove(&index) {
            Some(p) => self.write_tile(index, &mut zstd_compress(&p.pixels, self.encoder.level)?),
            None => Ok(()),
        }
    }

    /// Compresses and writes the partial tiles that end at or above row `row`.
    fn flush_partial(&mut self, row: usize) -> Result<(), StitchError> {
        let across = self.encoder.tiles_across();
        let th = self.encoder.tile.1;
        let mut done: Vec<u32> = self
            .partial
            .keys()
            .copied()
            .filter(|&t| (t as usize / across + 1) * th <= row || row == usize::MAX)
            .collect();
        done.sort_unstable();
        done.into_iter().try_for_each(|t| self.write_partial(t))
    }

    /// Appends a block's tiles (from [`TileEncoder::encode`]); pieces are kept until their
    /// tile is complete, then compressed and written.
    pub fn write(&mut self, encoded: EncodedTiles) -> Result<(), StitchError> {
        for (index, mut frame) in encoded.whole {
            self.write_tile(index, &mut frame)?;
        }
        for piece in encoded.pieces {
            if self.add_piece(&piece) >= self.encoder.pixels_of(piece.tile) {
                self.write_partial(piece.tile)?;
            }
        }
        Ok(())
    }

    /// Writes the tile index and closes the file. Errors if a tile is still incomplete or
    /// libtiff cannot write the index.
    pub fn close(mut self) -> Result<(), StitchError> {
        let done = self.finish_directory();
        // SAFETY: `tif` is open; it is closed once (Drop sees a null handle afterwards).
        unsafe { TIFFClose(self.tif) };
        self.tif = std::ptr::null_mut();
        done?;
        if self.failed {
            return Err(StitchError::Output("a TIFF write failed".into()));
        }
        Ok(())
    }
}

impl Drop for RawTiff {
    fn drop(&mut self) {
        if !self.tif.is_null() {
            // SAFETY: still open; an abandoned file is removed by its owner.
            unsafe { TIFFClose(self.tif) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shepseg_core::rng::SplitMix64;

    #[test]
    fn zstd_round_trip() {
        let mut rng = SplitMix64::new(3);
        let v: Vec<u32> = (0..5000)
            .map(|i| (i / 37) as u32 + rng.below(3) as u32)
            .collect();
        let f = zstd_compress(&v, 1).unwrap();
        assert!(f.len() < v.len() * 4);
        assert_eq!(zstd_decompress(&f, v.len()).unwrap(), v);
        assert!(zstd_decompress(&f, v.len() + 1).is_err());
    }

    /// A sparse GTiff as GDAL creates it, `cols x rows`, 16x16 tiles, with `compress`.
    fn sparse_gtiff(path: &Path, cols: usize, rows: usize, compress: &str, bigtiff: bool) {
        let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
        let mut co = gdal::cpl::CslStringList::new();
        for (k, v) in [
            ("TILED", "YES"),
            ("BLOCKXSIZE", "16"),
            ("BLOCKYSIZE", "16"),
            ("COMPRESS", compress),
            ("SPARSE_OK", "TRUE"),
            ("BIGTIFF", if bigtiff { "YES" } else { "NO" }),
        ] {
            co.set_name_value(k, v).unwrap();
        }
        driver
            .create_with_band_type_with_options::<u32, _>(path, cols, rows, 1, &co)
            .unwrap()
            .close()
            .unwrap();
    }

    fn read_back(path: &Path) -> Vec<u32> {
        let ds = gdal::Dataset::open(path).unwrap();
        let (c, r) = ds.raster_size();
        ds.rasterband(1)
            .unwrap()
            .read_as::<u32>((0, 0), (c, r), (c, r), None)
            .unwrap()
            .data()
            .to_vec()
    }

    #[test]
    fn raw_tiles_read_back_through_gdal_tiff_and_bigtiff() {
        let dir = std::env::temp_dir().join(format!("shepseg-rawtiff-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (cols, rows) = (50, 37);
        let image = Array2::from_shape_fn((rows, cols), |(r, c)| (r * 1000 + c + 1) as u32);
        for bigtiff in [false, true] {
            let path = dir.join(format!("raw-{bigtiff}.tif"));
            sparse_gtiff(&path, cols, rows, "ZSTD", bigtiff);
            let mut raw = RawTiff::open(&path, 1).expect("ZSTD layout accepted");
            assert_eq!(raw.encoder().tile, (16, 16));
            // Four blocks whose edges are off the tile grid, in row-major order.
            for (x0, x1, y0, y1) in [
                (0, 21, 0, 9),
                (21, 50, 0, 9),
                (0, 21, 9, 37),
                (21, 50, 9, 37),
            ] {
                let w = Window {
                    xoff: x0,
                    yoff: y0,
                    xsize: x1 - x0,
                    ysize: y1 - y0,
                };
                let block = image.slice(ndarray::s![y0..y1, x0..x1]).to_owned();
                let e = raw.encoder().encode(w, &block).unwrap();
                raw.write(e).unwrap();
            }
            raw.close().unwrap();
            assert_eq!(read_back(&path), image.iter().copied().collect::<Vec<_>>());
        }
        // Another layout is declined and left as it was.
        let path = dir.join("deflate.tif");
        sparse_gtiff(&path, cols, rows, "DEFLATE", false);
        let before = std::fs::read(&path).unwrap();
        assert!(RawTiff::open(&path, 1).is_none());
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // An incomplete tile is an error at close.
        let path = dir.join("short.tif");
        sparse_gtiff(&path, cols, rows, "ZSTD", false);
        let mut raw = RawTiff::open(&path, 1).unwrap();
        let w = Window {
            xoff: 0,
            yoff: 0,
            xsize: 20,
            ysize: 37,
        };
        let block = image.slice(ndarray::s![.., ..20]).to_owned();
        let e = raw.encoder().encode(w, &block).unwrap();
        raw.write(e).unwrap();
        assert!(raw.close().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn blocks_cut_into_whole_tiles_and_pieces() {
        let enc = TileEncoder {
            tile: (4, 4),
            size: (10, 7),
            level: 1,
        };
        // A block from column 2 to 9 (inclusive), rows 0..4: tile 1 (columns 4..8) whole,
        // tile 0 and tile 2 (the image's last, 2 columns wide) in part and whole.
        let w = Window {
            xoff: 2,
            yoff: 0,
            xsize: 8,
            ysize: 4,
        };
        let block = Array2::from_shape_fn((4, 8), |(r, c)| (r * 10 + c + 2) as u32);
        let e = enc.encode(w, &block).unwrap();
        let whole: Vec<u32> = e.whole.iter().map(|t| t.0).collect();
        assert_eq!(whole, vec![1, 2]);
        assert_eq!(e.pieces.len(), 1);
        assert_eq!(e.pieces[0].tile, 0);
        assert_eq!(e.pieces[0].at, (0, 2));
        assert_eq!(e.pieces[0].pixels.dim(), (4, 2));
        // Tile 2 holds columns 8, 9 and zero padding.
        let t2 = zstd_decompress(&e.whole[1].1, 16).unwrap();
        assert_eq!(&t2[..4], &[8, 9, 0, 0]);
        assert_eq!(enc.pixels_of(2), 8);
        assert_eq!(enc.pixels_of(5), 6);
    }
}
