//! The stitcher: takes segmented tiles in row-major order and writes one raster of global IDs.
//!
//! For each tile, in the order of the grid: segments crossing the midline of the overlap with the
//! tile above or to the left take that tile's IDs ([`crate::recode`]); every other segment whose
//! bounding box starts inside the tile's trimmed area gets the next new ID; the tile is trimmed by
//! half the overlap on each inner side and handed to the [`TileSink`]. Its right and bottom
//! overlap strips are kept for the tiles that follow, and dropped once used, so memory holds one
//! row of strips, not the image.
//!
//! With `compat` the result is pyshepseg's, defects included: pixels recoded to 0 at seams, and
//! IDs given to segments with no pixel in the output. Without it no valid pixel is left null
//! (0 is never a recode target; a seam segment with only unlabelled pixels under it gets a new ID,
//! counted as a fallback) and IDs never repeat. The IDs matched across overlaps are provisional;
//! an output ID is given to each the first time one of its pixels is written (in provisional
//! order within a tile), so the output holds exactly 1..N with no empty ID and no second pass, and
//! a single tile's IDs are the core's.

use std::collections::HashMap;

use ndarray::{s, Array2, ArrayView2};
use shepseg_tiling::{Tile, TileGrid, Window};

use crate::error::StitchError;
use crate::recode::{match_overlap, Recode, Side};

/// Where stitched pixels go: the output raster, or anything else that stores blocks.
///
/// [`Stitcher::push`] calls `write` once per tile with the tile's trimmed block of output IDs,
/// final when written; the blocks tile the raster without overlap, in row-major order. The block
/// is handed over, so a sink can keep or move it without copying. An error stops the stitch and
/// is returned to the caller.
pub trait TileSink {
    /// Stores `block` (output IDs, 0 = null) at `window` of the output.
    fn write(&mut self, window: Window, block: Array2<u32>) -> Result<(), StitchError>;
}

/// A [`TileSink`] holding the whole output in memory: for tests, and for callers that want the
/// stitched segmentation as an array rather than a file.
#[derive(Debug, Clone, PartialEq)]
pub struct MemorySink(pub Array2<u32>);

impl MemorySink {
    /// An all-null output of `rows x cols`.
    pub fn new(rows: usize, cols: usize) -> Self {
        Self(Array2::zeros((rows, cols)))
    }
}

impl TileSink for MemorySink {
    fn write(&mut self, w: Window, block: Array2<u32>) -> Result<(), StitchError> {
        let (rows, cols) = self.0.dim();
        if w.yoff + w.ysize > rows || w.xoff + w.xsize > cols || block.dim() != (w.ysize, w.xsize) {
            return Err(StitchError::Output(format!(
                "block {w:?} does not fit the {cols} x {rows} output"
            )));
        }
        self.0
            .slice_mut(s![w.yoff..w.yoff + w.ysize, w.xoff..w.xoff + w.xsize])
            .assign(&block);
        Ok(())
    }
}

/// What a finished stitch reports.
#[derive(Debug, Clone, PartialEq)]
pub struct StitchReport {
    /// Pixel count per final ID (index 0, null, is 0).
    pub histogram: Vec<u64>,
    /// Largest ID in the output.
    pub num_segments: u32,
    /// Seam segments that had only unlabelled pixels under them and took a new ID.
    pub fallbacks: usize,
    /// IDs with no pixel in the output (only in compatibility mode, as pyshepseg leaves them).
    pub empty_ids: usize,
}

/// Stitches tiles pushed in row-major order; see the module docs.
pub struct Stitcher {
    grid: TileGrid,
    compat: bool,
    next: usize,
    max_id: u32,
    /// Right strip of the previous tile in this row.
    right: Option<Array2<u32>>,
    /// Bottom strip of each tile of the previous row, by column.
    bottoms: Vec<Option<Array2<u32>>>,
    histogram: Vec<u64>,
    fallbacks: usize,
    /// Output ID of each provisional ID (0: not written yet); unused in compatibility mode.
    output_id: Vec<u32>,
    /// Output IDs given so far.
    num_output: u32,
}

impl Stitcher {
    /// A stitcher for `grid`; `compat` reproduces pyshepseg exactly.
    pub fn new(grid: TileGrid, compat: bool) -> Self {
        let ncols = grid.ncols();
        Self {
            grid,
            compat,
            next: 0,
            max_id: 0,
            right: None,
            bottoms: vec![None; ncols],
            histogram: vec![0],
            fallbacks: 0,
            output_id: vec![0],
            num_output: 0,
        }
    }

    /// The tile the stitcher needs next, or `None` when all are done.
    pub fn next_tile(&self) -> Option<Tile> {
        self.grid.tiles().get(self.next).copied()
    }

    /// Stitches the next tile: `seg` is its segmentation (local IDs from 1, 0 = null), the size of
    /// its window.
    pub fn push(
        &mut self,
        seg: ArrayView2<u32>,
        sink: &mut impl TileSink,
    ) -> Result<(), StitchError> {
        let tile = self.next_tile().ok_or(StitchError::TooManyTiles)?;
        let w = tile.window;
        if seg.dim() != (w.ysize, w.xsize) {
            return Err(StitchError::TileShape {
                col: tile.col,
                row: tile.row,
                expected: (w.ysize, w.xsize),
                got: seg.dim(),
            });
        }
        let overlap = self.grid.overlap();
        let margin = overlap / 2;
        let last_row = tile.row + 1 == self.grid.nrows();
        let last_col = tile.col + 1 == self.grid.ncols();
        let top = if tile.row == 0 { 0 } else { margin };
        let left = if tile.col == 0 { 0 } else { margin };
        let bottom = if last_row { w.ysize } else { w.ysize - margin };
        let right = if last_col { w.xsize } else { w.xsize - margin };

        let mut recode: HashMap<u32, Recode> = HashMap::new();
        if tile.row > 0 {
            let earlier = self.bottoms[tile.col]
                .take()
                .ok_or(StitchError::MissingOverlap {
                    col: tile.col,
                    row: tile.row,
                })?;
            match_overlap(
                seg.slice(s![..overlap, ..]),
                earlier.view(),
                Side::Top,
                self.compat,
                &mut recode,
            );
        }
        if tile.col > 0 {
            let earlier = self.right.take().ok_or(StitchError::MissingOverlap {
                col: tile.col,
                row: tile.row,
            })?;
            match_overlap(
                seg.slice(s![.., ..overlap]),
                earlier.view(),
                Side::Left,
                self.compat,
                &mut recode,
            );
        }
        let trim = (top, bottom, left, right);
        let (lut, inside) = self.relabel(seg, &recode, trim);
        // What each local ID is written as: its provisional ID (compat) or its output ID.
        let out_lut: Vec<u32> = if self.compat {
            lut.clone()
        } else {
            // Provisional IDs written for the first time get output IDs, in ascending order.
            if self.output_id.len() <= self.max_id as usize {
                self.output_id.resize(self.max_id as usize + 1, 0);
            }
            let mut fresh: Vec<u32> = (1..lut.len())
                .filter(|&l| inside[l] > 0 && lut[l] != 0 && self.output_id[lut[l] as usize] == 0)
                .map(|l| lut[l])
                .collect();
            fresh.sort_unstable();
            fresh.dedup();
            for v in fresh {
                self.num_output += 1;
                self.output_id[v as usize] = self.num_output;
            }
            lut.iter().map(|&g| self.output_id[g as usize]).collect()
        };
        let written = seg
            .slice(s![top..bottom, left..right])
            .map(|&l| out_lut[l as usize]);
        sink.write(
            Window {
                xoff: w.xoff + left,
                yoff: w.yoff + top,
                xsize: right - left,
                ysize: bottom - top,
            },
            written,
        )?;
        // Histogram and largest ID written, from the per-segment counts inside the trimmed area.
        let written_max = (1..out_lut.len())
            .filter(|&l| inside[l] > 0)
            .map(|l| out_lut[l])
            .max()
            .unwrap_or(0);
        if self.compat {
            // pyshepseg moves on from the largest ID actually written.
            self.max_id = self.max_id.max(written_max);
        }
        if self.histogram.len() <= written_max as usize {
            self.histogram.resize(written_max as usize + 1, 0);
        }
        for (l, &n) in inside.iter().enumerate().skip(1) {
            if n > 0 && out_lut[l] != 0 {
                self.histogram[out_lut[l] as usize] += n;
            }
        }
        // Overlap strips keep provisional IDs, for matching with the next tiles.
        if !last_col {
            self.right = Some(
                seg.slice(s![.., w.xsize - overlap..])
                    .map(|&l| lut[l as usize]),
            );
        }
        if !last_row {
            self.bottoms[tile.col] = Some(
                seg.slice(s![w.ysize - overlap.., ..])
                    .map(|&l| lut[l as usize]),
            );
        }
        self.next += 1;
        Ok(())
    }

    /// Gives the tile's segments their provisional IDs (pyshepseg's `relabelSegments`, plus
    /// fallbacks): returns the lookup table from local IDs and each local ID's pixel count inside
    /// the trimmed area.
    fn relabel(
        &mut self,
        seg: ArrayView2<u32>,
        recode: &HashMap<u32, Recode>,
        (top, bottom, left, right): (usize, usize, usize, usize),
    ) -> (Vec<u32>, Vec<u64>) {
        let local_max = seg.iter().copied().max().unwrap_or(0) as usize;
        // Top-left corner of each segment's bounding box, and its pixels in the trimmed area.
        let mut corner = vec![(usize::MAX, usize::MAX); local_max + 1];
        let mut inside = vec![0u64; local_max + 1];
        for (r, row) in seg.outer_iter().enumerate() {
            let in_rows = r >= top && r < bottom;
            for (c, &id) in row.iter().enumerate() {
                let e = &mut corner[id as usize];
                e.0 = e.0.min(r);
                e.1 = e.1.min(c);
                if in_rows && c >= left && c < right {
                    inside[id as usize] += 1;
                }
            }
        }
        inside[0] = 0;
        let mut lut = vec![0u32; local_max + 1];
        let mut next = self.max_id;
        for id in 1..=local_max {
            let (r0, c0) = corner[id];
            if r0 == usize::MAX {
                continue;
            }
            lut[id] = match recode.get(&(id as u32)) {
                Some(Recode::To(g)) => *g,
                Some(Recode::Fallback) => {
                    self.fallbacks += 1;
                    next += 1;
                    next
                }
                None if c0 >= left && r0 >= top && c0 < right && r0 < bottom => {
                    next += 1;
                    next
                }
                None => 0,
            };
        }
        if !self.compat {
            self.max_id = next;
        }
        (lut, inside)
    }

    /// Ends the stitch: every tile must have been pushed.
    pub fn finish(mut self) -> Result<StitchReport, StitchError> {
        if self.next != self.grid.tiles().len() {
            return Err(StitchError::Unfinished {
                done: self.next,
                total: self.grid.tiles().len(),
            });
        }
        if !self.compat {
            self.histogram.resize(self.num_output as usize + 1, 0);
        }
        let empty_ids = self.histogram[1..].iter().filter(|&&n| n == 0).count();
        Ok(StitchReport {
            num_segments: (self.histogram.len() - 1) as u32,
            histogram: self.histogram,
            fallbacks: self.fallbacks,
            empty_ids,
        })
    }
}
