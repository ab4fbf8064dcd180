//! A small safe wrapper over GDAL's raster attribute table C API (the `gdal` crate has none).
//!
//! [`Rat`] holds a table built in memory; [`Rat::attach`] copies it onto a band through GDAL,
//! [`Rat::write_pam_sidecar`] writes it as a GTiff's `.aux.xml` directly. [`read_column`]
//! reads a column of a band's table back.
//! Every `unsafe` block here calls GDAL with a handle this module owns or a band the caller holds.

use std::ffi::{CStr, CString};

use gdal::raster::RasterBand;
use gdal_sys::{CPLErr, GDALRATFieldType, GDALRATFieldUsage, GDALRWFlag};

use crate::error::TilingError;

/// Column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// GFT_Integer.
    Integer,
    /// GFT_Real.
    Real,
}

/// Column usage (the ones shepseg writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnUsage {
    /// GFU_Generic.
    Generic,
    /// GFU_PixelCount (the histogram).
    PixelCount,
    /// GFU_Red.
    Red,
    /// GFU_Green.
    Green,
    /// GFU_Blue.
    Blue,
    /// GFU_Alpha.
    Alpha,
}

impl ColumnUsage {
    fn raw(self) -> GDALRATFieldUsage::Type {
        match self {
            Self::Generic => GDALRATFieldUsage::GFU_Generic,
            Self::PixelCount => GDALRATFieldUsage::GFU_PixelCount,
            Self::Red => GDALRATFieldUsage::GFU_Red,
            Self::Green => GDALRATFieldUsage::GFU_Green,
            Self::Blue => GDALRATFieldUsage::GFU_Blue,
            Self::Alpha => GDALRATFieldUsage::GFU_Alpha,
        }
    }
}

/// Appends a column to a table; returns its index.
///
/// # Safety
/// `handle` must be a valid raster attribute table.
unsafe fn create_column(
    handle: gdal_sys::GDALRasterAttributeTableH,
    name: &str,
    ty: ColumnType,
    usage: ColumnUsage,
) -> Result<i32, TilingError> {
    let cname = CString::new(name).map_err(|e| TilingError::Table(e.to_string()))?;
    let raw_ty = match ty {
        ColumnType::Integer => GDALRATFieldType::GFT_Integer,
        ColumnType::Real => GDALRATFieldType::GFT_Real,
    };
    // SAFETY: the caller's handle is valid and the name is NUL-terminated.
    let err = unsafe { gdal_sys::GDALRATCreateColumn(handle, cname.as_ptr(), raw_ty, usage.raw()) };
    check(err, &format!("create column {name}"))?;
    // SAFETY: as above; the column just created is the last one.
    Ok(unsafe { gdal_sys::GDALRATGetColumnCount(handle) } - 1)
}

/// The name of the pixel-count column, `Histogram` as pyshepseg names it (real, usage
/// PixelCount, row 0 = 0). Readers find it by this name, as pyshepseg's statistics do.
pub const HISTOGRAM: &str = "Histogram";

/// One column of a [`Rat`]: its definition and one value per row.
struct Column {
    name: String,
    ty: ColumnType,
    usage: ColumnUsage,
    values: Vec<f64>,
}

/// An in-memory raster attribute table, built column by column, then either set on a band
/// through GDAL ([`Rat::attach`]) or written straight into a GTiff's `.aux.xml` sidecar
/// ([`Rat::write_pam_sidecar`]), which is many times faster for large tables.
pub struct Rat {
    rows: usize,
    columns: Vec<Column>,
}

fn check(err: CPLErr::Type, what: &str) -> Result<(), TilingError> {
    if err == CPLErr::CE_None {
        Ok(())
    } else {
        Err(TilingError::Table(format!(
            "raster attribute table: {what} failed"
        )))
    }
}

/// A GDAL table handle freed on drop.
struct Handle(gdal_sys::GDALRasterAttributeTableH);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle was created by GDALCreateRasterAttributeTable and is freed once.
        unsafe { gdal_sys::GDALDestroyRasterAttributeTable(self.0) };
    }
}

impl Rat {
    /// An empty table of `rows` rows. Errors if GDAL cannot hold that many rows.
    pub fn new(rows: usize) -> Result<Self, TilingError> {
        i32::try_from(rows)
            .map_err(|_| TilingError::Table(format!("{rows} table rows exceed GDAL's limit")))?;
        Ok(Self {
            rows,
            columns: Vec::new(),
        })
    }

    /// Adds a column holding `values` (one per row).
    pub fn add_column(
        &mut self,
        name: &str,
        ty: ColumnType,
        usage: ColumnUsage,
        values: &[f64],
    ) -> Result<(), TilingError> {
        if values.len() != self.rows {
            return Err(TilingError::Table(format!(
                "column {name}: {} values for {} rows",
                values.len(),
                self.rows
            )));
        }
        self.columns.push(Column {
            name: name.to_string(),
            ty,
            usage,
            values: values.to_vec(),
        });
        Ok(())
    }

    /// Adds the [`HISTOGRAM`] column from pixel counts.
    pub fn add_histogram(&mut self, counts: &[u64]) -> Result<(), TilingError> {
        let h: Vec<f64> = counts.iter().map(|&v| v as f64).collect();
        self.add_column(HISTOGRAM, ColumnType::Real, ColumnUsage::PixelCount, &h)
    }

    /// The table as a GDAL table.
    fn to_gdal(&self) -> Result<Handle, TilingError> {
        // SAFETY: creating a table has no preconditions; a null handle is checked below.
        let handle = Handle(unsafe { gdal_sys::GDALCreateRasterAttributeTable() });
        if handle.0.is_null() {
            return Err(TilingError::Table(
                "cannot create a raster attribute table".into(),
            ));
        }
        // `rows` fits i32 (checked in `new`).
        let rows = self.rows as i32;
        // SAFETY: `handle` is a valid table owned here.
        unsafe { gdal_sys::GDALRATSetRowCount(handle.0, rows) };
        for c in &self.columns {
            // SAFETY: as above.
            let col = unsafe { create_column(handle.0, &c.name, c.ty, c.usage) }?;
            let mut data = c.values.clone();
            // SAFETY: `data` holds exactly `rows` values.
            let err = unsafe {
                gdal_sys::GDALRATValuesIOAsDouble(
                    handle.0,
                    GDALRWFlag::GF_Write,
                    col,
                    0,
                    rows,
                    data.as_mut_ptr(),
                )
            };
            check(err, "write column")?;
        }
        Ok(handle)
    }

    /// Copies the table onto `band` as its default attribute table.
    pub fn attach(&self, band: &RasterBand) -> Result<(), TilingError> {
        let handle = self.to_gdal()?;
        // SAFETY: the band handle is valid while `band` is borrowed; GDAL copies the table.
        let err = unsafe { gdal_sys::GDALSetDefaultRAT(band.c_rasterband(), handle.0) };
        check(err, "attach to band")
    }

    /// Writes `path` (a raster's `.aux.xml`) holding this table as band 1's attribute table
    /// and nothing else, in the layout GDAL's own PAM serialisation gives (GDAL reads it back
    /// as if it had written it). GDAL builds an XML node per value and formats each with
    /// `printf`, which took over a second for a quarter of a million segments; this writes
    /// the same text directly. Reals are written in the shortest form that reads back to the
    /// same value (GDAL's `%.16g` can lose the last digit), integers as integers.
    pub fn write_pam_sidecar(&self, path: &std::path::Path) -> Result<(), TilingError> {
        use std::io::Write as _;
        let err = |e: std::io::Error| TilingError::Table(format!("{}: {e}", path.display()));
        let file = std::fs::File::create(path).map_err(err)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        out.write_all(b"<PAMDataset>\n  <PAMRasterBand band=\"1\">\n")
            .map_err(err)?;
        self.write_xml(&mut out, "    ").map_err(err)?;
        out.write_all(b"  </PAMRasterBand>\n</PAMDataset>\n")
            .map_err(err)?;
        out.into_inner()
            .map_err(|e| err(e.into_error()))?
            .sync_all()
            .map_err(err)
    }

    /// Writes the table as the `GDALRasterAttributeTable` element GDAL serialises (in a PAM
    /// sidecar, or inside a VRT's band), each line after `indent`.
    pub fn write_xml(&self, out: &mut impl std::io::Write, indent: &str) -> std::io::Result<()> {
        use std::fmt::Write as _;
        let mut head = format!("{indent}<GDALRasterAttributeTable tableType=\"thematic\">\n");
        for (i, c) in self.columns.iter().enumerate() {
            let ty = match c.ty {
                ColumnType::Integer => 0,
                ColumnType::Real => 1,
            };
            // Infallible: writing to a String.
            let _ = write!(
                head,
                "{indent}  <FieldDefn index=\"{i}\">\n{indent}    <Name>{}</Name>\n{indent}    \
                 <Type>{ty}</Type>\n{indent}    <Usage>{}</Usage>\n{indent}  </FieldDefn>\n",
                xml_escape(&c.name),
                c.usage.raw()
            );
        }
        out.write_all(head.as_bytes())?;
        let mut line = String::new();
        for row in 0..self.rows {
            line.clear();
            let _ = writeln!(line, "{indent}  <Row index=\"{row}\">");
            for c in &self.columns {
                line.push_str(indent);
                line.push_str("    <F>");
                push_value(&mut line, c.ty, c.values[row]);
                line.push_str("</F>\n");
            }
            line.push_str(indent);
            line.push_str("  </Row>\n");
            out.write_all(line.as_bytes())?;
        }
        out.write_all(format!("{indent}</GDALRasterAttributeTable>\n").as_bytes())
    }
}

/// Appends a table value as GDAL reads it: an integer column's value truncated as GDAL's
/// `GetValueAsInt` does, a real as an integer when it is one, else in Rust's shortest
/// round-trip form (`nan`, `inf` and `-inf` as C's `strtod` reads them).
fn push_value(line: &mut String, ty: ColumnType, v: f64) {
    use std::fmt::Write as _;
    let _ = match ty {
        ColumnType::Integer => write!(line, "{}", v as i32),
        ColumnType::Real if v.is_nan() => write!(line, "nan"),
        // Not -0.0, which the integer form would lose.
        ColumnType::Real
            if v.fract() == 0.0 && v.abs() < 1e15 && (v != 0.0 || v.is_sign_positive()) =>
        {
            write!(line, "{}", v as i64)
        }
        ColumnType::Real => write!(line, "{v:?}"),
    };
}

/// `text` with XML's special characters escaped, as GDAL's serialiser escapes them.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(ch),
        }
    }
    out
}

/// A column of `band`'s attribute table, by name, as `f64`, or `None` if the band has no table
/// or no such column.
pub fn read_column(band: &RasterBand, name: &str) -> Option<Vec<f64>> {
    let editor = RatEditor::open(band, true).ok()?;
    let col = editor.find(name)?;
    editor.read(col, 0, editor.rows()).ok()
}

/// A band's attribute table opened for editing: find or create columns by name, read and write
/// row ranges, then [`RatEditor::commit`].
///
/// For drivers whose table lives in the file and is written through (HFA, KEA), edits go to the
/// band's own table as they are made, so memory stays bounded by the rows being written. For
/// the others (GTiff keeps its table in a `.aux.xml` sidecar) the table is copied, edited in
/// memory, and set back on the band at `commit`, so a failed run leaves the file as it was.
pub struct RatEditor<'a> {
    band: &'a RasterBand<'a>,
    handle: gdal_sys::GDALRasterAttributeTableH,
    /// True when `handle` is our copy (freed on drop, set on the band at commit).
    owned: bool,
}

impl<'a> RatEditor<'a> {
    /// Opens `band`'s table for editing (an empty one if it has none). `direct` asks for
    /// write-through editing; it is honoured only when the band already has a table.
    pub fn open(band: &'a RasterBand<'a>, direct: bool) -> Result<Self, TilingError> {
        // SAFETY: the band handle is valid while borrowed; the band's table belongs to it and
        // is only cloned or used while the band lives.
        unsafe {
            let rat = gdal_sys::GDALGetDefaultRAT(band.c_rasterband());
            let (handle, owned) = if rat.is_null() {
                (gdal_sys::GDALCreateRasterAttributeTable(), true)
            } else if direct {
                (rat, false)
            } else {
                (gdal_sys::GDALRATClone(rat), true)
            };
            if handle.is_null() {
                return Err(TilingError::Table(
                    "cannot open the raster attribute table".into(),
                ));
            }
            Ok(Self {
                band,
                handle,
                owned,
            })
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        // SAFETY: valid handle.
        unsafe { gdal_sys::GDALRATGetRowCount(self.handle) }.max(0) as usize
    }

    /// Grows the table to at least `rows` rows.
    pub fn ensure_rows(&mut self, rows: usize) -> Result<(), TilingError> {
        if rows > self.rows() {
            let n = i32::try_from(rows).map_err(|_| {
                TilingError::Table(format!("{rows} table rows exceed GDAL's limit"))
            })?;
            // SAFETY: valid handle.
            unsafe { gdal_sys::GDALRATSetRowCount(self.handle, n) };
        }
        Ok(())
    }

    /// Index of the column called `name`, if any (the last one, if several).
    pub fn find(&self, name: &str) -> Option<usize> {
        // SAFETY: valid handle; names are NUL-terminated strings owned by the table.
        unsafe {
            let n = gdal_sys::GDALRATGetColumnCount(self.handle);
            (0..n).rev().find_map(|c| {
                let p = gdal_sys::GDALRATGetNameOfCol(self.handle, c);
                (!p.is_null() && CStr::from_ptr(p).to_str() == Ok(name)).then_some(c as usize)
            })
        }
    }

    /// The column called `name`, created with `ty` and `usage` if there is none (an existing
    /// column is reused whatever its type, as pyshepseg does).
    pub fn column(
        &mut self,
        name: &str,
        ty: ColumnType,
        usage: ColumnUsage,
    ) -> Result<usize, TilingError> {
        if let Some(c) = self.find(name) {
            return Ok(c);
        }
        // SAFETY: `self.handle` is a valid table for as long as this editor lives.
        unsafe { create_column(self.handle, name, ty, usage) }.map(|c| c as usize)
    }

    /// Reads the [`HISTOGRAM`] column as pixel counts, if the table has one with rows.
    pub fn read_histogram(&self) -> Result<Option<Vec<u64>>, TilingError> {
        match self.find(HISTOGRAM) {
            Some(c) if self.rows() > 0 => Ok(Some(
                self.read(c, 0, self.rows())?
                    .into_iter()
                    .map(|v| v.max(0.0) as u64)
                    .collect(),
            )),
            _ => Ok(None),
        }
    }

    /// Writes pixel counts into the [`HISTOGRAM`] column, creating it if needed.
    pub fn write_histogram(&mut self, counts: &[u64]) -> Result<(), TilingError> {
        self.ensure_rows(counts.len())?;
        let c = self.column(HISTOGRAM, ColumnType::Real, ColumnUsage::PixelCount)?;
        let h: Vec<f64> = counts.iter().map(|&v| v as f64).collect();
        self.write(c, 0, &h)
    }

    /// Whether column `col` is real (else integer or string).
    pub fn is_real(&self, col: usize) -> bool {
        // SAFETY: valid handle; out-of-range columns give GFT_Integer.
        let ty = unsafe { gdal_sys::GDALRATGetTypeOfCol(self.handle, col as i32) };
        ty == GDALRATFieldType::GFT_Real
    }

    /// Column names, types and usages, in order.
    pub fn columns(&self) -> Vec<(String, ColumnType, ColumnUsage)> {
        // SAFETY: valid handle.
        unsafe {
            let n = gdal_sys::GDALRATGetColumnCount(self.handle);
            (0..n)
                .map(|c| {
                    let p = gdal_sys::GDALRATGetNameOfCol(self.handle, c);
                    let name = if p.is_null() {
                        String::new()
                    } else {
                        CStr::from_ptr(p).to_string_lossy().into_owned()
                    };
                    let ty = if gdal_sys::GDALRATGetTypeOfCol(self.handle, c)
                        == GDALRATFieldType::GFT_Real
                    {
                        ColumnType::Real
                    } else {
                        ColumnType::Integer
                    };
                    let u = gdal_sys::GDALRATGetUsageOfCol(self.handle, c);
                    let usage = [
                        ColumnUsage::PixelCount,
                        ColumnUsage::Red,
                        ColumnUsage::Green,
                        ColumnUsage::Blue,
                        ColumnUsage::Alpha,
                    ]
                    .into_iter()
                    .find(|x| x.raw() == u)
                    .unwrap_or(ColumnUsage::Generic);
                    (name, ty, usage)
                })
                .collect()
        }
    }

    /// Writes `values` to column `col` from row `start`.
    pub fn write(&mut self, col: usize, start: usize, values: &[f64]) -> Result<(), TilingError> {
        self.io(col, start, values.len(), values.as_ptr() as *mut f64, true)
    }

    /// Reads `len` values of column `col` from row `start`.
    pub fn read(&self, col: usize, start: usize, len: usize) -> Result<Vec<f64>, TilingError> {
        let mut out = vec![0.0; len];
        self.io(col, start, len, out.as_mut_ptr(), false)?;
        Ok(out)
    }

    fn io(
        &self,
        col: usize,
        start: usize,
        len: usize,
        ptr: *mut f64,
        write: bool,
    ) -> Result<(), TilingError> {
        if len == 0 {
            return Ok(());
        }
        let end = start.checked_add(len).filter(|&e| e <= self.rows());
        let (Some(_), Ok(c), Ok(s), Ok(n)) = (
            end,
            i32::try_from(col),
            i32::try_from(start),
            i32::try_from(len),
        ) else {
            return Err(TilingError::Table(format!(
                "raster attribute table: rows {start}..{} out of range",
                start + len
            )));
        };
        let flag = if write {
            GDALRWFlag::GF_Write
        } else {
            GDALRWFlag::GF_Read
        };
        // SAFETY: valid handle; `ptr` points at `len` f64 values (GDAL only reads them when
        // writing), and the row range was checked against the table.
        let err = unsafe { gdal_sys::GDALRATValuesIOAsDouble(self.handle, flag, c, s, n, ptr) };
        check(err, if write { "write" } else { "read" })
    }

    /// Makes the edits part of the band (for a copied table, sets it on the band).
    pub fn commit(self) -> Result<(), TilingError> {
        if self.owned {
            // SAFETY: valid band and table; GDAL copies the table.
            let err = unsafe { gdal_sys::GDALSetDefaultRAT(self.band.c_rasterband(), self.handle) };
            check(err, "attach to band")?;
        }
        Ok(())
    }
}

impl Drop for RatEditor<'_> {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: our own copy, freed once.
            unsafe { gdal_sys::GDALDestroyRasterAttributeTable(self.handle) };
        }
    }
}
