//! The one parallel pass: worker threads, each with its own GDAL datasets, read horizontal
//! strips of the segmentation and of every requested band, group each strip's valid pixels by
//! segment, and finish on the spot every segment that lies wholly in the strip (most of them).
//! The calling thread merges the pieces of segments that span strips, finishes them when the
//! last piece arrives (a segment is complete when the pixels seen equal its Histogram count),
//! and writes finished rows into 100,000-row pages of the attribute table as pages fill.
//!
//! Values are exact integer (or f64) samples, so the merge order never changes a result: the
//! output is the same for any number of workers.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use gdal::{Dataset, Metadata};

use crate::error::{file_err, StatsError};
use crate::spatial::{SegmentPixels, SpatialStat};
use crate::stat::{float_stats, integer_stats, Stat};

/// A sample type: i64 for integer images, f64 for float ones.
pub(crate) trait Sample: Copy + Send + Sync + 'static {
    fn from_f64(v: f64) -> Self;
    /// Whether a pixel value is nodata for a band with this nodata value.
    fn is_null(v: f64, nodata: Option<f64>) -> bool;
    fn sort(s: &mut [Self]);
    fn stats(sorted: &[Self], stats: &[Stat], missing: f64, out: &mut Vec<f64>);
}

impl Sample for i64 {
    fn from_f64(v: f64) -> Self {
        v as i64
    }
    fn is_null(v: f64, nodata: Option<f64>) -> bool {
        // pyshepseg compares as int64, the nodata value truncated.
        nodata.is_some_and(|nd| v as i64 == nd as i64)
    }
    fn sort(s: &mut [Self]) {
        s.sort_unstable();
    }
    fn stats(sorted: &[Self], stats: &[Stat], missing: f64, out: &mut Vec<f64>) {
        integer_stats(sorted, stats, missing, out);
    }
}

impl Sample for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn is_null(v: f64, nodata: Option<f64>) -> bool {
        // NaN and the infinities are not values (the core segments them as null too).
        !v.is_finite() || nodata.is_some_and(|nd| v == nd)
    }
    fn sort(s: &mut [Self]) {
        s.sort_unstable_by(f64::total_cmp);
    }
    fn stats(sorted: &[Self], stats: &[Stat], missing: f64, out: &mut Vec<f64>) {
        float_stats(sorted, stats, missing, out);
    }
}

/// What every worker needs.
pub(crate) struct Ctx<'a> {
    /// Raised by the caller to stop the pass.
    pub cancel: Option<&'a AtomicBool>,
    pub seg_path: &'a Path,
    pub img_path: &'a Path,
    pub bands: &'a [usize],
    pub nodata: &'a [Option<f64>],
    pub stats: &'a [Stat],
    pub spatial: &'a [Box<dyn SpatialStat>],
    /// Columns each spatial statistic fills.
    pub spatial_widths: Vec<usize>,
    /// The band spatial statistics use and its nodata, when there are any.
    pub spatial_band: Option<(usize, Option<f64>)>,
    pub geotransform: [f64; 6],
    pub missing: f64,
    /// Pixel count of each segment (the Histogram column).
    pub hist: &'a [u64],
    pub cols: usize,
    pub rows: usize,
    pub strip_rows: usize,
    pub workers: usize,
    /// Values per finished row (all stats of all bands, then spatial columns).
    pub row_len: usize,
}

/// The pieces of one segment seen so far.
struct Piece<V> {
    pixels: u64,
    bands: Vec<Vec<V>>,
    xs: Vec<u32>,
    ys: Vec<u32>,
    svals: Vec<f64>,
}

/// The spatial band's valid pixels of one strip, grouped by segment like the band values.
struct Spatial {
    xs: Vec<u32>,
    ys: Vec<u32>,
    vals: Vec<f64>,
    /// Segment `l`'s pixels are `off[l]..off[l + 1]`.
    off: Vec<usize>,
}

/// What a worker sends for one strip.
enum StripOut<V> {
    Done {
        rows: Vec<(u32, Vec<f64>)>,
        pieces: Vec<(u32, Piece<V>)>,
    },
    Failed(StatsError),
}

/// Finishes one segment: per-band statistics, then the spatial ones.
fn finish_row<V: Sample>(
    ctx: &Ctx<'_>,
    bands: &mut [&mut [V]],
    xs: &[u32],
    ys: &[u32],
    svals: &[f64],
) -> Vec<f64> {
    let mut row = Vec::with_capacity(ctx.row_len);
    for vals in bands.iter_mut() {
        V::sort(vals);
        V::stats(vals, ctx.stats, ctx.missing, &mut row);
    }
    for (s, &n) in ctx.spatial.iter().zip(&ctx.spatial_widths) {
        let start = row.len();
        row.extend(std::iter::repeat_n(ctx.missing, n));
        if !xs.is_empty() {
            s.compute(
                &SegmentPixels {
                    xs,
                    ys,
                    values: svals,
                    geotransform: ctx.geotransform,
                },
                &mut row[start..start + n],
            );
        }
    }
    row
}

/// Reads a strip of one band as f64.
fn read_rows(
    ds: &Dataset,
    band: usize,
    y0: usize,
    h: usize,
    cols: usize,
) -> Result<Vec<f64>, StatsError> {
    let b = ds.rasterband(band)?;
    let buf = b.read_as::<f64>((0, y0 as isize), (cols, h), (cols, h), None)?;
    let mut v = buf.into_shape_and_vec().1;
    if shepseg_tiling::raster::is_signed_byte(&b) {
        // GDAL 3.6 reads signed bytes as unsigned.
        for x in v.iter_mut().filter(|x| **x >= 128.0) {
            *x -= 256.0;
        }
    }
    if matches!(
        b.band_type(),
        gdal::raster::GdalDataType::Int64 | gdal::raster::GdalDataType::UInt64
    ) {
        // Values pass through f64: refuse, rather than round, those it cannot hold exactly.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        if let Some(x) = v.iter().find(|x| x.abs() > EXACT) {
            return Err(file_err(
                Path::new(&ds.description().unwrap_or_default()),
                format!(
                    "band {band} holds {x:.0}, beyond 2^53: statistics of 64-bit integers are \
                     exact only up to 2^53"
                ),
            ));
        }
    }
    Ok(v)
}

/// Groups one strip by segment and finishes the segments wholly inside it.
fn process_strip<V: Sample>(
    ctx: &Ctx<'_>,
    seg_ds: &Dataset,
    img_ds: &Dataset,
    strip: usize,
) -> Result<StripOut<V>, StatsError> {
    let y0 = strip * ctx.strip_rows;
    let h = ctx.strip_rows.min(ctx.rows - y0);
    let cols = ctx.cols;
    let seg = {
        let b = seg_ds.rasterband(1)?;
        b.read_as::<u32>((0, y0 as isize), (cols, h), (cols, h), None)?
            .into_shape_and_vec()
            .1
    };
    let (mut lo, mut hi) = (u32::MAX, 0u32);
    for &s in &seg {
        if s != 0 {
            lo = lo.min(s);
            hi = hi.max(s);
        }
    }
    if lo > hi {
        return Ok(StripOut::Done {
            rows: Vec::new(),
            pieces: Vec::new(),
        });
    }
    if hi as usize >= ctx.hist.len() {
        return Err(file_err(
            ctx.seg_path,
            format!(
                "segment {hi} is beyond its Histogram column ({} rows)",
                ctx.hist.len()
            ),
        ));
    }
    // Local index of each segment in the strip, in order of first appearance.
    let mut local = vec![u32::MAX; (hi - lo + 1) as usize];
    let mut ids: Vec<u32> = Vec::new();
    let mut totals: Vec<u64> = Vec::new();
    let loc: Vec<u32> = seg
        .iter()
        .map(|&s| {
            if s == 0 {
                return u32::MAX;
            }
            let slot = &mut local[(s - lo) as usize];
            if *slot == u32::MAX {
                *slot = ids.len() as u32;
                ids.push(s);
                totals.push(0);
            }
            totals[*slot as usize] += 1;
            *slot
        })
        .collect();
    drop(local);
    let nseg = ids.len();

    // Valid values of each band grouped by segment (counting sort); the spatial band's values
    // and pixel positions too, read once even when it is also a statistics band.
    let nb = ctx.bands.len();
    let mut offsets: Vec<Vec<usize>> = Vec::with_capacity(nb);
    let mut grouped: Vec<Vec<V>> = Vec::with_capacity(nb);
    let mut spatial: Option<Spatial> = None;
    let mut read_bands: Vec<(usize, Option<f64>, bool)> = ctx
        .bands
        .iter()
        .zip(ctx.nodata)
        .map(|(&b, &nd)| (b, nd, true))
        .collect();
    if let Some((sb, snd)) = ctx.spatial_band {
        if !ctx.bands.contains(&sb) {
            read_bands.push((sb, snd, false));
        }
    }
    for &(band, nodata, for_stats) in &read_bands {
        let data = read_rows(img_ds, band, y0, h, cols)?;
        let mut count = vec![0usize; nseg + 1];
        for (&l, &v) in loc.iter().zip(&data) {
            if l != u32::MAX && !V::is_null(v, nodata) {
                count[l as usize + 1] += 1;
            }
        }
        for i in 0..nseg {
            count[i + 1] += count[i];
        }
        if for_stats {
            let mut vals = vec![V::from_f64(0.0); count[nseg]];
            let mut pos = count.clone();
            for (&l, &v) in loc.iter().zip(&data) {
                if l != u32::MAX && !V::is_null(v, nodata) {
                    let p = &mut pos[l as usize];
                    vals[*p] = V::from_f64(v);
                    *p += 1;
                }
            }
            grouped.push(vals);
        }
        if ctx.spatial_band.is_some_and(|(sb, _)| sb == band) {
            let n = count[nseg];
            let mut sp = Spatial {
                xs: vec![0; n],
                ys: vec![0; n],
                vals: vec![0.0; n],
                off: count.clone(),
            };
            let mut pos = count.clone();
            for (i, (&l, &v)) in loc.iter().zip(&data).enumerate() {
                if l != u32::MAX && !V::is_null(v, nodata) {
                    let p = &mut pos[l as usize];
                    sp.xs[*p] = (i % cols) as u32;
                    sp.ys[*p] = (y0 + i / cols) as u32;
                    sp.vals[*p] = v;
                    *p += 1;
                }
            }
            spatial = Some(sp);
        }
        if for_stats {
            offsets.push(count);
        }
    }

    let mut rows = Vec::new();
    let mut pieces = Vec::new();
    for l in 0..nseg {
        let id = ids[l];
        let expected = ctx.hist[id as usize];
        let (sx, sy, sv): (&[u32], &[u32], &[f64]) = match &spatial {
            Some(sp) => {
                let r = sp.off[l]..sp.off[l + 1];
                (&sp.xs[r.clone()], &sp.ys[r.clone()], &sp.vals[r])
            }
            None => (&[], &[], &[]),
        };
        if totals[l] > expected {
            return Err(file_err(
                ctx.seg_path,
                format!(
                    "its Histogram column does not match its pixels (segment {id}: {expected} in the Histogram, more found)"
                ),
            ));
        }
        if totals[l] == expected {
            let mut slices: Vec<&mut [V]> = Vec::with_capacity(nb);
            // Disjoint slices of each band's grouped values.
            for (vals, off) in grouped.iter_mut().zip(&offsets) {
                let r = off[l]..off[l + 1];
                slices.push(&mut vals[r]);
            }
            rows.push((id, finish_row(ctx, &mut slices, sx, sy, sv)));
        } else {
            pieces.push((
                id,
                Piece {
                    pixels: totals[l],
                    bands: grouped
                        .iter()
                        .zip(&offsets)
                        .map(|(vals, off)| vals[off[l]..off[l + 1]].to_vec())
                        .collect(),
                    xs: sx.to_vec(),
                    ys: sy.to_vec(),
                    svals: sv.to_vec(),
                },
            ));
        }
    }
    Ok(StripOut::Done { rows, pieces })
}

/// A page ready to write: its first row and one vector per column.
pub(crate) type Page = (usize, Vec<Vec<f64>>);

/// Pages of finished rows, written to the table as they fill.
pub(crate) struct Pages<'h> {
    pub page_rows: usize,
    pub nrows: usize,
    pub row_len: usize,
    hist: &'h [u64],
    /// Values for a segment with no pixels in the Histogram (empty ID).
    empty_row: Vec<f64>,
    open: BTreeMap<usize, (Vec<Vec<f64>>, usize)>,
    flushed: Vec<bool>,
    done: Vec<bool>,
}

impl<'h> Pages<'h> {
    pub fn new(nrows: usize, row_len: usize, hist: &'h [u64], empty_row: Vec<f64>) -> Self {
        let page_rows = 100_000;
        Self {
            page_rows,
            nrows,
            row_len,
            hist,
            empty_row,
            open: BTreeMap::new(),
            flushed: vec![false; nrows.div_ceil(page_rows)],
            done: vec![false; nrows],
        }
    }

    fn page(&mut self, p: usize) -> &mut (Vec<Vec<f64>>, usize) {
        let (start, len) = (
            p * self.page_rows,
            self.page_rows.min(self.nrows - p * self.page_rows),
        );
        let (hist, empty_row, row_len) = (self.hist, &self.empty_row, self.row_len);
        self.open.entry(p).or_insert_with(|| {
            let mut cols = vec![vec![0.0f64; len]; row_len];
            let mut remaining = 0;
            #[allow(clippy::needless_range_loop)]
            for r in 0..len {
                let id = start + r;
                if id == 0 {
                    continue; // row 0 (null) stays 0, as pyshepseg leaves it
                }
                if hist[id] == 0 {
                    for (c, v) in empty_row.iter().enumerate() {
                        cols[c][r] = *v;
                    }
                } else {
                    remaining += 1;
                }
            }
            (cols, remaining)
        })
    }

    /// Stores a finished row; returns the page to write if it is now complete.
    pub fn put(&mut self, id: u32, row: Vec<f64>) -> Option<(usize, Vec<Vec<f64>>)> {
        let id = id as usize;
        self.done[id] = true;
        let p = id / self.page_rows;
        let r = id - p * self.page_rows;
        let entry = self.page(p);
        for (c, v) in row.into_iter().enumerate() {
            entry.0[c][r] = v;
        }
        entry.1 -= 1;
        if entry.1 == 0 {
            self.flushed[p] = true;
            return self
                .open
                .remove(&p)
                .map(|(cols, _)| (p * self.page_rows, cols));
        }
        None
    }

    /// The pages never completed by a segment (all empty IDs), or an error naming the first
    /// segment whose pixels were not all found.
    pub fn rest(&mut self, seg_path: &Path) -> Result<Vec<Page>, StatsError> {
        if let Some(id) = (1..self.nrows).find(|&i| self.hist[i] > 0 && !self.done[i]) {
            return Err(file_err(
                seg_path,
                format!(
                    "its Histogram column does not match its pixels (segment {id}: {} in the Histogram, fewer found)",
                    self.hist[id]
                ),
            ));
        }
        let mut out = Vec::new();
        for p in 0..self.flushed.len() {
            if !self.flushed[p] {
                self.page(p);
                if let Some((cols, _)) = self.open.remove(&p) {
                    out.push((p * self.page_rows, cols));
                }
            }
        }
        Ok(out)
    }
}

/// Runs the pass; `write` receives each complete page (first row, one vector per column).
pub(crate) fn run_pass<V: Sample>(
    ctx: &Ctx<'_>,
    pages: &mut Pages<'_>,
    write: &mut dyn FnMut(usize, Vec<Vec<f64>>) -> Result<(), StatsError>,
) -> Result<(), StatsError> {
    let nstrips = ctx.rows.div_ceil(ctx.strip_rows);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    // No more readers than strips are started, nor strips queued for them.
    let readers = ctx.workers.clamp(1, nstrips.max(1));
    let (tx, rx) = mpsc::sync_channel::<StripOut<V>>(readers * 2);
    std::thread::scope(|scope| {
        for _ in 0..readers {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                let open = || -> Result<(Dataset, Dataset), StatsError> {
                    let s = Dataset::open(ctx.seg_path)
                        .map_err(|e| file_err(ctx.seg_path, e.to_string()))?;
                    let i = Dataset::open(ctx.img_path)
                        .map_err(|e| file_err(ctx.img_path, e.to_string()))?;
                    Ok((s, i))
                };
                let (seg_ds, img_ds) = match open() {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = tx.send(StripOut::Failed(e));
                        return;
                    }
                };
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if ctx.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                        let _ = tx.send(StripOut::Failed(StatsError::Cancelled));
                        return;
                    }
                    let s = next.fetch_add(1, Ordering::Relaxed);
                    if s >= nstrips {
                        return;
                    }
                    let out = process_strip::<V>(ctx, &seg_ds, &img_ds, s)
                        .unwrap_or_else(StripOut::Failed);
                    let failed = matches!(out, StripOut::Failed(_));
                    if tx.send(out).is_err() || failed {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let result = (|| {
            let mut open: HashMap<u32, Piece<V>> = HashMap::new();
            for msg in rx.iter() {
                let (rows, pieces) = match msg {
                    StripOut::Done { rows, pieces } => (rows, pieces),
                    StripOut::Failed(e) => return Err(e),
                };
                for (id, row) in rows {
                    if let Some((start, cols)) = pages.put(id, row) {
                        write(start, cols)?;
                    }
                }
                for (id, piece) in pieces {
                    let acc = open.entry(id).or_insert_with(|| Piece {
                        pixels: 0,
                        bands: vec![Vec::new(); piece.bands.len()],
                        xs: Vec::new(),
                        ys: Vec::new(),
                        svals: Vec::new(),
                    });
                    acc.pixels += piece.pixels;
                    for (a, b) in acc.bands.iter_mut().zip(piece.bands) {
                        a.extend(b);
                    }
                    acc.xs.extend(piece.xs);
                    acc.ys.extend(piece.ys);
                    acc.svals.extend(piece.svals);
                    let expected = ctx.hist[id as usize];
                    if acc.pixels > expected {
                        return Err(file_err(
                            ctx.seg_path,
                            format!("its Histogram column does not match its pixels (segment {id}: {expected} in the Histogram, more found)"),
                        ));
                    }
                    if acc.pixels == expected {
                        let Some(mut p) = open.remove(&id) else {
                            continue;
                        };
                        // Pieces arrive in any order: put the pixels back in raster order.
                        if !p.xs.is_empty() {
                            let mut order: Vec<usize> = (0..p.xs.len()).collect();
                            order.sort_unstable_by_key(|&i| (p.ys[i], p.xs[i]));
                            p.xs = order.iter().map(|&i| p.xs[i]).collect();
                            p.ys = order.iter().map(|&i| p.ys[i]).collect();
                            p.svals = order.iter().map(|&i| p.svals[i]).collect();
                        }
                        let mut slices: Vec<&mut [V]> =
                            p.bands.iter_mut().map(|b| b.as_mut_slice()).collect();
                        let row = finish_row(ctx, &mut slices, &p.xs, &p.ys, &p.svals);
                        if let Some((start, cols)) = pages.put(id, row) {
                            write(start, cols)?;
                        }
                    }
                }
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        // Unblock workers waiting to send, so the scope can end.
        drop(rx);
        result
    })
}

/// Counts the pixels of each segment (for a segmentation without a Histogram column).
pub(crate) fn count_pixels(
    seg_path: &Path,
    cols: usize,
    rows: usize,
    strip_rows: usize,
    workers: usize,
) -> Result<Vec<u64>, StatsError> {
    let nstrips = rows.div_ceil(strip_rows);
    let next = AtomicUsize::new(0);
    let results: Vec<Result<Vec<u64>, StatsError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.min(nstrips.max(1)))
            .map(|_| {
                let next = &next;
                scope.spawn(move || -> Result<Vec<u64>, StatsError> {
                    let ds =
                        Dataset::open(seg_path).map_err(|e| file_err(seg_path, e.to_string()))?;
                    let band = ds.rasterband(1)?;
                    let mut counts: Vec<u64> = Vec::new();
                    loop {
                        let s = next.fetch_add(1, Ordering::Relaxed);
                        if s >= nstrips {
                            return Ok(counts);
                        }
                        let y0 = s * strip_rows;
                        let h = strip_rows.min(rows - y0);
                        let buf =
                            band.read_as::<u32>((0, y0 as isize), (cols, h), (cols, h), None)?;
                        for &id in buf.data() {
                            let i = id as usize;
                            if i >= counts.len() {
                                counts.resize(i + 1, 0);
                            }
                            counts[i] += 1;
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(StatsError::Gdal("a reader thread panicked".into())))
            })
            .collect()
    });
    let mut total: Vec<u64> = Vec::new();
    for r in results {
        let c = r?;
        if c.len() > total.len() {
            total.resize(c.len(), 0);
        }
        for (t, v) in total.iter_mut().zip(c) {
            *t += v;
        }
    }
    if let Some(z) = total.first_mut() {
        *z = 0;
    }
    Ok(total)
}
