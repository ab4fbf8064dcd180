//! The polygonize job: strips read and traced on worker threads, assembled in order on the
//! calling thread, features written on a writer thread.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gdal::Dataset;
use shepseg_tiling::rat::{ColumnType, RatEditor, HISTOGRAM};
use shepseg_tiling::Raster;

use crate::error::PolygonizeError;
use crate::geometry::{polygons, polygons_wkb, GeoTransform};
use crate::labels::RasterLabels;
use crate::rings::{Assembler, AssemblerError};
use crate::simplify::{Labels, Simplifier};
use crate::trace::{Ring, Strip, StripTrace};
use crate::write::{FieldKind, FieldSpec, Value, VectorOutput};

/// Highest segment ID handled: per-ID tables are indexed by ID.
const MAX_ID: u64 = 1 << 28;
/// Features handed to the writer at once.
const BATCH: usize = 2048;

/// What to polygonize and where.
#[derive(Debug, Clone)]
pub struct PolygonizeJob {
    /// The segmentation (band 1 holds segment IDs; 0 and the nodata value are null).
    pub segfile: PathBuf,
    /// The vector output.
    pub output: PathBuf,
    /// OGR driver; `None` chooses by OUTPUT's extension.
    pub driver: Option<String>,
    /// Attribute-table columns to copy; `None` copies them all.
    pub columns: Option<Vec<String>>,
    /// Threads reading and tracing strips.
    pub workers: usize,
    /// Replace an existing OUTPUT.
    pub overwrite: bool,
    /// Rows per strip (0 chooses).
    pub strip_rows: usize,
    /// Simplify to this tolerance in map units, every shared edge kept shared (`None`: exact
    /// pixel edges).
    pub simplify: Option<f64>,
}

/// What the job did and how long each part took.
#[derive(Debug, Clone, Default)]
pub struct PolygonizeReport {
    /// Features written (one per segment).
    pub features: u64,
    /// Of which MultiPolygons.
    pub multipolygons: u64,
    /// Vertices written (ring closures included).
    pub vertices: u64,
    /// Whether pixel counts were computed (no `Histogram` column to take them from).
    pub counted: bool,
    /// Counting pixels (when computed), wall time.
    pub counting: Duration,
    /// Reading strips, summed over the workers.
    pub reading: Duration,
    /// Tracing strips, summed over the workers.
    pub tracing: Duration,
    /// Joining strips and building geometries.
    pub assembling: Duration,
    /// The writer thread's time in OGR (closing and moving into place included).
    pub writing: Duration,
    /// The whole job, wall time.
    pub total: Duration,
}

fn seg_err(path: &Path, message: impl Into<String>) -> PolygonizeError {
    PolygonizeError::Segfile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The segment file's layout, as every reader needs it.
struct Source {
    path: PathBuf,
    cols: usize,
    rows: usize,
    /// A nonzero nodata value, null like 0.
    null: Option<u32>,
}

impl Source {
    fn open(path: &Path) -> Result<(Self, Raster), PolygonizeError> {
        let raster = Raster::open(path)?;
        let ds = raster.dataset();
        let band = ds
            .rasterband(1)
            .map_err(|_| seg_err(path, "has no raster band"))?;
        let ty = band.band_type();
        if !ty.is_integer() {
            return Err(seg_err(
                path,
                format!(
                    "not a segmentation: band 1 holds {} values, segment IDs are integers",
                    ty.name()
                ),
            ));
        }
        let null = band
            .no_data_value()
            .filter(|v| v.fract() == 0.0 && *v > 0.0 && *v <= f64::from(u32::MAX))
            .map(|v| v as u32);
        let (cols, rows) = ds.raster_size();
        if cols == 0 || rows == 0 || cols >= u32::MAX as usize || rows >= u32::MAX as usize {
            return Err(seg_err(path, format!("unusable size {cols} x {rows}")));
        }
        Ok((
            Self {
                path: path.to_path_buf(),
                cols,
                rows,
                null,
            },
            raster,
        ))
    }

    /// Reads pixel rows `r0 - 1 .. r1` (those in the image) into a strip buffer; its last row,
    /// `r1`, which the trace never reads, stays 0 (reading it could decode a row of blocks
    /// the strip does not need).
    fn read_strip(
        &self,
        ds: &Dataset,
        r0: usize,
        r1: usize,
        buf: &mut Vec<u32>,
        row: &mut Vec<u32>,
    ) -> Result<(), PolygonizeError> {
        let w = self.cols + 2;
        buf.clear();
        buf.resize(Strip::rows_needed(r0, r1) * w, 0);
        let first = r0.saturating_sub(1);
        let end = r1.min(self.rows);
        let band = ds
            .rasterband(1)
            .map_err(|e| seg_err(&self.path, e.to_string()))?;
        let n = end - first;
        row.resize(n * self.cols, 0);
        band.read_into_slice::<u32>(
            (0, first as isize),
            (self.cols, n),
            (self.cols, n),
            row,
            None,
        )
        .map_err(|e| seg_err(&self.path, format!("reading rows {first}..{end}: {e}")))?;
        for (k, src) in row.chunks_exact(self.cols).enumerate() {
            let i = first + k + 1 - r0;
            let dst = &mut buf[i * w + 1..i * w + 1 + self.cols];
            dst.copy_from_slice(src);
            if let Some(null) = self.null {
                for v in dst.iter_mut().filter(|v| **v == null) {
                    *v = 0;
                }
            }
        }
        Ok(())
    }
}

/// Which strips may start: no more than `lead` ahead of the last one assembled.
struct Gate {
    next: AtomicUsize,
    done: Mutex<usize>,
    moved: Condvar,
    stop: AtomicBool,
    lead: usize,
}

impl Gate {
    fn take(&self, total: usize) -> Option<usize> {
        let k = self.next.fetch_add(1, Ordering::SeqCst);
        if k >= total {
            return None;
        }
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while k >= *done + self.lead && !self.stop.load(Ordering::SeqCst) {
            done = self.moved.wait(done).unwrap_or_else(|e| e.into_inner());
        }
        (!self.stop.load(Ordering::SeqCst)).then_some(k)
    }

    fn advance(&self, done: usize) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = done;
        self.moved.notify_all();
    }

    fn halt(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _guard = self.done.lock().unwrap_or_else(|e| e.into_inner());
        self.moved.notify_all();
    }
}

/// The attribute-table columns to copy, and the pixel counts if it has them.
struct Table {
    fields: Vec<FieldSpec>,
    values: Vec<(FieldKind, Vec<f64>)>,
    counts: Option<Vec<u64>>,
}

fn read_table(
    ds: &Dataset,
    path: &Path,
    wanted: Option<&[String]>,
) -> Result<Table, PolygonizeError> {
    let band = ds.rasterband(1).map_err(|e| seg_err(path, e.to_string()))?;
    let editor = RatEditor::open(&band, true).map_err(PolygonizeError::Read)?;
    let columns = editor.columns();
    let rows = editor.rows();
    let reserved = |n: &str| {
        ["id", "pixels", "area"]
            .iter()
            .any(|r| r.eq_ignore_ascii_case(n))
    };
    let chosen: Vec<usize> = match wanted {
        None => (0..columns.len())
            .filter(|&c| !reserved(&columns[c].0))
            .collect(),
        Some(names) => names
            .iter()
            .filter(|n| !n.is_empty())
            .map(|n| {
                columns
                    .iter()
                    .position(|(name, _, _)| name == n)
                    .filter(|_| !reserved(n))
                    .ok_or_else(|| PolygonizeError::Column {
                        path: path.to_path_buf(),
                        column: n.clone(),
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    let mut fields = Vec::new();
    let mut values = Vec::new();
    for c in chosen {
        let (name, ty, _) = &columns[c];
        let kind = match ty {
            ColumnType::Real => FieldKind::Real,
            ColumnType::Integer => FieldKind::Integer,
        };
        fields.push(FieldSpec {
            name: name.clone(),
            kind,
        });
        values.push((
            kind,
            editor.read(c, 0, rows).map_err(PolygonizeError::Read)?,
        ));
    }
    let counts = match editor.find(HISTOGRAM) {
        Some(c) if rows > 0 => Some(
            editor
                .read(c, 0, rows)
                .map_err(PolygonizeError::Read)?
                .into_iter()
                .map(|v| if v > 0.0 { v as u64 } else { 0 })
                .collect(),
        ),
        _ => None,
    };
    Ok(Table {
        fields,
        values,
        counts,
    })
}

/// Strip boundaries: `rows` split into strips of about `strip_rows`.
fn strips(rows: usize, strip_rows: usize) -> Vec<(usize, usize)> {
    let n = rows.div_ceil(strip_rows.max(1));
    (0..n)
        .map(|k| (k * strip_rows, ((k + 1) * strip_rows).min(rows)))
        .collect()
}

/// Counts each segment's pixels, strips read on `workers` threads.
fn count_pixels(
    src: &Source,
    workers: usize,
    strip_rows: usize,
) -> Result<Vec<u64>, PolygonizeError> {
    let parts = strips(src.rows, strip_rows);
    let next = AtomicUsize::new(0);
    let results: Vec<Result<Vec<u64>, PolygonizeError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers.max(1))
            .map(|_| {
                s.spawn(|| {
                    let raster = Raster::open(&src.path)?;
                    let ds = raster.dataset();
                    let mut counts: Vec<u64> = Vec::new();
                    let (mut buf, mut row) = (Vec::new(), Vec::new());
                    loop {
                        let k = next.fetch_add(1, Ordering::SeqCst);
                        let Some(&(r0, r1)) = parts.get(k) else {
                            break;
                        };
                        src.read_strip(ds, r0, r1, &mut buf, &mut row)?;
                        let w = src.cols + 2;
                        for i in 1..=(r1 - r0) {
                            for &v in &buf[i * w + 1..i * w + 1 + src.cols] {
                                if u64::from(v) >= MAX_ID {
                                    return Err(too_high(&src.path, v));
                                }
                                let v = v as usize;
                                if v >= counts.len() {
                                    counts.resize(v + 1, 0);
                                }
                                counts[v] += 1;
                            }
                        }
                    }
                    Ok(counts)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(seg_err(&src.path, "a counting thread panicked")))
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
    Ok(total)
}

fn too_high(path: &Path, v: u32) -> PolygonizeError {
    seg_err(
        path,
        format!("segment ID {v} is above {MAX_ID}, the highest this polygonizer handles"),
    )
}

/// A finished segment, ready for the writer.
struct Feature {
    label: u32,
    values: Vec<Value>,
    wkb: Vec<u8>,
    multi: bool,
    vertices: usize,
}

/// What a feature needs besides its rings: pixel counts, attribute columns, the geotransform.
struct FeatureContext<'a> {
    counts: &'a [u64],
    attrs: &'a [(FieldKind, Vec<f64>)],
    gt: GeoTransform,
    simplifier: Option<Simplifier>,
}

impl FeatureContext<'_> {
    /// Segment `label`'s feature from its rings (pinches already cut); `labels` (given
    /// whenever simplifying) are read around them.
    /// around them when simplifying.
    fn feature<L: Labels + ?Sized>(
        &self,
        label: u32,
        rings: Vec<Ring>,
        labels: Option<&mut L>,
    ) -> Feature {
        let mut wkb = Vec::new();
        let multi = rings.iter().filter(|r| r.area2 > 0).count() > 1;
        let mut polys = polygons(rings);
        if let (Some(s), Some(labels)) = (&self.simplifier, labels) {
            for (outer, holes) in &mut polys {
                *outer = s.ring(labels, outer);
                for h in holes.iter_mut() {
                    *h = s.ring(labels, h);
                }
            }
        }
        let vertices = polygons_wkb(&polys, &self.gt, &mut wkb);
        let pixels = self.counts.get(label as usize).copied().unwrap_or(0);
        let mut values = vec![
            Value::Integer(i64::from(label)),
            Value::Integer(pixels as i64),
            Value::Real(pixels as f64 * self.gt.pixel_area()),
        ];
        values.extend(
            self.attrs
                .iter()
                .map(|(kind, col)| match (col.get(label as usize), kind) {
                    (Some(&v), FieldKind::Real) => Value::Real(v),
                    (Some(&v), FieldKind::Integer) => Value::Integer(v as i64),
                    (None, _) => Value::Null,
                }),
        );
        Feature {
            label,
            values,
            wkb,
            multi,
            vertices,
        }
    }

    /// Takes out of `trace` the segments that lie wholly inside its strip (no open chain, and
    /// closed rings enclosing all their pixels) and makes their features, so that the strip
    /// workers, in parallel, build most features and the assembler only those crossing strips.
    fn finish_local(&self, trace: &mut StripTrace, strip: &mut Strip) -> Vec<Feature> {
        let open: HashSet<u32> = trace.chains.iter().map(|c| c.label).collect();
        let mut area: HashMap<u32, i64> = HashMap::new();
        for r in trace.rings.iter().filter(|r| !open.contains(&r.label)) {
            *area.entry(r.label).or_default() += r.area2;
        }
        let whole = |label: u32| {
            area.get(&label).is_some_and(|&a| {
                a > 0 && self.counts.get(label as usize).copied() == Some(a as u64 / 2)
            })
        };
        let (local, rest): (Vec<Ring>, Vec<Ring>) = std::mem::take(&mut trace.rings)
            .into_iter()
            .partition(|r| whole(r.label));
        trace.rings = rest;
        let mut by_label: BTreeMap<u32, Vec<Ring>> = BTreeMap::new();
        for r in local {
            by_label
                .entry(r.label)
                .or_default()
                .extend(r.split_pinches());
        }
        by_label
            .into_iter()
            .map(|(label, rings)| self.feature(label, rings, Some(&mut *strip)))
            .collect()
    }
}

/// Polygonizes `job.segfile` into `job.output`; `progress` hears (strips done, strips).
pub fn polygonize(
    job: &PolygonizeJob,
    mut progress: Option<&mut dyn FnMut(usize, usize)>,
) -> Result<PolygonizeReport, PolygonizeError> {
    let start = Instant::now();
    let mut report = PolygonizeReport::default();
    if let Some(t) = job.simplify {
        if !(t.is_finite() && t > 0.0) {
            return Err(PolygonizeError::Tolerance(t));
        }
    }
    let (src, raster) = Source::open(&job.segfile)?;
    let ds = raster.dataset();
    let workers = job.workers.max(1);
    let strip_rows = if job.strip_rows > 0 {
        job.strip_rows
    } else {
        (4_000_000 / src.cols).clamp(16, 1024)
    };
    // Each block is read once or twice (where strips split it): GDAL's default cache (5% of
    // memory) would keep every decoded block, growing with the image, for nothing. Enough
    // for every worker's strip and the block rows around it, unless GDAL_CACHEMAX is given.
    if gdal::config::get_config_option("GDAL_CACHEMAX", "")
        .unwrap_or_default()
        .is_empty()
    {
        let block_rows = ds.rasterband(1).map(|b| b.block_size().1).unwrap_or(256);
        let bytes = workers * (strip_rows + 2 * block_rows) * src.cols * 4;
        shepseg_tiling::set_block_cache(bytes.clamp(64 << 20, 1 << 30));
    }
    let table = read_table(ds, &src.path, job.columns.as_deref())?;
    let gt = GeoTransform(ds.geo_transform().unwrap_or([0.0, 1.0, 0.0, 0.0, 0.0, 1.0]));
    let srs = ds.spatial_ref().ok();
    let mut output = {
        let mut fields = vec![
            FieldSpec {
                name: "id".into(),
                kind: FieldKind::Integer,
            },
            FieldSpec {
                name: "pixels".into(),
                kind: FieldKind::Integer,
            },
            FieldSpec {
                name: "area".into(),
                kind: FieldKind::Real,
            },
        ];
        fields.extend(table.fields.iter().cloned());
        VectorOutput::create(
            &job.output,
            job.driver.as_deref(),
            job.overwrite,
            srs.as_ref(),
            &fields,
        )?
    };
    drop(raster);
    let counts = match table.counts {
        Some(c) => c,
        None => {
            let t = Instant::now();
            let c = count_pixels(&src, workers, strip_rows)?;
            report.counting = t.elapsed();
            report.counted = true;
            c
        }
    };
    let parts = strips(src.rows, strip_rows);
    let total = parts.len();
    let gate = Gate {
        next: AtomicUsize::new(0),
        done: Mutex::new(0),
        moved: Condvar::new(),
        stop: AtomicBool::new(false),
        lead: 2 * workers + 2,
    };
    let attrs = &table.values;
    let ctx = FeatureContext {
        counts: &counts,
        attrs,
        gt,
        simplifier: job.simplify.map(|t| Simplifier::new(t, gt)),
    };
    type Traced = (StripTrace, Vec<Feature>, Duration, Duration);
    let (tx, rx) = mpsc::channel::<(usize, Result<Traced, PolygonizeError>)>();
    let (ftx, frx) = mpsc::sync_channel::<Vec<(Vec<Value>, Vec<u8>)>>(8);

    let outcome: Result<(), PolygonizeError> = std::thread::scope(|s| {
        // The writer.
        let writer = s.spawn(
            move || -> Result<(VectorOutput, Duration), PolygonizeError> {
                let mut busy = Duration::ZERO;
                for batch in frx {
                    let t = Instant::now();
                    for (values, wkb) in batch {
                        output.write(&values, &wkb)?;
                    }
                    busy += t.elapsed();
                }
                Ok((output, busy))
            },
        );
        // The strip workers.
        for _ in 0..workers.min(total) {
            let tx = tx.clone();
            let (src, gate, parts, ctx) = (&src, &gate, &parts, &ctx);
            s.spawn(move || {
                let raster = match Raster::open(&src.path) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send((0, Err(e.into())));
                        return;
                    }
                };
                let ds = raster.dataset();
                let (mut buf, mut row) = (Vec::new(), Vec::new());
                while let Some(k) = gate.take(total) {
                    let (r0, r1) = parts[k];
                    let t = Instant::now();
                    let traced = src
                        .read_strip(ds, r0, r1, &mut buf, &mut row)
                        .and_then(|()| {
                            let read = t.elapsed();
                            let t = Instant::now();
                            let mut strip = Strip {
                                labels: &buf,
                                cols: src.cols,
                                r0,
                                r1,
                                last: k + 1 == total,
                            };
                            strip
                                .trace()
                                .map(|mut tr| {
                                    let local = ctx.finish_local(&mut tr, &mut strip);
                                    (tr, local, read, t.elapsed())
                                })
                                .map_err(|e| PolygonizeError::Assembly {
                                    path: src.path.clone(),
                                    message: e.0,
                                })
                        });
                    let failed = traced.is_err();
                    if tx.send((k, traced)).is_err() || failed {
                        return;
                    }
                }
            });
        }
        drop(tx);

        let assembled = (|| -> Result<(), PolygonizeError> {
            // Segments that span strips read their labels from the file (when simplifying).
            let labels_raster = match ctx.simplifier {
                Some(_) => Some(Raster::open(&src.path)?),
                None => None,
            };
            let mut file_labels = labels_raster
                .as_ref()
                .map(|r| RasterLabels::new(r.dataset(), src.cols, src.rows, src.null));
            let mut asm = Assembler::new(&counts);
            let mut waiting: BTreeMap<usize, StripTrace> = BTreeMap::new();
            let mut next_strip = 0;
            let mut finished: HashMap<u32, (Vec<Value>, Vec<u8>)> = HashMap::new();
            let mut next_id: usize = 1;
            let mut batch = Vec::with_capacity(BATCH);
            let asm_err = |e: AssemblerError| {
                PolygonizeError::Assembly {
                path: src.path.clone(),
                message: match e {
                    AssemblerError::CountMismatch {
                        label,
                        enclosed,
                        count,
                    } => format!(
                        "segment {label} has {enclosed} pixels where the Histogram column says {count}: the attribute table does not describe this image"
                    ),
                    AssemblerError::Unfinished(m) => m,
                },
            }
            };
            while next_strip < total {
                let Ok((k, traced)) = rx.recv() else {
                    return Err(seg_err(&src.path, "the strip workers stopped"));
                };
                let (trace, local, read, took) = traced?;
                report.reading += read;
                report.tracing += took;
                for f in local {
                    report.multipolygons += u64::from(f.multi);
                    report.vertices += f.vertices as u64;
                    finished.insert(f.label, (f.values, f.wkb));
                }
                waiting.insert(k, trace);
                while let Some(trace) = waiting.remove(&next_strip) {
                    let t = Instant::now();
                    next_strip += 1;
                    gate.advance(next_strip);
                    for (label, rings) in asm.add_strip(trace).map_err(asm_err)? {
                        let f = ctx.feature(label, rings, file_labels.as_mut());
                        report.multipolygons += u64::from(f.multi);
                        report.vertices += f.vertices as u64;
                        finished.insert(label, (f.values, f.wkb));
                    }
                    if let Some(e) = file_labels.as_mut().and_then(|l| l.error.take()) {
                        return Err(seg_err(&src.path, e));
                    }
                    // In ID order: each finished segment waits for the lower IDs.
                    while next_id < counts.len() {
                        if counts[next_id] == 0 {
                            next_id += 1;
                            continue;
                        }
                        let Some(f) = finished.remove(&(next_id as u32)) else {
                            break;
                        };
                        batch.push(f);
                        next_id += 1;
                        report.features += 1;
                        if batch.len() == BATCH {
                            if ftx.send(std::mem::take(&mut batch)).is_err() {
                                return Ok(()); // the writer failed: its error follows
                            }
                            batch.reserve(BATCH);
                        }
                    }
                    report.assembling += t.elapsed();
                    if let Some(p) = progress.as_mut() {
                        p(next_strip, total);
                    }
                }
            }
            asm.finish().map_err(asm_err)?;
            if next_id < counts.len() {
                return Err(asm_err(AssemblerError::CountMismatch {
                    label: next_id as u32,
                    enclosed: 0,
                    count: counts[next_id],
                }));
            }
            if !batch.is_empty() {
                let _ = ftx.send(batch);
            }
            Ok(())
        })();
        gate.halt();
        drop(ftx);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(seg_err(&src.path, "the writer thread panicked")));
        assembled?;
        let (output, busy) = written?;
        let t = Instant::now();
        output.finish()?;
        report.writing = busy + t.elapsed();
        Ok(())
    });
    outcome?;
    report.total = start.elapsed();
    Ok(report)
}
