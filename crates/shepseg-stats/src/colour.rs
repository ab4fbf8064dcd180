//! Colour from statistics: Red, Green and Blue attribute-table columns from three columns (the
//! bands' means), each stretched linearly between its 5th and 95th percentiles, as pyshepseg's
//! `writeColorTableFromRatColumns` does: numpy's linear-interpolation percentiles over the whole
//! column (row 0 included), `255 * clip((v - p5) / (p95 - p5), 0, 1)` truncated to an integer,
//! and Alpha 255 on every row. A column with p95 = p5 gets 0.

use std::path::Path;

use shepseg_tiling::rat::{ColumnType, ColumnUsage, RatEditor};

use crate::error::{file_err, StatsError};

/// numpy's default (linear) percentile of unsorted values.
pub fn numpy_percentile(values: &[f64], p: f64) -> f64 {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let h = (n - 1) as f64 * (p / 100.0);
    let j = h.floor();
    let g = h - j;
    let j = j as usize;
    let (a, b) = (v[j], v[(j + 1).min(n - 1)]);
    let d = b - a;
    if g < 0.5 {
        a + d * g
    } else {
        b - d * (1.0 - g)
    }
}

/// The stretched colour values of one column.
pub fn stretch(values: &[f64]) -> Vec<f64> {
    let lo = numpy_percentile(values, 5.0);
    let hi = numpy_percentile(values, 95.0);
    values
        .iter()
        .map(|&v| {
            let t = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
            if t.is_nan() {
                0.0
            } else {
                (255.0 * t).trunc()
            }
        })
        .collect()
}

/// Writes Red/Green/Blue from the columns named `sources` (in that order) and Alpha 255, into
/// `segfile`'s table.
pub fn colour_from_columns(segfile: &Path, sources: [&str; 3]) -> Result<(), StatsError> {
    let mut ds = crate::open_update(segfile)?;
    let band = ds.rasterband(1)?;
    let mut editor = RatEditor::open(&band, false)?;
    let rows = editor.rows();
    for (src, (name, usage)) in sources.iter().zip([
        ("Red", ColumnUsage::Red),
        ("Green", ColumnUsage::Green),
        ("Blue", ColumnUsage::Blue),
    ]) {
        let c = editor.find(src).ok_or_else(|| {
            file_err(
                segfile,
                format!("no column {src} to colour from (compute the band's mean first)"),
            )
        })?;
        let values = editor.read(c, 0, rows)?;
        let out = editor.column(name, ColumnType::Integer, usage)?;
        editor.write(out, 0, &stretch(&values))?;
    }
    let a = editor.column("Alpha", ColumnType::Integer, ColumnUsage::Alpha)?;
    editor.write(a, 0, &vec![255.0; rows])?;
    editor.commit()?;
    ds.flush_cache()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_numpy() {
        // numpy.percentile([1, 2, 3, 4, 10], [5, 95]) == [1.2, 8.8]
        let v = [4.0, 1.0, 10.0, 3.0, 2.0];
        assert!((numpy_percentile(&v, 5.0) - 1.2).abs() < 1e-12);
        assert!((numpy_percentile(&v, 95.0) - 8.8).abs() < 1e-12);
        let s = stretch(&v);
        assert_eq!(s, vec![93.0, 0.0, 255.0, 60.0, 26.0]);
    }
}
