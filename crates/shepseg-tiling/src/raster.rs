//! Reading chosen bands of a raster window into a `(bands, rows, cols)` ndarray.
//!
//! A [`Raster`] wraps one GDAL dataset (not `Sync`: open one per thread). The bands read must
//! share one of the pixel types `shepseg-core` segments; [`BandStack`] carries the array with
//! its type, so callers dispatch once per tile instead of once per pixel.

use std::path::{Path, PathBuf};

use gdal::raster::{GdalDataType, GdalType};
use gdal::Dataset;
use ndarray::Array3;
use shepseg_core::seamless::{analyse_tile, TileAnalysis, TileFrame};
use shepseg_core::{segment, KMeansModel, Pixel, SegmentParams, SegmentationResult};

use crate::error::TilingError;

/// A rectangle of pixels: offset and size, in columns (x) and rows (y).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// First column.
    pub xoff: usize,
    /// First row.
    pub yoff: usize,
    /// Number of columns.
    pub xsize: usize,
    /// Number of rows.
    pub ysize: usize,
}

/// The pixel types shepseg segments, as found in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelType {
    /// Byte.
    U8,
    /// Signed byte (GDAL 3.6's Byte with `PIXELTYPE=SIGNEDBYTE`).
    I8,
    /// UInt16.
    U16,
    /// Int16.
    I16,
    /// UInt32.
    U32,
    /// Int32.
    I32,
    /// UInt64.
    U64,
    /// Int64.
    I64,
    /// Float32.
    F32,
    /// Float64.
    F64,
}

/// A `(bands, rows, cols)` array of one of the supported pixel types.
#[derive(Debug, Clone, PartialEq)]
pub enum BandStack {
    /// Byte pixels.
    U8(Array3<u8>),
    /// UInt16 pixels.
    U16(Array3<u16>),
    /// Int16 pixels.
    I16(Array3<i16>),
    /// UInt32 pixels.
    U32(Array3<u32>),
    /// Int32 pixels.
    I32(Array3<i32>),
    /// Float32 pixels.
    F32(Array3<f32>),
    /// Signed byte pixels.
    I8(Array3<i8>),
    /// UInt64 pixels.
    U64(Array3<u64>),
    /// Int64 pixels.
    I64(Array3<i64>),
    /// Float64 pixels.
    F64(Array3<f64>),
}

/// Whether `band` is a Byte band holding signed bytes (GDAL 3.6 has no Int8 type: it marks
/// them with `PIXELTYPE=SIGNEDBYTE` and reads them as unsigned).
pub fn is_signed_byte(band: &gdal::raster::RasterBand<'_>) -> bool {
    use gdal::Metadata;
    band.band_type() == GdalDataType::UInt8
        && band
            .metadata_item("PIXELTYPE", "IMAGE_STRUCTURE")
            .as_deref()
            == Some("SIGNEDBYTE")
}

/// A band's GDAL data type name, complex types included (which `GdalDataType` does not name).
fn gdal_type_name(band: &gdal::raster::RasterBand<'_>) -> String {
    // SAFETY: a valid band handle; GDAL returns a static name (or null).
    unsafe {
        let t = gdal_sys::GDALGetRasterDataType(band.c_rasterband());
        let p = gdal_sys::GDALGetDataTypeName(t);
        if p.is_null() {
            "an unknown type".into()
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// Sets GDAL's process-wide block cache to `bytes` (see [`Raster::block_cache_bytes`]).
pub fn set_block_cache(bytes: usize) {
    // SAFETY: sets a process-wide size; GDAL synchronises its cache.
    unsafe { gdal_sys::GDALSetCacheMax64(i64::try_from(bytes).unwrap_or(i64::MAX)) };
}

/// Something that reads a window of bands as any GDAL type: a [`Raster`], or a
/// [`crate::SharedBlocks`] with the raster it reads through.
pub(crate) trait ReadTyped {
    /// Reads `window` of `bands` as `T`.
    fn read_typed<T: Copy + GdalType + Default + Send + Sync + 'static>(
        &self,
        bands: &[usize],
        window: Window,
    ) -> Result<Array3<T>, TilingError>;
}

impl ReadTyped for Raster {
    fn read_typed<T: Copy + GdalType + Default + Send + Sync + 'static>(
        &self,
        bands: &[usize],
        window: Window,
    ) -> Result<Array3<T>, TilingError> {
        self.read(bands, window)
    }
}

/// Reads `window` of `bands`, whose common type is `pt`, through `r`.
pub(crate) fn read_stack_with<R: ReadTyped>(
    r: &R,
    pt: PixelType,
    bands: &[usize],
    window: Window,
) -> Result<BandStack, TilingError> {
    Ok(match pt {
        PixelType::U8 => BandStack::U8(r.read_typed(bands, window)?),
        PixelType::U16 => BandStack::U16(r.read_typed(bands, window)?),
        PixelType::I16 => BandStack::I16(r.read_typed(bands, window)?),
        PixelType::U32 => BandStack::U32(r.read_typed(bands, window)?),
        PixelType::I32 => BandStack::I32(r.read_typed(bands, window)?),
        PixelType::F32 => BandStack::F32(r.read_typed(bands, window)?),
        PixelType::I8 => BandStack::I8(r.read_typed::<u8>(bands, window)?.mapv(|v| v as i8)),
        PixelType::U64 => BandStack::U64(r.read_typed(bands, window)?),
        PixelType::I64 => BandStack::I64(r.read_typed(bands, window)?),
        PixelType::F64 => BandStack::F64(r.read_typed(bands, window)?),
    })
}

/// GDAL's last error message on this thread, on one line; `None` if there is none.
pub fn last_gdal_message() -> Option<String> {
    // SAFETY: CPLGetLastErrorMsg returns this thread's last message (an empty string when
    // there is none), valid until the next GDAL call on this thread; it is copied at once.
    let msg = unsafe {
        let p = gdal_sys::CPLGetLastErrorMsg();
        if p.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    };
    let line = one_line(&msg);
    (!line.is_empty()).then_some(line)
}

/// A GDAL error's message, on one line, without the crate's "CPL error class" wrapping.
fn gdal_message(e: &gdal::errors::GdalError) -> String {
    match e {
        gdal::errors::GdalError::CplError { msg, .. } if !one_line(msg).is_empty() => one_line(msg),
        e => one_line(&e.to_string()),
    }
}

/// `msg` on one line: GDAL's messages can hold line breaks, or end with one.
pub(crate) fn one_line(msg: &str) -> String {
    msg.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A raster opened for reading.
pub struct Raster {
    ds: Dataset,
    path: PathBuf,
}

impl Raster {
    /// Opens `path` (any GDAL path, `/vsis3/` included) read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TilingError> {
        let path = path.as_ref().to_path_buf();
        let virtual_path = path.to_string_lossy().starts_with("/vsi");
        if !virtual_path && !path.exists() {
            return Err(TilingError::Open {
                path,
                reason: "no such file".into(),
            });
        }
        if virtual_path {
            // On object storage the cause of a failure is usually the connection, the
            // credentials or a missing key: GDAL says which when first asked.
            // SAFETY: clears this thread's last GDAL error; no pointer involved.
            unsafe { gdal_sys::CPLErrorReset() };
            if crate::vsi::stat(&path).is_none() {
                let reason = match last_gdal_message() {
                    Some(m) => format!("cannot be reached: {m}"),
                    None => "cannot be reached (no such object, or no access to it)".into(),
                };
                return Err(TilingError::Open { path, reason });
            }
        }
        let ds = Dataset::open(&path).map_err(|_| TilingError::Open {
            path: path.clone(),
            reason: "not a raster GDAL can read".into(),
        })?;
        Ok(Self { ds, path })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying GDAL dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.ds
    }

    /// `(columns, rows)`.
    pub fn size(&self) -> (usize, usize) {
        self.ds.raster_size()
    }

    /// A GDAL block cache size (bytes) for reading this raster in tiles `tile_cols` wide with
    /// `readers` reading at once, and for the whole-raster sample on as many threads: two
    /// rows of the file's blocks (all bands, as a pixel-interleaved block holds them) across
    /// each read, at least 64 MiB and at most 1 GiB.
    ///
    /// Every block is decoded once per read and the cache only has to keep the row of blocks
    /// a read is going through; a larger cache fills with blocks no read needs again (GDAL's
    /// default is 5% of memory), which is peak memory for nothing.
    pub fn block_cache_bytes(&self, tile_cols: usize, readers: usize) -> usize {
        let (cols, _) = self.size();
        let Ok(band) = self.ds.rasterband(1) else {
            return 256 << 20;
        };
        let (bw, bh) = band.block_size();
        let sample = usize::from(band.band_type().bytes());
        let row = |width: usize| {
            width.min(cols).div_ceil(bw.max(1)) * bw * bh * sample * self.band_count()
        };
        let need = 2 * readers.max(1) * row(tile_cols).max(row(cols));
        need.clamp(64 << 20, 1 << 30)
    }

    /// Number of bands.
    pub fn band_count(&self) -> usize {
        self.ds.raster_count()
    }

    /// Checks band numbers (from 1); an empty list means every band.
    pub fn resolve_bands(&self, bands: &[usize]) -> Result<Vec<usize>, TilingError> {
        let count = self.band_count();
        if bands.is_empty() {
            return Ok((1..=count).collect());
        }
        for &b in bands {
            if b == 0 || b > count {
                return Err(TilingError::NoSuchBand {
                    path: self.path.clone(),
                    band: b,
                    count,
                });
            }
        }
        Ok(bands.to_vec())
    }

    fn band(&self, b: usize) -> Result<gdal::raster::RasterBand<'_>, TilingError> {
        self.ds.rasterband(b).map_err(|e| TilingError::Read {
            path: self.path.clone(),
            band: b,
            reason: gdal_message(&e),
        })
    }

    /// Why a read of `window` of `bands` failed: the first band whose own read fails, with
    /// GDAL's message, which names the file it could not read (a VRT's missing source, say).
    /// `message` is the failed read's own message, used when no band fails alone.
    fn read_failure(
        &self,
        bands: &[usize],
        window: Window,
        message: Option<String>,
    ) -> TilingError {
        let failed = |band: usize, reason: String| TilingError::Read {
            path: self.path.clone(),
            band,
            reason,
        };
        if bands.len() > 1 {
            let (offset, size) = (
                (window.xoff as isize, window.yoff as isize),
                (window.xsize, window.ysize),
            );
            for &b in bands {
                if let Err(e) = self.band(b).and_then(|band| {
                    band.read_as::<u8>(offset, size, size, None)
                        .map_err(|e| failed(b, gdal_message(&e)))
                }) {
                    return e;
                }
            }
        }
        let band = bands.first().copied().unwrap_or(0);
        failed(
            band,
            message.unwrap_or_else(|| "GDAL gave no reason".into()),
        )
    }

    /// The common pixel type of `bands`; an error names the first band that differs or that
    /// has an unsupported type (complex types).
    pub fn pixel_type(&self, bands: &[usize]) -> Result<PixelType, TilingError> {
        let mut first: Option<(usize, PixelType, String)> = None;
        for &b in bands {
            let band = self.band(b)?;
            let t = band.band_type();
            let (pt, name) = match t {
                GdalDataType::UInt8 if is_signed_byte(&band) => {
                    (PixelType::I8, "Int8 (signed Byte)".to_string())
                }
                GdalDataType::UInt8 => (PixelType::U8, t.name()),
                GdalDataType::UInt16 => (PixelType::U16, t.name()),
                GdalDataType::Int16 => (PixelType::I16, t.name()),
                GdalDataType::UInt32 => (PixelType::U32, t.name()),
                GdalDataType::Int32 => (PixelType::I32, t.name()),
                GdalDataType::UInt64 => (PixelType::U64, t.name()),
                GdalDataType::Int64 => (PixelType::I64, t.name()),
                GdalDataType::Float32 => (PixelType::F32, t.name()),
                GdalDataType::Float64 => (PixelType::F64, t.name()),
                _ => {
                    return Err(TilingError::UnsupportedType {
                        path: self.path.clone(),
                        band: b,
                        band_type: gdal_type_name(&band),
                    })
                }
            };
            match &first {
                None => first = Some((b, pt, name)),
                Some((fb, ft, fname)) if *ft != pt => {
                    return Err(TilingError::MixedTypes {
                        path: self.path.clone(),
                        band: b,
                        band_type: name,
                        first_band: *fb,
                        first_type: fname.clone(),
                    })
                }
                _ => {}
            }
        }
        first
            .map(|(_, t, _)| t)
            .ok_or_else(|| TilingError::NoSuchBand {
                path: self.path.clone(),
                band: 0,
                count: self.band_count(),
            })
    }

    /// The nodata value shared by `bands` (`None` if none has one); an error if they disagree.
    pub fn null_value(&self, bands: &[usize]) -> Result<Option<f64>, TilingError> {
        let mut first: Option<(usize, Option<f64>)> = None;
        for &b in bands {
            let v = self.band(b)?.no_data_value();
            match first {
                None => first = Some((b, v)),
                Some((fb, fv)) => {
                    let same = match (fv, v) {
                        (Some(x), Some(y)) => x == y || (x.is_nan() && y.is_nan()),
                        (None, None) => true,
                        _ => false,
                    };
                    if !same {
                        return Err(TilingError::NullMismatch {
                            path: self.path.clone(),
                            band: b,
                            value: v,
                            first_band: fb,
                            first_value: fv,
                        });
                    }
                }
            }
        }
        Ok(first.and_then(|(_, v)| v))
    }

    /// Reads `window` of `bands` as type `T` (GDAL converts if the file's type differs).
    pub fn read<T: Copy + GdalType + Default>(
        &self,
        bands: &[usize],
        window: Window,
    ) -> Result<Array3<T>, TilingError> {
        let plane = window.xsize * window.ysize;
        let mut data = vec![T::default(); bands.len() * plane];
        self.read_into(bands, window, &mut data, (0, window.xsize, plane))?;
        Array3::from_shape_vec((bands.len(), window.ysize, window.xsize), data).map_err(|e| {
            TilingError::Read {
                path: self.path.clone(),
                band: bands.first().copied().unwrap_or(0),
                reason: e.to_string(),
            }
        })
    }

    /// Reads `window` of `bands` into `buf`, band-sequential: the pixel at column `x`, row
    /// `y` of the window in the `k`-th band goes to `offset + k * band_step + y * line + x`.
    /// So a window can land inside a larger array (a block inside a tile's).
    pub(crate) fn read_into<T: Copy + GdalType>(
        &self,
        bands: &[usize],
        window: Window,
        buf: &mut [T],
        (offset, line, band_step): (usize, usize, usize),
    ) -> Result<(), TilingError> {
        let (cols, rows) = self.size();
        if window.xoff + window.xsize > cols || window.yoff + window.ysize > rows {
            return Err(TilingError::WindowOutside {
                path: self.path.clone(),
                window,
                cols,
                rows,
            });
        }
        for &b in bands {
            // Checks the band exists, with a clear error, before the raw read.
            self.band(b)?;
        }
        let read_err = |reason: String| TilingError::Read {
            path: self.path.clone(),
            band: bands.first().copied().unwrap_or(0),
            reason,
        };
        if window.xsize == 0 || window.ysize == 0 || bands.is_empty() {
            return Ok(());
        }
        let last =
            offset + (bands.len() - 1) * band_step + (window.ysize - 1) * line + window.xsize;
        if line < window.xsize || last > buf.len() {
            return Err(read_err(format!(
                "a buffer of {} values cannot hold the window {window:?}",
                buf.len()
            )));
        }
        let to_i32 = |v: usize| i32::try_from(v).map_err(|e| read_err(e.to_string()));
        let to_i64 = |v: usize| i64::try_from(v).map_err(|e| read_err(e.to_string()));
        let band_map: Vec<i32> = bands.iter().map(|&b| to_i32(b)).collect::<Result<_, _>>()?;
        let size = std::mem::size_of::<T>();
        // SAFETY: clears this thread's last GDAL error, so that a failure below reports its own.
        unsafe { gdal_sys::CPLErrorReset() };
        // One read of all bands: GDAL decodes each block once, however the file interleaves them.
        // SAFETY: every value GDAL writes, at `offset + k * band_step + y * line + x` for the
        // window's bands, rows and columns, lies inside `buf` (checked above: `last` is one
        // past the greatest); the band numbers were checked above.
        let err = unsafe {
            gdal_sys::GDALDatasetRasterIOEx(
                self.ds.c_dataset(),
                gdal_sys::GDALRWFlag::GF_Read,
                to_i32(window.xoff)?,
                to_i32(window.yoff)?,
                to_i32(window.xsize)?,
                to_i32(window.ysize)?,
                buf.as_mut_ptr().add(offset) as *mut std::ffi::c_void,
                to_i32(window.xsize)?,
                to_i32(window.ysize)?,
                T::gdal_ordinal(),
                to_i32(bands.len())?,
                band_map.as_ptr() as *mut i32,
                to_i64(size)?,
                to_i64(size * line)?,
                to_i64(size * band_step)?,
                std::ptr::null_mut(),
            )
        };
        if err != gdal_sys::CPLErr::CE_None {
            return Err(self.read_failure(bands, window, last_gdal_message()));
        }
        Ok(())
    }

    /// Reads `window` of `bands` in their own (common) pixel type.
    pub fn read_stack(&self, bands: &[usize], window: Window) -> Result<BandStack, TilingError> {
        read_stack_with(self, self.pixel_type(bands)?, bands, window)
    }

    /// The whole raster as a window.
    pub fn full_window(&self) -> Window {
        let (xsize, ysize) = self.size();
        Window {
            xoff: 0,
            yoff: 0,
            xsize,
            ysize,
        }
    }
}

/// Converts a null value given as `f64` to pixel type `T`, if `T` can hold it exactly.
pub(crate) fn null_as<T: Pixel + NullCast>(null: Option<f64>) -> Result<Option<T>, TilingError> {
    match null {
        None => Ok(None),
        Some(v) => T::cast_exact(v)
            .map(Some)
            .ok_or(TilingError::NullNotRepresentable {
                value: v,
                pixel_type: T::NAME,
            }),
    }
}

/// Reading a window of bands in a pixel type: GDAL's own conversion, except for signed bytes,
/// which GDAL 3.6 reads as unsigned and which are reinterpreted here.
pub(crate) trait ReadAs: Sized {
    fn read_window(
        raster: &Raster,
        bands: &[usize],
        window: Window,
    ) -> Result<Array3<Self>, TilingError>;
}

macro_rules! read_as_gdal {
    ($($t:ty),*) => {$(
        impl ReadAs for $t {
            fn read_window(
                raster: &Raster,
                bands: &[usize],
                window: Window,
            ) -> Result<Array3<Self>, TilingError> {
                raster.read::<$t>(bands, window)
            }
        }
    )*};
}
read_as_gdal!(u8, u16, i16, u32, i32, u64, i64, f32, f64);

impl ReadAs for i8 {
    fn read_window(
        raster: &Raster,
        bands: &[usize],
        window: Window,
    ) -> Result<Array3<Self>, TilingError> {
        Ok(raster.read::<u8>(bands, window)?.mapv(|v| v as i8))
    }
}

/// Exact conversion of a null value into a pixel type.
pub(crate) trait NullCast: Sized {
    const NAME: &'static str;
    fn cast_exact(v: f64) -> Option<Self>;
}

macro_rules! null_cast_int {
    ($t:ty, $name:expr) => {
        impl NullCast for $t {
            const NAME: &'static str = $name;
            fn cast_exact(v: f64) -> Option<Self> {
                let c = v as $t;
                (c as f64 == v).then_some(c)
            }
        }
    };
}
null_cast_int!(u8, "Byte");
null_cast_int!(u16, "UInt16");
null_cast_int!(i16, "Int16");
null_cast_int!(u32, "UInt32");
null_cast_int!(i32, "Int32");
null_cast_int!(i8, "Int8");
null_cast_int!(u64, "UInt64");
null_cast_int!(i64, "Int64");

impl NullCast for f64 {
    const NAME: &'static str = "Float64";
    fn cast_exact(v: f64) -> Option<Self> {
        Some(v)
    }
}

impl NullCast for f32 {
    const NAME: &'static str = "Float32";
    fn cast_exact(v: f64) -> Option<Self> {
        let c = v as f32;
        (c as f64 == v || v.is_nan()).then_some(c)
    }
}

impl BandStack {
    /// `(bands, rows, cols)`.
    pub fn dim(&self) -> (usize, usize, usize) {
        match self {
            BandStack::U8(a) => a.dim(),
            BandStack::U16(a) => a.dim(),
            BandStack::I16(a) => a.dim(),
            BandStack::U32(a) => a.dim(),
            BandStack::I32(a) => a.dim(),
            BandStack::F32(a) => a.dim(),
            BandStack::I8(a) => a.dim(),
            BandStack::U64(a) => a.dim(),
            BandStack::I64(a) => a.dim(),
            BandStack::F64(a) => a.dim(),
        }
    }

    /// Segments the stack with `shepseg-core`; `null` must be representable in its type.
    pub fn segment(
        &self,
        null: Option<f64>,
        params: &SegmentParams,
        model: Option<&KMeansModel>,
    ) -> Result<SegmentationResult, TilingError> {
        fn run<T: Pixel + NullCast>(
            a: &Array3<T>,
            null: Option<f64>,
            params: &SegmentParams,
            model: Option<&KMeansModel>,
        ) -> Result<SegmentationResult, TilingError> {
            Ok(segment(&a.view(), null_as::<T>(null)?, params, model)?)
        }
        match self {
            BandStack::U8(a) => run(a, null, params, model),
            BandStack::U16(a) => run(a, null, params, model),
            BandStack::I16(a) => run(a, null, params, model),
            BandStack::U32(a) => run(a, null, params, model),
            BandStack::I32(a) => run(a, null, params, model),
            BandStack::F32(a) => run(a, null, params, model),
            BandStack::I8(a) => run(a, null, params, model),
            BandStack::U64(a) => run(a, null, params, model),
            BandStack::I64(a) => run(a, null, params, model),
            BandStack::F64(a) => run(a, null, params, model),
        }
    }

    /// Analyses the stack as one tile of a seamless segmentation
    /// ([`shepseg_core::seamless::analyse_tile`]): the stack is `frame`'s read window.
    pub fn analyse(
        &self,
        frame: TileFrame,
        null: Option<f64>,
        params: &SegmentParams,
        model: &KMeansModel,
    ) -> Result<TileAnalysis, TilingError> {
        fn run<T: Pixel + NullCast>(
            a: &Array3<T>,
            frame: TileFrame,
            null: Option<f64>,
            params: &SegmentParams,
            model: &KMeansModel,
        ) -> Result<TileAnalysis, TilingError> {
            Ok(analyse_tile(
                &a.view(),
                frame,
                null_as::<T>(null)?,
                params,
                model,
            )?)
        }
        match self {
            BandStack::U8(a) => run(a, frame, null, params, model),
            BandStack::U16(a) => run(a, frame, null, params, model),
            BandStack::I16(a) => run(a, frame, null, params, model),
            BandStack::U32(a) => run(a, frame, null, params, model),
            BandStack::I32(a) => run(a, frame, null, params, model),
            BandStack::F32(a) => run(a, frame, null, params, model),
            BandStack::I8(a) => run(a, frame, null, params, model),
            BandStack::U64(a) => run(a, frame, null, params, model),
            BandStack::I64(a) => run(a, frame, null, params, model),
            BandStack::F64(a) => run(a, frame, null, params, model),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdal_messages_come_on_one_line() {
        // SAFETY: a quiet handler for this thread, then a message through GDAL's own error
        // path, its format a literal "%s" and its one argument a NUL-terminated string.
        unsafe {
            gdal_sys::CPLPushErrorHandler(Some(gdal_sys::CPLQuietErrorHandler));
            gdal_sys::CPLErrorReset();
            gdal_sys::CPLError(
                gdal_sys::CPLErr::CE_Failure,
                4,
                c"%s".as_ptr(),
                c"/data/gone.tif: No such file or directory\n  (from in.vrt)\r\n".as_ptr(),
            );
            gdal_sys::CPLPopErrorHandler();
        }
        assert_eq!(
            last_gdal_message().as_deref(),
            Some("/data/gone.tif: No such file or directory (from in.vrt)")
        );
        // SAFETY: clears this thread's last error.
        unsafe { gdal_sys::CPLErrorReset() };
        assert_eq!(last_gdal_message(), None);
        assert_eq!(one_line("a\n\nb \n"), "a b");
    }

    #[test]
    fn null_conversion_is_exact() {
        assert_eq!(null_as::<u16>(Some(65535.0)).unwrap(), Some(65535));
        assert!(null_as::<u8>(Some(256.0)).is_err());
        assert!(null_as::<i16>(Some(0.5)).is_err());
        assert!(null_as::<f32>(Some(f64::NAN)).unwrap().unwrap().is_nan());
        assert_eq!(null_as::<i32>(None).unwrap(), None);
    }

    #[test]
    fn block_cache_holds_two_block_rows_per_reader() {
        let dir = std::env::temp_dir().join(format!("shepseg-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // 20000 columns of 256x256 tiles, 8 Float32 bands: a row of blocks is 79 blocks of
        // 2 MiB (all bands), 165.6 MB.
        let path = dir.join("wide.tif");
        let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
        let mut co = gdal::cpl::CslStringList::new();
        co.set_name_value("TILED", "YES").unwrap();
        co.set_name_value("SPARSE_OK", "TRUE").unwrap();
        driver
            .create_with_band_type_with_options::<f32, _>(&path, 20000, 16, 8, &co)
            .unwrap()
            .close()
            .unwrap();
        let r = Raster::open(&path).unwrap();
        let row = 79 * 256 * 256 * 4 * 8;
        assert_eq!(r.block_cache_bytes(4096, 1), 2 * row);
        assert_eq!(r.block_cache_bytes(4096, 4), 1 << 30, "at most 1 GiB");
        std::fs::remove_dir_all(&dir).unwrap();
        // A small raster: the 64 MiB floor.
        let small = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/reference/rgbn/rgbn.tif");
        assert_eq!(
            Raster::open(small).unwrap().block_cache_bytes(1024, 8),
            64 << 20
        );
    }
}
